/*
 * The live record stream (tail.h; docs/protocol.md, "Audit: the live
 * record stream").
 *
 * The ring holds the last records appended, parsed (a reference to the
 * very record the journal made); their text is made when a caller needs
 * it.  A record leaves the ring only once it is durable and every
 * follower has been given it, so a burst of records in one loop pass
 * (thousands of grants expiring at once) is never lost to a follower:
 * the ring then holds more than SBX_TAIL_RING for a moment.
 *
 * A follower's frames wait in its own queue until the socket takes them;
 * a queue past SBX_TAIL_BUF_MAX means a reader that does not keep up: it
 * is dropped, its queue cut back to the frame being sent, and one last
 * frame tells it why and from which seq to read again.
 *
 * A text follower's queue holds no copies: a record's event text is made
 * once, in its ring entry, and every text follower that may see it
 * queues a reference to that one text (refcounted, so it outlives the
 * entry for a reader still taking it).  With a hundred readers of every
 * record, the pump costs the loop a pointer per reader, not a formatted
 * copy and two allocations.
 *
 * The writer thread: a text follower handed over (sbx_tail_sub_hand_over)
 * is sent to by a thread of its own, from its queue straight to its
 * socket, so the loop that answers checks spends no time on the sends.
 * The loop still decides everything (what a follower may see, when it is
 * too far behind); the thread only moves bytes.  What they share is such
 * a follower's queue (the loop appends, the thread takes from the
 * front), under the follower's own lock, held for a few pointer moves
 * and never across a send: the loop never waits for a send nor for the
 * thread's walk over its followers.
 */
#include "config.h"

#include "tail.h"

#include "broker.h"
#include "dispatch.h"
#include "log.h"
#include "record_filter.h"
#include "sbxio.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

/* A dropped follower gets this long to read its last frame. */
#define DROP_GRACE_MS 5000
/* Room left in a frame for its header, STATUS, MESSAGE and SEQ. */
#define FRAME_ROOM (SBX_FRAME_MAX - 1024)

/* Bytes shared by the text followers' queues; freed with the last ref
 * (the loop and the writer thread both give refs back: atomic). */
struct blob {
	unsigned refs;
	size_t len;
	char data[];
};

struct ent {
	uint64_t seq;
	json_t *rec;
	char *text;             /* its wire text, made once when first needed */
	struct blob *sse;       /* its Server-Sent Event, made once when first needed */
};

struct frame {
	struct frame *next;
	uint8_t *buf;
	size_t len;
};

struct sbx_tail_sub {
	struct sbx_tail_sub *prev, *next;
	uid_t uid;
	bool admin;
	char person[SBX_NAME_MAX + 1];
	char user[SBX_NAME_MAX + 1], actor[SBX_NAME_MAX + 1], role[SBX_NAME_MAX + 1];
	char event[SBX_NAME_MAX + 1], host[SBX_NAME_MAX + 1], outcome[32];
	struct sbx_rec_filter f;
	uint64_t next_seq;      /* the first record not yet queued */
	struct frame *head, *tail;
	size_t queued;          /* bytes in the queue, sent ones excluded */
	size_t sent;            /* of head */
	bool dropped;
	int64_t drop_deadline_ms;
	bool claimed;           /* a connection holds it */
	/* A text follower (sbx_tail_follow_text): its queue holds Server-Sent
	 * Events text rather than frames (q: a circular array of qn refs from
	 * qhead; sent counts into the first), and wake(wake_arg) says when
	 * bytes were queued. */
	bool text;
	struct sbx_tail *t;     /* its stream */
	struct blob **q;
	size_t qcap, qhead, qn;
	/* Handed to the writer thread (handed: set and read by the loop
	 * only): wfd is the thread's own dup of the socket; q, qhead, qn,
	 * sent, queued and inflight (the queue entries the thread is sending
	 * from: a drop keeps them) are then under qlock; busy and blocked are
	 * the thread's, under its lock; werr (the reader is gone) is atomic. */
	pthread_mutex_t qlock;
	bool handed, busy, blocked, werr;
	int wfd;
	uint64_t wid;
	size_t inflight;
	uint64_t taken;         /* bytes taken by sbx_tail_sub_read */
	struct sbx_tail_sub *wnext;
	void (*wake)(void *arg);
	void *wake_arg;
};

struct sbx_tail {
	struct ent *ring;       /* circular, oldest at first */
	size_t cap, first, n;
	uint64_t durable;       /* the last durable seq the pump saw */
	char host[SBX_NAME_MAX + 1];
	struct sbx_tail_sub *subs;
	size_t nsubs;
	struct sbx_tail_sub *pending;  /* made by the op, not yet claimed */
	void (*after_pump)(void *arg);
	void *after_pump_arg;
	const struct sbx_broker *b;    /* for who may see a request */
	struct writer *w;              /* started at the first hand-over */
	bool kick;                     /* the pump queued for a handed follower */
};

struct writer {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t idle;           /* a follower is no longer busy */
	int ep, kick;                  /* its epoll set; an eventfd that wakes it */
	bool stopping;
	bool sleeping;                 /* atomic: in epoll_wait with nothing to do */
	uint64_t next_id;
	struct sbx_tail_sub *subs;     /* handed over (wnext) */
};

