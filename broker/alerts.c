/*
 * Smart alerts (alerts.h): the engine that matches records against the
 * policy's rules and keeps their windows, and the feature that records
 * alert.raised, logs it and queues it for Slack.
 *
 * A window: a rule with within: W keeps, per key (the record's user or
 * role, or one key for all), the seqs and times of its last matches
 * within W.  When count of them are there the rule raises once, the
 * entries are dropped, and the key stays quiet for W: further matches in
 * that time are not counted (the alert already says it is happening).
 * After W counting starts again from nothing.  A rule without within
 * raises on every match.
 *
 * Time is the record's own time, so the replay at start-up rebuilds the
 * same windows.  Working hours are evaluated in the rule's time zone
 * through glibc (tz_local): TZ is switched in a buffer of ours that was
 * put into the environment once at start-up (so the environment array
 * itself never changes after that), tzset() reads it and localtime_r
 * converts; then TZ is set back.  Only the loop thread calls tzset; the
 * other threads format times with gmtime_r, which never reads TZ.
 */
#include "config.h"

#include "alerts.h"

#include "broker.h"
#include "log.h"
#include "slack/slack.h"
#include "text.h"
#include "timeutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

struct akey {
	char name[SBX_NAME_MAX + 1];
	uint64_t *seq;           /* the matches in the window, oldest first */
	int64_t *at;             /* their times (us) */
	unsigned n;
	int64_t quiet_until;     /* us: raised, not counting until then */
	uint64_t used;           /* the engine's tick of its last match (LRU) */
};

struct arule {
	struct sbx_alert_rule r;
	struct akey *keys;       /* SBX_ALERT_KEYS_MAX, n_keys in use */
	size_t n_keys;
	bool evict_warned;
};

struct sbx_alerts {
	struct arule rule[SBX_ALERT_RULES_MAX];
	size_t n;
	uint64_t tick;
	struct sbx_broker *b;    /* NULL for a bare engine (tests) */
	bool busy;               /* recording an alert: its own records are not matched */
};

/* ---- time zones -------------------------------------------------------------------- */

static char tz_env[96];
static char tz_orig[80];
static bool tz_ready;

/* Once, before the broker's threads start: TZ becomes our buffer. */
static void tz_init(void)
{
	const char *o = getenv("TZ");

	if (tz_ready)
		return;
	/* No TZ means /etc/localtime; an empty TZ would mean UTC. */
	snprintf(tz_orig, sizeof(tz_orig), "%s", o ? o : ":/etc/localtime");
	snprintf(tz_env, sizeof(tz_env), "TZ=%s", tz_orig);
	if (putenv(tz_env) == 0)
		tz_ready = true;
}

static void tz_local(const char *zone, time_t t, struct tm *tm)
{
	if (strcmp(zone, "UTC") == 0) {
		gmtime_r(&t, tm);
		return;
	}
	tz_init();
	if (!zone[0] || !tz_ready) {
		localtime_r(&t, tm);
		return;
	}
	snprintf(tz_env, sizeof(tz_env), "TZ=:%s", zone);
	tzset();
	localtime_r(&t, tm);
	snprintf(tz_env, sizeof(tz_env), "TZ=%s", tz_orig);
	tzset();
}

bool sbx_alert_hours_contain(const struct sbx_alert_hours *h, int64_t t)
{
	struct tm tm;
	unsigned min, yesterday;

	if (!h->set)
		return true;
	tz_local(h->tz, (time_t)t, &tm);
	min = (unsigned)(tm.tm_hour * 60 + tm.tm_min);
	yesterday = (unsigned)(tm.tm_wday + 6) % 7;
	if (h->from < h->to)
		return (h->days & (1u << tm.tm_wday)) && min >= h->from && min < h->to;
	/* Past midnight: the part after it belongs to the day it started on. */
	return ((h->days & (1u << tm.tm_wday)) && min >= h->from) ||
	       ((h->days & (1u << yesterday)) && min < h->to);
}

/* ---- matching ------------------------------------------------------------------------ */

static const char *str_of(const json_t *rec, const char *key)
{
	return json_string_value(json_object_get(rec, key));
}

