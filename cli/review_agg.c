/*
 * Access reviews: one pass over the journal, folded into rows per role
 * and user beside what the policy says (review_agg.h, docs/review.md).
 *
 * Requests are held from request.created until they end (granted, denied,
 * cancelled, lapsed) so that a grant knows its reason, ticket, approvers
 * and how long it waited; everything else is counters.  Memory is the
 * open requests plus the rows, whatever the journal's length.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "review_agg.h"
#include "timeutil.h"

#define US 1000000LL
#define WEEK_US (7LL * 86400 * US)
/* Approvers remembered per open request (more are ignored: a request
 * needs at most a few approvals). */
#define REQ_APPROVERS 4

static const char *const flag_names[SBX_REVIEW_N_FLAGS] = {
	"unused", "max-duration", "same-approver", "auto-approved-sensitive", "drift",
	"review-overdue", "revoked-still-standing",
};
static const char *const flag_texts[SBX_REVIEW_N_FLAGS] = {
	"standing access not used within review.unused_after",
	"grants repeatedly at the role's max_duration",
	"the same approver approved every grant",
	"auto-approved grants of a sensitive role",
	"open permission drift findings",
	"the role's review is overdue",
	"revoked in a review but still standing in the policy file",
};

const char *sbx_review_flag_name(unsigned bit)
{
	return bit < SBX_REVIEW_N_FLAGS ? flag_names[bit] : "?";
}

const char *sbx_review_flag_text(unsigned bit)
{
	return bit < SBX_REVIEW_N_FLAGS ? flag_texts[bit] : "?";
}

/* ---- a small string -> index hash map (open addressing) ---- */

struct smap {
	char **keys;
	size_t *vals;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static size_t smap_slot(const struct smap *m, const char *k)
{
	size_t i = (size_t)hash_str(k) & (m->cap - 1);

	while (m->keys[i] && strcmp(m->keys[i], k) != 0)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static bool smap_get(const struct smap *m, const char *k, size_t *v)
{
	size_t i;

	if (!m->cap)
		return false;
	i = smap_slot(m, k);
	if (!m->keys[i])
		return false;
	*v = m->vals[i];
	return true;
}

static int smap_grow(struct smap *m)
{
	struct smap n = { .cap = m->cap ? m->cap * 2 : 64 };

	n.keys = calloc(n.cap, sizeof(*n.keys));
	n.vals = calloc(n.cap, sizeof(*n.vals));
	if (!n.keys || !n.vals) {
		free(n.keys);
		free(n.vals);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (m->keys[i]) {
			size_t j = smap_slot(&n, m->keys[i]);

			n.keys[j] = m->keys[i];
			n.vals[j] = m->vals[i];
		}
	}
	n.n = m->n;
	free(m->keys);
	free(m->vals);
	*m = n;
	return 0;
}

/* Insert (the key is copied) or overwrite.  0 or -1. */
static int smap_put(struct smap *m, const char *k, size_t v)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap && smap_grow(m) < 0)
		return -1;
	i = smap_slot(m, k);
	if (!m->keys[i]) {
		if (!(m->keys[i] = strdup(k)))
			return -1;
		m->n++;
	}
	m->vals[i] = v;
	return 0;
}