static void blob_put(struct blob *b)
{
	if (b && __atomic_sub_fetch(&b->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(b);
}

/* A blob of printf text, one ref; NULL when out of memory. */
static struct blob *blob_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static struct blob *blob_vprintf(const char *fmt, va_list ap)
{
	struct blob *b;
	va_list again;
	int n;

	va_copy(again, ap);
	n = vsnprintf(NULL, 0, fmt, ap);
	b = n < 0 ? NULL : malloc(sizeof(*b) + (size_t)n + 1);
	if (b) {
		(void)vsnprintf(b->data, (size_t)n + 1, fmt, again);
		b->refs = 1;
		b->len = (size_t)n;
	}
	va_end(again);
	return b;
}

static struct blob *blob_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct blob *blob_printf(const char *fmt, ...)
{
	struct blob *b;
	va_list ap;

	va_start(ap, fmt);
	b = blob_vprintf(fmt, ap);
	va_end(ap);
	return b;
}

static void ent_clear(struct ent *e)
{
	json_decref(e->rec);
	free(e->text);
	blob_put(e->sse);
	e->rec = NULL;
	e->text = NULL;
	e->sse = NULL;
}

static struct sbx_tail *tail_new(void)
{
	struct sbx_tail *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->cap = SBX_TAIL_RING;
	t->ring = calloc(t->cap, sizeof(*t->ring));
	if (!t->ring) {
		free(t);
		return NULL;
	}
	return t;
}

static struct ent *ent_at(const struct sbx_tail *t, size_t i)
{
	return &t->ring[(t->first + i) % t->cap];
}

/* The oldest record every follower was given and that is durable may go. */
static void ring_trim(struct sbx_tail *t)
{
	while (t->n > SBX_TAIL_RING && t->ring[t->first].seq <= t->durable) {
		bool wanted = false;

		for (struct sbx_tail_sub *s = t->subs; s; s = s->next)
			if (!s->dropped && s->next_seq <= t->ring[t->first].seq)
				wanted = true;
		if (wanted)
			return;
		ent_clear(&t->ring[t->first]);
		t->first = (t->first + 1) % t->cap;
		t->n--;
	}
}

static int ring_push(struct sbx_tail *t, uint64_t seq, const json_t *rec)
{
	ring_trim(t);
	if (t->n == t->cap) {
		/* Records not yet durable or given out: grow for the moment. */
		size_t cap = t->cap * 2;
		struct ent *r = calloc(cap, sizeof(*r));

		if (!r)
			return -1;
		for (size_t i = 0; i < t->n; i++)
			r[i] = *ent_at(t, i);
		free(t->ring);
		t->ring = r;
		t->cap = cap;
		t->first = 0;
	}
	ent_at(t, t->n)->seq = seq;
	ent_at(t, t->n)->rec = json_incref((json_t *)rec);
	ent_at(t, t->n)->text = NULL;
	ent_at(t, t->n)->sse = NULL;
	t->n++;
	return 0;
}

void sbx_tail_on_record(struct sbx_broker *b, const json_t *rec)
{
	json_int_t seq = json_integer_value(json_object_get(rec, "seq"));

	if (!b->tail && !(b->tail = tail_new())) {
		sbx_warn("tail: out of memory: the live record stream is off");
		return;
	}
	b->tail->b = b;
	if (seq <= 0)
		return;
	/* A replay that gave its snapshot up starts again from seq 1. */
	if (b->tail->n && (uint64_t)seq <= ent_at(b->tail, b->tail->n - 1)->seq) {
		for (size_t i = 0; i < b->tail->n; i++)
			ent_clear(ent_at(b->tail, i));
		b->tail->n = 0;
		b->tail->first = 0;
	}
	/* A replayed record is on disk already. */
	if (b->replaying && (uint64_t)seq > b->tail->durable)
		b->tail->durable = (uint64_t)seq;
	if (ring_push(b->tail, (uint64_t)seq, rec) < 0)
		sbx_warn("tail: out of memory: record %lld is not streamed", (long long)seq);
}

/* ---- who sees what ------------------------------------------------------------ */

static bool str_is(const json_t *rec, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(rec, key));

	return v && strcmp(v, want) == 0;
}

/* Root and admins see every record; anyone else the records about them
 * (user) or by them (actor): their own requests, grants, logins; and the
 * records of requests they may decide (sbx_broker_may_see), so that an
 * approver hears of a request that waits for them.  The broker's own
 * actor is nobody's: an account named "sbx" would otherwise see every
 * grant the broker activated or ended, anyone's. */
static bool may_see(const struct sbx_tail *t, const struct sbx_tail_sub *s, const json_t *rec)
{
	json_int_t id;
	const char *ev;
	const struct sbx_req *r;

	if (s->admin || str_is(rec, "user", s->person) ||
	    (strcmp(s->person, SBX_SYSTEM_ACTOR) != 0 && str_is(rec, "actor", s->person)))
		return true;
	ev = json_string_value(json_object_get(rec, "event"));
	id = json_integer_value(json_object_get(rec, "id"));
	if (!t->b || !ev || id <= 0 || id > UINT32_MAX ||
	    (strncmp(ev, "request.", 8) != 0 && strncmp(ev, "grant.", 6) != 0))
		return false;
	r = sbx_state_get(t->b->state, (uint32_t)id);
	return r && sbx_broker_may_see(t->b, r, s->person, false);
}

static bool wants(const struct sbx_tail *t, const struct sbx_tail_sub *s, const json_t *rec)
{
	return may_see(t, s, rec) && sbx_rec_filter_match(rec, &s->f, t->host[0] ? t->host : NULL);
}

/* The record's text for the wire: its members as the broker applied
 * them, without prev, hash and continued.  Those belong to the journal's
 * bytes, which it may still rewrite when an operation of several records
 * ends (docs/audit.md, "Operations"): a record in memory does not carry
 * them as they end up on disk.  One too long for a STR field is cut to
 * what says where to find it. */
static char *record_text(const json_t *rec)
{
	json_t *copy = json_copy((json_t *)rec), *stub;
	char *text;

	if (!copy)
		return NULL;
	json_object_del(copy, "prev");
	json_object_del(copy, "hash");
	json_object_del(copy, "continued");
	text = json_dumps(copy, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
	json_decref(copy);

	if (!text || strlen(text) <= SBX_STR_MAX)
		return text;
	free(text);
	stub = json_pack("{s:O?, s:O?, s:O?, s:O?, s:s}", "seq", json_object_get(rec, "seq"),
			 "time", json_object_get(rec, "time"), "event", json_object_get(rec, "event"),
			 "actor", json_object_get(rec, "actor"), "omitted",
			 "the record is longer than a frame field: read it with sbxctl audit query");
	text = stub ? json_dumps(stub, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER) : NULL;
	json_decref(stub);
	return text;
}

/* The entry's wire text, made on first use and kept.  NULL: no memory. */
static const char *ent_text(struct ent *e)
{
	if (!e->text)
		e->text = record_text(e->rec);
	return e->text;
}

/* The entry's Server-Sent Event ("id" its seq, what a reader gives back
 * as Last-Event-ID; "data" the record), made on first use and shared by
 * every text follower.  NULL: no memory. */
static struct blob *ent_sse(struct ent *e)
{
	const char *text;

	if (!e->sse && (text = ent_text(e)))
		e->sse = blob_printf("id: %llu\ndata: %s\n\n", (unsigned long long)e->seq, text);
	return e->sse;
}

/* Put one record into m if it fits; false when it does not (m unchanged). */
static bool put_record(sbx_msg *m, struct ent *e)
{
	const char *text = ent_text(e);
	sbx_msg_mark mark = sbx_msg_here(m);
	bool ok;

	if (!text)
		return false;
	ok = m->len + strlen(text) + SBX_FIELD_HDR_LEN <= FRAME_ROOM &&
	     sbx_msg_put_str(m, SBX_F_RECORD, text) == 0;
	if (!ok)
		sbx_msg_undo_if_failed(m, mark);
	return ok;
}

/* ---- the op -------------------------------------------------------------------- */

static size_t subs_of(const struct sbx_tail *t, uid_t uid)
{
	size_t n = 0;

	for (const struct sbx_tail_sub *s = t->subs; s; s = s->next)
		n += !s->text && s->uid == uid;
	return n;
}

/* Give back the text queue's refs from the (qn - keep) last ones on. */
static void q_cut(struct sbx_tail_sub *s, size_t keep)
{
	while (s->qn > keep) {
		s->qn--;
		blob_put(s->q[(s->qhead + s->qn) % s->qcap]);
	}
}

static void sub_free(struct sbx_tail_sub *s)
{
	while (s->head) {
		struct frame *f = s->head;

		s->head = f->next;
		free(f->buf);
		free(f);
	}
	q_cut(s, 0);
	free(s->q);
	pthread_mutex_destroy(&s->qlock);
	free(s);
}

/* A follower of spec (the strings copied). */
static struct sbx_tail_sub *sub_new(const struct sbx_tail_spec *spec)
{
	struct sbx_tail_sub *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->uid = spec->uid;
	s->admin = spec->admin;
	s->wfd = -1;
	pthread_mutex_init(&s->qlock, NULL);
	snprintf(s->person, sizeof(s->person), "%s", spec->person ? spec->person : "");
#define COPY(field) do { \
		snprintf(s->field, sizeof(s->field), "%s", spec->field ? spec->field : ""); \
		s->f.field = s->field[0] ? s->field : NULL; \
	} while (0)
	COPY(user);
	COPY(actor);
	COPY(role);
	COPY(event);
	COPY(host);
	COPY(outcome);
#undef COPY
	s->f.has_id = spec->has_id;
	s->f.id = spec->id;
	return s;
}

static struct sbx_tail_sub *sub_of_call(const struct sbx_call *c, bool admin)
{
	const struct sbx_args *a = &c->a;
	struct sbx_tail_spec spec = {
		.person = c->who.person, .admin = admin, .uid = c->caller->uid,
		.user = a->user, .actor = a->actor, .role = a->role, .event = a->event,
		.host = a->host, .outcome = a->outcome, .has_id = a->has_id, .id = a->id,
	};

	return sub_new(&spec);
}

void sbx_op_tail(struct sbx_broker *b, struct sbx_call *c)
{
	struct sbx_tail *t = b->tail;
	bool follow = c->a.flags & SBX_TAIL_FOLLOW, admin = c->who.admin;
	uint32_t count = c->a.has_count ? c->a.count : SBX_TAIL_COUNT_DEFAULT;
	uint32_t cap = c->caller->uid == 0 ? SBX_TAIL_SUBS_ROOT : SBX_TAIL_SUBS_PER_UID;
	struct sbx_tail_sub *s = NULL;
	size_t from, shown = 0, taken = 0, size = 0;

	if (!t && !(b->tail = t = tail_new())) {
		sbx_reply_fail(c, SBX_ST_INTERNAL, "out of memory");
		return;
	}
	snprintf(t->host, sizeof(t->host), "%s", b->policy->broker.host ? b->policy->broker.host
									  : "");
	t->b = b;
	if (c->a.outcome[0] && !sbx_rec_outcome_known(c->a.outcome)) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "unknown outcome \"%s\": one of %s", c->a.outcome,
			       sbx_rec_outcome_list());
		return;
	}
	if (count > SBX_TAIL_RING) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "count %u: the broker keeps the last %u records "
			       "(older ones: sbxctl audit query)", count, SBX_TAIL_RING);
		return;
	}
	if (follow && t->nsubs >= SBX_TAIL_SUBS_MAX) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "too many followers: the broker streams to at "
			       "most %u connections at once; try again later", SBX_TAIL_SUBS_MAX);
		return;
	}
	if (follow && subs_of(t, c->caller->uid) >= cap) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "%s follows the journal on %u connections "
			       "already (at most %u per user)", c->caller->name, cap, cap);
		return;
	}
	s = sub_of_call(c, admin);
	if (!s) {
		sbx_reply_fail(c, SBX_ST_INTERNAL, "out of memory");
		return;
	}
	/* The backlog: the last `count` durable records the caller may see
	 * and asked for, as many of them as fit, oldest first. */
	from = t->n;
	while (from > 0 && taken < count) {
		struct ent *e = ent_at(t, from - 1);
		const char *text;

		if (e->seq > t->durable || !wants(t, s, e->rec)) {
			from--;
			continue;
		}
		text = ent_text(e);
		if (!text || size + strlen(text) + SBX_FIELD_HDR_LEN > FRAME_ROOM)
			break;
		size += strlen(text) + SBX_FIELD_HDR_LEN;
		taken++;
		from--;
	}
	sbx_reply_okf(c, "%s", follow ? "following" : "");
	sbx_msg_put_i64(c->reply, SBX_F_SEQ, (int64_t)t->durable);
	for (size_t i = from; i < t->n && shown < taken; i++) {
		struct ent *e = ent_at(t, i);

		if (e->seq > t->durable || !wants(t, s, e->rec))
			continue;
		if (!put_record(c->reply, e))
			break;
		shown++;
	}
	if (!follow) {
		sub_free(s);
		return;
	}
	s->next_seq = t->durable + 1;
	/* Claimed by the server right after this handler (sbx_tail_claim);
	 * an unclaimed one (a caller in process, tests) is dropped then. */
	if (t->pending)
		sub_free(t->pending);
	t->pending = s;
}

