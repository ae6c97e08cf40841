/*
 * Permission drift, the broker's side (drift.h): when to scan, what the
 * scan checks against, and from its result the records.
 *
 * The loop builds a struct sbx_drift_input (a copy: the policy may be
 * replaced while the scan runs) and starts a thread that reads the files
 * (drift_scan.c).  The loop looks for its end every pass and then, on
 * the loop: adds what only memory knows (grants the policy no longer
 * supports, sessions resting on nothing), records what is new, what was
 * removed and what has gone.
 */
#include "config.h"

#include "drift.h"

#include "broker.h"
#include "dispatch.h"
#include "drift_scan.h"
#include "log.h"
#include "policy_drift.h"
#include "sessions.h"
#include "text.h"
#include "sbxio.h"
#include "timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sbx_drift {
	/* open findings: id -> the drift.detected record's fields (with
	 * detected_at) */
	json_t *open;
	/* the scan under way */
	bool running;
	atomic_bool done;
	pthread_t th;
	struct sbx_drift_input in;
	struct sbx_drift_result res;
	int64_t started_ms, took_ms, build_ms;
	/* when the next one is due (wall clock, seconds; 0: now) */
	int64_t next_at;
	bool again;              /* asked for while one was running */
	uint64_t scans;
	int64_t scanned_at;
};

/* ---- the open findings ------------------------------------------------------ */

struct sbx_drift *sbx_drift_new(void)
{
	struct sbx_drift *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->open = json_object();
	if (!d->open) {
		free(d);
		return NULL;
	}
	sbx_drift_input_init(&d->in);
	return d;
}

void sbx_drift_free(struct sbx_drift *d)
{
	if (!d)
		return;
	if (d->running)
		pthread_join(d->th, NULL);
	sbx_drift_input_free(&d->in);
	sbx_drift_result_free(&d->res);
	json_decref(d->open);
	free(d);
}

void sbx_drift_replay(struct sbx_drift *d, const json_t *rec)
{
	const char *ev = json_string_value(json_object_get(rec, "event"));
	const char *id = json_string_value(json_object_get(rec, "finding"));
	json_t *f;

	if (!d || !ev || !id || strncmp(ev, "drift.", 6) != 0)
		return;
	if (strcmp(ev, "drift.detected") == 0) {
		f = json_deep_copy(rec);
		if (!f)
			return;
		json_object_set(f, "detected_at", json_object_get(rec, "time"));
		json_object_del(f, "prev");
		json_object_del(f, "hash");
		json_object_set_new(d->open, id, f);
	} else if (strcmp(ev, "drift.resolved") == 0) {
		json_object_del(d->open, id);
	}
}

void sbx_drift_on_record(struct sbx_broker *b, const json_t *rec)
{
	sbx_drift_replay(b->drift, rec);
}

json_t *sbx_drift_save(const struct sbx_drift *d)
{
	return d && json_object_size(d->open) ? json_deep_copy(d->open) : NULL;
}

int sbx_drift_load(struct sbx_drift *d, const json_t *saved)
{
	json_t *c;

	if (!d || !json_is_object(saved))
		return -1;
	c = json_deep_copy(saved);
	if (!c)
		return -1;
	json_decref(d->open);
	d->open = c;
	return 0;
}

size_t sbx_drift_open_count(const struct sbx_broker *b)
{
	return b->drift ? json_object_size(b->drift->open) : 0;
}

uint64_t sbx_drift_scans(const struct sbx_broker *b)
{
	return b->drift ? b->drift->scans : 0;
}

/* ---- what the scan checks against ---------------------------------------------- */

/* Every name on a role's list and in its groups: fn(name) for each.
 * O(the lists), not O(users x roles): the loop builds this before each
 * scan. */
static int each_member(struct sbx_drift_input *in, const struct sbx_policy *p,
		       const struct sbx_strlist *users, const struct sbx_strlist *groups,
		       struct sbx_namemap *m1, const char *val, struct sbx_namemap *m2)
{
	for (size_t i = 0; i < users->n + groups->n; i++) {
		const struct sbx_group *g = i < users->n ? NULL
					    : sbx_policy_group(p, groups->v[i - users->n]);
		size_t n = i < users->n ? 1 : g ? g->members.n : 0;

		for (size_t k = 0; k < n; k++) {
			const char *u = g ? g->members.v[k] : users->v[i];

			if ((m1 && sbx_drift_input_name(in, m1, u, val) < 0) ||
			    (m2 && sbx_drift_input_name(in, m2, u, NULL) < 0))
				return -ENOMEM;
		}
	}
	return 0;
}

