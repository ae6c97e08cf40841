/*
 * Slack approvals: the feature's state and its place in the broker.
 *
 * The journal is the outbox.  When a request needs a message (it was
 * created and needs approval, or it moved on since its last message), a
 * notify.queued record carries the whole message; it is posted once that
 * record is durable, and notify.delivered (or, after a day of failures,
 * notify.failed) takes it out again.  Replaying the journal (and the
 * snapshot's "ext"."slack") rebuilds exactly the messages still to send,
 * so a restart resumes them, and a message Slack took is never sent again.
 *
 * Which message a request needs is decided by comparing its state now
 * with the state its last message showed (a "track" per request), once
 * per loop pass for the requests whose records came in during the pass,
 * and for all of them at start-up, which also repairs what a crash cut
 * off between a request's record and its notify.queued.
 */
#include "config.h"

#include "slack.h"
#include "slack_int.h"

#include "log.h"
#include "sbxio.h"
#include "timeutil.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#define MAX_IN_FLIGHT 2
#define EPHEMERAL_TRIES 3
#define GIVE_UP_SECS (24 * 3600)       /* then notify.failed */
/* Slack: a response_url works 5 times within 30 minutes. */
#define RESPONSE_URL_USES 5
#define RESPONSE_URL_QUEUE_SECS (25 * 60) /* still fresh enough to queue an update */
#define RESPONSE_URL_SEND_SECS (29 * 60)  /* still fresh enough to post through */
#define KEY_FILE "slack-button.key"

static bool curl_ready;

/* ---- notes -------------------------------------------------------------------- */

static void note_free(struct slack_note *n)
{
	if (!n)
		return;
	free(n->user);
	free(n->role);
	free(n->state);
	free(n->response_url);
	json_decref(n->message);
	free(n);
}

static void notes_append(struct sbx_slack *s, struct slack_note *n)
{
	struct slack_note **p = &s->notes;

	while (*p)
		p = &(*p)->next;
	n->next = NULL;
	n->s = s;
	*p = n;
}

static struct slack_note *note_take(struct sbx_slack *s, uint64_t nid)
{
	for (struct slack_note **p = &s->notes; *p; p = &(*p)->next) {
		struct slack_note *n = *p;

		if (!n->ephemeral && n->nid == nid) {
			*p = n->next;
			n->next = NULL;
			return n;
		}
	}
	return NULL;
}

static void note_unlink(struct sbx_slack *s, struct slack_note *n)
{
	for (struct slack_note **p = &s->notes; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			n->next = NULL;
			return;
		}
	}
}

static bool req_has_notes(const struct sbx_slack *s, uint32_t req)
{
	for (const struct slack_note *n = s->notes; n; n = n->next)
		if (!n->ephemeral && n->req == req)
			return true;
	return false;
}

static char *dup_str(const json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));

	return v ? strdup(v) : NULL;
}

