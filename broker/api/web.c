/*
 * The dashboard (docs/dashboard.md): its static files, sign-in, sessions
 * and the CSRF rules that let a session stand in for a token on /v1/.
 *
 * Sign-in is POST /web/signin with {"user", "password"} (checked by PAM,
 * service sbx-web, on a helper thread: web_pam.c) or {"token"} (a live
 * API token; the session then has that token's scopes).  A session is a
 * random cookie (HttpOnly, SameSite=Strict, Secure under TLS) and a
 * random CSRF token the page reads from /web/session and sends back in
 * X-CSRF-Token with every change; a change must also come from the
 * dashboard's own origin (Origin, and Sec-Fetch-Site when the browser
 * sends it).  Sign-in failures are counted per user and per address:
 * past SBX_WEB_FAIL_PER_USER / _PER_ADDR within SBX_WEB_FAIL_WINDOW_S,
 * sign-in answers 429 without asking PAM; each failure is journaled as
 * web.signin_failed, each success as web.signin.
 */
#include "config.h"

#include "web_int.h"

#include "api_int.h"

#include "api.h"
#include "broker.h"
#include "httpguard.h"
#include "identity.h"
#include "log.h"
#include "text.h"
#include "sbxio.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SBX_WEB_DIR
#define SBX_WEB_DIR "/usr/share/sbx/web"
#endif
#define COOKIE "sbx_session"
#define FILE_MAX (1024 * 1024)
/* A session's calls: a bucket of BURST, refilled at PER_S (as tokens). */
#define RATE_PER_S 20.0
#define RATE_BURST 100.0

/* A sign-in waiting for PAM. */
struct signin {
	struct sbx_web_call call;        /* first */
	struct sbx_web *w;
	struct MHD_Connection *conn;
	struct pam_job *job;
	int64_t deadline_ms;
	bool suspended, answered, ok, timed_out;
	char user[SBX_NAME_MAX + 1];
	char addr[64];
	char why[256];
	struct signin *next;
};

/* ---- answers ------------------------------------------------------------------- */

static void security_headers(struct MHD_Response *r)
{
	(void)MHD_add_response_header(r, "Content-Security-Policy",
				      "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
				      "form-action 'self'");
	(void)MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
	(void)MHD_add_response_header(r, "X-Frame-Options", "DENY");
	(void)MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
}

static enum MHD_Result answer_json(struct MHD_Connection *conn, unsigned status, json_t *body,
				   const char *cookie)
{
	char *text = json_dumps(body, JSON_COMPACT);
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (!text)
		return MHD_NO;
	r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	security_headers(r);
	if (cookie)
		(void)MHD_add_response_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
	ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	sbx_httpguard_rearm(conn, SBX_GUARD_IDLE);
	return ret;
}

enum MHD_Result sbx_web_fail(struct MHD_Connection *conn, unsigned status, const char *code,
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
	ret = answer_json(conn, status, o, NULL);
	json_decref(o);
	return ret;
}

/* ---- static files --------------------------------------------------------------- */

static const char *web_dir(const struct sbx_web *w)
{
	const char *d = w->b->settings.api.web_dir;

	return d[0] ? d : SBX_WEB_DIR;
}

/* "/" is index.html; else one plain file name of the directory, by its
 * extension's type.  NULL: not a file the dashboard serves. */
static const char *file_type(const char *url, const char **name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{ ".html", "text/html; charset=utf-8" },
		{ ".js", "text/javascript; charset=utf-8" },
		{ ".css", "text/css; charset=utf-8" },
		{ ".svg", "image/svg+xml" },
		{ ".png", "image/png" },
		{ ".ico", "image/x-icon" },
	};
	const char *n = url + 1, *dot;

	if (strcmp(url, "/") == 0)
		n = "index.html";
	if (url[0] != '/' || !n[0] || n[0] == '.' || strlen(n) > 64)
		return NULL;
	for (const char *c = n; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
		      *c == '_' || *c == '.'))
			return NULL;
	dot = strrchr(n, '.');
	for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++) {
		if (strcmp(dot, types[i].ext) == 0) {
			*name = n;
			return types[i].type;
		}
	}
	return NULL;
}

