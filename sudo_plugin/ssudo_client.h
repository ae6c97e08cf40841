/*
 * What sbx_sudo asks the broker, and what the answer means.  No sudo
 * types in here: these functions turn one question into one frame, make
 * one round trip with a deadline (sbx_call), and sort the answer.  The
 * only place an answer becomes sudo's result is sbx_sudo.c.
 */
#ifndef SSUDO_CLIENT_H
#define SSUDO_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include "sbx_proto.h"

#define SSUDO_DEFAULT_SOCKET SBX_DEFAULT_SOCKET
#define SSUDO_DEFAULT_TIMEOUT_MS 3000
#define SSUDO_MAX_TIMEOUT_MS 60000

struct ssudo_opts {
	char socket[256];
	int timeout_ms;
	bool fail_open;      /* failmode=open */
	char spool[256];     /* failmode=open: where unrecorded commands wait */
	char bad[256];       /* the first option not understood, for the message */
};

/* Defaults, then each "key=value" of sudo.conf's Plugin line (NULL-ended
 * list, may be NULL).  0, or -1 with opts->bad naming what was wrong. */
int ssudo_opts_parse(struct ssudo_opts *o, char *const args[]);

enum ssudo_outcome {
	SSUDO_YES,          /* allowed / recorded */
	SSUDO_NO,           /* the broker said no (message says why) */
	SSUDO_UNREACHABLE,  /* no broker or no answer in time: failmode decides */
	SSUDO_BAD,          /* anything else: always a refusal */
	SSUDO_PENDING,      /* approve_each: a one-command request was filed (grant) */
};

struct ssudo_answer {
	enum ssudo_outcome outcome;
	int err;
	uint32_t status;
	char message[1024];  /* raw; sanitize before showing */
	uint32_t grant;
	int64_t seq;         /* the command.run record */
	char role[SBX_NAME_MAX + 1];
	char via[32];
	char approvers[256]; /* PENDING: who was asked */
	int64_t wait_s;      /* PENDING: how long to wait for them */
	char state[16];      /* ssudo_status: the request's state */
	char ended_by[SBX_NAME_MAX + 1];
	char end_reason[256];
};

/* One command as sudo sees it.  Strings may be NULL. */
struct ssudo_cmd {
	const char *runas;
	bool runas_root;
	const char *command;  /* escaped (cmdline.h) */
	const char *cwd;
	const char *tty;
};

/* The approval question: may this command run now?  Records command.run
 * (YES, seq set) or command.refused (NO). */
void ssudo_check(const struct ssudo_opts *o, const struct ssudo_cmd *c, struct ssudo_answer *a);
/* The same, coming back with the approved one-command request id. */
void ssudo_check_approved(const struct ssudo_opts *o, const struct ssudo_cmd *c, uint32_t id,
			  struct ssudo_answer *a);
/* A request's state (STATUS): a->state, ended_by, end_reason. */
void ssudo_status(const struct ssudo_opts *o, uint32_t id, struct ssudo_answer *a);
/* Cancel user's pending request id (CANCEL for them: sudo is root). */
void ssudo_cancel(const struct ssudo_opts *o, const char *user, uint32_t id, const char *why,
		  struct ssudo_answer *a);

/* command.run without a decision (no approval plugin loaded). */
void ssudo_run(const struct ssudo_opts *o, const struct ssudo_cmd *c, struct ssudo_answer *a);

/* command.refused: plugin said verdict ("rejected", "error"), why. */
void ssudo_refused(const struct ssudo_opts *o, const struct ssudo_cmd *c, const char *plugin,
		   const char *verdict, const char *why, struct ssudo_answer *a);

/* command.exited for the run recorded as seq: exit status (signal 0) or
 * the signal that ended it; has_status false when neither is known. */
void ssudo_exited(const struct ssudo_opts *o, int64_t seq, bool has_status, int status,
		  int signal, int64_t elapsed_ms, const char *why, struct ssudo_answer *a);

/* A record failmode=open spooled (ssudo_spool.h), handed over. */
void ssudo_spooled_send(const struct ssudo_opts *o, const char *kind, uint32_t uid,
			int64_t time, const struct ssudo_cmd *c, const char *verdict,
			const char *plugin, const char *reason, bool has_status, int status,
			int signal, int64_t elapsed_ms, struct ssudo_answer *a);

/* Which errno from the transport means "unreachable" (failmode decides). */
enum ssudo_outcome ssudo_outcome_of_errno(int err);

#endif
