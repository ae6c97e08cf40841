/*
 * sbxctl audit export and verify-export (audit_export.h; docs/audit.md,
 * "Exports").
 *
 * An export is the contiguous run of records from the first one at or
 * after --since to the last one before --until: contiguous so that its
 * hash chain can be checked by itself.  It is produced by rendering each
 * journal line into a "sink"; verify-export renders what the export
 * should be into a sink that compares with the file instead of writing
 * it, so export and check cannot drift apart, and the first byte that
 * differs names its record.  Everything streams: one line in memory at a
 * time, plus the seals of the range and the records between the range's
 * end and the seal that covers it (at most one epoch).
 */
#include "config.h"

#include "audit_export.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "audit.h"
#include "journal.h"
#include "journal_read.h"
#include "output.h"
#include "record_csv.h"
#include "record_filter.h"
#include "seal.h"
#include "text.h"
#include "timeutil.h"

#define MANIFEST_SUFFIX ".manifest.json"
#define MANIFEST_VERSION 1
#define MANIFEST_MAX (256u << 20)
#define HEX 64
/* Every line ends in ,"prev":"<64>","hash":"<64>"} (docs/audit.md). */
#define TAIL_LEN (9 + HEX + 1 + 9 + HEX + 2)
#define SEAL_TEXT "\"event\":\"" SBX_SEAL_EVENT "\""

static const char *const fmt_names[] = { "jsonl", "json", "csv" };

int sbx_export_parse_format(const char *s, enum sbx_export_format *f)
{
	for (size_t i = 0; i < sizeof(fmt_names) / sizeof(fmt_names[0]); i++) {
		if (strcmp(s, fmt_names[i]) == 0) {
			*f = (enum sbx_export_format)i;
			return 0;
		}
	}
	return -1;
}

/* ------------------------------------------------------------ lines */

static bool line_shape_ok(const char *line, size_t len)
{
	return len > TAIL_LEN + 10 && sbx_journal_line_seq(line, len) > 0 &&
	       memcmp(line + len - TAIL_LEN, ",\"prev\":\"", 9) == 0 &&
	       memcmp(line + len - HEX - 12, "\",\"hash\":\"", 10) == 0 &&
	       memcmp(line + len - 2, "\"}", 2) == 0;
}

static void line_hash(const char *line, size_t len, char out[HEX + 1])
{
	memcpy(out, line + len - HEX - 2, HEX);
	out[HEX] = '\0';
}

static void line_prev(const char *line, size_t len, char out[HEX + 1])
{
	memcpy(out, line + len - TAIL_LEN + 9, HEX);
	out[HEX] = '\0';
}

/* The record's time, read from the text ({"seq":N,"time":"...",...)
 * without parsing the line.  0, or -1 when it has none. */
static int line_time(const char *line, size_t len, int64_t *us)
{
	const char *p = memchr(line, ',', len < 32 ? len : 32), *q;
	char buf[SBX_RFC3339_LEN + 8];

	if (!p || (size_t)(line + len - p) < 10 || memcmp(p, ",\"time\":\"", 9) != 0)
		return -1;
	p += 9;
	q = memchr(p, '"', (size_t)(line + len - p));
	if (!q || (size_t)(q - p) >= sizeof(buf))
		return -1;
	memcpy(buf, p, (size_t)(q - p));
	buf[q - p] = '\0';
	return sbx_parse_rfc3339_us(buf, us);
}

/* ------------------------------------------------------------ rendering */

/* Where rendered bytes go: a file being written, or a file being
 * compared with (verify-export).  Either way they are hashed. */
struct sink {
	FILE *out;
	FILE *cmp;
	EVP_MD_CTX *sha;
	uint64_t off;
	uint64_t rows;          /* records rendered so far */
	uint64_t seq;           /* the record being rendered */
	bool differs;
	uint64_t diff_off, diff_seq;
	bool diff_in_record;
	bool io_err;
};

static void sink_put(struct sink *s, const void *p, size_t n)
{
	const char *c = p;

	EVP_DigestUpdate(s->sha, p, n);
	if (s->out) {
		if (fwrite(p, 1, n, s->out) != n)
			s->io_err = true;
	} else if (!s->differs) {
		char buf[65536];

		for (size_t done = 0; done < n;) {
			size_t k = n - done < sizeof(buf) ? n - done : sizeof(buf);
			size_t got = fread(buf, 1, k, s->cmp);

			for (size_t i = 0; i < k; i++) {
				if (i >= got || buf[i] != c[done + i]) {
					s->differs = true;
					s->diff_off = s->off + done + i;
					s->diff_seq = s->seq;
					s->diff_in_record = s->seq != 0;
					break;
				}
			}
			if (s->differs)
				break;
			done += k;
		}
	}
	s->off += n;
}

static void render_head(struct sink *s, enum sbx_export_format fmt)
{
	if (fmt == SBX_EXPORT_JSON)
		sink_put(s, "[\n", 2);
	else if (fmt == SBX_EXPORT_CSV)
		sink_put(s, SBX_CSV_HEADER, sizeof(SBX_CSV_HEADER) - 1);
}

