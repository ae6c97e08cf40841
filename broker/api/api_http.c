/*
 * The HTTP API's listener and its routes (api.h).  A call goes through,
 * in order, and the first failure ends it: size (Content-Length and the
 * body, API_BODY_MAX), the token (Authorization: Bearer), the token's
 * rate, the route, the token's scope, the body, then the op itself
 * through sbx_broker_handle, as if the token's owner had sent it on the
 * socket.  A reply that acknowledges a change waits, with its connection
 * suspended, until the record is durable; a long poll (?wait=) waits the
 * same way until its request is decided.  Neither blocks the loop.
 */
#include "config.h"

#include "api.h"
#include "api_int.h"
#include "token.h"
#include "web.h"

#include "dispatch.h"
#include "fleet.h"
#include "pages.h"
#include "duration.h"
#include "httpguard.h"
#include "identity.h"
#include "log.h"
#include "sbxio.h"
#include "text.h"
#include "timeutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#define API_MAX_CONNECTIONS 512
#define API_PER_ADDRESS 64           /* a CI runner may run many jobs at once */
#define API_TIMEOUT_S 10             /* to send a request, or between requests */
#define API_HEADER_MEMORY (32 * 1024)
#define API_BODY_MAX (16 * 1024)
#define API_WAIT_MAX (10 * 60)       /* the longest ?wait= */
#define API_PEM_MAX (64 * 1024)
/* Per token: a bucket of RATE_BURST calls, refilled at RATE_PER_S. */
#define RATE_PER_S 20.0
#define RATE_BURST 100.0

/* One HTTP request, from its headers to its completion. */
struct call {
	struct sbx_api *api;
	struct MHD_Connection *conn;
	struct sbx_http_body body;
	/* held: until the journal has the change (wait_seq), or until the
	 * request wait_id is decided or wait_until_ms passes */
	bool held, ready;
	uint64_t wait_seq;
	uint32_t wait_id;
	int64_t wait_until_ms;
	char token_id[SBX_TOKEN_ID_HEX + 1];
	unsigned http;
	json_t *answer;
	struct call *next_held;
	struct sbx_web_call *web;    /* the dashboard's or an event stream's (web.h) */
	uint32_t page_cursor, page_limit; /* a list's page (pages.h): where, how many more */
};

struct sbx_api {
	struct sbx_broker *b;
	struct MHD_Daemon *d;
	/* What the loop watches: MHD's own epoll set, and the audit streams
	 * waiting for their threads (api_audit.c). */
	int ep;
	struct sbx_httpguard *guard;
	struct call *held;
	char *tls_cert, *tls_key;
	size_t tls_key_len;
	struct sbx_web *web;
};

static int64_t last_expire_check;

/* ---- the table and the feature's life ---------------------------------------- */

int sbx_api_new(struct sbx_broker *b)
{
	if (b->tokens)
		return 0;
	b->tokens = sbx_tokens_new();
	return b->tokens ? 0 : -ENOMEM;
}

void sbx_api_on_record(struct sbx_broker *b, const json_t *rec)
{
	sbx_tokens_apply(b->tokens, rec);
}

static int tag_mhd;

int sbx_api_fd(const struct sbx_broker *b)
{
	return b->api ? b->api->ep : -1;
}

/* MHD's turn.  In external epoll mode MHD keeps connections with work
 * left (a body already read behind the headers, a resumed connection) in
 * a list of its own and says so only through MHD_get_timeout: 0 means
 * "run me again now".  Without that, such a request would wait for an
 * event that never comes. */
static void api_run(struct sbx_api *a)
{
	MHD_UNSIGNED_LONG_LONG ms = 1;

	(void)sbx_httpguard_cut_overdue(a->guard);
	for (int i = 0; i < 16; i++) {
		(void)MHD_run(a->d);
		if (MHD_get_timeout(a->d, &ms) != MHD_YES || ms > 0)
			break;
	}
}

static void web_run(void *arg)
{
	api_run(arg);
}

void sbx_api_on_ready(struct sbx_broker *b)
{
	struct epoll_event evs[16];
	int n;

	if (!b->api)
		return;
	/* Streams whose threads wrote more (or ended) wake up first; MHD's
	 * run then takes them with whatever its sockets have.  Nothing runs
	 * between epoll_wait and the wake-ups, so no stream is freed in
	 * between. */
	do {
		n = epoll_wait(b->api->ep, evs, 16, 0);
		for (int i = 0; i < n; i++) {
			if (evs[i].data.ptr == sbx_api_stats_tag())
				sbx_api_stats_ready();
			else if (evs[i].data.ptr != &tag_mhd)
				sbx_api_audit_ready(evs[i].data.ptr);
		}
	} while (n == 16);
	api_run(b->api);
}

/* ---- answers ------------------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *conn, unsigned status, json_t *body,
			       int64_t retry_after)
{
	char *text = json_dumps(body, JSON_COMPACT);
	struct MHD_Response *r;
	enum MHD_Result ret;
	char ra[24];

	if (!text)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (status == 401)
		(void)MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					      "Bearer realm=\"sbx\"");
	if (retry_after > 0) {
		snprintf(ra, sizeof(ra), "%lld", (long long)retry_after);
		(void)MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, ra);
	}
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	/* The peer's time starts again: to read this, then to send the next
	 * request on the same connection. */
	sbx_httpguard_rearm(conn, SBX_GUARD_IDLE);
	return ret;
}


/* An error: {"code": stable word, "message": what happened}. */
static enum MHD_Result fail(struct MHD_Connection *conn, unsigned status, const char *code,
			    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result fail(struct MHD_Connection *conn, unsigned status, const char *code,
			    const char *fmt, ...)
{
	enum MHD_Result ret;
	va_list ap;
	json_t *o;

	va_start(ap, fmt);
	o = sbx_api_error_json(code, fmt, ap);
	va_end(ap);
	if (!o)
		return MHD_NO;
	ret = respond(conn, status, o, 0);
	json_decref(o);
	return ret;
}

static const char *status_code(uint32_t st, unsigned *http)
{
	switch (st) {
	case SBX_ST_OK: *http = 200; return "ok";
	case SBX_ST_REFUSED: *http = 403; return "refused";
	case SBX_ST_BADINPUT: *http = 400; return "bad_request";
	case SBX_ST_NOTFOUND: *http = 404; return "not_found";
	case SBX_ST_UNAVAILABLE: *http = 503; return "unavailable";
	case SBX_ST_PROTO: *http = 400; return "bad_request";
	}
	*http = 500;
	return "internal";
}

/* ---- who: the token ----------------------------------------------------------- */

/* May owner still act?  A person the policy (with the directory's
 * people merged in) or the host's accounts no longer know cannot: so a
 * token of someone who left the directory stops at its next refresh. */
bool sbx_api_owner_known(const struct sbx_broker *b, const char *owner)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (sbx_policy_user(b->policy, owner))
		return true;
	return getpwnam_r(owner, &pw, buf, sizeof(buf), &res) == 0 && res;
}