static enum MHD_Result serve_file(struct sbx_web *w, struct MHD_Connection *conn, const char *url)
{
	const char *name = NULL, *type = file_type(url, &name);
	char path[SBX_SETTINGS_PATH_MAX + 80];
	struct MHD_Response *r;
	enum MHD_Result ret;
	struct stat st;
	int fd;

	if (!type)
		return sbx_web_fail(conn, 404, "not_found", "no such page: %s", url);
	snprintf(path, sizeof(path), "%s/%s", web_dir(w), name);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return sbx_web_fail(conn, 404, "not_found", "no such page: %s%s", url,
				    errno == ENOENT && strcmp(name, "index.html") == 0 ?
				    " (the dashboard's files are not installed: api.web_dir)" : "");
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX) {
		close(fd);
		return sbx_web_fail(conn, 404, "not_found", "no such page: %s", url);
	}
	/* The file is read by MHD as it sends it, and closed by it. */
	r = MHD_create_response_from_fd((size_t)st.st_size, fd);
	if (!r) {
		close(fd);
		return MHD_NO;
	}
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	security_headers(r);
	ret = MHD_queue_response(conn, 200, r);
	MHD_destroy_response(r);
	sbx_httpguard_rearm(conn, SBX_GUARD_IDLE);
	return ret;
}

/* ---- sessions ------------------------------------------------------------------- */

static int random_hex(char *out, size_t bytes)
{
	static const char digits[] = "0123456789abcdef";
	uint8_t buf[32];

	if (bytes > sizeof(buf) || getrandom(buf, bytes, 0) != (ssize_t)bytes)
		return -1;
	for (size_t i = 0; i < bytes; i++) {
		out[2 * i] = digits[buf[i] >> 4];
		out[2 * i + 1] = digits[buf[i] & 15];
	}
	out[2 * bytes] = '\0';
	memset(buf, 0, sizeof(buf));
	return 0;
}

static bool is_admin(const struct sbx_web *w, const char *person)
{
	struct passwd pw, *res = NULL;
	struct sbx_caller c = { 0 };
	char buf[4096];

	if (getpwnam_r(person, &pw, buf, sizeof(buf), &res) != 0 || !res)
		return false;
	c.uid = pw.pw_uid;
	c.gid = pw.pw_gid;
	sbx_caller_resolve(&c, w->b->policy->broker.admin_group);
	return c.admin && strcmp(c.name, person) == 0;
}

static void session_unlink(struct sbx_web *w, struct session *s)
{
	for (struct session **p = &w->sessions; *p; p = &(*p)->next) {
		if (*p == s) {
			*p = s->next;
			w->nsessions--;
			break;
		}
	}
	memset(s, 0, sizeof(*s));
	free(s);
}

static bool session_over(const struct session *s, int64_t now)
{
	return now - s->started >= SBX_WEB_SESSION_S || now - s->last_used >= SBX_WEB_IDLE_S;
}

/* A new session of person (the oldest of theirs goes past the cap).
 * NULL when out of memory or randomness. */
