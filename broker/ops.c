#include "config.h"

#include "ops.h"
#include "policy_directory.h"
#include "duration.h"
#include "log.h"
#include "timeutil.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SYSTEM_ACTOR "sbx"
#define MAX_OPEN_PER_USER 64

/* The fields a request frame may carry, copied out of the frame. */
struct args {
	uint16_t op;
	uint32_t flags, id, extends;
	int64_t duration;
	bool has_id, has_duration;
	char as_user[SBX_NAME_MAX + 1];
	char user[SBX_NAME_MAX + 1];
	char role[SBX_NAME_MAX + 1];
	char service[SBX_NAME_MAX + 1];
	char rhost[256];
	char tty[64];
	char ticket[128];
	char reason[SBX_TEXT_MAX + 1];
	char comment[SBX_TEXT_MAX + 1];
};

/* Who acts: the person the decision is about, and the unix account that
 * spoke for them when that is someone else. */

void sbx_broker_reply_error(sbx_msg *reply, uint16_t op, uint32_t status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sbx_msg_free(reply);
	sbx_msg_init_reply(reply, op | SBX_OP_REPLY, status, msg);
}

/* The short name inside this file. */
#define reply_error sbx_broker_reply_error

void sbx_broker_malformed(sbx_msg *reply, const char *why)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "malformed request: %s", why);
	sbx_msg_free(reply);
	sbx_msg_init_reply(reply, SBX_OP_ERROR, SBX_ST_PROTO, msg);
}

/* ---- parsing ---------------------------------------------------------------- */

static const char *tag_name(uint16_t tag)
{
	switch (tag) {
	case SBX_F_AS_USER: return "--as user";
	case SBX_F_USER: return "user";
	case SBX_F_ROLE: return "role";
	case SBX_F_SERVICE: return "service";
	case SBX_F_RHOST: return "rhost";
	case SBX_F_TTY: return "tty";
	case SBX_F_TICKET: return "ticket";
	case SBX_F_REASON: return "reason";
	case SBX_F_COMMENT: return "comment";
	}
	return "field";
}

static char *str_dest(struct args *a, uint16_t tag, size_t *len)
{
#define DEST(T, F) case T: *len = sizeof(a->F); return a->F
	switch (tag) {
	DEST(SBX_F_AS_USER, as_user);
	DEST(SBX_F_USER, user);
	DEST(SBX_F_ROLE, role);
	DEST(SBX_F_SERVICE, service);
	DEST(SBX_F_RHOST, rhost);
	DEST(SBX_F_TTY, tty);
	DEST(SBX_F_TICKET, ticket);
	DEST(SBX_F_REASON, reason);
	DEST(SBX_F_COMMENT, comment);
	}
#undef DEST
	return NULL;
}

static int parse_args(const uint8_t *frame, size_t n, struct args *a, char *why, size_t whylen)
{
	struct sbx_hdr h;
	sbx_reader rd;
	sbx_field f;
	int rc;

	memset(a, 0, sizeof(*a));
	sbx_hdr_decode(frame, n, &h);
	a->op = h.op;
	sbx_reader_init_frame(&rd, frame, n);
	while ((rc = sbx_reader_next(&rd, &f)) == 1) {
		size_t len;
		char *dst = str_dest(a, f.tag, &len);

		if (dst) {
			if (sbx_field_str(&f, dst, len) < 0) {
				snprintf(why, whylen, "%s is too long (at most %zu bytes)",
					 tag_name(f.tag), len - 1);
				return -1;
			}
			continue;
		}
		switch (f.tag) {
		case SBX_F_FLAGS: a->flags = sbx_field_u32(&f); break;
		case SBX_F_ID: a->id = sbx_field_u32(&f); a->has_id = true; break;
		case SBX_F_EXTENDS: a->extends = sbx_field_u32(&f); break;
		case SBX_F_DURATION:
			a->duration = sbx_field_i64(&f);
			a->has_duration = true;
			break;
		default:
			snprintf(why, whylen, "field 0x%04x does not belong in a request", f.tag);
			return -1;
		}
	}
	if (rc < 0) {
		snprintf(why, whylen, "truncated field");
		return -1;
	}
	return 0;
}

/* ---- recording ---------------------------------------------------------------- */

int sbx_broker_record(struct sbx_broker *b, const char *event, const char *actor,
		      json_t *fields, uint64_t *seq)
{
	json_t *rec = NULL;
	char err[256];
	int ret = -1;

	if (b->degraded[0])
		goto out;
	if (sbx_journal_append(b->journal, event, actor, fields, seq, &rec) < 0) {
		sbx_broker_degrade(b);
		goto out;
	}
	if (sbx_state_apply(b->state, rec, err, sizeof(err)) < 0) {
		/* The journal now holds a record memory refused: a bug, and the
		 * next start-up would stop on it.  Stop changing anything. */
		sbx_err("internal error applying %s: %s", event, err);
		snprintf(b->degraded, sizeof(b->degraded), "internal error applying %s: %s",
			 event, err);
		goto out;
	}
	for (size_t i = 0; i < b->n_ext_records; i++)
		b->ext_records[i].fn(b, rec, b->ext_records[i].ctx);
	ret = 0;
out:
	json_decref(rec);
	json_decref(fields);
	return ret;
}

void sbx_broker_degrade(struct sbx_broker *b)
{
	char why[400], err[256];
	struct sbx_state *fresh;
	struct sbx_state *old = b->state;

	if (b->degraded[0])
		return;
	if (!sbx_journal_failed(b->journal, why, sizeof(why)))
		snprintf(why, sizeof(why), "journal refused a record");
	snprintf(b->degraded, sizeof(b->degraded), "%s", why);
	sbx_err("journal failed: %s; refusing changes from now on, answering checks from what is on disk",
		why);
	fresh = sbx_state_new();
	if (!fresh)
		return;
	b->state = fresh;
	if (sbx_journal_reload(b->journal, sbx_journal_durable_seq(b->journal),
			       sbx_broker_replay_snapshot, sbx_broker_replay_record, b,
			       err, sizeof(err)) < 0) {
		/* Keep the memory we had rather than none at all. */
		sbx_err("could not rebuild state from the journal: %s", err);
		b->state = old;
		sbx_state_free(fresh);
		return;
	}
	sbx_state_free(old);
}

int sbx_broker_replay_record(const json_t *rec, void *ctx, char *err, size_t errlen)
{
	struct sbx_broker *b = ctx;

	if (sbx_state_apply(b->state, rec, err, errlen) < 0)
		return -1;
	for (size_t i = 0; b->initial_replay && i < b->n_ext_persist; i++)
		if (b->ext_persist[i].on_replay)
			b->ext_persist[i].on_replay(b, rec, b->ext_persist[i].ctx);
	return 0;
}

int sbx_broker_replay_snapshot(const json_t *state, void *ctx, char *err, size_t errlen)
{
	struct sbx_broker *b = ctx;
	json_t *ext = json_object_get(state, "ext");

	if (sbx_state_from_json(b->state, state, err, errlen) < 0)
		return -1;
	for (size_t i = 0; b->initial_replay && i < b->n_ext_persist; i++) {
		struct sbx_ext_persist *p = &b->ext_persist[i];
		json_t *saved = json_object_get(ext, p->name);

		if (saved && p->load && p->load(b, saved, p->ctx) < 0) {
			snprintf(err, errlen, "snapshot: %s state does not load", p->name);
			return -1;
		}
	}
	return 0;
}

