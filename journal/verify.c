/*
 * The auditor's one-pass check (verify.h; docs/audit.md, "Verifying").
 *
 * One scan (journal_scan.c) reads every segment once: its helper thread
 * reads and checks each line's shape, SHA-256 and prev; this thread checks
 * the text as JSON without building it (journal_lite.c), feeds the seal
 * checker, compares checkpoints and notes journal.pruned anchors.  Only
 * the journal's own records (journal.*) and lines the text check declines
 * are parsed in full.
 */
#include "config.h"

#include "verify.h"

#include "journal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char zero_hash[SBX_JR_HEX + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

/* ------------------------------------------------------------ checkpoints */

int sbx_checkpoint_parse(const char *text, struct sbx_checkpoint *cp, char *why, size_t whylen)
{
	const char *colon = strchr(text, ':');
	char *end = NULL;
	unsigned long long v;

	if (!colon || colon == text || text[0] < '0' || text[0] > '9') {
		snprintf(why, whylen, "not SEQ:HASH");
		return -1;
	}
	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end != colon || v == 0) {
		snprintf(why, whylen, "not SEQ:HASH (the seq is not a positive number)");
		return -1;
	}
	if (strlen(colon + 1) != SBX_JR_HEX || !sbx_jr_is_hex64(colon + 1)) {
		snprintf(why, whylen, "not SEQ:HASH (the hash is not 64 lowercase hex digits)");
		return -1;
	}
	cp->seq = (uint64_t)v;
	memcpy(cp->hash, colon + 1, SBX_JR_HEX + 1);
	return 0;
}

int sbx_checkpoint_add(struct sbx_checkpoint **cps, size_t *n, const struct sbx_checkpoint *cp)
{
	/* Room for 16, then doubling at each power of two: a collector's
	 * file may hold a seal a minute for years. */
	if (*n == 0 || (*n >= 16 && (*n & (*n - 1)) == 0)) {
		struct sbx_checkpoint *nv = realloc(*cps, (*n ? 2 * *n : 16) * sizeof(**cps));

		if (!nv)
			return -1;
		*cps = nv;
	}
	(*cps)[(*n)++] = *cp;
	return 0;
}

static int checkpoint_json(const char *line, struct sbx_checkpoint *cp, char *why, size_t whylen)
{
	char perr[200] = "";
	json_t *o = sbx_jr_parse(line, strlen(line), perr, sizeof(perr));
	json_t *seq = json_object_get(o, "seq");
	const char *hash = json_string_value(json_object_get(o, "hash"));
	int ret = -1;

	if (!json_is_object(o))
		snprintf(why, whylen, "not a JSON object%s%s", perr[0] ? ": " : "", perr);
	else if (!json_is_integer(seq) || json_integer_value(seq) < 1)
		snprintf(why, whylen, "no positive integer \"seq\"");
	else if (!hash || strlen(hash) != SBX_JR_HEX || !sbx_jr_is_hex64(hash))
		snprintf(why, whylen, "no \"hash\" of 64 lowercase hex digits");
	else {
		cp->seq = (uint64_t)json_integer_value(seq);
		memcpy(cp->hash, hash, SBX_JR_HEX + 1);
		ret = 0;
	}
	json_decref(o);
	return ret;
}

int sbx_checkpoint_read_file(const char *path, struct sbx_checkpoint **cps, size_t *n,
			     char *why, size_t whylen)
{
	FILE *f = fopen(path, "re");
	char *line = NULL, local[256];
	size_t cap = 0, lineno = 0;
	ssize_t len;
	int ret = -1;

	if (!f) {
		snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		struct sbx_checkpoint cp;
		char *p = line;

		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' ||
				   line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = '\0';
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p || *p == '#')
			continue;
		if ((*p == '{' ? checkpoint_json(p, &cp, local, sizeof(local))
			       : sbx_checkpoint_parse(p, &cp, local, sizeof(local))) < 0) {
			snprintf(why, whylen, "%s:%zu: %s", path, lineno, local);
			goto out;
		}
		if (sbx_checkpoint_add(cps, n, &cp) < 0) {
			snprintf(why, whylen, "out of memory");
			goto out;
		}
	}
	if (ferror(f)) {
		snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (lineno == 0) {
		snprintf(why, whylen, "%s holds no checkpoint", path);
		goto out;
	}
	ret = 0;
out:
	free(line);
	fclose(f);
	return ret;
}