static struct session *session_new(struct sbx_web *w, const char *person, unsigned scopes,
				   const char *via_token)
{
	struct session *s = calloc(1, sizeof(*s)), *oldest = NULL;
	size_t mine = 0;
	int64_t now = sbx_now();

	if (!s || random_hex(s->cookie, 32) < 0 || random_hex(s->csrf, 32) < 0 ||
	    random_hex(s->tok.id, SBX_TOKEN_ID_HEX / 2) < 0) {
		free(s);
		return NULL;
	}
	for (struct session *o = w->sessions; o; o = o->next) {
		if (strcmp(o->tok.owner, person) != 0)
			continue;
		mine++;
		if (!oldest || o->last_used < oldest->last_used)
			oldest = o;
	}
	if (mine >= SBX_WEB_SESSIONS_PER_PERSON && oldest)
		session_unlink(w, oldest);
	if (w->nsessions >= SBX_WEB_SESSIONS_MAX) {
		free(s);
		return NULL;
	}
	snprintf(s->tok.owner, sizeof(s->tok.owner), "%s", person);
	/* Records of a session's calls say token "dashboard" and the
	 * session's own id (not its cookie). */
	snprintf(s->tok.name, sizeof(s->tok.name), "dashboard");
	snprintf(s->via_token, sizeof(s->via_token), "%s", via_token ? via_token : "");
	s->admin = is_admin(w, person);
	s->tok.scopes = scopes;
	if (sbx_api_may_audit(w->b, person, s->admin) && !via_token)
		s->tok.scopes |= SBX_SCOPE_AUDIT;
	s->tok.live = true;
	s->tok.created_at = now;
	s->tok.expires_at = now + SBX_WEB_SESSION_S;
	/* Never token.used: web.signin says it. */
	s->tok.used_recorded = INT64_MAX / 4;
	s->started = s->last_used = now;
	s->next = w->sessions;
	w->sessions = s;
	w->nsessions++;
	return s;
}

static struct session *session_of(struct sbx_web *w, struct MHD_Connection *conn)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, COOKIE);
	int64_t now = sbx_now();

	if (!v || strlen(v) != 64)
		return NULL;
	for (struct session *s = w->sessions; s; s = s->next) {
		if (CRYPTO_memcmp(s->cookie, v, 64) != 0)
			continue;
		if (session_over(s, now))
			return NULL;
		if (s->via_token[0]) {
			/* Signed in with a token: only while it lives. */
			struct sbx_token *t = sbx_tokens_by_id(w->b->tokens, s->via_token);

			if (!t || !t->live || now >= t->expires_at)
				return NULL;
		}
		if (!sbx_api_owner_known(w->b, s->tok.owner))
			return NULL;
		return s;
	}
	return NULL;
}

/* The dashboard's own origin, as the browser's Origin header says it. */
static bool same_origin(const struct sbx_web *w, struct MHD_Connection *conn)
{
	const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	const char *site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site");
	const char *pub = w->b->settings.api.public_url;
	char want[300];
	size_t n;

	if (site && strcmp(site, "same-origin") != 0)
		return false;
	if (!origin || !host)
		return false;
	snprintf(want, sizeof(want), "%s://%s", w->tls ? "https" : "http", host);
	if (strcmp(origin, want) == 0)
		return true;
	/* Behind a proxy: the public URL's scheme://host[:port]. */
	n = strlen(origin);
	return pub[0] && strncmp(pub, origin, n) == 0 && (pub[n] == '\0' || pub[n] == '/');
}

static bool safe_method(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* The CSRF token in X-CSRF-Token, compared in constant time. */
static bool csrf_ok(const struct session *s, struct MHD_Connection *conn)
{
	const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-CSRF-Token");

	return v && strlen(v) == 64 && CRYPTO_memcmp(v, s->csrf, 64) == 0;
}

static bool rate_ok(struct sbx_token *t)
{
	int64_t now = sbx_mono_ms();

	if (!t->bucket_at_ms)
		t->bucket = RATE_BURST;
	else
		t->bucket += (double)(now - t->bucket_at_ms) * RATE_PER_S / 1000.0;
	if (t->bucket > RATE_BURST)
		t->bucket = RATE_BURST;
	t->bucket_at_ms = now;
	if (t->bucket < 1.0)
		return false;
	t->bucket -= 1.0;
	return true;
}

int sbx_web_session_auth(struct sbx_web *w, struct MHD_Connection *conn, const char *method,
			 struct sbx_token **t, enum MHD_Result *ret)
{
	struct session *s;

	if (MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION) ||
	    !MHD_lookup_connection_value(conn, MHD_COOKIE_KIND, COOKIE))
		return 0;
	s = session_of(w, conn);
	if (!s) {
		*ret = sbx_web_fail(conn, 401, "session_expired", "the dashboard session has ended: "
				    "sign in again");
		return -1;
	}
	if (!safe_method(method) && (!same_origin(w, conn) || !csrf_ok(s, conn))) {
		*ret = sbx_web_fail(conn, 403, "csrf", "a change needs the dashboard's CSRF token "
				    "(X-CSRF-Token) and must come from its own origin");
		return -1;
	}
	if (!rate_ok(&s->tok)) {
		*ret = sbx_web_fail(conn, 429, "rate_limited", "too many calls from this session: "
				    "slow down");
		return -1;
	}
	s->last_used = sbx_now();
	*t = &s->tok;
	return 1;
}

