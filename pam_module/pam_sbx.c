/*
 * pam_sbx: sshd (or any PAM service) asks sbx-brokerd whether a user may
 * log in, and registers login sessions so the broker can end them when
 * the grant they rest on ends.
 *
 * A thin client living inside someone else's process: it links only the
 * in-tree protocol code and libpam; every call to the broker is one
 * connection with one deadline (timeout=, default 2 s); no global mutable
 * state (per-handle state goes through pam_set_data); it never exits, and
 * only the pam_sm_* entry points leave the shared object (pam_sbx.map).
 *
 * remap() is the one place where an answer from the broker, or the lack
 * of one, becomes a PAM result; failmode= is applied there and nowhere
 * else.  docs/pam.md describes the options.
 */
#include "config.h"

#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#define PAM_SM_AUTH
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "text.h"
#include "pam_sbx_client.h"
#include "pam_sbx_opts.h"
#include "pam_sbx_prompt.h"
#include "sbxio.h"

/* pam_set_data names: the grant the account check rested on, and the
 * session the broker registered (so that close names it exactly). */
#define DATA_GRANT "pam_sbx_grant"
#define DATA_SESSION "pam_sbx_session"

enum stage { STAGE_ACCOUNT, STAGE_OPEN, STAGE_CLOSE };

/* Everything one entry point needs, on its own stack. */
struct call {
	pam_handle_t *pamh;
	int flags;
	enum stage stage;
	struct psbx_opts o;
	struct psbx_login login;
	struct psbx_conn conn;
	/* sanitized copies for log lines */
	char user_s[SBX_NAME_MAX + 1];
	char rhost_s[128];
	char tty_s[64];
	char service_s[SBX_NAME_MAX + 1];
};

static const char *stage_name(enum stage s)
{
	switch (s) {
	case STAGE_ACCOUNT: return "account";
	case STAGE_OPEN: return "session open";
	case STAGE_CLOSE: return "session close";
	}
	return "?";
}

static void complain(void *ctx, const char *arg, const char *why)
{
	char clean[128];

	pam_syslog((pam_handle_t *)ctx, LOG_ERR, "module argument '%s': %s",
		   sbx_sanitize(arg, clean, sizeof(clean)), why);
}

/* A message for the person logging in (sanitized: it came from the
 * broker, and names and reasons in it come from outside).  PAM_SILENT
 * means say nothing. */
static void tell(const struct call *c, int style, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void tell(const struct call *c, int style, const char *fmt, ...)
{
	char raw[1200], clean[1200];
	va_list ap;

	if (c->flags & PAM_SILENT)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	sbx_sanitize(raw, clean, sizeof(clean));
	if (style == PAM_ERROR_MSG)
		pam_error(c->pamh, "%s", clean);
	else
		pam_info(c->pamh, "%s", clean);
}

static const char *item(pam_handle_t *pamh, int type)
{
	const void *v = NULL;

	if (pam_get_item(pamh, type, &v) != PAM_SUCCESS || !v)
		return NULL;
	return v;
}

/* Read the arguments and the PAM items.  Returns PAM_SUCCESS, or the
 * result to return at once (no user). */
static int setup(struct call *c, pam_handle_t *pamh, int flags, enum stage stage, int argc,
		 const char **argv)
{
	const char *user = NULL;

	memset(c, 0, sizeof(*c));
	c->pamh = pamh;
	c->flags = flags;
	c->stage = stage;
	psbx_parse_opts(argc, argv, SBX_DEFAULT_SOCKET, &c->o, complain, pamh);
	if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || !user || !*user) {
		pam_syslog(pamh, LOG_ERR, "%s: no user name", stage_name(stage));
		return PAM_USER_UNKNOWN;
	}
	c->login.user = user;
	c->login.service = item(pamh, PAM_SERVICE);
	c->login.rhost = item(pamh, PAM_RHOST);
	c->login.tty = item(pamh, PAM_TTY);
	c->conn.socket = c->o.socket;
	c->conn.timeout_ms = c->o.timeout_ms;
	c->conn.require_root = !c->o.insecure_socket;
	sbx_sanitize(user, c->user_s, sizeof(c->user_s));
	sbx_sanitize(c->login.rhost ? c->login.rhost : "-", c->rhost_s, sizeof(c->rhost_s));
	sbx_sanitize(c->login.tty ? c->login.tty : "-", c->tty_s, sizeof(c->tty_s));
	sbx_sanitize(c->login.service ? c->login.service : "-", c->service_s,
		     sizeof(c->service_s));
	if (c->o.insecure_socket)
		pam_syslog(pamh, LOG_WARNING,
			   "insecure_test_socket is set: the broker's socket is trusted without "
			   "checking that root owns it (for tests only)");
	return PAM_SUCCESS;
}

