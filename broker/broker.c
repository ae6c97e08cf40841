/*
 * The broker core (broker.h): recording, the decisions every channel
 * shares, expiry, reloads, and the calls into each feature.  The features
 * are all built in, so the core calls their hooks by name; this file is
 * where to look for "what happens after a record" or "what runs every
 * pass".
 */
#include "config.h"

#include "broker.h"

#include "alerts.h"
#include "directory.h"
#include "drift.h"
#include "evidence.h"
#include "fleet.h"
#include "duration.h"
#include "grouptable.h"
#include "user_limits.h"
#include "log.h"
#include "reviews.h"
#include "sealing.h"
#include "sessions.h"
#include "sbxio.h"
#include "slack/slack.h"
#include "tail.h"
#include "api/api.h"
#include "api/token.h"
#include "text.h"
#include "commands.h"
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the features' hooks ------------------------------------------------------ */

/* After every record is journaled and applied (never during replay). */
static void features_on_record(struct sbx_broker *b, const json_t *rec)
{
	sbx_grouptable_on_record(b, rec);
	sbx_sessions_on_record(b, rec);
	sbx_commands_note(b, rec);
	sbx_slack_on_record(b, rec);
	sbx_alerts_on_record(b, rec);
	sbx_drift_on_record(b, rec);
	sbx_reviews_on_record(b, rec);
	sbx_tail_on_record(b, rec);
	sbx_api_on_record(b, rec);
	sbx_evidence_on_record(b, rec);
}

/* During the start-up replay, features rebuild their own tables. */
static void features_replay(struct sbx_broker *b, const json_t *rec)
{
	sbx_sessions_replay(b->sessions, rec);
	sbx_commands_note(b, rec);
	sbx_slack_replay(b->slack, rec);
	sbx_sealing_replay(b->sealing, rec);
	sbx_alerts_replay(b, rec);
	sbx_drift_replay(b->drift, rec);
	sbx_reviews_replay(b->reviews, rec);
	sbx_tail_on_record(b, rec);
	sbx_api_on_record(b, rec);
	sbx_evidence_replay(b->evidence, rec);
}

static void features_on_reload(struct sbx_broker *b)
{
	sbx_directory_on_reload(b);
	sbx_grouptable_on_reload(b);
	sbx_slack_on_reload(b);
	sbx_alerts_on_reload(b);
	sbx_drift_on_reload(b);
	sbx_evidence_on_reload(b);
}

void sbx_broker_timers(struct sbx_broker *b, int64_t now)
{
	(void)sbx_broker_expire(b, now);
	sbx_fleet_tick(b);
	sbx_directory_tick(b);
	sbx_sessions_tick(b, sbx_now_us());
	sbx_slack_tick(b);
	sbx_sealing_tick(b);
	sbx_drift_tick(b, now);
	sbx_reviews_tick(b, sbx_now_us());
	sbx_api_tick(b);
	sbx_evidence_tick(b);
	/* Last: the table is current before the commit that releases the
	 * replies acknowledging this pass's changes. */
	sbx_grouptable_tick(b);
}

/* ---- recording ----------------------------------------------------------------- */

static void end_extensions(struct sbx_broker *b, const json_t *rec);
static json_t *req_fields(const struct sbx_req *r, const char *through);

void sbx_rec_str(json_t *fields, const char *key, const char *text)
{
	char clean[SBX_TEXT_MAX * 4 + 1];
	json_t *v;

	if (!text)
		return;
	v = json_string(text);
	if (!v)
		v = json_string(sbx_sanitize(text, clean, sizeof(clean)));
	if (!v || json_object_set_new(fields, key, v) < 0)
		sbx_err("out of memory: a record lacks its %s", key);
}

/* In a fleet a record of the fleet's goes to its log, inside a change's
 * trial (fleet.h); it reaches the journal and the features once the log
 * has it. */
static int propose(struct sbx_broker *b, const char *event, const char *actor,
		   const json_t *fields, uint64_t *seq)
{
	json_t *rec = NULL;
	int ret = sbx_fleet_propose(b, event, actor, fields, &rec);

	if (ret < 0)
		return ret;
	*seq = 0;
	end_extensions(b, rec);
	json_decref(rec);
	return 0;
}

void sbx_broker_op_begin(struct sbx_broker *b)
{
	if (b->journal)
		sbx_journal_op_begin(b->journal);
	sbx_evidence_op_begin(b);
}

void sbx_broker_op_end(struct sbx_broker *b)
{
	if (b->journal)
		sbx_journal_op_end(b->journal);
	sbx_evidence_op_end(b);
}

int sbx_broker_record(struct sbx_broker *b, const char *event, const char *actor,
		      json_t *fields, uint64_t *seq)
{
	json_t *rec = NULL;
	char err[256];
	int ret = -EROFS;

	if (b->degraded[0])
		goto out;
	if (b->record_extra) {
		/* The channel's own words (via, token) never replace the
		 * record's. */
		if (!fields)
			fields = json_object();
		if (fields)
			(void)json_object_update_missing(fields, b->record_extra);
	}
	if (b->fleet && sbx_fleet_event(event)) {
		ret = propose(b, event, actor, fields, seq);
		goto out;
	}
	if (b->fleet) {
		/* A host record names the fleet state it was decided in. */
		if (!fields)
			fields = json_object();
		json_object_set_new(fields, "fleet_seq", json_integer((json_int_t)b->fleet_seq));
	}
	/* What the record sets off (an extension ended with its grant, a
	 * notice queued) is one operation with it. */
	sbx_broker_op_begin(b);
	if (sbx_journal_append(b->journal, event, actor, fields, seq, &rec) < 0) {
		sbx_broker_op_end(b);
		sbx_broker_degrade(b);
		goto out;
	}
	if (sbx_state_apply(b->state, rec, err, sizeof(err)) < 0) {
		/* The journal now holds a record memory refused: a bug, and the
		 * next start-up would stop on it.  Stop changing anything. */
		sbx_broker_op_end(b);
		sbx_err("internal error applying %s: %s", event, err);
		snprintf(b->degraded, sizeof(b->degraded), "internal error applying %s: %s",
			 event, err);
		goto out;
	}
	features_on_record(b, rec);
	end_extensions(b, rec);
	sbx_broker_op_end(b);
	ret = 0;
out:
	json_decref(rec);
	json_decref(fields);
	return ret;
}

/* A grant that ends takes the pending requests to extend it with it: an
 * approval must never bring a revoked grant back. */
static void end_extensions(struct sbx_broker *b, const json_t *rec)
{
	const char *event = json_string_value(json_object_get(rec, "event"));
	const char *user = json_string_value(json_object_get(rec, "user"));
	json_int_t id = json_integer_value(json_object_get(rec, "id"));
	struct sbx_req *open[SBX_OPEN_MAX];
	char reason[96];
	size_t n;
	uint64_t seq;

	if (!event || !user || id <= 0 ||
	    (strcmp(event, "grant.expired") != 0 && strcmp(event, "grant.revoked") != 0))
		return;
	snprintf(reason, sizeof(reason), "grant %lld, which it extends, ended", (long long)id);
	n = sbx_state_user_open(b->state, user, open, SBX_OPEN_MAX);
	for (size_t i = 0; i < n; i++) {
		json_t *f;

		if (open[i]->state != SBX_REQ_PENDING || open[i]->extends != (uint32_t)id)
			continue;
		f = req_fields(open[i], NULL);
		sbx_rec_str(f, "reason", reason);
		(void)sbx_broker_record(b, "request.cancelled", SBX_SYSTEM_ACTOR, f, &seq);
	}
}

