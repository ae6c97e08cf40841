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

/* " key=value" into buf (the escaping in syslog_sink.h); its length, or
 * 0 when it does not fit buflen. */
static size_t put_field(char *buf, size_t buflen, const char *key, const char *val, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	bool cut = len > SBX_SYSLOG_VALUE_MAX, quote = cut || len == 0;
	size_t n, o;

	if (cut)
		len = SBX_SYSLOG_VALUE_MAX;
	for (size_t i = 0; i < len && !quote; i++)
		quote = !bare_char((unsigned char)val[i]);
	n = (size_t)snprintf(buf, buflen, " %s=%s", key, quote ? "\"" : "");
	if (n >= buflen)
		return 0;
	o = n;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)val[i];

		if (o + 4 >= buflen)
			return 0;
		if (!quote || (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')) {
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
	if (o + sizeof(CUT_MARK) + 1 >= buflen)
		return 0;
	if (cut) {
		memcpy(buf + o, CUT_MARK, sizeof(CUT_MARK) - 1);
		o += sizeof(CUT_MARK) - 1;
	}
	if (quote)
		buf[o++] = '"';
	buf[o] = '\0';
	return o;
}

size_t sbx_syslog_format(const json_t *rec, char *out, size_t outlen)
{
	char field[SBX_SYSLOG_VALUE_MAX * 4 + 64];
	size_t used = 0;

	if (outlen == 0)
		return 0;
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(line_keys) / sizeof(line_keys[0]); i++) {
		const json_t *v = json_object_get(rec, line_keys[i]);
		char num[32];
		const char *val;
		size_t len, n;

		if (json_is_string(v)) {
			val = json_string_value(v);
			len = json_string_length(v);
		} else if (json_is_integer(v)) {
			len = (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
					       json_integer_value(v));
			val = num;
		} else {
			continue;
		}
		n = put_field(field, sizeof(field), line_keys[i], val, len);
		/* Room for the marker is kept until the last field. */
		if (n == 0 || used + n + sizeof(TRUNCATED) > outlen) {
			if (used + sizeof(TRUNCATED) <= outlen) {
				memcpy(out + used, TRUNCATED, sizeof(TRUNCATED));
				used += sizeof(TRUNCATED) - 1;
			}
			break;
		}
		memcpy(out + used, field, n + 1);
		used += n;
	}
	/* Fields were written with a leading blank each. */
	if (used && out[0] == ' ') {
		memmove(out, out + 1, used);
		used--;
	}
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

struct sbx_syslog_sink {
	int fd;
	bool connected;
	struct sockaddr_un addr;
	int64_t last_try_ms;   /* the last connect attempt (monotonic) */
	long pid;
	uint64_t sent, dropped;
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
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		free(s);
		return NULL;
	}
	try_connect(s);
	return s;
}

static void note_drop(struct sbx_syslog_sink *s)
{
	s->dropped++;
}

int sbx_syslog_sink_send(struct sbx_syslog_sink *s, int pri, const json_t *rec)
{
	char msg[SBX_SYSLOG_LINE_MAX], line[SBX_SYSLOG_LINE_MAX];
	size_t len;

	if (!s)
		return 1;
	try_connect(s);
	if (!s->connected) {
		note_drop(s);
		return 1;
	}
	/* The header takes under 64 bytes of the datagram. */
	(void)sbx_syslog_format(rec, msg, sizeof(msg) - 64);
	len = sbx_syslog_datagram(pri, time(NULL), s->pid, msg, line, sizeof(line));
	if (send(s->fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len) {
		s->sent++;
		return 0;
	}
	if (errno == ECONNREFUSED || errno == ENOTCONN || errno == EDESTADDRREQ) {
		/* The receiver went away: connect again (rate-limited) and try
		 * this one once more. */
		s->connected = false;
		s->last_try_ms = 0;
		try_connect(s);
		if (s->connected &&
		    send(s->fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)len) {
			s->sent++;
			return 0;
		}
	}
	/* EAGAIN: the receiver's queue is full.  Waiting would stall the
	 * broker behind syslog; the seq gap and the count show the loss. */
	note_drop(s);
	return 1;
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
	if (s->fd >= 0)
		close(s->fd);
	free(s);
}
