/*
 * The ops a person calls about themselves: may I (or, for admins, may
 * someone) log in, why, what can I ask for; file, list, see, cancel and
 * give back my own requests.  The rules live in broker.c and login.c;
 * these handlers check who may see what and shape the replies.
 */
#include "config.h"

#include "dispatch.h"
#include "reviews.h"
#include "fleet.h"
#include "pages.h"

#include "policy_directory.h"
#include "text.h"
#include "timeutil.h"

#include <stdio.h>
#include <string.h>

/* CHECK and EXPLAIN: about oneself, or (admins) anyone.  0, or -1 with the
 * refusal in the reply. */
static int check_subject(struct sbx_broker *b, struct sbx_call *c, const char *what)
{
	if (!c->a.user[0] || !sbx_name_valid(c->a.user)) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "%s needs a valid user name", what);
		return -1;
	}
	sbx_caller_resolve(c->caller, b->policy->broker.admin_group);
	if (!c->caller->admin && strcmp(c->caller->name, c->a.user) != 0) {
		sbx_reply_fail(c, SBX_ST_REFUSED,
			       "you may only %s yourself (%s); admins may %s anyone", what,
			       c->caller->name, what);
		return -1;
	}
	return 0;
}

static void record_check(struct sbx_broker *b, const struct sbx_args *a,
			 const struct sbx_decision *d)
{
	json_t *f = json_object();
	uint64_t seq;

	sbx_rec_str(f, "user", a->user);
	if (a->service[0])
		sbx_rec_str(f, "service", a->service);
	if (a->rhost[0])
		sbx_rec_str(f, "rhost", a->rhost);
	if (a->tty[0])
		sbx_rec_str(f, "tty", a->tty);
	sbx_rec_str(f, "outcome", d->allowed ? "allowed" : "denied");
	if (d->role)
		sbx_rec_str(f, "role", d->role);
	if (d->grant)
		json_object_set_new(f, "id", json_integer(d->grant));
	/* Login decisions may be answered before their sync (the writer
	 * syncs them within milliseconds); see docs/audit.md. */
	(void)sbx_broker_record(b, "access.checked", SBX_SYSTEM_ACTOR, f, &seq);
}

void sbx_op_check(struct sbx_broker *b, struct sbx_call *c)
{
	struct sbx_decision d;

	/* uid 0 (sshd's PAM stack) is the hot path: no NSS lookup for it. */
	if (c->caller->uid == 0) {
		if (!c->a.user[0] || !sbx_name_valid(c->a.user)) {
			sbx_reply_fail(c, SBX_ST_BADINPUT, "check needs a valid user name");
			return;
		}
	} else if (check_subject(b, c, "check") < 0) {
		return;
	}
	sbx_broker_decide(b, c->a.user, sbx_now(), &d);
	/* Only pam_sbx's checks (root's) are recorded: anyone else asking to
	 * record would be writing the journal at will. */
	if ((c->a.flags & SBX_CHECK_RECORD) && c->caller->uid == 0)
		record_check(b, &c->a, &d);
	sbx_reply_ok(c, d.message);
	sbx_msg_put_u32(c->reply, SBX_F_ALLOWED, d.allowed);
	sbx_msg_put_str(c->reply, SBX_F_USER, c->a.user);
	sbx_msg_put_str(c->reply, SBX_F_HOST, b->policy->broker.host);
	if (d.role)
		sbx_msg_put_str(c->reply, SBX_F_ROLE, d.role);
	if (d.grant)
		sbx_msg_put_u32(c->reply, SBX_F_ID, d.grant);
	if (d.via)
		sbx_msg_put_str(c->reply, SBX_F_VIA, d.via);
}

