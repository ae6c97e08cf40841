/*
 * Evidence leaves the host (evidence.h): records and seals to syslog,
 * seals to the checkpoint collector through a durable outbox.
 *
 * The outbox needs no queued record of its own: a journal.sealed record
 * is durable before sealing.c moves the key on, so the seal itself is
 * the entry, and checkpoint.delivered (recorded once the collector
 * answered 2xx) takes it out.  A crash between the 2xx and that record
 * sends the seal again after the restart: the collector's contract
 * (docs/audit.md) makes a repeat of the same seq and hash a no-op.
 */
#include "config.h"

#include "evidence.h"

#include "broker.h"
#include "journal.h"
#include "log.h"
#include "sbxio.h"
#include "seal.h"
#include "slack/slack_out.h"
#include "syslog_sink.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <curl/curl.h>

/* Posts to the collector at once. */
#define MAX_IN_FLIGHT 4
/* Seals kept while the collector is away: two weeks at the default 1m.
 * Past that the oldest are given up (each later seal vouches for the
 * chain before it) and the log says so. */
#define BACKLOG_MAX 20000

struct cp {
	uint64_t seq, epoch;
	char hash[65];
	char key_id[SBX_SEAL_ID_LEN + 1];
	char time[SBX_RFC3339_LEN];
	unsigned attempts;
	int64_t next_try_ms;   /* monotonic */
	bool in_flight;
	struct sbx_evidence *e;
	struct cp *next;
};

struct sbx_evidence {
	struct sbx_broker *b;
	struct syslog_state {
		struct sbx_syslog_sink *sink; /* seals always; records when records is set */
		bool records;
		uint64_t warned_at;           /* drops when last said */
		/* Records of the operation under way (evidence.h). */
		unsigned op_depth;
		json_t **held;
		size_t n_held, cap_held;
		bool held_lost;               /* one did not fit: no line is right */
	} log;
	struct cp *head, *tail;       /* in seq order */
	size_t n;
	uint64_t given_up;
	/* The collector (audit.checkpoint_url as at start-up). */
	bool running;
	char url[sizeof(((struct sbx_audit_conf *)0)->checkpoint_url)];
	char ca_file[SBX_SETTINGS_PATH_MAX];
	int64_t timeout;
	int ep;
	struct slack_out *out;
};

static bool curl_ready;

/* ---- the outbox's entries ------------------------------------------------------------ */

static void cp_remove(struct sbx_evidence *e, uint64_t seq)
{
	struct cp *prev = NULL, *c = e->head;

	while (c && c->seq != seq) {
		prev = c;
		c = c->next;
	}
	if (!c)
		return;
	if (prev)
		prev->next = c->next;
	else
		e->head = c->next;
	if (e->tail == c)
		e->tail = prev;
	e->n--;
	free(c);
}

/* Keep the backlog bounded: the oldest not in flight go. */
static void cp_trim(struct sbx_evidence *e)
{
	while (e->n > BACKLOG_MAX && e->head && !e->head->in_flight) {
		uint64_t seq = e->head->seq;

		cp_remove(e, seq);
		e->given_up++;
		if ((e->given_up & (e->given_up - 1)) == 0)
			sbx_warn("audit: %" PRIu64 " seal(s) up to seq %" PRIu64 " given up without "
				 "reaching the checkpoint collector (more than %d waiting); later "
				 "seals vouch for them", e->given_up, seq, BACKLOG_MAX);
	}
}

static void cp_add(struct sbx_evidence *e, uint64_t seq, uint64_t epoch, const char *hash,
		   const char *key_id, const char *time)
{
	struct cp *c;

	/* Without a collector no seal waits for one (the settings are read
	 * before the replay): one configured later gets the seals from then
	 * on, each of which vouches for the chain before it. */
	if (!e->running && !e->b->settings.audit.checkpoint_url[0])
		return;
	if (!hash || strlen(hash) != 64 || (e->tail && seq <= e->tail->seq))
		return;
	c = calloc(1, sizeof(*c));
	if (!c) {
		sbx_err("audit: out of memory: the seal at seq %" PRIu64 " is not sent to the "
			"checkpoint collector by this run", seq);
		return;
	}
	c->seq = seq;
	c->epoch = epoch;
	c->e = e;
	memcpy(c->hash, hash, 65);
	snprintf(c->key_id, sizeof(c->key_id), "%s", key_id ? key_id : "");
	snprintf(c->time, sizeof(c->time), "%s", time ? time : "");
	if (e->tail)
		e->tail->next = c;
	else
		e->head = c;
	e->tail = c;
	e->n++;
	cp_trim(e);
}