struct sbx_tail_sub *sbx_tail_claim(struct sbx_tail *t)
{
	struct sbx_tail_sub *s;

	if (!t || !t->pending)
		return NULL;
	s = t->pending;
	t->pending = NULL;
	s->claimed = true;
	s->next = t->subs;
	if (t->subs)
		t->subs->prev = s;
	t->subs = s;
	t->nsubs++;
	return s;
}

/* ---- streaming -------------------------------------------------------------- */

static void qlock(struct sbx_tail_sub *s);
static void qunlock(struct sbx_tail_sub *s);
static void writer_kick(struct sbx_tail *t);
static void writer_take_back(struct sbx_tail *t, struct sbx_tail_sub *s);

static int queue_msg(struct sbx_tail_sub *s, sbx_msg *m)
{
	struct frame *f;

	if (sbx_msg_finish(m) < 0)
		return -1;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	f->buf = m->buf;
	f->len = m->len;
	memset(m, 0, sizeof(*m));
	if (s->tail)
		s->tail->next = f;
	else
		s->head = f;
	s->tail = f;
	s->queued += f->len;
	return 0;
}

/* Queue a reference to b for a text follower.  0, or -1 when out of
 * memory. */
static int queue_blob(struct sbx_tail_sub *s, struct blob *b)
{
	if (s->qn == s->qcap) {
		size_t cap = s->qcap ? s->qcap * 2 : 16;
		struct blob **q = malloc(cap * sizeof(*q));

		if (!q)
			return -1;
		for (size_t i = 0; i < s->qn; i++)
			q[i] = s->q[(s->qhead + i) % s->qcap];
		free(s->q);
		s->q = q;
		s->qcap = cap;
		s->qhead = 0;
	}
	s->q[(s->qhead + s->qn) % s->qcap] = b;
	s->qn++;
	__atomic_add_fetch(&b->refs, 1, __ATOMIC_RELAXED);
	s->queued += b->len;
	return 0;
}