static void put_memberships(struct sbx_broker *b, sbx_msg *m, const char *user)
{
	for (size_t i = 0; i < b->policy->n_roles; i++) {
		const struct sbx_role *r = &b->policy->roles[i];
		const char *via = NULL;
		enum sbx_membership how = sbx_policy_membership(b->policy, r, user, &via);
		char vbuf[SBX_NAME_MAX + 16];

		char revoked[300];

		if (how == SBX_MEMBER_NONE)
			continue;
		/* An eligibility revoked in an access review (reviews.h). */
		if (how == SBX_MEMBER_ELIGIBLE && sbx_reviews_revoked(b, user, r->name, revoked,
								     sizeof(revoked))) {
			sbx_msg_begin_rec(m, SBX_F_MEMBERSHIP);
			sbx_msg_put_str(m, SBX_F_ROLE, r->name);
			sbx_msg_put_str(m, SBX_F_HOW, "revoked");
			sbx_msg_put_str(m, SBX_F_VIA, revoked);
			sbx_msg_put_u32(m, SBX_F_LOGIN, 0);
			sbx_msg_put_u32(m, SBX_F_HOST_MATCH, r->matches_host);
			sbx_msg_end_rec(m);
			continue;
		}
		sbx_msg_begin_rec(m, SBX_F_MEMBERSHIP);
		sbx_msg_put_str(m, SBX_F_ROLE, r->name);
		sbx_msg_put_str(m, SBX_F_HOW, how == SBX_MEMBER_STANDING ? "standing" : "eligible");
		sbx_msg_put_str(m, SBX_F_VIA, sbx_policy_via_text(b->policy, via, vbuf,
								    sizeof(vbuf)));
		sbx_msg_put_u32(m, SBX_F_LOGIN, how == SBX_MEMBER_STANDING && r->matches_host);
		sbx_msg_put_u32(m, SBX_F_HOST_MATCH, r->matches_host);
		sbx_msg_end_rec(m);
	}
}

static void put_live_grants(struct sbx_broker *b, sbx_msg *m, const char *user, int64_t now)
{
	struct sbx_req *open[SBX_OPEN_MAX];
	size_t n = sbx_state_user_open(b->state, user, open, SBX_OPEN_MAX);

	for (size_t i = 0; i < n; i++) {
		const struct sbx_role *r = sbx_policy_role(b->policy, open[i]->role);
		char via[64];

		if (!sbx_req_live(open[i], now))
			continue;
		snprintf(via, sizeof(via), "grant %u", open[i]->id);
		sbx_msg_begin_rec(m, SBX_F_MEMBERSHIP);
		sbx_msg_put_str(m, SBX_F_ROLE, open[i]->role);
		sbx_msg_put_str(m, SBX_F_HOW, "grant");
		sbx_msg_put_str(m, SBX_F_VIA, via);
		sbx_msg_put_u32(m, SBX_F_LOGIN, r && r->matches_host);
		sbx_msg_put_u32(m, SBX_F_HOST_MATCH, r && r->matches_host);
		sbx_msg_put_i64(m, SBX_F_EXPIRES_AT, open[i]->expires_at);
		sbx_msg_end_rec(m);
	}
}

void sbx_op_explain(struct sbx_broker *b, struct sbx_call *c)
{
	struct sbx_decision d;
	int64_t now = sbx_now();

	if (check_subject(b, c, "explain") < 0)
		return;
	sbx_broker_decide(b, c->a.user, now, &d);
	sbx_reply_ok(c, d.message);
	sbx_msg_put_u32(c->reply, SBX_F_ALLOWED, d.allowed);
	sbx_msg_put_str(c->reply, SBX_F_USER, c->a.user);
	sbx_msg_put_str(c->reply, SBX_F_HOST, b->policy->broker.host);
	put_memberships(b, c->reply, c->a.user);
	put_live_grants(b, c->reply, c->a.user, now);
}

