/*
 * What the broker does for each protocol op, and on its own when a grant
 * expires or a request lapses.  Every state change goes through
 * sbx_broker_record(): journal first, then memory, the same record both
 * times.  A reply that acknowledges a change is sent only once the journal
 * says the record is durable (the server holds it until then).
 */
#ifndef SBX_OPS_H
#define SBX_OPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "frame.h"
#include "identity.h"
#include "journal.h"
#include "policy.h"
#include "state.h"

struct sbx_broker;

/* Extension points.  Features that live in their own files (sessions,
 * the NSS group table, the directory, Slack) plug in here instead of
 * editing ops.c or server.c: */

/* An op that ops.c does not handle itself.  The frame is validated; the
 * handler parses its own fields and fills reply (and *wait_seq for a
 * change that must be durable before the reply goes out). */
typedef void (*sbx_op_fn)(struct sbx_broker *b, struct sbx_caller *c, const uint8_t *frame,
			  size_t n, sbx_msg *reply, uint64_t *wait_seq);
/* Called after every record is journaled and applied (live only, never
 * during replay), e.g. to end sessions when a grant ends. */
typedef void (*sbx_record_fn)(struct sbx_broker *b, const json_t *rec, void *ctx);
/* Called once per event-loop pass with the wall clock (for timers). */
typedef void (*sbx_tick_fn)(struct sbx_broker *b, int64_t now_us, void *ctx);
/* Called when a watched fd is ready (events as epoll reports them). */
typedef void (*sbx_fd_fn)(struct sbx_broker *b, int fd, uint32_t events, void *ctx);
/* Called after a policy reload succeeded (the new policy is b->policy). */
typedef void (*sbx_reload_fn)(struct sbx_broker *b, void *ctx);

/* Persistent feature state (e.g. open sessions, undelivered Slack
 * messages) lives in the journal like everything else.  At start-up each
 * replayed record is also shown to on_replay (after the snapshot's part
 * for the feature was given to load); snapshots carry save()'s JSON under
 * "ext".NAME.  Register before the journal is opened (FEATURE-PREINIT in
 * main.c).  After a journal failure memory is rebuilt for requests and
 * grants only: features keep what they have. */
typedef void (*sbx_replay_obs_fn)(struct sbx_broker *b, const json_t *rec, void *ctx);
typedef json_t *(*sbx_snap_save_fn)(struct sbx_broker *b, void *ctx);
typedef int (*sbx_snap_load_fn)(struct sbx_broker *b, const json_t *saved, void *ctx);

#define SBX_MAX_EXT 16

struct sbx_ext_op { uint16_t op; sbx_op_fn fn; };
struct sbx_ext_record { sbx_record_fn fn; void *ctx; };
struct sbx_ext_tick { sbx_tick_fn fn; void *ctx; int64_t interval_ms; };
struct sbx_ext_fd { int fd; uint32_t events; sbx_fd_fn fn; void *ctx; };
struct sbx_ext_reload { sbx_reload_fn fn; void *ctx; };
struct sbx_ext_persist {
	const char *name;
	sbx_replay_obs_fn on_replay;
	sbx_snap_save_fn save;
	sbx_snap_load_fn load;
	void *ctx;
};

struct sbx_broker {
	struct sbx_policy *policy;
	char *config_path;
	struct sbx_state *state;
	struct sbx_journal *journal;
	/* broker.socket and broker.state_dir as the file says (the running
	 * values may come from --socket/--state-dir) */
	char *file_socket;
	char *file_state_dir;
	/* Non-empty once the journal failed: changes are refused, checks
	 * keep being answered from memory. */
	char degraded[512];

	/* extensions (see above); registered by main() before the loop runs */
	struct sbx_ext_op ext_ops[SBX_MAX_EXT];
	size_t n_ext_ops;
	struct sbx_ext_record ext_records[SBX_MAX_EXT];
	size_t n_ext_records;
	struct sbx_ext_tick ext_ticks[SBX_MAX_EXT];
	size_t n_ext_ticks;
	struct sbx_ext_fd ext_fds[SBX_MAX_EXT];
	size_t n_ext_fds;
	struct sbx_ext_reload ext_reloads[SBX_MAX_EXT];
	size_t n_ext_reloads;
	struct sbx_ext_persist ext_persist[SBX_MAX_EXT];
	size_t n_ext_persist;
	bool initial_replay; /* sbx_journal_open is replaying: features see records */
	/* set by the server while it runs: lets sbx_broker_watch_fd add fds
	 * to the live event loop */
	int epoll_fd;
	/* When a user is not in the policy, a feature may know why (e.g. the
	 * directory is unreachable): it returns the sentence to give, or NULL. */
	const char *(*unknown_user_reason)(struct sbx_broker *b, const char *user);
	/* feature state, owned by the feature's own file */
	void *sessions;
	void *grouptable;
	void *directory;
	void *slack;
};

