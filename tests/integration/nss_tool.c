/*
 * nss_tool: calls libnss_sbx's entry points directly (dlopen, like glibc)
 * for the integration tests, where getent cannot show what is needed:
 * the NSS status and errno, a caller's tiny buffer, timing, threads.
 *
 *   nss_tool MODULE getgrnam NAME [BUFLEN]
 *   nss_tool MODULE getgrgid GID [BUFLEN]
 *   nss_tool MODULE initgroups USER [SKIPGID]
 *   nss_tool MODULE enum [BUFLEN]
 *   nss_tool MODULE erange NAME
 *   nss_tool MODULE listen-call NAME SOCKET
 *   nss_tool MODULE threads NAME SECONDS THREADS TABLE A B MEMBERS_A MEMBERS_B
 *   nss_tool mktable OUT GROUP GID [USER=SECONDS_FROM_NOW|USER=forever]...
 *
 * A group prints as getent does (name:x:gid:m1,m2) after the status word:
 *   SUCCESS sbx-admin:x:60001:erin
 *   NOTFOUND errno=2
 * Exit status: 0 SUCCESS, 2 NOTFOUND, 3 UNAVAIL, 4 TRYAGAIN, 5 the module
 * changed errno or broke a rule, 1 usage or set-up failure.  Timing goes
 * to stderr as "elapsed_us=N".
 *
 * Built twice: nss_tool_guarded exports SBX_BROKER_GUARD_SYMBOL the way
 * sbx-brokerd does, to show the module then never touches the socket.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "sbx_table.h"

#ifdef NSS_TOOL_GUARDED
int sbx_brokerd_nss_guard = 1;
#endif

typedef enum nss_status (*grnam_fn)(const char *, struct group *, char *, size_t, int *);
typedef enum nss_status (*grgid_fn)(gid_t, struct group *, char *, size_t, int *);
typedef enum nss_status (*setgrent_fn)(int);
typedef enum nss_status (*getgrent_fn)(struct group *, char *, size_t, int *);
typedef enum nss_status (*endgrent_fn)(void);
typedef enum nss_status (*initgroups_fn)(const char *, gid_t, long int *, long int *, gid_t **,
					 long int, int *);

static struct {
	grnam_fn getgrnam_r;
	grgid_fn getgrgid_r;
	setgrent_fn setgrent;
	getgrent_fn getgrent_r;
	endgrent_fn endgrent;
	initgroups_fn initgroups_dyn;
} fn;

/* Any value the module has no reason to set. */
#define ERRNO_CANARY EILSEQ

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int load(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);

	if (!h) {
		fprintf(stderr, "nss_tool: %s\n", dlerror());
		return -1;
	}
	fn.getgrnam_r = (grnam_fn)dlsym(h, "_nss_sbx_getgrnam_r");
	fn.getgrgid_r = (grgid_fn)dlsym(h, "_nss_sbx_getgrgid_r");
	fn.setgrent = (setgrent_fn)dlsym(h, "_nss_sbx_setgrent");
	fn.getgrent_r = (getgrent_fn)dlsym(h, "_nss_sbx_getgrent_r");
	fn.endgrent = (endgrent_fn)dlsym(h, "_nss_sbx_endgrent");
	fn.initgroups_dyn = (initgroups_fn)dlsym(h, "_nss_sbx_initgroups_dyn");
	if (!fn.getgrnam_r || !fn.getgrgid_r || !fn.setgrent || !fn.getgrent_r || !fn.endgrent ||
	    !fn.initgroups_dyn) {
		fprintf(stderr, "nss_tool: %s lacks an entry point\n", path);
		return -1;
	}
	return 0;
}

static const char *status_name(enum nss_status s)
{
	switch (s) {
	case NSS_STATUS_SUCCESS: return "SUCCESS";
	case NSS_STATUS_NOTFOUND: return "NOTFOUND";
	case NSS_STATUS_UNAVAIL: return "UNAVAIL";
	case NSS_STATUS_TRYAGAIN: return "TRYAGAIN";
	default: return "OTHER";
	}
}

static int status_exit(enum nss_status s)
{
	switch (s) {
	case NSS_STATUS_SUCCESS: return 0;
	case NSS_STATUS_NOTFOUND: return 2;
	case NSS_STATUS_UNAVAIL: return 3;
	case NSS_STATUS_TRYAGAIN: return 4;
	default: return 1;
	}
}

