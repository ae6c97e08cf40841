#include "config.h"

#include "state.h"
#include "text.h"
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Requests of one user that are still open (pending or active): the check
 * path looks only here, so it costs the same with a million ended ones. */
struct user_open {
	char *user;
	uint64_t hash; /* of user: moving to a larger table reads no name */
	uint32_t *ids;
	uint32_t n, cap; /* 32 bytes a slot: there are two slots per user */
};

/* Open addressing, linear probing, a power-of-two number of slots. */
struct user_table {
	struct user_open *slot;
	size_t cap;
};

/* Old slots gone over per new open request.  The new table is twice the
 * old one and needs to grow again only after as many more users as the
 * old one had slots / 2, so 2 would do; more frees the old one sooner. */
#define USERS_MOVED_PER_CHANGE 16

/* An open request's deadline (lapses_at while pending, expires_at while
 * active), as an entry of the deadline heap. */
struct deadline {
	int64_t at;
	uint32_t id;
};

/* heap_pos of a request that is not in the heap. */
#define NOT_QUEUED UINT32_MAX

/* What a trial changed, to take it back: a request it created (before
 * NULL), or the copy of one as it was before the trial first changed it. */
struct undo {
	uint32_t id;
	struct sbx_req *before;
};

struct sbx_state {
	struct sbx_req **reqs; /* reqs[id - 1] */
	size_t n, cap;
	/* The users with open requests (or that had some), at most half full.
	 * When it grows, users move from the old table a few with every new
	 * open request, so that no one request pays for moving half a
	 * million (185 ms at once): until then a user is in one of the two. */
	struct user_table users, users_old;
	size_t users_used;  /* in both */
	size_t users_moved; /* users_old.slot[0 .. users_moved) are gone over */
	/* Every open request by deadline, a binary min-heap ordered by (at,
	 * id): the loop asks for the earliest deadline on every pass, and each
	 * change of a request moves one entry, O(log n) whatever the number
	 * of live grants.  heap_pos[id - 1] (cap entries, beside reqs) is the
	 * request's index in heap, or NOT_QUEUED. */
	struct deadline *heap;
	size_t heap_n, heap_cap;
	uint32_t *heap_pos;
	bool trial;
	struct undo *undo;
	size_t n_undo, undo_cap;
	/* Ended requests in the order they ended, a ring: past keep_ended
	 * the oldest leaves memory (reqs[id - 1] becomes NULL), so memory
	 * follows live state and recent history, not age.  The journal keeps
	 * them (sbxctl audit query --id). */
	uint32_t *ended;
	size_t ended_first, ended_n, ended_cap;
	size_t keep_ended;
	uint32_t snap_last;     /* while a snapshot loads: the last id read */
};

static const char *state_names[] = {
	[SBX_REQ_PENDING] = "pending",   [SBX_REQ_ACTIVE] = "active",
	[SBX_REQ_EXPIRED] = "expired",   [SBX_REQ_REVOKED] = "revoked",
	[SBX_REQ_DENIED] = "denied",     [SBX_REQ_CANCELLED] = "cancelled",
	[SBX_REQ_LAPSED] = "lapsed",
};

const char *sbx_req_state_name(enum sbx_req_state s)
{
	if ((size_t)s < sizeof(state_names) / sizeof(state_names[0]))
		return state_names[s];
	return "unknown";
}

static int state_from_name(const char *name, enum sbx_req_state *out)
{
	for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
		if (strcmp(state_names[i], name) == 0) {
			*out = (enum sbx_req_state)i;
			return 0;
		}
	}
	return -1;
}

static bool is_open(const struct sbx_req *r)
{
	return r->state == SBX_REQ_PENDING || r->state == SBX_REQ_ACTIVE;
}

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

static struct user_open *table_find(const struct user_table *t, const char *user, uint64_t h)
{
	size_t mask = t->cap - 1;

	if (!t->cap)
		return NULL;
	for (size_t i = h & mask; t->slot[i].user; i = (i + 1) & mask)
		if (t->slot[i].hash == h && strcmp(t->slot[i].user, user) == 0)
			return &t->slot[i];
	return NULL;
}

/* The empty slot where an entry with hash h goes (the table has one). */
static struct user_open *table_free_slot(const struct user_table *t, uint64_t h)
{
	size_t mask = t->cap - 1, i;

	for (i = h & mask; t->slot[i].user; i = (i + 1) & mask)
		;
	return &t->slot[i];
}

/* Go over up to max slots of the old table, copying its users to the
 * new one; free it once it is all gone over.  The copies left behind keep
 * the old probe sequences whole, and are never found: a user is looked
 * for in the new table first. */
static void users_move(struct sbx_state *s, size_t max)
{
	while (s->users_old.cap && max--) {
		struct user_open *u = &s->users_old.slot[s->users_moved++];

		if (u->user)
			*table_free_slot(&s->users, u->hash) = *u;
		if (s->users_moved == s->users_old.cap) {
			free(s->users_old.slot);
			s->users_old.slot = NULL;
			s->users_old.cap = 0;
			s->users_moved = 0;
		}
	}
}

static int users_grow(struct sbx_state *s)
{
	size_t cap = s->users.cap ? s->users.cap * 2 : 64;
	struct user_open *slot;

	/* Never needed at USERS_MOVED_PER_CHANGE >= 2; a guard, not a path. */
	users_move(s, SIZE_MAX);
	slot = calloc(cap, sizeof(*slot));
	if (!slot)
		return -ENOMEM;
	s->users_old = s->users;
	s->users.slot = slot;
	s->users.cap = cap;
	return 0;
}

