/*
 * The journal as it is read back (journal/, broker/state.c): the input,
 * after one byte of flags, becomes journal/000000000001.jsonl of a fresh
 * state dir, and goes through
 *   - sbx_journal_verify (the auditor's check) and sbx_journal_foreach;
 *   - the broker's start-up replay, sbx_jr_replay (what sbx_journal_open
 *     runs): the snapshot into sbx_state_from_json and every record after
 *     it into sbx_state_apply of a fresh state; with flag 8 the whole
 *     sbx_journal_open (lock, torn tail cut off, writer thread started)
 *     and sbx_journal_close instead, which costs a thread per input;
 *   - the record parser: sbx_jr_parse_fast must agree with jansson
 *     (sbx_jr_parse's fallback) whenever it answers, on the whole input
 *     and on each line.
 * Flags (first byte):
 *   1  re-chain: give each line that has the record's tail shape the
 *      prev and hash it must have, so mutated records get past the hash
 *      chain to the parser and to sbx_state_apply;
 *   2  the first line is snapshot.json (the state dir's snapshot);
 *   4  scan on the helper thread (sbx_jr_thread_min_bytes = 1);
 *   8  sbx_journal_open and close instead of sbx_jr_replay.
 */
#include "fuzz.h"

#include "journal.h"
#include "journal_int.h"
#include "verify.h"
#include "state.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINES 64

static char state_dir[PATH_MAX];
static char journal_dir[PATH_MAX + 16];
static struct sbx_jr_sha sha;
static int sdirfd = -1, jdirfd = -1;
static uint64_t default_thread_min;

static void remove_dir(const char *path)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz: could not remove %s\n", path);
}

