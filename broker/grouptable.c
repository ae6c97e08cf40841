#include "config.h"

#include "grouptable.h"
#include "log.h"
#include "sbx_table.h"
#include "broker.h"
#include "dispatch.h"
#include "server.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Its value is never read: the symbol's presence in the executable is the
 * message (SBX_BROKER_GUARD_SYMBOL, exported by the link). */
int sbx_brokerd_nss_guard = 1;

struct sbx_grouptable {
	char path[PATH_MAX];
	uint8_t *blob;          /* the table as last built: also answers the socket */
	size_t len;
	uint64_t generation;
	bool dirty;
	const void *seen_state; /* rebuild when the broker swaps these */
	const void *seen_policy;
	bool write_failing;     /* log a failing write once, and its recovery */
};

/* ---- building ----------------------------------------------------------------- */

static int add_standing(struct sbx_tbl_builder *tb, int gi, const struct sbx_policy *p,
			const struct sbx_role *r)
{
	for (size_t i = 0; i < r->standing_users.n; i++)
		if (sbx_tbl_add_member(tb, gi, r->standing_users.v[i], SBX_TBL_FOREVER) == -ENOMEM)
			return -ENOMEM;
	for (size_t i = 0; i < r->standing_groups.n; i++) {
		const struct sbx_group *g = sbx_policy_group(p, r->standing_groups.v[i]);

		for (size_t j = 0; g && j < g->members.n; j++)
			if (sbx_tbl_add_member(tb, gi, g->members.v[j], SBX_TBL_FOREVER) == -ENOMEM)
				return -ENOMEM;
	}
	return 0;
}

int sbx_grouptable_build(const struct sbx_policy *p, const struct sbx_state *s, int64_t now,
			 uint64_t generation, uint8_t **out, size_t *len)
{
	struct sbx_tbl_builder *tb = sbx_tbl_builder_new();
	int *gidx = calloc(p->n_roles ? p->n_roles : 1, sizeof(*gidx));
	size_t n = sbx_state_open_count(s);
	int ret = -ENOMEM;

	if (!tb || !gidx)
		goto out;
	for (size_t i = 0; i < p->n_roles; i++) {
		const struct sbx_role *r = &p->roles[i];

		gidx[i] = -1;
		if (!r->unix_group)
			continue;
		gidx[i] = sbx_tbl_add_group(tb, r->unix_group, r->gid);
		if (gidx[i] < 0) {
			ret = gidx[i];
			goto out;
		}
		/* A role that does not apply to this host brings nobody into
		 * its group here (its grants cannot be asked for here either). */
		if (r->matches_host && add_standing(tb, gidx[i], p, r) < 0)
			goto out;
	}
	/* Only open requests can be live: the cost follows the grants, not
	 * the history.  The builder sorts the members by name itself. */
	for (size_t i = 0; i < n; i++) {
		const struct sbx_req *req = sbx_state_open_at(s, i);
		const struct sbx_role *r;
		size_t ri;

		if (!sbx_req_live(req, now))
			continue;
		/* The policy in force decides which group a role brings. */
		r = sbx_policy_role(p, req->role);
		if (!r || !r->matches_host)
			continue;
		ri = (size_t)(r - p->roles);
		if (gidx[ri] < 0)
			continue;
		if (sbx_tbl_add_member(tb, gidx[ri], req->user, req->expires_at) == -ENOMEM)
			goto out;
	}
	ret = sbx_tbl_finish(tb, generation, now, out, len);
out:
	free(gidx);
	sbx_tbl_builder_free(tb);
	return ret;
}

/* ---- writing ------------------------------------------------------------------ */

int sbx_grouptable_path(const char *socket, char *buf, size_t len)
{
	const char *slash = socket ? strrchr(socket, '/') : NULL;
	int w;

	if (!slash || socket[0] != '/')
		return -EINVAL;
	w = snprintf(buf, len, "%.*s/%s", (int)(slash - socket), socket, SBX_TBL_FILE);
	return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

static int write_all(int fd, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

int sbx_grouptable_write(const char *path, const uint8_t *buf, size_t len, char *err,
			 size_t errlen)
{
	char tmp[PATH_MAX + 32] = "";
	const char *slash = strrchr(path, '/');
	int fd = -1, ret = -1;

	/* The directory may not exist yet at the first write (the server
	 * listens after the features start), and must be safe to write in. */
	if (!slash || sbx_server_socket_dir(path, err, errlen) < 0)
		goto out;
	/* A dot name in the same directory: rename() is then atomic, and
	 * readers never look at it. */
	snprintf(tmp, sizeof(tmp), "%.*s/.%s.XXXXXX", (int)(slash - path), path, SBX_TBL_FILE);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a temp file beside %s: %s", path,
			 strerror(errno));
		goto out;
	}
	/* Derived data, rebuilt at every start: no fsync.  A crash can leave
	 * a short or zeroed file, which readers reject (checksum) and then ask
	 * the socket. */
	if (fchmod(fd, 0644) < 0 || write_all(fd, buf, len) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto out;
	}
	tmp[0] = '\0';
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (ret < 0 && tmp[0])
		(void)unlink(tmp);
	return ret;
}

