/*
 * bench_sudo: what sbx_sudo.so adds to `sudo -n true`.
 *
 * Issue 14's target: p50 overhead <= 1 ms with both plugins (sbx_audit,
 * sbx_approval) over sudo without them, measured side by side in one run.
 *
 * The program starts its own sbx-brokerd (reference policy) in a
 * temporary directory, writes two sudo.conf files (sudoers alone; sudoers
 * and both sbx plugins), and runs real /usr/bin/sudo -n true as root,
 * alternating the two: each run forks, the child enters a private mount
 * namespace, bind-mounts its sudo.conf over /etc/sudo.conf and execs
 * sudo.  The time is from fork to reaped exit, so namespace and exec cost
 * the same on both sides and the difference of the medians is the
 * plugins' cost: two round trips to the broker (SUDO_CHECK before the
 * command, SUDO_EXITED after it), each waiting for a durable journal
 * record.  Run as root; point TMPDIR at the disk the broker's state
 * would live on (on tmpfs fdatasync is free).
 */
#define _GNU_SOURCE
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "benchlib.h"

static const char usage[] =
	"usage: bench_sudo [--count 500] [--warmup 20] [--plugin PATH] [--broker PATH]\n"
	"\n"
	"Time `sudo -n true` (run as root) with and without sbx_sudo.so, alternating.\n"
	"  --count N       measured runs of each variant (default 500)\n"
	"  --warmup N      unmeasured runs of each first (default 20)\n"
	"  --plugin PATH   sbx_sudo.so (default: the one in this build tree)\n"
	"  --broker PATH   sbx-brokerd (default: the one in this build tree)\n";

struct cfg {
	unsigned long count, warmup;
	char plugin[PATH_MAX];
	char broker[PATH_MAX];
};

static int parse_args(int argc, char **argv, struct cfg *c)
{
	const struct bench_opt opts[] = {
		{ "count", BENCH_OPT_ULONG, &c->count, NULL, 0, 1, 1000000, 0 },
		{ "warmup", BENCH_OPT_ULONG, &c->warmup, NULL, 0, 0, 100000, 0 },
		{ "plugin", BENCH_OPT_PATH, c->plugin, NULL, sizeof(c->plugin), 0, 0, 0 },
		{ "broker", BENCH_OPT_PATH, c->broker, NULL, sizeof(c->broker), 0, 0, 0 },
	};
	char *slash;

	c->count = 500;
	c->warmup = 20;
	if (bench_parse_args("bench_sudo", usage, argc, argv, opts, sizeof(opts) / sizeof(opts[0])) < 0)
		return -1;
	if (!c->broker[0] && bench_default_broker(c->broker, sizeof(c->broker)) < 0) {
		fprintf(stderr, "bench_sudo: where is sbx-brokerd? (--broker PATH)\n");
		return -1;
	}
	if (!c->plugin[0]) {
		snprintf(c->plugin, sizeof(c->plugin), "%s", c->broker);
		slash = strrchr(c->plugin, '/');
		if (slash && (size_t)(slash - c->plugin) + sizeof("/.libs/sbx_sudo.so") <=
				     sizeof(c->plugin))
			strcpy(slash, "/.libs/sbx_sudo.so");
		else
			snprintf(c->plugin, sizeof(c->plugin), ".libs/sbx_sudo.so");
	}
	return 0;
}

static int write_conf(const char *path, const char *plugin, const char *socket, char *err,
		      size_t errlen)
{
	FILE *f = fopen(path, "we");

	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	fprintf(f, "Plugin sudoers_policy sudoers.so\n");
	if (plugin) {
		fprintf(f, "Plugin sbx_audit %s socket=%s\n", plugin, socket);
		fprintf(f, "Plugin sbx_approval %s socket=%s\n", plugin, socket);
	}
	if (ferror(f) | fclose(f)) {
		snprintf(err, errlen, "%s: cannot write", path);
		return -1;
	}
	return 0;
}

/* One `sudo -n true` with conf as /etc/sudo.conf: nanoseconds, or -1. */
static int64_t one_run(const char *conf)
{
	int64_t t0 = bench_now_ns();
	int status = 0, null;
	pid_t pid = fork();

	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount(conf, "/etc/sudo.conf", NULL, MS_BIND, NULL) < 0)
			_exit(126);
		null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		execl("/usr/bin/sudo", "sudo", "-n", "true", (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	return bench_now_ns() - t0;
}

int main(int argc, char **argv)
{
	struct cfg c = { 0 };
	struct bench_broker b;
	struct bench_samples s[2] = { { 0 }, { 0 } };
	struct bench_stats st[2];
	char err[512], policy[PATH_MAX], conf[2][400];
	unsigned long errors[2] = { 0, 0 };
	int ret = 1;

	if (parse_args(argc, argv, &c) < 0)
		return 2;
	if (getuid() != 0) {
		fprintf(stderr, "bench_sudo: run it as root (a mount namespace per run, and sudo)\n");
		return 1;
	}
	if (access(c.plugin, R_OK) < 0 || access("/usr/bin/sudo", X_OK) < 0) {
		fprintf(stderr, "bench_sudo: needs %s and /usr/bin/sudo\n", c.plugin);
		return 1;
	}
	if (bench_catch_signals() < 0 || bench_reference_policy(policy, sizeof(policy)) < 0)
		return 1;
	if (bench_broker_prepare(&b, "bench_sudo", err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_sudo: %s\n", err);
		return 1;
	}
	snprintf(conf[0], sizeof(conf[0]), "%s/sudo.conf.plain", b.dir);
	snprintf(conf[1], sizeof(conf[1]), "%s/sudo.conf.sbx", b.dir);
	if (bench_broker_copy_config(&b, policy, err, sizeof(err)) < 0 ||
	    bench_broker_start(&b, c.broker, 30000, err, sizeof(err)) < 0 ||
	    write_conf(conf[0], NULL, b.socket, err, sizeof(err)) < 0 ||
	    write_conf(conf[1], c.plugin, b.socket, err, sizeof(err)) < 0)
		goto fail;
	bench_print_machine(stdout, b.state_dir);
	printf("settings: %lu measured + %lu warm-up runs of each, alternating; plugin %s\n",
	       c.count, c.warmup, c.plugin);
	printf("target:   p50 overhead <= 1 ms with both plugins (issue 14)\n");
	fflush(stdout);
	for (unsigned long i = 0; i < 2 * (c.warmup + c.count) && !bench_interrupted; i++) {
		int v = (int)(i % 2);
		int64_t ns = one_run(conf[v]);

		if (ns < 0)
			errors[v]++;
		else if (i >= 2 * c.warmup && bench_samples_add(&s[v], ns) < 0)
			goto fail;
	}
	for (int v = 0; v < 2; v++) {
		bench_stats_compute(&s[v], &st[v]);
		printf("== sudo -n true, %s (errors %lu) ==\n",
		       v ? "with sbx_audit + sbx_approval" : "sudoers only", errors[v]);
		bench_stats_print(stdout, &st[v]);
	}
	printf("overhead: p50 %+.0f us, p90 %+.0f us\n", st[1].p50_us - st[0].p50_us,
	       st[1].p90_us - st[0].p90_us);
	ret = 0;
	(void)bench_broker_stop(&b);
	bench_broker_cleanup(&b, false);
	bench_samples_free(&s[0]);
	bench_samples_free(&s[1]);
	return ret;
fail:
	fprintf(stderr, "bench_sudo: %s\n", err);
	bench_broker_cleanup(&b, true);
	bench_samples_free(&s[0]);
	bench_samples_free(&s[1]);
	return ret;
}