static int build_input(struct sbx_broker *b, struct sbx_drift_input *in)
{
	const struct sbx_policy *p = b->policy;
	int64_t now = sbx_now();

	sbx_drift_input_init(in);
	in->conf = b->settings.drift;
	snprintf(in->host, sizeof(in->host), "%s", p->broker.host ? p->broker.host : "");
	if (geteuid() != 0)
		in->also_trusted = geteuid();
	for (size_t i = 0; i < p->n_groups; i++)
		if (sbx_drift_input_name(in, &in->groups, p->groups[i].name, NULL) < 0)
			return -ENOMEM;
	for (size_t i = 0; i < p->n_users; i++)
		if (sbx_drift_input_name(in, &in->users, p->users[i].name, NULL) < 0)
			return -ENOMEM;
	for (size_t k = 0; k < p->n_roles; k++) {
		const struct sbx_role *r = &p->roles[k];
		struct sbx_drift_role *dr = NULL;
		struct sbx_namemap *logins = r->matches_host ? &in->logins : NULL;

		if (r->unix_group) {
			dr = sbx_drift_input_role(in, r->name, r->unix_group, r->sudo_allow.n > 0,
						  r->sudo_allow.v, r->sudo_allow.n);
			if (!dr)
				return -ENOMEM;
		}
		/* standing members may be in the role's group where the role
		 * applies; everyone else on its lists is named in the words */
		if (each_member(in, p, &r->standing_users, &r->standing_groups,
				dr ? (r->matches_host ? &dr->justified : &dr->eligible) : NULL,
				"standing", logins) < 0 ||
		    each_member(in, p, &r->eligible_users, &r->eligible_groups,
				dr ? &dr->eligible : NULL, NULL, logins) < 0)
			return -ENOMEM;
	}
	/* holders of live grants */
	for (size_t i = 0; i < sbx_state_open_count(b->state); i++) {
		const struct sbx_req *g = sbx_state_open_at(b->state, i);
		const struct sbx_role *r;

		if (!sbx_req_live(g, now) || !(r = sbx_policy_role(p, g->role)) || !r->matches_host)
			continue;
		if (sbx_drift_input_name(in, &in->logins, g->user, NULL) < 0)
			return -ENOMEM;
		for (size_t k = 0; k < in->n_roles; k++)
			if (strcmp(in->roles[k].name, r->name) == 0 &&
			    sbx_drift_input_name(in, &in->roles[k].justified, g->user, "grant") < 0)
				return -ENOMEM;
	}
	return 0;
}

/* ---- the thread --------------------------------------------------------------------- */

static void *scan_main(void *arg)
{
	struct sbx_drift *d = arg;

	int64_t t0 = sbx_mono_ms();

	sbx_drift_scan(&d->in, &d->res);
	d->took_ms = sbx_mono_ms() - t0;
	atomic_store(&d->done, true);
	return NULL;
}

static void start_scan(struct sbx_broker *b)
{
	struct sbx_drift *d = b->drift;
	int rc;

	int64_t t0 = sbx_mono_ms();

	sbx_drift_input_free(&d->in);
	if (build_input(b, &d->in) < 0) {
		sbx_err("drift: out of memory building the scan's input; next try in %llds",
			(long long)b->settings.drift.interval);
		sbx_drift_input_free(&d->in);
		d->next_at = sbx_now() + b->settings.drift.interval;
		return;
	}
	atomic_store(&d->done, false);
	d->started_ms = sbx_mono_ms();
	d->build_ms = d->started_ms - t0;
	rc = pthread_create(&d->th, NULL, scan_main, d);
	if (rc != 0) {
		sbx_err("drift: cannot start the scan's thread: %s", strerror(rc));
		d->next_at = sbx_now() + 60;
		return;
	}
	d->running = true;
	d->again = false;
}

/* ---- from a result to records ------------------------------------------------------ */

static void record(struct sbx_broker *b, const char *event, json_t *f)
{
	uint64_t seq;

	(void)sbx_broker_record(b, event, SBX_SYSTEM_ACTOR, f, &seq);
}

static json_t *finding_fields(const struct sbx_drift_finding *f)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	sbx_rec_str(o, "finding", f->id);
	sbx_rec_str(o, "kind", sbx_drift_kind_name(f->kind));
	sbx_rec_str(o, "subject", f->subject);
	if (f->file) {
		sbx_rec_str(o, "file", f->file);
		json_object_set_new(o, "line", json_integer(f->line));
	}
	sbx_rec_str(o, "found", f->found);
	sbx_rec_str(o, "policy", f->policy);
	sbx_rec_str(o, "user", f->user);
	sbx_rec_str(o, "group", f->group);
	return o;
}

