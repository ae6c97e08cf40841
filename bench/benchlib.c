#include "config.h"

#include "benchlib.h"

#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

volatile sig_atomic_t bench_interrupted;

static void on_signal(int sig)
{
	(void)sig;
	bench_interrupted = 1;
}

int bench_catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0)
		return -1;
	return 0;
}

int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---------------------------------------------------------------- samples */

int bench_samples_add(struct bench_samples *s, int64_t ns)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		int64_t *v = realloc(s->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = ns;
	return 0;
}

int bench_samples_take(struct bench_samples *dst, struct bench_samples *src)
{
	if (dst->n + src->n > dst->cap) {
		size_t cap = dst->n + src->n;
		int64_t *v = realloc(dst->v, (cap ? cap : 1) * sizeof(*v));

		if (!v)
			return -ENOMEM;
		dst->v = v;
		dst->cap = cap;
	}
	if (src->n)
		memcpy(dst->v + dst->n, src->v, src->n * sizeof(*src->v));
	dst->n += src->n;
	bench_samples_free(src);
	return 0;
}

void bench_samples_free(struct bench_samples *s)
{
	if (!s)
		return;
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p of them at or below. */
static double percentile_us(const struct bench_samples *s, double p)
{
	double want = p * (double)s->n;
	size_t rank = (size_t)want;

	if ((double)rank < want)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > s->n)
		rank = s->n;
	return (double)s->v[rank - 1] / 1000.0;
}

void bench_stats_compute(struct bench_samples *s, struct bench_stats *st)
{
	double sum = 0;

	memset(st, 0, sizeof(*st));
	st->n = s->n;
	if (!s->n)
		return;
	qsort(s->v, s->n, sizeof(*s->v), cmp_i64);
	for (size_t i = 0; i < s->n; i++)
		sum += (double)s->v[i];
	st->mean_us = sum / (double)s->n / 1000.0;
	st->p50_us = percentile_us(s, 0.50);
	st->p90_us = percentile_us(s, 0.90);
	st->p99_us = percentile_us(s, 0.99);
	st->max_us = (double)s->v[s->n - 1] / 1000.0;
}

void bench_stats_print(FILE *out, const struct bench_stats *st)
{
	if (!st->n) {
		fprintf(out, "  latency us: no samples\n");
		return;
	}
	fprintf(out, "  latency us: p50 %.0f  p90 %.0f  p99 %.0f  max %.0f  (mean %.0f)\n",
		st->p50_us, st->p90_us, st->p99_us, st->max_us, st->mean_us);
}

/* ---------------------------------------------------------------- options */

int bench_parse_ulong(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end = NULL;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !end || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int bench_parse_seconds(const char *s, double *out)
{
	char *end = NULL;
	double v;

	if (!s || !*s)
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno || !end || *end || !(v > 0) || v > 3600)
		return -1;
	*out = v;
	return 0;
}

int bench_parse_levels(const char *s, unsigned *levels, size_t *n)
{
	char buf[256], *save = NULL, *tok;
	size_t k = 0;

	if (!s || strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		unsigned long v;

		if (k == BENCH_MAX_LEVELS || bench_parse_ulong(tok, 1, BENCH_MAX_CLIENTS, &v) < 0)
			return -1;
		levels[k++] = (unsigned)v;
	}
	if (!k)
		return -1;
	*n = k;
	return 0;
}

/* ---------------------------------------------------------------- machine */

static void cpu_model(char *buf, size_t len)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "re");

	snprintf(buf, len, "unknown CPU");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) != 0 || !colon)
			continue;
		colon++;
		colon += strspn(colon, " \t");
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(buf, len, "%s", colon);
		break;
	}
	fclose(f);
}

static const char *fs_name(long type)
{
	switch ((unsigned long)type) {
	case 0xEF53: return "ext2/3/4";
	case 0x01021994: return "tmpfs (fdatasync costs nothing here)";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x794c7630: return "overlayfs";
	case 0x2fc12fc1: return "zfs";
	case 0x6969: return "nfs";
	}
	return "other";
}

