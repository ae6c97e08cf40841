/*
 * Values from the directory as the broker reads them (ldap/sbx_ldap.c):
 * member and manager DNs become user names through sbx_ldap_uid_of_dn.
 * The input is "ATTR\nDN": the uid attribute the policy names and the
 * DN the server sent (any bytes up to a NUL, as values with a NUL are
 * dropped before).  A name that comes out is always a valid sbx name,
 * and the DN's first RDN names that attribute.  The reference attribute
 * "uid" is tried too.
 */
#include "fuzz.h"

#include "sbx_ldap.h"
#include "text.h"

#include <strings.h>

static void check(const char *attr, const char *dn)
{
	char *uid = sbx_ldap_uid_of_dn(attr, dn);
	size_t alen = strlen(attr);

	if (!uid)
		return;
	FUZZ_CHECK(sbx_name_valid(uid), "\"%s\" from \"%s\" is not a valid name", uid, dn);
	/* The DN starts with the attribute (libldap skips the white space
	 * before it: LDAP_SPACE is space, tab, CR and LF). */
	while (*dn == ' ' || *dn == '\t' || *dn == '\r' || *dn == '\n')
		dn++;
	FUZZ_CHECK(strncasecmp(dn, attr, alen) == 0, "\"%s\" from \"%s\" is not %s=", uid, dn,
		   attr);
	free(uid);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *part[2], *block;
	size_t n = fuzz_split(data, size, '\n', part, 2, &block);

	if (n == 2)
		check(part[0], part[1]);
	check("uid", n == 2 ? part[1] : part[0]);
	check("cn", part[0]);
	free(block);
	return 0;
}