static int64_t int_of(const json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

/* A note from a notify.queued record or a snapshot entry (same keys). */
static struct slack_note *note_from_json(const json_t *o, uint64_t seq, int64_t queued_at)
{
	struct slack_note *n = calloc(1, sizeof(*n));
	json_t *msg = json_object_get(o, "message");

	if (!n)
		return NULL;
	n->nid = (uint64_t)int_of(o, "nid");
	n->seq = seq;
	n->req = (uint32_t)int_of(o, "id");
	n->user = dup_str(o, "user");
	n->role = dup_str(o, "role");
	n->state = dup_str(o, "state");
	n->response_url = dup_str(o, "response_url");
	n->response_url_at = int_of(o, "response_url_at");
	n->queued_at = queued_at;
	n->message = json_is_object(msg) ? json_incref(msg) : NULL;
	/* A notice (sbx_slack_queue_notice: an alert, a review) belongs to
	 * no request. */
	if (!n->nid || !n->user || !n->role || !n->state || !n->message ||
	    (!n->req && strcmp(n->state, "alert") != 0 && strncmp(n->state, "review.", 7) != 0)) {
		note_free(n);
		return NULL;
	}
	return n;
}

/* ---- tracks ----------------------------------------------------------------------- */

struct slack_track *slack_track_find(struct sbx_slack *s, uint32_t req)
{
	for (size_t i = 0; i < s->n_tracks; i++)
		if (s->tracks[i].req == req)
			return &s->tracks[i];
	return NULL;
}

static struct slack_track *track_add(struct sbx_slack *s, uint32_t req)
{
	struct slack_track *t = slack_track_find(s, req);

	if (t)
		return t;
	if (s->n_tracks == s->cap_tracks) {
		size_t cap = s->cap_tracks ? s->cap_tracks * 2 : 16;
		struct slack_track *v = realloc(s->tracks, cap * sizeof(*v));

		if (!v)
			return NULL;
		s->tracks = v;
		s->cap_tracks = cap;
	}
	t = &s->tracks[s->n_tracks++];
	memset(t, 0, sizeof(*t));
	t->req = req;
	return t;
}

static void track_set_url(struct slack_track *t, const char *url, int64_t at)
{
	char *copy;

	if (!url || !*url)
		return;
	if (t->response_url && strcmp(t->response_url, url) == 0)
		return;
	copy = strdup(url);
	if (!copy)
		return;
	free(t->response_url);
	t->response_url = copy;
	t->response_url_at = at;
	t->response_url_uses = 0;
}

/* A request whose last message showed its final state, and was sent, is
 * done with: forget it (snapshots stay small). */
static void track_maybe_drop(struct sbx_slack *s, uint32_t req)
{
	struct slack_track *t = slack_track_find(s, req);

	if (!t || !slack_state_final(t->state) || req_has_notes(s, req))
		return;
	free(t->response_url);
	*t = s->tracks[--s->n_tracks];
}

/* ---- notify.* records: replay and live alike -------------------------------------- */

static void apply_queued(struct sbx_slack *s, const json_t *rec)
{
	const char *time = json_string_value(json_object_get(rec, "time"));
	int64_t us = 0;
	struct slack_note *n;
	struct slack_track *t;

	if (time)
		(void)sbx_parse_rfc3339_us(time, &us);
	n = note_from_json(rec, (uint64_t)int_of(rec, "seq"), us / 1000000);
	if (!n) {
		sbx_warn("slack: ignoring a malformed notify.queued record (seq %lld)",
			 (long long)int_of(rec, "seq"));
		return;
	}
	if (n->nid >= s->next_nid)
		s->next_nid = n->nid + 1;
	t = n->req ? track_add(s, n->req) : NULL;
	if (t) {
		snprintf(t->state, sizeof(t->state), "%s", n->state);
		if (n->response_url) {
			track_set_url(t, n->response_url, n->response_url_at);
			t->response_url_uses++;
		}
	}
	notes_append(s, n);
}

static void apply_notify(struct sbx_slack *s, const json_t *rec)
{
	const char *event = json_string_value(json_object_get(rec, "event"));
	struct slack_note *n;

	if (!event || strncmp(event, "notify.", 7) != 0 ||
	    !json_is_string(json_object_get(rec, "channel")) ||
	    strcmp(json_string_value(json_object_get(rec, "channel")), "slack") != 0)
		return;
	if (strcmp(event, "notify.queued") == 0) {
		apply_queued(s, rec);
		return;
	}
	if (strcmp(event, "notify.delivered") != 0 && strcmp(event, "notify.failed") != 0)
		return;
	n = note_take(s, (uint64_t)int_of(rec, "nid"));
	if (!n)
		return;
	track_maybe_drop(s, n->req);
	note_free(n);
}

/* ---- persistence ---------------------------------------------------------------------- */

void sbx_slack_replay(struct sbx_slack *s, const json_t *rec)
{
	if (s)
		apply_notify(s, rec);
}

static json_t *note_json(const struct slack_note *n)
{
	json_t *o = json_pack("{s:I, s:I, s:I, s:s, s:s, s:s, s:I, s:O}", "nid", (json_int_t)n->nid,
			      "seq", (json_int_t)n->seq, "id", (json_int_t)n->req, "user", n->user,
			      "role", n->role, "state", n->state, "queued_at",
			      (json_int_t)n->queued_at, "message", n->message);

	if (o && n->response_url) {
		sbx_rec_str(o, "response_url", n->response_url);
		json_object_set_new(o, "response_url_at", json_integer(n->response_url_at));
	}
	return o;
}

json_t *sbx_slack_save(const struct sbx_slack *s)
{
	json_t *o, *notes, *tracks;

	if (!s)
		return NULL;
	o = json_object();
	notes = json_array();
	tracks = json_array();
	for (const struct slack_note *n = s->notes; n; n = n->next)
		if (!n->ephemeral)
			json_array_append_new(notes, note_json(n));
	for (size_t i = 0; i < s->n_tracks; i++) {
		const struct slack_track *t = &s->tracks[i];
		json_t *j = json_pack("{s:I, s:s}", "id", (json_int_t)t->req, "state", t->state);

		if (j && t->response_url) {
			sbx_rec_str(j, "response_url", t->response_url);
			json_object_set_new(j, "response_url_at", json_integer(t->response_url_at));
		}
		json_array_append_new(tracks, j);
	}
	json_object_set_new(o, "next_nid", json_integer((json_int_t)s->next_nid));
	json_object_set_new(o, "notes", notes);
	json_object_set_new(o, "tracks", tracks);
	return o;
}

/* A snapshot the broker cannot load stops it, and a snapshot is only a
 * cache: what does not make sense is skipped with a warning instead. */
int sbx_slack_load(struct sbx_slack *s, const json_t *saved)
{
	size_t i;
	json_t *v;

	if (!s)
		return 0;
	if (!json_is_object(saved)) {
		sbx_warn("slack: the snapshot's Slack state is not an object; ignored");
		return 0;
	}
	s->next_nid = (uint64_t)int_of(saved, "next_nid");
	if (!s->next_nid)
		s->next_nid = 1;
	json_array_foreach(json_object_get(saved, "notes"), i, v) {
		struct slack_note *n = note_from_json(v, (uint64_t)int_of(v, "seq"),
						      int_of(v, "queued_at"));

		if (!n) {
			sbx_warn("slack: skipping a malformed message in the snapshot");
			continue;
		}
		notes_append(s, n);
	}
	json_array_foreach(json_object_get(saved, "tracks"), i, v) {
		const char *state = json_string_value(json_object_get(v, "state"));
		uint32_t id = (uint32_t)int_of(v, "id");
		struct slack_track *t = state && id ? track_add(s, id) : NULL;

		if (!t)
			continue;
		snprintf(t->state, sizeof(t->state), "%s", state);
		track_set_url(t, json_string_value(json_object_get(v, "response_url")),
			      int_of(v, "response_url_at"));
	}
	return 0;
}

/* ---- what each request needs ---------------------------------------------------------- */

static void mark_dirty(struct sbx_slack *s, uint32_t id)
{
	for (size_t i = 0; i < s->n_dirty; i++)
		if (s->dirty[i] == id)
			return;
	if (s->n_dirty == s->cap_dirty) {
		size_t cap = s->cap_dirty ? s->cap_dirty * 2 : 16;
		uint32_t *v = realloc(s->dirty, cap * sizeof(*v));

		if (!v)
			return;
		s->dirty = v;
		s->cap_dirty = cap;
	}
	s->dirty[s->n_dirty++] = id;
}

void sbx_slack_on_record(struct sbx_broker *b, const json_t *rec)
{
	struct sbx_slack *s = b->slack;
	const char *event = json_string_value(json_object_get(rec, "event"));
	json_t *id = json_object_get(rec, "id");

	if (!s || !event)
		return;
	/* Also before Slack starts: an alert raised at start-up is sent once
	 * it has. */
	if (strncmp(event, "notify.", 7) == 0) {
		apply_notify(s, rec);
		return;
	}
	if (!s->running)
		return;
	/* Decided at the end of the pass: an approval and the activation it
	 * causes then make one message, not two. */
	if ((strncmp(event, "request.", 8) == 0 || strncmp(event, "grant.", 6) == 0) &&
	    json_is_integer(id))
		mark_dirty(s, (uint32_t)json_integer_value(id));
}

static int queue_note(struct sbx_slack *s, const struct sbx_req *r, const char *key,
		      const struct slack_track *t, bool through_url)
{
	json_t *msg = slack_render(s->b, r, s->key), *f;
	uint64_t seq = 0;

	if (!msg)
		return -1;
	f = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s}", "channel", "slack", "nid",
		      (json_int_t)s->next_nid, "id", (json_int_t)r->id, "user", r->user, "role",
		      r->role, "state", key);
	if (!f) {
		json_decref(msg);
		return -1;
	}
	if (through_url) {
		sbx_rec_str(f, "response_url", t->response_url);
		json_object_set_new(f, "response_url_at", json_integer(t->response_url_at));
	}
	json_object_set_new(f, "message", msg);
	/* The record comes back through on_record, which adds the note. */
	return sbx_broker_record(s->b, "notify.queued", SBX_SYSTEM_ACTOR, f, &seq);
}

