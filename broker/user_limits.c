/*
 * Per-uid connection counts and change budgets (user_limits.h).
 *
 * One open-addressing table keyed by uid holds, for each uid that has a
 * connection open or has spent part of its budget, both counts.  An entry
 * goes away as soon as it holds nothing (no connection, budget full
 * again), so the table holds live users, not history; deletion shifts the
 * probe chain back, so there are no tombstones.
 *
 * The change budget is a token bucket: changes_per_minute tokens at most,
 * refilled at that rate, one per change, counted in thousandths so that a
 * slow rate still refills smoothly.
 */
#include "config.h"

#include "user_limits.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#define SLOTS 16384u /* a power of two; more than any host has users at once */
#define MILLI 1000

struct entry {
	bool used;
	uid_t uid;
	int conns;
	int64_t tokens;   /* thousandths of a change */
	int64_t last_ms;  /* when tokens was last brought up to date */
};

struct sbx_limits {
	struct sbx_limits_conf c;
	int total, total_nonroot;
	struct entry slots[SLOTS];
};

static size_t home(uid_t uid)
{
	return (size_t)(((uint64_t)uid * 2654435761u) & (SLOTS - 1));
}

static struct entry *find(const struct sbx_limits *l, uid_t uid)
{
	for (size_t i = home(uid), n = 0; n < SLOTS; i = (i + 1) & (SLOTS - 1), n++) {
		const struct entry *e = &l->slots[i];

		if (!e->used)
			return NULL;
		if (e->uid == uid)
			return (struct entry *)e;
	}
	return NULL;
}

static int64_t budget_full(const struct sbx_limits *l)
{
	return (int64_t)l->c.changes_per_minute * MILLI;
}

static struct entry *find_or_add(struct sbx_limits *l, uid_t uid, int64_t now_ms)
{
	for (size_t i = home(uid), n = 0; n < SLOTS; i = (i + 1) & (SLOTS - 1), n++) {
		struct entry *e = &l->slots[i];

		if (e->used && e->uid == uid)
			return e;
		if (!e->used) {
			*e = (struct entry){ .used = true, .uid = uid, .tokens = budget_full(l),
					     .last_ms = now_ms };
			return e;
		}
	}
	return NULL;
}

/* Remove e, shifting later members of its probe chain back into the hole
 * (Knuth's algorithm R), so lookups never stop short. */
static void remove_entry(struct sbx_limits *l, struct entry *e)
{
	size_t hole = (size_t)(e - l->slots), i = hole;

	l->slots[hole].used = false;
	for (;;) {
		size_t h;

		i = (i + 1) & (SLOTS - 1);
		if (!l->slots[i].used)
			return;
		h = home(l->slots[i].uid);
		/* Can the entry at i move to the hole?  Only if its home is not
		 * cyclically in (hole, i]. */
		if ((hole < i) ? (h > hole && h <= i) : (h > hole || h <= i))
			continue;
		l->slots[hole] = l->slots[i];
		l->slots[i].used = false;
		hole = i;
	}
}

static void refill(const struct sbx_limits *l, struct entry *e, int64_t now_ms)
{
	int64_t elapsed = now_ms - e->last_ms;

	if (elapsed > 0) {
		e->tokens += elapsed * l->c.changes_per_minute * MILLI / 60000;
		if (e->tokens > budget_full(l))
			e->tokens = budget_full(l);
		e->last_ms = now_ms;
	}
}

static void forget_if_idle(struct sbx_limits *l, struct entry *e)
{
	if (e->conns == 0 && e->tokens >= budget_full(l))
		remove_entry(l, e);
}

struct sbx_limits *sbx_limits_new(const struct sbx_limits_conf *c)
{
	struct sbx_limits *l = calloc(1, sizeof(*l));

	if (l)
		l->c = *c;
	return l;
}

void sbx_limits_free(struct sbx_limits *l)
{
	free(l);
}

void sbx_limits_set(struct sbx_limits *l, const struct sbx_limits_conf *c)
{
	l->c = *c;
}

int sbx_limits_conn_open(struct sbx_limits *l, uid_t uid)
{
	struct entry *e;

	if (l->total >= l->c.max_conns)
		return -ENFILE;
	if (uid == 0) {
		l->total++;
		return 0;
	}
	if (l->total_nonroot >= l->c.max_conns - l->c.root_reserve)
		return -ENFILE;
	e = find_or_add(l, uid, 0);
	if (!e)
		return -ENOMEM;
	if (e->conns >= l->c.max_conns_per_uid) {
		forget_if_idle(l, e);
		return -EUSERS;
	}
	e->conns++;
	l->total++;
	l->total_nonroot++;
	return 0;
}

void sbx_limits_conn_close(struct sbx_limits *l, uid_t uid)
{
	struct entry *e;

	l->total--;
	if (uid == 0)
		return;
	l->total_nonroot--;
	e = find(l, uid);
	if (!e)
		return;
	e->conns--;
	forget_if_idle(l, e);
}

int sbx_limits_conns(const struct sbx_limits *l, uid_t uid)
{
	const struct entry *e = find(l, uid);

	return e ? e->conns : 0;
}

int sbx_limits_change(struct sbx_limits *l, uid_t uid, int64_t now_ms, int64_t *retry_ms)
{
	struct entry *e;

	*retry_ms = 0;
	if (uid == 0)
		return 0;
	e = find_or_add(l, uid, now_ms);
	if (!e) {
		*retry_ms = 1000;
		return -EAGAIN;
	}
	refill(l, e, now_ms);
	if (e->tokens < MILLI) {
		*retry_ms = (MILLI - e->tokens) * 60000 / ((int64_t)l->c.changes_per_minute * MILLI) + 1;
		return -EAGAIN;
	}
	e->tokens -= MILLI;
	return 0;
}
