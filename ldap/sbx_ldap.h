/*
 * Reading users and groups from an LDAP directory (the policy's
 * directory: section): a session that binds and searches with a timeout
 * on every operation and turns the entries into users (uid, mail, manager
 * resolved from a DN to a uid, Slack id) and groups (groupOfNames member
 * DNs and posixGroup memberUid values, both as user names).
 *
 * The only part of sbx that links libldap (besides its users: the broker's
 * directory source and `sbxctl policy check --online`).  Nothing here
 * knows about threads or the event loop: broker/directory.c runs a session
 * on a worker thread; what was read is merged into a policy by
 * policy/policy_directory.h.
 */
#ifndef SBX_LDAP_H
#define SBX_LDAP_H

#include <stdbool.h>
#include <stddef.h>

#include "policy_directory.h"
#include "settings.h"

enum sbx_directory_error {
	SBX_DIR_OK = 0,
	SBX_DIR_DOWN,    /* no server answered in time, or the connection broke */
	SBX_DIR_AUTH,    /* the bind was refused, or the password file is unusable */
	SBX_DIR_CONFIG,  /* the server refused the search (bad base or filter) */
	SBX_DIR_NOMEM,
};

struct sbx_ldap;

/* A session for conf (copied: the settings may go away meanwhile).  It
 * connects on first use and again after any failure.  NULL only when out
 * of memory. */
struct sbx_ldap *sbx_ldap_new(const struct sbx_directory_conf *conf);
void sbx_ldap_free(struct sbx_ldap *s);

/* Read every user and group.  On failure err says what and where, e.g.
 * "ldap://127.0.0.1:3890: bind as cn=sbx,dc=example,dc=org refused:
 * Invalid credentials (check bind_dn and the password in /etc/sbx/ldap.pw)". */
enum sbx_directory_error sbx_ldap_fetch(struct sbx_ldap *s, struct sbx_directory_data **out,
					char *err, size_t errlen);

/* Does the directory have a user called name (under the user search base
 * and filter)?  *found is set on SBX_DIR_OK. */
enum sbx_directory_error sbx_ldap_user_exists(struct sbx_ldap *s, const char *name,
					      bool *found, char *err, size_t errlen);

/* The URI of the server the session last spoke to (or tried), for
 * messages. */
const char *sbx_ldap_uri(const struct sbx_ldap *s);

/* The user name a DN stands for when its first RDN is the uid attribute
 * ("uid=alice,ou=people,dc=example,dc=org" -> "alice"), for members and
 * managers outside the user search; NULL when it is not one, or not a
 * valid sbx name.  malloc'd.  Pure: the fuzz target reaches the DN
 * parsing through it. */
char *sbx_ldap_uid_of_dn(const char *attr_uid, const char *dn);

#endif
