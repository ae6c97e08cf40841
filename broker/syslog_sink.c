/*
 * The syslog sink (syslog_sink.h): formatting a record as one line, and
 * sending it without the event loop ever waiting.  Its own socket rather
 * than syslog(3): glibc's blocks when the receiver's queue is full, which
 * would stall the event loop behind a slow syslog daemon.  The loop only
 * queues references to the records; a thread of the sink's own rebuilds
 * the hashes of operations, formats and sends (and may wait for a slow
 * receiver: only its queue grows, up to a bound).
 */
#include "config.h"

#include "syslog_sink.h"

#include "journal.h"
#include "sbxio.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
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

/* ---- sending ------------------------------------------------------------------------ */

/* What the loop hands over: one operation's records (references), each
 * with the hash the journal wrote for it. */
struct op {
	int pri;
	size_t n;
	struct op *next;
	struct {
		json_t *rec;
		char hash[65];        /* "": not known, the line goes without one */
	} recs[];
};

/* Lines go out up to BATCH a sendmmsg. */
#define BATCH 64
/* Records queued at most (each holds its record): past that the loop
 * drops, and counts. */
#define QUEUE_MAX 4096
/* A receiver with no room is waited for this long at a time (by the
 * thread), and at a stop at most this long in all. */
#define WAIT_MS 200
#define RECONNECT_MS 1000

struct sbx_syslog_sink {
	int fd;
	struct sockaddr_un addr;
	long pid;
	pthread_t th;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t wake, idle;
	/* Under mu: */
	struct op *head, *tail;
	size_t queued;         /* records in the list */
	bool stop, busy;
	uint64_t sent, dropped;
	/* The thread's own: */
	int64_t stop_by;       /* after a stop, how long a full receiver is waited for */
	bool connected;
	int64_t last_try_ms;
	time_t stamp_at;
	char head_text[2][64];
	size_t head_len[2];
	char lines[BATCH][SBX_SYSLOG_LINE_MAX];
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
	unsigned n;
};

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

static void count(struct sbx_syslog_sink *s, uint64_t sent, uint64_t dropped)
{
	pthread_mutex_lock(&s->mu);
	s->sent += sent;
	s->dropped += dropped;
	pthread_mutex_unlock(&s->mu);
}

/* Send the lines made so far.  Waits (this thread only) while the
 * receiver has no room, WAIT_MS at a time, until stop_by (monotonic ms). */
static void send_lines(struct sbx_syslog_sink *s, int64_t stop_by)
{
	unsigned done = 0;
	bool retried = false;

	try_connect(s);
	while (s->connected && done < s->n) {
		int k = sendmmsg(s->fd, s->msgs + done, s->n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
		struct pollfd p = { .fd = s->fd, .events = POLLOUT };

		if (k > 0) {
			done += (unsigned)k;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE) &&
		    s->stop_by == INT64_MAX)
			s->stop_by = sbx_mono_ms() + 5 * WAIT_MS;
		if (errno == EAGAIN && sbx_mono_ms() < stop_by && sbx_mono_ms() < s->stop_by) {
			(void)poll(&p, 1, WAIT_MS);
			continue;
		}
		if (!retried && (errno == ECONNREFUSED || errno == ENOTCONN ||
				 errno == EDESTADDRREQ)) {
			/* The receiver went away (a syslog daemon restarting):
			 * connect again at once, once. */
			retried = true;
			s->connected = false;
			s->last_try_ms = 0;
			try_connect(s);
			continue;
		}
		break;
	}
	/* No receiver (none at the path, or it stayed full past stop_by):
	 * the rest is dropped and counted; the journal has the records. */
	count(s, done, s->n - done);
	s->n = 0;
}

static void add_line(struct sbx_syslog_sink *s, int pri, const json_t *rec, const char *hash,
		     int64_t stop_by)
{
	time_t now = time(NULL);
	unsigned k = pri == SBX_SYSLOG_PRI_SEAL ? 1 : 0;
	char *line;
	size_t len;

	if (s->n == BATCH)
		send_lines(s, stop_by);
	if (now != s->stamp_at) {
		char msg[1] = "";

		/* The header changes once a second, not for every line. */
		s->stamp_at = now;
		s->head_len[0] = sbx_syslog_datagram(SBX_SYSLOG_PRI_RECORD, now, s->pid, msg,
						     s->head_text[0], sizeof(s->head_text[0]));
		s->head_len[1] = sbx_syslog_datagram(SBX_SYSLOG_PRI_SEAL, now, s->pid, msg,
						     s->head_text[1], sizeof(s->head_text[1]));
	}
	line = s->lines[s->n];
	memcpy(line, s->head_text[k], s->head_len[k]);
	len = s->head_len[k] + sbx_syslog_format(rec, hash, line + s->head_len[k],
						  SBX_SYSLOG_LINE_MAX - s->head_len[k]);
	s->iov[s->n] = (struct iovec){ .iov_base = line, .iov_len = len };
	s->msgs[s->n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &s->iov[s->n],
						       .msg_iovlen = 1 } };
	s->n++;
}

/* An operation's lines, each with the hash the journal wrote for it. */
static void op_lines(struct sbx_syslog_sink *s, struct op *o, int64_t stop_by)
{
	for (size_t i = 0; i < o->n; i++)
		add_line(s, o->pri, o->recs[i].rec, o->recs[i].hash, stop_by);
}

