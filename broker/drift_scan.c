/*
 * The drift scan (drift_scan.h): pure reading and comparing, no broker.
 *
 * Order: passwd (accounts, homes, uids), group and gshadow (members of
 * watched groups), sudoers (every file reached, then each rule's users
 * and commands), authorized_keys (each account's), then the removals a
 * remediate: remove asks for.
 */
#include "config.h"

#include "drift_scan.h"

#include "readfile.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/openat2.h>
#include <time.h>
#include <signal.h>
#include <unistd.h>
#include <utmp.h>

/* ---- strings ------------------------------------------------------------- */

const char *sbx_strpool_add(struct sbx_strpool *p, const char *s)
{
	char *d;

	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		char **v = realloc(p->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		p->v = v;
		p->cap = cap;
	}
	d = strdup(s);
	if (!d)
		return NULL;
	p->v[p->n++] = d;
	return d;
}

void sbx_strpool_free(struct sbx_strpool *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i]);
	free(p->v);
	memset(p, 0, sizeof(*p));
}

__attribute__((format(printf, 1, 2)))
static char *fmt(const char *f, ...)
{
	char *s = NULL;
	va_list ap;

	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static char *dup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ---- the input ------------------------------------------------------------ */

void sbx_drift_input_init(struct sbx_drift_input *in)
{
	memset(in, 0, sizeof(*in));
	in->also_trusted = (uid_t)-1;
}

void sbx_drift_input_free(struct sbx_drift_input *in)
{
	if (!in)
		return;
	for (size_t i = 0; i < in->n_roles; i++) {
		sbx_namemap_free(&in->roles[i].justified);
		sbx_namemap_free(&in->roles[i].eligible);
		free(in->roles[i].allow);
	}
	free(in->roles);
	sbx_namemap_free(&in->users);
	sbx_namemap_free(&in->groups);
	sbx_namemap_free(&in->logins);
	sbx_strpool_free(&in->pool);
	memset(in, 0, sizeof(*in));
}

struct sbx_drift_role *sbx_drift_input_role(struct sbx_drift_input *in, const char *name,
					    const char *unix_group, bool sudo_set,
					    char *const *allow, size_t n_allow)
{
	struct sbx_drift_role *v = realloc(in->roles, (in->n_roles + 1) * sizeof(*v)), *r;

	if (!v)
		return NULL;
	in->roles = v;
	r = &v[in->n_roles];
	memset(r, 0, sizeof(*r));
	r->name = sbx_strpool_add(&in->pool, name);
	r->unix_group = unix_group ? sbx_strpool_add(&in->pool, unix_group) : NULL;
	r->sudo_set = sudo_set;
	if (!r->name || (unix_group && !r->unix_group))
		return NULL;
	if (n_allow) {
		r->allow = calloc(n_allow, sizeof(*r->allow));
		if (!r->allow)
			return NULL;
		for (size_t i = 0; i < n_allow; i++)
			if (!(r->allow[r->n_allow++] = sbx_strpool_add(&in->pool, allow[i])))
				return NULL;
	}
	in->n_roles++;
	return r;
}

int sbx_drift_input_name(struct sbx_drift_input *in, struct sbx_namemap *m, const char *name,
			 const char *val)
{
	const char *n;

	if (sbx_namemap_has(m, NULL, name))
		return 0;
	n = sbx_strpool_add(&in->pool, name);
	if (!n || sbx_namemap_put(m, NULL, n, (void *)val, NULL) < 0)
		return -ENOMEM;
	return 0;
}

/* ---- findings ------------------------------------------------------------- */

/* FNV-1a over the parts that say what a finding is (not its line: a
 * file edited above it moves it without making it new). */
static void finding_id(char out[17], enum sbx_drift_kind k, const char *subject,
		       const char *file, const char *found)
{
	uint64_t h = 0xcbf29ce484222325ull;
	const char *parts[3] = { subject, file, found };

	h = (h ^ (uint64_t)k) * 0x100000001b3ull;
	for (int i = 0; i < 3; i++) {
		for (const char *s = parts[i] ? parts[i] : ""; *s; s++)
			h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
		h = (h ^ 0xff) * 0x100000001b3ull;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

/* found and policy are taken (freed here on failure). */
static struct sbx_drift_finding *add(struct sbx_drift_result *r, enum sbx_drift_kind k,
				     const char *subject, const char *file, unsigned line,
				     char *found, char *policy)
{
	struct sbx_drift_finding *f;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 32;
		struct sbx_drift_finding *v = realloc(r->v, cap * sizeof(*v));

		if (!v)
			goto oom;
		r->v = v;
		r->cap = cap;
	}
	f = &r->v[r->n];
	memset(f, 0, sizeof(*f));
	f->kind = k;
	f->subject = dup0(subject);
	f->file = dup0(file);
	f->line = line;
	f->found = found;
	f->policy = policy;
	if (!f->subject || (file && !f->file) || !found || !policy) {
		free(f->subject);
		free(f->file);
		found = policy = NULL;
		free(f->found);
		free(f->policy);
		goto oom;
	}
	finding_id(f->id, k, subject, file, found);
	r->n++;
	return f;
oom:
	free(found);
	free(policy);
	r->oom = true;
	return NULL;
}

static void failed(struct sbx_drift_result *r, const char *file)
{
	char **v = realloc(r->failed, (r->n_failed + 1) * sizeof(*v));

	if (!v || !(v[r->n_failed] = strdup(file))) {
		if (v)
			r->failed = v;
		r->oom = true;
		return;
	}
	r->failed = v;
	r->n_failed++;
}

/* A file the scan could not trust or read: a finding, and its findings
 * stay as they were. */
static void bad_file(struct sbx_drift_result *r, const char *file, const char *why,
		     const char *what)
{
	add(r, SBX_DRIFT_FILE, file, file, 0, fmt("%s: %s", file, why),
	    fmt("the scan reads %s; it was left out of this scan", what));
	failed(r, file);
}

void sbx_drift_result_free(struct sbx_drift_result *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->v[i].subject);
		free(r->v[i].file);
		free(r->v[i].found);
		free(r->v[i].policy);
		free(r->v[i].user);
		free(r->v[i].group);
	}
	free(r->v);
	for (size_t i = 0; i < r->n_failed; i++)
		free(r->failed[i]);
	free(r->failed);
	for (size_t i = 0; i < r->n_acts; i++) {
		free(r->acts[i].user);
		free(r->acts[i].group);
		free(r->acts[i].file);
		free(r->acts[i].backup);
		free(r->acts[i].error);
	}
	free(r->acts);
	free(r->logins);
	memset(r, 0, sizeof(*r));
}

/* ---- reading a file from outside ---------------------------------------- */

enum { READ_OK = 0, READ_MISSING = 1, READ_BAD = -1 };

static bool trusted_owner(uid_t uid, uid_t also, uid_t owner)
{
	return uid == 0 || uid == also || (owner != (uid_t)-1 && uid == owner);
}

/* Read path whole into *buf (NUL-terminated), refusing what the scan
 * must not follow blindly: a symbolic link, anything but a regular file,
 * an owner other than root (also, owner), a file others may write, more
 * than cap bytes, a NUL byte.  READ_MISSING when it does not exist. */
/* What a file may be all the same (utmp is binary and group-writable by
 * design). */
#define READ_BINARY_OK 0x1u
#define READ_GROUP_WRITABLE_OK 0x2u

/* Why opening path failed (errno), as read_file_as says it. */
static int open_failed(const char *path, char *why, size_t whylen)
{
	char target[256];
	ssize_t t;

	if (errno == ENOENT || errno == ENOTDIR)
		return READ_MISSING;
	if (errno == ELOOP) {
		t = readlink(path, target, sizeof(target) - 1);
		target[t > 0 ? t : 0] = '\0';
		snprintf(why, whylen, "is a symbolic link (to %s): not followed", t > 0 ? target : "?");
	} else {
		snprintf(why, whylen, "cannot open: %s", strerror(errno));
	}
	return READ_BAD;
}

static int read_fd(int fd, size_t cap, uid_t also, uid_t owner, unsigned flags, char **buf,
		   size_t *len, char *why, size_t whylen);

static int read_file_as(const char *path, size_t cap, uid_t also, uid_t owner, unsigned flags,
			char **buf, size_t *len, char *why, size_t whylen)
{
	int fd;

	*buf = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return open_failed(path, why, whylen);
	return read_fd(fd, cap, also, owner, flags, buf, len, why, whylen);
}