static void cp_clear(struct sbx_evidence *e)
{
	while (e->head) {
		struct cp *c = e->head;

		e->head = c->next;
		free(c);
	}
	e->tail = NULL;
	e->n = 0;
}

static uint64_t u64_of(const json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));

	return v > 0 ? (uint64_t)v : 0;
}

/* A journal.sealed record (replayed) or a snapshot's entry. */
static void cp_add_json(struct sbx_evidence *e, const json_t *o)
{
	cp_add(e, u64_of(o, "seq"), u64_of(o, "epoch"),
	       json_string_value(json_object_get(o, "hash")),
	       json_string_value(json_object_get(o, "key_id")),
	       json_string_value(json_object_get(o, "time")));
}

void sbx_evidence_replay(struct sbx_evidence *e, const json_t *rec)
{
	const char *event = json_string_value(json_object_get(rec, "event"));

	if (!e || !event)
		return;
	if (strcmp(event, SBX_SEAL_EVENT) == 0)
		cp_add_json(e, rec);
	else if (strcmp(event, SBX_CHECKPOINT_DELIVERED_EVENT) == 0)
		cp_remove(e, u64_of(rec, "seal_seq"));
}

void sbx_evidence_forget(struct sbx_evidence *e)
{
	if (e)
		cp_clear(e);
}

json_t *sbx_evidence_save(const struct sbx_evidence *e)
{
	json_t *list, *o;

	if (!e || !e->head)
		return NULL;
	list = json_array();
	for (const struct cp *c = e->head; c && list; c = c->next) {
		o = json_pack("{s:I, s:I, s:s, s:s, s:s}", "seq", (json_int_t)c->seq, "epoch",
			      (json_int_t)c->epoch, "hash", c->hash, "key_id", c->key_id, "time",
			      c->time);
		if (!o || json_array_append_new(list, o) < 0) {
			json_decref(list);
			list = NULL;
		}
	}
	return list ? json_pack("{s:o}", "pending", list) : NULL;
}

int sbx_evidence_load(struct sbx_evidence *e, const json_t *saved)
{
	const json_t *list = json_object_get(saved, "pending");
	size_t i;
	json_t *o;

	if (!json_is_array(list))
		return -1;
	cp_clear(e);
	json_array_foreach(list, i, o)
		cp_add_json(e, o);
	return 0;
}

/* ---- syslog ---------------------------------------------------------------------------- */

static void to_syslog(struct sbx_evidence *e, int pri, const json_t *rec)
{
	sbx_syslog_sink_queue(e->log.sink, pri, rec);
}

static void flush_syslog(struct sbx_evidence *e)
{
	uint64_t dropped;

	sbx_syslog_sink_flush(e->log.sink);
	dropped = sbx_syslog_sink_dropped(e->log.sink);
	if (dropped == 0)
		return;
	/* Say it the first time and then less and less often: at each power
	 * of two passed. */
	if (e->log.warned_at == 0 || dropped >= 2 * e->log.warned_at) {
		e->log.warned_at = dropped;
		sbx_warn("audit: %" PRIu64 " line(s) not sent to syslog since the start (no "
			 "receiver at " SBX_SYSLOG_PATH ", or its queue was full); the journal "
			 "has every record", dropped);
	}
}

/* The operation ended: its records' lines, with the hashes the journal
 * wrote for them now that it has. */
