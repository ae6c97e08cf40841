/*
 * The journal's writing side: open (lock, replay, cut a torn tail), append
 * (seq, time, hash chain, under one mutex), the group-commit writer thread,
 * snapshots, and the offline verify/foreach.  Reading lives in
 * journal_scan.c, the fast JSON path in journal_json.c.  The format is
 * specified in docs/audit.md.
 */
#include "config.h"

#include "journal_int.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SNAPSHOT_EVERY_DEFAULT 10000u
#define SNAPSHOT_NAME "snapshot.json"
#define SNAPSHOT_TMP "snapshot.json.tmp"

struct marker {
	size_t off;             /* in the batch: a new segment starts here */
	uint64_t first;         /* with this seq */
};

/* A record of the operation being appended, kept until the operation
 * ends so its line can be written again with "continued":true. */
struct op_rec {
	uint64_t seq;
	char ts[SBX_RFC3339_LEN];
	char *mid;
	size_t midlen;
	uint64_t seg_off;       /* where its line starts in its segment */
};

/* What a record that is not the last of its operation carries. */
#define CONTINUED ",\"continued\":true"
#define CONTINUED_LEN (sizeof(CONTINUED) - 1)

struct sbx_journal {
	char *state_dir;
	int sdirfd, jdirfd, lockfd, efd;
	size_t segment_max;
	uint64_t snapshot_every;

	pthread_mutex_t mu;
	pthread_cond_t wake;    /* to the writer: work, or stop */
	pthread_cond_t done;    /* to flushers: durable advanced, or failed */
	pthread_t writer;
	bool writer_started;

	/* Under mu. */
	bool stopping;
	bool deferred;          /* appends wait for sbx_journal_commit() */
	struct sbx_jr_sha sha;
	char *pend;             /* serialized records not yet handed to the writer */
	size_t pend_len, pend_cap;
	struct marker *mk;
	size_t nmk, mk_cap;
	uint64_t last_seq;      /* also read atomically */
	char last_hash[SBX_JR_HEX + 1];
	bool have_seg;          /* a segment exists for the next record */
	uint64_t seg_first;
	uint64_t seg_bytes;     /* bytes assigned to that segment so far */
	uint64_t last_rec_seg;  /* first seq of the segment holding last_seq */
	uint64_t last_rec_off;  /* its line's offset there */
	uint64_t snap_seq;
	/* The operation being appended (sbx_journal_op_begin): the writer
	 * leaves pend alone while one is open, so no part of an operation
	 * reaches the disk before all of it. */
	unsigned op_depth;
	struct op_rec *op;
	size_t op_n, op_cap;
	size_t op_start;        /* in pend: where its first line starts */
	char op_prev[SBX_JR_HEX + 1];

	/* The writer thread's own. */
	int segfd;
	char segname[SBX_JR_SEG_NAME_MAX];
	uint64_t seg_size;      /* bytes written to segname */
	uint64_t wseg_first;    /* its first seq */
	/* Where the durable records end: what a failed write is cut back to. */
	bool dur_have;
	uint64_t dur_first;     /* that segment's first seq */
	uint64_t dur_size;
	char *wbuf;
	size_t wbuf_cap;
	struct marker *wmk;
	size_t wmk_cap;

	/* Published by the writer. */
	uint64_t durable;       /* atomic */
	bool failed;            /* atomic; why is written before it is set */
	char why[512];
	uint64_t syncs;         /* atomic */
};