int sbx_slack_queue_notice(struct sbx_broker *b, const struct sbx_slack_notice *nt)
{
	struct sbx_slack *s = b->slack;
	json_t *f;
	uint64_t seq = 0;

	if (!s || !b->settings.slack.enabled)
		return 0;
	/* id 0: a note of no request, sent in order with the others,
	 * through the same outbox. */
	f = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:{s:s}}", "channel", "slack", "nid",
		      (json_int_t)s->next_nid, "id", (json_int_t)0, "user", nt->user, "role",
		      nt->role, "state", nt->state, "message", "text", nt->text);
	if (!f)
		return -1;
	if (nt->key)
		sbx_rec_str(f, nt->key, nt->value);
	/* The record comes back through on_record, which adds the note. */
	return sbx_broker_record(b, "notify.queued", SBX_SYSTEM_ACTOR, f, &seq);
}

static void reconcile(struct sbx_slack *s, uint32_t id)
{
	struct sbx_req *r = sbx_state_get(s->b->state, id);
	struct slack_track *t;
	char key[32];
	bool fresh;

	if (!r)
		return;
	slack_state_key(r, key, sizeof(key));
	t = slack_track_find(s, id);
	if (!t) {
		if (r->state != SBX_REQ_PENDING || r->approvals_needed == 0)
			return;
		t = track_add(s, id);
		if (!t)
			return;
	}
	if (!t->state[0]) {
		/* Its first message (none was queued yet). */
		if (queue_note(s, r, key, NULL, false) < 0)
			sbx_warn("slack: could not queue the message for request %u", id);
		return;
	}
	if (strcmp(t->state, key) == 0)
		return;
	fresh = t->response_url && sbx_now() - t->response_url_at < RESPONSE_URL_QUEUE_SECS &&
		t->response_url_uses < RESPONSE_URL_USES;
	/* An approval short of enough is shown only where the message can be
	 * updated in place: its buttons stay valid either way. */
	if (r->state == SBX_REQ_PENDING && !fresh) {
		snprintf(t->state, sizeof(t->state), "%s", key);
		return;
	}
	if (queue_note(s, r, key, t, fresh) < 0)
		sbx_warn("slack: could not queue the follow-up for request %u", id);
}