static void send_held(struct sbx_evidence *e)
{
	char (*hashes)[65] = calloc(e->log.n_held, sizeof(*hashes));

	if (!hashes)
		e->log.held_lost = true;
	for (size_t i = 0; hashes && i < e->log.n_held; i++) {
		json_int_t seq = json_integer_value(json_object_get(e->log.held[i], "seq"));

		if (sbx_journal_recent_hash(e->b->journal, (uint64_t)seq, hashes[i]) < 0)
			hashes[i][0] = '\0';
	}
	if (!e->log.held_lost)
		sbx_syslog_sink_op(e->log.sink, SBX_SYSLOG_PRI_RECORD, e->log.held, e->log.n_held,
				   (const char (*)[65])hashes);
	free(hashes);
	e->log.held_lost = false;
	for (size_t i = 0; i < e->log.n_held; i++)
		json_decref(e->log.held[i]);
	e->log.n_held = 0;
}

static void hold(struct sbx_evidence *e, const json_t *rec)
{
	if (e->log.n_held == e->log.cap_held) {
		size_t cap = e->log.cap_held ? 2 * e->log.cap_held : 8;
		json_t **v = realloc(e->log.held, cap * sizeof(*v));

		if (!v) {
			/* Out of memory: the operation's lines are not sent
			 * (the journal has them; the count of dropped lines
			 * does not see them either). */
			e->log.held_lost = true;
			return;
		}
		e->log.held = v;
		e->log.cap_held = cap;
	}
	e->log.held[e->log.n_held++] = json_incref((json_t *)rec);
}

void sbx_evidence_op_begin(struct sbx_broker *b)
{
	if (b->evidence)
		b->evidence->log.op_depth++;
}

void sbx_evidence_op_end(struct sbx_broker *b)
{
	struct sbx_evidence *e = b->evidence;

	if (!e || !e->log.op_depth)
		return;
	if (--e->log.op_depth != 0)
		return;
	if (e->log.n_held)
		send_held(e);
	e->log.held_lost = false;
}

void sbx_evidence_on_record(struct sbx_broker *b, const json_t *rec)
{
	struct sbx_evidence *e = b->evidence;
	const char *event = json_string_value(json_object_get(rec, "event"));

	if (!e)
		return;
	if (e->log.records && e->log.op_depth)
		hold(e, rec);
	else if (e->log.records)
		to_syslog(e, SBX_SYSLOG_PRI_RECORD, rec);
	if (event && strcmp(event, SBX_CHECKPOINT_DELIVERED_EVENT) == 0)
		cp_remove(e, u64_of(rec, "seal_seq"));
}

/* ---- the collector ---------------------------------------------------------------------- */

static void kick(struct sbx_evidence *e);

static void record_delivered(struct sbx_evidence *e, struct cp *c, long status)
{
	uint64_t seq = c->seq, rseq;
	json_t *f = json_pack("{s:I, s:I, s:s, s:I, s:I}", "seal_seq", (json_int_t)c->seq, "epoch",
			      (json_int_t)c->epoch, "seal_hash", c->hash, "attempts",
			      (json_int_t)c->attempts, "status", (json_int_t)status);

	/* The record takes the entry out (on_record); if the journal refuses
	 * it, take it out here so this run does not send it again. */
	if (!f || sbx_broker_record(e->b, SBX_CHECKPOINT_DELIVERED_EVENT, SBX_SYSTEM_ACTOR, f,
				    &rseq) < 0)
		cp_remove(e, seq);
}

static void on_sent(void *arg, const struct slack_result *res)
{
	struct cp *c = arg;
	struct sbx_evidence *e = c->e;
	char clean[300];
	int64_t delay;

	c->in_flight = false;
	c->attempts++;
	if (res->status >= 200 && res->status < 300) {
		if (c->attempts > 1)
			sbx_info("audit: the seal at seq %" PRIu64 " reached the checkpoint collector "
				 "(attempt %u)", c->seq, c->attempts);
		record_delivered(e, c, res->status);
		return;
	}
	sbx_sanitize(res->error, clean, sizeof(clean));
	if (res->status == 429 && res->retry_after > 0)
		delay = (res->retry_after < 3600 ? res->retry_after : 3600) * 1000;
	else
		delay = slack_backoff_ms(c->attempts);
	if ((c->attempts & (c->attempts - 1)) == 0)
		sbx_warn("audit: sending the seal at seq %" PRIu64 " to the checkpoint collector "
			 "failed (attempt %u): %s; retrying in %llds", c->seq, c->attempts, clean,
			 (long long)(delay / 1000));
	c->next_try_ms = sbx_mono_ms() + delay;
}

