/*
 * pam_sbx's module arguments (the words after the module's name in a
 * /etc/pam.d file).  Parsed on every call into a struct on the caller's
 * stack: the module keeps no state between calls except through
 * pam_set_data.  docs/pam.md describes each option.
 */
#ifndef PAM_SBX_OPTS_H
#define PAM_SBX_OPTS_H

#include <stdbool.h>

#define PSBX_DEFAULT_TIMEOUT_MS 2000
#define PSBX_MAX_TIMEOUT_MS 60000
#define PSBX_DEFAULT_WAIT_S 60
#define PSBX_MAX_WAIT_S 600
/* exempt= may be given more than once; each is a comma-separated list. */
#define PSBX_MAX_EXEMPT 8

struct psbx_opts {
	const char *socket;        /* the broker's socket (points into argv or a default) */
	int timeout_ms;            /* each call to the broker, connect to reply */
	bool fail_open;            /* failmode=open: broker unreachable -> allow, logged */
	bool debug;
	bool prompt;               /* offer to file a request during the login */
	int wait_s;                /* prompt: how long to wait for an approval */
	bool insecure_socket;      /* TEST ONLY: trust a socket not owned by root */
	const char *exempt[PSBX_MAX_EXEMPT];
	int n_exempt;
};

/* How the parser reports an argument it ignores (unknown, or a bad value
 * that leaves the default in force).  Never fatal. */
typedef void (*psbx_complain_fn)(void *ctx, const char *arg, const char *why);

/* Fill o from argv.  Strings in o point into argv (PAM keeps them alive
 * for the module's whole life) or to static defaults.  default_socket is
 * used when no socket= is given. */
void psbx_parse_opts(int argc, const char **argv, const char *default_socket,
		     struct psbx_opts *o, psbx_complain_fn complain, void *ctx);

/* Is user named in one of the exempt= lists? */
bool psbx_is_exempt(const struct psbx_opts *o, const char *user);

#endif
