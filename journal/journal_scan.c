/*
 * Reading the journal: segment listing, line checks (textual hash chain),
 * parsing, and the snapshot-aware replay used by open/reload.
 *
 * The chain is checked on the exact bytes of each line, never on a
 * re-serialization (docs/audit.md, "Canonical form").  Big scans run a
 * helper thread that reads, hashes and parses while the caller's thread
 * runs the callbacks; small ones (tests, snapshot tails) stay on one
 * thread.
 */
#include "config.h"

#include "journal_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1u << 20) /* > SBX_JOURNAL_LINE_MAX + 1, so a whole line fits */
#define QUEUE_MAX 4

uint64_t sbx_jr_thread_min_bytes = 4u << 20;

static const char zero_hash[SBX_JR_HEX + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

/* ---------------------------------------------------------------- SHA-256 */

int sbx_jr_sha_init(struct sbx_jr_sha *s)
{
	memset(s, 0, sizeof(*s));
	s->ctx = EVP_MD_CTX_new();
	if (!s->ctx)
		return -1;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	/* Fetch once: EVP_sha256() would re-fetch on every init in 3.x,
	 * which doubles the cost of hashing a short record. */
	s->md = EVP_MD_fetch(NULL, "SHA256", NULL);
	s->use = s->md;
#else
	s->use = EVP_sha256();
#endif
	if (!s->use) {
		sbx_jr_sha_free(s);
		return -1;
	}
	return 0;
}

void sbx_jr_sha_free(struct sbx_jr_sha *s)
{
	if (!s)
		return;
	EVP_MD_CTX_free(s->ctx);
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	EVP_MD_free(s->md);
#endif
	memset(s, 0, sizeof(*s));
}

static void to_hex(const unsigned char *d, size_t n, char *hex)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		hex[2 * i] = digits[d[i] >> 4];
		hex[2 * i + 1] = digits[d[i] & 15];
	}
	hex[2 * n] = '\0';
}

static int sha_parts(struct sbx_jr_sha *s, const void *a, size_t an, const void *b, size_t bn,
		     char hex[SBX_JR_HEX + 1])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int dl = 0;

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	if (EVP_DigestInit_ex2(s->ctx, s->use, NULL) != 1)
		return -1;
#else
	if (EVP_DigestInit_ex(s->ctx, s->use, NULL) != 1)
		return -1;
#endif
	if (EVP_DigestUpdate(s->ctx, a, an) != 1 || (bn && EVP_DigestUpdate(s->ctx, b, bn) != 1) ||
	    EVP_DigestFinal_ex(s->ctx, d, &dl) != 1 || dl != SBX_JR_HEX / 2)
		return -1;
	to_hex(d, dl, hex);
	return 0;
}

int sbx_jr_line_hash(struct sbx_jr_sha *s, const char *line, size_t len,
		     char hex[SBX_JR_HEX + 1])
{
	if (len <= SBX_JR_HASH_TAIL)
		return -1;
	return sha_parts(s, line, len - SBX_JR_HASH_TAIL, "}", 1, hex);
}

int sbx_jr_sha_hex(struct sbx_jr_sha *s, const void *p, size_t n, char hex[SBX_JR_HEX + 1])
{
	return sha_parts(s, p, n, NULL, 0, hex);
}

/* --------------------------------------------------------------- segments */

void sbx_jr_seg_name(uint64_t first, char name[SBX_JR_SEG_NAME_MAX])
{
	snprintf(name, SBX_JR_SEG_NAME_MAX, "%012" PRIu64 ".jsonl", first);
}

/* "<12..20 digits>.jsonl" -> first seq; anything else is not a segment. */
static int parse_seg_name(const char *name, uint64_t *first)
{
	uint64_t v = 0;
	size_t n = 0;

	while (name[n] >= '0' && name[n] <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(name[n] - '0');
		n++;
	}
	if (n < 12 || n > 20 || strcmp(name + n, ".jsonl") != 0 || v == 0)
		return -1;
	*first = v;
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct sbx_jr_seg *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

int sbx_jr_list_segments(int jdirfd, struct sbx_jr_seg **segs, size_t *nsegs, char *err,
			 size_t errlen)
{
	struct sbx_jr_seg *v = NULL, *nv;
	size_t n = 0, cap = 0;
	DIR *d = NULL;
	struct dirent *e;
	int fd = -1, ret = -1;

	fd = openat(jdirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(d = fdopendir(fd))) {
		snprintf(err, errlen, "journal: cannot list journal/: %s", strerror(errno));
		goto out;
	}
	fd = -1;
	while ((errno = 0, e = readdir(d))) {
		uint64_t first;

		if (parse_seg_name(e->d_name, &first))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				snprintf(err, errlen, "journal: out of memory");
				goto out;
			}
			v = nv;
		}
		v[n].first = first;
		/* parse_seg_name allows at most 26 characters. */
		memcpy(v[n].name, e->d_name, strnlen(e->d_name, sizeof(v[n].name) - 1));
		v[n].name[strnlen(e->d_name, sizeof(v[n].name) - 1)] = '\0';
		n++;
	}
	if (errno) {
		snprintf(err, errlen, "journal: cannot list journal/: %s", strerror(errno));
		goto out;
	}
	if (n)
		qsort(v, n, sizeof(*v), seg_cmp);
	for (size_t i = 1; i < n; i++) {
		if (v[i].first == v[i - 1].first) {
			snprintf(err, errlen, "journal: journal/%s and journal/%s both start at seq %" PRIu64,
				 v[i - 1].name, v[i].name, v[i].first);
			goto out;
		}
	}
	*segs = v;
	*nsegs = n;
	v = NULL;
	ret = 0;
out:
	if (d)
		closedir(d);
	if (fd >= 0)
		close(fd);
	free(v);
	return ret;
}

/* ---------------------------------------------------------------- scanner */

/*
 * Work is split so that no parsed record ever crosses a thread or waits in
 * a queue.  The producer reads, splits lines, checks their text (seq,
 * shape, hash, prev) and hands over batches of checked lines; the consumer
 * parses one line, calls back, and frees it before the next.  Parsing in
 * batches was slower than parsing at all: glibc's malloc sorts its bins
 * when thousands of small records are freed at once, and records freed on
 * another thread than their allocator's go through arena locks.
 */

struct ent {
	size_t off;             /* in buf */
	size_t len;             /* without '\n' */
	uint64_t foff;          /* file offset, for error messages */
	uint64_t seq;           /* 0 when not checked (FOREACH) */
};

struct batch {
	struct batch *next;
	char *buf;
	size_t bufcap;
	struct ent *ent;
	size_t n, cap;
	size_t seg;             /* all of a batch's lines are from one segment */
};

struct scanner {
	const struct sbx_jr_scan_opts *o;
	struct sbx_jr_scan_result *res;
	struct sbx_jr_sha sha;
	bool chain;
	size_t seg;             /* current segment; == nsegs when past the end */
	int fd;
	uint64_t fsize;         /* size when opened */
	uint64_t foff;          /* file offset of the next read */
	char *carry;            /* an incomplete line from the previous read */
	size_t carry_len, carry_cap;
	uint64_t carry_off;
	bool nul_run;           /* inside an over-long run of NUL bytes */
	uint64_t nul_start;
	uint64_t expect;
	char prev[SBX_JR_HEX + 1];
	bool done;
	int status;
	char err[512];