static void reconcile_dirty(struct sbx_slack *s)
{
	while (s->n_dirty > 0)
		reconcile(s, s->dirty[--s->n_dirty]);
}

static void reconcile_all(struct sbx_slack *s)
{
	size_t n = sbx_state_count(s->b->state);

	for (size_t i = 0; i < n; i++) {
		const struct sbx_req *r = sbx_state_at(s->b->state, i);

		if (r && (r->state == SBX_REQ_PENDING || slack_track_find(s, r->id)))
			reconcile(s, r->id);
	}
}

/* ---- sending --------------------------------------------------------------------------- */

static void record_outcome(struct sbx_slack *s, struct slack_note *n, const char *event,
			   const char *error)
{
	json_t *f = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:I}", "channel", "slack", "nid",
			      (json_int_t)n->nid, "id", (json_int_t)n->req, "user", n->user,
			      "role", n->role, "state", n->state, "via",
			      n->used_response_url ? "response_url" : "webhook", "attempts",
			      (json_int_t)n->attempts);
	uint64_t seq;

	if (f && error)
		sbx_rec_str(f, "error", error);
	/* The record takes the note out (on_record); if the journal refuses
	 * it, take it out here so it is not sent again by this broker. */
	if (!f || sbx_broker_record(s->b, event, SBX_SYSTEM_ACTOR, f, &seq) < 0) {
		note_unlink(s, n);
		track_maybe_drop(s, n->req);
		note_free(n);
	}
}

static void on_sent(void *arg, const struct slack_result *res)
{
	struct slack_note *n = arg;
	struct sbx_slack *s = n->s;
	int64_t now = sbx_mono_ms(), delay;
	char clean[300];

	n->in_flight = false;
	n->attempts++;
	if (res->status >= 200 && res->status < 300) {
		if (n->ephemeral) {
			note_unlink(s, n);
			note_free(n);
			return;
		}
		if (n->req)
			sbx_info("slack: request %u: message (%s) delivered%s", n->req, n->state,
				 n->used_response_url ? " as an update" : "");
		else
			sbx_info("slack: an alert's message delivered");
		record_outcome(s, n, "notify.delivered", NULL);
		return;
	}
	sbx_sanitize(res->error, clean, sizeof(clean));
	if (n->used_response_url && res->status >= 400 && res->status < 500 && res->status != 429) {
		/* Expired or used up: post a new message instead. */
		n->response_url_dead = true;
		delay = 0;
	} else if (res->status == 429) {
		delay = (res->retry_after > 0 ? (res->retry_after < 3600 ? res->retry_after : 3600)
					      : 1) * 1000;
	} else {
		delay = slack_backoff_ms(n->attempts);
	}
	if (n->ephemeral) {
		if (n->response_url_dead || n->attempts >= EPHEMERAL_TRIES) {
			sbx_warn("slack: could not answer a click on request %u: %s", n->req, clean);
			note_unlink(s, n);
			note_free(n);
			return;
		}
	} else if (sbx_now() - n->queued_at > GIVE_UP_SECS) {
		sbx_err("slack: request %u: giving up on a message after %u attempts over a day: %s",
			n->req, n->attempts, clean);
		record_outcome(s, n, "notify.failed", clean);
		return;
	}
	/* Say it the first time and then less and less often. */
	if ((n->attempts & (n->attempts - 1)) == 0)
		sbx_warn("slack: request %u: posting its message failed (attempt %u): %s; retrying in "
			 "%llds", n->req, n->attempts, clean, (long long)(delay / 1000));
	n->next_try_ms = now + delay;
}

