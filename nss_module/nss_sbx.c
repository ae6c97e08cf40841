#include "config.h"

#include "nss_sbx.h"
#include "text.h"
#include "sbxio.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Room for the socket path (sun_path is 108 bytes) and the table beside it. */
#define PATH_ROOM 160

/* ---- one group, from the table or from a reply frame ------------------------- */

/* Where a group's data comes from: the table (members checked against one
 * clock reading, now, for the whole call) or a reply's GROUP record. */
struct src {
	const char *name;
	size_t name_len;
	uint32_t gid;
	/* table */
	const struct sbx_tbl *t;
	struct sbx_tbl_group g;
	int64_t now;
	/* frame: the fields of one GROUP record */
	const sbx_field *rec;
};

/* The MEMBER fields of a GROUP record, one after the other. */
struct walk {
	sbx_reader rd;
};

static void walk_start(struct walk *w, const struct src *s)
{
	sbx_reader_init_rec(&w->rd, s->rec);
}

/* Next member: 1 (name, len), 0 at the end, -EBADMSG. */
static int walk_next(struct walk *w, const char **name, size_t *len)
{
	sbx_field f;
	int rc;

	while ((rc = sbx_reader_next(&w->rd, &f)) == 1) {
		if (f.tag == SBX_F_MEMBER && f.len > 0 && f.len <= SBX_NAME_MAX) {
			*name = (const char *)f.val;
			*len = f.len;
			return 1;
		}
	}
	return rc < 0 ? -EBADMSG : 0;
}

static size_t align_pad(const char *buf)
{
	uintptr_t a = alignof(char *);

	return (size_t)((a - (uintptr_t)buf % a) % a);
}

/* Bytes a struct group needs in buf for count members of bytes bytes
 * (each name's length + 1), or SIZE_MAX when that overflows. */
static size_t need_for(const char *buf, size_t name_len, size_t count, size_t bytes)
{
	size_t ptrs;

	if (count >= SIZE_MAX / sizeof(char *) - 1)
		return SIZE_MAX;
	ptrs = (count + 1) * sizeof(char *);
	return align_pad(buf) + ptrs + name_len + 1 + sizeof("x") + bytes;
}

/* The group's own strings after the member names: name, then "x". */
static void put_header(const struct src *s, struct group *gr, char **mem, char *p)
{
	memcpy(p, s->name, s->name_len);
	p[s->name_len] = '\0';
	gr->gr_name = p;
	p += s->name_len + 1;
	memcpy(p, "x", sizeof("x"));
	gr->gr_passwd = p;
	gr->gr_gid = (gid_t)s->gid;
	gr->gr_mem = mem;
}

/* From the table: sizes from the group record when the buffer holds every
 * member, live or not (the usual case: no sizing walk); else exact. */
static int fill_from_table(const struct src *s, struct group *gr, char *buf, size_t buflen)
{
	size_t count = s->g.count, bytes = s->g.member_bytes, need;
	char **mem, *names, *tail;
	long n;

	need = need_for(buf, s->name_len, count, bytes);
	if (buflen < need) {
		if (sbx_tbl_count_live(s->t, &s->g, s->now, &count, &bytes) < 0)
			return -EBADMSG;
		need = need_for(buf, s->name_len, count, bytes);
		if (buflen < need)
			return -ERANGE;
	}
	/* Layout: pointers, member names, then the group's name and "x". */
	mem = (char **)(void *)(buf + align_pad(buf));
	names = (char *)(mem + count + 1);
	tail = names + bytes;
	n = sbx_tbl_copy_live(s->t, &s->g, s->now, mem, count, names, bytes);
	if (n < 0)
		return (int)n;
	put_header(s, gr, mem, tail);
	return 0;
}

/* Put s into gr with every string in buf.  0, -ERANGE (buf too small) or
 * -EBADMSG. */
