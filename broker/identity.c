#include "config.h"

#include "identity.h"
#include "sbxio.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int sbx_caller_from_socket(int fd, struct sbx_caller *c)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	memset(c, 0, sizeof(*c));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->pid = cred.pid;
	return 0;
}

static bool in_group(const char *user, gid_t primary, const char *group)
{
	struct group gr, *res = NULL;
	size_t buflen = 16384;
	char *buf = NULL;
	bool found = false;
	int rc;

	for (;;) {
		char *nb = realloc(buf, buflen);

		if (!nb)
			goto out;
		buf = nb;
		rc = getgrnam_r(group, &gr, buf, buflen, &res);
		if (rc != ERANGE || buflen >= (1u << 22))
			break;
		buflen *= 2;
	}
	if (rc != 0 || !res)
		goto out;
	if (gr.gr_gid == primary) {
		found = true;
		goto out;
	}
	for (char **m = gr.gr_mem; m && *m; m++) {
		if (strcmp(*m, user) == 0) {
			found = true;
			goto out;
		}
	}
out:
	free(buf);
	return found;
}

/* Every CLI call is a new connection, and a passwd/group lookup costs more
 * than the decision itself, so answers are kept for a few seconds.  Only
 * the event-loop thread calls this. */
#define CACHE_SLOTS 64
#define CACHE_TTL_MS 5000

struct cached_caller {
	uid_t uid;
	gid_t gid;
	int64_t until_ms;
	char admin_group[SBX_NAME_MAX + 1];
	struct sbx_caller who;
};

static struct cached_caller cache[CACHE_SLOTS];

static struct cached_caller *cache_slot(uid_t uid)
{
	return &cache[uid % CACHE_SLOTS];
}

static bool cache_get(struct sbx_caller *c, const char *admin_group)
{
	struct cached_caller *e = cache_slot(c->uid);

	if (e->until_ms <= sbx_mono_ms() || e->uid != c->uid || e->gid != c->gid ||
	    strcmp(e->admin_group, admin_group ? admin_group : "") != 0)
		return false;
	snprintf(c->name, sizeof(c->name), "%s", e->who.name);
	c->has_account = e->who.has_account;
	c->admin = e->who.admin;
	c->resolved = true;
	return true;
}

static void cache_put(const struct sbx_caller *c, const char *admin_group)
{
	struct cached_caller *e = cache_slot(c->uid);

	e->uid = c->uid;
	e->gid = c->gid;
	e->who = *c;
	snprintf(e->admin_group, sizeof(e->admin_group), "%s", admin_group ? admin_group : "");
	e->until_ms = sbx_mono_ms() + CACHE_TTL_MS;
}

void sbx_caller_resolve(struct sbx_caller *c, const char *admin_group)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (c->resolved || cache_get(c, admin_group))
		return;
	c->resolved = true;
	if (getpwuid_r(c->uid, &pw, buf, sizeof(buf), &res) == 0 && res &&
	    strlen(pw.pw_name) <= SBX_NAME_MAX) {
		snprintf(c->name, sizeof(c->name), "%s", pw.pw_name);
		c->has_account = true;
	} else {
		snprintf(c->name, sizeof(c->name), "uid-%u", (unsigned)c->uid);
	}
	c->admin = c->uid == 0 ||
		   (c->has_account && admin_group && in_group(c->name, c->gid, admin_group));
	cache_put(c, admin_group);
}