/* ---- keeping it current --------------------------------------------------------- */

/* The file on disk no longer says what the broker knows (it could not be
 * rewritten): it must not go on granting what was just revoked.  Remove
 * it (libnss_sbx then asks the socket); if even that fails, spoil its
 * magic in place, which needs no new disk space.  Says what it did. */
static const char *withdraw_table(const struct sbx_grouptable *t)
{
	static const char zeros[SBX_TBL_MAGIC_LEN];
	int fd;

	if (unlink(t->path) == 0 || errno == ENOENT)
		return "removed the old table; libnss_sbx asks the broker's socket meanwhile";
	fd = open(t->path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd >= 0 && pwrite(fd, zeros, sizeof(zeros), 0) == (ssize_t)sizeof(zeros) &&
	    close(fd) == 0)
		return "spoiled the old table's header; libnss_sbx asks the broker's socket "
		       "meanwhile";
	if (fd >= 0)
		close(fd);
	return "COULD NOT remove or spoil the old table: libnss_sbx may go on reading "
	       "memberships that have ended; free the disk and restart the broker";
}

static void rebuild(struct sbx_broker *b, struct sbx_grouptable *t)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	char err[PATH_MAX + 128];
	int rc;

	t->dirty = false;
	t->seen_state = b->state;
	t->seen_policy = b->policy;
	rc = sbx_grouptable_build(b->policy, b->state, sbx_now(), t->generation + 1, &blob, &len);
	if (rc < 0) {
		/* Neither the old bytes (on disk or through the socket) nor
		 * nothing: the socket says "not built", the file goes; the next
		 * change tries again. */
		free(t->blob);
		t->blob = NULL;
		t->len = 0;
		sbx_err("group table: cannot build: %s; %s", strerror(-rc), withdraw_table(t));
		t->write_failing = true;
		return;
	}
	t->generation++;
	free(t->blob);
	t->blob = blob;
	t->len = len;
	if (sbx_grouptable_write(t->path, blob, len, err, sizeof(err)) < 0) {
		sbx_err("group table: %s; %s", err, withdraw_table(t));
		t->write_failing = true;
		return;
	}
	if (t->write_failing)
		sbx_info("group table: %s written again", t->path);
	t->write_failing = false;
}

/* Membership changes only through grants: a request never adds anyone to
 * a group until its own grant.activated record. */
void sbx_grouptable_on_record(struct sbx_broker *b, const json_t *rec)
{
	struct sbx_grouptable *t = b->grouptable;
	const char *event = json_string_value(json_object_get(rec, "event"));
	const char *role = json_string_value(json_object_get(rec, "role"));
	const struct sbx_role *r;

	if (!t || !event || strncmp(event, "grant.", 6) != 0)
		return;
	r = role ? sbx_policy_role(b->policy, role) : NULL;
	if (json_object_get(rec, "unix_group") || (r && r->unix_group))
		t->dirty = true;
}

/* Every loop pass, after the pass's records and before the journal commit:
 * the file is current before any reply acknowledging a change goes out
 * (those wait for the commit). */
void sbx_grouptable_tick(struct sbx_broker *b)
{
	struct sbx_grouptable *t = b->grouptable;

	/* A journal failure rebuilds memory into a new state object. */
	if (t && (t->dirty || t->seen_state != b->state || t->seen_policy != b->policy))
		rebuild(b, t);
}

void sbx_grouptable_on_reload(struct sbx_broker *b)
{
	if (b->grouptable)
		b->grouptable->dirty = true;
}

/* ---- the fallback ops ---------------------------------------------------------- */

static void put_group(sbx_msg *m, const struct sbx_tbl *t, const struct sbx_tbl_group *g,
		      int64_t now)
{
	sbx_msg_begin_rec(m, SBX_F_GROUP);
	sbx_msg_put_str(m, SBX_F_UNIX_GROUP, g->name);
	sbx_msg_put_u32(m, SBX_F_GID, g->gid);
	for (uint32_t j = 0; j < g->count; j++) {
		struct sbx_tbl_member mem;

		if (sbx_tbl_member_at(t, g, j, &mem) == 0 && mem.expires_at > now)
			sbx_msg_put_str(m, SBX_F_MEMBER, mem.name);
	}
	sbx_msg_end_rec(m);
}

