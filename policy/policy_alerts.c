/*
 * The alerts: section (docs/policy.md, "alerts").  Each rule is a mapping
 * under its name:
 *
 *   alerts:
 *     refused-logins:
 *       event: access.checked
 *       outcome: denied
 *       count: 5
 *       within: 10m
 *       per: user
 *
 * A rule that names an event or a field sbx never records would never
 * fire, silently: that is an error at the name's line and column.  The
 * lists below are every event the broker records (docs/audit.md,
 * "Events") and every field those records carry.
 */
#include "config.h"

#include "policy_alerts.h"

#include "duration.h"
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Every event sbx records, and journal.failed, which is never recorded
 * (the journal cannot take it) but raised to syslog (broker/alerts.c).
 * drift.detected comes from the drift checks. */
static const char *const known_events[] = {
	"access.checked", "broker.started", "broker.stopped", "directory.conflict",
	"directory.loaded", "directory.recovered", "directory.stale", "directory.unavailable",
	"drift.detected", "drift.membership", "fleet.chain_broken", "fleet.current",
	"fleet.policy_mismatch", "fleet.stale", "grant.activated", "grant.expired",
	"grant.revoked", "grant.revoked_here", "journal.failed", "journal.pruned",
	"journal.recovered", "journal.seal_key_replaced", "journal.sealed", "notify.delivered",
	"notify.failed", "notify.queued", "policy.loaded", "policy.rejected",
	"request.approval", "request.cancelled", "request.created", "request.denied",
	"request.lapsed", "session.closed", "session.killed", "session.opened",
	"session.rebased", "session.terminated", NULL,
};

/* The fields of those records (docs/audit.md), and the record's own keys. */
static const char *const known_fields[] = {
	"activated_at", "actor", "after", "applied_seq", "approvals", "approvals_needed",
	"attempts", "bad_seq", "because", "before", "bytes_cut", "channel", "comment",
	"duration", "epoch", "error", "errors", "expires_at", "extends", "file", "finding",
	"first_seq", "fleet_hash", "fleet_seq", "from", "gid", "ground", "group", "host", "id",
	"kept_sha256", "key_id", "kind", "lapses_at", "last_good_seq", "last_seq", "nid",
	"old_epoch", "old_key_id", "other_host", "other_sha256", "outcome", "path", "pid",
	"policy_sha256", "reason", "records_cut", "replayed", "rhost", "role", "roles",
	"service", "session", "sha256", "signal", "silent_s", "slack_user", "snapshot_seq",
	"state", "through", "ticket", "tty", "unix_group", "user", "version", "via", "what",
	"why", NULL,
};

