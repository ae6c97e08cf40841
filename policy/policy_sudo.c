/*
 * A role's sudo: rules (docs/policy.md, docs/sudo.md): which commands its
 * grants cover (allow:) and which need a one-off approval each time they
 * run (approve_each:).  Patterns are fnmatch(3) patterns without flags,
 * matched against the whole command line in the escaped form sbx_sudo
 * records ("/usr/bin/systemctl restart nginx", arguments with spaces in
 * double quotes): '*' matches any text, '/' and spaces included.
 */
#include "config.h"

#include "policy.h"

#include <fnmatch.h>
#include <string.h>

#define PATTERN_MAX 1024

bool sbx_policy_sudo_pattern_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > PATTERN_MAX)
		return false;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if (*c < 0x20 || *c == 0x7f)
			return false;
	return true;
}

static const char *first_match(const struct sbx_strlist *l, const char *command)
{
	for (size_t i = 0; i < l->n; i++)
		if (fnmatch(l->v[i], command, 0) == 0)
			return l->v[i];
	return NULL;
}

enum sbx_sudo_rule sbx_policy_sudo_rule(const struct sbx_role *r, const char *command,
					const char **pattern)
{
	const char *m;

	if (pattern)
		*pattern = NULL;
	if ((m = first_match(&r->sudo_approve_each, command))) {
		if (pattern)
			*pattern = m;
		return SBX_SUDO_APPROVE_EACH;
	}
	if ((m = first_match(&r->sudo_allow, command))) {
		if (pattern)
			*pattern = m;
		return SBX_SUDO_ALLOWED;
	}
	return r->sudo_allow.n ? SBX_SUDO_NOT_ALLOWED : SBX_SUDO_FREE;
}