static void format_group(const struct group *gr, char *out, size_t len)
{
	size_t off;

	off = (size_t)snprintf(out, len, "%s:%s:%u:", gr->gr_name, gr->gr_passwd,
			       (unsigned)gr->gr_gid);
	for (char **m = gr->gr_mem; m && *m && off < len; m++)
		off += (size_t)snprintf(out + off, len - off, "%s%s", m == gr->gr_mem ? "" : ",", *m);
}

/* The group's strings must all lie inside the caller's buffer. */
static bool inside(const struct group *gr, const char *buf, size_t len)
{
	const char *end = buf + len;

#define IN(p) ((const char *)(p) >= buf && (const char *)(p) < end)
	if (!IN(gr->gr_name) || !IN(gr->gr_passwd) || !IN(gr->gr_mem))
		return false;
	for (char **m = gr->gr_mem; *m; m++)
		if (!IN(*m) || !IN(m + 1))
			return false;
#undef IN
	return true;
}

static int report(enum nss_status s, int err, const struct group *gr, const char *buf,
		  size_t len, int64_t t0)
{
	char line[65536];

	fprintf(stderr, "elapsed_us=%lld\n", (long long)(now_us() - t0));
	if (errno != ERRNO_CANARY) {
		printf("ERRNO-CHANGED %d\n", errno);
		return 5;
	}
	if (s == NSS_STATUS_SUCCESS) {
		if (!inside(gr, buf, len)) {
			printf("OUTSIDE-BUFFER\n");
			return 5;
		}
		format_group(gr, line, sizeof(line));
		printf("SUCCESS %s\n", line);
	} else {
		printf("%s errno=%d\n", status_name(s), err);
	}
	return status_exit(s);
}

static size_t parse_size(const char *s, size_t dflt)
{
	char *end;
	unsigned long v;

	if (!s)
		return dflt;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s)
		return dflt;
	return v;
}

static int cmd_lookup(bool byname, const char *key, const char *buflen_s)
{
	size_t len = parse_size(buflen_s, 65536);
	char *buf = malloc(len ? len : 1);
	struct group gr;
	int err = 0, rc;
	gid_t gid = (gid_t)parse_size(key, 0);
	int64_t t0 = now_us();
	enum nss_status s;

	errno = ERRNO_CANARY;
	if (byname)
		s = fn.getgrnam_r(key, &gr, buf, len, &err);
	else
		s = fn.getgrgid_r(gid, &gr, buf, len, &err);
	rc = report(s, err, &gr, buf, len, t0);
	free(buf);
	return rc;
}

static int cmd_initgroups(const char *user, const char *skip_s)
{
	long int start = 1, size = 1;
	gid_t *groups = malloc(sizeof(*groups));
	gid_t skip = (gid_t)parse_size(skip_s, 0);
	int err = 0, rc = 0;
	enum nss_status s;
	int64_t t0 = now_us();

	groups[0] = skip;
	errno = ERRNO_CANARY;
	s = fn.initgroups_dyn(user, skip, &start, &size, &groups, 0, &err);
	fprintf(stderr, "elapsed_us=%lld\n", (long long)(now_us() - t0));
	if (errno != ERRNO_CANARY) {
		printf("ERRNO-CHANGED %d\n", errno);
		rc = 5;
		goto out;
	}
	printf("%s", status_name(s));
	for (long int i = 1; i < start; i++)
		printf(" %u", (unsigned)groups[i]);
	if (s != NSS_STATUS_SUCCESS)
		printf(" errno=%d", err);
	printf("\n");
	rc = status_exit(s);
out:
	free(groups);
	return rc;
}

static int cmd_enum(const char *buflen_s)
{
	size_t len = parse_size(buflen_s, 65536);
	char *buf = malloc(len ? len : 1);
	char line[65536];
	struct group gr;
	enum nss_status s;
	int err = 0;

	errno = ERRNO_CANARY;
	fn.setgrent(0);
	while ((s = fn.getgrent_r(&gr, buf, len, &err)) == NSS_STATUS_SUCCESS) {
		format_group(&gr, line, sizeof(line));
		printf("%s\n", line);
	}
	fn.endgrent();
	printf("END %s\n", status_name(s));
	free(buf);
	if (errno != ERRNO_CANARY) {
		printf("ERRNO-CHANGED %d\n", errno);
		return 5;
	}
	return s == NSS_STATUS_NOTFOUND ? 0 : status_exit(s);
}