/* The caller a token's calls are made as: its owner, with the owner's
 * unix account (and so admin rights and change budget) when there is
 * one; else a person the policy knows, without admin rights. */
static void owner_caller(const struct sbx_broker *b, const char *owner, struct sbx_caller *c)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	memset(c, 0, sizeof(*c));
	c->uid = (uid_t)-1;
	c->gid = (gid_t)-1;
	if (getpwnam_r(owner, &pw, buf, sizeof(buf), &res) == 0 && res) {
		c->uid = pw.pw_uid;
		c->gid = pw.pw_gid;
		sbx_caller_resolve(c, b->policy->broker.admin_group);
		if (strcmp(c->name, owner) == 0)
			return;
		/* Another name for the same uid: the token is the owner's, not
		 * the uid's first name's. */
	}
	c->resolved = true;
	c->has_account = false;
	c->admin = false;
	snprintf(c->name, sizeof(c->name), "%s", owner);
}

static bool rate_ok(struct sbx_token *t, int64_t *retry_s)
{
	int64_t now = sbx_mono_ms();

	if (!t->bucket_at_ms)
		t->bucket = RATE_BURST;
	else
		t->bucket += (double)(now - t->bucket_at_ms) * RATE_PER_S / 1000.0;
	if (t->bucket > RATE_BURST)
		t->bucket = RATE_BURST;
	t->bucket_at_ms = now;
	if (t->bucket >= 1.0) {
		t->bucket -= 1.0;
		return true;
	}
	*retry_s = 1;
	return false;
}

static void note_used(struct sbx_broker *b, struct sbx_token *t, int64_t now)
{
	uint64_t seq;
	json_t *f;

	if (now - t->used_recorded < SBX_TOKEN_USED_EVERY || !sbx_broker_can_change(b, NULL, 0))
		return;
	t->used_recorded = now;
	f = json_pack("{s:s, s:s, s:s}", "token_id", t->id, "token", t->name, "via", "api");
	(void)sbx_broker_record(b, "token.used", t->owner, f, &seq);
}

/* The token of this call, or NULL after answering (401 or 429). */
static struct sbx_token *authenticate(struct sbx_api *a, struct call *c, enum MHD_Result *ret)
{
	const char *h = MHD_lookup_connection_value(c->conn, MHD_HEADER_KIND,
						    MHD_HTTP_HEADER_AUTHORIZATION);
	uint8_t secret[SBX_TOKEN_SECRET_BYTES];
	char id[SBX_TOKEN_ID_HEX + 1];
	struct sbx_token *t = NULL;
	int64_t now = sbx_now(), retry = 0;
	bool ok;

	if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
		*ret = fail(c->conn, 401, "unauthorized", "an API token is required: "
			    "Authorization: Bearer sbxt_...");
		return NULL;
	}
	h += 7;
	while (*h == ' ')
		h++;
	ok = sbx_token_parse(h, id, secret) == 0;
	if (ok)
		t = sbx_tokens_by_id(a->b->tokens, id);
	ok = ok && t && sbx_token_matches(t, secret);
	memset(secret, 0, sizeof(secret));
	if (!ok) {
		/* Unknown, mistyped or guessed: the same answer for all. */
		*ret = fail(c->conn, 401, "unauthorized", "this is not a valid API token");
		return NULL;
	}
	if (now >= t->expires_at) {
		*ret = fail(c->conn, 401, "token_expired", "token %s has expired", t->name);
		return NULL;
	}
	if (!t->live) {
		*ret = fail(c->conn, 401, "token_revoked", "token %s has been revoked", t->name);
		return NULL;
	}
	if (!sbx_api_owner_known(a->b, t->owner)) {
		*ret = fail(c->conn, 401, "owner_unknown", "token %s belongs to %s, whom the policy "
			    "and the directory no longer know", t->name, t->owner);
		return NULL;
	}
	if (!rate_ok(t, &retry)) {
		json_t *o = json_pack("{s:s, s:s}", "code", "rate_limited", "message",
				      "too many calls with this token: slow down");

		*ret = o ? respond(c->conn, 429, o, retry) : MHD_NO;
		json_decref(o);
		return NULL;
	}
	snprintf(c->token_id, sizeof(c->token_id), "%s", t->id);
	note_used(a->b, t, now);
	return t;
}

/* ---- running an op ------------------------------------------------------------- */

struct route;

/* Run the op in m (built, not finished) as t's owner.  Fills c->answer,
 * c->http and c->wait_seq. */
static void run_op(struct sbx_api *a, struct call *c, const struct sbx_token *t, sbx_msg *m)
{
	struct sbx_broker *b = a->b;
	struct sbx_caller caller;
	struct sbx_change *later;
	sbx_msg reply = { 0 };
	uint32_t status;
	const char *code;
	char why[256];

	c->answer = NULL;
	c->wait_seq = 0;
	if (sbx_msg_finish(m) < 0 ||
	    sbx_frame_validate(m->buf, m->len, 0, why, sizeof(why)) < 0) {
		c->http = 400;
		c->answer = json_pack("{s:s, s:s}", "code", "bad_request", "message",
				      "a field is too long");
		return;
	}
	owner_caller(b, t->owner, &caller);
	b->record_extra = json_pack("{s:s, s:s, s:s}", "via", "api", "token", t->name,
				    "token_id", t->id);
	later = sbx_broker_handle(b, &caller, m->buf, m->len, &reply, &c->wait_seq);
	json_decref(b->record_extra);
	b->record_extra = NULL;
	if (later) {
		/* Only reads reach here in a fleet (changes are refused
		 * before), and reads are never deferred. */
		sbx_change_abandon(later);
		c->http = 503;
		c->answer = json_pack("{s:s, s:s}", "code", "unavailable", "message",
				      "changes through the API are not available in a fleet yet");
		goto out;
	}
	if (sbx_msg_finish(&reply) < 0) {
		c->http = 500;
		c->answer = json_pack("{s:s, s:s}", "code", "internal", "message",
				      "reply too large");
		goto out;
	}
	c->answer = sbx_api_reply_json(reply.buf, reply.len, &status);
	code = status_code(status, &c->http);
	if (c->answer && status != SBX_ST_OK) {
		json_t *msg = json_object_get(c->answer, "message");

		json_t *err = json_pack("{s:s, s:O}", "code", code, "message",
					msg ? msg : json_string(""));
		json_decref(c->answer);
		c->answer = err;
	}
out:
	sbx_msg_free(&reply);
}