static bool field_is(const json_t *rec, const char *key, const char *want)
{
	const json_t *v = json_object_get(rec, key);
	char buf[32];

	if (json_is_string(v))
		return strcmp(json_string_value(v), want) == 0;
	if (json_is_integer(v)) {
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		return strcmp(buf, want) == 0;
	}
	if (json_is_boolean(v))
		return strcmp(json_is_true(v) ? "true" : "false", want) == 0;
	return false;
}

static bool rule_matches(const struct sbx_alert_rule *r, const struct sbx_policy *p,
			 const json_t *rec, const char *event, int64_t t)
{
	const char *user = str_of(rec, "user");
	bool in;

	if (!r->event[0])
		return false;
	if (r->event_prefix ? strncmp(event, r->event, strlen(r->event)) != 0
			    : strcmp(event, r->event) != 0)
		return false;
	if ((r->role[0] && !field_is(rec, "role", r->role)) ||
	    (r->user[0] && !field_is(rec, "user", r->user)) ||
	    (r->outcome[0] && !field_is(rec, "outcome", r->outcome)))
		return false;
	if (r->group[0] && (!p || !user || !sbx_policy_in_group(p, r->group, user)))
		return false;
	for (size_t i = 0; i < r->n_fields; i++)
		if (!field_is(rec, r->fields[i].key, r->fields[i].value))
			return false;
	if (r->hours.set) {
		in = sbx_alert_hours_contain(&r->hours, t);
		if (in == r->hours.outside)
			return false;
	}
	return true;
}

/* ---- windows --------------------------------------------------------------------------- */

static void key_clear(struct akey *k)
{
	free(k->seq);
	free(k->at);
	memset(k, 0, sizeof(*k));
}

static void rule_clear(struct arule *ar)
{
	for (size_t i = 0; i < ar->n_keys; i++)
		key_clear(&ar->keys[i]);
	free(ar->keys);
	ar->keys = NULL;
	ar->n_keys = 0;
}

/* Matches of k still inside the window at `at` (its entries are oldest
 * first). */
static unsigned key_live(const struct arule *ar, const struct akey *k, int64_t at)
{
	const int64_t w = ar->r.within * 1000000;
	unsigned drop = 0;

	while (drop < k->n && k->at[drop] <= at - w)
		drop++;
	return k->n - drop;
}

/* The key's entry, or NULL.  A new key in a full table takes the place of
 * the one with the fewest matches in the window, the least recently used
 * of those: never simply the least recent, or anyone who can cause
 * matches under SBX_ALERT_KEYS_MAX other names (ssh logins as made-up
 * users) would wipe out the count of the user they are attacking. */
static struct akey *key_get(struct sbx_alerts *a, struct arule *ar, const char *name,
			    int64_t at)
{
	struct akey *k = NULL;
	size_t lru = 0;
	unsigned lru_live = 0;

	for (size_t i = 0; i < ar->n_keys; i++)
		if (strcmp(ar->keys[i].name, name) == 0)
			return &ar->keys[i];
	for (size_t i = 0; ar->n_keys == SBX_ALERT_KEYS_MAX && i < ar->n_keys; i++) {
		unsigned live = key_live(ar, &ar->keys[i], at);

		if (i == 0 || live < lru_live ||
		    (live == lru_live && ar->keys[i].used < ar->keys[lru].used)) {
			lru = i;
			lru_live = live;
		}
	}
	if (!ar->keys) {
		ar->keys = calloc(SBX_ALERT_KEYS_MAX, sizeof(*ar->keys));
		if (!ar->keys)
			return NULL;
	}
	if (ar->n_keys == SBX_ALERT_KEYS_MAX) {
		k = &ar->keys[lru];
		if (!ar->evict_warned && a->b && !a->b->replaying)
			sbx_warn("alert %s: more than %d %ss at once; forgetting the count of "
				 "the one with the fewest matches", ar->r.name, SBX_ALERT_KEYS_MAX,
				 ar->r.per == SBX_ALERT_PER_ROLE ? "role" : "user");
		ar->evict_warned = true;
		key_clear(k);
	} else {
		k = &ar->keys[ar->n_keys];
	}
	k->seq = calloc(ar->r.count, sizeof(*k->seq));
	k->at = calloc(ar->r.count, sizeof(*k->at));
	if (!k->seq || !k->at) {
		key_clear(k);
		return NULL;
	}
	if (k == &ar->keys[ar->n_keys])
		ar->n_keys++;
	snprintf(k->name, sizeof(k->name), "%s", name);
	return k;
}

