/*
 * Evidence leaves the host (docs/audit.md, "Evidence off the host"):
 *
 * - every record the broker appends goes to syslog (syslog_sink.h), on
 *   by default, off with audit.syslog: false;
 * - every seal (its seq, hash, epoch) goes to syslog at notice, whatever
 *   audit.syslog says, and, with audit.checkpoint_url, to that HTTPS
 *   collector through a durable outbox: the journal.sealed record itself
 *   is the queued entry (it is durable before the key moves on), sent
 *   with the poster Slack uses (slack/slack_out.h), retried with backoff
 *   while the collector is away, and taken out by a
 *   checkpoint.delivered record once the collector answered 2xx.  After
 *   a restart the seals without checkpoint.delivered are sent again; a
 *   snapshot keeps them in its "checkpoint" part.
 *
 * Everything runs on the broker's event loop; nothing here blocks.
 */
#ifndef SBX_EVIDENCE_H
#define SBX_EVIDENCE_H

#include <jansson.h>
#include <stdint.h>

#include "timeutil.h"

struct sbx_broker;
struct sbx_evidence;

#define SBX_CHECKPOINT_DELIVERED_EVENT "checkpoint.delivered"

/* Before the journal is replayed (seals recorded at start-up already
 * come here): b->evidence, with the syslog sink when audit.syslog is on.
 * 0 or -ENOMEM. */
int sbx_evidence_new(struct sbx_broker *b);
/* The same with another syslog socket: for bench/bench_audit_sinks.c,
 * which runs without a syslog daemon (no setting or option reaches it;
 * tests put their socket at /dev/log in a mount namespace). */
int sbx_evidence_new_at(struct sbx_broker *b, const char *syslog_path);
/* During the start-up replay: journal.sealed queues a checkpoint,
 * checkpoint.delivered takes it out. */
void sbx_evidence_replay(struct sbx_evidence *e, const json_t *rec);
/* A snapshot given up halfway: the replay starts again from seq 1. */
void sbx_evidence_forget(struct sbx_evidence *e);
/* The checkpoints not yet delivered, for a snapshot's "ext"."checkpoint",
 * and back (0; -1 for a part that does not parse).  NULL: none. */
json_t *sbx_evidence_save(const struct sbx_evidence *e);
int sbx_evidence_load(struct sbx_evidence *e, const json_t *saved);

/* After replay: with audit.checkpoint_url, check it and the CA file and
 * get ready to post.  0, or -1 after logging why the broker must not
 * start. */
int sbx_evidence_start(struct sbx_broker *b);
/* Posts in flight are abandoned: their seals go out after the next start. */
void sbx_evidence_free(struct sbx_broker *b);

/* The fd the loop watches for the collector's posts, or -1; and what to
 * do when it is readable. */
int sbx_evidence_fd(const struct sbx_broker *b);
void sbx_evidence_on_ready(struct sbx_broker *b);

/* Every record (live): to syslog.  Inside an operation (journal.h) the
 * journal rewrites the hashes of its records when it ends (all but the
 * last get "continued"), so lines wait for the outermost op_end, which
 * sends them with the hashes the journal wrote. */
void sbx_evidence_on_record(struct sbx_broker *b, const json_t *rec);
void sbx_evidence_op_begin(struct sbx_broker *b);
void sbx_evidence_op_end(struct sbx_broker *b);

/* A seal was appended and is durable (sealing.c; it does not pass
 * on_record).  The seal record's hash is the journal's last. */
struct sbx_evidence_seal {
	uint64_t seq, epoch, first_seq;
	const char *key_id, *why;
	const char *time; /* the seal record's time */
};
void sbx_evidence_on_seal(struct sbx_broker *b, const struct sbx_evidence_seal *seal);

/* Every loop pass: send what is due, time out what curl wants. */
void sbx_evidence_tick(struct sbx_broker *b);
/* SIGHUP: audit.syslog takes effect; a new checkpoint URL needs a restart. */
void sbx_evidence_on_reload(struct sbx_broker *b);

#endif
