/*
 * The broker's memory: the open requests and live grants, and the
 * latest ended ones (sbx_state_keep_ended), rebuilt at start-up from the
 * journal.  Changes reach it only through
 * sbx_state_apply(), with the same journal record whether it was just
 * written or is being replayed, so what replay rebuilds is exactly what
 * the running broker had.
 */
#ifndef SBX_STATE_H
#define SBX_STATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum sbx_req_state {
	SBX_REQ_PENDING = 0,
	SBX_REQ_ACTIVE,
	SBX_REQ_EXPIRED,
	SBX_REQ_REVOKED,
	SBX_REQ_DENIED,
	SBX_REQ_CANCELLED,
	SBX_REQ_LAPSED,
};

const char *sbx_req_state_name(enum sbx_req_state s);

struct sbx_approval {
	char *who;       /* the person who approved */
	char *through;   /* the unix account that acted for them, or NULL */
	char *comment;
	int64_t at;
};

/* A request; once approved the same object is the grant. */
struct sbx_req {
	uint32_t id;
	enum sbx_req_state state;
	char *user;
	char *role;
	char *reason;
	char *ticket;
	char *actor;        /* who filed it (== user, or an admin's --as) */
	char *through;      /* unix account that filed it for actor, or NULL */
	uint32_t extends;   /* grant this request extends, 0 for none */
	int64_t duration;   /* seconds the grant will last once active */
	unsigned approvals_needed;
	struct sbx_approval *approvals;
	size_t n_approvals;
	int64_t created_at;
	int64_t lapses_at;  /* pending only */
	int64_t activated_at;
	int64_t expires_at;
	int64_t ended_at;
	char *unix_group;   /* group the grant brings, or NULL */
	uint32_t gid;
	char *ended_by;
	char *end_reason;
	/* Revoked on this host alone while the fleet's log was away
	 * (grant.revoked_here, docs/fleet.md): no longer live here, still
	 * active in the fleet's state until its grant.revoked comes back. */
	bool revoked_here;
};

struct sbx_state;

struct sbx_state *sbx_state_new(void);
void sbx_state_free(struct sbx_state *s);

/* Apply one journal record (live or replayed).  Unknown events and events
 * that change nothing (broker.started, access.checked...) are accepted.
 * Returns 0, or -1 with err set when the record contradicts the state
 * (e.g. approval of an unknown request): replay stops on that. */
int sbx_state_apply(struct sbx_state *s, const json_t *rec, char *err, size_t errlen);

/* Trial changes, for the fleet's optimistic appends: after
 * sbx_state_trial_begin, sbx_state_apply remembers what each record
 * changes, and sbx_state_trial_undo puts everything back as it was at
 * begin (so an operation can be validated against the state with its own
 * records, which the fleet's log may still refuse).  A trial cannot nest.
 * 0, or -1 (one is already running). */
int sbx_state_trial_begin(struct sbx_state *s);
void sbx_state_trial_undo(struct sbx_state *s);

/* Snapshots (docs/audit.md): the state as a stream of entries, in the
 * order they must be loaded: a head {"version":2,"requests":N,"fields":[...]}
 * (an object), then every request by id (an array of those fields).  put takes each
 * entry (borrowed) and returns 0 or -1; sbx_state_snapshot returns 0, or
 * -1 when put or memory failed.  It only reads the state (it runs in the
 * snapshot's child process). */
typedef int (*sbx_state_put_fn)(void *out, const json_t *entry);
int sbx_state_snapshot(const struct sbx_state *s, sbx_state_put_fn put, void *out);
/* Load one entry, in the order they were put.  entry NULL empties the
 * state (a snapshot given up halfway).  0, or -1 with err. */
int sbx_state_from_json(struct sbx_state *s, const json_t *entry, char *err, size_t errlen);

/* How many ended requests stay in memory (the latest to end); older
 * ones are forgotten, their records stay in the journal.  Default
 * SBX_STATE_KEEP_ENDED_DEFAULT (policy: broker.keep_ended). */
#define SBX_STATE_KEEP_ENDED_DEFAULT 10000u
void sbx_state_keep_ended(struct sbx_state *s, size_t n);
/* id was a request but has left memory (it ended long ago). */
bool sbx_state_forgotten(const struct sbx_state *s, uint32_t id);

/* NULL for an id never given, or forgotten. */
struct sbx_req *sbx_state_get(const struct sbx_state *s, uint32_t id);
uint32_t sbx_state_next_id(const struct sbx_state *s);
size_t sbx_state_count(const struct sbx_state *s);
/* Every request, by id (index 0 .. count-1); NULL where forgotten. */
struct sbx_req *sbx_state_at(const struct sbx_state *s, size_t i);

/* Every open request (pending or active; not time-checked), index 0 ..
 * sbx_state_open_count() - 1, in no useful order: what is live costs the
 * same to go through however long the history is.  Any change to the
 * state may reorder them. */
size_t sbx_state_open_count(const struct sbx_state *s);
struct sbx_req *sbx_state_open_at(const struct sbx_state *s, size_t i);

/* Active grants and pending requests of one user (not time-checked). */
size_t sbx_state_user_open(const struct sbx_state *s, const char *user,
			   struct sbx_req **out, size_t max);

/* The earliest time (seconds) at which a grant expires or a request
 * lapses, or INT64_MAX. */
int64_t sbx_state_next_deadline(const struct sbx_state *s);

/* Requests whose deadline is <= now, to be ended by the caller through the
 * journal.  Returns how many were put in out. */
size_t sbx_state_due(const struct sbx_state *s, int64_t now, struct sbx_req **out, size_t max);

/* A grant that counts right now: state active, not yet expired, not
 * revoked on this host. */
static inline bool sbx_req_live(const struct sbx_req *r, int64_t now)
{
	return r->state == SBX_REQ_ACTIVE && !r->revoked_here && r->expires_at > now;
}

#endif
