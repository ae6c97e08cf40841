/*
 * The directory: section and the merge of directory users and groups into
 * a policy: every key and its defaults, every error at its line:col,
 * revoke_on_ineligible, and what a merged policy answers (memberships,
 * managers, Slack ids, "ldap group" explanations, conflicts with the file,
 * drift between two reads, dropping the directory part).  No LDAP server
 * here: the directory's answers are built by hand
 * (tests/integration/ldap_*.sh read a real slapd).
 */
#include "policy.h"
#include "policy_directory.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The reference policy's rules, its people left to the directory. */
#define POLICY_HEAD                                                            \
	"broker: { host: sbx-01 }\n"                                           \
	"profiles:\n"                                                          \
	"  standard: { max_duration: 8h, require_reason: true }\n"             \
	"roles:\n"                                                             \
	"  sandbox-user:\n"                                                    \
	"    hosts: [\"sbx-*\"]\n"                                             \
	"    standing: { groups: [developers] }\n"                             \
	"  sandbox-admin:\n"                                                   \
	"    profile: standard\n"                                              \
	"    hosts: [\"sbx-*\"]\n"                                             \
	"    eligible: { groups: [sre], users: [dave] }\n"                     \
	"    approvers: { manager: true, groups: [security-leads] }\n"         \
	"    max_duration: 2h\n"                                               \
	"    revoke_on_ineligible: true\n"                                     \
	"  sandbox-readonly:\n"                                                \
	"    hosts: [\"sbx-*\"]\n"                                             \
	"    eligible: { groups: [developers] }\n"                             \
	"    auto_approve: true\n"

/* For the section's own keys: a policy that names nobody. */
#define CONF_HEAD "roles:\n  r: { hosts: [\"*\"] }\n"

#define DIRECTORY_MIN                                                          \
	"directory:\n"                                                         \
	"  uri: ldap://127.0.0.1:3890\n"                                       \
	"  base: dc=example,dc=org\n"

/* ---------------------------------------------------------------------- */
/* Helpers */

/* The settings of the last policy load_ok() loaded. */
static struct sbx_settings S;

static struct sbx_policy *load_ok(const char *yaml)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };
	int rc = sbx_policy_load_buffer(yaml, strlen(yaml), "t.yaml", &p, &S, &e);

	if (rc != 0)
		sbx_policy_errors_print(stderr, &e);
	cr_assert_eq(rc, 0, "policy should load");
	cr_assert_not_null(p);
	sbx_policy_errors_free(&e);
	return p;
}

/* Loading fails with an error at line:col (col 0: any) that contains sub. */
static void load_fails_at(const char *yaml, int line, int col, const char *sub)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };
	bool found = false;

	cr_assert_neq(sbx_policy_load_buffer(yaml, strlen(yaml), "t.yaml", &p, NULL, &e), 0,
		      "policy should not load (expected '%s')", sub);
	cr_assert_null(p);
	for (size_t i = 0; i < e.n; i++)
		if (e.v[i].line == line && (!col || e.v[i].col == col) && strstr(e.v[i].msg, sub))
			found = true;
	if (!found)
		sbx_policy_errors_print(stderr, &e);
	cr_assert(found, "no error at %d:%d saying '%s'", line, col, sub);
	sbx_policy_errors_free(&e);
}

static char *xstrdup(const char *s)
{
	char *d = s ? strdup(s) : NULL;

	cr_assert(!s || d);
	return d;
}

/* A directory read: users "name:manager:email:slack" ("" = none) and
 * groups "name=a,b,c". */
static struct sbx_directory_data *data_of(const char *const *users, const char *const *groups)
{
	struct sbx_directory_data *d = calloc(1, sizeof(*d));
	size_t nu = 0, ng = 0;