json_t *sbx_broker_snapshot_state(void *ctx)
{
	struct sbx_broker *b = ctx;
	json_t *state = sbx_state_to_json(b->state), *ext = json_object();

	for (size_t i = 0; i < b->n_ext_persist; i++) {
		struct sbx_ext_persist *p = &b->ext_persist[i];
		json_t *saved = p->save ? p->save(b, p->ctx) : NULL;

		if (saved)
			json_object_set_new(ext, p->name, saved);
	}
	json_object_set_new(state, "ext", ext);
	return state;
}

static json_t *time_json(int64_t secs)
{
	char buf[SBX_RFC3339_LEN];

	sbx_format_rfc3339(secs, buf);
	return json_string(buf);
}

static json_t *base_fields(const struct sbx_req *r, const char *through)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_integer(r->id));
	json_object_set_new(o, "user", json_string(r->user));
	json_object_set_new(o, "role", json_string(r->role));
	if (through)
		json_object_set_new(o, "through", json_string(through));
	return o;
}

static int record_end(struct sbx_broker *b, const struct sbx_req *r, const char *event,
		      const char *actor, const char *through, const char *reason, uint64_t *seq)
{
	json_t *f = base_fields(r, through);

	if (reason && *reason)
		json_object_set_new(f, "reason", json_string(reason));
	if (r->unix_group)
		json_object_set_new(f, "unix_group", json_string(r->unix_group));
	return sbx_broker_record(b, event, actor, f, seq);
}

/* Make r a live grant: its clock starts now.  An extension runs on from
 * the end of the grant it extends, so asking early never loses time. */
static int activate(struct sbx_broker *b, const struct sbx_req *r, int64_t now, uint64_t *seq)
{
	const struct sbx_role *role = sbx_policy_role(b->policy, r->role);
	const struct sbx_req *parent = r->extends ? sbx_state_get(b->state, r->extends) : NULL;
	int64_t start = now;
	json_t *f = base_fields(r, NULL);

	if (parent && sbx_req_live(parent, now) && parent->expires_at > now)
		start = parent->expires_at;
	json_object_set_new(f, "activated_at", time_json(now));
	json_object_set_new(f, "expires_at", time_json(start + r->duration));
	json_object_set_new(f, "duration", json_integer(r->duration));
	if (role && role->unix_group) {
		json_object_set_new(f, "unix_group", json_string(role->unix_group));
		json_object_set_new(f, "gid", json_integer(role->gid));
	}
	return sbx_broker_record(b, "grant.activated", SYSTEM_ACTOR, f, seq);
}

size_t sbx_broker_tick(struct sbx_broker *b, int64_t now)
{
	struct sbx_req *due[256];
	size_t n, done = 0;
	uint64_t seq;

	if (b->degraded[0])
		return 0;
	do {
		n = sbx_state_due(b->state, now, due, sizeof(due) / sizeof(due[0]));
		for (size_t i = 0; i < n; i++) {
			struct sbx_req *r = due[i];
			const char *event = r->state == SBX_REQ_ACTIVE ? "grant.expired"
								       : "request.lapsed";
			json_t *f = base_fields(r, NULL);

			if (r->state == SBX_REQ_ACTIVE)
				json_object_set_new(f, "expires_at", time_json(r->expires_at));
			else
				json_object_set_new(f, "lapses_at", time_json(r->lapses_at));
			if (r->unix_group)
				json_object_set_new(f, "unix_group", json_string(r->unix_group));
			if (sbx_broker_record(b, event, SYSTEM_ACTOR, f, &seq) < 0)
				return done;
			sbx_info("%s: request %u (%s, %s)", event, r->id, r->user, r->role);
			done++;
		}
	} while (n == sizeof(due) / sizeof(due[0]));
	return done;
}

/* ---- reply building ------------------------------------------------------------- */

static void put_req(struct sbx_broker *b, sbx_msg *m, const struct sbx_req *r)
{
	const struct sbx_role *role = sbx_policy_role(b->policy, r->role);
	char approvers[512] = "";

	sbx_msg_begin_rec(m, SBX_F_REQUEST);
	sbx_msg_put_u32(m, SBX_F_ID, r->id);
	sbx_msg_put_str(m, SBX_F_USER, r->user);
	sbx_msg_put_str(m, SBX_F_ROLE, r->role);
	sbx_msg_put_str(m, SBX_F_STATE, sbx_req_state_name(r->state));
	sbx_msg_put_i64(m, SBX_F_DURATION, r->duration);
	sbx_msg_put_i64(m, SBX_F_CREATED_AT, r->created_at);
	if (r->activated_at)
		sbx_msg_put_i64(m, SBX_F_ACTIVATED_AT, r->activated_at);
	if (r->state == SBX_REQ_PENDING)
		sbx_msg_put_i64(m, SBX_F_EXPIRES_AT, r->lapses_at);
	else if (r->expires_at)
		sbx_msg_put_i64(m, SBX_F_EXPIRES_AT, r->expires_at);
	if (r->ended_at)
		sbx_msg_put_i64(m, SBX_F_ENDED_AT, r->ended_at);
	sbx_msg_put_str_opt(m, SBX_F_REASON, r->reason);
	sbx_msg_put_str_opt(m, SBX_F_TICKET, r->ticket);
	if (r->extends)
		sbx_msg_put_u32(m, SBX_F_EXTENDS, r->extends);
	sbx_msg_put_u32(m, SBX_F_APPROVALS_NEEDED, r->approvals_needed);
	for (size_t i = 0; i < r->n_approvals; i++)
		sbx_msg_put_str(m, SBX_F_APPROVED_BY, r->approvals[i].who);
	if (r->unix_group) {
		sbx_msg_put_str(m, SBX_F_UNIX_GROUP, r->unix_group);
		sbx_msg_put_u32(m, SBX_F_GID, r->gid);
	} else if (role && role->unix_group) {
		sbx_msg_put_str(m, SBX_F_UNIX_GROUP, role->unix_group);
		sbx_msg_put_u32(m, SBX_F_GID, role->gid);
	}
	sbx_msg_put_str_opt(m, SBX_F_ACTOR, r->actor);
	sbx_msg_put_str_opt(m, SBX_F_THROUGH, r->through);
	sbx_msg_put_str_opt(m, SBX_F_ENDED_BY, r->ended_by);
	sbx_msg_put_str_opt(m, SBX_F_END_REASON, r->end_reason);
	if (role && r->state == SBX_REQ_PENDING) {
		sbx_policy_approvers_text(b->policy, role, r->user, approvers, sizeof(approvers));
		sbx_msg_put_str_opt(m, SBX_F_APPROVERS, approvers);
	}
	sbx_msg_end_rec(m);
}

static void reply_req(struct sbx_broker *b, sbx_msg *reply, uint16_t op, const struct sbx_req *r,
		      const char *msg)
{
	sbx_msg_free(reply);
	sbx_msg_init_reply(reply, op | SBX_OP_REPLY, SBX_ST_OK, msg);
	put_req(b, reply, r);
}

/* ---- who may do what ------------------------------------------------------------ */