/* What glibc does with a short buffer: ERANGE, then again, larger.  Every
 * short answer must be TRYAGAIN with ERANGE; the last must succeed. */
static int cmd_erange(const char *name)
{
	size_t len = 1;
	int tries = 0, rc = 0;
	char *buf = NULL;

	for (;;) {
		struct group gr;
		int err = 0;
		enum nss_status s;
		int64_t t0 = now_us();

		free(buf);
		buf = malloc(len);
		tries++;
		errno = ERRNO_CANARY;
		s = fn.getgrnam_r(name, &gr, buf, len, &err);
		if (s == NSS_STATUS_TRYAGAIN && err == ERANGE && errno == ERRNO_CANARY &&
		    len < (1u << 20)) {
			len *= 2;
			continue;
		}
		printf("tries=%d buflen=%zu\n", tries, len);
		rc = report(s, err, &gr, buf, len, t0);
		break;
	}
	free(buf);
	return rc;
}

/* A socket that accepts connections into its backlog and never answers:
 * a broker that hangs.  Prints the status, how long the call took, and
 * whether the module connected at all. */
static int cmd_listen_call(const char *name, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct pollfd pfd;
	char buf[4096];
	struct group gr;
	int err = 0, fd;
	enum nss_status s;
	int64_t t0;

	if (strlen(path) >= sizeof(sa.sun_path))
		return 1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0) {
		perror("nss_tool: listen");
		return 1;
	}
	setenv("SBX_SOCKET", path, 1);
	t0 = now_us();
	errno = ERRNO_CANARY;
	s = fn.getgrnam_r(name, &gr, buf, sizeof(buf), &err);
	printf("%s elapsed_ms=%lld", status_name(s), (long long)((now_us() - t0) / 1000));
	pfd.fd = fd;
	pfd.events = POLLIN;
	printf(" connected=%d\n", poll(&pfd, 1, 0) == 1);
	close(fd);
	unlink(path);
	return errno == ERRNO_CANARY ? status_exit(s) : 5;
}

/* ---- threads resolving while the table is replaced ---------------------------- */

struct thread_arg {
	const char *name;
	const char *want_a, *want_b; /* the member lists the two tables give */
	volatile bool *stop;
	long calls, bad;
	char first_bad[256];
};

static void *resolver(void *p)
{
	struct thread_arg *a = p;
	char buf[4096], line[4096];

	while (!*a->stop) {
		struct group gr;
		int err = 0;
		enum nss_status s = fn.getgrnam_r(a->name, &gr, buf, sizeof(buf), &err);
		const char *members;

		a->calls++;
		if (s != NSS_STATUS_SUCCESS) {
			a->bad++;
			if (!a->first_bad[0])
				snprintf(a->first_bad, sizeof(a->first_bad), "%s errno=%d",
					 status_name(s), err);
			continue;
		}
		format_group(&gr, line, sizeof(line));
		members = strrchr(line, ':') + 1;
		if (strcmp(members, a->want_a) != 0 && strcmp(members, a->want_b) != 0) {
			a->bad++;
			if (!a->first_bad[0])
				snprintf(a->first_bad, sizeof(a->first_bad), "%.200s", line);
		}
	}
	return NULL;
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	FILE *in = fopen(from, "rbe"), *out = fopen(to, "wbe");
	size_t n;
	int ret = -1;

	if (!in || !out)
		goto out;
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			goto out;
	ret = 0;
out:
	if (in)
		fclose(in);
	if (out && fclose(out) != 0)
		ret = -1;
	return ret;
}

