/*
 * The policy: the reference file loads and means what docs/policy.md says;
 * every class of error is reported at the right line:col; the questions
 * the broker asks get the right answers and the messages people read.
 */
#include "policy.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define REFERENCE SBX_TEST_SRCDIR "/packaging/examples/policy.yaml"
#define FIXTURES SBX_TEST_SRCDIR "/tests/data/policies"

/* ---------------------------------------------------------------------- */
/* Helpers */

static void dump_errors(const struct sbx_policy_errors *e)
{
	sbx_policy_errors_print(stderr, e);
}

static struct sbx_policy *load_ok_buf(const char *yaml)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };
	int rc = sbx_policy_load_buffer(yaml, strlen(yaml), "t.yaml", &p, NULL, &e);

	if (rc != 0)
		dump_errors(&e);
	cr_assert_eq(rc, 0, "policy should load");
	cr_assert_eq(e.n, 0);
	cr_assert_not_null(p);
	sbx_policy_errors_free(&e);
	return p;
}

static struct sbx_policy *load_reference(void)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };
	int rc = sbx_policy_load_file(REFERENCE, &p, NULL, &e);

	if (rc != 0)
		dump_errors(&e);
	cr_assert_eq(rc, 0, "the reference policy must load");
	cr_assert_eq(e.n, 0);
	sbx_policy_errors_free(&e);
	return p;
}

/* The reference policy as text, with one substring replaced. */
static char *reference_with(const char *from, const char *to)
{
	FILE *f = fopen(REFERENCE, "re");
	char buf[8192], *out, *at;
	size_t n;

	cr_assert_not_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	at = strstr(buf, from);
	cr_assert_not_null(at, "reference has no '%s'", from);
	out = malloc(n + strlen(to) + 1);
	cr_assert_not_null(out);
	memcpy(out, buf, (size_t)(at - buf));
	strcpy(out + (at - buf), to);
	strcat(out, at + strlen(from));
	return out;
}

/* The reference policy with one substring replaced, loaded. */
static struct sbx_policy *reference_with_loaded(const char *from, const char *to)
{
	char *text = reference_with(from, to);
	struct sbx_policy *p = load_ok_buf(text);

	free(text);
	return p;
}

/* Loading yaml fails, and one of the errors is at line:col and says sub. */
static void expect_error_n(const char *yaml, int line, int col, const char *sub, size_t n_expected)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };
	int rc = sbx_policy_load_buffer(yaml, strlen(yaml), "t.yaml", &p, NULL, &e);
	bool found = false;

	cr_assert_eq(rc, -1, "policy should be rejected:\n%s", yaml);
	cr_assert_null(p);
	cr_assert_str_eq(e.file, "t.yaml");
	for (size_t i = 0; i < e.n; i++)
		if (e.v[i].line == line && e.v[i].col == col && strstr(e.v[i].msg, sub))
			found = true;
	if (!found || (n_expected && e.n != n_expected))
		dump_errors(&e);
	cr_assert(found, "no error at %d:%d containing \"%s\"", line, col, sub);
	if (n_expected)
		cr_assert_eq(e.n, n_expected, "expected %zu errors, got %zu", n_expected, e.n);
	sbx_policy_errors_free(&e);
}

/* Most error tests expect exactly that one error. */
static void expect_error(const char *yaml, int line, int col, const char *sub)
{
	expect_error_n(yaml, line, col, sub, 1);
}

/* Ten lines every error test builds on; roles start on line 11. */
#define BASE                                                                    \
	"broker:\n"                                                             \
	"  host: sbx-01\n"                                                      \
	"users:\n"                                                              \
	"  alice: { manager: bob }\n"                                           \
	"  bob: {}\n"                                                           \
	"groups:\n"                                                             \
	"  devs: [alice]\n"                                                     \
	"profiles:\n"                                                           \
	"  strict: { max_duration: 4h, approvals: 2, require_reason: true, "     \
	"reason_min_length: 20, review_every: 30d }\n"                          \
	"roles:\n"
/* A role under strict that is valid as it stands (line 11 is its name). */
#define STRICT_ROLE                                                             \
	"  r:\n"                                                                \
	"    profile: strict\n"                                                 \
	"    hosts: [\"sbx-*\"]\n"                                              \
	"    approvers: { users: [bob] }\n"

/* ---------------------------------------------------------------------- */
/* The reference policy */

Test(reference, loads_with_broker_settings)
{
	struct sbx_policy *p = load_reference();

	cr_assert_str_eq(p->path, REFERENCE);
	cr_assert_eq(strlen(p->sha256_hex), 64);
	cr_assert_eq(strspn(p->sha256_hex, "0123456789abcdef"), 64);
	cr_assert_str_eq(p->broker.host, "sbx-01");
	cr_assert_str_eq(p->broker.socket, "/run/sbx/broker.sock");
	cr_assert_str_eq(p->broker.state_dir, "/var/lib/sbx");
	cr_assert_str_eq(p->broker.admin_group, "sbx-admins");
	cr_assert_eq(p->broker.request_ttl, 24 * 3600);
	cr_assert_eq(p->n_profiles, 2);
	cr_assert_eq(p->n_groups, 3);
	cr_assert_eq(p->n_users, 7);
	cr_assert_eq(p->n_roles, 4);
	sbx_policy_free(p);
}

Test(reference, sha256_is_of_the_file_bytes)
{
	struct sbx_policy *p = load_ok_buf("roles: {}\n");

	/* printf 'roles: {}\n' | sha256sum */
	cr_assert_str_eq(p->sha256_hex,
			 "04a29b6ae970f0d5af3b7dd41b2fd02b1f8c6efbf521d9ac5e07ed7345ef9544");
	sbx_policy_free(p);
}

Test(reference, sandbox_admin_effective_values)
{
	struct sbx_policy *p = load_reference();
	const struct sbx_role *r = sbx_policy_role(p, "sandbox-admin");

	cr_assert_not_null(r);
	cr_assert_str_eq(r->profile, "standard");
	cr_assert_eq(r->max_duration, 2 * 3600);
	cr_assert_eq(r->default_duration, 3600);
	cr_assert_eq(r->approvals, 1);
	cr_assert(!r->auto_approve);
	cr_assert(r->require_reason, "inherited from profile standard");
	cr_assert_eq(r->reason_min_length, 10);
	cr_assert_eq(r->on_expiry, SBX_ON_EXPIRY_TERMINATE);
	cr_assert_str_eq(r->unix_group, "sbx-admin");
	cr_assert_eq(r->gid, 60001);
	cr_assert(r->matches_host);
	cr_assert(r->approver_manager);
	cr_assert_eq(r->approver_groups.n, 1);
	cr_assert_str_eq(r->approver_groups.v[0], "security-leads");
	cr_assert_eq(r->n_ticket_re, 0);
	cr_assert_eq(r->review_every, 0);
	sbx_policy_free(p);
}

Test(reference, prod_data_effective_values)
{
	struct sbx_policy *p = load_reference();
	const struct sbx_role *r = sbx_policy_role(p, "prod-data");

	cr_assert_not_null(r);
	cr_assert_eq(r->max_duration, 4 * 3600);
	cr_assert_eq(r->default_duration, 3600);
	cr_assert_eq(r->approvals, 2);
	cr_assert(r->require_reason);
	cr_assert_eq(r->n_ticket_re, 1);
	cr_assert_str_eq(r->ticket_pattern[0], "^(INC|CHG)-[0-9]+$");
	cr_assert_eq(regexec(&r->ticket_re[0], "INC-42", 0, NULL, 0), 0);
	cr_assert_neq(regexec(&r->ticket_re[0], "INC-42x", 0, NULL, 0), 0);
	cr_assert_eq(r->review_every, 90 * 86400);
	cr_assert_eq(r->on_expiry, SBX_ON_EXPIRY_TERMINATE,
		     "a role with a unix_group ends the holder's processes unless it says keep");
	cr_assert_eq(r->gid, 60002);
	cr_assert(!r->matches_host, "sbx-clinical-* does not match sbx-01");
	sbx_policy_free(p);
}

