/* The broker's in-memory state: applying journal records, snapshots. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "state.h"
#include "timeutil.h"

static struct sbx_state *st;
static char err[256];

static void setup(void) { st = sbx_state_new(); cr_assert_not_null(st); }
static void teardown(void) { sbx_state_free(st); }

TestSuite(state, .init = setup, .fini = teardown);

static const char *at(int64_t secs)
{
	static char buf[4][SBX_RFC3339_LEN];
	static int i;

	i = (i + 1) % 4;
	sbx_format_rfc3339(secs, buf[i]);
	return buf[i];
}

static int apply(json_t *rec)
{
	int rc = sbx_state_apply(st, rec, err, sizeof(err));

	json_decref(rec);
	return rc;
}

#define T0 1800000000 /* 2027-01-15 */

static int create(uint32_t id, const char *user, const char *role, int64_t t)
{
	return apply(json_pack("{s:i, s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:s, s:i, s:s}",
			       "seq", id, "time", at(t), "event", "request.created", "actor", user,
			       "id", id, "user", user, "role", role, "duration", 3600,
			       "reason", "debugging the pipeline", "approvals_needed", 1,
			       "lapses_at", at(t + 86400)));
}

static int activate(uint32_t id, int64_t t, int64_t dur)
{
	return apply(json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:i}", "time", at(t), "event",
			       "grant.activated", "actor", "sbx", "id", id, "activated_at", at(t),
			       "expires_at", at(t + dur), "unix_group", "sbx-admin", "gid", 60001));
}

static int event(const char *ev, uint32_t id, const char *actor, int64_t t)
{
	return apply(json_pack("{s:s, s:s, s:s, s:i, s:s}", "time", at(t), "event", ev, "actor",
			       actor, "id", id, "reason", "because"));
}

Test(state, request_becomes_pending_then_active)
{
	struct sbx_req *r;

	cr_assert_eq(create(1, "erin", "sandbox-admin", T0), 0, "%s", err);
	r = sbx_state_get(st, 1);
	cr_assert_not_null(r);
	cr_assert_eq(r->state, SBX_REQ_PENDING);
	cr_assert_str_eq(r->user, "erin");
	cr_assert_eq(r->created_at, T0);
	cr_assert_eq(r->lapses_at, T0 + 86400);
	cr_assert_eq(sbx_state_next_id(st), 2);

	cr_assert_eq(apply(json_pack("{s:s, s:s, s:s, s:i, s:s, s:i}", "time", at(T0 + 5), "event",
				     "request.approval", "actor", "frank", "id", 1, "comment", "ok",
				     "duration", 1800)), 0, "%s", err);
	cr_assert_eq(r->n_approvals, 1);
	cr_assert_str_eq(r->approvals[0].who, "frank");
	cr_assert_eq(r->duration, 1800, "an approver's shorter duration applies");

	cr_assert_eq(activate(1, T0 + 10, 1800), 0, "%s", err);
	cr_assert_eq(r->state, SBX_REQ_ACTIVE);
	cr_assert_eq(r->expires_at, T0 + 10 + 1800);
	cr_assert_str_eq(r->unix_group, "sbx-admin");
	cr_assert(sbx_req_live(r, T0 + 11));
	cr_assert_not(sbx_req_live(r, T0 + 10 + 1800), "a grant is over at expires_at");
}

Test(state, approval_never_lengthens)
{
	cr_assert_eq(create(1, "erin", "sandbox-admin", T0), 0);
	cr_assert_eq(apply(json_pack("{s:s, s:s, s:s, s:i, s:i}", "time", at(T0), "event",
				     "request.approval", "actor", "frank", "id", 1, "duration", 99999)),
		     0);
	cr_assert_eq(sbx_state_get(st, 1)->duration, 3600);
}

Test(state, every_ending)
{
	static const struct {
		const char *event;
		bool active_first;
		enum sbx_req_state want;
	} cases[] = {
		{ "request.denied", false, SBX_REQ_DENIED },
		{ "request.cancelled", false, SBX_REQ_CANCELLED },
		{ "request.lapsed", false, SBX_REQ_LAPSED },
		{ "grant.expired", true, SBX_REQ_EXPIRED },
		{ "grant.revoked", true, SBX_REQ_REVOKED },
	};
	struct sbx_req *open[8];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint32_t id = (uint32_t)i + 1;
		struct sbx_req *r;

		cr_assert_eq(create(id, "erin", "r", T0), 0, "%s", err);
		if (cases[i].active_first)
			cr_assert_eq(activate(id, T0 + 1, 60), 0, "%s", err);
		cr_assert_eq(event(cases[i].event, id, "grace", T0 + 2), 0, "%s: %s",
			     cases[i].event, err);
		r = sbx_state_get(st, id);
		cr_assert_eq(r->state, cases[i].want, "%s", cases[i].event);
		cr_assert_eq(r->ended_at, T0 + 2);
		cr_assert_str_eq(r->ended_by, "grace");
		cr_assert_str_eq(r->end_reason, "because");
	}
	cr_assert_eq(sbx_state_user_open(st, "erin", open, 8), 0, "ended requests are not open");
}

