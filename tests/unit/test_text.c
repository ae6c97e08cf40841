/* Sanitizing outside text and checking names (common/text.c). */
#include <criterion/criterion.h>

#include <string.h>

#include "sbx_proto.h"
#include "text.h"

static const char *san(const char *in, size_t outlen)
{
	static char out[512];

	cr_assert_leq(outlen, sizeof(out));
	memset(out, 'X', sizeof(out));
	cr_assert_eq(sbx_sanitize(in, out, outlen), out);
	cr_assert_leq(strlen(out), outlen - 1, "longer than the buffer allows");
	return out;
}

Test(text, sanitize_keeps_plain_and_utf8_text)
{
	cr_assert_str_eq(san("alice", 64), "alice");
	cr_assert_str_eq(san("", 64), "");
	cr_assert_str_eq(san(NULL, 64), "");
	cr_assert_str_eq(san("debugging the payment job #42", 64),
			 "debugging the payment job #42");
	cr_assert_str_eq(san("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91", 64),
			 "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91");
	cr_assert_str_eq(san("~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", 64),
			 "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./");
}

Test(text, sanitize_replaces_control_characters)
{
	cr_assert_str_eq(san("a\nb", 64), "a?b");
	cr_assert_str_eq(san("a\rb\tc", 64), "a?b?c");
	cr_assert_str_eq(san("\x01\x7f", 64), "??");
	cr_assert_str_eq(san("bell\a", 64), "bell?");
	/* a forged log line stays on one line */
	cr_assert_str_eq(san("x\nsbx: info: grant.activated user=root", 64),
			 "x?sbx: info: grant.activated user=root");
}

Test(text, sanitize_neutralizes_escape_sequences)
{
	/* ESC is what makes a sequence; without it the rest is inert text */
	cr_assert_str_eq(san("\x1b[31mred\x1b[0m", 64), "?[31mred?[0m");
	cr_assert_str_eq(san("\x1b]0;title\x07", 64), "?]0;title?");
	cr_assert_eq(strchr(san("\x1b[2J\x1b[H", 64), 0x1b), NULL);
}

Test(text, sanitize_replaces_c1_and_bidi_controls)
{
	/* U+009B (CSI as a C1 control) encoded in UTF-8: both bytes replaced */
	cr_assert_str_eq(san("a\xc2\x9b" "31mb", 64), "a??31mb");
	/* U+0085 NEL */
	cr_assert_str_eq(san("a\xc2\x85" "b", 64), "a??b");
	/* raw C1 bytes are invalid UTF-8 */
	cr_assert_str_eq(san("a\x9b" "b", 64), "a?b");
	/* U+202E right-to-left override and U+2066 left-to-right isolate */
	cr_assert_str_eq(san("x\xe2\x80\xae" "y", 64), "x???y");
	cr_assert_str_eq(san("x\xe2\x81\xa6" "y", 64), "x???y");
	/* U+00A0 (just past C1) is fine */
	cr_assert_str_eq(san("a\xc2\xa0" "b", 64), "a\xc2\xa0" "b");
}

Test(text, sanitize_replaces_invalid_utf8)
{
	cr_assert_str_eq(san("\xff", 64), "?");
	cr_assert_str_eq(san("a\xc3", 64), "a?", "sequence cut by the end");
	cr_assert_str_eq(san("a\xc3(b", 64), "a?(b", "bad continuation");
	cr_assert_str_eq(san("\xc0\xaf", 64), "??", "overlong '/'");
	cr_assert_str_eq(san("\xe0\x80\xaf", 64), "???", "overlong, three bytes");
	cr_assert_str_eq(san("\xed\xa0\x80", 64), "???", "UTF-16 surrogate");
	cr_assert_str_eq(san("\xf4\x90\x80\x80", 64), "????", "beyond U+10FFFF");
	cr_assert_str_eq(san("\xf8\x88\x80\x80\x80", 64), "?????", "five-byte form");
	cr_assert_str_eq(san("\x80", 64), "?", "lone continuation");
}

Test(text, sanitize_truncates_at_character_boundaries)
{
	const char *out;

	cr_assert_str_eq(san("abcdef", 4), "abc");
	cr_assert_str_eq(san("abc", 4), "abc");
	cr_assert_str_eq(san("abcd", 1), "");
	/* "ab" + euro sign (3 bytes): 5 bytes do not fit in 4 */
	out = san("ab\xe2\x82\xac", 5);
	cr_assert_str_eq(out, "ab", "never half a character");
	out = san("ab\xe2\x82\xac", 6);
	cr_assert_str_eq(out, "ab\xe2\x82\xac");
	out = san("\xf0\x9f\x94\x91z", 4);
	cr_assert_str_eq(out, "");
	/* a replacement still fits when a character would not */
	out = san("ab\n", 4);
	cr_assert_str_eq(out, "ab?");
}

Test(text, sanitize_zero_length_writes_nothing)
{
	char out[4] = "XYZ";

	cr_assert_eq(sbx_sanitize("abc", out, 0), out);
	cr_assert_str_eq(out, "XYZ");
}

Test(text, name_valid_accepts)
{
	char longest[SBX_NAME_MAX + 1];

	cr_assert(sbx_name_valid("alice"));
	cr_assert(sbx_name_valid("a"));
	cr_assert(sbx_name_valid("sandbox-admin"));
	cr_assert(sbx_name_valid("svc_backup.2"));
	cr_assert(sbx_name_valid("Erin"));
	cr_assert(sbx_name_valid("erin@example.org"));
	cr_assert(sbx_name_valid("a-"));
	memset(longest, 'n', SBX_NAME_MAX);
	longest[SBX_NAME_MAX] = '\0';
	cr_assert(sbx_name_valid(longest), "exactly SBX_NAME_MAX bytes");
}

Test(text, name_valid_refuses)
{
	char toolong[SBX_NAME_MAX + 2];

	cr_assert_not(sbx_name_valid(NULL));
	cr_assert_not(sbx_name_valid(""));
	cr_assert_not(sbx_name_valid("-rf"), "looks like an option");
	cr_assert_not(sbx_name_valid(".hidden"));
	cr_assert_not(sbx_name_valid("a b"));
	cr_assert_not(sbx_name_valid("a/b"));
	cr_assert_not(sbx_name_valid("../etc"));
	cr_assert_not(sbx_name_valid("a:b"));
	cr_assert_not(sbx_name_valid("a\nb"));
	cr_assert_not(sbx_name_valid("caf\xc3\xa9"));
	cr_assert_not(sbx_name_valid("@example.org"));
	cr_assert_not(sbx_name_valid("erin@"));
	cr_assert_not(sbx_name_valid("a@b@c"));
	cr_assert_not(sbx_name_valid("a$"));
	memset(toolong, 'n', SBX_NAME_MAX + 1);
	toolong[SBX_NAME_MAX + 1] = '\0';
	cr_assert_not(sbx_name_valid(toolong), "SBX_NAME_MAX + 1 bytes");
}
