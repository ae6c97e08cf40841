/* Durations as people write them in policies and on command lines. */
#ifndef SBX_DURATION_H
#define SBX_DURATION_H

#include <stddef.h>
#include <stdint.h>

#define SBX_DURATION_MAX_SECS (10LL * 366 * 86400) /* ten years: anything longer is a typo */

/* Parse "90s", "30m", "1h", "1h30m", "2d", "1w", "1d12h".  Units: s m h d w,
 * each at most once, largest first; no sign, no spaces, no bare numbers,
 * no zero total.  Returns 0, or -EINVAL with a reason in why ("missing
 * unit in \"90\": write 90s, 90m or 90h"), or -ERANGE beyond
 * SBX_DURATION_MAX_SECS. */
int sbx_duration_parse(const char *s, int64_t *secs, char *why, size_t whylen);

/* Shortest exact form: 5400 -> "1h30m", 7200 -> "2h", 0 -> "0s". */
void sbx_duration_format(int64_t secs, char *buf, size_t buflen);

#endif