	cr_assert_not_null(d);
	while (users && users[nu])
		nu++;
	while (groups && groups[ng])
		ng++;
	d->users = calloc(nu + 1, sizeof(*d->users));
	d->groups = calloc(ng + 1, sizeof(*d->groups));
	cr_assert(d->users && d->groups);
	for (size_t i = 0; i < nu; i++) {
		char *spec = xstrdup(users[i]), *f[4] = { NULL }, *save = NULL, *s = spec;

		for (int k = 0; k < 4; k++) {
			char *colon = strchr(s, ':');

			if (colon)
				*colon = '\0';
			f[k] = s;
			s = colon ? colon + 1 : s + strlen(s);
		}
		(void)save;
		d->users[i].name = xstrdup(f[0]);
		d->users[i].manager = f[1][0] ? xstrdup(f[1]) : NULL;
		d->users[i].email = f[2][0] ? xstrdup(f[2]) : NULL;
		d->users[i].slack_id = f[3][0] ? xstrdup(f[3]) : NULL;
		free(spec);
	}
	d->n_users = nu;
	for (size_t i = 0; i < ng; i++) {
		char *spec = xstrdup(groups[i]), *eq = strchr(spec, '='), *m, *save = NULL;
		struct sbx_group *g = &d->groups[i];

		cr_assert_not_null(eq);
		*eq = '\0';
		g->name = xstrdup(spec);
		g->members.v = calloc(16, sizeof(char *));
		cr_assert_not_null(g->members.v);
		for (m = strtok_r(eq + 1, ",", &save); m; m = strtok_r(NULL, ",", &save))
			g->members.v[g->members.n++] = xstrdup(m);
		free(spec);
	}
	d->n_groups = ng;
	d->fingerprint = sbx_directory_data_fingerprint(d);
	return d;
}

static const char *const ref_users[] = {
	"alice:bob:alice@example.org:U0ALICE", "carol:bob:carol@example.org:", "dave:bob::",
	"erin:frank::", "bob::bob@example.org:U0BOB", "frank:::U0FRANK", "grace:::U0GRACE",
	NULL,
};
static const char *const ref_groups[] = {
	"developers=alice,carol,dave", "sre=alice,erin", "security-leads=frank,grace", NULL,
};

static struct sbx_policy *merged_reference(void)
{
	struct sbx_policy *p = load_ok(POLICY_HEAD DIRECTORY_MIN);
	struct sbx_directory_data *d = data_of(ref_users, ref_groups);

	cr_assert_eq(sbx_policy_merge_directory(&p, d, NULL), 0);
	sbx_directory_data_free(d);
	return p;
}

/* ---------------------------------------------------------------------- */
/* The section */

Test(directory_conf, every_key)
{
	struct sbx_policy *p = load_ok(
		CONF_HEAD
		"directory:\n"
		"  uri: [ldaps://ldap1.example.org, \"ldap://ldap2.example.org:389\", "
		"ldapi://%2Frun%2Fslapd%2Fldapi]\n"
		"  start_tls: false\n"
		"  base: dc=example,dc=org\n"
		"  bind_dn: cn=sbx,ou=services,dc=example,dc=org\n"
		"  bind_password_file: /etc/sbx/ldap.pw\n"
		"  tls_ca_file: /etc/ssl/certs/ldap-ca.pem\n"
		"  user_search: { base: \"ou=people,dc=example,dc=org\", filter: "
		"\"(&(objectClass=inetOrgPerson)(!(loginDisabled=TRUE)))\" }\n"
		"  group_search: { base: \"ou=groups,dc=example,dc=org\", filter: "
		"\"(objectClass=groupOfNames)\" }\n"
		"  attributes: { uid: sAMAccountName, mail: mail, manager: manager, slack_id: "
		"slackUserId, group_name: cn, member: member, member_uid: memberUid }\n"
		"  timeout: 3s\n"
		"  cache_ttl: 2m\n"
		"  max_stale: 2h\n");
	const struct sbx_directory_conf *c = &S.directory;

	cr_assert(c->enabled);
	cr_assert_eq(c->n_uri, 3);
	cr_assert_str_eq(c->uri[0], "ldaps://ldap1.example.org");
	cr_assert_str_eq(c->uri[1], "ldap://ldap2.example.org:389");
	cr_assert_str_eq(c->uri[2], "ldapi://%2Frun%2Fslapd%2Fldapi");
	cr_assert_not(c->start_tls);
	cr_assert_str_eq(c->base, "dc=example,dc=org");
	cr_assert_str_eq(c->bind_dn, "cn=sbx,ou=services,dc=example,dc=org");
	cr_assert_str_eq(c->bind_password_file, "/etc/sbx/ldap.pw");
	cr_assert_str_eq(c->tls_ca_file, "/etc/ssl/certs/ldap-ca.pem");
	cr_assert_str_eq(c->user_base, "ou=people,dc=example,dc=org");
	cr_assert_str_eq(c->user_filter, "(&(objectClass=inetOrgPerson)(!(loginDisabled=TRUE)))");
	cr_assert_str_eq(c->group_base, "ou=groups,dc=example,dc=org");
	cr_assert_str_eq(c->group_filter, "(objectClass=groupOfNames)");
	cr_assert_str_eq(c->attr_uid, "sAMAccountName");
	cr_assert_str_eq(c->attr_slack_id, "slackUserId");
	cr_assert_str_eq(c->attr_member_uid, "memberUid");
	cr_assert_eq(c->timeout, 3);
	cr_assert_eq(c->cache_ttl, 120);
	cr_assert_eq(c->max_stale, 7200);
	sbx_policy_free(p);
}