static int fill_group(const struct src *s, struct group *gr, char *buf, size_t buflen)
{
	struct walk w;
	const char *name;
	size_t len, count = 0, bytes = 0, k = 0;
	char **mem, *p;
	int rc;

	if (s->t)
		return fill_from_table(s, gr, buf, buflen);
	walk_start(&w, s);
	while ((rc = walk_next(&w, &name, &len)) == 1) {
		count++;
		bytes += len + 1;
	}
	if (rc < 0)
		return rc;
	if (buflen < need_for(buf, s->name_len, count, bytes))
		return -ERANGE;
	mem = (char **)(void *)(buf + align_pad(buf));
	p = (char *)(mem + count + 1);
	walk_start(&w, s);
	while (k < count && walk_next(&w, &name, &len) == 1) {
		memcpy(p, name, len);
		p[len] = '\0';
		mem[k++] = p;
		p += len + 1;
	}
	mem[k] = NULL;
	put_header(s, gr, mem, p);
	return 0;
}

static void src_from_table(struct src *s, const struct sbx_tbl *t, const struct sbx_tbl_group *g,
			   int64_t now)
{
	memset(s, 0, sizeof(*s));
	s->t = t;
	s->g = *g;
	s->now = now;
	s->name = g->name;
	s->name_len = g->name_len;
	s->gid = g->gid;
}

/* A GROUP record of a reply: UNIX_GROUP and GID are required. */
static int src_from_rec(struct src *s, const sbx_field *rec)
{
	sbx_reader rd;
	sbx_field f;

	memset(s, 0, sizeof(*s));
	s->rec = rec;
	sbx_reader_init_rec(&rd, rec);
	if (sbx_reader_find(&rd, SBX_F_UNIX_GROUP, &f) != 1 || f.len == 0 || f.len > SBX_NAME_MAX)
		return -EBADMSG;
	s->name = (const char *)f.val;
	s->name_len = f.len;
	if (sbx_reader_find(&rd, SBX_F_GID, &f) != 1)
		return -EBADMSG;
	s->gid = sbx_field_u32(&f);
	return 0;
}

/* ---- fork --------------------------------------------------------------------- */

/* The module has two locks, always taken in this order: the enumeration
 * cursor's (nss_sbx.c), then the mapping cache's (tblcache.c).  Around a
 * fork both are held, in that order, so a child never inherits a lock
 * some other thread of its parent was holding. */
static pthread_mutex_t ent_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_prepare(void)
{
	pthread_mutex_lock(&ent_lock);
	nss_sbx_map_fork_lock();
}

static void fork_release(void)
{
	nss_sbx_map_fork_unlock();
	pthread_mutex_unlock(&ent_lock);
}

static void register_fork_handlers(void)
{
	(void)pthread_atfork(fork_prepare, fork_release, fork_release);
}

/* Called first by every entry point. */
static void fork_safe(void)
{
	(void)pthread_once(&fork_once, register_fork_handlers);
}

/* ---- results ------------------------------------------------------------------ */

/* The one place where an outcome becomes an NSS status. */
static enum nss_status result(int rc, int *errnop)
{
	switch (rc) {
	case 1:
		return NSS_STATUS_SUCCESS;
	case 0:
		*errnop = ENOENT;
		return NSS_STATUS_NOTFOUND;
	case -ERANGE:
		/* glibc retries with a larger buffer. */
		*errnop = ERANGE;
		return NSS_STATUS_TRYAGAIN;
	case -ENOMEM:
		*errnop = ENOMEM;
		return NSS_STATUS_TRYAGAIN;
	default:
		/* No table, no broker (or a broken answer): say so quickly so
		 * the next source in nsswitch.conf decides. */
		*errnop = ENOENT;
		return NSS_STATUS_UNAVAIL;
	}
}

static int64_t now_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

/* Ask the broker; 1 with the reply in *frame, 0 when it says NOTFOUND,
 * negative when there is no usable answer. */
static int ask(const char *sock, sbx_msg *req, uint8_t **frame, size_t *n)
{
	uint32_t status;
	int rc;

	rc = nss_sbx_call(sock, req, frame, n);
	sbx_msg_free(req);
	if (rc < 0)
		return rc;
	if (sbx_reply_status(*frame, *n, &status, NULL, 0) < 0 ||
	    (status != SBX_ST_OK && status != SBX_ST_NOTFOUND)) {
		free(*frame);
		*frame = NULL;
		return -EPROTO;
	}
	if (status == SBX_ST_NOTFOUND) {
		free(*frame);
		*frame = NULL;
		return 0;
	}
	return 1;
}