	/* producer -> consumer */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *qhead, *qtail;
	size_t qlen;
	struct batch *spare;    /* consumed batches, for the producer to reuse */
	size_t nspare;
	bool cancel;
	bool finished;
};

static void batch_free(struct batch *b)
{
	if (!b)
		return;
	free(b->ent);
	free(b->buf);
	free(b);
}

/* Buffers are allocated once per scan, not once per batch. */
static struct batch *spare_get(struct scanner *sc)
{
	struct batch *b;

	pthread_mutex_lock(&sc->mu);
	b = sc->spare;
	if (b) {
		sc->spare = b->next;
		sc->nspare--;
		b->next = NULL;
		b->n = 0;
	}
	pthread_mutex_unlock(&sc->mu);
	return b;
}

static void spare_put(struct scanner *sc, struct batch *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&sc->mu);
	if (sc->nspare <= QUEUE_MAX) {
		b->next = sc->spare;
		sc->spare = b;
		sc->nspare++;
		b = NULL;
	}
	pthread_mutex_unlock(&sc->mu);
	batch_free(b);
}

/* 1-based line number of the line starting at off (only on errors). */
static uint64_t line_number(int fd, uint64_t off)
{
	char buf[65536];
	uint64_t pos = 0, lines = 1;

	while (pos < off) {
		size_t want = off - pos < sizeof(buf) ? (size_t)(off - pos) : sizeof(buf);
		ssize_t r = pread(fd, buf, want, (off_t)pos);

		if (r <= 0)
			break;
		for (ssize_t i = 0; i < r; i++)
			lines += buf[i] == '\n';
		pos += (uint64_t)r;
	}
	return lines;
}

