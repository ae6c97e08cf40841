/*
 * Access reviews in the broker (reviews.h, docs/review.md).
 */
#include "config.h"

#include "reviews.h"

#include "broker.h"
#include "dispatch.h"
#include "duration.h"
#include "log.h"
#include "slack/slack.h"
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US 1000000LL

struct rv_role {
	char *name;
	int64_t last_review_us;  /* 0: never */
	int64_t due_noted;       /* the due_at (Unix s) of the last review.due */
	bool suspended;
	int64_t suspended_at;    /* Unix s */
};

/* An eligibility taken away by review.revoked, while the policy file is
 * the one it was taken under. */
struct rv_override {
	char *user, *role, *by;
	char policy_sha[65];
	int64_t at_us;
};

struct sbx_reviews {
	int64_t first_policy_us;
	struct rv_role *roles;
	size_t n_roles;
	struct rv_override *ov;
	size_t n_ov;
};

struct sbx_reviews *sbx_reviews_new(void)
{
	return calloc(1, sizeof(struct sbx_reviews));
}

static void override_free(struct rv_override *o)
{
	free(o->user);
	free(o->role);
	free(o->by);
}

void sbx_reviews_free(struct sbx_reviews *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_roles; i++)
		free(t->roles[i].name);
	free(t->roles);
	for (size_t i = 0; i < t->n_ov; i++)
		override_free(&t->ov[i]);
	free(t->ov);
	free(t);
}

static struct rv_role *role_get(struct sbx_reviews *t, const char *name, bool create)
{
	struct rv_role *nv;

	for (size_t i = 0; i < t->n_roles; i++)
		if (strcmp(t->roles[i].name, name) == 0)
			return &t->roles[i];
	if (!create)
		return NULL;
	nv = realloc(t->roles, (t->n_roles + 1) * sizeof(*nv));
	if (!nv)
		return NULL;
	t->roles = nv;
	memset(&nv[t->n_roles], 0, sizeof(*nv));
	if (!(nv[t->n_roles].name = strdup(name)))
		return NULL;
	return &t->roles[t->n_roles++];
}

static const struct rv_role *role_find(const struct sbx_reviews *t, const char *name)
{
	for (size_t i = 0; t && i < t->n_roles; i++)
		if (strcmp(t->roles[i].name, name) == 0)
			return &t->roles[i];
	return NULL;
}

static void override_drop(struct sbx_reviews *t, const char *user, const char *role)
{
	for (size_t i = 0; i < t->n_ov; i++) {
		if (strcmp(t->ov[i].user, user) == 0 && strcmp(t->ov[i].role, role) == 0) {
			override_free(&t->ov[i]);
			t->ov[i] = t->ov[--t->n_ov];
			return;
		}
	}
}

static int override_add(struct sbx_reviews *t, const char *user, const char *role,
			const char *by, const char *sha, int64_t at_us)
{
	struct rv_override *nv, *o;

	override_drop(t, user, role);
	nv = realloc(t->ov, (t->n_ov + 1) * sizeof(*nv));
	if (!nv)
		return -1;
	t->ov = nv;
	o = &nv[t->n_ov];
	memset(o, 0, sizeof(*o));
	o->user = strdup(user);
	o->role = strdup(role);
	o->by = strdup(by ? by : "?");
	snprintf(o->policy_sha, sizeof(o->policy_sha), "%s", sha);
	o->at_us = at_us;
	if (!o->user || !o->role || !o->by) {
		override_free(o);
		return -1;
	}
	t->n_ov++;
	return 0;
}

static const char *str_of(const json_t *o, const char *k)
{
	return json_string_value(json_object_get(o, k));
}