/* ---- routes ------------------------------------------------------------------------ */

enum route_kind {
	R_LIST, R_CREATE, R_GET, R_CANCEL, R_DROP, R_EXTEND, R_APPROVE, R_DENY,
	R_PENDING, R_GRANTS, R_REVOKE, R_CHECK, R_ROLES, R_EXPLAIN, R_TOKEN, R_EVENTS, R_AUDIT,
	R_DRIFT, R_DRIFT_SCAN, R_REVIEWS, R_REVIEW_DECIDE, R_ALERTS,
	R_STATS,
};

#define NEEDS_ANY (-1)

struct route {
	const char *method;
	const char *path;       /* "{id}" stands for a request id */
	enum route_kind kind;
	unsigned scope;         /* 0: any token */
	bool writes;
	uint16_t op;
	/* a refusal of a request in another state is a conflict (409):
	 * the state the op needs (NEEDS_ANY: none) */
	int needs;
	bool single;            /* answers one request: "request", not "requests" */
	const char *list;       /* the array it answers with, [] when empty */
};

#define R(m, p, k, scope, w, op, needs, single, list) \
	{ m, p, k, scope, w, op, needs, single, list }
#define READ SBX_SCOPE_READ
#define REQ SBX_SCOPE_REQUEST
#define APPR SBX_SCOPE_APPROVE

static const struct route routes[] = {
	/* method path                        kind       scope writes op
	 *   needs            single list */
	R("GET", "/v1/requests",              R_LIST,    READ, false, SBX_OP_LIST,
	  NEEDS_ANY,          false, "requests"),
	R("POST", "/v1/requests",             R_CREATE,  REQ,  true,  SBX_OP_REQUEST,
	  NEEDS_ANY,          true,  NULL),
	R("GET", "/v1/requests/{id}",         R_GET,     READ, false, SBX_OP_STATUS,
	  NEEDS_ANY,          true,  NULL),
	R("POST", "/v1/requests/{id}/cancel", R_CANCEL,  REQ,  true,  SBX_OP_CANCEL,
	  SBX_REQ_PENDING,    true,  NULL),
	R("POST", "/v1/requests/{id}/drop",   R_DROP,    REQ,  true,  SBX_OP_DROP,
	  SBX_REQ_ACTIVE,     true,  NULL),
	R("POST", "/v1/requests/{id}/extend", R_EXTEND,  REQ,  true,  SBX_OP_REQUEST,
	  SBX_REQ_ACTIVE,     true,  NULL),
	R("POST", "/v1/requests/{id}/approve", R_APPROVE, APPR, true, SBX_OP_APPROVE,
	  SBX_REQ_PENDING,    true,  NULL),
	R("POST", "/v1/requests/{id}/deny",   R_DENY,    APPR, true,  SBX_OP_DENY,
	  SBX_REQ_PENDING,    true,  NULL),
	R("GET", "/v1/pending",               R_PENDING, APPR, false, SBX_OP_PENDING,
	  NEEDS_ANY,          false, "requests"),
	R("GET", "/v1/grants",                R_GRANTS,  READ, false, SBX_OP_GRANTS,
	  NEEDS_ANY,          false, "requests"),
	R("POST", "/v1/grants/{id}/revoke",   R_REVOKE,  APPR, true,  SBX_OP_REVOKE,
	  SBX_REQ_ACTIVE,     true,  NULL),
	R("GET", "/v1/check",                 R_CHECK,   READ, false, SBX_OP_CHECK,
	  NEEDS_ANY,          false, NULL),
	R("GET", "/v1/roles",                 R_ROLES,   READ, false, SBX_OP_ROLES,
	  NEEDS_ANY,          false, "roles"),
	R("GET", "/v1/policy/explain",        R_EXPLAIN, READ, false, SBX_OP_EXPLAIN,
	  NEEDS_ANY,          false, "memberships"),
	R("GET", "/v1/token",                 R_TOKEN,   0,    false, 0,
	  NEEDS_ANY,          false, NULL),
	R("GET", "/v1/audit",                 R_AUDIT,   SBX_SCOPE_AUDIT, false, 0,
	  NEEDS_ANY,          false, NULL),
	/* The live record stream: see dispatch_call. */
	R("GET", "/v1/events",                R_EVENTS,  READ, false, 0,
	  NEEDS_ANY,          false, NULL),
	/* Drift: the op lets admins only.  Looking is read; a scan is
	 * approve, since it makes the broker record (drift.*): a read-only
	 * token never causes a record. */
	R("GET", "/v1/drift",                 R_DRIFT,   READ, false, SBX_OP_DRIFT,
	  NEEDS_ANY,          false, "findings"),
	R("POST", "/v1/drift/scan",           R_DRIFT_SCAN, APPR, false, SBX_OP_DRIFT_SCAN,
	  NEEDS_ANY,          false, NULL),
	/* Reviews: a decision is approve, as deciding a request is; the op
	 * checks the role's approvers and refuses one's own access. */
	R("GET", "/v1/reviews",               R_REVIEWS, READ, false, SBX_OP_REVIEW_STATUS,
	  NEEDS_ANY,          false, "reviews"),
	R("POST", "/v1/reviews/certify",      R_REVIEW_DECIDE, APPR, true, SBX_OP_REVIEW_CERTIFY,
	  NEEDS_ANY,          false, NULL),
	R("POST", "/v1/reviews/revoke",       R_REVIEW_DECIDE, APPR, true, SBX_OP_REVIEW_REVOKE,
	  NEEDS_ANY,          false, NULL),
	/* alert.raised records name other people's activity: /v1/audit's
	 * scope and rules, the event fixed. */
	R("GET", "/v1/alerts",                R_ALERTS,  SBX_SCOPE_AUDIT, false, 0,
	  NEEDS_ANY,          false, NULL),
	R("GET", "/v1/stats", R_STATS, READ, false, 0, NEEDS_ANY, false, NULL), /* api_stats.c */
};
#undef R

