/*
 * The journal: sbx's grant store and audit trail in one.  Append-only
 * JSON lines under <state_dir>/journal/, SHA-256 hash-chained, durable
 * before acknowledged.  docs/audit.md is the format's specification.
 *
 * Threading: one thread (the broker's event loop) calls everything here
 * except that a private writer thread does write()+fdatasync() in batches
 * (group commit) and reports progress through an eventfd.
 */
#ifndef SBX_JOURNAL_H
#define SBX_JOURNAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBX_JOURNAL_SEGMENT_MAX_DEFAULT (64u << 20)
#define SBX_JOURNAL_LINE_MAX (256u << 10)
/* How many of the newest records' hashes sbx_journal_recent_hash knows. */
#define SBX_JOURNAL_RECENT 4096u

struct sbx_journal;

struct sbx_journal_opts {
	const char *state_dir;
	size_t segment_max;     /* rotate when a segment passes this; 0 = default */
	uint64_t snapshot_every;/* sbx_journal_maybe_snapshot without force:
				 * records between snapshots; 0 = default 10000 */
};

/* What start-up found.  The broker turns these into events. */
struct sbx_replay_info {
	uint64_t records;       /* records passed to the callback */
	uint64_t last_seq;      /* 0 for an empty journal */
	bool used_snapshot;
	uint64_t snapshot_seq;
	bool truncated;         /* a torn tail was cut off */
	uint64_t truncated_bytes;
	char truncated_file[256];
	uint64_t records_cut;   /* complete records of an unfinished operation in it */
	char snapshot_note[256];/* why a snapshot was ignored, if one was */
	uint64_t snapshot_entries; /* entries handed to the snapshot callback */
	uint64_t checked_from;  /* the chain was checked from this seq on: 1, or
				 * the seal the snapshot names (docs/audit.md) */
};

/* Called for each record after the snapshot, in seq order.  rec is the
 * whole parsed record (seq, time, event, actor, fields...).  Return 0, or
 * -1 to abort the replay (the error text goes into err). */
typedef int (*sbx_replay_fn)(const json_t *rec, void *ctx, char *err, size_t errlen);
/* Called for each entry of the snapshot (a JSON object or array, as the
 * writer put it), in order, before any record.  Return 0, or -1 when the entry
 * makes no sense: the snapshot is then given up.  A snapshot given up
 * after some entries were handed over is followed by one call with entry
 * NULL: forget everything the snapshot brought; the replay then starts
 * from seq 1.  Entries may be handed over on a helper thread while the
 * caller's thread checks the chain, but never at the same time as any
 * other callback, and all of them before the first record. */
typedef int (*sbx_snapshot_fn)(const json_t *entry, void *ctx, char *err, size_t errlen);

/* Open (creating <state_dir>/journal with mode 0700 if needed), take an
 * exclusive lock (a second broker on the same state dir fails), replay
 * (snapshot first when one matches the chain, else from seq 1; the chain
 * itself is checked from the last seal the snapshot names, or from seq 1
 * without one), cut a torn tail, and start
 * the writer thread.  Returns 0, or -1 with err set: a broken chain says
 * "journal: record seq N: <what is wrong> (FILE:LINE)".  (Replaying only
 * up to a seq is sbx_journal_reload's job.) */
int sbx_journal_open(const struct sbx_journal_opts *o, sbx_snapshot_fn on_snapshot,
		     sbx_replay_fn on_record, void *ctx, struct sbx_replay_info *info,
		     struct sbx_journal **out, char *err, size_t errlen);

/* Re-read the journal from disk up to max_seq (snapshot allowed), calling
 * the callbacks as in open.  For rebuilding memory after a write failure.
 * max_seq is literal: 0 replays nothing, UINT64_MAX everything on disk; a
 * journal that ends before max_seq is an error.  Read-only: nothing is
 * cut, the writer is not touched. */
int sbx_journal_reload(struct sbx_journal *j, uint64_t max_seq, sbx_snapshot_fn on_snapshot,
		       sbx_replay_fn on_record, void *ctx, char *err, size_t errlen);