bool sbx_broker_can_change(const struct sbx_broker *b, char *why, size_t whylen)
{
	if (b->degraded[0]) {
		if (why)
			snprintf(why, whylen, "%s", b->degraded);
		return false;
	}
	return !b->fleet || sbx_fleet_writable(b, why, whylen);
}

const char *sbx_broker_unavailable(const struct sbx_broker *b, char *why, size_t whylen)
{
	char cause[600];

	if (!b->degraded[0] && b->fleet && !sbx_fleet_writable(b, cause, sizeof(cause))) {
		snprintf(why, whylen, "%s%s; requests, approvals and denials are refused until %s "
			 "(nothing is queued to happen later); logins and existing grants keep "
			 "working on %s", cause,
			 sbx_fleet_outcome_unknown(b) ? " (it went away while this change was being "
							"recorded: it may have been recorded, "
							"see sbx-request status once it is back)"
						      : "",
			 sbx_fleet_blocked(b) ? "an admin repairs the database and restarts the "
						"brokers"
					      : "it is back",
			 b->policy->broker.host);
		return why;
	}
	snprintf(why, whylen,
		 "the broker cannot record changes (%s); it refuses new requests and "
		 "approvals until an admin fixes this and restarts it; existing grants still work",
		 b->degraded[0] ? b->degraded : "the journal refused a record");
	return why;
}

const char *sbx_broker_forgotten(const struct sbx_broker *b, uint32_t id, char *why,
				 size_t whylen)
{
	snprintf(why, whylen, "request %u ended long ago: the broker keeps only the %u requests "
		 "that ended last in memory (broker.keep_ended); its records are in the journal "
		 "(an admin or auditor: sbxctl audit query --id %u)", id,
		 b->policy->broker.keep_ended, id);
	return why;
}

const char *sbx_broker_not_recorded(const struct sbx_broker *b, char *why, size_t whylen)
{
	snprintf(why, whylen, "not recorded: the broker could not write its journal (%s); "
		 "nothing was changed", b->degraded[0] ? b->degraded : "it failed");
	return why;
}

void sbx_broker_degrade(struct sbx_broker *b)
{
	char why[512], err[256];
	struct sbx_state *fresh;
	struct sbx_state *old = b->state;

	if (b->degraded[0])
		return;
	if (!sbx_journal_failed(b->journal, why, sizeof(why)))
		snprintf(why, sizeof(why), "the journal refused a record");
	snprintf(b->degraded, sizeof(b->degraded), "%s", why);
	sbx_err("journal failed: %s; refusing changes from now on, answering checks from what is on disk",
		why);
	sbx_alerts_on_failure(b, why);
	fresh = sbx_state_new();
	if (!fresh)
		return;
	sbx_state_keep_ended(fresh, b->policy->broker.keep_ended);
	b->state = fresh;
	if (sbx_journal_reload(b->journal, sbx_journal_durable_seq(b->journal),
			       sbx_broker_replay_snapshot, sbx_broker_replay_record, b,
			       err, sizeof(err)) < 0) {
		/* Keep the memory we had rather than none at all. */
		sbx_err("could not rebuild state from the journal: %s", err);
		b->state = old;
		sbx_state_free(fresh);
		return;
	}
	sbx_state_free(old);
}

/* Where the copy of the fleet's log stands, and whether the journal holds
 * changes made without one. */
static void note_origin(struct sbx_broker *b, const json_t *rec)
{
	json_t *fseq = json_object_get(rec, "fleet_seq");
	const char *fhash = json_string_value(json_object_get(rec, "fleet_hash"));
	const char *event = json_string_value(json_object_get(rec, "event"));

	if (fhash && json_is_integer(fseq) && strlen(fhash) == 64) {
		b->fleet_seq = (uint64_t)json_integer_value(fseq);
		memcpy(b->fleet_hash, fhash, sizeof(b->fleet_hash));
		return;
	}
	if (event && (strncmp(event, "request.", 8) == 0 || strncmp(event, "grant.", 6) == 0) &&
	    strcmp(event, "grant.revoked_here") != 0)
		b->local_changes++;
}

/* The fields of a fleet record as they go into the local journal: its
 * own, and where it stands in the fleet's log. */
static json_t *fleet_copy_fields(const json_t *rec, uint64_t fleet_seq, const char *fleet_hash)
{
	static const char *const own[] = { "seq", "time", "event", "actor", "prev", "hash" };
	json_t *f = json_object(), *v;
	const char *k;

	json_object_foreach((json_t *)rec, k, v) {
		bool skip = false;

		for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
			skip |= strcmp(k, own[i]) == 0;
		if (!skip)
			json_object_set(f, k, v);
	}
	json_object_set_new(f, "fleet_seq", json_integer((json_int_t)fleet_seq));
	json_object_set_new(f, "fleet_hash", json_string(fleet_hash));
	return f;
}

int sbx_broker_apply_fleet(struct sbx_broker *b, const json_t *rec, uint64_t fleet_seq,
			   const char *fleet_hash, char *why, size_t whylen)
{
	const char *event = json_string_value(json_object_get(rec, "event"));
	const char *actor = json_string_value(json_object_get(rec, "actor"));
	const char *time = json_string_value(json_object_get(rec, "time"));
	json_t *fields = NULL, *local = NULL;
	char err[256];
	int64_t time_us;
	uint64_t seq;
	int ret = -1;

	if (b->degraded[0]) {
		snprintf(why, whylen, "%s", b->degraded);
		goto out;
	}
	if (!event || !actor || !time || sbx_parse_rfc3339_us(time, &time_us) < 0) {
		snprintf(why, whylen, "fleet record seq %llu has no event, actor or time",
			 (unsigned long long)fleet_seq);
		goto out;
	}
	/* Memory first: a record this host's state refuses never reaches its
	 * journal, so its copy of the log stays one it can replay. */
	if (sbx_state_apply(b->state, rec, err, sizeof(err)) < 0) {
		snprintf(why, whylen, "fleet record seq %llu (%s) contradicts this host's state: %s",
			 (unsigned long long)fleet_seq, event, err);
		goto out;
	}
	fields = fleet_copy_fields(rec, fleet_seq, fleet_hash);
	if (sbx_journal_append_at(b->journal, time_us, event, actor, fields, &seq, &local) < 0) {
		sbx_broker_degrade(b);
		snprintf(why, whylen, "%s", b->degraded);
		goto out;
	}
	b->fleet_seq = fleet_seq;
	memcpy(b->fleet_hash, fleet_hash, sizeof(b->fleet_hash));
	features_on_record(b, local);
	ret = 0;
out:
	json_decref(fields);
	json_decref(local);
	return ret;
}

int sbx_broker_replay_record(const json_t *rec, void *ctx, char *err, size_t errlen)
{
	struct sbx_broker *b = ctx;

	if (sbx_state_apply(b->state, rec, err, errlen) < 0)
		return -1;
	note_origin(b, rec);
	/* After a journal failure memory is rebuilt for requests and grants
	 * only: features keep what they have. */
	if (b->replaying)
		features_replay(b, rec);
	return 0;
}