static int render_record(struct sink *s, enum sbx_export_format fmt, const char *line,
			 size_t len, char *why, size_t whylen)
{
	struct sbx_csv_buf row = { 0 };
	int ret = 0;

	s->seq = sbx_journal_line_seq(line, len);
	switch (fmt) {
	case SBX_EXPORT_JSONL:
		sink_put(s, line, len);
		sink_put(s, "\n", 1);
		break;
	case SBX_EXPORT_JSON:
		if (s->rows)
			sink_put(s, ",\n", 2);
		sink_put(s, line, len);
		break;
	case SBX_EXPORT_CSV:
		ret = sbx_record_csv_row(&row, line, len, why, whylen);
		if (ret == 0)
			sink_put(s, row.p, row.len);
		free(row.p);
		break;
	}
	s->rows++;
	s->seq = 0;
	return ret;
}

static void render_tail(struct sink *s, enum sbx_export_format fmt)
{
	if (fmt == SBX_EXPORT_JSON)
		sink_put(s, s->rows ? "\n]\n" : "]\n", s->rows ? 3 : 2);
}

/* ------------------------------------------------------------ the range */

/* The run [first, last] of seqs whose records lie in [since, until). */
struct range {
	int64_t since, until;
	uint64_t first, last;   /* 0: no record in the range */
};

static int find_range_line(const char *line, size_t len, void *arg, char *err, size_t errlen)
{
	struct range *r = arg;
	uint64_t seq = sbx_journal_line_seq(line, len);
	int64_t t;

	if (!seq || line_time(line, len, &t) < 0) {
		snprintf(err, errlen, "a journal line after seq %" PRIu64 " has no seq or time "
			 "(run `sbxctl audit verify`)", r->last);
		return -1;
	}
	if (t >= r->since && t < r->until) {
		if (!r->first)
			r->first = seq;
		r->last = seq;
	}
	return 0;
}

/* What one pass over [first, last] and the records after it gathers. */
struct gather {
	struct range *r;
	struct sink *sink;      /* NULL: nothing rendered (key mode) */
	enum sbx_export_format fmt;
	uint64_t expect;        /* the next seq */
	char first_prev[HEX + 1], first_hash[HEX + 1], last_hash[HEX + 1];
	json_t *seals;          /* the seals from first up to the one after last */
	json_t *after;          /* lines after last, up to that seal */
	bool closed;            /* a seal after last was found */
};

static json_t *seal_summary(const char *line, size_t len, char *err, size_t errlen)
{
	json_t *rec = sbx_journal_line_parse(line, len, err, errlen), *s;

	if (!rec)
		return NULL;
	s = json_pack("{s:O?, s:O?, s:O?, s:O?, s:O?, s:O?, s:O?}", "seq",
		      json_object_get(rec, "seq"), "key_id", json_object_get(rec, "key_id"),
		      "epoch", json_object_get(rec, "epoch"), "first_seq",
		      json_object_get(rec, "first_seq"), "last_seq", json_object_get(rec, "last_seq"),
		      "head", json_object_get(rec, "head"), "mac", json_object_get(rec, "mac"));
	json_decref(rec);
	if (!s)
		snprintf(err, errlen, "out of memory");
	return s;
}

