/*
 * Durations and times as people write them (policy files, --for, audit
 * queries): sbx_duration_parse with the round trip through
 * sbx_duration_format, sbx_parse_rfc3339_us with the round trip through
 * sbx_format_rfc3339_us / sbx_format_rfc3339, and sbx_cli_parse_when,
 * which tries both.  The input is the text; its first 8 bytes also serve
 * as a number for the formatters.
 */
#include "fuzz.h"

#include "client.h"
#include "duration.h"
#include "text.h"
#include "timeutil.h"

#include <errno.h>

/* RFC 3339's four-digit years: what the formatters can show. */
#define MIN_US (-62167219200LL * 1000000)
#define MAX_US (253402300799LL * 1000000 + 999999)

static void check_duration(const char *s)
{
	char why[256], text[64];
	int64_t secs = -1, back = -1;
	int rc;

	rc = sbx_duration_parse(s, &secs, why, sizeof(why));
	FUZZ_CHECK(rc == 0 || rc == -EINVAL || rc == -ERANGE, "rc %d", rc);
	if (rc != 0) {
		FUZZ_CHECK(why[0] != '\0', "a refusal without a reason");
		return;
	}
	FUZZ_CHECK(secs > 0 && secs <= SBX_DURATION_MAX_SECS, "parsed %lld", (long long)secs);
	sbx_duration_format(secs, text, sizeof(text));
	rc = sbx_duration_parse(text, &back, why, sizeof(why));
	FUZZ_CHECK(rc == 0 && back == secs, "\"%s\" -> %lld -> \"%s\" -> %lld (%s)", s,
		   (long long)secs, text, (long long)back, rc ? why : "ok");
}

static void check_time(const char *s)
{
	char text[SBX_RFC3339_LEN];
	int64_t us = 0, back = 0;

	if (sbx_parse_rfc3339_us(s, &us) != 0)
		return;
	/* Offsets may move a 0000/9999 date just outside what can be shown. */
	if (us < MIN_US || us > MAX_US)
		return;
	sbx_format_rfc3339_us(us, text);
	FUZZ_CHECK(sbx_parse_rfc3339_us(text, &back) == 0 && back == us,
		   "\"%s\" -> %lld -> \"%s\" -> %lld", s, (long long)us, text, (long long)back);
	/* Whole seconds (floor) survive the short form. */
	sbx_format_rfc3339(us / 1000000 - (us % 1000000 < 0), text);
	FUZZ_CHECK(sbx_parse_rfc3339_us(text, &back) == 0 &&
		   back == (us / 1000000 - (us % 1000000 < 0)) * 1000000,
		   "\"%s\" -> %lld -> \"%s\"", s, (long long)us, text);
}

/* Any number formats to text of the documented shape that parses back
 * (clamped to years 0000..9999). */
static void check_format(int64_t v)
{
	char text[SBX_RFC3339_LEN], dur[64];
	int64_t us = 0, clamped = v < MIN_US ? MIN_US : v > MAX_US ? MAX_US : v;

	sbx_format_rfc3339_us(v, text);
	FUZZ_CHECK(strlen(text) == 27 && sbx_parse_rfc3339_us(text, &us) == 0 && us == clamped,
		   "%lld -> \"%s\" -> %lld", (long long)v, text, (long long)us);
	sbx_format_rfc3339(v, text);
	FUZZ_CHECK(strlen(text) == 20 && sbx_parse_rfc3339_us(text, &us) == 0, "%lld -> \"%s\"",
		   (long long)v, text);
	sbx_duration_format(v, dur, sizeof(dur));
	FUZZ_CHECK(strlen(dur) > 0, "%lld formats to nothing", (long long)v);
	/* A buffer too small cuts, never overflows. */
	sbx_duration_format(v, dur, 3);
	FUZZ_CHECK(strlen(dur) < 3, "%lld overflows a 3-byte buffer", (long long)v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const int64_t now_us = 1795000000LL * 1000000; /* fixed: results must not depend on the clock */
	char *s = fuzz_str(data, size);
	int64_t us = 0, v = 0;
	int rc;

	check_duration(s);
	check_time(s);
	rc = sbx_cli_parse_when(s, now_us, &us);
	FUZZ_CHECK(rc == 0 || rc == -EINVAL, "sbx_cli_parse_when rc %d", rc);
	if (rc == 0) {
		int64_t secs, t;

		if (sbx_parse_rfc3339_us(s, &t) == 0)
			FUZZ_CHECK(us == t, "when \"%s\" is not the time it names", s);
		else
			FUZZ_CHECK(sbx_duration_parse(s, &secs, NULL, 0) == 0 &&
				   us == now_us - secs * 1000000, "when \"%s\" is not now minus it", s);
	}
	if (size >= 8) {
		memcpy(&v, data, sizeof(v));
		check_format(v);
	}
	free(s);
	return 0;
}
