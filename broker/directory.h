/*
 * The directory source in the broker: users, groups and managers from
 * LDAP (the policy's directory: section, docs/policy.md).
 *
 * A worker thread owns the LDAP connection and reads the whole directory
 * every cache_ttl (and looks up at once a name the broker has never seen).
 * It hands each result to the event loop through an eventfd; the loop
 * merges the users and groups into the policy it evaluates (a new struct
 * sbx_policy swapped in, as a reload would) and records what changed:
 * drift.membership when someone's roles change, directory.unavailable /
 * directory.recovered around an outage, directory.stale when the cached
 * answers outlive max_stale.  The loop itself never waits on the
 * directory.
 */
#ifndef SBX_DIRECTORY_H
#define SBX_DIRECTORY_H

#include <stdbool.h>

#include "ops.h"

/* Start the directory source when the policy has a directory: section
 * (nothing to do otherwise).  Reads the directory once before returning,
 * so that the broker starts with its users: a refused bind or search
 * (wrong password, bad base) is logged and returns -1, and the broker
 * should not start; an unreachable directory is only recorded
 * (directory.unavailable) and retried in the background.  Call after the
 * journal is open, before the event loop runs. */
int sbx_directory_init(struct sbx_broker *b);

/* Stop the worker and free everything (the merged policy stays valid). */
void sbx_directory_free(struct sbx_broker *b);

enum sbx_directory_state {
	SBX_DIRECTORY_NONE = 0,  /* no directory: section */
	SBX_DIRECTORY_UP,        /* the last refresh worked */
	SBX_DIRECTORY_DOWN,      /* unreachable; cached answers still in use */
	SBX_DIRECTORY_STALE,     /* unreachable for longer than max_stale */
};

/* How the directory is, for status displays; why (may be NULL) gets the
 * last error when it is not up. */
enum sbx_directory_state sbx_directory_status(struct sbx_broker *b, char *why, size_t whylen);

/* Why user, who is not in the policy, is refused: the sentence for the
 * check path (also installed as b->unknown_user_reason).  NULL when the
 * directory has nothing to add.  When the directory is up and has never
 * been asked about user, asks it now (the answer lands in the policy a
 * moment later). */
const char *sbx_directory_unknown_user(struct sbx_broker *b, const char *user);

#endif
