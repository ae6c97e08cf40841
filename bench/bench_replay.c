/*
 * bench_replay: how long does start-up take, and how much memory, from a
 * snapshot and from the journal alone?
 *
 * Writes a broker-shaped journal (bench/benchjournal.c: requests filed,
 * granted and ended, and login checks between them; by default 1,000,000
 * records holding 500,000 requests that are all live grants) through the
 * real append path, with the broker's state (broker/state.c) following
 * every record and a snapshot of it 5,000 records before the end.  Then,
 * each in a process of its own so that its memory is its own:
 *
 *   full replay       sbx_journal_open from seq 1 into a fresh state
 *   snapshot replay   the same with the snapshot: the chain is still
 *                     checked from seq 1, the entries stream into the
 *                     state meanwhile, the records after it are applied
 *   verify            sbx_journal_verify (the auditor's check)
 *
 * and prints the time and the peak RSS of each (VmHWM, less what the
 * process held before it started).  "live state" is the RSS a full
 * replay leaves behind, and what the snapshot replay leaves.
 *
 * With --broker PATH, also the real daemon: sbx-brokerd started on the
 * same state dir (reference policy), from exec to its first answer, its
 * peak RSS, and how long a clean stop (SIGTERM) takes; once without the
 * snapshot, once with it.
 *
 *   bench_replay [--records N] [--requests N] [--live N] [--dir DIR] [--keep]
 *                [--broker PATH [--policy FILE]]
 *
 * The page cache is warm (the journal was just written): this measures
 * CPU, not the disk.  Prints numbers; asserts nothing.
 */
#include "config.h"

#include "benchjournal.h"
#include "benchlib.h"
#include "journal.h"
#include "state.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TAIL_AFTER_SNAPSHOT 5000

struct cfg {
	unsigned long records, requests, live;
	const char *dir;
	bool keep;
	char broker[PATH_MAX];
	char policy[PATH_MAX];
};

/* What a measuring process reports back through a pipe. */
struct report {
	int ok;
	double secs;
	uint64_t records, entries, last_seq, snapshot_seq;
	long base_kb, peak_kb, after_kb;
	uint64_t count;         /* sbx_state_count, or verify's count */
	uint64_t snap_bytes;
	int64_t snap_ms, snap_fork_us;
	char note[256];
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A line of /proc/PID/status, in kB (-1 unknown). */
static long status_kb(pid_t pid, const char *key)
{
	char path[64], line[256];
	size_t klen = strlen(key);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), pid ? "/proc/%d/status" : "/proc/self/status", (int)pid);
	f = fopen(path, "re");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, klen) && line[klen] == ':')
			v = strtol(line + klen + 1, NULL, 10);
	if (f)
		fclose(f);
	return v;
}

static double mb(long kb)
{
	return (double)kb / 1024.0;
}

/* ---------------------------------------------------- the state, in-process */

static int put_entry(void *out, const json_t *entry)
{
	return sbx_snapshot_put(out, entry);
}

static int write_state(struct sbx_snapshot_out *out, void *ctx)
{
	return sbx_state_snapshot(ctx, put_entry, out);
}

static int follow(const json_t *rec, void *ctx)
{
	char err[256];

	return sbx_state_apply(ctx, rec, err, sizeof(err)) < 0 ? -1 : 0;
}

static int on_snapshot(const json_t *entry, void *ctx, char *err, size_t errlen)
{
	return sbx_state_from_json(ctx, entry, err, errlen) < 0 ? -1 : 0;
}

static int on_record(const json_t *rec, void *ctx, char *err, size_t errlen)
{
	return sbx_state_apply(ctx, rec, err, errlen) < 0 ? -1 : 0;
}

/* Run fn in a child process; its report comes back through a pipe. */
static int in_child(int (*fn)(const struct cfg *, struct report *), const struct cfg *c,
		    struct report *r)
{
	int pfd[2], status = 0;
	pid_t pid;
	ssize_t n;

	memset(r, 0, sizeof(*r));
	if (pipe(pfd))
		return -1;
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(pfd[0]);
		r->base_kb = status_kb(0, "VmRSS");
		r->ok = fn(c, r) == 0;
		r->peak_kb = status_kb(0, "VmHWM") - r->base_kb;
		if (write(pfd[1], r, sizeof(*r)) != (ssize_t)sizeof(*r))
			_exit(1);
		_exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], r, sizeof(*r));
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return n == (ssize_t)sizeof(*r) && r->ok ? 0 : -1;
}