bool sbx_web_session_live(struct sbx_web *w, const char *id)
{
	int64_t now = sbx_now();

	for (struct session *s = w->sessions; s; s = s->next) {
		if (strcmp(s->tok.id, id) != 0)
			continue;
		if (session_over(s, now))
			return false;
		if (s->via_token[0]) {
			struct sbx_token *t = sbx_tokens_by_id(w->b->tokens, s->via_token);

			if (!t || !t->live || now >= t->expires_at)
				return false;
		}
		return sbx_api_owner_known(w->b, s->tok.owner);
	}
	return false;
}

static json_t *session_json(const struct sbx_web *w, const struct session *s)
{
	char scopes[64], until[SBX_RFC3339_LEN];

	sbx_format_rfc3339(s->started + SBX_WEB_SESSION_S, until);
	return json_pack("{s:s, s:s, s:b, s:s, s:s, s:s?}", "person", s->tok.owner, "csrf",
			 s->csrf, "admin", s->admin, "scopes",
			 sbx_token_scopes_text(s->tok.scopes, scopes, sizeof(scopes)),
			 "expires_at", until, "host",
			 w->b->policy->broker.host ? w->b->policy->broker.host : NULL);
}

/* ---- sign-in failures ---------------------------------------------------------- */

static struct failure *failure_of(struct sbx_web *w, const char *kind, const char *what,
				  bool make)
{
	char key[sizeof(((struct failure *)0)->key)];
	struct failure *f;

	snprintf(key, sizeof(key), "%s:%s", kind, what);
	for (f = w->failures; f; f = f->next)
		if (strcmp(f->key, key) == 0)
			return f;
	if (!make || !(f = calloc(1, sizeof(*f))))
		return NULL;
	snprintf(f->key, sizeof(f->key), "%s", key);
	f->window_start = sbx_now();
	f->next = w->failures;
	w->failures = f;
	return f;
}

/* user NULL: an address's count only (a token's sign-in names nobody). */
static bool too_many(struct sbx_web *w, const char *user, const char *addr)
{
	const struct failure *u = user ? failure_of(w, "u", user, false) : NULL;
	const struct failure *a = failure_of(w, "a", addr, false);
	int64_t now = sbx_now();

	return (u && now - u->window_start < SBX_WEB_FAIL_WINDOW_S &&
		u->count >= SBX_WEB_FAIL_PER_USER) ||
	       (a && now - a->window_start < SBX_WEB_FAIL_WINDOW_S &&
		a->count >= SBX_WEB_FAIL_PER_ADDR);
}

static void count_failure(struct sbx_web *w, const char *kind, const char *what)
{
	struct failure *f = failure_of(w, kind, what, true);
	int64_t now = sbx_now();

	if (!f)
		return;
	if (now - f->window_start >= SBX_WEB_FAIL_WINDOW_S) {
		f->window_start = now;
		f->count = 0;
	}
	f->count++;
}

static void record_signin(struct sbx_web *w, bool ok, const char *user, const char *addr,
			  const char *via, const char *why)
{
	json_t *f = json_object();
	uint64_t seq;

	if (!f || !sbx_broker_can_change(w->b, NULL, 0)) {
		json_decref(f);
		return;
	}
	sbx_rec_str(f, "user", user);
	sbx_rec_str(f, "address", addr);
	sbx_rec_str(f, "via", via);
	if (!ok)
		sbx_rec_str(f, "why", why);
	(void)sbx_broker_record(w->b, ok ? "web.signin" : "web.signin_failed",
				sbx_name_valid(user) ? user : "?", f, &seq);
}

