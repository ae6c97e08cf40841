/* policy/policy_sudo.c and the roles' sudo: key: what a role's grants
 * cover and what needs a one-off approval each time. */
#include "policy.h"

#include <criterion/criterion.h>
#include <string.h>

static const char base[] =
	"broker: { host: sbx-01 }\n"
	"users: { erin: {}, frank: {} }\n"
	"roles:\n"
	"  admin:\n"
	"    hosts: [\"sbx-*\"]\n"
	"    unix_group: { name: sbx-admin, gid: 60001 }\n"
	"    eligible: { users: [erin] }\n"
	"    approvers: { users: [frank] }\n";

static int load(const char *extra, struct sbx_policy **p, struct sbx_policy_errors *e)
{
	char buf[4096];

	snprintf(buf, sizeof(buf), "%s%s", base, extra);
	return sbx_policy_load_buffer(buf, strlen(buf), "t.yaml", p, NULL, e);
}

Test(policy_sudo, rules_parse_and_decide)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };
	const struct sbx_role *r;
	const char *pat = NULL;

	cr_assert_eq(load("    sudo:\n"
			  "      allow: [\"/usr/bin/systemctl restart *\", \"/usr/bin/id*\"]\n"
			  "      approve_each: [\"/usr/bin/rm *\", \"/usr/sbin/reboot*\"]\n",
			  &p, &e), 0);
	r = sbx_policy_role(p, "admin");
	cr_assert_eq(r->sudo_allow.n, 2);
	cr_assert_eq(r->sudo_approve_each.n, 2);
	cr_assert_eq(sbx_policy_sudo_rule(r, "/usr/bin/systemctl restart nginx", &pat),
		     SBX_SUDO_ALLOWED);
	cr_assert_str_eq(pat, "/usr/bin/systemctl restart *");
	cr_assert_eq(sbx_policy_sudo_rule(r, "/usr/bin/id -u", NULL), SBX_SUDO_ALLOWED);
	cr_assert_eq(sbx_policy_sudo_rule(r, "/usr/bin/rm -rf /srv", &pat), SBX_SUDO_APPROVE_EACH);
	cr_assert_str_eq(pat, "/usr/bin/rm *");
	cr_assert_eq(sbx_policy_sudo_rule(r, "/usr/sbin/reboot", NULL), SBX_SUDO_APPROVE_EACH);
	cr_assert_eq(sbx_policy_sudo_rule(r, "/usr/bin/bash", &pat), SBX_SUDO_NOT_ALLOWED);
	cr_assert_null(pat);
	sbx_policy_free(p);
}

Test(policy_sudo, approve_each_alone_leaves_the_rest_free)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };
	const struct sbx_role *r;

	cr_assert_eq(load("    sudo: { approve_each: [\"/usr/sbin/reboot*\"] }\n", &p, &e), 0);
	r = sbx_policy_role(p, "admin");
	cr_assert_eq(sbx_policy_sudo_rule(r, "/usr/bin/anything", NULL), SBX_SUDO_FREE);
	cr_assert_eq(sbx_policy_sudo_rule(r, "/usr/sbin/reboot -f", NULL), SBX_SUDO_APPROVE_EACH);
	sbx_policy_free(p);
}

Test(policy_sudo, a_role_without_sudo_says_nothing)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };

	cr_assert_eq(load("", &p, &e), 0);
	cr_assert_eq(sbx_policy_sudo_rule(sbx_policy_role(p, "admin"), "/usr/bin/rm -rf /", NULL),
		     SBX_SUDO_FREE);
	sbx_policy_free(p);
}

Test(policy_sudo, bad_rules_are_errors_at_their_place)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };

	cr_assert_neq(load("    sudo: { allow: \"/usr/bin/id\" }\n", &p, &e), 0);
	cr_assert_geq(e.n, 1);
	cr_assert_not_null(strstr(e.v[0].msg, "command patterns"), "%s", e.v[0].msg);
	cr_assert_eq(e.v[0].line, 9);
	sbx_policy_errors_free(&e);
	cr_assert_neq(load("    sudo: { allow: [\"\"] }\n", &p, &e), 0);
	cr_assert_not_null(strstr(e.v[0].msg, "not a command pattern"), "%s", e.v[0].msg);
	sbx_policy_errors_free(&e);
	cr_assert_neq(load("    sudo: { deny: [\"/x\"] }\n", &p, &e), 0);
	sbx_policy_errors_free(&e);
	cr_assert(!sbx_policy_sudo_pattern_ok("a\tb"));
	cr_assert(sbx_policy_sudo_pattern_ok("/usr/bin/rm *"));
}