static void send_note(struct sbx_slack *s, struct slack_note *n)
{
	bool via_url = n->response_url && !n->response_url_dead &&
		       sbx_now() - n->response_url_at < RESPONSE_URL_SEND_SECS;
	json_t *body = NULL;
	char *text = NULL;

	if (n->ephemeral && !via_url) {
		note_unlink(s, n);
		note_free(n);
		return;
	}
	body = json_deep_copy(n->message);
	if (body && via_url && !n->ephemeral)
		json_object_set_new(body, "replace_original", json_true());
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	n->used_response_url = via_url;
	if (!text || slack_out_post(s->out, via_url ? n->response_url : s->webhook, text, s->timeout,
				    on_sent, n) < 0) {
		n->attempts++;
		n->next_try_ms = sbx_mono_ms() + slack_backoff_ms(n->attempts);
	} else {
		n->in_flight = true;
	}
	free(text);
	json_decref(body);
}

static bool seen_req(const uint32_t *v, size_t n, uint32_t req)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == req)
			return true;
	return false;
}

/* Wake up by at.  A timer already set for earlier stays: waking early
 * costs one pass, while re-arming on every loop pass would cost a system
 * call each time. */
static void arm_timer(struct sbx_slack *s, int64_t at)
{
	struct itimerspec its = { 0 };
	int64_t now = sbx_mono_ms(), delta;

	if (at == INT64_MAX || (s->timer_at != INT64_MAX && s->timer_at > now && s->timer_at <= at))
		return;
	s->timer_at = at;
	delta = at - now;
	if (delta <= 0) {
		its.it_value.tv_nsec = 1;
	} else {
		its.it_value.tv_sec = delta / 1000;
		its.it_value.tv_nsec = (delta % 1000) * 1000000;
	}
	(void)timerfd_settime(s->timer_fd, 0, &its, NULL);
}

void slack_kick(struct sbx_slack *s)
{
	uint64_t durable;
	int64_t now, next;
	uint32_t *busy = NULL;
	size_t n_busy = 0, n_notes = 0;
	struct slack_note *n, *following;

	if (!s->running)
		return;
	for (n = s->notes; n; n = n->next)
		n_notes++;
	if (n_notes)
		busy = calloc(n_notes, sizeof(*busy));
	durable = sbx_journal_durable_seq(s->b->journal);
	now = sbx_mono_ms();
	next = INT64_MAX;
	for (n = s->notes; n && busy; n = following) {
		following = n->next;
		/* One message at a time per request, in order: an update never
		 * overtakes the message it updates. */
		if (!n->ephemeral) {
			if (seen_req(busy, n_busy, n->req))
				continue;
			busy[n_busy++] = n->req;
		}
		if (n->in_flight || (!n->ephemeral && n->seq > durable))
			continue;
		if (n->next_try_ms > now) {
			if (n->next_try_ms < next)
				next = n->next_try_ms;
			continue;
		}
		if (slack_out_active(s->out) >= MAX_IN_FLIGHT)
			break;
		send_note(s, n);
	}
	free(busy);
	/* After the sends: a new transfer sets curl's timer. */
	if (slack_out_deadline(s->out) < next)
		next = slack_out_deadline(s->out);
	if (slack_http_deadline(s->http) < next)
		next = slack_http_deadline(s->http);
	arm_timer(s, next);
}

/* ---- clicks ---------------------------------------------------------------------------- */

void slack_answer(struct sbx_slack *s, uint32_t req, const char *response_url, const char *text)
{
	struct slack_note *n;
	struct slack_track *t;
	char esc[1200];

	if (!s->running || !response_url || !response_url[0])
		return;
	slack_escape(text, esc, sizeof(esc));
	if (!slack_same_origin(response_url, s->webhook)) {
		sbx_warn("slack: not answering through a response_url on another site than the "
			 "webhook's");
		return;
	}
	n = calloc(1, sizeof(*n));
	if (!n || !(n->response_url = strdup(response_url)) ||
	    !(n->message = json_pack("{s:s, s:b, s:s}", "response_type", "ephemeral",
				     "replace_original", 0, "text", esc))) {
		note_free(n);
		return;
	}
	n->ephemeral = true;
	n->req = req;
	n->response_url_at = sbx_now();
	n->queued_at = n->response_url_at;
	t = slack_track_find(s, req);
	if (t && t->response_url && strcmp(t->response_url, response_url) == 0)
		t->response_url_uses++;
	notes_append(s, n);
}

int slack_person_of(const struct sbx_policy *p, const char *id, const char **person,
		    char *names, size_t len)
{
	int found = 0;

	names[0] = '\0';
	for (size_t i = 0; i < p->n_users; i++) {
		if (!p->users[i].slack_id || strcmp(p->users[i].slack_id, id) != 0)
			continue;
		if (found < 2)
			snprintf(names + strlen(names), len - strlen(names), "%s%s",
				 found ? ", " : "", p->users[i].name);
		*person = p->users[i].name;
		found++;
	}
	return found;
}

