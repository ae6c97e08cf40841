/*
 * GET /v1/audit: the journal's records that match a query, streamed as
 * JSON lines (application/x-ndjson), one JSON array, or CSV (the rows of
 * sbxctl audit export, journal/record_csv.h), never held whole in memory.
 *
 * The reading is the journal's own sbx_journal_foreach (what `sbxctl
 * audit query` uses), run on a thread of its own that writes the matching
 * lines into a socketpair; the loop hands what is there to libmicrohttpd
 * as the client takes it.  A client that reads slowly blocks only its
 * thread (the socketpair fills up); the loop never waits for the disk or
 * the client.  At most AUDIT_STREAMS run at once.
 */
#include "config.h"

#include "api_int.h"

#include "journal.h"
#include "record_csv.h"
#include "record_filter.h"
#include "log.h"
#include "timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define AUDIT_STREAMS 4
#define AUDIT_SOCKBUF (1024 * 1024)

static atomic_int running;

/* What the thread owns. */
struct job {
	int fd;                      /* the writing end */
	char *state_dir;
	struct sbx_api_audit_query q;
	uint64_t rows;               /* records written */
	struct sbx_csv_buf row;      /* format csv: the row being made */
};

/* What the loop owns (the response's reader). */
struct stream {
	int fd;                      /* the reading end */
	int ep;                      /* the API's epoll set, to wait for more */
	struct MHD_Connection *conn;
	bool suspended;              /* waiting for its thread */
	struct stream *prev, *next;
};

/* Every stream, so that the suspended ones can be resumed before MHD
 * stops. */
static struct stream *streams;