/* The same fold for the replay and live records. */
void sbx_reviews_replay(struct sbx_reviews *t, const json_t *rec)
{
	const char *ev = str_of(rec, "event"), *ts = str_of(rec, "time");
	const char *role = str_of(rec, "role"), *user = str_of(rec, "user");
	struct rv_role *r;
	int64_t us = 0;

	if (!t || !ev || !ts || sbx_parse_rfc3339_us(ts, &us) < 0)
		return;
	if (strcmp(ev, "policy.loaded") == 0) {
		if (!t->first_policy_us)
			t->first_policy_us = us;
		return;
	}
	if (strncmp(ev, "review.", 7) != 0 || !role || !(r = role_get(t, role, true))) {
		if (ev && strncmp(ev, "review.", 7) == 0 && role)
			sbx_err("reviews: out of memory: %s of %s is not kept", ev, role);
		return;
	}
	if (strcmp(ev, "review.certified") == 0 || strcmp(ev, "review.revoked") == 0) {
		r->last_review_us = us;
		if (user)
			override_drop(t, user, role);
		if (user && json_is_true(json_object_get(rec, "eligibility_removed")) &&
		    override_add(t, user, role, str_of(rec, "actor"),
				 str_of(rec, "policy_sha256") ?: "", us) < 0)
			sbx_err("reviews: out of memory: the revoke of %s's %s is not kept", user,
				role);
	} else if (strcmp(ev, "review.due") == 0) {
		r->due_noted = json_integer_value(json_object_get(rec, "due_at_unix"));
	} else if (strcmp(ev, "review.suspended") == 0) {
		r->suspended = true;
		r->suspended_at = us / US;
	} else if (strcmp(ev, "review.resumed") == 0) {
		r->suspended = false;
	}
}

void sbx_reviews_on_record(struct sbx_broker *b, const json_t *rec)
{
	sbx_reviews_replay(b->reviews, rec);
}

json_t *sbx_reviews_save(const struct sbx_reviews *t)
{
	json_t *o, *roles, *ov;

	if (!t)
		return NULL;
	roles = json_array();
	ov = json_array();
	for (size_t i = 0; roles && i < t->n_roles; i++) {
		const struct rv_role *r = &t->roles[i];

		json_array_append_new(roles, json_pack("{s:s, s:I, s:I, s:b, s:I}", "role", r->name,
						       "last_review_us", (json_int_t)r->last_review_us,
						       "due_noted", (json_int_t)r->due_noted,
						       "suspended", r->suspended, "suspended_at",
						       (json_int_t)r->suspended_at));
	}
	for (size_t i = 0; ov && i < t->n_ov; i++) {
		const struct rv_override *v = &t->ov[i];

		json_array_append_new(ov, json_pack("{s:s, s:s, s:s, s:s, s:I}", "user", v->user,
						    "role", v->role, "by", v->by, "policy_sha256",
						    v->policy_sha, "at_us", (json_int_t)v->at_us));
	}
	o = json_pack("{s:I, s:o, s:o}", "first_policy_us", (json_int_t)t->first_policy_us,
		      "roles", roles, "overrides", ov);
	return o;
}

int sbx_reviews_load(struct sbx_reviews *t, const json_t *saved)
{
	const json_t *v;
	size_t i;

	if (!t || !json_is_object(saved))
		return -1;
	t->first_policy_us = json_integer_value(json_object_get(saved, "first_policy_us"));
	json_array_foreach(json_object_get(saved, "roles"), i, v) {
		const char *name = str_of(v, "role");
		struct rv_role *r;

		if (!name || !(r = role_get(t, name, true)))
			return -1;
		r->last_review_us = json_integer_value(json_object_get(v, "last_review_us"));
		r->due_noted = json_integer_value(json_object_get(v, "due_noted"));
		r->suspended = json_is_true(json_object_get(v, "suspended"));
		r->suspended_at = json_integer_value(json_object_get(v, "suspended_at"));
	}
	json_array_foreach(json_object_get(saved, "overrides"), i, v) {
		const char *u = str_of(v, "user"), *role = str_of(v, "role");

		if (!u || !role ||
		    override_add(t, u, role, str_of(v, "by"), str_of(v, "policy_sha256") ?: "",
				 json_integer_value(json_object_get(v, "at_us"))) < 0)
			return -1;
	}
	return 0;
}

/* ---- deadlines ---- */

/* When role's review is due (Unix s), or 0 when it is never. */
static int64_t due_at(const struct sbx_reviews *t, const struct sbx_role *role)
{
	const struct rv_role *r = role_find(t, role->name);
	int64_t base = r && r->last_review_us ? r->last_review_us : t->first_policy_us;

	if (!role->review_every || !base)
		return 0;
	return base / US + role->review_every;
}

static bool must_suspend(const struct sbx_reviews *t, const struct sbx_role *role, int64_t now)
{
	int64_t due = due_at(t, role);

	return due && role->on_missed_review == SBX_MISSED_SUSPEND && now >= due + role->review_grace;
}