Test(directory_conf, defaults)
{
	struct sbx_policy *p = load_ok(CONF_HEAD DIRECTORY_MIN);
	const struct sbx_directory_conf *c = &S.directory;

	cr_assert(c->enabled);
	cr_assert_eq(c->n_uri, 1);
	cr_assert(c->start_tls, "StartTLS is on unless turned off");
	cr_assert_str_eq(c->bind_dn, "", "anonymous by default");
	cr_assert_str_eq(c->user_base, "dc=example,dc=org");
	cr_assert_str_eq(c->group_base, "dc=example,dc=org");
	cr_assert_str_eq(c->user_filter, "(uid=*)");
	cr_assert_str_eq(c->group_filter, "(|(objectClass=groupOfNames)(objectClass=posixGroup))");
	cr_assert_str_eq(c->attr_uid, "uid");
	cr_assert_str_eq(c->attr_mail, "mail");
	cr_assert_str_eq(c->attr_manager, "manager");
	cr_assert_str_eq(c->attr_slack_id, "", "no Slack id unless an attribute is named");
	cr_assert_str_eq(c->attr_group_name, "cn");
	cr_assert_str_eq(c->attr_member, "member");
	cr_assert_str_eq(c->attr_member_uid, "memberUid");
	cr_assert_eq(c->timeout, 5);
	cr_assert_eq(c->cache_ttl, 300);
	cr_assert_eq(c->max_stale, 3600);
	sbx_policy_free(p);
}

Test(directory_conf, user_filter_follows_the_uid_attribute)
{
	struct sbx_policy *p = load_ok(CONF_HEAD DIRECTORY_MIN
				       "  attributes: { uid: sAMAccountName }\n");

	cr_assert_str_eq(S.directory.user_filter, "(sAMAccountName=*)");
	sbx_policy_free(p);
}

Test(directory_conf, absent_section)
{
	struct sbx_policy *p = load_ok(POLICY_HEAD "groups: { developers: [], sre: [], "
				       "security-leads: [] }\nusers: { dave: {} }\n");

	cr_assert_not(S.directory.enabled);
	cr_assert_not(sbx_policy_names_from_directory(p));
	sbx_policy_free(p);
}

Test(directory_conf, needs_uri_and_base)
{
	load_fails_at(CONF_HEAD "directory:\n  base: dc=example,dc=org\n", 4, 3,
		      "directory needs uri");
	load_fails_at(CONF_HEAD "directory:\n  uri: ldap://h\n", 4, 3, "directory needs base");
}

