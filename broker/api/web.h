/*
 * The dashboard and the live event stream on the API's listener
 * (docs/dashboard.md, docs/api.md "Events").  api_http.c hands these
 * files what is theirs with a few hooks; everything else here:
 *
 *  - events.c: GET /v1/events, a Server-Sent Events stream of the
 *    journal's records the caller may see, a text follower of the live
 *    record stream (tail.h), bounded per person and in total.
 *  - web.c: the static files of the dashboard (api.web_dir), sign-in
 *    (unix password through PAM, service sbx-web, or an API token),
 *    sessions (cookie + CSRF token), sign-out.
 *  - web_pam.c: PAM conversations on helper threads with a deadline, so
 *    the loop never waits for a PAM module.
 *
 * A session stands in for a token: a /v1/ call with the session cookie
 * (and, for a change, the session's CSRF token and a same-origin Origin)
 * runs through the very routes and ops of the API as the session's
 * person.  Everything runs on the loop thread except web_pam.c's
 * threads.
 */
#ifndef SBX_API_WEB_H
#define SBX_API_WEB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

/* The defaults of api.events_max and api.events_per_person. */
#define SBX_EVENTS_MAX_DEFAULT 1024
#define SBX_EVENTS_PER_PERSON_DEFAULT 8

struct sbx_broker;
struct sbx_token;
struct sbx_web;

/* Per-connection state of a web call or an event stream. */
struct sbx_web_call;

/* The API's listener exists: run(arg) runs its MHD once (after a stream
 * was resumed).  NULL when out of memory. */
struct sbx_web *sbx_web_new(struct sbx_broker *b, bool tls, void (*run)(void *arg), void *arg);
/* Resume every suspended connection (before MHD_stop_daemon), free. */
void sbx_web_stop(struct sbx_web *w);
void sbx_web_free(struct sbx_web *w);
/* Once a loop pass: keep-alives, session expiry, PAM answers.  True when
 * MHD must run (a connection was resumed). */
bool sbx_web_tick(struct sbx_web *w);

/* Is url the dashboard's (not under /v1/)? */
bool sbx_web_wants(const char *url);
/* Serve a dashboard url; called again (with *state kept) when a
 * suspended call is resumed. */
enum MHD_Result sbx_web_serve(struct sbx_web *w, struct MHD_Connection *conn, const char *method,
			      const char *url, const char *body, size_t len,
			      struct sbx_web_call **state);
void sbx_web_call_done(struct sbx_web *w, struct sbx_web_call *state);

/* A /v1/ call without an Authorization header: its session.  0: no
 * session cookie (authenticate by token); 1: *t is the session's stand-in
 * token; -1: refused, *ret the answer (401, 403 for a change without the
 * CSRF token or from another origin, 429). */
int sbx_web_session_auth(struct sbx_web *w, struct MHD_Connection *conn, const char *method,
			 struct sbx_token **t, enum MHD_Result *ret);

/* events.c: GET /v1/events for t's owner; see_all for admins and the
 * audit scope.  The response is queued (or the refusal). */
enum MHD_Result sbx_events_serve(struct sbx_web *w, struct MHD_Connection *conn,
				 const struct sbx_token *t, bool see_all,
				 struct sbx_web_call **state);

/* An error answer as the API gives them: {"code", "message"}. */
enum MHD_Result sbx_web_fail(struct MHD_Connection *conn, unsigned status, const char *code,
			     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
