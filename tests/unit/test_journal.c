/*
 * Journal: append/replay, group commit, rotation, snapshots, tamper
 * detection (every bit of every byte), torn tails (every cut offset of a
 * 1,000-record journal), the lock, and write failure.
 */
#include "config.h"

#include "journal_int.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmpdir[256];
static char sdir[300];   /* <tmpdir>/state: the journal creates it */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/sbx-jtest-XXXXXX", base && *base ? base : "/tmp");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(sdir, sizeof(sdir), "%s/state", tmpdir);
}

static void teardown(void)
{
	if (tmpdir[0])
		nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(journal, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------ helpers */

struct coll {
	json_t *recs;
	json_t *snap;   /* the snapshot's entries, in order (NULL: none) */
	int forgot;     /* times told to forget them */
	int refuse_at;  /* refuse this entry (1-based; 0: none) */
};

static int on_rec(const json_t *rec, void *ctx, char *err, size_t errlen)
{
	struct coll *c = ctx;

	(void)err;
	(void)errlen;
	return json_array_append(c->recs, (json_t *)rec);
}

static int on_snap(const json_t *entry, void *ctx, char *err, size_t errlen)
{
	struct coll *c = ctx;

	if (!entry) {
		c->forgot++;
		json_decref(c->snap);
		c->snap = NULL;
		return 0;
	}
	if (!c->snap)
		c->snap = json_array();
	if (c->refuse_at && json_array_size(c->snap) + 1 == (size_t)c->refuse_at) {
		snprintf(err, errlen, "not this one");
		return -1;
	}
	return json_array_append_new(c->snap, json_deep_copy(entry));
}

static void coll_init(struct coll *c)
{
	c->recs = json_array();
	c->snap = NULL;
	c->forgot = 0;
	c->refuse_at = 0;
}

static void coll_free(struct coll *c)
{
	json_decref(c->recs);
	json_decref(c->snap);
	c->recs = c->snap = NULL;
}

static struct sbx_journal *jopen(const char *dir, size_t segmax, uint64_t every, struct coll *c,
				 struct sbx_replay_info *info)
{
	struct sbx_journal_opts o = { .state_dir = dir, .segment_max = segmax, .snapshot_every = every };
	struct sbx_journal *j = NULL;
	char err[512] = "";
	int rc = sbx_journal_open(&o, on_snap, on_rec, c, info, &j, err, sizeof(err));

	cr_assert_eq(rc, 0, "open %s: %s", dir, err);
	return j;
}

static uint64_t rec_seq(const json_t *rec)
{
	return (uint64_t)json_integer_value(json_object_get(rec, "seq"));
}

static json_t *sample_fields(int i)
{
	return json_pack("{s:i, s:s, s:s, s:i, s:s, s:s}", "id", i, "user", "erin", "role",
			 "sandbox-admin", "duration", 3600, "reason",
			 i % 3 ? "debugging the ingest pipeline" : "x", "via", i % 2 ? "root" : "");
}

static void append_n(struct sbx_journal *j, int from, int n)
{
	for (int i = from; i < from + n; i++) {
		json_t *f = sample_fields(i);
		uint64_t seq = 0;

		cr_assert_eq(sbx_journal_append(j, "request.created", "erin", f, &seq, NULL), 0);
		json_decref(f);
	}
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	cr_assert_not_null(f, "open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void spit(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0, "create %s", path);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void seg_path(char *out, size_t n, const char *dir, uint64_t first)
{
	char name[SBX_JR_SEG_NAME_MAX];

	sbx_jr_seg_name(first, name);
	cr_assert_lt(snprintf(out, n, "%s/journal/%s", dir, name), (int)n);
}

static int verify(const char *dir, uint64_t *count, uint64_t *bad)
{
	char err[512];

	return sbx_journal_verify(dir, count, bad, err, sizeof(err));
}

/* A finished journal of n records with the given segment size. */
static void make_journal(const char *dir, int n, size_t segmax)
{
	struct coll c;
	struct sbx_journal *j;

	coll_init(&c);
	j = jopen(dir, segmax, 0, &c, NULL);
	append_n(j, 1, n);
	cr_assert_eq(sbx_journal_flush(j), 0);
	sbx_journal_close(j);
	coll_free(&c);
}

/* Small records (about 190 bytes) where the count of offsets matters. */
static void make_small_journal(const char *dir, int n)
{
	struct coll c;
	struct sbx_journal *j;

	coll_init(&c);
	j = jopen(dir, 0, 0, &c, NULL);
	for (int i = 0; i < n; i++) {
		json_t *f = json_pack("{s:i}", "i", i);

		cr_assert_eq(sbx_journal_append(j, "e", "a", f, NULL, NULL), 0);
		json_decref(f);
	}
	sbx_journal_close(j);
	coll_free(&c);
}

/* ---------------------------------------------------------- round trip */

Test(journal, round_trip_preserves_fields_in_order)
{
	struct coll c;
	struct sbx_replay_info info;
	struct sbx_journal *j;
	json_t *outs[3] = { NULL }, *f;
	char path[512], *data;
	size_t len;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert_eq(info.records, 0);
	cr_assert_eq(info.last_seq, 0);
	f = json_loads("{\"zeta\":1,\"alpha\":\"two\",\"mid\":{\"b\":[1,\"x\",null],\"a\":true},"
		       "\"reason\":\"line\\nbreak \\\"quoted\\\" \\u00fcml\\u00e4ut \\u2603\","
		       "\"neg\":-42,\"real\":1.5,\"none\":null,\"no\":false}", 0, NULL);
	cr_assert_not_null(f);
	for (int i = 0; i < 3; i++) {
		uint64_t seq = 0;

		cr_assert_eq(sbx_journal_append(j, i ? "grant.activated" : "request.created",
						"frank", i == 1 ? NULL : f, &seq, &outs[i]), 0);
		cr_assert_eq(seq, (uint64_t)i + 1);
		cr_assert_not_null(outs[i]);
	}
	cr_assert_eq(sbx_journal_flush(j), 0);
	cr_assert_eq(sbx_journal_durable_seq(j), 3);
	sbx_journal_close(j);
	coll_free(&c);

	/* The file: one line per record, no raw newline inside. */
	seg_path(path, sizeof(path), sdir, 1);
	data = slurp(path, &len);
	{
		int lines = 0;

		for (size_t i = 0; i < len; i++)
			lines += data[i] == '\n';
		cr_assert_eq(lines, 3);
		cr_assert_eq(data[len - 1], '\n');
		cr_assert(strncmp(data, "{\"seq\":1,\"time\":\"", 17) == 0, "%.40s", data);
		cr_assert_not_null(strstr(data, "\"prev\":\"0000000000000000000000000000000000000000000000000000000000000000\""));
		for (size_t i = 0; i < len; i++)
			cr_assert((unsigned char)data[i] < 0x80, "non-ASCII byte at %zu", i);
	}
	free(data);

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert_eq(info.records, 3);
	cr_assert_eq(info.last_seq, 3);
	cr_assert_eq(json_array_size(c.recs), 3);
	for (int i = 0; i < 3; i++) {
		json_t *r = json_array_get(c.recs, (size_t)i);
		char *a = json_dumps(r, JSON_COMPACT | JSON_PRESERVE_ORDER);
		char *b = json_dumps(outs[i], JSON_COMPACT | JSON_PRESERVE_ORDER);
		const char *k;
		json_t *v;
		int pos = 0;
		static const char *order[] = { "seq", "time", "event", "actor", "zeta", "alpha",
					       "mid", "reason", "neg", "real", "none", "no",
					       "prev", "hash" };

		cr_assert_str_eq(a, b);
		cr_assert(json_equal(r, outs[i]));
		cr_assert_eq(rec_seq(r), (uint64_t)i + 1);
		cr_assert_str_eq(json_string_value(json_object_get(r, "actor")), "frank");
		cr_assert_eq(strlen(json_string_value(json_object_get(r, "time"))), 27);
		json_object_foreach(r, k, v) {
			if (i == 1 && pos == 4)
				pos = 12; /* no fields */
			cr_assert_str_eq(k, order[pos], "record %d key %d", i + 1, pos);
			pos++;
		}
		cr_assert_eq(pos, 14);
		if (i != 1) {
			cr_assert(json_equal(json_object_get(r, "mid"), json_object_get(f, "mid")));
			cr_assert(json_equal(json_object_get(r, "reason"), json_object_get(f, "reason")));
			cr_assert(json_equal(json_object_get(r, "real"), json_object_get(f, "real")));
		}
		if (i)
			cr_assert_str_eq(json_string_value(json_object_get(r, "prev")),
					 json_string_value(json_object_get(outs[i - 1], "hash")));
		free(a);
		free(b);
	}
	for (int i = 0; i < 3; i++)
		json_decref(outs[i]);
	sbx_journal_close(j);
	coll_free(&c);
	json_decref(f);
}

Test(journal, append_rejects_bad_input_without_failing)
{
	struct coll c;
	struct sbx_journal *j;
	json_t *f;
	char *big;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	f = json_pack("{s:i}", "seq", 5);
	cr_assert_eq(sbx_journal_append(j, "x", "y", f, NULL, NULL), -1);
	cr_assert_eq(errno, EINVAL);
	json_decref(f);
	f = json_pack("{s:s}", "hash", "no");
	cr_assert_eq(sbx_journal_append(j, "x", "y", f, NULL, NULL), -1);
	json_decref(f);
	big = malloc(SBX_JOURNAL_LINE_MAX + 1);
	memset(big, 'a', SBX_JOURNAL_LINE_MAX);
	big[SBX_JOURNAL_LINE_MAX] = '\0';
	f = json_pack("{s:s}", "reason", big);
	cr_assert_eq(sbx_journal_append(j, "x", "y", f, NULL, NULL), -1);
	cr_assert_eq(errno, E2BIG);
	json_decref(f);
	free(big);
	cr_assert_eq(sbx_journal_append(j, NULL, "y", NULL, NULL, NULL), -1);
	cr_assert_not(sbx_journal_failed(j, NULL, 0));
	cr_assert_eq(sbx_journal_last_seq(j), 0);
	cr_assert_eq(sbx_journal_append(j, "x", "y", NULL, NULL, NULL), 0);
	cr_assert_eq(sbx_journal_last_seq(j), 1);
	sbx_journal_close(j);
	coll_free(&c);
	cr_assert_eq(verify(sdir, NULL, NULL), 0);
}

/* ------------------------------------------------------ durability, fd */

Test(journal, durable_seq_advances_and_eventfd_fires)
{
	struct coll c;
	struct sbx_journal *j;
	struct pollfd p;
	uint64_t seq = 0;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	p.fd = sbx_journal_event_fd(j);
	p.events = POLLIN;
	cr_assert_geq(p.fd, 0);
	cr_assert_eq(poll(&p, 1, 0), 0, "readable before anything happened");
	cr_assert_eq(sbx_journal_append(j, "broker.started", "root", NULL, &seq, NULL), 0);
	cr_assert_eq(sbx_journal_last_seq(j), seq);
	while (sbx_journal_durable_seq(j) < seq) {
		cr_assert_eq(poll(&p, 1, 10000), 1, "eventfd did not fire");
		sbx_journal_ack_event(j);
	}
	cr_assert_eq(sbx_journal_durable_seq(j), 1);
	sbx_journal_ack_event(j);
	cr_assert_eq(poll(&p, 1, 0), 0, "still readable after ack");
	cr_assert_not(sbx_journal_failed(j, NULL, 0));
	cr_assert_eq(sbx_journal_flush(j), 0);
	sbx_journal_close(j);
	coll_free(&c);
}

struct thr {
	struct sbx_journal *j;
	int id;
	int n;
	uint64_t *seqs;
};

static void *appender(void *arg)
{
	struct thr *t = arg;

	for (int i = 0; i < t->n; i++) {
		json_t *f = json_pack("{s:i, s:i}", "thread", t->id, "i", i);

		if (sbx_journal_append(t->j, "access.checked", "pam", f, &t->seqs[i], NULL))
			t->seqs[i] = 0;
		json_decref(f);
	}
	return NULL;
}

Test(journal, concurrent_appends_share_syncs_and_one_chain)
{
	enum { T = 4, N = 250 };
	struct coll c;
	struct sbx_journal *j;
	pthread_t tid[T];
	struct thr t[T];
	bool seen[T * N + 1] = { false };
	uint64_t count = 0;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	for (int i = 0; i < T; i++) {
		t[i] = (struct thr){ .j = j, .id = i, .n = N, .seqs = calloc(N, sizeof(uint64_t)) };
		cr_assert_eq(pthread_create(&tid[i], NULL, appender, &t[i]), 0);
	}
	for (int i = 0; i < T; i++)
		pthread_join(tid[i], NULL);
	cr_assert_eq(sbx_journal_flush(j), 0);
	cr_assert_eq(sbx_journal_durable_seq(j), T * N);
	for (int i = 0; i < T; i++) {
		for (int k = 0; k < N; k++) {
			uint64_t s = t[i].seqs[k];

			cr_assert(s >= 1 && s <= T * N, "seq %" PRIu64, s);
			cr_assert_not(seen[s], "seq %" PRIu64 " given twice", s);
			seen[s] = true;
			if (k)
				cr_assert_gt(s, t[i].seqs[k - 1]);
		}
		free(t[i].seqs);
	}
	/* Group commit: far fewer syncs than records. */
	cr_assert_lt(sbx_jr_sync_count(j), (uint64_t)T * N, "syncs %" PRIu64,
		     sbx_jr_sync_count(j));
	sbx_journal_close(j);
	coll_free(&c);
	cr_assert_eq(verify(sdir, &count, NULL), 0);
	cr_assert_eq(count, T * N);
}

Test(journal, restart_continues_the_chain)
{
	struct coll c;
	struct sbx_replay_info info;
	struct sbx_journal *j;
	uint64_t count = 0;

	for (int round = 0; round < 3; round++) {
		coll_init(&c);
		j = jopen(sdir, 0, 0, &c, &info);
		cr_assert_eq(info.records, (uint64_t)round * 5);
		append_n(j, 1, 5);
		sbx_journal_close(j);
		coll_free(&c);
	}
	cr_assert_eq(verify(sdir, &count, NULL), 0);
	cr_assert_eq(count, 15);
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert_eq(json_array_size(c.recs), 15);
	for (size_t i = 0; i < 15; i++) {
		json_t *r = json_array_get(c.recs, i);

		cr_assert_eq(rec_seq(r), i + 1);
		if (i)
			cr_assert_str_eq(json_string_value(json_object_get(r, "prev")),
					 json_string_value(json_object_get(json_array_get(c.recs, i - 1), "hash")));
	}
	sbx_journal_close(j);
	coll_free(&c);
}

/* ------------------------------------------------------------ segments */

static int count_segments(const char *dir, uint64_t *firsts, int max)
{
	struct sbx_jr_seg *segs = NULL;
	size_t n = 0;
	char path[512], err[256];
	int fd;

	snprintf(path, sizeof(path), "%s/journal", dir);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(sbx_jr_list_segments(fd, &segs, &n, err, sizeof(err)), 0);
	for (size_t i = 0; i < n && (int)i < max; i++)
		firsts[i] = segs[i].first;
	free(segs);
	close(fd);
	return (int)n;
}

Test(journal, segments_rotate_and_replay_across_them)
{
	struct coll c;
	struct sbx_replay_info info;
	struct sbx_journal *j;
	uint64_t firsts[200], count = 0;
	int nseg;

	make_journal(sdir, 60, 1000);
	nseg = count_segments(sdir, firsts, 200);
	cr_assert_gt(nseg, 5, "only %d segments", nseg);
	cr_assert_eq(firsts[0], 1);
	for (int i = 0; i < nseg; i++) {
		char path[512], *data;
		size_t len;

		seg_path(path, sizeof(path), sdir, firsts[i]);
		data = slurp(path, &len);
		/* The name is the first record's seq. */
		cr_assert_eq(strtoull(data + 7, NULL, 10), firsts[i]);
		if (i + 1 < nseg)
			cr_assert_geq(len, 1000, "segment %d rotated early (%zu bytes)", i, len);
		cr_assert_lt(len, 1000 + 400, "segment %d too big", i);
		free(data);
	}
	cr_assert_eq(verify(sdir, &count, NULL), 0);
	cr_assert_eq(count, 60);

	coll_init(&c);
	j = jopen(sdir, 1000, 0, &c, &info);
	cr_assert_eq(info.records, 60);
	for (size_t i = 0; i < 60; i++)
		cr_assert_eq(rec_seq(json_array_get(c.recs, i)), i + 1);
	append_n(j, 61, 10);
	sbx_journal_close(j);
	coll_free(&c);
	cr_assert_eq(verify(sdir, &count, NULL), 0);
	cr_assert_eq(count, 70);
	cr_assert_gt(count_segments(sdir, firsts, 200), nseg);
}

Test(journal, missing_middle_segment_is_a_gap)
{
	uint64_t firsts[200], bad = 0;
	char path[512], err[512];
	struct sbx_journal_opts o = { .state_dir = sdir, .segment_max = 1000 };
	struct sbx_journal *j = NULL;
	struct sbx_replay_info info;
	int nseg;

	make_journal(sdir, 40, 1000);
	nseg = count_segments(sdir, firsts, 200);
	cr_assert_gt(nseg, 3);
	seg_path(path, sizeof(path), sdir, firsts[2]);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(verify(sdir, NULL, &bad), -1);
	cr_assert_eq(bad, firsts[2]);
	cr_assert_eq(sbx_journal_open(&o, NULL, NULL, NULL, &info, &j, err, sizeof(err)), -1);
	cr_assert_null(j);
	cr_assert_not_null(strstr(err, "record seq"), "%s", err);

	/* Losing the first segment is caught too. */
	seg_path(path, sizeof(path), sdir, 1);
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(verify(sdir, NULL, &bad), -1);
	cr_assert_eq(bad, 1);
}

/* ----------------------------------------------------------- snapshots */

/* The test's "state": {"n":N}, then two more entries. */
static int make_state(struct sbx_snapshot_out *out, void *ctx)
{
	json_t *e[3] = { json_pack("{s:i}", "n", *(int *)ctx), json_pack("{s:s}", "grant", "a"),
			 json_pack("{s:s}", "grant", "b") };
	int rc = 0;

	for (int i = 0; i < 3; i++) {
		rc |= sbx_snapshot_put(out, e[i]);
		json_decref(e[i]);
	}
	return rc;
}

static json_int_t snap_n(const struct coll *c)
{
	cr_assert_not_null(c->snap, "no snapshot handed over");
	return json_integer_value(json_object_get(json_array_get(c->snap, 0), "n"));
}

Test(journal, snapshot_is_written_when_due_and_used)
{
	struct coll c;
	struct sbx_replay_info info;
	struct sbx_journal *j;
	char path[512];
	json_t *snap, *rec50 = NULL;
	int n = 50;
	struct stat st;

	coll_init(&c);
	j = jopen(sdir, 0, 40, &c, NULL);
	append_n(j, 1, 30);
	snprintf(path, sizeof(path), "%s/snapshot.json", sdir);
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, false), 0);
	cr_assert_neq(stat(path, &st), 0, "snapshot written before it was due");
	append_n(j, 31, 19);
	cr_assert_eq(sbx_journal_append(j, "grant.activated", "frank", NULL, NULL, &rec50), 0);
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, false), 0);
	cr_assert_eq(stat(path, &st), 0, "snapshot not written when due");
	append_n(j, 51, 10);
	n = 60;
	/* Not due again (10 < 40): the file still describes seq 50. */
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, false), 0);
	sbx_journal_close(j);
	coll_free(&c);

	snap = json_load_file(path, JSON_DISABLE_EOF_CHECK, NULL); /* the header line */
	cr_assert_not_null(snap);
	cr_assert_eq(json_integer_value(json_object_get(snap, "snapshot")), 2);
	cr_assert_eq(json_integer_value(json_object_get(snap, "seq")), 50);
	cr_assert_str_eq(json_string_value(json_object_get(snap, "hash")),
			 json_string_value(json_object_get(rec50, "hash")));
	cr_assert_str_eq(json_string_value(json_object_get(snap, "segment")), "000000000001.jsonl");
	json_decref(snap);
	json_decref(rec50);

	coll_init(&c);
	j = jopen(sdir, 0, 40, &c, &info);
	cr_assert(info.used_snapshot, "note: %s", info.snapshot_note);
	cr_assert_eq(info.snapshot_seq, 50);
	cr_assert_str_eq(info.snapshot_note, "");
	cr_assert_eq(info.records, 10);
	cr_assert_eq(info.last_seq, 60);
	cr_assert_eq(snap_n(&c), 50);
	cr_assert_eq(json_array_size(c.snap), 3);
	cr_assert_eq(info.snapshot_entries, 3);
	cr_assert_eq(rec_seq(json_array_get(c.recs, 0)), 51);
	/* Appending after a snapshot-based open continues the chain. */
	append_n(j, 61, 3);
	sbx_journal_close(j);
	coll_free(&c);
	cr_assert_eq(verify(sdir, NULL, NULL), 0);
}