int sbx_broker_who(struct sbx_broker *b, struct sbx_caller *c, const char *as_user, uint16_t op,
		   struct sbx_who *w, sbx_msg *reply)
{
	sbx_caller_resolve(c, b->policy->broker.admin_group);
	w->admin = c->admin;
	w->through = NULL;
	if (!as_user || !as_user[0]) {
		w->person = c->name;
		return 0;
	}
	if (!c->admin) {
		reply_error(reply, op, SBX_ST_REFUSED,
			    "only root%s%s may act for another user (--as); you are %s",
			    b->policy->broker.admin_group ? " and members of " : "",
			    b->policy->broker.admin_group ? b->policy->broker.admin_group : "",
			    c->name);
		return -1;
	}
	if (!sbx_name_valid(as_user)) {
		reply_error(reply, op, SBX_ST_BADINPUT, "--as: not a valid user name");
		return -1;
	}
	w->person = as_user;
	if (strcmp(as_user, c->name) != 0) {
		w->through = c->name;
		/* Acting for someone means acting with their rights, not the
		 * admin's: the journal will name them as the actor. */
		w->admin = false;
	}
	return 0;
}

static int resolve_who(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
		       struct sbx_who *w, sbx_msg *reply)
{
	return sbx_broker_who(b, c, a->as_user, a->op, w, reply);
}

static bool refuse_if_degraded(struct sbx_broker *b, sbx_msg *reply, uint16_t op)
{
	if (!b->degraded[0])
		return false;
	reply_error(reply, op, SBX_ST_UNAVAILABLE,
		    "the broker cannot record changes (%s); it refuses new requests and "
		    "approvals until an admin fixes this and restarts it; existing grants still work",
		    b->degraded);
	return true;
}

static struct sbx_req *find_req(struct sbx_broker *b, const struct args *a, sbx_msg *reply)
{
	struct sbx_req *r;

	if (!a->has_id || a->id == 0) {
		reply_error(reply, a->op, SBX_ST_BADINPUT, "a request id is required");
		return NULL;
	}
	r = sbx_state_get(b->state, a->id);
	if (!r)
		reply_error(reply, a->op, SBX_ST_NOTFOUND, "no request %u", a->id);
	return r;
}

static bool may_decide(struct sbx_broker *b, const struct sbx_req *r, const char *person,
		       char *why, size_t whylen)
{
	const struct sbx_role *role = sbx_policy_role(b->policy, r->role);

	if (!role) {
		snprintf(why, whylen, "role %s is no longer in the policy", r->role);
		return false;
	}
	return sbx_policy_may_approve(b->policy, role, r->user, person, why, whylen);
}

/* Owners, admins and the people who may decide a request may see it. */
static bool may_see(struct sbx_broker *b, const struct sbx_req *r, const struct sbx_who *w)
{
	char why[256];

	return w->admin || strcmp(r->user, w->person) == 0 ||
	       may_decide(b, r, w->person, why, sizeof(why));
}

/* ---- decisions ------------------------------------------------------------------- */

static const struct sbx_req *live_grant(struct sbx_broker *b, const char *user, int64_t now,
					bool login_only)
{
	struct sbx_req *open[MAX_OPEN_PER_USER];
	size_t n = sbx_state_user_open(b->state, user, open, MAX_OPEN_PER_USER);
	const struct sbx_req *best = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct sbx_role *role;

		if (!sbx_req_live(open[i], now))
			continue;
		role = sbx_policy_role(b->policy, open[i]->role);
		if (login_only && (!role || !role->matches_host))
			continue;
		if (!best || open[i]->expires_at > best->expires_at)
			best = open[i];
	}
	return best;
}

static void eligible_hint(struct sbx_broker *b, const char *user, char *buf, size_t len)
{
	size_t off = 0;
	const struct sbx_role *first = NULL;

	buf[0] = '\0';
	for (size_t i = 0; i < b->policy->n_roles; i++) {
		const struct sbx_role *r = &b->policy->roles[i];
		char approvers[256];
		int w;

		if (!r->matches_host ||
		    sbx_policy_membership(b->policy, r, user, NULL) != SBX_MEMBER_ELIGIBLE)
			continue;
		if (!first)
			first = r;
		if (r->auto_approve) {
			w = snprintf(buf + off, len - off, "%s%s (granted at once)", off ? ", " : "",
				     r->name);
		} else {
			sbx_policy_approvers_text(b->policy, r, user, approvers, sizeof(approvers));
			w = snprintf(buf + off, len - off, "%s%s (%u approval%s: %s)",
				     off ? ", " : "", r->name, r->approvals,
				     r->approvals == 1 ? "" : "s", approvers);
		}
		if (w < 0 || (size_t)w >= len - off)
			return;
		off += (size_t)w;
	}
	if (first) {
		char dur[32];

		sbx_duration_format(first->default_duration, dur, sizeof(dur));
		snprintf(buf + off, len - off, ". Run: sbx-request %s --for %s%s", first->name, dur,
			 first->require_reason ? " --reason \"...\"" : "");
	}
}

void sbx_broker_decide(struct sbx_broker *b, const char *user, int64_t now,
		       struct sbx_decision *d)
{
	const struct sbx_policy *p = b->policy;
	const struct sbx_role *role;
	const struct sbx_req *g;
	const char *via = NULL;
	char hint[700], until[SBX_RFC3339_LEN];

	memset(d, 0, sizeof(*d));
	role = sbx_policy_standing_login(p, user, &via);
	if (role) {
		d->allowed = true;
		d->role = role->name;
		d->via = "standing";
		snprintf(d->message, sizeof(d->message),
			 "%s may log in on %s: standing member of %s%s%s", user, p->broker.host,
			 role->name,
			 !via ? "" : sbx_policy_group_from_directory(p, via) ? " via ldap group "
									      : " via group ",
			 via ? via : "");
		return;
	}
	g = live_grant(b, user, now, true);
	if (g) {
		d->allowed = true;
		d->role = g->role;
		d->grant = g->id;
		d->via = "grant";
		sbx_format_rfc3339(g->expires_at, until);
		snprintf(d->message, sizeof(d->message),
			 "%s may log in on %s: grant %u of %s until %s", user, p->broker.host,
			 g->id, g->role, until);
		return;
	}
	d->allowed = false;
	if (!sbx_policy_user(p, user)) {
		const char *why = b->unknown_user_reason ? b->unknown_user_reason(b, user) : NULL;

		if (why)
			snprintf(d->message, sizeof(d->message), "%s", why);
		else
			snprintf(d->message, sizeof(d->message), "%s is not known to sbx on %s", user,
				 p->broker.host);
		return;
	}
	eligible_hint(b, user, hint, sizeof(hint));
	if (hint[0])
		snprintf(d->message, sizeof(d->message),
			 "%s has no active grant on %s. Eligible: %s", user, p->broker.host, hint);
	else
		snprintf(d->message, sizeof(d->message),
			 "%s has no role that allows logging in on %s", user, p->broker.host);
}

