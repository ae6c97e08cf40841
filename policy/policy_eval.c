/*
 * The questions the broker and the CLIs ask of a loaded policy, and the
 * index that keeps them cheap.  Every answer a person may read says why,
 * in words they can act on.
 */
#include "policy_internal.h"

#include "duration.h"
#include "text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------------- */
/* The policy index */

static int index_list(struct sbx_namemap *m, struct sbx_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		if (sbx_namemap_put(m, l, l->v[i], l, NULL) < 0)
			return -ENOMEM;
	return 0;
}

int sbx_policy_index_lists(struct sbx_policy *p)
{
	struct sbx_policy_index *ix = p->index;

	for (size_t i = 0; i < p->n_groups; i++)
		if (index_list(&ix->members, &p->groups[i].members) < 0)
			return -ENOMEM;
	for (size_t i = 0; i < p->n_roles; i++) {
		struct sbx_role *r = &p->roles[i];

		if (index_list(&ix->members, &r->standing_users) < 0 ||
		    index_list(&ix->members, &r->eligible_users) < 0 ||
		    index_list(&ix->members, &r->approver_users) < 0)
			return -ENOMEM;
	}
	return 0;
}

void sbx_policy_index_free(struct sbx_policy_index *ix)
{
	if (!ix)
		return;
	sbx_namemap_free(&ix->profiles);
	sbx_namemap_free(&ix->users);
	sbx_namemap_free(&ix->groups);
	sbx_namemap_free(&ix->roles);
	sbx_namemap_free(&ix->members);
	free(ix);
}

static const struct sbx_policy_index *index_of(const struct sbx_policy *p)
{
	return p ? p->index : NULL;
}

const struct sbx_profile *sbx_policy_profile(const struct sbx_policy *p, const char *name)
{
	const struct sbx_policy_index *ix = index_of(p);

	return ix ? sbx_namemap_get(&ix->profiles, NULL, name) : NULL;
}

const struct sbx_role *sbx_policy_role(const struct sbx_policy *p, const char *name)
{
	const struct sbx_policy_index *ix = index_of(p);

	return ix ? sbx_namemap_get(&ix->roles, NULL, name) : NULL;
}

const struct sbx_user *sbx_policy_user(const struct sbx_policy *p, const char *name)
{
	const struct sbx_policy_index *ix = index_of(p);

	return ix ? sbx_namemap_get(&ix->users, NULL, name) : NULL;
}

const struct sbx_group *sbx_policy_group(const struct sbx_policy *p, const char *name)
{
	const struct sbx_policy_index *ix = index_of(p);

	return ix ? sbx_namemap_get(&ix->groups, NULL, name) : NULL;
}

bool sbx_policy_on_list(const struct sbx_policy *p, const struct sbx_strlist *l,
			const char *name)
{
	const struct sbx_policy_index *ix = index_of(p);

	return ix && sbx_namemap_has(&ix->members, l, name);
}

bool sbx_policy_in_group(const struct sbx_policy *p, const char *group, const char *user)
{
	const struct sbx_group *g = sbx_policy_group(p, group);

	return g && sbx_policy_on_list(p, &g->members, user);
}

/* ---------------------------------------------------------------------- */
/* Membership */

/* Is user on the named list or in one of the groups?  *via as for
 * sbx_policy_membership. */
static bool member_of(const struct sbx_policy *p, const struct sbx_strlist *users,
		      const struct sbx_strlist *groups, const char *user, const char **via)
{
	if (sbx_policy_on_list(p, users, user)) {
		*via = NULL;
		return true;
	}
	for (size_t i = 0; i < groups->n; i++) {
		if (sbx_policy_in_group(p, groups->v[i], user)) {
			*via = groups->v[i];
			return true;
		}
	}
	return false;
}

enum sbx_membership sbx_policy_membership(const struct sbx_policy *p,
					  const struct sbx_role *r,
					  const char *user, const char **via)
{
	const char *dummy = NULL;

	if (!via)
		via = &dummy;
	*via = NULL;
	if (!p || !r || !user)
		return SBX_MEMBER_NONE;
	if (member_of(p, &r->standing_users, &r->standing_groups, user, via))
		return SBX_MEMBER_STANDING;
	if (member_of(p, &r->eligible_users, &r->eligible_groups, user, via))
		return SBX_MEMBER_ELIGIBLE;
	return SBX_MEMBER_NONE;
}

