/*
 * Alerts: the alerts: section's errors at their line:col, the documented
 * examples load, windows count per user and raise once per window, a
 * replay never raises, the number of keys is bounded, and working hours
 * hold in their own time zone (winter and summer, past midnight).
 */
#include "alerts.h"
#include "policy.h"
#include "timeutil.h"

#include <criterion/criterion.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lines 1-11; alerts: starts on line 12. */
#define BASE \
	"broker: { host: sbx-01 }\n" \
	"users: { erin: {}, bob: {}, breakglass: {} }\n" \
	"groups:\n" \
	"  exempt: [breakglass]\n" \
	"  sre: [erin]\n" \
	"roles:\n" \
	"  sandbox-admin:\n" \
	"    hosts: [\"sbx-*\"]\n" \
	"    eligible: { groups: [sre] }\n" \
	"    approvers: { users: [breakglass] }\n" \
	"    max_duration: 2h\n"

static struct sbx_settings settings;

static struct sbx_policy *load(const char *alerts, struct sbx_policy_errors *e)
{
	struct sbx_policy *p = NULL;
	size_t len = strlen(BASE) + strlen(alerts) + 1;
	char *buf = malloc(len);

	cr_assert_not_null(buf);
	snprintf(buf, len, "%s%s", BASE, alerts);
	memset(&settings, 0, sizeof(settings));
	if (sbx_policy_load_buffer(buf, strlen(buf), "t.yaml", &p, &settings, e) < 0)
		p = NULL;
	free(buf);
	return p;
}

/* The policy fails with exactly one error, at line:col, containing msg. */
static void expect_error(const char *alerts, int line, int col, const char *msg)
{
	struct sbx_policy_errors e = { 0 };
	struct sbx_policy *p = load(alerts, &e);

	cr_assert_null(p, "the policy should not load:\n%s", alerts);
	cr_assert_eq(e.n, 1, "one error expected, got %zu (first: %s)", e.n,
		     e.n ? e.v[0].msg : "-");
	cr_expect_eq(e.v[0].line, line, "line %d, expected %d (%s)", e.v[0].line, line, e.v[0].msg);
	cr_expect_eq(e.v[0].col, col, "col %d, expected %d (%s)", e.v[0].col, col, e.v[0].msg);
	cr_expect(strstr(e.v[0].msg, msg), "'%s' does not say '%s'", e.v[0].msg, msg);
	sbx_policy_errors_free(&e);
}

static struct sbx_policy *load_ok(const char *alerts)
{
	struct sbx_policy_errors e = { 0 };
	struct sbx_policy *p = load(alerts, &e);

	if (!p)
		sbx_policy_errors_print(stderr, &e);
	cr_assert_not_null(p, "the policy should load");
	sbx_policy_errors_free(&e);
	return p;
}

/* ---- parsing --------------------------------------------------------------- */

/* The examples of docs/policy.md, "alerts", as written there. */
#define DOC_EXAMPLES \
	"alerts:\n" \
	"  refused-logins:\n" \
	"    description: 5 refused logins for one user in 10 minutes\n" \
	"    event: access.checked\n" \
	"    outcome: denied\n" \
	"    count: 5\n" \
	"    within: 10m\n" \
	"    per: user\n" \
	"  exempt-login:\n" \
	"    description: any login by a break-glass account\n" \
	"    event: access.checked\n" \
	"    group: exempt\n" \
	"  admin-after-hours:\n" \
	"    description: a privileged grant activated outside working hours\n" \
	"    event: grant.activated\n" \
	"    role: sandbox-admin\n" \
	"    outside: \"Mon-Fri 08:00-19:00 Europe/Berlin\"\n" \
	"  policy-reload:\n" \
	"    event: policy.loaded\n" \
	"  policy-rejected:\n" \
	"    event: policy.rejected\n" \
	"  journal-failure:\n" \
	"    event: journal.failed\n" \
	"  journal-recovered:\n" \
	"    event: journal.recovered\n" \
	"  drift:\n" \
	"    event: drift.detected\n" \
	"    within: 1h\n"