/* Rewrite member key of snapshot.json's header line with v (stolen). */
static void edit_snapshot(const char *key, json_t *v)
{
	char path[512], *data, *nl, *h;
	size_t len;
	json_t *s;
	FILE *f;

	snprintf(path, sizeof(path), "%s/snapshot.json", sdir);
	data = slurp(path, &len);
	nl = strchr(data, '\n');
	cr_assert_not_null(nl);
	s = json_loadb(data, (size_t)(nl - data), 0, NULL);
	cr_assert_not_null(s);
	json_object_set_new(s, key, v);
	h = json_dumps(s, JSON_COMPACT | JSON_PRESERVE_ORDER);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "%s%s", h, nl);
	fclose(f);
	free(h);
	free(data);
	json_decref(s);
}

Test(journal, snapshot_that_does_not_match_is_ignored_with_a_note)
{
	struct coll c;
	struct sbx_replay_info info;
	struct sbx_journal *j;
	char path[512], good[4096];
	int n = 20, fd;
	ssize_t glen;
	const char *cases[] = { "hash", "offset", "offset1", "seq", "segment", "garbage", NULL };

	make_journal(sdir, 20, 0);
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, true), 0);
	append_n(j, 21, 5);
	sbx_journal_close(j);
	coll_free(&c);
	snprintf(path, sizeof(path), "%s/snapshot.json", sdir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	glen = read(fd, good, sizeof(good));
	close(fd);
	cr_assert_gt(glen, 0);

	for (int i = 0; cases[i]; i++) {
		spit(path, good, (size_t)glen);
		if (!strcmp(cases[i], "hash"))
			edit_snapshot("hash", json_string("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
		else if (!strcmp(cases[i], "offset"))
			edit_snapshot("offset", json_integer(0));
		else if (!strcmp(cases[i], "offset1"))
			edit_snapshot("offset", json_integer(1));
		else if (!strcmp(cases[i], "seq"))
			edit_snapshot("seq", json_integer(19));
		else if (!strcmp(cases[i], "segment"))
			edit_snapshot("segment", json_string("000000000009.jsonl"));
		else
			spit(path, "{\"seq\":", 7);
		coll_init(&c);
		j = jopen(sdir, 0, 0, &c, &info);
		cr_assert_not(info.used_snapshot, "case %s: used", cases[i]);
		cr_assert_not_null(strstr(info.snapshot_note, "snapshot.json ignored"), "case %s: note '%s'",
				   cases[i], info.snapshot_note);
		cr_assert_null(c.snap, "case %s: state handed over", cases[i]);
		cr_assert_eq(info.records, 25, "case %s", cases[i]);
		cr_assert_eq(rec_seq(json_array_get(c.recs, 0)), 1);
		sbx_journal_close(j);
		coll_free(&c);
	}

	/* The good snapshot is used. */
	spit(path, good, (size_t)glen);
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert(info.used_snapshot, "%s", info.snapshot_note);
	cr_assert_eq(info.records, 5);
	sbx_journal_close(j);
	coll_free(&c);
}

Test(journal, chain_is_checked_after_the_snapshot)
{
	struct coll c;
	struct sbx_journal *j;
	struct sbx_journal_opts o = { .state_dir = sdir };
	struct sbx_replay_info info;
	char path[512], err[512], *data, *p;
	size_t len;
	int n = 10;

	make_journal(sdir, 10, 0);
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, true), 0);
	append_n(j, 11, 5);
	sbx_journal_close(j);
	coll_free(&c);
	/* Change record 12's content (same length). */
	seg_path(path, sizeof(path), sdir, 1);
	data = slurp(path, &len);
	p = strstr(data, "{\"seq\":12,");
	cr_assert_not_null(p);
	p = strstr(p, "erin");
	p[0] = 'E';
	spit(path, data, len);
	free(data);
	j = NULL;
	cr_assert_eq(sbx_journal_open(&o, NULL, NULL, NULL, &info, &j, err, sizeof(err)), -1);
	cr_assert(info.used_snapshot);
	cr_assert_not_null(strstr(err, "record seq 12:"), "%s", err);
	cr_assert_not_null(strstr(err, "000000000001.jsonl:12)"), "%s", err);
}