/* Does url match pattern?  *id gets the {id} part. */
static bool path_match(const char *pattern, const char *url, uint32_t *id, bool *bad_id)
{
	const char *p = pattern, *u = url;

	while (*p && *u) {
		if (strncmp(p, "{id}", 4) == 0) {
			unsigned long v = 0;
			const char *s = u;

			while (*u >= '0' && *u <= '9' && v <= UINT32_MAX)
				v = v * 10 + (unsigned long)(*u++ - '0');
			if (u == s || (*u && *u != '/'))
				return false;
			if (v == 0 || v > UINT32_MAX)
				*bad_id = true;
			*id = (uint32_t)v;
			p += 4;
			continue;
		}
		if (*p++ != *u++)
			return false;
	}
	return !*p && !*u;
}

static const char *scope_name(unsigned scope)
{
	switch (scope) {
	case SBX_SCOPE_READ: return "read";
	case SBX_SCOPE_REQUEST: return "request";
	case SBX_SCOPE_APPROVE: return "approve";
	case SBX_SCOPE_AUDIT: return "audit";
	}
	return "?";
}

static const char *arg(struct MHD_Connection *conn, const char *key)
{
	return MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, key);
}

/* A body's text field into m (absent or null: nothing).  0, or -1 with
 * why. */
static int put_text(sbx_msg *m, const json_t *body, const char *key, uint16_t tag, char *why,
		    size_t whylen)
{
	const json_t *v = json_object_get(body, key);

	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return sbx_whyf(why, whylen, -1, "%s must be a string", key);
	return sbx_msg_put_str(m, tag, json_string_value(v)) < 0 ?
	       sbx_whyf(why, whylen, -1, "%s is too long", key) : 0;
}

/* "duration": "90m" or a number of seconds. */
static int put_duration(sbx_msg *m, const json_t *body, char *why, size_t whylen)
{
	const json_t *v = json_object_get(body, "duration");
	int64_t secs;

	if (!v || json_is_null(v))
		return 0;
	if (json_is_integer(v) && json_integer_value(v) > 0) {
		secs = (int64_t)json_integer_value(v);
	} else if (!json_is_string(v) ||
		   sbx_duration_parse(json_string_value(v), &secs, why, whylen) < 0) {
		if (!json_is_string(v))
			snprintf(why, whylen, "duration must be text such as \"90m\" or a number of "
				 "seconds");
		return -1;
	}
	sbx_msg_put_i64(m, SBX_F_DURATION, secs);
	return 0;
}

/* The op's fields from the path, the query and the body.  0, or -1 with
 * why. */
static int build(struct call *c, const struct route *r, const struct sbx_token *t, uint32_t id,
		 const json_t *body, sbx_msg *m, char *why, size_t whylen)
{
	const char *q;

	sbx_msg_init(m, r->op);
	if (r->kind == R_LIST || r->kind == R_GRANTS || r->kind == R_PENDING) {
		if (c->page_cursor)
			sbx_msg_put_u32(m, SBX_F_CURSOR, c->page_cursor);
		sbx_msg_put_u32(m, SBX_F_LIMIT, c->page_limit);
	}
	switch (r->kind) {
	case R_LIST:
	case R_GRANTS:
		q = arg(c->conn, "all");
		if (q && strcmp(q, "1") && strcmp(q, "true") && strcmp(q, "0") && strcmp(q, "false"))
			return sbx_whyf(why, whylen, -1, "all must be true or false");
		if (q && (!strcmp(q, "1") || !strcmp(q, "true")))
			sbx_msg_put_u32(m, SBX_F_FLAGS, SBX_LIST_ALL);
		q = arg(c->conn, "user");
		if (r->kind == R_GRANTS && q && sbx_msg_put_str(m, SBX_F_USER, q) < 0)
			return sbx_whyf(why, whylen, -1, "user is too long");
		return 0;
	case R_CREATE:
		if (put_text(m, body, "role", SBX_F_ROLE, why, whylen) < 0 ||
		    put_duration(m, body, why, whylen) < 0 ||
		    put_text(m, body, "reason", SBX_F_REASON, why, whylen) < 0 ||
		    put_text(m, body, "ticket", SBX_F_TICKET, why, whylen) < 0)
			return -1;
		if (!json_is_string(json_object_get(body, "role")))
			return sbx_whyf(why, whylen, -1, "role is required");
		return 0;
	case R_EXTEND:
		sbx_msg_put_u32(m, SBX_F_EXTENDS, id);
		return put_duration(m, body, why, whylen) < 0 ||
		       put_text(m, body, "reason", SBX_F_REASON, why, whylen) < 0 ||
		       put_text(m, body, "ticket", SBX_F_TICKET, why, whylen) < 0 ? -1 : 0;
	case R_GET:
		sbx_msg_put_u32(m, SBX_F_ID, id);
		return 0;
	case R_CANCEL:
	case R_DROP:
	case R_DENY:
	case R_REVOKE:
		sbx_msg_put_u32(m, SBX_F_ID, id);
		return put_text(m, body, "reason", SBX_F_REASON, why, whylen);
	case R_APPROVE:
		sbx_msg_put_u32(m, SBX_F_ID, id);
		return put_text(m, body, "comment", SBX_F_COMMENT, why, whylen) < 0 ||
		       put_duration(m, body, why, whylen) < 0 ? -1 : 0;
	case R_CHECK:
	case R_EXPLAIN:
		/* A dry run: never FLAGS SBX_CHECK_RECORD. */
		q = arg(c->conn, "user");
		if (!q || !q[0])
			q = t->owner;
		if (sbx_msg_put_str(m, SBX_F_USER, q) < 0)
			return sbx_whyf(why, whylen, -1, "user is too long");
		return 0;
	case R_REVIEW_DECIDE:
		return put_text(m, body, "user", SBX_F_USER, why, whylen) < 0 ||
		       put_text(m, body, "role", SBX_F_ROLE, why, whylen) < 0 ||
		       put_text(m, body, "comment", SBX_F_COMMENT, why, whylen) < 0 ? -1 : 0;
	case R_PENDING:
	case R_ROLES:
	case R_TOKEN:
	case R_EVENTS:
	case R_AUDIT:
	case R_DRIFT:
	case R_DRIFT_SCAN:
	case R_REVIEWS:
	case R_ALERTS:
	case R_STATS:
		return 0;
	}
	return 0;
}