Test(reference, sandbox_readonly_and_user_effective_values)
{
	struct sbx_policy *p = load_reference();
	const struct sbx_role *ro = sbx_policy_role(p, "sandbox-readonly");
	const struct sbx_role *u = sbx_policy_role(p, "sandbox-user");

	cr_assert_not_null(ro);
	cr_assert(ro->auto_approve);
	cr_assert_eq(ro->max_duration, 30 * 60);
	cr_assert_eq(ro->default_duration, 30 * 60, "min(1h, max)");
	cr_assert(!ro->require_reason);
	cr_assert_null(ro->unix_group);
	cr_assert_not_null(u);
	cr_assert_eq(u->max_duration, 8 * 3600);
	cr_assert_eq(u->default_duration, 3600);
	cr_assert(u->matches_host);
	sbx_policy_free(p);
}

Test(reference, lookups)
{
	struct sbx_policy *p = load_reference();
	const struct sbx_user *alice = sbx_policy_user(p, "alice");
	const struct sbx_group *sre = sbx_policy_group(p, "sre");

	cr_assert_not_null(alice);
	cr_assert_str_eq(alice->manager, "bob");
	cr_assert_str_eq(alice->email, "alice@example.org");
	cr_assert_str_eq(alice->slack_id, "U0ALICE");
	cr_assert_null(sbx_policy_user(p, "frank")->manager);
	cr_assert_not_null(sre);
	cr_assert_eq(sre->members.n, 2);
	cr_assert_null(sbx_policy_user(p, "zed"));
	cr_assert_null(sbx_policy_group(p, "nope"));
	cr_assert_null(sbx_policy_role(p, "nope"));
	cr_assert_null(sbx_policy_role(p, NULL));
	cr_assert(sbx_policy_in_group(p, "sre", "erin"));
	cr_assert(sbx_policy_in_group(p, "developers", "dave"));
	cr_assert(!sbx_policy_in_group(p, "developers", "erin"));
	cr_assert(!sbx_policy_in_group(p, "nope", "erin"));
	sbx_policy_free(p);
}

/* ---------------------------------------------------------------------- */
/* Evaluation on the reference */

Test(eval, standing_login)
{
	struct sbx_policy *p = load_reference();
	const char *users[] = { "alice", "carol", "dave" };

	for (size_t i = 0; i < 3; i++) {
		const char *via = "unset";
		const struct sbx_role *r = sbx_policy_standing_login(p, users[i], &via);

		cr_assert_not_null(r, "%s may log in", users[i]);
		cr_assert_str_eq(r->name, "sandbox-user");
		cr_assert_str_eq(via, "developers");
	}
	for (const char *const *u = (const char *const[]){ "erin", "bob", "frank", "zed", NULL };
	     *u; u++) {
		const char *via = "unset";

		cr_assert_null(sbx_policy_standing_login(p, *u, &via), "%s has no standing login", *u);
		cr_assert_null(via);
	}
	cr_assert_not_null(sbx_policy_standing_login(p, "alice", NULL));
	sbx_policy_free(p);
}

Test(eval, membership)
{
	struct sbx_policy *p = load_reference();
	const struct sbx_role *admin = sbx_policy_role(p, "sandbox-admin");
	const struct sbx_role *data = sbx_policy_role(p, "prod-data");
	const struct sbx_role *user = sbx_policy_role(p, "sandbox-user");
	const char *via = "unset";

	cr_assert_eq(sbx_policy_membership(p, admin, "erin", &via), SBX_MEMBER_ELIGIBLE);
	cr_assert_str_eq(via, "sre");
	cr_assert_eq(sbx_policy_membership(p, admin, "dave", &via), SBX_MEMBER_ELIGIBLE);
	cr_assert_null(via, "dave is listed by name");
	cr_assert_eq(sbx_policy_membership(p, admin, "bob", &via), SBX_MEMBER_NONE);
	cr_assert_eq(sbx_policy_membership(p, admin, "frank", &via), SBX_MEMBER_NONE);
	cr_assert_eq(sbx_policy_membership(p, data, "alice", &via), SBX_MEMBER_ELIGIBLE);
	cr_assert_null(via);
	cr_assert_eq(sbx_policy_membership(p, user, "carol", &via), SBX_MEMBER_STANDING);
	cr_assert_str_eq(via, "developers");
	cr_assert_eq(sbx_policy_membership(p, user, "erin", NULL), SBX_MEMBER_NONE);
	sbx_policy_free(p);
}

Test(eval, standing_wins_over_eligible)
{
	struct sbx_policy *p = load_ok_buf(BASE "  r:\n    hosts: [\"*\"]\n"
					   "    standing: { groups: [devs] }\n"
					   "    eligible: { users: [alice] }\n"
					   "    auto_approve: true\n");
	const char *via = NULL;

	cr_assert_eq(sbx_policy_membership(p, sbx_policy_role(p, "r"), "alice", &via),
		     SBX_MEMBER_STANDING);
	cr_assert_str_eq(via, "devs");
	sbx_policy_free(p);
}

Test(eval, may_approve)
{
	struct sbx_policy *p = load_reference();
	const struct sbx_role *admin = sbx_policy_role(p, "sandbox-admin");
	const struct sbx_role *data = sbx_policy_role(p, "prod-data");
	char why[256];

	cr_assert(sbx_policy_may_approve(p, admin, "erin", "frank", why, sizeof(why)));
	cr_assert_str_eq(why, "manager of erin");
	cr_assert(sbx_policy_may_approve(p, admin, "erin", "grace", why, sizeof(why)));
	cr_assert_str_eq(why, "member of security-leads");
	cr_assert(!sbx_policy_may_approve(p, admin, "erin", "erin", why, sizeof(why)));
	cr_assert_str_eq(why, "you cannot approve your own request");
	cr_assert(sbx_policy_may_approve(p, admin, "alice", "bob", why, sizeof(why)));
	cr_assert_str_eq(why, "manager of alice");
	cr_assert(!sbx_policy_may_approve(p, data, "alice", "bob", why, sizeof(why)));
	cr_assert_str_eq(why, "bob is not an approver of prod-data: approvers are "
			      "security-leads (frank, grace)");
	cr_assert(!sbx_policy_may_approve(p, admin, "erin", "carol", why, sizeof(why)));
	cr_assert_str_eq(why, "carol is not an approver of sandbox-admin: approvers are "
			      "erin's manager (frank) or security-leads (frank, grace)");
	/* A security lead asking for themselves: the group does not help. */
	cr_assert(!sbx_policy_may_approve(p, data, "frank", "frank", why, sizeof(why)));
	sbx_policy_free(p);
}

Test(eval, may_approve_by_name)
{
	struct sbx_policy *p = load_ok_buf(BASE "  r:\n    hosts: [\"*\"]\n"
					   "    eligible: { users: [alice] }\n"
					   "    approvers: { users: [bob] }\n");
	char why[128];

	cr_assert(sbx_policy_may_approve(p, sbx_policy_role(p, "r"), "alice", "bob", why,
					 sizeof(why)));
	cr_assert_str_eq(why, "approver of r by name");
	sbx_policy_free(p);
}

Test(eval, approvers_text)
{
	struct sbx_policy *p = load_reference();
	char buf[256];

	sbx_policy_approvers_text(p, sbx_policy_role(p, "sandbox-admin"), "erin", buf, sizeof(buf));
	cr_assert_str_eq(buf, "erin's manager (frank) or security-leads (frank, grace)");
	sbx_policy_approvers_text(p, sbx_policy_role(p, "sandbox-admin"), NULL, buf, sizeof(buf));
	cr_assert_str_eq(buf, "the requester's manager or security-leads (frank, grace)");
	sbx_policy_approvers_text(p, sbx_policy_role(p, "sandbox-readonly"), "alice", buf,
				  sizeof(buf));
	cr_assert_str_eq(buf, "nobody (granted automatically)");
	/* Truncation never overruns. */
	sbx_policy_approvers_text(p, sbx_policy_role(p, "sandbox-admin"), "erin", buf, 8);
	cr_assert_str_eq(buf, "erin's ");
	sbx_policy_free(p);
}

