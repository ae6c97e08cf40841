/*
 * Every journal record to syslog, so the site's syslog forwarding carries
 * the evidence off the host (docs/audit.md, "Evidence off the host").
 *
 * One datagram per record to the local syslog socket (/dev/log), facility
 * authpriv, in the format glibc's syslog(3) writes there:
 *
 *   <86>Dec  7 01:23:45 sbx-brokerd[4711]: seq=12 hash=9f... event=request.created actor=alice ...
 *
 * The broker never waits for syslog: the event loop formats each line
 * into a ring of bytes (nothing allocated per record); the sink's own
 * thread sends them, a loop pass's together (sendmmsg), on a socket of
 * its own.  When 4096 lines (or 1 MiB) wait (a syslog daemon that reads
 * nothing), further lines are dropped and counted (the count is in every
 * seal's line).  Threads: any thread may queue (the loop does); the
 * sender thread is internal.
 */
#ifndef SBX_SYSLOG_SINK_H
#define SBX_SYSLOG_SINK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define SBX_SYSLOG_PATH "/dev/log"
/* One datagram, header included: RFC 3164's limit, which every receiver
 * takes whole. */
#define SBX_SYSLOG_LINE_MAX 1024
/* Bytes of one value before escaping; longer ones are cut (and say so). */
#define SBX_SYSLOG_VALUE_MAX 160
/* authpriv: the facility sites already forward for logins and sudo. */
#define SBX_SYSLOG_PRI_RECORD ((10 << 3) | 6) /* authpriv.info */
#define SBX_SYSLOG_PRI_SEAL ((10 << 3) | 5)   /* authpriv.notice */

/* The message for a record: its fields as key=value, in a fixed order
 * (seq, hash, event, actor, through, user, role, id, outcome, host,
 * then a seal's epoch, key_id, first_seq, last_seq, why, and
 * checkpoint.delivered's seal_seq), each only when present with a
 * string or integer value.  Values of letters, digits and ._:@/+- stand
 * bare; any other is in double quotes with '"' and '\' escaped by a
 * backslash and every byte outside printable ASCII written \xHH, so a
 * value can neither start a new line nor fake a key.  A value longer
 * than SBX_SYSLOG_VALUE_MAX is cut and ends in "..." (quoted).  When the
 * fields do not fit outlen, the line ends with "truncated=1" after the
 * last whole field (seq and hash always fit).  hash, when not NULL,
 * stands for the record's own ("" leaves it out).  Returns the length. */
size_t sbx_syslog_format(const json_t *rec, const char *hash, char *out, size_t outlen);

/* The datagram: "<pri>Mmm dd hh:mm:ss sbx-brokerd[pid]: " and msg, cut to
 * outlen - 1.  Returns the length. */
size_t sbx_syslog_datagram(int pri, time_t when, long pid, const char *msg, char *out,
			   size_t outlen);

struct sbx_syslog_sink;

/* A sink sending to the datagram socket at path (SBX_SYSLOG_PATH; tests
 * use a private mount namespace to put their own there), with its sender
 * thread.  A socket that is not there yet is connected later (at most
 * once a second).  NULL only when out of memory, fds or threads. */
struct sbx_syslog_sink *sbx_syslog_sink_new(const char *path);
/* Queue the lines of one operation's records, in order (formatted now:
 * the records are not kept), each with the hash the
 * journal wrote for it (hashes[i]; "" when not known: that line goes
 * without one, never with a wrong one).  The journal re-hashes an
 * operation's records when it ends (journal.h: all but the last get
 * "continued"), so their own "hash" members are not the ones on disk:
 * sbx_journal_recent_hash has them.  hashes NULL: each record's own.
 * Never waits: with 4096 lines or 1 MiB queued, the lines are dropped
 * and counted. */
void sbx_syslog_sink_op(struct sbx_syslog_sink *s, int pri, json_t *const *recs, size_t n,
			const char (*hashes)[65]);
/* One record with its own hash. */
void sbx_syslog_sink_queue(struct sbx_syslog_sink *s, int pri, const json_t *rec);
/* Wake the thread for what is queued (the broker does every loop pass
 * and after a seal): the lines go out together, 64 a sendmmsg.  The
 * thread waits while the receiver has no room (the loop never does);
 * with no receiver at all the lines are dropped and counted. */
void sbx_syslog_sink_flush(struct sbx_syslog_sink *s);
/* Flush and wait until the thread has handled everything queued (tests,
 * the bench). */
void sbx_syslog_sink_wait(struct sbx_syslog_sink *s);
/* Queue one record and wait for it.  0 sent; 1 dropped. */
int sbx_syslog_sink_send(struct sbx_syslog_sink *s, int pri, const json_t *rec);
uint64_t sbx_syslog_sink_sent(struct sbx_syslog_sink *s);
uint64_t sbx_syslog_sink_dropped(struct sbx_syslog_sink *s);
/* Stops the thread after what is queued (waiting at most a second for a
 * receiver with no room). */
void sbx_syslog_sink_free(struct sbx_syslog_sink *s);

#endif