static void op_free(struct op *o)
{
	for (size_t i = 0; i < o->n; i++)
		json_decref(o->recs[i].rec);
	free(o);
}

static void *sender_main(void *arg)
{
	struct sbx_syslog_sink *s = arg;
	int64_t stop_by = INT64_MAX;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct op *list;
		size_t n;

		while (!s->head && !s->stop) {
			s->busy = false;
			pthread_cond_broadcast(&s->idle);
			pthread_cond_wait(&s->wake, &s->mu);
		}
		if (!s->head && s->stop)
			break;
		if (s->stop && stop_by == INT64_MAX)
			stop_by = sbx_mono_ms() + 5 * WAIT_MS;
		list = s->head;
		n = s->queued;
		s->head = s->tail = NULL;
		s->queued = 0;
		s->busy = true;
		pthread_mutex_unlock(&s->mu);
		(void)n;
		while (list) {
			struct op *next = list->next;

			op_lines(s, list, stop_by);
			op_free(list);
			list = next;
		}
		if (s->n)
			send_lines(s, stop_by);
		pthread_mutex_lock(&s->mu);
	}
	s->busy = false;
	pthread_cond_broadcast(&s->idle);
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

struct sbx_syslog_sink *sbx_syslog_sink_new(const char *path)
{
	struct sbx_syslog_sink *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->fd = -1;
	if (strlen(path) >= sizeof(s->addr.sun_path))
		goto fail;
	s->addr.sun_family = AF_UNIX;
	memcpy(s->addr.sun_path, path, strlen(path) + 1);
	s->pid = (long)getpid();
	s->stamp_at = (time_t)-1;
	s->stop_by = INT64_MAX;
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || pthread_mutex_init(&s->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&s->wake, NULL) != 0 || pthread_cond_init(&s->idle, NULL) != 0 ||
	    pthread_create(&s->th, NULL, sender_main, s) != 0)
		goto fail;
	s->started = true;
	return s;
fail:
	if (s->fd >= 0)
		close(s->fd);
	free(s);
	return NULL;
}

void sbx_syslog_sink_op(struct sbx_syslog_sink *s, int pri, json_t *const *recs, size_t n,
			const char (*hashes)[65])
{
	struct op *o;

	if (!s || n == 0)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->queued + n > QUEUE_MAX) {
		s->dropped += n;
		pthread_mutex_unlock(&s->mu);
		return;
	}
	pthread_mutex_unlock(&s->mu);
	o = malloc(sizeof(*o) + n * sizeof(o->recs[0]));
	if (!o) {
		count(s, 0, n);
		return;
	}
	o->pri = pri;
	o->n = n;
	o->next = NULL;
	for (size_t i = 0; i < n; i++) {
		/* Without hashes: a record outside an operation, whose own
		 * is the journal's. */
		const char *h = hashes ? hashes[i]
				       : json_string_value(json_object_get(recs[i], "hash"));

		o->recs[i].rec = json_incref(recs[i]);
		snprintf(o->recs[i].hash, sizeof(o->recs[i].hash), "%s", h ? h : "");
	}
	pthread_mutex_lock(&s->mu);
	if (s->tail)
		s->tail->next = o;
	else
		s->head = o;
	s->tail = o;
	s->queued += n;
	pthread_mutex_unlock(&s->mu);
}

void sbx_syslog_sink_queue(struct sbx_syslog_sink *s, int pri, const json_t *rec)
{
	json_t *r = (json_t *)rec;

	sbx_syslog_sink_op(s, pri, &r, 1, NULL);
}

void sbx_syslog_sink_flush(struct sbx_syslog_sink *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->head)
		pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
}

void sbx_syslog_sink_wait(struct sbx_syslog_sink *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	if (s->head)
		pthread_cond_signal(&s->wake);
	while (s->head || s->busy)
		pthread_cond_wait(&s->idle, &s->mu);
	pthread_mutex_unlock(&s->mu);
}

int sbx_syslog_sink_send(struct sbx_syslog_sink *s, int pri, const json_t *rec)
{
	uint64_t dropped = sbx_syslog_sink_dropped(s);

	if (!s)
		return 1;
	sbx_syslog_sink_queue(s, pri, rec);
	sbx_syslog_sink_wait(s);
	return sbx_syslog_sink_dropped(s) > dropped ? 1 : 0;
}

uint64_t sbx_syslog_sink_sent(struct sbx_syslog_sink *s)
{
	uint64_t v;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	v = s->sent;
	pthread_mutex_unlock(&s->mu);
	return v;
}

uint64_t sbx_syslog_sink_dropped(struct sbx_syslog_sink *s)
{
	uint64_t v;

	if (!s)
		return 0;
	pthread_mutex_lock(&s->mu);
	v = s->dropped;
	pthread_mutex_unlock(&s->mu);
	return v;
}

void sbx_syslog_sink_free(struct sbx_syslog_sink *s)
{
	if (!s)
		return;
	if (s->started) {
		pthread_mutex_lock(&s->mu);
		__atomic_store_n(&s->stop, true, __ATOMIC_RELEASE);
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->mu);
		pthread_join(s->th, NULL);
	}
	while (s->head) {
		struct op *next = s->head->next;

		op_free(s->head);
		s->head = next;
	}
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->mu);
	close(s->fd);
	free(s);
}