/* A snapshot given up halfway (the journal replays from seq 1 instead):
 * back to what open_journal started from. */
static int forget_snapshot(struct sbx_broker *b, char *err, size_t errlen)
{
	if (sbx_state_from_json(b->state, NULL, err, errlen) < 0)
		return -1;
	b->fleet_seq = 0;
	memcpy(b->fleet_hash, SBX_RECORD_GENESIS, sizeof(b->fleet_hash));
	b->local_changes = 0;
	if (!b->replaying)
		return 0;
	sbx_sessions_free(b->sessions);
	b->sessions = sbx_sessions_new();
	sbx_drift_free(b->drift);
	b->drift = sbx_drift_new();
	sbx_slack_free(b);
	sbx_alerts_free(b);
	sbx_reviews_free(b->reviews);
	b->reviews = sbx_reviews_new();
	if (b->tokens)
		sbx_tokens_clear(b->tokens);
	sbx_evidence_forget(b->evidence);
	if (!b->sessions || !b->drift || !b->reviews || sbx_slack_new(b) < 0 ||
	    sbx_alerts_new(b) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}

static void load_fleet_part(struct sbx_broker *b, const json_t *fleet)
{
	const char *fhash = json_string_value(json_object_get(fleet, "hash"));

	b->fleet_seq = (uint64_t)json_integer_value(json_object_get(fleet, "seq"));
	snprintf(b->fleet_hash, sizeof(b->fleet_hash), "%s",
		 fhash && strlen(fhash) == 64 ? fhash : SBX_RECORD_GENESIS);
	b->local_changes = (uint64_t)json_integer_value(json_object_get(fleet, "local_changes"));
}

/* Entries are the state's, or a feature's {"ext":NAME,"data":...}. */
int sbx_broker_replay_snapshot(const json_t *entry, void *ctx, char *err, size_t errlen)
{
	struct sbx_broker *b = ctx;
	const char *ext;
	json_t *data;

	if (!entry)
		return forget_snapshot(b, err, errlen);
	ext = json_string_value(json_object_get(entry, "ext"));
	if (!ext)
		return sbx_state_from_json(b->state, entry, err, errlen) < 0 ? -1 : 0;
	data = json_object_get(entry, "data");
	if (strcmp(ext, "fleet") == 0) {
		load_fleet_part(b, data);
		return 0;
	}
	if (strcmp(ext, "sessions") != 0 && strcmp(ext, "slack") != 0 &&
	    strcmp(ext, "alerts") != 0 && strcmp(ext, "drift") != 0 &&
	    strcmp(ext, "reviews") != 0 && strcmp(ext, "tokens") != 0 &&
	    strcmp(ext, "checkpoint") != 0) {
		/* Its records before the snapshot are never read: without
		 * its part the feature would miss them. */
		snprintf(err, errlen, "snapshot: unknown part \"%.40s\"", ext);
		return -1;
	}
	/* After a journal failure memory is rebuilt for requests and grants
	 * only: features keep what they have. */
	if (!b->replaying)
		return 0;
	if (strcmp(ext, "sessions") == 0 && sbx_sessions_load(b->sessions, data) < 0) {
		snprintf(err, errlen, "snapshot: sessions state does not load");
		return -1;
	}
	if (strcmp(ext, "alerts") == 0)
		return sbx_alerts_load(b->alerts, data);
	if (strcmp(ext, "reviews") == 0 && sbx_reviews_load(b->reviews, data) < 0) {
		snprintf(err, errlen, "snapshot: reviews state does not load");
		return -1;
	}
	if (strcmp(ext, "slack") == 0 && sbx_slack_load(b->slack, data) < 0) {
		snprintf(err, errlen, "snapshot: slack state does not load");
		return -1;
	}
	if (strcmp(ext, "drift") == 0 && sbx_drift_load(b->drift, data) < 0) {
		snprintf(err, errlen, "snapshot: drift state does not load");
		return -1;
	}
	if (strcmp(ext, "tokens") == 0 && sbx_tokens_load(b->tokens, data) < 0) {
		snprintf(err, errlen, "snapshot: tokens do not load");
		return -1;
	}
	if (strcmp(ext, "checkpoint") == 0 && sbx_evidence_load(b->evidence, data) < 0) {
		snprintf(err, errlen, "snapshot: checkpoint outbox does not load");
		return -1;
	}
	return 0;
}

static int put_entry(void *out, const json_t *entry)
{
	return sbx_snapshot_put(out, entry);
}

/* One feature's part (data stolen; NULL: the feature has none). */
static int put_part(struct sbx_snapshot_out *out, const char *name, json_t *data)
{
	json_t *e;
	int rc;

	if (!data)
		return 0;
	e = json_pack("{s:s, s:o}", "ext", name, "data", data);
	rc = e ? sbx_snapshot_put(out, e) : -1;
	json_decref(e);
	return rc;
}

/* Runs in the snapshot's child process (journal.h): it reads the
 * loop's tables, as they were at fork, and nothing else. */
int sbx_broker_snapshot_state(struct sbx_snapshot_out *out, void *ctx)
{
	struct sbx_broker *b = ctx;

	if (sbx_state_snapshot(b->state, put_entry, out) < 0 ||
	    put_part(out, "sessions", sbx_sessions_save(b->sessions)) < 0 ||
	    put_part(out, "slack", sbx_slack_save(b->slack)) < 0 ||
	    put_part(out, "alerts", sbx_alerts_save(b->alerts)) < 0 ||
	    put_part(out, "drift", sbx_drift_save(b->drift)) < 0 ||
	    put_part(out, "reviews", sbx_reviews_save(b->reviews)) < 0 ||
	    put_part(out, "tokens", b->tokens ? sbx_tokens_save(b->tokens) : NULL) < 0 ||
	    put_part(out, "checkpoint", sbx_evidence_save(b->evidence)) < 0 ||
	    put_part(out, "fleet",
		     json_pack("{s:I, s:s, s:I}", "seq", (json_int_t)b->fleet_seq, "hash",
			       b->fleet_hash[0] ? b->fleet_hash : SBX_RECORD_GENESIS,
			       "local_changes", (json_int_t)b->local_changes)) < 0)
		return -1;
	return 0;
}

static json_t *time_json(int64_t secs)
{
	char buf[SBX_RFC3339_LEN];

	sbx_format_rfc3339(secs, buf);
	return json_string(buf);
}

/* The fields every record about request r starts with. */
static json_t *req_fields(const struct sbx_req *r, const char *through)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_integer(r->id));
	sbx_rec_str(o, "user", r->user);
	sbx_rec_str(o, "role", r->role);
	if (through)
		sbx_rec_str(o, "through", through);
	return o;
}

/* Merge extra (stolen, may be NULL) into fields, never over what is there. */
static void add_extra(json_t *f, json_t *extra)
{
	const char *k;
	json_t *v;

	json_object_foreach(extra, k, v)
		if (!json_object_get(f, k))
			json_object_set(f, k, v);
	json_decref(extra);
}

/* ---- decisions ------------------------------------------------------------------- */

bool sbx_broker_may_decide(const struct sbx_broker *b, const struct sbx_req *r,
			   const char *person, char *why, size_t whylen)
{
	const struct sbx_role *role = sbx_policy_role(b->policy, r->role);

	if (!role) {
		snprintf(why, whylen, "role %s is no longer in the policy", r->role);
		return false;
	}
	return sbx_policy_may_approve(b->policy, role, r->user, person, why, whylen);
}