Test(alerts_parse, documented_examples_load)
{
	struct sbx_policy *p = load_ok(DOC_EXAMPLES);
	const struct sbx_alert_rule *r = &settings.alerts.rule[0];

	cr_assert_eq(settings.alerts.n, 8);
	cr_expect_str_eq(r->name, "refused-logins");
	cr_expect_str_eq(r->event, "access.checked");
	cr_expect_str_eq(r->outcome, "denied");
	cr_expect_eq(r->count, 5);
	cr_expect_eq(r->within, 600);
	cr_expect_eq(r->per, SBX_ALERT_PER_USER);
	r = &settings.alerts.rule[2];
	cr_expect(r->hours.set && r->hours.outside);
	cr_expect_eq(r->hours.days, 0x3e); /* Mon..Fri */
	cr_expect_eq(r->hours.from, 8 * 60);
	cr_expect_eq(r->hours.to, 19 * 60);
	cr_expect_str_eq(r->hours.tz, "Europe/Berlin");
	cr_expect_eq(settings.alerts.rule[7].count, 1);
	cr_expect_eq(settings.alerts.rule[7].within, 3600);
	sbx_policy_free(p);
}

Test(alerts_parse, event_prefix)
{
	struct sbx_policy *p = load_ok("alerts:\n  any-grant: { event: \"grant.*\" }\n"
				       "  any-session: { event: session. }\n");

	cr_expect_str_eq(settings.alerts.rule[0].event, "grant.");
	cr_expect(settings.alerts.rule[0].event_prefix);
	cr_expect(settings.alerts.rule[1].event_prefix);
	sbx_policy_free(p);
}

Test(alerts_parse, unknown_event_at_its_value)
{
	expect_error("alerts:\n  x:\n    event: access.chekced\n", 14, 12,
		     "unknown event 'access.chekced'");
	expect_error("alerts:\n  x: { event: grunt.* }\n", 13, 15, "unknown event 'grunt.'");
}

Test(alerts_parse, unknown_field_at_its_key)
{
	expect_error("alerts:\n  x:\n    event: access.checked\n    fields:\n      sevrice: sshd\n",
		     16, 7, "unknown field 'sevrice'");
}

Test(alerts_parse, unknown_key_role_group)
{
	expect_error("alerts:\n  x:\n    event: access.checked\n    cuont: 5\n", 15, 5,
		     "unknown key 'cuont' in alert 'x'");
	expect_error("alerts:\n  x: { event: grant.activated, role: sandbox-admn }\n", 13, 38,
		     "unknown role 'sandbox-admn'");
	expect_error("alerts:\n  x: { event: access.checked, group: nobody-here }\n", 13, 38,
		     "unknown group 'nobody-here'");
}

Test(alerts_parse, rule_shape_errors)
{
	expect_error("alerts:\n  x: { outcome: denied }\n", 13, 3, "alert 'x' needs event");
	expect_error("alerts:\n  x: { event: access.checked, count: 5 }\n", 13, 3,
		     "count 5 but no within");
	expect_error("alerts:\n  x: { event: access.checked, count: 0, within: 1m }\n", 13, 38,
		     "count must be a whole number");
	expect_error("alerts:\n  x: { event: access.checked, per: host, within: 1m }\n", 13, 36,
		     "per must be user or role");
	expect_error("alerts:\n  x: { event: alert.raised }\n", 13, 15, "an alert never raises another");
	expect_error("alerts:\n  x: { event: access.checked }\n  x: { event: policy.loaded }\n", 14, 3,
		     "duplicate alert 'x'");
}

Test(alerts_parse, hours_errors)
{
	expect_error("alerts:\n  x: { event: access.checked, outside: \"Mon-Fry 08:00-19:00\" }\n",
		     13, 40, "not a list of days");
	expect_error("alerts:\n  x: { event: access.checked, during: \"Mon-Fri 08:00-25:00\" }\n",
		     13, 39, "not a time range");
	expect_error("alerts:\n  x: { event: access.checked, during: \"daily 08:00-19:00 Mars/Olympus\" }\n",
		     13, 39, "unknown time zone 'Mars/Olympus'");
	expect_error("alerts:\n  x: { event: access.checked, during: \"daily 08:00-19:00 ../../etc/passwd\" }\n",
		     13, 39, "unknown time zone");
	expect_error("alerts:\n  x:\n    event: access.checked\n    during: daily 08:00-19:00\n"
		     "    outside: daily 08:00-19:00\n", 16, 14, "outside or during, not both");
}