static json_t *token_json(const struct sbx_token *t)
{
	json_t *o = sbx_token_fields(t);
	char buf[SBX_RFC3339_LEN];

	if (o) {
		/* "token" in records is the name; here it says so. */
		json_object_set(o, "name", json_object_get(o, "token"));
		json_object_del(o, "token");
		sbx_format_rfc3339(t->created_at, buf);
		json_object_set_new(o, "created_at", json_string(buf));
	}
	return o;
}

/* REVIEWINFO's DURATION is the role's review_every: named so. */
static void review_every_named(json_t *answer)
{
	json_t *list = json_object_get(answer, "reviews");
	json_t *rec, *d;
	size_t i;

	json_array_foreach(list, i, rec) {
		d = json_object_get(rec, "duration");
		if (d) {
			json_object_set(rec, "review_every", d);
			json_object_del(rec, "duration");
		}
	}
}

/* ?limit= and ?cursor= of a list route into c.  0, or -1 with why. */
static int page_args(struct call *c, char *why, size_t whylen)
{
	return sbx_page_parse_limit(arg(c->conn, "limit"), SBX_PAGE_LIMIT_DEFAULT,
				    SBX_PAGE_LIMIT_MAX, &c->page_limit, why, whylen) < 0 ||
	       sbx_page_parse_cursor(arg(c->conn, "cursor"), &c->page_cursor, why, whylen) < 0
	       ? -1 : 0;
}

/* A list route's page: one frame holds a few hundred requests, so the op
 * runs again from its next_cursor until the page has ?limit= of them or
 * the list ends.  All in one turn of the loop: nothing changes between.
 * Fills c->answer and c->http as run_op does. */
static void run_list(struct sbx_api *a, struct call *c, const struct route *r,
		     const struct sbx_token *t, sbx_msg *m, char *why, size_t whylen)
{
	const uint32_t want = c->page_limit;
	json_t *page = NULL, *more;
	const char *next;
	size_t got;

	run_op(a, c, t, m);
	while (c->answer && c->http == 200) {
		if (!page) {
			page = c->answer;
			if (!json_object_get(page, r->list))
				json_object_set_new(page, r->list, json_array());
		} else {
			more = json_object_get(c->answer, r->list);
			if (json_is_array(more))
				json_array_extend(json_object_get(page, r->list), more);
			json_object_del(page, "next_cursor");
			if (json_object_get(c->answer, "next_cursor"))
				json_object_set(page, "next_cursor",
						json_object_get(c->answer, "next_cursor"));
			json_decref(c->answer);
			c->answer = page;
		}
		got = json_array_size(json_object_get(page, r->list));
		next = json_string_value(json_object_get(page, "next_cursor"));
		if (!next || got >= want ||
		    sbx_page_parse_cursor(next, &c->page_cursor, why, whylen) < 0)
			return;
		c->page_limit = want - (uint32_t)got;
		sbx_msg_free(m);
		if (build(c, r, t, 0, NULL, m, why, whylen) < 0)
			return;
		c->answer = NULL;
		run_op(a, c, t, m);
	}
	/* A later run failed: its answer (the error) stands, not half a page. */
	if (page && c->answer != page)
		json_decref(page);
}

/* A refusal that says the request is in another state is a conflict. */
static void classify(struct sbx_api *a, struct call *c, const struct route *r, uint32_t id,
		     const struct sbx_token *t)
{
	const struct sbx_req *q;

	if (c->http != 403 || r->needs == NEEDS_ANY || !id)
		return;
	q = sbx_state_get(a->b->state, id);
	if (!q || !sbx_broker_may_see(a->b, q, t->owner, false) || (int)q->state == r->needs)
		return;
	c->http = 409;
	json_object_set_new(c->answer, "code", json_string("conflict"));
}

/* One request's answer: "request" rather than a list of one. */
static void singular(struct call *c)
{
	json_t *list = json_object_get(c->answer, "requests");

	if (c->http != 200 || !json_is_array(list) || json_array_size(list) != 1)
		return;
	json_object_set(c->answer, "request", json_array_get(list, 0));
	json_object_del(c->answer, "requests");
}

static void hold(struct sbx_api *a, struct call *c)
{
	c->held = true;
	c->next_held = a->held;
	a->held = c;
	sbx_httpguard_rearm(c->conn, SBX_GUARD_HELD);
	MHD_suspend_connection(c->conn);
}

/* ?wait=120s on a pending request: answer once it is decided. */
static bool wants_wait(struct call *c, uint32_t id, char *why, size_t whylen, int *bad)
{
	const char *w = arg(c->conn, "wait");
	const char *state;
	json_t *req;
	int64_t secs;

	*bad = 0;
	if (!w)
		return false;
	if (sbx_duration_parse(w, &secs, why, whylen) < 0) {
		*bad = 1;
		return false;
	}
	req = json_object_get(c->answer, "request");
	state = json_string_value(json_object_get(req, "state"));
	if (c->http != 200 || !state || strcmp(state, "pending") != 0)
		return false;
	if (secs > API_WAIT_MAX)
		secs = API_WAIT_MAX;
	c->wait_id = id;
	c->wait_until_ms = sbx_mono_ms() + secs * 1000;
	return true;
}

/* A time for since/until: RFC 3339, or a duration meaning that long ago. */
static int when_of(const char *s, int64_t *us)
{
	char why[128];
	int64_t d;

	if (sbx_parse_rfc3339_us(s, us) == 0)
		return 0;
	if (sbx_duration_parse(s, &d, why, sizeof(why)) < 0)
		return -1;
	*us = sbx_now_us() - d * 1000000;
	return 0;
}

