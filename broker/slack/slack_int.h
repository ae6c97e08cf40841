/*
 * Slack approvals, inside: what slack.c, slack_msg.c, slack_out.c,
 * slack_http.c and slack_util.c share, and what tests/unit/test_slack.c
 * checks.  Nothing here is for other parts of the broker (they use
 * slack.h).
 *
 * Everything runs on the broker's event-loop thread: the HTTP server
 * (libmicrohttpd in external-epoll mode) and the outgoing posts (a curl
 * multi handle) are driven from one private epoll fd that the loop
 * watches, plus a timerfd in it for their deadlines and for retries.
 */
#ifndef SBX_SLACK_INT_H
#define SBX_SLACK_INT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker.h"
#include "secret.h"
#include "slack_out.h"
#include "state.h"

#define SLACK_BODY_MAX (64 * 1024)   /* an interactivity POST */
#define SLACK_SKEW_MAX 300           /* seconds Slack's timestamp may be off */
#define SLACK_SIG_LEN 67             /* "v0=" and 64 hex digits */
#define SLACK_KEY_LEN 32             /* the button MAC key */
#define SLACK_REPLAY_MAX 4096        /* signatures remembered (5 minutes' worth) */
#define SLACK_URL_MAX 2048
#define SLACK_ID_MAX 32              /* a Slack user id, e.g. U024BE7LH */

/* ---- pure helpers (slack_util.c) ---------------------------------------- */

/* "v0=" + lowercase hex HMAC-SHA256(secret, "v0:" ts ":" body). */
int slack_sign(const char *secret, size_t secret_len, const char *ts, const char *body,
	       size_t body_len, char out[SLACK_SIG_LEN + 1]);

enum slack_verdict {
	SLACK_SIG_OK = 0,
	SLACK_SIG_MISSING,   /* a header is absent */
	SLACK_SIG_BAD_TS,    /* the timestamp is not a number */
	SLACK_SIG_STALE,     /* more than SLACK_SKEW_MAX seconds off */
	SLACK_SIG_MISMATCH,  /* wrong signature */
};
/* Check X-Slack-Request-Timestamp (ts) and X-Slack-Signature (sig) for a
 * raw body at time now; compares in constant time.  *ts_out gets the
 * timestamp when it parsed. */
enum slack_verdict slack_verify(const char *secret, size_t secret_len, const char *ts,
				const char *sig, const char *body, size_t body_len, int64_t now,
				int64_t *ts_out);
const char *slack_verdict_text(enum slack_verdict v);

/* Signatures seen recently: a body Slack signed is accepted once. */
struct slack_replay;
struct slack_replay *slack_replay_new(size_t cap);
/* 0: first time (now remembered until ts + SLACK_SKEW_MAX), 1: seen
 * before, -1: the cache is full of live entries. */
int slack_replay_check(struct slack_replay *c, const char *sig, int64_t ts, int64_t now);
void slack_replay_free(struct slack_replay *c);

/* The decoded value of field name in an application/x-www-form-urlencoded
 * body (malloc'ed, NUL-terminated), or NULL when absent or malformed. */
char *slack_form_value(const char *body, size_t len, const char *name);

/* One button press, from the interactivity payload (JSON). */
struct slack_click {
	char type[32];              /* "block_actions" */
	char user_id[SLACK_ID_MAX]; /* who pressed */
	char action[16];            /* "approve" or "deny" */
	char value[160];            /* the button's value */
	char response_url[SLACK_URL_MAX]; /* "" when none */
};
enum slack_click_kind {
	SLACK_CLICK_OK = 0,
	SLACK_CLICK_MALFORMED,  /* not a payload Slack sends: answer 400 */
	SLACK_CLICK_UNKNOWN,    /* well-formed, but not one of our buttons */
};
enum slack_click_kind slack_parse_click(const char *payload, struct slack_click *c, char *why,
					size_t whylen);

/* A button's value: "v1.ID.MAC", MAC = HMAC-SHA256(key, action, id, user,
 * role, created_at) in hex.  It names one request of this journal and one
 * action, so it cannot act on another request (even one that reuses the
 * id in a new journal: created_at and the key differ) nor turn Deny
 * into Approve. */
void slack_button_value(const uint8_t key[SLACK_KEY_LEN], const struct sbx_req *r,
			const char *action, char *out, size_t outlen);
/* The request id a value names (not yet verified), or -1. */
int slack_button_id(const char *value, uint32_t *id);
bool slack_button_ok(const uint8_t key[SLACK_KEY_LEN], const struct sbx_req *r,
		     const char *action, const char *value);

/* Same scheme, host and port: a response_url must come from where the
 * webhook goes (hooks.slack.com), so a payload cannot steer posts elsewhere. */
bool slack_same_origin(const char *a, const char *b);

/* Text sbx writes, for a mrkdwn object (names and words of the policy
 * in it): &, < and > escaped (no mentions, no links), control characters
 * turned into spaces (newlines kept), invisible characters (bidi
 * controls, zero-width characters, BOM, C1 controls) removed, invalid
 * UTF-8 as '?', cut at a UTF-8 boundary to fit outlen (with "..." when
 * cut). */