static void op_check(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
		     sbx_msg *reply, uint64_t *wait_seq)
{
	struct sbx_decision d;
	int64_t now = sbx_now();

	(void)wait_seq;
	if (!a->user[0] || !sbx_name_valid(a->user)) {
		reply_error(reply, a->op, SBX_ST_BADINPUT, "check needs a valid user name");
		return;
	}
	/* uid 0 (sshd's PAM stack) is the hot path: no NSS lookup for it. */
	if (c->uid != 0) {
		sbx_caller_resolve(c, b->policy->broker.admin_group);
		if (!c->admin && strcmp(c->name, a->user) != 0) {
			reply_error(reply, a->op, SBX_ST_REFUSED,
				    "you may only check yourself (%s); admins may check anyone",
				    c->name);
			return;
		}
	}
	sbx_broker_decide(b, a->user, now, &d);
	if (a->flags & SBX_CHECK_RECORD) {
		json_t *f = json_object();
		uint64_t seq;

		json_object_set_new(f, "user", json_string(a->user));
		if (a->service[0])
			json_object_set_new(f, "service", json_string(a->service));
		if (a->rhost[0])
			json_object_set_new(f, "rhost", json_string(a->rhost));
		if (a->tty[0])
			json_object_set_new(f, "tty", json_string(a->tty));
		json_object_set_new(f, "outcome", json_string(d.allowed ? "allowed" : "denied"));
		if (d.role)
			json_object_set_new(f, "role", json_string(d.role));
		if (d.grant)
			json_object_set_new(f, "id", json_integer(d.grant));
		/* Login decisions may be answered before their sync (the
		 * writer syncs them within milliseconds); see docs/audit.md. */
		(void)sbx_broker_record(b, "access.checked", SYSTEM_ACTOR, f, &seq);
	}
	sbx_msg_free(reply);
	sbx_msg_init_reply(reply, a->op | SBX_OP_REPLY, SBX_ST_OK, d.message);
	sbx_msg_put_u32(reply, SBX_F_ALLOWED, d.allowed);
	sbx_msg_put_str(reply, SBX_F_USER, a->user);
	sbx_msg_put_str(reply, SBX_F_HOST, b->policy->broker.host);
	if (d.role)
		sbx_msg_put_str(reply, SBX_F_ROLE, d.role);
	if (d.grant)
		sbx_msg_put_u32(reply, SBX_F_ID, d.grant);
	if (d.via)
		sbx_msg_put_str(reply, SBX_F_VIA, d.via);
}

static void op_explain(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
		       sbx_msg *reply)
{
	struct sbx_decision d;
	struct sbx_req *open[MAX_OPEN_PER_USER];
	int64_t now = sbx_now();
	size_t n;

	sbx_caller_resolve(c, b->policy->broker.admin_group);
	if (!a->user[0] || !sbx_name_valid(a->user)) {
		reply_error(reply, a->op, SBX_ST_BADINPUT, "explain needs a valid user name");
		return;
	}
	if (!c->admin && strcmp(c->name, a->user) != 0) {
		reply_error(reply, a->op, SBX_ST_REFUSED,
			    "you may only explain yourself (%s); admins may explain anyone", c->name);
		return;
	}
	sbx_broker_decide(b, a->user, now, &d);
	sbx_msg_free(reply);
	sbx_msg_init_reply(reply, a->op | SBX_OP_REPLY, SBX_ST_OK, d.message);
	sbx_msg_put_u32(reply, SBX_F_ALLOWED, d.allowed);
	sbx_msg_put_str(reply, SBX_F_USER, a->user);
	sbx_msg_put_str(reply, SBX_F_HOST, b->policy->broker.host);
	for (size_t i = 0; i < b->policy->n_roles; i++) {
		const struct sbx_role *r = &b->policy->roles[i];
		const char *via = NULL;
		enum sbx_membership m = sbx_policy_membership(b->policy, r, a->user, &via);
		char vbuf[SBX_NAME_MAX + 16];

		if (m == SBX_MEMBER_NONE)
			continue;
		sbx_msg_begin_rec(reply, SBX_F_MEMBERSHIP);
		sbx_msg_put_str(reply, SBX_F_ROLE, r->name);
		sbx_msg_put_str(reply, SBX_F_HOW, m == SBX_MEMBER_STANDING ? "standing" : "eligible");
		sbx_msg_put_str(reply, SBX_F_VIA, sbx_policy_via_text(b->policy, via, vbuf,
								    sizeof(vbuf)));
		sbx_msg_put_u32(reply, SBX_F_LOGIN, m == SBX_MEMBER_STANDING && r->matches_host);
		sbx_msg_put_u32(reply, SBX_F_HOST_MATCH, r->matches_host);
		sbx_msg_end_rec(reply);
	}
	n = sbx_state_user_open(b->state, a->user, open, MAX_OPEN_PER_USER);
	for (size_t i = 0; i < n; i++) {
		const struct sbx_role *r = sbx_policy_role(b->policy, open[i]->role);
		char via[64];

		if (!sbx_req_live(open[i], now))
			continue;
		snprintf(via, sizeof(via), "grant %u", open[i]->id);
		sbx_msg_begin_rec(reply, SBX_F_MEMBERSHIP);
		sbx_msg_put_str(reply, SBX_F_ROLE, open[i]->role);
		sbx_msg_put_str(reply, SBX_F_HOW, "grant");
		sbx_msg_put_str(reply, SBX_F_VIA, via);
		sbx_msg_put_u32(reply, SBX_F_LOGIN, r && r->matches_host);
		sbx_msg_put_u32(reply, SBX_F_HOST_MATCH, r && r->matches_host);
		sbx_msg_put_i64(reply, SBX_F_EXPIRES_AT, open[i]->expires_at);
		sbx_msg_end_rec(reply);
	}
}

static void op_ping(struct sbx_broker *b, const struct args *a, sbx_msg *reply)
{
	sbx_msg_free(reply);
	sbx_msg_init_reply(reply, a->op | SBX_OP_REPLY, SBX_ST_OK,
			   b->degraded[0] ? "degraded" : "ok");
	sbx_msg_put_str(reply, SBX_F_VERSION, PACKAGE_VERSION);
	sbx_msg_put_str(reply, SBX_F_HOST, b->policy->broker.host);
	sbx_msg_put_str(reply, SBX_F_POLICY_SHA, b->policy->sha256_hex);
	sbx_msg_put_i64(reply, SBX_F_SEQ, (int64_t)sbx_journal_last_seq(b->journal));
	if (b->degraded[0])
		sbx_msg_put_str(reply, SBX_F_DEGRADED, b->degraded);
}

/* ---- a user's own requests ------------------------------------------------------- */

/* An open request of this user for this role that a new one would
 * duplicate, or NULL. */
static const struct sbx_req *duplicate_of(struct sbx_broker *b, const char *user,
					  const char *role, uint32_t extends, int64_t now)
{
	struct sbx_req *open[MAX_OPEN_PER_USER];
	size_t n = sbx_state_user_open(b->state, user, open, MAX_OPEN_PER_USER);

	for (size_t i = 0; i < n; i++) {
		if (strcmp(open[i]->role, role) != 0)
			continue;
		if (open[i]->state == SBX_REQ_PENDING)
			return open[i];
		if (!extends && sbx_req_live(open[i], now))
			return open[i];
	}
	return NULL;
}

