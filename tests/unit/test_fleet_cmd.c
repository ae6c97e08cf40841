/* sbxctl fleet's pure parts: which policy the fleet runs, what status
 * says about each host, and comparing a broker's local copies with the
 * log (cli/fleet_cmd.h).  The commands themselves run against a real
 * database in tests/integration/fleet_cli.sh. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet_cmd.h"

#define SHA_A "aaaa000000000000000000000000000000000000000000000000000000000000"
#define SHA_B "bbbb000000000000000000000000000000000000000000000000000000000000"
#define SHA_C "cccc000000000000000000000000000000000000000000000000000000000000"

static struct sbx_pghost host(const char *name, uint64_t applied, const char *sha,
			      int64_t contact_ms, int64_t age_ms)
{
	struct sbx_pghost h = { .host = (char *)name, .applied_seq = applied,
				.version = (char *)"0.1.0", .last_contact_ms = contact_ms,
				.age_ms = age_ms };

	snprintf(h.policy_sha256, sizeof(h.policy_sha256), "%s", sha);
	return h;
}

/* ---- exit codes ---------------------------------------------------------- */

Test(fleet_cmd, exit_codes_for_the_store)
{
	cr_assert_eq(sbx_fleet_exit_for_store(0), SBX_EXIT_OK);
	cr_assert_eq(sbx_fleet_exit_for_store(-ENOTCONN), SBX_EXIT_UNREACHABLE);
	cr_assert_eq(sbx_fleet_exit_for_store(-ETIMEDOUT), SBX_EXIT_UNREACHABLE);
	cr_assert_eq(sbx_fleet_exit_for_store(-EINVAL), SBX_EXIT_USAGE);
	cr_assert_eq(sbx_fleet_exit_for_store(-EPROTO), SBX_EXIT_REFUSED);
	cr_assert_eq(sbx_fleet_exit_for_store(-EACCES), SBX_EXIT_REFUSED);
	cr_assert_eq(sbx_fleet_exit_for_store(-EIO), SBX_EXIT_REFUSED);
}

/* ---- the majority ---------------------------------------------------------- */

Test(fleet_majority, none_without_a_reported_policy)
{
	struct sbx_pghost h[2] = { host("a", 1, "", 10, 0), host("b", 1, "", 20, 0) };

	cr_assert_null(sbx_fleet_majority_sha(NULL, 0));
	cr_assert_null(sbx_fleet_majority_sha(h, 2));
}

Test(fleet_majority, most_hosts_win)
{
	struct sbx_pghost h[3] = { host("a", 1, SHA_B, 100, 0), host("b", 1, SHA_A, 10, 0),
				   host("c", 1, SHA_A, 20, 0) };

	cr_assert_str_eq(sbx_fleet_majority_sha(h, 3), SHA_A,
			 "two hosts beat one, even one heard from later");
}

Test(fleet_majority, hosts_without_a_policy_do_not_count)
{
	struct sbx_pghost h[3] = { host("a", 1, "", 10, 0), host("b", 1, "", 20, 0),
				   host("c", 1, SHA_C, 5, 0) };

	cr_assert_str_eq(sbx_fleet_majority_sha(h, 3), SHA_C);
}

Test(fleet_majority, a_tie_goes_to_the_host_heard_from_last)
{
	struct sbx_pghost h[4] = { host("a", 1, SHA_A, 10, 0), host("b", 1, SHA_B, 40, 0),
				   host("c", 1, SHA_A, 30, 0), host("d", 1, SHA_B, 20, 0) };

	cr_assert_str_eq(sbx_fleet_majority_sha(h, 4), SHA_B);
	h[0].last_contact_ms = 50;
	cr_assert_str_eq(sbx_fleet_majority_sha(h, 4), SHA_A);
}

Test(fleet_majority, a_full_tie_does_not_depend_on_the_order)
{
	struct sbx_pghost ab[2] = { host("a", 1, SHA_A, 10, 0), host("b", 1, SHA_B, 10, 0) };
	struct sbx_pghost ba[2] = { host("b", 1, SHA_B, 10, 0), host("a", 1, SHA_A, 10, 0) };

	cr_assert_str_eq(sbx_fleet_majority_sha(ab, 2), SHA_A);
	cr_assert_str_eq(sbx_fleet_majority_sha(ba, 2), SHA_A);
}

/* ---- judging hosts -------------------------------------------------------- */

