/*
 * The broker core: the one struct every part of sbx-brokerd works on, and
 * the few functions through which anything changes.
 *
 * Every change goes through sbx_broker_record(): journal first, then
 * memory (sbx_state_apply, the function replay uses too), then each
 * feature's hook, called by name in broker.c.  A reply that acknowledges a
 * change is sent only once the journal says the record is durable (the
 * server holds it until then).  Approvals, denials and revocations from
 * every channel (the socket, Slack) go through sbx_broker_approve and
 * sbx_broker_end, so no rule exists twice.
 *
 * Threads: the event-loop thread owns everything here.  The features that
 * have a thread of their own (the directory's worker, the journal's
 * writer) never touch it; they hand results to the loop.
 *
 * Errors: functions return 0 or a negative code and say why in an
 * explicit buffer; the decisions return 0 or -SBX_ST_* (the status the
 * reply carries).
 */
#ifndef SBX_BROKER_H
#define SBX_BROKER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"
#include "policy.h"
#include "sbx_proto.h"
#include "state.h"

struct sbx_limits;
struct sbx_sessions;
struct sbx_grouptable;
struct sbx_directory;
struct sbx_slack;
struct sbx_fleet;
struct sbx_sealing;
struct sbx_drift;
struct sbx_reviews;
struct sbx_tokens;
struct sbx_api;
struct sbx_evidence;
struct sbx_commands;

#define SBX_SYSTEM_ACTOR "sbx"

struct sbx_broker {
	/* The RBAC policy in force: replaced whole by a reload or a
	 * directory refresh (so never keep a pointer into it across a loop
	 * pass), and the file's other sections. */
	struct sbx_policy *policy;
	struct sbx_settings settings;
	char *config_path;
	/* broker.socket and broker.state_dir as the file says (the running
	 * values, in policy->broker, may come from --socket/--state-dir) */
	char *file_socket;
	char *file_state_dir;
	/* --host: this host's name whatever the file says */
	char *host_override;
	struct sbx_state *state;
	struct sbx_journal *journal;
	/* Non-empty once the journal failed: changes are refused, checks
	 * keep being answered from memory. */
	char degraded[512];
	/* The start-up replay is running: features rebuild their own tables
	 * from the records (sbx_broker_replay_record). */
	bool replaying;
	/* What each local user may hold and do (user_limits.h). */
	struct sbx_limits *limits;
	/* The features, all built in; each owns its struct (NULL when not
	 * started). */
	struct sbx_sessions *sessions;
	struct sbx_grouptable *grouptable;
	struct sbx_directory *directory;
	struct sbx_slack *slack;
	/* Permission drift on this host (drift.h). */
	struct sbx_drift *drift;
	/* Personal API tokens and the HTTP API (api/api.h). */
	struct sbx_tokens *tokens;
	struct sbx_api *api;
	/* While a channel other than the socket acts (the API), fields every
	 * record gets ({"via":"api","token":...}); NULL otherwise. */
	json_t *record_extra;
	/* sudo commands (commands.h), made on first use. */
	struct sbx_commands *commands;
	/* A channel other than the socket (the API) holds a reply for the
	 * journal: commit at the end of this pass, not after the group
	 * commit's delay (server.c). */
	bool commit_now;
	/* Forward-secure sealing of the journal (sealing.h). */
	struct sbx_sealing *sealing;
	/* The policy's alert rules and their windows (alerts.h). */
	struct sbx_alerts *alerts;
	/* Access reviews: decisions, deadlines, overrides (reviews.h). */
	struct sbx_reviews *reviews;
	/* The live record stream, TAIL (tail.h); made by the first record. */
	struct sbx_tail *tail;
	/* Records and seals off the host: syslog, the checkpoint collector
	 * (evidence.h). */
	struct sbx_evidence *evidence;
	/* The fleet (fleet.h), NULL without a fleet: section; and where
	 * this host's copy of the fleet's log stands: the seq and hash of the
	 * last fleet record in the journal (kept by the replay too). */
	struct sbx_fleet *fleet;
	uint64_t fleet_seq;
	char fleet_hash[65];
	/* request.* and grant.* records the journal holds that were made
	 * without a fleet: such a history cannot join one. */
	uint64_t local_changes;
};

/* ---- life cycle ---------------------------------------------------------- */

