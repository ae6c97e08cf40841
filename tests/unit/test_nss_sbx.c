/* libnss_sbx.so.2 loaded with dlopen(), as glibc loads it, and called
 * like glibc calls it: buffers of every size, the clock, broken tables,
 * initgroups' array rules, enumeration, errno and fds.  No broker runs:
 * the socket path points into an empty temp dir, so every fallback is
 * UNAVAIL.
 *
 * The module exports nothing but its NSS entry points, so its table
 * loader (nss_module/tblcache.c) is compiled into this test as well and
 * called directly where a test is about the loader itself.  It comes
 * first: it brings config.h (_GNU_SOURCE) before any system header. */
#include "tblcache.c"

#include <criterion/criterion.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <nss.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sbx_table.h"

typedef enum nss_status (*grnam_fn)(const char *, struct group *, char *, size_t, int *);
typedef enum nss_status (*grgid_fn)(gid_t, struct group *, char *, size_t, int *);
typedef enum nss_status (*setgrent_fn)(int);
typedef enum nss_status (*getgrent_fn)(struct group *, char *, size_t, int *);
typedef enum nss_status (*endgrent_fn)(void);
typedef enum nss_status (*initgroups_fn)(const char *, gid_t, long int *, long int *, gid_t **,
					 long int, int *);

static void *mod;
static grnam_fn getgrnam_r_;
static grgid_fn getgrgid_r_;
static setgrent_fn setgrent_;
static getgrent_fn getgrent_r_;
static endgrent_fn endgrent_;
static initgroups_fn initgroups_dyn_;
static char dir[] = "/tmp/sbx-nss-XXXXXX";
static char table[128];

static void setup(void)
{
	char sock[128];

	mod = dlopen(SBX_NSS_MODULE, RTLD_NOW | RTLD_LOCAL);
	cr_assert_not_null(mod, "%s", dlerror());
	getgrnam_r_ = (grnam_fn)dlsym(mod, "_nss_sbx_getgrnam_r");
	getgrgid_r_ = (grgid_fn)dlsym(mod, "_nss_sbx_getgrgid_r");
	setgrent_ = (setgrent_fn)dlsym(mod, "_nss_sbx_setgrent");
	getgrent_r_ = (getgrent_fn)dlsym(mod, "_nss_sbx_getgrent_r");
	endgrent_ = (endgrent_fn)dlsym(mod, "_nss_sbx_endgrent");
	initgroups_dyn_ = (initgroups_fn)dlsym(mod, "_nss_sbx_initgroups_dyn");
	cr_assert(getgrnam_r_ && getgrgid_r_ && setgrent_ && getgrent_r_ && endgrent_ &&
		  initgroups_dyn_);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/broker.sock", dir);
	snprintf(table, sizeof(table), "%s/groups.table", dir);
	cr_assert_eq(setenv("SBX_SOCKET", sock, 1), 0);
}