Test(eval, check_request_ok_and_default_duration)
{
	struct sbx_policy *p = load_reference();
	const struct sbx_role *admin = sbx_policy_role(p, "sandbox-admin");
	const struct sbx_role *ro = sbx_policy_role(p, "sandbox-readonly");
	char why[256] = "unset";
	int64_t d = 0;

	cr_assert_eq(sbx_policy_check_request(p, admin, "erin", &d, "debugging the disk", NULL, why,
					      sizeof(why)), 0, "%s", why);
	cr_assert_eq(d, 3600, "0 asks for the default");
	d = 5400;
	cr_assert_eq(sbx_policy_check_request(p, admin, "dave", &d, "rotate the tls keys", NULL,
					      why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(d, 5400);
	/* No reason needed, none given; or one given that is short: fine. */
	d = 0;
	cr_assert_eq(sbx_policy_check_request(p, ro, "carol", &d, NULL, NULL, why, sizeof(why)), 0);
	cr_assert_eq(d, 1800);
	cr_assert_eq(sbx_policy_check_request(p, ro, "carol", &d, ".", "anything", why,
					      sizeof(why)), 0);
	sbx_policy_free(p);
}

static void expect_refusal(const struct sbx_policy *p, const char *role, const char *user,
			   int64_t d, const char *reason, const char *ticket, const char *msg)
{
	char why[256];
	int64_t asked = d;

	cr_assert_eq(sbx_policy_check_request(p, sbx_policy_role(p, role), user, &d, reason, ticket,
					      why, sizeof(why)), -1);
	cr_assert_str_eq(why, msg);
	cr_assert_eq(d, asked, "the duration is unchanged on refusal");
}

Test(eval, check_request_messages)
{
	struct sbx_policy *p = load_reference();

	expect_refusal(p, "sandbox-admin", "erin", 3 * 3600, "debugging the disk", NULL,
		       "sandbox-admin allows at most 2h (asked 3h)");
	expect_refusal(p, "sandbox-admin", "erin", 0, NULL, NULL,
		       "sandbox-admin needs a reason (--reason) of at least 10 characters");
	expect_refusal(p, "sandbox-admin", "erin", 0, ".", NULL,
		       "sandbox-admin needs a reason (--reason) of at least 10 characters");
	expect_refusal(p, "sandbox-admin", "erin", 0, "   fix it          ", NULL,
		       "sandbox-admin needs a reason (--reason) of at least 10 characters");
	expect_refusal(p, "sandbox-admin", "bob", 0, "debugging the disk", NULL,
		       "bob is not eligible for sandbox-admin");
	expect_refusal(p, "sandbox-admin", "zed", 0, "debugging the disk", NULL,
		       "zed is not in the policy");
	expect_refusal(p, "prod-data", "alice", 0, "debugging the disk", "INC-1",
		       "prod-data does not apply to this host (sbx-01): its hosts are sbx-clinical-*");
	expect_refusal(p, "sandbox-user", "alice", 0, NULL, NULL,
		       "alice already has sandbox-user (standing member via developers): "
		       "nothing to request");
	sbx_policy_free(p);
}

Test(eval, check_request_order)
{
	struct sbx_policy *p = load_reference();

	/* Eligibility before host, host before duration, duration before
	 * reason. */
	expect_refusal(p, "prod-data", "bob", 99 * 3600, NULL, NULL,
		       "bob is not eligible for prod-data");
	expect_refusal(p, "prod-data", "alice", 99 * 3600, NULL, NULL,
		       "prod-data does not apply to this host (sbx-01): its hosts are sbx-clinical-*");
	expect_refusal(p, "sandbox-admin", "erin", 3 * 3600, NULL, NULL,
		       "sandbox-admin allows at most 2h (asked 3h)");
	sbx_policy_free(p);
}

Test(eval, check_request_ticket)
{
	char *yaml = reference_with("host: sbx-01", "host: sbx-clinical-1");
	struct sbx_policy *p = load_ok_buf(yaml);
	char why[256];
	int64_t d = 0;

	free(yaml);
	expect_refusal(p, "prod-data", "alice", 0, "patient 42 lab data", NULL,
		       "prod-data needs a ticket (--ticket) matching ^(INC|CHG)-[0-9]+$");
	expect_refusal(p, "prod-data", "alice", 0, "patient 42 lab data", "JIRA-1",
		       "prod-data needs a ticket (--ticket) matching ^(INC|CHG)-[0-9]+$");
	expect_refusal(p, "prod-data", "alice", 0, "short", "INC-1",
		       "prod-data needs a reason (--reason) of at least 10 characters");
	cr_assert_eq(sbx_policy_check_request(p, sbx_policy_role(p, "prod-data"), "alice", &d,
					      "patient 42 lab data", "CHG-7", why, sizeof(why)), 0,
		     "%s", why);
	cr_assert_eq(d, 3600);
	/* The clinical host is still a sandbox: sbx-* matches it too. */
	cr_assert(sbx_policy_role(p, "sandbox-user")->matches_host);
	sbx_policy_free(p);
}

Test(eval, ticket_must_match_profile_and_role)
{
	struct sbx_policy *p = load_ok_buf(
		"broker: { host: h1 }\n"
		"users: { alice: {}, bob: {} }\n"
		"profiles:\n  hipaa: { require_ticket: \"^INC-\" }\n"
		"roles:\n"
		"  r:\n    profile: hipaa\n    hosts: [\"*\"]\n"
		"    require_ticket: \"-[0-9]{3}$\"\n"
		"    eligible: { users: [alice] }\n"
		"    approvers: { users: [bob] }\n");
	const struct sbx_role *r = sbx_policy_role(p, "r");
	char why[256];
	int64_t d = 0;

	cr_assert_eq(r->n_ticket_re, 2);
	cr_assert_str_eq(r->ticket_pattern[0], "^INC-", "the profile's pattern comes first");
	cr_assert_str_eq(r->ticket_pattern[1], "-[0-9]{3}$");
	expect_refusal(p, "r", "alice", 0, NULL, "CHG-123", "r needs a ticket (--ticket) matching ^INC-");
	expect_refusal(p, "r", "alice", 0, NULL, "INC-12",
		       "r needs a ticket (--ticket) matching -[0-9]{3}$");
	expect_refusal(p, "r", "alice", 0, NULL, NULL,
		       "r needs a ticket (--ticket) matching ^INC- and -[0-9]{3}$");
	cr_assert_eq(sbx_policy_check_request(p, r, "alice", &d, NULL, "INC-123", why, sizeof(why)),
		     0, "%s", why);
	sbx_policy_free(p);
}

Test(eval, tightening_role_is_accepted)
{
	struct sbx_policy *p = load_ok_buf(BASE STRICT_ROLE
					   "    max_duration: 2h\n"
					   "    approvals: 3\n"
					   "    require_reason: true\n"
					   "    reason_min_length: 30\n"
					   "    review_every: 7d\n"
					   "  s:\n"
					   "    profile: strict\n"
					   "    hosts: [\"*\"]\n"
					   "    approvers: { manager: true }\n");
	const struct sbx_role *r = sbx_policy_role(p, "r");
	const struct sbx_role *s = sbx_policy_role(p, "s");

	cr_assert_eq(r->max_duration, 2 * 3600);
	cr_assert_eq(r->approvals, 3);
	cr_assert_eq(r->reason_min_length, 30);
	cr_assert_eq(r->review_every, 7 * 86400);
	/* s inherits everything. */
	cr_assert_eq(s->max_duration, 4 * 3600);
	cr_assert_eq(s->default_duration, 3600);
	cr_assert_eq(s->approvals, 2);
	cr_assert(s->require_reason);
	cr_assert_eq(s->reason_min_length, 20);
	cr_assert_eq(s->review_every, 30 * 86400);
	sbx_policy_free(p);
}

Test(eval, profile_default_duration_is_capped_by_role_max)
{
	struct sbx_policy *p = load_ok_buf("profiles: { p: { default_duration: 3h } }\n"
					   "roles:\n  r: { profile: p, hosts: [x], max_duration: 1h }\n"
					   "  s: { profile: p, hosts: [x] }\n"
					   "  t: { hosts: [x], max_duration: 20m }\n");

	cr_assert_eq(sbx_policy_role(p, "r")->default_duration, 3600);
	cr_assert_eq(sbx_policy_role(p, "s")->default_duration, 3 * 3600);
	cr_assert_eq(sbx_policy_role(p, "t")->default_duration, 20 * 60);
	sbx_policy_free(p);
}

Test(eval, host_defaults_to_this_machine)
{
	char host[256];
	struct sbx_policy *p = load_ok_buf("roles: { r: { hosts: [\"*\"] } }\n");

	cr_assert_eq(gethostname(host, sizeof(host)), 0);
	cr_assert_str_eq(p->broker.host, host);
	cr_assert(sbx_policy_role(p, "r")->matches_host);
	cr_assert_null(p->broker.admin_group);
	cr_assert_eq(p->broker.request_ttl, SBX_DEFAULT_REQUEST_TTL);
	cr_assert_eq(p->broker.socket[0], '/');
	cr_assert_eq(p->broker.state_dir[0], '/');
	sbx_policy_free(p);
}

Test(eval, aliases_are_followed)
{
	struct sbx_policy *p = load_ok_buf("broker: { host: sbx-01 }\n"
					   "users: { alice: {}, bob: {} }\n"
					   "roles:\n"
					   "  a: { hosts: &sandboxes [\"sbx-*\", \"lab-*\"], auto_approve: true,\n"
					   "       eligible: &who { users: [alice, bob] } }\n"
					   "  b: { hosts: *sandboxes, auto_approve: true, eligible: *who }\n");
	const struct sbx_role *b = sbx_policy_role(p, "b");

	cr_assert_eq(b->hosts.n, 2);
	cr_assert_str_eq(b->hosts.v[1], "lab-*");
	cr_assert_eq(sbx_policy_membership(p, b, "bob", NULL), SBX_MEMBER_ELIGIBLE);
	sbx_policy_free(p);
}

Test(eval, empty_policy_loads)
{
	struct sbx_policy *p = load_ok_buf("");

	cr_assert_eq(p->n_roles, 0);
	cr_assert_null(sbx_policy_standing_login(p, "alice", NULL));
	sbx_policy_free(p);
}

/* 10,000 users in 1,000 groups: loads, and every answer is a lookup. */
Test(eval, large_policy)
{
	size_t cap = 1024 * 1024, len = 0;
	char *y = malloc(cap);
	struct sbx_policy *p;
	const char *via = NULL;
	char user[32], group[32];

	cr_assert_not_null(y);
	len += (size_t)snprintf(y + len, cap - len, "broker: { host: sbx-01 }\nusers:\n");
	for (int i = 0; i < 10000; i++)
		len += (size_t)snprintf(y + len, cap - len, "  u%d: {}\n", i);
	len += (size_t)snprintf(y + len, cap - len, "groups:\n");
	for (int g = 0; g < 1000; g++) {
		len += (size_t)snprintf(y + len, cap - len, "  g%d: [", g);
		for (int k = 0; k < 10; k++)
			len += (size_t)snprintf(y + len, cap - len, "%su%d", k ? ", " : "", g * 10 + k);
		len += (size_t)snprintf(y + len, cap - len, "]\n");
	}
	len += (size_t)snprintf(y + len, cap - len,
				"roles:\n  login: { hosts: [\"sbx-*\"], standing: { groups: [g999, g500] } }\n");
	cr_assert_lt(len, cap - 1);
	p = load_ok_buf(y);
	free(y);
	cr_assert_eq(p->n_users, 10000);
	cr_assert_eq(p->n_groups, 1000);
	for (int i = 0; i < 10000; i++) {
		snprintf(user, sizeof(user), "u%d", i);
		snprintf(group, sizeof(group), "g%d", i / 10);
		cr_assert_not_null(sbx_policy_user(p, user));
		cr_assert(sbx_policy_in_group(p, group, user), "%s in %s", user, group);
	}
	cr_assert(!sbx_policy_in_group(p, "g1", "u0"));
	cr_assert_not_null(sbx_policy_standing_login(p, "u5005", &via));
	cr_assert_str_eq(via, "g500");
	cr_assert_null(sbx_policy_standing_login(p, "u5010", &via));
	sbx_policy_free(p);
}

/* ---------------------------------------------------------------------- */
/* Every class of error, at its line:col */

Test(errors, base_and_strict_role_are_valid)
{
	sbx_policy_free(load_ok_buf(BASE STRICT_ROLE));
}

Test(errors, unknown_top_level_key)
{
	expect_error(BASE "colour: {}\n", 11, 1, "unknown key 'colour'");
}

Test(errors, unknown_key_in_role)
{
	expect_error(BASE STRICT_ROLE "    colour: red\n", 15, 5,
		     "unknown key 'colour' in role 'r'");
}

Test(errors, unknown_key_in_broker_and_nested)
{
	expect_error("broker:\n  sockt: /x\n", 2, 3, "unknown key 'sockt' in broker");
	expect_error(BASE STRICT_ROLE "    unix_group: { name: g, gid: 5, uid: 5 }\n", 15, 36,
		     "unknown key 'uid' in unix_group");
}

Test(errors, wrong_type)
{
	expect_error(BASE STRICT_ROLE "    max_duration: yes\n", 15, 19,
		     "max_duration must be a duration (e.g. 2h), not a boolean (yes)");
	expect_error(BASE STRICT_ROLE "    auto_approve: maybe\n", 15, 19,
		     "auto_approve must be true or false, not 'maybe'");
	expect_error(BASE STRICT_ROLE "    approvals: many\n", 15, 16,
		     "approvals must be a whole number from 1 to 1000");
	expect_error(BASE STRICT_ROLE "    approvals: 0\n", 15, 16,
		     "approvals must be a whole number from 1 to 1000, not a number (0)");
	expect_error(BASE STRICT_ROLE "    on_expiry: later\n", 15, 16,
		     "on_expiry must be keep or terminate");
	expect_error(BASE STRICT_ROLE "    standing: [devs]\n", 15, 15,
		     "standing must be a mapping, not a list");
	expect_error("roles: [a]\n", 1, 8, "roles must be a mapping, not a list");
}

Test(errors, hosts_not_a_list)
{
	expect_error(BASE "  r:\n    hosts: sbx-*\n", 12, 12,
		     "hosts must be a list of host name patterns");
}

Test(errors, missing_hosts)
{
	expect_error(BASE "  r:\n    description: no hosts\n", 11, 3, "role 'r' needs hosts");
	expect_error(BASE "  r:\n    hosts: []\n", 12, 12, "hosts must list at least one");
}

Test(errors, bad_duration)
{
	expect_error(BASE STRICT_ROLE "    max_duration: 90\n", 15, 19,
		     "max_duration: missing unit in duration \"90\"");
	expect_error(BASE STRICT_ROLE "    default_duration: 1h1h\n", 15, 23,
		     "default_duration: bad duration \"1h1h\"");
	expect_error("broker: { request_ttl: 0s }\n", 1, 24, "request_ttl: duration \"0s\" is zero");
}

Test(errors, bad_regex)
{
	expect_error(BASE STRICT_ROLE "    require_ticket: \"INC-([0-9]\"\n", 15, 21,
		     "bad regular expression 'INC-([0-9]': ");
	expect_error("profiles:\n  p: { require_ticket: \"a{2,1}\" }\n", 2, 24,
		     "bad regular expression 'a{2,1}'");
	/* What would make regcomp grow without bound is refused before it. */
	expect_error("profiles:\n  p: { require_ticket: \"x++{1,6}\" }\n", 2, 24,
		     "a quantifier applied to a quantifier");
}

Test(errors, unknown_group)
{
	expect_error(BASE STRICT_ROLE "    eligible: { groups: [ops] }\n", 15, 26,
		     "unknown group 'ops'");
	expect_error(BASE STRICT_ROLE "    standing: { groups: [devs, ops] }\n", 15, 32,
		     "unknown group 'ops'");
}

Test(errors, unknown_user)
{
	expect_error(BASE STRICT_ROLE "    standing: { users: [zed] }\n", 15, 25,
		     "unknown user 'zed'");
	expect_error(BASE "  r:\n    hosts: [x]\n    approvers: { users: [zed] }\n", 13, 26,
		     "unknown user 'zed'");
	/* A manager and a group member are references too. */
	expect_error("users:\n  alice: { manager: zed }\n", 2, 21, "unknown user 'zed'");
	expect_error("users: { alice: {} }\ngroups:\n  devs: [alice, carol]\n", 3, 17,
		     "unknown user 'carol'");
}

Test(errors, manager_listed_after_the_user_is_fine)
{
	struct sbx_policy *p = load_ok_buf("users:\n  alice: { manager: zoe }\n  zoe: {}\n");

	cr_assert_str_eq(sbx_policy_user(p, "alice")->manager, "zoe");
	sbx_policy_free(p);
}

Test(errors, unknown_profile)
{
	expect_error(BASE "  r:\n    profile: nope\n    hosts: [x]\n", 12, 14,
		     "unknown profile 'nope'");
}

Test(errors, loosening_max_duration)
{
	expect_error(BASE STRICT_ROLE "    max_duration: 8h\n", 11, 3,
		     "role 'r' loosens its profile 'strict': max_duration 8h is longer than the "
		     "profile's 4h");
}

Test(errors, loosening_approvals)
{
	expect_error(BASE STRICT_ROLE "    approvals: 1\n", 11, 3,
		     "loosens its profile 'strict': approvals 1 is fewer than the profile's 2");
}

Test(errors, loosening_require_reason)
{
	expect_error(BASE STRICT_ROLE "    require_reason: false\n", 11, 3,
		     "loosens its profile 'strict': require_reason: false, but the profile "
		     "requires a reason");
}

Test(errors, loosening_reason_min_length)
{
	expect_error(BASE STRICT_ROLE "    reason_min_length: 5\n", 11, 3,
		     "reason_min_length 5 is shorter than the profile's 20");
}

Test(errors, loosening_review_every)
{
	expect_error(BASE STRICT_ROLE "    review_every: 90d\n", 11, 3,
		     "review_every 90d is longer than the profile's 30d");
	expect_error(BASE STRICT_ROLE "    review_every: never\n", 11, 3,
		     "review_every: never, but the profile reviews every 30d");
}

Test(errors, loosening_auto_approve)
{
	expect_error(BASE STRICT_ROLE "    auto_approve: true\n", 11, 3,
		     "auto_approve: true, but the profile requires 2 approvals");
}

Test(errors, default_longer_than_max)
{
	/* Against the inherited max, and against the role's own. */
	expect_error(BASE STRICT_ROLE "    default_duration: 6h\n", 11, 3,
		     "role 'r': default_duration 6h is longer than its max_duration 4h");
	expect_error(BASE "  r: { hosts: [x], auto_approve: true, max_duration: 1h, "
			  "default_duration: 2h }\n", 11, 3,
		     "default_duration 2h is longer than its max_duration 1h");
	expect_error("profiles:\n  p: { max_duration: 1h, default_duration: 2h }\n", 2, 3,
		     "profile 'p': default_duration 2h is longer than its max_duration 1h");
}

Test(errors, auto_approve_with_approvals)
{
	expect_error(BASE "  r: { hosts: [x], auto_approve: true, approvals: 2 }\n", 11, 3,
		     "role 'r' sets both auto_approve and approvals");
}

Test(errors, nobody_can_approve)
{
	expect_error(BASE "  r: { hosts: [x], eligible: { groups: [devs] } }\n", 11, 3,
		     "role 'r' has eligible members but nobody can approve it");
	/* Standing only: nobody requests, so nobody needs to approve. */
	sbx_policy_free(load_ok_buf(BASE "  r: { hosts: [x], standing: { groups: [devs] } }\n"));
}

Test(errors, duplicate_gid)
{
	expect_error(BASE "  a: { hosts: [x], unix_group: { name: ga, gid: 60001 } }\n"
			  "  b: { hosts: [x], unix_group: { name: gb, gid: 60001 } }\n",
		     12, 49, "gid 60001 is already used by role 'a'");
	expect_error(BASE "  a: { hosts: [x], unix_group: { name: g1, gid: 60001 } }\n"
			  "  b: { hosts: [x], unix_group: { name: g1, gid: 60002 } }\n",
		     12, 40, "unix group 'g1' is already used by role 'a'");
	expect_error(BASE "  a: { hosts: [x], unix_group: { name: g1, gid: 0 } }\n", 11, 49,
		     "gid must be a whole number from 1 to 2147483646");
	expect_error(BASE "  a: { hosts: [x], unix_group: { name: g1 } }\n", 11, 32,
		     "unix_group needs gid");
}

/* Duplicates are found by sorting and hashing, not by comparing every
 * pair: each later role is told the first role that has the gid or name,
 * once, wherever the roles are in the file. */
Test(errors, duplicate_gid_among_many)
{
	expect_error_n(BASE "  c: { hosts: [x], unix_group: { name: gc, gid: 60009 } }\n"
			    "  a: { hosts: [x], unix_group: { name: ga, gid: 60001 } }\n"
			    "  b: { hosts: [x], unix_group: { name: gb, gid: 60009 } }\n"
			    "  d: { hosts: [x], unix_group: { name: gd, gid: 60009 } }\n",
		       14, 49, "gid 60009 is already used by role 'c'", 2);
	expect_error_n(BASE "  c: { hosts: [x], unix_group: { name: gc, gid: 60009 } }\n"
			    "  a: { hosts: [x], unix_group: { name: ga, gid: 60001 } }\n"
			    "  b: { hosts: [x], unix_group: { name: gb, gid: 60009 } }\n"
			    "  d: { hosts: [x], unix_group: { name: gd, gid: 60009 } }\n",
		       13, 49, "gid 60009 is already used by role 'c'", 2);
	expect_error_n(BASE "  a: { hosts: [x], unix_group: { name: g1, gid: 60001 } }\n"
			    "  b: { hosts: [x], unix_group: { name: g2, gid: 60002 } }\n"
			    "  c: { hosts: [x], unix_group: { name: g1, gid: 60003 } }\n"
			    "  d: { hosts: [x], unix_group: { name: g1, gid: 60004 } }\n",
		       14, 40, "unix group 'g1' is already used by role 'a'", 2);
}

Test(errors, duplicate_key)
{
	expect_error(BASE STRICT_ROLE "    max_duration: 1h\n    max_duration: 2h\n", 16, 5,
		     "duplicate key 'max_duration' (first at line 15)");
	expect_error("users: {}\nroles: {}\nusers: {}\n", 3, 1, "duplicate key 'users'");
	expect_error("users:\n  alice: {}\n  alice: {}\n", 3, 3, "duplicate key 'alice'");
	expect_error("users: { alice: {} }\ngroups: { g: [alice, alice] }\n", 2, 22,
		     "'alice' is listed twice in group 'g'");
}

Test(errors, invalid_names)
{
	expect_error("users:\n  -alice: {}\n", 2, 3, "'-alice' is not a valid user name");
	expect_error("users:\n  \"al ice\": {}\n", 2, 3, "'al ice' is not a valid user name");
	expect_error("broker: { admin_group: \"a b\" }\n", 1, 24,
		     "'a b' is not a valid admin_group name");
	expect_error("broker: { socket: run/sbx.sock }\n", 1, 19,
		     "socket must be an absolute path");
}

Test(errors, yaml_syntax_error)
{
	expect_error("roles:\n  r: b: c\n", 2, 7, "mapping values are not allowed in this context");
	expect_error("roles:\n\tr: 1\n", 2, 1, "found character that cannot start any token");
	expect_error("roles: *nope\n", 1, 8, "found undefined alias");
	expect_error("roles: {}\n---\nusers: {}\n", 3, 1, "a second YAML document");
	expect_error("roles: \"\xff\"\n", 1, 9, "invalid leading UTF-8 octet");
}

Test(errors, messages_are_sanitized)
{
	expect_error("users:\n  \"a\\x1b[31mb\": {}\n", 2, 3, "'a?[31mb' is not a valid user name");
}

/* ---------------------------------------------------------------------- */
/* Files */

struct tmpdir {
	char path[64];
};

static void tmpdir_make(struct tmpdir *t)
{
	strcpy(t->path, "/tmp/sbx-test-policy-XXXXXX");
	cr_assert_not_null(mkdtemp(t->path));
}

static void tmpdir_file(const struct tmpdir *t, const char *name, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", t->path, name);
}

static void tmpdir_remove(const struct tmpdir *t, const char *const *names)
{
	char f[128];

	for (; *names; names++) {
		tmpdir_file(t, *names, f, sizeof(f));
		(void)unlink(f);
	}
	(void)rmdir(t->path);
}

static void expect_io_error(const char *path, const char *sub)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };

	cr_assert_eq(sbx_policy_load_file(path, &p, NULL, &e), -1);
	cr_assert_null(p);
	cr_assert_eq(e.n, 1);
	cr_assert_eq(e.v[0].line, 0);
	cr_assert_eq(e.v[0].col, 0);
	cr_assert_str_eq(e.file, path);
	cr_assert(strstr(e.v[0].msg, sub), "\"%s\" lacks \"%s\"", e.v[0].msg, sub);
	sbx_policy_errors_free(&e);
}