static int text_arg(struct MHD_Connection *conn, const char *key, char *dst, size_t len)
{
	const char *v = arg(conn, key);

	if (!v)
		return 0;
	if (strlen(v) >= len)
		return -1;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* GET /v1/audit?user=&role=&event=&id=&since=&until=, or with event
 * given (GET /v1/alerts?since=&until=): only since and until are read. */
static enum MHD_Result audit_call(struct sbx_api *a, struct call *c, const struct sbx_token *t,
				  const char *event)
{
	struct sbx_api_audit_query q = { 0 };
	struct MHD_Response *resp;
	struct sbx_caller who;
	const char *v;
	enum MHD_Result ret;
	char why[256];

	owner_caller(a->b, t->owner, &who);
	/* The scope was given to an admin or auditor; they must still be one. */
	if (!sbx_api_may_audit(a->b, t->owner, who.admin))
		return fail(c->conn, 403, "refused", "%s is no longer an admin or a member of %s",
			    t->owner, SBX_API_AUDITORS);
	if (event)
		snprintf(q.event, sizeof(q.event), "%s", event);
	else if (text_arg(c->conn, "user", q.user, sizeof(q.user)) < 0 ||
		 text_arg(c->conn, "role", q.role, sizeof(q.role)) < 0 ||
		 text_arg(c->conn, "event", q.event, sizeof(q.event)) < 0)
		return fail(c->conn, 400, "bad_request", "user, role or event is too long");
	v = event ? NULL : arg(c->conn, "id");
	if (v) {
		char *end;
		unsigned long id = strtoul(v, &end, 10);

		if (!*v || *end || !id || id > UINT32_MAX)
			return fail(c->conn, 400, "bad_request", "id must be a request id");
		q.has_id = true;
		q.id = (uint32_t)id;
	}
	if (((v = arg(c->conn, "since")) && when_of(v, &q.since_us) < 0) ||
	    ((v = arg(c->conn, "until")) && when_of(v, &q.until_us) < 0))
		return fail(c->conn, 400, "bad_request", "since and until are RFC 3339 times or "
			    "durations (that long ago)");
	v = event ? NULL : arg(c->conn, "format");
	if (v && strcmp(v, "jsonl") == 0)
		q.format = SBX_API_AUDIT_JSONL;
	else if (v && strcmp(v, "json") == 0)
		q.format = SBX_API_AUDIT_JSON;
	else if (v && strcmp(v, "csv") == 0)
		q.format = SBX_API_AUDIT_CSV;
	else if (v)
		return fail(c->conn, 400, "bad_request", "format is jsonl, json or csv");
	/* Only what is on disk: nothing that could still be lost. */
	q.max_seq = sbx_journal_durable_seq(a->b->journal);
	resp = sbx_api_audit_stream(a->b->policy->broker.state_dir, &q, a->ep, c->conn, why,
				    sizeof(why));
	if (!resp)
		return fail(c->conn, 503, "unavailable", "%s", why);
	(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				      q.format == SBX_API_AUDIT_CSV    ? "text/csv; charset=us-ascii"
				      : q.format == SBX_API_AUDIT_JSON ? "application/json"
								       : "application/x-ndjson");
	(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(c->conn, 200, resp);
	MHD_destroy_response(resp);
	/* MHD's idle timeout bounds a client that stops reading. */
	sbx_httpguard_rearm(c->conn, SBX_GUARD_HELD);
	return ret;
}

static enum MHD_Result dispatch_call(struct sbx_api *a, struct call *c, const char *method,
				     const char *url)
{
	const struct route *r = NULL;
	struct sbx_token *t;
	enum MHD_Result ret = MHD_NO;
	json_t *body = NULL;
	json_error_t jerr;
	uint32_t id = 0;
	bool bad_id = false, path_known = false, paged;
	char why[512];
	sbx_msg m = { 0 };
	int bad;

	/* A dashboard session stands in for a token (web.h). */
	switch (sbx_web_session_auth(a->web, c->conn, method, &t, &ret)) {
	case -1:
		return ret;
	case 0:
		t = authenticate(a, c, &ret);
		if (!t)
			return ret;
		break;
	}
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]) && !r; i++) {
		if (!path_match(routes[i].path, url, &id, &bad_id))
			continue;
		path_known = true;
		if (strcmp(routes[i].method, method) == 0)
			r = &routes[i];
	}
	if (!r)
		return path_known ? fail(c->conn, 405, "method_not_allowed", "%s is not allowed on %s",
					 method, url)
				  : fail(c->conn, 404, "not_found", "no such endpoint: %s", url);
	if (bad_id)
		return fail(c->conn, 400, "bad_request", "request ids are numbers from 1");
	if (r->scope && !(t->scopes & r->scope))
		return fail(c->conn, 403, "scope", "token %s lacks the %s scope", t->name,
			    scope_name(r->scope));
	if (r->kind == R_TOKEN) {
		json_t *o = token_json(t);

		ret = o ? respond(c->conn, 200, o, 0) : MHD_NO;
		json_decref(o);
		return ret;
	}
	if (r->kind == R_AUDIT || r->kind == R_ALERTS)
		return audit_call(a, c, t, r->kind == R_ALERTS ? "alert.raised" : NULL);
	if (r->kind == R_EVENTS || r->kind == R_STATS) {
		struct sbx_caller who;

		owner_caller(a->b, t->owner, &who);
		if (r->kind == R_STATS)
			return sbx_api_stats_serve(a->b, a->ep, c->conn, t->owner,
						   who.admin || (t->scopes & SBX_SCOPE_AUDIT));
		return sbx_events_serve(a->web, c->conn, t,
					who.admin || (t->scopes & SBX_SCOPE_AUDIT), &c->web);
	}
	paged = r->kind == R_LIST || r->kind == R_GRANTS || r->kind == R_PENDING;
	if (r->writes && a->b->fleet)
		return fail(c->conn, 503, "unavailable", "changes through the API are not available "
			    "in a fleet yet: use sbx-request or sbxctl");
	if (r->kind == R_CHECK || r->kind == R_EXPLAIN) {
		const char *u = arg(c->conn, "user");
		struct sbx_caller who;

		/* Anyone may check anyone on the socket (pam_sbx does); a token
		 * asks about its owner, or, an admin's, about anyone. */
		owner_caller(a->b, t->owner, &who);
		if (u && u[0] && strcmp(u, t->owner) != 0 && !who.admin)
			return fail(c->conn, 403, "refused", "only admins may ask about another "
				    "person; this token is %s's", t->owner);
	}
	if (c->body.len) {
		body = json_loadb(c->body.buf, c->body.len, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(body)) {
			json_decref(body);
			return fail(c->conn, 400, "bad_request", "the body must be a JSON object%s%s",
				    jerr.text[0] ? ": " : "", jerr.text);
		}
	} else {
		body = json_object();
	}
	if ((paged && page_args(c, why, sizeof(why)) < 0) ||
	    build(c, r, t, id, body, &m, why, sizeof(why)) < 0) {
		ret = fail(c->conn, 400, "bad_request", "%s", why);
		goto out;
	}
	if (paged)
		run_list(a, c, r, t, &m, why, sizeof(why));
	else
		run_op(a, c, t, &m);
	if (!c->answer) {
		ret = MHD_NO;
		goto out;
	}
	classify(a, c, r, id, t);
	if (r->single)
		singular(c);
	if (r->list && c->http == 200 && !json_object_get(c->answer, r->list))
		json_object_set_new(c->answer, r->list, json_array());
	if (r->kind == R_REVIEWS)
		review_every_named(c->answer);
	if (r->kind == R_GET && wants_wait(c, id, why, sizeof(why), &bad)) {
		hold(a, c);
		ret = MHD_YES;
		goto out;
	}
	if (r->kind == R_GET && bad) {
		ret = fail(c->conn, 400, "bad_request", "wait: %s", why);
		goto out;
	}
	if (c->wait_seq && c->wait_seq > sbx_journal_durable_seq(a->b->journal)) {
		/* Acknowledged only once it is on disk, as on the socket; and
		 * as there, somebody waits: no group-commit delay. */
		a->b->commit_now = true;
		hold(a, c);
		ret = MHD_YES;
		goto out;
	}
	ret = respond(c->conn, c->http, c->answer, 0);
