/*
 * Merging a directory's users and groups into a policy.
 *
 * The broker evaluates one struct sbx_policy.  With a directory, that
 * policy is the file's plus the directory's latest users and groups: the
 * file's part (broker, profiles, roles, its own users and groups) moves
 * unchanged from the old policy to the new one, and only the users and
 * groups arrays and the index are rebuilt.  Everything that asks the
 * policy a question (membership, approvers, explain, Slack ids) then
 * works on directory names without knowing where they came from.
 */
#include "config.h"

#include "policy_directory.h"
#include "policy_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* Small things */

bool sbx_policy_names_from_directory(const struct sbx_policy *p)
{
	return p && p->names_from_directory;
}

static bool in_tail(const void *elem, const void *base, size_t size, size_t n, size_t tail)
{
	const char *e = elem, *b = base;

	return tail && e >= b + (n - tail) * size && e < b + n * size;
}

bool sbx_policy_group_from_directory(const struct sbx_policy *p, const char *name)
{
	const struct sbx_group *g = sbx_policy_group(p, name);

	return g && in_tail(g, p->groups, sizeof(*g), p->n_groups, p->n_dir_groups);
}

bool sbx_policy_user_from_directory(const struct sbx_policy *p, const char *name)
{
	const struct sbx_user *u = sbx_policy_user(p, name);

	return u && in_tail(u, p->users, sizeof(*u), p->n_users, p->n_dir_users);
}

const char *sbx_policy_via_text(const struct sbx_policy *p, const char *group, char *buf,
				size_t len)
{
	if (!group)
		return "listed by name";
	snprintf(buf, len, "%s%s", sbx_policy_group_from_directory(p, group) ? "ldap group " : "",
		 group);
	return buf;
}

static void user_free(struct sbx_user *u)
{
	free(u->name);
	free(u->manager);
	free(u->email);
	free(u->slack_id);
}

static void group_free(struct sbx_group *g)
{
	free(g->name);
	for (size_t i = 0; i < g->members.n; i++)
		free(g->members.v[i]);
	free(g->members.v);
}

void sbx_directory_data_free(struct sbx_directory_data *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n_users; i++)
		user_free(&d->users[i]);
	for (size_t i = 0; i < d->n_groups; i++)
		group_free(&d->groups[i]);
	free(d->users);
	free(d->groups);
	free(d);
}

/* ---------------------------------------------------------------------- */
/* Fingerprint */

static uint64_t mix(uint64_t x)
{
	/* splitmix64's finalizer: sums of mixed hashes do not cancel out the
	 * way sums of raw FNV values could. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t fnv_add(uint64_t h, const char *s)
{
	/* NULL and "" differ: a field that disappears is a change. */
	if (!s)
		return (h ^ 0xff) * 0x100000001b3ULL;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return (h ^ 0) * 0x100000001b3ULL;
}

#define FNV_START 0xcbf29ce484222325ULL

uint64_t sbx_directory_data_fingerprint(const struct sbx_directory_data *d)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < d->n_users; i++) {
		const struct sbx_user *u = &d->users[i];
		uint64_t h = fnv_add(FNV_START, "u");

		h = fnv_add(fnv_add(fnv_add(fnv_add(h, u->name), u->manager), u->email), u->slack_id);
		sum += mix(h);
	}
	for (size_t i = 0; i < d->n_groups; i++) {
		const struct sbx_group *g = &d->groups[i];
		uint64_t gh = fnv_add(fnv_add(FNV_START, "g"), g->name);

		sum += mix(gh);
		for (size_t k = 0; k < g->members.n; k++)
			sum += mix(fnv_add(fnv_add(gh, "m"), g->members.v[k]));
	}
	return sum;
}

/* ---------------------------------------------------------------------- */
/* Merging */

