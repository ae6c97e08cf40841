#include "config.h"

#include "client.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "duration.h"
#include "sbxio.h"
#include "timeutil.h"
#include "text.h"

#ifndef SBX_DEFAULT_SOCKET
#define SBX_DEFAULT_SOCKET "/run/sbx/broker.sock"
#endif

/* getopt_long values: globals first, then the tool's options by index. */
enum {
	GOPT_POSITIONAL = 1, /* "-" in optstring: a non-option argument */
	GOPT_SOCKET = 0x100,
	GOPT_AS,
	GOPT_JSON,
	GOPT_TIMEOUT_MS,
	GOPT_VERSION,
	GOPT_TOOL = 0x200,
};

static const struct option global_longopts[] = {
	{ "socket", required_argument, NULL, GOPT_SOCKET },
	{ "as", required_argument, NULL, GOPT_AS },
	{ "json", no_argument, NULL, GOPT_JSON },
	{ "timeout-ms", required_argument, NULL, GOPT_TIMEOUT_MS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, GOPT_VERSION },
};
#define N_GLOBAL (sizeof(global_longopts) / sizeof(global_longopts[0]))

static const char exit_status_text[] =
	"Exit status:\n"
	"  0  done\n"
	"  1  refused or denied: the policy, a permission or an approver said no, a\n"
	"     request ended denied, lapsed or cancelled, `check` denied access, the\n"
	"     broker cannot record changes (degraded), or it reported an error\n"
	"  2  usage or bad input: a bad option, duration, id or name, a request the\n"
	"     broker found malformed in content, or no such request, user or role\n"
	"  3  broker unreachable: no socket, connection refused, the request could\n"
	"     not be sent, or a command that changes nothing got no answer within\n"
	"     --timeout-ms; nothing was changed\n"
	"  4  timed out waiting (--wait): the request is still pending\n"
	"  5  outcome unknown: a change (a request, cancel, drop, approve, deny,\n"
	"     revoke) reached the broker, but the connection closed or\n"
	"     --timeout-ms passed before the answer; it may have been recorded:\n"
	"     look with `sbx-request list` or `sbx-request status ID` before\n"
	"     trying again\n";

static const char global_opts_text[] =
	"Global options (before or after the command):\n"
	"  --socket PATH    the broker's socket (default: $SBX_SOCKET, else\n"
	"                   " SBX_DEFAULT_SOCKET ")\n"
	"  --as USER        act for USER; only root and members of the policy's\n"
	"                   broker.admin_group may, and the journal records both\n"
	"  --json           print results as JSON on stdout (errors stay on stderr)\n"
	"  --timeout-ms N   give up on a broker that has not answered within N\n"
	"                   milliseconds (default 5000)\n"
	"  -h, --help       show this help; `PROG help COMMAND` or\n"
	"                   `PROG COMMAND --help` shows one command's help\n"
	"  --version        print the version and exit\n";

static const char environment_text[] =
	"Environment:\n"
	"  SBX_SOCKET       the broker's socket when --socket is not given\n";

void sbx_cli_error(const struct sbx_cli *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", c->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int sbx_cli_usage(const struct sbx_cli *c, const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", c->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (cmd)
		fprintf(stderr, " (see `%s help %s`)\n", c->prog, cmd);
	else
		fprintf(stderr, " (see `%s --help`)\n", c->prog);
	return SBX_EXIT_USAGE;
}

/* ------------------------------------------------------------------ */
/* Pure parsers                                                        */

int sbx_cli_parse_long(const char *s, long lo, long hi, long *out)
{
	long v = 0;

	if (!s || !*s)
		return -EINVAL;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		if (v > (hi - (*p - '0')) / 10)
			return -ERANGE;
		v = v * 10 + (*p - '0');
	}
	if (v < lo)
		return -ERANGE;
	*out = v;
	return 0;
}

int sbx_cli_parse_id(const char *s, uint32_t *id)
{
	long v;
	int rc = sbx_cli_parse_long(s, 1, (long)UINT32_MAX, &v);

	if (rc < 0)
		return rc;
	*id = (uint32_t)v;
	return 0;
}

