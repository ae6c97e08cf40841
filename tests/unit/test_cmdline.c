/* common/cmdline.c: the one form a sudo command line is recorded in. */
#include <criterion/criterion.h>
#include <string.h>

#include "cmdline.h"

static const char *esc(char *const argv[], char *buf, size_t len, bool *cut)
{
	sbx_cmdline_escape(argv, buf, len, cut);
	return buf;
}

Test(cmdline, plain_args_stay_as_they_are)
{
	char *argv[] = { "/usr/bin/id", "-u", "x=1,2", NULL };
	char buf[256];
	bool cut = true;

	cr_assert_str_eq(esc(argv, buf, sizeof(buf), &cut), "/usr/bin/id -u x=1,2");
	cr_assert(!cut);
	cr_assert(sbx_cmdline_valid(buf));
}

Test(cmdline, control_quotes_and_bad_utf8_are_escaped)
{
	char *argv[] = { "printf", "a\nb\033", "x\xffy", "say \"hi\"", "", "\xc3\xa9t\xc3\xa9", NULL };
	char buf[256];

	cr_assert_str_eq(esc(argv, buf, sizeof(buf), NULL),
			 "printf \"a\\nb\\x1b\" \"x\\xffy\" \"say \\\"hi\\\"\" \"\" \"\xc3\xa9t\xc3\xa9\"");
	cr_assert(sbx_cmdline_valid(buf));
}

Test(cmdline, long_lines_are_cut_with_a_marker)
{
	static char big[100 * 1024 + 1];
	char *argv[] = { "true", big, "tail", NULL };
	char buf[2049];
	bool cut = false;
	size_t n;

	memset(big, 'x', sizeof(big) - 1);
	n = sbx_cmdline_escape(argv, buf, sizeof(buf), &cut);
	cr_assert(cut);
	cr_assert_eq(n, strlen(buf));
	cr_assert_lt(n, sizeof(buf));
	cr_assert_not_null(strstr(buf, " ...["));
	cr_assert(sbx_cmdline_valid(buf));
}

Test(cmdline, a_cut_never_splits_an_escape)
{
	static char ctl[4000];
	char *argv[] = { "x", ctl, NULL };
	char buf[300];

	memset(ctl, '\n', sizeof(ctl) - 1);
	sbx_cmdline_escape(argv, buf, sizeof(buf), NULL);
	/* every backslash is followed by its 'n' */
	for (char *p = buf; (p = strchr(p, '\\')); p += 2)
		cr_assert_eq(p[1], 'n');
	cr_assert_not_null(strstr(buf, "\" ...["));
}

Test(cmdline, valid_refuses_control_characters)
{
	cr_assert(!sbx_cmdline_valid("a\nb"));
	cr_assert(!sbx_cmdline_valid("a\tb"));
	cr_assert(!sbx_cmdline_valid("a\x7f"));
	cr_assert(!sbx_cmdline_valid("x\xff"));
	cr_assert(sbx_cmdline_valid("caf\xc3\xa9"));
}