bool sbx_broker_may_see(const struct sbx_broker *b, const struct sbx_req *r, const char *person,
			bool admin)
{
	char why[256];

	return admin || strcmp(r->user, person) == 0 ||
	       sbx_broker_may_decide(b, r, person, why, sizeof(why));
}

/* Make r a live grant: its clock starts now.  An extension runs on from
 * the end of the grant it extends, so asking early never loses time. */
static int activate(struct sbx_broker *b, const struct sbx_req *r, int64_t now, uint64_t *seq)
{
	const struct sbx_role *role = sbx_policy_role(b->policy, r->role);
	const struct sbx_req *parent = r->extends ? sbx_state_get(b->state, r->extends) : NULL;
	int64_t start = now;
	json_t *f = req_fields(r, NULL);

	if (parent && sbx_req_live(parent, now) && parent->expires_at > now)
		start = parent->expires_at;
	json_object_set_new(f, "activated_at", time_json(now));
	json_object_set_new(f, "expires_at", time_json(start + r->duration));
	json_object_set_new(f, "duration", json_integer(r->duration));
	if (role && role->unix_group) {
		sbx_rec_str(f, "unix_group", role->unix_group);
		json_object_set_new(f, "gid", json_integer(role->gid));
	}
	return sbx_broker_record(b, "grant.activated", SBX_SYSTEM_ACTOR, f, seq);
}

/* ---- filing a request ------------------------------------------------------------ */

/* An open request of user for role that a new one would duplicate (a
 * pending one; or, unless it extends, a live grant), or NULL. */
static const struct sbx_req *duplicate_of(struct sbx_broker *b, const char *user,
					  const char *role, uint32_t extends, int64_t now)
{
	struct sbx_req *open[SBX_OPEN_MAX];
	size_t n = sbx_state_user_open(b->state, user, open, SBX_OPEN_MAX);

	for (size_t i = 0; i < n; i++) {
		if (strcmp(open[i]->role, role) != 0)
			continue;
		if (open[i]->state == SBX_REQ_PENDING)
			return open[i];
		if (!extends && sbx_req_live(open[i], now))
			return open[i];
	}
	return NULL;
}

/* The role an extension of grant q->extends is for, checked: the
 * person's own live grant.  0, or -SBX_ST_* with why. */
static int extension_role(struct sbx_broker *b, const struct sbx_request *q, int64_t now,
			  const char **role, char *why, size_t whylen)
{
	const struct sbx_req *parent = sbx_state_get(b->state, q->extends);

	if (!parent) {
		snprintf(why, whylen, "no grant %u to extend", q->extends);
		return -SBX_ST_NOTFOUND;
	}
	if (strcmp(parent->user, q->person) != 0) {
		snprintf(why, whylen, "grant %u belongs to %s, not %s", parent->id, parent->user,
			 q->person);
		return -SBX_ST_REFUSED;
	}
	if (!sbx_req_live(parent, now)) {
		snprintf(why, whylen,
			 "grant %u is %s: only an active grant can be extended; ask anew with "
			 "sbx-request %s", parent->id,
			 parent->state == SBX_REQ_ACTIVE ? "expired" : sbx_req_state_name(parent->state),
			 parent->role);
		return -SBX_ST_REFUSED;
	}
	if (q->role && q->role[0] && strcmp(q->role, parent->role) != 0) {
		snprintf(why, whylen, "grant %u is for %s, not %s", parent->id, parent->role,
			 q->role);
		return -SBX_ST_BADINPUT;
	}
	*role = parent->role;
	return 0;
}

/* Why q may not be filed against the state (the policy said yes), as
 * -SBX_ST_*; 0 when it may. */
static int request_conflicts(struct sbx_broker *b, const struct sbx_request *q,
			     const struct sbx_role *role, int64_t now, char *why, size_t whylen)
{
	const struct sbx_req *dup = duplicate_of(b, q->person, role->name, q->extends, now);
	struct sbx_req *open[SBX_OPEN_MAX];
	char dur[32], until[SBX_RFC3339_LEN];

	if (dup && dup->state == SBX_REQ_PENDING) {
		snprintf(why, whylen, "%s already has pending request %u for %s (sbx-request "
			 "cancel %u to replace it)", q->person, dup->id, role->name, dup->id);
		return -SBX_ST_REFUSED;
	}
	if (dup) {
		sbx_format_rfc3339(dup->expires_at, until);
		sbx_duration_format(role->default_duration, dur, sizeof(dur));
		snprintf(why, whylen, "%s already holds grant %u for %s until %s; to extend it: "
			 "sbx-request extend %u --for %s --reason \"...\"", q->person, dup->id,
			 role->name, until, dup->id, dur);
		return -SBX_ST_REFUSED;
	}
	/* The check path scans a user's open requests, so their number is
	 * bounded. */
	if (sbx_state_user_open(b->state, q->person, open, SBX_OPEN_MAX) >= SBX_OPEN_MAX / 2) {
		snprintf(why, whylen, "%s has too many open requests and grants (at most %d)",
			 q->person, SBX_OPEN_MAX / 2);
		return -SBX_ST_REFUSED;
	}
	return 0;
}

/* Which role, checked against the policy; *duration in: asked (0: the
 * role's default), out: granted.  0, or -SBX_ST_* with why. */
static int request_role(struct sbx_broker *b, const struct sbx_request *q, const char *name,
			int64_t *duration, const struct sbx_role **out, char *why, size_t whylen)
{
	const struct sbx_role *role;
	const char *unknown;

	if (!name || !name[0]) {
		snprintf(why, whylen, "which role? (see: sbx-request roles)");
		return -SBX_ST_BADINPUT;
	}
	role = sbx_policy_role(b->policy, name);
	if (!role) {
		snprintf(why, whylen, "unknown role '%s' (see: sbx-request roles)", name);
		return -SBX_ST_NOTFOUND;
	}
	if (*duration < 0) {
		snprintf(why, whylen, "the duration must be positive");
		return -SBX_ST_BADINPUT;
	}
	if (!sbx_policy_user(b->policy, q->person) &&
	    (unknown = sbx_directory_unknown_user(b, q->person))) {
		/* e.g. the directory is down: say that, not "not in the policy" */
		snprintf(why, whylen, "%s", unknown);
		return -SBX_ST_REFUSED;
	}
	if (sbx_policy_check_request(b->policy, role, q->person, duration,
				     q->reason && q->reason[0] ? q->reason : NULL,
				     q->ticket && q->ticket[0] ? q->ticket : NULL, why, whylen) < 0)
		return -SBX_ST_REFUSED;
	if (sbx_reviews_check_request(b, role->name, q->person, why, whylen) < 0)
		return -SBX_ST_REFUSED;
	*out = role;
	return 0;
}

