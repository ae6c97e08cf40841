/*
 * What pam_sbx asks the broker, and what the answer means.  No PAM in
 * here: these functions turn a question into one frame, make one round
 * trip with a deadline (sbx_call), and sort the answer into four kinds.
 * The only place an answer becomes a PAM result is pam_sbx.c.
 */
#ifndef PAM_SBX_CLIENT_H
#define PAM_SBX_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "sbx_proto.h"

enum psbx_outcome {
	PSBX_YES,         /* allowed / done */
	PSBX_NO,          /* the broker said no (MESSAGE says why) */
	PSBX_UNREACHABLE, /* no broker, no answer in time, or it cannot record now
	                   * (the short list in psbx_outcome_of_errno): failmode
	                   * decides */
	PSBX_BAD,         /* an answer that makes no sense, a socket we must not
	                   * trust, any other error, or a request that cannot be
	                   * framed (unsent): always a refusal */
};

struct psbx_answer {
	enum psbx_outcome outcome;
	int err;                  /* negative errno behind UNREACHABLE/BAD, else 0 */
	bool unsent;              /* BAD: the request could not be framed and was never
	                           * sent; message says why */
	uint32_t status;          /* the reply's STATUS, when there was a reply */
	char message[1024];       /* the reply's MESSAGE (raw; sanitize before showing) */
	uint32_t grant;           /* ID: the grant a decision or session rests on, or 0 */
	uint32_t session;         /* SESSION: the session opened or closed, or 0 */
	uint32_t request;         /* prompt: the request filed, or 0 */
	char state[16];           /* prompt: the request's state */
	char approvers[256];      /* prompt: who was asked */
	char role[SBX_NAME_MAX + 1];
	char via[32];
};

struct psbx_conn {
	const char *socket;
	int timeout_ms;
	bool require_root;
};

/* Who is logging in, from where (any of the strings may be NULL). */
struct psbx_login {
	const char *user;
	const char *service;
	const char *rhost;
	const char *tty;
};

/* The account question: may login->user log in now?  Recorded by the
 * broker as access.checked.  YES/NO with MESSAGE (and the grant it rests
 * on), or UNREACHABLE/BAD. */
void psbx_check(const struct psbx_conn *c, const struct psbx_login *l, struct psbx_answer *a);

/* Register a session led by the calling process (the broker reads the pid
 * from the socket).  grant: what the account check rested on (0: let the
 * broker decide).  YES with a session id. */
void psbx_session_open(const struct psbx_conn *c, const struct psbx_login *l, uint32_t grant,
		       struct psbx_answer *a);

/* Close the session with this id, or (id 0) the caller's session of this
 * user on this tty. */
void psbx_session_close(const struct psbx_conn *c, const struct psbx_login *l, uint32_t session,
			struct psbx_answer *a);

/* Prompt mode: file a request for role as login->user (AS_USER; the
 * broker allows that to root), for duration seconds (0: the role's
 * default), with a reason.  YES with the request (pending or active). */
void psbx_request(const struct psbx_conn *c, const char *user, const char *role,
		  int64_t duration, const char *reason, struct psbx_answer *a);

/* Prompt mode: the request's state now. */
void psbx_status(const struct psbx_conn *c, const char *user, uint32_t id,
		 struct psbx_answer *a);

/* Prompt mode: the roles user may ask for on this host, as NUL-separated
 * names into buf (at most max), with the first one's default duration. */
int psbx_eligible_roles(const struct psbx_conn *c, const char *user, char names[][SBX_NAME_MAX + 1],
			int max, int64_t *first_default, struct psbx_answer *a);

/* What a negative errno from the transport (sbx_call) means: the few
 * that say "no broker, or no answer in time" are UNREACHABLE (failmode
 * decides); every other value is BAD (always a refusal). */
enum psbx_outcome psbx_outcome_of_errno(int err);

/* "broker unreachable: Connection refused"-style text for logs. */
const char *psbx_outcome_name(enum psbx_outcome o);

#endif
