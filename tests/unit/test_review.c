/* Access reviews: folding records into rows and flags (cli/review_agg.c)
 * and the renderings' escaping (cli/review_out.c). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "review.h"
#include "review_agg.h"
#include "timeutil.h"

static const char POLICY[] =
	"broker: { host: sbx-01 }\n"
	"profiles:\n"
	"  audited: { max_duration: 4h, review_every: 30d }\n"
	"groups:\n"
	"  ops: [ann, ben]\n"
	"  leads: [lea, lou]\n"
	"users:\n"
	"  ann: { manager: lea }\n"
	"  ben: { manager: lea }\n"
	"  cid: { manager: lou }\n"
	"  lea: {}\n"
	"  lou: {}\n"
	"roles:\n"
	"  login:\n"
	"    hosts: [\"sbx-*\"]\n"
	"    standing: { groups: [ops], users: [cid] }\n"
	"  admin:\n"
	"    hosts: [\"sbx-*\"]\n"
	"    unix_group: { name: sbx-adm, gid: 61000 }\n"
	"    eligible: { groups: [ops] }\n"
	"    approvers: { groups: [leads] }\n"
	"    max_duration: 2h\n"
	"  audit:\n"
	"    profile: audited\n"
	"    hosts: [\"sbx-*\"]\n"
	"    eligible: { users: [cid] }\n"
	"    approvers: { groups: [leads] }\n"
	"  logs:\n"
	"    hosts: [\"sbx-*\"]\n"
	"    eligible: { users: [ann] }\n"
	"    auto_approve: true\n"
	"    max_duration: 1h\n";

#define DAY (86400LL * 1000000)
/* The period: 2026-07-01 .. 2026-10-01 */
static int64_t T0, T1;
static struct sbx_policy *P;
static struct sbx_review *RV;

static void setup(void)
{
	struct sbx_policy_errors errs = { 0 };

	cr_assert_eq(sbx_review_parse_quarter("2026Q3", &T0, &T1), 0);
	cr_assert_eq(sbx_policy_load_buffer(POLICY, strlen(POLICY), "t.yaml", &P, NULL, &errs), 0,
		     "%s", errs.n ? errs.v[0].msg : "");
	sbx_policy_errors_free(&errs);
}

static void teardown(void)
{
	sbx_review_free(RV);
	RV = NULL;
	sbx_policy_free(P);
}

static void start(const char *role, const char *user)
{
	struct sbx_review_opts o = { .since_us = T0, .until_us = T1, .now_us = T1, .role = role,
				     .user = user, .unused_after = 30 * 86400 };

	RV = sbx_review_new(P, &o);
	cr_assert_not_null(RV);
}

/* A record at day d of the period (negative: before it), plus JSON fields. */
static void add(double d, const char *event, const char *actor, const char *fields)
{
	char t[SBX_RFC3339_LEN], *text = NULL;
	json_t *rec;

	sbx_format_rfc3339_us(T0 + (int64_t)(d * DAY), t);
	cr_assert(asprintf(&text, "{\"time\":\"%s\",\"event\":\"%s\",\"actor\":\"%s\"%s%s}", t, event,
			   actor, fields[0] ? "," : "", fields) > 0);
	rec = json_loads(text, 0, NULL);
	cr_assert_not_null(rec, "%s", text);
	cr_assert_eq(sbx_review_add(RV, rec), 0);
	json_decref(rec);
	free(text);
}

/* request.created, approvals by each of approvers (comma list, may be
 * empty) an hour later, grant.activated then. */
static void grant(double d, unsigned id, const char *user, const char *role, int dur,
		  const char *approvers, const char *reason)
{
	char f[512], who[64];
	const char *p = approvers;

	snprintf(f, sizeof(f), "\"id\":%u,\"user\":\"%s\",\"role\":\"%s\",\"duration\":%d,"
		 "\"reason\":\"%s\",\"approvals_needed\":%d", id, user, role, dur, reason,
		 *approvers ? 1 : 0);
	add(d, "request.created", user, f);
	snprintf(f, sizeof(f), "\"id\":%u,\"user\":\"%s\",\"role\":\"%s\"", id, user, role);
	while (*p) {
		size_t n = strcspn(p, ",");

		snprintf(who, sizeof(who), "%.*s", (int)n, p);
		add(d + 1.0 / 24, "request.approval", who, f);
		p += n + (p[n] == ',');
	}
	snprintf(f, sizeof(f), "\"id\":%u,\"user\":\"%s\",\"role\":\"%s\",\"duration\":%d", id, user,
		 role, dur);
	add(d + (*approvers ? 1.0 / 24 : 0), "grant.activated", "sbx", f);
}