out:
	sbx_msg_free(&m);
	json_decref(body);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_size, void **req_cls)
{
	struct sbx_api *a = cls;
	struct call *c = *req_cls;

	(void)version;
	if (!c) {
		/* Headers are in: the body has the connection's time from
		 * here. */
		sbx_httpguard_rearm(conn, SBX_GUARD_BUSY);
		if (sbx_http_length_over(conn, API_BODY_MAX))
			return fail(conn, 413, "too_large", "request bodies are at most %d bytes",
				    API_BODY_MAX);
		c = calloc(1, sizeof(*c));
		if (!c)
			return MHD_NO;
		c->api = a;
		c->conn = conn;
		*req_cls = c;
		return MHD_YES;
	}
	if (c->held) {
		/* Resumed: the journal (or the request waited for) has spoken. */
		if (!c->ready)
			return MHD_YES;
		c->held = false;
		return respond(conn, c->http, c->answer, 0);
	}
	if (*upload_size) {
		sbx_http_body_add(&c->body, upload_data, *upload_size, API_BODY_MAX);
		*upload_size = 0;
		return c->body.too_big ? MHD_NO : MHD_YES;
	}
	if (c->body.too_big)
		return fail(conn, 413, "too_large", "request bodies are at most %d bytes",
			    API_BODY_MAX);
	if (sbx_web_wants(url))
		return sbx_web_serve(a->web, conn, method, url, c->body.buf, c->body.len, &c->web);
	return dispatch_call(a, c, method, url);
}

static void unhold(struct sbx_api *a, struct call *c)
{
	for (struct call **p = &a->held; *p; p = &(*p)->next_held) {
		if (*p == c) {
			*p = c->next_held;
			return;
		}
	}
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct sbx_api *a = cls;
	struct call *c = *req_cls;

	(void)conn;
	(void)toe;
	if (!c)
		return;
	unhold(a, c);
	sbx_web_call_done(a->web, c->web);
	json_decref(c->answer);
	sbx_http_body_free(&c->body);
	free(c);
	*req_cls = NULL;
}

/* ---- the loop's side ------------------------------------------------------------ */

/* A long poll whose request was decided (or whose time is up): the
 * request as it is now, asked again the same way. */
static void wait_over(struct sbx_api *a, struct call *c)
{
	struct sbx_token *t = sbx_tokens_by_id(a->b->tokens, c->token_id);
	sbx_msg m = { 0 };

	json_decref(c->answer);
	c->answer = NULL;
	if (!t || !t->live) {
		c->http = 401;
		c->answer = json_pack("{s:s, s:s}", "code", "token_revoked", "message",
				      "the token was revoked while waiting");
		return;
	}
	sbx_msg_init(&m, SBX_OP_STATUS);
	sbx_msg_put_u32(&m, SBX_F_ID, c->wait_id);
	run_op(a, c, t, &m);
	sbx_msg_free(&m);
	if (c->answer)
		singular(c);
	else
		c->answer = json_pack("{s:s, s:s}", "code", "internal", "message", "out of memory");
}

static bool wait_done(struct sbx_api *a, const struct call *c, int64_t now_ms)
{
	const struct sbx_req *r = sbx_state_get(a->b->state, c->wait_id);

	return !r || r->state != SBX_REQ_PENDING || now_ms >= c->wait_until_ms;
}

void sbx_api_tick(struct sbx_broker *b)
{
	struct sbx_api *a = b->api;
	int64_t now = sbx_now(), now_ms = sbx_mono_ms();
	uint64_t durable;
	bool run;

	if (now != last_expire_check) {
		last_expire_check = now;
		sbx_api_tokens_expire(b, now);
	}
	if (!a)
		return;
	durable = sbx_journal_durable_seq(b->journal);
	run = sbx_httpguard_cut_overdue(a->guard) > 0;
	sbx_httpguard_flush(a->guard, false);
	for (struct call *c = a->held; c; c = c->next_held) {
		if (c->ready)
			continue;
		if (c->wait_id) {
			if (!wait_done(a, c, now_ms))
				continue;
			wait_over(a, c);
			c->wait_id = 0;
		} else {
			if (c->wait_seq > durable && !b->degraded[0])
				continue;
			if (c->wait_seq > durable) {
				char msg[700];

				json_decref(c->answer);
				sbx_broker_not_recorded(b, msg, sizeof(msg));
				c->http = 503;
				c->answer = json_pack("{s:s, s:s}", "code", "unavailable", "message",
						      msg);
			}
		}
		c->ready = true;
		MHD_resume_connection(c->conn);
		run = true;
	}
	{
		MHD_UNSIGNED_LONG_LONG ms = 1;

		/* MHD's own timers (idle connections) and work it left */
		if (MHD_get_timeout(a->d, &ms) == MHD_YES && ms == 0)
			run = true;
	}
	run |= sbx_web_tick(a->web);
	if (run)
		api_run(a);
}