Test(state, contradictions_are_refused)
{
	cr_assert_neq(event("request.approval", 7, "frank", T0), 0, "unknown request");
	cr_assert_eq(create(1, "erin", "r", T0), 0);
	cr_assert_neq(create(1, "erin", "r", T0), 0, "duplicate id");
	cr_assert_neq(create(3, "erin", "r", T0), 0, "id gap");
	cr_assert_neq(event("grant.expired", 1, "sbx", T0), 0, "a pending request cannot expire");
	cr_assert_eq(activate(1, T0, 60), 0);
	cr_assert_neq(activate(1, T0, 60), 0, "activated twice");
	cr_assert_neq(event("request.denied", 1, "frank", T0), 0, "an active grant is not denied");
	cr_assert_neq(apply(json_pack("{s:s, s:s}", "time", at(T0), "event", "request.created")), 0,
		      "created without fields");
	cr_assert_neq(apply(json_pack("{s:s}", "time", at(T0))), 0, "no event");
}

Test(state, other_events_change_nothing)
{
	cr_assert_eq(apply(json_pack("{s:s, s:s, s:s}", "time", at(T0), "event", "broker.started",
				     "actor", "sbx")), 0);
	cr_assert_eq(apply(json_pack("{s:s, s:s, s:s, s:s}", "time", at(T0), "event",
				     "access.checked", "actor", "sbx", "user", "erin")), 0);
	cr_assert_eq(sbx_state_count(st), 0);
}

Test(state, deadlines_and_due)
{
	struct sbx_req *due[8];

	cr_assert_eq(sbx_state_next_deadline(st), INT64_MAX);
	cr_assert_eq(create(1, "erin", "r", T0), 0);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 86400, "a pending request lapses");
	cr_assert_eq(create(2, "dave", "r", T0), 0);
	cr_assert_eq(activate(2, T0, 30), 0);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 30);
	cr_assert_eq(sbx_state_due(st, T0 + 29, due, 8), 0);
	cr_assert_eq(sbx_state_due(st, T0 + 30, due, 8), 1);
	cr_assert_eq(due[0]->id, 2);
	cr_assert_eq(event("grant.expired", 2, "sbx", T0 + 30), 0);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 86400);
	cr_assert_eq(sbx_state_due(st, T0 + 86400, due, 8), 1);
	cr_assert_eq(due[0]->id, 1);
}

Test(state, many_users_open_index)
{
	char user[32];
	struct sbx_req *open[4];

	for (uint32_t i = 1; i <= 5000; i++) {
		snprintf(user, sizeof(user), "u%05u", i);
		cr_assert_eq(create(i, user, "r", T0), 0, "%s", err);
	}
	for (uint32_t i = 1; i <= 5000; i += 499) {
		snprintf(user, sizeof(user), "u%05u", i);
		cr_assert_eq(sbx_state_user_open(st, user, open, 4), 1);
		cr_assert_eq(open[0]->id, i);
	}
	cr_assert_eq(sbx_state_user_open(st, "nobody", open, 4), 0);
}

/* A snapshot's entries, in order, as a JSON array. */
static int put_array(void *out, const json_t *entry)
{
	return json_array_append(out, (json_t *)entry);
}

static json_t *snapshot_of(const struct sbx_state *s)
{
	json_t *a = json_array();

	cr_assert_eq(sbx_state_snapshot(s, put_array, a), 0);
	return a;
}

static int load_all(struct sbx_state *s, const json_t *entries)
{
	json_t *e;
	size_t i;

	json_array_foreach(entries, i, e)
		if (sbx_state_from_json(s, e, err, sizeof(err)) < 0)
			return -1;
	return 0;
}

/* Where the head puts field name in a request's array. */
static size_t field_index(const json_t *entries, const char *name)
{
	json_t *fields = json_object_get(json_array_get(entries, 0), "fields"), *f;
	size_t k;

	json_array_foreach(fields, k, f)
		if (strcmp(json_string_value(f), name) == 0)
			return k;
	cr_assert_fail("no field %s in the head", name);
	return 0;
}

