/*
 * GET /v1/events: the live record stream as Server-Sent Events
 * (docs/api.md, "Events").  Each stream is a text follower of tail.c:
 * the same visibility rule (admins and the audit scope every record,
 * anyone else the records they are user or actor of), the same filters
 * as `sbxctl audit tail`, the same ring to resume from, the same bound
 * on what may wait for a reader and the same drop of one that falls
 * behind.  This file only carries the text to libmicrohttpd: a stream
 * with nothing to send is suspended, and resumed when the pump queues
 * text for it, so the loop never waits for a reader.
 *
 * Over plain HTTP a stream is then handed to tail.c's writer thread once
 * its first bytes are out (sbx_tail_sub_hand_over): libmicrohttpd keeps
 * the connection, suspended, and the thread sends the records straight
 * to the socket, so a hundred readers cost the loop that answers checks
 * a pointer each per record rather than a hundred sends.  The response
 * is therefore neither chunked nor kept alive (its end is the
 * connection's); over TLS the bytes must go through libmicrohttpd's TLS
 * session, and the loop sends them as before.
 */
#include "config.h"

#include "web_int.h"

#include "api.h"
#include "broker.h"
#include "httpguard.h"
#include "log.h"
#include "record_filter.h"
#include "tail.h"
#include "sbxio.h"
#include "timeutil.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t streams_of(const struct sbx_web *w, const char *person)
{
	size_t n = 0;

	for (const struct stream *s = w->streams; s; s = s->next)
		n += strcmp(s->person, person) == 0;
	return n;
}

static unsigned events_max(const struct sbx_web *w)
{
	unsigned v = w->b->settings.api.events_max;

	return v ? v : SBX_EVENTS_MAX_DEFAULT;
}

static unsigned events_per_person(const struct sbx_web *w)
{
	unsigned v = w->b->settings.api.events_per_person;

	return v ? v : SBX_EVENTS_PER_PERSON_DEFAULT;
}

/* The pump queued text for s (called while it walks its followers: only
 * note it; after_pump resumes). */
static void on_wake(void *arg)
{
	struct stream *s = arg;

	s->woken = true;
	s->w->need_run = true;
}

/* The writer thread sends s, and it is not over: nothing for MHD. */
static bool with_writer(struct sbx_web *w, const struct stream *s)
{
	return s->sub && !s->gone && sbx_tail_sub_handed(w->b->tail, s->sub, sbx_mono_ms()) > 0;
}

static void resume_woken(struct sbx_web *w)
{
	bool any = false;

	for (struct stream *s = w->streams; s; s = s->next) {
		if (!s->woken)
			continue;
		if (with_writer(w, s)) {
			s->woken = false;
			continue;
		}
		s->woken = false;
		if (s->suspended) {
			s->suspended = false;
			MHD_resume_connection(s->conn);
			any = true;
		}
	}
	w->need_run = false;
	/* MHD takes a run to ask the reader for the text and more to send
	 * it; run() goes on while MHD has such work (the sockets are
	 * writable already: no epoll event would prompt those runs). */
	if (any)
		w->run(w->run_arg);
}

static void after_pump(void *arg)
{
	struct sbx_web *w = arg;

	if (w->need_run)
		resume_woken(w);
}

void sbx_events_init(struct sbx_web *w)
{
	sbx_tail_set_after_pump(w->b, after_pump, w);
}

/* MHD asks for the stream's next bytes. */
static ssize_t read_stream(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	struct sbx_tail *t = s->w->b->tail;
	const union MHD_ConnectionInfo *ci;
	size_t n;

	(void)pos;
	if (s->gone || !s->sub || sbx_tail_sub_handed(t, s->sub, sbx_mono_ms()) < 0) {
		/* Before MHD closes the socket: the thread lets go of it. */
		if (s->sub)
			sbx_tail_sub_take_back(t, s->sub);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	if (sbx_tail_sub_handed(t, s->sub, sbx_mono_ms()) > 0)
		goto wait;
	/* Bytes taken earlier are out now (MHD asks for more only once it
	 * has sent what it had), and the headers before them: from here on
	 * the socket is the writer thread's to write. */
	if (!s->w->tls && sbx_tail_sub_taken(s->sub) > 0 &&
	    (ci = MHD_get_connection_info(s->conn, MHD_CONNECTION_INFO_CONNECTION_FD)) &&
	    sbx_tail_sub_hand_over(t, s->sub, ci->connect_fd) == 0)
		goto wait;
	n = sbx_tail_sub_read(s->sub, buf, max);
	if (n)
		return (ssize_t)n;
	if (sbx_tail_sub_done(s->sub))
		return MHD_CONTENT_READER_END_OF_STREAM;
	/* Nothing yet: wait for the pump (on_wake) without spinning. */
wait:
	s->suspended = true;
	MHD_suspend_connection(s->conn);
	return 0;
}

/* The response is done with (the connection ended): nothing; the
 * stream is freed by sbx_events_done from the request's completion. */
static void free_nothing(void *cls)
{
	(void)cls;
}

static void unlink_stream(struct sbx_web *w, struct stream *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else if (w->streams == s)
		w->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	w->nstreams--;
}

void sbx_events_done(struct sbx_web *w, struct stream *s)
{
	if (!s)
		return;
	unlink_stream(w, s);
	sbx_tail_sub_close(w->b->tail, s->sub);
	free(s);
}

static const char *arg(struct MHD_Connection *conn, const char *key)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);

	return v && v[0] ? v : NULL;
}