/* ---- start and stop ----------------------------------------------------------------- */

/* A PEM file: a regular file, not a link; the key readable by its owner
 * only.  The text (NUL-terminated), or NULL with why. */
static char *read_pem(const char *what, const char *path, bool secret, size_t *len, char *why,
		      size_t whylen)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	char *buf = NULL;
	size_t got = 0;

	if (fd < 0) {
		snprintf(why, whylen, "%s %s: %s", what, path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > API_PEM_MAX) {
		snprintf(why, whylen, "%s %s: not a regular file of at most %d bytes", what, path,
			 API_PEM_MAX);
		goto fail;
	}
	if (secret && (st.st_mode & 077)) {
		snprintf(why, whylen, "%s %s: group or others may read it (mode %04o): chmod 600 %s",
			 what, path, (unsigned)(st.st_mode & 07777), path);
		goto fail;
	}
	buf = calloc(1, (size_t)st.st_size + 1);
	if (!buf) {
		snprintf(why, whylen, "out of memory");
		goto fail;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r <= 0) {
			snprintf(why, whylen, "%s %s: cannot read it", what, path);
			goto fail;
		}
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return buf;
fail:
	if (buf)
		memset(buf, 0, (size_t)st.st_size);
	free(buf);
	close(fd);
	return NULL;
}

static void api_free(struct sbx_api *a)
{
	if (!a)
		return;
	for (struct call *c = a->held; c; c = c->next_held) {
		if (!c->ready) {
			c->ready = true;
			c->http = 503;
			MHD_resume_connection(c->conn);
		}
	}
	sbx_web_stop(a->web);
	sbx_api_audit_resume_all();
	sbx_api_stats_stop();
	if (a->d)
		MHD_stop_daemon(a->d);
	sbx_web_free(a->web);
	if (a->ep > 0)
		close(a->ep);
	sbx_httpguard_free(a->guard);
	free(a->tls_cert);
	if (a->tls_key) {
		memset(a->tls_key, 0, a->tls_key_len);
		free(a->tls_key);
	}
	free(a);
}

int sbx_api_start(struct sbx_broker *b)
{
	const struct sbx_api_conf *c = &b->settings.api;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	struct sockaddr_storage ss;
	struct sockaddr_in *in4 = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)(void *)&ss;
	const union MHD_DaemonInfo *info;
	struct sbx_api *a;
	bool v6 = strchr(c->listen_host, ':') != NULL;
	char why[600];
	size_t len;

	if (!c->enabled)
		return 0;
	a = calloc(1, sizeof(*a));
	if (!a || !(a->guard = sbx_httpguard_new("api", API_TIMEOUT_S, API_PER_ADDRESS))) {
		sbx_err("api: out of memory");
		goto fail;
	}
	a->b = b;
	a->ep = epoll_create1(EPOLL_CLOEXEC);
	if (a->ep < 0) {
		sbx_err("api: epoll: %s", strerror(errno));
		goto fail;
	}
	memset(&ss, 0, sizeof(ss));
	if (v6) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(c->listen_port);
		inet_pton(AF_INET6, c->listen_host, &in6->sin6_addr);
		flags |= MHD_USE_IPv6;
	} else {
		in4->sin_family = AF_INET;
		in4->sin_port = htons(c->listen_port);
		inet_pton(AF_INET, c->listen_host, &in4->sin_addr);
	}
	if (c->tls_cert_file[0]) {
		if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
			sbx_err("api: this libmicrohttpd was built without TLS; tls_cert_file cannot "
				"be used");
			goto fail;
		}
		a->tls_cert = read_pem("tls_cert_file", c->tls_cert_file, false, &len, why,
				       sizeof(why));
		if (a->tls_cert)
			a->tls_key = read_pem("tls_key_file", c->tls_key_file, true, &a->tls_key_len,
					      why, sizeof(why));
		if (!a->tls_cert || !a->tls_key) {
			sbx_err("api: %s", why);
			goto fail;
		}
		flags |= MHD_USE_TLS;
	}
	a->d = MHD_start_daemon(flags, c->listen_port, sbx_httpguard_on_accept, a->guard,
				on_request, a,
				MHD_OPTION_EXTERNAL_LOGGER, sbx_httpguard_mhd_log, a->guard,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_CONNECTION_LIMIT, (unsigned)API_MAX_CONNECTIONS +
				(c->events_max ? c->events_max : SBX_EVENTS_MAX_DEFAULT),
				MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)API_TIMEOUT_S,
				MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)API_HEADER_MEMORY,
				MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)API_MAX_CONNECTIONS,
				MHD_OPTION_STRICT_FOR_CLIENT, 1,
				MHD_OPTION_NOTIFY_CONNECTION, sbx_httpguard_on_connection, a->guard,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
				a->tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, a->tls_cert,
				MHD_OPTION_HTTPS_MEM_KEY, a->tls_key,
				MHD_OPTION_END);
	if (!a->d) {
		sbx_err("api: cannot listen on %s%s%s:%u (in use, or not an address of this host%s)",
			v6 ? "[" : "", c->listen_host, v6 ? "]" : "", c->listen_port,
			a->tls_cert ? ", or the certificate and key do not go together" : "");
		goto fail;
	}
	info = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_EPOLL_FD);
	{
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &tag_mhd };

		if (!info || epoll_ctl(a->ep, EPOLL_CTL_ADD, info->epoll_fd, &ev) < 0) {
			sbx_err("api: cannot watch libmicrohttpd's epoll set");
			goto fail;
		}
	}
	info = MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT);
	sbx_info("api: listening on %s://%s%s%s:%u/v1/", a->tls_cert ? "https" : "http",
		 v6 ? "[" : "", c->listen_host, v6 ? "]" : "", info ? info->port : c->listen_port);
	a->web = sbx_web_new(b, a->tls_cert != NULL, web_run, a);
	if (!a->web) {
		sbx_err("api: out of memory");
		goto fail;
	}
	b->api = a;
	return 0;
fail:
	api_free(a);
	return -1;
}

void sbx_api_free(struct sbx_broker *b)
{
	api_free(b->api);
	b->api = NULL;
	sbx_tokens_free(b->tokens);
	b->tokens = NULL;
}