/* The collector's contract (docs/audit.md). */
static char *body_of(const struct sbx_evidence *e, const struct cp *c)
{
	json_t *o = json_pack("{s:s, s:I, s:s, s:I, s:s, s:s}", "host",
			      e->b->policy->broker.host, "seq", (json_int_t)c->seq, "hash",
			      c->hash, "epoch", (json_int_t)c->epoch, "key_id", c->key_id, "time",
			      c->time);
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	return text;
}

static void send_cp(struct sbx_evidence *e, struct cp *c)
{
	char *body = body_of(e, c);

	if (!body || slack_out_post(e->out, e->url, body, e->timeout, on_sent, c) < 0) {
		c->attempts++;
		c->next_try_ms = sbx_mono_ms() + slack_backoff_ms(c->attempts);
	} else {
		c->in_flight = true;
	}
	free(body);
}

/* Oldest first; a seal is sent only once durable (it always is by the
 * time it is here, but the rule is the outbox's). */
static void kick(struct sbx_evidence *e)
{
	uint64_t durable;
	int64_t now;

	if (!e->running)
		return;
	durable = sbx_journal_durable_seq(e->b->journal);
	now = sbx_mono_ms();
	for (struct cp *c = e->head; c; c = c->next) {
		if (slack_out_active(e->out) >= MAX_IN_FLIGHT)
			break;
		if (c->in_flight || c->seq > durable || c->next_try_ms > now)
			continue;
		send_cp(e, c);
	}
	/* A new transfer asks to be started at once. */
	if (slack_out_deadline(e->out) <= sbx_mono_ms())
		slack_out_timeout(e->out);
}

static void drive(struct sbx_evidence *e)
{
	if (slack_out_deadline(e->out) <= sbx_mono_ms())
		slack_out_timeout(e->out);
	slack_out_process(e->out);
	kick(e);
}

void sbx_evidence_on_seal(struct sbx_broker *b, const struct sbx_evidence_seal *seal)
{
	struct sbx_evidence *e = b->evidence;
	char hash[65];
	json_t *line;

	if (!e)
		return;
	sbx_journal_last_hash(b->journal, hash);
	line = json_pack("{s:I, s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:s, s:I}", "seq",
			 (json_int_t)seal->seq, "hash", hash, "event", SBX_SEAL_EVENT, "actor",
			 SBX_SYSTEM_ACTOR, "epoch", (json_int_t)seal->epoch, "key_id",
			 seal->key_id, "first_seq", (json_int_t)seal->first_seq, "last_seq",
			 (json_int_t)(seal->seq - 1), "why", seal->why, "syslog_dropped",
			 (json_int_t)sbx_syslog_sink_dropped(e->log.sink));
	if (line)
		to_syslog(e, SBX_SYSLOG_PRI_SEAL, line);
	json_decref(line);
	flush_syslog(e);
	cp_add(e, seal->seq, seal->epoch, hash, seal->key_id, seal->time);
	kick(e);
}

int sbx_evidence_fd(const struct sbx_broker *b)
{
	return b->evidence && b->evidence->running ? b->evidence->ep : -1;
}

void sbx_evidence_on_ready(struct sbx_broker *b)
{
	struct sbx_evidence *e = b->evidence;
	struct epoll_event evs[16];
	int n;

	if (!e || !e->running)
		return;
	n = epoll_wait(e->ep, evs, 16, 0);
	for (int i = 0; i < n; i++)
		if ((unsigned)(evs[i].data.u64 >> 32) == SLACK_TAG_CURL)
			slack_out_socket(e->out, (int)(uint32_t)evs[i].data.u64, evs[i].events);
	drive(e);
}