const struct sbx_role *sbx_policy_standing_login(const struct sbx_policy *p,
						  const char *user, const char **via)
{
	const char *dummy = NULL;

	if (!via)
		via = &dummy;
	*via = NULL;
	if (!p || !user)
		return NULL;
	for (size_t i = 0; i < p->n_roles; i++) {
		const struct sbx_role *r = &p->roles[i];

		if (r->matches_host &&
		    member_of(p, &r->standing_users, &r->standing_groups, user, via))
			return r;
	}
	*via = NULL;
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* Text for people */

/* A bounded string builder: output that does not fit is cut, never
 * overrun. */
struct textbuf {
	char *buf;
	size_t len, cap;
};

static void tb_init(struct textbuf *tb, char *buf, size_t cap)
{
	tb->buf = buf;
	tb->len = 0;
	tb->cap = cap;
	if (cap)
		buf[0] = '\0';
}

__attribute__((format(printf, 2, 3)))
static void tb_add(struct textbuf *tb, const char *fmt, ...)
{
	va_list ap;
	int w;

	if (tb->len + 1 >= tb->cap)
		return;
	va_start(ap, fmt);
	w = vsnprintf(tb->buf + tb->len, tb->cap - tb->len, fmt, ap);
	va_end(ap);
	if (w < 0)
		return;
	tb->len += (size_t)w;
	if (tb->len >= tb->cap)
		tb->len = tb->cap - 1;
}

/* Group members shown in approver lists: enough to know whom to ask. */
#define APPROVER_MEMBERS_SHOWN 8

static void add_group_text(struct textbuf *tb, const struct sbx_policy *p, const char *name)
{
	const struct sbx_group *g = sbx_policy_group(p, name);

	tb_add(tb, "%s", name);
	if (!g)
		return;
	if (!g->members.n) {
		tb_add(tb, " (no members)");
		return;
	}
	tb_add(tb, " (");
	for (size_t i = 0; i < g->members.n && i < APPROVER_MEMBERS_SHOWN; i++)
		tb_add(tb, "%s%s", i ? ", " : "", g->members.v[i]);
	if (g->members.n > APPROVER_MEMBERS_SHOWN)
		tb_add(tb, ", and %zu more", g->members.n - APPROVER_MEMBERS_SHOWN);
	tb_add(tb, ")");
}

/* Separator before part i of n: "A", "A or B", "A, B or C". */
static const char *list_sep(size_t i, size_t n)
{
	if (i == 0)
		return "";
	return i + 1 == n ? " or " : ", ";
}

void sbx_policy_approvers_text(const struct sbx_policy *p, const struct sbx_role *r,
			       const char *requester, char *buf, size_t buflen)
{
	struct textbuf tb;
	size_t n, i = 0;

	if (!buf || !buflen)
		return;
	tb_init(&tb, buf, buflen);
	if (!r)
		return;
	n = (r->approver_manager ? 1 : 0) + r->approver_groups.n + r->approver_users.n;
	if (n == 0) {
		tb_add(&tb, r->auto_approve ? "nobody (granted automatically)" : "nobody");
		return;
	}
	if (r->approver_manager) {
		const struct sbx_user *u = requester ? sbx_policy_user(p, requester) : NULL;

		if (!requester)
			tb_add(&tb, "the requester's manager");
		else if (u && u->manager)
			tb_add(&tb, "%s's manager (%s)", requester, u->manager);
		else
			tb_add(&tb, "%s's manager (none in the policy)", requester);
		i++;
	}
	for (size_t k = 0; k < r->approver_groups.n; k++, i++) {
		tb_add(&tb, "%s", list_sep(i, n));
		add_group_text(&tb, p, r->approver_groups.v[k]);
	}
	for (size_t k = 0; k < r->approver_users.n; k++, i++)
		tb_add(&tb, "%s%s", list_sep(i, n), r->approver_users.v[k]);
}

/* ---------------------------------------------------------------------- */
/* Approval */

bool sbx_policy_may_approve(const struct sbx_policy *p, const struct sbx_role *r,
			    const char *requester, const char *approver,
			    char *why, size_t whylen)
{
	char who[512];

	if (why && whylen)
		why[0] = '\0';
	if (!p || !r || !requester || !approver) {
		(void)sbx_whyf(why, whylen, 0, "no such request or approver");
		return false;
	}
	if (strcmp(requester, approver) == 0) {
		(void)sbx_whyf(why, whylen, 0, "you cannot approve your own request");
		return false;
	}
	if (r->approver_manager) {
		const struct sbx_user *u = sbx_policy_user(p, requester);

		if (u && u->manager && strcmp(u->manager, approver) == 0) {
			(void)sbx_whyf(why, whylen, 0, "manager of %s", requester);
			return true;
		}
	}
	for (size_t i = 0; i < r->approver_groups.n; i++) {
		if (sbx_policy_in_group(p, r->approver_groups.v[i], approver)) {
			(void)sbx_whyf(why, whylen, 0, "member of %s", r->approver_groups.v[i]);
			return true;
		}
	}
	if (sbx_policy_on_list(p, &r->approver_users, approver)) {
		(void)sbx_whyf(why, whylen, 0, "approver of %s by name", r->name);
		return true;
	}
	sbx_policy_approvers_text(p, r, requester, who, sizeof(who));
	(void)sbx_whyf(why, whylen, 0, "%s is not an approver of %s: approvers are %s", approver, r->name, who);
	return false;
}

/* ---------------------------------------------------------------------- */
/* Requests */

/* Characters (UTF-8 code points) that say something: leading and trailing
 * blanks do not count, so "          " is no reason. */
static size_t reason_length(const char *s)
{
	const char *end;
	size_t n = 0;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
		end--;
	for (; s < end; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static int check_eligible(const struct sbx_policy *p, const struct sbx_role *r,
			  const char *user, char *why, size_t whylen)
{
	const char *via = NULL;

	if (!sbx_policy_user(p, user)) {
		(void)sbx_whyf(why, whylen, 0, "%s is not in the policy", user);
		return -1;
	}
	switch (sbx_policy_membership(p, r, user, &via)) {
	case SBX_MEMBER_ELIGIBLE:
		return 0;
	case SBX_MEMBER_STANDING:
		/* A grant would add nothing, and a second record of the same
		 * access only confuses the audit. */
		(void)sbx_whyf(why, whylen, 0, "%s already has %s (standing member%s%s): nothing to request",
		    user, r->name, via ? " via " : "", via ? via : "");
		return -1;
	case SBX_MEMBER_NONE:
		break;
	}
	(void)sbx_whyf(why, whylen, 0, "%s is not eligible for %s", user, r->name);
	return -1;
}

static int check_host(const struct sbx_policy *p, const struct sbx_role *r,
		      char *why, size_t whylen)
{
	char hosts[512];
	struct textbuf tb;

	if (r->matches_host || p->fleet_wide)
		return 0;
	tb_init(&tb, hosts, sizeof(hosts));
	for (size_t i = 0; i < r->hosts.n; i++)
		tb_add(&tb, "%s%s", i ? ", " : "", r->hosts.v[i]);
	(void)sbx_whyf(why, whylen, 0, "%s does not apply to this host (%s): its hosts are %s",
	    r->name, p->broker.host ? p->broker.host : "?", hosts);
	return -1;
}

static int check_duration(const struct sbx_role *r, int64_t *duration, char *why, size_t whylen)
{
	char max[32], asked[32];
	int64_t d = *duration ? *duration : r->default_duration;

	if (d < 0) {
		(void)sbx_whyf(why, whylen, 0, "a duration must be positive");
		return -1;
	}
	if (d > r->max_duration) {
		sbx_duration_format(r->max_duration, max, sizeof(max));
		sbx_duration_format(d, asked, sizeof(asked));
		(void)sbx_whyf(why, whylen, 0, "%s allows at most %s (asked %s)", r->name, max, asked);
		return -1;
	}
	*duration = d;
	return 0;
}

static int check_reason(const struct sbx_role *r, const char *reason, char *why, size_t whylen)
{
	if (!r->require_reason)
		return 0;
	if (reason && reason_length(reason) >= r->reason_min_length)
		return 0;
	(void)sbx_whyf(why, whylen, 0, "%s needs a reason (--reason) of at least %u characters", r->name,
	    r->reason_min_length);
	return -1;
}

static int check_ticket(const struct sbx_role *r, const char *ticket, char *why, size_t whylen)
{
	for (size_t i = 0; i < r->n_ticket_re; i++) {
		if (ticket && regexec(&r->ticket_re[i], ticket, 0, NULL, 0) == 0)
			continue;
		/* With no ticket at all, name every pattern at once rather
		 * than one per attempt. */
		if (!ticket && r->n_ticket_re == 2)
			(void)sbx_whyf(why, whylen, 0, "%s needs a ticket (--ticket) matching %s and %s", r->name,
			    r->ticket_pattern[0], r->ticket_pattern[1]);
		else
			(void)sbx_whyf(why, whylen, 0, "%s needs a ticket (--ticket) matching %s", r->name,
			    r->ticket_pattern[i]);
		return -1;
	}
	return 0;
}

int sbx_policy_check_request(const struct sbx_policy *p, const struct sbx_role *r,
			     const char *user, int64_t *duration,
			     const char *reason, const char *ticket,
			     char *why, size_t whylen)
{
	int64_t d;

	if (why && whylen)
		why[0] = '\0';
	if (!p || !r || !user || !duration) {
		(void)sbx_whyf(why, whylen, 0, "no such role or user");
		return -1;
	}
	d = *duration;
	if (check_eligible(p, r, user, why, whylen) < 0 || check_host(p, r, why, whylen) < 0 ||
	    check_duration(r, &d, why, whylen) < 0 || check_reason(r, reason, why, whylen) < 0 ||
	    check_ticket(r, ticket, why, whylen) < 0)
		return -1;
	*duration = d;
	return 0;
}
