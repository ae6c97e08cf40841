/*
 * bench_review: how long does `sbxctl review report` take over a big
 * journal?  Target (issue 13): a report over 1M records <= 5 s.
 *
 * Writes a broker-shaped journal (bench/benchjournal.c: requests filed,
 * granted or denied, and login checks between them; by default 1,000,000
 * records of which 100,000 requests) through the real append path, and a
 * policy whose 8 roles make every user of the journal eligible, then runs
 * the report's own code (sbx_review_report: policy load, one pass over
 * the journal, rendering to a file) once per format, each in a process of
 * its own, and prints its wall time, peak RSS and output size.
 *
 *   bench_review [--records N] [--requests N] [--dir DIR] [--keep]
 *
 * The page cache is warm (the journal was just written): this measures
 * CPU, not the disk.  Prints numbers; asserts nothing.
 */
#include "config.h"

#include "benchjournal.h"
#include "benchlib.h"
#include "review.h"

#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROLES 8
static const char *const roles[ROLES] = {
	"sandbox-admin", "db-readonly", "deploy", "oncall",
	"logs-reader", "k8s-edit", "billing-view", "support",
};

static int write_policy(const char *path, unsigned long users)
{
	FILE *f = fopen(path, "we");

	if (!f)
		return -1;
	fprintf(f, "broker:\n  host: sbx-01\n  state_dir: /nonexistent\n"
		"profiles:\n  audited:\n    max_duration: 30d\n    review_every: 90d\n"
		"groups:\n  everyone: [");
	for (unsigned long u = 1; u <= users; u++)
		fprintf(f, "%su%07lu", u > 1 ? ", " : "", u);
	fprintf(f, "]\n  leads: [boss]\nusers:\n  boss: {}\n");
	for (unsigned long u = 1; u <= users; u++)
		fprintf(f, "  u%07lu: { manager: boss }\n", u);
	fprintf(f, "roles:\n");
	for (int r = 0; r < ROLES; r++)
		fprintf(f, "  %s:\n    profile: audited\n    hosts: [\"sbx-*\"]\n"
			"    eligible: { groups: [everyone] }\n"
			"    approvers: { groups: [leads] }\n    max_duration: 30d\n",
			roles[r]);
	return fclose(f);
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* One report in a child: wall time, peak RSS (kB) and output bytes. */
static int run_one(const char *dir, const char *policy, const char *fmt, double *secs,
		   long *peak_kb, long long *bytes)
{
	char out[PATH_MAX + 16];
	struct rusage ru;
	struct stat st;
	int64_t t0;
	pid_t pid;
	int status;

	snprintf(out, sizeof(out), "%s/report.%s", dir, fmt);
	(void)unlink(out);
	t0 = bench_now_ns();
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct sbx_cli c = { .prog = "bench_review" };
		char state[PATH_MAX + 8];
		struct sbx_review_args a = { .config = policy, .state_dir = state, .since = "1d",
					     .format = fmt, .out = out };

		snprintf(state, sizeof(state), "%s/state", dir);
		_exit(sbx_review_report(&c, &a));
	}
	if (wait4(pid, &status, 0, &ru) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
		return -1;
	*secs = (double)(bench_now_ns() - t0) / 1e9;
	*peak_kb = ru.ru_maxrss;
	*bytes = stat(out, &st) == 0 ? (long long)st.st_size : -1;
	return 0;
}

int main(int argc, char **argv)
{
	static const char *const fmts[] = { "json", "csv", "md", "html" };
	unsigned long records = 1000000, requests = 100000;
	const char *dir_opt = NULL;
	bool keep = false;
	const struct bench_opt opts[] = {
		{ "records", BENCH_OPT_ULONG, &records, NULL, 0, 1, 100000000, 0 },
		{ "requests", BENCH_OPT_ULONG, &requests, NULL, 0, 1, 10000000, 0 },
		{ "dir", BENCH_OPT_STRING, &dir_opt, NULL, 0, 0, 0, 0 },
		{ "keep", BENCH_OPT_FLAG, &keep, NULL, 0, 0, 0, 0 },
	};
	char dir[PATH_MAX], state[PATH_MAX + 8], policy[PATH_MAX + 16], err[512];
	struct bench_journal bj = { 0 };
	uint64_t written = 0;
	int64_t t0;
	int ret = 1;

	if (bench_parse_args("bench_review", "[--records N] [--requests N] [--dir DIR] [--keep]",
			     argc, argv, opts, sizeof(opts) / sizeof(opts[0])))
		return 2;
	snprintf(dir, sizeof(dir), "%s/sbx-bench-review.XXXXXX",
		 dir_opt ? dir_opt : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "bench_review: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(policy, sizeof(policy), "%s/policy.yaml", dir);
	bench_print_machine(stdout, dir);
	bj.state_dir = state;
	bj.records = records;
	bj.requests = requests;
	bj.live = 0;
	printf("journal: %lu records wanted, %lu requests (half granted, half denied), the rest "
	       "login checks\n", records, requests);
	t0 = bench_now_ns();
	if (bench_journal_write(&bj, &written, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_review: writing the journal: %s\n", err);
		goto out;
	}
	printf("  written: %llu records in %.2f s\n", (unsigned long long)written,
	       (double)(bench_now_ns() - t0) / 1e9);
	if (write_policy(policy, requests / ROLES + 1) < 0) {
		fprintf(stderr, "bench_review: writing %s: %s\n", policy, strerror(errno));
		goto out;
	}
	printf("policy: %d roles, %lu users eligible for each\n\n== sbxctl review report over "
	       "%llu records (target <= 5 s) ==\n", ROLES, requests / ROLES + 1,
	       (unsigned long long)written);
	for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]) && !bench_interrupted; i++) {
		double secs;
		long kb;
		long long bytes;

		if (run_one(dir, policy, fmts[i], &secs, &kb, &bytes) < 0) {
			fprintf(stderr, "bench_review: the %s report failed\n", fmts[i]);
			goto out;
		}
		printf("  --format %-4s  %6.2f s  peak RSS %6ld MB  output %7.1f MB  %s\n", fmts[i],
		       secs, kb / 1024, (double)bytes / 1e6, secs <= 5.0 ? "ok" : "OVER TARGET");
	}
	ret = 0;
out:
	if (keep)
		printf("kept %s\n", dir);
	else
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