/* Fill gr from the first GROUP record of a reply. */
static int fill_from_reply(const uint8_t *frame, size_t n, struct group *gr, char *buf,
			   size_t buflen)
{
	sbx_reader rd;
	sbx_field rec;
	struct src s;
	int rc;

	sbx_reader_init_frame(&rd, frame, n);
	if (sbx_reader_find(&rd, SBX_F_GROUP, &rec) != 1 || src_from_rec(&s, &rec) < 0)
		return -EBADMSG;
	rc = fill_group(&s, gr, buf, buflen);
	return rc < 0 ? rc : 1;
}

/* ---- getgrnam_r / getgrgid_r ------------------------------------------------------ */

struct key {
	const char *name; /* or */
	uint32_t gid;
};

static int lookup_table(const struct sbx_tbl *t, const struct key *k, struct group *gr,
			char *buf, size_t buflen)
{
	struct sbx_tbl_group g;
	struct src s;
	int rc;

	rc = k->name ? sbx_tbl_find_name(t, k->name, &g) : sbx_tbl_find_gid(t, k->gid, &g);
	if (rc != 1)
		return rc;
	src_from_table(&s, t, &g, now_secs());
	rc = fill_group(&s, gr, buf, buflen);
	return rc < 0 ? rc : 1;
}

static int lookup_socket(const char *sock, const struct key *k, struct group *gr, char *buf,
			 size_t buflen)
{
	sbx_msg req = { 0 };
	uint8_t *frame = NULL;
	size_t n = 0;
	int rc;

	if (sbx_msg_init(&req, k->name ? SBX_OP_GROUP_BYNAME : SBX_OP_GROUP_BYGID) < 0)
		return -ENOMEM;
	if (k->name)
		sbx_msg_put_str(&req, SBX_F_UNIX_GROUP, k->name);
	else
		sbx_msg_put_u32(&req, SBX_F_GID, k->gid);
	rc = ask(sock, &req, &frame, &n);
	if (rc == 1)
		rc = fill_from_reply(frame, n, gr, buf, buflen);
	free(frame);
	return rc;
}

static enum nss_status lookup(const struct key *k, struct group *gr, char *buf, size_t buflen,
			      int *errnop)
{
	char sock[PATH_ROOM], table[PATH_ROOM];
	struct nss_sbx_map *m;
	int saved = errno, rc;
	enum nss_status st;

	fork_safe();
	rc = nss_sbx_paths(sock, sizeof(sock), table, sizeof(table));
	if (rc == 0) {
		m = nss_sbx_map_get(table);
		if (m) {
			rc = lookup_table(nss_sbx_map_table(m), k, gr, buf, buflen);
			nss_sbx_map_put(m);
		} else {
			rc = lookup_socket(sock, k, gr, buf, buflen);
		}
	}
	st = result(rc, errnop);
	errno = saved;
	return st;
}

enum nss_status _nss_sbx_getgrnam_r(const char *name, struct group *gr, char *buf,
				    size_t buflen, int *errnop)
{
	struct key k = { .name = name };

	/* A name sbx could never hand out is not ours: no I/O at all. */
	if (!name || !sbx_name_valid(name)) {
		*errnop = ENOENT;
		return NSS_STATUS_NOTFOUND;
	}
	return lookup(&k, gr, buf, buflen, errnop);
}

enum nss_status _nss_sbx_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t buflen,
				    int *errnop)
{
	struct key k = { .gid = (uint32_t)gid };

	return lookup(&k, gr, buf, buflen, errnop);
}

/* ---- initgroups_dyn -------------------------------------------------------------- */

struct gidlist {
	gid_t skip;
	long int *start, *size;
	gid_t **groupsp;
	long int limit;
	bool found;
};

/* Add gid the way glibc's own modules do: skip the primary group and
 * duplicates, grow the array up to limit (limit <= 0: no limit). */