/* ---- the engine ------------------------------------------------------------------- */

static json_t *rec(uint64_t seq, int64_t secs, const char *event, const char *user,
		   const char *outcome)
{
	char t[SBX_RFC3339_LEN];
	json_t *r;

	sbx_format_rfc3339_us(secs * 1000000, t);
	r = json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)seq, "time", t, "event", event,
		      "actor", "sbx");
	if (user)
		json_object_set_new(r, "user", json_string(user));
	if (outcome)
		json_object_set_new(r, "outcome", json_string(outcome));
	return r;
}

/* Feed one record; how many alerts it raised (and the first in *first). */
static size_t feed(struct sbx_alerts *a, const struct sbx_policy *p, json_t *r, bool replaying,
		   json_t **first)
{
	json_t *out = sbx_alerts_engine_feed(a, p, r, replaying);
	size_t n;

	cr_assert_not_null(out);
	n = json_array_size(out);
	if (first)
		*first = n ? json_incref(json_array_get(out, 0)) : NULL;
	json_decref(out);
	json_decref(r);
	return n;
}

#define T0 1796601600 /* 2026-12-07T00:00:00Z, a Monday */

Test(alerts_engine, five_refusals_raise_once_per_window_per_user)
{
	struct sbx_policy *p = load_ok(DOC_EXAMPLES);
	struct sbx_alerts *a = sbx_alerts_engine_new(&settings.alerts);
	json_t *al = NULL, *seqs;
	uint64_t seq = 1;

	cr_assert_not_null(a);
	/* Four of erin's and many of bob's allowed ones: nothing. */
	for (int i = 0; i < 4; i++) {
		cr_expect_eq(feed(a, p, rec(seq++, T0 + i, "access.checked", "erin", "denied"), false,
				  NULL), 0);
		cr_expect_eq(feed(a, p, rec(seq++, T0 + i, "access.checked", "bob", "allowed"), false,
				  NULL), 0);
	}
	/* bob's first four refusals do not add to erin's. */
	for (int i = 0; i < 4; i++)
		cr_expect_eq(feed(a, p, rec(seq++, T0 + 10 + i, "access.checked", "bob", "denied"),
				  false, NULL), 0);
	/* erin's fifth within 10 minutes: one alert naming her five seqs. */
	cr_assert_eq(feed(a, p, rec(100, T0 + 60, "access.checked", "erin", "denied"), false, &al),
		     1);
	cr_expect_str_eq(json_string_value(json_object_get(al, "rule")), "refused-logins");
	cr_expect_str_eq(json_string_value(json_object_get(al, "matched")), "access.checked");
	cr_expect_str_eq(json_string_value(json_object_get(al, "user")), "erin");
	cr_expect_eq(json_integer_value(json_object_get(al, "count")), 5);
	cr_expect_eq(json_integer_value(json_object_get(al, "within")), 600);
	seqs = json_object_get(al, "seqs");
	cr_assert_eq(json_array_size(seqs), 5);
	cr_expect_eq(json_integer_value(json_array_get(seqs, 0)), 1);
	cr_expect_eq(json_integer_value(json_array_get(seqs, 4)), 100);
	json_decref(al);
	/* Ten more in the same window: no flood. */
	for (int i = 0; i < 10; i++)
		cr_expect_eq(feed(a, p, rec(200 + i, T0 + 61 + i, "access.checked", "erin", "denied"),
				  false, NULL), 0);
	/* bob's fifth is his own alert. */
	cr_expect_eq(feed(a, p, rec(300, T0 + 100, "access.checked", "bob", "denied"), false, NULL), 1);
	/* After the window erin's count starts again: 4 nothing, the 5th raises. */
	for (int i = 0; i < 4; i++)
		cr_expect_eq(feed(a, p, rec(400 + i, T0 + 700 + i, "access.checked", "erin", "denied"),
				  false, NULL), 0);
	cr_expect_eq(feed(a, p, rec(404, T0 + 705, "access.checked", "erin", "denied"), false, NULL), 1);
	sbx_alerts_engine_free(a);
	sbx_policy_free(p);
}