/* Start a broker whose policy, settings and config_path are set: open the
 * journal under policy->broker.state_dir (creating the directory), replay
 * it, record broker.started and policy.loaded, start the features (the
 * directory first: the others see the people it brings) and end what
 * expired while the broker was down.  0, or -1 with why (already logged
 * where the cause is). */
int sbx_broker_start(struct sbx_broker *b, char *why, size_t whylen);

/* A clean stop: record broker.stopped, flush, and write a snapshot if
 * one can be written within 0.5 s (a running snapshot child gets that
 * time first; whatever is still running then is killed). */
void sbx_broker_shutdown(struct sbx_broker *b);

/* Free the features, the journal, the state and the policy (any of them
 * may be missing). */
void sbx_broker_free(struct sbx_broker *b);

/* SIGHUP: read the policy file again.  A file with errors keeps the old
 * policy and records policy.rejected with the reasons; a good one is
 * recorded as policy.loaded and the features follow it.  socket and
 * state_dir keep their values (changing them needs a restart). */
void sbx_broker_reload(struct sbx_broker *b);

/* Once per event-loop pass, after the pass's requests: end grants and
 * requests whose time has come, then run the features' timers (the grant
 * table is brought up to date last, before the journal commit that
 * releases the replies).  now is the wall clock in seconds. */
void sbx_broker_timers(struct sbx_broker *b, int64_t now);

/* End grants and requests whose deadline is <= now (in a fleet: queue
 * that as a change).  Returns how many it ended here and now. */
size_t sbx_broker_expire(struct sbx_broker *b, int64_t now);

/* The earliest deadline the loop should wake up for, or INT64_MAX when
 * nothing can be ended now (degraded, or the fleet holds it). */
int64_t sbx_broker_next_deadline(const struct sbx_broker *b);

/* ---- recording ------------------------------------------------------------ */

/* Everything recorded between begin and end (they nest) is one atomic
 * unit in the journal: a crash keeps all of it or none (journal.h). */
void sbx_broker_op_begin(struct sbx_broker *b);
void sbx_broker_op_end(struct sbx_broker *b);

/* Journal a record and apply it to memory, then show it to the features.
 * fields is stolen (may be NULL).  0 and the seq, or -EROFS when the
 * broker cannot record (b->degraded says why). */
int sbx_broker_record(struct sbx_broker *b, const char *event, const char *actor,
		      json_t *fields, uint64_t *seq);

/* Put text into a record's fields under key: as it is when it is valid
 * UTF-8, else sanitized ('?' for what is not); never dropped without a
 * trace.  NULL text puts nothing. */
void sbx_rec_str(json_t *fields, const char *key, const char *text);

/* Record policy.loaded for the current policy (in a fleet: once the
 * fleet's log can take it). */
int sbx_broker_record_policy(struct sbx_broker *b, uint64_t *seq);
/* policy.loaded's fields for the current policy (a new object). */
json_t *sbx_broker_policy_fields(const struct sbx_broker *b);

/* A fleet record, checked and next in the log's order (fleet.c): applied
 * to memory, copied into the local journal with fleet_seq and fleet_hash,
 * shown to the features.  0, or -1 with why: memory refused it (the
 * fleet's history contradicts this host's: nothing was written), or the
 * journal failed (the broker is degraded). */
int sbx_broker_apply_fleet(struct sbx_broker *b, const json_t *rec, uint64_t fleet_seq,
			   const char *fleet_hash, char *why, size_t whylen);

/* Can the broker record changes now?  false with the reason in why (may
 * be NULL): the journal failed, or the fleet's log cannot be written. */
bool sbx_broker_can_change(const struct sbx_broker *b, char *why, size_t whylen);

/* End the grants and requests whose deadline is <= now, at most max of
 * them (the fleet's batches have room for only so many).  Returns how
 * many it ended. */
size_t sbx_broker_end_due(struct sbx_broker *b, int64_t now, size_t max);

/* In a fleet, push the revocations made on this host alone while the
 * log was away (grant.revoked_here) as the fleet's grant.revoked; ids,
 * n: the grants.  Returns how many it recorded. */
size_t sbx_broker_push_revoked_here(struct sbx_broker *b, const uint32_t *ids, size_t n);

/* The journal failed: remember why, and rebuild memory from what is known
 * to be on disk, so nothing unrecorded is ever acted on. */
void sbx_broker_degrade(struct sbx_broker *b);