static json_t *time_json(int64_t secs)
{
	char buf[SBX_RFC3339_LEN];

	sbx_format_rfc3339(secs, buf);
	return json_string(buf);
}

/* The report's summary for one role, as the broker knows it: members by
 * kind, live grants, and what the next step is. */
static void notify_due(struct sbx_broker *b, const struct sbx_role *role, int64_t due,
		       const char *approvers, const char *every)
{
	size_t standing = 0, eligible = 0, live = 0, n = sbx_state_count(b->state);
	const struct rv_role *r = role_find(b->reviews, role->name);
	char text[2048], at[SBX_RFC3339_LEN], last[SBX_RFC3339_LEN] = "never";
	int64_t now = sbx_now();

	for (size_t i = 0; i < b->policy->n_users; i++) {
		enum sbx_membership m = sbx_policy_membership(b->policy, role,
							      b->policy->users[i].name, NULL);

		standing += m == SBX_MEMBER_STANDING;
		eligible += m == SBX_MEMBER_ELIGIBLE;
	}
	for (size_t i = 0; i < n; i++) {
		const struct sbx_req *q = sbx_state_at(b->state, i);

		live += q && strcmp(q->role, role->name) == 0 && sbx_req_live(q, now);
	}
	sbx_format_rfc3339(due, at);
	if (r && r->last_review_us)
		sbx_format_rfc3339(r->last_review_us / US, last);
	snprintf(text, sizeof(text), "Access review due: %s on %s (every %s, due %s, last review "
		 "%s). %zu standing and %zu eligible members, %zu live grants. Approvers: %s. "
		 "Review: sbxctl review report --role %s; decide: sbxctl review certify|revoke "
		 "USER %s --comment TEXT.%s", role->name, b->policy->broker.host, every, at, last,
		 standing, eligible, live, approvers, role->name, role->name,
		 role->on_missed_review == SBX_MISSED_SUSPEND
		 ? " Without a review, new grants stop after review_grace." : "");
	struct sbx_slack_notice nt = {
		.user = "approvers", .role = role->name, .state = "review.due", .text = text,
	};

	if (sbx_slack_queue_notice(b, &nt) < 0)
		sbx_warn("slack: could not queue the review notice of %s", role->name);
}

static void record_due(struct sbx_broker *b, const struct sbx_role *role, int64_t due)
{
	const struct rv_role *r = role_find(b->reviews, role->name);
	char approvers[512], every[32], grace[32];
	json_t *f = json_object();
	uint64_t seq;

	sbx_policy_approvers_text(b->policy, role, NULL, approvers, sizeof(approvers));
	sbx_duration_format(role->review_every, every, sizeof(every));
	sbx_duration_format(role->review_grace, grace, sizeof(grace));
	sbx_rec_str(f, "role", role->name);
	json_object_set_new(f, "due_at", time_json(due));
	json_object_set_new(f, "due_at_unix", json_integer(due));
	json_object_set_new(f, "last_review", r && r->last_review_us
				? time_json(r->last_review_us / US) : json_null());
	sbx_rec_str(f, "review_every", every);
	sbx_rec_str(f, "on_missed_review",
		    role->on_missed_review == SBX_MISSED_SUSPEND ? "suspend" : "notify");
	sbx_rec_str(f, "review_grace", grace);
	sbx_rec_str(f, "approvers", approvers);
	if (sbx_broker_record(b, "review.due", SBX_SYSTEM_ACTOR, f, &seq) < 0)
		return;
	notify_due(b, role, due, approvers, every);
	sbx_warn("access review of %s is due (every %s): %s, review its members "
		 "(sbxctl review report --role %s; sbxctl review certify|revoke USER %s)%s",
		 role->name, every, approvers, role->name, role->name,
		 role->on_missed_review == SBX_MISSED_SUSPEND
		 ? "; new grants stop after review_grace" : "");
}

static void record_suspended(struct sbx_broker *b, const struct sbx_role *role, int64_t due)
{
	char why[256], grace[32];
	json_t *f = json_object();
	uint64_t seq;

	sbx_duration_format(role->review_grace, grace, sizeof(grace));
	snprintf(why, sizeof(why), "its access review was due and not done within review_grace "
		 "(%s); on_missed_review: suspend", grace);
	sbx_rec_str(f, "role", role->name);
	json_object_set_new(f, "due_at", time_json(due));
	sbx_rec_str(f, "reason", why);
	if (sbx_broker_record(b, "review.suspended", SBX_SYSTEM_ACTOR, f, &seq) == 0)
		sbx_warn("role %s suspended: %s", role->name, why);
}