static const char *key_name(const struct sbx_alert_rule *r, const json_t *rec)
{
	const char *s = NULL;

	if (r->per == SBX_ALERT_PER_USER)
		s = str_of(rec, "user") ? str_of(rec, "user") : str_of(rec, "actor");
	else if (r->per == SBX_ALERT_PER_ROLE)
		s = str_of(rec, "role");
	else
		return "";
	return s && strlen(s) <= SBX_NAME_MAX ? s : "-";
}

/* Count a match.  true when the window is full now (its seqs in seqs). */
static bool window_add(struct sbx_alerts *a, struct arule *ar, const char *name, uint64_t seq,
		       int64_t at, json_t *seqs)
{
	const int64_t w = ar->r.within * 1000000;
	struct akey *k = key_get(a, ar, name, at);
	unsigned drop = 0;

	if (!k)
		return false;
	k->used = ++a->tick;
	if (at < k->quiet_until)
		return false;
	while (drop < k->n && k->at[drop] <= at - w)
		drop++;
	if (drop) {
		memmove(k->seq, k->seq + drop, (k->n - drop) * sizeof(*k->seq));
		memmove(k->at, k->at + drop, (k->n - drop) * sizeof(*k->at));
		k->n -= drop;
	}
	k->seq[k->n] = seq;
	k->at[k->n] = at;
	k->n++;
	if (k->n < ar->r.count)
		return false;
	for (unsigned i = 0; i < k->n; i++)
		json_array_append_new(seqs, json_integer((json_int_t)k->seq[i]));
	k->n = 0;
	k->quiet_until = at + w;
	return true;
}

/* A rule's identity across a reload or a restart: FNV-1a over each of
 * its values (not its bytes: padding is not part of a rule). */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ c[i]) * 0x100000001b3ULL;
	return h;
}

#define FNV_STR(h, s) fnv((h), (s), strlen(s) + 1)
#define FNV_VAL(h, v) fnv((h), &(v), sizeof(v))

static uint64_t rule_print(const struct sbx_alert_rule *r)
{
	const struct sbx_alert_hours *t = &r->hours;
	uint64_t h = 0xcbf29ce484222325ULL;
	int64_t n[] = { r->event_prefix, (int64_t)r->n_fields, r->count, r->within, r->per,
			t->set, t->outside, t->days, t->from, t->to };

	h = FNV_STR(h, r->name);
	h = FNV_STR(h, r->event);
	h = FNV_STR(h, r->role);
	h = FNV_STR(h, r->user);
	h = FNV_STR(h, r->group);
	h = FNV_STR(h, r->outcome);
	for (size_t i = 0; i < r->n_fields; i++) {
		h = FNV_STR(h, r->fields[i].key);
		h = FNV_STR(h, r->fields[i].value);
	}
	h = FNV_STR(h, t->tz);
	return FNV_VAL(h, n);
}

/* ---- the engine ---------------------------------------------------------------------- */

struct sbx_alerts *sbx_alerts_engine_new(const struct sbx_alerts_conf *conf)
{
	struct sbx_alerts *a = calloc(1, sizeof(*a));

	if (a && sbx_alerts_engine_set(a, conf) < 0) {
		free(a);
		a = NULL;
	}
	return a;
}

void sbx_alerts_engine_free(struct sbx_alerts *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		rule_clear(&a->rule[i]);
	free(a);
}

int sbx_alerts_engine_set(struct sbx_alerts *a, const struct sbx_alerts_conf *conf)
{
	struct arule *fresh = calloc(SBX_ALERT_RULES_MAX, sizeof(*fresh));
	size_t n = conf ? conf->n : 0;

	if (!fresh)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		fresh[i].r = conf->rule[i];
		/* The same rule keeps its windows. */
		for (size_t j = 0; j < a->n; j++) {
			if (!a->rule[j].keys || rule_print(&a->rule[j].r) != rule_print(&conf->rule[i]))
				continue;
			fresh[i].keys = a->rule[j].keys;
			fresh[i].n_keys = a->rule[j].n_keys;
			a->rule[j].keys = NULL;
			a->rule[j].n_keys = 0;
			break;
		}
	}
	for (size_t j = 0; j < a->n; j++)
		rule_clear(&a->rule[j]);
	memcpy(a->rule, fresh, SBX_ALERT_RULES_MAX * sizeof(*fresh));
	a->n = n;
	free(fresh);
	return 0;
}

