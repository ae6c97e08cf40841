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
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
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
	/* The last journal.sealed record appended or replayed (0: none):
	 * a snapshot names it, and start-up checks the chain from it. */
	struct sbx_jr_anchor seal;
	uint64_t snap_seq;
	/* The seal the snapshot on disk names (0: none): segments wholly
	 * before it may be pruned (journal_prune.c). */
	uint64_t snap_seal_seq;
	/* The operation being appended (sbx_journal_op_begin): the writer
	 * leaves pend alone while one is open, so no part of an operation
	 * reaches the disk before all of it. */
	unsigned op_depth;
	struct op_rec *op;
	size_t op_n, op_cap;
	size_t op_start;        /* in pend: where its first line starts */
	char op_prev[SBX_JR_HEX + 1];
	/* The hashes written for the last SBX_JOURNAL_RECENT records, by
	 * seq: an operation's records get their final ones when it ends
	 * (sbx_journal_recent_hash). */
	struct {
		uint64_t seq;
		char hash[SBX_JR_HEX + 1];
	} recent[SBX_JOURNAL_RECENT];

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

	/* Snapshots: the caller's thread only (the loop's); snap_seq above
	 * is the last one written or loaded. */
	struct {
		pid_t pid;      /* the child writing one; 0: none */
		int pidfd;      /* -1 without pidfd_open */
		int sock;
		uint64_t seq;
		bool released;  /* told to rename, or to give up */
		bool killed;    /* SIGKILL sent, not reaped yet */
		uint64_t seal_seq; /* the seal its header names (0: none) */
		int64_t started_us, fork_us;
	} snap;
	struct sbx_snapshot_stats snap_last;
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