/* A number from 0 to max in text; -1 when it is not one. */
static int64_t number(const char *text, int64_t max)
{
	int64_t v = 0;

	if (!text || !*text)
		return -1;
	for (const char *c = text; *c; c++) {
		if (*c < '0' || *c > '9' || v > max)
			return -1;
		v = v * 10 + (*c - '0');
	}
	return v > max ? -1 : v;
}

enum MHD_Result sbx_events_serve(struct sbx_web *w, struct MHD_Connection *conn,
				 const struct sbx_token *t, bool see_all,
				 struct sbx_web_call **state)
{
	struct sbx_tail_spec spec = { 0 };
	struct MHD_Response *r = NULL;
	struct stream *s = NULL;
	const char *last = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
	const char *v;
	int64_t after = 0, count = 0, id;
	enum MHD_Result ret;

	if (w->nstreams >= events_max(w))
		return sbx_web_fail(conn, 503, "unavailable", "the broker streams events to %u "
				    "readers at once already (api.events_max); try again later",
				    events_max(w));
	if (streams_of(w, t->owner) >= events_per_person(w))
		return sbx_web_fail(conn, 429, "rate_limited", "%s reads %u event streams at once "
				    "already (api.events_per_person)", t->owner,
				    events_per_person(w));
	v = last ? last : arg(conn, "after");
	if (v && (after = number(v, INT64_MAX / 16)) < 0)
		return sbx_web_fail(conn, 400, "bad_request", "Last-Event-ID and after are the seq "
				    "of a record");
	v = arg(conn, "count");
	if (v && ((count = number(v, SBX_TAIL_RING)) < 0))
		return sbx_web_fail(conn, 400, "bad_request", "count is a number from 0 to %u",
				    SBX_TAIL_RING);
	v = arg(conn, "outcome");
	if (v && !sbx_rec_outcome_known(v))
		return sbx_web_fail(conn, 400, "bad_request", "unknown outcome \"%s\": one of %s",
				    v, sbx_rec_outcome_list());
	v = arg(conn, "id");
	if (v && ((id = number(v, UINT32_MAX)) <= 0))
		return sbx_web_fail(conn, 400, "bad_request", "id is a request id, a number from 1");
	spec.has_id = v != NULL;
	spec.id = v ? (uint32_t)id : 0;
	spec.person = t->owner;
	spec.admin = see_all;
	spec.uid = (uid_t)-1;
	spec.user = arg(conn, "user");
	spec.actor = arg(conn, "actor");
	spec.role = arg(conn, "role");
	spec.event = arg(conn, "event");
	spec.host = arg(conn, "host");
	spec.outcome = arg(conn, "outcome");
	for (const char *const *p = (const char *const[]){ spec.user, spec.actor, spec.role,
							    spec.event, spec.host, NULL }; *p; p++)
		if (*p && strlen(*p) > SBX_NAME_MAX)
			return sbx_web_fail(conn, 400, "bad_request", "a filter is too long");
	s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	s->call.kind = WEB_CALL_STREAM;
	s->w = w;
	s->conn = conn;
	snprintf(s->person, sizeof(s->person), "%s", t->owner);
	snprintf(s->tok_id, sizeof(s->tok_id), "%s", t->id);
	s->session = sbx_tokens_by_id(w->b->tokens, t->id) != t;
	s->sub = sbx_tail_follow_text(w->b, &spec, (uint64_t)after, (uint32_t)count, on_wake, s);
	if (!s->sub)
		goto oom;
	s->next = w->streams;
	if (w->streams)
		w->streams->prev = s;
	w->streams = s;
	w->nstreams++;
	*state = &s->call;
	r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, read_stream, s,
					      free_nothing);
	if (!r)
		return MHD_NO;  /* the completion frees s */
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	(void)MHD_add_response_header(r, "X-Accel-Buffering", "no");
	/* Neither chunked nor kept alive: the writer thread writes the body
	 * as it is, and the stream ends with the connection. */
	if (!w->tls && MHD_set_response_options(r, MHD_RF_HTTP_1_0_COMPATIBLE_STRICT,
						MHD_RO_END) != MHD_YES) {
		MHD_destroy_response(r);
		return MHD_NO;  /* the completion frees s */
	}
	/* The broker, not the reader, decides when there is more: no
	 * deadline (a reader gone is noticed by the keep-alives). */
	sbx_httpguard_rearm(conn, SBX_GUARD_HELD);
	ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	return ret;