static int gather_line(const char *line, size_t len, void *arg, char *err, size_t errlen)
{
	struct gather *g = arg;
	uint64_t seq = sbx_journal_line_seq(line, len);
	bool seal;

	if (seq < g->r->first)
		return 0;
	if (seq != g->expect || !line_shape_ok(line, len)) {
		snprintf(err, errlen, "journal record seq %" PRIu64 ": %s (run `sbxctl audit "
			 "verify`)", g->expect, seq != g->expect ? "missing" : "malformed");
		return -1;
	}
	g->expect++;
	seal = memmem(line, len, SEAL_TEXT, sizeof(SEAL_TEXT) - 1) != NULL;
	if (seal) {
		json_t *s = seal_summary(line, len, err, errlen);

		if (!s || json_array_append_new(g->seals, s) < 0)
			return -1;
	}
	if (seq <= g->r->last) {
		if (seq == g->r->first) {
			line_prev(line, len, g->first_prev);
			line_hash(line, len, g->first_hash);
		}
		line_hash(line, len, g->last_hash);
		if (g->sink && render_record(g->sink, g->fmt, line, len, err, errlen) < 0)
			return -1;
		/* A range that ends with a seal needs nothing after it. */
		if (seal && seq == g->r->last) {
			g->closed = true;
			return 1;
		}
		return 0;
	}
	if (json_array_append_new(g->after, json_stringn(line, len)) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (seal) {
		g->closed = true;
		return 1;
	}
	return 0;
}

/* The highest seq of [first, last] a seal in g vouches for (0: none). */
static uint64_t sealed_through(const struct gather *g)
{
	uint64_t best = 0;
	size_t i;
	json_t *s;

	/* A seal vouches for everything before it, and its MAC for itself. */
	json_array_foreach(g->seals, i, s) {
		uint64_t l = (uint64_t)json_integer_value(json_object_get(s, "seq"));

		if (l >= g->r->first && l > best)
			best = l;
	}
	return best > g->r->last ? g->r->last : best;
}

static json_t *hash_or_null(uint64_t first, const char *h)
{
	return first ? json_string(h) : json_null();
}

/* The manifest of an export: every member is a function of the range,
 * the journal and the export's bytes (verify-export rebuilds it). */
static json_t *manifest_build(const struct gather *g, enum sbx_export_format fmt,
			      uint64_t bytes, const char *sha)
{
	const struct range *r = g->r;
	char since[SBX_RFC3339_LEN], until[SBX_RFC3339_LEN];
	uint64_t through = r->first ? sealed_through(g) : 0;

	sbx_format_rfc3339_us(r->since, since);
	sbx_format_rfc3339_us(r->until, until);
	return json_pack("{s:i, s:s, s:s, s:s, s:I, s:o, s:o, s:o, s:o, s:o, s:I, s:s, s:O, "
			 "s:I, s:I, s:O}",
			 "sbx_export", MANIFEST_VERSION, "format", fmt_names[fmt], "since", since,
			 "until", until, "records",
			 (json_int_t)(r->first ? r->last - r->first + 1 : 0),
			 "first_seq", r->first ? json_integer((json_int_t)r->first) : json_null(),
			 "first_prev", hash_or_null(r->first, g->first_prev),
			 "first_hash", hash_or_null(r->first, g->first_hash),
			 "last_seq", r->first ? json_integer((json_int_t)r->last) : json_null(),
			 "last_hash", hash_or_null(r->first, g->last_hash),
			 "bytes", (json_int_t)bytes, "sha256", sha, "seals", g->seals,
			 "sealed_through", (json_int_t)through, "unsealed",
			 (json_int_t)(r->first ? r->last - (through ? through : r->first - 1) : 0),
			 "after", g->after);
}

static char *manifest_text(const json_t *m)
{
	char *s = json_dumps(m, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	char *t;

	if (!s)
		return NULL;
	t = realloc(s, strlen(s) + 2);
	if (!t) {
		free(s);
		return NULL;
	}
	strcat(t, "\n");
	return t;
}

static void sha_hex(EVP_MD_CTX *sha, char out[HEX + 1])
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	EVP_DigestFinal_ex(sha, d, &n);
	for (unsigned int i = 0; i < n && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
	out[HEX] = '\0';
}

/* Find the range, then render it (into s) and gather its proof. */
static int gather_range(const char *state_dir, struct range *r, struct sink *s,
			enum sbx_export_format fmt, struct gather *g, char *err, size_t errlen)
{
	memset(g, 0, sizeof(*g));
	g->r = r;
	g->sink = s;
	g->fmt = fmt;
	g->seals = json_array();
	g->after = json_array();
	if (!g->seals || !g->after) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->first = r->last = 0;
	if (sbx_journal_lines(state_dir, 0, find_range_line, r, err, errlen) < 0)
		return -1;
	if (s)
		render_head(s, fmt);
	if (r->first) {
		g->expect = r->first;
		if (sbx_journal_lines(state_dir, r->first, gather_line, g, err, errlen) < 0)
			return -1;
		if (g->expect <= r->last) {
			snprintf(err, errlen, "the journal ends at seq %" PRIu64 ", before seq %"
				 PRIu64 " (it changed while being read?)", g->expect - 1, r->last);
			return -1;
		}
		/* No seal after the range yet: those records prove nothing. */
		if (!g->closed)
			json_array_clear(g->after);
	}
	if (s)
		render_tail(s, fmt);
	return 0;
}

static void gather_free(struct gather *g)
{
	json_decref(g->seals);
	json_decref(g->after);
}

/* ------------------------------------------------------------ export */

static int write_file_text(const char *path, const char *text, char *why, size_t whylen)
{
	size_t len = strlen(text);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int ret = -1;

	if (fd < 0) {
		snprintf(why, whylen, "cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0)
		snprintf(why, whylen, "cannot write %s: %s", path, strerror(errno));
	else
		ret = 0;
	close(fd);
	return ret;
}

int sbx_audit_export(const struct sbx_cli *c, const char *state_dir, int64_t since_us,
		     int64_t until_us, enum sbx_export_format fmt, const char *out)
{
	struct range r = { .since = since_us, .until = until_us };
	struct sink s = { 0 };
	struct gather g = { 0 };
	char err[1024] = "", san[1024], sha[HEX + 1], *mpath = NULL, *mtext = NULL;
	json_t *m = NULL;
	bool made = false;
	int fd = -1, rc, ret = SBX_EXIT_REFUSED;

	rc = sbx_audit_check_dir(c, state_dir);
	if (rc)
		return rc;
	/* A range reaching into the future would grow after the export. */
	if (until_us > sbx_now_us())
		r.until = until_us = sbx_now_us();
	if (until_us <= since_us) {
		sbx_cli_usage(c, "audit export", "--until must be after --since");
		return SBX_EXIT_USAGE;
	}
	if (asprintf(&mpath, "%s" MANIFEST_SUFFIX, out) < 0) {
		mpath = NULL;
		sbx_cli_error(c, "out of memory");
		goto out;
	}
	if (access(mpath, F_OK) == 0) {
		sbx_cli_error(c, "%s exists: an export never overwrites one (remove it or choose "
			      "another --out)", mpath);
		goto out;
	}
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		sbx_cli_error(c, "cannot create %s: %s%s", out, strerror(errno),
			      errno == EEXIST ? " (an export never overwrites a file)" : "");
		goto out;
	}
	made = true;
	s.out = fdopen(fd, "w");
	s.sha = EVP_MD_CTX_new();
	if (!s.out || !s.sha || !EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL)) {
		sbx_cli_error(c, "cannot set up the export: %s", strerror(errno));
		goto out;
	}
	fd = -1;
	if (gather_range(state_dir, &r, &s, fmt, &g, err, sizeof(err)) < 0) {
		sbx_cli_error(c, "reading the journal in %s failed: %s", state_dir,
			      sbx_sanitize(err, san, sizeof(san)));
		goto out;
	}
	if (fflush(s.out) != 0 || s.io_err || fsync(fileno(s.out)) < 0) {
		sbx_cli_error(c, "cannot write %s: %s", out, strerror(errno));
		goto out;
	}
	sha_hex(s.sha, sha);
	m = manifest_build(&g, fmt, s.off, sha);
	mtext = m ? manifest_text(m) : NULL;
	if (!mtext) {
		sbx_cli_error(c, "out of memory");
		goto out;
	}
	if (write_file_text(mpath, mtext, err, sizeof(err)) < 0) {
		sbx_cli_error(c, "%s", sbx_sanitize(err, san, sizeof(san)));
		goto out;
	}
	if (r.first)
		fprintf(stderr, "%s: exported %" PRIu64 " records (seq %" PRIu64 "..%" PRIu64
			") to %s; manifest %s\n", c->prog, r.last - r.first + 1, r.first, r.last,
			out, mpath);
	else
		fprintf(stderr, "%s: no records in the range; %s is empty of records, manifest "
			"%s\n", c->prog, out, mpath);
	if (r.first && sealed_through(&g) < r.last)
		fprintf(stderr, "%s: records %" PRIu64 "..%" PRIu64 " are not sealed yet: "
			"verify-export --key cannot prove them (export again after the next seal, "
			"audit.seal_every)\n", c->prog,
			sealed_through(&g) ? sealed_through(&g) + 1 : r.first, r.last);
	ret = SBX_EXIT_OK;
out:
	if (s.out)
		fclose(s.out);
	if (fd >= 0)
		close(fd);
	if (ret != SBX_EXIT_OK && made)
		(void)unlink(out);
	EVP_MD_CTX_free(s.sha);
	gather_free(&g);
	json_decref(m);
	free(mtext);
	free(mpath);
	return ret;
}

/* ------------------------------------------------------------ verify */

/* What verify-export found wrong, in the order found (the first few). */
#define MAX_PROBLEMS 8
struct verdict {
	char what[MAX_PROBLEMS][768];
	int n;
};

static void __attribute__((format(printf, 2, 3))) problem(struct verdict *v, const char *fmt, ...)
{
	char raw[768];
	va_list ap;

	if (v->n >= MAX_PROBLEMS)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	sbx_sanitize(raw, v->what[v->n++], sizeof(v->what[0]));
}

static char *read_small_file(const char *path, size_t max, size_t *len, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;

	if (fd < 0) {
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		snprintf(why, whylen, "%s is not a regular file of at most %zu bytes", path, max);
		goto fail;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(why, whylen, "cannot read %s: %s", path, n ? strerror(errno) : "short");
			goto fail;
		}
		got += (size_t)n;
	}
	buf[got] = '\0';
	*len = got;
	close(fd);
	return buf;
fail:
	free(buf);
	close(fd);
	return NULL;
}

/* The manifest's claims, read back. */
struct claims {
	json_t *m;
	enum sbx_export_format fmt;
	struct range r;
	uint64_t first, last;
	const char *first_prev, *sha;
	json_t *after;
};

static int read_claims(const char *text, size_t len, struct claims *cl, struct verdict *v)
{
	json_error_t e;
	const char *fmt, *since, *until;
	json_t *first;

	cl->m = json_loadb(text, len, 0, &e);
	if (!cl->m || !json_is_object(cl->m)) {
		problem(v, "the manifest is not a JSON object (line %d, column %d: %s)", e.line,
			e.column, cl->m ? "not an object" : e.text);
		return -1;
	}
	if (json_integer_value(json_object_get(cl->m, "sbx_export")) != MANIFEST_VERSION) {
		problem(v, "the manifest's sbx_export is not %d: not an sbx export manifest, or a "
			"newer one", MANIFEST_VERSION);
		return -1;
	}
	fmt = json_string_value(json_object_get(cl->m, "format"));
	since = json_string_value(json_object_get(cl->m, "since"));
	until = json_string_value(json_object_get(cl->m, "until"));
	if (!fmt || sbx_export_parse_format(fmt, &cl->fmt) < 0) {
		problem(v, "the manifest's format is not jsonl, json or csv");
		return -1;
	}
	if (!since || !until || sbx_parse_rfc3339_us(since, &cl->r.since) < 0 ||
	    sbx_parse_rfc3339_us(until, &cl->r.until) < 0) {
		problem(v, "the manifest's since or until is not an RFC 3339 time");
		return -1;
	}
	first = json_object_get(cl->m, "first_seq");
	cl->first = json_is_integer(first) ? (uint64_t)json_integer_value(first) : 0;
	cl->last = (uint64_t)json_integer_value(json_object_get(cl->m, "last_seq"));
	cl->first_prev = json_string_value(json_object_get(cl->m, "first_prev"));
	cl->sha = json_string_value(json_object_get(cl->m, "sha256"));
	cl->after = json_object_get(cl->m, "after");
	if (!cl->sha || !json_is_array(cl->after) || (first && !json_is_null(first) &&
	    (!cl->first || !cl->first_prev || strlen(cl->first_prev) != HEX))) {
		problem(v, "the manifest lacks sha256, after, or a well-formed first_seq/first_prev");
		return -1;
	}
	return 0;
}

/* Compare the manifest as given with the one the facts make: name the
 * first member that differs, else the first byte. */
static void compare_manifest(const json_t *want, const char *want_text, const struct claims *cl,
			     const char *text, size_t len, struct verdict *v)
{
	const char *key;
	json_t *w;

	json_object_foreach((json_t *)want, key, w) {
		json_t *g = json_object_get(cl->m, key);
		char *ws, *gs;

		if (g && json_equal(w, g))
			continue;
		ws = json_dumps(w, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
		gs = g ? json_dumps(g, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) : NULL;
		problem(v, "the manifest's %s is %.200s%s, but it should be %.200s%s", key,
			gs ? gs : "missing", gs && strlen(gs) > 200 ? "..." : "", ws ? ws : "?",
			ws && strlen(ws) > 200 ? "..." : "");
		free(ws);
		free(gs);
		return;
	}
	json_object_foreach(cl->m, key, w) {
		if (!json_object_get(want, key)) {
			problem(v, "the manifest has a member it should not have: %.100s", key);
			return;
		}
	}
	if (strlen(want_text) != len || memcmp(want_text, text, len) != 0) {
		size_t i = 0;

		while (i < len && want_text[i] == text[i])
			i++;
		problem(v, "the manifest's text differs from what sbxctl writes at byte %zu "
			"(its members are right: spacing or order was changed)", i);
	}
}

static void report_diff(const struct sink *s, const char *file, const char *against,
			struct verdict *v)
{
	if (!s->differs)
		return;
	if (s->diff_in_record)
		problem(v, "%s differs from %s at byte %" PRIu64 ", in the record with seq %"
			PRIu64, file, against, s->diff_off, s->diff_seq);
	else
		problem(v, "%s differs from %s at byte %" PRIu64 " (%s)", file, against,
			s->diff_off, s->diff_off ? "after the last record: bytes added or cut" :
			"its first line");
}

/* Lines back out of an export, for the check with the key. */
struct extractor {
	FILE *f;
	enum sbx_export_format fmt;
	char *buf;
	size_t cap;
	struct sbx_csv_buf cell;
	bool started, ended;
};

/* The last cell of a CSV row (the journal line), unquoted, into x->cell. */
static int csv_last_cell(struct extractor *x, const char *row, size_t len)
{
	size_t i = 0;

	for (;;) {
		x->cell.len = 0;
		if (x->cell.p)
			x->cell.p[0] = '\0';
		if (i < len && row[i] == '"') {
			for (i++;; i++) {
				if (i >= len)
					return -1;
				if (row[i] == '"' && i + 1 < len && row[i + 1] == '"') {
					sbx_csv_buf_add(&x->cell, "\"", 1);
					i++;
				} else if (row[i] == '"') {
					i++;
					break;
				} else {
					sbx_csv_buf_add(&x->cell, row + i, 1);
				}
			}
		} else {
			size_t j = i;

			while (j < len && row[j] != ',')
				j++;
			sbx_csv_buf_add(&x->cell, row + i, j - i);
			i = j;
		}
		if (i == len)
			return x->cell.oom ? -1 : 0;
		if (row[i] != ',')
			return -1;
		i++;
	}
}

/* The next journal line of the export: 1 with line/len, 0 at the end,
 * -1 with why. */
static int extract_next(struct extractor *x, const char **line, size_t *len, char *why,
			size_t whylen)
{
	ssize_t n;

	if (x->ended)
		return 0;
	if (!x->started) {
		x->started = true;
		if (x->fmt != SBX_EXPORT_JSONL) {
			n = getline(&x->buf, &x->cap, x->f);
			if (n < 0 || (x->fmt == SBX_EXPORT_JSON && strcmp(x->buf, "[\n") != 0) ||
			    (x->fmt == SBX_EXPORT_CSV && strcmp(x->buf, SBX_CSV_HEADER) != 0)) {
				snprintf(why, whylen, "its first line is not the %s header",
					 fmt_names[x->fmt]);
				return -1;
			}
		}
	}
	n = getline(&x->buf, &x->cap, x->f);
	if (n < 0) {
		x->ended = true;
		if (x->fmt == SBX_EXPORT_JSON) {
			snprintf(why, whylen, "it ends without the closing ]");
			return -1;
		}
		return 0;
	}
	if (x->buf[n - 1] != '\n') {
		snprintf(why, whylen, "its last line is not terminated");
		return -1;
	}
	x->buf[--n] = '\0';
	switch (x->fmt) {
	case SBX_EXPORT_JSONL:
		break;
	case SBX_EXPORT_JSON:
		if (strcmp(x->buf, "]") == 0) {
			x->ended = true;
			return 0;
		}
		if (n && x->buf[n - 1] == ',')
			x->buf[--n] = '\0';
		break;
	case SBX_EXPORT_CSV:
		if (!n || x->buf[n - 1] != '\r' || csv_last_cell(x, x->buf, (size_t)n - 1) < 0) {
			snprintf(why, whylen, "a row is not well-formed CSV ending in CRLF");
			return -1;
		}
		*line = x->cell.p ? x->cell.p : "";
		*len = x->cell.len;
		return 1;
	}
	*line = x->buf;
	*len = (size_t)n;
	return 1;
}

/* The check with the key: the chain of the export's lines and the
 * manifest's "after" lines, and every seal among them. */
struct keycheck {
	const struct sbx_seal_vkey *vk;
	struct gather g;
	struct range r;
	uint64_t expect;
	char prev[HEX + 1];
	bool have_seal;
	uint64_t seal_epoch, seal_seq;
	struct verdict *v;
	bool broken;            /* stop checking: the chain is not to be trusted */
};

static void key_seal(struct keycheck *k, const char *line, size_t len, uint64_t seq)
{
	char err[256] = "", mac[65], prev[HEX + 1];
	uint8_t key[SBX_SEAL_KEY_LEN];
	json_t *rec = sbx_journal_line_parse(line, len, err, sizeof(err)), *sum;
	struct sbx_seal_fields f = { 0 };
	json_int_t epoch, first, last;
	const char *given;

	if (!rec) {
		problem(k->v, "the seal at seq %" PRIu64 " cannot be read: %s", seq, err);
		k->broken = true;
		return;
	}
	f.key_id = json_string_value(json_object_get(rec, "key_id"));
	epoch = json_integer_value(json_object_get(rec, "epoch"));
	first = json_integer_value(json_object_get(rec, "first_seq"));
	last = json_integer_value(json_object_get(rec, "last_seq"));
	f.from = json_string_value(json_object_get(rec, "from"));
	f.until = json_string_value(json_object_get(rec, "time"));
	f.head = json_string_value(json_object_get(rec, "head"));
	f.why = json_string_value(json_object_get(rec, "why"));
	given = json_string_value(json_object_get(rec, "mac"));
	f.epoch = (uint64_t)epoch;
	f.first_seq = (uint64_t)first;
	f.last_seq = (uint64_t)last;
	line_prev(line, len, prev);
	sum = seal_summary(line, len, err, sizeof(err));
	if (!sum || json_array_append_new(k->g.seals, sum) < 0) {
		problem(k->v, "out of memory");
		k->broken = true;
		goto out;
	}
	if (!f.key_id || !f.from || !f.until || !f.head || !f.why || !given || epoch < 0 ||
	    first < 1 || last < 0) {
		problem(k->v, "the seal at seq %" PRIu64 " lacks one of its fields", seq);
		k->broken = true;
		goto out;
	}
	if (strcmp(f.key_id, k->vk->key_id) != 0) {
		problem(k->v, "the seal at seq %" PRIu64 " was made with key %s, not with the "
			"verification key's %s", seq, f.key_id, k->vk->key_id);
		k->broken = true;
		goto out;
	}
	if (k->have_seal && (f.epoch != k->seal_epoch + 1 || f.first_seq != k->seal_seq + 1)) {
		problem(k->v, "the seal at seq %" PRIu64 " is for epoch %" PRIu64 " from seq %"
			PRIu64 ", but the seal before (seq %" PRIu64 ") was epoch %" PRIu64
			": a seal is missing, or records were inserted or deleted", seq, f.epoch,
			f.first_seq, k->seal_seq, k->seal_epoch);
		k->broken = true;
		goto out;
	}
	if (!k->have_seal && f.first_seq > k->r.first) {
		problem(k->v, "the first seal (seq %" PRIu64 ", epoch %" PRIu64 ") covers seqs "
			"from %" PRIu64 ", after the export's first record %" PRIu64 ": its epoch's "
			"seal is missing", seq, f.epoch, f.first_seq, k->r.first);
		k->broken = true;
		goto out;
	}
	if (f.last_seq + 1 != seq || strcmp(f.head, prev) != 0) {
		problem(k->v, "the seal at seq %" PRIu64 " (epoch %" PRIu64 ") vouches for seq %"
			PRIu64 " with head %.12s..., but the record before it hashes to %.12s...: "
			"records %" PRIu64 "..%" PRIu64 " were rewritten", seq, f.epoch, f.last_seq,
			f.head, prev, f.first_seq, seq - 1);
		k->broken = true;
		goto out;
	}
	sbx_seal_derive(k->vk->k0, f.epoch, key);
	if (sbx_seal_mac(key, &f, mac) < 0 || strlen(given) != HEX ||
	    CRYPTO_memcmp(mac, given, HEX) != 0) {
		problem(k->v, "the seal at seq %" PRIu64 " (epoch %" PRIu64 ") has a wrong MAC "
			"for the verification key: records %" PRIu64 "..%" PRIu64 " or the seal were "
			"changed and re-hashed, or forged", seq, f.epoch, f.first_seq, f.last_seq);
		k->broken = true;
	}
	OPENSSL_cleanse(key, sizeof(key));
	k->have_seal = true;
	k->seal_epoch = f.epoch;
	k->seal_seq = seq;
out:
	json_decref(rec);
}

/* One line of the chain (the export's, then the manifest's after). */
static void key_line(struct keycheck *k, const char *line, size_t len, bool in_export)
{
	char err[512] = "", hash[65];
	uint64_t seq = k->expect;

	if (k->broken)
		return;
	if (sbx_record_check(line, len, seq, k->prev, hash, NULL, err, sizeof(err)) < 0) {
		problem(k->v, "%s %s", in_export ? "the export:" : "the manifest's after:", err);
		k->broken = true;
		return;
	}
	if (in_export) {
		if (seq == k->r.first) {
			memcpy(k->g.first_hash, hash, sizeof(hash));
			memcpy(k->g.first_prev, k->prev, sizeof(k->prev));
		}
		memcpy(k->g.last_hash, hash, sizeof(hash));
		k->r.last = seq;
	} else if (json_array_append_new(k->g.after, json_stringn(line, len)) < 0) {
		problem(k->v, "out of memory");
		k->broken = true;
		return;
	}
	if (memmem(line, len, SEAL_TEXT, sizeof(SEAL_TEXT) - 1)) {
		key_seal(k, line, len, seq);
		if (!in_export)
			k->g.closed = true;
	}
	memcpy(k->prev, hash, sizeof(hash));
	k->expect++;
}

static int verify_with_key(const char *file, const struct claims *cl,
			   const struct sbx_seal_vkey *vk, struct sink *s, struct keycheck *k,
			   char *why, size_t whylen)
{
	struct extractor x = { .fmt = cl->fmt };
	const char *line;
	size_t len, i;
	json_t *a;
	int rc, ret = -1;

	k->vk = vk;
	k->r = cl->r;
	k->r.first = cl->first;
	k->r.last = 0;
	k->g.r = &k->r;
	k->g.seals = json_array();
	k->g.after = json_array();
	k->expect = cl->first;
	if (cl->first_prev)
		snprintf(k->prev, sizeof(k->prev), "%s", cl->first_prev);
	x.f = fopen(file, "re");
	if (!x.f || !k->g.seals || !k->g.after) {
		snprintf(why, whylen, "cannot open %s: %s", file, strerror(errno));
		goto out;
	}
	render_head(s, cl->fmt);
	while ((rc = extract_next(&x, &line, &len, why, whylen)) > 0) {
		char err[256] = "";

		if (!cl->first) {
			problem(k->v, "the export holds records, but the manifest says it has none");
			k->broken = true;
			break;
		}
		key_line(k, line, len, true);
		if (render_record(s, cl->fmt, line, len, err, sizeof(err)) < 0 && !k->broken) {
			problem(k->v, "the export's record %" PRIu64 " cannot be read: %s",
				k->expect - 1, err);
			k->broken = true;
		}
		if (k->broken)
			break;
	}
	if (rc < 0) {
		problem(k->v, "%s: %s", file, why);
		k->broken = true;
	}
	render_tail(s, cl->fmt);
	if (!k->broken && cl->first && k->r.last == 0) {
		problem(k->v, "the manifest names records from seq %" PRIu64 ", but the export "
			"holds none", cl->first);
		k->broken = true;
	}
	json_array_foreach(cl->after, i, a) {
		if (k->broken)
			break;
		if (!json_is_string(a)) {
			problem(k->v, "the manifest's after holds something that is not a line");
			k->broken = true;
			break;
		}
		key_line(k, json_string_value(a), json_string_length(a), false);
	}
	if (!k->broken && k->r.first && sealed_through(&k->g) < k->r.last)
		problem(k->v, "records %" PRIu64 "..%" PRIu64 " are not covered by any seal: the "
			"key proves nothing about them (export again after the next seal)",
			sealed_through(&k->g) ? sealed_through(&k->g) + 1 : k->r.first, k->r.last);
	ret = 0;
out:
	if (x.f)
		fclose(x.f);
	free(x.buf);
	free(x.cell.p);
	return ret;
}

/* Say what verify-export found: stdout, text or --json. */
static void print_verdict(const struct sbx_cli *c, const char *file, const char *key_file,
			  const struct claims *cl, const struct verdict *v,
			  const struct gather *facts, const char *sha)
{
	if (c->json) {
		json_t *j = json_pack("{s:b, s:s, s:s, s:[]}", "intact", v->n == 0, "file", file,
				      "checked_against", key_file ? "key" : "journal", "problems");

		for (int i = 0; j && i < v->n; i++)
			json_array_append_new(json_object_get(j, "problems"), json_string(v->what[i]));
		if (j && v->n == 0)
			json_object_set_new(j, "records", json_integer((json_int_t)(cl->first ?
					    cl->r.last - cl->first + 1 : 0)));
		if (!j || sbx_out_print_json(stdout, j) < 0)
			sbx_cli_error(c, "out of memory");
		json_decref(j);
	} else if (v->n) {
		printf("export BROKEN: %s\n", v->what[0]);
		for (int i = 1; i < v->n; i++)
			printf("  also: %s\n", v->what[i]);
	} else if (!cl->first) {
		printf("export intact: no records in %s..%s, as the %s says\n",
		       json_string_value(json_object_get(cl->m, "since")),
		       json_string_value(json_object_get(cl->m, "until")),
		       key_file ? "manifest" : "journal");
	} else {
		uint64_t through = sealed_through(facts);

		printf("export intact: %" PRIu64 " records, seq %" PRIu64 "..%" PRIu64 ", %s; "
		       "sha256 %s\n", cl->r.last - cl->first + 1, cl->first, cl->r.last,
		       key_file ? "every one proven by the seals of the verification key" :
		       "identical to the journal", sha);
		if (!key_file && through < cl->r.last)
			printf("records %" PRIu64 "..%" PRIu64 " are not covered by the seals this "
			       "export names: --key cannot prove them (export them again once "
			       "sealed)\n", through ? through + 1 : cl->first, cl->r.last);
	}
}

int sbx_audit_verify_export(const struct sbx_cli *c, const char *state_dir, const char *file,
			    const char *key_file)
{
	struct claims cl = { 0 };
	struct verdict v = { 0 };
	struct sink s = { 0 };
	struct gather g = { 0 };
	struct keycheck k = { .v = &v };
	struct sbx_seal_vkey vk;
	char why[1024] = "", san[1024], sha[HEX + 1] = "", *mpath = NULL, *mtext = NULL;
	char *want_text = NULL;
	const struct gather *facts = NULL;
	json_t *want = NULL;
	size_t mlen = 0;
	int ret = SBX_EXIT_USAGE;

	memset(&vk, 0, sizeof(vk));
	if (asprintf(&mpath, "%s" MANIFEST_SUFFIX, file) < 0) {
		mpath = NULL;
		sbx_cli_error(c, "out of memory");
		goto out;
	}
	if (key_file && sbx_seal_vkey_read(key_file, &vk, why, sizeof(why)) < 0) {
		sbx_cli_error(c, "%s", sbx_sanitize(why, san, sizeof(san)));
		goto out;
	}
	if (!key_file && (ret = sbx_audit_check_dir(c, state_dir)) != 0)
		goto out;
	ret = SBX_EXIT_USAGE;
	mtext = read_small_file(mpath, MANIFEST_MAX, &mlen, why, sizeof(why));
	if (!mtext) {
		sbx_cli_error(c, "%s (an export's manifest is FILE" MANIFEST_SUFFIX ")",
			      sbx_sanitize(why, san, sizeof(san)));
		goto out;
	}
	s.cmp = fopen(file, "re");
	s.sha = EVP_MD_CTX_new();
	if (!s.cmp || !s.sha || !EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL)) {
		sbx_cli_error(c, "cannot open %s: %s", file, strerror(errno));
		goto out;
	}
	ret = SBX_EXIT_REFUSED;
	if (read_claims(mtext, mlen, &cl, &v) < 0)
		goto report;
	if (key_file) {
		if (verify_with_key(file, &cl, &vk, &s, &k, why, sizeof(why)) < 0) {
			sbx_cli_error(c, "%s", sbx_sanitize(why, san, sizeof(san)));
			ret = SBX_EXIT_USAGE;
			goto out;
		}
		cl.r.last = k.r.last;
		if (k.broken)
			goto report;
		facts = &k.g;
	} else {
		struct range r = cl.r;

		if (gather_range(state_dir, &r, &s, cl.fmt, &g, why, sizeof(why)) < 0) {
			sbx_cli_error(c, "reading the journal in %s failed: %s", state_dir,
				      sbx_sanitize(why, san, sizeof(san)));
			ret = SBX_EXIT_USAGE;
			goto out;
		}
		g.r = &cl.r;
		cl.r.first = r.first;
		cl.r.last = r.last;
		/* Exported before the seal after its range was made: the
		 * manifest then rightly had neither that seal nor the records
		 * up to it.  Judge it as of then. */
		if (json_array_size(cl.after) == 0 && g.closed && r.first &&
		    json_array_size(g.seals) &&
		    (uint64_t)json_integer_value(json_object_get(
			    json_array_get(g.seals, json_array_size(g.seals) - 1), "seq")) > r.last) {
			json_array_remove(g.seals, json_array_size(g.seals) - 1);
			json_array_clear(g.after);
		}
		facts = &g;
	}
	if (!s.differs && fgetc(s.cmp) != EOF) {
		s.differs = true;
		s.diff_off = s.off;
		s.diff_in_record = false;
	}
	report_diff(&s, file, key_file ? "what its own records make" : "the journal", &v);
	sha_hex(s.sha, sha);
	want = manifest_build(facts, cl.fmt, s.off, sha);
	want_text = want ? manifest_text(want) : NULL;
	if (!want_text) {
		sbx_cli_error(c, "out of memory");
		goto out;
	}
	if (!s.differs) {
		/* The export is what it should be; its SHA-256 is then the
		 * manifest's to match. */
		compare_manifest(want, want_text, &cl, mtext, mlen, &v);
	}
report:
	print_verdict(c, file, key_file, &cl, &v, facts, sha);
	ret = v.n ? SBX_EXIT_REFUSED : SBX_EXIT_OK;
out:
	OPENSSL_cleanse(&vk, sizeof(vk));
	if (s.cmp)
		fclose(s.cmp);
	EVP_MD_CTX_free(s.sha);
	gather_free(&g);
	gather_free(&k.g);
	json_decref(cl.m);
	json_decref(want);
	free(want_text);
	free(mtext);
	free(mpath);
	return ret;
}