Test(directory_conf, bad_values)
{
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  uri2: x\n", 6, 3, "unknown key 'uri2' in directory");
	load_fails_at(CONF_HEAD "directory:\n  uri: http://h\n  base: dc=x\n", 4, 8,
		      "must start with ldap:// (StartTLS), ldaps:// or ldapi://");
	load_fails_at(CONF_HEAD "directory:\n  uri: [ldap://a, ldap://b, ldap://c, ldap://d, "
		      "ldap://e]\n  base: dc=x\n", 4, 0, "at most 4 servers");
	load_fails_at(CONF_HEAD "directory:\n  uri: []\n  base: dc=x\n", 4, 8,
		      "at least one server");
	load_fails_at(CONF_HEAD "directory:\n  uri: ldap://h\n  base: example.org\n", 5, 9,
		      "must be a distinguished name");
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  user_search: { filter: \"(uid=*\" }\n", 6, 26,
		      "balanced parentheses");
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  group_search: { filter: \"(cn=a)(cn=b)\" }\n",
		      6, 0, "balanced parentheses");
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  user_search: { filter: \"uid=*\" }\n", 6, 0,
		      "an LDAP filter in parentheses");
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  tls_ca_file: ca.pem\n", 6, 16,
		      "tls_ca_file must be an absolute path");
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  attributes: { uid: \"u id\" }\n", 6, 0,
		      "is not an LDAP attribute name");
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  timeout: 5\n", 6, 12, "missing unit");
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  start_tls: maybe\n", 6, 14, "true or false");
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  attributes: { phone: x }\n", 6, 0,
		      "unknown key 'phone' in attributes");
}

Test(directory_conf, bind_dn_and_password_file_go_together)
{
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  bind_dn: cn=sbx,dc=example,dc=org\n", 4, 3,
		      "bind_dn needs bind_password_file");
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  bind_password_file: /etc/sbx/pw\n", 4, 3,
		      "bind_password_file needs bind_dn");
}

Test(directory_conf, max_stale_not_shorter_than_cache_ttl)
{
	load_fails_at(CONF_HEAD DIRECTORY_MIN "  cache_ttl: 10m\n  max_stale: 5m\n", 4, 3,
		      "max_stale 5m is shorter than cache_ttl 10m");
}

Test(directory_conf, long_cache_ttl_raises_the_default_max_stale)
{
	struct sbx_policy *p = load_ok(CONF_HEAD DIRECTORY_MIN "  cache_ttl: 2h\n");

	cr_assert_eq(S.directory.max_stale, 7200);
	sbx_policy_free(p);
}

/* ---------------------------------------------------------------------- */
/* Names only the directory defines */

Test(directory_names, the_file_may_name_directory_groups_and_users)
{
	/* developers, sre, security-leads and dave are nowhere in the file. */
	struct sbx_policy *p = load_ok(POLICY_HEAD DIRECTORY_MIN);

	cr_assert(sbx_policy_names_from_directory(p));
	cr_assert_null(sbx_policy_group(p, "developers"));
	cr_assert_eq(p->n_users, 0);
	sbx_policy_free(p);
}

Test(directory_names, without_a_directory_they_are_errors)
{
	load_fails_at(POLICY_HEAD, 7, 26, "unknown group 'developers'");
}

/* ---------------------------------------------------------------------- */
/* revoke_on_ineligible */

Test(revoke_on_ineligible, marks_its_role_only)
{
	/* A role key of its own: no directory: section needed to read it. */
	struct sbx_policy *p = load_ok(POLICY_HEAD "groups: { developers: [], sre: [], "
				       "security-leads: [] }\nusers: { dave: {} }\n");

	cr_assert(sbx_policy_role(p, "sandbox-admin")->revoke_on_ineligible);
	cr_assert_not(sbx_policy_role(p, "sandbox-user")->revoke_on_ineligible);
	cr_assert_not(sbx_policy_role(p, "sandbox-readonly")->revoke_on_ineligible);
	sbx_policy_free(p);
}

