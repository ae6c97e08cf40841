/*
 * The policy file (policy/): sbx_policy_load_buffer on any text, with the
 * file's other sections (directory:, slack:) read into a struct
 * sbx_settings.  When it loads, the questions the broker asks of it, for
 * every role (up to a bound) and names taken from the policy itself plus
 * one it does not know: membership, standing login, who may approve
 * (never oneself), the approvers in words, and a request's checks (a
 * granted duration is never more than the role allows).
 */
#include "fuzz.h"

#include "policy.h"
#include "settings.h"

#include <stdbool.h>

#define MAX_ROLES 8
#define MAX_NAMES 12

/* Policy names to ask about: users, group members, listed approvers and
 * eligible users, the first MAX_NAMES - 1 found, then a stranger. */
static size_t collect_names(const struct sbx_policy *p, const char **v)
{
	size_t n = 0;

	for (size_t i = 0; i < p->n_users && n < MAX_NAMES - 1; i++)
		v[n++] = p->users[i].name;
	for (size_t i = 0; i < p->n_groups && n < MAX_NAMES - 1; i++)
		for (size_t k = 0; k < p->groups[i].members.n && n < MAX_NAMES - 1; k++)
			v[n++] = p->groups[i].members.v[k];
	for (size_t i = 0; i < p->n_roles && n < MAX_NAMES - 1; i++) {
		const struct sbx_role *r = &p->roles[i];

		for (size_t k = 0; k < r->eligible_users.n && n < MAX_NAMES - 1; k++)
			v[n++] = r->eligible_users.v[k];
		for (size_t k = 0; k < r->approver_users.n && n < MAX_NAMES - 1; k++)
			v[n++] = r->approver_users.v[k];
	}
	v[n++] = "zz-not-in-the-policy";
	return n;
}

static void ask(const struct sbx_policy *p, const struct sbx_role *r, const char **names,
		size_t n, int64_t asked)
{
	char why[1024], text[2048];
	const char *via;

	FUZZ_CHECK(sbx_policy_role(p, r->name) != NULL, "role %s not found by name", r->name);
	sbx_policy_approvers_text(p, r, NULL, text, sizeof(text));
	for (size_t i = 0; i < n; i++) {
		enum sbx_membership mem = sbx_policy_membership(p, r, names[i], &via);
		int64_t duration = asked;
		int rc;

		FUZZ_CHECK(mem == SBX_MEMBER_NONE || mem == SBX_MEMBER_ELIGIBLE ||
			   mem == SBX_MEMBER_STANDING, "membership %d", (int)mem);
		sbx_policy_approvers_text(p, r, names[i], text, sizeof(text));
		FUZZ_CHECK(!sbx_policy_may_approve(p, r, names[i], names[i], why, sizeof(why)),
			   "%s may approve their own request for %s", names[i], r->name);
		for (size_t k = 0; k < n; k++)
			sbx_policy_may_approve(p, r, names[i], names[k], why, sizeof(why));
		rc = sbx_policy_check_request(p, r, names[i], &duration,
					      "a reason that is long enough to pass", "INC-1234", why,
					      sizeof(why));
		FUZZ_CHECK(rc == 0 || rc == -1, "check_request rc %d", rc);
		if (rc == 0) {
			FUZZ_CHECK(mem == SBX_MEMBER_ELIGIBLE, "%s may request %s without being eligible",
				   names[i], r->name);
			FUZZ_CHECK(duration > 0 && duration <= r->max_duration,
				   "granted %lld s of %s (at most %lld)", (long long)duration, r->name,
				   (long long)r->max_duration);
		} else {
			FUZZ_CHECK(why[0] != '\0', "a refusal without a reason");
		}
		duration = asked;
		sbx_policy_check_request(p, r, names[i], &duration, "", "", why, sizeof(why));
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sbx_policy_errors errs = { 0 };
	struct sbx_settings *settings = calloc(1, sizeof(*settings));
	struct sbx_policy *p = NULL;
	const char *names[MAX_NAMES];
	int64_t asked;
	size_t n;

	FUZZ_CHECK(settings != NULL, "out of memory");
	if (sbx_policy_load_buffer((const char *)data, size, "fuzz.yaml", &p, settings, &errs) != 0) {
		FUZZ_CHECK(errs.n > 0, "a policy refused without an error");
		for (size_t i = 0; i < errs.n; i++)
			FUZZ_CHECK(errs.v[i].msg != NULL && errs.v[i].line >= 0, "error %zu", i);
		goto out;
	}
	FUZZ_CHECK(p != NULL && errs.n == 0, "loaded with %zu errors", errs.n);
	n = collect_names(p, names);
	/* Ask for the default, a minute, and more than any role allows. */
	for (size_t i = 0; i < p->n_roles && i < MAX_ROLES; i++) {
		const struct sbx_role *r = &p->roles[i];

		FUZZ_CHECK(r->max_duration > 0 && r->default_duration <= r->max_duration,
			   "role %s: default %lld, max %lld", r->name, (long long)r->default_duration,
			   (long long)r->max_duration);
		asked = i % 3 == 0 ? 0 : i % 3 == 1 ? 60 : 400LL * 86400;
		ask(p, r, names, n, asked);
	}
	for (size_t i = 0; i < n; i++)
		sbx_policy_standing_login(p, names[i], NULL);
out:
	sbx_policy_free(p);
	sbx_policy_errors_free(&errs);
	free(settings);
	return 0;
}