int sbx_broker_request(struct sbx_broker *b, const struct sbx_request *q, uint32_t *id,
		       uint64_t *wait_seq, char *why, size_t whylen)
{
	const char *name = q->role;
	const struct sbx_role *role = NULL;
	int64_t now = sbx_now(), duration = q->duration;
	json_t *f;
	int ret;

	if (!sbx_broker_can_change(b, NULL, 0)) {
		sbx_broker_unavailable(b, why, whylen);
		return -SBX_ST_UNAVAILABLE;
	}
	if (q->extends && (ret = extension_role(b, q, now, &name, why, whylen)) < 0)
		return ret;
	ret = request_role(b, q, name, &duration, &role, why, whylen);
	if (ret < 0)
		return ret;
	ret = request_conflicts(b, q, role, now, why, whylen);
	if (ret < 0)
		return ret;
	*id = sbx_state_next_id(b->state);
	f = json_object();
	json_object_set_new(f, "id", json_integer(*id));
	sbx_rec_str(f, "user", q->person);
	sbx_rec_str(f, "role", role->name);
	json_object_set_new(f, "duration", json_integer(duration));
	if (q->reason && q->reason[0])
		sbx_rec_str(f, "reason", q->reason);
	if (q->ticket && q->ticket[0])
		sbx_rec_str(f, "ticket", q->ticket);
	if (q->extends)
		json_object_set_new(f, "extends", json_integer(q->extends));
	json_object_set_new(f, "approvals_needed",
			    json_integer(role->auto_approve ? 0 : role->approvals));
	json_object_set_new(f, "lapses_at", time_json(now + b->policy->broker.request_ttl));
	if (q->through)
		sbx_rec_str(f, "through", q->through);
	sbx_broker_op_begin(b);
	ret = sbx_broker_record(b, "request.created", q->person, f, wait_seq);
	if (ret == 0 && role->auto_approve)
		ret = activate(b, sbx_state_get(b->state, *id), now, wait_seq);
	sbx_broker_op_end(b);
	if (ret < 0) {
		sbx_broker_unavailable(b, why, whylen);
		return -SBX_ST_UNAVAILABLE;
	}
	snprintf(why, whylen, "%s", sbx_state_get(b->state, *id)->state == SBX_REQ_ACTIVE
					    ? "granted" : "pending approval");
	return 0;
}

/* ---- approving and ending ------------------------------------------------------------- */

/* The request a decision is about, when the broker can record one.  0, or
 * -SBX_ST_* with why. */
static int decided_request(struct sbx_broker *b, uint32_t id, struct sbx_req **r, char *why,
			   size_t whylen)
{
	if (b->degraded[0]) {
		sbx_broker_unavailable(b, why, whylen);
		return -SBX_ST_UNAVAILABLE;
	}
	*r = id ? sbx_state_get(b->state, id) : NULL;
	if (!*r && sbx_state_forgotten(b->state, id)) {
		sbx_broker_forgotten(b, id, why, whylen);
		return -SBX_ST_REFUSED;
	}
	if (!*r) {
		snprintf(why, whylen, "no request %u", id);
		return -SBX_ST_NOTFOUND;
	}
	return 0;
}

static bool already_approved(const struct sbx_req *r, const char *person)
{
	for (size_t i = 0; i < r->n_approvals; i++)
		if (strcmp(r->approvals[i].who, person) == 0)
			return true;
	return false;
}

/* Why person may not approve r now, as -SBX_ST_*; 0 when they may.
 * ground gets what their right rests on. */
static int approval_refused(struct sbx_broker *b, const struct sbx_req *r, const char *person,
			    int64_t duration, char *ground, size_t groundlen, char *why,
			    size_t whylen)
{
	const struct sbx_req *parent;
	char asked[32], filed[32];

	if (r->state != SBX_REQ_PENDING) {
		snprintf(why, whylen, "request %u is %s, not pending", r->id,
			 sbx_req_state_name(r->state));
		return -SBX_ST_REFUSED;
	}
	parent = r->extends ? sbx_state_get(b->state, r->extends) : NULL;
	if (r->extends && (!parent || !sbx_req_live(parent, sbx_now()))) {
		snprintf(why, whylen, "request %u extends grant %u, which has ended: ask anew", r->id,
			 r->extends);
		return -SBX_ST_REFUSED;
	}
	if (!sbx_broker_may_decide(b, r, person, ground, groundlen)) {
		snprintf(why, whylen, "%s", ground);
		return -SBX_ST_REFUSED;
	}
	/* A role suspended for a missed review grants nothing new, and a
	 * requester whose eligibility a review took away gets nothing. */
	if (sbx_reviews_check_request(b, r->role, r->user, why, whylen) < 0)
		return -SBX_ST_REFUSED;
	if (already_approved(r, person)) {
		snprintf(why, whylen,
			 "%s already approved request %u; it needs %u approval%s from different "
			 "people", person, r->id, r->approvals_needed,
			 r->approvals_needed == 1 ? "" : "s");
		return -SBX_ST_REFUSED;
	}
	if (duration && (duration < 0 || duration > r->duration)) {
		sbx_duration_format(duration, asked, sizeof(asked));
		sbx_duration_format(r->duration, filed, sizeof(filed));
		snprintf(why, whylen,
			 "an approver may shorten a request, never lengthen it (asked %s, request "
			 "is for %s)", asked, filed);
		return -SBX_ST_BADINPUT;
	}
	return 0;
}

int sbx_broker_approve(struct sbx_broker *b, uint32_t id, const char *person,
		       const char *through, const char *comment, int64_t duration, json_t *extra,
		       uint64_t *wait_seq, char *why, size_t whylen)
{
	char ground[512];
	struct sbx_req *r = NULL;
	json_t *f = NULL;
	int ret = decided_request(b, id, &r, why, whylen);

	if (ret < 0)
		goto out;
	ret = approval_refused(b, r, person, duration, ground, sizeof(ground), why, whylen);
	if (ret < 0)
		goto out;
	f = req_fields(r, through);
	sbx_rec_str(f, "ground", ground);
	if (comment && comment[0])
		sbx_rec_str(f, "comment", comment);
	if (duration && duration < r->duration)
		json_object_set_new(f, "duration", json_integer(duration));
	json_object_set_new(f, "approvals", json_integer((json_int_t)r->n_approvals + 1));
	json_object_set_new(f, "approvals_needed", json_integer(r->approvals_needed));
	add_extra(f, extra);
	extra = NULL;
	sbx_broker_op_begin(b);
	ret = sbx_broker_record(b, "request.approval", person, f, wait_seq);
	f = NULL;
	if (ret == 0 && r->n_approvals >= r->approvals_needed)
		ret = activate(b, r, sbx_now(), wait_seq);
	sbx_broker_op_end(b);
	if (ret < 0) {
		sbx_broker_unavailable(b, why, whylen);
		ret = -SBX_ST_UNAVAILABLE;
		goto out;
	}
	snprintf(why, whylen, "%s", r->state == SBX_REQ_ACTIVE ? "approved: the grant is active"
							       : "approval recorded");
out:
	json_decref(extra);
	json_decref(f);
	return ret;
}

/* Why person may not end r now (deny a request, revoke a grant), as
 * -SBX_ST_*; 0 when they may. */
