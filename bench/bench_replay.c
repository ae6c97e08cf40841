/*
 * bench_replay: how long does start-up replay take?
 *
 * Writes a journal of N realistic records (default 1,000,000) through the
 * real append path, with a snapshot 5,000 records before the end, then
 * times: a full replay from seq 1 (snapshot moved aside), a replay from
 * the snapshot (the chain is still checked from seq 1, only the records
 * after the snapshot are parsed), and an offline verify.  The page cache is warm (the
 * journal was just written): this measures CPU, not the disk.
 *
 *   bench_replay [--records N] [--dir DIR] [--keep]   (DIR: a new directory)
 *
 * Prints numbers; asserts nothing.  Target (issue 2): 1M records <= 2 s.
 */
#include "config.h"

#include "benchlib.h"
#include "journal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TAIL_AFTER_SNAPSHOT 5000

struct counts {
	uint64_t records;
	uint64_t grants;
	uint64_t state_members;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--records N] [--dir DIR] [--keep]\n", argv0);
	return 2;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static const char *const users[] = { "erin", "alice", "carol", "dave", "frank", "bob" };
static const char *const roles[] = { "sandbox-admin", "db-readonly", "deploy", "oncall" };
static const char *const reasons[] = {
	"debugging the ingest pipeline", "rotating the staging TLS certificates",
	"investigating INC-4411 (slow queries on replica 2)", "release 4.2 rollout",
};

/* One record shaped like the broker's: request.created, approvals, grants,
 * and the frequent access.checked. */
static json_t *fields_for(uint64_t i, const char **event, const char **actor)
{
	const char *user = users[i % 6], *role = roles[i % 4];
	json_int_t id = (json_int_t)(i / 4 + 1);

	*actor = user;
	switch (i % 4) {
	case 0:
		*event = "request.created";
		return json_pack("{s:I, s:s, s:s, s:i, s:s, s:s, s:n}", "id", id, "user", user, "role",
				 role, "duration", 3600, "reason", reasons[i % 4], "ticket", "OPS-1234",
				 "via");
	case 1:
		*event = "request.approval";
		*actor = "frank";
		return json_pack("{s:I, s:s, s:s, s:s, s:i}", "id", id, "user", user, "role", role,
				 "comment", "ok, keep it short", "approvals", 1);
	case 2:
		*event = "grant.activated";
		*actor = "frank";
		return json_pack("{s:I, s:s, s:s, s:s, s:s}", "id", id, "user", user, "role", role,
				 "starts_at", "2026-11-28T00:09:54Z", "expires_at", "2026-11-28T01:09:54Z");
	default:
		*event = "access.checked";
		*actor = "pam";
		return json_pack("{s:s, s:s, s:s, s:b, s:s}", "user", user, "host", "sbx-host-07",
				 "service", "sshd", "allowed", 1, "reason", "active grant of sandbox-admin");
	}
}

/* A broker-sized state: a thousand grants. */
static json_t *make_state(void *ctx)
{
	json_t *grants = json_array();

	(void)ctx;
	for (int i = 0; i < 1000; i++)
		json_array_append_new(grants, json_pack("{s:i, s:s, s:s, s:s, s:s}", "id", i, "user",
							users[i % 6], "role", roles[i % 4], "state",
							"active", "expires_at", "2026-11-28T01:09:54Z"));
	return json_pack("{s:i, s:o}", "version", 1, "grants", grants);
}

static int on_snapshot(const json_t *state, void *ctx, char *err, size_t errlen)
{
	struct counts *c = ctx;

	(void)err;
	(void)errlen;
	c->state_members = json_array_size(json_object_get(state, "grants"));
	return 0;
}

/* Touch what a broker would look at first. */
static int on_record(const json_t *rec, void *ctx, char *err, size_t errlen)
{
	struct counts *c = ctx;
	const char *ev = json_string_value(json_object_get(rec, "event"));

	(void)err;
	(void)errlen;
	c->records++;
	if (ev && ev[0] == 'g')
		c->grants++;
	return 0;
}