static bool check_extends(struct sbx_broker *b, const struct args *a, const struct sbx_who *w,
			  int64_t now, const char **role, sbx_msg *reply)
{
	const struct sbx_req *parent = sbx_state_get(b->state, a->extends);

	if (!parent) {
		reply_error(reply, a->op, SBX_ST_NOTFOUND, "no grant %u to extend", a->extends);
		return false;
	}
	if (strcmp(parent->user, w->person) != 0) {
		reply_error(reply, a->op, SBX_ST_REFUSED, "grant %u belongs to %s, not %s",
			    parent->id, parent->user, w->person);
		return false;
	}
	if (!sbx_req_live(parent, now)) {
		reply_error(reply, a->op, SBX_ST_REFUSED,
			    "grant %u is %s: only an active grant can be extended; ask anew with "
			    "sbx-request %s", parent->id,
			    parent->state == SBX_REQ_ACTIVE ? "expired" : sbx_req_state_name(parent->state),
			    parent->role);
		return false;
	}
	if (a->role[0] && strcmp(a->role, parent->role) != 0) {
		reply_error(reply, a->op, SBX_ST_BADINPUT, "grant %u is for %s, not %s", parent->id,
			    parent->role, a->role);
		return false;
	}
	*role = parent->role;
	return true;
}

/* The check path scans a user's open requests, so their number is bounded. */
static bool too_many_open(struct sbx_broker *b, const char *user)
{
	struct sbx_req *open[MAX_OPEN_PER_USER];

	return sbx_state_user_open(b->state, user, open, MAX_OPEN_PER_USER) >=
	       MAX_OPEN_PER_USER / 2;
}

static void op_request(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
		       sbx_msg *reply, uint64_t *wait_seq)
{
	const char *role_name = a->role;
	const struct sbx_role *role;
	const struct sbx_req *dup;
	struct sbx_req *r;
	struct sbx_who w;
	int64_t now = sbx_now(), duration = a->has_duration ? a->duration : 0;
	char why[512], dur[32], until[SBX_RFC3339_LEN];
	const char *unknown;
	uint32_t id;
	json_t *f;

	if (resolve_who(b, c, a, &w, reply) < 0 || refuse_if_degraded(b, reply, a->op))
		return;
	if (a->extends && !check_extends(b, a, &w, now, &role_name, reply))
		return;
	if (!role_name[0]) {
		reply_error(reply, a->op, SBX_ST_BADINPUT, "which role? (see: sbx-request roles)");
		return;
	}
	role = sbx_policy_role(b->policy, role_name);
	if (!role) {
		reply_error(reply, a->op, SBX_ST_NOTFOUND,
			    "unknown role '%s' (see: sbx-request roles)", role_name);
		return;
	}
	if (a->has_duration && duration <= 0) {
		reply_error(reply, a->op, SBX_ST_BADINPUT, "the duration must be positive");
		return;
	}
	if (!sbx_policy_user(b->policy, w.person) && b->unknown_user_reason &&
	    (unknown = b->unknown_user_reason(b, w.person))) {
		/* e.g. the directory is down: say that, not "not in the policy" */
		reply_error(reply, a->op, SBX_ST_REFUSED, "%s", unknown);
		return;
	}
	if (sbx_policy_check_request(b->policy, role, w.person, &duration,
				     a->reason[0] ? a->reason : NULL,
				     a->ticket[0] ? a->ticket : NULL, why, sizeof(why)) < 0) {
		reply_error(reply, a->op, SBX_ST_REFUSED, "%s", why);
		return;
	}
	dup = duplicate_of(b, w.person, role->name, a->extends, now);
	if (dup && dup->state == SBX_REQ_PENDING) {
		reply_error(reply, a->op, SBX_ST_REFUSED,
			    "%s already has pending request %u for %s (sbx-request cancel %u to "
			    "replace it)", w.person, dup->id, role->name, dup->id);
		return;
	}
	if (dup) {
		sbx_format_rfc3339(dup->expires_at, until);
		sbx_duration_format(role->default_duration, dur, sizeof(dur));
		reply_error(reply, a->op, SBX_ST_REFUSED,
			    "%s already holds grant %u for %s until %s; to extend it: sbx-request "
			    "extend %u --for %s --reason \"...\"", w.person, dup->id, role->name,
			    until, dup->id, dur);
		return;
	}
	if (too_many_open(b, w.person)) {
		reply_error(reply, a->op, SBX_ST_REFUSED,
			    "%s has too many open requests and grants (at most %d)", w.person,
			    MAX_OPEN_PER_USER / 2);
		return;
	}
	id = sbx_state_next_id(b->state);
	f = json_object();
	json_object_set_new(f, "id", json_integer(id));
	json_object_set_new(f, "user", json_string(w.person));
	json_object_set_new(f, "role", json_string(role->name));
	json_object_set_new(f, "duration", json_integer(duration));
	if (a->reason[0])
		json_object_set_new(f, "reason", json_string(a->reason));
	if (a->ticket[0])
		json_object_set_new(f, "ticket", json_string(a->ticket));
	if (a->extends)
		json_object_set_new(f, "extends", json_integer(a->extends));
	json_object_set_new(f, "approvals_needed",
			    json_integer(role->auto_approve ? 0 : role->approvals));
	json_object_set_new(f, "lapses_at", time_json(now + b->policy->broker.request_ttl));
	if (w.through)
		json_object_set_new(f, "through", json_string(w.through));
	if (sbx_broker_record(b, "request.created", w.person, f, wait_seq) < 0) {
		refuse_if_degraded(b, reply, a->op);
		return;
	}
	r = sbx_state_get(b->state, id);
	if (role->auto_approve && activate(b, r, now, wait_seq) < 0) {
		refuse_if_degraded(b, reply, a->op);
		return;
	}
	reply_req(b, reply, a->op, r,
		  r->state == SBX_REQ_ACTIVE ? "granted" : "pending approval");
}

static void op_list(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
		    sbx_msg *reply)
{
	struct sbx_who w;
	size_t n = sbx_state_count(b->state);

	if (resolve_who(b, c, a, &w, reply) < 0)
		return;
	sbx_msg_free(reply);
	sbx_msg_init_reply(reply, a->op | SBX_OP_REPLY, SBX_ST_OK, NULL);
	/* Newest first, so a full frame keeps what matters most. */
	for (size_t i = n; i-- > 0;) {
		const struct sbx_req *r = sbx_state_at(b->state, i);
		size_t before = reply->len;

		if (strcmp(r->user, w.person) != 0)
			continue;
		if (!(a->flags & SBX_LIST_ALL) && r->state != SBX_REQ_PENDING &&
		    r->state != SBX_REQ_ACTIVE)
			continue;
		put_req(b, reply, r);
		if (reply->error) {
			/* Out of room: drop the last one and say so. */
			reply->error = 0;
			reply->len = before;
			break;
		}
	}
}

static void op_status(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
		      sbx_msg *reply)
{
	struct sbx_who w;
	struct sbx_req *r;

	if (resolve_who(b, c, a, &w, reply) < 0 || !(r = find_req(b, a, reply)))
		return;
	if (!may_see(b, r, &w)) {
		reply_error(reply, a->op, SBX_ST_REFUSED,
			    "request %u is %s's; only they, its approvers and admins may see it",
			    r->id, r->user);
		return;
	}
	reply_req(b, reply, a->op, r, NULL);
}

