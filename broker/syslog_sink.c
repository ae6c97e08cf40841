/*
 * The syslog sink (syslog_sink.h): formatting a record as one line, and
 * sending it without ever waiting.  Its own socket rather than syslog(3):
 * glibc's blocks when the receiver's queue is full, which would stall
 * the event loop behind a slow syslog daemon.
 */
#include "config.h"

#include "syslog_sink.h"

#include "sbxio.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

/* What a line shows, in this order. */
static const char *const line_keys[] = {
	"seq", "hash", "event", "actor", "through", "user", "role", "id", "outcome", "host",
	"epoch", "key_id", "first_seq", "last_seq", "why", "seal_seq", "syslog_dropped",
};

#define TRUNCATED " truncated=1"
#define CUT_MARK "..."

static bool bare_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '@' || c == '/' || c == '+' || c == '-';
}

/* " key=value" at buf (the escaping in syslog_sink.h), no NUL; its
 * length, or 0 when it does not fit room. */
static size_t put_field(char *buf, size_t room, const char *key, const char *val, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	bool cut = len > SBX_SYSLOG_VALUE_MAX, quote = cut || len == 0;
	size_t klen = strlen(key), need, o;

	if (cut)
		len = SBX_SYSLOG_VALUE_MAX;
	for (size_t i = 0; i < len && !quote; i++)
		quote = !bare_char((unsigned char)val[i]);
	/* The exact length first, so the loop below needs no checks. */
	need = klen + 2 + len;
	if (quote) {
		need += 2 + (cut ? sizeof(CUT_MARK) - 1 : 0);
		for (size_t i = 0; i < len; i++) {
			unsigned char c = (unsigned char)val[i];

			need += c == '"' || c == '\\' ? 1 : c < 0x20 || c >= 0x7f ? 3 : 0;
		}
	}
	if (need > room)
		return 0;
	o = 0;
	buf[o++] = ' ';
	memcpy(buf + o, key, klen);
	o += klen;
	buf[o++] = '=';
	if (!quote) {
		memcpy(buf + o, val, len);
		return o + len;
	}
	buf[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)val[i];

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			buf[o++] = (char)c;
		} else if (c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = (char)c;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	if (cut) {
		memcpy(buf + o, CUT_MARK, sizeof(CUT_MARK) - 1);
		o += sizeof(CUT_MARK) - 1;
	}
	buf[o++] = '"';
	return o;
}

/* An integer's digits at the end of buf[24]; returns where they start. */
static const char *digits(json_int_t v, char buf[24], size_t *len)
{
	char *p = buf + 24;
	bool neg = v < 0;
	uint64_t u = neg ? 0 - (uint64_t)v : (uint64_t)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (neg)
		*--p = '-';
	*len = (size_t)(buf + 24 - p);
	return p;
}

size_t sbx_syslog_format(const json_t *rec, const char *hash, char *out, size_t outlen)
{
	size_t used = 0;

	if (outlen == 0)
		return 0;
	for (size_t i = 0; i < sizeof(line_keys) / sizeof(line_keys[0]); i++) {
		const json_t *v = i == 1 && hash ? NULL : json_object_get(rec, line_keys[i]);
		char num[24];
		const char *val;
		size_t len, n;

		if (i == 1 && hash && hash[0]) {
			val = hash;
			len = strlen(hash);
		} else if (json_is_string(v)) {
			val = json_string_value(v);
			len = json_string_length(v);
		} else if (json_is_integer(v)) {
			val = digits(json_integer_value(v), num, &len);
		} else {
			continue;
		}
		/* Room for the marker (and the NUL) is kept until the end. */
		n = outlen - used > sizeof(TRUNCATED)
			    ? put_field(out + used, outlen - used - sizeof(TRUNCATED), line_keys[i],
					val, len)
			    : 0;
		if (n == 0) {
			if (used + sizeof(TRUNCATED) <= outlen) {
				memcpy(out + used, TRUNCATED, sizeof(TRUNCATED) - 1);
				used += sizeof(TRUNCATED) - 1;
			}
			break;
		}
		used += n;
	}
	/* Fields were written with a leading blank each. */
	if (used && out[0] == ' ') {
		memmove(out, out + 1, used - 1);
		used--;
	}
	out[used] = '\0';
	return used;
}

size_t sbx_syslog_datagram(int pri, time_t when, long pid, const char *msg, char *out,
			   size_t outlen)
{
	char stamp[32];
	struct tm tm;
	int n;

	/* The local time, as syslog(3) writes it. */
	if (!localtime_r(&when, &tm) || strftime(stamp, sizeof(stamp), "%b %e %H:%M:%S", &tm) == 0)
		snprintf(stamp, sizeof(stamp), "Jan  1 00:00:00");
	n = snprintf(out, outlen, "<%d>%s sbx-brokerd[%ld]: %s", pri, stamp, pid, msg);
	if (n < 0)
		return 0;
	return (size_t)n < outlen ? (size_t)n : outlen - 1;
}

/* ---- sending ----------------------------------------------------------------------- */

/* Lines wait here until sbx_syslog_sink_flush and go out up to BATCH in
 * one sendmmsg: one system call and one wake-up of the syslog daemon for
 * a loop pass, not one per record.  What the receiver has no room for
 * yet waits for the next flush, up to QUEUE_MAX lines; past that new
 * lines are dropped and counted. */
#define BATCH 64
#define QUEUE_MAX 256