static json_t *raised_fields(const struct sbx_alert_rule *r, const json_t *rec, const char *event,
			     json_t *seqs)
{
	json_t *f = json_object();
	const char *s;

	if (!f) {
		json_decref(seqs);
		return NULL;
	}
	sbx_rec_str(f, "rule", r->name);
	sbx_rec_str(f, "matched", event);
	/* The last matching record's subject, for search (audit query --user). */
	if ((s = str_of(rec, "user")))
		sbx_rec_str(f, "user", s);
	if ((s = str_of(rec, "role")))
		sbx_rec_str(f, "role", s);
	if (r->outcome[0])
		sbx_rec_str(f, "outcome", r->outcome);
	json_object_set_new(f, "count", json_integer((json_int_t)json_array_size(seqs)));
	if (r->within) {
		json_object_set_new(f, "within", json_integer((json_int_t)r->within));
		if (r->per != SBX_ALERT_PER_ALL)
			sbx_rec_str(f, "per", r->per == SBX_ALERT_PER_USER ? "user" : "role");
	}
	if (r->hours.set)
		sbx_rec_str(f, r->hours.outside ? "outside" : "during", r->hours.text);
	json_object_set_new(f, "seqs", seqs);
	return f;
}

json_t *sbx_alerts_engine_feed(struct sbx_alerts *a, const struct sbx_policy *p,
			       const json_t *rec, bool replaying)
{
	json_t *out = json_array();
	const char *event = str_of(rec, "event"), *time = str_of(rec, "time");
	json_int_t seq = json_integer_value(json_object_get(rec, "seq"));
	int64_t us = 0;

	if (!out || !a || !event || strncmp(event, "alert.", 6) == 0)
		return out;
	if (!time || sbx_parse_rfc3339_us(time, &us) < 0)
		return out;
	for (size_t i = 0; i < a->n; i++) {
		struct arule *ar = &a->rule[i];
		json_t *seqs, *f;

		if (!rule_matches(&ar->r, p, rec, event, us / 1000000))
			continue;
		seqs = json_array();
		if (!seqs)
			goto oom;
		if (ar->r.within) {
			if (!window_add(a, ar, key_name(&ar->r, rec), (uint64_t)seq, us, seqs) ||
			    replaying) {
				json_decref(seqs);
				continue;
			}
		} else {
			if (replaying) {
				json_decref(seqs);
				continue;
			}
			json_array_append_new(seqs, json_integer(seq));
		}
		f = raised_fields(&ar->r, rec, event, seqs);
		if (!f || json_array_append_new(out, f) < 0)
			goto oom;
	}
	return out;
oom:
	json_decref(out);
	return NULL;
}

/* ---- snapshots ------------------------------------------------------------------------ */

json_t *sbx_alerts_save(const struct sbx_alerts *a)
{
	json_t *rules = json_array();
	char print[17];

	for (size_t i = 0; a && rules && i < a->n; i++) {
		const struct arule *ar = &a->rule[i];
		json_t *keys = json_array();

		if (!keys || !ar->n_keys) {
			json_decref(keys);
			continue;
		}
		for (size_t j = 0; j < ar->n_keys; j++) {
			const struct akey *k = &ar->keys[j];
			json_t *seq = json_array(), *at = json_array();

			for (unsigned e = 0; seq && at && e < k->n; e++) {
				json_array_append_new(seq, json_integer((json_int_t)k->seq[e]));
				json_array_append_new(at, json_integer(k->at[e]));
			}
			json_array_append_new(keys, json_pack("{s:s, s:o*, s:o*, s:I}", "key", k->name,
							      "seq", seq, "at", at, "quiet_until",
							      (json_int_t)k->quiet_until));
		}
		snprintf(print, sizeof(print), "%016llx", (unsigned long long)rule_print(&ar->r));
		json_array_append_new(rules, json_pack("{s:s, s:s, s:o}", "rule", ar->r.name, "print",
						       print, "keys", keys));
	}
	/* No open window: no part (a snapshot stays as it was without alerts). */
	if (!rules || json_array_size(rules) == 0) {
		json_decref(rules);
		return NULL;
	}
	return json_pack("{s:o}", "rules", rules);
}