Test(fleet_assess, all_current_and_the_same)
{
	struct sbx_pghost h[2] = { host("a", 42, SHA_A, 10, 1000), host("b", 40, SHA_A, 20, 0) };
	struct sbx_fleet_host_view v[2];
	const char *maj = NULL;

	cr_assert(sbx_fleet_assess(h, 2, 42, 60, v, &maj));
	cr_assert_str_eq(maj, SHA_A);
	cr_assert_eq(v[0].lag, 0);
	cr_assert_eq(v[1].lag, 2, "a host a little behind is still healthy");
	cr_assert(!v[1].stale && !v[1].mismatch && !v[1].ahead);
}

Test(fleet_assess, stale_only_past_max_stale)
{
	struct sbx_pghost h[2] = { host("a", 1, SHA_A, 10, 60000), host("b", 1, SHA_A, 20, 60001) };
	struct sbx_fleet_host_view v[2];

	cr_assert(!sbx_fleet_assess(h, 2, 1, 60, v, NULL));
	cr_assert(!v[0].stale, "exactly max_stale is not stale yet");
	cr_assert(v[1].stale);
}

Test(fleet_assess, the_odd_policy_is_flagged)
{
	struct sbx_pghost h[4] = { host("a", 1, SHA_A, 10, 0), host("b", 1, SHA_B, 90, 0),
				   host("c", 1, SHA_A, 20, 0), host("d", 1, "", 30, 0) };
	struct sbx_fleet_host_view v[4];
	const char *maj = NULL;

	cr_assert(!sbx_fleet_assess(h, 4, 1, 60, v, &maj));
	cr_assert_str_eq(maj, SHA_A);
	cr_assert(!v[0].mismatch);
	cr_assert(v[1].mismatch);
	cr_assert(!v[2].mismatch);
	cr_assert(!v[3].mismatch, "a host that reported no policy is not a mismatch");
}

Test(fleet_assess, a_host_ahead_of_the_log)
{
	struct sbx_pghost h[1] = { host("a", 50, SHA_A, 10, 0) };
	struct sbx_fleet_host_view v[1];

	cr_assert(!sbx_fleet_assess(h, 1, 42, 60, v, NULL));
	cr_assert(v[0].ahead);
	cr_assert_eq(v[0].lag, -8);
}

Test(fleet_assess, no_hosts_is_healthy)
{
	const char *maj = SHA_A;

	cr_assert(sbx_fleet_assess(NULL, 0, 7, 60, NULL, &maj));
	cr_assert_null(maj);
}

/* ---- local copies ----------------------------------------------------------- */

/* A log of n checked records whose hash at seq i is hashes[i - 1]; past
 * them it ends (1) or is broken (2). */
struct fake_log {
	const char *const *hashes;
	uint64_t n;
	bool broken;
	bool fail;
	unsigned calls;
};

static int fake_hash_at(void *ctx, uint64_t seq, const char **hash, uint64_t *end)
{
	struct fake_log *l = ctx;

	l->calls++;
	if (l->fail)
		return -1;
	if (seq >= 1 && seq <= l->n) {
		*hash = l->hashes[seq - 1];
		return 0;
	}
	*end = l->n;
	return l->broken ? 2 : 1;
}

static const char *const LOG3[] = { SHA_A, SHA_B, SHA_C };

static json_t *copy(long long local_seq, long long fleet_seq, const char *hash)
{
	return json_pack("{s:I, s:s, s:I, s:s}", "seq", (json_int_t)local_seq, "event",
			 "request.created", "fleet_seq", (json_int_t)fleet_seq, "fleet_hash",
			 hash);
}

static int check(struct sbx_fleet_copies *cc, struct fake_log *l, json_t *rec)
{
	int rc = sbx_fleet_copy_check(cc, rec, fake_hash_at, l);

	json_decref(rec);
	return rc;
}

Test(fleet_copies, the_same_copies_and_host_records)
{
	struct sbx_fleet_copies cc = { .state_dir = "/s" };
	struct fake_log l = { LOG3, 3, false, false, 0 };

	cr_assert_eq(check(&cc, &l, json_pack("{s:I, s:s, s:I}", "seq", (json_int_t)1, "event",
					      "broker.started", "fleet_seq", (json_int_t)0)), 0);
	cr_assert_eq(l.calls, 0, "a host record (fleet_seq alone) is not looked up");
	cr_assert_eq(check(&cc, &l, copy(2, 1, SHA_A)), 0);
	cr_assert_eq(check(&cc, &l, copy(3, 2, SHA_B)), 0);
	cr_assert_eq(check(&cc, &l, copy(4, 3, SHA_C)), 0);
	cr_assert_eq(cc.compared, 3);
	cr_assert_eq(cc.differ, 0);
	cr_assert_eq(cc.unchecked, 0);
	cr_assert_str_eq(cc.first, "");
}