void bench_print_machine(FILE *out, const char *dir)
{
	struct utsname u;
	char model[256];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	cpu_model(model, sizeof(model));
	if (uname(&u) < 0)
		memset(&u, 0, sizeof(u));
	fprintf(out, "machine:  nproc %ld, %s, %s %s %s\n", ncpu, model, u.sysname, u.release,
		u.machine);
	if (dir)
		bench_print_fs(out, "state:", dir);
}

void bench_print_fs(FILE *out, const char *label, const char *dir)
{
	struct statfs sf;

	if (statfs(dir, &sf) == 0)
		fprintf(out, "%-9s %s on %s (type 0x%lx)\n", label, dir, fs_name((long)sf.f_type),
			(unsigned long)sf.f_type);
}

double bench_cpu_seconds(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long utime = 0, stime = 0;
	long tick = sysconf(_SC_CLK_TCK);
	ssize_t n;
	int fd;

	if (pid == 0) {
		struct rusage ru;

		if (getrusage(RUSAGE_SELF, &ru) < 0)
			return -1;
		return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
		       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	}
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || tick <= 0)
		return -1;
	buf[n] = '\0';
	/* The command name may hold spaces and parentheses: fields are
	 * counted from the last ')'.  utime and stime are fields 14, 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
			 &stime) != 2)
		return -1;
	return (double)(utime + stime) / (double)tick;
}

/* ---------------------------------------------------------------- paths */

/* exe = <builddir>/bench/bench_x: two dirname()s give <builddir>. */
static int builddir_of_exe(char *buf, size_t len)
{
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return -1;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash)
		return -1;
	*slash = '\0';
	slash = strrchr(exe, '/');
	if (slash && strcmp(slash, "/.libs") == 0) {
		*slash = '\0';
		slash = strrchr(exe, '/');
	}
	if (!slash || strcmp(slash, "/bench") != 0)
		return -1;
	*slash = '\0';
	if ((size_t)snprintf(buf, len, "%s", exe) >= len)
		return -1;
	return 0;
}

int bench_default_broker(char *buf, size_t len)
{
	char dir[PATH_MAX];

	if (builddir_of_exe(dir, sizeof(dir)) == 0 &&
	    (size_t)snprintf(buf, len, "%s/sbx-brokerd", dir) < len && access(buf, X_OK) == 0)
		return 0;
	if ((size_t)snprintf(buf, len, "./sbx-brokerd") >= len)
		return -1;
	return 0;
}

/* abs_top_srcdir from the build tree's Makefile (a VPATH build keeps the
 * sources elsewhere). */