/* read_file_as's checks and read on an open fd, which it closes. */
static int read_fd(int fd, size_t cap, uid_t also, uid_t owner, unsigned flags, char **buf,
		   size_t *len, char *why, size_t whylen)
{
	struct stat st;
	char *b = NULL;
	size_t n = 0;
	int ret = READ_BAD;

	*buf = NULL;
	if (fstat(fd, &st) < 0) {
		snprintf(why, whylen, "cannot stat: %s", strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		goto out;
	}
	if (!trusted_owner(st.st_uid, also, owner)) {
		snprintf(why, whylen, "owned by uid %u, not root: not read", (unsigned)st.st_uid);
		goto out;
	}
	if (st.st_mode & ((flags & READ_GROUP_WRITABLE_OK) ? S_IWOTH : (S_IWGRP | S_IWOTH))) {
		snprintf(why, whylen, "writable by %s (mode %04o): not read",
			 st.st_mode & S_IWOTH ? "anyone" : "its group",
			 (unsigned)(st.st_mode & 07777));
		goto out;
	}
	if ((uint64_t)st.st_size > cap) {
		snprintf(why, whylen, "too large (%lld bytes; at most %zu are read)",
			 (long long)st.st_size, cap);
		goto out;
	}
	if (sbx_read_fd_whole(fd, (size_t)st.st_size, &b, &n, why, whylen) < 0)
		goto out;
	if (!(flags & READ_BINARY_OK) && memchr(b, '\0', n)) {
		snprintf(why, whylen, "binary (a NUL byte at offset %zu): not read",
			 (size_t)((char *)memchr(b, '\0', n) - b));
		goto out;
	}
	*buf = b;
	*len = n;
	b = NULL;
	ret = READ_OK;
out:
	free(b);
	close(fd);
	return ret;
}

static int read_untrusted(const char *path, size_t cap, uid_t also, uid_t owner, char **buf,
			  size_t *len, char *why, size_t whylen)
{
	return read_file_as(path, cap, also, owner, 0, buf, len, why, whylen);
}

/* The next line of buf (from *pos), NUL-terminated in place; its number
 * in *lineno.  NULL at the end. */
static char *next_line(char *buf, size_t len, size_t *pos, unsigned *lineno)
{
	char *s, *nl;

	if (*pos >= len)
		return NULL;
	s = buf + *pos;
	nl = memchr(s, '\n', len - *pos);
	if (nl) {
		*nl = '\0';
		*pos = (size_t)(nl - buf) + 1;
	} else {
		*pos = len;
	}
	(*lineno)++;
	return s;
}

/* Split s at sep into at most max fields (in place).  The count. */
static size_t split(char *s, char sep, char **out, size_t max)
{
	size_t n = 0;

	out[n++] = s;
	for (; *s; s++)
		if (*s == sep) {
			if (n == max)
				return max + 1;
			*s = '\0';
			out[n++] = s + 1;
		}
	return n;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

/* ---- passwd ---------------------------------------------------------------- */

struct account {
	const char *name, *home;
	uid_t uid;
};

struct scan {
	const struct sbx_drift_input *in;
	struct sbx_drift_result *r;
	struct sbx_strpool pool;
	struct account *acc;
	size_t n_acc;
	struct sbx_namemap uid_name;   /* "1000" -> name */
	struct sbx_namemap gid_name;   /* "60001" -> name */
	struct sbx_namemap acc_by_name;/* name -> struct account * (index + 1) */
	/* remove: (group, user) pairs found in each file */
	struct removal { const char *file, *group, *user, *id; } *rm;
	size_t n_rm;
	/* the mounts seen (mountinfo's ids), and whether each is FUSE */
	struct mnt { int id; bool fuse; } *mnts;
	size_t n_mnts;
};

static void read_passwd(struct scan *S)
{
	const char *path = S->in->conf.passwd_file;
	char why[300], *buf = NULL, *line, *f[8];
	size_t len, pos = 0, cap = 0;
	unsigned ln = 0;
	int rc = read_untrusted(path, SBX_DRIFT_ACCOUNTS_MAX, S->in->also_trusted, (uid_t)-1, &buf,
				&len, why, sizeof(why));

	if (rc == READ_MISSING) {
		bad_file(S->r, path, "does not exist", "the accounts");
		return;
	}
	if (rc != READ_OK) {
		bad_file(S->r, path, why, "the accounts");
		return;
	}
	while ((line = next_line(buf, len, &pos, &ln))) {
		const char *name, *home;
		char key[24];

		if (!*line || line[0] == '#' || line[0] == '+' || line[0] == '-')
			continue;
		if (split(line, ':', f, 7) != 7 || !*f[0] || !all_digits(f[2]) ||
		    strlen(f[2]) > 10) {
			add(S->r, SBX_DRIFT_FILE, path, path, ln,
			    fmt("%s:%u: not a passwd line (name:password:uid:gid:gecos:home:shell)",
				path, ln), fmt("the scan reads the accounts from %s", path));
			continue;
		}
		if (S->n_acc == cap) {
			struct account *v;

			cap = cap ? cap * 2 : 256;
			v = realloc(S->acc, cap * sizeof(*v));
			if (!v)
				goto oom;
			S->acc = v;
		}
		name = sbx_strpool_add(&S->pool, f[0]);
		home = sbx_strpool_add(&S->pool, f[5]);
		if (!name || !home)
			goto oom;
		S->acc[S->n_acc].name = name;
		S->acc[S->n_acc].home = home;
		S->acc[S->n_acc].uid = (uid_t)strtoul(f[2], NULL, 10);
		S->n_acc++;
		snprintf(key, sizeof(key), "%s", f[2]);
		if (!sbx_namemap_has(&S->uid_name, NULL, key)) {
			const char *k = sbx_strpool_add(&S->pool, key);

			if (!k || sbx_namemap_put(&S->uid_name, NULL, k, (void *)name, NULL) < 0)
				goto oom;
		}
		if (sbx_namemap_put(&S->acc_by_name, NULL, name, (void *)(uintptr_t)S->n_acc,
				    NULL) < 0)
			goto oom;
	}
	S->r->accounts = S->n_acc;
	free(buf);
	return;
oom:
	S->r->oom = true;
	free(buf);
}

/* ---- group and gshadow ---------------------------------------------------- */

static const struct sbx_drift_role *role_of_group(const struct sbx_drift_input *in,
						  const char *group)
{
	for (size_t i = 0; i < in->n_roles; i++)
		if (in->roles[i].unix_group && strcmp(in->roles[i].unix_group, group) == 0)
			return &in->roles[i];
	return NULL;
}

static bool watched(const struct sbx_drift_input *in, const char *group)
{
	for (size_t i = 0; i < in->conf.n_watch_groups; i++)
		if (strcmp(in->conf.watch_groups[i], group) == 0)
			return true;
	return false;
}

static void member_finding(struct scan *S, const char *path, unsigned ln, const char *group,
			   const char *user)
{
	const struct sbx_drift_role *r = role_of_group(S->in, group);
	struct sbx_drift_finding *f;
	char *policy;

	if (r && sbx_namemap_has(&r->justified, NULL, user))
		return;
	if (r)
		policy = fmt("%s is role %s's unix group: %s holds no grant of it and no standing "
			     "membership (%s)", group, r->name, user,
			     sbx_namemap_has(&r->eligible, NULL, user) ? "eligible: must request it"
			     : sbx_namemap_has(&S->in->users, NULL, user) ? "not eligible"
			     : "not a user the policy knows");
	else
		policy = fmt("%s is watched (drift.watch_groups): no role makes anyone a member",
			     group);
	f = add(S->r, SBX_DRIFT_GROUP, user, path, ln,
		fmt("%s is a member of %s in %s", user, group, path), policy);
	if (!f)
		return;
	f->user = strdup(user);
	f->group = strdup(group);
	if (!f->user || !f->group)
		S->r->oom = true;
	if (r && S->in->conf.remediate[SBX_DRIFT_GROUP] == SBX_DRIFT_REMOVE) {
		struct removal *v = realloc(S->rm, (S->n_rm + 1) * sizeof(*v));

		if (!v) {
			S->r->oom = true;
			return;
		}
		S->rm = v;
		/* copies: f moves when the findings grow */
		v[S->n_rm].file = sbx_strpool_add(&S->pool, path);
		v[S->n_rm].group = sbx_strpool_add(&S->pool, group);
		v[S->n_rm].user = sbx_strpool_add(&S->pool, user);
		v[S->n_rm].id = sbx_strpool_add(&S->pool, f->id);
		if (v[S->n_rm].file && v[S->n_rm].group && v[S->n_rm].user && v[S->n_rm].id)
			S->n_rm++;
	}
}

/* group (members in field 4) or gshadow (administrators in 3, members
 * in 4). */
static void read_groups(struct scan *S, const char *path, bool gshadow)
{
	char why[300], *buf = NULL, *line, *f[6];
	size_t len, pos = 0;
	unsigned ln = 0;
	int rc = read_untrusted(path, SBX_DRIFT_ACCOUNTS_MAX, S->in->also_trusted, (uid_t)-1, &buf,
				&len, why, sizeof(why));

	if (rc == READ_MISSING && gshadow)
		return;
	if (rc == READ_MISSING) {
		bad_file(S->r, path, "does not exist", "the groups");
		return;
	}
	if (rc != READ_OK) {
		bad_file(S->r, path, why, gshadow ? "the groups' shadow file" : "the groups");
		return;
	}
	while ((line = next_line(buf, len, &pos, &ln))) {
		char *members, *save = NULL, *u;

		if (!*line || line[0] == '#' || line[0] == '+' || line[0] == '-')
			continue;
		if (split(line, ':', f, 4) != 4 || !*f[0] ||
		    (!gshadow && (!all_digits(f[2]) || strlen(f[2]) > 10))) {
			add(S->r, SBX_DRIFT_FILE, path, path, ln,
			    fmt("%s:%u: not a %s line (%s)", path, ln, gshadow ? "gshadow" : "group",
				gshadow ? "name:password:administrators:members"
					: "name:password:gid:members"),
			    fmt("the scan reads the groups from %s", path));
			continue;
		}
		if (!gshadow && !sbx_namemap_has(&S->gid_name, NULL, f[2])) {
			const char *k = sbx_strpool_add(&S->pool, f[2]);
			const char *v = sbx_strpool_add(&S->pool, f[0]);

			if (!k || !v || sbx_namemap_put(&S->gid_name, NULL, k, (void *)v, NULL) < 0)
				S->r->oom = true;
		}
		if (!role_of_group(S->in, f[0]) && !watched(S->in, f[0]))
			continue;
		members = f[3];
		for (u = strtok_r(members, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
			while (*u == ' ')
				u++;
			if (*u)
				member_finding(S, path, ln, f[0], u);
		}
	}
	free(buf);
}

/* ---- sudoers: reading ----------------------------------------------------- */

enum alias_kind { AL_USER, AL_RUNAS, AL_HOST, AL_CMND, AL_N };

struct alias {
	char *name;
	char **items;
	size_t n;
};

struct raw_rule {
	char *file, *text;
	unsigned line;
	char **users;     /* as written, '!' kept */
	size_t n_users;
	char **cmds;      /* as written (normalised), '!' kept */
	size_t n_cmds;
};

struct sreader {
	struct sbx_sudoers *s;
	const char *host;
	uid_t also;
	struct alias *al[AL_N];
	size_t n_al[AL_N];
	struct raw_rule *raw;
	size_t n_raw;
	size_t files;
	struct { dev_t dev; ino_t ino; } *seen;
	size_t n_seen;
};

static void problem(struct sreader *R, const char *file, unsigned line, const char *fmtstr, ...)
	__attribute__((format(printf, 4, 5)));
static void problem(struct sreader *R, const char *file, unsigned line, const char *fmtstr, ...)
{
	struct sbx_sudo_problem *v = realloc(R->s->problems, (R->s->n_problems + 1) * sizeof(*v));
	char *why = NULL;
	va_list ap;

	if (!v) {
		R->s->oom = true;
		return;
	}
	R->s->problems = v;
	va_start(ap, fmtstr);
	if (vasprintf(&why, fmtstr, ap) < 0)
		why = NULL;
	va_end(ap);
	v[R->s->n_problems].file = strdup(file);
	v[R->s->n_problems].line = line;
	v[R->s->n_problems].why = why;
	if (!why || !v[R->s->n_problems].file) {
		free(why);
		free(v[R->s->n_problems].file);
		R->s->oom = true;
		return;
	}
	R->s->n_problems++;
}

static int push(char ***v, size_t *n, const char *s, size_t len)
{
	char **nv = realloc(*v, (*n + 1) * sizeof(*nv));

	if (!nv)
		return -1;
	*v = nv;
	if (!(nv[*n] = strndup(s, len)))
		return -1;
	(*n)++;
	return 0;
}

static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* The lexer's position in one logical line. */
struct lex {
	const char *p;
	const char *why;   /* set on the first error */
};

static void skip_ws(struct lex *L)
{
	while (*L->p == ' ' || *L->p == '\t')
		L->p++;
}

/* A word: up to whitespace or one of stop, with \-escapes and "quotes";
 * the text with escapes removed into out.  false when empty. */
static bool word(struct lex *L, const char *stop, char *out, size_t cap)
{
	size_t n = 0;
	bool quoted = false;

	while (*L->p) {
		char c = *L->p;

		if (c == '"') {
			quoted = !quoted;
			L->p++;
			continue;
		}
		/* "%:group" (a non-Unix group) keeps its ':' */
		if (!quoted && (c == ' ' || c == '\t' || strchr(stop, c)) &&
		    !(c == ':' && n == 1 && out[0] == '%'))
			break;
		if (c == '\\' && L->p[1]) {
			c = L->p[1];
			L->p++;
		}
		if (n + 1 < cap)
			out[n++] = c;
		L->p++;
	}
	out[n] = '\0';
	if (quoted && !L->why)
		L->why = "an unterminated quote";
	return n > 0;
}

/* A list of words separated by commas (spaces allowed around them),
 * each with its leading '!'s.  Stops before anything else. */
static bool word_list(struct lex *L, const char *stop, char ***v, size_t *n, bool *oom)
{
	char w[1024], item[1100];

	for (;;) {
		size_t bangs = 0;

		skip_ws(L);
		while (*L->p == '!') {
			bangs++;
			L->p++;
			skip_ws(L);
		}
		if (!word(L, stop, w, sizeof(w)))
			return false;
		snprintf(item, sizeof(item), "%s%s", bangs % 2 ? "!" : "", w);
		if (push(v, n, item, strlen(item)) < 0) {
			*oom = true;
			return false;
		}
		skip_ws(L);
		if (*L->p != ',')
			return true;
		L->p++;
	}
}

static bool alias_name(const char *s)
{
	if (!isupper((unsigned char)*s))
		return false;
	for (s++; *s; s++)
		if (!isupper((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

static const char *const tags[] = {
	"NOPASSWD", "PASSWD", "NOEXEC", "EXEC", "SETENV", "NOSETENV", "LOG_INPUT",
	"NOLOG_INPUT", "LOG_OUTPUT", "NOLOG_OUTPUT", "MAIL", "NOMAIL", "FOLLOW", "NOFOLLOW",
	"INTERCEPT", "NOINTERCEPT", NULL,
};
static const char *const options[] = {
	"ROLE", "TYPE", "CHROOT", "CWD", "TIMEOUT", "NOTBEFORE", "NOTAFTER", "APPARMOR_PROFILE",
	"PRIVS", "LIMITPRIVS", NULL,
};

/* Is p at WORD followed by c (a tag "NOPASSWD:", an option "CWD=")? */
static size_t keyword_at(const char *p, const char *const *words, char c)
{
	for (size_t i = 0; words[i]; i++) {
		size_t n = strlen(words[i]);

		if (strncmp(p, words[i], n) == 0 && p[n] == c)
			return n + 1;
	}
	return 0;
}

/* One command: up to an unescaped ',' or ':' or the end; whitespace runs
 * become one space; a digest ("sha256:...") is dropped.  false when there
 * is none. */
static bool command(struct lex *L, char *out, size_t cap)
{
	size_t n = 0;
	bool space = false;

	skip_ws(L);
	if (strncmp(L->p, "sha", 3) == 0 && isdigit((unsigned char)L->p[3])) {
		const char *c = strchr(L->p, ':');

		if (c) {
			L->p = c + 1;
			while (*L->p && *L->p != ' ' && *L->p != '\t')
				L->p++;
			skip_ws(L);
		}
	}
	while (*L->p && *L->p != ',' && *L->p != ':') {
		char c = *L->p;

		if (c == ' ' || c == '\t') {
			space = n > 0;
			L->p++;
			continue;
		}
		if (space && n + 1 < cap)
			out[n++] = ' ';
		space = false;
		if (c == '\\' && L->p[1]) {
			/* kept escaped: the policy's commands are written the same way */
			if (strchr(",:=\\", L->p[1]) == NULL && n + 1 < cap)
				out[n++] = '\\';
			c = L->p[1];
			L->p++;
		}
		if (n + 1 < cap)
			out[n++] = c;
		L->p++;
	}
	out[n] = '\0';
	return n > 0;
}

/* Cmnd_Spec_List after '=': Runas_Spec? Option* Tag* Cmnd, by ','; a ':'
 * starts the next Host_List '=' Cmnd_Spec_List. */
static bool cmnd_specs(struct lex *L, struct raw_rule *rr, bool *oom)
{
	char cmd[2048], item[2050];

	for (;;) {
		size_t k, bangs = 0;

		skip_ws(L);
		if (*L->p == '(') {
			const char *close = strchr(L->p, ')');

			if (!close) {
				L->why = "a '(' without its ')' in a Runas_Spec";
				return false;
			}
			L->p = close + 1;
			skip_ws(L);
		}
		for (;;) {
			if ((k = keyword_at(L->p, options, '='))) {
				L->p += k;
				while (*L->p && *L->p != ' ' && *L->p != '\t')
					L->p++;
			} else if ((k = keyword_at(L->p, tags, ':'))) {
				L->p += k;
			} else {
				break;
			}
			skip_ws(L);
		}
		while (*L->p == '!') {
			bangs++;
			L->p++;
			skip_ws(L);
		}
		if (!command(L, cmd, sizeof(cmd))) {
			L->why = "a command is missing";
			return false;
		}
		if (cmd[0] != '/' && strcmp(cmd, "ALL") != 0 && !alias_name(cmd) &&
		    strncmp(cmd, "sudoedit", 8) != 0 && strcmp(cmd, "list") != 0) {
			L->why = "not a command (ALL, an alias, or an absolute path)";
			return false;
		}
		snprintf(item, sizeof(item), "%s%s", bangs % 2 ? "!" : "", cmd);
		if (push(&rr->cmds, &rr->n_cmds, item, strlen(item)) < 0) {
			*oom = true;
			return false;
		}
		if (*L->p == ',') {
			L->p++;
			continue;
		}
		if (*L->p == ':') {
			char **hosts = NULL;
			size_t nh = 0;
			bool ok;

			L->p++;
			ok = word_list(L, "=,:!()", &hosts, &nh, oom);
			free_strs(hosts, nh);
			skip_ws(L);
			if (!ok || *L->p != '=') {
				L->why = "expected a Host_List and '=' after ':'";
				return false;
			}
			L->p++;
			continue;
		}
		return true;
	}
}

/* A User_Spec: User_List Host_List '=' Cmnd_Spec_List (':' ...)*. */
static bool user_spec(struct lex *L, struct raw_rule *rr, bool *oom)
{
	char **hosts = NULL;
	size_t nh = 0;
	bool ok;

	if (!word_list(L, "=,:()", &rr->users, &rr->n_users, oom)) {
		L->why = L->why ? L->why : "expected a user list";
		return false;
	}
	ok = word_list(L, "=,:()", &hosts, &nh, oom);
	free_strs(hosts, nh);
	skip_ws(L);
	if (!ok || *L->p != '=') {
		L->why = L->why ? L->why : "expected a host list and '='";
		return false;
	}
	L->p++;
	if (!cmnd_specs(L, rr, oom))
		return false;
	skip_ws(L);
	if (*L->p) {
		L->why = "unexpected text after the rule";
		return false;
	}
	return true;
}

static int alias_kind_of(const char *w)
{
	static const char *const kw[] = { "User_Alias", "Runas_Alias", "Host_Alias", "Cmnd_Alias" };

	for (int i = 0; i < AL_N; i++)
		if (strcmp(w, kw[i]) == 0)
			return i;
	return strcmp(w, "Cmd_Alias") == 0 ? AL_CMND : -1;
}

/* NAME = item, ... (: NAME = item, ...)* */
static bool alias_line(struct sreader *R, struct lex *L, int kind, bool *oom)
{
	for (;;) {
		char name[128];
		struct alias a = { 0 }, *v;

		skip_ws(L);
		if (!word(L, "=", name, sizeof(name)) || !alias_name(name)) {
			L->why = "an alias name must be upper case letters, digits and '_'";
			return false;
		}
		skip_ws(L);
		if (*L->p != '=') {
			L->why = "expected '=' after the alias name";
			return false;
		}
		L->p++;
		if (kind == AL_CMND) {
			/* commands (a digest allowed), by ','; a ':' ends the alias */
			for (;;) {
				char cmd[2048], item[2050];
				size_t bangs = 0;

				skip_ws(L);
				while (*L->p == '!') {
					bangs++;
					L->p++;
					skip_ws(L);
				}
				if (!command(L, cmd, sizeof(cmd)) ||
				    (cmd[0] != '/' && strcmp(cmd, "ALL") != 0 && !alias_name(cmd) &&
				     strncmp(cmd, "sudoedit", 8) != 0)) {
					free_strs(a.items, a.n);
					L->why = "not a command (ALL, an alias, or an absolute path)";
					return false;
				}
				snprintf(item, sizeof(item), "%s%s", bangs % 2 ? "!" : "", cmd);
				if (push(&a.items, &a.n, item, strlen(item)) < 0) {
					free_strs(a.items, a.n);
					*oom = true;
					return false;
				}
				if (*L->p != ',')
					break;
				L->p++;
			}
		} else if (!word_list(L, "=,:()", &a.items, &a.n, oom)) {
			free_strs(a.items, a.n);
			L->why = L->why ? L->why : "an alias needs at least one member";
			return false;
		}
		v = realloc(R->al[kind], (R->n_al[kind] + 1) * sizeof(*v));
		if (!v || !(a.name = strdup(name))) {
			if (v)
				R->al[kind] = v;
			free_strs(a.items, a.n);
			*oom = true;
			return false;
		}
		R->al[kind] = v;
		v[R->n_al[kind]++] = a;
		skip_ws(L);
		if (*L->p == ':') {
			L->p++;
			continue;
		}
		if (*L->p) {
			L->why = "unexpected text after the alias";
			return false;
		}
		return true;
	}
}

static void read_sudoers_path(struct sreader *R, const char *path, int depth);

/* Resolve an include's path: %h is the host, a relative path is relative
 * to the including file's directory. */
static void include(struct sreader *R, const char *from, unsigned ln, const char *arg, bool dir,
		    int depth)
{
	char path[4096], expanded[2048];
	size_t n = 0;

	for (const char *a = arg; *a && n + 1 < sizeof(expanded); a++) {
		if (a[0] == '%' && a[1] == 'h') {
			n += (size_t)snprintf(expanded + n, sizeof(expanded) - n, "%s", R->host);
			if (n >= sizeof(expanded))
				n = sizeof(expanded) - 1;
			a++;
		} else if (a[0] == '%' && a[1] == '%') {
			expanded[n++] = '%';
			a++;
		} else {
			expanded[n++] = *a;
		}
	}
	expanded[n] = '\0';
	if (expanded[0] == '/') {
		snprintf(path, sizeof(path), "%s", expanded);
	} else {
		const char *slash = strrchr(from, '/');

		snprintf(path, sizeof(path), "%.*s/%s", slash ? (int)(slash - from) : 1,
			 slash ? from : ".", expanded);
	}
	if (depth + 1 > SBX_DRIFT_INCLUDE_DEPTH) {
		problem(R, from, ln, "includes nested more than %d deep (a loop?): %s not read",
			SBX_DRIFT_INCLUDE_DEPTH, path);
		return;
	}
	(void)dir;
	read_sudoers_path(R, path, depth + 1);
}

static void sudoers_line(struct sreader *R, const char *file, unsigned ln, char *line, int depth)
{
	struct lex L = { line, NULL };
	struct raw_rule rr = { 0 };
	char first[64];
	bool oom = false;
	int kind;
	char *s = line, *hash;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return;
	/* include directives, old (#) and new (@) spelling */
	if (*s == '#' || *s == '@') {
		static const char *const dirs[] = { "includedir", "include" };

		for (int i = 0; i < 2; i++) {
			size_t n = strlen(dirs[i]);

			if (strncmp(s + 1, dirs[i], n) == 0 && (s[1 + n] == ' ' || s[1 + n] == '\t')) {
				char *arg = s + 1 + n, *end;

				while (*arg == ' ' || *arg == '\t')
					arg++;
				if (*arg == '"') {
					arg++;
					end = strchr(arg, '"');
					if (end)
						*end = '\0';
				} else {
					for (end = arg; *end && *end != ' ' && *end != '\t'; end++)
						;
					*end = '\0';
				}
				if (!*arg) {
					problem(R, file, ln, "@%s without a path", dirs[i]);
					return;
				}
				include(R, file, ln, arg, i == 0, depth);
				return;
			}
		}
		if (*s == '@') {
			problem(R, file, ln, "unknown directive");
			return;
		}
		/* "#1000 ALL=..." is a rule for uid 1000; any other '#' line is
		 * a comment */
		if (!isdigit((unsigned char)s[1]))
			return;
	}
	/* a comment after the text: '#' after a blank, not a uid */
	for (hash = s + 1; (hash = strchr(hash, '#')); hash++)
		if ((hash[-1] == ' ' || hash[-1] == '\t') && !isdigit((unsigned char)hash[1])) {
			*hash = '\0';
			break;
		}
	L.p = s;
	if (!word(&L, "=,:!@>()", first, sizeof(first)) && *s != '#') {
		problem(R, file, ln, "cannot parse: a line must start with a user, an alias "
			"definition, Defaults or an include");
		return;
	}
	if (strncmp(s, "Defaults", 8) == 0)
		return; /* settings, not grants */
	kind = alias_kind_of(first);
	if (kind >= 0) {
		if (!alias_line(R, &L, kind, &oom) && !oom)
			problem(R, file, ln, "cannot parse the alias: %s", L.why);
		if (oom)
			R->s->oom = true;
		return;
	}
	L.p = s;
	rr.file = strdup(file);
	rr.text = strdup(s);
	rr.line = ln;
	if (!rr.file || !rr.text)
		oom = true;
	if (!oom && user_spec(&L, &rr, &oom)) {
		struct raw_rule *v = realloc(R->raw, (R->n_raw + 1) * sizeof(*v));

		if (v) {
			R->raw = v;
			v[R->n_raw++] = rr;
			return;
		}
		oom = true;
	}
	if (s[0] == '#' && !oom) {
		/* "#123 words" that is no rule: a comment after all */
	} else if (!oom) {
		problem(R, file, ln, "cannot parse the rule: %s", L.why ? L.why : "syntax error");
	}
	if (oom)
		R->s->oom = true;
	free(rr.file);
	free(rr.text);
	free_strs(rr.users, rr.n_users);
	free_strs(rr.cmds, rr.n_cmds);
}

static bool seen_file(struct sreader *R, const struct stat *st)
{
	void *v;

	for (size_t i = 0; i < R->n_seen; i++)
		if (R->seen[i].dev == st->st_dev && R->seen[i].ino == st->st_ino)
			return true;
	v = realloc(R->seen, (R->n_seen + 1) * sizeof(*R->seen));
	if (!v) {
		R->s->oom = true;
		return true;
	}
	R->seen = v;
	R->seen[R->n_seen].dev = st->st_dev;
	R->seen[R->n_seen].ino = st->st_ino;
	R->n_seen++;
	return false;
}

static void read_sudoers_file(struct sreader *R, const char *path, int depth)
{
	char why[300], *buf = NULL, *line;
	size_t len;
	unsigned ln = 0, start = 0;
	struct stat st;
	int rc;

	if (++R->files > SBX_DRIFT_SUDOERS_FILES_MAX) {
		if (R->files == SBX_DRIFT_SUDOERS_FILES_MAX + 1)
			problem(R, path, 0, "more than %d sudoers files: the rest are not read",
				SBX_DRIFT_SUDOERS_FILES_MAX);
		return;
	}
	rc = read_untrusted(path, SBX_DRIFT_SUDOERS_MAX, R->also, (uid_t)-1, &buf, &len, why,
			    sizeof(why));
	if (rc == READ_MISSING)
		return;
	if (rc != READ_OK) {
		problem(R, path, 0, "%s", why);
		return;
	}
	if (stat(path, &st) == 0 && seen_file(R, &st)) {
		free(buf);
		return;
	}
	if (push(&R->s->read, &R->s->n_read, path, strlen(path)) < 0)
		R->s->oom = true;
	/* logical lines: a '\\' at the end of a line joins the next */
	{
		size_t pos = 0, jn = 0;
		char *joined = malloc(len + 1);

		if (!joined) {
			R->s->oom = true;
			free(buf);
			return;
		}
		while ((line = next_line(buf, len, &pos, &ln))) {
			size_t l = strlen(line);

			if (!jn)
				start = ln;
			if (l && line[l - 1] == '\r')
				line[--l] = '\0';
			if (l && line[l - 1] == '\\') {
				memcpy(joined + jn, line, l - 1);
				jn += l - 1;
				joined[jn++] = ' ';
				continue;
			}
			memcpy(joined + jn, line, l);
			joined[jn + l] = '\0';
			sudoers_line(R, path, start, joined, depth);
			jn = 0;
		}
		if (jn) {
			joined[jn] = '\0';
			sudoers_line(R, path, start, joined, depth);
		}
		free(joined);
	}
	free(buf);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* @includedir: the files in dir in lexical order, skipping names that
 * end in '~' or contain a '.' (sudo's rule, so editor backups and
 * packaging leftovers are not read). */
static void read_sudoers_dir(struct sreader *R, const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **names = NULL, path[4096];
	size_t n = 0;

	if (!d) {
		if (errno != ENOENT)
			problem(R, dir, 0, "cannot read the directory: %s", strerror(errno));
		return;
	}
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (e->d_name[0] == '.' || strchr(e->d_name, '.') || e->d_name[l - 1] == '~')
			continue;
		if (push(&names, &n, e->d_name, l) < 0) {
			R->s->oom = true;
			break;
		}
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		read_sudoers_file(R, path, depth);
	}
	free_strs(names, n);
}

static void read_sudoers_path(struct sreader *R, const char *path, int depth)
{
	struct stat st;

	if (lstat(path, &st) < 0) {
		if (errno != ENOENT)
			problem(R, path, 0, "cannot stat: %s", strerror(errno));
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		if (!trusted_owner(st.st_uid, R->also, (uid_t)-1) || (st.st_mode & S_IWOTH)) {
			problem(R, path, 0, "a directory owned by uid %u, mode %04o: not read",
				(unsigned)st.st_uid, (unsigned)(st.st_mode & 07777));
			return;
		}
		read_sudoers_dir(R, path, depth);
		return;
	}
	read_sudoers_file(R, path, depth);
}

/* ---- sudoers: aliases ----------------------------------------------------- */

static const struct alias *alias_get(const struct sreader *R, int kind, const char *name)
{
	for (size_t i = 0; i < R->n_al[kind]; i++)
		if (strcmp(R->al[kind][i].name, name) == 0)
			return &R->al[kind][i];
	return NULL;
}

static void add_principal(struct sbx_sudoers_rule *r, const char *w, bool negated, bool *oom)
{
	struct sbx_sudo_principal *v = realloc(r->users, (r->n_users + 1) * sizeof(*v)), *p;

	if (!v) {
		*oom = true;
		return;
	}
	r->users = v;
	p = &v[r->n_users];
	p->negated = negated;
	if (strcmp(w, "ALL") == 0) {
		p->who = SBX_SUDO_ALL;
	} else if (w[0] == '%' && w[1] == ':') {
		p->who = SBX_SUDO_NONUNIX;
		w += 2;
	} else if (w[0] == '%' && w[1] == '#') {
		p->who = SBX_SUDO_GID;
		w += 2;
	} else if (w[0] == '%') {
		p->who = SBX_SUDO_GROUP;
		w += 1;
	} else if (w[0] == '+') {
		p->who = SBX_SUDO_NETGROUP;
		w += 1;
	} else if (w[0] == '#') {
		p->who = SBX_SUDO_UID;
		w += 1;
	} else {
		p->who = SBX_SUDO_USER;
	}
	p->name = strdup(w);
	if (!p->name) {
		*oom = true;
		return;
	}
	r->n_users++;
}

static void expand_users(const struct sreader *R, struct sbx_sudoers_rule *r, const char *item,
			 bool negated, int depth, bool *oom)
{
	const struct alias *a;

	if (item[0] == '!') {
		negated = !negated;
		item++;
	}
	if (alias_name(item) && strcmp(item, "ALL") != 0 && (a = alias_get(R, AL_USER, item)) &&
	    depth < 16) {
		for (size_t i = 0; i < a->n; i++)
			expand_users(R, r, a->items[i], negated, depth + 1, oom);
		return;
	}
	add_principal(r, item, negated, oom);
}

static void expand_cmds(const struct sreader *R, struct sbx_sudoers_rule *r, const char *item,
			bool negated, int depth, bool *oom)
{
	const struct alias *a;

	if (item[0] == '!') {
		negated = !negated;
		item++;
	}
	if (alias_name(item) && strcmp(item, "ALL") != 0 && (a = alias_get(R, AL_CMND, item)) &&
	    depth < 16) {
		for (size_t i = 0; i < a->n; i++)
			expand_cmds(R, r, a->items[i], negated, depth + 1, oom);
		return;
	}
	/* A negated command narrows a rule only on paper (a copy of the
	 * binary gets round it): it never makes one narrower here. */
	if (negated)
		return;
	if (push(&r->cmds, &r->n_cmds, item, strlen(item)) < 0)
		*oom = true;
}

void sbx_sudoers_read(struct sbx_sudoers *s, const char *path, const char *host,
		      uid_t also_trusted)
{
	struct sreader R = { .s = s, .host = host ? host : "", .also = also_trusted };
	bool oom = false;

	read_sudoers_path(&R, path, 0);
	for (size_t i = 0; i < R.n_raw; i++) {
		struct raw_rule *rr = &R.raw[i];
		struct sbx_sudoers_rule *v = realloc(s->rules, (s->n_rules + 1) * sizeof(*v)), *r;

		if (!v) {
			oom = true;
			break;
		}
		s->rules = v;
		r = &v[s->n_rules++];
		memset(r, 0, sizeof(*r));
		r->file = rr->file;
		r->text = rr->text;
		r->line = rr->line;
		rr->file = rr->text = NULL;
		for (size_t k = 0; k < rr->n_users; k++)
			expand_users(&R, r, rr->users[k], false, 0, &oom);
		for (size_t k = 0; k < rr->n_cmds; k++)
			expand_cmds(&R, r, rr->cmds[k], false, 0, &oom);
	}
	for (size_t i = 0; i < R.n_raw; i++) {
		free(R.raw[i].file);
		free(R.raw[i].text);
		free_strs(R.raw[i].users, R.raw[i].n_users);
		free_strs(R.raw[i].cmds, R.raw[i].n_cmds);
	}
	free(R.raw);
	for (int k = 0; k < AL_N; k++) {
		for (size_t i = 0; i < R.n_al[k]; i++) {
			free(R.al[k][i].name);
			free_strs(R.al[k][i].items, R.al[k][i].n);
		}
		free(R.al[k]);
	}
	free(R.seen);
	if (oom)
		s->oom = true;
}

void sbx_sudoers_free(struct sbx_sudoers *s)
{
	for (size_t i = 0; i < s->n_rules; i++) {
		struct sbx_sudoers_rule *r = &s->rules[i];

		free(r->file);
		free(r->text);
		for (size_t k = 0; k < r->n_users; k++)
			free(r->users[k].name);
		free(r->users);
		free_strs(r->cmds, r->n_cmds);
	}
	free(s->rules);
	for (size_t i = 0; i < s->n_problems; i++) {
		free(s->problems[i].file);
		free(s->problems[i].why);
	}
	free(s->problems);
	free_strs(s->read, s->n_read);
	memset(s, 0, sizeof(*s));
}

/* ---- sudoers: against the policy ----------------------------------------- */

static bool globby(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

bool sbx_sudo_cmd_covers(const char *allowed, const char *cmd)
{
	const char *asp, *csp;
	size_t alen, clen;
	char apath[1024], cpath[1024];

	if (strcmp(allowed, "ALL") == 0)
		return true;
	if (strcmp(cmd, "ALL") == 0)
		return false;
	asp = strchr(allowed, ' ');
	csp = strchr(cmd, ' ');
	alen = asp ? (size_t)(asp - allowed) : strlen(allowed);
	clen = csp ? (size_t)(csp - cmd) : strlen(cmd);
	if (alen >= sizeof(apath) || clen >= sizeof(cpath))
		return false;
	memcpy(apath, allowed, alen);
	apath[alen] = '\0';
	memcpy(cpath, cmd, clen);
	cpath[clen] = '\0';
	if (apath[alen - 1] == '/') {
		/* a directory: any file in it, not below it */
		if (strncmp(cpath, apath, alen) != 0 || strchr(cpath + alen, '/') ||
		    !cpath[alen])
			return false;
	} else if (cpath[clen - 1] == '/') {
		return false;
	} else if (globby(apath) ? fnmatch(apath, cpath, FNM_PATHNAME) != 0
				 : strcmp(apath, cpath) != 0) {
		return false;
	}
	if (!asp)
		return true;             /* any arguments */
	if (!csp)
		return false;            /* the rule allows any, the policy some */
	asp++;
	csp++;
	return globby(asp) ? fnmatch(asp, csp, 0) == 0 : strcmp(asp, csp) == 0;
}

static char *clip(const char *s)
{
	return fmt("%.300s%s", s, strlen(s) > 300 ? "..." : "");
}

/* The commands of rule r that role ro's sudo.allow does not cover, as
 * one text; NULL when it covers them all. */
static char *wider(const struct sbx_drift_role *ro, const struct sbx_sudoers_rule *r)
{
	char buf[1024];
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < r->n_cmds; i++) {
		bool ok = false;

		for (size_t k = 0; k < ro->n_allow && !ok; k++)
			ok = sbx_sudo_cmd_covers(ro->allow[k], r->cmds[i]);
		if (!ok && n < sizeof(buf) - 1)
			n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", n ? ", " : "",
					      r->cmds[i]);
	}
	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	return n ? strndup(buf, n) : NULL;
}

static char *allow_text(const struct sbx_drift_role *ro)
{
	char buf[1024];
	size_t n = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < ro->n_allow && n < sizeof(buf) - 1; k++)
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", k ? ", " : "",
				      ro->allow[k]);
	return strdup(n ? buf : "nothing");
}

static void rule_finding(struct scan *S, const struct sbx_sudoers_rule *r, const char *subject,
			 char *policy)
{
	add(S->r, SBX_DRIFT_SUDOERS, subject, r->file, r->line, clip(r->text), policy);
}

static void check_principal(struct scan *S, const struct sbx_sudoers_rule *r,
			    const struct sbx_sudo_principal *p)
{
	const struct sbx_drift_input *in = S->in;
	const struct sbx_drift_role *ro;
	const char *name = p->name;
	char subject[160];
	char *w;

	if (p->negated)
		return;
	switch (p->who) {
	case SBX_SUDO_ALL:
		rule_finding(S, r, "ALL", strdup("sudo is for members of roles' unix groups; this "
						 "rule grants to every user"));
		return;
	case SBX_SUDO_NETGROUP:
	case SBX_SUDO_NONUNIX:
		snprintf(subject, sizeof(subject), "%s%s", p->who == SBX_SUDO_NETGROUP ? "+" : "%:",
			 name);
		rule_finding(S, r, subject, fmt("the policy knows no %s %s",
						p->who == SBX_SUDO_NETGROUP ? "netgroup" : "group",
						subject));
		return;
	case SBX_SUDO_UID:
		if (strcmp(name, "0") == 0)
			return;
		name = sbx_namemap_get(&S->uid_name, NULL, name);
		if (!name) {
			snprintf(subject, sizeof(subject), "#%s", p->name);
			rule_finding(S, r, subject, fmt("uid %s is no account in %s and no user the "
							"policy knows", p->name,
							in->conf.passwd_file));
			return;
		}
		/* fall through */
	case SBX_SUDO_USER:
		if (strcmp(name, "root") == 0)
			return; /* root needs no rule to be root */
		rule_finding(S, r, name, sbx_namemap_has(&in->users, NULL, name)
			     ? fmt("%s gets sudo from roles' unix groups only, not from a rule of "
				   "their own", name)
			     : fmt("%s is not a user the policy knows", name));
		return;
	case SBX_SUDO_GID:
		name = sbx_namemap_get(&S->gid_name, NULL, name);
		if (!name) {
			snprintf(subject, sizeof(subject), "%%#%s", p->name);
			rule_finding(S, r, subject, fmt("gid %s is no group in %s", p->name,
							in->conf.group_file));
			return;
		}
		/* fall through */
	case SBX_SUDO_GROUP:
		snprintf(subject, sizeof(subject), "%%%s", name);
		ro = role_of_group(in, name);
		if (ro) {
			if (!ro->sudo_set)
				return; /* no sudo: key: any command is in policy */
			w = wider(ro, r);
			if (w) {
				char *allowed = allow_text(ro);

				rule_finding(S, r, subject,
					     fmt("role %s (sudo.allow) lets its group run only: %s; "
						 "this rule also gives: %s", ro->name,
						 allowed ? allowed : "?", w));
				free(allowed);
			}
			free(w);
			return;
		}
		if (watched(in, name))
			return; /* its members are watched instead */
		rule_finding(S, r, subject, sbx_namemap_has(&in->groups, NULL, name)
			     ? fmt("%s is a policy group, not a role's unix group: sudo comes "
				   "from roles", name)
			     : fmt("the policy knows no group %s", name));
		return;
	}
}

static void scan_sudoers(struct scan *S)
{
	const struct sbx_drift_conf *c = &S->in->conf;
	struct sbx_sudoers s = { 0 };

	for (size_t i = 0; i < c->n_sudoers; i++)
		sbx_sudoers_read(&s, c->sudoers[i], S->in->host, S->in->also_trusted);
	if (s.oom)
		S->r->oom = true;
	S->r->sudoers_files = s.n_read;
	for (size_t i = 0; i < s.n_problems; i++) {
		const struct sbx_sudo_problem *p = &s.problems[i];

		if (p->line)
			add(S->r, SBX_DRIFT_SUDOERS, p->file, p->file, p->line,
			    fmt("%s:%u: %s", p->file, p->line, p->why),
			    strdup("a sudoers line the scan cannot read may grant anything"));
		else
			bad_file(S->r, p->file, p->why, "sudoers");
	}
	for (size_t i = 0; i < s.n_rules; i++)
		for (size_t k = 0; k < s.rules[i].n_users; k++)
			check_principal(S, &s.rules[i], &s.rules[i].users[k]);
	sbx_sudoers_free(&s);
}

/* ---- authorized_keys -------------------------------------------------------- */

/* sshd_config's AuthorizedKeysFile (outside Match blocks) as patterns; a
 * relative one is under the home. */
static size_t sshd_patterns(struct scan *S, char (*out)[SBX_SETTINGS_PATH_MAX], size_t max)
{
	const char *path = S->in->conf.sshd_config;
	char why[300], *buf = NULL, *line;
	size_t len, pos = 0, n = 0;
	unsigned ln = 0;
	int rc = read_untrusted(path, SBX_DRIFT_SUDOERS_MAX, S->in->also_trusted, (uid_t)-1, &buf,
				&len, why, sizeof(why));
	bool found = false;

	if (rc == READ_MISSING)
		return 0;
	if (rc != READ_OK) {
		bad_file(S->r, path, why, "sshd's configuration");
		return 0;
	}
	while ((line = next_line(buf, len, &pos, &ln))) {
		char *save = NULL, *kw;

		kw = strtok_r(line, " \t=", &save);
		if (!kw || kw[0] == '#')
			continue;
		if (strcasecmp(kw, "Match") == 0)
			break;
		if (strcasecmp(kw, "AuthorizedKeysFile") != 0 || found)
			continue;
		found = true; /* sshd takes the first */
		for (char *t = strtok_r(NULL, " \t", &save); t && n < max;
		     t = strtok_r(NULL, " \t", &save)) {
			if (strcmp(t, "none") == 0)
				break;
			snprintf(out[n++], SBX_SETTINGS_PATH_MAX, "%s%s", t[0] == '/' ? "" : "%h/", t);
		}
	}
	free(buf);
	if (!found && n + 2 <= max) {
		/* sshd's own default */
		snprintf(out[n++], SBX_SETTINGS_PATH_MAX, "%%h/.ssh/authorized_keys");
		snprintf(out[n++], SBX_SETTINGS_PATH_MAX, "%%h/.ssh/authorized_keys2");
	}
	return n;
}

/* pattern with %h, %u, %% for account a. */
static bool expand_keys_path(const char *pat, const struct account *a, char *out, size_t cap)
{
	size_t n = 0;

	for (const char *p = pat; *p; p++) {
		const char *add = NULL;
		char one[2] = { *p, 0 };

		if (p[0] == '%' && p[1]) {
			p++;
			add = *p == 'h' ? a->home : *p == 'u' ? a->name : *p == '%' ? "%" : NULL;
			if (!add)
				return false;
		} else {
			add = one;
		}
		if (n + strlen(add) >= cap)
			return false;
		memcpy(out + n, add, strlen(add));
		n += strlen(add);
	}
	out[n] = '\0';
	return out[0] == '/';
}

static bool key_line(const char *s)
{
	static const char *const types[] = { "ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-", NULL };
	const char *p = s;

	/* options come first: the key type is the first word that is one */
	while (*p) {
		while (*p == ' ' || *p == '\t')
			p++;
		for (size_t i = 0; types[i]; i++)
			if (strncmp(p, types[i], strlen(types[i])) == 0)
				return true;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '"') {
				const char *q = strchr(p + 1, '"');

				p = q ? q : p + strlen(p) - 1;
			}
			p++;
		}
	}
	return false;
}

/* Read /proc/self/mountinfo again into S->mnts: each mount's id and
 * whether its type is fuse or fuse.*.  0, or -1. */
static int read_mounts(struct scan *S)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return -1;
	S->n_mnts = 0;
	while (getline(&line, &cap, f) > 0) {
		const char *type = strstr(line, " - ");
		struct mnt *v;

		if (!type)
			continue;
		type += 3;
		v = realloc(S->mnts, (S->n_mnts + 1) * sizeof(*v));
		if (!v)
			break;
		S->mnts = v;
		v[S->n_mnts].id = atoi(line);
		v[S->n_mnts].fuse = strncmp(type, "fuse ", 5) == 0 || strncmp(type, "fuse.", 5) == 0 ||
				    strncmp(type, "fuseblk ", 8) == 0;
		S->n_mnts++;
	}
	free(line);
	fclose(f);
	return 0;
}

/* 1 when fd is on a FUSE filesystem, 0 when not, -1 when it cannot be
 * told.  From the kernel's tables (fdinfo's mnt_id, mountinfo), never
 * from the filesystem: a FUSE filesystem's answers come from its
 * owner's program, which may never give them. */
static int on_fuse(struct scan *S, int fd)
{
	char path[64], line[128];
	int id = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "mnt_id:", 7) == 0)
			id = atoi(line + 7);
	fclose(f);
	if (id < 0)
		return -1;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < S->n_mnts; i++)
			if (S->mnts[i].id == id)
				return S->mnts[i].fuse;
		/* a mount made since the last read */
		if (pass == 0 && read_mounts(S) < 0)
			return -1;
	}
	return -1;
}

