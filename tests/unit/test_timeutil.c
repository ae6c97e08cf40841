/* RFC 3339 formatting and parsing (common/timeutil.c). */
#include <criterion/criterion.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include "timeutil.h"

static int64_t parse_ok(const char *s)
{
	int64_t us = -1;

	cr_assert_eq(sbx_parse_rfc3339_us(s, &us), 0, "\"%s\" was refused", s);
	return us;
}

Test(timeutil, format_known_instants)
{
	char buf[SBX_RFC3339_LEN];

	sbx_format_rfc3339(0, buf);
	cr_assert_str_eq(buf, "1970-01-01T00:00:00Z");
	sbx_format_rfc3339(1764288594, buf);
	cr_assert_str_eq(buf, "2025-11-28T00:09:54Z");
	sbx_format_rfc3339_us(1764288594123456LL, buf);
	cr_assert_str_eq(buf, "2025-11-28T00:09:54.123456Z");
	sbx_format_rfc3339_us(1764288594000001LL, buf);
	cr_assert_str_eq(buf, "2025-11-28T00:09:54.000001Z");
	sbx_format_rfc3339_us(0, buf);
	cr_assert_str_eq(buf, "1970-01-01T00:00:00.000000Z");
	/* before the epoch the fraction still counts forward */
	sbx_format_rfc3339_us(-1, buf);
	cr_assert_str_eq(buf, "1969-12-31T23:59:59.999999Z");
	sbx_format_rfc3339(-1, buf);
	cr_assert_str_eq(buf, "1969-12-31T23:59:59Z");
	/* leap day */
	sbx_format_rfc3339(951782400, buf);
	cr_assert_str_eq(buf, "2000-02-29T00:00:00Z");
}

Test(timeutil, format_clamps_to_four_digit_years)
{
	char buf[SBX_RFC3339_LEN];

	sbx_format_rfc3339(INT64_MAX, buf);
	cr_assert_str_eq(buf, "9999-12-31T23:59:59Z");
	sbx_format_rfc3339(INT64_MIN, buf);
	cr_assert_str_eq(buf, "0000-01-01T00:00:00Z");
	sbx_format_rfc3339_us(INT64_MAX, buf);
	cr_assert_eq(strlen(buf), 27);
	sbx_format_rfc3339_us(INT64_MIN, buf);
	cr_assert_eq(strlen(buf), 27);
	sbx_format_rfc3339(-62135596800LL, buf); /* year 1: zero-padded */
	cr_assert_str_eq(buf, "0001-01-01T00:00:00Z");
}

Test(timeutil, round_trip_with_microseconds)
{
	char buf[SBX_RFC3339_LEN];
	static const int64_t samples[] = {
		0, 1, 999999, 1000000, 1764288594123456LL, 1764288594000000LL, -1, -1000000,
		-1234567, 253402300799999999LL, 951782400000000LL, 4102444800000000LL,
	};

	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		sbx_format_rfc3339_us(samples[i], buf);
		cr_assert_eq(parse_ok(buf), samples[i], "%lld -> %s", (long long)samples[i], buf);
	}
	/* a sweep across many days, hours and fractions */
	for (int64_t us = -86400LL * 1000000 * 800; us < 86400LL * 1000000 * 20000;
	     us += 86400LL * 1000000 * 7 + 3600LL * 1000000 * 5 + 123457) {
		sbx_format_rfc3339_us(us, buf);
		cr_assert_eq(parse_ok(buf), us, "%lld -> %s", (long long)us, buf);
	}
}

Test(timeutil, round_trip_seconds)
{
	char buf[SBX_RFC3339_LEN];

	for (int64_t s = -86400 * 400; s < 86400LL * 366 * 60; s += 86400 * 3 + 3607) {
		sbx_format_rfc3339(s, buf);
		cr_assert_eq(parse_ok(buf), s * 1000000, "%lld -> %s", (long long)s, buf);
	}
}

