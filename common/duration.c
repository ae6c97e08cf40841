#include "duration.h"
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
	char unit;
	int64_t secs;
} units[] = {
	{ 'w', 7 * 86400 }, { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
};
#define N_UNITS (sizeof(units) / sizeof(units[0]))

static int unit_index(char c)
{
	for (size_t i = 0; i < N_UNITS; i++)
		if (units[i].unit == c)
			return (int)i;
	return -1;
}

int sbx_duration_parse(const char *s, int64_t *secs, char *why, size_t whylen)
{
	int64_t total = 0;
	int last_unit = -1;
	const char *p = s;

	if (!s || !*s)
		return sbx_whyf(why, whylen, -EINVAL, "empty duration: write e.g. 30m, 1h or 1h30m");
	if (strlen(s) > 32)
		return sbx_whyf(why, whylen, -EINVAL, "duration \"%.32s...\" is too long", s);
	while (*p) {
		int64_t n = 0;
		const char *digits = p;
		int idx;

		if (!isdigit((unsigned char)*p))
			return sbx_whyf(why, whylen, -EINVAL,
				    "bad duration \"%s\": write a number and a unit (s, m, h, d, w), e.g. 30m or 1h30m", s);
		while (isdigit((unsigned char)*p)) {
			if (n > (SBX_DURATION_MAX_SECS + 9) / 10)
				return sbx_whyf(why, whylen, -ERANGE, "duration \"%s\" is too long (at most 10 years)", s);
			n = n * 10 + (*p - '0');
			p++;
		}
		if (p - digits > 12)
			return sbx_whyf(why, whylen, -ERANGE, "duration \"%s\" is too long (at most 10 years)", s);
		if (!*p)
			return sbx_whyf(why, whylen, -EINVAL,
				    "missing unit in duration \"%s\": write e.g. 90s, 90m or 90h", s);
		idx = unit_index(*p);
		if (idx < 0)
			return sbx_whyf(why, whylen, -EINVAL,
				    "bad unit in duration \"%s\": units are s, m, h, d, w", s);
		if (idx <= last_unit)
			return sbx_whyf(why, whylen, -EINVAL,
				    "bad duration \"%s\": give each unit once, largest first (e.g. 1h30m)", s);
		last_unit = idx;
		if (n > SBX_DURATION_MAX_SECS / units[idx].secs)
			return sbx_whyf(why, whylen, -ERANGE, "duration \"%s\" is too long (at most 10 years)", s);
		total += n * units[idx].secs;
		if (total > SBX_DURATION_MAX_SECS)
			return sbx_whyf(why, whylen, -ERANGE, "duration \"%s\" is too long (at most 10 years)", s);
		p++;
	}
	if (total == 0)
		return sbx_whyf(why, whylen, -EINVAL, "duration \"%s\" is zero", s);
	*secs = total;
	return 0;
}

void sbx_duration_format(int64_t secs, char *buf, size_t buflen)
{
	size_t off = 0;

	if (!buflen)
		return;
	buf[0] = '\0';
	if (secs <= 0) {
		snprintf(buf, buflen, "%s0s", secs < 0 ? "-" : "");
		return;
	}
	/* Weeks are left out on purpose: "14d" reads better than "2w". */
	for (size_t i = 1; i < N_UNITS && off < buflen; i++) {
		int64_t n = secs / units[i].secs;
		int w;

		if (!n)
			continue;
		secs -= n * units[i].secs;
		w = snprintf(buf + off, buflen - off, "%lld%c", (long long)n, units[i].unit);
		if (w < 0)
			return;
		off += (size_t)w;
	}
}
