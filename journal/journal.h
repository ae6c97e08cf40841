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

struct sbx_journal;

struct sbx_journal_opts {
	const char *state_dir;
	size_t segment_max;     /* rotate when a segment passes this; 0 = default */
	uint64_t snapshot_every;/* records between snapshots; 0 = default 10000 */
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
};

/* Called for each record after the snapshot, in seq order.  rec is the
 * whole parsed record (seq, time, event, actor, fields...).  Return 0, or
 * -1 to abort the replay (the error text goes into err). */
typedef int (*sbx_replay_fn)(const json_t *rec, void *ctx, char *err, size_t errlen);
/* Called once with the snapshot's "state" object, before any record. */
typedef int (*sbx_snapshot_fn)(const json_t *state, void *ctx, char *err, size_t errlen);

/* Open (creating <state_dir>/journal with mode 0700 if needed), take an
 * exclusive lock (a second broker on the same state dir fails), replay
 * (snapshot first when one matches the chain, else from seq 1; the chain
 * itself is checked from seq 1 either way), cut a torn tail, and start
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

/* Write a snapshot of state (the broker's own JSON) as of the last
 * appended record, after flushing: tmp file, fsync, rename, fsync dir.
 * Cheap to call often; it does nothing when fewer than snapshot_every
 * records passed since the last one unless force.  make_state returns a
 * new reference (the journal releases it).  0, or -1 when the snapshot
 * could not be written (the journal itself is not failed by that). */
int sbx_journal_maybe_snapshot(struct sbx_journal *j, json_t *(*make_state)(void *ctx),
			       void *ctx, bool force);

/* Stop the writer (after flushing) and free. */
void sbx_journal_close(struct sbx_journal *j);

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
