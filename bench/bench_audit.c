/*
 * bench_audit: how fast is the auditor's check, and how long does a start
 * from a sealed snapshot take, on a long sealed journal?
 *
 * Writes a sealed journal through the real append path: broker-shaped
 * records (requests filed, granted, login checks), a seal
 * (journal/seal_append.c, the broker's own call, with the key moved on
 * and its file rewritten as the broker does) every --seal-every records,
 * a snapshot of a small state after the last seal, and a short tail.
 * Then measures, each run --runs times (the best is printed):
 *
 *   verify --key        sbx_journal_audit with the verification key and the
 *                       host's key file (what `sbxctl audit verify --key` runs)
 *   verify, chain only  the same without the key
 *   full-parse chain    sbx_journal_verify (the chain check that parses
 *                       every record into jansson: what verify did before)
 *   start-up            sbx_journal_open from the sealed snapshot: the chain
 *                       is checked from the seal the snapshot names
 *   start-up, unsealed  the same snapshot without its seal fields: the chain
 *                       is checked from seq 1 (what start-up did before)
 *
 *   bench_audit [--records N] [--seal-every N] [--runs N] [--dir DIR] [--keep]
 *
 * The page cache is warm (the journal was just written): this measures
 * CPU, not the disk.  Prints numbers; asserts nothing.
 */
#include "config.h"

#include "journal.h"
#include "seal.h"
#include "verify.h"

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

#include <openssl/crypto.h>

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

static int small_state(struct sbx_snapshot_out *out, void *ctx)
{
	json_t *e = json_pack("{s:i, s:i}", "version", 2, "requests", 0);
	int rc = sbx_snapshot_put(out, e);

	(void)ctx;
	json_decref(e);
	return rc;
}

static int ignore_entry(const json_t *entry, void *ctx, char *err, size_t errlen)
{
	(void)entry;
	(void)ctx;
	(void)err;
	(void)errlen;
	return 0;
}

static int ignore_rec(const json_t *rec, void *ctx, char *err, size_t errlen)
{
	(void)rec;
	(void)ctx;
	(void)err;
	(void)errlen;
	return 0;
}

static int add(struct sbx_journal *j, uint64_t i)
{
	char user[32];
	json_t *f;
	int rc;

	snprintf(user, sizeof(user), "user%" PRIu64, i % 5000);
	if (i % 4 == 0)
		f = json_pack("{s:I, s:s, s:s, s:i, s:s, s:n, s:i, s:s}", "id", (json_int_t)i,
			      "user", user, "role", "sandbox-admin", "duration", 3600, "reason",
			      "debugging the ingest pipeline on sbx-01", "ticket",
			      "approvals_needed", 1, "lapses_at", "2026-12-07T10:00:00Z");
	else
		f = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I}", "user", user, "service", "sshd",
			      "rhost", "10.1.2.3", "tty", "ssh", "outcome", "allowed", "role",
			      "sandbox-admin", "id", (json_int_t)i);
	rc = sbx_journal_append(j, i % 4 == 0 ? "request.created" : "access.checked",
				i % 4 == 0 ? user : "sbx", f, NULL, NULL);
	json_decref(f);
	return rc;
}