/* A seal record as far as the journal is concerned: its event name. */
static void append_seal(struct sbx_journal *j)
{
	json_t *f = json_pack("{s:s, s:i}", "key_id", "0011223344556677", "epoch", 0);

	cr_assert_eq(sbx_journal_append(j, "journal.sealed", "sbx", f, NULL, NULL), 0);
	json_decref(f);
}

static void flip_in_record(const char *dir, uint64_t segfirst, const char *recstart)
{
	char path[512], *data, *p;
	size_t len;

	seg_path(path, sizeof(path), dir, segfirst);
	data = slurp(path, &len);
	p = strstr(data, recstart);
	cr_assert_not_null(p, "%s", recstart);
	p = strstr(p, "rin\"") - 1;   /* "erin" or "Erin": toggled back and forth */
	p[0] = p[0] == 'e' ? 'E' : 'e';
	spit(path, data, len);
	free(data);
}

Test(journal, start_up_checks_the_chain_from_the_seal_the_snapshot_names)
{
	struct sbx_journal_opts o = { .state_dir = sdir };
	struct sbx_replay_info info;
	struct sbx_journal *j;
	char err[512] = "", path[512], *data;
	uint64_t count = 0, bad = 0;
	struct coll c;
	size_t len;
	int n = 10;

	coll_init(&c);
	j = jopen(sdir, 2048, 0, &c, NULL);
	append_n(j, 1, 20);
	append_seal(j);                      /* seq 21, in a later segment */
	append_n(j, 22, 4);
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, true), 0);
	append_n(j, 26, 5);
	sbx_journal_close(j);
	coll_free(&c);
	snprintf(path, sizeof(path), "%s/snapshot.json", sdir);
	data = slurp(path, &len);
	cr_assert_not_null(strstr(data, "\"seal_seq\":21,\"seal_hash\":\""), "%.300s", data);
	free(data);

	/* A record before the seal is not re-read at start-up ... */
	flip_in_record(sdir, 1, "{\"seq\":3,");
	coll_init(&c);
	j = jopen(sdir, 2048, 0, &c, &info);
	cr_assert(info.used_snapshot, "%s", info.snapshot_note);
	cr_assert_eq(info.checked_from, 21);
	cr_assert_eq(info.records, 5);
	cr_assert_eq(rec_seq(json_array_get(c.recs, 0)), 26);
	sbx_journal_close(j);
	coll_free(&c);
	/* ... but the auditor's full check still finds it. */
	cr_assert_eq(sbx_journal_verify(sdir, &count, &bad, err, sizeof(err)), -1);
	cr_assert_eq(bad, 3, "%s", err);
	flip_in_record(sdir, 1, "{\"seq\":3,");

	/* A record after the seal stops the broker, before or after the
	 * snapshot's own seq. */
	for (int k = 0; k < 2; k++) {
		const char *rec = k ? "{\"seq\":28," : "{\"seq\":23,";
		uint64_t first = 0;
		char name[SBX_JR_SEG_NAME_MAX];
		DIR *d = NULL;
		struct dirent *de;

		/* Find the segment holding it. */
		snprintf(path, sizeof(path), "%s/journal", sdir);
		d = opendir(path);
		while ((de = readdir(d))) {
			uint64_t f = strtoull(de->d_name, NULL, 10);

			if (strstr(de->d_name, ".jsonl") && f <= (k ? 28u : 23u) && f > first)
				first = f;
		}
		closedir(d);
		sbx_jr_seg_name(first, name);
		flip_in_record(sdir, first, rec);
		j = NULL;
		cr_assert_eq(sbx_journal_open(&o, NULL, NULL, NULL, &info, &j, err, sizeof(err)), -1);
		cr_assert_null(j);
		cr_assert_not_null(strstr(err, k ? "record seq 28:" : "record seq 23:"), "%s", err);
		flip_in_record(sdir, first, rec);
	}

	/* The seal's own line changed: the snapshot is not used, and the
	 * chain is checked from seq 1 (which finds the change). */
	{
		uint64_t first = 0;
		DIR *d;
		struct dirent *de;
		char *p;

		snprintf(path, sizeof(path), "%s/journal", sdir);
		d = opendir(path);
		while ((de = readdir(d))) {
			uint64_t f = strtoull(de->d_name, NULL, 10);

			if (strstr(de->d_name, ".jsonl") && f <= 21 && f > first)
				first = f;
		}
		closedir(d);
		seg_path(path, sizeof(path), sdir, first);
		data = slurp(path, &len);
		p = strstr(strstr(data, "{\"seq\":21,"), "0011");
		p[0] = '9';
		spit(path, data, len);
		free(data);
		j = NULL;
		cr_assert_eq(sbx_journal_open(&o, NULL, NULL, NULL, &info, &j, err, sizeof(err)), -1);
		cr_assert_not_null(strstr(err, "record seq 21:"), "%s", err);
	}
}

Test(journal, chain_is_checked_before_the_snapshot_too)
{
	struct coll c;
	struct sbx_journal *j;
	struct sbx_journal_opts o = { .state_dir = sdir };
	struct sbx_replay_info info;
	char path[512], err[512], *data, *p;
	size_t len;
	int n = 10;

	make_journal(sdir, 10, 0);
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, true), 0);
	append_n(j, 11, 5);
	sbx_journal_close(j);
	coll_free(&c);
	seg_path(path, sizeof(path), sdir, 1);
	data = slurp(path, &len);
	p = strstr(strstr(data, "{\"seq\":3,"), "erin");
	p[0] = 'E';
	spit(path, data, len);
	j = NULL;
	cr_assert_eq(sbx_journal_open(&o, NULL, NULL, NULL, &info, &j, err, sizeof(err)), -1);
	cr_assert_null(j);
	cr_assert_not_null(strstr(err, "record seq 3:"), "%s", err);
	cr_assert_not_null(strstr(err, "000000000001.jsonl:3)"), "%s", err);

	/* Restored, the snapshot is used and only later records parsed. */
	p[0] = 'e';
	spit(path, data, len);
	free(data);
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert(info.used_snapshot, "%s", info.snapshot_note);
	cr_assert_eq(info.records, 5);
	cr_assert_eq(rec_seq(json_array_get(c.recs, 0)), 11);
	sbx_journal_close(j);
	coll_free(&c);
}

/* ------------------------------------------- snapshots in a child process */

static int failing_state(struct sbx_snapshot_out *out, void *ctx)
{
	(void)out;
	(void)ctx;
	return -1;
}

/* A child that never finishes by itself. */
static int endless_state(struct sbx_snapshot_out *out, void *ctx)
{
	(void)out;
	(void)ctx;
	for (;;)
		pause();
	return 0;
}

static bool exists(const char *name)
{
	char path[512];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", sdir, name);
	return stat(path, &st) == 0;
}

/* Poll until the child is done (the test's timeout is the bound). */
static int poll_done(struct sbx_journal *j, char *why, size_t whylen)
{
	int rc;

	while ((rc = sbx_journal_snapshot_poll(j, why, whylen)) == 0) {
		cr_assert(sbx_journal_snapshot_running(j));
		usleep(2000);
	}
	return rc;
}

static uint64_t header_seq(void)
{
	char path[512];
	json_t *h;
	uint64_t seq;

	snprintf(path, sizeof(path), "%s/snapshot.json", sdir);
	h = json_load_file(path, JSON_DISABLE_EOF_CHECK, NULL);
	cr_assert_not_null(h);
	seq = (uint64_t)json_integer_value(json_object_get(h, "seq"));
	json_decref(h);
	return seq;
}

