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
#include <stddef.h>

struct sbx_broker;

/* Set up the directory source, and start it when the settings have a
 * directory: section.  Reads the directory once before returning, so
 * that the broker starts with its users: a refused bind or search (wrong
 * password, bad base) is logged and returns -1, and the broker should not
 * start; an unreachable directory is only recorded
 * (directory.unavailable) and retried in the background.  Call after the
 * journal is open, before the event loop runs. */
int sbx_directory_start(struct sbx_broker *b);

/* Stop the worker and free everything (the merged policy stays valid). */
void sbx_directory_free(struct sbx_broker *b);

/* The eventfd the worker wakes the loop with (watched for EPOLLIN), and
 * what the loop does when it fires: merge the results. */
int sbx_directory_fd(const struct sbx_broker *b);
void sbx_directory_on_ready(struct sbx_broker *b);
/* Every loop pass (acts every 250 ms): cached answers do not outlive
 * max_stale. */
void sbx_directory_tick(struct sbx_broker *b);
/* SIGHUP: put the directory's users and groups back into the new policy
 * at once, and follow a changed directory: section. */
void sbx_directory_on_reload(struct sbx_broker *b);

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
 * check path and for requests.  NULL when the directory has nothing to
 * add (or there is none).  When the directory is up and has never
 * been asked about user, asks it now (the answer lands in the policy a
 * moment later). */
const char *sbx_directory_unknown_user(struct sbx_broker *b, const char *user);

#endif
