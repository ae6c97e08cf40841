/*
 * How long the journal keeps records (settings.h: sbx_retention_of;
 * docs/policy.md, profiles' retention; docs/audit.md, "Retention").
 * Where roles disagree the longest wins: a record about any role may be
 * what an auditor of that role asks for.
 */
#include "config.h"

#include "policy.h"
#include "settings.h"

#include <string.h>

static int64_t profile_retention(const struct sbx_policy *p, const char *name)
{
	for (size_t i = 0; name && i < p->n_profiles; i++)
		if (strcmp(p->profiles[i].name, name) == 0)
			return p->profiles[i].retention;
	return 0;
}

int64_t sbx_retention_of(const struct sbx_policy *p, const struct sbx_settings *s)
{
	int64_t longest = s->audit.retention;

	/* Records are not only about roles (logins, policy loads): with no
	 * role, the default alone decides. */
	for (size_t i = 0; i < p->n_roles; i++) {
		int64_t r = profile_retention(p, p->roles[i].profile);

		if (!r)
			r = s->audit.retention;
		if (!r)
			return 0; /* this role keeps everything */
		if (r > longest)
			longest = r;
	}
	return longest;
}