int sbx_cli_parse_when(const char *s, int64_t now_us, int64_t *us)
{
	int64_t secs;

	if (!s || !*s)
		return -EINVAL;
	if (sbx_parse_rfc3339_us(s, us) == 0)
		return 0;
	if (sbx_duration_parse(s, &secs, NULL, 0) == 0) {
		*us = now_us - secs * 1000000;
		return 0;
	}
	return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* Argument checks that print                                         */

int sbx_cli_arg_id(const struct sbx_cli *c, const char *what, const char *s, uint32_t *id)
{
	char san[64];

	if (sbx_cli_parse_id(s, id) == 0)
		return 0;
	sbx_cli_error(c, "bad %s \"%s\": write the number shown by `sbx-request list` or "
		      "`sbxctl pending` (1 to %lu)", what, sbx_sanitize(s, san, sizeof(san)),
		      (unsigned long)UINT32_MAX);
	return SBX_EXIT_USAGE;
}

int sbx_cli_arg_duration(const struct sbx_cli *c, const char *what, const char *s, int64_t *secs)
{
	char why[256];

	if (sbx_duration_parse(s, secs, why, sizeof(why)) == 0)
		return 0;
	sbx_cli_error(c, "%s: %s", what, why);
	return SBX_EXIT_USAGE;
}

int sbx_cli_arg_name(const struct sbx_cli *c, const char *what, const char *s)
{
	char san[SBX_NAME_MAX + 16];

	if (sbx_name_valid(s))
		return 0;
	sbx_cli_error(c, "bad %s \"%s\": names are 1 to %u letters, digits, '.', '_' or '-' "
		      "(not first), optionally @domain", what, sbx_sanitize(s, san, sizeof(san)),
		      SBX_NAME_MAX);
	return SBX_EXIT_USAGE;
}

int sbx_cli_arg_text(const struct sbx_cli *c, const char *what, const char *s)
{
	size_t n = strlen(s);

	if (n <= SBX_TEXT_MAX)
		return 0;
	sbx_cli_error(c, "%s is too long (%zu bytes; at most %u)", what, n, SBX_TEXT_MAX);
	return SBX_EXIT_USAGE;
}

/* ------------------------------------------------------------------ */
/* Talking to the broker                                               */

void sbx_cli_reply_free(struct sbx_cli_reply *r)
{
	if (!r)
		return;
	free(r->frame);
	r->frame = NULL;
	r->len = 0;
}

void sbx_cli_msg_init(const struct sbx_cli *c, sbx_msg *m, uint16_t op)
{
	sbx_msg_init(m, op);
	if (c->as_user)
		sbx_msg_put_str(m, SBX_F_AS_USER, c->as_user);
}

int sbx_cli_parse_about(const struct sbx_cli *c, const struct sbx_cli_args *a, int o_reason,
			int o_comment, int o_for, struct sbx_cli_about *q)
{
	memset(q, 0, sizeof(*q));
	if (sbx_cli_arg_id(c, "request id", a->pos[0], &q->id))
		return SBX_EXIT_USAGE;
	if (o_reason >= 0 && (q->reason = a->val[o_reason]) &&
	    sbx_cli_arg_text(c, "--reason", q->reason))
		return SBX_EXIT_USAGE;
	if (o_comment >= 0 && (q->comment = a->val[o_comment]) &&
	    sbx_cli_arg_text(c, "--comment", q->comment))
		return SBX_EXIT_USAGE;
	if (o_for >= 0 && a->val[o_for] &&
	    sbx_cli_arg_duration(c, "--for", a->val[o_for], &q->duration))
		return SBX_EXIT_USAGE;
	return 0;
}

int sbx_cli_call_about(const struct sbx_cli *c, uint16_t op, const struct sbx_cli_about *q,
		       json_t **req)
{
	sbx_msg m = { 0 };
	int rc;

	sbx_cli_msg_init(c, &m, op);
	sbx_msg_put_u32(&m, SBX_F_ID, q->id);
	sbx_msg_put_str_opt(&m, SBX_F_COMMENT, q->comment);
	sbx_msg_put_str_opt(&m, SBX_F_REASON, q->reason);
	if (q->duration > 0)
		sbx_msg_put_i64(&m, SBX_F_DURATION, q->duration);
	rc = sbx_cli_call_json(c, &m, SBX_F_REQUEST, false, SBX_OUT_REQUEST, req);
	sbx_msg_free(&m);
	return rc;
}

int sbx_cli_exit_for_status(uint32_t status)
{
	switch (status) {
	case SBX_ST_OK:
		return SBX_EXIT_OK;
	case SBX_ST_BADINPUT:
	case SBX_ST_NOTFOUND:
		return SBX_EXIT_USAGE;
	case SBX_ST_REFUSED:
	case SBX_ST_UNAVAILABLE:
	case SBX_ST_PROTO:
	case SBX_ST_INTERNAL:
	default:
		return SBX_EXIT_REFUSED;
	}
}

int sbx_cli_exit_for_errno(int err)
{
	switch (err) {
	case 0:
		return SBX_EXIT_OK;
	case -EBADMSG:
	case -EPROTO:
	case -ENOMEM:
		return SBX_EXIT_REFUSED;
	case -EMSGSIZE:
	case -EINVAL:
		return SBX_EXIT_USAGE;
	default:
		return SBX_EXIT_UNREACHABLE;
	}
}

static const char *status_default_text(uint32_t status)
{
	switch (status) {
	case SBX_ST_REFUSED: return "refused by the broker";
	case SBX_ST_BADINPUT: return "the broker rejected the request's content";
	case SBX_ST_NOTFOUND: return "not found";
	case SBX_ST_UNAVAILABLE: return "the broker cannot record changes right now";
	case SBX_ST_PROTO: return "the broker could not parse the request";
	case SBX_ST_INTERNAL: return "internal error in the broker";
	}
	return "unexpected answer from the broker";
}

/* Why a call failed before a reply arrived. */
static void transport_error(const struct sbx_cli *c, int err, char *buf, size_t len)
{
	char path[256];

	sbx_sanitize(c->socket, path, sizeof(path));
	switch (sbx_cli_exit_for_errno(err)) {
	case SBX_EXIT_UNREACHABLE:
		snprintf(buf, len, "cannot reach the broker at %s: %s (is sbx-brokerd running? "
			 "see --socket)", path, strerror(-err));
		break;
	case SBX_EXIT_USAGE:
		snprintf(buf, len, "the request does not fit in one frame (%s): shorten the "
			 "reason, comment or ticket", strerror(-err));
		break;
	default:
		if (err == -ENOMEM)
			snprintf(buf, len, "out of memory");
		else
			snprintf(buf, len, "the broker at %s sent a malformed reply (%s): are "
				 "%s and sbx-brokerd the same version?", path, strerror(-err), c->prog);
		break;
	}
}

/* Ops that change something: once one has been sent, a lost answer does
 * not mean that nothing happened. */
static bool op_changes(uint16_t op)
{
	switch (op) {
	case SBX_OP_REQUEST:
	case SBX_OP_CANCEL:
	case SBX_OP_DROP:
	case SBX_OP_APPROVE:
	case SBX_OP_DENY:
	case SBX_OP_REVOKE:
	case SBX_OP_REVIEW_CERTIFY:
	case SBX_OP_REVIEW_REVOKE:
		return true;
	}
	return false;
}

/* The op of a finished frame. */
static uint16_t msg_op(const sbx_msg *m)
{
	return (uint16_t)((uint16_t)m->buf[6] << 8 | m->buf[7]);
}

/* sbx_call(), also saying whether the request left whole.  0 (the reply
 * in rep) or a negative errno. */
static int round_trip(const struct sbx_cli *c, sbx_msg *req, struct sbx_cli_reply *rep,
		      bool *sent)
{
	struct sbx_conn_opts o = {
		.path = c->socket,
		.timeout_ms = c->timeout_ms > 0 ? c->timeout_ms : SBX_CLI_TIMEOUT_MS_DEFAULT,
		.require_root = 0,
	};

	return sbx_call_sent(&o, req, &rep->frame, &rep->len, sent);
}

/* The ID a request frame carries, or 0. */
static uint32_t msg_id(const sbx_msg *m)
{
	sbx_reader r;
	sbx_field f;

	sbx_reader_init_frame(&r, m->buf, m->len);
	return sbx_reader_find(&r, SBX_F_ID, &f) == 1 && f.len == 4 ? sbx_field_u32(&f) : 0;
}

/* Why a change that was sent got no answer, and where to look. */
static void unknown_outcome(const struct sbx_cli *c, const sbx_msg *req, int err, char *buf,
			    size_t len)
{
	char path[256], as[SBX_NAME_MAX + 16] = "", how[160], look[320];
	uint16_t op = msg_op(req);
	const char *what;

	sbx_sanitize(c->socket, path, sizeof(path));
	if (c->as_user)
		snprintf(as, sizeof(as), "--as %s ", c->as_user);
	if (err == -ETIMEDOUT)
		snprintf(how, sizeof(how), "no answer came within %d ms (--timeout-ms)",
			 c->timeout_ms);
	else if (err == -ECONNRESET)
		snprintf(how, sizeof(how), "the connection closed before the answer");
	else
		snprintf(how, sizeof(how), "the answer was lost (%s)", strerror(-err));
	switch (op) {
	case SBX_OP_REQUEST:
		what = "request";
		snprintf(look, sizeof(look), "look with `sbx-request %slist` before asking again; "
			 "asking again the same way (role, --reason, --ticket, --for) is safe: it "
			 "returns the request if it was recorded", as);
		break;
	default:
		what = op == SBX_OP_CANCEL ? "cancellation"
		       : op == SBX_OP_DROP ? "give-back"
		       : op == SBX_OP_APPROVE ? "approval"
		       : op == SBX_OP_DENY ? "denial" : "revocation";
		snprintf(look, sizeof(look), "look with `sbx-request %sstatus %u` before trying "
			 "again", as, msg_id(req));
		break;
	}
	snprintf(buf, len, "outcome unknown: the %s reached the broker at %s, but %s; it may "
		 "have been recorded: %s", what, path, how, look);
}

int sbx_cli_call_quiet(const struct sbx_cli *c, sbx_msg *req, struct sbx_cli_reply *rep,
		       char *err, size_t errlen)
{
	char msg[SBX_STR_MAX + 1];
	bool sent = false;
	int rc;

	rep->frame = NULL;
	rep->len = 0;
	rep->status = SBX_ST_INTERNAL;
	rep->message[0] = '\0';
	/* A build error is ours, not the broker's: say so before connecting. */
	if (req->error) {
		transport_error(c, req->error, err, errlen);
		return sbx_cli_exit_for_errno(req->error);
	}
	rc = round_trip(c, req, rep, &sent);
	if (rc < 0 && sent && op_changes(msg_op(req)) &&
	    sbx_cli_exit_for_errno(rc) == SBX_EXIT_UNREACHABLE) {
		unknown_outcome(c, req, rc, err, errlen);
		return SBX_EXIT_UNKNOWN;
	}
	if (rc < 0) {
		transport_error(c, rc, err, errlen);
		return sbx_cli_exit_for_errno(rc);
	}
	if (sbx_reply_status(rep->frame, rep->len, &rep->status, rep->message,
			     sizeof(rep->message)) < 0) {
		transport_error(c, -EBADMSG, err, errlen);
		return SBX_EXIT_REFUSED;
	}
	if (rep->status == SBX_ST_OK)
		return SBX_EXIT_OK;
	sbx_sanitize(rep->message, msg, sizeof(msg));
	if (!msg[0])
		snprintf(err, errlen, "%s", status_default_text(rep->status));
	else if (rep->status == SBX_ST_PROTO)
		snprintf(err, errlen, "the broker could not parse the request: %s", msg);
	else if (rep->status == SBX_ST_INTERNAL)
		snprintf(err, errlen, "internal error in the broker: %s", msg);
	else
		snprintf(err, errlen, "%s", msg);
	return sbx_cli_exit_for_status(rep->status);
}

int sbx_cli_call(const struct sbx_cli *c, sbx_msg *req, struct sbx_cli_reply *rep)
{
	char err[SBX_STR_MAX + 256];
	int rc = sbx_cli_call_quiet(c, req, rep, err, sizeof(err));

	if (rc != SBX_EXIT_OK)
		sbx_cli_error(c, "%s", err);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Help                                                                */

/* Print s, breaking lines before width but never inside [...];
 * continuation lines start with indent spaces.  col is where the cursor
 * already is. */
static void print_wrapped(FILE *f, const char *s, int col, int indent, int width)
{
	bool first = true;

	while (*s) {
		int n = 0, depth = 0;

		while (s[n] && (s[n] != ' ' || depth > 0)) {
			if (s[n] == '[')
				depth++;
			else if (s[n] == ']' && depth > 0)
				depth--;
			n++;
		}
		if (!first && col + 1 + n > width) {
			fprintf(f, "\n%*s", indent, "");
			col = indent;
		} else if (!first) {
			fputc(' ', f);
			col++;
		}
		fwrite(s, 1, (size_t)n, f);
		col += n;
		s += n;
		while (*s == ' ')
			s++;
		first = false;
	}
}

/* The general help's command list: synopsis left, summary right, the
 * summary on its own line when the synopsis is long. */
static void print_command_line(FILE *f, const struct sbx_cli_cmd *cmd)
{
	const int col = 36;
	int w = (int)strlen(cmd->synopsis);

	if (w < col - 1) {
		fprintf(f, "  %-*s%s\n", col, cmd->synopsis, cmd->summary);
		return;
	}
	fputs("  ", f);
	print_wrapped(f, cmd->synopsis, 2, 6, 79);
	fprintf(f, "\n  %*s%s\n", col, "", cmd->summary);
}

static void print_command_list(FILE *f, const struct sbx_cli_tool *t)
{
	fputs("Commands:\n", f);
	if (t->fallback)
		print_command_line(f, t->fallback);
	for (size_t i = 0; i < t->n_cmds; i++)
		print_command_line(f, &t->cmds[i]);
}

static void print_usage_line(FILE *f, const char *prefix, const char *prog,
			     const char *synopsis)
{
	int col = fprintf(f, "%s%s ", prefix, prog);

	print_wrapped(f, synopsis, col, col, 79);
	fputc('\n', f);
}

/* The global options text with PROG filled in. */
static void print_global_opts(FILE *f, const char *prog)
{
	const char *p = global_opts_text, *hit;

	while ((hit = strstr(p, "PROG")) != NULL) {
		fwrite(p, 1, (size_t)(hit - p), f);
		fputs(prog, f);
		p = hit + 4;
	}
	fputs(p, f);
}

static void print_general_help(FILE *f, const struct sbx_cli_tool *t)
{
	fprintf(f, "Usage: %s COMMAND [ARGUMENTS] [OPTIONS]\n", t->prog);
	if (t->fallback)
		print_usage_line(f, "       ", t->prog, t->fallback->synopsis);
	fprintf(f, "\n%s\n", t->purpose);
	print_command_list(f, t);
	fputc('\n', f);
	print_global_opts(f, t->prog);
	if (t->extra_help)
		fprintf(f, "\n%s", t->extra_help);
	fprintf(f, "\n%s\n%s", exit_status_text, environment_text);
	if (t->examples)
		fprintf(f, "\nExamples:\n%s", t->examples);
	/* Pages that `make install` and the sbx package install (docs/man). */
	fprintf(f, "\nSee also: sbx-request(1), sbxctl(8), sbx-brokerd(8), sbx-policy(5);\n"
		"the full reference is " SBX_DOCDIR "/cli.md.\n");
}

static void print_command_help(FILE *f, const struct sbx_cli_tool *t,
			       const struct sbx_cli_cmd *cmd)
{
	print_usage_line(f, "Usage: ", t->prog, cmd->synopsis);
	fprintf(f, "\n%s", cmd->help);
	fprintf(f, "\nGlobal options: --socket PATH, --as USER, --json, --timeout-ms N, "
		"-h/--help (see `%s --help`).\n", t->prog);
	fprintf(f, "Exit status: 0 done, 1 refused or denied, 2 usage or bad input, "
		"3 broker unreachable, 4 timed out waiting, 5 outcome unknown (see `%s --help`).\n",
		t->prog);
}

/* ------------------------------------------------------------------ */
/* Parsing                                                             */

struct parsed {
	struct sbx_cli cli;
	struct sbx_cli_args args;
	char **pos;      /* every positional word, command included */
	int npos;
	bool help;
	bool version;
	const char *timeout_ms;
};

static struct option *build_longopts(const struct sbx_cli_tool *t)
{
	struct option *lo = calloc(N_GLOBAL + t->n_opts + 1, sizeof(*lo));

	if (!lo)
		return NULL;
	memcpy(lo, global_longopts, sizeof(global_longopts));
	for (size_t i = 0; i < t->n_opts; i++) {
		lo[N_GLOBAL + i].name = t->opts[i].name;
		lo[N_GLOBAL + i].has_arg = t->opts[i].has_arg ? required_argument : no_argument;
		lo[N_GLOBAL + i].val = GOPT_TOOL + (int)i;
	}
	return lo;
}

/* The option as the user wrote it, for messages. */
static const char *opt_text(int argc, char **argv, int ind)
{
	if (ind > 0 && ind <= argc)
		return argv[ind - 1];
	return "?";
}

static int parse_argv(const struct sbx_cli_tool *t, int argc, char **argv, struct parsed *p)
{
	struct option *lo = build_longopts(t);
	char shorts[3 + 2 * SBX_CLI_MAX_OPTS + 1];
	int ret = SBX_EXIT_USAGE, opt;

	if (!lo) {
		sbx_cli_error(&p->cli, "out of memory");
		return SBX_EXIT_REFUSED;
	}
	p->pos = calloc((size_t)argc + 1, sizeof(*p->pos));
	p->args.occ = calloc((size_t)argc + 1, sizeof(*p->args.occ));
	p->args.occ_opt = calloc((size_t)argc + 1, sizeof(*p->args.occ_opt));
	if (!p->pos || !p->args.occ || !p->args.occ_opt) {
		sbx_cli_error(&p->cli, "out of memory");
		ret = SBX_EXIT_REFUSED;
		goto out;
	}
	opterr = 0;
	optind = 1;
	/* "-": words come back in order as GOPT_POSITIONAL, whatever
	 * POSIXLY_CORRECT says; ":": we word the errors ourselves. */
	{
		size_t k = 3;

		memcpy(shorts, "-:h", 3);
		for (size_t i = 0; i < t->n_opts && k + 3 < sizeof(shorts); i++) {
			if (!t->opts[i].short_name)
				continue;
			shorts[k++] = t->opts[i].short_name;
			if (t->opts[i].has_arg)
				shorts[k++] = ':';
		}
		shorts[k] = '\0';
	}
	while ((opt = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		for (size_t i = 0; opt > 0 && opt < 0x100 && opt != 'h' && i < t->n_opts; i++)
			if (t->opts[i].short_name == opt)
				opt = GOPT_TOOL + (int)i;
		switch (opt) {
		case GOPT_POSITIONAL:
			p->pos[p->npos++] = optarg;
			break;
		case GOPT_SOCKET:
			p->cli.socket = optarg;
			break;
		case GOPT_AS:
			p->cli.as_user = optarg;
			break;
		case GOPT_JSON:
			p->cli.json = true;
			break;
		case GOPT_TIMEOUT_MS:
			p->timeout_ms = optarg;
			break;
		case 'h':
			p->help = true;
			break;
		case GOPT_VERSION:
			p->version = true;
			break;
		case ':':
			sbx_cli_usage(&p->cli, NULL, "option %s needs a value",
				      opt_text(argc, argv, optind));
			goto out;
		case '?':
			if (optopt && optopt < 0x100)
				sbx_cli_usage(&p->cli, NULL, "unknown option -%c", optopt);
			else
				sbx_cli_usage(&p->cli, NULL, "unknown or ambiguous option %s",
					      opt_text(argc, argv, optind));
			goto out;
		default:
			if (opt >= GOPT_TOOL && (size_t)(opt - GOPT_TOOL) < t->n_opts) {
				int i = opt - GOPT_TOOL;

				p->args.val[i] = optarg ? optarg : "";
				p->args.seen |= SBX_CLI_OPT_BIT(i);
				p->args.occ_opt[p->args.nocc] = i;
				p->args.occ[p->args.nocc++] = p->args.val[i];
			}
			break;
		}
	}
	while (optind < argc)
		p->pos[p->npos++] = argv[optind++];
	ret = 0;
out:
	free(lo);
	return ret;
}

static int resolve_globals(struct parsed *p)
{
	long ms;

	if (!p->cli.socket) {
		const char *env = getenv("SBX_SOCKET");

		p->cli.socket = env && *env ? env : SBX_DEFAULT_SOCKET;
	}
	if (p->timeout_ms) {
		if (sbx_cli_parse_long(p->timeout_ms, 1, SBX_CLI_TIMEOUT_MS_MAX, &ms) < 0)
			return sbx_cli_usage(&p->cli, NULL, "bad --timeout-ms \"%s\": give "
					     "milliseconds from 1 to %d", p->timeout_ms,
					     SBX_CLI_TIMEOUT_MS_MAX);
		p->cli.timeout_ms = (int)ms;
	}
	if (p->cli.as_user && sbx_cli_arg_name(&p->cli, "user for --as", p->cli.as_user))
		return SBX_EXIT_USAGE;
	return 0;
}

/* The command named by the first one or two words; *used = words taken. */
static const struct sbx_cli_cmd *find_cmd(const struct sbx_cli_tool *t, char **w, int n,
					  int *used)
{
	for (size_t i = 0; i < t->n_cmds; i++) {
		const char *name = t->cmds[i].name;
		const char *sp = strchr(name, ' ');

		if (!sp && strcmp(name, w[0]) == 0) {
			*used = 1;
			return &t->cmds[i];
		}
		if (sp && n >= 2 && strncmp(name, w[0], (size_t)(sp - name)) == 0 &&
		    w[0][sp - name] == '\0' && strcmp(sp + 1, w[1]) == 0) {
			*used = 2;
			return &t->cmds[i];
		}
	}
	return NULL;
}

/* Is word the first half of some two-word commands ("policy")? */
static bool is_group(const struct sbx_cli_tool *t, const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; i < t->n_cmds; i++) {
		const char *name = t->cmds[i].name;

		if (strncmp(name, word, n) == 0 && name[n] == ' ')
			return true;
	}
	return false;
}

static void print_group_help(FILE *f, const struct sbx_cli_tool *t, const char *word)
{
	size_t n = strlen(word);
	bool first = true;

	for (size_t i = 0; i < t->n_cmds; i++) {
		const char *name = t->cmds[i].name;

		if (strncmp(name, word, n) == 0 && name[n] == ' ') {
			if (!first)
				fputs("\n", f);
			print_command_help(f, t, &t->cmds[i]);
			first = false;
		}
	}
}

static int group_error(const struct sbx_cli *c, const struct sbx_cli_tool *t, const char *word)
{
	char list[256] = "";
	size_t n = strlen(word);

	for (size_t i = 0; i < t->n_cmds; i++) {
		const char *name = t->cmds[i].name;

		if (strncmp(name, word, n) == 0 && name[n] == ' ') {
			if (list[0])
				strncat(list, ", ", sizeof(list) - strlen(list) - 1);
			strncat(list, name + n + 1, sizeof(list) - strlen(list) - 1);
		}
	}
	return sbx_cli_usage(c, word, "%s needs a subcommand: %s", word, list);
}

/* `PROG help [COMMAND...]` */
static int run_help(const struct sbx_cli *c, const struct sbx_cli_tool *t, char **w, int n)
{
	const struct sbx_cli_cmd *cmd;
	char san[128];
	int used;

	if (n == 0) {
		print_general_help(stdout, t);
		return SBX_EXIT_OK;
	}
	cmd = find_cmd(t, w, n, &used);
	if (!cmd && t->fallback &&
	    (strcmp(w[0], t->fallback->name) == 0 || strcmp(w[0], "ROLE") == 0))
		cmd = t->fallback;
	if (cmd) {
		print_command_help(stdout, t, cmd);
		return SBX_EXIT_OK;
	}
	if (is_group(t, w[0])) {
		print_group_help(stdout, t, w[0]);
		return SBX_EXIT_OK;
	}
	return sbx_cli_usage(c, NULL, "no help for \"%s\": not a command",
			     sbx_sanitize(w[0], san, sizeof(san)));
}

/* The first tool option given that cmd does not take, or -1. */
static int stray_option(const struct sbx_cli_tool *t, const struct sbx_cli_cmd *cmd,
			uint32_t seen)
{
	uint32_t stray = seen & ~cmd->opts;

	for (size_t i = 0; i < t->n_opts; i++)
		if (stray & SBX_CLI_OPT_BIT(i))
			return (int)i;
	return -1;
}

static int dispatch(const struct sbx_cli_tool *t, struct parsed *p)
{
	const struct sbx_cli_cmd *cmd;
	char san[128];
	int used = 0, stray, rc;

	if (p->version) {
		printf("%s (%s) %s\n", t->prog, PACKAGE_NAME, PACKAGE_VERSION);
		return SBX_EXIT_OK;
	}
	if (p->npos == 0) {
		if (p->help) {
			print_general_help(stdout, t);
			return SBX_EXIT_OK;
		}
		return sbx_cli_usage(&p->cli, NULL, t->fallback ? "missing ROLE or command"
							       : "missing command");
	}
	if (strcmp(p->pos[0], "help") == 0)
		return run_help(&p->cli, t, p->pos + 1, p->npos - 1);
	cmd = find_cmd(t, p->pos, p->npos, &used);
	if (!cmd && is_group(t, p->pos[0])) {
		if (p->help) {
			print_group_help(stdout, t, p->pos[0]);
			return SBX_EXIT_OK;
		}
		return group_error(&p->cli, t, p->pos[0]);
	}
	if (!cmd && !t->fallback)
		return sbx_cli_usage(&p->cli, NULL, "unknown command \"%s\"",
				     sbx_sanitize(p->pos[0], san, sizeof(san)));
	if (!cmd) {
		cmd = t->fallback;
		used = 0;
	}
	if (p->help) {
		print_command_help(stdout, t, cmd);
		return SBX_EXIT_OK;
	}
	stray = stray_option(t, cmd, p->args.seen);
	if (stray >= 0)
		return sbx_cli_usage(&p->cli, cmd->name, "%s does not take --%s", cmd->name,
				     t->opts[stray].name);
	p->args.pos = p->pos + used;
	p->args.npos = p->npos - used;
	if (p->args.npos < cmd->min_args)
		return sbx_cli_usage(&p->cli, cmd->name, "missing argument: %s %s", t->prog,
				     cmd->synopsis);
	if (cmd->max_args >= 0 && p->args.npos > cmd->max_args)
		return sbx_cli_usage(&p->cli, cmd->name, "unexpected argument \"%s\"",
				     sbx_sanitize(p->args.pos[cmd->max_args], san, sizeof(san)));
	rc = resolve_globals(p);
	if (rc)
		return rc;
	return cmd->run(&p->cli, &p->args);
}

int sbx_cli_main(const struct sbx_cli_tool *t, int argc, char **argv)
{
	struct parsed p = {
		.cli = {
			.prog = t->prog,
			.timeout_ms = SBX_CLI_TIMEOUT_MS_DEFAULT,
		},
	};
	int rc;

	rc = parse_argv(t, argc, argv, &p);
	if (rc == 0)
		rc = dispatch(t, &p);
	free(p.pos);
	free(p.args.occ);
	free(p.args.occ_opt);
	/* Output that never reached its reader is a failure too (a full
	 * disk under `> file`); a closed pipe is the reader's choice. */
	errno = 0;
	if ((fflush(stdout) != 0 || ferror(stdout)) && errno != EPIPE) {
		sbx_cli_error(&p.cli, "cannot write output: %s", strerror(errno ? errno : EIO));
		if (rc == SBX_EXIT_OK)
			rc = SBX_EXIT_REFUSED;
	}
	return rc;
}

/* A successful reply decoded as sbx_cli_call_json says (printing any
 * failure).  The exit code; *out is set only on SBX_EXIT_OK. */
static int decode_reply(const struct sbx_cli *c, const struct sbx_cli_reply *rep, uint16_t tag,
			bool many, enum sbx_out_kind kind, json_t **out)
{
	json_t *j;

	if (tag == 0)
		j = sbx_out_decode_reply(rep->frame, rep->len, kind);
	else if (many)
		j = sbx_out_reply_records(rep->frame, rep->len, tag, kind);
	else
		j = sbx_out_reply_record(rep->frame, rep->len, tag, kind);
	if (!j) {
		if (tag && !many)
			sbx_cli_error(c, "the broker's answer lacks the expected record (are %s "
				      "and sbx-brokerd the same version?)", c->prog);
		else
			sbx_cli_error(c, "out of memory");
		return SBX_EXIT_REFUSED;
	}
	*out = j;
	return SBX_EXIT_OK;
}

int sbx_cli_call_json(const struct sbx_cli *c, sbx_msg *req, uint16_t tag, bool many,
		      enum sbx_out_kind kind, json_t **out)
{
	struct sbx_cli_reply rep = { 0 };
	int rc;

	*out = NULL;
	rc = sbx_cli_call(c, req, &rep);
	if (rc == SBX_EXIT_OK)
		rc = decode_reply(c, &rep, tag, many, kind, out);
	sbx_cli_reply_free(&rep);
	return rc;
}

int sbx_cli_call_pages(const struct sbx_cli *c, uint16_t op, uint32_t flags, const char *user,
		       json_t **out)
{
	json_t *all = json_array(), *page = NULL;
	struct sbx_cli_reply rep = { 0 };
	uint32_t cursor = 0, next;
	int dir = 0, step;
	sbx_msg m = { 0 };
	sbx_reader rd;
	sbx_field f;
	int rc = SBX_EXIT_REFUSED;

	*out = NULL;
	if (!all)
		goto nomem;
	for (;;) {
		sbx_cli_msg_init(c, &m, op);
		sbx_msg_put_str_opt(&m, SBX_F_USER, user);
		if (flags)
			sbx_msg_put_u32(&m, SBX_F_FLAGS, flags);
		if (cursor)
			sbx_msg_put_u32(&m, SBX_F_CURSOR, cursor);
		rc = sbx_cli_call(c, &m, &rep);
		sbx_msg_free(&m);
		if (rc != SBX_EXIT_OK)
			goto out;
		page = sbx_out_reply_records(rep.frame, rep.len, SBX_F_REQUEST, SBX_OUT_REQUEST);
		if (!page || json_array_extend(all, page) < 0)
			goto nomem;
		sbx_reader_init_frame(&rd, rep.frame, rep.len);
		if (sbx_reader_find(&rd, SBX_F_NEXT_CURSOR, &f) != 1 || f.len != 4)
			break;
		next = sbx_field_u32(&f);
		/* A page that moves nowhere would be asked for again forever,
		 * and so would pages that turn back: a list walks its ids one
		 * way (newest first, or oldest first), never both. */
		step = next > cursor ? 1 : -1;
		if (json_array_size(page) == 0 || next == cursor ||
		    (cursor && dir && step != dir)) {
			sbx_cli_error(c, "the broker's list does not go on from cursor %u (are %s "
				      "and sbx-brokerd the same version?)", next, c->prog);
			rc = SBX_EXIT_REFUSED;
			goto out;
		}
		if (cursor)
			dir = step;
		cursor = next;
		json_decref(page);
		page = NULL;
		sbx_cli_reply_free(&rep);
	}
	*out = all;
	all = NULL;
	rc = SBX_EXIT_OK;
	goto out;
nomem:
	sbx_cli_error(c, "out of memory");
	rc = SBX_EXIT_REFUSED;
out:
	json_decref(page);
	json_decref(all);
	sbx_cli_reply_free(&rep);
	return rc;
}

int sbx_cli_call_request(const struct sbx_cli *c, sbx_msg *req, json_t **out, uint32_t *flags)
{
	struct sbx_cli_reply rep = { 0 };
	sbx_reader r;
	sbx_field f;
	int rc;

	*out = NULL;
	rc = sbx_cli_call(c, req, &rep);
	if (rc == SBX_EXIT_OK)
		rc = decode_reply(c, &rep, SBX_F_REQUEST, false, SBX_OUT_REQUEST, out);
	if (rc == SBX_EXIT_OK) {
		sbx_reader_init_frame(&r, rep.frame, rep.len);
		*flags = sbx_reader_find(&r, SBX_F_FLAGS, &f) == 1 && f.len == 4
				 ? sbx_field_u32(&f) : 0;
	}
	sbx_cli_reply_free(&rep);
	return rc;
}

int sbx_cli_print_json(const struct sbx_cli *c, const json_t *j)
{
	if (sbx_out_print_json(stdout, j) == 0)
		return SBX_EXIT_OK;
	sbx_cli_error(c, "cannot print JSON: %s", strerror(errno ? errno : ENOMEM));
	return SBX_EXIT_REFUSED;
}