static void teardown(void)
{
	char cmd[160];

	/* A test that failed while it was another euid: clean up as root. */
	if (getuid() == 0 && geteuid() != 0)
		cr_assert_eq(seteuid(0), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
	/* glibc never unloads NSS modules; neither do we (the atfork
	 * handlers stay valid). */
}

TestSuite(nss, .init = setup, .fini = teardown);

/* Write bytes to the table path the broker's way (temp + rename). */
static void put_table(const uint8_t *buf, size_t len, mode_t mode)
{
	char tmp[160];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", table);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	cr_assert_eq(rename(tmp, table), 0);
}

/* sbx-admin 60001: alice (standing), erin (+1h), dave (expired);
 * sbx-phi 60002: erin (+1h). */
static uint8_t *std_table(size_t *len)
{
	struct sbx_tbl_builder *b = sbx_tbl_builder_new();
	int64_t now = time(NULL);
	uint8_t *out = NULL;
	int g1 = sbx_tbl_add_group(b, "sbx-admin", 60001);
	int g2 = sbx_tbl_add_group(b, "sbx-phi", 60002);

	cr_assert_eq(sbx_tbl_add_member(b, g1, "erin", now + 3600), 0);
	cr_assert_eq(sbx_tbl_add_member(b, g1, "alice", SBX_TBL_FOREVER), 0);
	cr_assert_eq(sbx_tbl_add_member(b, g1, "dave", now - 1), 0);
	cr_assert_eq(sbx_tbl_add_member(b, g2, "erin", now + 3600), 0);
	cr_assert_eq(sbx_tbl_finish(b, 1, now, &out, len), 0);
	sbx_tbl_builder_free(b);
	return out;
}

static void install_std_table(void)
{
	size_t len;
	uint8_t *buf = std_table(&len);

	put_table(buf, len, 0644);
	free(buf);
}

static enum nss_status grnam(const char *name, struct group *gr, char *buf, size_t len,
			     int *err)
{
	enum nss_status s;

	errno = EILSEQ;
	s = getgrnam_r_(name, gr, buf, len, err);
	cr_assert_eq(errno, EILSEQ, "the module must leave errno alone");
	return s;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	cr_assert_not_null(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

Test(nss, lookups_by_name_and_gid)
{
	char buf[1024];
	struct group gr;
	int err = 0;

	install_std_table();
	cr_assert_eq(grnam("sbx-admin", &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_str_eq(gr.gr_name, "sbx-admin");
	cr_assert_str_eq(gr.gr_passwd, "x");
	cr_assert_eq(gr.gr_gid, 60001);
	cr_assert_str_eq(gr.gr_mem[0], "alice");
	cr_assert_str_eq(gr.gr_mem[1], "erin");
	cr_assert_null(gr.gr_mem[2], "dave's membership has expired");

	errno = EILSEQ;
	cr_assert_eq(getgrgid_r_(60002, &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_eq(errno, EILSEQ);
	cr_assert_str_eq(gr.gr_name, "sbx-phi");
	cr_assert_str_eq(gr.gr_mem[0], "erin");
	cr_assert_null(gr.gr_mem[1]);
}

Test(nss, names_not_ours_are_notfound)
{
	char buf[1024];
	struct group gr;
	int err = 0;

	install_std_table();
	cr_assert_eq(grnam("wheel", &gr, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	cr_assert_eq(err, ENOENT);
	cr_assert_eq(getgrgid_r_(0, &gr, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	/* Not even a possible sbx name: answered without any I/O. */
	unlink(table);
	cr_assert_eq(grnam("Domain Users", &gr, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	cr_assert_eq(grnam("", &gr, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
}

Test(nss, every_short_buffer_is_erange)
{
	char *big = malloc(4096 + 8);
	struct group gr;
	size_t need = 0;
	int err;

	install_std_table();
	/* Also at every misalignment of the caller's buffer. */
	for (size_t shift = 0; shift < 8; shift++) {
		char *buf = big + shift;

		need = 0;
		for (size_t len = 0; len < 4096; len++) {
			enum nss_status s;

			err = 0;
			s = grnam("sbx-admin", &gr, buf, len, &err);
			if (s == NSS_STATUS_TRYAGAIN) {
				cr_assert_eq(err, ERANGE, "len %zu", len);
				cr_assert_eq(need, 0, "TRYAGAIN at %zu after success at %zu", len, need);
				continue;
			}
			cr_assert_eq(s, NSS_STATUS_SUCCESS, "len %zu", len);
			if (!need)
				need = len;
			cr_assert_geq(gr.gr_name, buf);
			cr_assert_lt(gr.gr_name + strlen(gr.gr_name), buf + len);
			cr_assert_lt((char *)&gr.gr_mem[2], buf + len);
			cr_assert_str_eq(gr.gr_mem[1], "erin");
			cr_assert_lt(gr.gr_mem[1] + 4, buf + len);
		}
		cr_assert_gt(need, 0);
		cr_assert_lt(need, 200, "a small group needs a small buffer (%zu)", need);
	}
	free(big);
}

Test(nss, no_table_no_broker_is_unavail)
{
	char buf[1024];
	struct group gr;
	int err = 0;
	int fds = count_fds();

	for (int i = 0; i < 50; i++) {
		cr_assert_eq(grnam("sbx-admin", &gr, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
		cr_assert_eq(getgrgid_r_(60001, &gr, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
	}
	cr_assert_eq(count_fds(), fds, "no fd leaks");
}

Test(nss, truncated_tables_at_every_offset)
{
	size_t len;
	uint8_t *buf = std_table(&len);
	char out[1024];
	struct group gr;
	int err = 0;
	int fds = count_fds();

	for (size_t cut = 0; cut < len; cut++) {
		put_table(buf, cut, 0644);
		cr_assert_eq(grnam("sbx-admin", &gr, out, sizeof(out), &err), NSS_STATUS_UNAVAIL,
			     "cut at %zu", cut);
	}
	/* And the whole table again is used at once. */
	put_table(buf, len, 0644);
	cr_assert_eq(grnam("sbx-admin", &gr, out, sizeof(out), &err), NSS_STATUS_SUCCESS);
	cr_assert_eq(count_fds(), fds, "no fd leaks");
	free(buf);
}

Test(nss, garbage_tables)
{
	unsigned seed = 4242;
	size_t len;
	uint8_t *good = std_table(&len);
	char out[1024];
	struct group gr;
	int err = 0;

	for (int round = 0; round < 300; round++) {
		size_t n = (size_t)(rand_r(&seed) % 400);
		uint8_t *g = malloc(n + 1);

		for (size_t i = 0; i < n; i++)
			g[i] = (uint8_t)rand_r(&seed);
		/* Half of them start like a real table. */
		if (round % 2 && n >= 64)
			memcpy(g, good, 64);
		put_table(g, n, 0644);
		cr_assert_eq(grnam("sbx-admin", &gr, out, sizeof(out), &err), NSS_STATUS_UNAVAIL);
		free(g);
	}
	free(good);
}

Test(nss, an_untrusted_table_is_ignored)
{
	char buf[1024];
	struct group gr;
	int err = 0;
	size_t len;
	uint8_t *t = std_table(&len);

	/* Writable by others: anyone could have put themselves in it. */
	put_table(t, len, 0666);
	cr_assert_eq(grnam("sbx-admin", &gr, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
	put_table(t, len, 0644);
	cr_assert_eq(grnam("sbx-admin", &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	free(t);
}

Test(nss, a_replaced_table_is_seen_at_once)
{
	char buf[1024];
	struct group gr;
	int err = 0;
	struct sbx_tbl_builder *b = sbx_tbl_builder_new();
	uint8_t *t = NULL;
	size_t len;
	int gi = sbx_tbl_add_group(b, "sbx-admin", 60001);

	install_std_table();
	cr_assert_eq(grnam("sbx-admin", &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_not_null(gr.gr_mem[1]);
	cr_assert_eq(sbx_tbl_finish(b, 2, time(NULL), &t, &len), 0);
	sbx_tbl_builder_free(b);
	(void)gi;
	put_table(t, len, 0644);
	cr_assert_eq(grnam("sbx-admin", &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_null(gr.gr_mem[0], "the new table has no members");
	cr_assert_eq(grnam("sbx-phi", &gr, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	free(t);
}

Test(nss, membership_ends_at_expires_at)
{
	struct sbx_tbl_builder *b = sbx_tbl_builder_new();
	int64_t now = time(NULL);
	uint8_t *t = NULL;
	size_t len;
	char buf[1024];
	struct group gr;
	int err = 0;
	int gi = sbx_tbl_add_group(b, "sbx-admin", 60001);

	cr_assert_eq(sbx_tbl_add_member(b, gi, "erin", now + 2), 0);
	cr_assert_eq(sbx_tbl_finish(b, 1, now, &t, &len), 0);
	sbx_tbl_builder_free(b);
	put_table(t, len, 0644);
	cr_assert_eq(grnam("sbx-admin", &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_str_eq(gr.gr_mem[0], "erin");
	/* Nothing rewrites the table: the clock alone ends her membership. */
	while (time(NULL) < now + 2)
		usleep(20000);
	cr_assert_eq(grnam("sbx-admin", &gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_null(gr.gr_mem[0], "erin is gone at her expires_at");
	free(t);
}

Test(nss, initgroups_follows_glibc_rules)
{
	long int start = 1, size = 1;
	gid_t *groups = malloc(sizeof(gid_t));
	int err = 0;

	install_std_table();
	groups[0] = 100;
	errno = EILSEQ;
	cr_assert_eq(initgroups_dyn_("erin", 100, &start, &size, &groups, 0, &err),
		     NSS_STATUS_SUCCESS);
	cr_assert_eq(errno, EILSEQ);
	cr_assert_eq(start, 3, "two groups added to the primary one");
	cr_assert_geq(size, 3);
	cr_assert_eq(groups[1], 60001);
	cr_assert_eq(groups[2], 60002);

	/* Already present, or the skipped primary group: not added again. */
	start = 1;
	groups[0] = 60001;
	cr_assert_eq(initgroups_dyn_("erin", 60001, &start, &size, &groups, 0, &err),
		     NSS_STATUS_SUCCESS);
	cr_assert_eq(start, 2);
	cr_assert_eq(groups[1], 60002);

	/* limit: never more than that many entries. */
	start = 1;
	groups[0] = 100;
	cr_assert_eq(initgroups_dyn_("erin", 100, &start, &size, &groups, 2, &err),
		     NSS_STATUS_SUCCESS);
	cr_assert_eq(start, 2);

	start = 1;
	cr_assert_eq(initgroups_dyn_("dave", 100, &start, &size, &groups, 0, &err),
		     NSS_STATUS_NOTFOUND, "dave's grant expired");
	cr_assert_eq(start, 1);
	cr_assert_eq(initgroups_dyn_("bob", 100, &start, &size, &groups, 0, &err),
		     NSS_STATUS_NOTFOUND);
	cr_assert_eq(initgroups_dyn_("not a name", 100, &start, &size, &groups, 0, &err),
		     NSS_STATUS_NOTFOUND);
	unlink(table);
	cr_assert_eq(initgroups_dyn_("erin", 100, &start, &size, &groups, 0, &err),
		     NSS_STATUS_UNAVAIL);
	free(groups);
}

Test(nss, enumeration_retries_the_same_group_on_erange)
{
	char buf[1024];
	struct group gr;
	int err = 0;

	install_std_table();
	cr_assert_eq(setgrent_(0), NSS_STATUS_SUCCESS);
	cr_assert_eq(getgrent_r_(&gr, buf, 8, &err), NSS_STATUS_TRYAGAIN);
	cr_assert_eq(err, ERANGE);
	cr_assert_eq(getgrent_r_(&gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_str_eq(gr.gr_name, "sbx-admin", "not skipped by the short buffer");
	cr_assert_eq(getgrent_r_(&gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_str_eq(gr.gr_name, "sbx-phi");
	cr_assert_eq(getgrent_r_(&gr, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	cr_assert_eq(endgrent_(), NSS_STATUS_SUCCESS);
	/* Without setgrent the walk starts by itself; endgrent rewinds. */
	cr_assert_eq(getgrent_r_(&gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_str_eq(gr.gr_name, "sbx-admin");
	endgrent_();
	cr_assert_eq(getgrent_r_(&gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_str_eq(gr.gr_name, "sbx-admin");
	endgrent_();
	unlink(table);
	cr_assert_eq(setgrent_(0), NSS_STATUS_UNAVAIL);
	cr_assert_eq(getgrent_r_(&gr, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
	endgrent_();
}

Test(nss, enumeration_keeps_its_table_while_it_is_replaced)
{
	char buf[1024];
	struct group gr;
	int err = 0;
	struct sbx_tbl_builder *b = sbx_tbl_builder_new();
	uint8_t *t = NULL;
	size_t len;

	install_std_table();
	cr_assert_eq(setgrent_(0), NSS_STATUS_SUCCESS);
	cr_assert_eq(getgrent_r_(&gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	/* A table with a single group arrives mid-walk. */
	cr_assert_geq(sbx_tbl_add_group(b, "other", 7), 0);
	cr_assert_eq(sbx_tbl_finish(b, 2, time(NULL), &t, &len), 0);
	sbx_tbl_builder_free(b);
	put_table(t, len, 0644);
	cr_assert_eq(getgrent_r_(&gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_str_eq(gr.gr_name, "sbx-phi", "the walk finishes the table it started");
	cr_assert_eq(getgrent_r_(&gr, buf, sizeof(buf), &err), NSS_STATUS_NOTFOUND);
	endgrent_();
	cr_assert_eq(getgrent_r_(&gr, buf, sizeof(buf), &err), NSS_STATUS_SUCCESS);
	cr_assert_str_eq(gr.gr_name, "other");
	endgrent_();
	free(t);
}

Test(nss, only_nss_symbols_are_exported)
{
	cr_assert_null(dlsym(mod, "sbx_tbl_open"), "the table code stays inside");
	cr_assert_null(dlsym(mod, "sbx_call"), "the protocol code stays inside");
	cr_assert_null(dlsym(mod, "nss_sbx_map_get"));
	cr_assert_not_null(dlsym(mod, "_nss_sbx_getgrnam_r"));
}

static volatile int stop_hammer;

static void *hammer(void *p)
{
	char buf[1024];
	struct group gr;
	int err;

	(void)p;
	while (!__atomic_load_n(&stop_hammer, __ATOMIC_RELAXED)) {
		(void)getgrnam_r_("sbx-admin", &gr, buf, sizeof(buf), &err);
		setgrent_(0);
		while (getgrent_r_(&gr, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS)
			;
		endgrent_();
	}
	return NULL;
}

/* A child forked while other threads are inside the module must find no
 * lock held forever (the module's fork handlers). */
Test(nss, fork_while_other_threads_look_up)
{
	pthread_t t[4];

	install_std_table();
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, hammer, NULL), 0);
	for (int round = 0; round < 100; round++) {
		pid_t pid = fork();
		int status = 0, waited = 0;

		cr_assert_geq(pid, 0);
		if (pid == 0) {
			char buf[1024];
			struct group gr;
			int err, ok;

			ok = getgrnam_r_("sbx-admin", &gr, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS;
			setgrent_(0);
			ok = ok && getgrent_r_(&gr, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS;
			endgrent_();
			_exit(ok ? 0 : 1);
		}
		while (waitpid(pid, &status, WNOHANG) == 0) {
			if (++waited > 500) { /* 5 s: it is stuck */
				kill(pid, SIGKILL);
				waitpid(pid, &status, 0);
				cr_assert_fail("child %d of round %d hangs", pid, round);
			}
			usleep(10000);
		}
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d", round);
	}
	__atomic_store_n(&stop_hammer, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
}

/* ---- what may stand at the table path ------------------------------------- */

/* Put something that is not a regular file where the table goes. */
static void replace_table(const char *kind)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", table);
	cr_assert_eq(system(cmd), 0);
	if (strcmp(kind, "fifo") == 0) {
		cr_assert_eq(mkfifo(table, 0644), 0);
	} else if (strcmp(kind, "dir") == 0) {
		cr_assert_eq(mkdir(table, 0755), 0);
	} else if (strcmp(kind, "symlink") == 0) {
		char target[160];

		/* To a good table: the loader follows no links either. */
		install_std_table();
		snprintf(target, sizeof(target), "%s.real", table);
		cr_assert_eq(rename(table, target), 0);
		cr_assert_eq(symlink(target, table), 0);
	} else if (strcmp(kind, "fifolink") == 0) {
		char target[160];

		snprintf(target, sizeof(target), "%s.fifo", table);
		cr_assert_eq(mkfifo(target, 0644), 0);
		cr_assert_eq(symlink(target, table), 0);
	} else {
		cr_assert_fail("unknown kind %s", kind);
	}
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The loader on a FIFO nobody writes to: an open() that waits for a
 * writer would hang the caller (getgrnam in a login) forever.  It must
 * answer "no table" at once, and leave no fd behind. */
Test(nss_loader, a_fifo_is_no_table_and_does_not_block, .init = setup, .fini = teardown,
     .timeout = 5)
{
	int fds = count_fds();
	int64_t t0;

	replace_table("fifo");
	t0 = mono_ms();
	for (int i = 0; i < 20; i++)
		cr_assert_null(nss_sbx_map_get(table), "a FIFO was taken for a table");
	cr_assert_lt(mono_ms() - t0, 500, "20 looks at a FIFO took %lld ms",
		     (long long)(mono_ms() - t0));
	cr_assert_eq(count_fds(), fds, "no fd leaks");
	/* A writer on the other end changes nothing. */
	{
		int w = open(table, O_RDWR | O_NONBLOCK | O_CLOEXEC);

		cr_assert_geq(w, 0);
		cr_assert_eq(write(w, "SBXGRPS\n", 8), 8);
		cr_assert_null(nss_sbx_map_get(table));
		close(w);
	}
	cr_assert_eq(count_fds(), fds, "no fd leaks");
}

Test(nss_loader, only_a_regular_file_is_a_table, .init = setup, .fini = teardown, .timeout = 5)
{
	const char *kinds[] = { "dir", "symlink", "fifolink", "fifo" };
	int fds = count_fds();

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		replace_table(kinds[i]);
		cr_assert_null(nss_sbx_map_get(table), "a %s was taken for a table", kinds[i]);
	}
	cr_assert_eq(count_fds(), fds, "no fd leaks");
	/* And a real table in its place is used at once. */
	replace_table("dir");
	rmdir(table);
	install_std_table();
	{
		struct nss_sbx_map *m = nss_sbx_map_get(table);

		cr_assert_not_null(m);
		cr_assert_eq(nss_sbx_map_table(m)->n_groups, 2);
		nss_sbx_map_put(m);
	}
}

/* A character device at the table path (the /dev/zero kind: it opens
 * without blocking, and reads forever).  mknod needs root. */
Test(nss_loader, a_char_device_is_no_table, .init = setup, .fini = teardown, .timeout = 5)
{
	int fds = count_fds();

	if (geteuid() != 0)
		cr_skip_test("mknod needs root");
	unlink(table);
	cr_assert_eq(mknod(table, S_IFCHR | 0644, makedev(1, 5)), 0);
	cr_assert_null(nss_sbx_map_get(table));
	cr_assert_eq(count_fds(), fds, "no fd leaks");
}

/* Through the module, as glibc calls it: a FIFO at the table path is
 * "no table" (here: no broker either, so UNAVAIL), within the bound. */
Test(nss, a_fifo_table_does_not_block_getgrnam, .timeout = 5)
{
	char buf[1024];
	struct group gr;
	int err = 0;
	int fds = count_fds();
	int64_t t0;

	replace_table("fifo");
	t0 = mono_ms();
	cr_assert_eq(grnam("sbx-admin", &gr, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
	cr_assert_eq(getgrgid_r_(60001, &gr, buf, sizeof(buf), &err), NSS_STATUS_UNAVAIL);
	cr_assert_eq(setgrent_(0), NSS_STATUS_UNAVAIL);
	endgrent_();
	cr_assert_lt(mono_ms() - t0, 200, "took %lld ms", (long long)(mono_ms() - t0));
	cr_assert_eq(count_fds(), fds, "no fd leaks");
}

/* fds the process had before, so the watcher looks only at new ones. */
static bool fd_known[1024];

static void note_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (e->d_name[0] != '.' && fd >= 0 && fd < 1024)
			fd_known[fd] = true;
	}
	closedir(d);
}

static volatile int stop_watch;
static int seen_new, seen_inheritable;

/* Look at every new fd while lookups run: each must be close-on-exec
 * ("flags:" in fdinfo, octal, O_CLOEXEC = 02000000).  Sampling cannot see
 * every short-lived fd, but thousands of calls give it many chances. */
static void *watch_fds(void *p)
{
	(void)p;
	while (!__atomic_load_n(&stop_watch, __ATOMIC_RELAXED)) {
		DIR *d = opendir("/proc/self/fd");
		struct dirent *e;

		if (!d)
			continue;
		while ((e = readdir(d))) {
			int fd = atoi(e->d_name);
			char path[64], line[128];
			unsigned long flags = 0;
			bool got = false;
			FILE *f;

			if (e->d_name[0] == '.' || fd < 0 || fd >= 1024 || fd_known[fd] ||
			    fd == dirfd(d))
				continue;
			snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
			f = fopen(path, "re");
			if (!f)
				continue; /* already closed */
			while (!got && fgets(line, sizeof(line), f))
				got = sscanf(line, "flags: %lo", &flags) == 1;
			fclose(f);
			if (!got)
				continue; /* closed before fdinfo could be read */
			__atomic_add_fetch(&seen_new, 1, __ATOMIC_RELAXED);
			if (!(flags & O_CLOEXEC))
				__atomic_add_fetch(&seen_inheritable, 1, __ATOMIC_RELAXED);
		}
		closedir(d);
	}
	return NULL;
}

/* Many calls on every path (table, no table, broken table, untrusted
 * table, a directory and a symlink at the table path; the FIFO has its
 * own tests above): not one fd is left open, and every fd the module
 * opens meanwhile is close-on-exec. */
Test(nss, no_fd_is_left_open_on_any_path, .timeout = 60)
{
	char buf[1024];
	struct group gr;
	int err = 0;
	size_t len;
	uint8_t *t = std_table(&len);
	long int start, size = 4;
	gid_t *groups = malloc(4 * sizeof(gid_t));
	int fds = count_fds();
	pthread_t watcher;

	note_fds();
	for (int round = 0; round < 6; round++) {
		switch (round) {
		case 0: put_table(t, len, 0644); break;
		case 1: unlink(table); break;
		case 2: put_table(t, len / 2, 0644); break;
		case 3: put_table(t, len, 0666); break;
		case 4: replace_table("dir"); break;
		case 5: replace_table("symlink"); break;
		}
		__atomic_store_n(&stop_watch, 0, __ATOMIC_RELAXED);
		cr_assert_eq(pthread_create(&watcher, NULL, watch_fds, NULL), 0);
		for (int i = 0; i < 300; i++) {
			(void)grnam("sbx-admin", &gr, buf, sizeof(buf), &err);
			(void)getgrgid_r_(60002, &gr, buf, sizeof(buf), &err);
			start = 1;
			groups[0] = 100;
			(void)initgroups_dyn_("erin", 100, &start, &size, &groups, 0, &err);
			setgrent_(0);
			while (getgrent_r_(&gr, buf, sizeof(buf), &err) == NSS_STATUS_SUCCESS)
				;
			endgrent_();
			/* A verdict is kept for a second; renaming a new file in
			 * makes the loader open it again. */
			if (round < 4 && round != 1 && i % 2 == 0)
				put_table(t, round == 2 ? len / 2 : len, round == 3 ? 0666 : 0644);
		}
		/* The watcher's own fds must not be counted. */
		__atomic_store_n(&stop_watch, 1, __ATOMIC_RELAXED);
		pthread_join(watcher, NULL);
		cr_assert_eq(count_fds(), fds, "round %d leaves fds open", round);
	}
	cr_log_info("the watcher saw %d new fds", seen_new);
	cr_assert_eq(seen_inheritable, 0, "%d of %d fds seen were not close-on-exec",
		     seen_inheritable, seen_new);
	free(groups);
	free(t);
}

/* Write the standard table (temp + rename, as the broker does) with this
 * owner and mode.  A pause first: the loader knows a file by device,
 * inode, size and times, and a freed inode can come back within one tick
 * of the file system's clock. */
static void put_std_as(uid_t owner, mode_t mode)
{
	char tmp[160];
	size_t len;
	uint8_t *buf = std_table(&len);
	int fd;

	usleep(20000);
	snprintf(tmp, sizeof(tmp), "%s.tmp", table);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, buf, len), (ssize_t)len);
	cr_assert_eq(fchown(fd, owner, (gid_t)-1), 0);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	cr_assert_eq(rename(tmp, table), 0);
	free(buf);
}

static bool loader_trusts(void)
{
	struct nss_sbx_map *m = nss_sbx_map_get(table);

	nss_sbx_map_put(m);
	return m != NULL;
}

/* The loader trusts a table only from root or the euid, and only when
 * nobody else may write it: group- or other-writable is refused even
 * from root, and the check is made on what was opened. */
Test(nss_loader, trust_is_owner_and_mode, .init = setup, .fini = teardown, .timeout = 10)
{
	if (geteuid() != 0)
		cr_skip_test("chown needs root");
	put_std_as(0, 0644);
	cr_assert(loader_trusts(), "root's 0644 table");
	put_std_as(0, 0664);
	cr_assert_not(loader_trusts(), "group-writable");
	put_std_as(0, 0646);
	cr_assert_not(loader_trusts(), "other-writable");
	put_std_as(0, 0600);
	cr_assert(loader_trusts(), "root's 0600 table (root reads it)");

	/* Now as an unprivileged euid too (this test has its own process).
	 * A verdict holds for the euid it was reached under only: root does
	 * not inherit the trust nobody has in nobody's own table. */
	cr_assert_eq(chmod(dir, 0755), 0);
	put_std_as(65534, 0644);
	cr_assert_eq(seteuid(65534), 0);
	cr_assert(loader_trusts(), "a table of the process's own euid");
	cr_assert_eq(seteuid(0), 0);
	cr_assert_not(loader_trusts(), "root kept the verdict of euid 65534 on nobody's table");
	cr_assert_eq(seteuid(65534), 0);
	cr_assert(loader_trusts(), "nor does nobody keep root's verdict");
	cr_assert_eq(seteuid(0), 0);
	put_std_as(0, 0644);
	cr_assert_eq(seteuid(65534), 0);
	cr_assert(loader_trusts(), "root's table, read by nobody");
	cr_assert_eq(seteuid(0), 0);
	put_std_as(4242, 0644);
	cr_assert_eq(seteuid(65534), 0);
	cr_assert_not(loader_trusts(), "a third user's table");
	cr_assert_eq(seteuid(0), 0);
	put_std_as(65534, 0664);
	cr_assert_eq(seteuid(65534), 0);
	cr_assert_not(loader_trusts(), "its own table, but group-writable");
	cr_assert_eq(seteuid(0), 0);
}