int sbx_broker_register_op(struct sbx_broker *b, uint16_t op, sbx_op_fn fn);
int sbx_broker_on_record(struct sbx_broker *b, sbx_record_fn fn, void *ctx);
/* interval_ms 0: every pass; else at most that often. */
int sbx_broker_on_tick(struct sbx_broker *b, sbx_tick_fn fn, void *ctx, int64_t interval_ms);
int sbx_broker_on_reload(struct sbx_broker *b, sbx_reload_fn fn, void *ctx);
int sbx_broker_persist(struct sbx_broker *b, const char *name, sbx_replay_obs_fn on_replay,
		       sbx_snap_save_fn save, sbx_snap_load_fn load, void *ctx);
/* Watch fd for events (EPOLLIN/EPOLLOUT) in the event loop; the fd stays
 * the caller's.  May be called before or while the loop runs. */
int sbx_broker_watch_fd(struct sbx_broker *b, int fd, uint32_t events, sbx_fd_fn fn, void *ctx);
int sbx_broker_unwatch_fd(struct sbx_broker *b, int fd);

/* The person a request acts for, with the same rules every op uses:
 * --as only for root and broker.admin_group, and then with the person's
 * rights.  On refusal fills reply and returns -1. */
struct sbx_who {
	const char *person;
	const char *through;  /* the unix account that spoke for them, or NULL */
	bool admin;
};
int sbx_broker_who(struct sbx_broker *b, struct sbx_caller *c, const char *as_user, uint16_t op,
		   struct sbx_who *w, sbx_msg *reply);

/* Handle one validated request frame.  Fills reply; *wait_seq is the seq
 * that must be durable before the reply may be sent (0: send now). */
void sbx_broker_handle(struct sbx_broker *b, struct sbx_caller *c,
		       const uint8_t *frame, size_t n, sbx_msg *reply, uint64_t *wait_seq);

/* Replace reply with an error reply (op | SBX_OP_REPLY, status, message). */
void sbx_broker_reply_error(sbx_msg *reply, uint16_t op, uint32_t status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The reply to a frame that failed validation. */
void sbx_broker_malformed(sbx_msg *reply, const char *why);

/* Journal a record and apply it to memory.  fields is stolen (may be NULL).
 * Returns 0 and the seq, or -1 when the broker cannot record (degraded). */
int sbx_broker_record(struct sbx_broker *b, const char *event, const char *actor,
		      json_t *fields, uint64_t *seq);

/* SIGHUP: read the policy file again.  A file with errors keeps the old
 * policy and records policy.rejected with the reasons; a good one is
 * recorded as policy.loaded.  socket and state_dir keep their values
 * (changing them needs a restart). */
void sbx_broker_reload(struct sbx_broker *b);

/* Record policy.loaded for the current policy. */
int sbx_broker_record_policy(struct sbx_broker *b, uint64_t *seq);

/* The decisions behind APPROVE, DENY and REVOKE, for every channel (the
 * socket ops, Slack).  person acts (through: the unix account that spoke
 * for them, or NULL); duration 0 keeps the requested one; extra (stolen,
 * may be NULL) adds fields to the record, e.g. {"via":"slack"}.  Returns
 * an SBX_ST_* status; why gets the refusal or a short success text.
 * admin: the person may end what they could not approve (sbx_broker_end). */
int sbx_broker_approve(struct sbx_broker *b, uint32_t id, const char *person,
		       const char *through, const char *comment, int64_t duration, json_t *extra,
		       uint64_t *wait_seq, char *why, size_t whylen);
int sbx_broker_end(struct sbx_broker *b, uint32_t id, bool deny, const char *person,
		   const char *through, bool admin, const char *reason, json_t *extra,
		   uint64_t *wait_seq, char *why, size_t whylen);

/* End grants and requests whose time has come.  Returns how many. */
size_t sbx_broker_tick(struct sbx_broker *b, int64_t now);

/* The journal failed: remember why, and rebuild memory from what is known
 * to be on disk, so nothing unrecorded is ever acted on. */
void sbx_broker_degrade(struct sbx_broker *b);

/* Replay callbacks for sbx_journal_open/reload (ctx = struct sbx_broker *). */
int sbx_broker_replay_record(const json_t *rec, void *ctx, char *err, size_t errlen);
int sbx_broker_replay_snapshot(const json_t *state, void *ctx, char *err, size_t errlen);
json_t *sbx_broker_snapshot_state(void *ctx);

/* The login decision of CHECK, shared with EXPLAIN. */
struct sbx_decision {
	bool allowed;
	char message[1024];
	const char *role; /* role it rests on, or NULL */
	uint32_t grant;   /* grant it rests on, or 0 */
	const char *via;  /* "standing", "grant" */
};
void sbx_broker_decide(struct sbx_broker *b, const char *user, int64_t now,
		       struct sbx_decision *d);

#endif