Test(revoke_on_ineligible, false_and_absent_are_the_same)
{
	struct sbx_policy *p = load_ok(
		"roles:\n"
		"  a: { hosts: [\"*\"], revoke_on_ineligible: false }\n"
		"  b: { hosts: [\"*\"] }\n"
		"  c: { hosts: [\"*\"], revoke_on_ineligible: yes }\n");

	cr_assert_not(sbx_policy_role(p, "a")->revoke_on_ineligible);
	cr_assert_not(sbx_policy_role(p, "b")->revoke_on_ineligible);
	cr_assert(sbx_policy_role(p, "c")->revoke_on_ineligible);
	sbx_policy_free(p);
}

Test(revoke_on_ineligible, must_be_a_boolean)
{
	load_fails_at("roles:\n  a: { hosts: [\"*\"], revoke_on_ineligible: sometimes }\n", 2, 44,
		      "revoke_on_ineligible must be true or false");
	load_fails_at("roles:\n  a:\n    hosts: [\"*\"]\n    revoke_on_ineligible: true\n"
		      "    revoke_on_ineligible: true\n", 5, 5, "duplicate key");
}

Test(revoke_on_ineligible, survives_a_merge)
{
	struct sbx_policy *p = merged_reference();

	cr_assert(sbx_policy_role(p, "sandbox-admin")->revoke_on_ineligible);
	sbx_policy_free(p);
}

/* ---------------------------------------------------------------------- */
/* Merging */

Test(merge, directory_people_answer_like_file_people)
{
	struct sbx_policy *p = merged_reference();
	const struct sbx_role *user = sbx_policy_role(p, "sandbox-user");
	const struct sbx_role *admin = sbx_policy_role(p, "sandbox-admin");
	const struct sbx_user *alice = sbx_policy_user(p, "alice");
	const char *via = NULL;
	char why[512];
	int64_t d = 0;

	cr_assert_eq(p->n_users, 7);
	cr_assert_eq(p->n_groups, 3);
	cr_assert_eq(p->n_dir_users, 7);
	cr_assert_eq(p->n_dir_groups, 3);
	cr_assert_not_null(alice);
	cr_assert_str_eq(alice->manager, "bob");
	cr_assert_str_eq(alice->email, "alice@example.org");
	cr_assert_str_eq(alice->slack_id, "U0ALICE");
	cr_assert_null(sbx_policy_user(p, "frank")->manager);
	/* alice, carol, dave log in; erin only with a grant; bob never. */
	cr_assert_eq(sbx_policy_standing_login(p, "alice", &via), user);
	cr_assert_str_eq(via, "developers");
	cr_assert_not_null(sbx_policy_standing_login(p, "carol", NULL));
	cr_assert_not_null(sbx_policy_standing_login(p, "dave", NULL));
	cr_assert_null(sbx_policy_standing_login(p, "erin", NULL));
	cr_assert_null(sbx_policy_standing_login(p, "bob", NULL));
	cr_assert_eq(sbx_policy_membership(p, admin, "erin", &via), SBX_MEMBER_ELIGIBLE);
	cr_assert_str_eq(via, "sre");
	cr_assert_eq(sbx_policy_membership(p, admin, "dave", &via), SBX_MEMBER_ELIGIBLE);
	cr_assert_null(via, "dave is eligible by name in the file");
	/* The manager from the directory approves; others may not. */
	cr_assert(sbx_policy_may_approve(p, admin, "erin", "frank", why, sizeof(why)));
	cr_assert(sbx_policy_may_approve(p, admin, "alice", "bob", why, sizeof(why)));
	cr_assert_str_eq(why, "manager of alice");
	cr_assert(sbx_policy_may_approve(p, admin, "erin", "grace", why, sizeof(why)));
	cr_assert_not(sbx_policy_may_approve(p, admin, "erin", "carol", why, sizeof(why)));
	cr_assert(strstr(why, "erin's manager (frank)"), "%s", why);
	cr_assert_eq(sbx_policy_check_request(p, admin, "erin", &d, "rotate the sandbox keys",
					      NULL, why, sizeof(why)), 0, "%s", why);
	sbx_policy_free(p);
}