static int end_refused(struct sbx_broker *b, const struct sbx_req *r, bool deny,
		       const char *person, bool admin, char *why, size_t whylen)
{
	char ground[512];

	/* A person ends their own with cancel or drop; say so, rather than
	 * the approvers' rule that forbids deciding one's own. */
	if (!admin && strcmp(r->user, person) == 0) {
		snprintf(why, whylen, deny ? "you cannot deny your own request %u; cancel it with: "
					     "sbx-request cancel %u"
					   : "you cannot revoke your own grant %u; give it back with: "
					     "sbx-request drop %u", r->id, r->id);
		return -SBX_ST_REFUSED;
	}
	if (deny && r->state != SBX_REQ_PENDING) {
		snprintf(why, whylen, "request %u is %s, not pending", r->id,
			 sbx_req_state_name(r->state));
		return -SBX_ST_REFUSED;
	}
	if (!deny && !sbx_req_live(r, sbx_now())) {
		snprintf(why, whylen, "request %u is %s, not an active grant", r->id,
			 r->state == SBX_REQ_ACTIVE ? "expired" : sbx_req_state_name(r->state));
		return -SBX_ST_REFUSED;
	}
	/* Admins may end anything; approvers may end what they could grant. */
	if (!admin && !sbx_broker_may_decide(b, r, person, ground, sizeof(ground))) {
		snprintf(why, whylen, "%s", ground);
		return -SBX_ST_REFUSED;
	}
	return 0;
}

/* A revocation cannot wait for the fleet's log: while it is away, the
 * grant ends on this host at once (grant.revoked_here, a host record) and
 * the fleet's grant.revoked follows when the log is back (fleet.c). */
static int revoke_here(struct sbx_broker *b, const struct sbx_req *r, const char *person,
		       json_t *f, uint64_t *wait_seq, char *why, size_t whylen)
{
	char cause[600];
	uint32_t id = r->id;

	(void)sbx_fleet_writable(b, cause, sizeof(cause));
	sbx_rec_str(f, "because", cause);
	if (sbx_broker_record(b, "grant.revoked_here", person, f, wait_seq) < 0) {
		sbx_broker_unavailable(b, why, whylen);
		return -SBX_ST_UNAVAILABLE;
	}
	sbx_fleet_note_revoked_here(b, id);
	sbx_warn("grant %u of %s revoked by %s on %s only: %s", id, r->user, person,
		 b->policy->broker.host, cause);
	snprintf(why, whylen, "revoked on %s only: %s; the other hosts learn of it when the "
		 "database is back (to cut it there now, revoke it on each of them too)",
		 b->policy->broker.host, cause);
	return 0;
}

int sbx_broker_end(struct sbx_broker *b, uint32_t id, bool deny, const char *person,
		   const char *through, bool admin, const char *reason, json_t *extra,
		   uint64_t *wait_seq, char *why, size_t whylen)
{
	struct sbx_req *r = NULL;
	json_t *f = NULL;
	int ret = decided_request(b, id, &r, why, whylen);

	if (ret < 0)
		goto out;
	ret = end_refused(b, r, deny, person, admin, why, whylen);
	if (ret < 0)
		goto out;
	if (!deny && (!reason || !reason[0]))
		reason = "revoked";
	f = req_fields(r, through);
	if (!deny && b->fleet && !sbx_fleet_writable(b, NULL, 0)) {
		if (reason && *reason)
			sbx_rec_str(f, "reason", reason);
		if (r->unix_group)
			sbx_rec_str(f, "unix_group", r->unix_group);
		add_extra(f, extra);
		extra = NULL;
		ret = revoke_here(b, r, person, f, wait_seq, why, whylen);
		f = NULL;
		goto out;
	}
	if (reason && *reason)
		sbx_rec_str(f, "reason", reason);
	if (r->unix_group)
		sbx_rec_str(f, "unix_group", r->unix_group);
	add_extra(f, extra);
	extra = NULL;
	ret = sbx_broker_record(b, deny ? "request.denied" : "grant.revoked", person, f, wait_seq);
	f = NULL;
	if (ret < 0) {
		sbx_broker_unavailable(b, why, whylen);
		ret = -SBX_ST_UNAVAILABLE;
		goto out;
	}
	snprintf(why, whylen, "%s", deny ? "denied" : "revoked");
out:
	json_decref(extra);
	json_decref(f);
	return ret;
}

/* ---- expiry ------------------------------------------------------------------------ */

size_t sbx_broker_expire(struct sbx_broker *b, int64_t now)
{
	/* In a fleet, ending is a change like any other (fleet.c queues it). */
	if (b->fleet)
		return 0;
	return sbx_broker_end_due(b, now, SIZE_MAX);
}

int64_t sbx_broker_next_deadline(const struct sbx_broker *b)
{
	if (b->degraded[0] || (b->fleet && sbx_fleet_hold_deadlines(b)))
		return INT64_MAX;
	return sbx_state_next_deadline(b->state);
}

size_t sbx_broker_end_due(struct sbx_broker *b, int64_t now, size_t max)
{
	struct sbx_req *due[256];
	size_t n, done = 0;
	uint64_t seq;

	if (b->degraded[0])
		return 0;
	do {
		size_t want = max - done < sizeof(due) / sizeof(due[0]) ? max - done
									: sizeof(due) / sizeof(due[0]);

		n = sbx_state_due(b->state, now, due, want);
		for (size_t i = 0; i < n; i++) {
			/* A fleet batch holds so many records; the rest next time. */
			if (sbx_fleet_room(b) < 40)
				return done;
			struct sbx_req *r = due[i];
			bool grant = r->state == SBX_REQ_ACTIVE;
			const char *event = grant ? "grant.expired" : "request.lapsed";
			json_t *f = req_fields(r, NULL);

			if (grant)
				json_object_set_new(f, "expires_at", time_json(r->expires_at));
			else
				json_object_set_new(f, "lapses_at", time_json(r->lapses_at));
			if (r->unix_group)
				sbx_rec_str(f, "unix_group", r->unix_group);
			if (sbx_broker_record(b, event, SBX_SYSTEM_ACTOR, f, &seq) < 0)
				return done;
			if (!b->fleet)
				sbx_info("%s: request %u (%s, %s)", event, r->id, r->user, r->role);
			done++;
		}
	} while (n == sizeof(due) / sizeof(due[0]) && done < max);
	return done;
}

size_t sbx_broker_push_revoked_here(struct sbx_broker *b, const uint32_t *ids, size_t n)
{
	size_t done = 0;
	uint64_t seq;

	for (size_t i = 0; i < n && sbx_fleet_room(b) > 0; i++) {
		const struct sbx_req *r = sbx_state_get(b->state, ids[i]);
		json_t *f;

		if (!r || !r->revoked_here || r->state != SBX_REQ_ACTIVE)
			continue;
		f = req_fields(r, NULL);
		if (r->end_reason)
			sbx_rec_str(f, "reason", r->end_reason);
		if (r->unix_group)
			sbx_rec_str(f, "unix_group", r->unix_group);
		json_object_set_new(f, "revoked_here_at", time_json(r->ended_at));
		if (sbx_broker_record(b, "grant.revoked", r->ended_by ? r->ended_by : SBX_SYSTEM_ACTOR,
				      f, &seq) < 0)
			break;
		done++;
	}
	return done;
}

/* ---- the policy ---------------------------------------------------------------------- */

/* fds the broker needs besides its connections: the journal, the
 * directory, Slack's endpoint and posts, the group table, snapshots. */
#define FD_MARGIN 128

static struct sbx_limits_conf limits_of(const struct sbx_policy *p)
{
	unsigned max = p->broker.max_connections;
	struct rlimit rl;