void sbx_op_ping(struct sbx_broker *b, struct sbx_call *c)
{
	struct sbx_fleet_status fs;

	sbx_fleet_status(b, &fs);
	sbx_reply_ok(c, b->degraded[0] ? "degraded" : "ok");
	sbx_msg_put_str(c->reply, SBX_F_VERSION, PACKAGE_VERSION);
	sbx_msg_put_str(c->reply, SBX_F_HOST, b->policy->broker.host);
	sbx_msg_put_str(c->reply, SBX_F_POLICY_SHA, b->policy->sha256_hex);
	sbx_msg_put_i64(c->reply, SBX_F_SEQ, (int64_t)sbx_journal_last_seq(b->journal));
	if (b->degraded[0])
		sbx_msg_put_str(c->reply, SBX_F_DEGRADED, b->degraded);
	if (fs.on) {
		sbx_msg_put_str(c->reply, SBX_F_FLEET, fs.text);
		sbx_msg_put_i64(c->reply, SBX_F_FLEET_SEQ, (int64_t)fs.applied_seq);
		sbx_msg_put_u32(c->reply, SBX_F_STALE, fs.stale);
		sbx_msg_put_u32(c->reply, SBX_F_WRITABLE, fs.writable);
	}
}

static bool same_text(const char *held, const char *asked)
{
	return strcmp(held ? held : "", asked) == 0;
}

/* The caller's open request (pending, or a live grant) that this request
 * repeats: the same role, reason, ticket, extension and duration (the one
 * asked for, else the role's default, as the policy fills it in); NULL
 * when there is none.  A grant an approver shortened no longer matches:
 * that retry is refused as any second request is, and the refusal names
 * the grant. */
static const struct sbx_req *repeated_request(struct sbx_broker *b, const struct sbx_call *c,
					      int64_t now)
{
	struct sbx_req *open[SBX_OPEN_MAX];
	size_t n = sbx_state_user_open(b->state, c->who.person, open, SBX_OPEN_MAX);
	const char *name = c->a.role;
	const struct sbx_role *role;
	int64_t duration;

	/* An extension may leave its role to the grant it extends. */
	if (!name[0] && c->a.extends) {
		const struct sbx_req *parent = sbx_state_get(b->state, c->a.extends);

		name = parent ? parent->role : "";
	}
	role = sbx_policy_role(b->policy, name);
	if (!role)
		return NULL;
	duration = c->a.has_duration ? c->a.duration : role->default_duration;
	for (size_t i = 0; i < n; i++) {
		const struct sbx_req *r = open[i];

		if (r->state != SBX_REQ_PENDING && !sbx_req_live(r, now))
			continue;
		if (r->extends == c->a.extends && strcmp(r->role, role->name) == 0 &&
		    r->duration == duration && same_text(r->reason, c->a.reason) &&
		    same_text(r->ticket, c->a.ticket))
			return r;
	}
	return NULL;
}

/* A retry of a request whose reply was lost: the request as it stands,
 * flagged SBX_REQUEST_EXISTED, and nothing recorded.  The reply waits
 * until what the journal holds now is durable, so that it never reports
 * a request whose own record could still be lost; a degraded broker's
 * memory holds only what is durable. */
static void reply_repeated(struct sbx_broker *b, struct sbx_call *c, const struct sbx_req *r)
{
	c->wait_seq = b->degraded[0] ? 0 : sbx_journal_last_seq(b->journal);
	sbx_reply_okf(c, "request %u already exists (%s)", r->id, sbx_req_state_name(r->state));
	sbx_reply_put_req(b, c->reply, r);
	sbx_msg_put_u32(c->reply, SBX_F_FLAGS, SBX_REQUEST_EXISTED);
}

