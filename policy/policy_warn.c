/*
 * Warnings: a policy that loads but will not do what its author meant.
 *
 * Neither case is an error (a policy written for other hosts is valid, and
 * so is one whose group an admin means to migrate), but each leaves people
 * without the access the file seems to give, or with access sbx cannot
 * take away, and used to pass `policy check` silently.
 */
#include "policy.h"
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WARN_MAX 1024

static int warn_add(struct sbx_policy_errors *w, const struct sbx_policy *p, const char *msg)
{
	char clean[WARN_MAX];

	/* Host names and /etc/group's members are outside text: a check must
	 * not write escape sequences to a terminal. */
	sbx_sanitize(msg, clean, sizeof(clean));
	return sbx_policy_errors_add(w, p->path, clean);
}

/* Was pattern j of role i already listed by an earlier role or place? */
static bool listed_before(const struct sbx_policy *p, size_t i, size_t j)
{
	const char *h = p->roles[i].hosts.v[j];

	for (size_t a = 0; a <= i; a++)
		for (size_t b = 0; b < (a == i ? j : p->roles[a].hosts.n); b++)
			if (strcmp(p->roles[a].hosts.v[b], h) == 0)
				return true;
	return false;
}

/* "sbx-*, sbx-clinical-*": every role's host patterns, each once. */
static void all_hosts(const struct sbx_policy *p, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < p->n_roles && off < len; i++)
		for (size_t j = 0; j < p->roles[i].hosts.n && off < len; j++)
			if (!listed_before(p, i, j))
				off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
							p->roles[i].hosts.v[j]);
}

static int warn_host(const struct sbx_policy *p, struct sbx_policy_errors *w)
{
	char msg[WARN_MAX], hosts[512];

	for (size_t i = 0; i < p->n_roles; i++)
		if (p->roles[i].matches_host)
			return 0;
	if (p->n_roles == 0) {
		snprintf(msg, sizeof(msg),
			 "the policy has no roles: nobody can log in or ask for access through sbx "
			 "on %s until roles are written (see sbx-policy(5))", p->broker.host);
		return warn_add(w, p, msg) < 0 ? -ENOMEM : 1;
	}
	all_hosts(p, hosts, sizeof(hosts));
	snprintf(msg, sizeof(msg),
		 "no role applies to this host (%s): the roles' hosts are %s, so nobody can log "
		 "in through sbx here (set broker.host, or sbx-brokerd --host, to the name the "
		 "roles' hosts patterns are written for)", p->broker.host, hosts);
	return warn_add(w, p, msg) < 0 ? -ENOMEM : 1;
}

/* One line of a group(5) file split in place: name, gid and members.
 * False for a line that is not one (comments, NIS "+" lines, garbage). */
static bool group_line(char *line, const char **name, const char **gid, const char **members)
{
	char *f[4];
	char *s = line;

	line[strcspn(line, "\n")] = '\0';
	for (int i = 0; i < 3; i++) {
		f[i] = s;
		s = strchr(s, ':');
		if (!s)
			return false;
		*s++ = '\0';
	}
	f[3] = s;
	if (!f[0][0] || f[0][0] == '#' || f[0][0] == '+' || f[0][0] == '-')
		return false;
	*name = f[0];
	*gid = f[2];
	*members = f[3];
	return true;
}

static const struct sbx_role *role_with_group(const struct sbx_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_roles; i++)
		if (p->roles[i].unix_group && strcmp(p->roles[i].unix_group, name) == 0)
			return &p->roles[i];
	return NULL;
}

static int warn_group(const struct sbx_policy *p, const struct sbx_role *r, const char *gid,
		      const char *members, struct sbx_policy_errors *w)
{
	char msg[WARN_MAX];
	char *end = NULL;
	unsigned long g;
	bool other_gid;
	int n = 0;

	errno = 0;
	g = strtoul(gid, &end, 10);
	other_gid = errno == 0 && end != gid && *end == '\0' && g != r->gid;
	if (members[0]) {
		snprintf(msg, sizeof(msg),
			 "role '%s': unix group %s already exists in /etc/group with members %s: "
			 "they hold it whatever sbx grants, and sbx cannot take it away (remove "
			 "them from /etc/group, or give the role another group)", r->name,
			 r->unix_group, members);
		if (warn_add(w, p, msg) < 0)
			return -ENOMEM;
		n++;
	}
	if (other_gid) {
		snprintf(msg, sizeof(msg),
			 "role '%s': unix group %s has gid %lu in /etc/group, not the role's %u: "
			 "with files first in nsswitch.conf the name means gid %lu, which sbx "
			 "grants nobody (sudoers rules for %%%s do not see the grant)", r->name,
			 r->unix_group, g, r->gid, g, r->unix_group);
		if (warn_add(w, p, msg) < 0)
			return -ENOMEM;
		n++;
	}
	return n;
}

static int warn_groups(const struct sbx_policy *p, FILE *group_file, struct sbx_policy_errors *w)
{
	char *line = NULL;
	size_t cap = 0;
	int n = 0, rc;

	while (getline(&line, &cap, group_file) > 0) {
		const char *name, *gid, *members;
		const struct sbx_role *r;

		if (!group_line(line, &name, &gid, &members))
			continue;
		r = role_with_group(p, name);
		if (!r)
			continue;
		rc = warn_group(p, r, gid, members, w);
		if (rc < 0) {
			n = rc;
			break;
		}
		n += rc;
	}
	free(line);
	return n;
}

int sbx_policy_warnings(const struct sbx_policy *p, FILE *group_file,
			struct sbx_policy_errors *warn)
{
	int n, m = 0;

	n = warn_host(p, warn);
	if (n < 0)
		return n;
	if (group_file) {
		m = warn_groups(p, group_file, warn);
		if (m < 0)
			return m;
	}
	return n + m;
}

void sbx_policy_warnings_print(FILE *out, const struct sbx_policy_errors *w)
{
	for (size_t i = 0; i < w->n; i++)
		fprintf(out, "%s: warning: %s\n", w->file ? w->file : "(policy)", w->v[i].msg);
}