/* The same filters as sbxctl audit query and TAIL (journal/record_filter.h). */
bool sbx_api_audit_match(const json_t *rec, const struct sbx_api_audit_query *q)
{
	struct sbx_rec_filter f = {
		.user = q->user[0] ? q->user : NULL,
		.role = q->role[0] ? q->role : NULL,
		.event = q->event[0] ? q->event : NULL,
		.has_id = q->has_id,
		.id = q->id,
		.has_since = q->since_us != 0,
		.since_us = q->since_us,
		.has_until = q->until_us != 0,
		.until_us = q->until_us,
	};

	return sbx_rec_filter_match(rec, &f, NULL);
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One matching record, in the format asked for.  0, or -1 when the
 * client went away (or, for csv, the line is no record). */
static int write_record(struct job *j, const char *line, size_t len)
{
	char why[256] = "";
	int ret;

	switch (j->q.format) {
	case SBX_API_AUDIT_JSON:
		ret = write_all(j->fd, j->rows ? ",\n" : "[\n", 2) < 0 || write_all(j->fd, line, len) < 0
			      ? -1
			      : 0;
		break;
	case SBX_API_AUDIT_CSV:
		j->row.len = 0;
		if (sbx_record_csv_row(&j->row, line, len, why, sizeof(why)) < 0) {
			sbx_warn("api: an audit stream ended early: %s", why);
			return -1;
		}
		ret = write_all(j->fd, j->row.p, j->row.len);
		break;
	default:
		ret = write_all(j->fd, line, len) < 0 || write_all(j->fd, "\n", 1) < 0 ? -1 : 0;
		break;
	}
	j->rows++;
	return ret;
}

/* What comes before the first record and after the last. */
static void write_head(struct job *j)
{
	if (j->q.format == SBX_API_AUDIT_CSV)
		(void)write_all(j->fd, SBX_CSV_HEADER, sizeof(SBX_CSV_HEADER) - 1);
}

static void write_tail(struct job *j, bool whole)
{
	/* A JSON array cut short stays unclosed: the client sees it is
	 * not whole. */
	if (j->q.format == SBX_API_AUDIT_JSON && whole)
		(void)write_all(j->fd, j->rows ? "\n]\n" : "[]\n", j->rows ? 3 : 3);
}

static int one(const json_t *rec, const char *line, size_t len, void *ctx)
{
	struct job *j = ctx;

	if (j->q.max_seq && (uint64_t)json_integer_value(json_object_get(rec, "seq")) > j->q.max_seq)
		return 1;
	if (!sbx_api_audit_match(rec, &j->q))
		return 0;
	/* The client went away: stop reading. */
	return write_record(j, line, len) < 0 ? 1 : 0;
}

static void *job_main(void *arg)
{
	struct job *j = arg;
	char err[256];

	write_head(j);
	if (sbx_journal_foreach(j->state_dir, one, j, err, sizeof(err)) < 0) {
		sbx_warn("api: an audit stream ended early: %s", err);
	} else {
		write_tail(j, true);
	}
	sbx_csv_buf_free(&j->row);
	close(j->fd);
	free(j->state_dir);
	free(j);
	atomic_fetch_sub(&running, 1);
	return NULL;
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT, .data.ptr = s };
	ssize_t r;

	(void)pos;
	r = recv(s->fd, buf, max, MSG_DONTWAIT);
	if (r > 0)
		return r;
	if (r == 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	/* Nothing yet: the connection sleeps until the thread's next line
	 * (or its end) wakes it (sbx_api_audit_ready); one shot, so that
	 * lines the client is not ready for do not wake the loop again and
	 * again. */
	if (epoll_ctl(s->ep, EPOLL_CTL_MOD, s->fd, &ev) < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	s->suspended = true;
	MHD_suspend_connection(s->conn);
	return 0;
}

static void reader_free(void *cls)
{
	struct stream *s = cls;

	if (s->prev)
		s->prev->next = s->next;
	else
		streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	epoll_ctl(s->ep, EPOLL_CTL_DEL, s->fd, NULL);
	/* The thread's next send fails: it stops. */
	close(s->fd);
	free(s);
}

void sbx_api_audit_ready(void *stream)
{
	struct stream *s = stream;

	if (!s->suspended)
		return;
	s->suspended = false;
	MHD_resume_connection(s->conn);
}

void sbx_api_audit_resume_all(void)
{
	for (struct stream *s = streams; s; s = s->next)
		sbx_api_audit_ready(s);
}

struct MHD_Response *sbx_api_audit_stream(const char *state_dir,
					  const struct sbx_api_audit_query *q, int ep,
					  struct MHD_Connection *conn, char *why, size_t whylen)
{
	struct MHD_Response *resp = NULL;
	struct stream *s = NULL;
	struct job *j = NULL;
	int sv[2] = { -1, -1 }, sz = AUDIT_SOCKBUF;
	struct epoll_event ev = { .events = EPOLLIN | EPOLLONESHOT };
	pthread_attr_t attr;
	pthread_t th;

	if (atomic_fetch_add(&running, 1) >= AUDIT_STREAMS) {
		atomic_fetch_sub(&running, 1);
		snprintf(why, whylen, "%d audit streams are running already: try again later",
			 AUDIT_STREAMS);
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	j = calloc(1, sizeof(*j));
	if (!s || !j || !(j->state_dir = strdup(state_dir)) ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		snprintf(why, whylen, "out of resources for an audit stream");
		goto fail;
	}
	(void)setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	s->fd = sv[0];
	s->ep = ep;
	s->conn = conn;
	ev.data.ptr = s;
	j->fd = sv[1];
	j->q = *q;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) {
		snprintf(why, whylen, "cannot watch an audit stream: %s", strerror(errno));
		goto fail;
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 8 * 1024, reader, s,
						 reader_free);
	if (!resp) {
		epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	s->next = streams;
	if (streams)
		streams->prev = s;
	streams = s;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &attr, job_main, j) != 0) {
		pthread_attr_destroy(&attr);
		/* The response's free closes the reading end. */
		close(j->fd);
		free(j->state_dir);
		free(j);
		MHD_destroy_response(resp);
		atomic_fetch_sub(&running, 1);
		snprintf(why, whylen, "cannot start an audit stream");
		return NULL;
	}
	pthread_attr_destroy(&attr);
	return resp;
fail:
	if (sv[0] >= 0)
		close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	if (j)
		free(j->state_dir);
	free(j);
	free(s);
	atomic_fetch_sub(&running, 1);
	return NULL;
}
