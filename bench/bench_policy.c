/*
 * bench_policy: how long does loading a directory-sized policy take?
 *
 * For each size asked for, writes a policy of N users (each with a
 * manager and an address, 50 to a group) and R roles (each eligible
 * through 5 groups and 20 users by name, approved by the manager or a
 * group, with its own unix group), then times sbx_policy_load_file on it:
 * what sbx-brokerd does at start-up and on SIGHUP, and `sbxctl policy
 * check`.  Each size is loaded in a child process of its own, so the peak
 * memory printed is that size's alone.
 *
 *   bench_policy [--users 10000,50000,200000] [--roles 500] [--repeat 3]
 *
 * Prints numbers; asserts nothing.  Target (issue 11): load time grows
 * linearly with the file.
 */
#include "config.h"

#include "benchlib.h"
#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SIZES 16
#define GROUP_SIZE 50

static const char usage_text[] =
	"Usage: bench_policy [--users LIST] [--roles LIST] [--repeat N]\n"
	"\n"
	"Write policies of every users x roles size asked for and time\n"
	"sbx_policy_load_file on each (what the broker does at start-up and on\n"
	"SIGHUP, and what `sbxctl policy check` does).  Numbers are printed,\n"
	"never asserted.\n"
	"\n"
	"Options:\n"
	"  --users LIST   user counts, e.g. 10000,50000,200000 (the default);\n"
	"                 each at least 50 and at most 2000000\n"
	"  --roles LIST   role counts (default 500; each 1 to 100000)\n"
	"  --repeat N     loads per size; the best and the median are shown\n"
	"                 (default 3, at most 20)\n"
	"  -h, --help     show this help\n"
	"\n"
	"The files go to a new directory under $TMPDIR (default /tmp), removed\n"
	"afterwards.\n"
	"\n"
	"Exit status: 0 measured (whatever the numbers), 1 could not set up, 2 usage.\n";

struct cfg {
	unsigned long users[MAX_SIZES], roles[MAX_SIZES];
	size_t n_users, n_roles;
	unsigned long repeat;
};

/* "10000,50000" into v; each in [min, max]. */
static int parse_list(const char *s, unsigned long min, unsigned long max, unsigned long *v,
		      size_t *n)
{
	char buf[256], *save = NULL;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	*n = 0;
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (*n == MAX_SIZES || bench_parse_ulong(tok, min, max, &v[*n]) < 0)
			return -1;
		(*n)++;
	}
	return *n ? 0 : -1;
}

static int parse_args(struct cfg *c, int argc, char **argv)
{
	c->users[0] = 10000;
	c->users[1] = 50000;
	c->users[2] = 200000;
	c->n_users = 3;
	c->roles[0] = 500;
	c->n_roles = 1;
	c->repeat = 3;
	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		int rc = -1;

		if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) {
			fputs(usage_text, stdout);
			exit(0);
		}
		if (!val)
			rc = -1;
		else if (!strcmp(opt, "--users"))
			rc = parse_list(val, GROUP_SIZE, 2000000, c->users, &c->n_users);
		else if (!strcmp(opt, "--roles"))
			rc = parse_list(val, 1, 100000, c->roles, &c->n_roles);
		else if (!strcmp(opt, "--repeat"))
			rc = bench_parse_ulong(val, 1, 20, &c->repeat);
		if (rc < 0) {
			fprintf(stderr, "bench_policy: %s%s%s: not an option with a valid value "
					"(see --help)\n", opt, val ? " " : "", val ? val : "");
			return -1;
		}
		i++;
	}
	return 0;
}