static int srcdir_from_makefile(const char *builddir, char *buf, size_t len)
{
	char path[PATH_MAX + 16], line[PATH_MAX + 64];
	FILE *f;
	int ret = -1;

	snprintf(path, sizeof(path), "%s/Makefile", builddir);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *v;

		if (strncmp(line, "abs_top_srcdir = ", 17) != 0)
			continue;
		v = line + 17;
		v[strcspn(v, "\n")] = '\0';
		if ((size_t)snprintf(buf, len, "%s", v) < len)
			ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

int bench_reference_policy(char *buf, size_t len)
{
	static const char rel[] = "packaging/examples/policy.yaml";
	char dir[PATH_MAX], src[PATH_MAX];

	if (builddir_of_exe(dir, sizeof(dir)) == 0) {
		if ((size_t)snprintf(buf, len, "%s/%s", dir, rel) < len && access(buf, R_OK) == 0)
			return 0;
		if (srcdir_from_makefile(dir, src, sizeof(src)) == 0 &&
		    (size_t)snprintf(buf, len, "%s/%s", src, rel) < len && access(buf, R_OK) == 0)
			return 0;
	}
	if ((size_t)snprintf(buf, len, "%s", rel) < len && access(buf, R_OK) == 0)
		return 0;
	return -1;
}

/* ---------------------------------------------------------------- broker */

int bench_broker_prepare(struct bench_broker *b, const char *prog, char *err, size_t errlen)
{
	const char *tmp = getenv("TMPDIR");
	char tmpl[256], real[PATH_MAX];

	memset(b, 0, sizeof(*b));
	if (!tmp || !*tmp)
		tmp = "/tmp";
	if ((size_t)snprintf(tmpl, sizeof(tmpl), "%s/%s.XXXXXX", tmp, prog) >= sizeof(tmpl)) {
		snprintf(err, errlen, "TMPDIR is too long");
		return -1;
	}
	if (!mkdtemp(tmpl)) {
		snprintf(err, errlen, "cannot create a directory under %s: %s", tmp,
			 strerror(errno));
		return -1;
	}
	/* The broker wants absolute paths. */
	if (!realpath(tmpl, real) || strlen(real) >= sizeof(b->dir)) {
		snprintf(err, errlen, "%s: cannot resolve the path", tmpl);
		rmdir(tmpl);
		return -1;
	}
	strcpy(b->dir, real);
	snprintf(b->config, sizeof(b->config), "%s/policy.yaml", b->dir);
	snprintf(b->state_dir, sizeof(b->state_dir), "%s/state", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/broker.log", b->dir);
	if ((size_t)snprintf(b->socket, sizeof(b->socket), "%s/broker.sock", b->dir) >=
	    sizeof(b->socket)) {
		snprintf(err, errlen, "%s: too long for a socket path", b->dir);
		bench_broker_cleanup(b, false);
		return -1;
	}
	return 0;
}

int bench_broker_copy_config(struct bench_broker *b, const char *src, char *err, size_t errlen)
{
	char buf[65536];
	int in = -1, out = -1, ret = -1;
	ssize_t n;

	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		snprintf(err, errlen, "%s: %s", src, strerror(errno));
		goto out;
	}
	out = open(b->config, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (out < 0) {
		snprintf(err, errlen, "%s: %s", b->config, strerror(errno));
		goto out;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n) {
			snprintf(err, errlen, "%s: short write", b->config);
			goto out;
		}
	}
	if (n < 0) {
		snprintf(err, errlen, "%s: %s", src, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0 && ret == 0) {
		snprintf(err, errlen, "%s: %s", b->config, strerror(errno));
		ret = -1;
	}
	return ret;
}

static int spawn_broker(struct bench_broker *b, const char *broker, char *err, size_t errlen)
{
	char *argv[] = { (char *)broker, "--foreground", "--config", b->config, "--socket",
			 b->socket, "--state-dir", b->state_dir, NULL, NULL, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, dflt;
	int rc;

	if (b->host[0]) {
		argv[8] = "--host";
		argv[9] = b->host;
	}
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGINT);
	sigaddset(&dflt, SIGTERM);
	sigaddset(&dflt, SIGHUP);
	sigaddset(&dflt, SIGPIPE);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, b->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	/* Its own process group: a Ctrl-C at the terminal reaches only us,
	 * and we stop the broker ourselves after cleaning up. */
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &dflt);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
				 POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&b->pid, broker, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (rc != 0) {
		b->pid = 0;
		snprintf(err, errlen, "cannot start %s: %s (use --broker PATH)", broker,
			 strerror(rc));
		return -1;
	}
	return 0;
}

int bench_broker_start(struct bench_broker *b, const char *broker, int timeout_ms,
		       char *err, size_t errlen)
{
	int64_t deadline = bench_now_ns() + (int64_t)timeout_ms * 1000000;
	char why[256] = "";

	if (access(broker, X_OK) < 0) {
		snprintf(err, errlen, "%s: %s (build it with `make sbx-brokerd`, or use --broker PATH)",
			 broker, strerror(errno));
		return -1;
	}
	if (spawn_broker(b, broker, err, errlen) < 0)
		return -1;
	while (bench_now_ns() < deadline && !bench_interrupted) {
		int status;
		pid_t w = waitpid(b->pid, &status, WNOHANG);

		if (w == b->pid) {
			b->pid = 0;
			snprintf(err, errlen, "%s exited (%s %d) before answering; its log follows",
				 broker, WIFEXITED(status) ? "status" : "signal",
				 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
			return -1;
		}
		if (bench_ping(b->socket, 0, NULL, 0, NULL, why, sizeof(why)) == 0)
			return 0;
		sleep_ms(20);
	}
	snprintf(err, errlen, "%s did not answer on %s within %d ms (last: %s); its log follows",
		 broker, b->socket, timeout_ms, why[0] ? why : "nothing");
	bench_broker_stop(b);
	return -1;
}

int bench_broker_stop(struct bench_broker *b)
{
	int status = 0;

	if (b->pid <= 0)
		return -1;
	if (kill(b->pid, SIGTERM) < 0 && errno != ESRCH)
		return -1;
	for (int i = 0; i < 1000; i++) {
		pid_t w = waitpid(b->pid, &status, WNOHANG);

		if (w == b->pid) {
			b->pid = 0;
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		if (w < 0 && errno != EINTR)
			break;
		sleep_ms(10);
	}
	kill(b->pid, SIGKILL);
	while (waitpid(b->pid, &status, 0) < 0 && errno == EINTR)
		;
	b->pid = 0;
	return -1;
}

void bench_broker_print_log(const struct bench_broker *b, FILE *out)
{
	char line[1024];
	long total = 0, skip;
	FILE *f = fopen(b->log, "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		total++;
	/* The last 30 lines say why it stopped. */
	skip = total > 30 ? total - 30 : 0;
	rewind(f);
	for (long i = 0; fgets(line, sizeof(line), f); i++)
		if (i >= skip)
			fprintf(out, "  broker| %s", line);
	fclose(f);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void bench_broker_cleanup(struct bench_broker *b, bool show_log)
{
	if (b->pid > 0)
		bench_broker_stop(b);
	if (!b->dir[0])
		return;
	if (show_log)
		bench_broker_print_log(b, stderr);
	nftw(b->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	b->dir[0] = '\0';
}

/* ---------------------------------------------------------------- ping */

int bench_ping(const char *socket, int require_root, char *host, size_t hostlen,
	       int64_t *seq, char *err, size_t errlen)
{
	struct sbx_conn_opts o = { .path = socket, .timeout_ms = 2000,
				   .require_root = require_root };
	sbx_msg m;
	uint8_t *frame = NULL;
	size_t n = 0;
	uint32_t status = 0;
	char msg[256];
	sbx_reader r;
	sbx_field f;
	int rc;

	rc = sbx_msg_init(&m, SBX_OP_PING);
	if (rc == 0)
		rc = sbx_call(&o, &m, &frame, &n);
	sbx_msg_free(&m);
	if (rc < 0) {
		snprintf(err, errlen, "ping %s: %s", socket, strerror(-rc));
		goto out;
	}
	rc = sbx_reply_status(frame, n, &status, msg, sizeof(msg));
	if (rc < 0 || status != SBX_ST_OK) {
		snprintf(err, errlen, "ping %s: status %u: %s", socket, status, msg);
		rc = rc < 0 ? rc : -EPROTO;
		goto out;
	}
	sbx_reader_init_frame(&r, frame, n);
	if (host && hostlen) {
		host[0] = '\0';
		if (sbx_reader_find(&r, SBX_F_HOST, &f) == 1)
			(void)sbx_field_str(&f, host, hostlen);
	}
	if (seq) {
		*seq = -1;
		if (sbx_reader_find(&r, SBX_F_SEQ, &f) == 1)
			*seq = sbx_field_i64(&f);
	}
	rc = 0;
out:
	free(frame);
	return rc;
}

/* ---------------------------------------------------------------- threads */

struct start_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int go;    /* 1: run, -1: abandon */
};

struct thread_slot {
	struct start_gate *gate;
	void *(*fn)(void *);
	void *arg;
	int64_t end_ns;
};

static void *thread_main(void *p)
{
	struct thread_slot *t = p;
	int go;

	pthread_mutex_lock(&t->gate->lock);
	while (!t->gate->go)
		pthread_cond_wait(&t->gate->cond, &t->gate->lock);
	go = t->gate->go;
	pthread_mutex_unlock(&t->gate->lock);
	if (go > 0)
		t->fn(t->arg);
	t->end_ns = bench_now_ns();
	return NULL;
}

static void open_gate(struct start_gate *g, int go)
{
	pthread_mutex_lock(&g->lock);
	g->go = go;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

int bench_run_threads(unsigned n, void *(*fn)(void *), void **args, int64_t *t0_ns,
		      double *wall_s)
{
	struct start_gate gate = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };
	struct thread_slot *slots = calloc(n, sizeof(*slots));
	pthread_t *tids = calloc(n, sizeof(*tids));
	int64_t last = 0;
	unsigned started = 0;
	int ret = -1;

	if (!slots || !tids)
		goto out;
	for (; started < n; started++) {
		slots[started] = (struct thread_slot){ &gate, fn, args[started], 0 };
		if (pthread_create(&tids[started], NULL, thread_main, &slots[started]) != 0)
			break;
	}
	if (started < n) {
		open_gate(&gate, -1);
	} else {
		*t0_ns = bench_now_ns();
		open_gate(&gate, 1);
		ret = 0;
	}
	for (unsigned i = 0; i < started; i++) {
		pthread_join(tids[i], NULL);
		if (slots[i].end_ns > last)
			last = slots[i].end_ns;
	}
	if (ret == 0)
		*wall_s = (double)(last - *t0_ns) / 1e9;
out:
	free(slots);
	free(tids);
	return ret;
}

/* One option's value into its destination.  0 or -1. */
static int take_opt(const struct bench_opt *o, const char *arg)
{
	unsigned long v;

	switch (o->kind) {
	case BENCH_OPT_ULONG:
		return bench_parse_ulong(arg, o->min, o->max, o->dst);
	case BENCH_OPT_ULONG_OPT:
		if (!arg) {
			*(unsigned long *)o->dst = o->def;
			return 0;
		}
		if (bench_parse_ulong(arg, o->min, o->max, &v) < 0)
			return -1;
		*(unsigned long *)o->dst = v;
		return 0;
	case BENCH_OPT_SECONDS0:
		if (strcmp(arg, "0") == 0) {
			*(double *)o->dst = 0;
			return 0;
		}
		return bench_parse_seconds(arg, o->dst);
	case BENCH_OPT_SECONDS:
		return bench_parse_seconds(arg, o->dst);
	case BENCH_OPT_LEVELS:
		return bench_parse_levels(arg, o->dst, o->dst2);
	case BENCH_OPT_STRING:
		if (!*arg)
			return -1;
		*(const char **)o->dst = arg;
		return 0;
	case BENCH_OPT_PATH:
		if (strlen(arg) >= o->size)
			return -1;
		memcpy(o->dst, arg, strlen(arg) + 1);
		return 0;
	case BENCH_OPT_FLAG:
		*(bool *)o->dst = true;
		return 0;
	}
	return -1;
}

int bench_parse_args(const char *prog, const char *usage, int argc, char **argv,
		     const struct bench_opt *opts, size_t n)
{
	struct option *lo = calloc(n + 2, sizeof(*lo));
	int o, ret = -1;

	if (!lo) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		lo[i].name = opts[i].name;
		lo[i].has_arg = opts[i].kind == BENCH_OPT_FLAG ? no_argument
				: opts[i].kind == BENCH_OPT_ULONG_OPT ? optional_argument
				: required_argument;
		lo[i].val = 256 + (int)i;
	}
	lo[n] = (struct option){ "help", no_argument, NULL, 'h' };
	while ((o = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (o == 'h') {
			fputs(usage, stdout);
			exit(0);
		}
		if (o < 256 || (size_t)(o - 256) >= n) {
			fprintf(stderr, "Try '%s --help'.\n", prog);
			goto out;
		}
		if (take_opt(&opts[o - 256], optarg) < 0) {
			fprintf(stderr, "%s: --%s: bad value '%s'\nTry '%s --help'.\n", prog,
				opts[o - 256].name, optarg ? optarg : "", prog);
			goto out;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
		goto out;
	}
	ret = 0;
out:
	free(lo);
	return ret;
}