static void answer_one(struct sbx_call *c, const struct sbx_tbl *t, int64_t now)
{
	uint16_t op = c->a.op;
	struct sbx_tbl_group g;
	int rc;

	if (op == SBX_OP_GROUP_BYNAME && !c->a.unix_group[0]) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "which group? (UNIX_GROUP)");
		return;
	}
	if (op == SBX_OP_GROUP_BYGID && !c->a.has_gid) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "which gid? (GID)");
		return;
	}
	rc = op == SBX_OP_GROUP_BYNAME ? sbx_tbl_find_name(t, c->a.unix_group, &g)
				       : sbx_tbl_find_gid(t, c->a.gid, &g);
	if (rc != 1) {
		sbx_reply_fail(c, SBX_ST_NOTFOUND, "not an sbx group");
		return;
	}
	sbx_reply_ok(c, NULL);
	put_group(c->reply, t, &g, now);
	if (c->reply->error)
		sbx_reply_fail(c, SBX_ST_INTERNAL,
			       "the group is too large for one frame: read the group table");
}

static void answer_list(struct sbx_call *c, const struct sbx_tbl *t, int64_t now)
{
	uint32_t first = c->a.id;

	sbx_reply_ok(c, NULL);
	for (uint32_t i = first; i < t->n_groups; i++) {
		struct sbx_tbl_group g;
		sbx_msg_mark mark = sbx_msg_here(c->reply);

		if (sbx_tbl_group_at(t, i, &g) < 0)
			break;
		put_group(c->reply, t, &g, now);
		if (!sbx_msg_undo_if_failed(c->reply, mark))
			continue;
		if (i == first) {
			sbx_reply_fail(c, SBX_ST_INTERNAL,
				       "a group is too large for one frame: read the group table");
			return;
		}
		sbx_msg_put_u32(c->reply, SBX_F_ID, i);
		return;
	}
}

static void answer_memberships(struct sbx_call *c, const struct sbx_tbl *t, int64_t now)
{
	const char *user = c->a.user;

	if (!user[0]) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "whose groups? (USER)");
		return;
	}
	sbx_reply_ok(c, NULL);
	for (uint32_t i = 0; i < t->n_groups; i++) {
		struct sbx_tbl_group g;

		if (sbx_tbl_group_at(t, i, &g) == 0 && sbx_tbl_is_member(t, &g, user, now) == 1)
			sbx_msg_put_u32(c->reply, SBX_F_GID, g.gid);
	}
}

void sbx_op_group(struct sbx_broker *b, struct sbx_call *c)
{
	struct sbx_grouptable *t = b->grouptable;
	struct sbx_tbl tbl;
	int64_t now = sbx_now();

	if (c->caller->pid == getpid()) {
		/* The module inside this process asked its own broker: it has
		 * long since given up waiting.  Must never happen (the guard
		 * symbol); tests look for this line. */
		sbx_err("group table: NSS recursion: the broker asked itself (op 0x%04x)", c->a.op);
		sbx_reply_fail(c, SBX_ST_UNAVAILABLE, "the broker asked itself");
		return;
	}
	if (!t || !t->blob || sbx_tbl_open(&tbl, t->blob, t->len, 0, NULL, 0) < 0) {
		sbx_reply_fail(c, SBX_ST_UNAVAILABLE, "the group table is not built");
		return;
	}
	switch (c->a.op) {
	case SBX_OP_GROUP_BYNAME:
	case SBX_OP_GROUP_BYGID: answer_one(c, &tbl, now); break;
	case SBX_OP_GROUP_LIST: answer_list(c, &tbl, now); break;
	case SBX_OP_GROUP_MEMBERSHIPS: answer_memberships(c, &tbl, now); break;
	}
}

/* ---- life cycle --------------------------------------------------------------- */

int sbx_grouptable_start(struct sbx_broker *b)
{
	struct sbx_grouptable *t = calloc(1, sizeof(*t));

	if (!t) {
		sbx_err("group table: out of memory");
		return -ENOMEM;
	}
	if (sbx_grouptable_path(b->policy->broker.socket, t->path, sizeof(t->path)) < 0) {
		sbx_err("group table: no place for it beside socket %s", b->policy->broker.socket);
		free(t);
		return -EINVAL;
	}
	/* Generations keep growing across restarts (readers may log them). */
	t->generation = (uint64_t)sbx_now_us();
	b->grouptable = t;
	rebuild(b, t);
	return 0;
}

void sbx_grouptable_free(struct sbx_broker *b)
{
	struct sbx_grouptable *t = b->grouptable;

	if (!t)
		return;
	/* The file stays: grants keep working (until their expiry) while the
	 * broker is stopped. */
	free(t->blob);
	free(t);
	b->grouptable = NULL;
}