Test(alerts_engine, the_window_slides)
{
	struct sbx_policy *p = load_ok(DOC_EXAMPLES);
	struct sbx_alerts *a = sbx_alerts_engine_new(&settings.alerts);

	/* One refusal every 3 minutes: never 5 within 10 minutes. */
	for (int i = 0; i < 20; i++)
		cr_expect_eq(feed(a, p, rec((uint64_t)i + 1, T0 + i * 180, "access.checked", "erin",
					    "denied"), false, NULL), 0);
	/* One every 2 minutes 30: the 5th is within 10 minutes of the 1st. */
	for (int i = 0; i < 4; i++)
		cr_expect_eq(feed(a, p, rec(100 + (uint64_t)i, T0 + 10000 + i * 150, "access.checked",
					    "erin", "denied"), false, NULL), 0);
	cr_expect_eq(feed(a, p, rec(104, T0 + 10000 + 4 * 150 - 1, "access.checked", "erin", "denied"),
			  false, NULL), 1);
	sbx_alerts_engine_free(a);
	sbx_policy_free(p);
}

Test(alerts_engine, replay_fills_windows_and_never_raises)
{
	struct sbx_policy *p = load_ok(DOC_EXAMPLES);
	struct sbx_alerts *a = sbx_alerts_engine_new(&settings.alerts);

	/* Three before a restart, two after: the fifth raises. */
	for (int i = 0; i < 3; i++)
		cr_expect_eq(feed(a, p, rec((uint64_t)i + 1, T0 + i, "access.checked", "erin", "denied"),
				  true, NULL), 0);
	cr_expect_eq(feed(a, p, rec(4, T0 + 5, "access.checked", "erin", "denied"), false, NULL), 0);
	cr_expect_eq(feed(a, p, rec(5, T0 + 6, "access.checked", "erin", "denied"), false, NULL), 1);
	/* A window that filled during a replay was raised then: quiet now. */
	for (int i = 0; i < 5; i++)
		cr_expect_eq(feed(a, p, rec(10 + (uint64_t)i, T0 + 100 + i, "access.checked", "bob",
					    "denied"), true, NULL), 0);
	cr_expect_eq(feed(a, p, rec(20, T0 + 110, "access.checked", "bob", "denied"), false, NULL), 0);
	/* policy.loaded raises on every match, but never in a replay. */
	cr_expect_eq(feed(a, p, rec(30, T0 + 120, "policy.loaded", NULL, NULL), true, NULL), 0);
	cr_expect_eq(feed(a, p, rec(31, T0 + 121, "policy.loaded", NULL, NULL), false, NULL), 1);
	cr_expect_eq(feed(a, p, rec(32, T0 + 122, "policy.loaded", NULL, NULL), false, NULL), 1);
	/* Alerts never match alerts. */
	cr_expect_eq(feed(a, p, rec(33, T0 + 123, "alert.raised", "erin", "denied"), false, NULL), 0);
	sbx_alerts_engine_free(a);
	sbx_policy_free(p);
}

Test(alerts_engine, a_reload_keeps_the_windows_of_unchanged_rules)
{
	struct sbx_policy *p = load_ok(DOC_EXAMPLES);
	struct sbx_alerts *a = sbx_alerts_engine_new(&settings.alerts);
	struct sbx_alerts_conf changed;

	for (int i = 0; i < 4; i++)
		(void)feed(a, p, rec((uint64_t)i + 1, T0 + i, "access.checked", "erin", "denied"), false,
			   NULL);
	cr_assert_eq(sbx_alerts_engine_set(a, &settings.alerts), 0);
	cr_expect_eq(feed(a, p, rec(5, T0 + 5, "access.checked", "erin", "denied"), false, NULL), 1);
	for (int i = 0; i < 4; i++)
		(void)feed(a, p, rec(10 + (uint64_t)i, T0 + 1000 + i, "access.checked", "erin",
				     "denied"), false, NULL);
	changed = settings.alerts;
	changed.rule[0].count = 6;
	cr_assert_eq(sbx_alerts_engine_set(a, &changed), 0);
	/* A changed rule starts empty: one more is 1 of 6. */
	cr_expect_eq(feed(a, p, rec(20, T0 + 1010, "access.checked", "erin", "denied"), false, NULL), 0);
	sbx_alerts_engine_free(a);
	sbx_policy_free(p);
}

