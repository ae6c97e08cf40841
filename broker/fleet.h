/*
 * The fleet (docs/fleet.md): many brokers share one request/grant history,
 * an ordered, hash-chained log in PostgreSQL (fleet/pgstore.h), and each
 * still decides logins alone, from its own copy.
 *
 * Fleet records (request.*, grant.* but grant.revoked_here, policy.loaded)
 * reach memory only from the log, in its order, through
 * sbx_broker_apply_fleet(), which also copies each into the local journal
 * with its fleet_seq and fleet_hash.  A change (a request, an approval, an
 * expiry...) is a struct sbx_change: the fleet runs it in a state trial
 * (state.h) against what it has applied, collects the records it makes,
 * takes the trial back, and appends the records to the log at the next
 * seqs in one transaction.  When another broker got those seqs first, it
 * applies what is new and runs the change again (a bounded number of
 * times); when the log takes the records, they are applied like anyone
 * else's and the change is done.  When the database cannot be reached, a
 * change runs once outside a trial: its refusal names the database, and a
 * revocation is made on this host alone (grant.revoked_here) and pushed to
 * the log once it is back.
 *
 * Threads: the event loop owns everything here but two workers, each with
 * its own database connection: the appender (one batch at a time) and the
 * listener (LISTEN/NOTIFY with a 1 s poll, the catch-up, the periodic full
 * check of the log, and this host's report).  They hand their results to
 * the loop through sbx_fleet_fd().
 */
#ifndef SBX_FLEET_H
#define SBX_FLEET_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbx_broker;

enum sbx_change_state {
	SBX_CHANGE_QUEUED = 0,
	SBX_CHANGE_TRYING,      /* its records are on their way to the log */
	SBX_CHANGE_DONE,        /* its outcome is final (the owner may reply) */
};

/* One change on its way through the fleet.  Owners embed it first in
 * their own struct. */
struct sbx_change {
	/* Decide and record, through sbx_broker_* as always, and keep the
	 * outcome (the reply) in the owner's struct, replacing any earlier
	 * one: run may be called several times.  *local_seq: a local journal
	 * record the outcome rests on (0 for none). */
	void (*run)(struct sbx_broker *b, struct sbx_change *ch, uint64_t *local_seq);
	/* The fleet gives up on it (the log was too busy): make the outcome
	 * this refusal instead.  May be NULL. */
	void (*refuse)(struct sbx_broker *b, struct sbx_change *ch, const char *why);
	/* Free the owner's struct. */
	void (*free)(struct sbx_change *ch);
	/* The fleet's: */
	enum sbx_change_state state;
	uint64_t wait_seq;      /* DONE: reply once this local seq is durable */
	unsigned tries;
	int64_t first_try_ms;   /* monotonic */
	bool abandoned;         /* the owner left; free it once done */
	struct sbx_change *next;
};

/* ---- life ----------------------------------------------------------------- */

/* After the journal's replay: check that the local history can join the
 * fleet, connect (within fleet.timeout; a database that cannot be reached
 * now is not fatal, one that answers with no sbx schema or another
 * version is), and start the workers.  0, or -1 with why. */
int sbx_fleet_start(struct sbx_broker *b, char *why, size_t whylen);
/* Stop the workers and free; changes still queued are refused. */
void sbx_fleet_free(struct sbx_broker *b);

/* The fd that becomes readable when a worker has something for the loop
 * (-1 without a fleet), and what the loop does then. */
int sbx_fleet_fd(const struct sbx_broker *b);
void sbx_fleet_on_ready(struct sbx_broker *b);
/* Every loop pass: start the next batch, push revocations made here,
 * notice a stale copy. */
void sbx_fleet_tick(struct sbx_broker *b);

/* ---- changes -------------------------------------------------------------- */

/* Is this event a fleet record (in fleet mode)? */
bool sbx_fleet_event(const char *event);

/* Queue a change.  Its outcome comes at a later loop pass (state DONE);
 * the owner either takes it or calls sbx_change_abandon. */
void sbx_fleet_submit(struct sbx_broker *b, struct sbx_change *ch);
/* The owner no longer wants the outcome: freed now if done, else when it
 * is (the change itself still happens or fails). */
void sbx_change_abandon(struct sbx_change *ch);

/* Called by sbx_broker_record for a fleet event: inside a change's trial,
 * make the record (with this host's name), apply it to memory and add it
 * to the batch; *rec gets it (a new reference).  -EROFS outside a trial,
 * -E2BIG when the batch is full, -ENOMEM, -EINVAL (memory refused it). */
int sbx_fleet_propose(struct sbx_broker *b, const char *event, const char *actor,
		      const json_t *fields, json_t **rec);
/* Records a change may still add to the current batch. */
size_t sbx_fleet_room(const struct sbx_broker *b);

/* May fleet records be appended now?  false with the reason (naming the
 * database) when it is unreachable, its log is damaged or ends before
 * what this host applied, or its schema is unknown. */
bool sbx_fleet_writable(const struct sbx_broker *b, char *why, size_t whylen);
/* Is the fleet's log unusable for good (damaged, behind this host, an
 * unknown schema) until an admin repairs it and restarts the broker? */
bool sbx_fleet_blocked(const struct sbx_broker *b);
/* Was the last batch's fate unknown (the database went away after its
 * COMMIT was sent)?  Refusals then say it may have been recorded. */
bool sbx_fleet_outcome_unknown(const struct sbx_broker *b);

/* Hold the loop's deadline wake-ups: expiry is queued or cannot be
 * recorded now (the loop still wakes for the fleet's fd). */
bool sbx_fleet_hold_deadlines(const struct sbx_broker *b);

/* The policy changed (start-up, reload): record policy.loaded in the log
 * as soon as it can take it. */
void sbx_fleet_policy_changed(struct sbx_broker *b);

/* A grant was revoked on this host alone: push it when the log is back. */
void sbx_fleet_note_revoked_here(struct sbx_broker *b, uint32_t id);

/* ---- what it says about itself ------------------------------------------ */

struct sbx_fleet_status {
	bool on;
	bool writable;
	bool stale;
	uint64_t applied_seq;   /* the fleet seq this host's state is at */
	char text[768];         /* one line for sbxctl status */
};
void sbx_fleet_status(const struct sbx_broker *b, struct sbx_fleet_status *st);

#endif