/* An account's keys file under its home directory, opened without
 * asking a filesystem its owner can mount there: not when the home is
 * itself on FUSE (fusermount lets a user mount on a directory of their
 * own), never crossing a mount point below the home (RESOLVE_NO_XDEV),
 * which also keeps links out of the home's filesystem.  A FUSE
 * filesystem can leave a lookup or read unanswered for ever, and the
 * scan would never end.  READ_OK with *out, READ_MISSING or READ_BAD
 * with why. */
static int open_in_home(struct scan *S, const struct account *a, const char *path, int *out,
			char *why, size_t whylen)
{
	size_t hl = strlen(a->home);
	const char *rel = path + hl;
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS,
	};
	int hfd, fd, fuse;

	while (*rel == '/')
		rel++;
	hfd = open(a->home, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (hfd < 0)
		return open_failed(path, why, whylen);
	fuse = on_fuse(S, hfd);
	if (fuse != 0) {
		snprintf(why, whylen, "%s: not read (a filesystem its user's program answers "
			 "for could hold the scan for ever)", fuse > 0 ? "the home directory is on "
			 "a FUSE filesystem" : "cannot tell the home directory's filesystem");
		close(hfd);
		return READ_BAD;
	}
	fd = (int)syscall(SYS_openat2, hfd, rel, &how, sizeof(how));
	if (fd < 0 && errno == ENOSYS) /* before Linux 5.6 */
		fd = openat(hfd, rel, (int)how.flags);
	close(hfd);
	if (fd < 0 && errno == EXDEV) {
		snprintf(why, whylen, "its path leaves the home directory's filesystem (a mount "
			 "point or a link on the way): not followed");
		return READ_BAD;
	}
	if (fd < 0)
		return open_failed(path, why, whylen);
	*out = fd;
	return READ_OK;
}