Test(alerts_engine, keys_are_bounded_least_recent_first)
{
	struct sbx_policy *p = load_ok("alerts:\n  two: { event: access.checked, count: 2, "
				       "within: 1h, per: user }\n");
	struct sbx_alerts *a = sbx_alerts_engine_new(&settings.alerts);
	char name[32];

	for (int i = 0; i <= SBX_ALERT_KEYS_MAX; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		cr_expect_eq(feed(a, p, rec((uint64_t)i + 1, T0 + i, "access.checked", name, NULL), false,
				  NULL), 0);
	}
	/* user0 was evicted for the newest: its second match is its first. */
	cr_expect_eq(feed(a, p, rec(1000, T0 + 1000, "access.checked", "user0", NULL), false, NULL), 0);
	/* The most recent ones are still counted. */
	snprintf(name, sizeof(name), "user%d", SBX_ALERT_KEYS_MAX);
	cr_expect_eq(feed(a, p, rec(1001, T0 + 1001, "access.checked", name, NULL), false, NULL), 1);
	sbx_alerts_engine_free(a);
	sbx_policy_free(p);
}

/* Refusals under SBX_ALERT_KEYS_MAX made-up names (ssh logins anyone can
 * attempt) do not wipe out the count of the user under attack: the table
 * gives up a key with fewer matches first. */
Test(alerts_engine, many_other_names_do_not_evict_a_users_count)
{
	struct sbx_policy *p = load_ok(DOC_EXAMPLES);
	struct sbx_alerts *a = sbx_alerts_engine_new(&settings.alerts);
	char name[32];
	uint64_t seq = 1;

	cr_assert_not_null(a);
	for (int i = 0; i < 4; i++)
		cr_expect_eq(feed(a, p, rec(seq++, T0 + i, "access.checked", "erin", "denied"), false,
				  NULL), 0);
	for (int i = 0; i < 2 * SBX_ALERT_KEYS_MAX; i++) {
		snprintf(name, sizeof(name), "x%d", i);
		cr_expect_eq(feed(a, p, rec(seq++, T0 + 10 + i / 10, "access.checked", name,
					    "denied"), false, NULL), 0);
	}
	cr_expect_eq(feed(a, p, rec(seq++, T0 + 120, "access.checked", "erin", "denied"), false,
			  NULL), 1, "erin's fifth refusal within 10 minutes raises");
	sbx_alerts_engine_free(a);
	sbx_policy_free(p);
}

Test(alerts_engine, group_and_role_and_prefix)
{
	struct sbx_policy *p = load_ok(DOC_EXAMPLES "  any-grant-end: { event: grant., fields: "
				       "{ role: sandbox-admin } }\n");
	struct sbx_alerts *a = sbx_alerts_engine_new(&settings.alerts);
	json_t *r;

	cr_expect_eq(feed(a, p, rec(1, T0, "access.checked", "erin", "allowed"), false, NULL), 0);
	cr_expect_eq(feed(a, p, rec(2, T0, "access.checked", "breakglass", "allowed"), false, NULL),
		     1);
	r = rec(3, T0 + 12 * 3600, "grant.expired", "erin", NULL);
	json_object_set_new(r, "role", json_string("sandbox-admin"));
	cr_expect_eq(feed(a, p, r, false, NULL), 1);
	r = rec(4, T0 + 12 * 3600, "grant.expired", "erin", NULL);
	json_object_set_new(r, "role", json_string("sandbox-user"));
	cr_expect_eq(feed(a, p, r, false, NULL), 0);
	sbx_alerts_engine_free(a);
	sbx_policy_free(p);
}

