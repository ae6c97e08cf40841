/*
 * Every journal record to syslog, so the site's syslog forwarding carries
 * the evidence off the host (docs/audit.md, "Evidence off the host").
 *
 * One datagram per record to the local syslog socket (/dev/log), facility
 * authpriv, in the format glibc's syslog(3) writes there:
 *
 *   <86>Dec  7 01:23:45 sbx-brokerd[4711]: seq=12 hash=9f... event=request.created actor=alice ...
 *
 * The broker never waits for syslog: the socket is its own, non-blocking;
 * a datagram the receiver has no room for is dropped and counted (the
 * count is in every seal's line), never retried on the event loop.
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
 * last whole field (seq and hash always fit).  Returns the length. */
size_t sbx_syslog_format(const json_t *rec, char *out, size_t outlen);

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
/* Send one record.  0 sent; 1 dropped (no receiver, or no room: counted). */
int sbx_syslog_sink_send(struct sbx_syslog_sink *s, int pri, const json_t *rec);
uint64_t sbx_syslog_sink_sent(const struct sbx_syslog_sink *s);
uint64_t sbx_syslog_sink_dropped(const struct sbx_syslog_sink *s);
void sbx_syslog_sink_free(struct sbx_syslog_sink *s);

#endif