static void smap_free(struct smap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

/* ---- open requests, by id (open addressing, tombstones) ---- */

struct req {
	uint32_t id;             /* 0: empty slot */
	bool dead;               /* tombstone */
	int64_t created_us;
	char *reason, *ticket;
	unsigned approvals_needed;
	char *approvers[REQ_APPROVERS];
	unsigned n_approvers;
};

struct reqmap {
	struct req *v;
	size_t cap, used; /* used counts tombstones too */
};

static void req_clear(struct req *r)
{
	free(r->reason);
	free(r->ticket);
	for (unsigned i = 0; i < r->n_approvers; i++)
		free(r->approvers[i]);
	memset(r, 0, sizeof(*r));
}

static size_t req_hash(uint32_t id, size_t cap)
{
	return (size_t)((id * 2654435761u) & (cap - 1));
}

static struct req *reqmap_find(struct reqmap *m, uint32_t id)
{
	if (!m->cap)
		return NULL;
	for (size_t i = req_hash(id, m->cap);; i = (i + 1) & (m->cap - 1)) {
		if (m->v[i].id == id && !m->v[i].dead)
			return &m->v[i];
		if (!m->v[i].id && !m->v[i].dead)
			return NULL;
	}
}

static int reqmap_rehash(struct reqmap *m, size_t cap)
{
	struct req *nv = calloc(cap, sizeof(*nv));

	if (!nv)
		return -1;
	for (size_t i = 0; i < m->cap; i++) {
		size_t j;

		if (!m->v[i].id || m->v[i].dead)
			continue;
		for (j = req_hash(m->v[i].id, cap); nv[j].id; j = (j + 1) & (cap - 1))
			;
		nv[j] = m->v[i];
	}
	free(m->v);
	m->v = nv;
	m->cap = cap;
	m->used = 0;
	for (size_t i = 0; i < cap; i++)
		m->used += nv[i].id != 0;
	return 0;
}

/* A fresh entry for id (an old one of the same id is replaced). */
static struct req *reqmap_add(struct reqmap *m, uint32_t id)
{
	struct req *r = reqmap_find(m, id);
	size_t i, live = 0;

	if (r) {
		req_clear(r);
		r->id = id;
		return r;
	}
	if ((m->used + 1) * 2 > m->cap) {
		for (i = 0; i < m->cap; i++)
			live += m->v[i].id && !m->v[i].dead;
		/* Mostly tombstones: clean up in place; else grow. */
		if (reqmap_rehash(m, (live + 1) * 4 > m->cap ? (m->cap ? m->cap * 2 : 1024)
				   : m->cap) < 0)
			return NULL;
	}
	for (i = req_hash(id, m->cap); m->v[i].id && !m->v[i].dead; i = (i + 1) & (m->cap - 1))
		;
	if (!m->v[i].id)
		m->used++;
	memset(&m->v[i], 0, sizeof(m->v[i]));
	m->v[i].id = id;
	return &m->v[i];
}

static void reqmap_drop(struct req *r)
{
	req_clear(r);
	r->dead = true;
	r->id = 1; /* a tombstone keeps probing chains whole */
}

static void reqmap_free(struct reqmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->v[i].id && !m->v[i].dead)
			req_clear(&m->v[i]);
	free(m->v);
	memset(m, 0, sizeof(*m));
}

/* ---- the review ---- */

struct drift {
	char *user, *role;       /* NULL when the finding names none */
	bool open;
};

struct sbx_review {
	const struct sbx_policy *p;
	struct sbx_review_opts o;
	struct sbx_review_row **rows;
	size_t n_rows, cap_rows;
	struct smap row_idx;     /* "role\x1fuser" -> index */
	struct sbx_review_role *roles;
	size_t n_roles;
	struct smap role_idx;
	struct reqmap reqs;
	struct drift *drift;
	size_t n_drift, cap_drift;
	struct smap drift_idx;
	int64_t first_policy_us;
	unsigned records;
	unsigned weeks;
	int64_t week0_us;
};

static char *join_key(char *buf, size_t len, const char *a, const char *b)
{
	snprintf(buf, len, "%s\x1f%s", a, b);
	return buf;
}

static bool wanted(const struct sbx_review *rv, const char *role, const char *user)
{
	return (!rv->o.role || strcmp(rv->o.role, role) == 0) &&
	       (!rv->o.user || strcmp(rv->o.user, user) == 0);
}

static struct sbx_review_role *role_get(struct sbx_review *rv, const char *name, bool create)
{
	struct sbx_review_role *nr;
	size_t i;