/* The shape of a site's directory written out (docs/policy.md). */
static void write_policy(FILE *f, unsigned long users, unsigned long roles)
{
	unsigned long groups = users / GROUP_SIZE;

	fputs("broker: { host: sbx-01 }\nusers:\n", f);
	for (unsigned long i = 0; i < users; i++)
		fprintf(f, "  u%07lu: { manager: u%07lu, email: u%07lu@example.org }\n", i,
			i % GROUP_SIZE ? i - i % GROUP_SIZE : (i + GROUP_SIZE) % users, i);
	fputs("groups:\n", f);
	for (unsigned long g = 0; g < groups; g++) {
		fprintf(f, "  g%06lu: [", g);
		for (unsigned long k = 0; k < GROUP_SIZE; k++)
			fprintf(f, "%su%07lu", k ? ", " : "", g * GROUP_SIZE + k);
		fputs("]\n", f);
	}
	fputs("roles:\n", f);
	for (unsigned long r = 0; r < roles; r++) {
		fprintf(f, "  r%06lu:\n    hosts: [\"sbx-*\"]\n"
			   "    unix_group: { name: sbx-r%06lu, gid: %lu }\n    eligible:\n"
			   "      groups: [",
			r, r, 60000 + r);
		for (unsigned long k = 0; k < 5; k++)
			fprintf(f, "%sg%06lu", k ? ", " : "", (r * 7 + k) % groups);
		fputs("]\n      users: [", f);
		for (unsigned long k = 0; k < 20; k++)
			fprintf(f, "%su%07lu", k ? ", " : "", (r * 131 + k * 17) % users);
		fprintf(f, "]\n    approvers: { manager: true, groups: [g%06lu] }\n",
			(r * 13) % groups);
	}
}

/* This process's peak resident set, in KiB (-1: unknown). */
static long peak_rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* In a child of its own: load path repeat times and print one line. */
static int measure(const char *path, unsigned long users, unsigned long roles,
		   unsigned long repeat, off_t bytes)
{
	double t[20];

	for (unsigned long i = 0; i < repeat; i++) {
		struct sbx_policy_errors errs = { 0 };
		struct sbx_policy *p = NULL;
		int64_t t0 = bench_now_ns();
		int rc = sbx_policy_load_file(path, &p, NULL, &errs);

		t[i] = (double)(bench_now_ns() - t0) / 1e9;
		if (rc < 0) {
			sbx_policy_errors_print(stderr, &errs);
			sbx_policy_errors_free(&errs);
			return 1;
		}
		sbx_policy_free(p);
		sbx_policy_errors_free(&errs);
	}
	qsort(t, repeat, sizeof(t[0]), cmp_double);
	printf("%8lu users %6lu roles  %7.2f MB  load best %7.3f s  median %7.3f s  "
	       "%5.2f us/user  %6.1f MB/s  peak RSS %6.0f MB\n",
	       users, roles, (double)bytes / 1e6, t[0], t[repeat / 2],
	       t[0] * 1e6 / (double)users, (double)bytes / 1e6 / t[0],
	       (double)peak_rss_kib() / 1024.0);
	fflush(stdout);
	return 0;
}

static int run_one(const char *dir, unsigned long users, unsigned long roles,
		   unsigned long repeat)
{
	char path[512];
	struct stat st;
	FILE *f;
	pid_t pid;
	int status, ret = 1;

	snprintf(path, sizeof(path), "%s/policy.yaml", dir);
	f = fopen(path, "we");
	if (!f) {
		fprintf(stderr, "bench_policy: %s: %s\n", path, strerror(errno));
		return 1;
	}
	write_policy(f, users, roles);
	if (fclose(f) != 0 || stat(path, &st) < 0) {
		fprintf(stderr, "bench_policy: writing %s: %s\n", path, strerror(errno));
		goto out;
	}
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "bench_policy: fork: %s\n", strerror(errno));
		goto out;
	}
	if (pid == 0)
		_exit(measure(path, users, roles, repeat, st.st_size));
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	ret = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
	if (ret)
		fprintf(stderr, "bench_policy: loading %lu users x %lu roles failed\n", users,
			roles);
out:
	(void)unlink(path);
	return ret;
}

int main(int argc, char **argv)
{
	char dir[256];
	const char *tmp = getenv("TMPDIR");
	struct cfg c;
	int ret = 0;

	if (parse_args(&c, argc, argv) < 0)
		return 2;
	snprintf(dir, sizeof(dir), "%s/sbx-bench-policy-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "bench_policy: mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	bench_print_machine(stdout, NULL);
	printf("settings: %lu load%s per size, each size in a fresh process, warm page cache\n",
	       c.repeat, c.repeat == 1 ? "" : "s");
	printf("target:   load time linear in the policy's size (issue 11)\n");
	for (size_t i = 0; i < c.n_users && !ret; i++)
		for (size_t k = 0; k < c.n_roles && !ret; k++)
			ret = run_one(dir, c.users[i], c.roles[k], c.repeat);
	(void)rmdir(dir);
	return ret;
}