/* The keys file of a: under its home through open_in_home, elsewhere
 * (a root-owned directory of sshd's) as any file the scan reads. */
static int read_keys(struct scan *S, const struct account *a, const char *path, char **buf,
		     size_t *len, char *why, size_t whylen)
{
	size_t hl = strlen(a->home);
	int fd = -1, rc;

	*buf = NULL;
	if (hl < 2 || strncmp(path, a->home, hl) != 0 || path[hl] != '/')
		return read_untrusted(path, SBX_DRIFT_KEYS_MAX, S->in->also_trusted, a->uid, buf,
				      len, why, whylen);
	rc = open_in_home(S, a, path, &fd, why, whylen);
	if (rc != READ_OK)
		return rc;
	return read_fd(fd, SBX_DRIFT_KEYS_MAX, S->in->also_trusted, a->uid, 0, buf, len, why,
		       whylen);
}

static void keys_file(struct scan *S, const struct account *a, const char *path)
{
	char why[300], *buf = NULL, *line;
	size_t len, pos = 0, keys = 0, bad = 0;
	unsigned ln = 0, first = 0, first_bad = 0;
	int rc = read_keys(S, a, path, &buf, &len, why, sizeof(why));
	bool login = sbx_namemap_has(&S->in->logins, NULL, a->name);

	if (rc == READ_MISSING)
		return;
	S->r->key_files++;
	if (rc != READ_OK) {
		/* a file the account's login cannot reach anyway is still
		 * reported: sshd reads it as root */
		bad_file(S->r, path, why, "authorized_keys");
		return;
	}
	while ((line = next_line(buf, len, &pos, &ln))) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line || *line == '#' || *line == '\r')
			continue;
		if (!key_line(line)) {
			if (!bad++)
				first_bad = ln;
			continue;
		}
		if (!keys++)
			first = ln;
	}
	free(buf);
	/* One finding per file, however many lines: the file is its
	 * account's to write, and a finding per line let any user put
	 * half a million records into the journal per scan. */
	if (bad)
		add(S->r, SBX_DRIFT_FILE, path, path, first_bad,
		    fmt("%s:%u: not a public key line", path, first_bad),
		    fmt("the scan reads %s's authorized_keys (%zu line%s in it %s)", a->name,
			bad, bad == 1 ? "" : "s", bad == 1 ? "is not a key" : "are not keys"));
	if (keys && !login)
		add(S->r, SBX_DRIFT_KEYS, a->name, path, first,
		    fmt("%zu key%s for %s in %s", keys, keys == 1 ? "" : "s", a->name, path),
		    fmt("the policy gives %s no login on %s", a->name, S->in->host));
}