Test(timeutil, parse_offsets_and_forms)
{
	int64_t base = 1764288594LL * 1000000; /* 2025-11-28T00:09:54Z */

	cr_assert_eq(parse_ok("2025-11-28T00:09:54Z"), base);
	cr_assert_eq(parse_ok("2025-11-28t00:09:54z"), base);
	cr_assert_eq(parse_ok("2025-11-28 00:09:54Z"), base);
	cr_assert_eq(parse_ok("2025-11-28T00:09:54+00:00"), base);
	cr_assert_eq(parse_ok("2025-11-28T00:09:54-00:00"), base);
	cr_assert_eq(parse_ok("2025-11-28T01:09:54+01:00"), base);
	cr_assert_eq(parse_ok("2025-11-28T05:39:54+05:30"), base);
	cr_assert_eq(parse_ok("2025-11-27T19:09:54-05:00"), base);
	cr_assert_eq(parse_ok("2025-11-28T00:09:54.5Z"), base + 500000);
	cr_assert_eq(parse_ok("2025-11-28T00:09:54.123Z"), base + 123000);
	cr_assert_eq(parse_ok("2025-11-28T00:09:54.123456Z"), base + 123456);
	cr_assert_eq(parse_ok("2025-11-28T00:09:54.1234569Z"), base + 123456,
		     "digits past microseconds are dropped");
	cr_assert_eq(parse_ok("2025-11-28T00:09:54.000001+01:00"), base - 3600000000LL + 1);
	/* bare date: midnight UTC */
	cr_assert_eq(parse_ok("2025-11-28"), (base / 1000000 - 9 * 60 - 54) * 1000000);
	cr_assert_eq(parse_ok("1970-01-01"), 0);
	cr_assert_eq(parse_ok("1969-12-31T23:59:59Z"), -1000000, "the second timegm() calls -1");
	cr_assert_eq(parse_ok("2024-02-29"), parse_ok("2024-03-01") - 86400LL * 1000000);
	cr_assert_eq(parse_ok("2000-02-29T12:00:00Z"), (951782400LL + 43200) * 1000000);
}

Test(timeutil, parse_rejects_bad_input)
{
	static const char *bad[] = {
		"",
		"2025",
		"2025-11",
		"2025-11-2",
		"25-11-28",
		"2025/11/28",
		"2025-11-28T",
		"2025-11-28T00:09",
		"2025-11-28T00:09:54",       /* no zone */
		"2025-11-28T00:09:54+0100",  /* offset without colon */
		"2025-11-28T00:09:54+01",
		"2025-11-28T00:09:54+24:00",
		"2025-11-28T00:09:54+01:60",
		"2025-11-28T00:09:54.Z",     /* dot without digits */
		"2025-11-28T00:09:54ZZ",
		"2025-11-28T00:09:54Z ",
		" 2025-11-28",
		"2025-11-28x",
		"2025-13-01",
		"2025-00-10",
		"2025-11-00",
		"2025-11-31",
		"2025-02-29",                /* not a leap year */
		"1900-02-29",
		"2025-11-28T24:00:00Z",
		"2025-11-28T23:60:00Z",
		"2025-11-28T23:59:61Z",
		"2025-11-28T0a:09:54Z",
		"2025-1a-28",
		"yesterday",
	};
	int64_t us = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(sbx_parse_rfc3339_us(bad[i], &us), -EINVAL, "\"%s\" was accepted",
			     bad[i]);
		cr_assert_eq(us, 42, "\"%s\" changed the output", bad[i]);
	}
	cr_assert_eq(sbx_parse_rfc3339_us(NULL, &us), -EINVAL);
}

Test(timeutil, clocks)
{
	int64_t us = sbx_now_us(), s = sbx_now();
	time_t t = time(NULL);

	cr_assert_lt(s - t < 0 ? t - s : s - t, 2);
	cr_assert_lt(us / 1000000 - s < 0 ? s - us / 1000000 : us / 1000000 - s, 2);
	cr_assert_gt(s, 1700000000, "the clock is set");
}