static int seal(struct sbx_journal *j, const char *dir, struct sbx_seal_state *st)
{
	char until[SBX_RFC3339_LEN], err[512];
	uint64_t seq;

	if (sbx_seal_append(j, st, "sbx", "timer", &seq, until, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_audit: seal: %s\n", err);
		return -1;
	}
	sbx_seal_state_advance(st, until, seq + 1);
	if (sbx_seal_state_write(dir, st, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_audit: seal: %s\n", err);
		return -1;
	}
	return 0;
}

static uint64_t dir_bytes(const char *dir)
{
	char path[4200];
	uint64_t total = 0;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/journal", dir);
	d = opendir(path);
	while (d && (de = readdir(d))) {
		struct stat st;
		size_t n = strlen(de->d_name);

		if (n > 6 && !strcmp(de->d_name + n - 6, ".jsonl") &&
		    fstatat(dirfd(d), de->d_name, &st, 0) == 0)
			total += (uint64_t)st.st_size;
	}
	if (d)
		closedir(d);
	return total;
}

/* Drop the seal fields from the snapshot's header: start-up then checks
 * from seq 1, as before. */
static int unseal_snapshot(const char *dir)
{
	char path[4200], tmp[4300];
	FILE *in, *out;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool first = true;

	snprintf(path, sizeof(path), "%s/snapshot.json", dir);
	snprintf(tmp, sizeof(tmp), "%s.unsealed", path);
	in = fopen(path, "re");
	out = fopen(tmp, "we");
	if (!in || !out)
		return -1;
	while ((n = getline(&line, &cap, in)) > 0) {
		char *p;

		if (first && (p = strstr(line, ",\"seal_seq\":"))) {
			strcpy(p, "}\n");
			n = (ssize_t)strlen(line);
		}
		first = false;
		fwrite(line, 1, (size_t)n, out);
	}
	free(line);
	fclose(in);
	if (fclose(out))
		return -1;
	return rename(tmp, path);
}

static double best_of(int runs, double (*fn)(void *), void *arg)
{
	double best = 1e9;

	for (int i = 0; i < runs; i++) {
		double t = fn(arg);

		if (t < 0)
			return -1;
		if (t < best)
			best = t;
	}
	return best;
}

struct run {
	const char *dir;
	const struct sbx_seal_vkey *vk;
	uint64_t checked_from;
};

static double run_audit(void *arg)
{
	struct run *r = arg;
	struct sbx_verify_opts o = { .state_dir = r->dir, .vk = r->vk };
	struct sbx_verify_result res;
	char err[1024];
	double t0 = now();

	if (sbx_journal_audit(&o, &res, err, sizeof(err))) {
		fprintf(stderr, "bench_audit: verify: %s\n", err);
		return -1;
	}
	return now() - t0;
}

static double run_old_verify(void *arg)
{
	struct run *r = arg;
	uint64_t count, bad;
	char err[1024];
	double t0 = now();

	if (sbx_journal_verify(r->dir, &count, &bad, err, sizeof(err))) {
		fprintf(stderr, "bench_audit: sbx_journal_verify: %s\n", err);
		return -1;
	}
	return now() - t0;
}

static double run_open(void *arg)
{
	struct run *r = arg;
	struct sbx_journal_opts o = { .state_dir = r->dir };
	struct sbx_replay_info info;
	struct sbx_journal *j = NULL;
	char err[1024];
	double t0 = now(), t;

	if (sbx_journal_open(&o, ignore_entry, ignore_rec, NULL, &info, &j, err, sizeof(err))) {
		fprintf(stderr, "bench_audit: open: %s\n", err);
		return -1;
	}
	t = now() - t0;
	r->checked_from = info.checked_from;
	sbx_journal_close(j);
	return t;
}

int main(int argc, char **argv)
{
	uint64_t records = 1000000, seal_every = 10000, bytes;
	int runs = 3;
	bool keep = false;
	char dir[4096] = "", err[512];
	struct sbx_journal_opts jo = { 0 };
	struct sbx_journal *j = NULL;
	struct sbx_seal_vkey vk;
	struct sbx_seal_state st;
	struct run r = { 0 };
	double t, tw;
	int ret = 1;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--records") && i + 1 < argc)
			records = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--seal-every") && i + 1 < argc)
			seal_every = strtoull(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--runs") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			snprintf(dir, sizeof(dir), "%s", argv[++i]);
		else if (!strcmp(argv[i], "--keep"))
			keep = true;
		else {
			fprintf(stderr, "usage: bench_audit [--records N] [--seal-every N] [--runs N] "
				"[--dir DIR] [--keep]\n");
			return 2;
		}
	}
	if (!dir[0]) {
		const char *base = getenv("TMPDIR");

		snprintf(dir, sizeof(dir), "%s/sbx-bench-audit-XXXXXX", base && *base ? base : "/var/tmp");
		if (!mkdtemp(dir)) {
			perror("bench_audit: mkdtemp");
			return 1;
		}
	}
	if (runs < 1 || seal_every < 1)
		runs = 1;
	if (sbx_seal_vkey_new(&vk, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_audit: %s\n", err);
		goto out;
	}
	sbx_seal_state_init(&st, &vk);
	if (sbx_seal_state_write(dir, &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_audit: %s\n", err);
		goto out;
	}
	jo.state_dir = dir;
	if (sbx_journal_open(&jo, NULL, NULL, NULL, NULL, &j, err, sizeof(err))) {
		fprintf(stderr, "bench_audit: %s\n", err);
		goto out;
	}
	sbx_journal_defer_commits(j, true);
	tw = now();
	for (uint64_t i = 1; i <= records; i++) {
		if (add(j, i)) {
			fprintf(stderr, "bench_audit: append: %s\n", strerror(errno));
			goto out;
		}
		if (i % 1000 == 0)
			sbx_journal_commit(j);
		if (i % seal_every == 0) {
			sbx_journal_commit(j);
			if (seal(j, dir, &st))
				goto out;
		}
	}
	sbx_journal_commit(j);
	if (sbx_journal_maybe_snapshot(j, small_state, NULL, true) < 0) {
		fprintf(stderr, "bench_audit: snapshot failed\n");
		goto out;
	}
	for (uint64_t i = 0; i < 1000; i++)
		(void)add(j, records + i);
	sbx_journal_commit(j);
	if (sbx_journal_flush(j)) {
		fprintf(stderr, "bench_audit: flush failed\n");
		goto out;
	}
	sbx_journal_close(j);
	j = NULL;
	tw = now() - tw;
	bytes = dir_bytes(dir);
	printf("journal:  %" PRIu64 " records + %" PRIu64 " seals + 1,000 after the snapshot, "
	       "%.1f MB, written in %.1f s; a snapshot (small state) after the last seal\n",
	       records, records / seal_every, (double)bytes / 1e6, tw);
	printf("target:   verify --key >= 200 MB/s; start-up from a sealed snapshot <= 0.3 s\n");

	r.dir = dir;
	r.vk = &vk;
	t = best_of(runs, run_audit, &r);
	if (t < 0)
		goto out;
	printf("verify --key:        %.3f s  %6.0f MB/s\n", t, (double)bytes / 1e6 / t);
	r.vk = NULL;
	t = best_of(runs, run_audit, &r);
	if (t < 0)
		goto out;
	printf("verify, chain only:  %.3f s  %6.0f MB/s\n", t, (double)bytes / 1e6 / t);
	t = best_of(runs, run_old_verify, &r);
	if (t < 0)
		goto out;
	printf("full-parse chain:    %.3f s  %6.0f MB/s  (sbx_journal_verify, every record parsed)\n",
	       t, (double)bytes / 1e6 / t);
	t = best_of(runs, run_open, &r);
	if (t < 0)
		goto out;
	printf("start-up, sealed snapshot:   %.3f s  (chain checked from seq %" PRIu64 ")\n", t,
	       r.checked_from);
	if (unseal_snapshot(dir)) {
		perror("bench_audit: rewriting the snapshot");
		goto out;
	}
	t = best_of(runs, run_open, &r);
	if (t < 0)
		goto out;
	printf("start-up, unsealed snapshot: %.3f s  (chain checked from seq %" PRIu64 ")\n", t,
	       r.checked_from);
	ret = 0;
out:
	if (j)
		sbx_journal_close(j);
	sbx_seal_state_wipe(&st);
	OPENSSL_cleanse(&vk, sizeof(vk));
	if (!keep)
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	else
		printf("kept %s\n", dir);
	return ret;
}