/* ---- working hours ------------------------------------------------------------------- */

static struct sbx_alert_hours hours(const char *text)
{
	struct sbx_alert_hours h;
	char why[256];

	cr_assert_eq(sbx_alert_hours_parse(text, false, NULL, &h, why, sizeof(why)), 0, "%s: %s",
		     text, why);
	return h;
}

static int64_t at(const char *rfc3339)
{
	int64_t us;

	cr_assert_eq(sbx_parse_rfc3339_us(rfc3339, &us), 0);
	return us / 1000000;
}

Test(alerts_hours, berlin_winter_and_summer)
{
	struct sbx_alert_hours h = hours("Mon-Fri 08:00-19:00 Europe/Berlin");

	/* Winter: CET, UTC+1. */
	cr_expect(sbx_alert_hours_contain(&h, at("2026-12-07T07:00:00Z")));  /* Mon 08:00 */
	cr_expect_not(sbx_alert_hours_contain(&h, at("2026-12-07T06:59:00Z"))); /* 07:59 */
	cr_expect(sbx_alert_hours_contain(&h, at("2026-12-07T17:59:00Z")));  /* 18:59 */
	cr_expect_not(sbx_alert_hours_contain(&h, at("2026-12-07T18:00:00Z"))); /* 19:00 */
	cr_expect_not(sbx_alert_hours_contain(&h, at("2026-12-05T10:00:00Z"))); /* Saturday */
	/* Sunday 23:30 UTC is Monday 00:30 in Berlin: still outside. */
	cr_expect_not(sbx_alert_hours_contain(&h, at("2026-12-06T23:30:00Z")));
	/* Summer: CEST, UTC+2. */
	cr_expect(sbx_alert_hours_contain(&h, at("2026-07-06T06:00:00Z")));  /* Mon 08:00 */
	cr_expect_not(sbx_alert_hours_contain(&h, at("2026-07-06T05:59:00Z")));
	cr_expect_not(sbx_alert_hours_contain(&h, at("2026-07-06T17:00:00Z"))); /* 19:00 */
}

Test(alerts_hours, other_zones_and_utc)
{
	struct sbx_alert_hours ny = hours("Mon-Fri 08:00-19:00 America/New_York");
	struct sbx_alert_hours tokyo = hours("Mon-Fri 08:00-19:00 Asia/Tokyo");
	struct sbx_alert_hours utc = hours("Sat,Sun 00:00-24:00 UTC");
	struct sbx_alert_hours berlin = hours("Mon-Fri 08:00-19:00 Europe/Berlin");

	/* Monday 13:00 UTC: 08:00 in New York (EST), 22:00 in Tokyo. */
	cr_expect(sbx_alert_hours_contain(&ny, at("2026-12-07T13:00:00Z")));
	cr_expect_not(sbx_alert_hours_contain(&ny, at("2026-12-07T12:59:00Z")));
	cr_expect_not(sbx_alert_hours_contain(&tokyo, at("2026-12-07T13:00:00Z")));
	/* Sunday 23:30 UTC is Monday 08:30 in Tokyo. */
	cr_expect(sbx_alert_hours_contain(&tokyo, at("2026-12-06T23:30:00Z")));
	cr_expect(sbx_alert_hours_contain(&utc, at("2026-12-06T23:59:00Z")));
	cr_expect_not(sbx_alert_hours_contain(&utc, at("2026-12-07T00:00:00Z")));
	/* Switching zones back and forth leaves each answer the same. */
	for (int i = 0; i < 3; i++) {
		cr_expect(sbx_alert_hours_contain(&berlin, at("2026-12-07T07:00:00Z")));
		cr_expect_not(sbx_alert_hours_contain(&ny, at("2026-12-07T07:00:00Z")));
	}
}

