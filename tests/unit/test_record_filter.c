/*
 * journal/record_filter.c: outcomes, hosts, the filters and the text
 * that lets a reader skip lines without parsing them.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <string.h>

#include "record_filter.h"

static json_t *rec(const char *text)
{
	json_error_t e;
	json_t *r = json_loads(text, 0, &e);

	cr_assert_not_null(r, "%s", e.text);
	return r;
}

Test(record_filter, outcomes_follow_the_table)
{
	static const struct {
		const char *rec, *outcome;
	} cases[] = {
		{ "{\"event\":\"access.checked\",\"outcome\":\"allowed\"}", "allowed" },
		{ "{\"event\":\"access.checked\",\"outcome\":\"denied\"}", "refused" },
		{ "{\"event\":\"access.checked\"}", NULL },
		{ "{\"event\":\"request.created\"}", "requested" },
		{ "{\"event\":\"request.approval\"}", "approved" },
		{ "{\"event\":\"grant.activated\"}", "granted" },
		{ "{\"event\":\"request.denied\"}", "denied" },
		{ "{\"event\":\"request.cancelled\"}", "cancelled" },
		{ "{\"event\":\"request.lapsed\"}", "lapsed" },
		{ "{\"event\":\"grant.expired\"}", "expired" },
		{ "{\"event\":\"grant.revoked\"}", "revoked" },
		{ "{\"event\":\"grant.revoked_here\"}", "revoked" },
		{ "{\"event\":\"policy.rejected\"}", "rejected" },
		{ "{\"event\":\"notify.failed\"}", "failed" },
		{ "{\"event\":\"broker.started\"}", NULL },
		{ "{\"event\":\"journal.sealed\"}", NULL },
		{ "{}", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_t *r = rec(cases[i].rec);
		const char *o = sbx_rec_outcome(r);

		if (cases[i].outcome) {
			cr_assert_str_eq(o ? o : "(none)", cases[i].outcome, "%s", cases[i].rec);
			cr_assert(sbx_rec_outcome_known(o));
			cr_assert_not_null(strstr(sbx_rec_outcome_list(), o));
		} else {
			cr_assert_null(o, "%s gave %s", cases[i].rec, o);
		}
		json_decref(r);
	}
	cr_assert_not(sbx_rec_outcome_known("ok"));
}

Test(record_filter, host_from_the_record_or_the_last_start)
{
	json_t *start = rec("{\"event\":\"broker.started\",\"host\":\"sbx-01\"}");
	json_t *check = rec("{\"event\":\"access.checked\",\"user\":\"erin\"}");
	json_t *fleet = rec("{\"event\":\"request.created\",\"host\":\"sbx-02\"}");
	struct sbx_rec_filter f = { .host = "sbx-01" };
	char host[64] = "";

	cr_assert_not(sbx_rec_track_host(check, host, sizeof(host)));
	cr_assert_not(sbx_rec_filter_match(check, &f, NULL), "no host known yet");
	cr_assert(sbx_rec_track_host(start, host, sizeof(host)));
	cr_assert_str_eq(host, "sbx-01");
	cr_assert(sbx_rec_filter_match(check, &f, host));
	cr_assert_not(sbx_rec_filter_match(fleet, &f, host), "its own host counts");
	f.host = "sbx-02";
	cr_assert(sbx_rec_filter_match(fleet, &f, host));
	json_decref(start);
	json_decref(check);
	json_decref(fleet);
}

Test(record_filter, every_filter_must_hold)
{
	json_t *r = rec("{\"seq\":7,\"time\":\"2025-11-28T10:00:00.000000Z\",\"event\":"
			"\"request.approval\",\"actor\":\"frank\",\"id\":5,\"user\":\"erin\","
			"\"role\":\"sandbox-admin\"}");
	struct sbx_rec_filter f = { 0 };

	cr_assert(sbx_rec_filter_match(r, &f, NULL), "no filter: everything");
	f.user = "frank";
	cr_assert(sbx_rec_filter_match(r, &f, NULL), "--user matches the actor too");
	f.user = "erin";
	cr_assert(sbx_rec_filter_match(r, &f, NULL));
	f.actor = "erin";
	cr_assert_not(sbx_rec_filter_match(r, &f, NULL), "--actor is the actor only");
	f.actor = "frank";
	f.outcome = "approved";
	f.event = "request.";
	f.role = "sandbox-admin";
	f.has_id = true;
	f.id = 5;
	f.has_since = true;
	f.since_us = 1764324000000000LL;   /* 2025-11-28T10:00:00Z */
	f.has_until = true;
	f.until_us = f.since_us + 1;
	cr_assert(sbx_rec_filter_match(r, &f, NULL));
	f.until_us = f.since_us;
	cr_assert_not(sbx_rec_filter_match(r, &f, NULL), "until is exclusive");
	f.has_until = false;
	f.outcome = "denied";
	cr_assert_not(sbx_rec_filter_match(r, &f, NULL));
	f.outcome = NULL;
	f.id = 6;
	cr_assert_not(sbx_rec_filter_match(r, &f, NULL));
	json_decref(r);
}

Test(record_filter, needle_only_for_plain_names)
{
	struct sbx_rec_filter f = { .role = "db", .actor = "frank" };
	char buf[80];

	cr_assert_str_eq(sbx_rec_filter_needle(&f, buf, sizeof(buf)), "\"frank\"");
	f.user = "erin";
	cr_assert_str_eq(sbx_rec_filter_needle(&f, buf, sizeof(buf)), "\"erin\"");
	f.user = "er\"in";
	cr_assert_null(sbx_rec_filter_needle(&f, buf, sizeof(buf)), "needs escaping");
	f.user = "jos\xc3\xa9";
	cr_assert_null(sbx_rec_filter_needle(&f, buf, sizeof(buf)), "written as \\u00e9");
	f = (struct sbx_rec_filter){ .event = "grant." };
	cr_assert_null(sbx_rec_filter_needle(&f, buf, sizeof(buf)));
}