Test(files, missing_file)
{
	expect_io_error("/nonexistent/policy.yaml", "cannot open: No such file or directory");
}

Test(files, not_regular)
{
	expect_io_error("/tmp", "not a regular file");
}

Test(files, symlink_and_size)
{
	static const char *const names[] = { "link.yaml", "big.yaml", NULL };
	struct tmpdir t;
	char link[128], big[128];
	FILE *f;

	tmpdir_make(&t);
	tmpdir_file(&t, "link.yaml", link, sizeof(link));
	tmpdir_file(&t, "big.yaml", big, sizeof(big));
	cr_assert_eq(symlink(REFERENCE, link), 0);
	f = fopen(big, "we");
	cr_assert_not_null(f);
	/* Sparse: the size is refused from fstat, before anything is read. */
	cr_assert_eq(ftruncate(fileno(f), 64 * 1024 * 1024 + 1), 0);
	fclose(f);
	expect_io_error(link, "symbolic link");
	expect_io_error(big, "too large (67108865 bytes; a policy may have at most 64 MiB, "
			     "67108864 bytes)");
	tmpdir_remove(&t, names);
}

/* A file of exactly the limit is read and parsed: its NUL bytes are a
 * YAML error, not a size error. */
Test(files, size_at_the_limit_is_read)
{
	static const char *const names[] = { "limit.yaml", NULL };
	struct sbx_policy_errors e = { 0 };
	struct sbx_policy *p = NULL;
	struct tmpdir t;
	char path[128];
	FILE *f;

	tmpdir_make(&t);
	tmpdir_file(&t, "limit.yaml", path, sizeof(path));
	f = fopen(path, "we");
	cr_assert_not_null(f);
	cr_assert_eq(ftruncate(fileno(f), 64 * 1024 * 1024), 0);
	fclose(f);
	cr_assert_eq(sbx_policy_load_file(path, &p, NULL, &e), -1);
	cr_assert_null(p);
	cr_assert_geq(e.n, 1);
	for (size_t i = 0; i < e.n; i++)
		cr_assert_null(strstr(e.v[i].msg, "too large"), "%s", e.v[i].msg);
	cr_assert_gt(e.v[0].line, 0, "a YAML error has a position: %s", e.v[0].msg);
	sbx_policy_errors_free(&e);
	tmpdir_remove(&t, names);
}