Test(merge, explanations_name_directory_groups)
{
	struct sbx_policy *p = load_ok(POLICY_HEAD DIRECTORY_MIN
				       "groups: { ops: [dave] }\nusers: { dave: {} }\n");
	struct sbx_directory_data *d = data_of(ref_users + 1, ref_groups);
	char buf[128];

	cr_assert_eq(sbx_policy_merge_directory(&p, d, NULL), 0);
	cr_assert(sbx_policy_group_from_directory(p, "developers"));
	cr_assert_not(sbx_policy_group_from_directory(p, "ops"));
	cr_assert_not(sbx_policy_group_from_directory(p, "nosuch"));
	cr_assert(sbx_policy_user_from_directory(p, "carol"));
	cr_assert_not(sbx_policy_user_from_directory(p, "dave"), "dave is the file's");
	cr_assert_str_eq(sbx_policy_via_text(p, "developers", buf, sizeof(buf)),
			 "ldap group developers");
	cr_assert_str_eq(sbx_policy_via_text(p, "ops", buf, sizeof(buf)), "ops");
	cr_assert_str_eq(sbx_policy_via_text(p, NULL, buf, sizeof(buf)), "listed by name");
	sbx_directory_data_free(d);
	sbx_policy_free(p);
}

struct seen {
	char lines[32][160];
	size_t n;
};

static void note_conflict(const char *kind, const char *name, void *ctx)
{
	struct seen *s = ctx;

	cr_assert_lt(s->n, 32);
	snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s %s", kind, name);
}

static const char *how(enum sbx_membership m)
{
	return m == SBX_MEMBER_STANDING ? "standing" : m == SBX_MEMBER_ELIGIBLE ? "eligible"
										: "none";
}

static void note_drift(const char *user, const struct sbx_role *r, enum sbx_membership before,
		       enum sbx_membership after, const char *group, void *ctx)
{
	struct seen *s = ctx;

	cr_assert_lt(s->n, 32);
	snprintf(s->lines[s->n++], sizeof(s->lines[0]), "%s %s %s->%s %s", user, r->name,
		 how(before), how(after), group ? group : "-");
}

Test(merge, the_file_wins_a_conflict)
{
	struct sbx_policy *p = load_ok(POLICY_HEAD DIRECTORY_MIN
				       "users: { grace: { email: grace@file.example } }\n"
				       "groups: { security-leads: [grace] }\n");
	struct sbx_directory_data *d = data_of(ref_users, ref_groups);
	struct seen s = { .n = 0 };
	struct sbx_dir_merge_cb cb = { .conflict = note_conflict, .ctx = &s };

	cr_assert_eq(sbx_policy_merge_directory(&p, d, &cb), 0);
	cr_assert_eq(s.n, 2);
	cr_assert_str_eq(s.lines[0], "user grace");
	cr_assert_str_eq(s.lines[1], "group security-leads");
	cr_assert_str_eq(sbx_policy_user(p, "grace")->email, "grace@file.example");
	cr_assert_null(sbx_policy_user(p, "grace")->slack_id);
	cr_assert_not(sbx_policy_in_group(p, "security-leads", "frank"),
		      "the file's security-leads has only grace");
	cr_assert_eq(p->n_dir_users, 6);
	cr_assert_eq(p->n_dir_groups, 2);
	sbx_directory_data_free(d);
	sbx_policy_free(p);
}

Test(merge, drift_between_two_reads)
{
	struct sbx_policy *p = merged_reference();
	static const char *const groups2[] = {
		"developers=alice,carol,dave,erin", "sre=erin", "security-leads=frank,grace", NULL,
	};
	struct sbx_directory_data *d = data_of(ref_users, groups2);
	struct seen s = { .n = 0 };
	struct sbx_dir_merge_cb cb = { .drift = note_drift, .ctx = &s };

	cr_assert_eq(sbx_policy_merge_directory(&p, d, &cb), 0);
	for (size_t i = 0; i < s.n; i++)
		fprintf(stderr, "drift: %s\n", s.lines[i]);
	cr_assert_eq(s.n, 3);
	cr_assert_str_eq(s.lines[0], "alice sandbox-admin eligible->none sre");
	cr_assert_str_eq(s.lines[1], "erin sandbox-user none->standing developers");
	cr_assert_str_eq(s.lines[2], "erin sandbox-readonly none->eligible developers");
	cr_assert_not_null(sbx_policy_standing_login(p, "erin", NULL));
	sbx_directory_data_free(d);
	sbx_policy_free(p);
}