/* The integer value of field name of entry i. */
static json_int_t snap_value(const json_t *entries, size_t i, const char *name)
{
	return json_integer_value(json_array_get(json_array_get(entries, i),
						 field_index(entries, name)));
}

Test(state, snapshot_round_trip)
{
	struct sbx_state *copy = sbx_state_new();
	json_t *a, *b;
	char *da, *db;
	struct sbx_req *open[4];

	cr_assert_eq(create(1, "erin", "sandbox-admin", T0), 0);
	cr_assert_eq(event("request.approval", 1, "frank", T0 + 1), 0);
	cr_assert_eq(activate(1, T0 + 2, 3600), 0);
	cr_assert_eq(create(2, "dave", "sandbox-admin", T0 + 3), 0);
	cr_assert_eq(create(3, "alice", "prod-data", T0 + 4), 0);
	cr_assert_eq(event("request.denied", 3, "grace", T0 + 5), 0);

	a = snapshot_of(st);
	cr_assert_eq(json_array_size(a), 4, "a head and one entry per request");
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(a, 0), "requests")), 3);
	cr_assert_eq(snap_value(a, 1, "expires_at"), T0 + 2 + 3600, "times are Unix seconds");
	cr_assert_eq(snap_value(a, 1, "id"), 1);
	cr_assert_eq(snap_value(a, 3, "ended_at"), T0 + 5);
	cr_assert_eq(load_all(copy, a), 0, "%s", err);
	b = snapshot_of(copy);
	da = json_dumps(a, JSON_SORT_KEYS);
	db = json_dumps(b, JSON_SORT_KEYS);
	cr_assert_str_eq(da, db);
	cr_assert_eq(sbx_state_user_open(copy, "erin", open, 4), 1, "open index rebuilt");
	cr_assert_eq(sbx_state_user_open(copy, "dave", open, 4), 1, "open index rebuilt");
	cr_assert_eq(sbx_state_user_open(copy, "alice", open, 4), 0, "a denied one is not open");
	cr_assert_eq(sbx_state_next_deadline(copy), T0 + 2 + 3600);
	cr_assert_eq(sbx_state_next_id(copy), 4);
	cr_assert_str_eq(sbx_state_get(copy, 1)->approvals[0].who, "frank");
	cr_assert_eq(sbx_state_get(copy, 1)->approvals[0].at, T0 + 1);
	cr_assert_str_eq(sbx_state_get(copy, 3)->ended_by, "grace");
	cr_assert_neq(load_all(copy, a), 0, "loading into a non-empty state is refused");
	free(da);
	free(db);
	json_decref(a);
	json_decref(b);
	sbx_state_free(copy);
}

