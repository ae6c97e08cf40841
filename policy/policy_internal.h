/*
 * Shared between the policy loader and the evaluator; not a public API.
 *
 * The index makes every name lookup O(1): the broker asks about a login on
 * every ssh connection, and with a directory behind it the policy holds
 * thousands of users and groups.
 */
#ifndef SBX_POLICY_INTERNAL_H
#define SBX_POLICY_INTERNAL_H

#include "namemap.h"
#include "policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbx_policy_index {
	struct sbx_namemap profiles; /* name -> struct sbx_profile * */
	struct sbx_namemap users;    /* name -> struct sbx_user * */
	struct sbx_namemap groups;   /* name -> struct sbx_group * */
	struct sbx_namemap roles;    /* name -> struct sbx_role * */
	/* (struct sbx_strlist *, name) -> the list: filled by
	 * sbx_policy_index_lists() for group members and for the user lists
	 * of every role. */
	struct sbx_namemap members;
};

/* Index the lists of a complete policy (p->index already holds the name
 * maps).  0 or -ENOMEM. */
int sbx_policy_index_lists(struct sbx_policy *p);
void sbx_policy_index_free(struct sbx_policy_index *ix);

const struct sbx_profile *sbx_policy_profile(const struct sbx_policy *p, const char *name);

/* Is name on list l (a list indexed by sbx_policy_index_lists)? */
bool sbx_policy_on_list(const struct sbx_policy *p, const struct sbx_strlist *l,
			const char *name);

#endif