void sbx_op_request(struct sbx_broker *b, struct sbx_call *c)
{
	const struct sbx_request q = {
		.person = c->who.person,
		.through = c->who.through,
		.role = c->a.role,
		.duration = c->a.has_duration ? c->a.duration : 0,
		.reason = c->a.reason,
		.ticket = c->a.ticket,
		.extends = c->a.extends,
	};
	const struct sbx_req *repeated;
	char why[512];
	uint32_t id = 0;
	int rc;

	if (c->a.has_duration && c->a.duration <= 0) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "the duration must be positive");
		return;
	}
	repeated = repeated_request(b, c, sbx_now());
	if (repeated) {
		reply_repeated(b, c, repeated);
		return;
	}
	rc = sbx_broker_request(b, &q, &id, &c->wait_seq, why, sizeof(why));
	if (rc < 0) {
		sbx_reply_fail(c, (uint32_t)-rc, "%s", why);
		return;
	}
	sbx_reply_req(b, c, sbx_state_get(b->state, id), why);
}

static bool pick_own(struct sbx_broker *b, const struct sbx_call *c, const struct sbx_req *r,
		     int64_t now)
{
	(void)b;
	(void)now;
	if (strcmp(r->user, c->who.person) != 0)
		return false;
	return (c->a.flags & SBX_LIST_ALL) || r->state == SBX_REQ_PENDING ||
	       r->state == SBX_REQ_ACTIVE;
}

void sbx_op_list(struct sbx_broker *b, struct sbx_call *c)
{
	/* Newest first, so a first page keeps what matters most. */
	sbx_reply_page(b, c, true, pick_own);
}

/* The request c names, if the caller may see it (to anyone else it does
 * not exist); else NULL with the refusal in the reply. */
static struct sbx_req *named_request(struct sbx_broker *b, struct sbx_call *c)
{
	struct sbx_req *r;

	if (!c->a.has_id || c->a.id == 0) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "a request id is required");
		return NULL;
	}
	r = sbx_state_get(b->state, c->a.id);
	if (!r && sbx_state_forgotten(b->state, c->a.id)) {
		char why[300];

		sbx_reply_fail(c, SBX_ST_REFUSED, "%s",
			       sbx_broker_forgotten(b, c->a.id, why, sizeof(why)));
		return NULL;
	}
	if (!r || !sbx_broker_may_see(b, r, c->who.person, c->who.admin)) {
		sbx_reply_fail(c, SBX_ST_NOTFOUND, "no request %u", c->a.id);
		return NULL;
	}
	return r;
}

void sbx_op_status(struct sbx_broker *b, struct sbx_call *c)
{
	struct sbx_req *r = named_request(b, c);

	if (r) {
		sbx_reply_ok(c, NULL);
		sbx_reply_put_req_commands(b, c->reply, r);
	}
}

/* Record the end of the caller's own request r: request.cancelled or (a
 * holder giving a grant back) grant.revoked. */
static int record_own_end(struct sbx_broker *b, struct sbx_call *c, const struct sbx_req *r,
			  const char *event, const char *reason)
{
	json_t *f = json_object();

	json_object_set_new(f, "id", json_integer(r->id));
	sbx_rec_str(f, "user", r->user);
	sbx_rec_str(f, "role", r->role);
	if (c->who.through)
		sbx_rec_str(f, "through", c->who.through);
	if (reason && *reason)
		sbx_rec_str(f, "reason", reason);
	if (r->unix_group)
		sbx_rec_str(f, "unix_group", r->unix_group);
	return sbx_broker_record(b, event, c->who.person, f, &c->wait_seq);
}

void sbx_op_cancel_drop(struct sbx_broker *b, struct sbx_call *c)
{
	bool cancel = c->a.op == SBX_OP_CANCEL;
	enum sbx_req_state want = cancel ? SBX_REQ_PENDING : SBX_REQ_ACTIVE;
	char reason[SBX_TEXT_MAX + 64];
	struct sbx_req *r;

	if (sbx_reply_if_degraded(b, c) || !(r = named_request(b, c)))
		return;
	if (strcmp(r->user, c->who.person) != 0 && !c->who.admin) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "request %u is %s's, not yours", r->id, r->user);
		return;
	}
	if (r->state != want || (!cancel && !sbx_req_live(r, sbx_now()))) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "request %u is %s: only a%s %s one can be %s",
			       r->id, sbx_req_state_name(r->state), cancel ? "" : "n",
			       sbx_req_state_name(want), cancel ? "cancelled" : "given back");
		return;
	}
	if (cancel)
		snprintf(reason, sizeof(reason), "%s", c->a.reason);
	else
		snprintf(reason, sizeof(reason), "given back by %s%s%s", c->who.person,
			 c->a.reason[0] ? ": " : "", c->a.reason);
	if (record_own_end(b, c, r, cancel ? "request.cancelled" : "grant.revoked", reason) < 0) {
		sbx_reply_if_degraded(b, c);
		return;
	}
	sbx_reply_req(b, c, r, cancel ? "cancelled" : "given back");
}

