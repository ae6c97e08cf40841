#ifndef SBX_TIMEUTIL_H
#define SBX_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

#define SBX_RFC3339_LEN 32 /* buffer size for either format below */

/* Wall clock, microseconds since the epoch. */
int64_t sbx_now_us(void);
/* Wall clock, seconds since the epoch. */
int64_t sbx_now(void);

/* "2026-11-28T00:09:54.123456Z" */
void sbx_format_rfc3339_us(int64_t us, char buf[SBX_RFC3339_LEN]);
/* "2026-11-28T00:09:54Z" */
void sbx_format_rfc3339(int64_t secs, char buf[SBX_RFC3339_LEN]);

/* Parse RFC 3339 in UTC ("Z" or "+00:00"; other offsets are applied),
 * with or without fractional seconds, or a bare date "2026-11-28"
 * (midnight UTC).  Returns 0 or -EINVAL. */
int sbx_parse_rfc3339_us(const char *s, int64_t *us);

#endif
