/* Durations as written in policies and on command lines (common/duration.c). */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>

#include "duration.h"

static int64_t parse_ok(const char *s)
{
	int64_t v = -12345;
	char why[256] = "";
	int rc = sbx_duration_parse(s, &v, why, sizeof(why));

	cr_assert_eq(rc, 0, "\"%s\" was refused: %s", s, why);
	return v;
}

static void parse_bad(const char *s, int want_rc, const char *substr)
{
	int64_t v = -12345;
	char why[256] = "";
	int rc = sbx_duration_parse(s, &v, why, sizeof(why));

	cr_assert_eq(rc, want_rc, "\"%s\": rc %d, want %d (%s)", s ? s : "(null)", rc, want_rc,
		     why);
	cr_assert_eq(v, -12345, "\"%s\": output changed on failure", s ? s : "(null)");
	cr_assert(strstr(why, substr) != NULL, "\"%s\": \"%s\" does not mention \"%s\"",
		  s ? s : "(null)", why, substr);
}

Test(duration, valid_forms)
{
	cr_assert_eq(parse_ok("30m"), 1800);
	cr_assert_eq(parse_ok("1h"), 3600);
	cr_assert_eq(parse_ok("1h30m"), 5400);
	cr_assert_eq(parse_ok("2d"), 2 * 86400);
	cr_assert_eq(parse_ok("1w"), 7 * 86400);
	cr_assert_eq(parse_ok("90s"), 90);
	cr_assert_eq(parse_ok("1d12h"), 36 * 3600);
	cr_assert_eq(parse_ok("1w2d3h4m5s"), 7 * 86400 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5);
	cr_assert_eq(parse_ok("90m"), 5400, "a unit may exceed the next one up");
	cr_assert_eq(parse_ok("0h30m"), 1800, "a zero part is fine when the total is not");
	cr_assert_eq(parse_ok("007m"), 420);
	cr_assert_eq(parse_ok("1s"), 1);
}

Test(duration, ten_years_is_the_limit)
{
	cr_assert_eq(parse_ok("3660d"), SBX_DURATION_MAX_SECS);
	parse_bad("3661d", -ERANGE, "too long");
	parse_bad("3660d1s", -ERANGE, "too long");
	parse_bad("99999999999999999999999s", -ERANGE, "too long");
	parse_bad("9223372036854775807s", -ERANGE, "too long");
	parse_bad("1000000w", -ERANGE, "too long");
}

Test(duration, invalid_forms_say_why)
{
	parse_bad("", -EINVAL, "empty");
	parse_bad(NULL, -EINVAL, "empty");
	parse_bad("90", -EINVAL, "missing unit");
	parse_bad("1h30", -EINVAL, "missing unit");
	parse_bad("1x", -EINVAL, "bad unit");
	parse_bad("1H", -EINVAL, "bad unit");
	parse_bad("-1h", -EINVAL, "bad duration");
	parse_bad("+1h", -EINVAL, "bad duration");
	parse_bad("1h1h", -EINVAL, "largest first");
	parse_bad("30m1h", -EINVAL, "largest first");
	parse_bad("0m", -EINVAL, "zero");
	parse_bad("0s0m", -EINVAL, "largest first");
	parse_bad("0d0h", -EINVAL, "zero");
	parse_bad("h", -EINVAL, "bad duration");
	parse_bad("1 h", -EINVAL, "bad unit");
	parse_bad(" 1h", -EINVAL, "bad duration");
	parse_bad("1h ", -EINVAL, "bad duration");
	parse_bad("1.5h", -EINVAL, "bad unit");
	parse_bad("1hm", -EINVAL, "bad duration");
	parse_bad("000000000000000000000000000000001h", -EINVAL, "too long");
}

Test(duration, why_is_optional)
{
	int64_t v = 0;

	cr_assert_eq(sbx_duration_parse("1x", &v, NULL, 0), -EINVAL);
	cr_assert_eq(sbx_duration_parse("2h", &v, NULL, 0), 0);
	cr_assert_eq(v, 7200);
}

Test(duration, format_shortest_exact)
{
	static const struct {
		int64_t secs;
		const char *text;
	} cases[] = {
		{ 5400, "1h30m" }, { 7200, "2h" },  { 86400, "1d" },   { 0, "0s" },
		{ 90, "1m30s" },   { 59, "59s" },   { 14 * 86400, "14d" }, { 36 * 3600, "1d12h" },
		{ 86400 + 1, "1d1s" },
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sbx_duration_format(cases[i].secs, buf, sizeof(buf));
		cr_assert_str_eq(buf, cases[i].text, "%lld", (long long)cases[i].secs);
	}
}

Test(duration, format_parse_round_trip)
{
	char buf[64];

	for (int64_t s = 1; s < 200000; s += 97) {
		sbx_duration_format(s, buf, sizeof(buf));
		cr_assert_eq(parse_ok(buf), s, "%lld -> %s", (long long)s, buf);
	}
	sbx_duration_format(SBX_DURATION_MAX_SECS, buf, sizeof(buf));
	cr_assert_eq(parse_ok(buf), SBX_DURATION_MAX_SECS);
}

Test(duration, format_small_buffers)
{
	char buf[4];

	memset(buf, 'X', sizeof(buf));
	sbx_duration_format(5400, buf, sizeof(buf));
	cr_assert_eq(buf[sizeof(buf) - 1], '\0', "always terminated");
	cr_assert_str_eq(buf, "1h3");
	buf[0] = 'X';
	sbx_duration_format(5400, buf, 0);
	cr_assert_eq(buf[0], 'X', "a zero-size buffer is not written");
}
