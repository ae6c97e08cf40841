/*
 * Retention's cut-off (broker/retention.c): records older than the
 * retention may go, but never one an open request needs, and the end of a
 * request lets its records go with the rest.
 */
#include "config.h"

#include "retention.h"
#include "state.h"
#include "timeutil.h"

#include <criterion/criterion.h>

#define T0 1800000000 /* 2027-01-15 */
#define DAY 86400

static struct sbx_state *st;
static char err[256];

static void setup(void)
{
	st = sbx_state_new();
	cr_assert_not_null(st);
}

static void teardown(void)
{
	sbx_state_free(st);
}

TestSuite(retention, .init = setup, .fini = teardown);

static const char *at(int64_t secs)
{
	static char buf[4][SBX_RFC3339_LEN];
	static int i;

	i = (i + 1) % 4;
	sbx_format_rfc3339(secs, buf[i]);
	return buf[i];
}

static void apply(json_t *rec)
{
	cr_assert_eq(sbx_state_apply(st, rec, err, sizeof(err)), 0, "%s", err);
	json_decref(rec);
}

static void create(uint32_t id, int64_t t)
{
	apply(json_pack("{s:i, s:s, s:s, s:s, s:i, s:s, s:s, s:i, s:s, s:i, s:s}", "seq", id,
			"time", at(t), "event", "request.created", "actor", "erin", "id", id, "user",
			"erin", "role", "sandbox-admin", "duration", 3600, "reason",
			"debugging the pipeline", "approvals_needed", 1, "lapses_at", at(t + DAY)));
}

Test(retention, the_cut_off_is_now_less_the_retention_or_the_oldest_open_request)
{
	int64_t now = (int64_t)(T0 + 500 * DAY) * 1000000;

	cr_assert_eq(sbx_retention_cutoff(st, now, 400 * DAY), now - (int64_t)400 * DAY * 1000000);
	/* A request filed 450 days ago and still pending holds everything
	 * since it was filed. */
	create(1, T0 + 50 * DAY);
	create(2, T0 + 300 * DAY);
	cr_assert_eq(sbx_retention_cutoff(st, now, 400 * DAY), (int64_t)(T0 + 50 * DAY) * 1000000);
	/* Once it ends, the retention alone decides again. */
	apply(json_pack("{s:s, s:s, s:s, s:i, s:s}", "time", at(T0 + 460 * DAY), "event",
			"request.cancelled", "actor", "erin", "id", 1, "reason", "done"));
	cr_assert_eq(sbx_retention_cutoff(st, now, 400 * DAY), now - (int64_t)400 * DAY * 1000000);
	/* With a shorter retention the other open request holds from its filing. */
	cr_assert_eq(sbx_retention_cutoff(st, now, 100 * DAY), (int64_t)(T0 + 300 * DAY) * 1000000);
}