static void log_answer_debug(const struct call *c, const struct psbx_answer *a, int64_t ms)
{
	char msg[600];

	if (!c->o.debug)
		return;
	pam_syslog(c->pamh, LOG_DEBUG,
		   "%s: user=%s service=%s rhost=%s tty=%s: %s in %lld ms (status %u, err %d, "
		   "grant %u, session %u): %s", stage_name(c->stage), c->user_s, c->service_s,
		   c->rhost_s, c->tty_s, psbx_outcome_name(a->outcome), (long long)ms, a->status,
		   a->err, a->grant, a->session, sbx_sanitize(a->message, msg, sizeof(msg)));
}

static int deny_result(enum stage s)
{
	return s == STAGE_ACCOUNT ? PAM_PERM_DENIED : PAM_SESSION_ERR;
}

/* The one place where an answer (or none) becomes a PAM result, with the
 * one audit line per decision and what the user is told. */
static int remap(const struct call *c, const struct psbx_answer *a)
{
	char msg[1100];
	const char *what = stage_name(c->stage);

	sbx_sanitize(a->message, msg, sizeof(msg));
	if (c->stage == STAGE_CLOSE) {
		/* Ending a session never fails the logout: the broker also
		 * closes sessions whose leader is gone on its own. */
		if (a->outcome == PSBX_YES)
			return PAM_SUCCESS;
		pam_syslog(c->pamh, a->outcome == PSBX_NO ? LOG_INFO : LOG_WARNING,
			   "%s: user=%s tty=%s: %s%s%s", what, c->user_s, c->tty_s,
			   a->unsent ? "request not sent to the broker" :
			   psbx_outcome_name(a->outcome), msg[0] ? ": " : "", msg);
		return PAM_SUCCESS;
	}
	switch (a->outcome) {
	case PSBX_YES:
		if (c->stage == STAGE_ACCOUNT)
			pam_syslog(c->pamh, LOG_INFO,
				   "account: user=%s service=%s rhost=%s tty=%s: allowed: %s",
				   c->user_s, c->service_s, c->rhost_s, c->tty_s, msg);
		return PAM_SUCCESS;
	case PSBX_NO:
		pam_syslog(c->pamh, LOG_NOTICE, "%s: user=%s service=%s rhost=%s tty=%s: denied: %s",
			   what, c->user_s, c->service_s, c->rhost_s, c->tty_s, msg);
		tell(c, PAM_ERROR_MSG, "sbx: %s", msg[0] ? msg : "access denied");
		return deny_result(c->stage);
	case PSBX_UNREACHABLE:
		if (c->o.fail_open) {
			pam_syslog(c->pamh, LOG_WARNING,
				   "%s: user=%s service=%s rhost=%s tty=%s: broker at %s unreachable "
				   "(%s%s%s): ALLOWED because failmode=open", what, c->user_s,
				   c->service_s, c->rhost_s, c->tty_s, c->o.socket,
				   strerror(-a->err), msg[0] ? ": " : "", msg);
			tell(c, PAM_TEXT_INFO,
			     "sbx: the access broker is unreachable; letting you in (failmode=open)");
			return PAM_SUCCESS;
		}
		pam_syslog(c->pamh, LOG_ERR,
			   "%s: user=%s service=%s rhost=%s tty=%s: broker at %s unreachable (%s%s%s): "
			   "denied because failmode=secure", what, c->user_s, c->service_s,
			   c->rhost_s, c->tty_s, c->o.socket, strerror(-a->err), msg[0] ? ": " : "",
			   msg);
		tell(c, PAM_ERROR_MSG,
		     "sbx: the access broker is unreachable, so logins are refused; try again "
		     "later or ask an administrator");
		return deny_result(c->stage);
	case PSBX_BAD:
		break;
	}
	if (a->unsent) {
		/* Nobody was asked, so this is no outage: failmode has no say. */
		pam_syslog(c->pamh, LOG_ERR,
			   "%s: user=%s service=%s rhost=%s tty=%s: request not sent to the broker: "
			   "%s: denied whatever failmode says", what, c->user_s, c->service_s,
			   c->rhost_s, c->tty_s, msg);
		tell(c, PAM_ERROR_MSG,
		     "sbx: this login cannot be put to the access broker (%s), so it is refused; "
		     "ask an administrator", msg);
		return deny_result(c->stage);
	}
	pam_syslog(c->pamh, LOG_ERR,
		   "%s: user=%s service=%s rhost=%s tty=%s: unusable answer from %s (%s, status %u%s%s): "
		   "denied", what, c->user_s, c->service_s, c->rhost_s, c->tty_s, c->o.socket,
		   a->err ? strerror(-a->err) : "?", a->status, msg[0] ? ": " : "", msg);
	tell(c, PAM_ERROR_MSG,
	     "sbx: the access broker gave an answer that cannot be used, so the login is "
	     "refused; ask an administrator");
	return deny_result(c->stage);
}

