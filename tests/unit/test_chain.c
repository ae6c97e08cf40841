/*
 * fleet/chain.c: records fetched from the fleet's log, checked against
 * the chain a reader trusts, and every way a row can be wrong named by
 * its seq.
 */
#include "config.h"

#include "chain.h"
#include "journal.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define N 6

static struct sbx_pgrec recs[N];

/* N well-chained records, as a broker appends them. */
static void setup(void)
{
	char prev[65] = SBX_RECORD_GENESIS;

	for (int i = 0; i < N; i++) {
		json_t *f = json_pack("{s:i, s:s, s:s}", "id", i + 1, "user", "erin", "host", "sbx-01");
		size_t len;

		memset(&recs[i], 0, sizeof(recs[i]));
		recs[i].seq = (uint64_t)i + 1;
		cr_assert_eq(sbx_record_make(recs[i].seq, 1800000000000000 + i, "request.created", "erin",
					     f, prev, &recs[i].line, &len, recs[i].hash), 0);
		memcpy(recs[i].prev, prev, 65);
		memcpy(prev, recs[i].hash, 65);
		json_decref(f);
	}
}

static void teardown(void)
{
	for (int i = 0; i < N; i++)
		free(recs[i].line);
}

TestSuite(chain, .init = setup, .fini = teardown);

/* Check all from the start; returns n_ok and fills bad/why. */
static size_t check(uint64_t *bad, char *why, size_t whylen, int *rc)
{
	struct sbx_chain_pos pos;
	size_t n_ok = 99;

	sbx_chain_pos_init(&pos);
	*rc = sbx_chain_check(&pos, recs, N, &n_ok, bad, why, whylen);
	return n_ok;
}

Test(chain, an_intact_log_passes_and_moves_the_position)
{
	struct sbx_chain_pos pos;
	size_t n_ok = 0;
	uint64_t bad = 0;
	char why[400] = "";

	sbx_chain_pos_init(&pos);
	cr_assert_eq(pos.seq, 0);
	cr_assert_eq(sbx_chain_check(&pos, recs, 3, &n_ok, &bad, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n_ok, 3);
	cr_assert_eq(pos.seq, 3);
	cr_assert_str_eq(pos.hash, recs[2].hash);
	/* and goes on from there */
	cr_assert_eq(sbx_chain_check(&pos, recs + 3, N - 3, &n_ok, &bad, why, sizeof(why)), 0);
	cr_assert_eq(pos.seq, N);
	/* nothing to check is fine */
	cr_assert_eq(sbx_chain_check(&pos, NULL, 0, &n_ok, &bad, why, sizeof(why)), 0);
	cr_assert_eq(n_ok, 0);
}

Test(chain, an_edited_line_is_named_by_its_seq)
{
	uint64_t bad = 0;
	char why[400];
	int rc;
	char *at = strstr(recs[3].line, "erin");

	at[0] = 'E';
	cr_assert_eq(check(&bad, why, sizeof(why), &rc), 3, "the good ones before it still count");
	cr_assert_eq(rc, -1);
	cr_assert_eq(bad, 4);
	cr_assert(strstr(why, "fleet log: record seq 4: hash mismatch"), "%s", why);
}

Test(chain, a_rewritten_record_with_its_own_hash_breaks_the_next_prev)
{
	uint64_t bad = 0;
	char why[400], hash[65], *line = NULL;
	size_t len;
	json_t *f = json_pack("{s:i, s:s}", "id", 3, "user", "mallory");
	int rc;

	/* Someone recomputes seq 3 properly: seq 4's prev no longer fits. */
	cr_assert_eq(sbx_record_make(3, 1, "request.created", "mallory", f, recs[1].hash, &line, &len,
				     hash), 0);
	free(recs[2].line);
	recs[2].line = line;
	memcpy(recs[2].hash, hash, 65);
	cr_assert_eq(check(&bad, why, sizeof(why), &rc), 3);
	cr_assert_eq(bad, 4);
	cr_assert(strstr(why, "record seq 4") && strstr(why, "chain broken"), "%s", why);
	json_decref(f);
}

Test(chain, a_deleted_row_is_a_gap)
{
	uint64_t bad = 0;
	char why[400];
	int rc;

	free(recs[2].line);
	memmove(&recs[2], &recs[3], (N - 3) * sizeof(recs[0]));
	recs[N - 1].line = NULL;
	cr_assert_eq(check(&bad, why, sizeof(why), &rc), 2);
	cr_assert_eq(bad, 3);
	cr_assert(strstr(why, "expected seq 3 next, found seq 4 (a record is missing)"), "%s", why);
}

Test(chain, the_columns_must_agree_with_the_line)
{
	uint64_t bad = 0;
	char why[400];
	int rc;

	recs[1].hash[0] = recs[1].hash[0] == 'a' ? 'b' : 'a';
	cr_assert_eq(check(&bad, why, sizeof(why), &rc), 1);
	cr_assert_eq(bad, 2);
	cr_assert(strstr(why, "hash column"), "%s", why);
	teardown();
	setup();
	recs[4].prev[5] = recs[4].prev[5] == '0' ? '1' : '0';
	cr_assert_eq(check(&bad, why, sizeof(why), &rc), 4);
	cr_assert_eq(bad, 5);
	cr_assert(strstr(why, "prev column"), "%s", why);
}

Test(chain, a_row_with_no_line_or_another_seq_is_refused)
{
	uint64_t bad = 0;
	char why[400];
	int rc;

	free(recs[0].line);
	recs[0].line = NULL;
	cr_assert_eq(check(&bad, why, sizeof(why), &rc), 0);
	cr_assert_eq(bad, 1);
	cr_assert(strstr(why, "no line"), "%s", why);
}