static void record_resumed(struct sbx_broker *b, const char *role, const char *because,
			   uint64_t *seq)
{
	json_t *f = json_object();

	sbx_rec_str(f, "role", role);
	sbx_rec_str(f, "because", because);
	if (sbx_broker_record(b, "review.resumed", SBX_SYSTEM_ACTOR, f, seq) == 0)
		sbx_info("role %s resumed: %s", role, because);
}

/* Resume the suspended roles that no longer must be (reviewed, or the
 * policy no longer asks). */
static void resume_due(struct sbx_broker *b, int64_t now, const char *because, uint64_t *seq)
{
	struct sbx_reviews *t = b->reviews;

	for (size_t i = 0; i < t->n_roles; i++) {
		const struct sbx_role *role = sbx_policy_role(b->policy, t->roles[i].name);

		if (!t->roles[i].suspended || (role && must_suspend(t, role, now)))
			continue;
		record_resumed(b, t->roles[i].name,
			       because ? because : role ? "the policy no longer suspends it"
			       : "the role is no longer in the policy", seq);
	}
}

void sbx_reviews_tick(struct sbx_broker *b, int64_t now_us)
{
	struct sbx_reviews *t = b->reviews;
	int64_t now = now_us / US;
	uint64_t seq;

	if (!t || b->replaying || !sbx_broker_can_change(b, NULL, 0))
		return;
	for (size_t i = 0; i < b->policy->n_roles; i++) {
		const struct sbx_role *role = &b->policy->roles[i];
		const struct rv_role *r;
		int64_t due = due_at(t, role);

		if (!due || now < due)
			continue;
		r = role_find(t, role->name);
		if (!r || r->due_noted != due)
			record_due(b, role, due);
		r = role_find(t, role->name);
		if (must_suspend(t, role, now) && r && !r->suspended)
			record_suspended(b, role, due);
	}
	resume_due(b, now, NULL, &seq);
}

/* ---- questions ---- */

static const struct rv_override *override_in_force(const struct sbx_broker *b, const char *user,
						   const char *role)
{
	const struct sbx_reviews *t = b->reviews;

	for (size_t i = 0; t && i < t->n_ov; i++) {
		const struct rv_override *o = &t->ov[i];

		if (strcmp(o->user, user) == 0 && strcmp(o->role, role) == 0 &&
		    strcmp(o->policy_sha, b->policy->sha256_hex) == 0)
			return o;
	}
	return NULL;
}

bool sbx_reviews_revoked(const struct sbx_broker *b, const char *user, const char *role,
			 char *why, size_t whylen)
{
	const struct rv_override *o = override_in_force(b, user, role);
	char at[SBX_RFC3339_LEN];

	if (!o)
		return false;
	sbx_format_rfc3339(o->at_us / US, at);
	snprintf(why, whylen, "revoked in an access review by %s at %s (until the policy file "
		 "changes)", o->by, at);
	return true;
}

int sbx_reviews_check_request(const struct sbx_broker *b, const char *role, const char *person,
			      char *why, size_t whylen)
{
	const struct rv_role *r = role_find(b->reviews, role);
	char text[300], at[SBX_RFC3339_LEN];

	if (r && r->suspended) {
		sbx_format_rfc3339(r->suspended_at, at);
		snprintf(why, whylen, "%s is suspended since %s: its access review was missed "
			 "(on_missed_review: suspend); new grants resume once one of its approvers "
			 "or an admin certifies it (sbxctl review certify USER %s)", role, at, role);
		return -1;
	}
	if (sbx_reviews_revoked(b, person, role, text, sizeof(text))) {
		snprintf(why, whylen, "%s's eligibility for %s was %s", person, role, text);
		return -1;
	}
	return 0;
}

/* ---- ops ---- */