static void load_key(struct sbx_alerts *a, struct arule *ar, const json_t *o)
{
	const char *name = str_of(o, "key");
	const json_t *seq = json_object_get(o, "seq"), *at = json_object_get(o, "at");
	struct akey *k;

	if (!name || !json_is_array(seq) || !json_is_array(at) ||
	    json_array_size(seq) != json_array_size(at) || json_array_size(seq) >= ar->r.count)
		return;
	k = key_get(a, ar, name, 0); /* a saved table fits: nothing is evicted */
	if (!k)
		return;
	k->used = ++a->tick;
	k->n = (unsigned)json_array_size(seq);
	for (unsigned e = 0; e < k->n; e++) {
		k->seq[e] = (uint64_t)json_integer_value(json_array_get(seq, e));
		k->at[e] = (int64_t)json_integer_value(json_array_get(at, e));
	}
	k->quiet_until = (int64_t)json_integer_value(json_object_get(o, "quiet_until"));
}

int sbx_alerts_load(struct sbx_alerts *a, const json_t *saved)
{
	const json_t *rules = json_object_get(saved, "rules"), *o, *k;
	char print[17];
	size_t i, j;

	if (!a || !json_is_array(rules))
		return 0;
	json_array_foreach(rules, i, o) {
		const char *name = str_of(o, "rule"), *p = str_of(o, "print");

		for (size_t r = 0; name && p && r < a->n; r++) {
			struct arule *ar = &a->rule[r];

			snprintf(print, sizeof(print), "%016llx", (unsigned long long)rule_print(&ar->r));
			/* A rule changed since (or gone) starts empty. */
			if (strcmp(ar->r.name, name) != 0 || strcmp(print, p) != 0 || !ar->r.within)
				continue;
			json_array_foreach(json_object_get(o, "keys"), j, k)
				load_key(a, ar, k);
		}
	}
	return 0;
}

/* ---- the feature --------------------------------------------------------------------------- */

int sbx_alerts_new(struct sbx_broker *b)
{
	/* Here, before the broker's threads exist (alerts.h: time zones). */
	tz_init();
	b->alerts = sbx_alerts_engine_new(&b->settings.alerts);
	if (!b->alerts)
		return -ENOMEM;
	b->alerts->b = b;
	return 0;
}

void sbx_alerts_free(struct sbx_broker *b)
{
	sbx_alerts_engine_free(b->alerts);
	b->alerts = NULL;
}

/* In a fleet every host applies every host's records (those carry
 * fleet_hash and the host that made them): only that host alerts on
 * them, so one refusal is one alert, not one per host. */
static bool another_hosts(const struct sbx_broker *b, const json_t *rec)
{
	const char *host = str_of(rec, "host");

	return json_object_get(rec, "fleet_hash") && host && b->policy->broker.host &&
	       strcmp(host, b->policy->broker.host) != 0;
}

void sbx_alerts_replay(struct sbx_broker *b, const json_t *rec)
{
	if (b->alerts && b->alerts->n && !another_hosts(b, rec))
		json_decref(sbx_alerts_engine_feed(b->alerts, b->policy, rec, true));
}

void sbx_alerts_on_reload(struct sbx_broker *b)
{
	if (b->alerts && sbx_alerts_engine_set(b->alerts, &b->settings.alerts) < 0)
		sbx_err("policy reload: out of memory; keeping the alert rules in force");
}