int slack_act(struct sbx_slack *s, const struct slack_click *c, uint64_t *wait_seq, char *msg,
	      size_t msglen)
{
	struct sbx_broker *b = s->b;
	bool approve = strcmp(c->action, "approve") == 0;
	const char *person = NULL;
	char why[512], names[160], clean[200];
	struct slack_track *t;
	struct sbx_req *r = NULL;
	uint32_t id = 0;
	json_t *extra;
	int st, n;

	if (slack_button_id(c->value, &id) < 0 || !(r = sbx_state_get(b->state, id)) ||
	    !slack_button_ok(s->key, r, c->action, c->value)) {
		sbx_warn("slack: %s pressed a button this broker did not make (value '%s')",
			 c->user_id, sbx_sanitize(c->value, clean, sizeof(clean)));
		snprintf(msg, msglen, "This button was not made by sbx on %s for a request there. "
			 "Nothing was changed.", b->policy->broker.host);
		return 0;
	}
	n = slack_person_of(b->policy, c->user_id, &person, names, sizeof(names));
	if (n == 0) {
		sbx_info("slack: %s (not linked to any user) pressed %s on request %u", c->user_id,
			 c->action, id);
		snprintf(msg, msglen, "Your Slack account (%s) is not linked to anyone in sbx's "
			 "policy: an admin can add slack_id: %s to your entry under users:. Nothing "
			 "was changed.", c->user_id, c->user_id);
		return 0;
	}
	if (n > 1) {
		sbx_warn("slack: %s is the slack_id of %d users (%s...)", c->user_id, n, names);
		snprintf(msg, msglen, "Your Slack account (%s) is linked to more than one sbx user "
			 "(%s): an admin must fix that. Nothing was changed.", c->user_id, names);
		return 0;
	}
	t = slack_track_find(s, id);
	if (t && c->response_url[0] && slack_same_origin(c->response_url, s->webhook))
		track_set_url(t, c->response_url, sbx_now());
	extra = json_pack("{s:s, s:s}", "via", "slack", "slack_user", c->user_id);
	if (approve)
		st = sbx_broker_approve(b, id, person, NULL, NULL, 0, extra, wait_seq, why,
					sizeof(why));
	else
		st = sbx_broker_end(b, id, true, person, NULL, false, "denied in Slack", extra,
				    wait_seq, why, sizeof(why));
	if (st < 0) {
		sbx_info("slack: %s (%s) could not %s request %u: %s", person, c->user_id,
			 c->action, id, why);
		snprintf(msg, msglen, "Request #%u: %s. Nothing was changed.", id, why);
		return 0;
	}
	sbx_info("slack: %s (%s) %s request %u: %s", person, c->user_id,
		 approve ? "approved" : "denied", id, why);
	snprintf(msg, msglen, "Request #%u: %s.", id, why);
	return 1;
}

/* ---- the event loop ------------------------------------------------------------------- */

int sbx_slack_fd(const struct sbx_broker *b)
{
	return b->slack && b->slack->running ? b->slack->ep : -1;
}

void sbx_slack_on_ready(struct sbx_broker *b)
{
	struct sbx_slack *s = b->slack;
	struct epoll_event evs[32];
	bool run_http = false;
	int64_t now;
	int n;

	if (!s || !s->running)
		return;
	n = epoll_wait(s->ep, evs, 32, 0);
	for (int i = 0; i < n; i++) {
		unsigned kind = (unsigned)(evs[i].data.u64 >> 32);
		int efd = (int)(uint32_t)evs[i].data.u64;
		uint64_t ticks;

		if (kind == SLACK_TAG_TIMER) {
			if (read(s->timer_fd, &ticks, sizeof(ticks)) < 0 && errno != EAGAIN)
				sbx_debug("slack: timer: %s", strerror(errno));
			s->timer_at = INT64_MAX;
		} else if (kind == SLACK_TAG_MHD) {
			run_http = true;
		} else if (kind == SLACK_TAG_CURL) {
			slack_out_socket(s->out, efd, evs[i].events);
		}
	}
	now = sbx_mono_ms();
	if (slack_out_deadline(s->out) <= now)
		slack_out_timeout(s->out);
	if (run_http || slack_http_deadline(s->http) <= now)
		slack_http_run(s->http);
	slack_out_process(s->out);
	slack_kick(s);
}

void sbx_slack_tick(struct sbx_broker *b)
{
	struct sbx_slack *s = b->slack;

	if (!s || !s->running)
		return;
	reconcile_dirty(s);
	slack_http_tick(s->http);
	slack_kick(s);
}

/* ---- set-up ------------------------------------------------------------------------------ */