/* Queue text of this follower's own (a gap, a drop, a keep-alive).  0,
 * or -1 when out of memory. */
static int queue_text(struct sbx_tail_sub *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int queue_text(struct sbx_tail_sub *s, const char *fmt, ...)
{
	struct blob *b;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	b = blob_vprintf(fmt, ap);
	va_end(ap);
	if (!b)
		return -1;
	rc = queue_blob(s, b);
	blob_put(b);
	return rc;
}

/* Too far behind: keep only the frame on the wire, say why, close soon. */
static void drop(struct sbx_tail_sub *s, uint64_t missed_from, int64_t now_ms)
{
	struct frame *keep = s->sent ? s->head : NULL, *f = keep ? keep->next : s->head;
	char msg[512];
	sbx_msg m = { 0 };

	while (f) {
		struct frame *next = f->next;

		free(f->buf);
		free(f);
		f = next;
	}
	if (keep)
		keep->next = NULL;
	s->head = s->tail = keep;
	s->queued = keep ? keep->len - s->sent : 0;
	/* A text follower: the same, in its queue of refs; the entries the
	 * writer thread is sending from stay. */
	if (s->text) {
		q_cut(s, s->inflight > 0 ? s->inflight : s->sent && s->qn ? 1 : 0);
		if (!s->qn)
			s->sent = 0;
		s->queued = 0;
		for (size_t i = 0; i < s->qn; i++)
			s->queued += s->q[(s->qhead + i) % s->qcap]->len;
		s->queued -= s->qn ? s->sent : 0;
	}
	snprintf(msg, sizeof(msg), "dropped: this reader fell more than %u KiB behind the "
		 "journal; records from seq %llu on were not sent (read them with sbxctl audit "
		 "query, then follow again)", SBX_TAIL_BUF_MAX / 1024,
		 (unsigned long long)missed_from);
	if (s->text) {
		json_t *o = json_pack("{s:s, s:I}", "message", msg, "seq", (json_int_t)missed_from);
		char *j = o ? json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;

		if (j)
			(void)queue_text(s, "event: dropped\ndata: %s\n\n", j);
		free(j);
		json_decref(o);
	} else {
		sbx_msg_init_reply(&m, SBX_OP_TAIL | SBX_OP_REPLY, SBX_ST_REFUSED, msg);
		sbx_msg_put_i64(&m, SBX_F_SEQ, (int64_t)missed_from);
		if (queue_msg(s, &m) < 0)
			sbx_msg_free(&m);
	}
	s->dropped = true;
	s->drop_deadline_ms = now_ms + DROP_GRACE_MS;
	sbx_info("tail: dropped a follower of uid %u (%s): more than %u KiB behind",
		 (unsigned)s->uid, s->person, SBX_TAIL_BUF_MAX / 1024);
}

/* A text follower: one event per record (ent_sse), queued by reference. */
static void pump_text(struct sbx_tail *t, struct sbx_tail_sub *s, int64_t now_ms)
{
	size_t i = 0, before = s->queued;
	bool was_dropped = s->dropped;

	while (i < t->n && ent_at(t, i)->seq < s->next_seq)
		i++;
	for (; i < t->n && !s->dropped; i++) {
		struct ent *e = ent_at(t, i);
		struct blob *sse;

		if (e->seq > t->durable)
			break;
		if (wants(t, s, e->rec)) {
			sse = ent_sse(e);
			if (!sse)
				break;
			if (s->queued + sse->len > SBX_TAIL_BUF_MAX) {
				drop(s, e->seq, now_ms);
				break;
			}
			if (queue_blob(s, sse) < 0)
				break;
		}
		s->next_seq = e->seq + 1;
	}
	if (!s->dropped && s->next_seq <= t->durable)
		s->next_seq = t->durable + 1;
	if (s->queued == before && s->dropped == was_dropped)
		return;
	if (s->handed)
		t->kick = true;
	else if (s->wake)
		s->wake(s->wake_arg);
}

static void pump_one(struct sbx_tail *t, struct sbx_tail_sub *s, int64_t now_ms)
{
	sbx_msg m = { 0 };
	bool open = false;
	size_t i = 0;

	if (s->dropped || s->next_seq > t->durable)
		return;
	if (s->text) {
		qlock(s);
		pump_text(t, s, now_ms);
		qunlock(s);
		return;
	}
	/* The ring is in seq order: skip what this follower has had. */
	while (i < t->n && ent_at(t, i)->seq < s->next_seq)
		i++;
	for (; i < t->n; i++) {
		struct ent *e = ent_at(t, i);

		if (e->seq > t->durable)
			break;
		if (wants(t, s, e->rec)) {
			if (!open) {
				sbx_msg_init_reply(&m, SBX_OP_TAIL | SBX_OP_REPLY, SBX_ST_OK, NULL);
				open = true;
			}
			if (!put_record(&m, e)) {
				if (queue_msg(s, &m) < 0)
					break;
				sbx_msg_init_reply(&m, SBX_OP_TAIL | SBX_OP_REPLY, SBX_ST_OK, NULL);
				if (!put_record(&m, e)) {
					/* Cannot happen: record_text fits a field. */
					s->next_seq = e->seq + 1;
					continue;
				}
			}
			if (s->queued + m.len > SBX_TAIL_BUF_MAX) {
				sbx_msg_free(&m);
				open = false;
				drop(s, e->seq, now_ms);
				return;
			}
		}
		s->next_seq = e->seq + 1;
	}
	if (open && queue_msg(s, &m) < 0)
		sbx_msg_free(&m);
	if (s->next_seq <= t->durable)
		s->next_seq = t->durable + 1;
}

void sbx_tail_pump(struct sbx_tail *t, uint64_t durable_seq, int64_t now_ms)
{
	if (!t)
		return;
	if (durable_seq > t->durable)
		t->durable = durable_seq;
	for (struct sbx_tail_sub *s = t->subs; s; s = s->next)
		pump_one(t, s, now_ms);
	writer_kick(t);
	ring_trim(t);
	if (t->after_pump)
		t->after_pump(t->after_pump_arg);
}

int sbx_tail_sub_send(struct sbx_tail_sub *s, int fd, int64_t now_ms)
{
	while (s->head) {
		struct frame *f = s->head;
		ssize_t w = send(fd, f->buf + s->sent, f->len - s->sent, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return s->dropped && now_ms >= s->drop_deadline_ms ? -1 : 1;
		if (w <= 0)
			return -1;
		s->sent += (size_t)w;
		s->queued -= (size_t)w;
		if (s->sent < f->len)
			continue;
		s->head = f->next;
		if (!s->head)
			s->tail = NULL;
		s->sent = 0;
		free(f->buf);
		free(f);
	}
	return s->dropped ? -1 : 0;
}

void sbx_tail_sub_close(struct sbx_tail *t, struct sbx_tail_sub *s)
{
	if (!s)
		return;
	writer_take_back(t, s);
	if (t && s->claimed) {
		if (s->prev)
			s->prev->next = s->next;
		else
			t->subs = s->next;
		if (s->next)
			s->next->prev = s->prev;
		if (!s->text)
			t->nsubs--;
	}
	sub_free(s);
	if (t)
		ring_trim(t);
}

static void writer_stop(struct sbx_tail *t);

void sbx_tail_free(struct sbx_tail *t)
{
	if (!t)
		return;
	writer_stop(t);
	while (t->subs) {
		struct sbx_tail_sub *s = t->subs;

		t->subs = s->next;
		sub_free(s);
	}
	if (t->pending)
		sub_free(t->pending);
	for (size_t i = 0; i < t->n; i++)
		ent_clear(ent_at(t, i));
	free(t->ring);
	free(t);
}

/* ---- text followers (the HTTP API's event stream) ------------------------------ */

struct sbx_tail_sub *sbx_tail_follow_text(struct sbx_broker *b, const struct sbx_tail_spec *spec,
					  uint64_t after_seq, uint32_t count,
					  void (*wake)(void *arg), void *arg)
{
	struct sbx_tail *t = b->tail;
	struct sbx_tail_sub *s;

	if (!t && !(b->tail = t = tail_new()))
		return NULL;
	snprintf(t->host, sizeof(t->host), "%s", b->policy->broker.host ? b->policy->broker.host
									  : "");
	t->b = b;
	s = sub_new(spec);
	if (!s)
		return NULL;
	s->text = true;
	s->t = t;
	s->claimed = true;
	s->next_seq = t->durable + 1;
	if (after_seq && after_seq < t->durable) {
		/* Resuming (Last-Event-ID): from the ring, saying so when
		 * records it needs have left it. */
		s->next_seq = after_seq + 1;
		if (t->n && ent_at(t, 0)->seq > after_seq + 1)
			(void)queue_text(s, "event: gap\ndata: {\"from\":%llu,\"to\":%llu,"
					 "\"message\":\"records before seq %llu have left the "
					 "broker's memory: read them with sbxctl audit query\"}\n\n",
					 (unsigned long long)(after_seq + 1),
					 (unsigned long long)(ent_at(t, 0)->seq - 1),
					 (unsigned long long)ent_at(t, 0)->seq);
	} else if (!after_seq && count) {
		/* A backlog: the last count durable records it may see. */
		uint32_t taken = 0;

		for (size_t i = t->n; i > 0 && taken < count; i--) {
			struct ent *e = ent_at(t, i - 1);

			if (e->seq > t->durable || !wants(t, s, e->rec))
				continue;
			s->next_seq = e->seq;
			taken++;
		}
	}
	s->next = t->subs;
	if (t->subs)
		t->subs->prev = s;
	t->subs = s;
	pump_text(t, s, sbx_mono_ms());
	/* Set after the first pump: the caller is not ready to be woken
	 * before it has the follower. */
	s->wake = wake;
	s->wake_arg = arg;
	return s;
}

size_t sbx_tail_sub_read(struct sbx_tail_sub *s, char *buf, size_t max)
{
	size_t got = 0;

	while (s->qn && got < max) {
		struct blob *b = s->q[s->qhead];
		size_t n = b->len - s->sent;

		if (n > max - got)
			n = max - got;
		memcpy(buf + got, b->data + s->sent, n);
		got += n;
		s->sent += n;
		s->queued -= n;
		s->taken += n;
		if (s->sent < b->len)
			break;
		s->qhead = (s->qhead + 1) % s->qcap;
		s->qn--;
		s->sent = 0;
		blob_put(b);
	}
	return got;
}

bool sbx_tail_sub_done(const struct sbx_tail_sub *s)
{
	return s->dropped && !s->qn;
}

bool sbx_tail_sub_dropped(const struct sbx_tail_sub *s)
{
	return s->dropped;
}

int sbx_tail_sub_note(struct sbx_tail_sub *s, const char *comment)
{
	struct sbx_tail *t = s->t;
	int rc = 0;

	qlock(s);
	if (!s->dropped && s->queued <= SBX_TAIL_BUF_MAX / 2)
		rc = queue_text(s, ": %s\n\n", comment);
	qunlock(s);
	if (s->handed && t) {
		t->kick = true;
		writer_kick(t);
	}
	return rc;
}

void sbx_tail_set_after_pump(struct sbx_broker *b, void (*fn)(void *arg), void *arg)
{
	if (!b->tail && !(b->tail = tail_new()))
		return;
	b->tail->after_pump = fn;
	b->tail->after_pump_arg = arg;
}

/* ---- the writer thread ---------------------------------------------------------- */

/* A handed follower's queue is shared with the thread; anyone else's is
 * the loop's alone. */
static void qlock(struct sbx_tail_sub *s)
{
	if (s->handed)
		pthread_mutex_lock(&s->qlock);
}

static void qunlock(struct sbx_tail_sub *s)
{
	if (s->handed)
		pthread_mutex_unlock(&s->qlock);
}

/* Wake the thread when the loop queued bytes for it and it sleeps: at
 * most once a pass, and not at all while it is at work anyway. */
static void writer_kick(struct sbx_tail *t)
{
	uint64_t one = 1;

	if (!t || !t->w || !t->kick)
		return;
	t->kick = false;
	if (!__atomic_exchange_n(&t->w->sleeping, false, __ATOMIC_SEQ_CST))
		return;
	if (write(t->w->kick, &one, sizeof(one)) < 0 && errno != EAGAIN)
		sbx_warn("tail: cannot wake the writer thread: %s", strerror(errno));
}

/* The writer sent n bytes from the front of s's queue (qlock held). */
static void writer_consumed(struct sbx_tail_sub *s, size_t n)
{
	while (n && s->qn) {
		struct blob *b = s->q[s->qhead];
		size_t left = b->len - s->sent;

		if (n < left) {
			s->sent += n;
			s->queued -= n;
			return;
		}
		n -= left;
		s->queued -= left;
		s->sent = 0;
		s->qhead = (s->qhead + 1) % s->qcap;
		s->qn--;
		blob_put(b);
	}
}

#define WRITER_IOV 64
#define WRITER_SEND_MAX (256 * 1024)

/* Send what s has queued, as much as its socket takes.  Called with the
 * writer's lock held and s busy; the lock is let go meanwhile.  true
 * when bytes went out. */
static bool writer_send(struct writer *w, struct sbx_tail_sub *s)
{
	struct iovec iov[WRITER_IOV];
	struct msghdr msg = { .msg_iov = iov };
	size_t k = 0, total = 0;
	ssize_t r = 0;
	int err = 0;

	pthread_mutex_unlock(&w->lock);
	pthread_mutex_lock(&s->qlock);
	while (k < s->qn && k < WRITER_IOV && total < WRITER_SEND_MAX) {
		struct blob *b = s->q[(s->qhead + k) % s->qcap];
		size_t off = k ? 0 : s->sent;

		iov[k].iov_base = b->data + off;
		iov[k].iov_len = b->len - off;
		total += b->len - off;
		k++;
	}
	/* The entries stay while inflight (a drop keeps them) and only this
	 * thread takes entries off the front: their bytes are safe to send
	 * without the lock. */
	s->inflight = k;
	pthread_mutex_unlock(&s->qlock);
	if (k) {
		msg.msg_iovlen = k;
		r = sendmsg(s->wfd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		err = errno;
		pthread_mutex_lock(&s->qlock);
		s->inflight = 0;
		if (r > 0)
			writer_consumed(s, (size_t)r);
		pthread_mutex_unlock(&s->qlock);
	}
	pthread_mutex_lock(&w->lock);
	if (!k)
		return false;
	if (r > 0) {
		if ((size_t)r < total)
			s->blocked = true;  /* the socket is full: wait for EPOLLOUT */
		return true;
	}
	if (r < 0 && (err == EAGAIN || err == EWOULDBLOCK))
		s->blocked = true;
	else if (!(r < 0 && err == EINTR))
		__atomic_store_n(&s->werr, true, __ATOMIC_RELEASE); /* the loop ends the stream */
	return false;
}

/* One round over the followers (the writer's lock held); true when any
 * bytes went out. */
static bool writer_round(struct writer *w)
{
	bool progress = false;

	/* s stays listed while busy (take-back waits for it), so its wnext
	 * is read under the lock again after each send. */
	for (struct sbx_tail_sub *s = w->subs; s && !w->stopping; s = s->wnext) {
		if (s->blocked || __atomic_load_n(&s->werr, __ATOMIC_ACQUIRE))
			continue;
		s->busy = true;
		if (writer_send(w, s))
			progress = true;
		s->busy = false;
		pthread_cond_broadcast(&w->idle);
	}
	return progress;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct epoll_event evs[64];
	int timeout = 0;

	pthread_mutex_lock(&w->lock);
	while (!w->stopping) {
		int n;

		pthread_mutex_unlock(&w->lock);
		n = epoll_wait(w->ep, evs, 64, timeout);
		if (n < 0 && errno != EINTR) {
			sbx_err("tail: the writer thread's epoll_wait: %s", strerror(errno));
			usleep(10000);
		}
		pthread_mutex_lock(&w->lock);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.u64 == 0) {
				uint64_t v;

				if (read(w->kick, &v, sizeof(v)) < 0 && errno != EAGAIN)
					sbx_warn("tail: the writer's wake-up: %s", strerror(errno));
				continue;
			}
			/* By id, not pointer: a follower taken back since
			 * epoll_wait returned is simply not found. */
			for (struct sbx_tail_sub *s = w->subs; s; s = s->wnext) {
				if (s->wid != evs[i].data.u64)
					continue;
				s->blocked = false;
				if (evs[i].events & (EPOLLERR | EPOLLHUP))
					__atomic_store_n(&s->werr, true, __ATOMIC_RELEASE);
			}
		}
		while (!w->stopping && writer_round(w))
			;
		/* Going to sleep: say so first, then look once more, so that
		 * bytes the loop queued meanwhile are either seen here or
		 * followed by a kick (writer_kick). */
		__atomic_store_n(&w->sleeping, true, __ATOMIC_SEQ_CST);
		timeout = -1;
		if (!w->stopping && writer_round(w)) {
			__atomic_store_n(&w->sleeping, false, __ATOMIC_SEQ_CST);
			timeout = 0;
		}
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

static int writer_start(struct sbx_tail *t)
{
	struct writer *w = calloc(1, sizeof(*w));
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = 0 };
	sigset_t all, old;
	int rc;

	if (!w)
		return -ENOMEM;
	w->ep = epoll_create1(EPOLL_CLOEXEC);
	w->kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->ep < 0 || w->kick < 0 || epoll_ctl(w->ep, EPOLL_CTL_ADD, w->kick, &ev) < 0) {
		rc = -errno;
		goto fail;
	}
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->idle, NULL);
	/* Signals are the loop's (its signalfd): none for this thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&w->thread, NULL, writer_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		pthread_cond_destroy(&w->idle);
		pthread_mutex_destroy(&w->lock);
		goto fail;
	}
	t->w = w;
	return 0;
fail:
	if (w->ep >= 0)
		close(w->ep);
	if (w->kick >= 0)
		close(w->kick);
	free(w);
	return rc;
}

int sbx_tail_sub_hand_over(struct sbx_tail *t, struct sbx_tail_sub *s, int fd)
{
	struct epoll_event ev = { .events = EPOLLOUT | EPOLLET };
	struct rlimit lim;
	int wfd, rc;

	if (!t || !s->text || s->handed)
		return -EINVAL;
	if (!t->w && (rc = writer_start(t)) < 0) {
		sbx_warn("tail: no writer thread (%s): event streams are sent from the loop",
			 strerror(-rc));
		return rc;
	}
	wfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (wfd < 0)
		return -errno;
	/* The copy is a second descriptor per stream: never at the cost of
	 * the ones the loop needs to accept checks (a quarter stays free). */
	if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)wfd >= lim.rlim_cur - lim.rlim_cur / 4) {
		close(wfd);
		return -EMFILE;
	}
	/* The transport may have corked the socket for what it meant to
	 * send next; the thread's sends go out as they are. */
	(void)setsockopt(wfd, IPPROTO_TCP, TCP_CORK, &(int){ 0 }, sizeof(int));
	pthread_mutex_lock(&t->w->lock);
	s->wid = ++t->w->next_id;
	ev.data.u64 = s->wid;
	if (epoll_ctl(t->w->ep, EPOLL_CTL_ADD, wfd, &ev) < 0) {
		rc = -errno;
		pthread_mutex_unlock(&t->w->lock);
		close(wfd);
		return rc;
	}
	s->wfd = wfd;
	s->blocked = false;
	__atomic_store_n(&s->werr, false, __ATOMIC_RELEASE);
	s->wnext = t->w->subs;
	t->w->subs = s;
	/* From here on the queue is shared: the thread takes qlock. */
	s->handed = true;
	pthread_mutex_unlock(&t->w->lock);
	t->kick = true;
	writer_kick(t);
	return 0;
}