/* The one sentence for "the broker cannot record changes now", with the
 * reason, for every reply and log line that needs it.  Returns why. */
const char *sbx_broker_unavailable(const struct sbx_broker *b, char *why, size_t whylen);

/* Why request id (forgotten: sbx_state_forgotten) cannot be shown or
 * decided, and where its history is. */
const char *sbx_broker_forgotten(const struct sbx_broker *b, uint32_t id, char *why,
				 size_t whylen);

/* The one sentence for a change that was applied but never reached the
 * disk: its requester is told it did not happen.  Returns why. */
const char *sbx_broker_not_recorded(const struct sbx_broker *b, char *why, size_t whylen);

/* Replay callbacks for sbx_journal_open/reload (ctx = struct sbx_broker *). */
int sbx_broker_replay_record(const json_t *rec, void *ctx, char *err, size_t errlen);
int sbx_broker_replay_snapshot(const json_t *entry, void *ctx, char *err, size_t errlen);
/* The snapshot's writer (sbx_snapshot_write_fn, ctx = struct sbx_broker *):
 * the state's entries, then each feature's part. */
int sbx_broker_snapshot_state(struct sbx_snapshot_out *out, void *ctx);

/* ---- decisions, for every channel --------------------------------------- */

/* A user has at most SBX_OPEN_MAX / 2 open requests and grants, which
 * bounds the work on the check path. */
#define SBX_OPEN_MAX 64

/* A request as filed: the person it is for (through: the unix account that
 * spoke for them, or NULL), the role (NULL or "" when it extends a grant:
 * the grant's role), duration 0 for the role's default. */
struct sbx_request {
	const char *person;
	const char *through;
	const char *role;
	int64_t duration;
	const char *reason;
	const char *ticket;
	uint32_t extends;
};

/* File a request: checked against the policy (eligibility, host,
 * duration, reason, ticket) and the state (no duplicate, not too many
 * open), recorded as request.created, and activated at once for a role
 * that approves itself.  Returns 0 with the new id and "granted" or
 * "pending approval" in why, or -SBX_ST_* with the refusal. */
int sbx_broker_request(struct sbx_broker *b, const struct sbx_request *q, uint32_t *id,
		       uint64_t *wait_seq, char *why, size_t whylen);

/* APPROVE: person (through: the unix account that spoke for them, or NULL)
 * approves request id; duration 0 keeps the requested one; extra (stolen,
 * may be NULL) adds fields to the record, e.g. {"via":"slack"}.  Returns 0
 * with a short success text in why, or -SBX_ST_* with the refusal. */
int sbx_broker_approve(struct sbx_broker *b, uint32_t id, const char *person,
		       const char *through, const char *comment, int64_t duration, json_t *extra,
		       uint64_t *wait_seq, char *why, size_t whylen);

/* DENY (deny) or REVOKE: end a pending request or a live grant.  admin:
 * the person may end what they could not approve.  As above. */
int sbx_broker_end(struct sbx_broker *b, uint32_t id, bool deny, const char *person,
		   const char *through, bool admin, const char *reason, json_t *extra,
		   uint64_t *wait_seq, char *why, size_t whylen);

/* May person (admin: with admin rights) see request r?  Its owner, the
 * people who may decide it and admins may; to anyone else it does not
 * exist, so that nobody learns owners, roles or approvers by walking ids. */
bool sbx_broker_may_see(const struct sbx_broker *b, const struct sbx_req *r, const char *person,
			bool admin);

/* May person decide (approve, deny) request r?  why says why not, or on
 * what ground. */
bool sbx_broker_may_decide(const struct sbx_broker *b, const struct sbx_req *r,
			   const char *person, char *why, size_t whylen);

/* The login decision of CHECK, shared with EXPLAIN and sessions
 * (login.c). */
struct sbx_decision {
	bool allowed;
	char message[1024];
	const char *role; /* role it rests on, or NULL (points into the policy) */
	uint32_t grant;   /* grant it rests on, or 0 */
	const char *via;  /* "standing", "grant" */
};
void sbx_broker_decide(struct sbx_broker *b, const char *user, int64_t now,
		       struct sbx_decision *d);

/* The live grant of user that lasts longest (login_only: only of roles
 * that apply to this host), or NULL. */
const struct sbx_req *sbx_broker_live_grant(const struct sbx_broker *b, const char *user,
					    int64_t now, bool login_only);

#endif