Test(state, snapshot_null_entry_forgets_everything)
{
	struct sbx_req *open[4];
	json_t *a;

	cr_assert_eq(create(1, "erin", "sandbox-admin", T0), 0);
	cr_assert_eq(activate(1, T0 + 2, 3600), 0);
	cr_assert_eq(sbx_state_from_json(st, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(sbx_state_count(st), 0);
	cr_assert_eq(sbx_state_user_open(st, "erin", open, 4), 0);
	cr_assert_eq(sbx_state_next_deadline(st), INT64_MAX);
	/* and the state takes records (or a snapshot) from scratch again */
	cr_assert_eq(create(1, "dave", "sandbox-admin", T0), 0, "%s", err);
	cr_assert_eq(sbx_state_user_open(st, "dave", open, 4), 1);
	a = snapshot_of(st);
	cr_assert_eq(sbx_state_from_json(st, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(load_all(st, a), 0, "%s", err);
	cr_assert_str_eq(sbx_state_get(st, 1)->user, "dave");
	json_decref(a);
}

Test(state, snapshot_garbage_is_refused)
{
	json_t *snap, *head, *bad;

	cr_assert_eq(create(1, "erin", "sandbox-admin", T0), 0);
	snap = snapshot_of(st);
	head = json_array_get(snap, 0);
	sbx_state_free(st);
	st = sbx_state_new();

	bad = json_deep_copy(head);
	json_object_set_new(bad, "version", json_integer(1));
	cr_assert_neq(sbx_state_from_json(st, bad, err, sizeof(err)), 0, "another version");
	cr_assert_not_null(strstr(err, "version 2"), "%s", err);
	json_decref(bad);
	bad = json_deep_copy(head);
	json_array_remove(json_object_get(bad, "fields"), 3);
	cr_assert_neq(sbx_state_from_json(st, bad, err, sizeof(err)), 0, "other fields");
	json_decref(bad);
	cr_assert_eq(sbx_state_from_json(st, head, err, sizeof(err)), 0, "%s", err);

	bad = json_pack("[i]", 1);
	cr_assert_neq(sbx_state_from_json(st, bad, err, sizeof(err)), 0, "no state, user or role");
	json_decref(bad);
	bad = json_deep_copy(json_array_get(snap, 1));
	json_array_set_new(bad, field_index(snap, "id"), json_integer(2));
	cr_assert_neq(sbx_state_from_json(st, bad, err, sizeof(err)), 0, "id 2 before id 1");
	cr_assert_not_null(strstr(err, "out of order"), "%s", err);
	json_array_set_new(bad, field_index(snap, "id"), json_integer(1));
	json_array_set_new(bad, field_index(snap, "created_at"), json_string(at(T0)));
	cr_assert_neq(sbx_state_from_json(st, bad, err, sizeof(err)), 0, "a time that is text");
	cr_assert_not_null(strstr(err, "wrong type"), "%s", err);
	json_decref(bad);
	cr_assert_null(sbx_state_get(st, 1), "a refused entry left something in memory");
	cr_assert_eq(sbx_state_from_json(st, json_array_get(snap, 1), err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(sbx_state_get(st, 1)->user, "erin");
	json_decref(snap);
}

/* ---- trials (the fleet's optimistic appends) ---- */

static char *dump_state(void)
{
	json_t *j = snapshot_of(st);
	char *s = json_dumps(j, JSON_SORT_KEYS);

	json_decref(j);
	return s;
}

Test(state, a_trial_is_taken_back_whole)
{
	struct sbx_req *open[8], *r1;
	char *before, *after;

	cr_assert_eq(create(1, "erin", "sandbox-admin", T0), 0);
	cr_assert_eq(create(2, "erin", "sandbox-readonly", T0), 0);
	cr_assert_eq(activate(2, T0 + 1, 600), 0);
	cr_assert_eq(create(3, "dave", "sandbox-admin", T0 + 2), 0);
	r1 = sbx_state_get(st, 1);
	before = dump_state();
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 601);

	cr_assert_eq(sbx_state_trial_begin(st), 0);
	cr_assert_eq(sbx_state_trial_begin(st), -1, "trials do not nest");
	/* approve and activate 1, revoke 2, deny 3, and file two more */
	cr_assert_eq(event("request.approval", 1, "frank", T0 + 10), 0, "%s", err);
	cr_assert_eq(activate(1, T0 + 10, 60), 0, "%s", err);
	cr_assert_eq(event("grant.revoked", 2, "frank", T0 + 11), 0, "%s", err);
	cr_assert_eq(event("request.denied", 3, "grace", T0 + 12), 0, "%s", err);
	cr_assert_eq(create(4, "erin", "sandbox-readonly", T0 + 13), 0, "%s", err);
	cr_assert_eq(activate(4, T0 + 13, 5), 0, "%s", err);
	cr_assert_eq(create(5, "carol", "sandbox-admin", T0 + 14), 0, "%s", err);
	cr_assert_eq(sbx_state_count(st), 5);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 18);
	cr_assert_eq(sbx_state_get(st, 1)->state, SBX_REQ_ACTIVE);

	sbx_state_trial_undo(st);
	after = dump_state();
	cr_assert_str_eq(before, after);
	cr_assert_eq(sbx_state_count(st), 3);
	cr_assert_eq(sbx_state_next_id(st), 4);
	cr_assert_eq(sbx_state_get(st, 1), r1, "a request keeps its address");
	cr_assert_eq(r1->state, SBX_REQ_PENDING);
	cr_assert_eq(r1->n_approvals, 0);
	cr_assert_eq(sbx_state_user_open(st, "erin", open, 8), 2);
	cr_assert_eq(sbx_state_user_open(st, "dave", open, 8), 1);
	cr_assert_eq(sbx_state_user_open(st, "carol", open, 8), 0);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 601);
	/* and the same records apply again after it */
	cr_assert_eq(sbx_state_trial_begin(st), 0);
	sbx_state_trial_undo(st);
	cr_assert_eq(event("request.approval", 1, "frank", T0 + 20), 0, "%s", err);
	cr_assert_eq(create(4, "erin", "sandbox-readonly", T0 + 21), 0, "%s", err);
	cr_assert_eq(sbx_state_count(st), 4);
	free(before);
	free(after);
}

Test(state, revoked_here_stops_counting_but_stays_active)
{
	struct sbx_state *copy = sbx_state_new();
	json_t *snap;
	struct sbx_req *r;

	cr_assert_eq(create(1, "erin", "sandbox-admin", T0), 0);
	cr_assert_eq(activate(1, T0 + 1, 3600), 0);
	r = sbx_state_get(st, 1);
	cr_assert(sbx_req_live(r, T0 + 2));
	cr_assert_eq(event("grant.revoked_here", 1, "root", T0 + 3), 0, "%s", err);
	cr_assert_eq(r->state, SBX_REQ_ACTIVE);
	cr_assert(r->revoked_here);
	cr_assert_not(sbx_req_live(r, T0 + 4));
	cr_assert_str_eq(r->ended_by, "root");
	/* a snapshot keeps it */
	snap = snapshot_of(st);
	cr_assert_eq(load_all(copy, snap), 0, "%s", err);
	cr_assert(sbx_state_get(copy, 1)->revoked_here);
	/* the fleet's own end still applies on top of it */
	cr_assert_eq(event("grant.revoked", 1, "root", T0 + 5), 0, "%s", err);
	cr_assert_eq(r->state, SBX_REQ_REVOKED);
	/* and a revoked_here of an ended grant changes nothing */
	cr_assert_eq(event("grant.revoked_here", 1, "root", T0 + 6), 0, "%s", err);
	json_decref(snap);
	sbx_state_free(copy);
}

/* ---- the deadline queue ---- */

static int create_lapsing(uint32_t id, const char *user, int64_t t, int64_t lapses_at)
{
	return apply(json_pack("{s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:i, s:s}", "time", at(t),
			       "event", "request.created", "actor", user, "id", id, "user", user,
			       "role", "r", "duration", 3600, "approvals_needed", 1, "lapses_at",
			       at(lapses_at)));
}

static int64_t deadline_of(const struct sbx_req *r)
{
	if (r->state == SBX_REQ_PENDING)
		return r->lapses_at;
	if (r->state == SBX_REQ_ACTIVE)
		return r->expires_at;
	return INT64_MAX;
}

/* The answer the queue must give, the slow way. */
static int64_t scan_next_deadline(const struct sbx_state *s)
{
	int64_t best = INT64_MAX;

	for (size_t i = 0; i < sbx_state_count(s); i++) {
		int64_t d = deadline_of(sbx_state_at(s, i));

		if (d < best)
			best = d;
	}
	return best;
}

static size_t scan_due(const struct sbx_state *s, int64_t now)
{
	size_t n = 0;

	for (size_t i = 0; i < sbx_state_count(s); i++)
		n += deadline_of(sbx_state_at(s, i)) <= now;
	return n;
}

/* What sbx_state_due returned: each request once, each due, in the order of
 * their deadlines, and as many as are due (or max). */
static void check_due(const struct sbx_state *s, int64_t now, size_t max)
{
	static struct sbx_req *due[8192];
	size_t want = scan_due(s, now), n;

	cr_assert_leq(max, sizeof(due) / sizeof(due[0]));
	n = sbx_state_due(s, now, due, max);
	cr_assert_eq(n, want < max ? want : max, "due at %lld: %zu of %zu (max %zu)",
		     (long long)(now - T0), n, want, max);
	for (size_t i = 0; i < n; i++) {
		cr_assert_leq(deadline_of(due[i]), now, "request %u is not due", due[i]->id);
		/* Strictly increasing (deadline, id): also none twice. */
		if (i)
			cr_assert(deadline_of(due[i - 1]) < deadline_of(due[i]) ||
					  (deadline_of(due[i - 1]) == deadline_of(due[i]) &&
					   due[i - 1]->id < due[i]->id),
				  "out of order or twice at %zu", i);
	}
}

/* sbx_state_open_at goes through every open request once, and nothing
 * else. */
static void check_open_list(const struct sbx_state *s)
{
	size_t open = 0, n = sbx_state_open_count(s);
	static unsigned char seen[1 << 16];

	cr_assert_lt(sbx_state_count(s), sizeof(seen));
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < sbx_state_count(s); i++)
		open += deadline_of(sbx_state_at(s, i)) != INT64_MAX;
	cr_assert_eq(n, open);
	for (size_t i = 0; i < n; i++) {
		const struct sbx_req *r = sbx_state_open_at(s, i);

		cr_assert(r->state == SBX_REQ_PENDING || r->state == SBX_REQ_ACTIVE);
		cr_assert_not(seen[r->id], "request %u twice", r->id);
		seen[r->id] = 1;
	}
	cr_assert_null(sbx_state_open_at(s, n));
}

Test(state, the_earliest_deadline_follows_every_change)
{
	cr_assert_eq(create_lapsing(1, "erin", T0, T0 + 500), 0, "%s", err);
	cr_assert_eq(create_lapsing(2, "dave", T0, T0 + 300), 0, "%s", err);
	cr_assert_eq(create_lapsing(3, "carol", T0, T0 + 400), 0, "%s", err);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 300, "an earlier insert takes the lead");
	cr_assert_eq(create_lapsing(4, "alice", T0, T0 + 900), 0, "%s", err);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 300, "a later insert does not");

	/* The earliest one is activated for longer: the next one leads. */
	cr_assert_eq(activate(2, T0 + 1, 2000), 0, "%s", err);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 400);
	/* One is activated for less than any other deadline: it leads. */
	cr_assert_eq(activate(4, T0 + 2, 10), 0, "%s", err);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 12);

	/* Ending the earliest (what used to force a rescan), then one that is
	 * not the earliest, then the rest. */
	cr_assert_eq(event("grant.revoked", 4, "frank", T0 + 3), 0, "%s", err);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 400);
	cr_assert_eq(event("request.denied", 1, "frank", T0 + 4), 0, "%s", err);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 400);
	cr_assert_eq(event("request.cancelled", 3, "carol", T0 + 5), 0, "%s", err);
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 1 + 2000);
	cr_assert_eq(event("grant.expired", 2, "sbx", T0 + 2001), 0, "%s", err);
	cr_assert_eq(sbx_state_next_deadline(st), INT64_MAX, "nothing open, nothing due");
	check_due(st, T0 + 100000, 8);
}