static bool in_list(const char *const *list, const char *s)
{
	for (; *list; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

bool sbx_alert_event_known(const char *event)
{
	return in_list(known_events, event);
}

bool sbx_alert_prefix_known(const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *const *e = known_events; *e; e++)
		if (strncmp(*e, prefix, n) == 0)
			return true;
	return false;
}

bool sbx_alert_field_known(const char *key)
{
	return in_list(known_fields, key);
}

/* ---- working hours ------------------------------------------------------- */

static const char *const day_names[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };

static int day_of(const char *s, size_t len)
{
	for (int d = 0; d < 7; d++)
		if (len == 3 && strncasecmp(s, day_names[d], 3) == 0)
			return d;
	return -1;
}

/* "Mon-Fri", "Sat,Sun", "Mon-Wed,Fri", "daily" -> a mask of tm_wday bits. */
static int parse_days(const char *s, size_t len, uint8_t *mask)
{
	size_t i = 0;

	*mask = 0;
	if (len == 5 && strncasecmp(s, "daily", 5) == 0) {
		*mask = 0x7f;
		return 0;
	}
	while (i < len) {
		size_t j = i;
		int a, b;

		while (j < len && s[j] != ',')
			j++;
		if (j - i == 7 && s[i + 3] == '-') {
			a = day_of(s + i, 3);
			b = day_of(s + i + 4, 3);
		} else {
			a = b = day_of(s + i, j - i);
		}
		if (a < 0 || b < 0)
			return -1;
		/* Fri-Mon wraps over the weekend. */
		for (int d = a;; d = (d + 1) % 7) {
			*mask |= (uint8_t)(1u << d);
			if (d == b)
				break;
		}
		i = j + 1;
		if (j + 1 == len)
			return -1; /* a trailing comma */
	}
	return *mask ? 0 : -1;
}

/* "08:00" -> 480; "24:00" only as an end. */
static int parse_clock(const char *s, size_t len, bool end, uint16_t *min)
{
	unsigned h, m;

	if (len != 5 || s[2] != ':' || sscanf(s, "%2u:%2u", &h, &m) != 2 ||
	    s[0] < '0' || s[0] > '9' || s[3] < '0' || s[3] > '9')
		return -1;
	if (m > 59 || h > 24 || (h == 24 && (m != 0 || !end)))
		return -1;
	*min = (uint16_t)(h * 60 + m);
	return 0;
}

static bool zone_name_ok(const char *z)
{
	if (!*z || *z == '/' || *z == '.' || strlen(z) >= 64 || strstr(z, ".."))
		return false;
	for (; *z; z++)
		if (!((*z >= 'A' && *z <= 'Z') || (*z >= 'a' && *z <= 'z') ||
		      (*z >= '0' && *z <= '9') || *z == '/' || *z == '_' || *z == '-' || *z == '+'))
			return false;
	return true;
}

int sbx_alert_hours_parse(const char *text, bool outside, const char *zoneinfo_dir,
			  struct sbx_alert_hours *h, char *why, size_t whylen)
{
	const char *p = text, *word[4];
	size_t len[4], n = 0;
	const char *dash;
	char path[256];
	struct stat st;

	memset(h, 0, sizeof(*h));
	while (*p && n < 4) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		word[n] = p;
		while (*p && *p != ' ')
			p++;
		len[n] = (size_t)(p - word[n]);
		n++;
	}
	while (*p == ' ')
		p++;
	if (n < 2 || n > 3 || *p) {
		snprintf(why, whylen, "write the hours as DAYS HH:MM-HH:MM [ZONE], "
			 "e.g. \"Mon-Fri 08:00-19:00 Europe/Berlin\"");
		return -1;
	}
	if (parse_days(word[0], len[0], &h->days) < 0) {
		snprintf(why, whylen, "'%.*s' is not a list of days: write e.g. Mon-Fri, Sat,Sun "
			 "or daily", (int)(len[0] > 40 ? 40 : len[0]), word[0]);
		return -1;
	}
	dash = memchr(word[1], '-', len[1]);
	if (!dash || parse_clock(word[1], (size_t)(dash - word[1]), false, &h->from) < 0 ||
	    parse_clock(dash + 1, len[1] - (size_t)(dash - word[1]) - 1, true, &h->to) < 0 ||
	    h->from == h->to) {
		snprintf(why, whylen, "'%.*s' is not a time range: write e.g. 08:00-19:00 "
			 "(24-hour clock; 22:00-06:00 runs past midnight)",
			 (int)(len[1] > 40 ? 40 : len[1]), word[1]);
		return -1;
	}
	if (n == 3) {
		if (len[2] >= sizeof(h->tz))
			goto bad_zone;
		memcpy(h->tz, word[2], len[2]);
		h->tz[len[2]] = '\0';
		if (!zone_name_ok(h->tz))
			goto bad_zone;
		if (strcmp(h->tz, "UTC") != 0) {
			snprintf(path, sizeof(path), "%s/%s",
				 zoneinfo_dir ? zoneinfo_dir : "/usr/share/zoneinfo", h->tz);
			if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
				goto bad_zone;
		}
	}
	h->set = true;
	h->outside = outside;
	snprintf(h->text, sizeof(h->text), "%s", text);
	return 0;
bad_zone:
	snprintf(why, whylen, "unknown time zone '%.*s': use a name from the tz database, "
		 "e.g. Europe/Berlin or UTC (is tzdata installed?)",
		 (int)(len[2] > 64 ? 64 : len[2]), word[2]);
	h->tz[0] = '\0';
	return -1;
}