Test(merge, no_drift_when_nothing_changed)
{
	struct sbx_policy *p = merged_reference();
	struct sbx_directory_data *d = data_of(ref_users, ref_groups);
	struct seen s = { .n = 0 };
	struct sbx_dir_merge_cb cb = { .conflict = note_conflict, .drift = note_drift, .ctx = &s };

	cr_assert_eq(sbx_policy_merge_directory(&p, d, &cb), 0);
	cr_assert_eq(s.n, 0);
	sbx_directory_data_free(d);
	sbx_policy_free(p);
}

Test(merge, a_removed_group_is_drift_for_its_members)
{
	struct sbx_policy *p = merged_reference();
	static const char *const groups2[] = { "sre=alice,erin", "security-leads=frank,grace",
					       NULL };
	struct sbx_directory_data *d = data_of(ref_users, groups2);
	struct seen s = { .n = 0 };
	struct sbx_dir_merge_cb cb = { .drift = note_drift, .ctx = &s };

	cr_assert_eq(sbx_policy_merge_directory(&p, d, &cb), 0);
	/* alice, carol, dave lose sandbox-user and sandbox-readonly; dave
	 * stays eligible for sandbox-admin by name. */
	cr_assert_eq(s.n, 6);
	cr_assert_str_eq(s.lines[0], "alice sandbox-user standing->none developers");
	cr_assert_str_eq(s.lines[5], "dave sandbox-readonly eligible->none developers");
	sbx_directory_data_free(d);
	sbx_policy_free(p);
}

Test(merge, dropping_keeps_the_file)
{
	struct sbx_policy *p = load_ok(POLICY_HEAD DIRECTORY_MIN
				       "users: { dave: { email: dave@file.example } }\n");
	struct sbx_directory_data *d = data_of(ref_users, ref_groups);
	const struct sbx_role *roles;

	cr_assert_eq(sbx_policy_merge_directory(&p, d, NULL), 0);
	roles = p->roles;
	cr_assert_eq(p->n_users, 7);
	cr_assert_eq(sbx_policy_merge_directory(&p, NULL, NULL), 0);
	cr_assert_eq(p->n_users, 1);
	cr_assert_eq(p->n_groups, 0);
	cr_assert_eq(p->n_dir_users, 0);
	cr_assert_str_eq(sbx_policy_user(p, "dave")->email, "dave@file.example");
	cr_assert_null(sbx_policy_user(p, "alice"));
	cr_assert_null(sbx_policy_standing_login(p, "alice", NULL));
	cr_assert_eq(p->roles, roles, "the file's part moves, it is not copied");
	cr_assert_str_eq(p->broker.host, "sbx-01");
	cr_assert_eq(sbx_policy_role(p, "sandbox-admin"), &p->roles[1]);
	sbx_directory_data_free(d);
	sbx_policy_free(p);
}

Test(merge, many_times)
{
	struct sbx_policy *p = load_ok(POLICY_HEAD DIRECTORY_MIN);
	struct sbx_directory_data *a = data_of(ref_users, ref_groups);
	static const char *const groups2[] = { "developers=erin", NULL };
	struct sbx_directory_data *b = data_of(ref_users, groups2);

	for (int i = 0; i < 200; i++) {
		cr_assert_eq(sbx_policy_merge_directory(&p, i % 2 ? a : b, NULL), 0);
		cr_assert_eq(sbx_policy_standing_login(p, "erin", NULL) != NULL, i % 2 == 0);
	}
	sbx_directory_data_free(a);
	sbx_directory_data_free(b);
	sbx_policy_free(p);
}