Test(state, equal_deadlines_all_fall_due)
{
	char user[16];

	for (uint32_t i = 1; i <= 100; i++) {
		snprintf(user, sizeof(user), "u%03u", i);
		cr_assert_eq(create_lapsing(i, user, T0, T0 + 60), 0, "%s", err);
	}
	cr_assert_eq(sbx_state_next_deadline(st), T0 + 60);
	check_due(st, T0 + 59, 128);
	check_due(st, T0 + 60, 128);
	check_due(st, T0 + 60, 7);
	for (int i = 100; i >= 1; i -= 3) {
		cr_assert_eq(event("request.lapsed", (uint32_t)i, "sbx", T0 + 60), 0, "%s", err);
		cr_assert_eq(sbx_state_next_deadline(st), scan_next_deadline(st));
		check_due(st, T0 + 60, 128);
	}
}

/* As the broker expires: take what is due, a batch at a time, end it, ask
 * again, until nothing is due; what is not due stays. */
Test(state, ending_what_is_due_in_batches_ends_exactly_that)
{
	struct sbx_req *due[16];
	char user[16];
	size_t ended = 0, n, want;

	for (uint32_t i = 1; i <= 1000; i++) {
		snprintf(user, sizeof(user), "u%04u", i);
		cr_assert_eq(create_lapsing(i, user, T0, T0 + 1000 + (i * 7919) % 1000), 0, "%s",
			     err);
		if (i % 2 == 0)
			cr_assert_eq(activate(i, T0, (i * 104729) % 3000), 0, "%s", err);
	}
	want = scan_due(st, T0 + 1500);
	cr_assert_gt(want, 16, "several batches");
	do {
		n = sbx_state_due(st, T0 + 1500, due, 16);
		for (size_t i = 0; i < n; i++) {
			const char *ev = due[i]->state == SBX_REQ_ACTIVE ? "grant.expired"
									 : "request.lapsed";

			cr_assert_leq(deadline_of(due[i]), T0 + 1500);
			cr_assert_eq(event(ev, due[i]->id, "sbx", T0 + 1500), 0, "%s", err);
		}
		ended += n;
	} while (n == 16);
	cr_assert_eq(ended, want);
	cr_assert_eq(scan_due(st, T0 + 1500), 0);
	cr_assert_gt(sbx_state_next_deadline(st), T0 + 1500);
	cr_assert_eq(sbx_state_next_deadline(st), scan_next_deadline(st));
}

