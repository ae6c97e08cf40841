/*
 * What web.c, events.c and web_pam.c share (web.h is their face).
 */
#ifndef SBX_API_WEB_INT_H
#define SBX_API_WEB_INT_H

#include "web.h"
#include "token.h"

#include <jansson.h>
#include <pthread.h>

/* Sessions: SBX_WEB_SESSION_S from sign-in at most, SBX_WEB_IDLE_S idle. */
#define SBX_WEB_SESSION_S (8 * 3600)
#define SBX_WEB_IDLE_S (30 * 60)
#define SBX_WEB_SESSIONS_MAX 4096
#define SBX_WEB_SESSIONS_PER_PERSON 16
/* Sign-in failures: at most this many per user and per address within
 * SBX_WEB_FAIL_WINDOW_S, then 429 until the window has passed. */
#define SBX_WEB_FAIL_WINDOW_S 300
#define SBX_WEB_FAIL_PER_USER 5
#define SBX_WEB_FAIL_PER_ADDR 20
/* PAM: this many conversations at once, each with this deadline. */
#define SBX_WEB_PAM_MAX 4
#define SBX_WEB_PAM_DEADLINE_MS 10000
#define SBX_WEB_PAM_SERVICE "sbx-web"
/* Event streams: a keep-alive comment this often (also how a gone reader
 * is noticed), the defaults of api.events_max / api.events_per_person. */
#define SBX_EVENTS_KEEPALIVE_MS 15000

enum web_call_kind { WEB_CALL_STREAM = 1, WEB_CALL_SIGNIN };

struct sbx_web_call {
	enum web_call_kind kind;
};

/* One event stream (events.c). */
struct stream {
	struct sbx_web_call call;       /* first: the per-connection state */
	struct sbx_web *w;
	struct MHD_Connection *conn;
	struct sbx_tail_sub *sub;
	char person[SBX_NAME_MAX + 1];
	bool suspended, woken, cut_armed, gone;
	bool session;                   /* opened by a dashboard session, not a token */
	char tok_id[SBX_TOKEN_ID_HEX + 1]; /* the token's (or the session's stand-in) id */
	struct stream *prev, *next;
};

/* A PAM conversation on its thread (web_pam.c).  The thread owns nothing
 * but the job; the loop reads done/ok once done is set. */
struct pam_job {
	char user[SBX_NAME_MAX + 1];
	char *password;
	char rhost[64];
	pthread_mutex_t lock;
	bool done, ok, abandoned;
	char why[256];
};

struct session {
	char cookie[65];                /* the cookie's value (hex of 32 random bytes) */
	char csrf[65];
	struct sbx_token tok;           /* the stand-in token: owner, scopes, rate */
	char via_token[SBX_TOKEN_ID_HEX + 1]; /* signed in with this API token ("": password) */
	bool admin;
	int64_t started, last_used;     /* sbx_now() */
	struct session *next;
};

struct failure {
	char key[SBX_NAME_MAX + 70];    /* "u:" user or "a:" address */
	int64_t window_start;
	unsigned count;
	struct failure *next;
};

struct sbx_web {
	struct sbx_broker *b;
	bool tls;
	void (*run)(void *arg);
	void *run_arg;
	/* events.c */
	struct stream *streams;
	size_t nstreams;
	bool need_run;
	int64_t last_keepalive_ms, last_gone_check_ms, last_auth_check_ms;
	/* web.c */
	struct session *sessions;
	size_t nsessions;
	struct failure *failures;
	size_t pam_running;
	struct signin *signins;
};

/* Is the session whose stand-in token has this id still on? */
bool sbx_web_session_live(struct sbx_web *w, const char *id);

/* events.c */
void sbx_events_init(struct sbx_web *w);
void sbx_events_stop(struct sbx_web *w);
bool sbx_events_tick(struct sbx_web *w, int64_t now_ms);
void sbx_events_done(struct sbx_web *w, struct stream *s);

/* web_pam.c: start a conversation for user with password (copied) on its
 * own thread.  NULL when no thread could be made. */
struct pam_job *sbx_web_pam_start(const char *user, const char *password, const char *rhost);
/* Done?  *ok the answer. */
bool sbx_web_pam_poll(struct pam_job *j, bool *ok, char *why, size_t whylen);
/* The loop is no longer interested: the thread frees the job when it ends
 * (or now, when it has). */
void sbx_web_pam_abandon(struct pam_job *j);

#endif