static uint64_t line_number_at(int jdirfd, const char *name, uint64_t off)
{
	int fd = openat(jdirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	uint64_t n;

	if (fd < 0)
		return 0;
	n = line_number(fd, off);
	close(fd);
	return n;
}

static void __attribute__((format(printf, 3, 4)))
sc_fail(struct scanner *sc, uint64_t off, const char *fmt, ...)
{
	char what[320];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(sc->err, sizeof(sc->err), "journal: record seq %" PRIu64 ": %s (journal/%s:%" PRIu64 ")",
		 sc->expect, what, sc->o->segs[sc->seg].name, line_number(sc->fd, off));
	sc->res->bad_seq = sc->expect;
	sc->status = -1;
	sc->done = true;
}

static void sc_io_fail(struct scanner *sc, const char *what)
{
	snprintf(sc->err, sizeof(sc->err), "journal: %s journal/%s: %s", what,
		 sc->o->segs[sc->seg].name, strerror(errno));
	sc->res->bad_seq = sc->expect;
	sc->status = -1;
	sc->done = true;
}

bool sbx_jr_is_hex64(const char *p)
{
	for (int i = 0; i < SBX_JR_HEX; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return false;
	return true;
}

/* `{"seq":N,` at the start; returns N or 0. */
uint64_t sbx_jr_leading_seq(const char *line, size_t len)
{
	static const char pre[] = "{\"seq\":";
	uint64_t v = 0;
	size_t i = sizeof(pre) - 1, start = i;

	if (len < i + 2 || memcmp(line, pre, i) != 0 || line[i] == '0')
		return 0;
	while (i < len && line[i] >= '0' && line[i] <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return 0;
		v = v * 10 + (uint64_t)(line[i] - '0');
		i++;
	}
	if (i == start || i - start > 20 || i >= len || line[i] != ',')
		return 0;
	return v;
}

bool sbx_jr_tail_ok(const char *line, size_t len)
{
	const char *t;

	if (len < 8 + SBX_JR_TAIL)
		return false;
	/* The hex digits need no check of their own: they must equal a
	 * computed hash (ours or the previous record's) byte for byte. */
	t = line + len - SBX_JR_TAIL;
	return memcmp(t, ",\"prev\":\"", 9) == 0 &&
	       memcmp(t + 9 + SBX_JR_HEX, "\",\"hash\":\"", 10) == 0 &&
	       memcmp(t + 19 + 2 * SBX_JR_HEX, "\"}", 2) == 0;
}

static bool str_member(json_t *rec, const char *key, const char *want, size_t wantlen)
{
	json_t *v = json_object_get(rec, key);

	if (!json_is_string(v))
		return false;
	return !want || (json_string_length(v) == wantlen && memcmp(json_string_value(v), want, wantlen) == 0);
}

static bool all_nul(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static bool last_segment(const struct scanner *sc)
{
	return sc->seg + 1 == sc->o->nsegs;
}

/* A trailing piece without its '\n' (or an all-NUL last line) at off. */
static void sc_torn(struct scanner *sc, uint64_t off, uint64_t bytes)
{
	if (!last_segment(sc)) {
		if (sc->o->mode != SBX_JR_FOREACH)
			sc_fail(sc, off, "segment ends in the middle of a line");
		return; /* FOREACH skips it; later segments follow */
	}
	switch (sc->o->mode) {
	case SBX_JR_VERIFY:
		sc_fail(sc, off, "torn final line (%" PRIu64 " bytes without a terminating newline)",
			bytes);
		return;
	case SBX_JR_REPLAY:
		sc->res->torn = true;
		sc->res->torn_bytes = bytes;
		sc->res->end_seg = sc->seg;
		sc->res->end_off = off;
		break;
	case SBX_JR_FOREACH:
		break;
	}
	sc->done = true;
}

static int add_ent(struct scanner *sc, struct batch *b, const char *line, size_t len,
		   uint64_t off, uint64_t seq)
{
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		struct ent *e = realloc(b->ent, cap * sizeof(*e));

		if (!e) {
			sc_fail(sc, off, "out of memory");
			return -1;
		}
		b->ent = e;
		b->cap = cap;
	}
	b->ent[b->n].off = (size_t)(line - b->buf);
	b->ent[b->n].len = len;
	b->ent[b->n].foff = off;
	b->ent[b->n].seq = seq;
	b->n++;
	b->seg = sc->seg;
	return 0;
}

/* Check one complete line (without '\n') at file offset off: its text
 * and the chain.  Parsing is the consumer's (see sbx_jr_check_parsed). */
static void sc_line(struct scanner *sc, struct batch *b, const char *line, size_t len, uint64_t off)
{
	char hash[SBX_JR_HEX + 1];
	const char *claimed, *prev;
	uint64_t seq = 0;

	if (len && line[0] == '\0' && all_nul(line, len) && last_segment(sc) &&
	    off + len + 1 == sc->fsize) {
		sc_torn(sc, off, len + 1);
		return;
	}
	if (len > SBX_JOURNAL_LINE_MAX) {
		sc_fail(sc, off, "line is longer than %u bytes", SBX_JOURNAL_LINE_MAX);
		return;
	}
	if (sc->chain) {
		seq = sbx_jr_leading_seq(line, len);
		if (!seq || !sbx_jr_tail_ok(line, len)) {
			sc_fail(sc, off, "malformed record (not {\"seq\":N,...,\"prev\":...,\"hash\":...})");
			return;
		}
		if (seq != sc->expect) {
			sc_fail(sc, off, "seq is %" PRIu64 ", expected %" PRIu64, seq, sc->expect);
			return;
		}
		claimed = line + len - SBX_JR_HEX - 2;
		prev = claimed - 10 - SBX_JR_HEX;
		if (sbx_jr_line_hash(&sc->sha, line, len, hash)) {
			sc_fail(sc, off, "cannot compute SHA-256");
			return;
		}
		if (memcmp(hash, claimed, SBX_JR_HEX) != 0) {
			sc_fail(sc, off, "hash mismatch: the record's bytes hash to %.12s..., it says %.12s...",
				hash, claimed);
			return;
		}
		if (memcmp(prev, sc->prev, SBX_JR_HEX) != 0) {
			sc_fail(sc, off, "prev does not match the hash of seq %" PRIu64 " (chain broken)",
				sc->expect - 1);
			return;
		}
	}
	if (sc->chain && sbx_jr_line_event_is(line, len, SBX_JR_SEAL_EVENT)) {
		struct sbx_jr_anchor *a = &sc->res->seal;

		a->seq = seq;
		memcpy(a->hash, hash, sizeof(hash));
		snprintf(a->segment, sizeof(a->segment), "%s", sc->o->segs[sc->seg].name);
		a->off = off;
	}
	/* Records the snapshot already holds: checked, never parsed. */
	if ((!sc->chain || seq > sc->o->parse_after) && add_ent(sc, b, line, len, off, seq))
		return;
	sc->res->end_seg = sc->seg;
	sc->res->end_off = off + len + 1;
	if (sc->chain) {
		memcpy(sc->prev, hash, sizeof(hash));
		sc->res->last_seq = seq;
		memcpy(sc->res->last_hash, hash, sizeof(hash));
		sc->res->last_seg = sc->seg;
		sc->res->last_off = off;
		sc->expect = seq + 1;
		if (seq >= sc->o->max_seq)
			sc->done = true;
	}
}

/* Open segment sc->seg; false when done (error or past the end). */
static bool sc_open_seg(struct scanner *sc)
{
	const struct sbx_jr_scan_opts *o = sc->o;
	bool mid = sc->seg == o->start_seg && o->start_off > 0;
	struct stat st;

	if (sc->seg >= o->nsegs) {
		sc->done = true;
		return false;
	}
	if (sc->chain && !mid && o->segs[sc->seg].first != sc->expect) {
		snprintf(sc->err, sizeof(sc->err),
			 "journal: record seq %" PRIu64 ": missing (the next segment, journal/%s, starts at seq %" PRIu64 ")",
			 sc->expect, o->segs[sc->seg].name, o->segs[sc->seg].first);
		sc->res->bad_seq = sc->expect;
		sc->status = -1;
		sc->done = true;
		return false;
	}
	sc->fd = openat(o->jdirfd, o->segs[sc->seg].name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (sc->fd < 0) {
		sc_io_fail(sc, "cannot open");
		return false;
	}
	if (fstat(sc->fd, &st)) {
		sc_io_fail(sc, "cannot stat");
		return false;
	}
	sc->fsize = (uint64_t)st.st_size;
	sc->foff = sc->seg == o->start_seg ? o->start_off : 0;
	sc->carry_len = 0;
	sc->carry_off = sc->foff;
	sc->nul_run = false;
	return true;
}

/* End of the current segment reached. */
static void sc_eof(struct scanner *sc)
{
	if (sc->nul_run)
		sc_torn(sc, sc->nul_start, sc->foff - sc->nul_start);
	else if (sc->carry_len)
		sc_torn(sc, sc->carry_off, sc->carry_len);
	if (sc->done)
		return;
	close(sc->fd);
	sc->fd = -1;
	sc->seg++;
	if (sc->seg >= sc->o->nsegs)
		sc->done = true;
}

/* Keep p[0..n) (a line without its '\n' yet) for the next read. */
static int sc_keep(struct scanner *sc, const char *p, size_t n, uint64_t off)
{
	if (n > SBX_JOURNAL_LINE_MAX) {
		if (all_nul(p, n)) {
			sc->nul_run = true;
			sc->nul_start = off;
			sc->carry_len = 0;
			return 0;
		}
		sc_fail(sc, off, "line is longer than %u bytes", SBX_JOURNAL_LINE_MAX);
		return -1;
	}
	if (n > sc->carry_cap) {
		size_t cap = n < 4096 ? 4096 : n;
		char *c = realloc(sc->carry, cap);

		if (!c) {
			sc_fail(sc, off, "out of memory");
			return -1;
		}
		sc->carry = c;
		sc->carry_cap = cap;
	}
	if (n)
		memcpy(sc->carry, p, n);
	sc->carry_len = n;
	sc->carry_off = off;
	return 0;
}

/* A buffer for need bytes; b is reused while it holds no lines. */
static struct batch *sc_buffer(struct scanner *sc, struct batch *b, size_t need)
{
	char *nb;

	if (!b)
		b = spare_get(sc);
	if (!b && !(b = calloc(1, sizeof(*b))))
		goto oom;
	if (b->bufcap < need) {
		nb = realloc(b->buf, need);
		if (!nb)
			goto oom;
		b->buf = nb;
		b->bufcap = need;
	}
	return b;
oom:
	batch_free(b);
	sc_fail(sc, sc->foff, "out of memory");
	return NULL;
}

/* Produce the next batch of checked lines; NULL when none (check done).
 * A segment is read up to its size when it was opened: buffers fit the
 * data (small scans stay cheap) and a writer's later appends are not
 * mistaken for a torn tail halfway through. */
static struct batch *sc_next(struct scanner *sc)
{
	struct batch *b = NULL;

	while (!sc->done) {
		size_t n, pos = 0, want;
		uint64_t base;
		ssize_t r;
		char *nl;

		if (sc->fd < 0 && !sc_open_seg(sc))
			break;
		if (sc->foff >= sc->fsize) {
			sc_eof(sc);
			if (b && b->n)
				break;
			continue;
		}
		want = CHUNK - sc->carry_len; /* carry <= LINE_MAX < CHUNK */
		if (sc->fsize - sc->foff < want)
			want = (size_t)(sc->fsize - sc->foff);
		b = sc_buffer(sc, b, sc->carry_len + want);
		if (!b)
			break;
		n = sc->nul_run ? 0 : sc->carry_len;
		if (n)
			memcpy(b->buf, sc->carry, n);
		do {
			r = pread(sc->fd, b->buf + n, want, (off_t)sc->foff);
		} while (r < 0 && errno == EINTR);
		if (r < 0) {
			sc_io_fail(sc, "cannot read");
			break;
		}
		if (r == 0) { /* shrank under us */
			sc->fsize = sc->foff;
			continue;
		}
		sc->foff += (uint64_t)r;
		if (sc->nul_run) {
			if (!all_nul(b->buf, (size_t)r)) {
				sc_fail(sc, sc->nul_start, "line is longer than %u bytes", SBX_JOURNAL_LINE_MAX);
				break;
			}
			continue;
		}
		n += (size_t)r;
		base = sc->carry_off;
		while (!sc->done && (nl = memchr(b->buf + pos, '\n', n - pos))) {
			size_t len = (size_t)(nl - (b->buf + pos));

			sc_line(sc, b, b->buf + pos, len, base + pos);
			pos += len + 1;
		}
		if (!sc->done && sc_keep(sc, b->buf + pos, n - pos, base + pos))
			break;
		if (b->n)
			break;
	}
	if (b && !b->n) {
		spare_put(sc, b);
		b = NULL;
	}
	return b;
}

/* The consumer's half of a record's checks: it parses, and the parsed
 * record must agree with the text the producer checked. */
json_t *sbx_jr_check_parsed(const char *line, size_t len, uint64_t seq, bool chain,
			    char *what, size_t whatlen)
{
	char perr[200] = "";
	json_t *rec = sbx_jr_parse(line, len, perr, sizeof(perr));
	json_t *s;

	if (!rec) {
		snprintf(what, whatlen, "not valid JSON: %s", perr);
		return NULL;
	}
	if (!json_is_object(rec)) {
		snprintf(what, whatlen, "not a JSON object");
		goto bad;
	}
	if (!chain)
		return rec;
	s = json_object_get(rec, "seq");
	if (!json_is_integer(s) || (uint64_t)json_integer_value(s) != seq ||
	    !str_member(rec, "time", NULL, 0) || !str_member(rec, "event", NULL, 0) ||
	    !str_member(rec, "actor", NULL, 0) ||
	    !str_member(rec, "prev", line + len - SBX_JR_TAIL + 9, SBX_JR_HEX) ||
	    !str_member(rec, "hash", line + len - SBX_JR_HEX - 2, SBX_JR_HEX)) {
		snprintf(what, whatlen, "malformed record (seq, time, event, actor, prev, hash)");
		goto bad;
	}
	return rec;
bad:
	json_decref(rec);
	return NULL;
}

struct consumer {
	const struct scanner *sc;
	sbx_jr_rec_fn fn;
	void *ctx;
	int status;             /* -1 when the consumer failed */
	uint64_t bad_seq;
	char *err;
	size_t errlen;
};

/* Parse, call back, free, one record at a time.  1 = stop, 0 = go on. */
static int consume(struct consumer *c, const struct batch *b)
{
	const struct sbx_jr_scan_opts *o = c->sc->o;

	for (size_t i = 0; i < b->n; i++) {
		const struct ent *e = &b->ent[i];
		const char *line = b->buf + e->off;
		char what[320];
		struct sbx_jr_lite lite;
		json_t *rec = NULL;
		int rc;

		if (o->lite && c->sc->chain && sbx_jr_lite_check(line, e->len, e->seq, &lite)) {
			c->sc->res->cur_seg = b->seg;
			c->sc->res->cur_off = e->foff;
			c->sc->res->lite = &lite;
			rc = c->fn ? c->fn(NULL, line, e->len, c->ctx, c->err, c->errlen) : 0;
			c->sc->res->lite = NULL;
			if (rc < 0) {
				c->bad_seq = e->seq;
				c->status = -1;
				return 1;
			}
			if (rc > 0)
				return 1;
			continue;
		}
		rec = sbx_jr_check_parsed(line, e->len, e->seq, c->sc->chain, what, sizeof(what));

		if (!rec) {
			const char *name = o->segs[b->seg].name;
			uint64_t ln = line_number_at(o->jdirfd, name, e->foff);

			if (c->sc->chain)
				snprintf(c->err, c->errlen, "journal: record seq %" PRIu64 ": %s (journal/%s:%" PRIu64 ")",
					 e->seq, what, name, ln);
			else
				snprintf(c->err, c->errlen, "journal: journal/%s:%" PRIu64 ": %s", name, ln, what);
			c->bad_seq = e->seq;
			c->status = -1;
			return 1;
		}
		c->sc->res->cur_seg = b->seg;
		c->sc->res->cur_off = e->foff;
		rc = c->fn ? c->fn(rec, line, e->len, c->ctx, c->err, c->errlen) : 0;
		json_decref(rec);
		if (rc < 0) {
			c->bad_seq = e->seq;
			c->status = -1;
			return 1;
		}
		if (rc > 0)
			return 1;
	}
	return 0;
}

static void *producer_main(void *arg)
{
	struct scanner *sc = arg;

	for (;;) {
		struct batch *b;
		bool cancel;

		pthread_mutex_lock(&sc->mu);
		while (sc->qlen >= QUEUE_MAX && !sc->cancel)
			pthread_cond_wait(&sc->cv, &sc->mu);
		cancel = sc->cancel;
		pthread_mutex_unlock(&sc->mu);
		b = cancel ? NULL : sc_next(sc);
		pthread_mutex_lock(&sc->mu);
		if (b) {
			if (sc->qtail)
				sc->qtail->next = b;
			else
				sc->qhead = b;
			sc->qtail = b;
			sc->qlen++;
		}
		if (cancel || sc->done)
			sc->finished = true;
		pthread_cond_broadcast(&sc->cv);
		pthread_mutex_unlock(&sc->mu);
		if (cancel || sc->done)
			return NULL;
	}
}

static struct batch *queue_pop(struct scanner *sc)
{
	struct batch *b;

	pthread_mutex_lock(&sc->mu);
	while (!sc->qhead && !sc->finished)
		pthread_cond_wait(&sc->cv, &sc->mu);
	b = sc->qhead;
	if (b) {
		sc->qhead = b->next;
		if (!sc->qhead)
			sc->qtail = NULL;
		sc->qlen--;
		pthread_cond_broadcast(&sc->cv);
	}
	pthread_mutex_unlock(&sc->mu);
	return b;
}

/* Called with the first segment open (its size known). */
static uint64_t bytes_to_scan(const struct scanner *sc)
{
	const struct sbx_jr_scan_opts *o = sc->o;
	uint64_t total = sc->fsize > sc->foff ? sc->fsize - sc->foff : 0;

	for (size_t i = o->start_seg + 1; i < o->nsegs; i++) {
		struct stat st;

		if (fstatat(o->jdirfd, o->segs[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			total += (uint64_t)st.st_size;
	}
	return total;
}

/* Returns true when the consumer stopped early (fn or its checks). */
static bool scan_threaded(struct scanner *sc, struct consumer *c)
{
	pthread_t tid;
	struct batch *b;
	bool stop = false;
	int rc;

	rc = pthread_create(&tid, NULL, producer_main, sc);
	if (rc) {
		snprintf(c->err, c->errlen, "journal: cannot start the replay thread: %s", strerror(rc));
		c->status = -1;
		return true;
	}
	while ((b = queue_pop(sc))) {
		if (!stop && consume(c, b)) {
			stop = true;
			pthread_mutex_lock(&sc->mu);
			sc->cancel = true;
			pthread_cond_broadcast(&sc->cv);
			pthread_mutex_unlock(&sc->mu);
		}
		spare_put(sc, b);
	}
	pthread_join(tid, NULL);
	return stop;
}

static bool scan_inline(struct scanner *sc, struct consumer *c)
{
	while (!sc->done) {
		struct batch *b = sc_next(sc);
		bool stop = b && consume(c, b);

		spare_put(sc, b);
		if (stop)
			return true;
	}
	return false;
}

int sbx_jr_scan(const struct sbx_jr_scan_opts *o, sbx_jr_rec_fn fn, void *ctx,
		struct sbx_jr_scan_result *res, char *err, size_t errlen)
{
	struct scanner sc = { .o = o, .res = res, .fd = -1 };
	struct consumer c = { .sc = &sc, .fn = fn, .ctx = ctx, .err = err, .errlen = errlen };
	bool stopped;

	sc.chain = o->mode != SBX_JR_FOREACH;
	sc.seg = o->start_seg;
	sc.expect = o->expect_seq;
	memcpy(sc.prev, o->prev, sizeof(sc.prev));
	res->bad_seq = 0;
	res->last_seq = o->expect_seq - 1;
	memcpy(res->last_hash, o->prev, sizeof(res->last_hash));
	res->end_seg = o->start_seg;
	res->end_off = o->start_off;
	res->torn = false;
	res->torn_bytes = 0;
	res->seal = o->seal;
	if (o->start_seg >= o->nsegs || o->max_seq < o->expect_seq)
		return 0;
	if (sbx_jr_sha_init(&sc.sha)) {
		snprintf(err, errlen, "journal: cannot set up SHA-256 (OpenSSL)");
		return -1;
	}
	pthread_mutex_init(&sc.mu, NULL);
	pthread_cond_init(&sc.cv, NULL);
	/* A failed open leaves sc done, with its status. */
	if (sc_open_seg(&sc) && bytes_to_scan(&sc) >= sbx_jr_thread_min_bytes)
		stopped = scan_threaded(&sc, &c);
	else
		stopped = scan_inline(&sc, &c);
	/* The first bad record is the consumer's when it stopped: the
	 * producer may have read further. */
	if (stopped && c.status) {
		res->bad_seq = c.bad_seq;
	} else if (!stopped && sc.status) {
		snprintf(err, errlen, "%s", sc.err);
		c.status = -1;
	}
	while (sc.spare) {
		struct batch *b = sc.spare;

		sc.spare = b->next;
		batch_free(b);
	}
	pthread_cond_destroy(&sc.cv);
	pthread_mutex_destroy(&sc.mu);
	if (sc.fd >= 0)
		close(sc.fd);
	sbx_jr_sha_free(&sc.sha);
	free(sc.carry);
	return c.status;
}

/* ---------------------------------------------------------------- replay */

/* Where the line before (seg, off) starts: the last line of the previous
 * segment when off is 0.  0, or -1 when it cannot be read. */
static int line_before(int jdirfd, const struct sbx_jr_seg *segs, size_t seg, uint64_t off,
		       size_t *pseg, uint64_t *poff)
{
	char *buf = NULL;
	size_t want, got = 0;
	int fd = -1, ret = -1;
	struct stat st;

	if (off == 0) {
		if (seg == 0)
			return -1;
		seg--;
		fd = openat(jdirfd, segs[seg].name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || fstat(fd, &st))
			goto out;
		off = (uint64_t)st.st_size;
	} else {
		fd = openat(jdirfd, segs[seg].name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			goto out;
	}
	want = off < SBX_JOURNAL_LINE_MAX + 1 ? (size_t)off : SBX_JOURNAL_LINE_MAX + 1;
	if (want < 2 || !(buf = malloc(want)))
		goto out;
	while (got < want) {
		ssize_t r = pread(fd, buf + got, want - got, (off_t)(off - want + got));

		if (r <= 0)
			goto out;
		got += (size_t)r;
	}
	*pseg = seg;
	*poff = off - want;
	for (size_t i = want - 1; i-- > 0;) {
		if (buf[i] == '\n') {
			*poff = off - want + i + 1;
			break;
		}
	}
	ret = 0;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* Does a good line of record seq with that hash start at seg:off?
 * note says why not. */
static int check_snapshot_record(int jdirfd, const struct sbx_jr_seg *seg, uint64_t off,
				 uint64_t seq, const char *hash, const char *event,
				 char prev[SBX_JR_HEX + 1], char *note, size_t notelen)
{
	struct sbx_jr_sha sha = { 0 };
	char *buf = NULL, *line, *nl, h[SBX_JR_HEX + 1];
	size_t want = SBX_JOURNAL_LINE_MAX + 2;
	uint64_t from = off ? off - 1 : 0;
	ssize_t r;
	size_t len;
	int fd = -1, ret = -1;

	fd = openat(jdirfd, seg->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	buf = malloc(4096);
	if (fd < 0 || !buf || sbx_jr_sha_init(&sha)) {
		snprintf(note, notelen, "cannot read journal/%s: %s", seg->name,
			 fd < 0 ? strerror(errno) : "out of memory");
		goto out;
	}
	/* Most records are short: try a small read before a whole LINE_MAX. */
	for (size_t try = 4096;; try = want) {
		if (try == want) {
			char *nb = realloc(buf, want);

			if (!nb) {
				snprintf(note, notelen, "out of memory");
				goto out;
			}
			buf = nb;
		}
		do {
			r = pread(fd, buf, try, (off_t)from);
		} while (r < 0 && errno == EINTR);
		line = buf + (off ? 1 : 0);
		nl = r > line - buf ? memchr(line, '\n', (size_t)r - (size_t)(line - buf)) : NULL;
		if (nl || r < (ssize_t)try || try == want)
			break;
	}
	if (r < 0 || (off && (r < 1 || buf[0] != '\n')) || !nl) {
		snprintf(note, notelen, "no complete record starts at journal/%s offset %" PRIu64,
			 seg->name, off);
		goto out;
	}
	len = (size_t)(nl - line);
	if (sbx_jr_leading_seq(line, len) != seq || !sbx_jr_tail_ok(line, len) ||
	    memcmp(line + len - SBX_JR_HEX - 2, hash, SBX_JR_HEX) != 0 ||
	    sbx_jr_line_hash(&sha, line, len, h) || memcmp(h, hash, SBX_JR_HEX) != 0) {
		snprintf(note, notelen,
			 "the record at journal/%s offset %" PRIu64 " is not seq %" PRIu64 " with the snapshot's hash",
			 seg->name, off, seq);
		goto out;
	}
	if (event && !sbx_jr_line_event_is(line, len, event)) {
		snprintf(note, notelen, "the record at journal/%s offset %" PRIu64 " is not a %s record",
			 seg->name, off, event);
		goto out;
	}
	if (prev) {
		memcpy(prev, line + len - SBX_JR_TAIL + 9, SBX_JR_HEX);
		prev[SBX_JR_HEX] = '\0';
	}
	ret = 0;
out:
	sbx_jr_sha_free(&sha);
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}

/* A snapshot (docs/audit.md, "Snapshots"): a header line, one line per
 * entry, an end line with the number of entries.  Only the header and the
 * end line are read before the snapshot is taken; the entries are then
 * streamed, one line at a time, so loading never holds more than a line
 * of the file. */
#define SNAP_HEAD_MAX 4096
#define SNAP_CHUNK (1u << 20)

struct snap {
	int fd;
	uint64_t seq;
	char hash[SBX_JR_HEX + 1];
	size_t seg;
	uint64_t off;
	/* The last seal the state includes (seq 0: none named): start-up
	 * checks the chain from it on. */
	struct sbx_jr_anchor seal;
	size_t seal_seg;
	char seal_prev[SBX_JR_HEX + 1];
	uint64_t body;          /* where the entries start in the file */
	uint64_t end;           /* where the end line starts */
	uint64_t entries;       /* what the end line says */
};

static bool json_uint(const json_t *o, const char *key, uint64_t *v)
{
	json_t *x = json_object_get(o, key);

	if (!json_is_integer(x) || json_integer_value(x) < 0)
		return false;
	*v = (uint64_t)json_integer_value(x);
	return true;
}

/* Read the header line: what the snapshot says it is. */
static int snap_header(struct snap *s, const char **segname_out, json_t **hdr_out, char *why,
		       size_t whylen)
{
	char buf[SNAP_HEAD_MAX], perr[200] = "";
	const char *hash, *segname;
	uint64_t format = 0;
	json_t *h = NULL;
	ssize_t r;
	char *nl;

	do {
		r = pread(s->fd, buf, sizeof(buf), 0);
	} while (r < 0 && errno == EINTR);
	if (r < 0) {
		snprintf(why, whylen, "cannot read it: %s", strerror(errno));
		return -1;
	}
	/* sbx before 0.2 wrote one JSON document starting with its seq. */
	if (r >= 7 && memcmp(buf, "{\"seq\":", 7) == 0) {
		snprintf(why, whylen, "it is in the older one-document format, which is no longer read");
		return -1;
	}
	nl = memchr(buf, '\n', (size_t)r);
	if (!nl) {
		snprintf(why, whylen, "no header line");
		return -1;
	}
	h = sbx_jr_parse(buf, (size_t)(nl - buf), perr, sizeof(perr));
	if (!json_is_object(h) || !json_uint(h, "snapshot", &format)) {
		snprintf(why, whylen, "the header is not a snapshot's%s%s", perr[0] ? ": " : "", perr);
		json_decref(h);
		return -1;
	}
	if (format != SBX_JR_SNAP_FORMAT) {
		snprintf(why, whylen, "its format %" PRIu64 " is not %d", format, SBX_JR_SNAP_FORMAT);
		json_decref(h);
		return -1;
	}
	hash = json_string_value(json_object_get(h, "hash"));
	segname = json_string_value(json_object_get(h, "segment"));
	if (!json_uint(h, "seq", &s->seq) || s->seq < 1 || !hash || strlen(hash) != SBX_JR_HEX ||
	    !sbx_jr_is_hex64(hash) || !segname || !json_uint(h, "offset", &s->off)) {
		snprintf(why, whylen, "missing or malformed seq/hash/segment/offset");
		json_decref(h);
		return -1;
	}
	memcpy(s->hash, hash, sizeof(s->hash));
	if (json_object_get(h, "seal_seq")) {
		hash = json_string_value(json_object_get(h, "seal_hash"));
		segname = json_string_value(json_object_get(h, "seal_segment"));
		if (!json_uint(h, "seal_seq", &s->seal.seq) || s->seal.seq < 1 ||
		    s->seal.seq > s->seq || !hash || strlen(hash) != SBX_JR_HEX ||
		    !sbx_jr_is_hex64(hash) || !segname || strlen(segname) >= SBX_JR_SEG_NAME_MAX ||
		    !json_uint(h, "seal_offset", &s->seal.off)) {
			snprintf(why, whylen, "missing or malformed seal_seq/seal_hash/seal_segment/seal_offset");
			json_decref(h);
			return -1;
		}
		memcpy(s->seal.hash, hash, sizeof(s->seal.hash));
		snprintf(s->seal.segment, sizeof(s->seal.segment), "%s", segname);
		segname = json_string_value(json_object_get(h, "segment"));
	}
	s->body = (uint64_t)(nl - buf) + 1;
	*segname_out = segname;
	*hdr_out = h;
	return 0;
}

/* Read the end line: the file is whole (a cut-off file ends elsewhere). */
static int snap_end(struct snap *s, uint64_t size, char *why, size_t whylen)
{
	char buf[64], perr[200] = "";
	size_t n = size - s->body < sizeof(buf) ? (size_t)(size - s->body) : sizeof(buf);
	json_t *e = NULL;
	char *start;
	ssize_t r;
	int ret = -1;

	do {
		r = pread(s->fd, buf, n, (off_t)(size - n));
	} while (r < 0 && errno == EINTR);
	if (r != (ssize_t)n || n == 0 || buf[n - 1] != '\n') {
		snprintf(why, whylen, "it does not end with a complete line (cut off?)");
		return -1;
	}
	start = memrchr(buf, '\n', n - 1);
	start = start ? start + 1 : buf;
	if (start == buf && size - n != s->body) {
		snprintf(why, whylen, "its last line is not an end line (cut off?)");
		return -1;
	}
	e = sbx_jr_parse(start, (size_t)(buf + n - 1 - start), perr, sizeof(perr));
	if (!json_is_object(e) || json_object_size(e) != 1 || !json_uint(e, "entries", &s->entries)) {
		snprintf(why, whylen, "its last line is not an end line (cut off?)");
		goto out;
	}
	s->end = size - (uint64_t)(buf + n - start);
	ret = 0;
out:
	json_decref(e);
	return ret;
}

/* Open snapshot.json and check it against the journal.  0 = usable (s->fd
 * open), 1 = absent or not usable (note says why, empty when absent). */
static int open_snapshot(int sdirfd, int jdirfd, const struct sbx_jr_seg *segs, size_t nsegs,
			 uint64_t max_seq, struct snap *s, char *note, size_t notelen)
{
	char local[200] = "";
	const char *segname = NULL;
	json_t *hdr = NULL;
	struct stat st;

	memset(s, 0, sizeof(*s));
	s->fd = openat(sdirfd, "snapshot.json", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (s->fd < 0 && errno == ENOENT)
		return 1;
	if (s->fd < 0 || fstat(s->fd, &st)) {
		snprintf(local, sizeof(local), "cannot read it: %s", strerror(errno));
		goto ignore;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(local, sizeof(local), "it is not a regular file");
		goto ignore;
	}
	if (snap_header(s, &segname, &hdr, local, sizeof(local)) ||
	    snap_end(s, (uint64_t)st.st_size, local, sizeof(local)))
		goto ignore;
	if (s->seq > max_seq) {
		snprintf(local, sizeof(local), "its seq %" PRIu64 " is past the replay limit %" PRIu64,
			 s->seq, max_seq);
		goto ignore;
	}
	for (s->seg = 0; s->seg < nsegs; s->seg++)
		if (strcmp(segs[s->seg].name, segname) == 0)
			break;
	if (s->seg == nsegs) {
		snprintf(local, sizeof(local), "it names segment %.64s, which does not exist", segname);
		goto ignore;
	}
	if (segs[s->seg].first > s->seq) {
		snprintf(local, sizeof(local), "segment %s does not hold seq %" PRIu64,
			 segs[s->seg].name, s->seq);
		goto ignore;
	}
	if (check_snapshot_record(jdirfd, &segs[s->seg], s->off, s->seq, s->hash, NULL, NULL,
				  local, sizeof(local)))
		goto ignore;
	if (s->seal.seq) {
		for (s->seal_seg = 0; s->seal_seg < nsegs; s->seal_seg++)
			if (strcmp(segs[s->seal_seg].name, s->seal.segment) == 0)
				break;
		if (s->seal_seg == nsegs || segs[s->seal_seg].first > s->seal.seq ||
		    s->seal_seg > s->seg) {
			snprintf(local, sizeof(local), "the seal it names is not in segment %.64s",
				 s->seal.segment);
			goto ignore;
		}
		if (check_snapshot_record(jdirfd, &segs[s->seal_seg], s->seal.off, s->seal.seq,
					  s->seal.hash, SBX_JR_SEAL_EVENT, s->seal_prev, local,
					  sizeof(local)))
			goto ignore;
	}
	json_decref(hdr);
	(void)posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return 0;
ignore:
	json_decref(hdr);
	snprintf(note, notelen, "snapshot.json ignored (%s); replayed from seq 1", local);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	return 1;
}

/* Streams a snapshot's entries to the caller, on a thread of its own
 * while the replay checks the chain. */
struct snap_loader {
	const struct snap *s;
	sbx_snapshot_fn fn;
	void *ctx;
	bool stop;              /* atomic: the replay has failed, give up */
	int status;             /* 0, or -1 with why */
	uint64_t handed;        /* entries handed to fn */
	char why[200];
	pthread_t tid;
	bool running;           /* tid is to be joined */
};

static int snap_entry(struct snap_loader *l, const char *line, size_t len)
{
	char perr[200] = "", err[160] = "";
	json_t *e = sbx_jr_parse(line, len, perr, sizeof(perr));
	int rc;

	if (!json_is_object(e) && !json_is_array(e)) {
		snprintf(l->why, sizeof(l->why), "entry %" PRIu64 " is not a JSON object or array%s%s",
			 l->handed + 1, perr[0] ? ": " : "", perr);
		json_decref(e);
		return -1;
	}
	rc = l->fn(e, l->ctx, err, sizeof(err));
	json_decref(e);
	l->handed++;
	if (rc) {
		snprintf(l->why, sizeof(l->why), "entry %" PRIu64 " was refused: %s", l->handed,
			 err[0] ? err : "no reason given");
		return -1;
	}
	return 0;
}

static void *snap_load_main(void *arg)
{
	struct snap_loader *l = arg;
	size_t cap = SNAP_CHUNK, have = 0;
	uint64_t pos = l->s->body;
	char *buf = malloc(cap);

	l->status = -1;
	if (!buf) {
		snprintf(l->why, sizeof(l->why), "out of memory");
		return NULL;
	}
	while (pos < l->s->end || have) {
		size_t want = cap - have, done = 0;
		ssize_t r = 0;
		char *nl;

		if (__atomic_load_n(&l->stop, __ATOMIC_RELAXED))
			goto out;
		if (want > l->s->end - pos)
			want = (size_t)(l->s->end - pos);
		if (want) {
			do {
				r = pread(l->s->fd, buf + have, want, (off_t)pos);
			} while (r < 0 && errno == EINTR);
			if (r <= 0) {
				snprintf(l->why, sizeof(l->why), "cannot read it: %s",
					 r < 0 ? strerror(errno) : "it shrank");
				goto out;
			}
			pos += (uint64_t)r;
			have += (size_t)r;
		}
		while ((nl = memchr(buf + done, '\n', have - done))) {
			if (snap_entry(l, buf + done, (size_t)(nl - (buf + done))))
				goto out;
			done = (size_t)(nl - buf) + 1;
		}
		memmove(buf, buf + done, have - done);
		have -= done;
		if (have && pos == l->s->end) {
			snprintf(l->why, sizeof(l->why), "its entries end in the middle of a line");
			goto out;
		}
		if (have == cap) {
			char *nb = cap < SBX_JR_SNAP_LINE_MAX ? realloc(buf, cap * 2) : NULL;

			if (!nb) {
				snprintf(l->why, sizeof(l->why), "entry %" PRIu64 " is longer than %u bytes",
					 l->handed + 1, SBX_JR_SNAP_LINE_MAX);
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
	}
	if (l->handed != l->s->entries) {
		snprintf(l->why, sizeof(l->why), "it holds %" PRIu64 " entries, its end line says %" PRIu64,
			 l->handed, l->s->entries);
		goto out;
	}
	l->status = 0;
out:
	free(buf);
	return NULL;
}

static void snap_load_start(struct snap_loader *l)
{
	/* Without a thread, the entries load before the chain is checked:
	 * slower, the same result. */
	if (pthread_create(&l->tid, NULL, snap_load_main, l) == 0)
		l->running = true;
	else
		snap_load_main(l);
}

/* 0 when every entry was handed over, -1 (why) when it was given up. */
static int snap_load_finish(struct snap_loader *l, bool stop)
{
	if (stop)
		__atomic_store_n(&l->stop, true, __ATOMIC_RELAXED);
	if (l->running) {
		pthread_join(l->tid, NULL);
		l->running = false;
	}
	return l->status;
}

struct replay_ctx {
	sbx_replay_fn fn;
	void *ctx;
	uint64_t records;
	struct snap_loader *loader; /* still to be waited for */
	bool snap_failed;
	const struct sbx_jr_scan_result *res;
	/* The records of an operation not yet ended ("continued"). */
	json_t **held;
	size_t nheld, held_cap;
	size_t held_seg;        /* where the first of them starts */
	uint64_t held_off;
};

static int deliver(struct replay_ctx *rc, json_t *rec, char *err, size_t errlen)
{
	if (rc->fn && rc->fn(rec, rc->ctx, err, errlen)) {
		if (!err[0])
			snprintf(err, errlen, "journal: replay stopped at seq %" PRId64,
				 (int64_t)json_integer_value(json_object_get(rec, "seq")));
		return -1;
	}
	rc->records++;
	return 0;
}

static void drop_held(struct replay_ctx *rc)
{
	for (size_t i = 0; i < rc->nheld; i++)
		json_decref(rc->held[i]);
	rc->nheld = 0;
}

static int hold(struct replay_ctx *rc, json_t *rec, char *err, size_t errlen)
{
	if (rc->nheld == rc->held_cap) {
		size_t cap = rc->held_cap ? 2 * rc->held_cap : 16;
		json_t **h = realloc(rc->held, cap * sizeof(*h));

		if (!h) {
			snprintf(err, errlen, "journal: out of memory holding an operation's records");
			return -1;
		}
		rc->held = h;
		rc->held_cap = cap;
	}
	if (rc->nheld == 0) {
		rc->held_seg = rc->res->cur_seg;
		rc->held_off = rc->res->cur_off;
	}
	rc->held[rc->nheld++] = json_incref(rec);
	return 0;
}

/* An operation's records are applied together, when its last arrives. */
static int replay_rec(json_t *rec, const char *line, size_t len, void *arg, char *err,
		      size_t errlen)
{
	struct replay_ctx *rc = arg;
	int ret = 0;

	(void)line;
	(void)len;
	/* The first record after the snapshot applies on top of all of it. */
	if (rc->loader) {
		rc->snap_failed = snap_load_finish(rc->loader, false) < 0;
		rc->loader = NULL;
		if (rc->snap_failed)
			return 1; /* replayed again from seq 1 */
	}
	if (json_is_true(json_object_get(rec, "continued")))
		return hold(rc, rec, err, errlen);
	for (size_t i = 0; i < rc->nheld && ret == 0; i++)
		ret = deliver(rc, rc->held[i], err, errlen);
	drop_held(rc);
	return ret ? ret : deliver(rc, rec, err, errlen);
}

/* The journal ends inside an operation: its client was never answered
 * (the writer sends no part of an operation before all of it), so it is
 * a torn tail like a torn line, and open cuts it. */
static int unfinished_operation(int jdirfd, const struct sbx_jr_seg *segs, size_t nsegs,
				struct replay_ctx *rc, struct sbx_jr_scan_result *res, char *err,
				size_t errlen)
{
	json_t *first = rc->held[0];
	const char *prev = json_string_value(json_object_get(first, "prev"));
	uint64_t first_seq = (uint64_t)json_integer_value(json_object_get(first, "seq"));
	uint64_t bytes = 0;
	struct stat st;

	for (size_t i = rc->held_seg; i < nsegs; i++) {
		if (fstatat(jdirfd, segs[i].name, &st, AT_SYMLINK_NOFOLLOW)) {
			snprintf(err, errlen, "journal: cannot stat journal/%s: %s", segs[i].name,
				 strerror(errno));
			return -1;
		}
		bytes += (uint64_t)st.st_size - (i == rc->held_seg ? rc->held_off : 0);
	}
	res->last_seq = first_seq - 1;
	memcpy(res->last_hash, prev && sbx_jr_is_hex64(prev) ? prev : zero_hash,
	       sizeof(res->last_hash));
	if (res->last_seq &&
	    line_before(jdirfd, segs, rc->held_seg, rc->held_off, &res->last_seg, &res->last_off)) {
		snprintf(err, errlen, "journal: cannot read the record before seq %" PRIu64,
			 first_seq);
		return -1;
	}
	res->end_seg = rc->held_seg;
	res->end_off = rc->held_off;
	res->torn = true;
	res->torn_bytes = bytes;
	res->torn_op = rc->nheld;
	drop_held(rc);
	return 0;
}


/* The snapshot was given up after the chain check began: forget what it
 * brought and say why. */
static void snap_give_up(struct snap_loader *l, sbx_snapshot_fn on_snapshot, void *ctx,
			 struct sbx_replay_info *info)
{
	char err[64];

	if (l->handed)
		(void)on_snapshot(NULL, ctx, err, sizeof(err));
	snprintf(info->snapshot_note, sizeof(info->snapshot_note),
		 "snapshot.json ignored (%s); replayed from seq 1", l->why);
	info->used_snapshot = false;
	info->snapshot_seq = 0;
	info->snapshot_entries = 0;
}

/* The journal was pruned (its first segment is not seq 1): only a
 * snapshot can give the state of what is gone. */
static void pruned_no_snapshot(const struct sbx_jr_seg *segs, const char *note, char *err,
			       size_t errlen)
{
	snprintf(err, errlen, "journal: records before seq %" PRIu64 " were pruned (the first "
		 "segment is journal/%s) and no usable snapshot covers them%s%.200s%s: the state "
		 "cannot be rebuilt; restore snapshot.json (or the pruned segments) from a backup",
		 segs[0].first, segs[0].name, note[0] ? " (" : "", note, note[0] ? ")" : "");
}

int sbx_jr_replay(int sdirfd, int jdirfd, uint64_t max_seq, sbx_snapshot_fn on_snapshot,
		  sbx_replay_fn on_record, void *ctx, struct sbx_replay_info *info,
		  struct sbx_jr_seg **segsp, size_t *nsegsp, struct sbx_jr_scan_result *res,
		  char *err, size_t errlen)
{
	struct sbx_jr_scan_opts o = { .mode = SBX_JR_REPLAY, .jdirfd = jdirfd, .expect_seq = 1,
				      .max_seq = max_seq };
	struct replay_ctx rc = { .fn = on_record, .ctx = ctx, .res = res };
	struct snap_loader loader = { .fn = on_snapshot, .ctx = ctx };
	struct sbx_jr_seg *segs = NULL;
	struct snap snap = { .fd = -1 };
	size_t nsegs = 0;
	int ret = -1, scan;

	memset(info, 0, sizeof(*info));
	memset(res, 0, sizeof(*res));
	if (sbx_jr_list_segments(jdirfd, &segs, &nsegs, err, errlen))
		goto out;
	memcpy(o.prev, zero_hash, sizeof(o.prev));
	o.segs = segs;
	o.nsegs = nsegs;
	if (!nsegs && faccessat(sdirfd, "snapshot.json", F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		snprintf(info->snapshot_note, sizeof(info->snapshot_note),
			 "snapshot.json ignored (the journal has no segments)");
	if (nsegs && open_snapshot(sdirfd, jdirfd, segs, nsegs, max_seq, &snap, info->snapshot_note,
				   sizeof(info->snapshot_note)) == 0) {
		/* The chain is still checked from seq 1 (reading and hashing
		 * costs a fraction of parsing): a record changed before the
		 * snapshot must stop the broker as much as one after it.  The
		 * entries load meanwhile, on a thread of their own. */
		info->used_snapshot = true;
		info->snapshot_seq = snap.seq;
		o.parse_after = snap.seq;
		/* With a seal the snapshot names, the chain is checked from
		 * that seal on: what lies before it is the seals' to prove
		 * (audit verify --key), and start-up does not grow with the
		 * journal's age. */
		if (snap.seal.seq) {
			o.start_seg = snap.seal_seg;
			o.start_off = snap.seal.off;
			o.expect_seq = snap.seal.seq;
			memcpy(o.prev, snap.seal_prev, sizeof(o.prev));
			o.seal = snap.seal;
			info->checked_from = snap.seal.seq;
		}
		loader.s = &snap;
		if (on_snapshot) {
			snap_load_start(&loader);
			rc.loader = &loader;
		}
	}
	if (nsegs && segs[0].first != 1 && o.expect_seq == 1) {
		pruned_no_snapshot(segs, info->snapshot_note, err, errlen);
		res->bad_seq = 1;
		goto out;
	}
	if (!info->checked_from)
		info->checked_from = nsegs ? 1 : 0;
	err[0] = '\0';
	scan = sbx_jr_scan(&o, replay_rec, &rc, res, err, errlen);
	if (rc.loader) /* no record after the snapshot was parsed */
		rc.snap_failed = snap_load_finish(rc.loader, scan != 0) < 0;
	rc.loader = NULL;
	if (scan)
		goto out;
	if (rc.snap_failed) {
		snap_give_up(&loader, on_snapshot, ctx, info);
		if (segs[0].first != 1) {
			pruned_no_snapshot(segs, info->snapshot_note, err, errlen);
			res->bad_seq = 1;
			goto out;
		}
		o.start_seg = 0;
		o.start_off = 0;
		o.expect_seq = 1;
		memcpy(o.prev, zero_hash, sizeof(o.prev));
		memset(&o.seal, 0, sizeof(o.seal));
		info->checked_from = 1;
		o.parse_after = 0;
		rc.records = 0;
		drop_held(&rc);
		err[0] = '\0';
		if (sbx_jr_scan(&o, replay_rec, &rc, res, err, errlen))
			goto out;
	}
	if (rc.nheld &&
	    unfinished_operation(jdirfd, segs, nsegs, &rc, res, err, errlen))
		goto out;
	info->snapshot_entries = info->used_snapshot ? loader.handed : 0;
	info->records = rc.records;
	info->last_seq = res->last_seq;
	if (max_seq != UINT64_MAX && res->last_seq < max_seq) {
		snprintf(err, errlen, "journal: record seq %" PRIu64 ": missing (the journal ends at seq %" PRIu64 ")",
			 res->last_seq + 1, res->last_seq);
		res->bad_seq = res->last_seq + 1;
		goto out;
	}
	if (segsp) {
		*segsp = segs;
		*nsegsp = nsegs;
		segs = NULL;
	}
	ret = 0;
out:
	if (rc.loader)
		(void)snap_load_finish(rc.loader, true);
	info->records = rc.records;
	drop_held(&rc);
	free(rc.held);
	if (snap.fd >= 0)
		close(snap.fd);
	free(segs);
	return ret;
}
