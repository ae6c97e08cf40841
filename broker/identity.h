/*
 * Who is on the other end of a connection.  SO_PEERCRED decides; the
 * caller never tells us who they are, only (with --as) whom they act for,
 * which only root and broker.admin_group may do.
 */
#ifndef SBX_IDENTITY_H
#define SBX_IDENTITY_H

#include <stdbool.h>
#include <sys/types.h>

#include "sbx_proto.h"

struct sbx_caller {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool resolved;              /* name and admin looked up */
	char name[SBX_NAME_MAX + 1];/* unix account name ("uid 1234" style if none) */
	bool has_account;
	bool admin;                 /* root or member of admin_group */
};

/* Read SO_PEERCRED of a connected socket.  0 or negative errno. */
int sbx_caller_from_socket(int fd, struct sbx_caller *c);

/* Resolve name and admin rights (lazily, once per connection).  admin_group
 * may be NULL.  The lookup goes through NSS, so the broker must never be a
 * client of its own NSS module here (see docs/architecture.md). */
void sbx_caller_resolve(struct sbx_caller *c, const char *admin_group);

#endif