struct sbx_syslog_sink {
	int fd;
	bool connected;
	struct sockaddr_un addr;
	int64_t last_try_ms;   /* the last connect attempt (monotonic) */
	long pid;
	uint64_t sent, dropped;
	/* The header of the second in stamp_at, per priority: rebuilt once a
	 * second rather than for every line. */
	time_t stamp_at;
	char head[2][64];
	size_t head_len[2];
	/* A ring of lines: n of them from first on. */
	char lines[QUEUE_MAX][SBX_SYSLOG_LINE_MAX];
	size_t len[QUEUE_MAX];
	unsigned first, n;
};

#define RECONNECT_MS 1000

static void try_connect(struct sbx_syslog_sink *s)
{
	int64_t now = sbx_mono_ms();

	if (s->connected || (s->last_try_ms && now - s->last_try_ms < RECONNECT_MS))
		return;
	s->last_try_ms = now;
	/* A datagram socket connects again to whatever is at the path now
	 * (a syslog daemon that restarted made a new socket). */
	s->connected = connect(s->fd, (const struct sockaddr *)&s->addr, sizeof(s->addr)) == 0;
}

struct sbx_syslog_sink *sbx_syslog_sink_new(const char *path)
{
	struct sbx_syslog_sink *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	if (strlen(path) >= sizeof(s->addr.sun_path)) {
		free(s);
		return NULL;
	}
	s->addr.sun_family = AF_UNIX;
	memcpy(s->addr.sun_path, path, strlen(path) + 1);
	s->pid = (long)getpid();
	s->stamp_at = (time_t)-1;
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		free(s);
		return NULL;
	}
	try_connect(s);
	return s;
}

/* Send up to BATCH lines from the front of the ring; how many went, or
 * -1 with errno when none did. */
static int send_some(struct sbx_syslog_sink *s)
{
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	unsigned k = s->n < BATCH ? s->n : BATCH;
	int n;

	for (unsigned i = 0; i < k; i++) {
		unsigned at = (s->first + i) % QUEUE_MAX;

		iov[i] = (struct iovec){ .iov_base = s->lines[at], .iov_len = s->len[at] };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	n = sendmmsg(s->fd, msgs, k, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n > 0) {
		s->first = (s->first + (unsigned)n) % QUEUE_MAX;
		s->n -= (unsigned)n;
		s->sent += (uint64_t)n;
	}
	return n;
}

static void drop_all(struct sbx_syslog_sink *s)
{
	s->dropped += s->n;
	s->n = 0;
}

void sbx_syslog_sink_flush(struct sbx_syslog_sink *s)
{
	bool retried = false;

	if (!s || s->n == 0)
		return;
	try_connect(s);
	if (!s->connected) {
		/* No receiver: keeping lines for one that may never come
		 * would only grow; the journal has them. */
		drop_all(s);
		return;
	}
	while (s->n) {
		if (send_some(s) > 0)
			continue;
		if (errno == EINTR)
			continue;
		if (!retried && (errno == ECONNREFUSED || errno == ENOTCONN ||
				 errno == EDESTADDRREQ)) {
			/* The receiver went away (a syslog daemon restarting):
			 * connect again at once, once. */
			retried = true;
			s->connected = false;
			s->last_try_ms = 0;
			try_connect(s);
			if (s->connected)
				continue;
			drop_all(s);
		}
		/* EAGAIN: the receiver's queue is full.  Waiting would stall
		 * the broker behind syslog: the rest waits for the next flush. */
		break;
	}
}

void sbx_syslog_sink_queue(struct sbx_syslog_sink *s, int pri, const json_t *rec,
			   const char *hash)
{
	time_t now = time(NULL);
	unsigned k = pri == SBX_SYSLOG_PRI_SEAL ? 1 : 0, at;
	char *line;

	if (!s)
		return;
	if (s->n >= BATCH)
		sbx_syslog_sink_flush(s);
	if (s->n == QUEUE_MAX) {
		s->dropped++;
		return;
	}
	if (now != s->stamp_at) {
		char msg[1] = "";

		s->stamp_at = now;
		s->head_len[0] = sbx_syslog_datagram(SBX_SYSLOG_PRI_RECORD, now, s->pid, msg,
						     s->head[0], sizeof(s->head[0]));
		s->head_len[1] = sbx_syslog_datagram(SBX_SYSLOG_PRI_SEAL, now, s->pid, msg,
						     s->head[1], sizeof(s->head[1]));
	}
	at = (s->first + s->n) % QUEUE_MAX;
	line = s->lines[at];
	memcpy(line, s->head[k], s->head_len[k]);
	s->len[at] = s->head_len[k] +
		     sbx_syslog_format(rec, hash, line + s->head_len[k],
				       SBX_SYSLOG_LINE_MAX - s->head_len[k]);
	s->n++;
}

int sbx_syslog_sink_send(struct sbx_syslog_sink *s, int pri, const json_t *rec)
{
	uint64_t dropped = s ? s->dropped : 0;

	if (!s)
		return 1;
	sbx_syslog_sink_queue(s, pri, rec, NULL);
	sbx_syslog_sink_flush(s);
	return s->dropped > dropped ? 1 : 0;
}

uint64_t sbx_syslog_sink_sent(const struct sbx_syslog_sink *s)
{
	return s ? s->sent : 0;
}

uint64_t sbx_syslog_sink_dropped(const struct sbx_syslog_sink *s)
{
	return s ? s->dropped : 0;
}

void sbx_syslog_sink_free(struct sbx_syslog_sink *s)
{
	if (!s)
		return;
	sbx_syslog_sink_flush(s);
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}