static int add_gid(struct gidlist *l, uint32_t gid)
{
	gid_t *groups = *l->groupsp;

	l->found = true;
	if ((gid_t)gid == l->skip)
		return 0;
	for (long int i = 0; i < *l->start; i++)
		if (groups[i] == (gid_t)gid)
			return 0;
	if (l->limit > 0 && *l->start >= l->limit)
		return 0; /* full: glibc's files module stops quietly too */
	if (*l->start == *l->size) {
		long int nsize;
		gid_t *ng;

		nsize = *l->size > 0 ? 2 * *l->size : 16;
		if (l->limit > 0 && nsize > l->limit)
			nsize = l->limit;
		ng = realloc(groups, (size_t)nsize * sizeof(*ng));
		if (!ng)
			return -ENOMEM;
		*l->groupsp = groups = ng;
		*l->size = nsize;
	}
	groups[(*l->start)++] = (gid_t)gid;
	return 0;
}

static int memberships_table(const struct sbx_tbl *t, const char *user, struct gidlist *l)
{
	int64_t now = now_secs();

	for (uint32_t i = 0; i < t->n_groups; i++) {
		struct sbx_tbl_group g;
		int rc;

		if (sbx_tbl_group_at(t, i, &g) < 0)
			return -EBADMSG;
		rc = sbx_tbl_is_member(t, &g, user, now);
		if (rc < 0)
			return rc;
		if (rc == 1 && add_gid(l, g.gid) < 0)
			return -ENOMEM;
	}
	return l->found ? 1 : 0;
}

static int memberships_socket(const char *sock, const char *user, struct gidlist *l)
{
	sbx_msg req = { 0 };
	uint8_t *frame = NULL;
	size_t n = 0;
	sbx_reader rd;
	sbx_field f;
	int rc;

	if (sbx_msg_init(&req, SBX_OP_GROUP_MEMBERSHIPS) < 0)
		return -ENOMEM;
	sbx_msg_put_str(&req, SBX_F_USER, user);
	rc = ask(sock, &req, &frame, &n);
	if (rc != 1)
		goto out;
	sbx_reader_init_frame(&rd, frame, n);
	while ((rc = sbx_reader_next(&rd, &f)) == 1) {
		if (f.tag == SBX_F_GID && add_gid(l, sbx_field_u32(&f)) < 0) {
			rc = -ENOMEM;
			goto out;
		}
	}
	rc = rc < 0 ? -EBADMSG : l->found ? 1 : 0;
out:
	free(frame);
	return rc;
}

enum nss_status _nss_sbx_initgroups_dyn(const char *user, gid_t skipgroup, long int *start,
					long int *size, gid_t **groupsp, long int limit,
					int *errnop)
{
	struct gidlist l = { .skip = skipgroup, .start = start, .size = size,
			     .groupsp = groupsp, .limit = limit };
	char sock[PATH_ROOM], table[PATH_ROOM];
	struct nss_sbx_map *m;
	int saved = errno, rc;
	enum nss_status st;

	if (!user || !sbx_name_valid(user)) {
		*errnop = ENOENT;
		return NSS_STATUS_NOTFOUND;
	}
	fork_safe();
	rc = nss_sbx_paths(sock, sizeof(sock), table, sizeof(table));
	if (rc == 0) {
		m = nss_sbx_map_get(table);
		if (m) {
			rc = memberships_table(nss_sbx_map_table(m), user, &l);
			nss_sbx_map_put(m);
		} else {
			rc = memberships_socket(sock, user, &l);
		}
	}
	st = result(rc, errnop);
	errno = saved;
	return st;
}

/* ---- enumeration --------------------------------------------------------------- */

/* glibc serialises setgrent/getgrent_r/endgrent for its callers, but
 * nothing stops two threads of a program from calling the module's
 * functions directly; one cursor under ent_lock, like glibc's own modules. */
static struct {
	bool open;
	/* from the table: the mapping stays the same for the whole walk */
	struct nss_sbx_map *map;
	uint32_t idx;
	/* from the socket: one page of GROUP records at a time */
	char sock[PATH_ROOM];
	uint8_t *page;
	size_t page_len;
	sbx_reader pos;
	bool more;
	uint32_t next;
} ent;

static void ent_close(void)
{
	nss_sbx_map_put(ent.map);
	ent.map = NULL;
	free(ent.page);
	ent.page = NULL;
	ent.page_len = 0;
	ent.more = false;
	ent.idx = 0;
	ent.open = false;
}

