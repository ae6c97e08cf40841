/*
 * The LDAP library (ldap/sbx_ldap.c) where no server is needed: a server
 * that refuses is "down", never a hang; an unusable password file is an
 * authentication error before anything is sent; DNs become user names
 * only when they say so.  tests/integration/ldap_*.sh read a real slapd.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "sbx_ldap.h"

static struct sbx_directory_conf conf_of(const char *yaml)
{
	struct sbx_policy *p = NULL;
	struct sbx_settings s;
	struct sbx_policy_errors e = { 0 };

	cr_assert_eq(sbx_policy_load_buffer(yaml, strlen(yaml), "t.yaml", &p, &s, &e), 0);
	sbx_policy_free(p);
	return s.directory;
}

#define CONF_HEAD "roles:\n  r: { hosts: [\"*\"] }\n"

Test(ldap, unreachable_server_is_down_not_a_hang)
{
	/* Port 1 on loopback refuses at once. */
	struct sbx_directory_conf c = conf_of(CONF_HEAD
		"directory:\n  uri: [ldap://127.0.0.1:1, ldap://127.0.0.1:2]\n"
		"  start_tls: false\n  base: dc=example,dc=org\n  timeout: 1s\n");
	struct sbx_ldap *s = sbx_ldap_new(&c);
	struct sbx_directory_data *d = NULL;
	char err[1024];

	cr_assert_not_null(s);
	cr_assert_eq(sbx_ldap_fetch(s, &d, err, sizeof(err)), SBX_DIR_DOWN, "%s", err);
	cr_assert_null(d);
	cr_assert(strstr(err, "ldap://127.0.0.1:1: cannot reach the server"), "%s", err);
	cr_assert(strstr(err, "; ldap://127.0.0.1:2: "), "both servers are named: %s", err);
	sbx_ldap_free(s);
}

Test(ldap, unusable_password_file_is_an_auth_error)
{
	struct sbx_directory_conf c = conf_of(CONF_HEAD
		"directory:\n  uri: ldap://127.0.0.1:1\n"
		"  start_tls: false\n  base: dc=example,dc=org\n"
		"  bind_dn: cn=sbx,dc=example,dc=org\n"
		"  bind_password_file: /nonexistent/sbx.pw\n");
	struct sbx_ldap *s = sbx_ldap_new(&c);
	struct sbx_directory_data *d = NULL;
	char err[1024];

	/* The connection is only made at the bind, which needs the password
	 * first: port 1 is never reached. */
	cr_assert_eq(sbx_ldap_fetch(s, &d, err, sizeof(err)), SBX_DIR_AUTH, "%s", err);
	cr_assert_null(d);
	cr_assert(strstr(err, "cannot open bind_password_file /nonexistent/sbx.pw"), "%s", err);
	sbx_ldap_free(s);
}

static void uid_is(const char *dn, const char *want)
{
	char *got = sbx_ldap_uid_of_dn("uid", dn);

	if (want)
		cr_assert(got && strcmp(got, want) == 0, "%s -> %s, want %s", dn,
			  got ? got : "(none)", want);
	else
		cr_assert_null(got, "%s -> %s, want none", dn, got);
	free(got);
}

Test(ldap, a_dn_names_a_user_only_by_its_uid)
{
	uid_is("uid=alice,ou=people,dc=example,dc=org", "alice");
	uid_is("UID=alice,ou=people,dc=example,dc=org", "alice");
	uid_is("cn=alice,ou=people,dc=example,dc=org", NULL);
	uid_is("uid=al ice,ou=people", NULL);
	uid_is("uid=-x,ou=people", NULL);
	uid_is("not a dn", NULL);
	uid_is("", NULL);
	uid_is("uid=alice\\,bob,ou=people", NULL);
}
