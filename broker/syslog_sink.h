/*
 * Every journal record to syslog, so the site's syslog forwarding carries
 * the evidence off the host (docs/audit.md, "Evidence off the host").
 *
 * One datagram per record to the local syslog socket (/dev/log), facility
 * authpriv, in the format glibc's syslog(3) writes there:
 *
 *   <86>Dec  7 01:23:45 sbx-brokerd[4711]: seq=12 hash=9f... event=request.created actor=alice ...
 *
 * The broker never waits for syslog: the socket is its own, non-blocking,
 * and the lines of a loop pass leave together (sendmmsg); lines the
 * receiver has no room for wait for the next pass, up to 256, and past
 * that are dropped and counted (the count is in every seal's line).
 * Threads: the event loop's only.
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
 * use a private mount namespace to put their own there).  A socket that
 * is not there yet is connected later (at most once a second).  NULL
 * only when out of memory or fds. */
struct sbx_syslog_sink *sbx_syslog_sink_new(const char *path);
/* Queue one record's line (hash as for sbx_syslog_format); lines go out
 * together at the next flush (the broker flushes every loop pass and
 * after a seal), or when 64 are waiting.  When 256 are waiting (the
 * receiver reads nothing), the line is dropped and counted. */
void sbx_syslog_sink_queue(struct sbx_syslog_sink *s, int pri, const json_t *rec,
			   const char *hash);
/* Send what is queued, 64 lines a system call, never waiting: what the
 * receiver has no room for stays queued for the next flush; with no
 * receiver at all (no socket, or it refuses) the queue is dropped and
 * counted. */
void sbx_syslog_sink_flush(struct sbx_syslog_sink *s);
/* Queue and flush one record.  0 sent or still queued; 1 dropped. */
int sbx_syslog_sink_send(struct sbx_syslog_sink *s, int pri, const json_t *rec);
uint64_t sbx_syslog_sink_sent(const struct sbx_syslog_sink *s);
uint64_t sbx_syslog_sink_dropped(const struct sbx_syslog_sink *s);
void sbx_syslog_sink_free(struct sbx_syslog_sink *s);

#endif