Test(state, a_snapshot_rebuilds_the_deadline_queue)
{
	struct sbx_state *copy = sbx_state_new();
	char user[16];
	json_t *snap;

	for (uint32_t i = 1; i <= 300; i++) {
		snprintf(user, sizeof(user), "u%03u", i);
		cr_assert_eq(create_lapsing(i, user, T0, T0 + 5000 - (i * 31) % 4000), 0, "%s", err);
		if (i % 3 == 0)
			cr_assert_eq(activate(i, T0, (i * 17) % 6000 + 1), 0, "%s", err);
		if (i % 5 == 0)
			cr_assert_eq(event(i % 3 == 0 ? "grant.revoked" : "request.cancelled", i,
					   user, T0 + 1), 0, "%s", err);
	}
	snap = snapshot_of(st);
	cr_assert_eq(load_all(copy, snap), 0, "%s", err);
	cr_assert_eq(sbx_state_next_deadline(copy), scan_next_deadline(st));
	check_open_list(copy);
	for (int64_t now = T0; now < T0 + 7000; now += 250)
		check_due(copy, now, 300);
	json_decref(snap);
	sbx_state_free(copy);
}

/* xorshift64*: the same sequence on every machine and every run. */
static uint64_t rnd_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(uint64_t n)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return (rnd_state * 2685821657736338717ULL) % n;
}