/* Find the user's slot; with create, claim an empty one (user not copied:
 * the caller fills it in).  A slot stays where it is only until the next
 * call with create. */
static struct user_open *user_slot(struct sbx_state *s, const char *user, bool create)
{
	uint64_t h = hash_str(user);
	struct user_open *u;

	if (create) {
		users_move(s, USERS_MOVED_PER_CHANGE);
		if ((s->users_used + 1) * 2 > s->users.cap && users_grow(s) < 0)
			return NULL;
	}
	u = table_find(&s->users, user, h);
	if (!u)
		u = table_find(&s->users_old, user, h);
	if (u || !create)
		return u;
	u = table_free_slot(&s->users, h);
	u->hash = h;
	s->users_used++;
	return u;
}

static int64_t req_deadline(const struct sbx_req *r);

/* ---- the deadline heap ------------------------------------------------------ */

static bool deadline_before(const struct deadline *a, const struct deadline *b)
{
	return a->at < b->at || (a->at == b->at && a->id < b->id);
}

static void heap_place(struct sbx_state *s, size_t i, struct deadline d)
{
	s->heap[i] = d;
	s->heap_pos[d.id - 1] = (uint32_t)i;
}

/* Move the entry at i towards the root while it is earlier than its
 * parent, then towards the leaves while a child is earlier: one of the
 * two restores the heap after the entry at i changed. */