Test(fleet_copies, a_different_hash_is_named_with_both)
{
	struct sbx_fleet_copies cc = { .state_dir = "/s" };
	struct fake_log l = { LOG3, 3, false, false, 0 };

	cr_assert_eq(check(&cc, &l, copy(2, 1, SHA_A)), 0);
	cr_assert_eq(check(&cc, &l, copy(3, 2, SHA_C)), 0);
	cr_assert_eq(check(&cc, &l, copy(4, 3, SHA_A)), 0);
	cr_assert_eq(cc.compared, 3);
	cr_assert_eq(cc.differ, 2);
	cr_assert_eq(cc.first_seq, 2, "the first difference is kept");
	cr_assert_str_eq(cc.first, "local copy of seq 2 in /s has hash " SHA_C ", the log " SHA_B);
}

Test(fleet_copies, a_copy_past_the_end_of_the_log)
{
	struct sbx_fleet_copies cc = { .state_dir = "/s" };
	struct fake_log l = { LOG3, 3, false, false, 0 };

	cr_assert_eq(check(&cc, &l, copy(9, 5, SHA_A)), 0);
	cr_assert_eq(cc.compared, 1);
	cr_assert_eq(cc.differ, 1);
	cr_assert_eq(cc.first_seq, 5);
	cr_assert(strstr(cc.first, "local copy of seq 5 in /s is not in the log, which ends at seq 3"),
		  "%s", cc.first);
}

Test(fleet_copies, copies_past_a_broken_record_are_not_compared)
{
	struct sbx_fleet_copies cc = { .state_dir = "/s" };
	struct fake_log l = { LOG3, 2, true, false, 0 };

	cr_assert_eq(check(&cc, &l, copy(2, 1, SHA_A)), 0);
	cr_assert_eq(check(&cc, &l, copy(3, 2, SHA_B)), 0);
	cr_assert_eq(check(&cc, &l, copy(4, 3, SHA_C)), 0);
	cr_assert_eq(check(&cc, &l, copy(5, 4, SHA_C)), 0);
	cr_assert_eq(cc.compared, 2);
	cr_assert_eq(cc.unchecked, 2);
	cr_assert_eq(cc.differ, 0);
}

Test(fleet_copies, out_of_order_and_repeated_copies)
{
	struct sbx_fleet_copies cc = { .state_dir = "/s" };
	struct fake_log l = { LOG3, 3, false, false, 0 };

	cr_assert_eq(check(&cc, &l, copy(2, 2, SHA_B)), 0);
	cr_assert_eq(check(&cc, &l, copy(3, 2, SHA_B)), 0);
	cr_assert_eq(check(&cc, &l, copy(4, 1, SHA_A)), 0);
	cr_assert_eq(cc.compared, 1);
	cr_assert_eq(cc.differ, 2);
	cr_assert_str_eq(cc.first, "local copy of seq 2 in /s comes after the copy of seq 2 (out "
			 "of order)");
}

Test(fleet_copies, malformed_copies)
{
	struct sbx_fleet_copies cc = { .state_dir = "/s" };
	struct fake_log l = { LOG3, 3, false, false, 0 };

	cr_assert_eq(check(&cc, &l, copy(7, 1, "ABCD")), 0);
	cr_assert_eq(check(&cc, &l, copy(8, 0, SHA_A)), 0);
	cr_assert_eq(check(&cc, &l, json_pack("{s:I, s:s, s:s}", "seq", (json_int_t)9,
					      "fleet_seq", "1", "fleet_hash", SHA_A)), 0);
	cr_assert_eq(check(&cc, &l, json_pack("{s:I, s:I, s:I}", "seq", (json_int_t)10,
					      "fleet_seq", (json_int_t)1, "fleet_hash",
					      (json_int_t)5)), 0);
	cr_assert_eq(l.calls, 0);
	cr_assert_eq(cc.differ, 4);
	cr_assert_eq(cc.compared, 0);
	cr_assert_str_eq(cc.first, "local record seq 7 in /s has a malformed fleet_seq or "
			 "fleet_hash");
}

Test(fleet_copies, a_database_error_stops_the_walk)
{
	struct sbx_fleet_copies cc = { .state_dir = "/s" };
	struct fake_log l = { LOG3, 3, false, true, 0 };

	cr_assert_eq(check(&cc, &l, copy(2, 1, SHA_A)), -1);
	cr_assert_eq(cc.compared, 0);
	cr_assert_eq(cc.differ, 0);
}