/* One random change that the state accepts: file a request, activate a
 * pending one, or end an open one in any way it can end. */
static void random_change(int64_t now)
{
	static const char *const pending_ends[] = { "request.denied", "request.cancelled",
						    "request.lapsed" };
	static const char *const active_ends[] = { "grant.expired", "grant.revoked" };
	uint32_t n = (uint32_t)sbx_state_count(st);
	struct sbx_req *r = n ? sbx_state_get(st, (uint32_t)rnd(n) + 1) : NULL;
	char user[16];

	if (!r || r->state > SBX_REQ_ACTIVE || rnd(4) == 0) {
		snprintf(user, sizeof(user), "u%03u", (unsigned)rnd(500));
		/* Few distinct deadlines: ties are common. */
		cr_assert_eq(create_lapsing(n + 1, user, now, now + (int64_t)rnd(2000)), 0, "%s",
			     err);
	} else if (r->state == SBX_REQ_PENDING && rnd(2)) {
		cr_assert_eq(activate(r->id, now, (int64_t)rnd(3000)), 0, "%s", err);
	} else if (r->state == SBX_REQ_PENDING) {
		cr_assert_eq(event(pending_ends[rnd(3)], r->id, "frank", now), 0, "%s", err);
	} else {
		cr_assert_eq(event(active_ends[rnd(2)], r->id, "frank", now), 0, "%s", err);
	}
}

static void check_queue(int64_t now)
{
	cr_assert_eq(sbx_state_next_deadline(st), scan_next_deadline(st), "after %zu requests",
		     sbx_state_count(st));
	if (rnd(64) == 0)
		check_open_list(st);
	if (rnd(16) == 0) {
		check_due(st, now + (int64_t)rnd(3000), 8192);
		check_due(st, now + (int64_t)rnd(3000), 1 + rnd(20));
	}
}

Test(state, random_changes_agree_with_a_full_scan)
{
	int64_t now = T0;

	for (int step = 0; step < 6000; step++, now += (int64_t)rnd(3)) {
		if (rnd(200) == 0) {
			/* A trial of a few changes, taken back: the queue is as before. */
			char *before = dump_state(), *after;
			int64_t next = sbx_state_next_deadline(st);

			cr_assert_eq(sbx_state_trial_begin(st), 0);
			for (uint64_t k = rnd(8); k > 0; k--) {
				random_change(now);
				check_queue(now);
			}
			sbx_state_trial_undo(st);
			after = dump_state();
			cr_assert_str_eq(before, after);
			cr_assert_eq(sbx_state_next_deadline(st), next, "at step %d", step);
			free(before);
			free(after);
		}
		random_change(now);
		check_queue(now);
	}
}

/* ---- the users' index while it grows ---- */

/* Users arrive, come back, and end requests while the index grows (from
 * 64 slots to 32768) and moves them over bit by bit: every user's open
 * requests are found at every moment. */
Test(state, the_open_index_while_it_grows)
{
	enum { USERS = 12000, CHANGES = 30000 };
	static unsigned want[USERS];
	static uint32_t last[USERS];
	struct sbx_req *open[64];
	char user[16];
	uint32_t id = 0;
	unsigned seen = 0;

	for (int step = 0; step < CHANGES; step++) {
		/* As many new users as users seen before (some of them still in
		 * the old table), until all have come. */
		unsigned u = seen < USERS && (!seen || rnd(2)) ? seen++ : (unsigned)rnd(seen);

		snprintf(user, sizeof(user), "u%05u", u);
		if (last[u] && rnd(3) == 0) {
			cr_assert_eq(event("request.cancelled", last[u], user, T0), 0, "%s", err);
			want[u]--;
			last[u] = 0;
		} else if (want[u] < 30) {
			cr_assert_eq(create_lapsing(++id, user, T0, T0 + 600), 0, "%s", err);
			want[u]++;
			last[u] = id;
		}
		cr_assert_eq(sbx_state_user_open(st, user, open, 64), want[u], "%s at %d", user,
			     step);
		if (step % 997 == 0 || step == CHANGES - 1) {
			for (unsigned k = 0; k < USERS; k++) {
				snprintf(user, sizeof(user), "u%05u", k);
				cr_assert_eq(sbx_state_user_open(st, user, open, 64), want[k],
					     "%s at %d", user, step);
			}
		}
	}
}