static int generate(const struct cfg *c, struct report *r)
{
	struct sbx_state *st = sbx_state_new();
	struct bench_journal o = { .state_dir = c->dir, .records = c->records,
				   .requests = c->requests, .live = c->live, .on_record = follow,
				   .ctx = st, .write_state = write_state };
	uint64_t total;
	double t0 = now();

	total = bench_journal_needed(&o);
	if (total < o.records)
		total = o.records;
	o.snapshot_at = total > TAIL_AFTER_SNAPSHOT ? total - TAIL_AFTER_SNAPSHOT : total;
	if (!st || bench_journal_write(&o, &r->records, r->note, sizeof(r->note)))
		return -1;
	r->secs = now() - t0;
	r->count = sbx_state_count(st);
	r->snap_bytes = o.snap.bytes;
	r->snap_ms = o.snap.took_ms;
	r->snap_fork_us = o.snap.fork_us;
	r->entries = o.snap.entries;
	r->snapshot_seq = o.snap.seq;
	r->after_kb = status_kb(0, "VmRSS") - r->base_kb;
	return 0;
}

static int open_once(const struct cfg *c, struct report *r)
{
	struct sbx_journal_opts o = { .state_dir = c->dir };
	struct sbx_state *st = sbx_state_new();
	struct sbx_replay_info info;
	struct sbx_journal *j = NULL;
	double t0 = now();

	if (!st)
		return -1;
	if (sbx_journal_open(&o, on_snapshot, on_record, st, &info, &j, r->note, sizeof(r->note)))
		return -1;
	r->secs = now() - t0;
	r->after_kb = status_kb(0, "VmRSS") - r->base_kb;
	r->records = info.records;
	r->entries = info.snapshot_entries;
	r->last_seq = info.last_seq;
	r->snapshot_seq = info.used_snapshot ? info.snapshot_seq : 0;
	r->count = sbx_state_count(st);
	if (info.snapshot_note[0])
		snprintf(r->note, sizeof(r->note), "%s", info.snapshot_note);
	sbx_journal_close(j);
	return 0;
}

static int verify_once(const struct cfg *c, struct report *r)
{
	uint64_t bad = 0;
	double t0 = now();

	if (sbx_journal_verify(c->dir, &r->count, &bad, r->note, sizeof(r->note)))
		return -1;
	r->secs = now() - t0;
	return 0;
}

/* ------------------------------------------------------- the real daemon */

static pid_t spawn_broker(const struct cfg *c, const char *sock, const char *log)
{
	pid_t pid = fork();

	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

		if (fd >= 0) {
			dup2(fd, 2);
			dup2(fd, 1);
		}
		execl(c->broker, c->broker, "--foreground", "--config", c->policy, "--socket", sock,
		      "--state-dir", c->dir, (char *)NULL);
		_exit(127);
	}
	return pid;
}

struct daemon_run {
	double start_s, stop_s;
	long peak_kb, rss_kb;
	int stop_status;
};

/* Start, wait for the first answer (polled every 2 ms), note its memory,
 * stop it with SIGTERM and time that. */
static int daemon_once(const struct cfg *c, const char *sock, const char *log,
		       struct daemon_run *d)
{
	char err[256];
	double t0 = now();
	pid_t pid = spawn_broker(c, sock, log);
	int status = 0;

	memset(d, 0, sizeof(*d));
	if (pid < 0)
		return -1;
	for (;;) {
		struct timespec ts = { 0, 2000000 };

		if (waitpid(pid, &status, WNOHANG) == pid) {
			fflush(stdout);
			fprintf(stderr, "bench_replay: the broker exited before answering (see %s)\n",
				log);
			return -1;
		}
		if (bench_ping(sock, 0, NULL, 0, NULL, err, sizeof(err)) == 0)
			break;
		if (bench_interrupted || now() - t0 > 600) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		nanosleep(&ts, NULL);
	}
	d->start_s = now() - t0;
	d->peak_kb = status_kb(pid, "VmHWM");
	d->rss_kb = status_kb(pid, "VmRSS");
	t0 = now();
	kill(pid, SIGTERM);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	d->stop_s = now() - t0;
	d->stop_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return 0;
}

static void print_daemon(const char *label, const struct daemon_run *d, long base_kb)
{
	printf("  %-22s ready in %6.3f s, peak RSS %7.1f MB (%7.1f MB over an empty broker), "
	       "RSS %7.1f MB; SIGTERM to exit %6.3f s (status %d)\n", label, d->start_s,
	       mb(d->peak_kb), mb(d->peak_kb - base_kb), mb(d->rss_kb), d->stop_s,
	       d->stop_status);
}