static void op_cancel_drop(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
			   sbx_msg *reply, uint64_t *wait_seq)
{
	bool cancel = a->op == SBX_OP_CANCEL;
	enum sbx_req_state want = cancel ? SBX_REQ_PENDING : SBX_REQ_ACTIVE;
	struct sbx_who w;
	struct sbx_req *r;
	char reason[SBX_TEXT_MAX + 64];

	if (resolve_who(b, c, a, &w, reply) < 0 || refuse_if_degraded(b, reply, a->op) ||
	    !(r = find_req(b, a, reply)))
		return;
	if (strcmp(r->user, w.person) != 0 && !w.admin) {
		reply_error(reply, a->op, SBX_ST_REFUSED, "request %u is %s's, not yours", r->id,
			    r->user);
		return;
	}
	if (r->state != want || (!cancel && !sbx_req_live(r, sbx_now()))) {
		reply_error(reply, a->op, SBX_ST_REFUSED, "request %u is %s: only a%s %s one can be %s",
			    r->id, sbx_req_state_name(r->state), cancel ? "" : "n",
			    sbx_req_state_name(want), cancel ? "cancelled" : "given back");
		return;
	}
	if (cancel) {
		if (record_end(b, r, "request.cancelled", w.person, w.through, a->reason,
			       wait_seq) < 0) {
			refuse_if_degraded(b, reply, a->op);
			return;
		}
		reply_req(b, reply, a->op, r, "cancelled");
		return;
	}
	snprintf(reason, sizeof(reason), "given back by %s%s%s", w.person,
		 a->reason[0] ? ": " : "", a->reason);
	if (record_end(b, r, "grant.revoked", w.person, w.through, reason, wait_seq) < 0) {
		refuse_if_degraded(b, reply, a->op);
		return;
	}
	reply_req(b, reply, a->op, r, "given back");
}

static void op_roles(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
		     sbx_msg *reply)
{
	struct sbx_who w;

	if (resolve_who(b, c, a, &w, reply) < 0)
		return;
	sbx_msg_free(reply);
	sbx_msg_init_reply(reply, a->op | SBX_OP_REPLY, SBX_ST_OK, NULL);
	for (size_t i = 0; i < b->policy->n_roles; i++) {
		const struct sbx_role *r = &b->policy->roles[i];
		const char *via = NULL;
		enum sbx_membership m = sbx_policy_membership(b->policy, r, w.person, &via);
		char approvers[512];

		if (m == SBX_MEMBER_NONE && !w.admin)
			continue;
		sbx_msg_begin_rec(reply, SBX_F_ROLEINFO);
		sbx_msg_put_str(reply, SBX_F_ROLE, r->name);
		sbx_msg_put_str_opt(reply, SBX_F_DESCRIPTION, r->description);
		for (size_t h = 0; h < r->hosts.n; h++)
			sbx_msg_put_str(reply, SBX_F_HOSTS, r->hosts.v[h]);
		sbx_msg_put_u32(reply, SBX_F_HOST_MATCH, r->matches_host);
		sbx_msg_put_str(reply, SBX_F_HOW,
				m == SBX_MEMBER_STANDING ? "standing"
				: m == SBX_MEMBER_ELIGIBLE ? "eligible" : "none");
		sbx_msg_put_str_opt(reply, SBX_F_VIA, via);
		sbx_msg_put_i64(reply, SBX_F_MAX_DURATION, r->max_duration);
		sbx_msg_put_i64(reply, SBX_F_DEFAULT_DURATION, r->default_duration);
		sbx_msg_put_u32(reply, SBX_F_AUTO_APPROVE, r->auto_approve);
		sbx_msg_put_u32(reply, SBX_F_APPROVALS_NEEDED, r->auto_approve ? 0 : r->approvals);
		sbx_msg_put_u32(reply, SBX_F_REQUIRE_REASON, r->require_reason);
		if (r->require_reason)
			sbx_msg_put_u32(reply, SBX_F_REASON_MIN, r->reason_min_length);
		for (size_t t = 0; t < r->n_ticket_re; t++)
			sbx_msg_put_str(reply, SBX_F_REQUIRE_TICKET, r->ticket_pattern[t]);
		if (!r->auto_approve) {
			sbx_policy_approvers_text(b->policy, r, w.person, approvers,
						  sizeof(approvers));
			sbx_msg_put_str_opt(reply, SBX_F_APPROVERS, approvers);
		}
		if (r->unix_group) {
			sbx_msg_put_str(reply, SBX_F_UNIX_GROUP, r->unix_group);
			sbx_msg_put_u32(reply, SBX_F_GID, r->gid);
		}
		sbx_msg_end_rec(reply);
	}
}

/* ---- approvers and admins ------------------------------------------------------ */

static void op_pending(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
		       sbx_msg *reply)
{
	struct sbx_who w;
	size_t n = sbx_state_count(b->state);
	char why[256];

	if (resolve_who(b, c, a, &w, reply) < 0)
		return;
	sbx_msg_free(reply);
	sbx_msg_init_reply(reply, a->op | SBX_OP_REPLY, SBX_ST_OK, NULL);
	for (size_t i = 0; i < n; i++) {
		const struct sbx_req *r = sbx_state_at(b->state, i);
		size_t before = reply->len;

		if (r->state != SBX_REQ_PENDING)
			continue;
		if (!w.admin && !may_decide(b, r, w.person, why, sizeof(why)))
			continue;
		put_req(b, reply, r);
		if (reply->error) {
			reply->error = 0;
			reply->len = before;
			break;
		}
	}
}

static bool already_approved(const struct sbx_req *r, const char *person)
{
	for (size_t i = 0; i < r->n_approvals; i++)
		if (strcmp(r->approvals[i].who, person) == 0)
			return true;
	return false;
}

/* Merge extra (stolen, may be NULL) into fields, never over what is there. */
static void add_extra(json_t *f, json_t *extra)
{
	const char *k;
	json_t *v;

	json_object_foreach(extra, k, v)
		if (!json_object_get(f, k))
			json_object_set(f, k, v);
	json_decref(extra);
}

#define SAY(st, ...)                                      \
	do {                                              \
		snprintf(why, whylen, __VA_ARGS__);       \
		ret = (st);                               \
		goto out;                                 \
	} while (0)

static struct sbx_req *get_or_say(struct sbx_broker *b, uint32_t id, char *why, size_t whylen)
{
	struct sbx_req *r = id ? sbx_state_get(b->state, id) : NULL;

	if (!r)
		snprintf(why, whylen, "no request %u", id);
	return r;
}

static int degraded_status(struct sbx_broker *b, char *why, size_t whylen)
{
	snprintf(why, whylen,
		 "the broker cannot record changes (%s); it refuses new requests and "
		 "approvals until an admin fixes this and restarts it; existing grants still work",
		 b->degraded);
	return SBX_ST_UNAVAILABLE;
}