static void free_data(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	free(data);
}

/* Keep value with the handle for a later stage (0: forget what was kept). */
static void remember(const struct call *c, const char *name, uint32_t value)
{
	uint32_t *p;

	if (!value) {
		(void)pam_set_data(c->pamh, name, NULL, NULL);
		return;
	}
	p = malloc(sizeof(*p));
	if (!p)
		return;
	*p = value;
	if (pam_set_data(c->pamh, name, p, free_data) != PAM_SUCCESS)
		free(p);
}

static uint32_t recall(const struct call *c, const char *name)
{
	const void *p = NULL;

	if (pam_get_data(c->pamh, name, &p) != PAM_SUCCESS || !p)
		return 0;
	return *(const uint32_t *)p;
}

static int exempt_result(const struct call *c)
{
	if (c->stage == STAGE_ACCOUNT)
		pam_syslog(c->pamh, LOG_NOTICE,
			   "account: user=%s service=%s rhost=%s tty=%s: allowed without asking the "
			   "broker (exempt=)", c->user_s, c->service_s, c->rhost_s, c->tty_s);
	else if (c->o.debug)
		pam_syslog(c->pamh, LOG_DEBUG, "%s: user=%s is exempt: not registered",
			   stage_name(c->stage), c->user_s);
	return PAM_SUCCESS;
}

PAM_EXTERN int pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct call c;
	struct psbx_answer a;
	int64_t t0 = sbx_mono_ms();
	int rc;

	rc = setup(&c, pamh, flags, STAGE_ACCOUNT, argc, argv);
	if (rc != PAM_SUCCESS)
		return rc;
	if (psbx_is_exempt(&c.o, c.login.user))
		return exempt_result(&c);
	psbx_check(&c.conn, &c.login, &a);
	log_answer_debug(&c, &a, sbx_mono_ms() - t0);
	if (a.outcome == PSBX_NO && c.o.prompt)
		psbx_prompt(pamh, flags, &c.o, &c.conn, &c.login, &a);
	if (a.outcome == PSBX_YES)
		remember(&c, DATA_GRANT, a.grant);
	return remap(&c, &a);
}

PAM_EXTERN int pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct call c;
	struct psbx_answer a;
	int64_t t0 = sbx_mono_ms();
	int rc;

	rc = setup(&c, pamh, flags, STAGE_OPEN, argc, argv);
	if (rc != PAM_SUCCESS)
		return rc;
	if (psbx_is_exempt(&c.o, c.login.user))
		return exempt_result(&c);
	psbx_session_open(&c.conn, &c.login, recall(&c, DATA_GRANT), &a);
	log_answer_debug(&c, &a, sbx_mono_ms() - t0);
	if (a.outcome == PSBX_YES)
		remember(&c, DATA_SESSION, a.session);
	return remap(&c, &a);
}

PAM_EXTERN int pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct call c;
	struct psbx_answer a;
	int64_t t0 = sbx_mono_ms();
	int rc;

	rc = setup(&c, pamh, flags, STAGE_CLOSE, argc, argv);
	if (rc != PAM_SUCCESS)
		return rc;
	if (psbx_is_exempt(&c.o, c.login.user))
		return exempt_result(&c);
	psbx_session_close(&c.conn, &c.login, recall(&c, DATA_SESSION), &a);
	log_answer_debug(&c, &a, sbx_mono_ms() - t0);
	if (a.outcome == PSBX_YES)
		remember(&c, DATA_SESSION, 0);
	return remap(&c, &a);
}

/* pam_sbx decides nothing about authentication: a line in the auth stack
 * by mistake must not change the outcome. */
PAM_EXTERN int pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_IGNORE;
}

PAM_EXTERN int pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_IGNORE;
}
