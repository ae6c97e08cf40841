#include "config.h"

#include "nss_sbx.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef SBX_DEFAULT_SOCKET
#define SBX_DEFAULT_SOCKET "/run/sbx/broker.sock"
#endif

int nss_sbx_paths(char *sock, size_t socklen, char *table, size_t tablelen)
{
	/* secure_getenv: a set-uid program (sudo, su) must never be pointed
	 * at a table or socket of the caller's choosing. */
	const char *env = secure_getenv("SBX_SOCKET");
	const char *path = env && *env ? env : SBX_DEFAULT_SOCKET;
	const char *slash = strrchr(path, '/');
	size_t plen = strlen(path), dlen;

	if (path[0] != '/' || !slash)
		return -EINVAL;
	dlen = (size_t)(slash - path) + 1;
	if (plen >= socklen || dlen + sizeof(SBX_TBL_FILE) > tablelen)
		return -ENAMETOOLONG;
	memcpy(sock, path, plen + 1);
	memcpy(table, path, dlen);
	memcpy(table + dlen, SBX_TBL_FILE, sizeof(SBX_TBL_FILE));
	return 0;
}

struct nss_sbx_map {
	int refs;           /* atomic */
	bool valid;         /* false: a cached verdict that this file is unusable */
	struct timespec made; /* CLOCK_MONOTONIC when the verdict was reached */
	void *addr;
	size_t len;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtim, ctim;
	uid_t euid;         /* the verdict was reached for this effective uid */
	struct sbx_tbl t;
};

/* The mapping of the current file, shared by every thread.  The lock
 * guards only the pointer swap and the reference count's first
 * increment; nothing slow happens under it. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nss_sbx_map *cache;

/* For the module's fork handlers (nss_sbx.c), which take every lock of
 * the module in one order: a child forked while another thread held this
 * lock would otherwise find it held forever. */
void nss_sbx_map_fork_lock(void)
{
	pthread_mutex_lock(&cache_lock);
}

void nss_sbx_map_fork_unlock(void)
{
	pthread_mutex_unlock(&cache_lock);
}

const struct sbx_tbl *nss_sbx_map_table(const struct nss_sbx_map *m)
{
	return &m->t;
}

void nss_sbx_map_put(struct nss_sbx_map *m)
{
	if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	if (m->addr)
		(void)munmap(m->addr, m->len);
	free(m);
}

/* A verdict against a file is kept for a second at most: without a
 * mapping that holds the inode, its number can be reused by the next
 * table within one tick of the file system's clock. */
#define VERDICT_TTL_NS 1000000000LL

static bool verdict_fresh(const struct nss_sbx_map *m)
{
	struct timespec now;

	if (m->valid)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - m->made.tv_sec) * 1000000000LL + (now.tv_nsec - m->made.tv_nsec) <
	       VERDICT_TTL_NS;
}

/* A valid entry keeps its file mapped, so no other file can have its
 * device and inode while it is cached. */
static bool same_file(const struct nss_sbx_map *m, const struct stat *st)
{
	return m->dev == st->st_dev && m->ino == st->st_ino && m->size == st->st_size &&
	       m->mtim.tv_sec == st->st_mtim.tv_sec && m->mtim.tv_nsec == st->st_mtim.tv_nsec &&
	       m->ctim.tv_sec == st->st_ctim.tv_sec && m->ctim.tv_nsec == st->st_ctim.tv_nsec;
}

/* Who may have written the table: root (the broker as a service) or this
 * process's own effective uid (a broker and its tests run by one user).
 * Either way nobody else may write it.  A set-uid program runs with
 * euid 0, so it trusts root's table only. */
static bool trusted(const struct stat *st)
{
	return S_ISREG(st->st_mode) && (st->st_uid == 0 || st->st_uid == geteuid()) &&
	       !(st->st_mode & (S_IWGRP | S_IWOTH));
}

/* Map and check the file.  Returns a reference (refs 1), possibly one
 * marked invalid so that the verdict is cached too; NULL on ENOMEM or
 * when the file cannot be opened.
 *
 * The caller has seen a regular file at path, but it can be swapped for
 * anything before the open, so the open must not wait on what it finds:
 * O_NONBLOCK, because a FIFO with no writer (or a tty, a device waiting
 * for carrier) would otherwise hold getgrnam forever; O_NOFOLLOW, because
 * the table is the file at path, not what a link points to; O_NOCTTY, so
 * a terminal never becomes the caller's controlling tty; O_CLOEXEC, so
 * the fd never leaks into a program the caller runs.  What was opened is
 * then judged by fstat alone (trusted: a regular file, its owner and
 * mode), and the fd is closed on every path. */
static struct nss_sbx_map *map_file(const char *path)
{
	struct nss_sbx_map *m = NULL;
	struct stat st;
	void *addr;
	int fd;

	fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) != 0)
		goto out;
	m = calloc(1, sizeof(*m));
	if (!m)
		goto out;
	m->refs = 1;
	clock_gettime(CLOCK_MONOTONIC, &m->made);
	m->dev = st.st_dev;
	m->ino = st.st_ino;
	m->size = st.st_size;
	m->mtim = st.st_mtim;
	m->ctim = st.st_ctim;
	m->euid = geteuid();
	if (!trusted(&st) || st.st_size < (off_t)SBX_TBL_HDR_LEN ||
	    st.st_size > (off_t)SBX_TBL_MAX_SIZE)
		goto out;
	addr = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (addr == MAP_FAILED)
		goto out;
	m->addr = addr;
	m->len = (size_t)st.st_size;
	if (sbx_tbl_open(&m->t, addr, m->len, 1, NULL, 0) == 0) {
		m->valid = true;
	} else {
		(void)munmap(addr, m->len);
		m->addr = NULL;
		m->len = 0;
	}
out:
	close(fd);
	return m;
}

/* Make m the shared mapping (the cache holds a reference of its own). */
static void install(struct nss_sbx_map *m)
{
	struct nss_sbx_map *old;

	if (m)
		__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&cache_lock);
	old = cache;
	cache = m;
	pthread_mutex_unlock(&cache_lock);
	nss_sbx_map_put(old);
}

struct nss_sbx_map *nss_sbx_map_get(const char *path)
{
	struct nss_sbx_map *m = NULL;
	struct stat st;

	/* One lstat per call: cheap, and it notices a table renamed into
	 * place the moment it happens.  Anything but a regular file (a link,
	 * a FIFO, a socket, a directory, a device) is no table, and is not
	 * even opened: opening a device can have side effects of its own. */
	if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
		install(NULL);
		return NULL;
	}
	/* Trust depends on who is asking (root's table, or the euid's own),
	 * and a process can change its euid between two lookups (a privilege
	 * drop, or a seteuid back to root): a verdict counts for its euid
	 * only. */
	pthread_mutex_lock(&cache_lock);
	if (cache && same_file(cache, &st) && cache->euid == geteuid() && verdict_fresh(cache)) {
		m = cache;
		__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&cache_lock);
	if (!m) {
		m = map_file(path);
		if (!m)
			return NULL;
		install(m);
	}
	if (!m->valid) {
		nss_sbx_map_put(m);
		return NULL;
	}
	return m;
}