static void put_role(struct sbx_broker *b, sbx_msg *m, const struct sbx_role *r,
		     const char *how, const char *via, const char *person)
{
	char approvers[512];

	sbx_msg_begin_rec(m, SBX_F_ROLEINFO);
	sbx_msg_put_str(m, SBX_F_ROLE, r->name);
	sbx_msg_put_str_opt(m, SBX_F_DESCRIPTION, r->description);
	for (size_t h = 0; h < r->hosts.n; h++)
		sbx_msg_put_str(m, SBX_F_HOSTS, r->hosts.v[h]);
	sbx_msg_put_u32(m, SBX_F_HOST_MATCH, r->matches_host);
	sbx_msg_put_str(m, SBX_F_HOW, how);
	sbx_msg_put_str_opt(m, SBX_F_VIA, via);
	sbx_msg_put_i64(m, SBX_F_MAX_DURATION, r->max_duration);
	sbx_msg_put_i64(m, SBX_F_DEFAULT_DURATION, r->default_duration);
	sbx_msg_put_u32(m, SBX_F_AUTO_APPROVE, r->auto_approve);
	sbx_msg_put_u32(m, SBX_F_APPROVALS_NEEDED, r->auto_approve ? 0 : r->approvals);
	sbx_msg_put_u32(m, SBX_F_REQUIRE_REASON, r->require_reason);
	if (r->require_reason)
		sbx_msg_put_u32(m, SBX_F_REASON_MIN, r->reason_min_length);
	for (size_t t = 0; t < r->n_ticket_re; t++)
		sbx_msg_put_str(m, SBX_F_REQUIRE_TICKET, r->ticket_pattern[t]);
	if (!r->auto_approve) {
		sbx_policy_approvers_text(b->policy, r, person, approvers, sizeof(approvers));
		sbx_msg_put_str_opt(m, SBX_F_APPROVERS, approvers);
	}
	if (r->unix_group) {
		sbx_msg_put_str(m, SBX_F_UNIX_GROUP, r->unix_group);
		sbx_msg_put_u32(m, SBX_F_GID, r->gid);
	}
	sbx_msg_end_rec(m);
}

void sbx_op_roles(struct sbx_broker *b, struct sbx_call *c)
{
	sbx_reply_ok(c, NULL);
	for (size_t i = 0; i < b->policy->n_roles; i++) {
		const struct sbx_role *r = &b->policy->roles[i];
		const char *via = NULL;
		enum sbx_membership how = sbx_policy_membership(b->policy, r, c->who.person, &via);
		char revoked[300];

		if (how == SBX_MEMBER_NONE && !c->who.admin)
			continue;
		/* Listed, so that the person learns why a request would be
		 * refused, but not as eligible (reviews.h). */
		if (how == SBX_MEMBER_ELIGIBLE &&
		    sbx_reviews_revoked(b, c->who.person, r->name, revoked, sizeof(revoked))) {
			put_role(b, c->reply, r, "revoked", revoked, c->who.person);
			continue;
		}
		put_role(b, c->reply, r,
			 how == SBX_MEMBER_STANDING   ? "standing"
			 : how == SBX_MEMBER_ELIGIBLE ? "eligible"
						      : "none",
			 via, c->who.person);
	}
}