static const struct sbx_review_row *row(const char *role, const char *user)
{
	for (size_t i = 0; i < sbx_review_n_rows(RV); i++) {
		const struct sbx_review_row *r = sbx_review_row_at(RV, i);

		if (strcmp(r->role, role) == 0 && strcmp(r->user, user) == 0)
			return r;
	}
	return NULL;
}

static void login(double d, const char *user, const char *role, const char *outcome)
{
	char f[256];

	snprintf(f, sizeof(f), "\"user\":\"%s\",\"outcome\":\"%s\",\"role\":\"%s\"", user, outcome,
		 role);
	add(d, "access.checked", "sbx", f);
}

TestSuite(review, .init = setup, .fini = teardown);

Test(review, rows_come_from_the_policy_with_their_source)
{
	start(NULL, NULL);
	add(-10, "policy.loaded", "sbx", "\"roles\":4");
	cr_assert_eq(sbx_review_finish(RV), 0);
	/* login: ann, ben (ops), cid (by name); admin: ann, ben; audit: cid; logs: ann */
	cr_assert_eq(sbx_review_n_rows(RV), 7);
	cr_assert_eq(row("login", "cid")->access, SBX_RA_STANDING);
	cr_assert_str_eq(row("login", "cid")->source, "policy file, by name");
	cr_assert_str_eq(row("login", "ann")->source, "group ops (policy file)");
	cr_assert_eq(row("admin", "ben")->access, SBX_RA_ELIGIBLE);
	cr_assert_null(row("admin", "cid"));
	cr_assert_null(row("login", "lea"));
}

Test(review, grants_count_only_inside_the_period)
{
	start(NULL, NULL);
	grant(-1, 1, "ann", "admin", 3600, "lea", "before the period");
	grant(0, 2, "ann", "admin", 3600, "lea", "first day counts");
	grant(91.9, 3, "ann", "admin", 1800, "lou", "last day counts");
	grant(92, 4, "ann", "admin", 3600, "lea", "the end is outside");
	cr_assert_eq(sbx_review_finish(RV), 0);
	cr_assert_eq(row("admin", "ann")->grants, 2);
	cr_assert_eq(row("admin", "ann")->grant_secs, 5400);
	cr_assert_eq(row("admin", "ann")->n_reasons, 2);
	cr_assert_str_eq(row("admin", "ann")->reasons[0].s, "first day counts");
	cr_assert_eq(sbx_review_role_find(RV, "admin")->week[0], 1);
	cr_assert_eq(sbx_review_role_find(RV, "admin")->week[13], 1);
}

Test(review, max_duration_needs_two_and_half)
{
	start("admin", NULL);
	/* ann: 2 of 3 at the 2h max: flagged.  ben: 1 of 3: not. */
	grant(1, 1, "ann", "admin", 7200, "lea", "r");
	grant(2, 2, "ann", "admin", 7200, "lou", "r");
	grant(3, 3, "ann", "admin", 3600, "lea", "r");
	grant(1, 4, "ben", "admin", 7200, "lea", "r");
	grant(2, 5, "ben", "admin", 60, "lou", "r");
	grant(3, 6, "ben", "admin", 60, "lea", "r");
	cr_assert_eq(sbx_review_finish(RV), 0);
	cr_assert_eq(row("admin", "ann")->at_max, 2);
	cr_assert(row("admin", "ann")->flags & SBX_RF_MAX_DURATION);
	cr_assert_eq(row("admin", "ben")->at_max, 1);
	cr_assert_not(row("admin", "ben")->flags & SBX_RF_MAX_DURATION);
	/* Two approvers each: never "same approver". */
	cr_assert_not(row("admin", "ann")->flags & SBX_RF_SAME_APPROVER);
	cr_assert_eq(row("admin", "ann")->n_approvers, 2);
}

Test(review, same_approver_every_time)
{
	start("admin", NULL);
	grant(1, 1, "ann", "admin", 60, "lea", "r");
	grant(5, 2, "ann", "admin", 60, "lea", "r");
	grant(1, 3, "ben", "admin", 60, "lea", "r"); /* only one: not "every time" */
	cr_assert_eq(sbx_review_finish(RV), 0);
	cr_assert(row("admin", "ann")->flags & SBX_RF_SAME_APPROVER);
	cr_assert_eq(row("admin", "ann")->approvers[0].n, 2);
	cr_assert_eq(row("admin", "ann")->wait_secs_sum, 7200);
	cr_assert_not(row("admin", "ben")->flags & SBX_RF_SAME_APPROVER);
	/* Flagged rows come first. */
	cr_assert_str_eq(sbx_review_row_at(RV, 0)->user, "ann");
}