int sbx_broker_approve(struct sbx_broker *b, uint32_t id, const char *person,
		       const char *through, const char *comment, int64_t duration, json_t *extra,
		       uint64_t *wait_seq, char *why, size_t whylen)
{
	char ground[512], asked[32], filed[32];
	int64_t now = sbx_now();
	struct sbx_req *r;
	json_t *f = NULL;
	int ret = SBX_ST_OK;

	if (b->degraded[0]) {
		ret = degraded_status(b, why, whylen);
		goto out;
	}
	if (!(r = get_or_say(b, id, why, whylen)))
		SAY(SBX_ST_NOTFOUND, "no request %u", id);
	if (r->state != SBX_REQ_PENDING)
		SAY(SBX_ST_REFUSED, "request %u is %s, not pending", r->id,
		    sbx_req_state_name(r->state));
	if (!may_decide(b, r, person, ground, sizeof(ground)))
		SAY(SBX_ST_REFUSED, "%s", ground);
	if (already_approved(r, person))
		SAY(SBX_ST_REFUSED,
		    "%s already approved request %u; it needs %u approval%s from different people",
		    person, r->id, r->approvals_needed, r->approvals_needed == 1 ? "" : "s");
	if (duration && (duration < 0 || duration > r->duration)) {
		sbx_duration_format(duration, asked, sizeof(asked));
		sbx_duration_format(r->duration, filed, sizeof(filed));
		SAY(SBX_ST_BADINPUT,
		    "an approver may shorten a request, never lengthen it (asked %s, request is for %s)",
		    asked, filed);
	}
	f = json_object();
	json_object_set_new(f, "id", json_integer(r->id));
	json_object_set_new(f, "user", json_string(r->user));
	json_object_set_new(f, "role", json_string(r->role));
	if (through)
		json_object_set_new(f, "through", json_string(through));
	json_object_set_new(f, "ground", json_string(ground));
	if (comment && comment[0])
		json_object_set_new(f, "comment", json_string(comment));
	if (duration && duration < r->duration)
		json_object_set_new(f, "duration", json_integer(duration));
	json_object_set_new(f, "approvals", json_integer((json_int_t)r->n_approvals + 1));
	json_object_set_new(f, "approvals_needed", json_integer(r->approvals_needed));
	add_extra(f, extra);
	extra = NULL;
	if (sbx_broker_record(b, "request.approval", person, f, wait_seq) < 0 ||
	    (r->n_approvals >= r->approvals_needed && activate(b, r, now, wait_seq) < 0)) {
		f = NULL;
		ret = degraded_status(b, why, whylen);
		goto out;
	}
	f = NULL;
	snprintf(why, whylen, "%s", r->state == SBX_REQ_ACTIVE ? "approved: the grant is active"
							       : "approval recorded");
out:
	json_decref(extra);
	json_decref(f);
	return ret;
}

int sbx_broker_end(struct sbx_broker *b, uint32_t id, bool deny, const char *person,
		   const char *through, bool admin, const char *reason, json_t *extra,
		   uint64_t *wait_seq, char *why, size_t whylen)
{
	char ground[512];
	struct sbx_req *r;
	json_t *f = NULL;
	int ret = SBX_ST_OK;

	if (b->degraded[0]) {
		ret = degraded_status(b, why, whylen);
		goto out;
	}
	if (!(r = get_or_say(b, id, why, whylen)))
		SAY(SBX_ST_NOTFOUND, "no request %u", id);
	if (deny && r->state != SBX_REQ_PENDING)
		SAY(SBX_ST_REFUSED, "request %u is %s, not pending", r->id,
		    sbx_req_state_name(r->state));
	if (!deny && !sbx_req_live(r, sbx_now()))
		SAY(SBX_ST_REFUSED, "request %u is %s, not an active grant", r->id,
		    r->state == SBX_REQ_ACTIVE ? "expired" : sbx_req_state_name(r->state));
	/* Admins may end anything; approvers may end what they could grant.
	 * A requester may not deny their own request (they cancel it). */
	if (!admin && !may_decide(b, r, person, ground, sizeof(ground)))
		SAY(SBX_ST_REFUSED, "%s", ground);
	if (!deny && (!reason || !reason[0]))
		reason = "revoked";
	f = base_fields(r, through);
	if (reason && *reason)
		json_object_set_new(f, "reason", json_string(reason));
	if (r->unix_group)
		json_object_set_new(f, "unix_group", json_string(r->unix_group));
	add_extra(f, extra);
	extra = NULL;
	if (sbx_broker_record(b, deny ? "request.denied" : "grant.revoked", person, f, wait_seq) < 0) {
		f = NULL;
		ret = degraded_status(b, why, whylen);
		goto out;
	}
	f = NULL;
	snprintf(why, whylen, "%s", deny ? "denied" : "revoked");
out:
	json_decref(extra);
	json_decref(f);
	return ret;
}

/* Who decides, and about which request: shared by approve, deny, revoke. */
static bool decision_args(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
			  struct sbx_who *w, sbx_msg *reply)
{
	if (resolve_who(b, c, a, w, reply) < 0)
		return false;
	if (!a->has_id || !a->id) {
		reply_error(reply, a->op, SBX_ST_BADINPUT, "a request id is required");
		return false;
	}
	return true;
}

/* The reply to a decision: the refusal, or the request as it is now. */
static void reply_decision(struct sbx_broker *b, const struct args *a, sbx_msg *reply, int st,
			   const char *why)
{
	if (st != SBX_ST_OK)
		reply_error(reply, a->op, (uint32_t)st, "%s", why);
	else
		reply_req(b, reply, a->op, sbx_state_get(b->state, a->id), why);
}

static void op_approve(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
		       sbx_msg *reply, uint64_t *wait_seq)
{
	struct sbx_who w;
	char why[512];

	if (!decision_args(b, c, a, &w, reply))
		return;
	if (a->has_duration && a->duration <= 0) {
		reply_error(reply, a->op, SBX_ST_BADINPUT, "the duration must be positive");
		return;
	}
	reply_decision(b, a, reply,
		       sbx_broker_approve(b, a->id, w.person, w.through, a->comment,
					  a->has_duration ? a->duration : 0, NULL, wait_seq, why,
					  sizeof(why)),
		       why);
}

static void op_deny_revoke(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
			   sbx_msg *reply, uint64_t *wait_seq)
{
	struct sbx_who w;
	char why[512];

	if (!decision_args(b, c, a, &w, reply))
		return;
	reply_decision(b, a, reply,
		       sbx_broker_end(b, a->id, a->op == SBX_OP_DENY, w.person, w.through, w.admin,
				      a->reason, NULL, wait_seq, why, sizeof(why)),
		       why);
}

static void op_grants(struct sbx_broker *b, struct sbx_caller *c, const struct args *a,
		      sbx_msg *reply)
{
	struct sbx_who w;
	size_t n = sbx_state_count(b->state);
	int64_t now = sbx_now();

	if (resolve_who(b, c, a, &w, reply) < 0)
		return;
	if (!w.admin && a->user[0] && strcmp(a->user, w.person) != 0) {
		reply_error(reply, a->op, SBX_ST_REFUSED,
			    "only admins may list other people's grants");
		return;
	}
	sbx_msg_free(reply);
	sbx_msg_init_reply(reply, a->op | SBX_OP_REPLY, SBX_ST_OK, NULL);
	for (size_t i = n; i-- > 0;) {
		const struct sbx_req *r = sbx_state_at(b->state, i);
		size_t before = reply->len;
		bool ended = r->state == SBX_REQ_EXPIRED || r->state == SBX_REQ_REVOKED;

		if (!sbx_req_live(r, now) && !((a->flags & SBX_LIST_ALL) && ended))
			continue;
		if (a->user[0] && strcmp(r->user, a->user) != 0)
			continue;
		if (!w.admin && strcmp(r->user, w.person) != 0)
			continue;
		put_req(b, reply, r);
		if (reply->error) {
			reply->error = 0;
			reply->len = before;
			break;
		}
	}
}

static sbx_op_fn ext_op(const struct sbx_broker *b, uint16_t op)
{
	for (size_t i = 0; i < b->n_ext_ops; i++)
		if (b->ext_ops[i].op == op)
			return b->ext_ops[i].fn;
	return NULL;
}