static void resolve(struct sbx_broker *b, const char *id, const char *why)
{
	json_t *open = json_object_get(b->drift->open, id), *f = json_object();

	sbx_rec_str(f, "finding", id);
	json_object_set(f, "kind", json_object_get(open, "kind"));
	json_object_set(f, "subject", json_object_get(open, "subject"));
	if (json_object_get(open, "file")) {
		json_object_set(f, "file", json_object_get(open, "file"));
		json_object_set(f, "line", json_object_get(open, "line"));
	}
	sbx_rec_str(f, "how", why);
	record(b, "drift.resolved", f);
}

/* What only memory knows, added to the scan's findings on the loop. */
struct extra {
	struct sbx_broker *b;
	struct sbx_drift_result *r;
	int64_t now;
};

static void add_extra(struct sbx_drift_result *r, enum sbx_drift_kind k, const char *subject,
		      const char *file, char *found, char *policy)
{
	struct sbx_drift_finding *v;

	if (!found || !policy)
		goto oom;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 32;

		v = realloc(r->v, cap * sizeof(*v));
		if (!v)
			goto oom;
		r->v = v;
		r->cap = cap;
	}
	v = &r->v[r->n];
	memset(v, 0, sizeof(*v));
	v->kind = k;
	v->subject = strdup(subject);
	v->file = file ? strdup(file) : NULL;
	v->found = found;
	v->policy = policy;
	if (!v->subject || (file && !v->file)) {
		free(v->subject);
		free(v->file);
		goto oom;
	}
	{
		/* the same id scheme as the scan's: kind, subject, file, found */
		uint64_t h = 0xcbf29ce484222325ull;
		const char *parts[3] = { subject, file ? file : "", found };

		h = (h ^ (uint64_t)k) * 0x100000001b3ull;
		for (int i = 0; i < 3; i++) {
			for (const char *s = parts[i]; *s; s++)
				h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
			h = (h ^ 0xff) * 0x100000001b3ull;
		}
		snprintf(v->id, sizeof(v->id), "%016llx", (unsigned long long)h);
	}
	r->n++;
	return;
oom:
	free(found);
	free(policy);
	r->oom = true;
}