static int read_secrets(const struct sbx_slack_conf *c, char **webhook, char *secret,
			size_t *secret_len, char *why, size_t whylen)
{
	char url[SBX_SECRET_MAX + 1], bad[200];
	size_t len = 0;

	if (sbx_secret_read("webhook_url_file", c->webhook_url_file, url, sizeof(url), &len, why,
			    whylen) < 0)
		return -1;
	if (slack_url_ok(url, bad, sizeof(bad)) < 0) {
		(void)sbx_whyf(why, whylen, 0, "the webhook URL in %s %s", c->webhook_url_file, bad);
		OPENSSL_cleanse(url, sizeof(url));
		return -1;
	}
	if (sbx_secret_read("signing_secret_file", c->signing_secret_file, secret,
			    SBX_SECRET_MAX + 1, secret_len, why, whylen) < 0) {
		OPENSSL_cleanse(url, sizeof(url));
		return -1;
	}
	*webhook = strdup(url);
	OPENSSL_cleanse(url, sizeof(url));
	if (!*webhook) {
		(void)sbx_whyf(why, whylen, 0, "out of memory");
		return -1;
	}
	return 0;
}

static void free_webhook(char *w)
{
	if (w)
		OPENSSL_cleanse(w, strlen(w));
	free(w);
}

static int parse_key(const char *hexkey, size_t len, uint8_t key[SLACK_KEY_LEN])
{
	if (len != 2 * SLACK_KEY_LEN)
		return -1;
	for (size_t i = 0; i < SLACK_KEY_LEN; i++) {
		unsigned v = 0;

		for (size_t k = 0; k < 2; k++) {
			char c = hexkey[2 * i + k];

			v <<= 4;
			if (c >= '0' && c <= '9')
				v |= (unsigned)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v |= (unsigned)(c - 'a' + 10);
			else
				return -1;
		}
		key[i] = (uint8_t)v;
	}
	return 0;
}

/* A new random key, written as hex to path (tmp, fsync, rename, fsync dir). */
static int create_key(const char *dir, const char *path, char *why, size_t whylen)
{
	static const char hexdig[] = "0123456789abcdef";
	uint8_t raw[SLACK_KEY_LEN];
	char text[2 * SLACK_KEY_LEN + 1], tmp[4096];
	int fd = -1, dfd = -1, ret = -1;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		(void)sbx_whyf(why, whylen, 0, "getrandom: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < SLACK_KEY_LEN; i++) {
		text[2 * i] = hexdig[raw[i] >> 4];
		text[2 * i + 1] = hexdig[raw[i] & 0xf];
	}
	text[2 * SLACK_KEY_LEN] = '\n';
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		(void)sbx_whyf(why, whylen, 0, "%s: path too long", path);
		goto out;
	}
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, sizeof(text)) != (ssize_t)sizeof(text) || fsync(fd) < 0 ||
	    rename(tmp, path) < 0) {
		(void)sbx_whyf(why, whylen, 0, "cannot write %s: %s", path, strerror(errno));
		(void)unlink(tmp);
		goto out;
	}
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0)
		(void)fsync(dfd);
	ret = 0;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	OPENSSL_cleanse(text, sizeof(text));
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return ret;
}

static int load_key(struct sbx_slack *s, char *why, size_t whylen)
{
	const char *dir = s->b->policy->broker.state_dir;
	char path[4096], text[SBX_SECRET_MAX + 1];
	struct stat st;
	size_t len = 0;
	int ret = -1;

	if (snprintf(path, sizeof(path), "%s/%s", dir, KEY_FILE) >= (int)sizeof(path)) {
		(void)sbx_whyf(why, whylen, 0, "state dir %s: path too long", dir);
		return -1;
	}
	if (lstat(path, &st) < 0 && errno == ENOENT && create_key(dir, path, why, whylen) < 0)
		return -1;
	if (sbx_secret_read("the Slack button key", path, text, sizeof(text), &len, why,
			    whylen) < 0)
		return -1;
	if (parse_key(text, len, s->key) < 0)
		(void)sbx_whyf(why, whylen, 0, "%s does not hold a key (64 hex digits); remove it and a new "
			 "one is made (buttons already in Slack then stop working)", path);
	else
		ret = 0;
	OPENSSL_cleanse(text, sizeof(text));
	return ret;
}

