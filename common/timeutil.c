#include "timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t sbx_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sbx_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

/* RFC 3339 has four-digit years: clamp to 0000-01-01 .. 9999-12-31 so the
 * text always has the same shape and fits SBX_RFC3339_LEN. */
#define RFC3339_MIN_SECS (-62167219200LL)
#define RFC3339_MAX_SECS 253402300799LL

/* "YYYY-MM-DDTHH:MM:SS" into date (20 bytes with the NUL). */
static void format_date(int64_t secs, char date[20])
{
	struct tm tm;
	time_t t;

	if (secs < RFC3339_MIN_SECS)
		secs = RFC3339_MIN_SECS;
	if (secs > RFC3339_MAX_SECS)
		secs = RFC3339_MAX_SECS;
	t = (time_t)secs;
	if (!gmtime_r(&t, &tm)) {
		memcpy(date, "1970-01-01T00:00:00", 20);
		return;
	}
	/* The modulos only tell the compiler what the clamp guarantees. */
	snprintf(date, 20, "%04u-%02u-%02uT%02u:%02u:%02u", (unsigned)(tm.tm_year + 1900) % 10000u,
		 (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u,
		 (unsigned)tm.tm_hour % 100u, (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
}

void sbx_format_rfc3339_us(int64_t us, char buf[SBX_RFC3339_LEN])
{
	int64_t secs = us / 1000000;
	int frac = (int)(us % 1000000);
	char date[20];

	if (frac < 0) {
		frac += 1000000;
		secs -= 1;
	}
	if (secs < RFC3339_MIN_SECS || secs > RFC3339_MAX_SECS)
		frac = secs < RFC3339_MIN_SECS ? 0 : 999999;
	format_date(secs, date);
	snprintf(buf, SBX_RFC3339_LEN, "%s.%06uZ", date, (unsigned)frac % 1000000u);
}

void sbx_format_rfc3339(int64_t secs, char buf[SBX_RFC3339_LEN])
{
	char date[20];

	format_date(secs, date);
	snprintf(buf, SBX_RFC3339_LEN, "%sZ", date);
}

static int days_in_month(int y, int mo)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return mo == 2 && leap ? 29 : days[mo - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil).  Unlike timegm() it has no -1 sentinel that collides
 * with 1969-12-31T23:59:59. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int sbx_parse_rfc3339_us(const char *s, int64_t *us)
{
	int y, mo, d, h = 0, mi = 0, se = 0;
	int64_t frac = 0, off = 0, t;
	const char *p = s;

	if (!s || digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d))
		return -EINVAL;
	if (*p) {
		if (*p != 'T' && *p != 't' && *p != ' ')
			return -EINVAL;
		p++;
		if (digits(&p, 2, &h) || *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' ||
		    digits(&p, 2, &se))
			return -EINVAL;
		if (*p == '.') {
			int n = 0;

			p++;
			if (!isdigit((unsigned char)*p))
				return -EINVAL;
			while (isdigit((unsigned char)*p)) {
				if (n < 6) {
					frac = frac * 10 + (*p - '0');
					n++;
				}
				p++;
			}
			while (n++ < 6)
				frac *= 10;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p == '-' ? -1 : 1, oh, om;

			p++;
			if (digits(&p, 2, &oh) || *p++ != ':' || digits(&p, 2, &om) || oh > 23 || om > 59)
				return -EINVAL;
			off = sign * (oh * 3600 + om * 60);
		} else {
			return -EINVAL;
		}
		if (*p)
			return -EINVAL;
	}
	/* timegm() would quietly turn Feb 31 into Mar 3. */
	if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
	    se > 60)
		return -EINVAL;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
	*us = (t - off) * 1000000 + frac;
	return 0;
}
