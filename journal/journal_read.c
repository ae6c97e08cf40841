/*
 * Offline line reader for the audit tools (journal_read.h).  Unlike
 * sbx_journal_foreach it parses nothing: a query that can rule a line out
 * by its text (a user name that does not occur in it) never pays for
 * parsing it, which is what keeps `audit query --user` over a million
 * records within its budget (bench/bench_query.c).
 */
#include "config.h"

#include "journal_read.h"
#include "journal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (1u << 20)

struct reader {
	char *buf;
	size_t cap, len;        /* bytes held; a partial line stays at the start */
};

/* Pass every complete line of one open segment.  0, 1 (stopped), -1. */
static int read_segment(struct reader *r, int fd, const char *name, sbx_journal_line_fn fn,
			void *ctx, char *err, size_t errlen)
{
	r->len = 0;
	for (;;) {
		size_t start = 0;
		ssize_t n;
		char *nl;

		if (r->cap - r->len < READ_CHUNK / 2) {
			/* Only a line longer than the buffer makes it grow. */
			size_t cap = r->cap * 2;
			char *nb;

			if (cap > SBX_JOURNAL_LINE_MAX + 2 * (size_t)READ_CHUNK) {
				snprintf(err, errlen, "journal/%s: a line is longer than %u bytes",
					 name, SBX_JOURNAL_LINE_MAX);
				return -1;
			}
			nb = realloc(r->buf, cap);
			if (!nb) {
				snprintf(err, errlen, "out of memory");
				return -1;
			}
			r->buf = nb;
			r->cap = cap;
		}
		n = read(fd, r->buf + r->len, r->cap - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "cannot read journal/%s: %s", name, strerror(errno));
			return -1;
		}
		if (n == 0)
			return 0;       /* an unterminated rest is a torn tail: skipped */
		r->len += (size_t)n;
		while ((nl = memchr(r->buf + start, '\n', r->len - start))) {
			size_t ll = (size_t)(nl - (r->buf + start));
			int rc = fn(r->buf + start, ll, ctx, err, errlen);

			if (rc)
				return rc < 0 ? -1 : 1;
			start += ll + 1;
		}
		memmove(r->buf, r->buf + start, r->len - start);
		r->len -= start;
	}
}

int sbx_journal_lines(const char *state_dir, uint64_t from_seq, sbx_journal_line_fn fn, void *ctx,
		      char *err, size_t errlen)
{
	struct reader r = { 0 };
	struct sbx_jr_seg *segs = NULL;
	size_t nsegs = 0, first = 0;
	int jdirfd = -1, fd = -1, ret = -1;
	char path[4096];

	if (snprintf(path, sizeof(path), "%s/journal", state_dir) >= (int)sizeof(path)) {
		snprintf(err, errlen, "state dir path too long");
		return -1;
	}
	jdirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (jdirfd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	if (sbx_jr_list_segments(jdirfd, &segs, &nsegs, err, errlen))
		goto out;
	r.cap = READ_CHUNK;
	r.buf = malloc(r.cap);
	if (!r.buf) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	while (first + 1 < nsegs && segs[first + 1].first <= from_seq)
		first++;
	ret = 0;
	for (size_t i = first; i < nsegs && ret == 0; i++) {
		fd = openat(jdirfd, segs[i].name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			snprintf(err, errlen, "cannot open journal/%s: %s", segs[i].name,
				 strerror(errno));
			ret = -1;
			break;
		}
		(void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		ret = read_segment(&r, fd, segs[i].name, fn, ctx, err, errlen);
		close(fd);
		fd = -1;
	}
out:
	free(r.buf);
	free(segs);
	if (jdirfd >= 0)
		close(jdirfd);
	return ret;
}

uint64_t sbx_journal_line_seq(const char *line, size_t len)
{
	return sbx_jr_leading_seq(line, len);
}

json_t *sbx_journal_line_parse(const char *line, size_t len, char *err, size_t errlen)
{
	json_t *rec = sbx_jr_parse(line, len, err, errlen);

	if (rec && !json_is_object(rec)) {
		snprintf(err, errlen, "not a JSON object");
		json_decref(rec);
		return NULL;
	}
	return rec;
}