oom:
	free(s);
	return MHD_NO;
}

/* A suspended stream is not watched by MHD: notice readers that went
 * away (a reader never sends after its request, so anything readable is
 * the end) and let MHD close them. */
static void notice_gone(struct sbx_web *w)
{
	struct pollfd *pf;
	struct stream **of;
	size_t n = 0;

	if (!w->nstreams)
		return;
	pf = calloc(w->nstreams, sizeof(*pf));
	of = calloc(w->nstreams, sizeof(*of));
	if (!pf || !of)
		goto out;
	for (struct stream *s = w->streams; s && n < w->nstreams; s = s->next) {
		const union MHD_ConnectionInfo *ci;

		if (!s->suspended)
			continue;
		ci = MHD_get_connection_info(s->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		if (!ci)
			continue;
		pf[n].fd = ci->connect_fd;
		pf[n].events = POLLIN | POLLRDHUP;
		of[n++] = s;
	}
	if (poll(pf, n, 0) <= 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (!pf[i].revents)
			continue;
		of[i]->gone = true;
		of[i]->woken = true;
	}
out:
	free(pf);
	free(of);
}

/* Is what opened s still good: the token live, the session on, the
 * person known?  A stream ends with what it was opened with. */
static bool still_allowed(struct sbx_web *w, const struct stream *s)
{
	struct sbx_token *t;

	if (s->session)
		return sbx_web_session_live(w, s->tok_id);
	t = sbx_tokens_by_id(w->b->tokens, s->tok_id);
	return t && t->live && sbx_now() < t->expires_at && sbx_api_owner_known(w->b, t->owner);
}

bool sbx_events_tick(struct sbx_web *w, int64_t now_ms)
{
	bool run = false;

	if (now_ms - w->last_auth_check_ms >= 1000) {
		w->last_auth_check_ms = now_ms;
		for (struct stream *s = w->streams; s; s = s->next) {
			if (s->gone || still_allowed(w, s))
				continue;
			s->gone = true;
			s->woken = true;
		}
	}

	if (now_ms - w->last_gone_check_ms >= 500) {
		w->last_gone_check_ms = now_ms;
		notice_gone(w);
	}

	if (now_ms - w->last_keepalive_ms >= SBX_EVENTS_KEEPALIVE_MS) {
		w->last_keepalive_ms = now_ms;
		for (struct stream *s = w->streams; s; s = s->next) {
			if (!s->sub || sbx_tail_sub_dropped(s->sub))
				continue;
			(void)sbx_tail_sub_note(s->sub, "keep-alive");
			s->woken = true;
		}
	}
	for (struct stream *s = w->streams; s; s = s->next) {
		/* Dropped: its last event goes out, and then it ends; one that
		 * does not read even that is cut (httpguard's deadline). */
		if (s->sub && sbx_tail_sub_dropped(s->sub) && !s->cut_armed) {
			s->cut_armed = true;
			s->woken = true;
			sbx_httpguard_rearm(s->conn, SBX_GUARD_BUSY);
		}
		/* The writer thread's: resumed only to end it (read_stream). */
		if (s->woken && with_writer(w, s)) {
			s->woken = false;
			continue;
		}
		if (s->sub && !s->gone && sbx_tail_sub_handed(w->b->tail, s->sub, now_ms) < 0)
			s->woken = true;
		if (s->woken && s->suspended) {
			s->woken = false;
			s->suspended = false;
			MHD_resume_connection(s->conn);
			run = true;
		}
	}
	return run;
}

void sbx_events_stop(struct sbx_web *w)
{
	for (struct stream *s = w->streams; s; s = s->next) {
		if (s->suspended) {
			s->suspended = false;
			MHD_resume_connection(s->conn);
		}
		/* End the stream at the next read. */
		sbx_tail_sub_close(w->b->tail, s->sub);
		s->sub = NULL;
	}
	sbx_tail_set_after_pump(w->b, NULL, NULL);
}