/* A directory's worth of users, as a site writes it out: every user with
 * a manager and an address, 50 to a group, and roles eligible by group. */
static void write_big_policy(FILE *f, int users, int roles)
{
	fputs("broker: { host: sbx-01 }\nusers:\n", f);
	for (int i = 0; i < users; i++)
		fprintf(f, "  u%06d: { manager: u%06d, email: u%06d@example.org }\n", i,
			i % 50 ? i - i % 50 : (i + 50) % users, i);
	fputs("groups:\n", f);
	for (int g = 0; g < users / 50; g++) {
		fprintf(f, "  g%05d: [", g);
		for (int k = 0; k < 50; k++)
			fprintf(f, "%su%06d", k ? ", " : "", g * 50 + k);
		fputs("]\n", f);
	}
	fputs("roles:\n", f);
	for (int r = 0; r < roles; r++)
		fprintf(f, "  r%03d:\n    hosts: [\"sbx-*\"]\n"
			   "    unix_group: { name: sbx-r%03d, gid: %d }\n"
			   "    eligible: { groups: [g%05d, g%05d] }\n"
			   "    approvers: { manager: true }\n",
			r, r, 60000 + r, r % (users / 50), (r + 500) % (users / 50));
}

/* 50,000 users (3.5 MB, past the old 1 MiB limit) load from a file, and
 * every name is found. */