void sbx_evidence_tick(struct sbx_broker *b)
{
	if (!b->evidence)
		return;
	flush_syslog(b->evidence);
	if (b->evidence->running)
		drive(b->evidence);
}

/* ---- set-up ------------------------------------------------------------------------------ */

int sbx_evidence_new(struct sbx_broker *b)
{
	return sbx_evidence_new_at(b, SBX_SYSLOG_PATH);
}

int sbx_evidence_new_at(struct sbx_broker *b, const char *syslog_path)
{
	struct sbx_evidence *e = calloc(1, sizeof(*e));

	if (!e)
		return -ENOMEM;
	e->b = b;
	e->ep = -1;
	e->log.sink = sbx_syslog_sink_new(syslog_path);
	e->log.records = b->settings.audit.syslog;
	if (!e->log.sink)
		sbx_warn("audit: cannot make a socket for syslog (%s): records and seals are not "
			 "sent there by this run", strerror(errno));
	b->evidence = e;
	return 0;
}

static int ca_readable(const char *path, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return sbx_whyf(why, whylen, -1, "cannot read audit.checkpoint_ca_file %s: %s", path,
				strerror(errno));
	close(fd);
	return 0;
}

static int start(struct sbx_evidence *e, char *why, size_t whylen)
{
	const struct sbx_audit_conf *c = &e->b->settings.audit;
	char err[256];

	snprintf(e->url, sizeof(e->url), "%s", c->checkpoint_url);
	snprintf(e->ca_file, sizeof(e->ca_file), "%s", c->checkpoint_ca_file);
	e->timeout = c->checkpoint_timeout > 0 ? c->checkpoint_timeout : 10;
	if (slack_url_ok(e->url, err, sizeof(err)) < 0)
		return sbx_whyf(why, whylen, -1, "audit.checkpoint_url %s", err);
	if (e->ca_file[0] && ca_readable(e->ca_file, why, whylen) < 0)
		return -1;
	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return sbx_whyf(why, whylen, -1, "cannot initialize libcurl");
		curl_ready = true;
	}
	e->ep = epoll_create1(EPOLL_CLOEXEC);
	if (e->ep < 0)
		return sbx_whyf(why, whylen, -1, "epoll: %s", strerror(errno));
	e->out = slack_out_new(e->ep, why, whylen);
	if (!e->out)
		return -1;
	if (e->ca_file[0] && slack_out_set_ca(e->out, e->ca_file) < 0)
		return sbx_whyf(why, whylen, -1, "out of memory");
	e->running = true;
	return 0;
}

int sbx_evidence_start(struct sbx_broker *b)
{
	struct sbx_evidence *e = b->evidence;
	char why[512];

	if (!e || !b->settings.audit.checkpoint_url[0])
		return 0;
	if (start(e, why, sizeof(why)) < 0) {
		sbx_err("audit: %s", why);
		return -1;
	}
	sbx_info("audit: seals go to the checkpoint collector (%zu waiting)", e->n);
	kick(e);
	return 0;
}

void sbx_evidence_on_reload(struct sbx_broker *b)
{
	struct sbx_evidence *e = b->evidence;
	const struct sbx_audit_conf *c = &b->settings.audit;

	if (!e)
		return;
	e->log.records = c->syslog;
	if (strcmp(e->url, c->checkpoint_url) != 0 || strcmp(e->ca_file, c->checkpoint_ca_file) != 0)
		sbx_warn("audit: a new audit.checkpoint_url or checkpoint_ca_file takes effect at "
			 "the next start");
}

void sbx_evidence_free(struct sbx_broker *b)
{
	struct sbx_evidence *e = b->evidence;

	if (!e)
		return;
	slack_out_free(e->out);
	if (e->ep >= 0)
		close(e->ep);
	cp_clear(e);
	if (e->log.n_held)
		send_held(e);
	flush_syslog(e);
	free(e->log.held);
	sbx_syslog_sink_free(e->log.sink);
	free(e);
	b->evidence = NULL;
}
