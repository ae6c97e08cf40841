/*
 * The syslog sink (syslog_sink.h): formatting a record as one line, and
 * sending it without the event loop ever waiting.  Its own socket rather
 * than syslog(3): glibc's blocks when the receiver's queue is full, which
 * would stall the event loop behind a slow syslog daemon.  The loop
 * formats the lines into a ring of bytes; a thread of the sink's own
 * sends them (and may wait for a slow receiver: only the ring fills, and
 * then lines are dropped and counted).
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

/* The bytes a value may hold and stand bare: letters, digits and
 * ._:@/+- (a table: the loop looks at every byte of every line). */
#define BARE_RANGE(lo, hi) [lo ... hi] = true
static const bool bare_chars[256] = {
	BARE_RANGE('a', 'z'), BARE_RANGE('A', 'Z'), BARE_RANGE('0', '9'),
	['.'] = true, ['_'] = true, [':'] = true, ['@'] = true, ['/'] = true, ['+'] = true,
	['-'] = true,
};
#undef BARE_RANGE

static bool bare_char(unsigned char c)
{
	return bare_chars[c];
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

#define N_LINE_KEYS (sizeof(line_keys) / sizeof(line_keys[0]))

/* Where key stands in line_keys, or -1.  The loop formats every record,
 * so this is one switch and one compare, not a search. */
static int line_key_index(const char *key)
{
	int i;

	switch (key[0]) {
	case 's': i = key[1] == 'e' ? (key[2] == 'q' ? 0 : 15) : 16; break;
	case 'h': i = key[1] == 'a' ? 1 : 9; break;
	case 'e': i = key[1] == 'v' ? 2 : 10; break;
	case 'a': i = 3; break;
	case 't': i = 4; break;
	case 'u': i = 5; break;
	case 'r': i = 6; break;
	case 'i': i = 7; break;
	case 'o': i = 8; break;
	case 'k': i = 11; break;
	case 'f': i = 12; break;
	case 'l': i = 13; break;
	case 'w': i = 14; break;
	default: return -1;
	}
	return strcmp(key, line_keys[i]) == 0 ? i : -1;
}

size_t sbx_syslog_format(const json_t *rec, const char *hash, char *out, size_t outlen)
{
	const json_t *vals[N_LINE_KEYS] = { 0 };
	const char *key;
	json_t *member;
	size_t used = 0;

	if (outlen == 0)
		return 0;
	/* One walk over the record's members (fewer than the keys wanted,
	 * and no hashing of names). */
	json_object_foreach((json_t *)rec, key, member) {
		int k = line_key_index(key);

		if (k >= 0)
			vals[k] = member;
	}
	for (size_t i = 0; i < N_LINE_KEYS; i++) {
		const json_t *v = i == 1 && hash ? NULL : vals[i];
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

/*
 * The loop formats each line itself, straight into a ring of bytes the
 * sender thread sends from: nothing allocated per record, no record
 * shared between threads, no lock taken per line.  (Handing the thread
 * references to the records instead made it free memory the loop had
 * allocated, and the two threads then fought over malloc's arena lock:
 * that contention, not the sending, was most of the cost.)
 *
 * An entry is a 32-bit length and the datagram, padded to 8 bytes; an
 * entry never wraps: where the room left before the ring's end is too
 * small for the longest line, a WRAP length sends the reader to its
 * start.  head and tail count bytes since the start and only grow; the
 * producers (under pmu) own head, the thread owns tail.
 */
#define RING_BYTES (1u << 20)
#define WRAP UINT32_MAX
#define ENTRY_MAX (8 + SBX_SYSLOG_LINE_MAX)
/* Lines go out up to BATCH a sendmmsg. */
#define BATCH 64
/* Lines queued at most: past that (or a full ring) the loop drops, and
 * counts. */
#define QUEUE_MAX 4096
/* A receiver with no room is waited for this long at a time (by the
 * thread), and at a stop at most this long in all. */
#define WAIT_MS 200
#define RECONNECT_MS 1000
/* How long lines gather after a wake-up before they go. */
#define GATHER_MS 2

struct sbx_syslog_sink {
	int fd;
	struct sockaddr_un addr;
	long pid;
	pthread_t th;
	bool started;
	char *ring;
	/* Atomics, shared: */
	uint64_t head, tail;        /* bytes; head as the thread may see it */
	uint64_t lines_in, lines_out;
	uint64_t sent, dropped;
	bool stop;
	/* The producers', under pmu: */
	pthread_mutex_t pmu;
	uint64_t phead;             /* head, with the lines not handed over yet */
	time_t stamp_at;
	char head_text[2][64];
	size_t head_len[2];
	/* Waking and waiting, under mu: */
	pthread_mutex_t mu;
	pthread_cond_t wake, idle;
	bool busy;
	/* The thread's own: */
	int64_t stop_by;            /* after a stop, how long a full receiver is waited for */
	bool connected;
	int64_t last_try_ms;
	struct iovec iov[BATCH];
	struct mmsghdr msgs[BATCH];
};

static uint64_t load(const uint64_t *v)
{
	return __atomic_load_n(v, __ATOMIC_ACQUIRE);
}

static void store(uint64_t *v, uint64_t x)
{
	__atomic_store_n(v, x, __ATOMIC_RELEASE);
}

static void add(uint64_t *v, uint64_t x)
{
	__atomic_add_fetch(v, x, __ATOMIC_RELAXED);
}

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

/* Send msgs[0..n).  Waits (this thread only) while the receiver has no
 * room, WAIT_MS at a time, until stop_by (monotonic ms).  What could not
 * go is counted as dropped. */
static void send_batch(struct sbx_syslog_sink *s, unsigned n, int64_t stop_by)
{
	unsigned done = 0;
	bool retried = false;

	try_connect(s);
	while (s->connected && done < n) {
		int k = sendmmsg(s->fd, s->msgs + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
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
	add(&s->sent, done);
	add(&s->dropped, n - done);
}

/* Send everything in the ring, a batch at a time; each batch's room is
 * given back once it is sent. */
static void send_queued(struct sbx_syslog_sink *s, int64_t stop_by)
{
	uint64_t t = s->tail, h = load(&s->head);

	while (t != h) {
		unsigned n = 0;

		while (t != h && n < BATCH) {
			size_t pos = (size_t)(t % RING_BYTES);
			uint32_t len;

			memcpy(&len, s->ring + pos, sizeof(len));
			if (len == WRAP) {
				t += RING_BYTES - pos;
				continue;
			}
			s->iov[n] = (struct iovec){ .iov_base = s->ring + pos + 4, .iov_len = len };
			s->msgs[n] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &s->iov[n],
								    .msg_iovlen = 1 } };
			n++;
			t += (4 + len + 7) & ~(uint64_t)7;
		}
		if (n)
			send_batch(s, n, stop_by);
		store(&s->tail, t);
		add(&s->lines_out, n);
		h = load(&s->head);
	}
}

static void *sender_main(void *arg)
{
	struct sbx_syslog_sink *s = arg;
	int64_t stop_by = INT64_MAX;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		bool stopping;

		while (load(&s->head) == s->tail && !__atomic_load_n(&s->stop, __ATOMIC_ACQUIRE)) {
			s->busy = false;
			pthread_cond_broadcast(&s->idle);
			pthread_cond_wait(&s->wake, &s->mu);
		}
		stopping = __atomic_load_n(&s->stop, __ATOMIC_ACQUIRE);
		if (load(&s->head) == s->tail && stopping)
			break;
		if (stopping && stop_by == INT64_MAX)
			stop_by = sbx_mono_ms() + 5 * WAIT_MS;
		s->busy = true;
		pthread_mutex_unlock(&s->mu);
		/* Let a moment's lines gather: one wake-up (two context
		 * switches) then carries many of them, not a loop pass's. */
		if (!stopping)
			(void)poll(NULL, 0, GATHER_MS);
		send_queued(s, stop_by);
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
	s->ring = malloc(RING_BYTES);
	s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (!s->ring || s->fd < 0)
		goto fail;
	if (pthread_mutex_init(&s->mu, NULL) != 0)
		goto fail;
	if (pthread_mutex_init(&s->pmu, NULL) != 0)
		goto fail_mu;
	if (pthread_cond_init(&s->wake, NULL) != 0)
		goto fail_pmu;
	if (pthread_cond_init(&s->idle, NULL) != 0)
		goto fail_wake;
	if (pthread_create(&s->th, NULL, sender_main, s) != 0)
		goto fail_idle;
	s->started = true;
	return s;
fail_idle:
	pthread_cond_destroy(&s->idle);
fail_wake:
	pthread_cond_destroy(&s->wake);
fail_pmu:
	pthread_mutex_destroy(&s->pmu);
fail_mu:
	pthread_mutex_destroy(&s->mu);
fail:
	if (s->fd >= 0)
		close(s->fd);
	free(s->ring);
	free(s);
	return NULL;
}

/* Where the next entry goes (room for the longest line, not wrapping),
 * or NULL when the ring or the line count is full.  Under pmu. */
static char *reserve(struct sbx_syslog_sink *s)
{
	uint64_t h = s->phead, used = h - load(&s->tail);
	size_t pos = (size_t)(h % RING_BYTES), skip = 0;

	if (RING_BYTES - pos < ENTRY_MAX)
		skip = RING_BYTES - pos;
	if (used + skip + ENTRY_MAX > RING_BYTES ||
	    s->lines_in - load(&s->lines_out) >= QUEUE_MAX)
		return NULL;
	if (skip) {
		uint32_t wrap = WRAP;

		memcpy(s->ring + pos, &wrap, sizeof(wrap));
		s->phead = h + skip;
		pos = 0;
	}
	return s->ring + pos;
}

/* The datagram's header ("<pri>Mmm dd hh:mm:ss sbx-brokerd[pid]: "),
 * made again once a second, not for every line.  Under pmu. */
static void line_header(struct sbx_syslog_sink *s, int pri, const char **text, size_t *len)
{
	time_t now = time(NULL);
	unsigned k = pri == SBX_SYSLOG_PRI_SEAL ? 1 : 0;

	if (now != s->stamp_at) {
		char msg[1] = "";

		s->stamp_at = now;
		s->head_len[0] = sbx_syslog_datagram(SBX_SYSLOG_PRI_RECORD, now, s->pid, msg,
						     s->head_text[0], sizeof(s->head_text[0]));
		s->head_len[1] = sbx_syslog_datagram(SBX_SYSLOG_PRI_SEAL, now, s->pid, msg,
						     s->head_text[1], sizeof(s->head_text[1]));
	}
	*text = s->head_text[k];
	*len = s->head_len[k];
}

/* One line into the ring; false when it was full. Under pmu. */
static bool put_line(struct sbx_syslog_sink *s, int pri, const json_t *rec, const char *hash)
{
	char *entry = reserve(s);
	const char *head;
	size_t hlen;
	uint32_t len;

	if (!entry)
		return false;
	line_header(s, pri, &head, &hlen);
	memcpy(entry + 4, head, hlen);
	len = (uint32_t)(hlen + sbx_syslog_format(rec, hash, entry + 4 + hlen,
						   SBX_SYSLOG_LINE_MAX - hlen));
	memcpy(entry, &len, sizeof(len));
	s->phead += (4 + len + 7) & ~(uint64_t)7;
	s->lines_in++;
	return true;
}

void sbx_syslog_sink_op(struct sbx_syslog_sink *s, int pri, json_t *const *recs, size_t n,
			const char (*hashes)[65])
{
	uint64_t lost = 0;

	if (!s || n == 0)
		return;
	pthread_mutex_lock(&s->pmu);
	for (size_t i = 0; i < n; i++) {
		/* Without hashes: a record outside an operation, whose own
		 * is the journal's. */
		const char *h = hashes ? hashes[i]
				       : json_string_value(json_object_get(recs[i], "hash"));

		if (!put_line(s, pri, recs[i], h ? h : ""))
			lost++;
	}
	/* The thread sees the lines (and the bytes under them) only now. */
	store(&s->head, s->phead);
	pthread_mutex_unlock(&s->pmu);
	if (lost)
		add(&s->dropped, lost);
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
	if (!s->busy && load(&s->head) != s->tail)
		pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->mu);
}

void sbx_syslog_sink_wait(struct sbx_syslog_sink *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	pthread_cond_signal(&s->wake);
	while (load(&s->head) != load(&s->tail) || s->busy)
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
	return s ? __atomic_load_n(&s->sent, __ATOMIC_RELAXED) : 0;
}

uint64_t sbx_syslog_sink_dropped(struct sbx_syslog_sink *s)
{
	return s ? __atomic_load_n(&s->dropped, __ATOMIC_RELAXED) : 0;
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
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->idle);
	pthread_mutex_destroy(&s->pmu);
	pthread_mutex_destroy(&s->mu);
	close(s->fd);
	free(s->ring);
	free(s);
}
