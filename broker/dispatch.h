/*
 * From a validated request frame to its reply: one table of ops (who may
 * call each, which fields it takes, its handler), one parser for every
 * op's fields, and the helpers every handler replies with.  The handlers
 * live where their subject does: ops_self.c (what a person asks about
 * themselves), ops_decision.c (approvers and admins), sessions.c
 * (pam_sbx), grouptable.c (libnss_sbx's fallback).
 */
#ifndef SBX_DISPATCH_H
#define SBX_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "frame.h"
#include "identity.h"

/* Every field a request may carry, copied out of the frame.  Strings are
 * "" when absent. */
struct sbx_args {
	uint16_t op;
	uint32_t flags, id, extends, session, pid, gid;
	int64_t duration;
	bool has_id, has_duration, has_gid;
	char as_user[SBX_NAME_MAX + 1];
	char user[SBX_NAME_MAX + 1];
	char role[SBX_NAME_MAX + 1];
	char service[SBX_NAME_MAX + 1];
	char unix_group[SBX_NAME_MAX + 1];
	char rhost[256];
	char tty[64];
	char ticket[128];
	char reason[SBX_TEXT_MAX + 1];
	char comment[SBX_TEXT_MAX + 1];
	/* TAIL's filters (tail.h) */
	uint32_t count;
	bool has_count;
	char actor[SBX_NAME_MAX + 1];
	char host[SBX_NAME_MAX + 1];
	char event[SBX_NAME_MAX + 1];
	char outcome[32];
	char token_name[SBX_NAME_MAX + 1];
	char token_id[32];
	char scopes[64];
	/* sudo commands (commands.c) */
	int64_t seq, elapsed_ms;
	uint32_t exit_status, signal;
	bool has_seq, has_exit_status, has_signal;
	char runas[SBX_NAME_MAX + 1];
	char plugin[SBX_NAME_MAX + 1];
	char verdict[16];
	char cwd[1025];
	char command[SBX_COMMAND_MAX + 1];
	/* SUDO_SPOOLED */
	uint32_t uid;
	int64_t created_at;
	bool has_uid;
	char state[16];
	/* LIST, PENDING, GRANTS in pages (pages.h); 0: from the start */
	uint32_t cursor, limit;
	bool has_limit;
};

/* The person a request acts for: the caller, or with --as (AS_USER)
 * someone else, which only root and broker.admin_group may ask, and then
 * with that person's rights. */
struct sbx_who {
	const char *person;
	const char *through;  /* the unix account that spoke for them, or NULL */
	bool admin;
};

/* One request on its way through a handler. */
struct sbx_call {
	struct sbx_caller *caller;  /* SO_PEERCRED, resolved on demand */
	struct sbx_args a;
	struct sbx_who who;         /* filled for SBX_CALLER_PERSON and _ADMIN ops */
	sbx_msg *reply;
	uint64_t wait_seq;          /* the reply goes out once this seq is durable */
};

typedef void (*sbx_op_fn)(struct sbx_broker *b, struct sbx_call *c);

struct sbx_change;

/* Handle one validated request frame.  Fills reply; *wait_seq is the seq
 * that must be durable before the reply may be sent (0: send now).  In a
 * fleet, a request that changes the fleet's state waits for its log:
 * then the reply is not filled yet and the change is returned; once its
 * state is SBX_CHANGE_DONE (fleet.h), sbx_broker_take_reply gives the
 * reply and frees it (or sbx_change_abandon, when the client left).
 * NULL when the reply is there now. */
struct sbx_change *sbx_broker_handle(struct sbx_broker *b, struct sbx_caller *caller,
				     const uint8_t *frame, size_t n, sbx_msg *reply,
				     uint64_t *wait_seq);
void sbx_broker_take_reply(struct sbx_change *ch, sbx_msg *reply, uint64_t *wait_seq);

/* The reply to a frame that failed validation. */
void sbx_broker_malformed(sbx_msg *reply, const char *why);

/* ---- replies ------------------------------------------------------------ */

/* Replace the reply with a refusal (status != SBX_ST_OK) and its message. */
void sbx_reply_fail(struct sbx_call *c, uint32_t status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Start a success reply with msg (may be NULL); the op's fields follow. */
void sbx_reply_ok(struct sbx_call *c, const char *msg);
void sbx_reply_okf(struct sbx_call *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* A decision's outcome (0 or -SBX_ST_* from sbx_broker_approve/_end): the
 * refusal, or the request as it is now. */
void sbx_reply_decision(struct sbx_broker *b, struct sbx_call *c, int rc, const char *why);
/* The request r as a REQUEST record (with who may approve it while it is
 * pending). */
void sbx_reply_put_req(struct sbx_broker *b, sbx_msg *m, const struct sbx_req *r);
/* The same with the latest sudo commands run under it (STATUS). */
void sbx_reply_put_req_commands(struct sbx_broker *b, sbx_msg *m, const struct sbx_req *r);
/* A success reply carrying r, with msg (may be NULL). */
void sbx_reply_req(struct sbx_broker *b, struct sbx_call *c, const struct sbx_req *r,
		   const char *msg);
/* Refuse with SBX_ST_UNAVAILABLE when the broker cannot record changes.
 * true when it did. */
bool sbx_reply_if_degraded(struct sbx_broker *b, struct sbx_call *c);

/* ---- the handlers (for the table in dispatch.c) ------------------------- */

/* ops_self.c */
void sbx_op_check(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_explain(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_ping(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_request(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_list(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_status(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_cancel_drop(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_roles(struct sbx_broker *b, struct sbx_call *c);
/* ops_decision.c */
void sbx_op_pending(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_approve(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_deny_revoke(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_grants(struct sbx_broker *b, struct sbx_call *c);
/* sessions.c */
void sbx_op_session_open(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_session_close(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_sessions(struct sbx_broker *b, struct sbx_call *c);
/* api/ops_token.c */
void sbx_op_token_create(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_token_list(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_token_revoke(struct sbx_broker *b, struct sbx_call *c);
/* grouptable.c */
void sbx_op_group(struct sbx_broker *b, struct sbx_call *c);
/* commands.c */
void sbx_op_sudo_check(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_sudo_run(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_sudo_refused(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_sudo_exited(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_sudo_spooled(struct sbx_broker *b, struct sbx_call *c);

#endif