/* "alert refused-logins: 5 access.checked (user erin, role -) within 600s; seqs 3-9" */
static void describe(const json_t *f, const char *host, char *buf, size_t len)
{
	char seqs[160] = "", clean[SBX_NAME_MAX * 4 + 1];
	size_t n = json_array_size(json_object_get(f, "seqs")), used = 0;
	const char *user = str_of(f, "user"), *role = str_of(f, "role");
	json_int_t within = json_integer_value(json_object_get(f, "within"));
	char who[3 * sizeof(clean) + 32] = "", span[48] = "";

	for (size_t i = 0; i < n && used + 24 < sizeof(seqs); i++)
		used += (size_t)snprintf(seqs + used, sizeof(seqs) - used, "%s%lld", i ? "," : "",
					 (long long)json_integer_value(json_array_get(
						 json_object_get(f, "seqs"), i)));
	if (user || role)
		snprintf(who, sizeof(who), " (%s%s%s%s)", user ? "user " : "",
			 user ? sbx_sanitize(user, clean, sizeof(clean)) : "", user && role ? ", " : "",
			 role ? "role " : "");
	if (role) {
		size_t w = strlen(who);

		if (w)
			snprintf(who + w - 1, sizeof(who) - w + 1, "%s)",
				 sbx_sanitize(role, clean, sizeof(clean)));
	}
	if (within)
		snprintf(span, sizeof(span), " within %llds", (long long)within);
	snprintf(buf, len, "alert %s on %s: %zu %s%s%s; seqs %s", str_of(f, "rule"), host, n,
		 str_of(f, "matched"), who, span, seqs);
}

/* Slack's text is mrkdwn: &, < and > must be escaped. */
static void slack_escape(const char *in, char *out, size_t len)
{
	size_t o = 0;

	for (; *in && o + 6 < len; in++) {
		const char *rep = *in == '&' ? "&amp;" : *in == '<' ? "&lt;" : *in == '>' ? "&gt;" : NULL;

		if (rep) {
			memcpy(out + o, rep, strlen(rep));
			o += strlen(rep);
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

/* To the broker's log and to syslog (authpriv.warning), once each. */
static void announce(const char *text, const char *note)
{
	sbx_warn("%s%s", text, note);
	if (!sbx_log_is_syslog())
		syslog(LOG_AUTHPRIV | LOG_WARNING, "%s%s", text, note);
}

static void raise_all(struct sbx_broker *b, json_t *raised, bool can_record)
{
	char text[1024], esc[1600];
	size_t i;
	json_t *f;

	json_array_foreach(raised, i, f) {
		uint64_t seq = 0;
		bool recorded = false;

		describe(f, b->policy->broker.host, text, sizeof(text));
		if (can_record) {
			b->alerts->busy = true;
			recorded = sbx_broker_record(b, "alert.raised", SBX_SYSTEM_ACTOR, json_incref(f),
						     &seq) == 0;
			if (recorded) {
				slack_escape(text, esc, sizeof(esc));
				struct sbx_slack_notice nt = {
					.user = SBX_SYSTEM_ACTOR, .role = "-", .state = "alert",
					.text = esc, .key = "alert", .value = str_of(f, "rule"),
				};

				if (sbx_slack_queue_notice(b, &nt) < 0)
					sbx_warn("alert %s: could not queue its Slack message",
						 str_of(f, "rule"));
			}
			b->alerts->busy = false;
		}
		announce(text, recorded ? "" : " (not recorded: the journal cannot take it)");
	}
}

void sbx_alerts_on_record(struct sbx_broker *b, const json_t *rec)
{
	json_t *raised;

	if (!b->alerts || b->alerts->busy || b->alerts->n == 0 || another_hosts(b, rec))
		return;
	raised = sbx_alerts_engine_feed(b->alerts, b->policy, rec, false);
	if (!raised) {
		sbx_err("alerts: out of memory matching seq %lld",
			(long long)json_integer_value(json_object_get(rec, "seq")));
		return;
	}
	raise_all(b, raised, true);
	json_decref(raised);
}

void sbx_alerts_on_failure(struct sbx_broker *b, const char *why)
{
	char now[SBX_RFC3339_LEN];
	json_t *rec, *raised;

	if (!b->alerts || b->alerts->n == 0)
		return;
	sbx_format_rfc3339_us(sbx_now_us(), now);
	rec = json_pack("{s:I, s:s, s:s, s:s}", "seq", (json_int_t)0, "time", now, "event",
			"journal.failed", "actor", SBX_SYSTEM_ACTOR);
	if (!rec)
		return;
	sbx_rec_str(rec, "why", why);
	raised = sbx_alerts_engine_feed(b->alerts, b->policy, rec, false);
	if (raised)
		raise_all(b, raised, false);
	json_decref(raised);
	json_decref(rec);
}