Test(files, fifty_thousand_users)
{
	static const char *const names[] = { "big.yaml", NULL };
	struct sbx_policy_errors e = { 0 };
	struct sbx_policy *p = NULL;
	const struct sbx_role *r;
	const char *via = NULL;
	struct tmpdir t;
	char path[128], user[16];
	struct stat st;
	FILE *f;

	tmpdir_make(&t);
	tmpdir_file(&t, "big.yaml", path, sizeof(path));
	f = fopen(path, "we");
	cr_assert_not_null(f);
	write_big_policy(f, 50000, 100);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_gt(st.st_size, 1024 * 1024, "the old limit: %lld bytes", (long long)st.st_size);
	if (sbx_policy_load_file(path, &p, NULL, &e) != 0)
		dump_errors(&e);
	cr_assert_eq(e.n, 0);
	cr_assert_not_null(p);
	cr_assert_eq(p->n_users, 50000);
	cr_assert_eq(p->n_groups, 1000);
	cr_assert_eq(p->n_roles, 100);
	for (int i = 0; i < 50000; i += 997) {
		snprintf(user, sizeof(user), "u%06d", i);
		cr_assert_not_null(sbx_policy_user(p, user), "%s", user);
	}
	cr_assert_str_eq(sbx_policy_user(p, "u049999")->manager, "u049950");
	cr_assert(sbx_policy_in_group(p, "g00999", "u049999"));
	cr_assert(!sbx_policy_in_group(p, "g00998", "u049999"));
	r = sbx_policy_role(p, "r099");
	cr_assert_not_null(r);
	/* r099 is eligible through g00099 and g00599 */
	cr_assert_eq(sbx_policy_membership(p, r, "u029960", &via), SBX_MEMBER_ELIGIBLE);
	cr_assert_str_eq(via, "g00599");
	cr_assert_eq(sbx_policy_membership(p, r, "u029900", &via), SBX_MEMBER_NONE);
	sbx_policy_free(p);
	tmpdir_remove(&t, names);
}

Test(files, several_errors_all_reported_in_file_order)
{
	static const struct {
		int line, col;
		const char *msg;
	} want[] = {
		{ 5, 11, "socket must be an absolute path" },
		{ 9, 21, "unknown user 'nobody'" },
		{ 12, 17, "unknown user 'carol'" },
		{ 14, 3, "role 'loose' loosens its profile 'strict': max_duration 8h" },
		{ 21, 5, "unknown key 'max_duraton' in role 'typo'" },
		{ 22, 23, "default_duration must be a duration (e.g. 2h), not a boolean (yes)" },
		{ 23, 21, "bad regular expression 'INC-(['" },
		{ 24, 26, "unknown group 'ops'" },
		{ 28, 14, "unknown profile 'hipaa'" },
		{ 30, 37, "gid 60001 is already used by role 'typo'" },
		{ 31, 1, "unknown key 'colour'" },
	};
	const char *path = FIXTURES "/many-errors.yaml";
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };
	size_t n = sizeof(want) / sizeof(want[0]);

	cr_assert_eq(sbx_policy_load_file(path, &p, NULL, &e), -1);
	cr_assert_null(p);
	if (e.n != n)
		dump_errors(&e);
	cr_assert_eq(e.n, n, "got %zu errors", e.n);
	for (size_t i = 0; i < n; i++) {
		cr_assert_eq(e.v[i].line, want[i].line, "error %zu: line %d", i, e.v[i].line);
		cr_assert_eq(e.v[i].col, want[i].col, "error %zu: col %d", i, e.v[i].col);
		cr_assert(strstr(e.v[i].msg, want[i].msg), "error %zu: %s", i, e.v[i].msg);
	}
	sbx_policy_errors_free(&e);
}

Test(files, errors_print_shape)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	const char *yaml = "users: {}\nroles:\n  r: { hosts: [x], colour: red }\n";

	cr_assert_not_null(f);
	cr_assert_eq(sbx_policy_load_buffer(yaml, strlen(yaml), "my/policy.yaml", &p, NULL, &e),
		     -1);
	sbx_policy_errors_print(f, &e);
	fclose(f);
	cr_assert_str_eq(out, "my/policy.yaml:3:20: unknown key 'colour' in role 'r'\n");
	free(out);
	sbx_policy_errors_free(&e);
	sbx_policy_errors_free(&e); /* twice is harmless */
	sbx_policy_errors_free(NULL);
}

Test(files, success_leaves_errors_empty_and_free_accepts_null)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };

	cr_assert_eq(sbx_policy_load_file(REFERENCE, &p, NULL, &e), 0);
	cr_assert_eq(e.n, 0);
	cr_assert_null(e.file);
	cr_assert_null(e.v);
	sbx_policy_free(p);
	sbx_policy_free(NULL);
	/* Errors may also be ignored altogether. */
	cr_assert_eq(sbx_policy_load_buffer("x: 1\n", 5, "t", &p, NULL, NULL), -1);
}

/* ---------------------------------------------------------------------- */
/* fleet: (docs/fleet.md) and --host */