static void heap_fix(struct sbx_state *s, size_t i)
{
	struct deadline d = s->heap[i];

	while (i > 0 && deadline_before(&d, &s->heap[(i - 1) / 2])) {
		heap_place(s, i, s->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= s->heap_n)
			break;
		if (c + 1 < s->heap_n && deadline_before(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!deadline_before(&s->heap[c], &d))
			break;
		heap_place(s, i, s->heap[c]);
		i = c;
	}
	heap_place(s, i, d);
}

/* Room for one more entry, so that deadline_set cannot fail. */
static int heap_reserve(struct sbx_state *s)
{
	size_t cap;
	struct deadline *h;

	if (s->heap_n < s->heap_cap)
		return 0;
	cap = s->heap_cap ? s->heap_cap * 2 : 256;
	h = realloc(s->heap, cap * sizeof(*h));
	if (!h)
		return -ENOMEM;
	s->heap = h;
	s->heap_cap = cap;
	return 0;
}

/* Request id's deadline is now at: queue it, or move it.  A new entry
 * needs heap_reserve() first. */
static void deadline_set(struct sbx_state *s, uint32_t id, int64_t at)
{
	uint32_t i = s->heap_pos[id - 1];

	if (i == NOT_QUEUED) {
		i = (uint32_t)s->heap_n++;
		s->heap[i].id = id;
	}
	s->heap[i].at = at;
	heap_fix(s, i);
}

/* Request id no longer has a deadline (it ended, or a trial took it back).
 * Also safe for an id that was never queued. */
static void deadline_clear(struct sbx_state *s, uint32_t id)
{
	uint32_t i;

	if (id == 0 || id > s->cap || (i = s->heap_pos[id - 1]) == NOT_QUEUED)
		return;
	s->heap_pos[id - 1] = NOT_QUEUED;
	if (i == --s->heap_n)
		return;
	s->heap[i] = s->heap[s->heap_n];
	heap_fix(s, i);
}

/* ---- open requests ------------------------------------------------------------ */

static int open_add(struct sbx_state *s, struct sbx_req *r)
{
	struct user_open *u;

	if (heap_reserve(s) < 0)
		return -ENOMEM;
	u = user_slot(s, r->user, true);
	if (!u)
		return -ENOMEM;
	if (!u->user) {
		u->user = strdup(r->user);
		if (!u->user)
			return -ENOMEM;
	}
	if (u->n == u->cap) {
		uint32_t cap = u->cap ? u->cap * 2 : 4;
		uint32_t *ids = realloc(u->ids, cap * sizeof(*ids));

		if (!ids)
			return -ENOMEM;
		u->ids = ids;
		u->cap = cap;
	}
	u->ids[u->n++] = r->id;
	deadline_set(s, r->id, req_deadline(r));
	return 0;
}

static void open_remove(struct sbx_state *s, const struct sbx_req *r)
{
	struct user_open *u = user_slot(s, r->user, false);

	deadline_clear(s, r->id);
	if (!u)
		return;
	for (size_t i = 0; i < u->n; i++) {
		if (u->ids[i] == r->id) {
			u->ids[i] = u->ids[--u->n];
			return;
		}
	}
}

struct sbx_state *sbx_state_new(void)
{
	struct sbx_state *s = calloc(1, sizeof(struct sbx_state));

	if (s)
		s->keep_ended = SBX_STATE_KEEP_ENDED_DEFAULT;
	return s;
}

static void req_free(struct sbx_req *r)
{
	if (!r)
		return;
	free(r->user);
	free(r->role);
	free(r->reason);
	free(r->ticket);
	free(r->actor);
	free(r->through);
	for (size_t i = 0; i < r->n_approvals; i++) {
		free(r->approvals[i].who);
		free(r->approvals[i].through);
		free(r->approvals[i].comment);
	}
	free(r->approvals);
	free(r->unix_group);
	free(r->ended_by);
	free(r->end_reason);
	free(r);
}

static int dup_str(char **dst, const char *src)
{
	*dst = src ? strdup(src) : NULL;
	return src && !*dst ? -1 : 0;
}

/* A deep copy, for taking a trial back. */
static struct sbx_req *req_clone(const struct sbx_req *r)
{
	struct sbx_req *c = calloc(1, sizeof(*c));
	int bad = 0;

	if (!c)
		return NULL;
	*c = *r;
	c->user = c->role = c->reason = c->ticket = c->actor = c->through = NULL;
	c->unix_group = c->ended_by = c->end_reason = NULL;
	c->approvals = NULL;
	c->n_approvals = 0;
	bad |= dup_str(&c->user, r->user) | dup_str(&c->role, r->role) |
	       dup_str(&c->reason, r->reason) | dup_str(&c->ticket, r->ticket) |
	       dup_str(&c->actor, r->actor) | dup_str(&c->through, r->through) |
	       dup_str(&c->unix_group, r->unix_group) | dup_str(&c->ended_by, r->ended_by) |
	       dup_str(&c->end_reason, r->end_reason);
	if (r->n_approvals) {
		c->approvals = calloc(r->n_approvals, sizeof(*c->approvals));
		bad |= !c->approvals;
		for (size_t i = 0; c->approvals && i < r->n_approvals; i++) {
			struct sbx_approval *a = &c->approvals[c->n_approvals++];

			a->at = r->approvals[i].at;
			bad |= dup_str(&a->who, r->approvals[i].who) |
			       dup_str(&a->through, r->approvals[i].through) |
			       dup_str(&a->comment, r->approvals[i].comment);
		}
	}
	if (bad) {
		req_free(c);
		return NULL;
	}
	return c;
}

int sbx_state_trial_begin(struct sbx_state *s)
{
	if (s->trial)
		return -1;
	s->trial = true;
	s->n_undo = 0;
	return 0;
}

static int undo_push(struct sbx_state *s, uint32_t id, struct sbx_req *before)
{
	if (s->n_undo == s->undo_cap) {
		size_t cap = s->undo_cap ? s->undo_cap * 2 : 16;
		struct undo *u = realloc(s->undo, cap * sizeof(*u));

		if (!u)
			return -ENOMEM;
		s->undo = u;
		s->undo_cap = cap;
	}
	s->undo[s->n_undo].id = id;
	s->undo[s->n_undo].before = before;
	s->n_undo++;
	return 0;
}

/* Before a trial changes r for the first time: keep a copy. */
static int trial_remember(struct sbx_state *s, const struct sbx_req *r)
{
	struct sbx_req *copy;

	if (!s->trial)
		return 0;
	for (size_t i = 0; i < s->n_undo; i++)
		if (s->undo[i].id == r->id)
			return 0;
	copy = req_clone(r);
	if (!copy || undo_push(s, r->id, copy) < 0) {
		req_free(copy);
		return -ENOMEM;
	}
	return 0;
}

void sbx_state_trial_undo(struct sbx_state *s)
{
	while (s->n_undo) {
		struct undo *u = &s->undo[--s->n_undo];
		struct sbx_req *cur = s->reqs[u->id - 1];

		if (is_open(cur))
			open_remove(s, cur);
		if (!u->before) {
			/* created by the trial: always the last ones */
			req_free(cur);
			s->n--;
			continue;
		}
		/* Swap the contents back, so that the request keeps its address. */
		struct sbx_req tmp = *cur;

		*cur = *u->before;
		*u->before = tmp;
		req_free(u->before);
		/* Room is there: the trial's own change took this id out. */
		if (is_open(cur))
			(void)open_add(s, cur);
	}
	s->trial = false;
}

void sbx_state_free(struct sbx_state *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_undo; i++)
		req_free(s->undo[i].before);
	free(s->undo);
	for (size_t i = 0; i < s->n; i++)
		req_free(s->reqs[i]);
	free(s->reqs);
	for (size_t i = 0; i < s->users.cap; i++) {
		free(s->users.slot[i].user);
		free(s->users.slot[i].ids);
	}
	free(s->users.slot);
	/* Below users_moved: copies, the new table owns their memory. */
	for (size_t i = s->users_moved; i < s->users_old.cap; i++) {
		free(s->users_old.slot[i].user);
		free(s->users_old.slot[i].ids);
	}
	free(s->users_old.slot);
	free(s->heap);
	free(s->heap_pos);
	free(s->ended);
	free(s);
}

/* Remember that id ended.  Out of memory, it simply stays in memory. */
static void ended_push(struct sbx_state *s, uint32_t id)
{
	if (s->ended_n == s->ended_cap) {
		size_t cap = s->ended_cap ? 2 * s->ended_cap : 64;
		uint32_t *e = malloc(cap * sizeof(*e));

		if (!e)
			return;
		for (size_t i = 0; i < s->ended_n; i++)
			e[i] = s->ended[(s->ended_first + i) % s->ended_cap];
		free(s->ended);
		s->ended = e;
		s->ended_cap = cap;
		s->ended_first = 0;
	}
	s->ended[(s->ended_first + s->ended_n) % s->ended_cap] = id;
	s->ended_n++;
}