Test(journal, a_snapshot_child_sees_the_state_as_it_was_at_fork)
{
	struct sbx_snapshot_stats st;
	struct sbx_replay_info info;
	struct sbx_journal *j;
	struct coll c;
	char why[256] = "";
	int n = 10;

	sbx_jr_thread_min_bytes = 0; /* the threaded scan beside the loader */
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	append_n(j, 1, 10);
	cr_assert_eq(sbx_journal_snapshot_start(j, make_state, &n, why, sizeof(why)), 1, "%s", why);
	cr_assert(sbx_journal_snapshot_running(j));
	cr_assert_geq(sbx_journal_snapshot_fd(j), 0, "a pidfd to wait on");
	/* The caller goes on while the child writes: its changes from here
	 * on are not the child's. */
	n = 99;
	append_n(j, 11, 5);
	cr_assert_eq(sbx_journal_snapshot_start(j, make_state, &n, why, sizeof(why)), 0,
		     "one child at a time");
	cr_assert_eq(sbx_journal_snapshot_wait(j, -1, why, sizeof(why)), 1, "%s", why);
	cr_assert_not(sbx_journal_snapshot_running(j));
	cr_assert_eq(sbx_journal_snapshot_fd(j), -1);
	sbx_journal_snapshot_last(j, &st);
	cr_assert_eq(st.seq, 10);
	cr_assert_eq(st.entries, 3);
	cr_assert_gt(st.bytes, 0);
	cr_assert_not(exists("snapshot.json.tmp"));
	sbx_journal_close(j);
	coll_free(&c);

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert(info.used_snapshot, "%s", info.snapshot_note);
	cr_assert_eq(info.snapshot_seq, 10);
	cr_assert_eq(snap_n(&c), 10, "the child wrote what it saw at fork");
	cr_assert_eq(info.records, 5);
	cr_assert_eq(rec_seq(json_array_get(c.recs, 0)), 11);
	sbx_journal_close(j);
	coll_free(&c);
	sbx_jr_thread_min_bytes = 4u << 20;
}

Test(journal, a_snapshot_is_named_only_once_its_seq_is_durable)
{
	struct sbx_journal *j;
	struct coll c;
	char path[512], why[256] = "", *data = NULL;
	size_t len = 0;
	int n = 7;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	sbx_journal_defer_commits(j, true);
	append_n(j, 1, 7);
	cr_assert_eq(sbx_journal_durable_seq(j), 0, "appends wait for a commit");
	cr_assert_eq(sbx_journal_snapshot_start(j, make_state, &n, why, sizeof(why)), 1, "%s", why);
	/* The child writes and syncs its file, then waits. */
	snprintf(path, sizeof(path), "%s/snapshot.json.tmp", sdir);
	for (;;) {
		FILE *f = fopen(path, "rb");

		if (f) {
			free(data);
			data = calloc(1, 4096);
			len = fread(data, 1, 4095, f);
			fclose(f);
			if (len && strstr(data, "{\"entries\":3}\n"))
				break;
		}
		usleep(2000);
	}
	free(data);
	cr_assert_eq(sbx_journal_snapshot_poll(j, why, sizeof(why)), 0, "%s", why);
	cr_assert(sbx_journal_snapshot_running(j), "it waits for seq 7 to be durable");
	cr_assert_not(exists("snapshot.json"));
	sbx_journal_commit(j);
	cr_assert_eq(sbx_journal_flush(j), 0);
	cr_assert_eq(poll_done(j, why, sizeof(why)), 1, "%s", why);
	cr_assert(exists("snapshot.json"));
	cr_assert_not(exists("snapshot.json.tmp"));
	cr_assert_eq(header_seq(), 7);
	sbx_journal_close(j);
	coll_free(&c);
}

Test(journal, a_failed_snapshot_child_says_why_and_leaves_the_old_one)
{
	struct sbx_replay_info info;
	struct sbx_journal *j;
	struct coll c;
	char why[256] = "";
	int n = 5, pidfd;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	append_n(j, 1, 5);
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, true), 0);
	append_n(j, 6, 5);

	/* The writer fails. */
	cr_assert_eq(sbx_journal_snapshot_start(j, failing_state, NULL, why, sizeof(why)), 1, "%s",
		     why);
	cr_assert_eq(sbx_journal_snapshot_wait(j, -1, why, sizeof(why)), -1);
	cr_assert_not_null(strstr(why, "snapshot at seq 10 not written: the state could not be written out"),
			   "%s", why);
	cr_assert_not(exists("snapshot.json.tmp"));
	cr_assert_eq(header_seq(), 5);
	cr_assert_not(sbx_journal_failed(j, NULL, 0), "a snapshot never fails the journal");

	/* The child is killed, from outside. */
	cr_assert_eq(sbx_journal_snapshot_start(j, endless_state, NULL, why, sizeof(why)), 1, "%s",
		     why);
	pidfd = sbx_journal_snapshot_fd(j);
	cr_assert_geq(pidfd, 0);
	cr_assert_eq(syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0), 0);
	cr_assert_eq(poll_done(j, why, sizeof(why)), -1);
	cr_assert_not_null(strstr(why, "killed by signal 9"), "%s", why);
	cr_assert_not(exists("snapshot.json.tmp"));
	cr_assert_eq(header_seq(), 5);

	/* The child is killed as stuck: not waited for, reaped like any. */
	cr_assert_eq(sbx_journal_snapshot_age_ms(j), -1);
	cr_assert_eq(sbx_journal_snapshot_start(j, endless_state, NULL, why, sizeof(why)), 1, "%s",
		     why);
	cr_assert_geq(sbx_journal_snapshot_age_ms(j), 0);
	cr_assert(sbx_journal_snapshot_kill(j));
	cr_assert_not(sbx_journal_snapshot_kill(j), "one signal is enough");
	cr_assert_eq(poll_done(j, why, sizeof(why)), -1);
	cr_assert_not_null(strstr(why, "killed by signal 9"), "%s", why);
	cr_assert_not(sbx_journal_snapshot_kill(j), "nothing left to kill");
	cr_assert_eq(header_seq(), 5);

	append_n(j, 11, 1);
	cr_assert_eq(sbx_journal_flush(j), 0);
	sbx_journal_close(j);
	coll_free(&c);
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert(info.used_snapshot, "%s", info.snapshot_note);
	cr_assert_eq(info.snapshot_seq, 5);
	cr_assert_eq(info.records, 6);
	sbx_journal_close(j);
	coll_free(&c);
}

Test(journal, a_slow_snapshot_is_stopped_at_its_deadline)
{
	struct sbx_journal *j;
	struct coll c;
	char why[256] = "";
	int n = 3;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	append_n(j, 1, 3);
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, true), 0);
	append_n(j, 4, 3);
	cr_assert_eq(sbx_journal_snapshot_start(j, endless_state, NULL, why, sizeof(why)), 1, "%s",
		     why);
	cr_assert_eq(sbx_journal_snapshot_wait(j, 50, why, sizeof(why)), -1);
	cr_assert_not_null(strstr(why, "took longer than 50 ms and was stopped"), "%s", why);
	cr_assert_not(sbx_journal_snapshot_running(j));
	cr_assert_not(exists("snapshot.json.tmp"));
	cr_assert_eq(header_seq(), 3);
	/* Closing with a child running stops it too. */
	cr_assert_eq(sbx_journal_snapshot_start(j, endless_state, NULL, why, sizeof(why)), 1, "%s",
		     why);
	sbx_journal_close(j);
	cr_assert_eq(header_seq(), 3);
	coll_free(&c);
}

Test(journal, a_snapshot_child_holds_none_of_the_callers_fds)
{
	struct sbx_journal *j;
	struct coll c;
	struct pollfd p;
	char why[256] = "";
	int pfd[2];

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	append_n(j, 1, 2);
	cr_assert_eq(pipe(pfd), 0);
	cr_assert_eq(sbx_journal_snapshot_start(j, endless_state, NULL, why, sizeof(why)), 1, "%s",
		     why);
	/* Had the child kept a copy of the write end, no EOF would come: a
	 * client of the broker would wait for a close that never happens. */
	close(pfd[1]);
	p.fd = pfd[0];
	p.events = POLLIN;
	cr_assert_eq(poll(&p, 1, 10000), 1, "the pipe's write end is still open somewhere");
	cr_assert(p.revents & POLLHUP);
	cr_assert(sbx_journal_snapshot_running(j));
	sbx_journal_snapshot_cancel(j);
	cr_assert_not(sbx_journal_snapshot_running(j));
	cr_assert_not(exists("snapshot.json.tmp"));
	close(pfd[0]);
	sbx_journal_close(j);
	coll_free(&c);
}

/* ------------------------------------------------- reading snapshots back */

Test(journal, a_snapshot_is_a_header_its_entries_and_an_end_line)
{
	struct sbx_journal *j;
	struct coll c;
	char path[512], *data, *line, *nl;
	const char *want[] = { "{\"n\":4}", "{\"grant\":\"a\"}", "{\"grant\":\"b\"}",
			       "{\"entries\":3}" };
	size_t len;
	int n = 4, i = -1;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	append_n(j, 1, 4);
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, true), 0);
	sbx_journal_close(j);
	coll_free(&c);
	snprintf(path, sizeof(path), "%s/snapshot.json", sdir);
	data = slurp(path, &len);
	cr_assert_eq(strncmp(data, "{\"snapshot\":2,\"seq\":4,\"hash\":\"", 30), 0, "%s", data);
	for (line = data; (nl = strchr(line, '\n')); line = nl + 1, i++) {
		*nl = '\0';
		if (i >= 0) {
			cr_assert_lt(i, 4, "too many lines");
			cr_assert_str_eq(line, want[i]);
		}
	}
	cr_assert_eq(i, 4);
	cr_assert_eq(*line, '\0', "the file ends with a newline");
	free(data);
}

/* Write a journal of 10 records with a snapshot at seq 10 (n = 10) and 2
 * records after it; good gets the snapshot's bytes. */
static size_t snapshot_fixture(char *good, size_t cap)
{
	struct sbx_journal *j;
	struct coll c;
	char path[512];
	ssize_t glen;
	int n = 10, fd;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	append_n(j, 1, 10);
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, true), 0);
	append_n(j, 11, 2);
	sbx_journal_close(j);
	coll_free(&c);
	snprintf(path, sizeof(path), "%s/snapshot.json", sdir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	glen = read(fd, good, cap);
	close(fd);
	cr_assert_gt(glen, 0);
	return (size_t)glen;
}