/* ---- the section -------------------------------------------------------------- */

struct ctx {
	yaml_document_t *doc;
	const struct sbx_policy *p;
	sbx_alerts_error_fn *err;
	void *err_ctx;
	int n_errors;
};

__attribute__((format(printf, 3, 4)))
static void error_at(struct ctx *x, yaml_mark_t m, const char *fmt, ...)
{
	char raw[512], msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	sbx_sanitize(raw, msg, sizeof(msg));
	x->n_errors++;
	x->err(x->err_ctx, m, msg);
}

static const char *scalar(const yaml_node_t *n)
{
	if (!n || n->type != YAML_SCALAR_NODE || strlen((const char *)n->data.scalar.value) !=
	    n->data.scalar.length)
		return NULL;
	return (const char *)n->data.scalar.value;
}

/* A text value of at most cap - 1 bytes, copied to dst; false after saying why. */
static bool text_into(struct ctx *x, const char *key, const yaml_node_t *n, char *dst,
		      size_t cap)
{
	const char *s = scalar(n);

	if (!s || !*s || (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
			  (strcmp(s, "~") == 0 || strcmp(s, "null") == 0))) {
		error_at(x, n->start_mark, "%s must be text", key);
		return false;
	}
	if (strlen(s) >= cap) {
		error_at(x, n->start_mark, "%s is longer than %zu bytes", key, cap - 1);
		return false;
	}
	memcpy(dst, s, strlen(s) + 1);
	return true;
}

static void parse_event(struct ctx *x, const yaml_node_t *n, struct sbx_alert_rule *r)
{
	size_t len;

	if (!text_into(x, "event", n, r->event, sizeof(r->event)))
		return;
	len = strlen(r->event);
	/* "grant.*" and "grant." both mean every grant.* event. */
	if (len >= 2 && strcmp(r->event + len - 2, ".*") == 0)
		r->event[--len] = '\0';
	r->event_prefix = r->event[len - 1] == '.';
	if (strncmp(r->event, "alert.", 6) == 0 || strcmp(r->event, "alert") == 0) {
		error_at(x, n->start_mark, "a rule cannot match %s: an alert never raises another",
			 r->event);
		r->event[0] = '\0';
		return;
	}
	if (r->event_prefix ? !sbx_alert_prefix_known(r->event) : !sbx_alert_event_known(r->event)) {
		error_at(x, n->start_mark, "unknown event '%s' (docs/audit.md, \"Events\", lists "
			 "them; a prefix ends in '.' or '.*')", r->event);
		r->event[0] = '\0';
	}
}

static void parse_fields(struct ctx *x, const yaml_node_t *n, struct sbx_alert_rule *r)
{
	if (n->type != YAML_MAPPING_NODE) {
		error_at(x, n->start_mark, "fields must be a mapping of field: value");
		return;
	}
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(x->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(x->doc, pr->value);
		const char *key = scalar(k);
		struct sbx_alert_field *f;

		if (!key || !sbx_alert_field_known(key)) {
			error_at(x, k->start_mark, "unknown field '%s' (docs/audit.md, \"Events\", "
				 "lists each event's fields)", key ? key : "?");
			continue;
		}
		if (r->n_fields == SBX_ALERT_FIELDS_MAX) {
			error_at(x, k->start_mark, "a rule matches at most %d fields",
				 SBX_ALERT_FIELDS_MAX);
			return;
		}
		f = &r->fields[r->n_fields];
		if (strlen(key) >= sizeof(f->key) ||
		    !text_into(x, key, v, f->value, sizeof(f->value)))
			continue;
		memcpy(f->key, key, strlen(key) + 1);
		r->n_fields++;
	}
}