static void writer_take_back(struct sbx_tail *t, struct sbx_tail_sub *s)
{
	struct writer *w = t ? t->w : NULL;

	if (!s->handed || !w)
		return;
	pthread_mutex_lock(&w->lock);
	while (s->busy)
		pthread_cond_wait(&w->idle, &w->lock);
	for (struct sbx_tail_sub **p = &w->subs; *p; p = &(*p)->wnext) {
		if (*p == s) {
			*p = s->wnext;
			break;
		}
	}
	s->wnext = NULL;
	pthread_mutex_unlock(&w->lock);
	(void)epoll_ctl(w->ep, EPOLL_CTL_DEL, s->wfd, NULL);
	close(s->wfd);
	s->wfd = -1;
	s->handed = false;
}

void sbx_tail_sub_take_back(struct sbx_tail *t, struct sbx_tail_sub *s)
{
	writer_take_back(t, s);
}

int sbx_tail_sub_handed(struct sbx_tail *t, struct sbx_tail_sub *s, int64_t now_ms)
{
	bool empty;

	if (!s->handed || !t || !t->w)
		return 0;
	if (__atomic_load_n(&s->werr, __ATOMIC_ACQUIRE))
		return -1;
	if (!s->dropped)
		return 1;
	pthread_mutex_lock(&s->qlock);
	empty = !s->qn;
	pthread_mutex_unlock(&s->qlock);
	return empty || now_ms >= s->drop_deadline_ms ? -1 : 1;
}

uint64_t sbx_tail_sub_taken(const struct sbx_tail_sub *s)
{
	return s->taken;
}

static void writer_stop(struct sbx_tail *t)
{
	struct writer *w = t->w;
	uint64_t one = 1;

	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_mutex_unlock(&w->lock);
	if (write(w->kick, &one, sizeof(one)) < 0 && errno != EAGAIN)
		sbx_warn("tail: cannot wake the writer thread: %s", strerror(errno));
	pthread_join(w->thread, NULL);
	/* Followers still handed over (a caller that did not close them):
	 * the thread is gone, their fds are closed here. */
	while (w->subs) {
		struct sbx_tail_sub *s = w->subs;

		w->subs = s->wnext;
		s->handed = false;
		close(s->wfd);
		s->wfd = -1;
	}
	close(w->ep);
	close(w->kick);
	pthread_cond_destroy(&w->idle);
	pthread_mutex_destroy(&w->lock);
	free(w);
	t->w = NULL;
}
