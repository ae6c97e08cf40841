/*
 * Users and groups from a directory (the policy's directory: section,
 * docs/policy.md), as far as the policy is concerned: what one read of
 * the directory found, and merging it into a policy, so that every
 * question the broker asks of the policy (membership, approvers, explain,
 * a user's Slack id) works unchanged on directory names.  Pure: reading
 * the directory is ldap/'s job (sbx_ldap.h), running it on a worker
 * thread and merging on the event loop is broker/directory.c's.
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

/* `sbxctl policy check --online`: what only the directory can tell about
 * the file's policy p, given one read d of it: a name defined both in the
 * file and in the directory, and names the file refers to (in roles,
 * groups, managers) that neither defines.  Returns 0 when all is well,
 * else -1 with every problem in err, one per line. */
int sbx_policy_check_directory(const struct sbx_policy *p, const struct sbx_directory_data *d,
			       char *err, size_t errlen);

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