	/* More connections than fds would run the broker out of fds (EMFILE)
	 * before any limit here says no. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)max + FD_MARGIN > rl.rlim_cur) {
		max = rl.rlim_cur > 2 * FD_MARGIN ? (unsigned)(rl.rlim_cur - FD_MARGIN)
						  : (unsigned)(rl.rlim_cur / 2);
		sbx_warn("broker.max_connections %u is more than the open files limit (%llu) "
			 "allows: taking %u", p->broker.max_connections,
			 (unsigned long long)rl.rlim_cur, max);
	}

	return (struct sbx_limits_conf){
		.max_conns = (int)max,
		.max_conns_per_uid = (int)p->broker.max_connections_per_user,
		/* Enough for sshd's logins when every user holds their share. */
		.root_reserve = (int)(max / 64 > 16 ? max / 64 : 16),
		.changes_per_minute = (int)p->broker.max_changes_per_minute,
	};
}

json_t *sbx_broker_policy_fields(const struct sbx_broker *b)
{
	json_t *f = json_object();

	sbx_rec_str(f, "file", b->config_path);
	json_object_set_new(f, "sha256", json_string(b->policy->sha256_hex));
	sbx_rec_str(f, "host", b->policy->broker.host);
	json_object_set_new(f, "roles", json_integer((json_int_t)b->policy->n_roles));
	return f;
}

int sbx_broker_record_policy(struct sbx_broker *b, uint64_t *seq)
{
	/* In a fleet it goes to the log as a change of its own (fleet.c),
	 * whenever the log can take it. */
	if (b->fleet) {
		*seq = 0;
		sbx_fleet_policy_changed(b);
		return 0;
	}
	return sbx_broker_record(b, "policy.loaded", SBX_SYSTEM_ACTOR,
				 sbx_broker_policy_fields(b), seq);
}

static void record_rejected(struct sbx_broker *b, const struct sbx_policy_errors *errs)
{
	json_t *f = json_object(), *list = json_array();
	uint64_t seq;

	for (size_t i = 0; i < errs->n; i++) {
		char line[600];

		snprintf(line, sizeof(line), "%d:%d: %s", errs->v[i].line, errs->v[i].col,
			 errs->v[i].msg);
		json_array_append_new(list, json_string(line));
	}
	sbx_rec_str(f, "file", b->config_path);
	json_object_set_new(f, "errors", list);
	json_object_set_new(f, "kept_sha256", json_string(b->policy->sha256_hex));
	(void)sbx_broker_record(b, "policy.rejected", SBX_SYSTEM_ACTOR, f, &seq);
}

/* socket and state_dir cannot change under a running broker: the new
 * policy gets the running values.  Warn only when the file itself changed
 * them (they may differ from the file because of --socket/--state-dir). */
static void keep_setting(char **fresh, char *const *running, char **in_file, const char *what)
{
	if (*fresh && *in_file && strcmp(*fresh, *in_file) != 0) {
		sbx_warn("policy reload: broker.%s changes only at restart; keeping %s", what,
			 *running);
		free(*in_file);
		*in_file = strdup(*fresh);
	}
	free(*fresh);
	*fresh = *running ? strdup(*running) : NULL;
}

void sbx_broker_reload(struct sbx_broker *b)
{
	struct sbx_policy_errors errs = { 0 };
	struct sbx_policy *fresh = NULL;
	struct sbx_settings settings;
	struct sbx_limits_conf lc;
	uint64_t seq;

	if (sbx_policy_load_file(b->config_path, &fresh, &settings, &errs) < 0) {
		sbx_err("policy reload: %s has %zu error%s; keeping the policy in force (sha256 %.12s)",
			b->config_path, errs.n, errs.n == 1 ? "" : "s", b->policy->sha256_hex);
		for (size_t i = 0; i < errs.n; i++)
			sbx_err("%s:%d:%d: %s", b->config_path, errs.v[i].line, errs.v[i].col,
				errs.v[i].msg);
		record_rejected(b, &errs);
		goto out;
	}
	keep_setting(&fresh->broker.socket, &b->policy->broker.socket, &b->file_socket, "socket");
	keep_setting(&fresh->broker.state_dir, &b->policy->broker.state_dir, &b->file_state_dir,
		     "state_dir");
	if (b->host_override && sbx_policy_set_host(fresh, b->host_override) < 0) {
		sbx_err("policy reload: out of memory; keeping the policy in force");
		goto out;
	}
	if (memcmp(&settings.fleet, &b->settings.fleet, sizeof(settings.fleet)) != 0) {
		/* The fleet's threads and connections are made at start-up. */
		sbx_warn("policy reload: the fleet: section changes only at restart; keeping the "
			 "running one");
		settings.fleet = b->settings.fleet;
	}
	sbx_policy_free(b->policy);
	b->policy = fresh;
	b->settings = settings;
	fresh = NULL;
	lc = limits_of(b->policy);
	sbx_limits_set(b->limits, &lc);
	sbx_state_keep_ended(b->state, b->policy->broker.keep_ended);
	sbx_info("policy reloaded from %s (sha256 %.12s)", b->config_path, b->policy->sha256_hex);
	(void)sbx_broker_record_policy(b, &seq);
	features_on_reload(b);
out:
	sbx_policy_free(fresh);
	sbx_policy_errors_free(&errs);
}

/* ---- start and stop ------------------------------------------------------------------ */


static void record_startup(struct sbx_broker *b, const struct sbx_replay_info *info)
{
	json_t *f = json_object();
	uint64_t seq;

	sbx_rec_str(f, "version", PACKAGE_VERSION);
	json_object_set_new(f, "pid", json_integer(getpid()));
	sbx_rec_str(f, "host", b->policy->broker.host);
	json_object_set_new(f, "policy_sha256", json_string(b->policy->sha256_hex));
	json_object_set_new(f, "replayed", json_integer((json_int_t)info->records));
	if (info->used_snapshot)
		json_object_set_new(f, "snapshot_seq", json_integer((json_int_t)info->snapshot_seq));
	/* Where start-up's chain check began: 1, or the seal the snapshot names. */
	if (info->checked_from)
		json_object_set_new(f, "chain_from", json_integer((json_int_t)info->checked_from));
	(void)sbx_broker_record(b, "broker.started", SBX_SYSTEM_ACTOR, f, &seq);
	if (info->truncated) {
		f = json_object();
		sbx_rec_str(f, "file", info->truncated_file);
		json_object_set_new(f, "bytes_cut", json_integer((json_int_t)info->truncated_bytes));
		json_object_set_new(f, "last_good_seq", json_integer((json_int_t)info->last_seq));
		if (info->records_cut)
			json_object_set_new(f, "records_cut",
					    json_integer((json_int_t)info->records_cut));
		(void)sbx_broker_record(b, "journal.recovered", SBX_SYSTEM_ACTOR, f, &seq);
		if (info->records_cut)
			sbx_warn("journal: cut an unfinished operation (%llu complete records, "
				 "%llu bytes in all) from %s after seq %llu: its client was never "
				 "answered", (unsigned long long)info->records_cut,
				 (unsigned long long)info->truncated_bytes, info->truncated_file,
				 (unsigned long long)info->last_seq);
		else
			sbx_warn("journal: cut a torn record (%llu bytes) from %s after seq %llu",
				 (unsigned long long)info->truncated_bytes, info->truncated_file,
				 (unsigned long long)info->last_seq);
	}
	if (info->snapshot_note[0])
		sbx_warn("journal: snapshot not used: %s", info->snapshot_note);
	(void)sbx_broker_record_policy(b, &seq);
}