/* Append one record: the journal adds seq, time (now), prev and hash
 * around event, actor and the members of fields (in their order; fields may
 * be NULL; it is not stolen).  The record is queued for the writer; the
 * assigned seq goes to *seq.  If *rec_out is given it receives a new
 * reference to the complete record (as it will be replayed).
 * Returns 0, or -1 when the journal has failed (see sbx_journal_failed;
 * errno EIO).  Also -1, without failing the journal, for a bad call:
 * errno EINVAL for a field named seq, time, event, actor, prev or hash (or
 * text jansson cannot encode), E2BIG for a line over SBX_JOURNAL_LINE_MAX. */
int sbx_journal_append(struct sbx_journal *j, const char *event, const char *actor,
		       const json_t *fields, uint64_t *seq, json_t **rec_out);

/* The same with the record's time given (Unix microseconds; 0: now): for
 * a record that was decided elsewhere and is copied here, e.g. the
 * fleet's (docs/fleet.md). */
int sbx_journal_append_at(struct sbx_journal *j, int64_t time_us, const char *event,
			  const char *actor, const json_t *fields, uint64_t *seq, json_t **rec_out);

/* One operation, one atomic unit: the records appended between begin
 * and end (calls nest; the outermost pair counts) reach the disk
 * together, and a start-up replays all of them or none.  Every record
 * of an operation but its last carries "continued":true (the name is
 * reserved); a replay holds such records until the one that ends them,
 * and cuts an unfinished operation at the end of the journal like a torn
 * line (docs/audit.md).  An operation does not span segments, and the
 * writer waits while one is open: keep them to one change (flush inside
 * one fails with EDEADLK). */
void sbx_journal_op_begin(struct sbx_journal *j);
void sbx_journal_op_end(struct sbx_journal *j);

/* Group commit across a whole event-loop pass: with deferral on, appends
 * only queue, and the writer starts on sbx_journal_commit() (or a flush).
 * Off (the default), every append wakes the writer at once. */
void sbx_journal_defer_commits(struct sbx_journal *j, bool on);
void sbx_journal_commit(struct sbx_journal *j);

/* Highest seq known to be on disk (written and fdatasync'ed). */
uint64_t sbx_journal_durable_seq(const struct sbx_journal *j);
/* Highest seq assigned. */
uint64_t sbx_journal_last_seq(const struct sbx_journal *j);
/* The hash of that record (64 zeros for an empty journal): the chain
 * head a seal vouches for (seal.h).  Call from the appending thread. */
void sbx_journal_last_hash(struct sbx_journal *j, char hash[65]);

/* The hash the journal wrote for record seq, if it is one of the last
 * SBX_JOURNAL_RECENT appended in this run: the one on disk, also for the
 * records of an operation, which get theirs when it ends (before that,
 * the hash their rec_out carries).  For who sends records elsewhere with
 * their hashes (broker/evidence.c).  0, or -1 for a seq it does not hold.
 * Call from the appending thread. */
int sbx_journal_recent_hash(struct sbx_journal *j, uint64_t seq, char hash[65]);

/* An fd that becomes readable when durable_seq advances or the journal
 * fails.  Call sbx_journal_ack_event() after it fires. */
int sbx_journal_event_fd(const struct sbx_journal *j);
void sbx_journal_ack_event(struct sbx_journal *j);

/* True once a write, sync or segment creation failed.  From then on every
 * append fails (never retry fsync and carry on).  why gets e.g.
 * "write to journal/000000000001.jsonl failed: No space left on device". */
bool sbx_journal_failed(const struct sbx_journal *j, char *why, size_t whylen);

/* Block until everything appended is durable (or failed).  0 or -1. */
int sbx_journal_flush(struct sbx_journal *j);