void sbx_broker_handle(struct sbx_broker *b, struct sbx_caller *c,
		       const uint8_t *frame, size_t n, sbx_msg *reply, uint64_t *wait_seq)
{
	struct args a;
	struct sbx_hdr h;
	sbx_op_fn ext;
	char why[256];

	*wait_seq = 0;
	sbx_hdr_decode(frame, n, &h);
	ext = ext_op(b, h.op);
	if (ext) {
		ext(b, c, frame, n, reply, wait_seq);
		goto out;
	}
	if (parse_args(frame, n, &a, why, sizeof(why)) < 0) {
		reply_error(reply, a.op, SBX_ST_BADINPUT, "%s", why);
		return;
	}
	switch (a.op) {
	case SBX_OP_CHECK: op_check(b, c, &a, reply, wait_seq); break;
	case SBX_OP_EXPLAIN: op_explain(b, c, &a, reply); break;
	case SBX_OP_PING: op_ping(b, &a, reply); break;
	case SBX_OP_REQUEST: op_request(b, c, &a, reply, wait_seq); break;
	case SBX_OP_LIST: op_list(b, c, &a, reply); break;
	case SBX_OP_STATUS: op_status(b, c, &a, reply); break;
	case SBX_OP_CANCEL:
	case SBX_OP_DROP: op_cancel_drop(b, c, &a, reply, wait_seq); break;
	case SBX_OP_ROLES: op_roles(b, c, &a, reply); break;
	case SBX_OP_PENDING: op_pending(b, c, &a, reply); break;
	case SBX_OP_APPROVE: op_approve(b, c, &a, reply, wait_seq); break;
	case SBX_OP_DENY:
	case SBX_OP_REVOKE: op_deny_revoke(b, c, &a, reply, wait_seq); break;
	case SBX_OP_GRANTS: op_grants(b, c, &a, reply); break;
	default:
		reply_error(reply, a.op, SBX_ST_PROTO, "unknown op 0x%04x", a.op);
		break;
	}
out:
	if (reply->error) {
		/* A reply that does not fit is a bug or an absurd request. */
		sbx_msg_free(reply);
		sbx_msg_init_reply(reply, h.op | SBX_OP_REPLY, SBX_ST_INTERNAL,
				   "reply too large");
	}
}

/* ---- extension registry ------------------------------------------------------ */

#define REGISTER(arr, n, ...)                                  \
	do {                                                   \
		if ((n) >= SBX_MAX_EXT)                        \
			return -1;                             \
		(arr)[(n)++] = (__typeof__((arr)[0])){ __VA_ARGS__ }; \
		return 0;                                      \
	} while (0)

int sbx_broker_register_op(struct sbx_broker *b, uint16_t op, sbx_op_fn fn)
{
	if (ext_op(b, op))
		return -1;
	REGISTER(b->ext_ops, b->n_ext_ops, .op = op, .fn = fn);
}

int sbx_broker_on_record(struct sbx_broker *b, sbx_record_fn fn, void *ctx)
{
	REGISTER(b->ext_records, b->n_ext_records, .fn = fn, .ctx = ctx);
}

int sbx_broker_on_tick(struct sbx_broker *b, sbx_tick_fn fn, void *ctx, int64_t interval_ms)
{
	REGISTER(b->ext_ticks, b->n_ext_ticks, .fn = fn, .ctx = ctx, .interval_ms = interval_ms);
}

int sbx_broker_on_reload(struct sbx_broker *b, sbx_reload_fn fn, void *ctx)
{
	REGISTER(b->ext_reloads, b->n_ext_reloads, .fn = fn, .ctx = ctx);
}

int sbx_broker_persist(struct sbx_broker *b, const char *name, sbx_replay_obs_fn on_replay,
		       sbx_snap_save_fn save, sbx_snap_load_fn load, void *ctx)
{
	REGISTER(b->ext_persist, b->n_ext_persist, .name = name, .on_replay = on_replay,
		 .save = save, .load = load, .ctx = ctx);
}

/* ---- policy reloads ------------------------------------------------------------ */

int sbx_broker_record_policy(struct sbx_broker *b, uint64_t *seq)
{
	json_t *f = json_object();

	json_object_set_new(f, "file", json_string(b->config_path));
	json_object_set_new(f, "sha256", json_string(b->policy->sha256_hex));
	json_object_set_new(f, "host", json_string(b->policy->broker.host));
	json_object_set_new(f, "roles", json_integer((json_int_t)b->policy->n_roles));
	return sbx_broker_record(b, "policy.loaded", SYSTEM_ACTOR, f, seq);
}

static void record_rejected(struct sbx_broker *b, const struct sbx_policy_errors *errs)
{
	json_t *f = json_object(), *list = json_array();
	uint64_t seq;

	for (size_t i = 0; i < errs->n; i++) {
		char line[600];

		snprintf(line, sizeof(line), "%d:%d: %s", errs->v[i].line, errs->v[i].col,
			 errs->v[i].msg);
		json_array_append_new(list, json_string(line));
	}
	json_object_set_new(f, "file", json_string(b->config_path));
	json_object_set_new(f, "errors", list);
	json_object_set_new(f, "kept_sha256", json_string(b->policy->sha256_hex));
	(void)sbx_broker_record(b, "policy.rejected", SYSTEM_ACTOR, f, &seq);
}

/* socket and state_dir cannot change under a running broker: the new
 * policy gets the running values.  Warn only when the file itself changed
 * them (they may differ from the file because of --socket/--state-dir). */
static void keep_setting(char **fresh, char *const *running, char **in_file, const char *what)
{
	if (*fresh && *in_file && strcmp(*fresh, *in_file) != 0) {
		sbx_warn("policy reload: broker.%s changes only at restart; keeping %s", what,
			 *running);
		free(*in_file);
		*in_file = strdup(*fresh);
	}
	free(*fresh);
	*fresh = *running ? strdup(*running) : NULL;
}

void sbx_broker_reload(struct sbx_broker *b)
{
	struct sbx_policy_errors errs = { 0 };
	struct sbx_policy *fresh = NULL;
	uint64_t seq;

	if (sbx_policy_load_file(b->config_path, &fresh, &errs) < 0) {
		sbx_err("policy reload: %s has %zu error%s; keeping the policy in force (sha256 %.12s)",
			b->config_path, errs.n, errs.n == 1 ? "" : "s", b->policy->sha256_hex);
		for (size_t i = 0; i < errs.n; i++)
			sbx_err("%s:%d:%d: %s", b->config_path, errs.v[i].line, errs.v[i].col,
				errs.v[i].msg);
		record_rejected(b, &errs);
		goto out;
	}
	keep_setting(&fresh->broker.socket, &b->policy->broker.socket, &b->file_socket, "socket");
	keep_setting(&fresh->broker.state_dir, &b->policy->broker.state_dir, &b->file_state_dir,
		     "state_dir");
	sbx_policy_free(b->policy);
	b->policy = fresh;
	fresh = NULL;
	sbx_info("policy reloaded from %s (sha256 %.12s)", b->config_path, b->policy->sha256_hex);
	(void)sbx_broker_record_policy(b, &seq);
	for (size_t i = 0; i < b->n_ext_reloads; i++)
		b->ext_reloads[i].fn(b, b->ext_reloads[i].ctx);
out:
	sbx_policy_free(fresh);
	sbx_policy_errors_free(&errs);
}