static struct sbx_policy *load_fleet(const char *yaml, struct sbx_settings *st)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };
	int rc = sbx_policy_load_buffer(yaml, strlen(yaml), "t.yaml", &p, st, &e);

	if (rc != 0)
		dump_errors(&e);
	cr_assert_eq(rc, 0);
	sbx_policy_errors_free(&e);
	return p;
}

Test(fleet, no_section_no_fleet_and_defaults)
{
	struct sbx_settings st;
	struct sbx_policy *p = load_fleet("roles: {}\n", &st);

	cr_assert_not(st.fleet.enabled);
	sbx_policy_free(p);
	p = load_fleet("fleet:\n  postgres: \"host=10.0.0.5,10.0.0.6 dbname=sbx user=sbx "
		       "target_session_attrs=read-write\"\nroles: {}\n", &st);
	cr_assert(st.fleet.enabled);
	cr_assert_str_eq(st.fleet.postgres, "host=10.0.0.5,10.0.0.6 dbname=sbx user=sbx "
			 "target_session_attrs=read-write");
	cr_assert_str_eq(st.fleet.password_file, "");
	cr_assert_eq(st.fleet.timeout, 5);
	cr_assert_eq(st.fleet.max_stale, 60);
	cr_assert_eq(st.fleet.verify_every, 3600);
	sbx_policy_free(p);
	p = load_fleet("fleet:\n  postgres: postgresql://sbx@db1,db2/sbx?sslmode=verify-full\n"
		       "  password_file: /etc/sbx/pg.pw\n  timeout: 2s\n  max_stale: 5m\n"
		       "  verify_every: never\nroles: {}\n", &st);
	cr_assert_str_eq(st.fleet.password_file, "/etc/sbx/pg.pw");
	cr_assert_eq(st.fleet.timeout, 2);
	cr_assert_eq(st.fleet.max_stale, 300);
	cr_assert_eq(st.fleet.verify_every, 0);
	sbx_policy_free(p);
}

Test(fleet, a_password_in_the_conninfo_is_refused)
{
	expect_error("fleet:\n  postgres: \"host=db dbname=sbx password=hunter2\"\nroles: {}\n", 2,
		     13, "must not hold a password");
	expect_error("fleet:\n  postgres: \"host=db password = x\"\nroles: {}\n", 2, 13,
		     "put it in password_file");
	expect_error("fleet:\n  postgres: postgresql://sbx:hunter2@db/sbx\nroles: {}\n", 2, 13,
		     "must not hold a password");
	expect_error("fleet:\n  postgres: postgresql://db/sbx?password=x\nroles: {}\n", 2, 13,
		     "must not hold a password");
}

Test(fleet, every_key_is_checked)
{
	expect_error("fleet:\n  password_file: /x\nroles: {}\n", 2, 3, "fleet needs postgres");
	expect_error("fleet:\n  postgres: host=db\n  password_file: pw\nroles: {}\n", 3, 18,
		     "absolute path");
	expect_error("fleet:\n  postgres: host=db\n  timeout: 2m\nroles: {}\n", 3, 12,
		     "from 1s to 1m");
	expect_error("fleet:\n  postgres: host=db\n  max_stale: soon\nroles: {}\n", 3, 14,
		     "max_stale");
	expect_error("fleet:\n  postgres: host=db\n  timeout: 10s\n  max_stale: 5s\nroles: {}\n", 2,
		     3, "max_stale must be at least timeout");
	expect_error("fleet:\n  postgres: host=db\n  sslmode: require\nroles: {}\n", 3, 3,
		     "sslmode");
	expect_error("fleet:\n  postgres: \"\"\nroles: {}\n", 2, 13, "must not be empty");
}

Test(fleet, set_host_matches_the_roles_again)
{
	struct sbx_policy *p = load_reference();
	const struct sbx_role *admin = sbx_policy_role(p, "sandbox-admin");
	const struct sbx_role *phi = sbx_policy_role(p, "prod-data");

	cr_assert(admin->matches_host);
	cr_assert_not(phi->matches_host);
	cr_assert_eq(sbx_policy_set_host(p, "SBX-CLINICAL-01"), 0);
	cr_assert_str_eq(p->broker.host, "SBX-CLINICAL-01");
	cr_assert(phi->matches_host, "patterns match case-insensitively");
	cr_assert_eq(sbx_policy_set_host(p, "build-07"), 0);
	cr_assert_not(admin->matches_host);
	cr_assert_not(phi->matches_host);
	sbx_policy_free(p);
}

/* audit: (docs/policy.md) */

Test(audit, seal_every_defaults_to_a_minute_and_takes_seconds)
{
	struct sbx_settings st;
	struct sbx_policy *p = load_fleet("roles: {}\n", &st);

	cr_assert_eq(st.audit.seal_every, 60);
	sbx_policy_free(p);
	p = load_fleet("audit:\n  seal_every: 1s\nroles: {}\n", &st);
	cr_assert_eq(st.audit.seal_every, 1);
	sbx_policy_free(p);
	p = load_fleet("audit:\n  seal_every: 1h30m\nroles: {}\n", &st);
	cr_assert_eq(st.audit.seal_every, 5400);
	sbx_policy_free(p);
}

Test(audit, every_key_is_checked)
{
	expect_error("audit:\n  seal_every: 2d\nroles: {}\n", 2, 15, "at most 1d");
	expect_error("audit:\n  seal_every: soon\nroles: {}\n", 2, 15, "seal_every");
	expect_error("audit:\n  seal_every: 60\nroles: {}\n", 2, 15, "missing unit");
	expect_error("audit:\n  syslog: maybe\nroles: {}\n", 2, 11, "true or false");
	expect_error("audit:\n  syslg: false\nroles: {}\n", 2, 3, "syslg");
	expect_error("audit:\n  checkpoint_url: http://collector.example/c\nroles: {}\n", 2, 19,
		     "must start with https://");
	expect_error("audit:\n  checkpoint_url: ftp://127.0.0.1/c\nroles: {}\n", 2, 19,
		     "must start with https://");
	expect_error("audit:\n  checkpoint_url: http://127.0.0.1.evil.example/\nroles: {}\n", 2,
		     19, "must start with https://");
	expect_error("audit:\n  checkpoint_ca_file: ca.pem\nroles: {}\n", 2, 23, "absolute path");
	expect_error("audit:\n  checkpoint_timeout: 10m\nroles: {}\n", 2, 23, "between 1s and 5m");
}

Test(audit, syslog_on_by_default_and_the_checkpoint_collector)
{
	struct sbx_settings st;
	struct sbx_policy *p = load_fleet("roles: {}\n", &st);

	cr_assert(st.audit.syslog, "every record goes to syslog unless turned off");
	cr_assert_str_eq(st.audit.checkpoint_url, "");
	cr_assert_eq(st.audit.checkpoint_timeout, 10);
	sbx_policy_free(p);
	p = load_fleet("audit:\n  syslog: false\n  checkpoint_url: https://c.example/seals\n"
		       "  checkpoint_ca_file: /etc/sbx/ca.pem\n  checkpoint_timeout: 30s\n"
		       "roles: {}\n", &st);
	cr_assert_not(st.audit.syslog);
	cr_assert_str_eq(st.audit.checkpoint_url, "https://c.example/seals");
	cr_assert_str_eq(st.audit.checkpoint_ca_file, "/etc/sbx/ca.pem");
	cr_assert_eq(st.audit.checkpoint_timeout, 30);
	sbx_policy_free(p);
	p = load_fleet("audit:\n  checkpoint_url: http://[::1]:8443/c\nroles: {}\n", &st);
	cr_assert_str_eq(st.audit.checkpoint_url, "http://[::1]:8443/c", "http:// to loopback");
	sbx_policy_free(p);
}

/* ---------------------------------------------------------------------- */
/* Warnings: valid policies that will not do what they seem to */

/* The warnings for p with group(5) text groups (NULL: no group file). */
static struct sbx_policy_errors warnings_of(const struct sbx_policy *p, const char *groups)
{
	struct sbx_policy_errors w = { 0 };
	FILE *f = groups ? fmemopen((void *)groups, strlen(groups), "r") : NULL;
	int n;

	cr_assert(!groups || f);
	n = sbx_policy_warnings(p, f, &w);
	if (f)
		fclose(f);
	cr_assert_eq(n, (int)w.n, "the count returned is the count appended");
	return w;
}