/* Not inside a trial: it could not take a forgotten request back. */
static void forget_excess(struct sbx_state *s)
{
	if (s->trial)
		return;
	while (s->ended_n > s->keep_ended) {
		uint32_t id = s->ended[s->ended_first];
		struct sbx_req *r = s->reqs[id - 1];

		s->ended_first = (s->ended_first + 1) % s->ended_cap;
		s->ended_n--;
		if (r && !is_open(r)) {
			req_free(r);
			s->reqs[id - 1] = NULL;
		}
	}
}

void sbx_state_keep_ended(struct sbx_state *s, size_t n)
{
	s->keep_ended = n;
	forget_excess(s);
}

bool sbx_state_forgotten(const struct sbx_state *s, uint32_t id)
{
	return id > 0 && id <= s->n && !s->reqs[id - 1];
}

struct sbx_req *sbx_state_get(const struct sbx_state *s, uint32_t id)
{
	if (id == 0 || id > s->n)
		return NULL;
	return s->reqs[id - 1];
}

uint32_t sbx_state_next_id(const struct sbx_state *s)
{
	return (uint32_t)s->n + 1;
}

size_t sbx_state_count(const struct sbx_state *s)
{
	return s->n;
}

struct sbx_req *sbx_state_at(const struct sbx_state *s, size_t i)
{
	return i < s->n ? s->reqs[i] : NULL;
}

/* The deadline heap holds exactly the open requests. */
size_t sbx_state_open_count(const struct sbx_state *s)
{
	return s->heap_n;
}

struct sbx_req *sbx_state_open_at(const struct sbx_state *s, size_t i)
{
	return i < s->heap_n ? s->reqs[s->heap[i].id - 1] : NULL;
}

size_t sbx_state_user_open(const struct sbx_state *s, const char *user,
			   struct sbx_req **out, size_t max)
{
	struct user_open *u = user_slot((struct sbx_state *)s, user, false);
	size_t n = 0;

	if (!u)
		return 0;
	for (size_t i = 0; i < u->n && n < max; i++)
		out[n++] = s->reqs[u->ids[i] - 1];
	return n;
}

static int64_t req_deadline(const struct sbx_req *r)
{
	if (r->state == SBX_REQ_PENDING)
		return r->lapses_at;
	if (r->state == SBX_REQ_ACTIVE)
		return r->expires_at;
	return INT64_MAX;
}

int64_t sbx_state_next_deadline(const struct sbx_state *s)
{
	return s->heap_n ? s->heap[0].at : INT64_MAX;
}

static int by_deadline(const void *a, const void *b)
{
	const struct sbx_req *ra = *(struct sbx_req *const *)a, *rb = *(struct sbx_req *const *)b;
	struct deadline da = { req_deadline(ra), ra->id }, db = { req_deadline(rb), rb->id };

	return deadline_before(&da, &db) ? -1 : deadline_before(&db, &da) ? 1 : 0;
}

size_t sbx_state_due(const struct sbx_state *s, int64_t now, struct sbx_req **out, size_t max)
{
	size_t n = 0;

	if (!max || !s->heap_n || s->heap[0].at > now)
		return 0;
	/* A due entry's parent is due too: the due ones are a subtree at the
	 * root.  Walk it breadth first with out as the queue, so the cost is
	 * what is due, not what is open. */
	out[n++] = s->reqs[s->heap[0].id - 1];
	for (size_t k = 0; k < n && n < max; k++) {
		size_t i = s->heap_pos[out[k]->id - 1];

		for (size_t c = 2 * i + 1; c <= 2 * i + 2 && c < s->heap_n && n < max; c++)
			if (s->heap[c].at <= now)
				out[n++] = s->reqs[s->heap[c].id - 1];
	}
	/* The journal then ends them in the order they fell due, the same
	 * whatever shape the heap has after a restart. */
	qsort(out, n, sizeof(*out), by_deadline);
	return n;
}

/* ---- reading records ---------------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static int dup_opt(char **dst, const json_t *o, const char *key)
{
	const char *v = jstr(o, key);

	free(*dst);
	*dst = NULL;
	if (!v)
		return 0;
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

/* Times inside records are RFC 3339; the record's own "time" has
 * microseconds, event fields have seconds. */
static int jtime(const json_t *o, const char *key, int64_t *secs)
{
	const char *v = jstr(o, key);
	int64_t us;

	if (!v || sbx_parse_rfc3339_us(v, &us) < 0)
		return -1;
	*secs = us / 1000000;
	return 0;
}

static int jid(const json_t *o, uint32_t *id)
{
	json_t *v = json_object_get(o, "id");

	if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
	    json_integer_value(v) > UINT32_MAX)
		return -1;
	*id = (uint32_t)json_integer_value(v);
	return 0;
}

