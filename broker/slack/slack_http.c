/*
 * Slack approvals: the HTTP endpoint for Slack's interactivity callbacks.
 *
 * libmicrohttpd runs in external-epoll mode: its epoll fd sits in the
 * feature's epoll set and MHD_run is called from the broker's loop, so
 * the handler runs on the loop thread and may call the broker directly.
 * A request is checked in this order, and the first failure ends it:
 * method and path, size (64 KiB), Slack's signature and timestamp, replay,
 * content type, payload, then the decision itself (slack_act).  A change
 * is acknowledged to Slack only once its journal record is durable: the
 * connection is suspended until then (milliseconds; Slack allows 3 s).
 *
 * A peer cannot hold the endpoint: every connection carries one request
 * (each answer says Connection: close) and must be done `timeout` after
 * it was accepted, whatever it sends meanwhile (MHD's own timeout is an
 * idle timeout, which a byte every few seconds resets); one address may
 * hold PER_ADDRESS_MAX of the MAX_CONNECTIONS at once.  What peers can
 * cause once per connection (refusals, closed connections, MHD's own
 * complaints) is logged once per address (or message) per minute, with
 * a count, never once per connection.
 */
#include "config.h"

#include "slack_int.h"
#include "httpguard.h"
#include "fleet.h"

#include "log.h"
#include "sbxio.h"
#include "timeutil.h"
#include "text.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <microhttpd.h>

#define MAX_CONNECTIONS 64
#define PER_ADDRESS_MAX 8            /* of them from one address at once */
#define HEADER_MEMORY (32 * 1024)

/* One HTTP request, from its headers to its completion. */
struct req_ctx {
	struct MHD_Connection *conn;
	struct sbx_http_body body;
	/* held until the journal has the change (in a fleet: first until
	 * the fleet's log decided it) */
	bool held, ready;
	uint64_t wait_seq;
	struct slack_change *change;
	uint32_t req;
	char response_url[SLACK_URL_MAX];
	unsigned status;
	/* a slash command: its answer is this response's body */
	bool command;
	char answer[1024];
	struct req_ctx *next_held;
};

