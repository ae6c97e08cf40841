#include "config.h"

#include "pam_sbx_opts.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* A whole-string decimal in [min, max]; no atoi, no trailing junk. */
static int parse_int(const char *s, long min, long max, int *out)
{
	char *end = NULL;
	long v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = (int)v;
	return 0;
}

/* The value of "name=value" when arg has that name, else NULL. */
static const char *value_of(const char *arg, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(arg, name, n) == 0 && arg[n] == '=')
		return arg + n + 1;
	return NULL;
}

static void complain(psbx_complain_fn fn, void *ctx, const char *arg, const char *why)
{
	if (fn)
		fn(ctx, arg, why);
}

static void parse_one(const char *arg, struct psbx_opts *o, psbx_complain_fn fn, void *ctx)
{
	const char *v;

	if (strcmp(arg, "debug") == 0) {
		o->debug = true;
	} else if (strcmp(arg, "prompt") == 0) {
		o->prompt = true;
	} else if (strcmp(arg, "insecure_test_socket") == 0) {
		o->insecure_socket = true;
	} else if ((v = value_of(arg, "socket"))) {
		if (v[0] != '/')
			complain(fn, ctx, arg, "the socket must be an absolute path; ignored");
		else
			o->socket = v;
	} else if ((v = value_of(arg, "timeout"))) {
		if (parse_int(v, 1, PSBX_MAX_TIMEOUT_MS, &o->timeout_ms) < 0)
			complain(fn, ctx, arg,
				 "timeout wants milliseconds from 1 to 60000; keeping the current value");
	} else if ((v = value_of(arg, "wait"))) {
		if (parse_int(v, 1, PSBX_MAX_WAIT_S, &o->wait_s) < 0)
			complain(fn, ctx, arg,
				 "wait wants seconds from 1 to 600; keeping the current value");
	} else if ((v = value_of(arg, "failmode"))) {
		if (strcmp(v, "secure") == 0)
			o->fail_open = false;
		else if (strcmp(v, "open") == 0)
			o->fail_open = true;
		else
			complain(fn, ctx, arg, "failmode is secure or open; keeping the current value");
	} else if ((v = value_of(arg, "exempt"))) {
		if (o->n_exempt >= PSBX_MAX_EXEMPT)
			complain(fn, ctx, arg, "too many exempt= options; ignored");
		else
			o->exempt[o->n_exempt++] = v;
	} else {
		complain(fn, ctx, arg, "unknown option; ignored");
	}
}

void psbx_parse_opts(int argc, const char **argv, const char *default_socket,
		     struct psbx_opts *o, psbx_complain_fn fn, void *ctx)
{
	memset(o, 0, sizeof(*o));
	o->socket = default_socket;
	o->timeout_ms = PSBX_DEFAULT_TIMEOUT_MS;
	o->wait_s = PSBX_DEFAULT_WAIT_S;
	for (int i = 0; i < argc; i++) {
		if (argv && argv[i])
			parse_one(argv[i], o, fn, ctx);
	}
}

/* Is user one of the names in the comma-separated list? */
static bool in_list(const char *list, const char *user)
{
	size_t ulen = strlen(user);
	const char *p = list;

	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == ulen && len > 0 && strncmp(p, user, len) == 0)
			return true;
		if (!comma)
			break;
		p = comma + 1;
	}
	return false;
}

bool psbx_is_exempt(const struct psbx_opts *o, const char *user)
{
	if (!user || !*user)
		return false;
	for (int i = 0; i < o->n_exempt; i++)
		if (in_list(o->exempt[i], user))
			return true;
	return false;
}
