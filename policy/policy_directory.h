/*
 * Users and groups from an LDAP directory (the policy's directory:
 * section, docs/policy.md).
 *
 * Two halves:
 * - reading the directory (policy_directory_ldap.c): a session that binds
 *   and searches with a timeout on every operation and turns the entries
 *   into users (uid, mail, manager resolved from a DN to a uid, Slack id)
 *   and groups (groupOfNames member DNs and posixGroup memberUid values,
 *   both as user names);
 * - merging what was read into a policy (policy_directory.c), so that
 *   every question the broker asks of the policy (membership, approvers,
 *   explain, a user's Slack id) works unchanged on directory names.
 *
 * Nothing here knows about threads or the event loop: broker/directory.c
 * runs the session on a worker thread and merges on the loop.
 */
#ifndef SBX_POLICY_DIRECTORY_H
#define SBX_POLICY_DIRECTORY_H

#include "policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------- */
/* What one read of the directory found */

struct sbx_directory_data {
	struct sbx_user *users;
	size_t n_users;
	struct sbx_group *groups;
	size_t n_groups;
	/* Entries left out: no valid name, or a name seen twice. */
	size_t skipped_users, skipped_groups;
	/* Order-independent digest of everything above: two reads with the
	 * same fingerprint found the same users and groups. */
	uint64_t fingerprint;
};

void sbx_directory_data_free(struct sbx_directory_data *d);
/* The fingerprint of d's users and groups (as stored in d->fingerprint
 * by sbx_ldap_fetch). */
uint64_t sbx_directory_data_fingerprint(const struct sbx_directory_data *d);

/* ---------------------------------------------------------------------- */
/* Reading the directory */

enum sbx_directory_error {
	SBX_DIR_OK = 0,
	SBX_DIR_DOWN,    /* no server answered in time, or the connection broke */
	SBX_DIR_AUTH,    /* the bind was refused, or the password file is unusable */
	SBX_DIR_CONFIG,  /* the server refused the search (bad base or filter) */
	SBX_DIR_NOMEM,
};

struct sbx_ldap;

/* A session for conf (copied: the policy may go away meanwhile).  It
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

/* sbxctl policy check --online: bind and read the directory as the broker
 * would, then check what only the directory can tell: a name defined in
 * both the file and the directory, and names the file refers to (in roles,
 * groups, managers) that neither defines.  Returns 0 when all is well,
 * else -1 with every problem in err, one per line. */
int sbx_directory_check_online(const struct sbx_policy *p, char *err, size_t errlen);

/* ---------------------------------------------------------------------- */
/* Merging into a policy */

/* A directory is configured: the file may then refer to users and groups
 * it does not define (the directory will). */
bool sbx_policy_names_from_directory(const struct sbx_policy *p);

/* Did the group called name come from the directory (in a merged
 * policy)?  For "ldap group developers" in explanations. */
bool sbx_policy_group_from_directory(const struct sbx_policy *p, const char *name);
bool sbx_policy_user_from_directory(const struct sbx_policy *p, const char *name);

/* How a membership came about, for explanations: "listed by name" (group
 * NULL), the group's name for a group of the policy file, "ldap group
 * NAME" for a group from the directory.  Returns buf (or the constant). */
const char *sbx_policy_via_text(const struct sbx_policy *p, const char *group, char *buf,
				size_t len);

/* Does role r end its grants when a directory refresh ends the holder's
 * eligibility (revoke_on_ineligible: true)? */
bool sbx_policy_role_revokes_on_ineligible(const struct sbx_policy *p,
					   const struct sbx_role *r);

/* Called for a name defined both in the file and in the directory: the
 * file's definition is kept.  kind is "user" or "group". */
typedef void (*sbx_dir_conflict_fn)(const char *kind, const char *name, void *ctx);

/* Called for each (user, role) whose membership differs between the
 * policy before a merge and after it.  group is the group that gave the
 * membership that was gained or lost (NULL when listed by name). */
typedef void (*sbx_dir_drift_fn)(const char *user, const struct sbx_role *r,
				 enum sbx_membership before, enum sbx_membership after,
				 const char *group, void *ctx);

struct sbx_dir_merge_cb {
	sbx_dir_conflict_fn conflict; /* may be NULL */
	sbx_dir_drift_fn drift;       /* may be NULL: no comparison is made */
	void *ctx;
	/* May be NULL.  Gets the old policy's struct, with nothing left in
	 * it to free but itself, instead of free(): the caller can keep it
	 * allocated for a while, so that no later policy has its address
	 * while something may still compare a saved pointer against it. */
	void (*retire)(struct sbx_policy *shell, void *ctx);
};

/* Replace the directory part of *pp with d (NULL: drop it), keeping
 * everything the file says.  The result is a new policy with its own
 * index; *pp is consumed (its memory is reused or freed) and replaced.
 * Returns 0, or -ENOMEM with *pp unchanged. */
int sbx_policy_merge_directory(struct sbx_policy **pp, const struct sbx_directory_data *d,
			       const struct sbx_dir_merge_cb *cb);

#endif