/* Fetch the page of groups starting at index first. */
static int ent_fetch(uint32_t first)
{
	sbx_msg req = { 0 };
	uint8_t *frame = NULL;
	size_t n = 0;
	sbx_field f;
	int rc;

	free(ent.page);
	ent.page = NULL;
	ent.more = false;
	if (sbx_msg_init(&req, SBX_OP_GROUP_LIST) < 0)
		return -ENOMEM;
	if (first)
		sbx_msg_put_u32(&req, SBX_F_ID, first);
	rc = ask(ent.sock, &req, &frame, &n);
	if (rc != 1)
		return rc < 0 ? rc : -EPROTO;
	ent.page = frame;
	ent.page_len = n;
	sbx_reader_init_frame(&ent.pos, frame, n);
	if (sbx_reader_find(&ent.pos, SBX_F_ID, &f) == 1 && sbx_field_u32(&f) > first) {
		ent.more = true;
		ent.next = sbx_field_u32(&f);
	}
	return 1;
}

/* Called with ent_lock held. */
static int ent_open(void)
{
	char table[PATH_ROOM];
	int rc;

	ent_close();
	rc = nss_sbx_paths(ent.sock, sizeof(ent.sock), table, sizeof(table));
	if (rc < 0)
		return rc;
	ent.map = nss_sbx_map_get(table);
	if (!ent.map) {
		rc = ent_fetch(0);
		if (rc < 0)
			return rc;
	}
	ent.open = true;
	return 1;
}

enum nss_status _nss_sbx_setgrent(int stayopen)
{
	int saved = errno, rc, dummy = 0;
	enum nss_status st;

	(void)stayopen;
	fork_safe();
	pthread_mutex_lock(&ent_lock);
	rc = ent_open();
	if (rc < 0)
		ent_close();
	pthread_mutex_unlock(&ent_lock);
	st = result(rc, &dummy);
	errno = saved;
	return st;
}

enum nss_status _nss_sbx_endgrent(void)
{
	int saved = errno;

	fork_safe();
	pthread_mutex_lock(&ent_lock);
	ent_close();
	pthread_mutex_unlock(&ent_lock);
	errno = saved;
	return NSS_STATUS_SUCCESS;
}

/* The next group; the cursor moves only on success, so a caller whose
 * buffer was too small gets the same group when it retries. */
static int ent_next_table(struct group *gr, char *buf, size_t buflen)
{
	const struct sbx_tbl *t = nss_sbx_map_table(ent.map);
	struct sbx_tbl_group g;
	struct src s;
	int rc;

	if (ent.idx >= t->n_groups)
		return 0;
	if (sbx_tbl_group_at(t, ent.idx, &g) < 0)
		return -EBADMSG;
	src_from_table(&s, t, &g, now_secs());
	rc = fill_group(&s, gr, buf, buflen);
	if (rc < 0)
		return rc;
	ent.idx++;
	return 1;
}

static int ent_next_socket(struct group *gr, char *buf, size_t buflen)
{
	for (;;) {
		sbx_reader before = ent.pos;
		sbx_field f;
		struct src s;
		int rc;

		while ((rc = sbx_reader_next(&ent.pos, &f)) == 1 && f.tag != SBX_F_GROUP)
			before = ent.pos;
		if (rc < 0)
			return -EBADMSG;
		if (rc == 0) {
			if (!ent.more)
				return 0;
			rc = ent_fetch(ent.next);
			if (rc < 0)
				return rc;
			continue;
		}
		if (src_from_rec(&s, &f) < 0)
			return -EBADMSG;
		rc = fill_group(&s, gr, buf, buflen);
		if (rc < 0) {
			ent.pos = before;
			return rc;
		}
		return 1;
	}
}

enum nss_status _nss_sbx_getgrent_r(struct group *gr, char *buf, size_t buflen, int *errnop)
{
	int saved = errno, rc = 1;
	enum nss_status st;

	fork_safe();
	pthread_mutex_lock(&ent_lock);
	if (!ent.open)
		rc = ent_open();
	if (rc >= 0)
		rc = ent.map ? ent_next_table(gr, buf, buflen) : ent_next_socket(gr, buf, buflen);
	pthread_mutex_unlock(&ent_lock);
	st = result(rc, errnop);
	errno = saved;
	return st;
}
