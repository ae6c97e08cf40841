/*
 * The broker's access review table (broker/reviews.c): the fold of
 * review.* records, the override a revoke leaves (in force only under the
 * policy it was made under), a suspension, and the snapshot round trip.
 * The ops and the deadlines on a running broker are in
 * tests/integration/review_decisions.sh.
 */
#include "config.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "reviews.h"

#define RIG_POLICY SBX_TEST_SRCDIR "/packaging/examples/policy.yaml"

static struct sbx_broker B;

static void setup(void)
{
	struct sbx_policy_errors e = { 0 };

	memset(&B, 0, sizeof(B));
	cr_assert_eq(sbx_policy_load_file(RIG_POLICY, &B.policy, NULL, &e), 0);
	B.reviews = sbx_reviews_new();
	cr_assert_not_null(B.reviews);
}

static void teardown(void)
{
	sbx_reviews_free(B.reviews);
	sbx_policy_free(B.policy);
}

static void fold(const char *event, const char *actor, const char *fields)
{
	char *text = NULL;
	json_t *rec;

	cr_assert(asprintf(&text, "{\"time\":\"2026-12-01T10:00:00Z\",\"event\":\"%s\","
			   "\"actor\":\"%s\"%s%s}", event, actor, *fields ? "," : "", fields) > 0);
	rec = json_loads(text, 0, NULL);
	cr_assert_not_null(rec, "%s", text);
	sbx_reviews_replay(B.reviews, rec);
	json_decref(rec);
	free(text);
}

static void revoke_erin(const char *sha)
{
	char f[256];

	snprintf(f, sizeof(f), "\"user\":\"erin\",\"role\":\"sandbox-admin\",\"comment\":\"x\","
		 "\"policy_sha256\":\"%s\",\"eligibility_removed\":true", sha);
	fold("review.revoked", "frank", f);
}

TestSuite(reviews, .init = setup, .fini = teardown);

Test(reviews, revoke_removes_eligibility_under_this_policy_only)
{
	char why[512];

	cr_assert_eq(sbx_reviews_check_request(&B, "sandbox-admin", "erin", why, sizeof(why)), 0);
	revoke_erin(B.policy->sha256_hex);
	cr_assert_eq(sbx_reviews_check_request(&B, "sandbox-admin", "erin", why, sizeof(why)), -1);
	cr_assert_not_null(strstr(why, "revoked in an access review by frank at "
				       "2026-12-01T10:00:00Z"), "%s", why);
	/* Another person, another role: untouched. */
	cr_assert_eq(sbx_reviews_check_request(&B, "sandbox-admin", "alice", why, sizeof(why)), 0);
	cr_assert_eq(sbx_reviews_check_request(&B, "prod-data", "erin", why, sizeof(why)), 0);
	/* Made under another policy file: not in force. */
	revoke_erin("0000000000000000000000000000000000000000000000000000000000000000");
	cr_assert_not(sbx_reviews_revoked(&B, "erin", "sandbox-admin", why, sizeof(why)));
}

Test(reviews, certify_after_revoke_ends_the_override)
{
	char why[512];

	revoke_erin(B.policy->sha256_hex);
	fold("review.certified", "grace", "\"user\":\"erin\",\"role\":\"sandbox-admin\","
	     "\"comment\":\"back on the team\"");
	cr_assert_eq(sbx_reviews_check_request(&B, "sandbox-admin", "erin", why, sizeof(why)), 0);
}

Test(reviews, standing_revoke_leaves_no_override)
{
	char why[512];

	fold("review.revoked", "root", "\"user\":\"alice\",\"role\":\"sandbox-user\","
	     "\"eligibility_removed\":false");
	cr_assert_not(sbx_reviews_revoked(&B, "alice", "sandbox-user", why, sizeof(why)));
}

Test(reviews, suspended_until_resumed)
{
	char why[512];

	fold("review.suspended", "sbx", "\"role\":\"prod-data\",\"reason\":\"missed\"");
	cr_assert_eq(sbx_reviews_check_request(&B, "prod-data", "alice", why, sizeof(why)), -1);
	cr_assert_not_null(strstr(why, "prod-data is suspended since 2026-12-01T10:00:00Z"), "%s",
			   why);
	fold("review.resumed", "sbx", "\"role\":\"prod-data\",\"because\":\"reviewed\"");
	cr_assert_eq(sbx_reviews_check_request(&B, "prod-data", "alice", why, sizeof(why)), 0);
}

Test(reviews, snapshot_round_trip)
{
	struct sbx_reviews *again = sbx_reviews_new();
	json_t *saved, *saved_again;
	char why[512];

	fold("policy.loaded", "sbx", "\"roles\":4");
	revoke_erin(B.policy->sha256_hex);
	fold("review.due", "sbx", "\"role\":\"prod-data\",\"due_at_unix\":1790000000");
	fold("review.suspended", "sbx", "\"role\":\"prod-data\"");
	saved = sbx_reviews_save(B.reviews);
	cr_assert_not_null(saved);
	cr_assert_eq(sbx_reviews_load(again, saved), 0);
	saved_again = sbx_reviews_save(again);
	cr_assert(json_equal(saved, saved_again), "%s", json_dumps(saved_again, 0));
	/* The loaded table answers as the folded one. */
	sbx_reviews_free(B.reviews);
	B.reviews = again;
	cr_assert_eq(sbx_reviews_check_request(&B, "sandbox-admin", "erin", why, sizeof(why)), -1);
	cr_assert_eq(sbx_reviews_check_request(&B, "prod-data", "dave", why, sizeof(why)), -1);
	json_t *nonsense = json_string("nonsense");

	cr_assert_eq(sbx_reviews_load(again, nonsense), -1);
	json_decref(nonsense);
	json_decref(saved);
	json_decref(saved_again);
}