/* ------------------------------------------------------------ the pass */

struct seg_end {
	uint64_t seq;
	char hash[SBX_JR_HEX + 1];
};

struct vctx {
	const struct sbx_verify_opts *o;
	struct sbx_verify_result *r;
	struct sbx_jr_scan_result *res;
	struct sbx_seal_check *sc;
	uint64_t first;                 /* the journal's first seq */
	char first_prev[SBX_JR_HEX + 1];/* what record first's prev says */
	const char *first_name;         /* its segment's file, when first > 1 */
	/* Checkpoints, sorted by seq (idx into o->cps); the next one due. */
	size_t *order, next_cp;
	/* The last record of each segment read so far. */
	struct seg_end *ends;
	size_t nends, cur_seg;
	uint64_t prev_seq;
	char prev_hash[SBX_JR_HEX + 1];
	bool have_prev;
};

static int __attribute__((format(printf, 5, 6)))
vfail(struct vctx *v, uint64_t seq, char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	v->r->bad_seq = seq;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

static const struct sbx_checkpoint *cp_at(const struct vctx *v, size_t k)
{
	return &v->o->cps[v->order[k]];
}

static int cp_fail(struct vctx *v, size_t k, uint64_t seq, char *err, size_t errlen,
		   const char *what)
{
	const struct sbx_checkpoint *cp = cp_at(v, k);

	v->r->bad_checkpoint = v->order[k] + 1;
	return vfail(v, seq, err, errlen, "checkpoint %zu (%" PRIu64 ":%.16s...): %s",
		     v->order[k] + 1, cp->seq, cp->hash, what);
}

/* Is (seq, hash) the last record of a segment read so far? */
static const struct seg_end *seg_end_of(const struct vctx *v, uint64_t seq)
{
	for (size_t i = 0; i < v->nends; i++)
		if (v->ends[i].seq == seq)
			return &v->ends[i];
	return NULL;
}

/* A journal.pruned record: first_seq, last_seq, last_hash, files. */
/* Does the journal.pruned record name the segment file? */
static bool names_file(const json_t *rec, const char *name)
{
	const json_t *f;
	size_t i;

	json_array_foreach(json_object_get(rec, "files"), i, f)
		if (json_is_string(f) && strcmp(json_string_value(f), name) == 0)
			return true;
	return false;
}

static int on_pruned(struct vctx *v, const json_t *rec, uint64_t seq, char *err, size_t errlen)
{
	const json_t *l = json_object_get(rec, "last_seq"), *fs = json_object_get(rec, "first_seq");
	const char *h = json_string_value(json_object_get(rec, "last_hash"));
	const struct seg_end *e;
	uint64_t last;
	char what[200];

	if (!json_is_integer(l) || json_integer_value(l) < 1 || !json_is_integer(fs) ||
	    json_integer_value(fs) < 1 || json_integer_value(fs) > json_integer_value(l) || !h ||
	    strlen(h) != SBX_JR_HEX || !json_is_array(json_object_get(rec, "files")))
		return vfail(v, seq, err, errlen, "journal: record seq %" PRIu64 ": a journal.pruned "
			     "record lacks first_seq, last_seq, last_hash or files", seq);
	last = (uint64_t)json_integer_value(l);
	if (last + 1 == v->first) {
		if (strcmp(h, v->first_prev) != 0)
			return vfail(v, v->first, err, errlen, "journal: record seq %" PRIu64 ": the "
				     "journal.pruned record at seq %" PRIu64 " says record %" PRIu64
				     " hashed to %.12s..., but record %" PRIu64 " says its prev is "
				     "%.12s...: the journal's start was cut or rewritten", v->first,
				     seq, last, h, v->first, v->first_prev);
		v->r->anchor_seq = seq;
		return 0;
	}
	if (last >= v->first) {
		/* Recorded, then the broker stopped before the files went:
		 * what it names must still be there as it says. */
		e = seg_end_of(v, last);
		if (!e)
			snprintf(what, sizeof(what), "no segment ends at seq %" PRIu64, last);
		else
			snprintf(what, sizeof(what), "record %" PRIu64 " hashes to %.12s...", last,
				 e->hash);
		if (!e || strcmp(e->hash, h) != 0) {
			return vfail(v, seq, err, errlen, "journal: record seq %" PRIu64 ": the "
				     "journal.pruned record names seqs up to %" PRIu64 " with hash "
				     "%.12s..., but %s", seq, last, h, what);
		}
		/* A pruning interrupted between two removals: the journal
		 * starts at a segment of the range the record names, and the
		 * rest of that range is still here as it says (its end hashes
		 * as recorded, and the chain up to it holds).  The next
		 * retention pass removes the rest. */
		if (v->first > 1 && v->first_name && !v->r->anchor_seq &&
		    (uint64_t)json_integer_value(fs) < v->first && names_file(rec, v->first_name))
			v->r->anchor_seq = seq;
	}
	return 0;
}

/* Checkpoints at this record. */
static int checkpoints_at(struct vctx *v, uint64_t seq, const char *hash, char *err,
			  size_t errlen)
{
	while (v->next_cp < v->o->ncps && cp_at(v, v->next_cp)->seq == seq) {
		char what[256];

		if (memcmp(cp_at(v, v->next_cp)->hash, hash, SBX_JR_HEX) != 0) {
			snprintf(what, sizeof(what), "record %" PRIu64 " hashes to %.16s...: the "
				 "journal was rewritten up to it", seq, hash);
			return cp_fail(v, v->next_cp, seq, err, errlen, what);
		}
		v->r->checkpoints_ok++;
		v->next_cp++;
	}
	return 0;
}

static int verify_rec(json_t *rec, const char *line, size_t len, void *arg, char *err,
		      size_t errlen)
{
	struct vctx *v = arg;
	const struct sbx_jr_lite *lite = v->res->lite;
	const char *hash = line + len - SBX_JR_HEX - 2;
	json_t *own = NULL;
	uint64_t seq, bad = 0;
	char serr[768];
	bool special;
	int ret = -1;

	seq = lite ? lite->seq : (uint64_t)json_integer_value(json_object_get(rec, "seq"));
	/* A new segment: the previous record ended the last one. */
	if (v->have_prev && v->res->cur_seg != v->cur_seg) {
		v->ends[v->nends].seq = v->prev_seq;
		memcpy(v->ends[v->nends].hash, v->prev_hash, sizeof(v->prev_hash));
		v->nends++;
	}
	v->cur_seg = v->res->cur_seg;
	if (lite)
		special = lite->event_len > 8 && memcmp(lite->event, "journal.", 8) == 0;
	else
		special = strncmp(json_string_value(json_object_get(rec, "event")) ?: "", "journal.",
				  8) == 0;
	if (special && !rec) {
		rec = own = sbx_jr_parse(line, len, NULL, 0);
		if (!rec) {
			vfail(v, seq, err, errlen, "journal: record seq %" PRIu64 ": cannot parse it",
			      seq);
			goto out;
		}
	}
	if (v->sc) {
		int rc = rec ? sbx_seal_check_record(v->sc, rec, &bad, serr, sizeof(serr))
			     : sbx_seal_check_plain(v->sc, seq, lite->time, lite->time_len,
						    lite->has_fleet_hash, &bad, serr, sizeof(serr));

		if (rc < 0) {
			vfail(v, bad, err, errlen, "%s", serr);
			goto out;
		}
	}
	if (special && strcmp(json_string_value(json_object_get(rec, "event")) ?: "",
			      SBX_PRUNED_EVENT) == 0 && on_pruned(v, rec, seq, err, errlen) < 0)
		goto out;
	if (checkpoints_at(v, seq, hash, err, errlen) < 0)
		goto out;
	v->r->records++;
	v->r->last_seq = seq;
	v->prev_seq = seq;
	memcpy(v->prev_hash, hash, SBX_JR_HEX);
	v->prev_hash[SBX_JR_HEX] = '\0';
	v->have_prev = true;
	ret = 0;
out:
	json_decref(own);
	return ret;
}

/* The first line of the first segment: its seq and what its prev says. */
static int first_line(int jdirfd, const struct sbx_jr_seg *seg, char prev[SBX_JR_HEX + 1],
		      char *err, size_t errlen)
{
	size_t cap = SBX_JOURNAL_LINE_MAX + 1;
	char *buf = malloc(cap), *nl;
	int fd = openat(jdirfd, seg->name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t r = -1;
	int ret = -1;

	if (fd >= 0 && buf) {
		do {
			r = pread(fd, buf, cap, 0);
		} while (r < 0 && errno == EINTR);
	}
	if (r < 0) {
		snprintf(err, errlen, "journal: cannot read journal/%s: %s", seg->name,
			 buf ? strerror(errno) : "out of memory");
		goto out;
	}
	nl = memchr(buf, '\n', (size_t)r);
	if (!nl || sbx_jr_leading_seq(buf, (size_t)(nl - buf)) != seg->first ||
	    !sbx_jr_tail_ok(buf, (size_t)(nl - buf))) {
		snprintf(err, errlen, "journal: record seq %" PRIu64 ": malformed record (not "
			 "{\"seq\":N,...,\"prev\":...,\"hash\":...}) (journal/%s:1)", seg->first,
			 seg->name);
		goto out;
	}
	memcpy(prev, nl - SBX_JR_TAIL + 9, SBX_JR_HEX);
	prev[SBX_JR_HEX] = '\0';
	ret = 0;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}

struct cp_key {
	uint64_t seq;
	size_t idx;
};

static int cp_key_cmp(const void *a, const void *b)
{
	const struct cp_key *x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Indices into cps in seq order (a collector's file may hold a seal a
 * minute for years).  0 or -1 (out of memory). */
static int sort_checkpoints(const struct sbx_checkpoint *cps, size_t *order, size_t n)
{
	struct cp_key *k = calloc(n + 1, sizeof(*k));

	if (!k)
		return -1;
	for (size_t i = 0; i < n; i++) {
		k[i].seq = cps[i].seq;
		k[i].idx = i;
	}
	qsort(k, n, sizeof(*k), cp_key_cmp);
	for (size_t i = 0; i < n; i++)
		order[i] = k[i].idx;
	free(k);
	return 0;
}

/* Checkpoints the records did not reach: before a pruned start, or past
 * the end. */
static int checkpoints_left(struct vctx *v, char *err, size_t errlen)
{
	for (size_t k = 0; k < v->o->ncps; k++) {
		const struct sbx_checkpoint *cp = cp_at(v, k);
		char what[256];

		if (cp->seq + 1 == v->first) {
			if (strcmp(cp->hash, v->first_prev) != 0) {
				snprintf(what, sizeof(what), "record %" PRIu64 " (pruned) hashed to "
					 "%.16s... by the anchor: the journal was rewritten up to it",
					 cp->seq, v->first_prev);
				return cp_fail(v, k, cp->seq, err, errlen, what);
			}
			v->r->checkpoints_ok++;
		} else if (cp->seq < v->first) {
			v->r->checkpoints_pruned++;
		} else if (cp->seq > v->r->last_seq) {
			snprintf(what, sizeof(what), "the journal ends at seq %" PRIu64 ": records "
				 "up to it were cut", v->r->last_seq);
			return cp_fail(v, k, v->r->last_seq + 1, err, errlen, what);
		}
	}
	return 0;
}

int sbx_journal_audit(const struct sbx_verify_opts *o, struct sbx_verify_result *r, char *err,
		      size_t errlen)
{
	struct sbx_jr_scan_opts so = { .mode = SBX_JR_VERIFY, .expect_seq = 1,
				       .max_seq = UINT64_MAX, .lite = true };
	struct sbx_jr_scan_result res;
	struct vctx v = { .o = o, .r = r, .res = &res, .first = 1 };
	struct sbx_seal_state host;
	struct sbx_jr_seg *segs = NULL;
	bool have_host = false;
	char path[4096], why[512], host_err[768] = "";
	size_t nsegs = 0;
	int jdirfd = -1, ret = -1, rc;

	memset(r, 0, sizeof(*r));
	memset(&res, 0, sizeof(res));
	memset(&host, 0, sizeof(host));
	err[0] = '\0';
	memcpy(v.first_prev, zero_hash, sizeof(v.first_prev));
	if (snprintf(path, sizeof(path), "%s/journal", o->state_dir) >= (int)sizeof(path)) {
		snprintf(err, errlen, "journal: state dir path too long");
		return -1;
	}
	jdirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (jdirfd < 0) {
		snprintf(err, errlen, "journal: no journal under %s (%s: %s)", o->state_dir, path,
			 strerror(errno));
		return -1;
	}
	if (sbx_jr_list_segments(jdirfd, &segs, &nsegs, err, errlen))
		goto out;
	v.order = calloc(o->ncps + 1, sizeof(*v.order));
	v.ends = calloc(nsegs + 1, sizeof(*v.ends));
	if (!v.order || !v.ends || sort_checkpoints(o->cps, v.order, o->ncps) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	/* A pruned journal starts where its first segment does; a
	 * journal.pruned record must account for what is gone. */
	if (nsegs && segs[0].first != 1) {
		v.first = segs[0].first;
		v.first_name = segs[0].name;
		if (first_line(jdirfd, &segs[0], v.first_prev, err, errlen)) {
			r->bad_seq = v.first;
			goto out;
		}
	}
	r->first_seq = nsegs ? v.first : 0;
	r->last_seq = v.first - 1;
	if (o->vk && !o->no_host_key) {
		rc = sbx_seal_state_read(o->state_dir, &host, why, sizeof(why));
		if (rc < 0)
			snprintf(host_err, sizeof(host_err), "cannot check the end of the journal: "
				 "%s%s", why, rc == -ENOENT ? " (without the host's key file nobody "
				 "can tell whether seals were cut from the end; --no-host-key checks "
				 "a copy without it)" : "");
		else
			have_host = true;
	}
	/* Without the host's key file the seals are not worth checking: the
	 * chain is, and decides which error comes first. */
	if (o->vk && !host_err[0]) {
		v.sc = sbx_seal_check_new(o->vk);
		if (!v.sc) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		if (o->standalone)
			sbx_seal_check_standalone(v.sc);
		sbx_seal_check_start_at(v.sc, v.first);
	}
	while (v.next_cp < o->ncps && cp_at(&v, v.next_cp)->seq < v.first)
		v.next_cp++;
	so.jdirfd = jdirfd;
	so.segs = segs;
	so.nsegs = nsegs;
	so.expect_seq = v.first;
	memcpy(so.prev, v.first_prev, sizeof(so.prev));
	if (sbx_jr_scan(&so, verify_rec, &v, &res, err, errlen)) {
		if (!r->bad_seq)
			r->bad_seq = res.bad_seq;
		goto out;
	}
	if (v.first > 1 && !r->anchor_seq) {
		r->bad_seq = 1;
		snprintf(err, errlen, "journal: record seq 1: missing (the first segment is "
			 "journal/%s, and no journal.pruned record names seq %" PRIu64 " with the "
			 "hash record %" PRIu64 "'s prev says: records 1..%" PRIu64 " were removed "
			 "without a record of it)", segs[0].name, v.first - 1, v.first, v.first - 1);
		goto out;
	}
	if (checkpoints_left(&v, err, errlen))
		goto out;
	if (v.sc) {
		uint64_t bad = 0;

		if (sbx_seal_check_end(v.sc, have_host ? &host : NULL, &r->seal, &bad, err,
				       errlen) < 0) {
			r->bad_seq = bad;
			goto out;
		}
	}
	if (host_err[0]) {
		r->bad_seq = r->last_seq + 1;
		snprintf(err, errlen, "%s", host_err);
		goto out;
	}
	ret = 0;
out:
	sbx_seal_state_wipe(&host);
	sbx_seal_check_free(v.sc);
	free(v.order);
	free(v.ends);
	free(segs);
	if (jdirfd >= 0)
		close(jdirfd);
	return ret;
}