	if (smap_get(&rv->role_idx, name, &i))
		return &rv->roles[i];
	if (!create)
		return NULL;
	nr = realloc(rv->roles, (rv->n_roles + 1) * sizeof(*nr));
	if (!nr)
		return NULL;
	rv->roles = nr;
	memset(&nr[rv->n_roles], 0, sizeof(*nr));
	if (!(nr[rv->n_roles].name = strdup(name)) ||
	    smap_put(&rv->role_idx, name, rv->n_roles) < 0) {
		free(nr[rv->n_roles].name);
		return NULL;
	}
	return &rv->roles[rv->n_roles++];
}

/* The row of role and user, created when missing (and wanted).  *oom is
 * set when it could not be made. */
static struct sbx_review_row *row_get(struct sbx_review *rv, const char *role, const char *user,
				      bool create, bool *oom)
{
	struct sbx_review_row *r;
	char key[512];
	size_t i;

	if (!role || !user || !wanted(rv, role, user))
		return NULL;
	join_key(key, sizeof(key), role, user);
	if (smap_get(&rv->row_idx, key, &i))
		return rv->rows[i];
	if (!create)
		return NULL;
	if (!role_get(rv, role, true))
		goto oom;
	if (rv->n_rows == rv->cap_rows) {
		size_t cap = rv->cap_rows ? rv->cap_rows * 2 : 32;
		struct sbx_review_row **nv = realloc(rv->rows, cap * sizeof(*nv));

		if (!nv)
			goto oom;
		rv->rows = nv;
		rv->cap_rows = cap;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		goto oom;
	r->role = strdup(role);
	r->user = strdup(user);
	if (!r->role || !r->user || smap_put(&rv->row_idx, key, rv->n_rows) < 0) {
		free(r->role);
		free(r->user);
		free(r);
		goto oom;
	}
	rv->rows[rv->n_rows++] = r;
	return r;
oom:
	*oom = true;
	return NULL;
}

/* Count s in a row's list of distinct texts (kept up to max). */
static int text_count(struct sbx_review_text *v, size_t *n, unsigned *more, size_t max,
		      const char *s)
{
	if (!s || !*s)
		return 0;
	for (size_t i = 0; i < *n; i++) {
		if (strcmp(v[i].s, s) == 0) {
			v[i].n++;
			return 0;
		}
	}
	if (*n == max) {
		(*more)++;
		return 0;
	}
	if (!(v[*n].s = strdup(s)))
		return -1;
	v[(*n)++].n = 1;
	return 0;
}

static const char *group_source(const struct sbx_policy *p, const char *via, char *buf,
				size_t len)
{
	const struct sbx_group *g;

	if (!via)
		return "policy file, by name";
	g = sbx_policy_group(p, via);
	if (g && p->n_dir_groups && (size_t)(g - p->groups) >= p->n_groups - p->n_dir_groups)
		snprintf(buf, len, "directory group %s", via);
	else
		snprintf(buf, len, "group %s (policy file)", via);
	return buf;
}

/* Every name the policy knows as a user: its users and the members of
 * its groups, each once. */
static int policy_people(const struct sbx_policy *p, struct smap *seen, const char ***out,
			 size_t *n)
{
	const char **v = NULL, **nv;
	size_t cap = 0, dummy;

	*n = 0;
	for (size_t pass = 0; pass < 2; pass++) {
		size_t count = pass ? p->n_groups : p->n_users;

		for (size_t i = 0; i < count; i++) {
			size_t nm = pass ? p->groups[i].members.n : 1;

			for (size_t k = 0; k < nm; k++) {
				const char *u = pass ? p->groups[i].members.v[k] : p->users[i].name;

				if (smap_get(seen, u, &dummy))
					continue;
				if (smap_put(seen, u, 0) < 0)
					goto oom;
				if (*n == cap) {
					cap = cap ? cap * 2 : 64;
					if (!(nv = realloc(v, cap * sizeof(*v))))
						goto oom;
					v = nv;
				}
				v[(*n)++] = u;
			}
		}
	}
	*out = v;
	return 0;
oom:
	free(v);
	return -1;
}

static int load_policy_rows(struct sbx_review *rv)
{
	const struct sbx_policy *p = rv->p;
	struct smap seen = { 0 };
	const char **people = NULL;
	size_t n_people = 0;
	bool oom = false;
	char buf[320];
	int ret = -1;

	if (policy_people(p, &seen, &people, &n_people) < 0)
		goto out;
	for (size_t i = 0; i < p->n_roles; i++) {
		const struct sbx_role *r = &p->roles[i];
		struct sbx_review_role *rr;

		if (rv->o.role && strcmp(rv->o.role, r->name) != 0)
			continue;
		if (!(rr = role_get(rv, r->name, true)))
			goto out;
		rr->in_policy = true;
		rr->review_every = r->review_every;
		rr->max_duration = r->max_duration;
		rr->sensitive = r->unix_group || r->review_every;
		for (size_t k = 0; k < n_people; k++) {
			const char *via = NULL;
			enum sbx_membership m = sbx_policy_membership(p, r, people[k], &via);
			struct sbx_review_row *row;

			if (m == SBX_MEMBER_NONE)
				continue;
			row = row_get(rv, r->name, people[k], true, &oom);
			if (oom)
				goto out;
			if (!row)
				continue;
			row->access = m == SBX_MEMBER_STANDING ? SBX_RA_STANDING : SBX_RA_ELIGIBLE;
			if (!(row->source = strdup(group_source(p, via, buf, sizeof(buf)))))
				goto out;
		}
	}
	ret = 0;
out:
	free(people);
	smap_free(&seen);
	return ret;
}

struct sbx_review *sbx_review_new(const struct sbx_policy *p, const struct sbx_review_opts *o)
{
	struct sbx_review *rv = calloc(1, sizeof(*rv));
	int64_t span;

	if (!rv)
		return NULL;
	rv->p = p;
	rv->o = *o;
	span = o->until_us > o->since_us ? o->until_us - o->since_us : 0;
	rv->weeks = (unsigned)((span + WEEK_US - 1) / WEEK_US);
	if (rv->weeks > SBX_REVIEW_MAX_WEEKS)
		rv->weeks = SBX_REVIEW_MAX_WEEKS;
	if (!rv->weeks)
		rv->weeks = 1;
	rv->week0_us = span > SBX_REVIEW_MAX_WEEKS * WEEK_US
		       ? o->until_us - SBX_REVIEW_MAX_WEEKS * WEEK_US : o->since_us;
	if (p && load_policy_rows(rv) < 0) {
		sbx_review_free(rv);
		return NULL;
	}
	return rv;
}

/* ---- records ---- */

static const char *str_of(const json_t *rec, const char *key)
{
	return json_string_value(json_object_get(rec, key));
}

static int64_t int_of(const json_t *rec, const char *key)
{
	return json_integer_value(json_object_get(rec, key));
}

static int on_created(struct sbx_review *rv, const json_t *rec, int64_t t)
{
	json_int_t id = int_of(rec, "id");
	const char *reason = str_of(rec, "reason"), *ticket = str_of(rec, "ticket");
	struct req *r;

	if (id <= 0 || id > UINT32_MAX)
		return 0;
	if (!(r = reqmap_add(&rv->reqs, (uint32_t)id)))
		return -1;
	r->created_us = t;
	r->approvals_needed = (unsigned)int_of(rec, "approvals_needed");
	if ((reason && !(r->reason = strdup(reason))) || (ticket && !(r->ticket = strdup(ticket))))
		return -1;
	return 0;
}

static int on_approval(struct sbx_review *rv, const json_t *rec)
{
	json_int_t id = int_of(rec, "id");
	const char *who = str_of(rec, "actor");
	struct req *r;

	if (id <= 0 || id > UINT32_MAX || !who)
		return 0;
	r = reqmap_find(&rv->reqs, (uint32_t)id);
	if (!r || r->n_approvers == REQ_APPROVERS)
		return 0;
	if (!(r->approvers[r->n_approvers] = strdup(who)))
		return -1;
	r->n_approvers++;
	return 0;
}

static int on_activated(struct sbx_review *rv, const json_t *rec, int64_t t)
{
	const char *user = str_of(rec, "user"), *role = str_of(rec, "role");
	json_int_t id = int_of(rec, "id");
	int64_t dur = int_of(rec, "duration");
	struct req *q = NULL;
	struct sbx_review_row *row;
	struct sbx_review_role *rr;
	bool oom = false;
	int ret = -1;

	if (id > 0 && id <= UINT32_MAX)
		q = reqmap_find(&rv->reqs, (uint32_t)id);
	if (t < rv->o.since_us)
		goto done;
	row = row_get(rv, role, user, true, &oom);
	if (oom)
		goto out;
	if (!row)
		goto done;
	rr = role_get(rv, role, false);
	row->grants++;
	row->grant_secs += dur;
	if (rr) {
		rr->grants++;
		if (rr->max_duration && dur >= rr->max_duration)
			row->at_max++;
		if (t >= rv->week0_us && (t - rv->week0_us) / WEEK_US < rv->weeks)
			rr->week[(t - rv->week0_us) / WEEK_US]++;
	}
	if (q) {
		if (text_count(row->reasons, &row->n_reasons, &row->more_reasons,
			       SBX_REVIEW_KEEP_TEXTS, q->reason) < 0 ||
		    text_count(row->tickets, &row->n_tickets, &row->more_tickets,
			       SBX_REVIEW_KEEP_TEXTS, q->ticket) < 0)
			goto out;
		if (q->n_approvers) {
			int64_t w = (t - q->created_us) / US;

			row->approved++;
			row->wait_secs_sum += w;
			if (w > row->wait_secs_max)
				row->wait_secs_max = w;
			for (unsigned i = 0; i < q->n_approvers; i++)
				if (text_count(row->approvers, &row->n_approvers,
					       &row->more_approvers, SBX_REVIEW_KEEP_APPROVERS,
					       q->approvers[i]) < 0)
					goto out;
		} else if (!q->approvals_needed) {
			row->auto_approved++;
		}
	}
done:
	ret = 0;
out:
	if (q)
		reqmap_drop(q);
	return ret;
}

static int on_ended_request(struct sbx_review *rv, const json_t *rec)
{
	json_int_t id = int_of(rec, "id");
	struct req *q;

	if (id > 0 && id <= UINT32_MAX && (q = reqmap_find(&rv->reqs, (uint32_t)id)))
		reqmap_drop(q);
	return 0;
}

/* An allowed login (access.checked) or a session: counted in the period,
 * remembered as the last use either way. */
static int on_use(struct sbx_review *rv, const json_t *rec, int64_t t, bool session)
{
	const char *user = str_of(rec, "user"), *role = str_of(rec, "role");
	struct sbx_review_row *row;
	bool oom = false;

	if (!session) {
		const char *outcome = str_of(rec, "outcome");

		if (!outcome || strcmp(outcome, "allowed") != 0)
			return 0;
	}
	/* Use before the period only matters to rows that exist anyway. */
	row = row_get(rv, role, user, t >= rv->o.since_us, &oom);
	if (oom)
		return -1;
	if (!row)
		return 0;
	if (session) {
		row->last_session_us = t;
		row->sessions += t >= rv->o.since_us;
	} else {
		row->last_login_us = t;
		row->logins += t >= rv->o.since_us;
	}
	return 0;
}

/* A sudo command run under a grant or standing role of the row
 * (command.run names the role it ran under; via none names none). */
static int on_command(struct sbx_review *rv, const json_t *rec, int64_t t)
{
	const char *user = str_of(rec, "user"), *role = str_of(rec, "role");
	struct sbx_review_row *row;
	bool oom = false;

	if (t < rv->o.since_us || !user || !role)
		return 0;
	row = row_get(rv, role, user, true, &oom);
	if (oom)
		return -1;
	if (row)
		row->commands++;
	return 0;
}

static int on_drift(struct sbx_review *rv, const json_t *rec, bool open)
{
	const char *kind = str_of(rec, "kind"), *subject = str_of(rec, "subject");
	const char *user = str_of(rec, "user"), *role = str_of(rec, "role");
	char key[4096];
	struct drift *d;
	size_t i;

	snprintf(key, sizeof(key), "%s\x1f%s\x1f%s\x1f%s", kind ? kind : "", subject ? subject : "",
		 user ? user : "", role ? role : "");
	if (smap_get(&rv->drift_idx, key, &i)) {
		rv->drift[i].open = open;
		return 0;
	}
	if (!open)
		return 0;
	if (rv->n_drift == rv->cap_drift) {
		size_t cap = rv->cap_drift ? rv->cap_drift * 2 : 16;

		if (!(d = realloc(rv->drift, cap * sizeof(*d))))
			return -1;
		rv->drift = d;
		rv->cap_drift = cap;
	}
	d = &rv->drift[rv->n_drift];
	memset(d, 0, sizeof(*d));
	if ((user && !(d->user = strdup(user))) || (role && !(d->role = strdup(role))) ||
	    smap_put(&rv->drift_idx, key, rv->n_drift) < 0) {
		free(d->user);
		free(d->role);
		return -1;
	}
	d->open = true;
	rv->n_drift++;
	return 0;
}

static int on_decision(struct sbx_review *rv, const json_t *rec, int64_t t, bool revoked)
{
	const char *user = str_of(rec, "user"), *role = str_of(rec, "role");
	const char *actor = str_of(rec, "actor"), *comment = str_of(rec, "comment");
	struct sbx_review_role *rr;
	struct sbx_review_row *row;
	bool oom = false;

	if (role && (rr = role_get(rv, role, false)) && t > rr->last_review_us)
		rr->last_review_us = t;
	row = row_get(rv, role, user, true, &oom);
	if (oom)
		return -1;
	if (!row)
		return 0;
	free(row->decided_by);
	free(row->decision_comment);
	row->decided_by = actor ? strdup(actor) : NULL;
	row->decision_comment = comment ? strdup(comment) : NULL;
	if ((actor && !row->decided_by) || (comment && !row->decision_comment))
		return -1;
	row->decided_us = t;
	row->revoked = revoked;
	return 0;
}

int sbx_review_add(struct sbx_review *rv, const json_t *rec)
{
	const char *ev = str_of(rec, "event"), *ts = str_of(rec, "time");
	int64_t t;

	if (!ev || !ts || sbx_parse_rfc3339_us(ts, &t) < 0)
		return 0;
	/* The report is as of the period's end. */
	if (t >= rv->o.until_us)
		return 0;
	rv->records++;
	switch (ev[0]) {
	case 'a':
		if (strcmp(ev, "access.checked") == 0)
			return on_use(rv, rec, t, false);
		break;
	case 'c':
		if (strcmp(ev, "command.run") == 0)
			return on_command(rv, rec, t);
		break;
	case 'd':
		if (strcmp(ev, "drift.detected") == 0)
			return on_drift(rv, rec, true);
		if (strcmp(ev, "drift.resolved") == 0)
			return on_drift(rv, rec, false);
		break;
	case 'g':
		if (strcmp(ev, "grant.activated") == 0)
			return on_activated(rv, rec, t);
		break;
	case 'p':
		if (strcmp(ev, "policy.loaded") == 0 && !rv->first_policy_us)
			rv->first_policy_us = t;
		break;
	case 'r':
		if (strcmp(ev, "request.created") == 0)
			return on_created(rv, rec, t);
		if (strcmp(ev, "request.approval") == 0)
			return on_approval(rv, rec);
		if (strcmp(ev, "request.denied") == 0 || strcmp(ev, "request.cancelled") == 0 ||
		    strcmp(ev, "request.lapsed") == 0)
			return on_ended_request(rv, rec);
		if (strcmp(ev, "review.certified") == 0)
			return on_decision(rv, rec, t, false);
		if (strcmp(ev, "review.revoked") == 0)
			return on_decision(rv, rec, t, true);
		break;
	case 's':
		if (strcmp(ev, "session.opened") == 0)
			return on_use(rv, rec, t, true);
		break;
	default:
		break;
	}
	return 0;
}

/* ---- the end ---- */

static void apply_drift(struct sbx_review *rv)
{
	for (size_t i = 0; i < rv->n_drift; i++) {
		const struct drift *d = &rv->drift[i];

		if (!d->open || !d->user)
			continue;
		for (size_t k = 0; k < rv->n_rows; k++) {
			struct sbx_review_row *r = rv->rows[k];

			if (strcmp(r->user, d->user) == 0 && (!d->role || strcmp(r->role, d->role) == 0))
				r->drift_open++;
		}
	}
}

static void role_dates(struct sbx_review *rv)
{
	for (size_t i = 0; i < rv->n_roles; i++) {
		struct sbx_review_role *r = &rv->roles[i];
		int64_t base;

		r->first_seen_us = rv->first_policy_us;
		if (!r->review_every || !r->in_policy)
			continue;
		base = r->last_review_us ? r->last_review_us : r->first_seen_us;
		if (!base)
			base = rv->o.since_us;
		r->next_due_us = base + r->review_every * US;
		r->overdue = rv->o.now_us >= r->next_due_us;
	}
}

static unsigned row_flags(const struct sbx_review *rv, const struct sbx_review_row *r)
{
	const struct sbx_review_role *rr = NULL;
	int64_t last = r->last_login_us > r->last_session_us ? r->last_login_us : r->last_session_us;
	int64_t since_policy = rv->first_policy_us ? rv->o.now_us - rv->first_policy_us : INT64_MAX;
	unsigned f = 0;
	size_t i;

	if (smap_get(&rv->role_idx, r->role, &i))
		rr = &rv->roles[i];
	/* Only once the policy has been in force long enough to tell. */
	if (r->access == SBX_RA_STANDING && since_policy >= rv->o.unused_after * US &&
	    (!last || rv->o.now_us - last > rv->o.unused_after * US))
		f |= SBX_RF_UNUSED;
	if (r->at_max >= 2 && r->at_max * 2 >= r->grants)
		f |= SBX_RF_MAX_DURATION;
	if (r->approved >= 2 && r->n_approvers == 1 && !r->more_approvers)
		f |= SBX_RF_SAME_APPROVER;
	if (r->auto_approved && rr && rr->sensitive)
		f |= SBX_RF_AUTO_SENSITIVE;
	if (r->drift_open)
		f |= SBX_RF_DRIFT;
	if (rr && rr->overdue && r->access != SBX_RA_NONE)
		f |= SBX_RF_OVERDUE;
	if (r->revoked && r->access == SBX_RA_STANDING)
		f |= SBX_RF_REVOKED_STANDING;
	return f;
}

static int row_cmp(const void *a, const void *b)
{
	const struct sbx_review_row *x = *(const struct sbx_review_row *const *)a;
	const struct sbx_review_row *y = *(const struct sbx_review_row *const *)b;
	int c;

	if (!x->flags != !y->flags)
		return x->flags ? -1 : 1;
	c = strcmp(x->role, y->role);
	return c ? c : strcmp(x->user, y->user);
}

static int role_cmp(const void *a, const void *b)
{
	return strcmp(((const struct sbx_review_role *)a)->name,
		      ((const struct sbx_review_role *)b)->name);
}

int sbx_review_finish(struct sbx_review *rv)
{
	apply_drift(rv);
	role_dates(rv);
	for (size_t i = 0; i < rv->n_rows; i++)
		rv->rows[i]->flags = row_flags(rv, rv->rows[i]);
	qsort(rv->rows, rv->n_rows, sizeof(*rv->rows), row_cmp);
	/* The role index points into the array: sort last, then drop it. */
	qsort(rv->roles, rv->n_roles, sizeof(*rv->roles), role_cmp);
	smap_free(&rv->role_idx);
	for (size_t i = 0; i < rv->n_roles; i++)
		if (smap_put(&rv->role_idx, rv->roles[i].name, i) < 0)
			return -1;
	return 0;
}

const struct sbx_review_opts *sbx_review_opts_of(const struct sbx_review *rv)
{
	return &rv->o;
}

void sbx_review_summary(const struct sbx_review *rv, struct sbx_review_summary *s)
{
	memset(s, 0, sizeof(*s));
	s->rows = rv->n_rows;
	s->roles = rv->n_roles;
	s->records = rv->records;
	s->weeks = rv->weeks;
	s->week0_us = rv->week0_us;
	for (size_t i = 0; i < rv->n_drift; i++)
		s->drift_open += rv->drift[i].open;
	for (size_t i = 0; i < rv->n_rows; i++) {
		const struct sbx_review_row *r = rv->rows[i];

		s->flagged += r->flags != 0;
		s->grants += r->grants;
		s->grant_secs += r->grant_secs;
		s->logins += r->logins;
		for (unsigned b = 0; b < SBX_REVIEW_N_FLAGS; b++)
			s->flag_count[b] += !!(r->flags & (1u << b));
	}
}

size_t sbx_review_n_rows(const struct sbx_review *rv)
{
	return rv->n_rows;
}

const struct sbx_review_row *sbx_review_row_at(const struct sbx_review *rv, size_t i)
{
	return i < rv->n_rows ? rv->rows[i] : NULL;
}

size_t sbx_review_n_roles(const struct sbx_review *rv)
{
	return rv->n_roles;
}

const struct sbx_review_role *sbx_review_role_at(const struct sbx_review *rv, size_t i)
{
	return i < rv->n_roles ? &rv->roles[i] : NULL;
}

const struct sbx_review_role *sbx_review_role_find(const struct sbx_review *rv, const char *name)
{
	size_t i;

	return smap_get(&rv->role_idx, name, &i) ? &rv->roles[i] : NULL;
}

static void row_free(struct sbx_review_row *r)
{
	if (!r)
		return;
	free(r->role);
	free(r->user);
	free(r->source);
	free(r->decided_by);
	free(r->decision_comment);
	for (size_t i = 0; i < r->n_reasons; i++)
		free(r->reasons[i].s);
	for (size_t i = 0; i < r->n_tickets; i++)
		free(r->tickets[i].s);
	for (size_t i = 0; i < r->n_approvers; i++)
		free(r->approvers[i].s);
	free(r);
}

void sbx_review_free(struct sbx_review *rv)
{
	if (!rv)
		return;
	for (size_t i = 0; i < rv->n_rows; i++)
		row_free(rv->rows[i]);
	free(rv->rows);
	smap_free(&rv->row_idx);
	for (size_t i = 0; i < rv->n_roles; i++)
		free(rv->roles[i].name);
	free(rv->roles);
	smap_free(&rv->role_idx);
	reqmap_free(&rv->reqs);
	for (size_t i = 0; i < rv->n_drift; i++) {
		free(rv->drift[i].user);
		free(rv->drift[i].role);
	}
	free(rv->drift);
	smap_free(&rv->drift_idx);
	free(rv);
}

int sbx_review_parse_quarter(const char *s, int64_t *since_us, int64_t *until_us)
{
	struct tm a = { 0 }, b = { 0 };
	int year, q;
	char tail;

	if (!s || sscanf(s, "%4dQ%1d%c", &year, &q, &tail) != 2 || strlen(s) != 6 || q < 1 ||
	    q > 4 || year < 1970)
		return -EINVAL;
	a.tm_year = year - 1900;
	a.tm_mon = (q - 1) * 3;
	a.tm_mday = 1;
	b.tm_year = q == 4 ? year + 1 - 1900 : year - 1900;
	b.tm_mon = q == 4 ? 0 : q * 3;
	b.tm_mday = 1;
	*since_us = (int64_t)timegm(&a) * US;
	*until_us = (int64_t)timegm(&b) * US;
	return 0;
}