/* How user holds role: "standing", "eligible", "grant", or NULL. */
static const char *access_of(struct sbx_broker *b, const struct sbx_role *role, const char *user,
			     int64_t now)
{
	struct sbx_req *open[SBX_OPEN_MAX];
	size_t n = sbx_state_user_open(b->state, user, open, SBX_OPEN_MAX);
	enum sbx_membership m = sbx_policy_membership(b->policy, role, user, NULL);

	if (m == SBX_MEMBER_STANDING)
		return "standing";
	if (m == SBX_MEMBER_ELIGIBLE)
		return "eligible";
	for (size_t i = 0; i < n; i++)
		if (strcmp(open[i]->role, role->name) == 0 && sbx_req_live(open[i], now))
			return "grant";
	return NULL;
}

/* user's live grants of role, their ids in live (SBX_OPEN_MAX of room). */
static size_t live_grants(struct sbx_broker *b, const char *role, const char *user, int64_t now,
			  uint32_t *live)
{
	struct sbx_req *open[SBX_OPEN_MAX];
	size_t n = sbx_state_user_open(b->state, user, open, SBX_OPEN_MAX), k = 0;

	for (size_t i = 0; i < n; i++)
		if (strcmp(open[i]->role, role) == 0 && sbx_req_live(open[i], now))
			live[k++] = open[i]->id;
	return k;
}

/* End user's live grants of role, their ids appended to ids. */
static int end_grants(struct sbx_broker *b, struct sbx_call *c, const char *role,
		      const char *user, int64_t now, json_t *ids, char *why, size_t whylen)
{
	uint32_t live[SBX_OPEN_MAX];
	/* Copied first: ending one changes the state's list. */
	size_t k = live_grants(b, role, user, now, live);
	char reason[SBX_TEXT_MAX + 64];

	snprintf(reason, sizeof(reason), "revoked in an access review: %s", c->a.comment);
	for (size_t i = 0; i < k; i++) {
		int rc = sbx_broker_end(b, live[i], false, c->who.person, c->who.through, true, reason,
					NULL, &c->wait_seq, why, whylen);

		if (rc < 0)
			return rc;
		json_array_append_new(ids, json_integer(live[i]));
	}
	return 0;
}

/* Who may decide, about what: 0 with the role, how user holds it and on
 * what ground the caller decides; or -1 with the reply filled. */
static int decision_refused(struct sbx_broker *b, struct sbx_call *c, bool revoke, int64_t now,
			    const struct sbx_role **out, const char **how, char *ground,
			    size_t groundlen)
{
	const char *user = c->a.user;
	const struct sbx_role *role;
	uint32_t live[SBX_OPEN_MAX];
	char why[512];
	size_t k;

	if (!user[0] || !c->a.role[0]) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "which user and role? (sbxctl review %s USER ROLE "
			       "--comment TEXT)", revoke ? "revoke" : "certify");
		return -1;
	}
	if (!c->a.comment[0]) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "a review decision needs a comment (--comment): "
			       "the auditors read it");
		return -1;
	}
	role = sbx_policy_role(b->policy, c->a.role);
	if (!role) {
		sbx_reply_fail(c, SBX_ST_NOTFOUND, "unknown role '%s'", c->a.role);
		return -1;
	}
	if (strcmp(user, c->who.person) == 0) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "you cannot review your own access (%s of %s): "
			       "another approver of the role or an admin must", user, role->name);
		return -1;
	}
	if (c->who.admin)
		snprintf(ground, groundlen, "admin");
	else if (!sbx_policy_may_approve(b->policy, role, user, c->who.person, ground, groundlen)) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "only the approvers of %s (for %s) and admins may "
			       "review it: %s", role->name, user, ground);
		return -1;
	}
	*how = access_of(b, role, user, now);
	if (!*how) {
		sbx_reply_fail(c, SBX_ST_NOTFOUND, "%s has no access to %s to review (not standing, "
			       "not eligible, no live grant)", user, role->name);
		return -1;
	}
	if (!sbx_broker_can_change(b, why, sizeof(why))) {
		sbx_reply_fail(c, SBX_ST_UNAVAILABLE, "%s", why);
		return -1;
	}
	/* In a fleet a revocation goes through the fleet's log (a deferred
	 * change, fleet.h), which a review op is not: end them there first. */
	if (revoke && b->fleet && (k = live_grants(b, role->name, user, now, live))) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "%s holds %zu live grant(s) of %s (first: %u): in a "
			       "fleet, revoke them first (sbxctl revoke ID), then record the review",
			       user, k, role->name, live[0]);
		return -1;
	}
	*out = role;
	return 0;
}

