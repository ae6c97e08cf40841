/*
 * A throwaway PostgreSQL server (benchpg.h).
 */
#include "config.h"

#include "benchpg.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <libpq-fe.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_WAIT_MS 30000
#define STOP_WAIT_MS 30000

static void nap_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Who runs the server: the postgres user when we are root, else us. */
struct runas {
	bool drop;
	uid_t uid;
	gid_t gid;
	char name[64];
};

static int runas_get(struct runas *r, char *err, size_t errlen)
{
	struct passwd *pw;

	memset(r, 0, sizeof(*r));
	if (geteuid() != 0)
		return 0;
	pw = getpwnam("postgres");
	if (!pw) {
		snprintf(err, errlen, "PostgreSQL refuses to run as root and there is no postgres "
			 "user (apt-get install postgresql), or run the bench with --postgres");
		return -1;
	}
	r->drop = true;
	r->uid = pw->pw_uid;
	r->gid = pw->pw_gid;
	snprintf(r->name, sizeof(r->name), "%s", pw->pw_name);
	return 0;
}

/* fork + exec argv as r, output appended to log, in a process group of its
 * own, from directory cwd.  server: the child gets SIGQUIT when we die.
 * Returns the pid, or -1. */
static pid_t spawn_as(const struct runas *r, char *const argv[], const char *cwd,
		      const char *log, bool server)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	/* the child: only async-signal-safe calls until exec */
	{
		int in = open("/dev/null", O_RDONLY);
		int out = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		sigset_t none;

		if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
			_exit(126);
		(void)setpgid(0, 0);
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGPIPE, SIG_DFL);
		if (r->drop && (initgroups(r->name, r->gid) < 0 || setgid(r->gid) < 0 ||
				setuid(r->uid) < 0))
			_exit(126);
		/* After the uid change, which clears it. */
		if (server && (prctl(PR_SET_PDEATHSIG, SIGQUIT) < 0 || getppid() != parent))
			_exit(126);
		if (chdir(cwd) < 0)
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
}

static int wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
	size_t n = strlen(text);
	int ret = -1;

	if (fd < 0)
		return -1;
	if (write(fd, text, n) == (ssize_t)n)
		ret = 0;
	if (close(fd) < 0)
		ret = -1;
	return ret;
}

static int make_password(char *buf, size_t len)
{
	unsigned char raw[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, raw, sizeof(raw));
	close(fd);
	if (n != (ssize_t)sizeof(raw) || len < 3 + 2 * sizeof(raw) + 1)
		return -1;
	memcpy(buf, "pw-", 3);
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(buf + 3 + 2 * i, 3, "%02x", raw[i]);
	return 0;
}

void bench_pg_conninfo(const struct bench_pg *pg, char *buf, size_t len)
{
	snprintf(buf, len, "host=127.0.0.1 port=%d user=%s dbname=postgres", pg->port,
		 BENCH_PG_USER);
}

static int initdb(struct bench_pg *pg, const struct runas *r, const char *bindir, char *err,
		  size_t errlen)
{
	char exe[512], pw[340], pwopt[360], out[340];
	char *argv[16];
	int n = 0, st;
	pid_t pid;

	snprintf(exe, sizeof(exe), "%s/initdb", bindir);
	snprintf(pw, sizeof(pw), "%s/initdb.pw", pg->dir);
	snprintf(pwopt, sizeof(pwopt), "--pwfile=%s", pw);
	snprintf(out, sizeof(out), "%s/initdb.out", pg->dir);
	if (write_file(pw, pg->password, 0600) < 0 ||
	    (r->drop && chown(pw, r->uid, r->gid) < 0)) {
		snprintf(err, errlen, "%s: %s", pw, strerror(errno));
		return -1;
	}
	argv[n++] = exe;
	argv[n++] = "-D";
	argv[n++] = pg->data;
	argv[n++] = "-U";
	argv[n++] = BENCH_PG_USER;
	argv[n++] = pwopt;
	argv[n++] = "--auth-local=trust";
	argv[n++] = "--auth-host=scram-sha-256";
	argv[n++] = "-E";
	argv[n++] = "UTF8";
	argv[n++] = "--locale=C";
	argv[n] = NULL;
	pid = spawn_as(r, argv, pg->dir, out, false);
	if (pid < 0) {
		snprintf(err, errlen, "cannot start %s: %s", exe, strerror(errno));
		unlink(pw);
		return -1;
	}
	st = wait_child(pid);
	unlink(pw);
	if (st != 0) {
		snprintf(err, errlen, "%s failed (status %d); see %s", exe, st, out);
		return -1;
	}
	return 0;
}

/* Start the postmaster at pg->port and wait until it answers.  1 when the
 * port was taken (try another), 0 up, -1 failed. */