static int cmd_threads(char **argv)
{
	const char *name = argv[0], *table = argv[3], *a = argv[4], *b = argv[5];
	double secs = strtod(argv[1], NULL);
	int n = (int)parse_size(argv[2], 0);
	pthread_t tids[64];
	struct thread_arg args[64];
	volatile bool stop = false;
	char tmp[4096];
	long swaps = 0, calls = 0, bad = 0;
	int64_t end;

	if (n < 1 || n > 64 || secs <= 0 || strlen(table) > sizeof(tmp) - 8)
		return 1;
	snprintf(tmp, sizeof(tmp), "%s.tmp", table);
	for (int i = 0; i < n; i++) {
		args[i] = (struct thread_arg){ .name = name, .want_a = argv[6], .want_b = argv[7],
					       .stop = &stop };
		if (pthread_create(&tids[i], NULL, resolver, &args[i]) != 0)
			return 1;
	}
	end = now_us() + (int64_t)(secs * 1e6);
	while (now_us() < end) {
		/* The broker's way: a new file renamed over the old one. */
		if (copy_file(swaps % 2 ? a : b, tmp) < 0 || rename(tmp, table) < 0) {
			perror("nss_tool: replace table");
			break;
		}
		swaps++;
		usleep(200);
	}
	stop = true;
	for (int i = 0; i < n; i++) {
		pthread_join(tids[i], NULL);
		calls += args[i].calls;
		bad += args[i].bad;
		if (args[i].bad)
			printf("thread %d: first bad answer: %s\n", i, args[i].first_bad);
	}
	printf("threads=%d calls=%ld swaps=%ld bad=%ld\n", n, calls, swaps, bad);
	return bad == 0 && swaps > 0 && calls > 0 ? 0 : 5;
}

/* ---- making tables -------------------------------------------------------------- */

static int cmd_mktable(int argc, char **argv)
{
	struct sbx_tbl_builder *b = sbx_tbl_builder_new();
	uint8_t *buf = NULL;
	size_t len;
	int64_t now = time(NULL);
	int gi, ret = 1;
	FILE *f = NULL;

	if (!b || argc < 3)
		goto out;
	gi = sbx_tbl_add_group(b, argv[1], (uint32_t)parse_size(argv[2], 0));
	if (gi < 0)
		goto out;
	for (int i = 3; i < argc; i++) {
		char user[128];
		const char *eq = strchr(argv[i], '=');
		int64_t exp;

		if (!eq || (size_t)(eq - argv[i]) >= sizeof(user))
			goto out;
		snprintf(user, sizeof(user), "%.*s", (int)(eq - argv[i]), argv[i]);
		exp = strcmp(eq + 1, "forever") == 0 ? SBX_TBL_FOREVER
							: now + strtoll(eq + 1, NULL, 10);
		if (sbx_tbl_add_member(b, gi, user, exp) < 0)
			goto out;
	}
	if (sbx_tbl_finish(b, 1, now, &buf, &len) < 0)
		goto out;
	f = fopen(argv[0], "wbe");
	if (!f || fwrite(buf, 1, len, f) != len)
		goto out;
	ret = 0;
out:
	if (f && fclose(f) != 0)
		ret = 1;
	if (ret)
		fprintf(stderr, "nss_tool: mktable failed\n");
	free(buf);
	sbx_tbl_builder_free(b);
	return ret;
}

int main(int argc, char **argv)
{
	const char *cmd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 3 && strcmp(argv[1], "mktable") == 0)
		return cmd_mktable(argc - 2, argv + 2);
	if (argc < 3 || load(argv[1]) < 0) {
		fprintf(stderr, "usage: nss_tool MODULE COMMAND ARGS... (see the source)\n");
		return 1;
	}
	cmd = argv[2];
	if (strcmp(cmd, "getgrnam") == 0 && argc >= 4)
		return cmd_lookup(true, argv[3], argc > 4 ? argv[4] : NULL);
	if (strcmp(cmd, "getgrgid") == 0 && argc >= 4)
		return cmd_lookup(false, argv[3], argc > 4 ? argv[4] : NULL);
	if (strcmp(cmd, "initgroups") == 0 && argc >= 4)
		return cmd_initgroups(argv[3], argc > 4 ? argv[4] : NULL);
	if (strcmp(cmd, "enum") == 0)
		return cmd_enum(argc > 3 ? argv[3] : NULL);
	if (strcmp(cmd, "erange") == 0 && argc >= 4)
		return cmd_erange(argv[3]);
	if (strcmp(cmd, "listen-call") == 0 && argc >= 5)
		return cmd_listen_call(argv[3], argv[4]);
	if (strcmp(cmd, "threads") == 0 && argc >= 11)
		return cmd_threads(argv + 3);
	fprintf(stderr, "nss_tool: unknown command or missing arguments: %s\n", cmd);
	return 1;
}