Test(journal, a_damaged_snapshot_is_ignored_with_a_note)
{
	static const struct {
		const char *name, *note;
		bool handed;    /* entries were handed over before it showed */
	} cases[] = {
		{ "cut", "cut off", false },
		{ "garbled", "entry 2 is not a JSON object", true },
		{ "count", "it holds 3 entries, its end line says 4", true },
		{ "format", "its format 3 is not 2", false },
		{ "old", "older one-document format", false },
		{ "empty", "no header line", false },
	};
	struct sbx_replay_info info;
	struct sbx_journal *j;
	struct coll c;
	char path[512], good[4096], bad[4096 + 256], *p;
	size_t glen = snapshot_fixture(good, sizeof(good)), blen;

	snprintf(path, sizeof(path), "%s/snapshot.json", sdir);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, good, glen);
		blen = glen;
		bad[blen] = '\0';
		if (!strcmp(cases[i].name, "cut")) {
			blen -= 3;
		} else if (!strcmp(cases[i].name, "garbled")) {
			p = strstr(bad, "{\"grant\":\"a\"}");
			memcpy(p, "{\"grant\":\"a\"]", 13);
		} else if (!strcmp(cases[i].name, "count")) {
			p = strstr(bad, "{\"entries\":3}");
			p[11] = '4';
		} else if (!strcmp(cases[i].name, "format")) {
			bad[12] = '3';
		} else if (!strcmp(cases[i].name, "old")) {
			blen = (size_t)snprintf(bad, sizeof(bad),
						"{\"seq\":10,\"hash\":\"%064d\",\"segment\":\"000000000001.jsonl\",\"offset\":0,\"state\":{}}\n",
						0);
		} else {
			blen = 0;
		}
		spit(path, bad, blen);
		coll_init(&c);
		j = jopen(sdir, 0, 0, &c, &info);
		cr_assert_not(info.used_snapshot, "case %s: used", cases[i].name);
		cr_assert_not_null(strstr(info.snapshot_note, "snapshot.json ignored ("),
				   "case %s: note '%s'", cases[i].name, info.snapshot_note);
		cr_assert_not_null(strstr(info.snapshot_note, cases[i].note), "case %s: note '%s'",
				   cases[i].name, info.snapshot_note);
		cr_assert_not_null(strstr(info.snapshot_note, "replayed from seq 1"), "case %s",
				   cases[i].name);
		cr_assert_eq(c.forgot, cases[i].handed ? 1 : 0, "case %s", cases[i].name);
		cr_assert_null(c.snap, "case %s: entries left behind", cases[i].name);
		cr_assert_eq(info.records, 12, "case %s", cases[i].name);
		cr_assert_eq(rec_seq(json_array_get(c.recs, 0)), 1, "case %s", cases[i].name);
		sbx_journal_close(j);
		coll_free(&c);
	}
	spit(path, good, glen);
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert(info.used_snapshot, "%s", info.snapshot_note);
	cr_assert_eq(info.snapshot_entries, 3);
	cr_assert_eq(info.records, 2);
	sbx_journal_close(j);
	coll_free(&c);
}

Test(journal, an_entry_the_caller_refuses_means_replay_from_seq_1)
{
	struct sbx_replay_info info;
	struct sbx_journal *j;
	struct coll c;
	char good[4096], err[512];
	int n = 12;

	snapshot_fixture(good, sizeof(good));
	/* With records after the snapshot, and (reload up to seq 10) without:
	 * the loader's verdict arrives at either point. */
	for (int threaded = 0; threaded < 2; threaded++) {
		sbx_jr_thread_min_bytes = threaded ? 0 : UINT64_MAX;
		coll_init(&c);
		c.refuse_at = 2;
		j = jopen(sdir, 0, 0, &c, &info);
		cr_assert_not(info.used_snapshot);
		cr_assert_not_null(strstr(info.snapshot_note, "entry 2 was refused: not this one"), "%s",
				   info.snapshot_note);
		cr_assert_eq(c.forgot, 1, "told to forget the entry it took");
		cr_assert_null(c.snap);
		cr_assert_eq(info.records, 12);
		coll_free(&c);

		coll_init(&c);
		c.refuse_at = 3;
		cr_assert_eq(sbx_journal_reload(j, 10, on_snap, on_rec, &c, err, sizeof(err)), 0, "%s",
			     err);
		cr_assert_eq(c.forgot, 1);
		cr_assert_null(c.snap);
		cr_assert_eq(json_array_size(c.recs), 10);
		coll_free(&c);
		sbx_journal_close(j);
	}
	sbx_jr_thread_min_bytes = 4u << 20;
	/* Unrefused, the same snapshot is used. */
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert(info.used_snapshot, "%s", info.snapshot_note);
	cr_assert_eq(snap_n(&c), 10);
	(void)n;
	sbx_journal_close(j);
	coll_free(&c);
}

/* ------------------------------------------------------------- reload */