static int start(struct sbx_slack *s, char *why, size_t whylen)
{
	struct sbx_broker *b = s->b;
	struct epoll_event ev = { .events = EPOLLIN };

	s->timeout = b->settings.slack.timeout;
	snprintf(s->request_path, sizeof(s->request_path), "%s", b->settings.slack.request_path);
	if (read_secrets(&b->settings.slack, &s->webhook, s->secret, &s->secret_len, why,
			 whylen) < 0 ||
	    load_key(s, why, whylen) < 0)
		return -1;
	s->replay = slack_replay_new(SLACK_REPLAY_MAX);
	s->ep = epoll_create1(EPOLL_CLOEXEC);
	s->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (!s->replay || s->ep < 0 || s->timer_fd < 0) {
		(void)sbx_whyf(why, whylen, 0, "cannot set up: %s", strerror(errno));
		return -1;
	}
	ev.data.u64 = SLACK_TAG(SLACK_TAG_TIMER, s->timer_fd);
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->timer_fd, &ev) < 0) {
		(void)sbx_whyf(why, whylen, 0, "epoll: %s", strerror(errno));
		return -1;
	}
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			(void)sbx_whyf(why, whylen, 0, "cannot initialize libcurl");
			return -1;
		}
		curl_ready = true;
	}
	s->out = slack_out_new(s->ep, why, whylen);
	if (!s->out)
		return -1;
	s->http = slack_http_start(s, why, whylen);
	if (!s->http)
		return -1;
	ev.data.u64 = SLACK_TAG(SLACK_TAG_MHD, slack_http_fd(s->http));
	if (slack_http_fd(s->http) < 0 ||
	    epoll_ctl(s->ep, EPOLL_CTL_ADD, slack_http_fd(s->http), &ev) < 0) {
		(void)sbx_whyf(why, whylen, 0, "cannot watch the HTTP server: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static size_t queued_count(const struct sbx_slack *s)
{
	size_t n = 0;

	for (const struct slack_note *x = s->notes; x; x = x->next)
		n += !x->ephemeral;
	return n;
}

/* SIGHUP: new secrets take effect (rotation); the address needs a restart. */
void sbx_slack_on_reload(struct sbx_broker *b)
{
	struct sbx_slack *s = b->slack;
	const struct sbx_slack_conf *c = &b->settings.slack;
	char why[512], secret[SBX_SECRET_MAX + 1];
	char *webhook = NULL;
	size_t secret_len = 0;

	if (!s)
		return;
	if (!s->running) {
		if (c->enabled)
			sbx_warn("slack: the policy now has a slack: section; restart the broker to "
				 "start Slack approvals");
		return;
	}
	if (!c->enabled) {
		sbx_warn("slack: the slack: section is gone from the policy; Slack approvals go on "
			 "until the broker restarts");
		return;
	}
	s->timeout = c->timeout;
	snprintf(s->request_path, sizeof(s->request_path), "%s", c->request_path);
	if (read_secrets(c, &webhook, secret, &secret_len, why, sizeof(why)) < 0) {
		sbx_err("slack: keeping the old webhook and signing secret: %s", why);
		return;
	}
	free_webhook(s->webhook);
	s->webhook = webhook;
	memcpy(s->secret, secret, sizeof(s->secret));
	s->secret_len = secret_len;
	OPENSSL_cleanse(secret, sizeof(secret));
	sbx_info("slack: re-read the webhook URL and signing secret (a new listen address needs "
		 "a restart)");
}

int sbx_slack_new(struct sbx_broker *b)
{
	struct sbx_slack *s = calloc(1, sizeof(*s));

	if (!s) {
		sbx_err("slack: out of memory");
		return -ENOMEM;
	}
	s->b = b;
	s->ep = -1;
	s->timer_fd = -1;
	s->timer_at = INT64_MAX;
	s->next_nid = 1;
	b->slack = s;
	return 0;
}

int sbx_slack_start(struct sbx_broker *b)
{
	struct sbx_slack *s = b->slack;
	char why[768];

	if (!s)
		return -EINVAL;
	if (!b->settings.slack.enabled) {
		if (queued_count(s))
			sbx_warn("slack: %zu Slack message(s) wait in the journal for a slack: section",
				 queued_count(s));
		return 0;
	}
	if (start(s, why, sizeof(why)) < 0) {
		sbx_err("slack: %s; not starting", why);
		return -EINVAL;
	}
	s->running = true;
	reconcile_all(s);
	slack_kick(s);
	sbx_info("slack: ready; %zu message(s) to deliver", queued_count(s));
	return 0;
}

void sbx_slack_free(struct sbx_broker *b)
{
	struct sbx_slack *s = b->slack;

	if (!s)
		return;
	slack_http_free(s->http);
	slack_out_free(s->out);
	if (s->timer_fd >= 0)
		close(s->timer_fd);
	if (s->ep >= 0)
		close(s->ep);
	while (s->notes) {
		struct slack_note *n = s->notes;

		s->notes = n->next;
		note_free(n);
	}
	for (size_t i = 0; i < s->n_tracks; i++)
		free(s->tracks[i].response_url);
	free(s->tracks);
	free(s->dirty);
	slack_replay_free(s->replay);
	free_webhook(s->webhook);
	OPENSSL_cleanse(s->secret, sizeof(s->secret));
	OPENSSL_cleanse(s->key, sizeof(s->key));
	if (curl_ready) {
		curl_global_cleanup();
		curl_ready = false;
	}
	free(s);
	b->slack = NULL;
}