static bool warned(const struct sbx_policy_errors *w, const char *sub)
{
	for (size_t i = 0; i < w->n; i++)
		if (strstr(w->v[i].msg, sub))
			return true;
	return false;
}

Test(warnings, reference_on_its_host_has_none)
{
	struct sbx_policy *p = load_reference();
	struct sbx_policy_errors w = warnings_of(p, "root:x:0:\nsbx-admins:x:999:\n");

	if (w.n)
		sbx_policy_warnings_print(stderr, &w);
	cr_assert_eq(w.n, 0);
	sbx_policy_errors_free(&w);
	sbx_policy_free(p);
}

Test(warnings, no_role_applies_to_this_host)
{
	struct sbx_policy *p = load_reference();
	struct sbx_policy_errors w;

	cr_assert_eq(sbx_policy_set_host(p, "build-07"), 0);
	w = warnings_of(p, NULL);
	cr_assert_eq(w.n, 1);
	cr_assert_eq(w.v[0].line, 0);
	cr_assert(warned(&w, "no role applies to this host (build-07)"), "%s", w.v[0].msg);
	cr_assert(warned(&w, "hosts are sbx-*, sbx-clinical-*,"), "each pattern once: %s",
		  w.v[0].msg);
	sbx_policy_errors_free(&w);
	/* One matching role is enough. */
	cr_assert_eq(sbx_policy_set_host(p, "sbx-clinical-01"), 0);
	w = warnings_of(p, NULL);
	cr_assert_eq(w.n, 0);
	sbx_policy_errors_free(&w);
	sbx_policy_free(p);
}

Test(warnings, no_roles_at_all)
{
	struct sbx_policy *p = load_ok_buf("broker:\n  host: sbx-01\nroles: {}\n");
	struct sbx_policy_errors w = warnings_of(p, NULL);

	cr_assert_eq(w.n, 1);
	cr_assert(warned(&w, "the policy has no roles: nobody can log in"), "%s", w.v[0].msg);
	cr_assert(warned(&w, "on sbx-01"));
	sbx_policy_errors_free(&w);
	sbx_policy_free(p);
}

Test(warnings, unix_group_with_members_in_etc_group)
{
	struct sbx_policy *p = load_reference();
	struct sbx_policy_errors w = warnings_of(p,
		"# comment:x:1:\n"
		"root:x:0:\n"
		"sbx-admin:x:60001:alice,bob\n"
		"sbx-phi:x:60002:\n"
		"+sbx-admin:::\n");

	cr_assert_eq(w.n, 1, "members, same gid: one warning");
	cr_assert(warned(&w, "role 'sandbox-admin': unix group sbx-admin already exists in "
			 "/etc/group with members alice,bob"), "%s", w.v[0].msg);
	sbx_policy_errors_free(&w);
	sbx_policy_free(p);
}

Test(warnings, unix_group_with_another_gid)
{
	struct sbx_policy *p = load_reference();
	struct sbx_policy_errors w = warnings_of(p, "sbx-phi:x:1234:\nsbx-admin:x:60001:\n");

	cr_assert_eq(w.n, 1, "an empty group with the role's gid is harmless");
	cr_assert(warned(&w, "unix group sbx-phi has gid 1234 in /etc/group, not the role's 60002"),
		  "%s", w.v[0].msg);
	sbx_policy_errors_free(&w);
	w = warnings_of(p, "sbx-phi:x:1234:carol");
	cr_assert_eq(w.n, 2, "members and another gid: both said (no newline at the end)");
	sbx_policy_errors_free(&w);
	sbx_policy_free(p);
}

Test(warnings, group_file_text_is_sanitized)
{
	struct sbx_policy *p = load_reference();
	struct sbx_policy_errors w = warnings_of(p, "sbx-admin:x:60001:ev\033[31mil\n");

	cr_assert_eq(w.n, 1);
	cr_assert_null(strchr(w.v[0].msg, '\033'), "%s", w.v[0].msg);
	sbx_policy_errors_free(&w);
	sbx_policy_free(p);
}

Test(warnings, printed_as_file_warning)
{
	struct sbx_policy *p = load_ok_buf("roles: {}\n");
	struct sbx_policy_errors w = warnings_of(p, NULL);
	char buf[1024] = "";
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

	cr_assert_not_null(f);
	sbx_policy_warnings_print(f, &w);
	fclose(f);
	cr_assert(strncmp(buf, "t.yaml: warning: the policy has no roles", 40) == 0, "%s", buf);
	sbx_policy_errors_free(&w);
	sbx_policy_free(p);
}

/* ---------------------------------------------------------------------- */
/* Access reviews (docs/review.md): review_grace, on_missed_review, review: */

Test(review_keys, profile_keys_fold_into_roles)
{
	struct sbx_policy *p = reference_with_loaded(
		"    review_every: 90d\n",
		"    review_every: 90d\n    review_grace: 3d\n    on_missed_review: suspend\n");
	const struct sbx_role *pd = sbx_policy_role(p, "prod-data");
	const struct sbx_role *sa = sbx_policy_role(p, "sandbox-admin");

	cr_assert_eq(pd->review_grace, 3 * 86400);
	cr_assert_eq(pd->on_missed_review, SBX_MISSED_SUSPEND);
	/* Unset: 7d and notify. */
	cr_assert_eq(sa->review_grace, 7 * 86400);
	cr_assert_eq(sa->on_missed_review, SBX_MISSED_NOTIFY);
	sbx_policy_free(p);
}

Test(review_keys, bad_on_missed_review)
{
	expect_error("profiles:\n  p: { review_every: 30d, on_missed_review: panic }\n", 2, 45,
		     "on_missed_review must be notify or suspend");
}

Test(review_keys, unused_after_setting)
{
	static const char yaml[] = "review:\n  unused_after: 14d\n";
	struct sbx_policy_errors e = { 0 };
	struct sbx_settings st;
	struct sbx_policy *p = NULL;

	cr_assert_eq(sbx_policy_load_buffer(yaml, strlen(yaml), "t.yaml", &p, &st, &e), 0);
	cr_assert_eq(st.review.unused_after, 14 * 86400);
	sbx_policy_free(p);
	cr_assert_eq(sbx_policy_load_buffer("{}", 2, "t.yaml", &p, &st, &e), 0);
	cr_assert_eq(st.review.unused_after, 30 * 86400, "the default");
	sbx_policy_free(p);
	expect_error("review:\n  unused_after: soon\n", 2, 17, "unused_after");
	expect_error("review:\n  colour: red\n", 2, 3, "unknown key");
}

#define R_REST "    hosts: [\"*\"]\n    eligible: { users: [erin] }\n    approvers: { users: [erin] }\n"

Test(audit, retention_is_the_longest_and_a_role_without_one_keeps_everything)
{
	struct sbx_settings st;
	struct sbx_policy *p;
	static const char roles[] =
		"profiles:\n  a:\n    retention: 400d\n  b:\n    retention: 90d\n  c: {}\n"
		"users:\n  erin: {}\n"
		"roles:\n  r1:\n    profile: a\n" R_REST
		"  r2:\n    profile: b\n" R_REST;
	char y[1024];

	p = load_fleet(roles, &st);
	cr_assert_eq(p->profiles[0].retention, 400 * 86400);
	cr_assert_eq(st.audit.retention, 0, "no default unless set");
	cr_assert_eq(sbx_retention_of(p, &st), 400 * 86400, "the longest wins");
	sbx_policy_free(p);

	/* A role whose profile keeps no retention (or that has no profile)
	 * keeps everything, unless audit.retention is set. */
	snprintf(y, sizeof(y), "%s  r3:\n    profile: c\n" R_REST, roles);
	p = load_fleet(y, &st);
	cr_assert_eq(sbx_retention_of(p, &st), 0);
	sbx_policy_free(p);
	snprintf(y, sizeof(y), "audit:\n  retention: 500d\n%s  r3:\n" R_REST,
		 roles);
	p = load_fleet(y, &st);
	cr_assert_eq(st.audit.retention, 500 * 86400);
	cr_assert_eq(sbx_retention_of(p, &st), 500 * 86400, "the default counts for r3, and is longest");
	sbx_policy_free(p);

	expect_error("profiles:\n  a:\n    retention: 12h\nroles: {}\n", 3, 16, "at least 1d");
	expect_error("audit:\n  retention: forever\nroles: {}\n", 2, 14, "retention");
}