static void cleanup(void)
{
	sbx_jr_sha_free(&sha);
	if (sdirfd >= 0)
		close(sdirfd);
	if (jdirfd >= 0)
		close(jdirfd);
	if (state_dir[0])
		remove_dir(state_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *base = fuzz_tmp_base();

	(void)argc;
	(void)argv;
	snprintf(state_dir, sizeof(state_dir), "%s/sbx-fuzz-journal-XXXXXX", base);
	FUZZ_CHECK(mkdtemp(state_dir) != NULL, "mkdtemp %s", state_dir);
	snprintf(journal_dir, sizeof(journal_dir), "%s/journal", state_dir);
	FUZZ_CHECK(mkdir(journal_dir, 0700) == 0, "mkdir %s", journal_dir);
	FUZZ_CHECK(sbx_jr_sha_init(&sha) == 0, "sha");
	sdirfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	jdirfd = open(journal_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FUZZ_CHECK(sdirfd >= 0 && jdirfd >= 0, "open %s", state_dir);
	default_thread_min = sbx_jr_thread_min_bytes;
	atexit(cleanup);
	return 0;
}

/* Empty a directory (not recursing: the journal dir has only files). */
static void empty_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	FUZZ_CHECK(d != NULL, "opendir %s", path);
	while ((e = readdir(d))) {
		if (e->d_type == DT_DIR)
			continue;
		unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

static void write_file(const char *dir, const char *name, const char *p, size_t n)
{
	char path[PATH_MAX + 64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FUZZ_CHECK(fd >= 0, "open %s", path);
	FUZZ_CHECK(n == 0 || write(fd, p, n) == (ssize_t)n, "write %s", path);
	close(fd);
}

/* Give every line shaped like a record the prev and hash the chain wants. */
static void rechain(char *p, size_t n)
{
	char prev[SBX_JR_HEX + 1], hash[SBX_JR_HEX + 1];
	char *line = p, *end = p + n;

	memset(prev, '0', SBX_JR_HEX);
	prev[SBX_JR_HEX] = '\0';
	while (line < end) {
		char *nl = memchr(line, '\n', (size_t)(end - line));
		size_t len = (size_t)((nl ? nl : end) - line);
		char *t = line + len - SBX_JR_TAIL;

		if (len >= 8 + SBX_JR_TAIL && memcmp(t, ",\"prev\":\"", 9) == 0 &&
		    memcmp(t + 9 + SBX_JR_HEX, "\",\"hash\":\"", 10) == 0 &&
		    memcmp(t + 19 + 2 * SBX_JR_HEX, "\"}", 2) == 0) {
			memcpy(t + 9, prev, SBX_JR_HEX);
			FUZZ_CHECK(sbx_jr_line_hash(&sha, line, len, hash) == 0, "hash");
			memcpy(t + 19 + SBX_JR_HEX, hash, SBX_JR_HEX);
			memcpy(prev, hash, sizeof(prev));
		}
		if (!nl)
			break;
		line = nl + 1;
	}
}

/* The fast parser answers only what jansson would answer the same. */
static void check_parse(const char *s, size_t n)
{
	json_t *fast = sbx_jr_parse_fast(s, n), *slow;
	json_error_t je;
	char err[256];

	slow = json_loadb(s, n, 0, &je);
	if (fast) {
		char *a, *b;

		FUZZ_CHECK(slow != NULL, "the fast parser took what jansson refuses: %s", je.text);
		FUZZ_CHECK(json_equal(fast, slow), "the fast parser's value differs from jansson's");
		a = json_dumps(fast, JSON_COMPACT | JSON_ENCODE_ANY);
		b = json_dumps(slow, JSON_COMPACT | JSON_ENCODE_ANY);
		FUZZ_CHECK(a && b && strcmp(a, b) == 0, "key order differs: %s / %s", a, b);
		free(a);
		free(b);
	}
	json_decref(fast);
	fast = sbx_jr_parse(s, n, err, sizeof(err));
	FUZZ_CHECK(!fast == !slow, "sbx_jr_parse and jansson disagree on taking it");
	FUZZ_CHECK(!fast || json_equal(fast, slow), "sbx_jr_parse's value differs from jansson's");
	json_decref(fast);
	json_decref(slow);
}

static int count_rec(const json_t *rec, const char *line, size_t linelen, void *ctx)
{
	FUZZ_CHECK(json_is_object(rec) && line && linelen > 0, "foreach hands over a record");
	(*(size_t *)ctx)++;
	return 0;
}

static int replay_record(const json_t *rec, void *ctx, char *err, size_t errlen)
{
	return sbx_state_apply(ctx, rec, err, errlen) < 0 ? -1 : 0;
}

static int replay_snapshot(const json_t *state, void *ctx, char *err, size_t errlen)
{
	return sbx_state_from_json(ctx, state, err, errlen) < 0 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sbx_journal_opts o = { .state_dir = state_dir };
	struct sbx_journal *j = NULL;
	struct sbx_replay_info info;
	struct sbx_state *st;
	uint64_t count = 0, bad = 0;
	char err[1024], *text, *seg, *line;
	size_t n, nrec = 0, lines = 0;
	int flags, rc;

	if (size < 1)
		return 0;
	flags = data[0];
	n = size - 1;
	text = malloc(n + 1);
	FUZZ_CHECK(text != NULL, "out of memory");
	if (n)
		memcpy(text, data + 1, n);
	text[n] = '\0';
	seg = text;

	empty_dir(journal_dir);
	empty_dir(state_dir);
	if (flags & 2) {
		char *nl = memchr(text, '\n', n);
		size_t first = nl ? (size_t)(nl - text) : n;

		write_file(state_dir, "snapshot.json", text, first);
		seg = text + (nl ? first + 1 : first);
	}
	n -= (size_t)(seg - text);
	if (flags & 1)
		rechain(seg, n);
	write_file(journal_dir, "000000000001.jsonl", seg, n);
	sbx_jr_thread_min_bytes = (flags & 4) ? 1 : default_thread_min;

	rc = sbx_journal_verify(state_dir, &count, &bad, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || (rc == -1 && err[0]), "verify rc %d without a reason", rc);
	{
		/* The one-pass check (text check instead of a parse) agrees: the
		 * same records, and a journal it passes the full parse passes too
		 * (it may refuse more: a journal.pruned record it cannot use). */
		struct sbx_verify_opts vo = { .state_dir = state_dir };
		struct sbx_verify_result vr;
		char verr[1024] = "";
		int vrc = sbx_journal_audit(&vo, &vr, verr, sizeof(verr));

		FUZZ_CHECK(vrc == 0 || (vrc == -1 && verr[0]), "audit rc %d without a reason", vrc);
		FUZZ_CHECK(vrc != 0 || (rc == 0 && vr.records == count),
			   "the one-pass check passed what the full check refused (%s)", err);
		FUZZ_CHECK(rc != 0 || vrc == 0 || strstr(verr, "journal.pruned"),
			   "the one-pass check refused what the full check passed: %s", verr);
	}
	rc = sbx_journal_foreach(state_dir, count_rec, &nrec, err, sizeof(err));
	FUZZ_CHECK(rc == 0 || rc == -1, "foreach rc %d", rc);

	st = sbx_state_new();
	FUZZ_CHECK(st != NULL, "out of memory");
	if (flags & 8) {
		rc = sbx_journal_open(&o, replay_snapshot, replay_record, st, &info, &j, err,
				      sizeof(err));
		FUZZ_CHECK(rc == 0 || (rc == -1 && err[0] && !j), "open rc %d without a reason", rc);
		if (rc == 0)
			sbx_journal_close(j);
	} else {
		struct sbx_jr_scan_result res;
		struct sbx_jr_seg *segs = NULL;
		size_t nsegs = 0;

		rc = sbx_jr_replay(sdirfd, jdirfd, UINT64_MAX, replay_snapshot, replay_record, st,
				   &info, &segs, &nsegs, &res, err, sizeof(err));
		FUZZ_CHECK(rc == 0 || (rc == -1 && err[0]), "replay rc %d without a reason", rc);
		free(segs);
	}
	sbx_state_free(st);

	check_parse(seg, n);
	for (line = seg; line < seg + n && lines < MAX_LINES; lines++) {
		char *nl = memchr(line, '\n', (size_t)(seg + n - line));
		size_t len = (size_t)((nl ? nl : seg + n) - line);

		check_parse(line, len);
		if (!nl)
			break;
		line = nl + 1;
	}
	free(text);
	return 0;
}