static int measure_daemon(const struct cfg *c)
{
	char sock[PATH_MAX], log[PATH_MAX], snap[PATH_MAX], aside[PATH_MAX], empty[PATH_MAX];
	struct daemon_run base, full, from_snap;
	struct cfg ec = *c;
	struct stat st;
	long base_kb;

	snprintf(sock, sizeof(sock), "%s/broker.sock", c->dir);
	snprintf(log, sizeof(log), "%s/broker.log", c->dir);
	snprintf(snap, sizeof(snap), "%s/snapshot.json", c->dir);
	snprintf(aside, sizeof(aside), "%s/snapshot.json.aside", c->dir);
	snprintf(empty, sizeof(empty), "%s/empty", c->dir);
	printf("\n== sbx-brokerd %s, policy %s ==\n", c->broker, c->policy);
	ec.dir = empty;
	if (daemon_once(&ec, sock, log, &base))
		return -1;
	base_kb = base.peak_kb;
	print_daemon("empty state dir:", &base, base_kb);
	if (rename(snap, aside) || daemon_once(c, sock, log, &full))
		return -1;
	print_daemon("journal alone:", &full, base_kb);
	/* A broker that wrote a snapshot of its own (at its stop, or right
	 * after a start without one) is measured with that; else with ours. */
	if (stat(snap, &st) == 0) {
		printf("  (the broker left a snapshot of %.1f MB: started from that one)\n",
		       (double)st.st_size / 1e6);
		unlink(aside);
	} else if (rename(aside, snap)) {
		return -1;
	}
	if (daemon_once(c, sock, log, &from_snap))
		return -1;
	print_daemon("from the snapshot:", &from_snap, base_kb);
	return 0;
}

/* --------------------------------------------------------------------- main */

static uint64_t journal_bytes(const char *dir)
{
	char path[PATH_MAX];
	uint64_t total = 0;
	struct dirent *e;
	struct stat st;
	DIR *d;

	snprintf(path, sizeof(path), "%s/journal", dir);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		size_t len = strlen(e->d_name);

		if (len > 6 && !strcmp(e->d_name + len - 6, ".jsonl") &&
		    fstatat(dirfd(d), e->d_name, &st, 0) == 0)
			total += (uint64_t)st.st_size;
	}
	if (d)
		closedir(d);
	return total;
}

static const char usage_text[] =
	"Usage: bench_replay [--records N] [--requests N] [--live N] [--dir DIR] [--keep]\n"
	"                    [--broker PATH [--policy FILE]]\n"
	"\n"
	"Write a broker-shaped journal with a snapshot 5,000 records before its end,\n"
	"then time start-up (and its peak RSS) from the journal alone and from the\n"
	"snapshot, in-process with the broker's state and, with --broker, as the\n"
	"real daemon.  Numbers are printed, never asserted.\n"
	"\n"
	"  --records N    records at least (default 1000000)\n"
	"  --requests N   requests among them (default 500000)\n"
	"  --live N       of which live grants, the last ones (default: all)\n"
	"  --dir DIR      a new directory for it (default: one under /tmp, removed)\n"
	"  --keep         keep the directory\n"
	"  --broker PATH  also start this sbx-brokerd on it\n"
	"  --policy FILE  its policy (default: the reference policy)\n";

static int parse_args(int argc, char **argv, struct cfg *c)
{
	const struct bench_opt opts[] = {
		{ "records", BENCH_OPT_ULONG, &c->records, NULL, 0, 1, 100000000, 0 },
		{ "requests", BENCH_OPT_ULONG, &c->requests, NULL, 0, 0, 50000000, 0 },
		{ "live", BENCH_OPT_ULONG, &c->live, NULL, 0, 0, 50000000, 0 },
		{ "dir", BENCH_OPT_STRING, &c->dir, NULL, 0, 0, 0, 0 },
		{ "keep", BENCH_OPT_FLAG, &c->keep, NULL, 0, 0, 0, 0 },
		{ "broker", BENCH_OPT_PATH, c->broker, NULL, sizeof(c->broker), 0, 0, 0 },
		{ "policy", BENCH_OPT_PATH, c->policy, NULL, sizeof(c->policy), 0, 0, 0 },
	};

	return bench_parse_args("bench_replay", usage_text, argc, argv, opts,
				sizeof(opts) / sizeof(opts[0]));
}