static const char zero_hash[SBX_JR_HEX + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

static bool is_failed(const struct sbx_journal *j)
{
	return __atomic_load_n(&j->failed, __ATOMIC_ACQUIRE);
}

static void signal_event(struct sbx_journal *j)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: readable anyway. */
	if (write(j->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return;
}

/* ----------------------------------------------------------------- writer */

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t r = write(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

static int new_segment(struct sbx_journal *j, uint64_t first, char *why, size_t whylen)
{
	int rc;

	if (j->segfd >= 0) {
		if (fdatasync(j->segfd)) {
			snprintf(why, whylen, "fdatasync of journal/%s failed: %s", j->segname,
				 strerror(errno));
			return -1;
		}
		close(j->segfd);
		j->segfd = -1;
	}
	sbx_jr_seg_name(first, j->segname);
	j->seg_size = 0;
	j->wseg_first = first;
	j->segfd = openat(j->jdirfd, j->segname,
			  O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->segfd < 0) {
		snprintf(why, whylen, "cannot create journal/%s: %s", j->segname, strerror(errno));
		return -1;
	}
	/* The new name is durable only once the directory is. */
	if (fsync(j->jdirfd)) {
		rc = errno;
		snprintf(why, whylen, "fsync of journal/ after creating %s failed: %s", j->segname,
			 strerror(rc));
		return -1;
	}
	return 0;
}

/* Write one batch (rotating where markers say) and make it durable. */
static int write_batch(struct sbx_journal *j, const char *buf, size_t len, const struct marker *mk,
		       size_t nmk, char *why, size_t whylen)
{
	size_t pos = 0;
	int rc;

	for (size_t i = 0; i <= nmk; i++) {
		size_t end = i < nmk ? mk[i].off : len;

		if (end > pos) {
			rc = j->segfd < 0 ? -EBADF : write_all(j->segfd, buf + pos, end - pos);
			if (!rc)
				j->seg_size += end - pos;
			if (rc) {
				snprintf(why, whylen, "write to journal/%s failed: %s", j->segname,
					 strerror(-rc));
				return -1;
			}
			pos = end;
		}
		if (i < nmk && new_segment(j, mk[i].first, why, whylen))
			return -1;
	}
	if (fdatasync(j->segfd)) {
		snprintf(why, whylen, "fdatasync of journal/%s failed: %s", j->segname, strerror(errno));
		return -1;
	}
	return 0;
}

/* After a failed write or sync, make the files hold exactly the records
 * that were acknowledged: a refused change must not come back when the
 * next start-up replays what is on disk.  Shrinking a file and removing
 * one need no free space, so this works on a full disk. */
static int cut_to_durable(struct sbx_journal *j, char *why, size_t whylen)
{
	struct sbx_jr_seg *segs = NULL;
	size_t nsegs = 0;
	char lerr[160];
	int fd = -1, ret = -1;

	if (j->segfd >= 0) {
		close(j->segfd);
		j->segfd = -1;
	}
	if (sbx_jr_list_segments(j->jdirfd, &segs, &nsegs, lerr, sizeof(lerr))) {
		snprintf(why, whylen, "%s", lerr);
		goto out;
	}
	for (size_t i = 0; i < nsegs; i++) {
		if (j->dur_have && segs[i].first <= j->dur_first)
			continue;
		if (unlinkat(j->jdirfd, segs[i].name, 0)) {
			snprintf(why, whylen, "cannot remove journal/%s: %s", segs[i].name,
				 strerror(errno));
			goto out;
		}
	}
	if (j->dur_have) {
		char name[SBX_JR_SEG_NAME_MAX];

		sbx_jr_seg_name(j->dur_first, name);
		fd = openat(j->jdirfd, name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || ftruncate(fd, (off_t)j->dur_size) || fdatasync(fd)) {
			snprintf(why, whylen, "cannot cut journal/%s back to %llu bytes: %s", name,
				 (unsigned long long)j->dur_size, strerror(errno));
			goto out;
		}
	}
	if (fsync(j->jdirfd)) {
		snprintf(why, whylen, "fsync of journal/ failed: %s", strerror(errno));
		goto out;
	}
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(segs);
	return ret;
}

/* Why the journal failed, and what became of the records that were
 * written but never acknowledged. */
static void fail_writer(struct sbx_journal *j, const char *what, uint64_t durable)
{
	char cut[160];

	if (cut_to_durable(j, cut, sizeof(cut)) == 0)
		snprintf(j->why, sizeof(j->why), "%s (the journal was cut back to seq %llu, the last "
			 "record acknowledged)", what, (unsigned long long)durable);
	else
		snprintf(j->why, sizeof(j->why), "%s; cutting the records after seq %llu off failed "
			 "too (%s): they are on disk but were never acknowledged", what,
			 (unsigned long long)durable, cut);
}

static void *writer_main(void *arg)
{
	struct sbx_journal *j = arg;
	char why[256];

	pthread_mutex_lock(&j->mu);
	for (;;) {
		char *tb;
		struct marker *tm;
		size_t len, nmk, tcap;
		uint64_t upto;
		int rc;

		while ((!j->pend_len || j->op_depth) && !j->stopping)
			pthread_cond_wait(&j->wake, &j->mu);
		if (!j->pend_len)
			break;
		/* Take the whole pending buffer: everyone who appended since
		 * the last round shares this one write and one sync. */
		tb = j->wbuf, j->wbuf = j->pend, j->pend = tb;
		tcap = j->wbuf_cap, j->wbuf_cap = j->pend_cap, j->pend_cap = tcap;
		tm = j->wmk, j->wmk = j->mk, j->mk = tm;
		tcap = j->wmk_cap, j->wmk_cap = j->mk_cap, j->mk_cap = tcap;
		len = j->pend_len;
		nmk = j->nmk;
		j->pend_len = 0;
		j->nmk = 0;
		upto = j->last_seq;
		pthread_mutex_unlock(&j->mu);

		rc = write_batch(j, j->wbuf, len, j->wmk, nmk, why, sizeof(why));

		pthread_mutex_lock(&j->mu);
		if (rc) {
			/* Never retry: after a failed write or sync the file's
			 * state is unknown (and the page cache may lie).  Cut
			 * before anyone hears of the failure: a degraded broker
			 * rebuilds its memory from the files. */
			fail_writer(j, why, __atomic_load_n(&j->durable, __ATOMIC_ACQUIRE));
			__atomic_store_n(&j->failed, true, __ATOMIC_RELEASE);
		} else {
			j->dur_have = true;
			j->dur_first = j->wseg_first;
			j->dur_size = j->seg_size;
			__atomic_store_n(&j->durable, upto, __ATOMIC_RELEASE);
			__atomic_add_fetch(&j->syncs, 1, __ATOMIC_RELAXED);
		}
		pthread_cond_broadcast(&j->done);
		signal_event(j);
		if (rc)
			break;
	}
	pthread_mutex_unlock(&j->mu);
	return NULL;
}

/* ----------------------------------------------------------------- append */

static int grow(void *pp, size_t *cap, size_t need, size_t elem)
{
	void **p = pp;
	size_t n = *cap ? *cap : 16;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = realloc(*p, n * elem);
	if (!q)
		return -1;
	*p = q;
	*cap = n;
	return 0;
}

int sbx_journal_append(struct sbx_journal *j, const char *event, const char *actor,
		       const json_t *fields, uint64_t *seq, json_t **rec_out)
{
	return sbx_journal_append_at(j, 0, event, actor, fields, seq, rec_out);
}

int sbx_journal_append_at(struct sbx_journal *j, int64_t time_us, const char *event,
			  const char *actor, const json_t *fields, uint64_t *seq, json_t **rec_out)
{
	char *mid = NULL, *copy = NULL, ts[SBX_RFC3339_LEN], hash[SBX_JR_HEX + 1];
	size_t midlen = 0, linelen;
	uint64_t s = 0;
	bool rotate;
	char *p;
	int ret = -1, err = EINVAL;

	if (rec_out)
		*rec_out = NULL;
	if (!j || !event || !actor || (fields && !json_is_object(fields)))
		goto out;
	err = EIO;
	if (is_failed(j))
		goto out;
	err = EINVAL;
	mid = sbx_jr_serialize_middle(event, actor, fields, &midlen);
	if (!mid)
		goto out;

	pthread_mutex_lock(&j->mu);
	err = EIO;
	if (is_failed(j) || j->stopping)
		goto unlock;
	s = j->last_seq + 1;
	sbx_format_rfc3339_us(time_us ? time_us : sbx_now_us(), ts);
	linelen = sbx_jr_line_len(s, ts, midlen);
	err = E2BIG;
	/* Inside an operation the line may yet get "continued". */
	if (linelen + (j->op_depth ? CONTINUED_LEN : 0) > SBX_JOURNAL_LINE_MAX)
		goto unlock;
	err = ENOMEM;
	/* An operation never spans two segments: its lines are rewritten
	 * in place when it ends. */
	rotate = !j->have_seg || (j->seg_bytes >= j->segment_max && j->op_n == 0);
	if (grow(&j->pend, &j->pend_cap, j->pend_len + linelen + 1, 1) ||
	    (rotate && grow(&j->mk, &j->mk_cap, j->nmk + 1, sizeof(*j->mk))) ||
	    (j->op_depth && grow(&j->op, &j->op_cap, j->op_n + 1, sizeof(*j->op))) ||
	    (rec_out && !(copy = malloc(linelen))))
		goto unlock;
	p = j->pend + j->pend_len;
	if (sbx_jr_build_line(&j->sha, s, ts, mid, midlen, j->last_hash, p, hash))
		goto unlock;
	p[linelen] = '\n';

	/* Committed: nothing below can fail. */
	if (rotate) {
		j->mk[j->nmk].off = j->pend_len;
		j->mk[j->nmk].first = s;
		j->nmk++;
		j->have_seg = true;
		j->seg_first = s;
		j->seg_bytes = 0;
	}
	if (j->op_depth) {
		struct op_rec *o = &j->op[j->op_n];

		if (j->op_n == 0) {
			j->op_start = j->pend_len;
			memcpy(j->op_prev, j->last_hash, sizeof(j->op_prev));
		}
		o->seq = s;
		memcpy(o->ts, ts, sizeof(o->ts));
		o->mid = mid;
		o->midlen = midlen;
		o->seg_off = j->seg_bytes;
		mid = NULL;
		j->op_n++;
	}
	j->last_rec_seg = j->seg_first;
	j->last_rec_off = j->seg_bytes;
	j->seg_bytes += linelen + 1;
	j->pend_len += linelen + 1;
	memcpy(j->last_hash, hash, sizeof(hash));
	__atomic_store_n(&j->last_seq, s, __ATOMIC_RELEASE);
	if (copy)
		memcpy(copy, p, linelen);
	if (!j->deferred && !j->op_depth)
		pthread_cond_signal(&j->wake);
	ret = 0;
unlock:
	pthread_mutex_unlock(&j->mu);
	if (ret == 0) {
		if (seq)
			*seq = s;
		/* Hand back exactly what a replay will see. */
		if (rec_out)
			*rec_out = sbx_jr_parse(copy, linelen, NULL, 0);
	}
out:
	free(mid);
	free(copy);
	if (ret)
		errno = err;
	return ret;
}

void sbx_journal_op_begin(struct sbx_journal *j)
{
	pthread_mutex_lock(&j->mu);
	j->op_depth++;
	pthread_mutex_unlock(&j->mu);
}

static void op_forget(struct sbx_journal *j)
{
	for (size_t i = 0; i < j->op_n; i++)
		free(j->op[i].mid);
	j->op_n = 0;
}

/* Write the operation's lines again, all but the last with "continued",
 * re-chaining their hashes.  They are still in pend: nobody has seen
 * them but the caller's memory, which never looks at the marker. */
static int op_mark(struct sbx_journal *j)
{
	size_t total = 0, maxmid = 0, pos = 0;
	char *buf = NULL, *mid = NULL, prev[SBX_JR_HEX + 1], hash[SBX_JR_HEX + 1];
	uint64_t off = j->op[0].seg_off;
	int ret = -1;

	for (size_t i = 0; i < j->op_n; i++) {
		struct op_rec *o = &j->op[i];
		size_t midlen = o->midlen + (i + 1 < j->op_n ? CONTINUED_LEN : 0);

		total += sbx_jr_line_len(o->seq, o->ts, midlen) + 1;
		if (midlen > maxmid)
			maxmid = midlen;
	}
	if (!(buf = malloc(total)) || !(mid = malloc(maxmid)) ||
	    grow(&j->pend, &j->pend_cap, j->op_start + total, 1))
		goto out;
	memcpy(prev, j->op_prev, sizeof(prev));
	for (size_t i = 0; i < j->op_n; i++) {
		struct op_rec *o = &j->op[i];
		bool more = i + 1 < j->op_n;
		size_t midlen = o->midlen + (more ? CONTINUED_LEN : 0);
		size_t linelen = sbx_jr_line_len(o->seq, o->ts, midlen);

		memcpy(mid, o->mid, o->midlen);
		if (more)
			memcpy(mid + o->midlen, CONTINUED, CONTINUED_LEN);
		if (sbx_jr_build_line(&j->sha, o->seq, o->ts, mid, midlen, prev, buf + pos, hash))
			goto out;
		buf[pos + linelen] = '\n';
		memcpy(prev, hash, sizeof(prev));
		j->last_rec_off = off;
		off += linelen + 1;
		pos += linelen + 1;
	}
	memcpy(j->pend + j->op_start, buf, total);
	j->pend_len = j->op_start + total;
	j->seg_bytes = off;
	memcpy(j->last_hash, prev, sizeof(j->last_hash));
	ret = 0;
out:
	free(buf);
	free(mid);
	return ret;
}

void sbx_journal_op_end(struct sbx_journal *j)
{
	pthread_mutex_lock(&j->mu);
	if (j->op_depth && --j->op_depth == 0) {
		if (j->op_n > 1 && !is_failed(j) && op_mark(j) < 0) {
			/* The lines in pend no longer form a chain with what
			 * follows: nothing more may be written. */
			snprintf(j->why, sizeof(j->why), "out of memory marking an operation of %zu "
				 "records (seq %llu...)", j->op_n, (unsigned long long)j->op[0].seq);
			__atomic_store_n(&j->failed, true, __ATOMIC_RELEASE);
			pthread_cond_broadcast(&j->done);
			signal_event(j);
		}
		op_forget(j);
		if (j->pend_len && !j->deferred)
			pthread_cond_signal(&j->wake);
	}
	pthread_mutex_unlock(&j->mu);
}

uint64_t sbx_journal_durable_seq(const struct sbx_journal *j)
{
	return j ? __atomic_load_n(&j->durable, __ATOMIC_ACQUIRE) : 0;
}

uint64_t sbx_journal_last_seq(const struct sbx_journal *j)
{
	return j ? __atomic_load_n(&j->last_seq, __ATOMIC_ACQUIRE) : 0;
}

void sbx_journal_last_hash(struct sbx_journal *j, char hash[65])
{
	pthread_mutex_lock(&j->mu);
	memcpy(hash, j->last_hash, 65);
	pthread_mutex_unlock(&j->mu);
}

int sbx_journal_event_fd(const struct sbx_journal *j)
{
	return j ? j->efd : -1;
}

void sbx_journal_ack_event(struct sbx_journal *j)
{
	uint64_t v;

	if (j && read(j->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return;
}

bool sbx_journal_failed(const struct sbx_journal *j, char *why, size_t whylen)
{
	if (!j || !is_failed(j))
		return false;
	if (why && whylen)
		snprintf(why, whylen, "%s", j->why);
	return true;
}

uint64_t sbx_jr_sync_count(const struct sbx_journal *j)
{
	return __atomic_load_n(&j->syncs, __ATOMIC_RELAXED);
}

void sbx_journal_defer_commits(struct sbx_journal *j, bool on)
{
	pthread_mutex_lock(&j->mu);
	j->deferred = on;
	pthread_mutex_unlock(&j->mu);
}

void sbx_journal_commit(struct sbx_journal *j)
{
	pthread_mutex_lock(&j->mu);
	if (j->pend_len)
		pthread_cond_signal(&j->wake);
	pthread_mutex_unlock(&j->mu);
}

int sbx_journal_flush(struct sbx_journal *j)
{
	int ret;

	if (!j)
		return -1;
	pthread_mutex_lock(&j->mu);
	if (j->op_depth) {
		/* The writer waits for the operation to end: it never would. */
		pthread_mutex_unlock(&j->mu);
		errno = EDEADLK;
		return -1;
	}
	if (j->pend_len)
		pthread_cond_signal(&j->wake);
	while (!is_failed(j) && __atomic_load_n(&j->durable, __ATOMIC_ACQUIRE) < j->last_seq)
		pthread_cond_wait(&j->done, &j->mu);
	ret = is_failed(j) ? -1 : 0;
	pthread_mutex_unlock(&j->mu);
	return ret;
}

/* --------------------------------------------------------------- snapshot */

struct dump_buf {
	int fd;
	int err;
	size_t len;
	char buf[65536];
};

static int dump_cb(const char *p, size_t n, void *arg)
{
	struct dump_buf *d = arg;

	if (d->err)
		return -1;
	if (d->len + n > sizeof(d->buf)) {
		d->err = write_all(d->fd, d->buf, d->len);
		d->len = 0;
		if (!d->err && n > sizeof(d->buf))
			d->err = write_all(d->fd, p, n);
		else if (!d->err)
			memcpy(d->buf, p, n), d->len = n;
		return d->err ? -1 : 0;
	}
	memcpy(d->buf + d->len, p, n);
	d->len += n;
	return 0;
}

static int write_snapshot_file(struct sbx_journal *j, json_t *doc)
{
	struct dump_buf *d = NULL;
	int fd = -1, ret = -1;

	d = calloc(1, sizeof(*d));
	fd = openat(j->sdirfd, SNAPSHOT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		    0600);
	if (!d || fd < 0)
		goto out;
	d->fd = fd;
	if (json_dump_callback(doc, dump_cb, d, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER) ||
	    d->err || dump_cb("\n", 1, d) || write_all(fd, d->buf, d->len) || fsync(fd))
		goto out;
	close(fd);
	fd = -1;
	if (renameat(j->sdirfd, SNAPSHOT_TMP, j->sdirfd, SNAPSHOT_NAME) || fsync(j->sdirfd))
		goto out;
	ret = 0;
out:
	if (fd >= 0) {
		close(fd);
		unlinkat(j->sdirfd, SNAPSHOT_TMP, 0);
	}
	free(d);
	return ret;
}

int sbx_journal_maybe_snapshot(struct sbx_journal *j, json_t *(*make_state)(void *ctx),
			       void *ctx, bool force)
{
	char hash[SBX_JR_HEX + 1], segname[SBX_JR_SEG_NAME_MAX];
	uint64_t seq, off, segfirst;
	json_t *state = NULL, *doc = NULL;
	int ret = -1;

	if (!j || !make_state)
		return -1;
	pthread_mutex_lock(&j->mu);
	seq = j->last_seq;
	if (seq == 0 || (!force && seq - j->snap_seq < j->snapshot_every) || seq == j->snap_seq) {
		pthread_mutex_unlock(&j->mu);
		return 0;
	}
	pthread_mutex_unlock(&j->mu);
	/* The snapshot may only name a record that is on disk. */
	for (;;) {
		if (sbx_journal_flush(j))
			return -1;
		pthread_mutex_lock(&j->mu);
		if (__atomic_load_n(&j->durable, __ATOMIC_ACQUIRE) >= j->last_seq)
			break;
		pthread_mutex_unlock(&j->mu);
	}
	seq = j->last_seq;
	off = j->last_rec_off;
	segfirst = j->last_rec_seg;
	memcpy(hash, j->last_hash, sizeof(hash));
	pthread_mutex_unlock(&j->mu);

	state = make_state(ctx);
	if (!state)
		goto out;
	sbx_jr_seg_name(segfirst, segname);
	doc = json_pack("{s:I, s:s, s:s, s:I, s:O}", "seq", (json_int_t)seq, "hash", hash, "segment",
			segname, "offset", (json_int_t)off, "state", state);
	if (!doc || write_snapshot_file(j, doc))
		goto out;
	pthread_mutex_lock(&j->mu);
	j->snap_seq = seq;
	pthread_mutex_unlock(&j->mu);
	ret = 0;
out:
	json_decref(doc);
	json_decref(state);
	return ret;
}

/* ------------------------------------------------------------ open, close */

/* mkdir that also makes the new entry durable in its parent. */
static int mkdir_durable(int parentfd, const char *parent_path, const char *name)
{
	int pfd = parentfd;

	if (mkdirat(parentfd, name, 0700) == 0) {
		if (pfd < 0)
			pfd = open(parent_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0 || fsync(pfd)) {
			if (pfd >= 0 && pfd != parentfd)
				close(pfd);
			return -1;
		}
		if (pfd != parentfd)
			close(pfd);
		return 0;
	}
	return errno == EEXIST ? 0 : -1;
}

static int open_dirs(struct sbx_journal *j, char *err, size_t errlen)
{
	char *copy = strdup(j->state_dir);
	int ret = -1;

	if (!copy) {
		snprintf(err, errlen, "journal: out of memory");
		return -1;
	}
	if (mkdir_durable(AT_FDCWD, dirname(copy), j->state_dir)) {
		snprintf(err, errlen, "journal: cannot create state dir %s: %s", j->state_dir,
			 strerror(errno));
		goto out;
	}
	j->sdirfd = open(j->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->sdirfd < 0) {
		snprintf(err, errlen, "journal: cannot open state dir %s: %s", j->state_dir,
			 strerror(errno));
		goto out;
	}
	if (mkdir_durable(j->sdirfd, NULL, "journal") ||
	    (j->jdirfd = openat(j->sdirfd, "journal", O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		snprintf(err, errlen, "journal: cannot create or open %s/journal: %s", j->state_dir,
			 strerror(errno));
		goto out;
	}
	ret = 0;
out:
	free(copy);
	return ret;
}

static int take_lock(struct sbx_journal *j, char *err, size_t errlen)
{
	j->lockfd = openat(j->jdirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (j->lockfd < 0) {
		snprintf(err, errlen, "journal: cannot open %s/journal/.lock: %s", j->state_dir,
			 strerror(errno));
		return -1;
	}
	if (flock(j->lockfd, LOCK_EX | LOCK_NB)) {
		if (errno == EWOULDBLOCK)
			snprintf(err, errlen,
				 "journal: state dir %s is in use by another process (it holds %s/journal/.lock); is another sbx-brokerd running?",
				 j->state_dir, j->state_dir);
		else
			snprintf(err, errlen, "journal: cannot lock %s/journal/.lock: %s", j->state_dir,
				 strerror(errno));
		return -1;
	}
	return 0;
}

/* Cut the torn tail that replay found (a torn line, or an operation that
 * never ended, which may reach into later segments: they go); the writer
 * appends after it. */
static int cut_tail(struct sbx_journal *j, const struct sbx_jr_seg *segs, size_t *nsegs,
		    const struct sbx_jr_scan_result *res, struct sbx_replay_info *info, char *err,
		    size_t errlen)
{
	const struct sbx_jr_seg *seg = &segs[res->end_seg];
	int fd;

	for (size_t i = *nsegs; i-- > res->end_seg + 1;) {
		if (unlinkat(j->jdirfd, segs[i].name, 0)) {
			snprintf(err, errlen, "journal: cannot remove journal/%s: %s", segs[i].name,
				 strerror(errno));
			return -1;
		}
	}
	*nsegs = res->end_seg + 1;
	fd = openat(j->jdirfd, seg->name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || ftruncate(fd, (off_t)res->end_off) || fsync(fd) || fsync(j->jdirfd)) {
		snprintf(err, errlen, "journal: cannot cut the torn tail of journal/%s: %s", seg->name,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	info->truncated = true;
	info->truncated_bytes = res->torn_bytes;
	info->records_cut = res->torn_op;
	snprintf(info->truncated_file, sizeof(info->truncated_file), "journal/%s", seg->name);
	return 0;
}

/* Point the append state at the end of what replay accepted. */
static int resume(struct sbx_journal *j, const struct sbx_jr_seg *segs, size_t nsegs,
		  const struct sbx_jr_scan_result *res, char *err, size_t errlen)
{
	const struct sbx_jr_seg *last = nsegs ? &segs[nsegs - 1] : NULL;
	struct stat st;

	j->last_seq = res->last_seq;
	j->durable = res->last_seq;
	memcpy(j->last_hash, res->last_seq ? res->last_hash : zero_hash, sizeof(j->last_hash));
	if (res->last_seq && res->last_seg < nsegs) {
		j->last_rec_seg = segs[res->last_seg].first;
		j->last_rec_off = res->last_off;
	}
	if (!last)
		return 0;
	snprintf(j->segname, sizeof(j->segname), "%s", last->name);
	j->segfd = openat(j->jdirfd, last->name, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
	if (j->segfd < 0 || fstat(j->segfd, &st)) {
		snprintf(err, errlen, "journal: cannot open journal/%s for appending: %s", last->name,
			 strerror(errno));
		return -1;
	}
	j->have_seg = true;
	j->seg_first = last->first;
	j->seg_bytes = (uint64_t)st.st_size;
	j->seg_size = (uint64_t)st.st_size;
	j->wseg_first = last->first;
	j->dur_have = true;
	j->dur_first = last->first;
	j->dur_size = (uint64_t)st.st_size;
	return 0;
}

int sbx_journal_open(const struct sbx_journal_opts *o, sbx_snapshot_fn on_snapshot,
		     sbx_replay_fn on_record, void *ctx, struct sbx_replay_info *info,
		     struct sbx_journal **out, char *err, size_t errlen)
{
	struct sbx_replay_info local;
	struct sbx_jr_scan_result res;
	struct sbx_jr_seg *segs = NULL;
	struct sbx_journal *j = NULL;
	size_t nsegs = 0;
	int rc;

	if (!info)
		info = &local;
	memset(info, 0, sizeof(*info));
	if (!o || !o->state_dir || !o->state_dir[0] || !out) {
		snprintf(err, errlen, "journal: no state dir given");
		return -1;
	}
	j = calloc(1, sizeof(*j));
	if (!j || !(j->state_dir = strdup(o->state_dir))) {
		free(j);
		snprintf(err, errlen, "journal: out of memory");
		return -1;
	}
	j->sdirfd = j->jdirfd = j->lockfd = j->efd = j->segfd = -1;
	j->segment_max = o->segment_max ? o->segment_max : SBX_JOURNAL_SEGMENT_MAX_DEFAULT;
	j->snapshot_every = o->snapshot_every ? o->snapshot_every : SNAPSHOT_EVERY_DEFAULT;
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->wake, NULL);
	pthread_cond_init(&j->done, NULL);
	if (sbx_jr_sha_init(&j->sha)) {
		snprintf(err, errlen, "journal: cannot set up SHA-256 (OpenSSL)");
		goto fail;
	}
	if (open_dirs(j, err, errlen) || take_lock(j, err, errlen))
		goto fail;
	if (sbx_jr_replay(j->sdirfd, j->jdirfd, UINT64_MAX, on_snapshot, on_record, ctx, info, &segs,
			  &nsegs, &res, err, errlen))
		goto fail;
	if (res.torn && cut_tail(j, segs, &nsegs, &res, info, err, errlen))
		goto fail;
	if (resume(j, segs, nsegs, &res, err, errlen))
		goto fail;
	if (info->used_snapshot)
		j->snap_seq = info->snapshot_seq;
	j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (j->efd < 0) {
		snprintf(err, errlen, "journal: eventfd: %s", strerror(errno));
		goto fail;
	}
	rc = pthread_create(&j->writer, NULL, writer_main, j);
	if (rc) {
		snprintf(err, errlen, "journal: cannot start the writer thread: %s", strerror(rc));
		goto fail;
	}
	j->writer_started = true;
	free(segs);
	*out = j;
	return 0;
fail:
	free(segs);
	sbx_journal_close(j);
	return -1;
}

int sbx_journal_reload(struct sbx_journal *j, uint64_t max_seq, sbx_snapshot_fn on_snapshot,
		       sbx_replay_fn on_record, void *ctx, char *err, size_t errlen)
{
	struct sbx_replay_info info;
	struct sbx_jr_scan_result res;

	if (!j) {
		snprintf(err, errlen, "journal: not open");
		return -1;
	}
	return sbx_jr_replay(j->sdirfd, j->jdirfd, max_seq, on_snapshot, on_record, ctx, &info, NULL,
			     NULL, &res, err, errlen);
}

void sbx_journal_close(struct sbx_journal *j)
{
	if (!j)
		return;
	if (j->writer_started) {
		/* The writer drains what is pending before it leaves. */
		pthread_mutex_lock(&j->mu);
		j->stopping = true;
		pthread_cond_signal(&j->wake);
		pthread_mutex_unlock(&j->mu);
		pthread_join(j->writer, NULL);
	}
	if (j->segfd >= 0)
		close(j->segfd);
	if (j->efd >= 0)
		close(j->efd);
	if (j->lockfd >= 0)
		close(j->lockfd); /* releases the flock */
	if (j->jdirfd >= 0)
		close(j->jdirfd);
	if (j->sdirfd >= 0)
		close(j->sdirfd);
	sbx_jr_sha_free(&j->sha);
	pthread_cond_destroy(&j->done);
	pthread_cond_destroy(&j->wake);
	pthread_mutex_destroy(&j->mu);
	op_forget(j);
	free(j->op);
	free(j->pend);
	free(j->mk);
	free(j->wbuf);
	free(j->wmk);
	free(j->state_dir);
	free(j);
}

/* ---------------------------------------------------------------- offline */

static int open_journal_ro(const char *state_dir, int *jdirfd, char *err, size_t errlen)
{
	char path[4096];

	if (snprintf(path, sizeof(path), "%s/journal", state_dir) >= (int)sizeof(path)) {
		snprintf(err, errlen, "journal: state dir path too long");
		return -1;
	}
	*jdirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (*jdirfd < 0) {
		snprintf(err, errlen, "journal: no journal under %s (%s: %s)", state_dir, path,
			 strerror(errno));
		return -1;
	}
	return 0;
}

int sbx_journal_verify(const char *state_dir, uint64_t *count, uint64_t *bad_seq, char *err,
		       size_t errlen)
{
	struct sbx_jr_scan_opts o = { .mode = SBX_JR_VERIFY, .expect_seq = 1, .max_seq = UINT64_MAX };
	struct sbx_jr_scan_result res = { 0 };
	struct sbx_jr_seg *segs = NULL;
	int jdirfd = -1, ret = -1;
	size_t nsegs = 0;

	if (count)
		*count = 0;
	if (bad_seq)
		*bad_seq = 0;
	if (!state_dir) {
		snprintf(err, errlen, "journal: no state dir given");
		return -1;
	}
	if (open_journal_ro(state_dir, &jdirfd, err, errlen) ||
	    sbx_jr_list_segments(jdirfd, &segs, &nsegs, err, errlen))
		goto out;
	if (nsegs && segs[0].first != 1) {
		snprintf(err, errlen, "journal: record seq 1: missing (the first segment is journal/%s)",
			 segs[0].name);
		res.bad_seq = 1;
		goto out;
	}
	o.jdirfd = jdirfd;
	o.segs = segs;
	o.nsegs = nsegs;
	memcpy(o.prev, zero_hash, sizeof(o.prev));
	if (sbx_jr_scan(&o, NULL, NULL, &res, err, errlen))
		goto out;
	if (count)
		*count = res.last_seq;
	ret = 0;
out:
	if (ret && bad_seq)
		*bad_seq = res.bad_seq;
	free(segs);
	if (jdirfd >= 0)
		close(jdirfd);
	return ret;
}

struct foreach_ctx {
	int (*fn)(const json_t *rec, const char *line, size_t linelen, void *ctx);
	void *ctx;
};

static int foreach_rec(json_t *rec, const char *line, size_t len, void *arg, char *err,
		       size_t errlen)
{
	struct foreach_ctx *f = arg;
	int rc = f->fn(rec, line, len, f->ctx);

	if (rc < 0)
		snprintf(err, errlen, "journal: the audit callback failed");
	return rc < 0 ? -1 : rc > 0;
}

int sbx_journal_foreach(const char *state_dir,
			int (*fn)(const json_t *rec, const char *line, size_t linelen, void *ctx),
			void *ctx, char *err, size_t errlen)
{
	struct sbx_jr_scan_opts o = { .mode = SBX_JR_FOREACH, .expect_seq = 1, .max_seq = UINT64_MAX };
	struct foreach_ctx f = { .fn = fn, .ctx = ctx };
	struct sbx_jr_scan_result res = { 0 };
	struct sbx_jr_seg *segs = NULL;
	int jdirfd = -1, ret = -1;
	size_t nsegs = 0;

	if (!state_dir || !fn) {
		snprintf(err, errlen, "journal: no state dir or callback given");
		return -1;
	}
	if (open_journal_ro(state_dir, &jdirfd, err, errlen) ||
	    sbx_jr_list_segments(jdirfd, &segs, &nsegs, err, errlen))
		goto out;
	o.jdirfd = jdirfd;
	o.segs = segs;
	o.nsegs = nsegs;
	memcpy(o.prev, zero_hash, sizeof(o.prev));
	err[0] = '\0';
	ret = sbx_jr_scan(&o, foreach_rec, &f, &res, err, errlen);
out:
	free(segs);
	if (jdirfd >= 0)
		close(jdirfd);
	return ret;
}