static void scan_keys(struct scan *S)
{
	const struct sbx_drift_conf *c = &S->in->conf;
	char pats[2 * SBX_DRIFT_MAX_PATHS][SBX_SETTINGS_PATH_MAX];
	size_t n = 0;

	for (size_t i = 0; i < c->n_authorized_keys; i++) {
		if (strcmp(c->authorized_keys[i], "sshd") == 0) {
			n += sshd_patterns(S, pats + n, 2 * SBX_DRIFT_MAX_PATHS - n);
			continue;
		}
		if (n < 2 * SBX_DRIFT_MAX_PATHS)
			snprintf(pats[n++], SBX_SETTINGS_PATH_MAX, "%s", c->authorized_keys[i]);
	}
	for (size_t k = 0; k < S->n_acc; k++) {
		char paths[2 * SBX_DRIFT_MAX_PATHS][SBX_SETTINGS_PATH_MAX / 2];
		size_t np = 0;

		for (size_t i = 0; i < n; i++) {
			char p[SBX_SETTINGS_PATH_MAX / 2];
			bool dup = false;

			if (!expand_keys_path(pats[i], &S->acc[k], p, sizeof(p)))
				continue;
			for (size_t j = 0; j < np && !dup; j++)
				dup = strcmp(paths[j], p) == 0;
			if (dup)
				continue;
			memcpy(paths[np++], p, strlen(p) + 1);
			keys_file(S, &S->acc[k], p);
		}
	}
}