static void print_open(const char *label, const struct report *r)
{
	printf("%-17s %6.3f s, peak RSS %7.1f MB, RSS after %7.1f MB: %" PRIu64 " records applied",
	       label, r->secs, mb(r->peak_kb), mb(r->after_kb), r->records);
	if (r->snapshot_seq)
		printf(" after %" PRIu64 " snapshot entries (seq %" PRIu64 ")", r->entries,
		       r->snapshot_seq);
	printf(", %" PRIu64 " requests in memory\n", r->count);
	if (r->note[0])
		printf("                  [%s]\n", r->note);
}

int main(int argc, char **argv)
{
	struct cfg c = { .records = 1000000, .requests = 500000, .live = ULONG_MAX };
	char tmpl[] = "/tmp/sbx-bench-replay-XXXXXX", snap[PATH_MAX], aside[PATH_MAX];
	struct report gen, full, fromsnap, ver;
	uint64_t bytes;
	int ret = 1;

	if (parse_args(argc, argv, &c) < 0)
		return 2;
	if (c.live > c.requests)
		c.live = c.requests;
	if (c.broker[0] && !c.policy[0] && bench_reference_policy(c.policy, sizeof(c.policy)) < 0) {
		fprintf(stderr, "bench_replay: no reference policy (use --policy FILE)\n");
		return 1;
	}
	if (!c.dir) {
		c.dir = mkdtemp(tmpl);
		if (!c.dir) {
			perror("bench_replay: mkdtemp");
			return 1;
		}
	}
	if (bench_catch_signals())
		perror("bench_replay: sigaction");
	bench_print_machine(stdout, c.dir);
	printf("settings: %lu records at least, %lu requests, %lu of them live grants; a snapshot "
	       "%d records before the end; warm page cache\n", c.records, c.requests, c.live,
	       TAIL_AFTER_SNAPSHOT);
	printf("target:   start-up from a snapshot with 1M records and 500k grants <= 1 s, peak "
	       "RSS <= 2x the live state (issue 11)\n");
	if (in_child(generate, &c, &gen)) {
		fprintf(stderr, "bench_replay: generating: %s\n", gen.note);
		goto out;
	}
	bytes = journal_bytes(c.dir);
	printf("generate: %" PRIu64 " records (%.1f MB, %.0f bytes each) appended durably in %.2f "
	       "s, the state following them (%" PRIu64 " requests, %.1f MB RSS)\n", gen.records,
	       (double)bytes / 1e6, (double)bytes / (double)gen.records, gen.secs, gen.count,
	       mb(gen.after_kb));
	printf("snapshot: seq %" PRIu64 ", %" PRIu64 " entries, %.1f MB, written by a child in %.2f "
	       "s (fork held the writer %.2f ms)\n", gen.snapshot_seq, gen.entries,
	       (double)gen.snap_bytes / 1e6, (double)gen.snap_ms / 1e3,
	       (double)gen.snap_fork_us / 1e3);

	snprintf(snap, sizeof(snap), "%s/snapshot.json", c.dir);
	snprintf(aside, sizeof(aside), "%s/snapshot.json.aside", c.dir);
	if (rename(snap, aside)) {
		perror("bench_replay: moving the snapshot aside");
		goto out;
	}
	if (in_child(open_once, &c, &full)) {
		fprintf(stderr, "bench_replay: full replay: %s\n", full.note);
		goto out;
	}
	print_open("full replay:", &full);
	if (rename(aside, snap)) {
		perror("bench_replay: restoring the snapshot");
		goto out;
	}
	if (in_child(open_once, &c, &fromsnap)) {
		fprintf(stderr, "bench_replay: snapshot replay: %s\n", fromsnap.note);
		goto out;
	}
	print_open("snapshot replay:", &fromsnap);
	if (in_child(verify_once, &c, &ver)) {
		fprintf(stderr, "bench_replay: verify: %s\n", ver.note);
		goto out;
	}
	printf("%-17s %6.3f s: %" PRIu64 " records, %.1f MB/s\n", "verify:", ver.secs, ver.count,
	       (double)bytes / ver.secs / 1e6);
	printf("snapshot replay vs full replay: %.2fx the time; peak RSS %.2fx the live state "
	       "(RSS a full replay leaves), %.2fx what the snapshot replay leaves\n",
	       fromsnap.secs / full.secs, (double)fromsnap.peak_kb / (double)full.after_kb,
	       (double)fromsnap.peak_kb / (double)fromsnap.after_kb);
	if (c.broker[0] && measure_daemon(&c)) {
		fflush(stdout);
		fprintf(stderr, "bench_replay: the daemon's part failed\n");
	}
	ret = 0;
out:
	if (c.keep)
		printf("kept %s\n", c.dir);
	else
		nftw(c.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
