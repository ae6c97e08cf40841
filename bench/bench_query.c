/*
 * bench_query: `sbxctl audit query` over a large journal.
 *
 * Writes a broker-shaped journal (bench/benchjournal.c: requests, grants,
 * login checks; 1M records by default) into a new directory, then runs
 * the real sbxctl on it, as a child process, a few times per query, and
 * prints each run's wall time and the child's peak RSS (wait4's
 * ru_maxrss).  The target (issue 12): --user over 1M records <= 2 s and
 * <= 64 MiB RSS.
 *
 *   bench_query [--records N] [--sbxctl PATH] [--dir DIR] [--keep] [--runs N]
 */
#include "config.h"

#include "benchjournal.h"
#include "benchlib.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Run argv with stdout to /dev/null (and counted); wall seconds, peak
 * RSS in KiB, and the exit status. */
static int run(char *const argv[], double *secs, long *maxrss_kb, int *status)
{
	struct rusage ru;
	double t0 = now();
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	while (wait4(pid, status, 0, &ru) < 0)
		if (errno != EINTR)
			return -1;
	*secs = now() - t0;
	*maxrss_kb = ru.ru_maxrss;
	return 0;
}

static const char *default_sbxctl(char *buf, size_t len, const char *argv0)
{
	const char *slash = strrchr(argv0, '/');

	/* bench/bench_query in a build tree: sbxctl is one level up. */
	if (slash && snprintf(buf, len, "%.*s/../sbxctl", (int)(slash - argv0), argv0) < (int)len &&
	    access(buf, X_OK) == 0)
		return buf;
	return "./sbxctl";
}

static void usage(FILE *f)
{
	fputs("Usage: bench_query [--records N] [--sbxctl PATH] [--dir DIR] [--keep] [--runs N]\n"
	      "\n"
	      "Write a broker-shaped journal of N records (default 1000000) into DIR (default:\n"
	      "a new directory under $TMPDIR), then time `sbxctl audit query` on it: --user\n"
	      "(the target: <= 2 s, <= 64 MiB peak RSS over 1M records), --outcome (every\n"
	      "line parsed) and --id.  A DIR that already holds a journal is used as it is.\n"
	      "--keep leaves the directory.\n", f);
}

int main(int argc, char **argv)
{
	unsigned long records = 1000000, runs = 3;
	const char *sbxctl = NULL, *dir_arg = NULL;
	char sbxbuf[PATH_MAX], dir[PATH_MAX], err[512] = "", cmd[PATH_MAX + 64];
	bool keep = false, made = false;
	struct bench_journal o = { 0 };
	uint64_t written = 0;
	struct stat st;
	int ret = 1;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--records") == 0 && i + 1 < argc) {
			if (bench_parse_ulong(argv[++i], 1, 100000000, &records))
				goto bad;
		} else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc) {
			if (bench_parse_ulong(argv[++i], 1, 100, &runs))
				goto bad;
		} else if (strcmp(argv[i], "--sbxctl") == 0 && i + 1 < argc) {
			sbxctl = argv[++i];
		} else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc) {
			dir_arg = argv[++i];
		} else if (strcmp(argv[i], "--keep") == 0) {
			keep = true;
		} else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			goto bad;
		}
	}
	if (!sbxctl)
		sbxctl = default_sbxctl(sbxbuf, sizeof(sbxbuf), argv[0]);
	if (bench_catch_signals())
		return 1;
	if (dir_arg) {
		snprintf(dir, sizeof(dir), "%s", dir_arg);
	} else {
		const char *tmp = getenv("TMPDIR");

		snprintf(dir, sizeof(dir), "%s/bench_query.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(dir)) {
			perror("mkdtemp");
			return 1;
		}
		made = true;
	}
	printf("sbxctl:   %s\n", sbxctl);
	printf("target:   audit query --user over 1M records <= 2 s and <= 64 MiB peak RSS\n");
	snprintf(cmd, sizeof(cmd), "%s/journal/000000000001.jsonl", dir);
	if (stat(cmd, &st) < 0) {
		double t0 = now();

		o.state_dir = dir;
		o.records = records;
		o.requests = records / 10;
		o.live = 1000;
		if (bench_journal_write(&o, &written, err, sizeof(err))) {
			fprintf(stderr, "bench_query: cannot write the journal: %s\n", err);
			goto out;
		}
		printf("generate: %" PRIu64 " records in %.1f s\n", written, now() - t0);
	} else {
		printf("generate: using the journal in %s\n", dir);
	}
	{
		char *const q_user[] = { (char *)sbxctl, "audit", "query", "--state-dir", dir,
					 "--user", "u0000042", "--format", "jsonl", NULL };
		char *const q_text[] = { (char *)sbxctl, "audit", "query", "--state-dir", dir,
					 "--user", "u0000042", NULL };
		char *const q_outcome[] = { (char *)sbxctl, "audit", "query", "--state-dir", dir,
					    "--outcome", "denied", "--format", "jsonl", NULL };
		char *const q_id[] = { (char *)sbxctl, "audit", "query", "--state-dir", dir,
				       "--id", "42", NULL };
		struct {
			const char *label;
			char *const *argv;
		} qs[] = {
			{ "--user (jsonl)", q_user },
			{ "--user (text)", q_text },
			{ "--outcome", q_outcome },
			{ "--id", q_id },
		};

		for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]) && !bench_interrupted; k++) {
			for (unsigned long r = 0; r < runs && !bench_interrupted; r++) {
				double secs;
				long kb;
				int status;

				if (run(qs[k].argv, &secs, &kb, &status) < 0) {
					perror("run");
					goto out;
				}
				printf("%-15s run %lu: %6.3f s, peak RSS %6.1f MiB%s\n", qs[k].label,
				       r + 1, secs, (double)kb / 1024.0,
				       WIFEXITED(status) && WEXITSTATUS(status) == 0 ? "" :
				       "  (sbxctl FAILED)");
			}
		}
	}
	ret = 0;
out:
	if (made && !keep) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "bench_query: could not remove %s\n", dir);
	} else if (made) {
		printf("kept:     %s\n", dir);
	}
	return ret;
bad:
	usage(stderr);
	return 2;
}