/* ---- snapshots (docs/audit.md, "Snapshots") ----
 *
 * <state_dir>/snapshot.json: a header line (the last record the state
 * includes: seq, hash, segment, offset), one line per entry of the
 * caller's state, an end line with the number of entries.  It is written
 * by a child process: fork() gives the child the state as it is at that
 * instant (copy-on-write) while the caller goes on.  The child writes
 * snapshot.json.tmp and fsyncs it, waits until the journal says its seq
 * is durable, renames it over snapshot.json and fsyncs the state dir.
 * One child at a time; a failed one leaves the old snapshot, and never
 * fails the journal. */

struct sbx_snapshot_out;

/* Put one entry (a JSON object or array) into the snapshot: one line,
 * compact, ASCII.  0, or -1 (the snapshot is given up). */
int sbx_snapshot_put(struct sbx_snapshot_out *out, const json_t *entry);

/* Writes the caller's state with sbx_snapshot_put.  It runs in the child
 * process, where only the thread that forked exists: it may read memory
 * and allocate (glibc's malloc is reset for the child), but must not take
 * a lock another thread could have held, use stdio, or log.  0, or -1 to
 * give the snapshot up. */
typedef int (*sbx_snapshot_write_fn)(struct sbx_snapshot_out *out, void *ctx);

/* What the last snapshot written (or loaded at open) was. */
struct sbx_snapshot_stats {
	uint64_t seq;           /* 0: none */
	uint64_t entries;
	uint64_t bytes;         /* of the file; 0 when loaded */
	int64_t fork_us;        /* how long fork() held the caller */
	int64_t took_ms;        /* from fork to the child's exit */
};

/* Start a snapshot as of the last appended record, in a child process.
 * 1 started, 0 nothing to do (a child is running, or nothing was appended
 * since the last snapshot), -1 could not start (why: fork or socketpair
 * failed).  The event loop then watches sbx_journal_snapshot_fd and calls
 * sbx_journal_snapshot_poll. */
int sbx_journal_snapshot_start(struct sbx_journal *j, sbx_snapshot_write_fn write_state,
			       void *ctx, char *why, size_t whylen);

/* The running child's pidfd (readable once it has exited), or -1. */
int sbx_journal_snapshot_fd(const struct sbx_journal *j);
bool sbx_journal_snapshot_running(const struct sbx_journal *j);

/* Once per event-loop pass, and when the pidfd is readable: lets the
 * child name its file once its seq is durable (tells it to give up if the
 * journal failed first), and reaps it once it has exited.  0 nothing
 * finished, 1 a snapshot was put in place (stats updated), -1 the child
 * failed (why: what it could not do, or the signal that killed it). */
int sbx_journal_snapshot_poll(struct sbx_journal *j, char *why, size_t whylen);

/* Wait at most timeout_ms (< 0: as long as it takes) for the running
 * child, flushing so that it may finish; past that it is cancelled.
 * The same results as poll (0 when no child was running). */
int sbx_journal_snapshot_wait(struct sbx_journal *j, int timeout_ms, char *why, size_t whylen);

/* Kill the running child (SIGKILL), reap it and remove its temporary
 * file: the previous snapshot stays. */
void sbx_journal_snapshot_cancel(struct sbx_journal *j);

/* How long the running child has been at it (ms; -1: none), and SIGKILL
 * for one that is stuck, without waiting: sbx_journal_snapshot_poll reaps
 * it as any other (its report: killed by signal 9).  true when the signal
 * was sent now (false: no child, or it was already sent). */
int64_t sbx_journal_snapshot_age_ms(const struct sbx_journal *j);
bool sbx_journal_snapshot_kill(struct sbx_journal *j);

void sbx_journal_snapshot_last(struct sbx_journal *j, struct sbx_snapshot_stats *st);

/* Write a snapshot now and wait for it (tools, tests): nothing when
 * fewer than snapshot_every records passed since the last one unless
 * force.  0 written or nothing to do, -1 failed (the journal itself is
 * not failed by that). */
int sbx_journal_maybe_snapshot(struct sbx_journal *j, sbx_snapshot_write_fn write_state,
			       void *ctx, bool force);