static int start_server(struct bench_pg *pg, const struct runas *r, const char *bindir,
			char *err, size_t errlen)
{
	char exe[512], port[16], conninfo[256];
	char *argv[] = { exe, "-D", pg->data, "-p", port, "-k", pg->dir,
			 "-c", "listen_addresses=127.0.0.1",
			 "-c", "fsync=on", "-c", "synchronous_commit=on",
			 "-c", "max_connections=60", NULL };
	int64_t deadline = mono_ms() + START_WAIT_MS;

	snprintf(exe, sizeof(exe), "%s/postgres", bindir);
	snprintf(port, sizeof(port), "%d", pg->port);
	bench_pg_conninfo(pg, conninfo, sizeof(conninfo));
	strncat(conninfo, " connect_timeout=2", sizeof(conninfo) - strlen(conninfo) - 1);
	pg->pid = spawn_as(r, argv, pg->dir, pg->log, true);
	if (pg->pid < 0) {
		pg->pid = 0;
		snprintf(err, errlen, "cannot start %s: %s", exe, strerror(errno));
		return -1;
	}
	while (mono_ms() < deadline) {
		int st;

		if (waitpid(pg->pid, &st, WNOHANG) == pg->pid) {
			char line[512];
			FILE *f = fopen(pg->log, "re");
			bool taken = false;

			pg->pid = 0;
			while (f && fgets(line, sizeof(line), f))
				if (strstr(line, "could not bind") || strstr(line, "already in use"))
					taken = true;
			if (f)
				fclose(f);
			if (taken)
				return 1;
			snprintf(err, errlen, "%s exited (status %d) before answering", exe,
				 WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
			return -1;
		}
		if (PQping(conninfo) == PQPING_OK)
			return 0;
		nap_ms(50);
	}
	snprintf(err, errlen, "%s did not answer within %d s", exe, START_WAIT_MS / 1000);
	return -1;
}

int bench_pg_start(struct bench_pg *pg, const char *bindir, const char *prog, char *err,
		   size_t errlen)
{
	const char *tmp = getenv("TMPDIR");
	char tmpl[256], exe[512], real[PATH_MAX];
	struct runas r;
	int rc = -1;

	memset(pg, 0, sizeof(*pg));
	snprintf(exe, sizeof(exe), "%s/postgres", bindir);
	if (access(exe, X_OK) < 0) {
		snprintf(err, errlen, "%s: %s (PostgreSQL 15: apt-get install postgresql, or "
			 "--pg-bin DIR, or --postgres CONNINFO)", exe, strerror(errno));
		return -1;
	}
	if (runas_get(&r, err, errlen) < 0)
		return -1;
	if (!tmp || !*tmp)
		tmp = "/tmp";
	if ((size_t)snprintf(tmpl, sizeof(tmpl), "%s/%s-pg.XXXXXX", tmp, prog) >= sizeof(tmpl) ||
	    !mkdtemp(tmpl)) {
		snprintf(err, errlen, "cannot create a directory under %s: %s", tmp,
			 strerror(errno));
		return -1;
	}
	if (!realpath(tmpl, real) || strlen(real) >= sizeof(pg->top)) {
		snprintf(err, errlen, "%s: cannot resolve the path", tmpl);
		rmdir(tmpl);
		return -1;
	}
	strcpy(pg->top, real);
	snprintf(pg->dir, sizeof(pg->dir), "%s/pg", pg->top);
	snprintf(pg->data, sizeof(pg->data), "%s/data", pg->dir);
	snprintf(pg->log, sizeof(pg->log), "%s/server.log", pg->dir);
	snprintf(pg->pwfile, sizeof(pg->pwfile), "%s/pg.password", pg->top);
	/* The server's user must get through top to its own directory. */
	if (chmod(pg->top, 0755) < 0 || mkdir(pg->dir, 0700) < 0 ||
	    (r.drop && chown(pg->dir, r.uid, r.gid) < 0)) {
		snprintf(err, errlen, "%s: %s", pg->dir, strerror(errno));
		goto out;
	}
	if (make_password(pg->password, sizeof(pg->password)) < 0 ||
	    write_file(pg->pwfile, pg->password, 0600) < 0) {
		snprintf(err, errlen, "%s: cannot write the password: %s", pg->pwfile,
			 strerror(errno));
		goto out;
	}
	if (initdb(pg, &r, bindir, err, errlen) < 0)
		goto out;
	for (int attempt = 0; attempt < 3; attempt++) {
		pg->port = free_port();
		if (pg->port < 0) {
			snprintf(err, errlen, "no free port on 127.0.0.1: %s", strerror(errno));
			goto out;
		}
		rc = start_server(pg, &r, bindir, err, errlen);
		if (rc <= 0)
			break;
		snprintf(err, errlen, "port %d was taken three times", pg->port);
		rc = -1;
	}
out:
	if (rc < 0 && pg->log[0]) {
		fprintf(stderr, "%s: the throwaway PostgreSQL server did not start; its log:\n", prog);
		bench_pg_print_log(pg, stderr);
	}
	return rc < 0 ? -1 : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Signal the postmaster and wait up to ms for it to go.  true when gone. */
static bool signal_wait(struct bench_pg *pg, int sig, int ms)
{
	int64_t end = mono_ms() + ms;

	if (kill(pg->pid, sig) < 0 && errno != ESRCH)
		return false;
	while (mono_ms() < end) {
		int st;
		pid_t w = waitpid(pg->pid, &st, WNOHANG);

		if (w == pg->pid || (w < 0 && errno == ECHILD)) {
			pg->pid = 0;
			return true;
		}
		nap_ms(20);
	}
	return false;
}

void bench_pg_stop(struct bench_pg *pg)
{
	if (pg->pid > 0 && !signal_wait(pg, SIGINT, STOP_WAIT_MS) &&
	    !signal_wait(pg, SIGQUIT, 5000)) {
		/* The backends are in its process group. */
		kill(-pg->pid, SIGKILL);
		signal_wait(pg, SIGKILL, 5000);
	}
	pg->pid = 0;
	if (pg->top[0])
		nftw(pg->top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	pg->top[0] = '\0';
}

void bench_pg_print_log(const struct bench_pg *pg, FILE *out)
{
	char line[1024];
	long total = 0, skip;
	FILE *f = pg->log[0] ? fopen(pg->log, "re") : NULL;

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		total++;
	skip = total > 20 ? total - 20 : 0;
	rewind(f);
	for (long i = 0; fgets(line, sizeof(line), f); i++)
		if (i >= skip)
			fprintf(out, "  postgres| %s", line);
	fclose(f);
}