static void parse_hours(struct ctx *x, const char *key, const yaml_node_t *n,
			struct sbx_alert_rule *r)
{
	char text[128], why[256];

	if (r->hours.set) {
		error_at(x, n->start_mark, "a rule has outside or during, not both");
		return;
	}
	if (!text_into(x, key, n, text, sizeof(text)))
		return;
	if (sbx_alert_hours_parse(text, strcmp(key, "outside") == 0, NULL, &r->hours, why,
				  sizeof(why)) < 0)
		error_at(x, n->start_mark, "%s: %s", key, why);
}

static void parse_number(struct ctx *x, const yaml_node_t *n, unsigned *out)
{
	const char *s = scalar(n);
	char *end = NULL;
	unsigned long v = 0;

	if (s && *s >= '0' && *s <= '9' && strlen(s) <= 6)
		v = strtoul(s, &end, 10);
	if (!end || *end || v < 1 || v > SBX_ALERT_COUNT_MAX) {
		error_at(x, n->start_mark, "count must be a whole number from 1 to %d",
			 SBX_ALERT_COUNT_MAX);
		return;
	}
	*out = (unsigned)v;
}

static void parse_within(struct ctx *x, const yaml_node_t *n, struct sbx_alert_rule *r)
{
	const char *s = scalar(n);
	char why[160];

	if (!s || sbx_duration_parse(s, &r->within, why, sizeof(why)) < 0) {
		error_at(x, n->start_mark, "within: %s", s ? why : "must be a duration (e.g. 10m)");
		r->within = 0;
		return;
	}
	if (r->within < 1 || r->within > SBX_ALERT_WITHIN_MAX) {
		error_at(x, n->start_mark, "within must be from 1s to 7d");
		r->within = 0;
	}
}

static void parse_name_key(struct ctx *x, const char *key, const yaml_node_t *n, char *dst,
			   size_t cap)
{
	const char *s = scalar(n);

	if (!text_into(x, key, n, dst, cap))
		return;
	if (!sbx_name_valid(s)) {
		error_at(x, n->start_mark, "'%s' is not a valid %s name", s, key);
		dst[0] = '\0';
		return;
	}
	/* A role or group the policy does not have would never match: a
	 * typo.  Users may come from a directory, groups too with one. */
	if (strcmp(key, "role") == 0 && !sbx_policy_role(x->p, s)) {
		error_at(x, n->start_mark, "unknown role '%s'", s);
		dst[0] = '\0';
	} else if (strcmp(key, "group") == 0 && !x->p->names_from_directory &&
		   !sbx_policy_group(x->p, s)) {
		error_at(x, n->start_mark, "unknown group '%s'", s);
		dst[0] = '\0';
	}
}