static void keep_shell(struct sbx_policy *shell, void *ctx)
{
	*(struct sbx_policy **)ctx = shell;
}

Test(merge, retire_gets_the_old_struct)
{
	struct sbx_policy *p = load_ok(POLICY_HEAD DIRECTORY_MIN), *before = p, *shell = NULL;
	struct sbx_directory_data *d = data_of(ref_users, ref_groups);
	struct sbx_dir_merge_cb cb = { .ctx = &shell, .retire = keep_shell };

	cr_assert_eq(sbx_policy_merge_directory(&p, d, &cb), 0);
	cr_assert_eq(shell, before, "the old struct is handed over, not freed");
	cr_assert_neq(p, before);
	free(shell); /* all that is left of it */
	sbx_directory_data_free(d);
	sbx_policy_free(p);
}

/* ---------------------------------------------------------------------- */
/* Fingerprints */

Test(fingerprint, ignores_order_sees_changes)
{
	static const char *const users_rev[] = { "grace:::U0GRACE", "frank:::U0FRANK",
						 "bob::bob@example.org:U0BOB", "erin:frank::",
						 "dave:bob::", "carol:bob:carol@example.org:",
						 "alice:bob:alice@example.org:U0ALICE", NULL };
	static const char *const groups_rev[] = { "security-leads=grace,frank", "sre=erin,alice",
						  "developers=dave,carol,alice", NULL };
	static const char *const groups_moved[] = { "developers=alice,carol,erin",
						    "sre=alice,dave",
						    "security-leads=frank,grace", NULL };
	static const char *const users_mgr[] = {
		"alice:carol:alice@example.org:U0ALICE", "carol:bob:carol@example.org:", "dave:bob::",
		"erin:frank::", "bob::bob@example.org:U0BOB", "frank:::U0FRANK", "grace:::U0GRACE",
		NULL,
	};
	struct sbx_directory_data *a = data_of(ref_users, ref_groups);
	struct sbx_directory_data *b = data_of(users_rev, groups_rev);
	struct sbx_directory_data *c = data_of(ref_users, groups_moved);
	struct sbx_directory_data *m = data_of(users_mgr, ref_groups);

	cr_assert_eq(a->fingerprint, b->fingerprint);
	cr_assert_neq(a->fingerprint, c->fingerprint, "dave and erin swapped groups");
	cr_assert_neq(a->fingerprint, m->fingerprint, "alice's manager changed");
	sbx_directory_data_free(a);
	sbx_directory_data_free(b);
	sbx_directory_data_free(c);
	sbx_directory_data_free(m);
}

/* ---------------------------------------------------------------------- */
/* policy check --online: what only the directory can tell */

Test(check_directory, a_directory_that_agrees_is_fine)
{
	struct sbx_policy *p = load_ok(POLICY_HEAD DIRECTORY_MIN);
	struct sbx_directory_data *d = data_of(ref_users, ref_groups);
	char err[1024] = "x";

	cr_assert_eq(sbx_policy_check_directory(p, d, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(err, "");
	sbx_directory_data_free(d);
	sbx_policy_free(p);
}

Test(check_directory, names_defined_twice_or_nowhere)
{
	struct sbx_policy *p = load_ok(POLICY_HEAD DIRECTORY_MIN
				       "users: { alice: {}, zed: { manager: nobody } }\n");
	struct sbx_directory_data *d = data_of(ref_users, ref_groups);
	char err[2048];

	cr_assert_eq(sbx_policy_check_directory(p, d, err, sizeof(err)), -1);
	cr_assert(strstr(err, "user 'alice' is defined both in the policy file and in the "
			      "directory"), "%s", err);
	cr_assert(strstr(err, "user 'zed' has manager 'nobody', whom neither the policy file nor "
			      "the directory defines"), "%s", err);
	sbx_directory_data_free(d);
	sbx_policy_free(p);
}