struct slack_http {
	struct sbx_slack *s;
	struct MHD_Daemon *d;
	struct req_ctx *held;
	struct sbx_httpguard *guard;  /* deadlines, the cap per address, the log */
};

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, const char *text)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(strlen(text), (void *)(uintptr_t)text,
					    MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	/* One request per connection: the deadline from accept then bounds
	 * each request, and never cuts a kept-alive one halfway. */
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

/* A slash command's answer: shown to the person who typed it only. */
static enum MHD_Result respond_command(struct MHD_Connection *conn, const char *text)
{
	json_t *o = json_pack("{s:s, s:s}", "response_type", "ephemeral", "text", text);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	struct MHD_Response *r;
	enum MHD_Result ret;

	json_decref(o);
	if (!body)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static const char *header(struct MHD_Connection *conn, const char *name)
{
	return MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
}

/* Signature, timestamp and replay.  Returns 0, or the HTTP status to
 * refuse with (after logging why). */
static unsigned check_signature(struct slack_http *h, struct req_ctx *rc, char *msg,
				size_t msglen)
{
	struct sbx_slack *s = h->s;
	const char *ts = header(rc->conn, "X-Slack-Request-Timestamp");
	const char *sig = header(rc->conn, "X-Slack-Signature");
	int64_t now = sbx_now(), t = 0;
	enum slack_verdict v;
	int seen;

	v = slack_verify(s->secret, s->secret_len, ts, sig, rc->body.buf ? rc->body.buf : "", rc->body.len, now,
			 &t);
	if (v != SLACK_SIG_OK) {
		snprintf(msg, msglen, "%s", slack_verdict_text(v));
		return 401;
	}
	seen = slack_replay_check(s->replay, sig, t, now);
	if (seen == 1) {
		snprintf(msg, msglen, "this signed request was already received (replay)");
		return 401;
	}
	if (seen < 0) {
		snprintf(msg, msglen, "too many callbacks in the last 5 minutes");
		return 503;
	}
	return 0;
}

/* A press, in a fleet: acted on once the fleet's log decides (fleet.h). */
struct slack_change {
	struct sbx_change ch;
	struct sbx_slack *s;
	struct slack_click click;
	int acted;
	char msg[1024];
};

static void click_run(struct sbx_broker *b, struct sbx_change *ch, uint64_t *local_seq)
{
	struct slack_change *sc = (struct slack_change *)ch;

	(void)b;
	*local_seq = 0;
	sc->acted = slack_act(sc->s, &sc->click, local_seq, sc->msg, sizeof(sc->msg));
}

static void click_refuse(struct sbx_broker *b, struct sbx_change *ch, const char *why)
{
	struct slack_change *sc = (struct slack_change *)ch;
	uint32_t id = 0;

	(void)b;
	(void)slack_button_id(sc->click.value, &id);
	sc->acted = 0;
	snprintf(sc->msg, sizeof(sc->msg), "Request #%u: %s.", id, why);
}

static void click_free(struct sbx_change *ch)
{
	free(ch);
}

static void hold(struct slack_http *h, struct req_ctx *rc, uint32_t id, const char *response_url)
{
	rc->held = true;
	rc->req = id;
	snprintf(rc->response_url, sizeof(rc->response_url), "%s", response_url);
	rc->next_held = h->held;
	h->held = rc;
	MHD_suspend_connection(rc->conn);
}

/* In a fleet: hand the press to the fleet and hold the answer. */
static enum MHD_Result defer_click(struct slack_http *h, struct req_ctx *rc,
				   const struct slack_click *c)
{
	struct slack_change *sc = calloc(1, sizeof(*sc));
	uint32_t id = 0;

	if (!sc)
		return respond(rc->conn, 503, "busy\n");
	sc->ch.run = click_run;
	sc->ch.refuse = click_refuse;
	sc->ch.free = click_free;
	sc->s = h->s;
	sc->click = *c;
	(void)slack_button_id(c->value, &id);
	rc->change = sc;
	sbx_fleet_submit(h->s->b, &sc->ch);
	hold(h, rc, id, c->response_url);
	return MHD_YES;
}

/* "/sbx ..." (slack_command.c): answered now, or once its record is on
 * disk. */
static enum MHD_Result handle_command(struct slack_http *h, struct req_ctx *rc)
{
	const char *body = rc->body.buf ? rc->body.buf : "";
	char *user = slack_form_value(body, rc->body.len, "user_id");
	char *text = slack_form_value(body, rc->body.len, "text");
	char ip[64], clean[64];
	enum MHD_Result ret;
	uint64_t wait_seq = 0;

	if (!user || !user[0]) {
		sbx_warn("slack: a signed command from %s without a user",
			 sbx_http_peer(rc->conn, ip, sizeof(ip)));
		ret = respond(rc->conn, 400, "no user_id\n");
		goto out;
	}
	if (!slack_command(h->s, sbx_sanitize(user, clean, sizeof(clean)), text, &wait_seq,
			   rc->answer, sizeof(rc->answer))) {
		ret = respond_command(rc->conn, rc->answer);
		goto out;
	}
	rc->command = true;
	rc->wait_seq = wait_seq;
	hold(h, rc, 0, "");
	ret = MHD_YES;
out:
	free(user);
	free(text);
	return ret;
}

/* A well-signed request: parse it, act, answer. */
static enum MHD_Result handle_click(struct slack_http *h, struct req_ctx *rc)
{
	struct sbx_slack *s = h->s;
	const char *ctype = header(rc->conn, MHD_HTTP_HEADER_CONTENT_TYPE);
	struct slack_click c;
	char why[512], msg[1024], ip[64], clean[600];
	char *payload = NULL;
	enum MHD_Result ret;
	uint64_t wait_seq = 0;
	uint32_t id = 0;
	int acted;

	if (!ctype || strncasecmp(ctype, "application/x-www-form-urlencoded", 33) != 0) {
		ret = respond(rc->conn, 415, "expected application/x-www-form-urlencoded\n");
		goto out;
	}
	payload = slack_form_value(rc->body.buf ? rc->body.buf : "", rc->body.len, "command");
	if (payload) {
		/* A slash command, not a button. */
		free(payload);
		payload = NULL;
		ret = handle_command(h, rc);
		goto out;
	}
	payload = slack_form_value(rc->body.buf ? rc->body.buf : "", rc->body.len, "payload");
	switch (payload ? slack_parse_click(payload, &c, why, sizeof(why)) : SLACK_CLICK_MALFORMED) {
	case SLACK_CLICK_MALFORMED:
		sbx_warn("slack: a signed callback from %s without a usable payload",
			 sbx_http_peer(rc->conn, ip, sizeof(ip)));
		ret = respond(rc->conn, 400, "no usable payload\n");
		goto out;
	case SLACK_CLICK_UNKNOWN:
		sbx_info("slack: %s pressed something sbx does not handle: %s", c.user_id,
			 sbx_sanitize(why, clean, sizeof(clean)));
		snprintf(msg, sizeof(msg), "sbx cannot do that (%s). Nothing was changed.", why);
		slack_answer(s, 0, c.response_url, msg);
		ret = respond(rc->conn, 200, "");
		goto out;
	case SLACK_CLICK_OK:
		break;
	}
	if (s->b->fleet) {
		ret = defer_click(h, rc, &c);
		goto out;
	}
	acted = slack_act(s, &c, &wait_seq, msg, sizeof(msg));
	(void)slack_button_id(c.value, &id);
	if (!acted) {
		slack_answer(s, id, c.response_url, msg);
		ret = respond(rc->conn, 200, "");
		goto out;
	}
	/* Recorded: answer Slack once the record is on disk. */
	rc->wait_seq = wait_seq;
	hold(h, rc, id, c.response_url);
	ret = MHD_YES;
out:
	free(payload);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_size, void **req_cls)
{
	struct slack_http *h = cls;
	struct req_ctx *rc = *req_cls;
	char msg[256], ip[64];
	unsigned status;

	(void)version;
	if (!rc) {
		if (strcmp(method, "POST") != 0)
			return respond(conn, 405, "only POST\n");
		if (strcmp(url, h->s->request_path) != 0)
			return respond(conn, 404, "not here\n");
		if (sbx_http_length_over(conn, SLACK_BODY_MAX))
			return respond(conn, 413, "at most 64 KiB\n");
		rc = calloc(1, sizeof(*rc));
		if (!rc)
			return MHD_NO;
		rc->conn = conn;
		*req_cls = rc;
		return MHD_YES;
	}
	if (rc->held) {
		/* Resumed: the journal has spoken. */
		if (!rc->ready)
			return MHD_YES;
		rc->held = false;
		if (rc->command)
			return respond_command(conn, rc->answer);
		return respond(conn, rc->status, "");
	}
	if (*upload_size) {
		sbx_http_body_add(&rc->body, upload_data, *upload_size, SLACK_BODY_MAX);
		*upload_size = 0;
		/* Only a chunked body gets here too big (a Content-Length
		 * over the limit was answered 413 above): stop reading it. */
		return rc->body.too_big ? MHD_NO : MHD_YES;
	}
	if (rc->body.too_big)
		return respond(conn, 413, "at most 64 KiB\n");
	status = check_signature(h, rc, msg, sizeof(msg));
	if (status) {
		sbx_warn("slack: refused a callback from %s: %s", sbx_http_peer(conn, ip, sizeof(ip)), msg);
		return respond(conn, status, status == 401 ? "invalid request signature\n"
							    : "busy\n");
	}
	return handle_click(h, rc);
}

static void unhold(struct slack_http *h, struct req_ctx *rc)
{
	for (struct req_ctx **p = &h->held; *p; p = &(*p)->next_held) {
		if (*p == rc) {
			*p = rc->next_held;
			return;
		}
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct slack_http *h = cls;
	struct req_ctx *rc = *req_cls;

	(void)conn;
	(void)toe;
	if (!rc)
		return;
	unhold(h, rc);
	if (rc->change)
		sbx_change_abandon(&rc->change->ch);
	sbx_http_body_free(&rc->body);
	free(rc);
	*req_cls = NULL;
}

static int listen_addr(const struct sbx_slack_conf *c, struct sockaddr_storage *ss, bool *v6)
{
	struct sockaddr_in *in4 = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)ss;

	memset(ss, 0, sizeof(*ss));
	*v6 = strchr(c->listen_host, ':') != NULL;
	if (*v6) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(c->listen_port);
		return inet_pton(AF_INET6, c->listen_host, &in6->sin6_addr) == 1 ? 0 : -1;
	}
	in4->sin_family = AF_INET;
	in4->sin_port = htons(c->listen_port);
	return inet_pton(AF_INET, c->listen_host, &in4->sin_addr) == 1 ? 0 : -1;
}

struct slack_http *slack_http_start(struct sbx_slack *s, char *err, size_t errlen)
{
	const struct sbx_slack_conf *c = &s->b->settings.slack;
	struct slack_http *h = calloc(1, sizeof(*h));
	const union MHD_DaemonInfo *info;
	struct sockaddr_storage ss;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	bool v6;

	if (!h) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	h->s = s;
	h->guard = sbx_httpguard_new("slack", s->timeout, PER_ADDRESS_MAX);
	if (!h->guard) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (listen_addr(c, &ss, &v6) < 0) {
		snprintf(err, errlen, "listen: %s is not a numeric address", c->listen_host);
		goto fail;
	}
	if (v6)
		flags |= MHD_USE_IPv6;
	/* The logger first, so MHD never writes to stderr on its own.  The
	 * idle timeout stays as a second line: the deadline (on_connection,
	 * cut_overdue) is what bounds a connection. */
	h->d = MHD_start_daemon(flags, c->listen_port, sbx_httpguard_on_accept, h->guard,
				on_request, h,
				MHD_OPTION_EXTERNAL_LOGGER, sbx_httpguard_mhd_log, h->guard,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)s->timeout,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HEADER_MEMORY,
				MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)MAX_CONNECTIONS,
				MHD_OPTION_STRICT_FOR_CLIENT, 1,
				MHD_OPTION_NOTIFY_CONNECTION, sbx_httpguard_on_connection, h->guard,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				MHD_OPTION_END);
	if (!h->d) {
		snprintf(err, errlen, "cannot listen on %s%s%s:%u for Slack (in use, or not an "
			 "address of this host)", v6 ? "[" : "", c->listen_host, v6 ? "]" : "",
			 c->listen_port);
		goto fail;
	}
	info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	sbx_info("slack: listening on %s%s%s:%u%s for Slack's interactivity callbacks",
		 v6 ? "[" : "", c->listen_host, v6 ? "]" : "", info ? info->port : c->listen_port,
		 c->request_path);
	return h;