void slack_escape(const char *in, char *out, size_t outlen);
/* Text a person typed (reason, ticket, comments), for a plain_text
 * object with "emoji": false, where Slack formats nothing: as
 * slack_escape, but every line break and run of blanks folded into one
 * space (no lines of its own), other control characters removed, and
 * no blanks at either end.  Cut the same way. */
void slack_plain(const char *in, char *out, size_t outlen);

/* ---- messages (slack_msg.c) ---------------------------------------------- */

/* The request's state as the messages show it: "pending/N" (N approvals
 * so far), "active", "denied", ... */
void slack_state_key(const struct sbx_req *r, char *buf, size_t len);
bool slack_state_final(const char *key);
/* The Block Kit message ({"text":..., "blocks":[...]}) for r as it is now:
 * who, which role on which hosts, how long, reason, ticket, approvals
 * still needed and who can give them, the outcome, and Approve/Deny
 * buttons while it is pending. */
json_t *slack_render(struct sbx_broker *b, const struct sbx_req *r,
		     const uint8_t key[SLACK_KEY_LEN]);

/* ---- outgoing posts: slack_out.h ----------------------------------------------- */

/* ---- the feature's state (slack.c) ------------------------------------------ */

/* One message to post.  Journaled ones came from a notify.queued record
 * and leave with notify.delivered (or notify.failed); ephemeral ones
 * (answers to a click, seen only by who clicked) live in memory only. */
struct slack_note {
	uint64_t nid;            /* 0 for ephemeral */
	uint64_t seq;            /* of notify.queued: sent only once durable */
	uint32_t req;
	char *user, *role;
	char *state;             /* the state key it shows */
	char *response_url;      /* update through this; NULL: the webhook */
	int64_t response_url_at; /* when Slack gave it (wall seconds) */
	bool response_url_dead;  /* it failed: use the webhook */
	json_t *message;
	int64_t queued_at;       /* wall seconds */
	bool ephemeral;
	unsigned attempts;
	int64_t next_try_ms;     /* monotonic */
	bool in_flight;
	bool used_response_url;  /* the attempt in flight */
	struct sbx_slack *s;
	struct slack_note *next;
};

/* A request that has (or will have) a message in Slack. */
struct slack_track {
	uint32_t req;
	char state[32];          /* the state last queued (or passed over) */
	char *response_url;      /* from the latest click, or NULL */
	int64_t response_url_at;
	unsigned response_url_uses;
};

struct slack_http;

struct sbx_slack {
	struct sbx_broker *b;
	bool running;            /* slack: configured and started */
	char *webhook;           /* secret: never logged */
	char secret[SBX_SECRET_MAX + 1];
	size_t secret_len;
	uint8_t key[SLACK_KEY_LEN];
	int64_t timeout;
	char request_path[256];
	uint64_t next_nid;
	struct slack_note *notes; /* in nid order, ephemeral ones appended */
	struct slack_track *tracks;
	size_t n_tracks, cap_tracks;
	uint32_t *dirty;          /* requests whose records came since the last tick */
	size_t n_dirty, cap_dirty;
	int ep, timer_fd;
	int64_t timer_at;         /* monotonic ms the timer is set for, or INT64_MAX */
	struct slack_out *out;
	struct slack_http *http;
	struct slack_replay *replay;
};

struct slack_track *slack_track_find(struct sbx_slack *s, uint32_t req);
/* Answer the person who clicked, privately (best effort, not journaled). */
void slack_answer(struct sbx_slack *s, uint32_t req, const char *response_url, const char *text);
/* Run the decision a click asks for.  Returns 1 when a change was
 * recorded (*wait_seq: reply once durable), 0 when refused (msg says why,
 * for the person who clicked). */
int slack_act(struct sbx_slack *s, const struct slack_click *c, uint64_t *wait_seq, char *msg,
	      size_t msglen);
/* How many users of p have id as their slack_id; *person is the last of
 * them, names lists the first two. */
int slack_person_of(const struct sbx_policy *p, const char *id, const char **person,
		    char *names, size_t len);
/* A slash command (slack_command.c): "/sbx request ROLE [for] DUR REASON",
 * "/sbx status", "/sbx help" from Slack user user_id.  Returns 1 when it
 * changed something (answer msg once wait_seq is durable), 0 when msg is
 * the answer now. */
int slack_command(struct sbx_slack *s, const char *user_id, const char *text,
		  uint64_t *wait_seq, char *msg, size_t msglen);
/* Send what is due, set the timer. */
void slack_kick(struct sbx_slack *s);

/* ---- the HTTP endpoint (slack_http.c) --------------------------------------- */

struct slack_http *slack_http_start(struct sbx_slack *s, char *err, size_t errlen);
int slack_http_fd(const struct slack_http *h);
void slack_http_run(struct slack_http *h);
/* Monotonic ms by which MHD must run again, or INT64_MAX. */
int64_t slack_http_deadline(const struct slack_http *h);
/* Release replies whose records are now durable (or failed). */
void slack_http_tick(struct slack_http *h);
void slack_http_free(struct slack_http *h);

#endif