static void remember_hash(struct sbx_journal *j, uint64_t seq, const char *hash)
{
	size_t slot = seq % SBX_JOURNAL_RECENT;

	j->recent[slot].seq = seq;
	memcpy(j->recent[slot].hash, hash, sizeof(j->recent[slot].hash));
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
	if (strcmp(event, SBX_JR_SEAL_EVENT) == 0) {
		j->seal.seq = s;
		memcpy(j->seal.hash, hash, sizeof(hash));
		sbx_jr_seg_name(j->seg_first, j->seal.segment);
		j->seal.off = j->seg_bytes;
	}
	j->seg_bytes += linelen + 1;
	j->pend_len += linelen + 1;
	memcpy(j->last_hash, hash, sizeof(hash));
	remember_hash(j, s, hash);
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
		remember_hash(j, o->seq, hash);
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

int sbx_journal_recent_hash(struct sbx_journal *j, uint64_t seq, char hash[65])
{
	size_t slot = seq % SBX_JOURNAL_RECENT;
	int ret = -1;

	pthread_mutex_lock(&j->mu);
	if (seq && j->recent[slot].seq == seq) {
		memcpy(hash, j->recent[slot].hash, 65);
		ret = 0;
	}
	pthread_mutex_unlock(&j->mu);
	return ret;
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

int sbx_jr_jdirfd(const struct sbx_journal *j)
{
	return j->jdirfd;
}

uint64_t sbx_jr_snap_seal_seq(const struct sbx_journal *j)
{
	return j->snap_seal_seq;
}

uint64_t sbx_jr_current_segment(struct sbx_journal *j)
{
	uint64_t first;

	pthread_mutex_lock(&j->mu);
	first = j->have_seg ? j->seg_first : 0;
	pthread_mutex_unlock(&j->mu);
	return first;
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

/* Between the loop and a snapshot child: one byte from the parent once the
 * snapshot's seq is durable ('g') or never will be ('q'), and one report
 * from the child before it exits. */
#define SNAP_GO 'g'
#define SNAP_QUIT 'q'
#define SNAP_BUF (1u << 20)
/* The child starts writing back every this many bytes and waits for the
 * previous batch: the page cache never holds much of a snapshot dirty, so
 * the journal's fdatasync does not queue behind a whole one. */
#define SNAP_SYNC_EVERY (8u << 20)

enum snap_step {
	SNAP_OK = 0,
	SNAP_NOMEM,
	SNAP_OPEN,
	SNAP_WRITE,
	SNAP_STATE,
	SNAP_FSYNC,
	SNAP_ABANDONED,
	SNAP_RENAME,
	SNAP_DIRSYNC,
};

struct snap_report {
	int32_t step;           /* enum snap_step */
	int32_t err;            /* errno of that step, 0 if none */
	uint64_t entries;
	uint64_t bytes;
};

/* What the parent fixes before fork: the record the state ends with. */
struct snap_job {
	uint64_t seq, off;
	char hash[SBX_JR_HEX + 1];
	char segment[SBX_JR_SEG_NAME_MAX];
	struct sbx_jr_anchor seal;  /* seq 0: no seal yet */
	int sock;
	pid_t parent;
};

struct sbx_snapshot_out {
	int fd;
	int err;                /* first errno; the snapshot is given up */
	bool write_failed;      /* err came from write(), not from an entry */
	uint64_t entries;
	uint64_t bytes;         /* handed to write() */
	uint64_t synced, prev_synced;
	char *buf;
	size_t len, cap;
};

static void out_sync_some(struct sbx_snapshot_out *out)
{
	/* Errors show up again in the final fsync, which decides. */
	(void)sync_file_range(out->fd, (off_t)out->synced, (off_t)(out->bytes - out->synced),
			      SYNC_FILE_RANGE_WRITE);
	if (out->synced > out->prev_synced)
		(void)sync_file_range(out->fd, (off_t)out->prev_synced,
				      (off_t)(out->synced - out->prev_synced),
				      SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
				      SYNC_FILE_RANGE_WAIT_AFTER);
	out->prev_synced = out->synced;
	out->synced = out->bytes;
}

static int out_flush(struct sbx_snapshot_out *out)
{
	int rc;

	if (out->err)
		return -1;
	rc = write_all(out->fd, out->buf, out->len);
	if (rc) {
		out->err = -rc;
		out->write_failed = true;
		return -1;
	}
	out->bytes += out->len;
	out->len = 0;
	if (out->bytes - out->synced >= SNAP_SYNC_EVERY)
		out_sync_some(out);
	return 0;
}

static int out_raw(struct sbx_snapshot_out *out, const char *p, size_t n)
{
	if (out->len + n > out->cap && out_flush(out))
		return -1;
	if (n > out->cap) {
		out->err = E2BIG;
		return -1;
	}
	memcpy(out->buf + out->len, p, n);
	out->len += n;
	return 0;
}

int sbx_snapshot_put(struct sbx_snapshot_out *out, const json_t *entry)
{
	const size_t flags = JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER;

	if (!out || out->err)
		return -1;
	if (!json_is_object(entry) && !json_is_array(entry)) {
		out->err = EINVAL;
		return -1;
	}
	for (;;) {
		size_t room = out->cap - out->len;
		/* ENSURE_ASCII escapes every control character: never a raw
		 * newline inside an entry, so one entry is one line. */
		size_t n = json_dumpb(entry, out->buf + out->len, room, flags);

		if (n == 0) {
			out->err = EINVAL;
			return -1;
		}
		if (n < room) {
			out->len += n;
			out->buf[out->len++] = '\n';
			break;
		}
		if (out->len) {
			if (out_flush(out))
				return -1;
			continue;
		}
		if (n + 1 > SBX_JR_SNAP_LINE_MAX) {
			out->err = E2BIG;
			return -1;
		}
		char *nb = realloc(out->buf, n + 1);

		if (!nb) {
			out->err = ENOMEM;
			return -1;
		}
		out->buf = nb;
		out->cap = n + 1;
	}
	out->entries++;
	return 0;
}

/* Keep only a and b (and 0-2, pointed at /dev/null): the child must not
 * hold the broker's connections open behind its back (a peer would miss
 * its EOF), nor the journal's lock once the broker is gone. */
static void close_all_but(int a, int b)
{
	unsigned keep[2] = { (unsigned)(a < b ? a : b), (unsigned)(a < b ? b : a) };
	unsigned from = 3;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	for (int fd = 0; null >= 0 && fd < 3; fd++)
		if (fd != null)
			(void)dup2(null, fd);
	for (int i = 0; i < 2; i++) {
		if (keep[i] > from && close_range(from, keep[i] - 1, 0) < 0)
			for (unsigned fd = from; fd < keep[i]; fd++)
				(void)close((int)fd);
		if (keep[i] + 1 > from)
			from = keep[i] + 1;
	}
	/* Without close_range (Linux < 5.9): one by one, off the loop. */
	if (close_range(from, ~0u, 0) < 0)
		for (long fd = from, max = sysconf(_SC_OPEN_MAX); fd < max; fd++)
			(void)close((int)fd);
}

static void child_setup(const struct snap_job *job, int sdirfd)
{
	/* Die with the broker: nobody would tell this one to rename. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != job->parent)
		_exit(1);
	close_all_but(sdirfd, job->sock);
	/* Second in line for the CPU and the disk: the loop's logins come
	 * first (IOPRIO_WHO_PROCESS, best-effort class, lowest level). */
	(void)setpriority(PRIO_PROCESS, 0, 19);
#ifdef SYS_ioprio_set
	(void)syscall(SYS_ioprio_set, 1, 0, (2 << 13) | 7);
#endif
}

static void child_report(const struct snap_job *job, struct snap_report *rep, int sdirfd)
{
	if (rep->step != SNAP_OK && rep->step != SNAP_OPEN && rep->step != SNAP_DIRSYNC)
		(void)unlinkat(sdirfd, SNAPSHOT_TMP, 0);
	(void)send(job->sock, rep, sizeof(*rep), MSG_NOSIGNAL);
	_exit(rep->step == SNAP_OK ? 0 : 1);
}

/* The child: header, the caller's entries, end line, fsync; then, once
 * the parent says the seq is durable, rename and fsync the dir.  Never
 * returns; no stdio, no locks, no atexit handlers (_exit). */
static void snap_child(struct sbx_journal *j, const struct snap_job *job,
		       sbx_snapshot_write_fn write_state, void *ctx)
{
	struct sbx_snapshot_out out = { .fd = -1, .cap = SNAP_BUF };
	struct snap_report rep = { .step = SNAP_NOMEM, .err = ENOMEM };
	char line[512];
	ssize_t r;
	char go = 0;
	int n;

	child_setup(job, j->sdirfd);
	out.buf = malloc(out.cap);
	if (!out.buf)
		child_report(job, &rep, j->sdirfd);
	out.fd = openat(j->sdirfd, SNAPSHOT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
			0600);
	if (out.fd < 0) {
		rep.step = SNAP_OPEN;
		rep.err = errno;
		child_report(job, &rep, j->sdirfd);
	}
	if (job->seal.seq)
		n = snprintf(line, sizeof(line),
			     "{\"snapshot\":%d,\"seq\":%" PRIu64 ",\"hash\":\"%s\",\"segment\":\"%s\",\"offset\":%" PRIu64
			     ",\"seal_seq\":%" PRIu64 ",\"seal_hash\":\"%s\",\"seal_segment\":\"%s\",\"seal_offset\":%" PRIu64 "}\n",
			     SBX_JR_SNAP_FORMAT, job->seq, job->hash, job->segment, job->off,
			     job->seal.seq, job->seal.hash, job->seal.segment, job->seal.off);
	else
		n = snprintf(line, sizeof(line),
			     "{\"snapshot\":%d,\"seq\":%" PRIu64 ",\"hash\":\"%s\",\"segment\":\"%s\",\"offset\":%" PRIu64 "}\n",
			     SBX_JR_SNAP_FORMAT, job->seq, job->hash, job->segment, job->off);
	rep.step = SNAP_WRITE;
	if (out_raw(&out, line, (size_t)n))
		goto fail;
	if (write_state(&out, ctx) < 0 || out.err) {
		rep.step = out.write_failed ? SNAP_WRITE : SNAP_STATE;
		goto fail;
	}
	n = snprintf(line, sizeof(line), "{\"entries\":%" PRIu64 "}\n", out.entries);
	if (out_raw(&out, line, (size_t)n) || out_flush(&out))
		goto fail;
	rep.step = SNAP_FSYNC;
	if (fsync(out.fd))
		goto fail_errno;
	close(out.fd);
	do {
		r = recv(job->sock, &go, 1, 0);
	} while (r < 0 && errno == EINTR);
	if (r != 1 || go != SNAP_GO) {
		rep.step = SNAP_ABANDONED;
		rep.err = 0;
		child_report(job, &rep, j->sdirfd);
	}
	rep.step = SNAP_RENAME;
	if (renameat(j->sdirfd, SNAPSHOT_TMP, j->sdirfd, SNAPSHOT_NAME))
		goto fail_errno;
	rep.step = SNAP_DIRSYNC;
	if (fsync(j->sdirfd))
		goto fail_errno;
	rep.step = SNAP_OK;
	rep.err = 0;
	rep.entries = out.entries;
	rep.bytes = out.bytes;
	child_report(job, &rep, j->sdirfd);
fail_errno:
	out.err = errno;
fail:
	rep.err = out.err;
	child_report(job, &rep, j->sdirfd);
}

static int64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Readable once the child has exited (close-on-exec by itself). */
static int snap_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

int sbx_journal_snapshot_start(struct sbx_journal *j, sbx_snapshot_write_fn write_state,
			       void *ctx, char *why, size_t whylen)
{
	struct snap_job job = { .parent = getpid() };
	int64_t t0;
	pid_t pid;
	int sv[2];

	if (!j || !write_state) {
		snprintf(why, whylen, "no journal or state writer");
		return -1;
	}
	if (j->snap.pid || is_failed(j))
		return 0;
	pthread_mutex_lock(&j->mu);
	job.seq = j->last_seq;
	job.off = j->last_rec_off;
	sbx_jr_seg_name(j->last_rec_seg, job.segment);
	memcpy(job.hash, j->last_hash, sizeof(job.hash));
	job.seal = j->seal;
	bool fresh = job.seq == 0 || job.seq == j->snap_seq;
	pthread_mutex_unlock(&j->mu);
	if (fresh)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		snprintf(why, whylen, "cannot make a socket pair for the snapshot process: %s",
			 strerror(errno));
		return -1;
	}
	job.sock = sv[1];
	t0 = mono_us();
	pid = fork();
	if (pid == 0)
		snap_child(j, &job, write_state, ctx);
	j->snap.fork_us = mono_us() - t0;
	close(sv[1]);
	if (pid < 0) {
		snprintf(why, whylen, "cannot fork the snapshot process: %s", strerror(errno));
		close(sv[0]);
		return -1;
	}
	(void)fcntl(sv[0], F_SETFL, O_NONBLOCK);
	j->snap.pid = pid;
	j->snap.sock = sv[0];
	j->snap.pidfd = snap_pidfd(pid);
	j->snap.seq = job.seq;
	j->snap.seal_seq = job.seal.seq;
	j->snap.released = false;
	j->snap.started_us = t0;
	return 1;
}

int sbx_journal_snapshot_fd(const struct sbx_journal *j)
{
	return j && j->snap.pid ? j->snap.pidfd : -1;
}

bool sbx_journal_snapshot_running(const struct sbx_journal *j)
{
	return j && j->snap.pid;
}

/* The child may name its file only once its seq is durable. */
static void snap_release(struct sbx_journal *j)
{
	char c;

	if (j->snap.released)
		return;
	if (__atomic_load_n(&j->durable, __ATOMIC_ACQUIRE) >= j->snap.seq)
		c = SNAP_GO;
	else if (is_failed(j))
		c = SNAP_QUIT;
	else
		return;
	/* One byte into an empty socket: it cannot block.  A child that is
	 * gone already is reaped below. */
	(void)send(j->snap.sock, &c, 1, MSG_NOSIGNAL);
	j->snap.released = true;
}

static const char *const snap_step_text[] = {
	[SNAP_OK] = "",
	[SNAP_NOMEM] = "out of memory",
	[SNAP_OPEN] = "cannot create snapshot.json.tmp",
	[SNAP_WRITE] = "cannot write snapshot.json.tmp",
	[SNAP_STATE] = "the state could not be written out",
	[SNAP_FSYNC] = "fsync of snapshot.json.tmp failed",
	[SNAP_ABANDONED] = "its records never became durable (the journal failed)",
	[SNAP_RENAME] = "cannot rename snapshot.json.tmp to snapshot.json",
	[SNAP_DIRSYNC] = "fsync of the state dir after renaming failed",
};

/* The child has exited with status: read its report, forget it. */
static int snap_finish(struct sbx_journal *j, int status, char *why, size_t whylen)
{
	struct snap_report rep = { .step = -1 };
	uint64_t seq = j->snap.seq;
	int ret = -1;
	ssize_t r;

	/* A child that exits without reading our byte resets the socket:
	 * that error comes first, its report after. */
	for (int i = 0; i < 2; i++) {
		r = recv(j->snap.sock, &rep, sizeof(rep), MSG_DONTWAIT);
		if (r >= 0 || errno != ECONNRESET)
			break;
	}

	if (r != (ssize_t)sizeof(rep))
		rep.step = -1;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && rep.step == SNAP_OK) {
		pthread_mutex_lock(&j->mu);
		j->snap_seq = seq;
		pthread_mutex_unlock(&j->mu);
		j->snap_seal_seq = j->snap.seal_seq;
		j->snap_last.seq = seq;
		j->snap_last.entries = rep.entries;
		j->snap_last.bytes = rep.bytes;
		j->snap_last.fork_us = j->snap.fork_us;
		j->snap_last.took_ms = (mono_us() - j->snap.started_us) / 1000;
		ret = 1;
	} else if (WIFSIGNALED(status)) {
		snprintf(why, whylen, "snapshot at seq %" PRIu64 " not written: its process was killed by signal %d (%s)",
			 seq, WTERMSIG(status), strsignal(WTERMSIG(status)));
	} else if (rep.step > SNAP_OK && rep.step <= SNAP_DIRSYNC) {
		snprintf(why, whylen, "snapshot at seq %" PRIu64 " not written: %s%s%s", seq,
			 snap_step_text[rep.step], rep.err ? ": " : "",
			 rep.err ? strerror(rep.err) : "");
	} else {
		snprintf(why, whylen, "snapshot at seq %" PRIu64 " not written: its process exited with status %d without saying why",
			 seq, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	/* What a child that died halfway left (it is gone: nobody else
	 * writes this name). */
	if (ret < 0)
		(void)unlinkat(j->sdirfd, SNAPSHOT_TMP, 0);
	if (j->snap.pidfd >= 0)
		close(j->snap.pidfd);
	close(j->snap.sock);
	memset(&j->snap, 0, sizeof(j->snap));
	return ret;
}

int sbx_journal_snapshot_poll(struct sbx_journal *j, char *why, size_t whylen)
{
	int status = 0;
	pid_t r;

	if (!j || !j->snap.pid)
		return 0;
	snap_release(j);
	r = waitpid(j->snap.pid, &status, WNOHANG);
	if (r == 0 || (r < 0 && errno == EINTR))
		return 0;
	if (r < 0)
		status = -1; /* reaped by someone else: no report to trust */
	return snap_finish(j, status, why, whylen);
}

void sbx_journal_snapshot_cancel(struct sbx_journal *j)
{
	int status;

	if (!j || !j->snap.pid)
		return;
	(void)kill(j->snap.pid, SIGKILL);
	while (waitpid(j->snap.pid, &status, 0) < 0 && errno == EINTR)
		;
	/* Its half-written file; the previous snapshot.json is untouched
	 * (a child that got as far as the rename leaves a complete one). */
	(void)unlinkat(j->sdirfd, SNAPSHOT_TMP, 0);
	if (j->snap.pidfd >= 0)
		close(j->snap.pidfd);
	close(j->snap.sock);
	memset(&j->snap, 0, sizeof(j->snap));
}

int64_t sbx_journal_snapshot_age_ms(const struct sbx_journal *j)
{
	return j && j->snap.pid ? (mono_us() - j->snap.started_us) / 1000 : -1;
}

bool sbx_journal_snapshot_kill(struct sbx_journal *j)
{
	if (!j || !j->snap.pid || j->snap.killed)
		return false;
	/* Not waited for here: a child in uninterruptible sleep (a disk that
	 * does not answer) dies only when that returns. */
	(void)kill(j->snap.pid, SIGKILL);
	j->snap.killed = true;
	return true;
}

int sbx_journal_snapshot_wait(struct sbx_journal *j, int timeout_ms, char *why, size_t whylen)
{
	int64_t deadline = mono_us() + (int64_t)timeout_ms * 1000;
	uint64_t seq;
	int rc;

	if (!j || !j->snap.pid)
		return 0;
	seq = j->snap.seq;
	/* Durable (or failed) now, so the child is told either way. */
	(void)sbx_journal_flush(j);
	for (;;) {
		int64_t left = timeout_ms < 0 ? 1000 : (deadline - mono_us()) / 1000;
		struct pollfd p = { .fd = j->snap.pidfd, .events = POLLIN };

		rc = sbx_journal_snapshot_poll(j, why, whylen);
		if (rc || !j->snap.pid)
			return rc;
		if (left <= 0) {
			sbx_journal_snapshot_cancel(j);
			snprintf(why, whylen, "snapshot at seq %" PRIu64 " not written: it took longer than %d ms and was stopped",
				 seq, timeout_ms);
			return -1;
		}
		if (p.fd < 0) {
			struct timespec ts = { 0, 2 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		} else {
			(void)poll(&p, 1, (int)(left > 1000 ? 1000 : left));
		}
	}
}

void sbx_journal_snapshot_last(struct sbx_journal *j, struct sbx_snapshot_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!j)
		return;
	*st = j->snap_last;
	pthread_mutex_lock(&j->mu);
	st->seq = j->snap_seq;
	pthread_mutex_unlock(&j->mu);
}

int sbx_journal_maybe_snapshot(struct sbx_journal *j, sbx_snapshot_write_fn write_state,
			       void *ctx, bool force)
{
	char why[256] = "";
	uint64_t seq, snap;
	int rc;

	if (!j || !write_state)
		return -1;
	/* One child at a time: a running one finishes first. */
	if (j->snap.pid && sbx_journal_snapshot_wait(j, -1, why, sizeof(why)) < 0)
		why[0] = '\0';
	pthread_mutex_lock(&j->mu);
	seq = j->last_seq;
	snap = j->snap_seq;
	pthread_mutex_unlock(&j->mu);
	if (seq == 0 || seq == snap || (!force && seq - snap < j->snapshot_every))
		return 0;
	rc = sbx_journal_snapshot_start(j, write_state, ctx, why, sizeof(why));
	if (rc <= 0)
		return rc;
	return sbx_journal_snapshot_wait(j, -1, why, sizeof(why)) == 1 ? 0 : -1;
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
	/* A seal in a tail that was cut is gone with it. */
	if (res->seal.seq && res->seal.seq <= res->last_seq)
		j->seal = res->seal;
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
	if (info->used_snapshot && info->checked_from > 1)
		j->snap_seal_seq = info->checked_from;
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
	sbx_journal_snapshot_cancel(j);
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