/* A failed sign-in: counted, journaled, and the same answer whatever the
 * reason (no telling which users exist). */
static enum MHD_Result signin_failed(struct sbx_web *w, struct MHD_Connection *conn,
				     const char *user, const char *addr, const char *via,
				     const char *why)
{
	/* A bad token names nobody: counting it against a name would let
	 * anyone lock everyone's token sign-in. */
	if (strcmp(via, "token") != 0)
		count_failure(w, "u", sbx_name_valid(user) ? user : "?");
	count_failure(w, "a", addr);
	record_signin(w, false, user, addr, via, why);
	sbx_info("web: sign-in of %s from %s failed: %s", sbx_name_valid(user) ? user : "?", addr,
		 why);
	return sbx_web_fail(conn, 401, "signin_failed", "the user name or password (or token) "
			    "is wrong");
}

static enum MHD_Result signed_in(struct sbx_web *w, struct MHD_Connection *conn,
				 const char *person, unsigned scopes, const char *via_token,
				 const char *addr)
{
	struct session *s = session_new(w, person, scopes, via_token);
	char cookie[200];
	json_t *o;
	enum MHD_Result ret;

	if (!s)
		return sbx_web_fail(conn, 503, "unavailable", "too many dashboard sessions");
	record_signin(w, true, person, addr, via_token ? "token" : "password", NULL);
	snprintf(cookie, sizeof(cookie), COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict%s",
		 s->cookie, w->tls ? "; Secure" : "");
	o = session_json(w, s);
	ret = o ? answer_json(conn, 200, o, cookie) : MHD_NO;
	json_decref(o);
	return ret;
}

/* ---- sign-in --------------------------------------------------------------------- */

static enum MHD_Result signin_token(struct sbx_web *w, struct MHD_Connection *conn,
				    const char *text, const char *addr)
{
	uint8_t secret[SBX_TOKEN_SECRET_BYTES];
	char id[SBX_TOKEN_ID_HEX + 1];
	struct sbx_token *t = NULL;
	bool ok = sbx_token_parse(text, id, secret) == 0;

	if (ok)
		t = sbx_tokens_by_id(w->b->tokens, id);
	ok = ok && t && sbx_token_matches(t, secret);
	memset(secret, 0, sizeof(secret));
	if (!ok || !t->live || sbx_now() >= t->expires_at || !sbx_api_owner_known(w->b, t->owner))
		return signin_failed(w, conn, ok ? t->owner : "?", addr, "token",
				     "not a live token");
	return signed_in(w, conn, t->owner, t->scopes, t->id, addr);
}

static void signin_free(struct sbx_web *w, struct signin *si)
{
	for (struct signin **p = &w->signins; *p; p = &(*p)->next) {
		if (*p == si) {
			*p = si->next;
			break;
		}
	}
	if (si->job) {
		sbx_web_pam_abandon(si->job);
		w->pam_running--;
	}
	free(si);
}

static enum MHD_Result signin_password(struct sbx_web *w, struct MHD_Connection *conn,
				       const char *user, const char *password, const char *addr,
				       struct sbx_web_call **state)
{
	struct signin *si;

