/*
 * Text from outside: what sbx accepts as a name, and how outside text is
 * made safe for a log line or a terminal.  Libc only, no state: the PAM
 * and NSS modules use these too.
 */
#ifndef SBX_TEXT_H
#define SBX_TEXT_H

#include <stddef.h>

/* Copy in to out, replacing control characters and invalid UTF-8 with '?',
 * truncating to outlen-1 bytes.  Returns out. */
char *sbx_sanitize(const char *in, char *out, size_t outlen);

/* Is s (n bytes) well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF, no NUL)?  1 or 0. */
int sbx_utf8_valid(const char *s, size_t n);

/* A name sbx accepts: 1..SBX_NAME_MAX bytes of [A-Za-z0-9._-], not
 * starting with '-' or '.', optionally '@domain' in the same alphabet. */
int sbx_name_valid(const char *s);

/* Say why something failed: format into why (when given), sanitized,
 * because reasons quote outside text; return rc.  The one way errors carry
 * their words:  return sbx_whyf(why, whylen, -EINVAL, "bad %s", what); */
int sbx_whyf(char *why, size_t whylen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
