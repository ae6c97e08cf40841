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

	/* The writer thread's own. */
	int segfd;
	char segname[SBX_JR_SEG_NAME_MAX];
	char *wbuf;
	size_t wbuf_cap;
	struct marker *wmk;
	size_t wmk_cap;

	/* Published by the writer. */
	uint64_t durable;       /* atomic */
	bool failed;            /* atomic; why is written before it is set */
	char why[256];
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

static void *writer_main(void *arg)
{
	struct sbx_journal *j = arg;
	char why[sizeof(j->why)];

	pthread_mutex_lock(&j->mu);
	for (;;) {
		char *tb;
		struct marker *tm;
		size_t len, nmk, tcap;
		uint64_t upto;
		int rc;

		while (!j->pend_len && !j->stopping)
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
			 * state is unknown (and the page cache may lie). */
			memcpy(j->why, why, sizeof(j->why));
			__atomic_store_n(&j->failed, true, __ATOMIC_RELEASE);
		} else {
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
	if (linelen > SBX_JOURNAL_LINE_MAX)
		goto unlock;
	err = ENOMEM;
	rotate = !j->have_seg || j->seg_bytes >= j->segment_max;
	if (grow(&j->pend, &j->pend_cap, j->pend_len + linelen + 1, 1) ||
	    (rotate && grow(&j->mk, &j->mk_cap, j->nmk + 1, sizeof(*j->mk))) ||
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
	j->last_rec_seg = j->seg_first;
	j->last_rec_off = j->seg_bytes;
	j->seg_bytes += linelen + 1;
	j->pend_len += linelen + 1;
	memcpy(j->last_hash, hash, sizeof(hash));
	__atomic_store_n(&j->last_seq, s, __ATOMIC_RELEASE);
	if (copy)
		memcpy(copy, p, linelen);
	if (!j->deferred)
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

uint64_t sbx_journal_durable_seq(const struct sbx_journal *j)
{
	return j ? __atomic_load_n(&j->durable, __ATOMIC_ACQUIRE) : 0;
}

uint64_t sbx_journal_last_seq(const struct sbx_journal *j)
{
	return j ? __atomic_load_n(&j->last_seq, __ATOMIC_ACQUIRE) : 0;
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

/* Cut the torn tail that replay found; the writer appends after it. */
static int cut_tail(struct sbx_journal *j, const struct sbx_jr_seg *seg,
		    const struct sbx_jr_scan_result *res, struct sbx_replay_info *info, char *err,
		    size_t errlen)
{
	int fd = openat(j->jdirfd, seg->name, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 || ftruncate(fd, (off_t)res->end_off) || fsync(fd)) {
		snprintf(err, errlen, "journal: cannot cut the torn tail of journal/%s: %s", seg->name,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	info->truncated = true;
	info->truncated_bytes = res->torn_bytes;
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
	if (res.torn && cut_tail(j, &segs[res.end_seg], &res, info, err, errlen))
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