	if (!sbx_name_valid(user) || !password || !password[0])
		return signin_failed(w, conn, user, addr, "password", "no user name or password");
	if (w->pam_running >= SBX_WEB_PAM_MAX)
		return sbx_web_fail(conn, 429, "rate_limited", "too many sign-ins at once: try "
				    "again in a moment");
	si = calloc(1, sizeof(*si));
	if (!si)
		return MHD_NO;
	si->call.kind = WEB_CALL_SIGNIN;
	si->w = w;
	si->conn = conn;
	snprintf(si->user, sizeof(si->user), "%s", user);
	snprintf(si->addr, sizeof(si->addr), "%s", addr);
	si->job = sbx_web_pam_start(user, password, addr);
	if (!si->job) {
		free(si);
		return sbx_web_fail(conn, 503, "unavailable", "cannot check passwords now");
	}
	w->pam_running++;
	si->deadline_ms = sbx_mono_ms() + SBX_WEB_PAM_DEADLINE_MS;
	si->next = w->signins;
	w->signins = si;
	*state = &si->call;
	/* PAM answers on its thread; the tick resumes the call. */
	si->suspended = true;
	sbx_httpguard_rearm(conn, SBX_GUARD_HELD);
	MHD_suspend_connection(conn);
	return MHD_YES;
}

/* The call is back from PAM (or its deadline): answer it. */
static enum MHD_Result signin_finish(struct sbx_web *w, struct signin *si)
{
	if (si->answered)
		return MHD_YES;
	si->answered = true;
	if (si->timed_out)
		return sbx_web_fail(si->conn, 503, "unavailable", "the password check took too "
				    "long; try again");
	if (!si->ok)
		return signin_failed(w, si->conn, si->user, si->addr, "password", si->why);
	if (!sbx_api_owner_known(w->b, si->user))
		return signin_failed(w, si->conn, si->user, si->addr, "password",
				     "neither a person of the policy nor an account of this host");
	return signed_in(w, si->conn, si->user, SBX_SCOPE_READ | SBX_SCOPE_REQUEST |
			 SBX_SCOPE_APPROVE, NULL, si->addr);
}

static enum MHD_Result signin(struct sbx_web *w, struct MHD_Connection *conn, const char *body,
			      size_t len, struct sbx_web_call **state)
{
	json_t *o = len ? json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL) : NULL;
	const char *user = json_string_value(json_object_get(o, "user"));
	const char *password = json_string_value(json_object_get(o, "password"));
	const char *token = json_string_value(json_object_get(o, "token"));
	char addr[64];
	enum MHD_Result ret;

	sbx_http_peer(conn, addr, sizeof(addr));
	if (!json_is_object(o)) {
		ret = sbx_web_fail(conn, 400, "bad_request", "the body must be {\"user\", "
				   "\"password\"} or {\"token\"}");
		goto out;
	}
	if (too_many(w, token ? NULL : user && sbx_name_valid(user) ? user : "?", addr)) {
		ret = sbx_web_fail(conn, 429, "rate_limited", "too many failed sign-ins: wait %d "
				   "minutes", SBX_WEB_FAIL_WINDOW_S / 60);
		goto out;
	}
	if (token)
		ret = signin_token(w, conn, token, addr);
	else
		ret = signin_password(w, conn, user ? user : "", password, addr, state);
out:
	if (password)
		memset((char *)password, 0, strlen(password));
	json_decref(o);
	return ret;
}

/* ---- routes ---------------------------------------------------------------------- */

bool sbx_web_wants(const char *url)
{
	return strncmp(url, "/v1/", 4) != 0 && strcmp(url, "/v1") != 0;
}

enum MHD_Result sbx_web_serve(struct sbx_web *w, struct MHD_Connection *conn, const char *method,
			      const char *url, const char *body, size_t len,
			      struct sbx_web_call **state)
{
	struct session *s;
	enum MHD_Result ret;
	json_t *o;