Test(journal, reload_stops_at_max_seq)
{
	struct coll c;
	struct sbx_journal *j;
	char err[512];
	int n = 4;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	append_n(j, 1, 4);
	cr_assert_eq(sbx_journal_maybe_snapshot(j, make_state, &n, true), 0);
	append_n(j, 5, 6);
	cr_assert_eq(sbx_journal_flush(j), 0);
	coll_free(&c);

	coll_init(&c);
	cr_assert_eq(sbx_journal_reload(j, 7, on_snap, on_rec, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_not_null(c.snap, "snapshot (seq 4 <= 7) not used");
	cr_assert_eq(json_array_size(c.recs), 3);
	cr_assert_eq(rec_seq(json_array_get(c.recs, 2)), 7);
	coll_free(&c);

	coll_init(&c);
	cr_assert_eq(sbx_journal_reload(j, 3, on_snap, on_rec, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_null(c.snap, "snapshot past max_seq used");
	cr_assert_eq(json_array_size(c.recs), 3);
	coll_free(&c);

	coll_init(&c);
	cr_assert_eq(sbx_journal_reload(j, 0, on_snap, on_rec, &c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(json_array_size(c.recs), 0);
	coll_free(&c);

	coll_init(&c);
	cr_assert_eq(sbx_journal_reload(j, 11, on_snap, on_rec, &c, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "seq 11"), "%s", err);
	coll_free(&c);
	sbx_journal_close(j);
}

/* ----------------------------------------------------- offline queries */

static int count_cb(const json_t *rec, const char *line, size_t len, void *ctx)
{
	int *n = ctx;

	cr_assert_eq(line[0], '{');
	cr_assert_eq(line[len - 1], '}');
	cr_assert_eq(rec_seq(rec), (uint64_t)*n + 1);
	return ++*n == 7 ? 1 : 0;
}

Test(journal, foreach_iterates_in_order_and_stops)
{
	char err[256];
	int n = 0;

	make_journal(sdir, 12, 600);
	cr_assert_eq(sbx_journal_foreach(sdir, count_cb, &n, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(n, 7);
	cr_assert_eq(sbx_journal_foreach(tmpdir, count_cb, &n, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "no journal"), "%s", err);
}

/* ------------------------------------------------------------- tamper */

Test(journal, every_single_bit_flip_is_detected)
{
	struct sbx_journal_opts o = { .state_dir = sdir };
	char path[512], err[512];
	unsigned char *orig;
	uint64_t *line_of;
	size_t len;
	int fd;

	make_journal(sdir, 20, 0);
	seg_path(path, sizeof(path), sdir, 1);
	orig = (unsigned char *)slurp(path, &len);
	line_of = calloc(len, sizeof(*line_of));
	for (size_t i = 0, line = 1; i < len; i++) {
		line_of[i] = line;
		line += orig[i] == '\n';
	}
	fd = open(path, O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			unsigned char b = orig[i] ^ (unsigned char)(1u << bit);
			struct sbx_journal *j = NULL;
			struct sbx_replay_info info;
			uint64_t bad = 0;
			int rc;

			cr_assert_eq(pwrite(fd, &b, 1, (off_t)i), 1);
			rc = sbx_journal_verify(sdir, NULL, &bad, err, sizeof(err));
			cr_assert_eq(rc, -1, "flip of bit %d at byte %zu accepted by verify", bit, i);
			cr_assert_eq(bad, line_of[i], "byte %zu bit %d: bad seq %" PRIu64 ", want %" PRIu64 " (%s)",
				     i, bit, bad, line_of[i], err);

			/* The broker accepts only a flip of the final newline,
			 * as a torn tail that it cuts off.  (Open costs more
			 * than verify: every third byte and the whole last
			 * record.) */
			if (i % 3 && line_of[i] != line_of[len - 1])
				continue;
			rc = sbx_journal_open(&o, NULL, NULL, NULL, &info, &j, err, sizeof(err));
			if (i == len - 1) {
				cr_assert_eq(rc, 0, "final newline flip: %s", err);
				cr_assert(info.truncated);
				cr_assert_eq(info.last_seq, 19);
				sbx_journal_close(j);
				spit(path, (char *)orig, len);
			} else {
				cr_assert_eq(rc, -1, "flip of bit %d at byte %zu accepted by open", bit, i);
				cr_assert_not_null(strstr(err, "journal: record seq"), "%s", err);
			}
		}
		cr_assert_eq(pwrite(fd, &orig[i], 1, (off_t)i), 1);
	}
	close(fd);
	cr_assert_eq(verify(sdir, NULL, NULL), 0);
	free(line_of);
	free(orig);
}

Test(journal, verify_names_file_and_line)
{
	char path[512], err[512], *data;
	size_t len;
	uint64_t bad = 0;

	make_journal(sdir, 5, 0);
	seg_path(path, sizeof(path), sdir, 1);
	data = slurp(path, &len);
	*strstr(strstr(data, "{\"seq\":3,"), "erin") = 'X';
	spit(path, data, len);
	free(data);
	cr_assert_eq(sbx_journal_verify(sdir, NULL, &bad, err, sizeof(err)), -1);
	cr_assert_eq(bad, 3);
	cr_assert_not_null(strstr(err, "journal: record seq 3: hash mismatch"), "%s", err);
	cr_assert_not_null(strstr(err, "(journal/000000000001.jsonl:3)"), "%s", err);
}

/* ---------------------------------------------------------- torn tails */

struct cut_ctx {
	const char (*hashes)[SBX_JR_HEX + 1];
	uint64_t next;
};

static int cut_rec(const json_t *rec, void *ctx, char *err, size_t errlen)
{
	struct cut_ctx *c = ctx;
	const char *h = json_string_value(json_object_get(rec, "hash"));

	(void)err;
	(void)errlen;
	cr_assert_eq(rec_seq(rec), c->next, "got seq %" PRIu64 ", want %" PRIu64, rec_seq(rec), c->next);
	cr_assert(h && !strcmp(h, c->hashes[c->next]), "record %" PRIu64 " differs", c->next);
	c->next++;
	return 0;
}

struct cut_file {
	char *data;
	size_t len;
	size_t nlines;
	size_t *end;                    /* end[k] = offset after line k's '\n'; end[0] = 0 */
	char (*hashes)[SBX_JR_HEX + 1]; /* hashes[k] of record k */
};

static void cut_file_load(struct cut_file *f, const char *dir)
{
	char path[512];

	seg_path(path, sizeof(path), dir, 1);
	f->data = slurp(path, &f->len);
	f->end = calloc(f->len + 2, sizeof(*f->end));
	f->hashes = calloc(f->len / 100 + 2, sizeof(*f->hashes));
	f->nlines = 0;
	for (size_t i = 0; i < f->len; i++) {
		if (f->data[i] != '\n')
			continue;
		f->nlines++;
		f->end[f->nlines] = i + 1;
		memcpy(f->hashes[f->nlines], f->data + i - SBX_JR_HEX - 2, SBX_JR_HEX);
	}
}

static void cut_file_free(struct cut_file *f)
{
	free(f->data);
	free(f->end);
	free(f->hashes);
}

static int cut_scan_rec(json_t *rec, const char *line, size_t len, void *ctx, char *err,
			size_t errlen)
{
	(void)line;
	(void)len;
	return cut_rec(rec, ctx, err, errlen);
}

/*
 * Every cut offset of a 1,000-record journal, through the scanner that
 * open's replay uses (sbx_jr_scan in REPLAY mode: it decides what is a
 * torn tail and reports the cut instead of making it).  Replaying every
 * prefix from seq 1 would be quadratic, so each scan starts at the line
 * before the last complete one (with that line's prev), the way replay
 * resumes anywhere: the bytes from there on are exactly the ones a torn
 * tail can affect.  The prefix grows one byte at a time.  The next test
 * runs the real open, which also cuts, on many of these offsets.
 */
Test(journal, cut_at_every_offset_recovers_a_prefix)
{
	struct cut_file f;
	struct sbx_jr_seg seg = { .first = 1 };
	char jdir[512], path[512], err[512];
	int jfd, fd;
	size_t complete = 0;

	make_small_journal(sdir, 1000);
	cut_file_load(&f, sdir);
	cr_assert_eq(f.nlines, 1000);
	sbx_jr_seg_name(1, seg.name);
	snprintf(jdir, sizeof(jdir), "%s/journal", sdir);
	jfd = open(jdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	seg_path(path, sizeof(path), sdir, 1);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	cr_assert(jfd >= 0 && fd >= 0);

	for (size_t x = 0; x <= f.len; x++) {
		struct cut_ctx c = { .hashes = (const char (*)[SBX_JR_HEX + 1])f.hashes };
		struct sbx_jr_scan_opts o = { .mode = SBX_JR_REPLAY, .jdirfd = jfd, .segs = &seg,
					      .nsegs = 1, .max_seq = UINT64_MAX };
		struct sbx_jr_scan_result res;
		size_t s;
		int rc;

		while (complete < f.nlines && f.end[complete + 1] <= x)
			complete++;
		s = complete ? complete - 1 : 0;
		o.start_off = f.end[s];
		o.expect_seq = s + 1;
		if (s)
			memcpy(o.prev, f.hashes[s], SBX_JR_HEX + 1);
		else
			memset(o.prev, '0', SBX_JR_HEX);
		c.next = s + 1;
		rc = sbx_jr_scan(&o, cut_scan_rec, &c, &res, err, sizeof(err));
		cr_assert_eq(rc, 0, "cut at %zu: %s", x, err);
		cr_assert_eq(res.last_seq, complete, "cut at %zu", x);
		cr_assert_eq(c.next, complete + 1, "cut at %zu", x);
		cr_assert_eq(res.torn, x > f.end[complete], "cut at %zu", x);
		cr_assert_eq(res.end_off, f.end[complete], "cut at %zu", x);
		if (res.torn)
			cr_assert_eq(res.torn_bytes, x - f.end[complete]);
		if (x < f.len)
			cr_assert_eq(pwrite(fd, f.data + x, 1, (off_t)x), 1);
	}
	close(fd);
	close(jfd);
	cut_file_free(&f);
}

/* The real open (full replay, cutting, appending after the cut) at every
 * offset of a few records and around many record boundaries. */
Test(journal, open_cuts_a_torn_tail_and_appends_after_it)
{
	struct cut_file f;
	char path[512], dir[512];
	size_t *xs, nx = 0;

	make_journal(sdir, 1000, 0);
	cut_file_load(&f, sdir);
	cr_assert_eq(f.nlines, 1000);
	xs = calloc(f.len + 1, sizeof(*xs));
	for (size_t k = 1; k <= f.nlines; k++) {
		bool all = k == 1 || k == 2 || k == 1000;

		for (size_t x = f.end[k - 1]; x < f.end[k]; x++)
			if (all || (k % 50 == 0 && (x < f.end[k - 1] + 2 || x + 3 > f.end[k])))
				xs[nx++] = x;
	}
	xs[nx++] = f.len;
	snprintf(dir, sizeof(dir), "%s/cut", tmpdir);
	for (size_t i = 0; i < nx; i++) {
		size_t x = xs[i], complete = 0;
		struct coll c;
		struct sbx_replay_info info;
		struct sbx_journal *j;
		struct stat st;
		char *data;
		size_t len;

		while (complete < f.nlines && f.end[complete + 1] <= x)
			complete++;
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		cr_assert_eq(mkdir(dir, 0700), 0);
		cr_assert_lt(snprintf(path, sizeof(path), "%s/journal", dir), (int)sizeof(path));
		cr_assert_eq(mkdir(path, 0700), 0);
		seg_path(path, sizeof(path), dir, 1);
		spit(path, f.data, x);

		coll_init(&c);
		j = jopen(dir, 0, 0, &c, &info);
		cr_assert_eq(info.records, complete, "cut at %zu", x);
		cr_assert_eq(json_array_size(c.recs), complete);
		cr_assert_eq(info.truncated, x > f.end[complete], "cut at %zu", x);
		if (info.truncated) {
			cr_assert_eq(info.truncated_bytes, x - f.end[complete]);
			cr_assert_str_eq(info.truncated_file, "journal/000000000001.jsonl");
		}
		cr_assert_eq(stat(path, &st), 0);
		cr_assert_eq((size_t)st.st_size, f.end[complete], "cut at %zu: not cut back", x);
		if (i % 16 == 0 || x == f.len) {
			uint64_t count = 0;

			append_n(j, 5000, 1);
			sbx_journal_close(j);
			cr_assert_eq(verify(dir, &count, NULL), 0, "cut at %zu", x);
			cr_assert_eq(count, complete + 1);
			/* The prefix is untouched. */
			data = slurp(path, &len);
			cr_assert_eq(memcmp(data, f.data, f.end[complete]), 0);
			free(data);
		} else {
			sbx_journal_close(j);
		}
		coll_free(&c);
	}
	free(xs);
	cut_file_free(&f);
}

/* ------------------------------------------------------ operations */

/* 3 records alone, an operation of 3 (its second record nested in an
 * inner begin/end), an operation of 2. */
static void make_op_journal(const char *dir)
{
	struct coll c;
	struct sbx_journal *j;

	coll_init(&c);
	j = jopen(dir, 0, 0, &c, NULL);
	append_n(j, 1, 3);
	sbx_journal_op_begin(j);
	append_n(j, 4, 1);
	sbx_journal_op_begin(j);
	append_n(j, 5, 1);
	sbx_journal_op_end(j);
	append_n(j, 6, 1);
	sbx_journal_op_end(j);
	sbx_journal_op_begin(j);
	append_n(j, 7, 2);
	sbx_journal_op_end(j);
	cr_assert_eq(sbx_journal_flush(j), 0);
	sbx_journal_close(j);
	coll_free(&c);
}

Test(journal, operations_mark_all_but_their_last_record)
{
	static const bool continued[9] = { [4] = true, [5] = true, [7] = true };
	struct coll c;
	struct sbx_journal *j;
	struct sbx_replay_info info;
	uint64_t count = 0;
	json_t *f;

	make_op_journal(sdir);
	cr_assert_eq(verify(sdir, &count, NULL), 0);
	cr_assert_eq(count, 8);
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert_eq(json_array_size(c.recs), 8);
	cr_assert_not(info.truncated);
	for (size_t i = 0; i < 8; i++) {
		json_t *rec = json_array_get(c.recs, i);

		cr_assert_eq(rec_seq(rec), i + 1);
		cr_assert_eq(json_is_true(json_object_get(rec, "continued")), continued[i + 1],
			     "seq %zu", i + 1);
		cr_assert_eq(json_integer_value(json_object_get(rec, "id")), (json_int_t)i + 1);
	}
	/* The name is the journal's: nobody else may write it. */
	f = json_pack("{s:b}", "continued", 1);
	errno = 0;
	cr_assert_eq(sbx_journal_append(j, "x", "y", f, NULL, NULL), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_not(sbx_journal_failed(j, NULL, 0));
	json_decref(f);
	sbx_journal_close(j);
	coll_free(&c);
}

/* The hashes the journal says it wrote are the ones on disk, also for
 * the records of an operation, which it re-hashes when the operation
 * ends (the syslog sink sends these). */
Test(journal, recent_hashes_are_the_ones_on_disk)
{
	struct coll c;
	struct sbx_journal *j;
	char hash[65];

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	append_n(j, 1, 2);
	sbx_journal_op_begin(j);
	append_n(j, 3, 3);
	sbx_journal_op_end(j);
	cr_assert_eq(sbx_journal_flush(j), 0);
	cr_assert_eq(sbx_journal_recent_hash(j, 0, hash), -1, "seq 0 is nobody's");
	cr_assert_eq(sbx_journal_recent_hash(j, 6, hash), -1, "seq 6 is not assigned");
	sbx_journal_close(j);
	coll_free(&c);

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	cr_assert_eq(json_array_size(c.recs), 5);
	/* A new run knows only what it wrote itself. */
	cr_assert_eq(sbx_journal_recent_hash(j, 5, hash), -1);
	sbx_journal_close(j);
	coll_free(&c);

	/* Again, comparing with the replayed records. */
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	sbx_journal_op_begin(j);
	append_n(j, 6, 3);
	sbx_journal_op_end(j);
	cr_assert_eq(sbx_journal_flush(j), 0);
	{
		char want[3][65];

		for (uint64_t seq = 6; seq <= 8; seq++)
			cr_assert_eq(sbx_journal_recent_hash(j, seq, want[seq - 6]), 0, "seq %d",
				     (int)seq);
		sbx_journal_close(j);
		coll_free(&c);
		coll_init(&c);
		j = jopen(sdir, 0, 0, &c, NULL);
		cr_assert_eq(json_array_size(c.recs), 8);
		for (size_t i = 5; i < 8; i++) {
			const char *disk = json_string_value(json_object_get(json_array_get(c.recs, i),
									     "hash"));

			cr_assert_str_eq(want[i - 5], disk, "seq %zu", i + 1);
		}
	}
	sbx_journal_close(j);
	coll_free(&c);
}

/* Nothing of an open operation reaches the disk, and a flush inside one
 * says it would wait forever instead of doing so. */
Test(journal, an_open_operation_is_held_back)
{
	struct coll c;
	struct sbx_journal *j;
	struct pollfd p;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	sbx_journal_op_begin(j);
	append_n(j, 1, 2);
	errno = 0;
	cr_assert_eq(sbx_journal_flush(j), -1);
	cr_assert_eq(errno, EDEADLK);
	p.fd = sbx_journal_event_fd(j);
	p.events = POLLIN;
	cr_assert_eq(poll(&p, 1, 100), 0, "the writer wrote part of an open operation");
	cr_assert_eq(sbx_journal_durable_seq(j), 0);
	sbx_journal_op_end(j);
	cr_assert_eq(sbx_journal_flush(j), 0);
	cr_assert_eq(sbx_journal_durable_seq(j), 2);
	sbx_journal_close(j);
	coll_free(&c);
}

/* Every cut offset from the first operation on: a start-up replays whole
 * operations only, cuts the rest off the file, and the chain goes on. */
Test(journal, an_unfinished_operation_is_cut_at_every_offset)
{
	struct cut_file f;
	char path[512], dir[512];

	make_op_journal(sdir);
	cut_file_load(&f, sdir);
	cr_assert_eq(f.nlines, 8);
	snprintf(dir, sizeof(dir), "%s/cut", tmpdir);
	for (size_t x = f.end[3]; x <= f.len; x++) {
		size_t keep = x >= f.end[8] ? 8 : x >= f.end[6] ? 6 : 3;
		struct sbx_replay_info info;
		struct sbx_journal *j;
		struct coll c;
		struct stat st;
		uint64_t count = 0;

		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		cr_assert_eq(mkdir(dir, 0700), 0);
		cr_assert_lt(snprintf(path, sizeof(path), "%s/journal", dir), (int)sizeof(path));
		cr_assert_eq(mkdir(path, 0700), 0);
		seg_path(path, sizeof(path), dir, 1);
		spit(path, f.data, x);

		coll_init(&c);
		j = jopen(dir, 0, 0, &c, &info);
		cr_assert_eq(info.records, keep, "cut at %zu", x);
		cr_assert_eq(info.last_seq, keep, "cut at %zu", x);
		cr_assert_eq(json_array_size(c.recs), keep, "cut at %zu", x);
		cr_assert_eq(info.truncated, x > f.end[keep], "cut at %zu", x);
		if (info.truncated)
			cr_assert_eq(info.truncated_bytes, x - f.end[keep], "cut at %zu", x);
		cr_assert_eq(stat(path, &st), 0);
		cr_assert_eq((size_t)st.st_size, f.end[keep], "cut at %zu: not cut back", x);
		append_n(j, 100, 1);
		sbx_journal_close(j);
		coll_free(&c);
		cr_assert_eq(verify(dir, &count, NULL), 0, "cut at %zu", x);
		cr_assert_eq(count, keep + 1, "cut at %zu", x);
	}
	cut_file_free(&f);
}

/* An operation that began a segment and never ended leaves that segment
 * empty, and the next record starts there again. */
Test(journal, an_unfinished_operation_at_a_segment_start)
{
	struct coll c;
	struct sbx_journal *j;
	struct sbx_replay_info info;
	char path[512];
	uint64_t firsts[8], count = 0;
	struct stat st;
	size_t len;
	char *data;

	coll_init(&c);
	/* A 1-byte segment limit: every record outside an operation rotates. */
	j = jopen(sdir, 1, 0, &c, NULL);
	append_n(j, 1, 2);
	sbx_journal_op_begin(j);
	append_n(j, 3, 3);
	sbx_journal_op_end(j);
	sbx_journal_close(j);
	coll_free(&c);
	cr_assert_eq(count_segments(sdir, firsts, 8), 3);
	cr_assert_eq(firsts[2], 3);
	/* Tear the operation's last line. */
	seg_path(path, sizeof(path), sdir, 3);
	data = slurp(path, &len);
	cr_assert_eq(truncate(path, (off_t)(len - 10)), 0);
	free(data);

	coll_init(&c);
	j = jopen(sdir, 1, 0, &c, &info);
	cr_assert_eq(info.last_seq, 2);
	cr_assert_eq(info.records_cut, 2);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_size, 0);
	append_n(j, 10, 1);
	sbx_journal_close(j);
	coll_free(&c);
	cr_assert_eq(verify(sdir, &count, NULL), 0);
	cr_assert_eq(count, 3);
}

Test(journal, nul_filled_tail_is_torn)
{
	char path[512], zeros[8192] = { 0 };
	struct coll c;
	struct sbx_replay_info info;
	struct sbx_journal *j;
	uint64_t bad = 0;
	size_t len;
	char *data;
	int fd;

	make_journal(sdir, 5, 0);
	seg_path(path, sizeof(path), sdir, 1);
	data = slurp(path, &len);
	free(data);
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	cr_assert_eq(write(fd, zeros, sizeof(zeros)), (ssize_t)sizeof(zeros));
	close(fd);
	cr_assert_eq(verify(sdir, NULL, &bad), -1);
	cr_assert_eq(bad, 6);
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert(info.truncated);
	cr_assert_eq(info.truncated_bytes, sizeof(zeros));
	cr_assert_eq(info.records, 5);
	sbx_journal_close(j);
	coll_free(&c);
	cr_assert_eq(verify(sdir, NULL, NULL), 0);

	/* An all-NUL line that does end in '\n' (a zeroed record) too. */
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	zeros[100] = '\n';
	cr_assert_eq(write(fd, zeros, 101), 101);
	close(fd);
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert(info.truncated);
	cr_assert_eq(info.truncated_bytes, 101);
	sbx_journal_close(j);
	coll_free(&c);
	cr_assert_eq(verify(sdir, NULL, NULL), 0);
}

Test(journal, complete_bad_line_before_the_end_is_corruption)
{
	char path[512], err[512];
	struct sbx_journal_opts o = { .state_dir = sdir };
	struct sbx_journal *j = NULL;
	int fd;

	make_journal(sdir, 5, 0);
	seg_path(path, sizeof(path), sdir, 1);
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	cr_assert_eq(write(fd, "{\"seq\":6,\"garbage\"}\n", 20), 20);
	close(fd);
	cr_assert_eq(sbx_journal_open(&o, NULL, NULL, NULL, NULL, &j, err, sizeof(err)), -1);
	cr_assert_not_null(strstr(err, "journal: record seq 6: "), "%s", err);
	cr_assert_not_null(strstr(err, "000000000001.jsonl:6)"), "%s", err);
}

/* ------------------------------------------------------- lock, failure */

Test(journal, second_open_fails_while_locked)
{
	struct coll c;
	struct sbx_journal *a, *b = NULL;
	struct sbx_journal_opts o = { .state_dir = sdir };
	char err[512] = "";

	coll_init(&c);
	a = jopen(sdir, 0, 0, &c, NULL);
	cr_assert_eq(sbx_journal_open(&o, NULL, NULL, NULL, NULL, &b, err, sizeof(err)), -1);
	cr_assert_null(b);
	cr_assert_not_null(strstr(err, sdir), "%s", err);
	cr_assert_not_null(strstr(err, "in use"), "%s", err);
	sbx_journal_close(a);
	cr_assert_eq(sbx_journal_open(&o, NULL, NULL, NULL, NULL, &b, err, sizeof(err)), 0, "%s", err);
	sbx_journal_close(b);
	coll_free(&c);
}

/* In a child with RLIMIT_FSIZE: the writer's write fails with EFBIG. */
static int write_failure_child(int report_fd)
{
	struct coll c;
	struct sbx_journal *j;
	struct rlimit rl = { 4096, 4096 };
	struct pollfd p;
	char why[256], err[512];
	uint64_t durable;
	int i;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, NULL);
	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl))
		return 10;
	/* Five records a batch: the failing write leaves whole records of
	 * its batch in the file unless the writer cuts them. */
	sbx_journal_defer_commits(j, true);
	for (i = 0; i < 200; i++) {
		json_t *f = sample_fields(i);
		int rc = sbx_journal_append(j, "request.created", "erin", f, NULL, NULL);

		json_decref(f);
		if (rc || (i % 5 == 4 && sbx_journal_flush(j)))
			break;
	}
	if (i == 200)
		return 11;
	if (!sbx_journal_failed(j, why, sizeof(why)))
		return 12;
	if (!strstr(why, "write to journal/000000000001.jsonl failed: File too large") ||
	    !strstr(why, "the journal was cut back to seq"))
		return 13;
	if (sbx_journal_append(j, "x", "y", NULL, NULL, NULL) != -1 || sbx_journal_flush(j) != -1)
		return 14;
	p.fd = sbx_journal_event_fd(j);
	p.events = POLLIN;
	if (poll(&p, 1, 0) != 1)
		return 15;
	durable = sbx_journal_durable_seq(j);
	if (durable == 0 || durable >= sbx_journal_last_seq(j))
		return 16;
	coll_free(&c);
	coll_init(&c);
	if (sbx_journal_reload(j, durable, on_snap, on_rec, &c, err, sizeof(err)) ||
	    json_array_size(c.recs) != durable)
		return 17;
	sbx_journal_close(j);
	coll_free(&c);
	if (write(report_fd, &durable, sizeof(durable)) != sizeof(durable))
		return 18;
	return 0;
}

Test(journal, write_failure_fails_the_journal_for_good)
{
	struct coll c;
	struct sbx_replay_info info;
	struct sbx_journal *j;
	uint64_t durable = 0, count = 0;
	int pfd[2], status = 0;
	pid_t pid;

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(pfd[0]);
		_exit(write_failure_child(pfd[1]));
	}
	close(pfd[1]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	cr_assert_eq(read(pfd[0], &durable, sizeof(durable)), (ssize_t)sizeof(durable));
	close(pfd[0]);

	/* What the child was told is durable is there, and nothing else:
	 * the writer cut the failed batch itself, whole records and all. */
	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert_eq(info.last_seq, durable);
	cr_assert_eq(durable % 5, 0, "durable %" PRIu64 " is not a batch boundary", durable);
	cr_assert_not(info.truncated, "%" PRIu64 " bytes were left to cut", info.truncated_bytes);
	sbx_journal_close(j);
	coll_free(&c);
	cr_assert_eq(verify(sdir, &count, NULL), 0);
	cr_assert_eq(count, durable);
}

/* ---------------------------------------------------- threaded replay */

Test(journal, threaded_replay_matches_single_threaded)
{
	struct coll c1, c2;
	struct sbx_journal *j;
	struct sbx_replay_info info;
	char path[512];
	uint64_t count = 0, bad = 0;
	char *data;
	size_t len;

	make_journal(sdir, 3000, 200000);
	coll_init(&c1);
	j = jopen(sdir, 0, 0, &c1, &info);
	sbx_journal_close(j);
	sbx_jr_thread_min_bytes = 0;
	coll_init(&c2);
	j = jopen(sdir, 0, 0, &c2, &info);
	sbx_journal_close(j);
	cr_assert_eq(info.records, 3000);
	cr_assert(json_equal(c1.recs, c2.recs));
	cr_assert_eq(verify(sdir, &count, NULL), 0);
	cr_assert_eq(count, 3000);
	coll_free(&c1);
	coll_free(&c2);

	/* Corruption deep inside is still reported at the right seq. */
	{
		uint64_t firsts[64], in = 1;
		int n = count_segments(sdir, firsts, 64);

		cr_assert_gt(n, 2);
		for (int i = 0; i < n; i++)
			if (firsts[i] <= 777)
				in = firsts[i];
		seg_path(path, sizeof(path), sdir, in);
	}
	data = slurp(path, &len);
	*strstr(strstr(data, "{\"seq\":777,"), "erin") = 'X';
	spit(path, data, len);
	free(data);
	cr_assert_eq(verify(sdir, NULL, &bad), -1);
	cr_assert_eq(bad, 777);
	sbx_jr_thread_min_bytes = 4u << 20;
}

static int fail_at_7(const json_t *rec, void *ctx, char *err, size_t errlen)
{
	int *n = ctx;

	(*n)++;
	if (rec_seq(rec) == 7) {
		snprintf(err, errlen, "state: cannot apply record 7");
		return -1;
	}
	return 0;
}

Test(journal, callback_error_aborts_open)
{
	struct sbx_journal_opts o = { .state_dir = sdir };

	make_journal(sdir, 3000, 100000);
	for (int threaded = 0; threaded < 2; threaded++) {
		struct sbx_journal *j = NULL;
		char err[512] = "";
		int n = 0;

		sbx_jr_thread_min_bytes = threaded ? 0 : UINT64_MAX;
		cr_assert_eq(sbx_journal_open(&o, NULL, fail_at_7, &n, NULL, &j, err, sizeof(err)), -1);
		cr_assert_null(j);
		cr_assert_eq(n, 7, "threaded %d: %d calls", threaded, n);
		cr_assert_str_eq(err, "state: cannot apply record 7");
	}
	sbx_jr_thread_min_bytes = 4u << 20;
	/* Nothing was cut or locked: a later open works. */
	make_journal(sdir, 0, 100000);
	cr_assert_eq(verify(sdir, NULL, NULL), 0);
}

/* ------------------------------------------------ fast JSON == jansson */

static void same_as_jansson(const char *s, size_t n)
{
	json_error_t je;
	json_t *want = json_loadb(s, n, 0, &je);
	json_t *got = sbx_jr_parse_fast(s, n);

	if (got) {
		char *a, *b;

		cr_assert_not_null(want, "fast path accepted what jansson rejects: %.*s", (int)n, s);
		a = json_dumps(got, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
		b = json_dumps(want, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
		cr_assert_str_eq(a, b, "input %.*s", (int)n, s);
		cr_assert(json_equal(got, want));
		free(a);
		free(b);
	}
	json_decref(got);
	json_decref(want);
}

Test(journal, fast_parser_agrees_with_jansson)
{
	static const char *cases[] = {
		"{}", "[]", "{\"a\":1}", " { \"a\" : [ 1 , -2 , 0 , -0 ] } ", "{\"a\":1,\"a\":2,\"b\":3}",
		"{\"s\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"}", "{\"s\":\"\\u00e9\"}", "{\"x\":1.5}",
		"{\"x\":1e3}", "{\"x\":01}", "{\"x\":123456789012345678}", "{\"x\":1234567890123456789}",
		"{\"x\":-9223372036854775808}", "{\"x\":99999999999999999999}", "{\"x\":tru}",
		"{\"x\":true,\"y\":false,\"z\":null}", "{\"x\":truex}", "{\"x\":1}x", "{\"x\":1",
		"{\"x\" 1}", "{\"x\":[1,]}", "{\"x\":[,1]}", "{,}", "{\"a\":\"\x01\"}",
		"{\"a\":\"\xc3\xa9\"}", "{\"a\":\"\xff\"}", "{\"\":{\"\":[[[[]]]]}}", "\"str\"", "12",
		"{\"a\":\"unterminated}", "{\"a\":\"bad\\q\"}", "{\"k\\n\":1}", "{\"x\":-}",
		"{\"x\":--1}", "{\"x\":[1 2]}", "{\"x\":{\"y\":{\"z\":[true,{\"w\":\"\"}]}}}",
		NULL,
	};
	char buf[512];
	unsigned seed = 12345;

	for (int i = 0; cases[i]; i++)
		same_as_jansson(cases[i], strlen(cases[i]));
	same_as_jansson("{\"a\":1}\0", 8);
	/* Random single-byte mutations of a realistic record. */
	for (int round = 0; round < 20000; round++) {
		const char *rec = "{\"seq\":12,\"time\":\"2026-11-28T00:09:54.123456Z\",\"event\":\"request.created\","
				  "\"actor\":\"erin\",\"id\":-123,\"l\":[1,{\"a\":null}],\"t\":true,\"r\":\"a\\\"b\\\\c\","
				  "\"prev\":\"00\",\"hash\":\"ff\"}";
		size_t n = strlen(rec);
		int flips = 1 + round % 3;
		static const char alphabet[] = "{}[]\":,\\ -0123456789.eEtrufalsn\x01\x80\xc3";

		memcpy(buf, rec, n);
		for (int k = 0; k < flips; k++) {
			seed = seed * 1103515245u + 12345u;
			buf[(seed >> 8) % n] = alphabet[(seed >> 20) % (sizeof(alphabet) - 1)];
		}
		same_as_jansson(buf, n);
	}
}

/* ------------------------------------------------------------ single records */

/* A record made by itself is byte for byte what the journal writes with
 * the same seq, time and prev, and checks as the journal checks it. */
Test(journal, a_record_made_alone_is_the_journal_line)
{
	struct coll c;
	struct sbx_replay_info info;
	struct sbx_journal *j;
	json_t *f = json_pack("{s:i, s:s, s:s}", "id", 7, "user", "erin", "reason", "del \x7f here");
	json_t *out = NULL, *rec = NULL;
	char path[512], *data, *line = NULL, hash[65], hash2[65], err[256];
	int64_t t = 1800000000123456;
	size_t len = 0, flen;
	uint64_t seq = 0;

	coll_init(&c);
	j = jopen(sdir, 0, 0, &c, &info);
	cr_assert_eq(sbx_journal_append_at(j, t, "request.created", "erin", f, &seq, &out), 0);
	cr_assert_eq(seq, 1);
	cr_assert_eq(sbx_journal_flush(j), 0);
	sbx_journal_close(j);
	coll_free(&c);
	cr_assert_str_eq(json_string_value(json_object_get(out, "time")),
			 "2027-01-15T08:00:00.123456Z");

	cr_assert_eq(sbx_record_make(1, t, "request.created", "erin", f, SBX_RECORD_GENESIS, &line,
				     &len, hash), 0);
	seg_path(path, sizeof(path), sdir, 1);
	data = slurp(path, &flen);
	cr_assert_eq(flen, len + 1, "file %zu bytes, record %zu", flen, len);
	cr_assert_eq(memcmp(data, line, len), 0, "%s\n%s", data, line);

	cr_assert_eq(sbx_record_check(line, len, 1, SBX_RECORD_GENESIS, hash2, &rec, err,
				      sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(hash, hash2);
	cr_assert_str_eq(json_string_value(json_object_get(rec, "user")), "erin");
	cr_assert_str_eq(json_string_value(json_object_get(rec, "hash")), hash);
	json_decref(rec);
	free(data);
	free(line);
	json_decref(out);
	json_decref(f);
}

Test(journal, a_record_check_names_what_is_wrong)
{
	json_t *f = json_pack("{s:i}", "id", 1);
	char *line = NULL, hash[65], other[65], err[256];
	size_t len = 0;

	cr_assert_eq(sbx_record_make(5, 1800000000000000, "grant.revoked", "frank", f,
				     SBX_RECORD_GENESIS, &line, &len, hash), 0);
	cr_assert_eq(sbx_record_check(line, len, 5, NULL, other, NULL, err, sizeof(err)), 0);

	cr_assert_eq(sbx_record_check(line, len, 6, NULL, other, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "record seq 6: malformed"), "%s", err);

	memset(other, 'a', 64);
	other[64] = '\0';
	cr_assert_eq(sbx_record_check(line, len, 5, other, hash, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "prev does not match the hash of seq 4"), "%s", err);

	/* one changed byte of the body: the hash says so */
	line[30] ^= 1;
	cr_assert_eq(sbx_record_check(line, len, 5, NULL, other, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "hash mismatch"), "%s", err);
	line[30] ^= 1;

	/* a line with a newline in it is not one record */
	line[40] = '\n';
	cr_assert_eq(sbx_record_check(line, len, 5, NULL, other, NULL, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not one line"), "%s", err);
	free(line);

	/* reserved names and bad arguments are refused */
	json_object_set_new(f, "seq", json_integer(9));
	errno = 0;
	cr_assert_eq(sbx_record_make(5, 1, "x.y", "a", f, SBX_RECORD_GENESIS, &line, &len, hash), -1);
	cr_assert_eq(errno, EINVAL);
	cr_assert_eq(sbx_record_make(0, 1, "x.y", "a", NULL, SBX_RECORD_GENESIS, &line, &len, hash),
		     -1);
	cr_assert_eq(sbx_record_make(1, 1, "x.y", "a", NULL, "nothex", &line, &len, hash), -1);
	json_decref(f);
}

/* The text check verify uses (journal_lite.c) vouches only for what
 * jansson accepts too, with the same members: mutate real record lines
 * byte by byte and compare. */
Test(journal, the_text_check_never_accepts_what_jansson_refuses)
{
	static const char pool[] = "\"\\{}[],:0123456789.eE-+tfnu \t/xa\x7f\x80\x01";
	const char *bases[] = {
		"{\"seq\":7,\"time\":\"2026-11-28T00:45:41.786269Z\",\"event\":\"request.created\",\"actor\":\"erin\",\"id\":1,\"user\":\"erin\",\"role\":\"sandbox-admin\",\"duration\":3600,\"reason\":\"debugging \\\"the\\\" pipeline\\u00e9\",\"ticket\":null,\"nested\":{\"a\":[1,2,{\"b\":false}],\"c\":-12},\"prev\":\"49d0f6fba1001d408c622b36ec9960b1ca0865c65ea3841005b289886faffc49\",\"hash\":\"5ad48dda1ad39a651ef28782e567d053210b972ab60755482d5b1583afe1592c\"}",
		"{\"seq\":7,\"time\":\"2026-11-28T00:45:41.786269Z\",\"event\":\"access.checked\",\"actor\":\"sbx\",\"user\":\"erin\",\"outcome\":\"allowed\",\"fleet_hash\":\"x\",\"fleet_seq\":3,\"prev\":\"49d0f6fba1001d408c622b36ec9960b1ca0865c65ea3841005b289886faffc49\",\"hash\":\"5ad48dda1ad39a651ef28782e567d053210b972ab60755482d5b1583afe1592c\"}",
	};
	unsigned accepted = 0, seed = 12345;

	for (size_t b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
		size_t len = strlen(bases[b]);
		char *line = malloc(len + 1);

		for (int round = 0; round < 40000; round++) {
			struct sbx_jr_lite lite;
			char what[320];
			json_t *rec;
			int flips = 1 + round % 3;

			memcpy(line, bases[b], len + 1);
			for (int k = 0; k < flips; k++) {
				/* Leave {"seq":7, and the tail alone: the chain check owns them. */
				size_t at = 9 + (size_t)(rand_r(&seed) % (unsigned)(len - 9 - SBX_JR_TAIL));

				line[at] = pool[(size_t)rand_r(&seed) % (sizeof(pool) - 1)];
			}
			if (!sbx_jr_lite_check(line, len, 7, &lite))
				continue;
			accepted++;
			rec = sbx_jr_check_parsed(line, len, 7, true, what, sizeof(what));
			cr_assert_not_null(rec, "the text check accepted what jansson refuses (%s): %s",
					   what, line);
			cr_assert_eq(strlen(json_string_value(json_object_get(rec, "event"))), lite.event_len,
				     "%s", line);
			cr_assert_eq(memcmp(json_string_value(json_object_get(rec, "time")), lite.time,
					    lite.time_len), 0, "%s", line);
			cr_assert_eq(json_object_get(rec, "fleet_hash") != NULL, lite.has_fleet_hash,
				     "%s", line);
			json_decref(rec);
		}
		/* The unmutated line is plain enough for the fast path. */
		{
			struct sbx_jr_lite lite;

			cr_assert(sbx_jr_lite_check(bases[b], len, 7, &lite), "%s", bases[b]);
		}
		free(line);
	}
	cr_assert_gt(accepted, 1000, "the mutations were too harsh to test anything");
}