static char *dupf(const char *fmtstr, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmtstr, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, fmtstr);
	if (vasprintf(&s, fmtstr, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Grants the current policy (or directory) no longer supports: the role
 * is gone, or the holder is no longer eligible for it. */
static void unsupported_grants(struct sbx_broker *b, struct sbx_drift_result *r, int64_t now)
{
	const struct sbx_policy *p = b->policy;

	for (size_t i = 0; i < sbx_state_open_count(b->state); i++) {
		const struct sbx_req *g = sbx_state_open_at(b->state, i);
		const struct sbx_role *role;

		if (!sbx_req_live(g, now))
			continue;
		role = sbx_policy_role(p, g->role);
		if (role && sbx_policy_membership(p, role, g->user, NULL) != SBX_MEMBER_NONE)
			continue;
		add_extra(r, SBX_DRIFT_GRANT, g->user, NULL,
			  dupf("grant %u of %s to %s is live", g->id, g->role, g->user),
			  role ? dupf("%s is no longer eligible for %s", g->user, g->role)
			       : dupf("the policy no longer has a role %s", g->role));
	}
}

static void session_seen(uint32_t id, const char *user, pid_t leader, int64_t opened_at,
			 void *ctx)
{
	struct extra *x = ctx;
	const char *via;

	(void)opened_at;
	if (sbx_broker_live_grant(x->b, user, x->now, true) ||
	    sbx_policy_standing_login(x->b->policy, user, &via))
		return;
	add_extra(x->r, SBX_DRIFT_SESSION, user, NULL,
		  dupf("session %u of %s (leader pid %d) is open", id, user, (int)leader),
		  dupf("%s holds no live grant and no role gives them a standing login on %s",
		       user, x->b->policy->broker.host ? x->b->policy->broker.host : "this host"));
}

/* Logins (utmp) of users who held a grant on this host that has ended,
 * and who now hold none and have no standing login: a session that
 * outlived the access it came in on. */
static void utmp_sessions(struct sbx_broker *b, struct sbx_drift_result *r, int64_t now)
{
	const char *host = b->policy->broker.host ? b->policy->broker.host : "this host";
	struct sbx_namemap had = { 0 };
	const char *via;

	for (size_t i = 0; i < sbx_state_count(b->state); i++) {
		const struct sbx_req *g = sbx_state_at(b->state, i);

		if (g && g->activated_at && !sbx_req_live(g, now) &&
		    sbx_namemap_put(&had, NULL, g->user, (void *)g, NULL) < 0)
			r->oom = true;
	}
	for (size_t i = 0; i < r->n_logins; i++) {
		const struct sbx_drift_login *l = &r->logins[i];
		const struct sbx_req *g = sbx_namemap_get(&had, NULL, l->user);
		char when[SBX_RFC3339_LEN];

		if (!g || sbx_broker_live_grant(b, l->user, now, true) ||
		    sbx_policy_standing_login(b->policy, l->user, &via))
			continue;
		sbx_format_rfc3339(l->at, when);
		add_extra(r, SBX_DRIFT_SESSION, l->user, b->settings.drift.utmp_file,
			  dupf("%s is logged in on %s (pid %d, since %s)", l->user,
			       l->line[0] ? l->line : "?", (int)l->pid, when),
			  dupf("%s's grant %u of %s has ended; %s holds no live grant and no role "
			       "gives them a standing login on %s", l->user, g->id, g->role, l->user,
			       host));
	}
	sbx_namemap_free(&had);
}

static bool in_failed(const struct sbx_drift_result *r, const char *file)
{
	for (size_t i = 0; file && i < r->n_failed; i++)
		if (strcmp(r->failed[i], file) == 0)
			return true;
	return false;
}

static void take_result(struct sbx_broker *b)
{
	struct sbx_drift *d = b->drift;
	struct sbx_drift_result *r = &d->res;
	struct extra x = { b, r, sbx_now() };
	json_t *now_ids = json_object(), *gone = json_array();
	const char *id;
	json_t *v;
	size_t detected = 0, resolved = 0;
	int64_t t0 = sbx_mono_ms();

	unsupported_grants(b, r, x.now);
	sbx_sessions_each_open(b, session_seen, &x);
	utmp_sessions(b, r, x.now);
	if (!now_ids || !gone || r->oom) {
		/* a partial picture would resolve what is still there */
		sbx_err("drift: out of memory during the scan; its result is dropped");
		goto out;
	}
	sbx_broker_op_begin(b);
	for (size_t i = 0; i < r->n; i++) {
		const struct sbx_drift_finding *f = &r->v[i];

		json_object_set_new(now_ids, f->id, json_true());
		if (json_object_get(d->open, f->id))
			continue;
		record(b, "drift.detected", finding_fields(f));
		detected++;
	}
	for (size_t i = 0; i < r->n_acts; i++) {
		const struct sbx_drift_act *a = &r->acts[i];
		json_t *f = json_object();

		sbx_rec_str(f, "finding", a->id);
		sbx_rec_str(f, "action", "remove");
		sbx_rec_str(f, "user", a->user);
		sbx_rec_str(f, "group", a->group);
		sbx_rec_str(f, "file", a->file);
		sbx_rec_str(f, "backup", a->backup);
		json_object_set_new(f, "ok", json_boolean(!a->error));
		sbx_rec_str(f, "error", a->error);
		record(b, "drift.remediated", f);
		if (a->error)
			sbx_warn("drift: could not take %s out of %s in %s: %s", a->user, a->group,
				 a->file, a->error);
		else
			sbx_info("drift: took %s out of %s in %s (backup %s)", a->user, a->group,
				 a->file, a->backup);
		if (!a->error && json_object_get(d->open, a->id)) {
			resolve(b, a->id, "removed");
			json_object_del(now_ids, a->id);
			resolved++;
		}
	}
	json_object_foreach(d->open, id, v) {
		const char *file = json_string_value(json_object_get(v, "file"));

		if (json_object_get(now_ids, id) || in_failed(r, file))
			continue;
		json_array_append_new(gone, json_string(id));
	}
	for (size_t i = 0; i < json_array_size(gone); i++) {
		resolve(b, json_string_value(json_array_get(gone, i)), "gone");
		resolved++;
	}
	sbx_broker_op_end(b);
	d->scans++;
	d->scanned_at = x.now;
	sbx_info("drift: scan %llu took %lld ms (%zu accounts, %zu sudoers files, %zu key files; "
		 "the loop spent %lld ms on its input and %lld ms on its result): %zu open, %zu new, "
		 "%zu resolved", (unsigned long long)d->scans, (long long)d->took_ms, r->accounts,
		 r->sudoers_files, r->key_files, (long long)d->build_ms,
		 (long long)(sbx_mono_ms() - t0), json_object_size(d->open), detected, resolved);
out:
	json_decref(now_ids);
	json_decref(gone);
	sbx_drift_result_free(r);
	sbx_drift_input_free(&d->in);
}

/* ---- the hooks ---------------------------------------------------------------------- */

int sbx_drift_start(struct sbx_broker *b)
{
	if (b->drift)
		b->drift->next_at = 0;
	return 0;
}

void sbx_drift_on_reload(struct sbx_broker *b)
{
	if (!b->drift)
		return;
	if (b->drift->running)
		b->drift->again = true;
	else
		b->drift->next_at = 0;
}

void sbx_drift_tick(struct sbx_broker *b, int64_t now)
{
	struct sbx_drift *d = b->drift;

	if (!d)
		return;
	if (d->running) {
		if (!atomic_load(&d->done))
			return;
		pthread_join(d->th, NULL);
		d->running = false;
		/* The journal may have failed meanwhile: nothing is recorded
		 * then, and the next start scans again. */
		take_result(b);
		d->next_at = d->again ? 0 : now + b->settings.drift.interval;
	}
	if (!b->settings.drift.enabled || b->replaying || b->degraded[0] || now < d->next_at)
		return;
	start_scan(b);
}

/* ---- ops ---------------------------------------------------------------------------- */

static void put_str(sbx_msg *m, uint16_t tag, const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (s)
		sbx_msg_put_str(m, tag, s);
}

void sbx_op_drift(struct sbx_broker *b, struct sbx_call *c)
{
	struct sbx_drift *d = b->drift;
	const char *id;
	json_t *f;
	char when[SBX_RFC3339_LEN];

	if (!b->settings.drift.enabled && (!d || !json_object_size(d->open))) {
		sbx_reply_ok(c, "no drift scan: the policy has no drift: section");
		sbx_msg_put_u32(c->reply, SBX_F_SCANS, 0);
		return;
	}
	if (d && d->scanned_at)
		sbx_format_rfc3339(d->scanned_at, when);
	sbx_reply_okf(c, "%zu open finding%s%s%s%s", d ? json_object_size(d->open) : 0,
		      d && json_object_size(d->open) == 1 ? "" : "s",
		      d && d->scanned_at ? "; last scan " : "; no scan has finished yet",
		      d && d->scanned_at ? when : "", d && d->running ? "; a scan is under way" : "");
	sbx_msg_put_u32(c->reply, SBX_F_SCANS, d ? (uint32_t)d->scans : 0);
	if (d && d->scanned_at)
		sbx_msg_put_i64(c->reply, SBX_F_SCANNED_AT, d->scanned_at);
	sbx_msg_put_u32(c->reply, SBX_F_SCANNING, d && d->running);
	if (!d)
		return;
	json_object_foreach(d->open, id, f) {
		sbx_msg_mark mark = sbx_msg_here(c->reply);
		const char *t = json_string_value(json_object_get(f, "detected_at"));
		int64_t at = 0;

		sbx_msg_begin_rec(c->reply, SBX_F_DRIFT);
		sbx_msg_put_str(c->reply, SBX_F_FINDING, id);
		put_str(c->reply, SBX_F_KIND, f, "kind");
		put_str(c->reply, SBX_F_SUBJECT, f, "subject");
		if (json_object_get(f, "file")) {
			put_str(c->reply, SBX_F_FILE, f, "file");
			sbx_msg_put_u32(c->reply, SBX_F_LINE,
					(uint32_t)json_integer_value(json_object_get(f, "line")));
		}
		put_str(c->reply, SBX_F_FOUND, f, "found");
		put_str(c->reply, SBX_F_POLICY_SAYS, f, "policy");
		if (t && sbx_parse_rfc3339_us(t, &at) == 0)
			sbx_msg_put_i64(c->reply, SBX_F_DETECTED_AT, at / 1000000);
		sbx_msg_end_rec(c->reply);
		if (sbx_msg_undo_if_failed(c->reply, mark))
			break;
	}
}

void sbx_op_drift_scan(struct sbx_broker *b, struct sbx_call *c)
{
	struct sbx_drift *d = b->drift;

	if (!b->settings.drift.enabled || !d) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "no drift scan: the policy has no drift: section");
		return;
	}
	if (d->running) {
		d->again = true;
		sbx_reply_okf(c, "a scan is under way; another starts when it ends");
	} else {
		d->next_at = 0;
		sbx_reply_okf(c, "a scan starts now");
	}
	sbx_msg_put_u32(c->reply, SBX_F_SCANS, (uint32_t)d->scans);
}
