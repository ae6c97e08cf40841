/*
 * Outside text (common/text.h): sbx_utf8_valid must agree with an
 * independent RFC 3629 decoder on any bytes; sbx_sanitize must always give
 * valid UTF-8 without control characters, C1 controls or bidi overrides,
 * cut to the buffer; sbx_name_valid must accept only what the comment
 * promises.  The first byte picks the output buffer size, so truncation
 * in the middle of a sequence is reached too.
 */
#include "fuzz.h"

#include "sbx_proto.h"
#include "text.h"

#include <stdbool.h>

/* Independent of text.c on purpose: a strict decoder (no overlong forms,
 * no surrogates, nothing above U+10FFFF, no NUL) that, for terminal text,
 * also rejects what must never reach a terminal. */
static bool utf8_ok(const unsigned char *s, size_t n, bool terminal)
{
	size_t i = 0;

	while (i < n) {
		unsigned int cp, c = s[i];
		size_t len;

		if (c < 0x80) {
			if (c == 0 || (terminal && (c < 0x20 || c == 0x7f)))
				return false;
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			len = 2;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			len = 3;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			len = 4;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (i + len > n)
			return false;
		for (size_t k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		if (terminal && ((cp >= 0x80 && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
				 (cp >= 0x2066 && cp <= 0x2069)))
			return false;
		i += len;
	}
	return true;
}

static bool terminal_safe_utf8(const unsigned char *s, size_t n)
{
	return utf8_ok(s, n, true);
}

static bool name_alphabet(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-' || *s == '@'))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t outlen, len;
	char *in, *out, *again, why[128];

	if (size < 1)
		return 0;
	/* 0..255: 0 and 1 are the edge cases of the size check. */
	outlen = data[0];
	/* The raw bytes, NULs and all, as a frame's STR or a form value
	 * reaches the check. */
	FUZZ_CHECK(sbx_utf8_valid((const char *)data + 1, size - 1) ==
		   utf8_ok(data + 1, size - 1, false), "sbx_utf8_valid disagrees with RFC 3629");
	in = fuzz_str(data + 1, size - 1);
	out = malloc(outlen + 1);
	again = malloc(outlen + 1);
	FUZZ_CHECK(out && again, "out of memory");
	out[outlen] = again[outlen] = 'X'; /* a guard byte just past what we gave */

	FUZZ_CHECK(sbx_sanitize(in, out, outlen) == out, "sbx_sanitize returns out");
	if (outlen) {
		len = strlen(out);
		FUZZ_CHECK(len < outlen, "output of %zu bytes in a %zu-byte buffer", len, outlen);
		FUZZ_CHECK(terminal_safe_utf8((const unsigned char *)out, len),
			   "sanitized text is not terminal-safe UTF-8");
		FUZZ_CHECK(sbx_utf8_valid(out, len), "sbx_utf8_valid refuses sanitized text");
		/* Sanitizing what is already safe changes nothing. */
		sbx_sanitize(out, again, outlen);
		FUZZ_CHECK(strcmp(out, again) == 0, "sbx_sanitize is not idempotent");
		/* Safe text that fits comes through unchanged. */
		if (strlen(in) < outlen && terminal_safe_utf8((const unsigned char *)in, strlen(in)))
			FUZZ_CHECK(strcmp(in, out) == 0, "safe text was changed");
	}
	FUZZ_CHECK(out[outlen] == 'X', "sbx_sanitize wrote past the buffer");
	sbx_sanitize(NULL, out, outlen);

	if (sbx_name_valid(in)) {
		const char *at = strchr(in, '@');

		FUZZ_CHECK(strlen(in) >= 1 && strlen(in) <= SBX_NAME_MAX, "name length");
		FUZZ_CHECK(name_alphabet(in), "name outside the alphabet");
		FUZZ_CHECK(in[0] != '-' && in[0] != '.', "name starts with - or .");
		FUZZ_CHECK(!at || (at != in && at[1] && !strchr(at + 1, '@')), "bad @ in a name");
		FUZZ_CHECK(terminal_safe_utf8((const unsigned char *)in, strlen(in)),
			   "a valid name is not safe text");
	}

	/* Reasons quote outside text through sbx_whyf. */
	FUZZ_CHECK(sbx_whyf(why, sizeof(why), -22, "bad name \"%s\"", in) == -22, "sbx_whyf rc");
	FUZZ_CHECK(terminal_safe_utf8((const unsigned char *)why, strlen(why)),
		   "sbx_whyf gave unsafe text");

	free(in);
	free(out);
	free(again);
	return 0;
}