	if (*state && (*state)->kind == WEB_CALL_SIGNIN)
		return signin_finish(w, (struct signin *)*state);
	if (strncmp(url, "/web/", 5) != 0) {
		if (!safe_method(method))
			return sbx_web_fail(conn, 405, "method_not_allowed", "%s is not allowed on %s",
					    method, url);
		return serve_file(w, conn, url);
	}
	if (strcmp(url, "/web/signin") == 0) {
		if (strcmp(method, "POST") != 0)
			return sbx_web_fail(conn, 405, "method_not_allowed", "sign in with POST");
		/* A sign-in from another site's page (login CSRF) is refused
		 * like any other change. */
		if (!same_origin(w, conn))
			return sbx_web_fail(conn, 403, "csrf", "sign in from the dashboard's own page");
		return signin(w, conn, body, len, state);
	}
	s = session_of(w, conn);
	if (strcmp(url, "/web/session") == 0 && safe_method(method)) {
		if (!s)
			return sbx_web_fail(conn, 401, "unauthorized", "not signed in");
		o = session_json(w, s);
		ret = o ? answer_json(conn, 200, o, NULL) : MHD_NO;
		json_decref(o);
		return ret;
	}
	if (strcmp(url, "/web/signout") == 0 && strcmp(method, "POST") == 0) {
		if (!s)
			return sbx_web_fail(conn, 401, "unauthorized", "not signed in");
		if (!same_origin(w, conn) || !csrf_ok(s, conn))
			return sbx_web_fail(conn, 403, "csrf", "a change needs the dashboard's CSRF "
					    "token and must come from its own origin");
		session_unlink(w, s);
		o = json_pack("{s:b}", "signed_out", 1);
		ret = o ? answer_json(conn, 200, o, COOKIE "=; Path=/; HttpOnly; SameSite=Strict; "
				      "Max-Age=0") : MHD_NO;
		json_decref(o);
		return ret;
	}
	return sbx_web_fail(conn, 404, "not_found", "no such endpoint: %s", url);
}

void sbx_web_call_done(struct sbx_web *w, struct sbx_web_call *state)
{
	if (!state)
		return;
	if (state->kind == WEB_CALL_STREAM)
		sbx_events_done(w, (struct stream *)state);
	else if (state->kind == WEB_CALL_SIGNIN)
		signin_free(w, (struct signin *)state);
}

/* ---- life ------------------------------------------------------------------------- */

struct sbx_web *sbx_web_new(struct sbx_broker *b, bool tls, void (*run)(void *arg), void *arg)
{
	struct sbx_web *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->b = b;
	w->tls = tls;
	w->run = run;
	w->run_arg = arg;
	w->last_keepalive_ms = sbx_mono_ms();
	sbx_events_init(w);
	return w;
}

bool sbx_web_tick(struct sbx_web *w)
{
	int64_t now = sbx_now(), now_ms = sbx_mono_ms();
	bool run = false;

	if (!w)
		return false;
	for (struct signin *si = w->signins; si; si = si->next) {
		char why[256];
		bool ok;

		if (!si->suspended)
			continue;
		if (si->job && sbx_web_pam_poll(si->job, &ok, why, sizeof(why))) {
			si->ok = ok;
			snprintf(si->why, sizeof(si->why), "%s", why);
		} else if (now_ms >= si->deadline_ms) {
			si->timed_out = true;
		} else {
			continue;
		}
		sbx_web_pam_abandon(si->job);
		si->job = NULL;
		w->pam_running--;
		si->suspended = false;
		MHD_resume_connection(si->conn);
		run = true;
	}
	for (struct session *s = w->sessions, *next; s; s = next) {
		next = s->next;
		if (session_over(s, now))
			session_unlink(w, s);
	}
	for (struct failure **p = &w->failures; *p;) {
		struct failure *f = *p;

		if (now - f->window_start >= SBX_WEB_FAIL_WINDOW_S) {
			*p = f->next;
			free(f);
		} else {
			p = &f->next;
		}
	}
	return sbx_events_tick(w, now_ms) || run;
}

void sbx_web_stop(struct sbx_web *w)
{
	if (!w)
		return;
	sbx_events_stop(w);
	for (struct signin *si = w->signins; si; si = si->next) {
		if (si->suspended) {
			si->suspended = false;
			si->timed_out = true;
			MHD_resume_connection(si->conn);
		}
	}
}

void sbx_web_free(struct sbx_web *w)
{
	if (!w)
		return;
	while (w->sessions)
		session_unlink(w, w->sessions);
	while (w->failures) {
		struct failure *f = w->failures;

		w->failures = f->next;
		free(f);
	}
	while (w->signins)
		signin_free(w, w->signins);
	free(w);
}
