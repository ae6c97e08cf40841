/*
 * Retention: removing whole old segments (journal.h, "retention";
 * docs/audit.md, "Retention").  The plan is read from the files; the
 * caller records it (journal.pruned, then a seal) before the files go,
 * so a crash in between leaves the files and a record that names them,
 * which verify accepts and the next pruning removes.
 */
#include "config.h"

#include "journal_int.h"

#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The last complete line of a segment: its seq, hash and time. */
static int last_record(int jdirfd, const char *name, uint64_t *seq, char hash[SBX_JR_HEX + 1],
		       int64_t *time_us, char *err, size_t errlen)
{
	static const char tkey[] = "\"time\":\"";
	size_t want = SBX_JOURNAL_LINE_MAX + 2;
	char *buf = malloc(want), *end, *start, *t, *q, ts[SBX_RFC3339_LEN];
	int fd = openat(jdirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	ssize_t r = -1;
	size_t len, n;
	int ret = -1;

	if (fd < 0 || !buf || fstat(fd, &st)) {
		snprintf(err, errlen, "journal: cannot read journal/%s: %s", name,
			 buf ? strerror(errno) : "out of memory");
		goto out;
	}
	n = (uint64_t)st.st_size < want ? (size_t)st.st_size : want;
	if (n)
		r = pread(fd, buf, n, (off_t)((uint64_t)st.st_size - n));
	if (r != (ssize_t)n || n < 2 || buf[n - 1] != '\n') {
		snprintf(err, errlen, "journal: journal/%s does not end with a complete record", name);
		goto out;
	}
	end = buf + n - 1;
	start = memrchr(buf, '\n', (size_t)(end - buf));
	start = start ? start + 1 : buf;
	len = (size_t)(end - start);
	*seq = sbx_jr_leading_seq(start, len);
	t = memmem(start, len, tkey, sizeof(tkey) - 1);
	if (!*seq || !sbx_jr_tail_ok(start, len) || !t ||
	    (size_t)(end - t) < sizeof(tkey) - 1 + SBX_RFC3339_LEN) {
		snprintf(err, errlen, "journal: the last record of journal/%s is malformed", name);
		goto out;
	}
	t += sizeof(tkey) - 1;
	q = memchr(t, '"', (size_t)(end - t));
	n = q ? (size_t)(q - t) : 0;
	if (!q || n >= sizeof(ts)) {
		snprintf(err, errlen, "journal: the last record of journal/%s has no time", name);
		goto out;
	}
	memcpy(ts, t, n);
	ts[n] = '\0';
	if (sbx_parse_rfc3339_us(ts, time_us) < 0) {
		snprintf(err, errlen, "journal: the last record of journal/%s has a bad time", name);
		goto out;
	}
	memcpy(hash, end - SBX_JR_HEX - 2, SBX_JR_HEX);
	hash[SBX_JR_HEX] = '\0';
	ret = 0;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return ret;
}

int sbx_journal_prune_plan(struct sbx_journal *j, int64_t before_us, struct sbx_prune_plan *plan,
			   char *err, size_t errlen)
{
	uint64_t limit = sbx_jr_snap_seal_seq(j), current = sbx_jr_current_segment(j);
	struct sbx_jr_seg *segs = NULL;
	size_t nsegs = 0;
	int ret = -1;

	memset(plan, 0, sizeof(*plan));
	if (sbx_jr_list_segments(sbx_jr_jdirfd(j), &segs, &nsegs, err, errlen))
		return -1;
	/* Oldest first, whole segments, never the one being appended to,
	 * and only wholly before the seal the snapshot names. */
	for (size_t i = 0; i + 1 < nsegs && plan->nfiles < SBX_PRUNE_MAX_FILES; i++) {
		uint64_t seq;
		char hash[SBX_JR_HEX + 1];
		int64_t t;

		if (segs[i].first == current || segs[i + 1].first > limit)
			break;
		if (last_record(sbx_jr_jdirfd(j), segs[i].name, &seq, hash, &t, err, errlen))
			goto out;
		if (t >= before_us || seq + 1 != segs[i + 1].first)
			break;
		if (!plan->nfiles)
			plan->first_seq = segs[i].first;
		plan->last_seq = seq;
		memcpy(plan->last_hash, hash, sizeof(hash));
		plan->last_time_us = t;
		snprintf(plan->files[plan->nfiles++], SBX_PRUNE_NAME_MAX, "%s", segs[i].name);
	}
	ret = plan->nfiles ? 1 : 0;
out:
	free(segs);
	return ret;
}

json_t *sbx_prune_fields(const struct sbx_prune_plan *plan, int64_t before_us)
{
	char ts[SBX_RFC3339_LEN];
	json_t *files = json_array(), *f;

	if (!files)
		return NULL;
	for (size_t i = 0; i < plan->nfiles; i++)
		if (json_array_append_new(files, json_string(plan->files[i]))) {
			json_decref(files);
			return NULL;
		}
	sbx_format_rfc3339_us(before_us, ts);
	f = json_pack("{s:I, s:I, s:s, s:o, s:s}", "first_seq", (json_int_t)plan->first_seq,
		      "last_seq", (json_int_t)plan->last_seq, "last_hash", plan->last_hash,
		      "files", files, "before", ts);
	return f;
}

int sbx_journal_prune_apply(struct sbx_journal *j, const struct sbx_prune_plan *plan, char *err,
			    size_t errlen)
{
	uint64_t current = sbx_jr_current_segment(j);
	int dfd = sbx_jr_jdirfd(j);

	for (size_t i = 0; i < plan->nfiles; i++) {
		char cur[SBX_JR_SEG_NAME_MAX];

		sbx_jr_seg_name(current, cur);
		if (current && strcmp(cur, plan->files[i]) == 0) {
			snprintf(err, errlen, "journal: will not remove journal/%s: it is being "
				 "appended to", plan->files[i]);
			return -1;
		}
		if (unlinkat(dfd, plan->files[i], 0) && errno != ENOENT) {
			snprintf(err, errlen, "journal: cannot remove journal/%s: %s", plan->files[i],
				 strerror(errno));
			return -1;
		}
	}
	if (fsync(dfd)) {
		snprintf(err, errlen, "journal: cannot sync journal/ after pruning: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}