/* Stop the writer (after flushing), cancel a snapshot child, and free. */
void sbx_journal_close(struct sbx_journal *j);

/* ---- retention (docs/audit.md, "Retention"; journal_prune.c) ----
 *
 * Whole old segments go, oldest first, once every record in them is older
 * than a cut-off, and only those wholly before the seal the snapshot on
 * disk names: start-up begins at that seal, so it never needs them, and
 * everything in them is sealed.  The removal is recorded first: the
 * caller appends a journal.pruned record with sbx_prune_fields (and seals
 * it), then sbx_journal_prune_apply removes the files. */

#define SBX_PRUNE_MAX_FILES 64
#define SBX_PRUNE_NAME_MAX 32

struct sbx_prune_plan {
	uint64_t first_seq, last_seq;   /* the records the segments hold */
	char last_hash[65];             /* record last_seq's hash */
	int64_t last_time_us;           /* its time */
	size_t nfiles;
	char files[SBX_PRUNE_MAX_FILES][SBX_PRUNE_NAME_MAX];
};

/* Which segments may go: those whose last record is before before_us (Unix
 * microseconds).  1 with plan filled, 0 nothing to prune, -1 with err. */
int sbx_journal_prune_plan(struct sbx_journal *j, int64_t before_us, struct sbx_prune_plan *plan,
			   char *err, size_t errlen);
/* The journal.pruned record's fields: first_seq, last_seq, last_hash,
 * files, before (the cut-off, RFC 3339).  NULL when out of memory. */
json_t *sbx_prune_fields(const struct sbx_prune_plan *plan, int64_t before_us);
/* Remove the plan's files (after its record is durable) and sync the
 * directory.  0, or -1 with err (a file already gone is no error). */
int sbx_journal_prune_apply(struct sbx_journal *j, const struct sbx_prune_plan *plan, char *err,
			    size_t errlen);

/* Offline check of a whole journal (no lock, read-only, ignores the
 * snapshot).  Returns 0 when intact: *count records, chain unbroken, seq
 * contiguous from 1, every line well-formed.  Otherwise -1 with *bad_seq =
 * the first bad record's seq (or the seq it should have had) and err saying
 * what and where.  A torn final line is reported as bad too (verify is for
 * auditors; only the broker repairs). */
int sbx_journal_verify(const char *state_dir, uint64_t *count, uint64_t *bad_seq,
		       char *err, size_t errlen);

/* Iterate over every record offline, in order (read-only, no chain check),
 * for audit queries.  fn returns 0 to go on, 1 to stop, -1 on error. */
int sbx_journal_foreach(const char *state_dir,
			int (*fn)(const json_t *rec, const char *line, size_t linelen, void *ctx),
			void *ctx, char *err, size_t errlen);

/* ---- one record by itself (for the fleet's log, which keeps the same
 * lines in PostgreSQL) ---- */

/* The hash of the record before the first one: 64 zeros. */
#define SBX_RECORD_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* Make the line of a record exactly as sbx_journal_append would write it
 * with this seq, time (Unix microseconds) and prev (64 hex).  *line is
 * malloc'd, NUL-terminated, without '\n'; hash gets its hash.  0, or -1
 * with errno EINVAL (a bad argument or a reserved field name), E2BIG (over
 * SBX_JOURNAL_LINE_MAX) or ENOMEM. */
int sbx_record_make(uint64_t seq, int64_t time_us, const char *event, const char *actor,
		    const json_t *fields, const char *prev, char **line, size_t *len,
		    char hash[65]);

/* Check one line (without '\n') as the journal checks its own: its
 * shape, that it is record seq, that its prev is prev (NULL: any), and
 * that its hash is what its bytes hash to.  0 with its hash in hash and,
 * when rec is given, the parsed record in *rec; or -1 with err saying
 * "record seq N: what is wrong". */
int sbx_record_check(const char *line, size_t len, uint64_t seq, const char *prev,
		     char hash[65], json_t **rec, char *err, size_t errlen);

#endif