/* ---- utmp: who is logged in ---------------------------------------------------- */

static bool pid_alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* Login records (USER_PROCESS) whose process is alive.  The loop decides
 * which of them rest on nothing (drift.c). */
static void read_utmp(struct scan *S)
{
	const char *path = S->in->conf.utmp_file;
	char why[300], *buf = NULL;
	size_t len;
	int rc;

	if (!path[0])
		return;
	rc = read_file_as(path, SBX_DRIFT_ACCOUNTS_MAX, S->in->also_trusted, (uid_t)-1,
			  READ_BINARY_OK | READ_GROUP_WRITABLE_OK, &buf, &len, why, sizeof(why));
	if (rc == READ_MISSING)
		return;
	if (rc != READ_OK) {
		bad_file(S->r, path, why, "the login records (utmp)");
		return;
	}
	for (size_t off = 0; off + sizeof(struct utmp) <= len; off += sizeof(struct utmp)) {
		struct utmp u;
		struct sbx_drift_login *v, *l;

		memcpy(&u, buf + off, sizeof(u));
		if (u.ut_type != USER_PROCESS || !pid_alive(u.ut_pid))
			continue;
		v = realloc(S->r->logins, (S->r->n_logins + 1) * sizeof(*v));
		if (!v) {
			S->r->oom = true;
			break;
		}
		S->r->logins = v;
		l = &v[S->r->n_logins++];
		memset(l, 0, sizeof(*l));
		memcpy(l->user, u.ut_user, strnlen(u.ut_user, sizeof(u.ut_user)));
		memcpy(l->line, u.ut_line, strnlen(u.ut_line, sizeof(u.ut_line)));
		l->pid = u.ut_pid;
		l->at = u.ut_tv.tv_sec;
	}
	free(buf);
}