/* ---- forgetting what ended long ago --------------------------------------------- */

/* Past keep_ended, the requests that ended first leave memory; open ones
 * never do, whatever their age; later records about a forgotten one are
 * accepted (it ended), and a trial forgets nothing it could not undo. */
Test(state, only_the_latest_ended_stay_in_memory)
{
	sbx_state_keep_ended(st, 3);
	cr_assert_eq(create(1, "erin", "sandbox-admin", T0), 0);	/* stays open */
	for (uint32_t id = 2; id <= 7; id++) {
		cr_assert_eq(create(id, "dave", "sandbox-admin", T0 + id), 0, "%s", err);
		cr_assert_eq(event("request.cancelled", id, "dave", T0 + id), 0, "%s", err);
	}
	cr_assert_eq(sbx_state_count(st), 7);
	cr_assert_eq(sbx_state_next_id(st), 8);
	cr_assert_not_null(sbx_state_get(st, 1), "an open request is never forgotten");
	cr_assert_not(sbx_state_forgotten(st, 1));
	for (uint32_t id = 2; id <= 4; id++) {
		cr_assert_null(sbx_state_get(st, id), "request %u", id);
		cr_assert(sbx_state_forgotten(st, id), "request %u", id);
		cr_assert_null(sbx_state_at(st, id - 1));
	}
	for (uint32_t id = 5; id <= 7; id++)
		cr_assert_eq(sbx_state_get(st, id)->state, SBX_REQ_CANCELLED, "request %u", id);
	cr_assert_not(sbx_state_forgotten(st, 8), "an id never given is not forgotten");
	cr_assert_eq(event("grant.revoked_here", 2, "frank", T0 + 20), 0, "%s", err);

	/* The one open for long ends: it is the newest ended now. */
	cr_assert_eq(event("request.cancelled", 1, "erin", T0 + 30), 0, "%s", err);
	cr_assert(sbx_state_forgotten(st, 5));
	cr_assert_not_null(sbx_state_get(st, 1));

	cr_assert_eq(sbx_state_trial_begin(st), 0);
	cr_assert_eq(create(8, "carol", "sandbox-admin", T0 + 40), 0, "%s", err);
	cr_assert_eq(event("request.cancelled", 8, "carol", T0 + 40), 0, "%s", err);
	cr_assert_not_null(sbx_state_get(st, 6), "a trial forgot request 6");
	sbx_state_trial_undo(st);
	cr_assert_eq(sbx_state_next_id(st), 8);

	/* A smaller limit applies at once. */
	sbx_state_keep_ended(st, 1);
	cr_assert(sbx_state_forgotten(st, 6));
	cr_assert(sbx_state_forgotten(st, 7));
	cr_assert_not_null(sbx_state_get(st, 1));
}

/* A snapshot holds what is in memory: the forgotten stay forgotten, and
 * ids go on after them. */
Test(state, a_snapshot_keeps_the_gaps)
{
	struct sbx_state *back = sbx_state_new();
	json_t *j;

	sbx_state_keep_ended(st, 1);
	for (uint32_t id = 1; id <= 4; id++) {
		cr_assert_eq(create(id, "dave", "sandbox-admin", T0 + id), 0, "%s", err);
		if (id != 2)
			cr_assert_eq(event("request.cancelled", id, "dave", T0 + id), 0, "%s", err);
	}
	j = snapshot_of(st);
	cr_assert_eq(json_array_size(j), 3, "the head, request 2 and request 4");
	sbx_state_keep_ended(back, 1);
	for (size_t i = 0; i < json_array_size(j); i++)
		cr_assert_eq(sbx_state_from_json(back, json_array_get(j, i), err, sizeof(err)), 0,
			     "%s", err);
	cr_assert_eq(sbx_state_next_id(back), 5);
	cr_assert(sbx_state_forgotten(back, 1));
	cr_assert_eq(sbx_state_get(back, 2)->state, SBX_REQ_PENDING);
	cr_assert(sbx_state_forgotten(back, 3));
	cr_assert_eq(sbx_state_get(back, 4)->state, SBX_REQ_CANCELLED);
	cr_assert_eq(sbx_state_next_deadline(back), sbx_state_next_deadline(st));
	json_decref(j);
	sbx_state_free(back);
}