/* Room for n requests, and for their places in the deadline heap. */
static int reqs_reserve(struct sbx_state *s, size_t n)
{
	if (n <= s->cap)
		return 0;
	size_t cap = s->cap ? s->cap : 256;
	while (cap < n)
		cap *= 2;
	if (cap > NOT_QUEUED)
		return -ENOMEM;
	struct sbx_req **v = realloc(s->reqs, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	s->reqs = v;
	uint32_t *pos = realloc(s->heap_pos, cap * sizeof(*pos));
	if (!pos)
		return -ENOMEM;
	s->heap_pos = pos;
	for (size_t i = s->cap; i < cap; i++)
		pos[i] = NOT_QUEUED;
	s->cap = cap;
	return 0;
}

static int apply_created(struct sbx_state *s, const json_t *rec, int64_t at,
			 char *err, size_t errlen)
{
	struct sbx_req *r = NULL;
	uint32_t id;
	json_t *v;
	int ret = -1;

	if (jid(rec, &id) < 0) {
		(void)sbx_whyf(err, errlen, -1, "request.created without a valid id");
		goto out;
	}
	if (id != s->n + 1) {
		(void)sbx_whyf(err, errlen, -1, "request.created with id %u, expected %zu", id,
			       s->n + 1);
		goto out;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		(void)sbx_whyf(err, errlen, -1, "out of memory");
		goto out;
	}
	r->id = id;
	r->state = SBX_REQ_PENDING;
	r->created_at = at;
	if (!jstr(rec, "user") || !jstr(rec, "role")) {
		(void)sbx_whyf(err, errlen, -1, "request.created %u without user or role", id);
		goto out;
	}
	if (dup_opt(&r->user, rec, "user") || dup_opt(&r->role, rec, "role") ||
	    dup_opt(&r->reason, rec, "reason") || dup_opt(&r->ticket, rec, "ticket") ||
	    dup_opt(&r->actor, rec, "actor") || dup_opt(&r->through, rec, "through")) {
		(void)sbx_whyf(err, errlen, -1, "out of memory");
		goto out;
	}
	v = json_object_get(rec, "duration");
	if (!json_is_integer(v) || json_integer_value(v) <= 0) {
		(void)sbx_whyf(err, errlen, -1, "request.created %u without a duration", id);
		goto out;
	}
	r->duration = json_integer_value(v);
	v = json_object_get(rec, "approvals_needed");
	r->approvals_needed = json_is_integer(v) ? (unsigned)json_integer_value(v) : 0;
	v = json_object_get(rec, "extends");
	r->extends = json_is_integer(v) ? (uint32_t)json_integer_value(v) : 0;
	if (jtime(rec, "lapses_at", &r->lapses_at) < 0) {
		(void)sbx_whyf(err, errlen, -1, "request.created %u without lapses_at", id);
		goto out;
	}
	if (reqs_reserve(s, s->n + 1) < 0 || open_add(s, r) < 0) {
		(void)sbx_whyf(err, errlen, -1, "out of memory");
		goto out;
	}
	s->reqs[s->n++] = r;
	r = NULL;
	ret = 0;
out:
	if (r && r->user)
		open_remove(s, r);
	req_free(r);
	return ret;
}

static int apply_approval(struct sbx_req *r, const json_t *rec, int64_t at,
			  char *err, size_t errlen)
{
	struct sbx_approval *a;
	json_t *v;

	if (r->state != SBX_REQ_PENDING)
		return sbx_whyf(err, errlen, -1, "approval of request %u which is %s", r->id, sbx_req_state_name(r->state));
	a = realloc(r->approvals, (r->n_approvals + 1) * sizeof(*a));
	if (!a)
		return sbx_whyf(err, errlen, -1, "out of memory");
	r->approvals = a;
	a = &r->approvals[r->n_approvals];
	memset(a, 0, sizeof(*a));
	a->at = at;
	if (dup_opt(&a->who, rec, "actor") || dup_opt(&a->through, rec, "through") ||
	    dup_opt(&a->comment, rec, "comment"))
		return sbx_whyf(err, errlen, -1, "out of memory");
	r->n_approvals++;
	v = json_object_get(rec, "duration");
	if (json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < r->duration)
		r->duration = json_integer_value(v);
	return 0;
}

static int apply_activated(struct sbx_state *s, struct sbx_req *r, const json_t *rec,
			   char *err, size_t errlen)
{
	json_t *v;

	if (r->state != SBX_REQ_PENDING)
		return sbx_whyf(err, errlen, -1, "activation of request %u which is %s", r->id, sbx_req_state_name(r->state));
	if (jtime(rec, "activated_at", &r->activated_at) < 0 ||
	    jtime(rec, "expires_at", &r->expires_at) < 0)
		return sbx_whyf(err, errlen, -1, "grant.activated %u without activated_at/expires_at", r->id);
	if (dup_opt(&r->unix_group, rec, "unix_group"))
		return sbx_whyf(err, errlen, -1, "out of memory");
	v = json_object_get(rec, "gid");
	r->gid = json_is_integer(v) ? (uint32_t)json_integer_value(v) : 0;
	r->state = SBX_REQ_ACTIVE;
	deadline_set(s, r->id, r->expires_at);
	return 0;
}

static int apply_end(struct sbx_state *s, struct sbx_req *r, enum sbx_req_state to,
		     const json_t *rec, int64_t at, char *err, size_t errlen)
{
	enum sbx_req_state from = (to == SBX_REQ_EXPIRED || to == SBX_REQ_REVOKED)
					  ? SBX_REQ_ACTIVE : SBX_REQ_PENDING;

	if (r->state != from)
		return sbx_whyf(err, errlen, -1, "request %u cannot become %s: it is %s", r->id, sbx_req_state_name(to),
		     sbx_req_state_name(r->state));
	r->state = to;
	r->ended_at = at;
	/* Before anything can fail: an ended request left in the deadline
	 * heap would come back from sbx_state_due. */
	open_remove(s, r);
	if (!s->trial)
		ended_push(s, r->id);
	if (dup_opt(&r->ended_by, rec, "actor") || dup_opt(&r->end_reason, rec, "reason"))
		return sbx_whyf(err, errlen, -1, "out of memory");
	return 0;
}

/* A host record: the grant stays active in the fleet's state, it just
 * stops counting here (sbx_req_live). */
static int apply_revoked_here(struct sbx_req *r, const json_t *rec, int64_t at, char *err,
			      size_t errlen)
{
	if (r->state != SBX_REQ_ACTIVE)
		return 0; /* the fleet ended it meanwhile: nothing left to do here */
	r->revoked_here = true;
	r->ended_at = at;
	if (dup_opt(&r->ended_by, rec, "actor") || dup_opt(&r->end_reason, rec, "reason"))
		return sbx_whyf(err, errlen, -1, "out of memory");
	return 0;
}

int sbx_state_apply(struct sbx_state *s, const json_t *rec, char *err, size_t errlen)
{
	const char *event = jstr(rec, "event");
	static const struct {
		const char *event;
		enum sbx_req_state to;
	} ends[] = {
		{ "request.denied", SBX_REQ_DENIED },     { "request.cancelled", SBX_REQ_CANCELLED },
		{ "request.lapsed", SBX_REQ_LAPSED },     { "grant.expired", SBX_REQ_EXPIRED },
		{ "grant.revoked", SBX_REQ_REVOKED },
	};
	struct sbx_req *r;
	int64_t at;
	uint32_t id;

	if (!event) {
		snprintf(err, errlen, "record without an event");
		return -1;
	}
	if (strncmp(event, "request.", 8) != 0 && strncmp(event, "grant.", 6) != 0)
		return 0;
	if (jtime(rec, "time", &at) < 0) {
		snprintf(err, errlen, "%s without a valid time", event);
		return -1;
	}
	if (strcmp(event, "request.created") == 0) {
		if (apply_created(s, rec, at, err, errlen) < 0)
			return -1;
		if (s->trial && undo_push(s, (uint32_t)s->n, NULL) < 0) {
			/* cannot be taken back: take it back now */
			struct sbx_req *made = s->reqs[--s->n];

			open_remove(s, made);
			req_free(made);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		return 0;
	}
	/* A forgotten request has ended: nothing in memory depends on it
	 * (a host's grant.revoked_here may trail the fleet's end). */
	if (jid(rec, &id) == 0 && sbx_state_forgotten(s, id))
		return 0;
	if (jid(rec, &id) < 0 || !(r = sbx_state_get(s, id))) {
		snprintf(err, errlen, "%s for unknown request", event);
		return -1;
	}
	if (strcmp(event, "grant.revoked_here") == 0)
		return apply_revoked_here(r, rec, at, err, errlen);
	if (trial_remember(s, r) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (strcmp(event, "request.approval") == 0)
		return apply_approval(r, rec, at, err, errlen);
	if (strcmp(event, "grant.activated") == 0)
		return apply_activated(s, r, rec, err, errlen);
	for (size_t i = 0; i < sizeof(ends) / sizeof(ends[0]); i++) {
		if (strcmp(event, ends[i].event) == 0) {
			int rc = apply_end(s, r, ends[i].to, rec, at, err, errlen);

			forget_excess(s);
			return rc;
		}
	}
	/* Events added later (e.g. notifications) leave requests alone. */
	return 0;
}

/* ---- snapshots ------------------------------------------------------------ */

/* The state's part of a snapshot: a head naming the version, the number of
 * requests and the fields of a request, then one array per request in id
 * order, its values in the head's order.  Arrays and Unix seconds because a
 * snapshot is read at every start: they parse in about half the time of
 * objects with RFC 3339 text (and the file is half the size).  A value
 * left out at the end, null, 0 or false means "none". */
#define SNAPSHOT_VERSION 2

enum snap_field {
	F_ID, F_STATE, F_USER, F_ROLE, F_REASON, F_TICKET, F_ACTOR, F_THROUGH, F_EXTENDS,
	F_DURATION, F_APPROVALS_NEEDED, F_CREATED, F_LAPSES, F_ACTIVATED, F_EXPIRES, F_ENDED,
	F_UNIX_GROUP, F_GID, F_ENDED_BY, F_END_REASON, F_REVOKED_HERE, F_APPROVALS, F_COUNT
};

static const char *const snap_fields[F_COUNT] = {
	"id", "state", "user", "role", "reason", "ticket", "actor", "through", "extends",
	"duration", "approvals_needed", "created_at", "lapses_at", "activated_at", "expires_at",
	"ended_at", "unix_group", "gid", "ended_by", "end_reason", "revoked_here",
	"approvals", /* [[who, through, comment, at], ...] */
};

static json_t *opt_string(const char *v)
{
	return v ? json_string(v) : json_null();
}

static json_t *opt_int(int64_t v)
{
	return v ? json_integer(v) : json_null();
}

static json_t *req_to_json(const struct sbx_req *r)
{
	json_t *v[F_COUNT] = { NULL }, *a = json_array();
	size_t n = F_COUNT;

	v[F_ID] = json_integer(r->id);
	v[F_STATE] = json_string(sbx_req_state_name(r->state));
	v[F_USER] = opt_string(r->user);
	v[F_ROLE] = opt_string(r->role);
	v[F_REASON] = opt_string(r->reason);
	v[F_TICKET] = opt_string(r->ticket);
	v[F_ACTOR] = opt_string(r->actor);
	v[F_THROUGH] = opt_string(r->through);
	v[F_EXTENDS] = opt_int(r->extends);
	v[F_DURATION] = opt_int(r->duration);
	v[F_APPROVALS_NEEDED] = opt_int(r->approvals_needed);
	v[F_CREATED] = opt_int(r->created_at);
	v[F_LAPSES] = opt_int(r->lapses_at);
	v[F_ACTIVATED] = opt_int(r->activated_at);
	v[F_EXPIRES] = opt_int(r->expires_at);
	v[F_ENDED] = opt_int(r->ended_at);
	v[F_UNIX_GROUP] = opt_string(r->unix_group);
	v[F_GID] = opt_int(r->gid);
	v[F_ENDED_BY] = opt_string(r->ended_by);
	v[F_END_REASON] = opt_string(r->end_reason);
	v[F_REVOKED_HERE] = r->revoked_here ? json_true() : json_null();
	v[F_APPROVALS] = r->n_approvals ? json_array() : json_null();
	for (size_t i = 0; v[F_APPROVALS] && i < r->n_approvals; i++) {
		json_t *ap = json_pack("[s?,s?,s?,I]", r->approvals[i].who, r->approvals[i].through,
				       r->approvals[i].comment, (json_int_t)r->approvals[i].at);

		if (json_array_append_new(v[F_APPROVALS], ap) < 0) {
			json_decref(v[F_APPROVALS]);
			v[F_APPROVALS] = NULL;
		}
	}
	while (n > 0 && json_is_null(v[n - 1]))
		n--;
	/* A value missing (out of memory) would shift the ones after it: the
	 * whole entry is given up instead. */
	for (size_t i = 0; i < F_COUNT; i++) {
		if (a && i < n && json_array_append(a, v[i]) < 0) {
			json_decref(a);
			a = NULL;
		}
		json_decref(v[i]);
	}
	return a;
}

int sbx_state_snapshot(const struct sbx_state *s, sbx_state_put_fn put, void *out)
{
	json_t *fields = json_array(), *e;
	int rc;

	for (size_t i = 0; i < F_COUNT; i++)
		json_array_append_new(fields, json_string(snap_fields[i]));
	/* requests: the highest id given; forgotten ones leave gaps. */
	e = json_pack("{s:i, s:I, s:o}", "version", SNAPSHOT_VERSION, "requests", (json_int_t)s->n,
		      "fields", fields);
	rc = e ? put(out, e) : -1;
	json_decref(e);
	for (size_t i = 0; rc == 0 && i < s->n; i++) {
		if (!s->reqs[i])
			continue;
		e = req_to_json(s->reqs[i]);
		rc = e ? put(out, e) : -1;
		json_decref(e);
	}
	return rc < 0 ? -1 : 0;
}

/* Field i of a request entry: NULL when left out or null. */
static json_t *field(const json_t *a, enum snap_field i)
{
	json_t *v = json_array_get(a, i);

	return json_is_null(v) ? NULL : v;
}

static int field_str(char **dst, const json_t *a, enum snap_field i)
{
	json_t *v = field(a, i);

	*dst = NULL;
	if (!v)
		return 0;
	if (!json_is_string(v))
		return -EINVAL;
	*dst = strdup(json_string_value(v));
	return *dst ? 0 : -ENOMEM;
}

/* An integer in [0, max]; left out means 0. */
static int field_int(int64_t *dst, const json_t *a, enum snap_field i, int64_t max)
{
	json_t *v = field(a, i);

	*dst = 0;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > max)
		return -EINVAL;
	*dst = json_integer_value(v);
	return 0;
}

static int approvals_from_json(struct sbx_req *r, const json_t *apps)
{
	json_t *a;
	size_t i;

	if (!apps)
		return 0;
	if (!json_is_array(apps))
		return -EINVAL;
	r->approvals = calloc(json_array_size(apps) ? json_array_size(apps) : 1,
			      sizeof(*r->approvals));
	if (!r->approvals)
		return -ENOMEM;
	json_array_foreach(apps, i, a) {
		struct sbx_approval *ap = &r->approvals[r->n_approvals++];
		int rc;

		if (!json_is_array(a))
			return -EINVAL;
		rc = field_str(&ap->who, a, 0);
		rc = rc ? rc : field_str(&ap->through, a, 1);
		rc = rc ? rc : field_str(&ap->comment, a, 2);
		rc = rc ? rc : field_int(&ap->at, a, 3, INT64_MAX);
		if (rc)
			return rc;
	}
	return 0;
}

static struct sbx_req *req_from_json(const json_t *a, char *err, size_t errlen)
{
	struct sbx_req *r = calloc(1, sizeof(*r));
	json_t *st = field(a, F_STATE);
	int64_t id = 0, ext = 0, needed = 0, gid = 0;
	struct sbx_req *ret = NULL;
	int rc;

	if (!r) {
		(void)sbx_whyf(err, errlen, -1, "out of memory");
		goto out;
	}
	if (field_int(&id, a, F_ID, UINT32_MAX) || id == 0 || !json_is_string(st) ||
	    state_from_name(json_string_value(st), &r->state) < 0 ||
	    !json_is_string(field(a, F_USER)) || !json_is_string(field(a, F_ROLE))) {
		(void)sbx_whyf(err, errlen, -1, "snapshot: request without id, state, user or role");
		goto out;
	}
	r->id = (uint32_t)id;
	rc = field_str(&r->user, a, F_USER);
	rc = rc ? rc : field_str(&r->role, a, F_ROLE);
	rc = rc ? rc : field_str(&r->reason, a, F_REASON);
	rc = rc ? rc : field_str(&r->ticket, a, F_TICKET);
	rc = rc ? rc : field_str(&r->actor, a, F_ACTOR);
	rc = rc ? rc : field_str(&r->through, a, F_THROUGH);
	rc = rc ? rc : field_str(&r->unix_group, a, F_UNIX_GROUP);
	rc = rc ? rc : field_str(&r->ended_by, a, F_ENDED_BY);
	rc = rc ? rc : field_str(&r->end_reason, a, F_END_REASON);
	rc = rc ? rc : field_int(&ext, a, F_EXTENDS, UINT32_MAX);
	rc = rc ? rc : field_int(&r->duration, a, F_DURATION, INT64_MAX);
	rc = rc ? rc : field_int(&needed, a, F_APPROVALS_NEEDED, UINT32_MAX);
	rc = rc ? rc : field_int(&gid, a, F_GID, UINT32_MAX);
	rc = rc ? rc : field_int(&r->created_at, a, F_CREATED, INT64_MAX);
	rc = rc ? rc : field_int(&r->lapses_at, a, F_LAPSES, INT64_MAX);
	rc = rc ? rc : field_int(&r->activated_at, a, F_ACTIVATED, INT64_MAX);
	rc = rc ? rc : field_int(&r->expires_at, a, F_EXPIRES, INT64_MAX);
	rc = rc ? rc : field_int(&r->ended_at, a, F_ENDED, INT64_MAX);
	rc = rc ? rc : approvals_from_json(r, field(a, F_APPROVALS));
	if (rc) {
		(void)sbx_whyf(err, errlen, -1, rc == -ENOMEM ? "out of memory" :
			       "snapshot: request %u has a value of the wrong type", r->id);
		goto out;
	}
	r->extends = (uint32_t)ext;
	r->approvals_needed = (unsigned)needed;
	r->gid = (uint32_t)gid;
	r->revoked_here = json_is_true(field(a, F_REVOKED_HERE));
	ret = r;
	r = NULL;
out:
	req_free(r);
	return ret;
}

/* The head: room for the requests that follow, whose fields must be the
 * ones this broker writes, in its order. */
static int snapshot_head(struct sbx_state *s, const json_t *e, char *err, size_t errlen)
{
	json_t *v = json_object_get(e, "version"), *n = json_object_get(e, "requests");
	json_t *f = json_object_get(e, "fields");
	bool same = json_array_size(f) == F_COUNT;

	for (size_t i = 0; same && i < F_COUNT; i++)
		same = json_is_string(json_array_get(f, i)) &&
		       strcmp(json_string_value(json_array_get(f, i)), snap_fields[i]) == 0;
	if (!json_is_integer(v) || json_integer_value(v) != SNAPSHOT_VERSION ||
	    !json_is_integer(n) || json_integer_value(n) < 0 ||
	    json_integer_value(n) > UINT32_MAX || !same)
		return sbx_whyf(err, errlen, -1, "snapshot: not a version %d state with this "
				"broker's fields", SNAPSHOT_VERSION);
	if (s->n)
		return sbx_whyf(err, errlen, -1, "snapshot loaded into a non-empty state");
	if (reqs_reserve(s, (size_t)json_integer_value(n)) < 0)
		return sbx_whyf(err, errlen, -1, "out of memory");
	/* Every id given so far, none in memory yet: the entries fill them
	 * in, and the forgotten stay NULL. */
	s->n = (size_t)json_integer_value(n);
	for (size_t i = 0; i < s->n; i++)
		s->reqs[i] = NULL;
	s->snap_last = 0;
	return 0;
}

/* Back to an empty state, whatever it holds: a fresh one takes its place
 * and the old contents are freed with it. */
static int state_forget(struct sbx_state *s, char *err, size_t errlen)
{
	struct sbx_state *fresh = sbx_state_new(), old;

	if (!fresh)
		return sbx_whyf(err, errlen, -1, "out of memory");
	old = *s;
	*s = *fresh;
	*fresh = old;
	s->keep_ended = fresh->keep_ended;
	sbx_state_free(fresh);
	return 0;
}

int sbx_state_from_json(struct sbx_state *s, const json_t *entry, char *err, size_t errlen)
{
	struct sbx_req *r;

	if (!entry)
		return state_forget(s, err, errlen);
	if (json_is_object(entry))
		return snapshot_head(s, entry, err, errlen);
	r = req_from_json(entry, err, errlen);
	if (!r)
		return -1;
	/* Increasing, with gaps where requests were forgotten. */
	if (r->id <= s->snap_last || r->id > s->n) {
		(void)sbx_whyf(err, errlen, -1, "snapshot: request id %u out of order", r->id);
		req_free(r);
		return -1;
	}
	s->snap_last = r->id;
	s->reqs[r->id - 1] = r;
	if (is_open(r) && open_add(s, r) < 0)
		return sbx_whyf(err, errlen, -1, "out of memory");
	if (!is_open(r)) {
		ended_push(s, r->id);
		forget_excess(s);
	}
	return 0;
}