/* ---- remove: a member out of a role's unix group ------------------------------------- */

static int write_all(int fd, const char *b, size_t n)
{
	while (n) {
		ssize_t w = write(fd, b, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

/* A new file beside path holding data, with path's mode and owner,
 * synced.  0 or -1 with why. */
static int write_beside(const char *tmp, const struct stat *like, const char *data, size_t n,
			char *why, size_t whylen)
{
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd < 0) {
		snprintf(why, whylen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fchown(fd, like->st_uid, like->st_gid) < 0 && geteuid() == 0) {
		snprintf(why, whylen, "cannot give %s its owner: %s", tmp, strerror(errno));
		goto fail;
	}
	if (fchmod(fd, like->st_mode & 07777) < 0 || write_all(fd, data, n) < 0 || fsync(fd) < 0) {
		snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) < 0) {
		snprintf(why, whylen, "cannot write %s: %s", tmp, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
fail:
	close(fd);
	unlink(tmp);
	return -1;
}

/* The line of a group file without the members listed for removal in
 * it; appended to out. */
static void rewrite_line(struct scan *S, const char *file, const char *line, char **out,
			 size_t *n, size_t *cap, size_t *removed, bool *flags)
{
	char *copy = strdup(line), *f[6], *save = NULL, *u;
	size_t need = strlen(line) + 2, k;

	if (!copy)
		goto oom;
	if (*n + need > *cap) {
		char *v = realloc(*out, *cap * 2 + need);

		if (!v)
			goto oom;
		*out = v;
		*cap = *cap * 2 + need;
	}
	if (!*line || line[0] == '#' || split(copy, ':', f, 4) != 4) {
		*n += (size_t)sprintf(*out + *n, "%s\n", line);
		free(copy);
		return;
	}
	k = (size_t)sprintf(*out + *n, "%s:%s:%s:", f[0], f[1], f[2]);
	{
		bool first = true;

		for (u = strtok_r(f[3], ",", &save); u; u = strtok_r(NULL, ",", &save)) {
			bool drop = false;

			for (size_t i = 0; i < S->n_rm && !drop; i++)
				if (strcmp(S->rm[i].file, file) == 0 &&
				    strcmp(S->rm[i].group, f[0]) == 0 &&
				    strcmp(S->rm[i].user, u) == 0) {
					drop = true;
					flags[i] = true;
				}
			if (drop) {
				(*removed)++;
				continue;
			}
			k += (size_t)sprintf(*out + *n + k, "%s%s", first ? "" : ",", u);
			first = false;
		}
	}
	*n += k;
	(*out)[(*n)++] = '\n';
	free(copy);
	return;
oom:
	free(copy);
	S->r->oom = true;
}

static void act(struct scan *S, size_t i, const char *backup, const char *error)
{
	struct sbx_drift_act *v = realloc(S->r->acts, (S->r->n_acts + 1) * sizeof(*v)), *a;

	if (!v) {
		S->r->oom = true;
		return;
	}
	S->r->acts = v;
	a = &v[S->r->n_acts++];
	memset(a, 0, sizeof(*a));
	a->user = dup0(S->rm[i].user);
	a->group = dup0(S->rm[i].group);
	a->file = dup0(S->rm[i].file);
	a->backup = dup0(backup);
	a->error = dup0(error);
	snprintf(a->id, sizeof(a->id), "%s", S->rm[i].id);
}

/* YYYYMMDDTHHMMSSZ without gmtime_r: glibc's takes the time zone lock,
 * and a snapshot child forked while this thread held it would wait for
 * it forever (docs/architecture.md, "Threads"). */
static void utc_stamp(time_t t, char *out, size_t len)
{
	int64_t days = (int64_t)t / 86400, secs = (int64_t)t % 86400;
	int64_t z, era, doe, yoe, y, doy, mp, d, m;

	if (secs < 0) {
		secs += 86400;
		days--;
	}
	/* civil_from_days (H. Hinnant) */
	z = days + 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	snprintf(out, len, "%04d%02d%02dT%02d%02d%02dZ", (int)y, (int)m, (int)d,
		 (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
}

/* Under shadow-utils' lock (lckpwdf's .pwd.lock beside the file): read
 * the file again, keep a backup, write the new one beside it and rename
 * it over, sync the directory. */
static void remove_in(struct scan *S, const char *file)
{
	char why[400] = "", lock[4200], backup[4200], tmp[4200], stamp[80], *buf = NULL;
	char *out = NULL, *orig = NULL, *line, *slash;
	size_t len, pos = 0, n = 0, cap, removed = 0;
	unsigned ln = 0;
	bool *flags = calloc(S->n_rm ? S->n_rm : 1, sizeof(*flags));
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	struct stat st;
	int lfd = -1, dfd = -1;
	time_t now = time(NULL);

	if (!flags) {
		S->r->oom = true;
		return;
	}
	slash = strrchr(file, '/');
	snprintf(lock, sizeof(lock), "%.*s/.pwd.lock", (int)(slash - file), file);
	lfd = open(lock, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	for (int tries = 0; lfd >= 0 && fcntl(lfd, F_SETLK, &fl) < 0; tries++) {
		if (tries == 40) {
			snprintf(why, sizeof(why), "%.300s is locked (someone is editing the groups)",
				 lock);
			goto done;
		}
		usleep(25000);
	}
	if (lfd < 0) {
		snprintf(why, sizeof(why), "cannot lock %.300s: %s", lock, strerror(errno));
		goto done;
	}
	if (read_untrusted(file, SBX_DRIFT_ACCOUNTS_MAX, S->in->also_trusted, (uid_t)-1, &buf, &len,
			   why, sizeof(why)) != READ_OK || stat(file, &st) < 0) {
		if (!why[0])
			snprintf(why, sizeof(why), "cannot read %s again", file);
		goto done;
	}
	cap = len + 64;
	out = malloc(cap);
	orig = malloc(len + 1);
	if (!out || !orig) {
		snprintf(why, sizeof(why), "out of memory");
		goto done;
	}
	/* the backup is the file as read: the lines are cut in place below */
	memcpy(orig, buf, len + 1);
	while ((line = next_line(buf, len, &pos, &ln)))
		rewrite_line(S, file, line, &out, &n, &cap, &removed, flags);
	if (!removed)
		goto done; /* gone meanwhile: nothing to do */
	utc_stamp(now, stamp, sizeof(stamp));
	snprintf(backup, sizeof(backup), "%s.sbx-%s", file, stamp);
	snprintf(tmp, sizeof(tmp), "%s.sbx-new", file);
	(void)unlink(tmp);
	if (write_beside(backup, &st, orig, len, why, sizeof(why)) < 0 ||
	    write_beside(tmp, &st, out, n, why, sizeof(why)) < 0)
		goto done;
	if (rename(tmp, file) < 0) {
		snprintf(why, sizeof(why), "cannot replace %s: %s", file, strerror(errno));
		unlink(tmp);
		goto done;
	}
	snprintf(lock, sizeof(lock), "%.*s", (int)(slash - file), file);
	dfd = open(lock[0] ? lock : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	for (size_t i = 0; i < S->n_rm; i++)
		if (flags[i])
			act(S, i, backup, NULL);
	why[0] = '\0';
done:
	if (why[0])
		for (size_t i = 0; i < S->n_rm; i++)
			if (strcmp(S->rm[i].file, file) == 0)
				act(S, i, NULL, why);
	if (lfd >= 0)
		close(lfd);
	free(flags);
	free(buf);
	free(orig);
	free(out);
}

static void remediate(struct scan *S)
{
	for (size_t i = 0; i < S->n_rm; i++) {
		bool done = false;

		for (size_t k = 0; k < i && !done; k++)
			done = strcmp(S->rm[k].file, S->rm[i].file) == 0;
		if (!done)
			remove_in(S, S->rm[i].file);
	}
}

/* ---- the scan ------------------------------------------------------------------------ */

void sbx_drift_scan(const struct sbx_drift_input *in, struct sbx_drift_result *r)
{
	struct scan S = { .in = in, .r = r };
	char gshadow[SBX_SETTINGS_PATH_MAX + 16];
	const char *slash = strrchr(in->conf.group_file, '/');

	memset(r, 0, sizeof(*r));
	read_passwd(&S);
	read_groups(&S, in->conf.group_file, false);
	snprintf(gshadow, sizeof(gshadow), "%.*s/gshadow",
		 slash ? (int)(slash - in->conf.group_file) : 0, in->conf.group_file);
	read_groups(&S, gshadow, true);
	scan_sudoers(&S);
	scan_keys(&S);
	read_utmp(&S);
	remediate(&S);
	free(S.acc);
	free(S.mnts);
	free(S.rm);
	sbx_namemap_free(&S.uid_name);
	sbx_namemap_free(&S.gid_name);
	sbx_namemap_free(&S.acc_by_name);
	sbx_strpool_free(&S.pool);
}