/* review.certified / review.revoked.  0, or -1 with the reply filled. */
static int record_decision(struct sbx_broker *b, struct sbx_call *c, bool revoke,
			   const struct sbx_role *role, const char *how, const char *ground)
{
	json_t *f = json_object();
	char why[512];
	uint64_t seq = 0;

	sbx_rec_str(f, "user", c->a.user);
	sbx_rec_str(f, "role", role->name);
	if (c->who.through)
		sbx_rec_str(f, "through", c->who.through);
	sbx_rec_str(f, "ground", ground);
	sbx_rec_str(f, "comment", c->a.comment);
	sbx_rec_str(f, "access", how);
	sbx_rec_str(f, "policy_sha256", b->policy->sha256_hex);
	if (revoke)
		json_object_set_new(f, "eligibility_removed", json_boolean(strcmp(how, "standing")));
	if (sbx_broker_record(b, revoke ? "review.revoked" : "review.certified", c->who.person, f,
			      &seq) < 0) {
		sbx_reply_fail(c, SBX_ST_UNAVAILABLE, "%s",
			       sbx_broker_unavailable(b, why, sizeof(why)));
		return -1;
	}
	c->wait_seq = seq;
	return 0;
}

void sbx_op_review_decide(struct sbx_broker *b, struct sbx_call *c)
{
	bool revoke = c->a.op == SBX_OP_REVIEW_REVOKE;
	const struct sbx_role *role = NULL;
	const char *user = c->a.user, *how = NULL;
	char why[512], ground[512];
	int64_t now = sbx_now();
	json_t *ids = NULL;
	uint64_t seq = 0;
	int rc;

	if (decision_refused(b, c, revoke, now, &role, &how, ground, sizeof(ground)) < 0 ||
	    record_decision(b, c, revoke, role, how, ground) < 0)
		return;
	ids = json_array();
	if (revoke && (rc = end_grants(b, c, role->name, user, now, ids, why, sizeof(why))) < 0) {
		sbx_reply_fail(c, (uint32_t)-rc, "the review is recorded, but ending %s's grants of "
			       "%s failed: %s", user, role->name, why);
		goto out;
	}
	/* A decision is the role's review. */
	resume_due(b, now, revoke ? "reviewed (a member's access was revoked)"
		   : "reviewed (certified)", &seq);
	if (seq > c->wait_seq)
		c->wait_seq = seq;
	if (!revoke)
		sbx_reply_okf(c, "certified %s's %s access to %s", user, how, role->name);
	else if (strcmp(how, "standing") == 0)
		sbx_reply_okf(c, "revoked %s's standing access to %s: recorded; it comes from the "
			      "policy file, so %s keeps it (and stays flagged in the report) until "
			      "the policy drops them", user, role->name, user);
	else
		sbx_reply_okf(c, "revoked %s's access to %s: %zu grant(s) ended; %s may not request "
			      "it again until the policy file changes", user, role->name,
			      json_array_size(ids), user);
out:
	json_decref(ids);
}

void sbx_op_review_status(struct sbx_broker *b, struct sbx_call *c)
{
	const struct sbx_reviews *t = b->reviews;
	int64_t now = sbx_now();

	sbx_reply_ok(c, "ok");
	for (size_t i = 0; i < b->policy->n_roles; i++) {
		const struct sbx_role *role = &b->policy->roles[i];
		const struct rv_role *r = role_find(t, role->name);
		int64_t due = due_at(t, role);
		const char *state;

		if (!role->review_every)
			continue;
		state = r && r->suspended ? "suspended" : !due ? "pending"
			: now >= due ? "due" : "ok";
		sbx_msg_begin_rec(c->reply, SBX_F_REVIEWINFO);
		sbx_msg_put_str(c->reply, SBX_F_ROLE, role->name);
		sbx_msg_put_str(c->reply, SBX_F_STATE, state);
		sbx_msg_put_i64(c->reply, SBX_F_DURATION, role->review_every);
		if (r && r->last_review_us)
			sbx_msg_put_i64(c->reply, SBX_F_LAST_REVIEW, r->last_review_us / US);
		if (due)
			sbx_msg_put_i64(c->reply, SBX_F_NEXT_DUE, due);
		sbx_msg_put_str(c->reply, SBX_F_ON_MISSED,
				role->on_missed_review == SBX_MISSED_SUSPEND ? "suspend" : "notify");
		sbx_msg_end_rec(c->reply);
	}
}