Test(review, auto_approved_only_flagged_for_sensitive_roles)
{
	start(NULL, "ann");
	grant(1, 1, "ann", "logs", 600, "", "r");  /* logs: no unix_group, no review */
	grant(2, 2, "ann", "admin", 600, "", "r"); /* admin has a unix_group */
	cr_assert_eq(sbx_review_finish(RV), 0);
	cr_assert_eq(row("logs", "ann")->auto_approved, 1);
	cr_assert_not(row("logs", "ann")->flags & SBX_RF_AUTO_SENSITIVE);
	cr_assert(row("admin", "ann")->flags & SBX_RF_AUTO_SENSITIVE);
}

Test(review, denied_requests_leave_nothing_behind)
{
	start("admin", "ann");
	add(1, "request.created", "ann", "\"id\":7,\"user\":\"ann\",\"role\":\"admin\","
	    "\"reason\":\"denied one\",\"approvals_needed\":1");
	add(1.1, "request.denied", "lea", "\"id\":7,\"user\":\"ann\",\"role\":\"admin\"");
	/* A grant whose request is not in the journal (id reused) counts
	 * without a reason. */
	add(2, "grant.activated", "sbx", "\"id\":7,\"user\":\"ann\",\"role\":\"admin\","
	    "\"duration\":60");
	cr_assert_eq(sbx_review_finish(RV), 0);
	cr_assert_eq(row("admin", "ann")->grants, 1);
	cr_assert_eq(row("admin", "ann")->n_reasons, 0);
	cr_assert_eq(row("admin", "ann")->approved, 0);
}

Test(review, unused_standing_access)
{
	start("login", NULL);
	add(-60, "policy.loaded", "sbx", "");
	login(80, "ann", "login", "allowed");  /* 12 days before the end */
	login(50, "ben", "login", "allowed");  /* 42 days: unused */
	login(85, "ben", "login", "denied");   /* a denial is no use */
	login(-5, "cid", "login", "allowed");  /* before the period only */
	cr_assert_eq(sbx_review_finish(RV), 0);
	cr_assert_not(row("login", "ann")->flags & SBX_RF_UNUSED);
	cr_assert(row("login", "ben")->flags & SBX_RF_UNUSED);
	cr_assert_eq(row("login", "ben")->logins, 1);
	cr_assert(row("login", "cid")->flags & SBX_RF_UNUSED);
	cr_assert_eq(row("login", "cid")->logins, 0);
	cr_assert_neq(row("login", "cid")->last_login_us, 0);
}

Test(review, unused_needs_the_policy_to_be_old_enough)
{
	start("login", "ann");
	add(80, "policy.loaded", "sbx", "");
	cr_assert_eq(sbx_review_finish(RV), 0);
	cr_assert_not(row("login", "ann")->flags & SBX_RF_UNUSED);
}

Test(review, drift_findings_fold_open_and_resolved)
{
	start(NULL, NULL);
	add(1, "drift.detected", "sbx", "\"kind\":\"group_member\",\"subject\":\"sbx-adm\","
	    "\"user\":\"ben\"");
	add(2, "drift.detected", "sbx", "\"kind\":\"sudoers\",\"subject\":\"/etc/sudoers.d/x:3\","
	    "\"user\":\"ann\",\"role\":\"admin\"");
	add(3, "drift.resolved", "sbx", "\"kind\":\"group_member\",\"subject\":\"sbx-adm\","
	    "\"user\":\"ben\"");
	add(4, "drift.detected", "sbx", "\"kind\":\"sudoers\",\"subject\":\"line 9\"");
	add(5, "drift.resolved", "sbx", "\"kind\":\"never-seen\"");  /* tolerated */
	add(6, "drift.detected", "sbx", "");                          /* no fields at all */
	cr_assert_eq(sbx_review_finish(RV), 0);
	struct sbx_review_summary s;

	sbx_review_summary(RV, &s);
	cr_assert_eq(s.drift_open, 3);
	cr_assert_eq(row("login", "ben")->drift_open, 0);
	cr_assert_eq(row("admin", "ann")->drift_open, 1);
	cr_assert(row("admin", "ann")->flags & SBX_RF_DRIFT);
	cr_assert_eq(row("login", "ann")->drift_open, 0); /* the finding names role admin */
}