static char *dup_opt(const char *s, bool *oom)
{
	char *d;

	if (!s)
		return NULL;
	d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

static int copy_user(struct sbx_user *dst, const struct sbx_user *src)
{
	bool oom = false;

	dst->name = dup_opt(src->name, &oom);
	dst->manager = dup_opt(src->manager, &oom);
	dst->email = dup_opt(src->email, &oom);
	dst->slack_id = dup_opt(src->slack_id, &oom);
	if (!oom)
		return 0;
	user_free(dst);
	memset(dst, 0, sizeof(*dst));
	return -ENOMEM;
}

static int copy_group(struct sbx_group *dst, const struct sbx_group *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->name = strdup(src->name);
	dst->members.v = calloc(src->members.n ? src->members.n : 1, sizeof(char *));
	if (!dst->name || !dst->members.v)
		goto oom;
	for (size_t i = 0; i < src->members.n; i++) {
		dst->members.v[i] = strdup(src->members.v[i]);
		if (!dst->members.v[i])
			goto oom;
		dst->members.n++;
	}
	return 0;
oom:
	group_free(dst);
	memset(dst, 0, sizeof(*dst));
	return -ENOMEM;
}

/* The new users and groups arrays and the index, before they are
 * installed: on failure everything here is undone and the old policy
 * stays as it was. */
struct merge {
	struct sbx_user *users;
	size_t n_users, file_users;
	struct sbx_group *groups;
	size_t n_groups, file_groups;
	struct sbx_policy_index *ix;
};

static void merge_undo(struct merge *m)
{
	/* The file's entries are borrowed from the old policy. */
	for (size_t i = m->file_users; i < m->n_users; i++)
		user_free(&m->users[i]);
	for (size_t i = m->file_groups; i < m->n_groups; i++)
		group_free(&m->groups[i]);
	free(m->users);
	free(m->groups);
	sbx_policy_index_free(m->ix);
}

static int index_file_part(struct merge *m, const struct sbx_policy *old)
{
	struct sbx_policy_index *ix = m->ix;

	for (size_t i = 0; i < old->n_profiles; i++)
		if (sbx_namemap_put(&ix->profiles, NULL, old->profiles[i].name, &old->profiles[i],
				    NULL) < 0)
			return -ENOMEM;
	for (size_t i = 0; i < old->n_roles; i++)
		if (sbx_namemap_put(&ix->roles, NULL, old->roles[i].name, &old->roles[i], NULL) < 0)
			return -ENOMEM;
	for (size_t i = 0; i < m->file_users; i++) {
		m->users[i] = old->users[i];
		if (sbx_namemap_put(&ix->users, NULL, m->users[i].name, &m->users[i], NULL) < 0)
			return -ENOMEM;
	}
	m->n_users = m->file_users;
	for (size_t i = 0; i < m->file_groups; i++) {
		m->groups[i] = old->groups[i];
		if (sbx_namemap_put(&ix->groups, NULL, m->groups[i].name, &m->groups[i], NULL) < 0)
			return -ENOMEM;
	}
	m->n_groups = m->file_groups;
	return 0;
}

static int add_directory_part(struct merge *m, const struct sbx_directory_data *d,
			      const struct sbx_dir_merge_cb *cb)
{
	struct sbx_policy_index *ix = m->ix;

	for (size_t i = 0; d && i < d->n_users; i++) {
		struct sbx_user *u = &m->users[m->n_users];

		if (sbx_namemap_has(&ix->users, NULL, d->users[i].name)) {
			if (cb && cb->conflict)
				cb->conflict("user", d->users[i].name, cb->ctx);
			continue;
		}
		if (copy_user(u, &d->users[i]) < 0)
			return -ENOMEM;
		m->n_users++;
		if (sbx_namemap_put(&ix->users, NULL, u->name, u, NULL) < 0)
			return -ENOMEM;
	}
	for (size_t i = 0; d && i < d->n_groups; i++) {
		struct sbx_group *g = &m->groups[m->n_groups];

		if (sbx_namemap_has(&ix->groups, NULL, d->groups[i].name)) {
			if (cb && cb->conflict)
				cb->conflict("group", d->groups[i].name, cb->ctx);
			continue;
		}
		if (copy_group(g, &d->groups[i]) < 0)
			return -ENOMEM;
		m->n_groups++;
		if (sbx_namemap_put(&ix->groups, NULL, g->name, g, NULL) < 0)
			return -ENOMEM;
	}
	return 0;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Names whose membership of some directory group differs between old and
 * fresh: only their roles can have changed (roles and the file's groups
 * are the same in both). */
static int note_group_changes(struct sbx_namemap *affected, const struct sbx_policy *from,
			      const struct sbx_policy *to, size_t first)
{
	for (size_t i = first; i < from->n_groups; i++) {
		const struct sbx_group *g = &from->groups[i];
		const struct sbx_group *other = sbx_policy_group(to, g->name);

		for (size_t k = 0; k < g->members.n; k++) {
			const char *name = g->members.v[k];

			if (other && sbx_policy_on_list(to, &other->members, name))
				continue;
			if (sbx_namemap_put(affected, NULL, name, (void *)name, NULL) < 0)
				return -ENOMEM;
		}
	}
	return 0;
}

static void report_drift(const struct sbx_policy *old, const struct sbx_policy *fresh,
			 const char **names, size_t n, const struct sbx_dir_merge_cb *cb)
{
	for (size_t i = 0; i < n; i++) {
		for (size_t k = 0; k < fresh->n_roles; k++) {
			const struct sbx_role *r = &fresh->roles[k];
			const char *via_b = NULL, *via_a = NULL;
			enum sbx_membership b = sbx_policy_membership(old, r, names[i], &via_b);
			enum sbx_membership a = sbx_policy_membership(fresh, r, names[i], &via_a);

			if (a != b)
				cb->drift(names[i], r, b, a, a > b ? via_a : via_b, cb->ctx);
		}
	}
}

static int diff_memberships(const struct sbx_policy *old, const struct sbx_policy *fresh,
			    const struct sbx_dir_merge_cb *cb)
{
	struct sbx_namemap affected = { 0 };
	const char **names = NULL;
	size_t n = 0;
	int ret = -ENOMEM;

	if (note_group_changes(&affected, old, fresh, old->n_groups - old->n_dir_groups) < 0 ||
	    note_group_changes(&affected, fresh, old,
			       fresh->n_groups - fresh->n_dir_groups) < 0)
		goto out;
	if (!affected.n) {
		ret = 0;
		goto out;
	}
	names = calloc(affected.n, sizeof(*names));
	if (!names)
		goto out;
	for (size_t i = 0; i < affected.cap; i++)
		if (affected.slots[i].name)
			names[n++] = affected.slots[i].name;
	/* Events in name order, whatever the hash order. */
	qsort(names, n, sizeof(*names), cmp_name);
	report_drift(old, fresh, names, n, cb);
	ret = 0;
out:
	free(names);
	sbx_namemap_free(&affected);
	return ret;
}

int sbx_policy_merge_directory(struct sbx_policy **pp, const struct sbx_directory_data *d,
			       const struct sbx_dir_merge_cb *cb)
{
	struct sbx_policy *old = pp ? *pp : NULL, *fresh = NULL;
	struct merge m = { 0 };

	if (!old)
		return -EINVAL;
	m.file_users = old->n_users - old->n_dir_users;
	m.file_groups = old->n_groups - old->n_dir_groups;
	m.users = calloc(m.file_users + (d ? d->n_users : 0) + 1, sizeof(*m.users));
	m.groups = calloc(m.file_groups + (d ? d->n_groups : 0) + 1, sizeof(*m.groups));
	m.ix = calloc(1, sizeof(*m.ix));
	fresh = malloc(sizeof(*fresh));
	if (!m.users || !m.groups || !m.ix || !fresh || index_file_part(&m, old) < 0 ||
	    add_directory_part(&m, d, cb) < 0)
		goto oom;
	/* Everything else (and whatever other sections add to the struct)
	 * moves as it is. */
	*fresh = *old;
	fresh->users = m.users;
	fresh->n_users = m.n_users;
	fresh->groups = m.groups;
	fresh->n_groups = m.n_groups;
	fresh->index = m.ix;
	fresh->n_dir_users = m.n_users - m.file_users;
	fresh->n_dir_groups = m.n_groups - m.file_groups;
	if (sbx_policy_index_lists(fresh) < 0)
		goto oom;
	if (cb && cb->drift && diff_memberships(old, fresh, cb) < 0)
		goto oom;
	/* The old policy keeps only what is not shared: its directory
	 * entries, its arrays and its index. */
	for (size_t i = m.file_users; i < old->n_users; i++)
		user_free(&old->users[i]);
	for (size_t i = m.file_groups; i < old->n_groups; i++)
		group_free(&old->groups[i]);
	free(old->users);
	free(old->groups);
	sbx_policy_index_free(old->index);
	if (cb && cb->retire)
		cb->retire(old, cb->ctx);
	else
		free(old);
	*pp = fresh;
	return 0;
oom:
	merge_undo(&m);
	free(fresh);
	return -ENOMEM;
}

/* ---------------------------------------------------------------------- */
/* policy check --online: what only the directory can tell */

struct problems {
	char *buf;
	size_t len, off;
	int n;
};

__attribute__((format(printf, 2, 3)))
static void problem(struct problems *pr, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int w;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	pr->n++;
	if (!pr->buf || pr->off + 1 >= pr->len)
		return;
	w = snprintf(pr->buf + pr->off, pr->len - pr->off, "%s%s", pr->off ? "\n" : "", line);
	if (w > 0)
		pr->off += (size_t)w;
	if (pr->off >= pr->len)
		pr->off = pr->len - 1;
}

static bool dir_has(const struct sbx_namemap *m, const char *name)
{
	return sbx_namemap_has(m, NULL, name);
}

static void check_names(const struct sbx_policy *p, const struct sbx_strlist *l,
			const struct sbx_namemap *dir, bool groups, const char *where,
			struct problems *pr)
{
	for (size_t i = 0; i < l->n; i++) {
		const char *n = l->v[i];
		bool known = groups ? sbx_policy_group(p, n) != NULL : sbx_policy_user(p, n) != NULL;

		if (!known && !dir_has(dir, n))
			problem(pr, "%s names %s '%s', which neither the policy file nor the "
				"directory defines", where, groups ? "group" : "user", n);
	}
}

static void check_references(const struct sbx_policy *p, const struct sbx_namemap *users,
			     const struct sbx_namemap *groups, struct problems *pr)
{
	char where[128];

	for (size_t i = 0; i < p->n_roles; i++) {
		const struct sbx_role *r = &p->roles[i];

		snprintf(where, sizeof(where), "role '%s'", r->name);
		check_names(p, &r->standing_groups, groups, true, where, pr);
		check_names(p, &r->eligible_groups, groups, true, where, pr);
		check_names(p, &r->approver_groups, groups, true, where, pr);
		check_names(p, &r->standing_users, users, false, where, pr);
		check_names(p, &r->eligible_users, users, false, where, pr);
		check_names(p, &r->approver_users, users, false, where, pr);
	}
	for (size_t i = 0; i < p->n_groups; i++) {
		snprintf(where, sizeof(where), "group '%s'", p->groups[i].name);
		check_names(p, &p->groups[i].members, users, false, where, pr);
	}
	for (size_t i = 0; i < p->n_users; i++) {
		const char *m = p->users[i].manager;

		if (m && !sbx_policy_user(p, m) && !dir_has(users, m))
			problem(pr, "user '%s' has manager '%s', whom neither the policy file nor "
				"the directory defines", p->users[i].name, m);
	}
}

int sbx_policy_check_directory(const struct sbx_policy *p, const struct sbx_directory_data *d,
			       char *err, size_t errlen)
{
	struct problems pr = { .buf = err, .len = errlen };
	struct sbx_namemap users = { 0 }, groups = { 0 };
	int ret = -1;

	if (err && errlen)
		err[0] = '\0';
	for (size_t i = 0; i < d->n_users; i++) {
		if (sbx_namemap_put(&users, NULL, d->users[i].name, NULL, NULL) < 0)
			goto oom;
		if (sbx_policy_user(p, d->users[i].name))
			problem(&pr, "user '%s' is defined both in the policy file and in the "
				"directory: remove one of them", d->users[i].name);
	}
	for (size_t i = 0; i < d->n_groups; i++) {
		if (sbx_namemap_put(&groups, NULL, d->groups[i].name, NULL, NULL) < 0)
			goto oom;
		if (sbx_policy_group(p, d->groups[i].name))
			problem(&pr, "group '%s' is defined both in the policy file and in the "
				"directory: remove one of them", d->groups[i].name);
	}
	check_references(p, &users, &groups, &pr);
	ret = pr.n ? -1 : 0;
	goto out;
oom:
	problem(&pr, "out of memory");
out:
	sbx_namemap_free(&users);
	sbx_namemap_free(&groups);
	return ret;
}