/* The size of every segment file. */
static uint64_t journal_bytes(const char *dir)
{
	char path[4200];
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

static int generate(const char *dir, uint64_t n, uint64_t *bytes)
{
	struct sbx_journal_opts o = { .state_dir = dir };
	struct sbx_journal *j = NULL;
	struct sbx_replay_info info;
	char err[512];
	double t0 = now(), dt;
	int ret = -1;

	if (sbx_journal_open(&o, NULL, NULL, NULL, &info, &j, err, sizeof(err))) {
		fprintf(stderr, "bench_replay: %s\n", err);
		return -1;
	}
	for (uint64_t i = 0; i < n; i++) {
		const char *event, *actor;
		json_t *f = fields_for(i, &event, &actor);
		int rc = sbx_journal_append(j, event, actor, f, NULL, NULL);

		json_decref(f);
		if (rc) {
			fprintf(stderr, "bench_replay: append failed: %s\n", strerror(errno));
			goto out;
		}
		if (bench_interrupted)
			goto out;
		/* Keep the pending buffer bounded, as a broker's acks would. */
		if ((i + 1) % 20000 == 0 && sbx_journal_flush(j))
			goto out;
		if (i + 1 == n - (n > TAIL_AFTER_SNAPSHOT ? TAIL_AFTER_SNAPSHOT : 0) &&
		    sbx_journal_maybe_snapshot(j, make_state, NULL, true)) {
			fprintf(stderr, "bench_replay: snapshot failed\n");
			goto out;
		}
	}
	if (sbx_journal_flush(j))
		goto out;
	dt = now() - t0;
	printf("generate: %" PRIu64 " records appended (durably, group commit) in %.2f s = %.0f records/s\n",
	       n, dt, (double)n / dt);
	ret = 0;
out:
	sbx_journal_close(j);
	*bytes = ret ? 0 : journal_bytes(dir);
	return ret;
}

static int timed_open(const char *dir, const char *label, uint64_t bytes)
{
	struct sbx_journal_opts o = { .state_dir = dir };
	struct sbx_journal *j = NULL;
	struct sbx_replay_info info;
	struct counts c = { 0 };
	char err[512];
	double t0 = now(), dt;

	if (sbx_journal_open(&o, on_snapshot, on_record, &c, &info, &j, err, sizeof(err))) {
		fprintf(stderr, "bench_replay: %s\n", err);
		return -1;
	}
	dt = now() - t0;
	sbx_journal_close(j);
	if (bench_interrupted)
		return -1;
	/* Either way the whole chain is checked (MB/s is of the whole
	 * journal); records are those parsed and handed over. */
	printf("%-17s %8" PRIu64 " records in %6.3f s", label, info.records, dt);
	if (info.used_snapshot)
		printf(" (%.1f MB/s of chain checked; state from the snapshot at seq %" PRIu64
		       " with %" PRIu64 " grants)", (double)bytes / dt / 1e6, info.snapshot_seq,
		       c.state_members);
	else
		printf(" = %8.0f records/s, %6.1f MB/s", (double)info.records / dt,
		       (double)bytes / dt / 1e6);
	if (info.snapshot_note[0])
		printf(" [%s]", info.snapshot_note);
	printf("\n");
	return 0;
}

int main(int argc, char **argv)
{
	char tmpl[] = "/tmp/sbx-bench-replay-XXXXXX", snap[4200], aside[4200], err[512];
	const char *dir = NULL;
	uint64_t n = 1000000, bytes = 0, count = 0, bad = 0;
	bool keep = false;
	double t0, dt;
	int ret = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--records") && i + 1 < argc) {
			char *end;

			errno = 0;
			n = strtoull(argv[++i], &end, 10);
			if (errno || *end || n == 0)
				return usage(argv[0]);
		} else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
			dir = argv[++i];
		} else if (!strcmp(argv[i], "--keep")) {
			keep = true;
		} else {
			return usage(argv[0]);
		}
	}
	if (!dir) {
		dir = mkdtemp(tmpl);
		if (!dir) {
			perror("bench_replay: mkdtemp");
			return 1;
		}
	}
	if (bench_catch_signals())
		perror("bench_replay: sigaction");
	bench_print_machine(stdout, dir);
	printf("settings: %" PRIu64 " records, snapshot %d records before the end, warm page cache\n",
	       n, n > TAIL_AFTER_SNAPSHOT ? TAIL_AFTER_SNAPSHOT : 0);
	printf("target:   full replay of 1M records <= 2 s (issue 2)\n");
	if (generate(dir, n, &bytes))
		goto out;
	printf("journal: %.1f MB, %.0f bytes per record on average\n", (double)bytes / 1e6,
	       (double)bytes / (double)n);

	snprintf(snap, sizeof(snap), "%s/snapshot.json", dir);
	snprintf(aside, sizeof(aside), "%s/snapshot.json.aside", dir);
	if (rename(snap, aside)) {
		perror("bench_replay: moving the snapshot aside");
		goto out;
	}
	if (timed_open(dir, "full replay:", bytes))
		goto out;
	if (rename(aside, snap)) {
		perror("bench_replay: restoring the snapshot");
		goto out;
	}
	if (timed_open(dir, "snapshot replay:", bytes))
		goto out;

	t0 = now();
	if (sbx_journal_verify(dir, &count, &bad, err, sizeof(err))) {
		fprintf(stderr, "bench_replay: verify: %s\n", err);
		goto out;
	}
	dt = now() - t0;
	printf("%-17s %8" PRIu64 " records in %6.3f s = %8.0f records/s, %6.1f MB/s\n", "verify:", count,
	       dt, (double)count / dt, (double)bytes / dt / 1e6);
	ret = 0;
out:
	if (keep)
		printf("kept %s\n", dir);
	else
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