Test(alerts_hours, past_midnight_belongs_to_its_start_day)
{
	struct sbx_alert_hours h = hours("Fri 22:00-06:00 UTC");

	cr_expect(sbx_alert_hours_contain(&h, at("2026-12-04T22:00:00Z")));  /* Fri 22:00 */
	cr_expect(sbx_alert_hours_contain(&h, at("2026-12-05T05:59:00Z")));  /* Sat 05:59 */
	cr_expect_not(sbx_alert_hours_contain(&h, at("2026-12-05T06:00:00Z")));
	cr_expect_not(sbx_alert_hours_contain(&h, at("2026-12-04T03:00:00Z"))); /* Fri 03:00 (Thu's) */
	cr_expect_not(sbx_alert_hours_contain(&h, at("2026-12-05T22:30:00Z"))); /* Sat 22:30 */
}

Test(alerts_engine, outside_working_hours)
{
	struct sbx_policy *p = load_ok(DOC_EXAMPLES);
	struct sbx_alerts *a = sbx_alerts_engine_new(&settings.alerts);
	json_t *r, *al = NULL;

	/* Monday 10:00 Berlin: inside, no alert. */
	r = rec(1, at("2026-12-07T09:00:00Z"), "grant.activated", "erin", NULL);
	json_object_set_new(r, "role", json_string("sandbox-admin"));
	cr_expect_eq(feed(a, p, r, false, NULL), 0);
	/* Monday 21:00 Berlin: outside. */
	r = rec(2, at("2026-12-07T20:00:00Z"), "grant.activated", "erin", NULL);
	json_object_set_new(r, "role", json_string("sandbox-admin"));
	cr_assert_eq(feed(a, p, r, false, &al), 1);
	cr_expect_str_eq(json_string_value(json_object_get(al, "rule")), "admin-after-hours");
	cr_expect_str_eq(json_string_value(json_object_get(al, "outside")),
			 "Mon-Fri 08:00-19:00 Europe/Berlin");
	json_decref(al);
	sbx_alerts_engine_free(a);
	sbx_policy_free(p);
}

Test(alerts_engine, windows_survive_a_snapshot)
{
	struct sbx_policy *p = load_ok(DOC_EXAMPLES);
	struct sbx_alerts *a = sbx_alerts_engine_new(&settings.alerts);
	struct sbx_alerts *b = sbx_alerts_engine_new(&settings.alerts);
	struct sbx_alerts_conf changed = settings.alerts;
	struct sbx_alerts *c;
	json_t *saved;

	for (int i = 0; i < 4; i++)
		(void)feed(a, p, rec((uint64_t)i + 1, T0 + i, "access.checked", "erin", "denied"), false,
			   NULL);
	for (int i = 0; i < 5; i++)
		(void)feed(a, p, rec(10 + (uint64_t)i, T0 + i, "access.checked", "bob", "denied"), false,
			   NULL);
	saved = sbx_alerts_save(a);
	cr_assert_not_null(saved);
	cr_assert_eq(sbx_alerts_load(b, saved), 0);
	/* erin's fifth raises after the restart; bob stays quiet. */
	cr_expect_eq(feed(b, p, rec(20, T0 + 30, "access.checked", "erin", "denied"), false, NULL), 1);
	cr_expect_eq(feed(b, p, rec(21, T0 + 31, "access.checked", "bob", "denied"), false, NULL), 0);
	/* A rule changed since the snapshot starts empty. */
	changed.rule[0].within = 900;
	c = sbx_alerts_engine_new(&changed);
	cr_assert_eq(sbx_alerts_load(c, saved), 0);
	cr_expect_eq(feed(c, p, rec(20, T0 + 30, "access.checked", "erin", "denied"), false, NULL), 0);
	json_decref(saved);
	sbx_alerts_engine_free(a);
	sbx_alerts_engine_free(b);
	sbx_alerts_engine_free(c);
	sbx_policy_free(p);
}

Test(alerts_parse, empty_section_and_wrong_shape)
{
	struct sbx_policy *p = load_ok("alerts:\n");

	cr_expect_eq(settings.alerts.n, 0);
	sbx_policy_free(p);
	expect_error("alerts: [refused-logins]\n", 12, 9, "alerts must be a mapping");
	expect_error("alerts:\n  x: access.checked\n", 13, 6, "alert 'x' must be a mapping");
}