static void parse_rule(struct ctx *x, yaml_node_t *kn, yaml_node_t *n, struct sbx_alert_rule *r)
{
	bool has_event = false, has_per = false;

	if (n->type != YAML_MAPPING_NODE) {
		error_at(x, n->start_mark, "alert '%s' must be a mapping (event: ..., count: ...)",
			 r->name);
		return;
	}
	r->count = 1;
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(x->doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(x->doc, pr->value);
		const char *key = scalar(k);

		for (yaml_node_pair_t *q = n->data.mapping.pairs.start; key && q < pr; q++) {
			const char *other = scalar(yaml_document_get_node(x->doc, q->key));

			if (other && strcmp(other, key) == 0) {
				error_at(x, k->start_mark, "duplicate key '%s'", key);
				key = NULL;
			}
		}
		if (!key)
			continue;
		if (strcmp(key, "event") == 0) {
			has_event = true;
			parse_event(x, v, r);
		} else if (strcmp(key, "role") == 0) {
			parse_name_key(x, key, v, r->role, sizeof(r->role));
		} else if (strcmp(key, "user") == 0) {
			parse_name_key(x, key, v, r->user, sizeof(r->user));
		} else if (strcmp(key, "group") == 0) {
			parse_name_key(x, key, v, r->group, sizeof(r->group));
		} else if (strcmp(key, "outcome") == 0) {
			if (text_into(x, key, v, r->outcome, sizeof(r->outcome)) &&
			    strcmp(r->outcome, "allowed") != 0 && strcmp(r->outcome, "denied") != 0)
				error_at(x, v->start_mark, "outcome must be allowed or denied");
		} else if (strcmp(key, "fields") == 0) {
			parse_fields(x, v, r);
		} else if (strcmp(key, "count") == 0) {
			parse_number(x, v, &r->count);
		} else if (strcmp(key, "within") == 0) {
			parse_within(x, v, r);
		} else if (strcmp(key, "per") == 0) {
			const char *s = scalar(v);

			has_per = true;
			if (s && strcmp(s, "user") == 0)
				r->per = SBX_ALERT_PER_USER;
			else if (s && strcmp(s, "role") == 0)
				r->per = SBX_ALERT_PER_ROLE;
			else
				error_at(x, v->start_mark, "per must be user or role");
		} else if (strcmp(key, "outside") == 0 || strcmp(key, "during") == 0) {
			parse_hours(x, key, v, r);
		} else if (strcmp(key, "description") == 0) {
			char d[512];

			(void)text_into(x, key, v, d, sizeof(d));
		} else {
			error_at(x, k->start_mark, "unknown key '%s' in alert '%s' (an alert has event, "
				 "role, user, group, outcome, fields, count, within, per, outside, "
				 "during and description)", key, r->name);
		}
	}
	if (!has_event)
		error_at(x, kn->start_mark, "alert '%s' needs event (the event it matches, "
			 "e.g. access.checked)", r->name);
	if (r->count > 1 && !r->within)
		error_at(x, kn->start_mark, "alert '%s' has count %u but no within: count how many "
			 "within how long?", r->name, r->count);
	if (has_per && !r->within)
		error_at(x, kn->start_mark, "alert '%s' has per but no within", r->name);
}

void sbx_policy_alerts_load(yaml_document_t *doc, yaml_node_t *n, const struct sbx_policy *p,
			    struct sbx_alerts_conf *out, sbx_alerts_error_fn *err, void *ctx)
{
	struct ctx x = { .doc = doc, .p = p, .err = err, .err_ctx = ctx };
	const char *s = scalar(n);

	memset(out, 0, sizeof(*out));
	/* "alerts:" with nothing after it: no rules. */
	if (!n || (s && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
		   (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0)))
		return;
	if (n->type != YAML_MAPPING_NODE) {
		error_at(&x, n->start_mark, "alerts must be a mapping of rule names to rules");
		return;
	}
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *k = yaml_document_get_node(doc, pr->key);
		yaml_node_t *v = yaml_document_get_node(doc, pr->value);
		const char *name = scalar(k);
		struct sbx_alert_rule *r;
		bool dup = false;

		if (!name || !sbx_name_valid(name)) {
			error_at(&x, k->start_mark, "'%s' is not a valid alert name: use letters, "
				 "digits, '.', '_' or '-'", name ? name : "?");
			continue;
		}
		for (size_t i = 0; i < out->n; i++)
			dup = dup || strcmp(out->rule[i].name, name) == 0;
		if (dup) {
			error_at(&x, k->start_mark, "duplicate alert '%s'", name);
			continue;
		}
		if (out->n == SBX_ALERT_RULES_MAX) {
			error_at(&x, k->start_mark, "at most %d alerts", SBX_ALERT_RULES_MAX);
			return;
		}
		r = &out->rule[out->n++];
		snprintf(r->name, sizeof(r->name), "%s", name);
		parse_rule(&x, k, v, r);
	}
}