fail:
	slack_http_free(h);
	return NULL;
}

int slack_http_fd(const struct slack_http *h)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);

	return info ? info->epoll_fd : -1;
}

void slack_http_run(struct slack_http *h)
{
	(void)sbx_httpguard_cut_overdue(h->guard);
	(void)MHD_run(h->d);
}

int64_t slack_http_deadline(const struct slack_http *h)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;
	int64_t at = INT64_MAX;

	if (MHD_get_timeout(h->d, &ms) == MHD_YES)
		at = sbx_mono_ms() + (ms > 3600000 ? 3600000 : (int64_t)ms);
	{
		int64_t g = sbx_httpguard_deadline(h->guard);

		if (g < at)
			at = g;
	}
	return at;
}

/* The fleet has decided the press rc waits for: one not acted on is
 * answered now, one acted on once its record is on disk.  false while it
 * has not. */
static bool fleet_decided(struct slack_http *h, struct req_ctx *rc)
{
	struct slack_change *sc = rc->change;

	if (sc->ch.state != SBX_CHANGE_DONE)
		return false;
	if (!sc->acted) {
		slack_answer(h->s, rc->req, rc->response_url, sc->msg);
		rc->wait_seq = 0;
	} else {
		rc->wait_seq = sc->ch.wait_seq;
	}
	rc->change = NULL;
	sc->ch.free(&sc->ch);
	return true;
}