/* The journal, with the features that keep their tables in it already
 * there to rebuild them. */
static int open_journal(struct sbx_broker *b, char *why, size_t whylen)
{
	const char *dir = b->policy->broker.state_dir;
	struct sbx_journal_opts jo = { .state_dir = dir };
	struct sbx_replay_info info;
	char err[512];
	int rc;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(why, whylen, "cannot create state dir %s: %s", dir, strerror(errno));
		return -errno;
	}
	b->sessions = sbx_sessions_new();
	b->sealing = sbx_sealing_new();
	b->drift = sbx_drift_new();
	b->reviews = sbx_reviews_new();
	if (!b->sessions || !b->sealing || !b->drift || !b->reviews || sbx_slack_new(b) < 0 ||
	    sbx_alerts_new(b) < 0 || sbx_api_new(b) < 0 || sbx_evidence_new(b) < 0) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	memcpy(b->fleet_hash, SBX_RECORD_GENESIS, sizeof(b->fleet_hash));
	b->replaying = true;
	rc = sbx_journal_open(&jo, sbx_broker_replay_snapshot, sbx_broker_replay_record, b, &info,
			      &b->journal, err, sizeof(err));
	b->replaying = false;
	if (rc < 0) {
		snprintf(why, whylen, "%s; not starting: the journal under %s must be intact (check "
			 "it with: sbxctl audit verify --state-dir %s)", err, dir, dir);
		return -EIO;
	}
	/* A fleet member knows where its copy of the log stands before it
	 * records anything. */
	if (b->settings.fleet.enabled && sbx_fleet_start(b, why, whylen) < 0)
		return -EINVAL;
	/* The epoch left open when the broker stopped ends now, before
	 * anything of this run is recorded. */
	if (sbx_sealing_start(b, why, whylen) < 0)
		return -EIO;
	record_startup(b, &info);
	return 0;
}

int sbx_broker_start(struct sbx_broker *b, char *why, size_t whylen)
{
	struct sbx_limits_conf lc = limits_of(b->policy);
	int rc;

	b->state = sbx_state_new();
	b->limits = sbx_limits_new(&lc);
	if (!b->state || !b->limits) {
		snprintf(why, whylen, "out of memory");
		return -ENOMEM;
	}
	sbx_state_keep_ended(b->state, b->policy->broker.keep_ended);
	rc = open_journal(b, why, whylen);
	if (rc < 0)
		return rc;
	/* The directory first: the others see the people it brings.  Each
	 * says itself why it cannot start. */
	if (sbx_directory_start(b) < 0 || sbx_grouptable_start(b) < 0 ||
	    sbx_sessions_start(b) < 0 || sbx_slack_start(b) < 0 || sbx_drift_start(b) < 0 ||
	    sbx_api_start(b) < 0 || sbx_evidence_start(b) < 0) {
		snprintf(why, whylen, "a feature could not start (see above)");
		return -EINVAL;
	}
	/* Grants that ran out while the broker was down end now. */
	(void)sbx_broker_expire(b, sbx_now());
	return 0;
}

/* A clean stop spends at most this long on a last snapshot.  The journal
 * is the truth and a snapshot only a shortcut: a state too big for this
 * is left to the next start, which replays the records since the last
 * snapshot (at most the interval's worth, server.c). */
#define STOP_SNAPSHOT_MS 500
/* Without a snapshot written in this run to go by, a child is assumed to
 * write this many requests a millisecond (about half what the reference
 * machine does). */
#define SNAPSHOT_ENTRIES_PER_MS 200

/* How long a snapshot of the state now would take, from the last one. */
static int64_t snapshot_ms(struct sbx_broker *b, const struct sbx_snapshot_stats *last)
{
	uint64_t n = sbx_state_count(b->state);

	if (last->entries && last->took_ms)
		return (int64_t)((double)last->took_ms * (double)n / (double)last->entries);
	return (int64_t)(n / SNAPSHOT_ENTRIES_PER_MS);
}

static void stop_snapshot(struct sbx_broker *b)
{
	struct sbx_snapshot_stats last;
	int64_t t0 = sbx_mono_ms(), left, need;
	char why[400];
	int rc;

	/* A child already at work gets the time first. */
	if (sbx_journal_snapshot_running(b->journal) &&
	    sbx_journal_snapshot_wait(b->journal, STOP_SNAPSHOT_MS, why, sizeof(why)) < 0)
		sbx_info("%s", why);
	left = STOP_SNAPSHOT_MS - (sbx_mono_ms() - t0);
	sbx_journal_snapshot_last(b->journal, &last);
	need = snapshot_ms(b, &last);
	if (left <= 0 || need > left) {
		sbx_info("no snapshot at stop (%s %lld ms); the next start replays the journal "
			 "from seq %llu", left <= 0 ? "the one under way took its" : "one would take "
			 "about", (long long)(left <= 0 ? STOP_SNAPSHOT_MS : need),
			 (unsigned long long)last.seq + 1);
		return;
	}
	rc = sbx_journal_snapshot_start(b->journal, sbx_broker_snapshot_state, b, why, sizeof(why));
	if (rc > 0)
		rc = sbx_journal_snapshot_wait(b->journal, (int)left, why, sizeof(why));
	if (rc < 0)
		sbx_info("%s; the next start replays the journal since the last snapshot", why);
	else if (rc > 0)
		sbx_info("snapshot at seq %llu written at stop", (unsigned long long)
			 sbx_journal_last_seq(b->journal));
}

void sbx_broker_shutdown(struct sbx_broker *b)
{
	json_t *f = json_object();
	uint64_t seq;

	json_object_set_new(f, "pid", json_integer(getpid()));
	(void)sbx_broker_record(b, "broker.stopped", SBX_SYSTEM_ACTOR, f, &seq);
	sbx_sealing_stop(b);
	if (sbx_journal_flush(b->journal) == 0)
		stop_snapshot(b);
	sbx_journal_snapshot_cancel(b->journal);
}

void sbx_broker_free(struct sbx_broker *b)
{
	sbx_api_free(b);
	sbx_fleet_free(b);
	sbx_drift_free(b->drift);
	b->drift = NULL;
	sbx_slack_free(b);
	sbx_evidence_free(b);
	sbx_directory_free(b);
	sbx_grouptable_free(b);
	sbx_sessions_free(b->sessions);
	b->sessions = NULL;
	sbx_commands_free(b->commands);
	b->commands = NULL;
	sbx_sealing_free(b->sealing);
	sbx_tail_free(b->tail);
	b->tail = NULL;
	b->sealing = NULL;
	sbx_alerts_free(b);
	sbx_reviews_free(b->reviews);
	b->reviews = NULL;
	sbx_journal_close(b->journal);
	b->journal = NULL;
	sbx_state_free(b->state);
	b->state = NULL;
	sbx_policy_free(b->policy);
	b->policy = NULL;
	sbx_limits_free(b->limits);
	b->limits = NULL;
	free(b->config_path);
	free(b->file_socket);
	free(b->file_state_dir);
	free(b->host_override);
	b->config_path = b->file_socket = b->file_state_dir = b->host_override = NULL;
}