Test(review, overdue_and_decisions)
{
	start(NULL, NULL);
	add(-40, "policy.loaded", "sbx", "");
	/* audit: review_every 30d from day -40: due day -10, overdue. */
	cr_assert_eq(sbx_review_finish(RV), 0);
	cr_assert(sbx_review_role_find(RV, "audit")->overdue);
	cr_assert(row("audit", "cid")->flags & SBX_RF_OVERDUE);
	sbx_review_free(RV);

	start(NULL, NULL);
	add(-40, "policy.loaded", "sbx", "");
	add(70, "review.certified", "lea", "\"user\":\"cid\",\"role\":\"audit\",\"comment\":\"ok\"");
	add(71, "review.revoked", "lea", "\"user\":\"ben\",\"role\":\"login\",\"comment\":\"left\"");
	cr_assert_eq(sbx_review_finish(RV), 0);
	cr_assert_not(sbx_review_role_find(RV, "audit")->overdue);
	cr_assert_eq(sbx_review_role_find(RV, "audit")->next_due_us, T0 + 100 * DAY);
	cr_assert_not(row("audit", "cid")->flags & SBX_RF_OVERDUE);
	cr_assert_str_eq(row("audit", "cid")->decided_by, "lea");
	cr_assert_not(row("audit", "cid")->revoked);
	cr_assert(row("login", "ben")->revoked);
	cr_assert(row("login", "ben")->flags & SBX_RF_REVOKED_STANDING);
}

Test(review, quarters)
{
	int64_t a, b;
	char t[SBX_RFC3339_LEN];

	cr_assert_eq(sbx_review_parse_quarter("2026Q4", &a, &b), 0);
	sbx_format_rfc3339_us(a, t);
	cr_assert_str_eq(t, "2026-10-01T00:00:00.000000Z");
	sbx_format_rfc3339_us(b, t);
	cr_assert_str_eq(t, "2027-01-01T00:00:00.000000Z");
	cr_assert_eq(sbx_review_parse_quarter("2026Q5", &a, &b), -EINVAL);
	cr_assert_eq(sbx_review_parse_quarter("2026Q", &a, &b), -EINVAL);
	cr_assert_eq(sbx_review_parse_quarter("2026Q1x", &a, &b), -EINVAL);
	cr_assert_eq(sbx_review_parse_quarter("26Q1", &a, &b), -EINVAL);
}

/* Markup and separators from the journal stay text in every format. */
Test(review, renderings_escape_what_was_recorded)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	start("admin", "ann");
	grant(1, 1, "ann", "admin", 60, "lea", "<script>x</script> \\\"q\\\" a,b|c\\n");
	cr_assert_eq(sbx_review_finish(RV), 0);

	f = open_memstream(&out, &len);
	cr_assert_eq(sbx_review_write(f, RV, SBX_REVIEW_HTML), 0);
	fclose(f);
	cr_assert_null(strstr(out, "<script>"));
	cr_assert_not_null(strstr(out, "&lt;script&gt;x&lt;/script&gt; &quot;q&quot; a,b|c? (1)"));
	free(out);

	f = open_memstream(&out, &len);
	cr_assert_eq(sbx_review_write(f, RV, SBX_REVIEW_CSV), 0);
	fclose(f);
	cr_assert_not_null(strstr(out, ",\"<script>x</script> \"\"q\"\" a,b|c? (1)\","), "%s", out);
	free(out);

	f = open_memstream(&out, &len);
	cr_assert_eq(sbx_review_write(f, RV, SBX_REVIEW_MD), 0);
	fclose(f);
	cr_assert_not_null(strstr(out, "| \\<script\\>x\\</script\\> \"q\" a,b\\|c? (1) |"), "%s", out);
	free(out);

	f = open_memstream(&out, &len);
	cr_assert_eq(sbx_review_write(f, RV, SBX_REVIEW_JSON), 0);
	fclose(f);
	json_t *j = json_loads(out, 0, NULL);
	cr_assert_not_null(j, "%s", out);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(json_object_get(
		json_array_get(json_object_get(j, "rows"), 0), "reasons"), 0), "text")),
		"<script>x</script> \"q\" a,b|c\n");
	json_decref(j);
	free(out);
}

/* A requester's reason that a spreadsheet would run as a formula is
 * text in the CSV (a leading '), the empty cells' "-" stays as it is. */
Test(review, csv_cells_are_never_formulas)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f;

	start("admin", "ann");
	grant(1, 1, "ann", "admin", 60, "", "=HYPERLINK(\\\"http://x\\\")");
	grant(2, 2, "ann", "admin", 60, "", "@SUM(1)");
	cr_assert_eq(sbx_review_finish(RV), 0);
	f = open_memstream(&out, &len);
	cr_assert_eq(sbx_review_write(f, RV, SBX_REVIEW_CSV), 0);
	fclose(f);
	cr_assert_null(strstr(out, ",=HYPERLINK"), "%s", out);
	cr_assert_null(strstr(out, ",\"=HYPERLINK"), "%s", out);
	cr_assert_not_null(strstr(out, ",\"'=HYPERLINK(\"\"http://x\"\") (1); @SUM(1) (1)\","),
			   "%s", out);
	cr_assert_not_null(strstr(out, ",-,-,"), "%s", out);
	free(out);
}