void slack_http_tick(struct slack_http *h)
{
	struct sbx_broker *b = h->s->b;
	uint64_t durable = sbx_journal_durable_seq(b->journal);
	bool run = sbx_httpguard_cut_overdue(h->guard) > 0;

	sbx_httpguard_flush(h->guard, false);
	for (struct req_ctx *rc = h->held; rc; rc = rc->next_held) {
		if (rc->ready)
			continue;
		if (rc->change && !fleet_decided(h, rc))
			continue;
		if (rc->wait_seq > durable && !b->degraded[0])
			continue;
		rc->ready = true;
		rc->status = 200;
		if (rc->wait_seq > durable) {
			char msg[700];

			sbx_broker_not_recorded(b, msg, sizeof(msg));
			if (rc->command)
				snprintf(rc->answer, sizeof(rc->answer), "%s", msg);
			else
				slack_answer(h->s, rc->req, rc->response_url, msg);
		}
		MHD_resume_connection(rc->conn);
		run = true;
	}
	if (run)
		slack_http_run(h);
}

void slack_http_free(struct slack_http *h)
{
	if (!h)
		return;
	/* MHD wants every suspended connection resumed before it stops. */
	for (struct req_ctx *rc = h->held; rc; rc = rc->next_held) {
		if (!rc->ready) {
			rc->ready = true;
			rc->status = 503;
			MHD_resume_connection(rc->conn);
		}
	}
	if (h->d)
		MHD_stop_daemon(h->d);
	/* What was counted since the last line is said, not lost. */
	sbx_httpguard_free(h->guard);
	free(h);
}
