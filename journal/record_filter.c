/*
 * Record filters and outcomes (record_filter.h).
 */
#include "config.h"

#include "record_filter.h"

#include <stdio.h>
#include <string.h>

#include "timeutil.h"

/* event -> outcome, for events whose outcome the event alone says. */
static const struct {
	const char *event, *outcome;
} by_event[] = {
	{ "request.created", "requested" },
	{ "request.approval", "approved" },
	{ "grant.activated", "granted" },
	{ "request.denied", "denied" },
	{ "request.cancelled", "cancelled" },
	{ "request.lapsed", "lapsed" },
	{ "grant.expired", "expired" },
	{ "grant.revoked", "revoked" },
	{ "grant.revoked_here", "revoked" },
	{ "policy.loaded", "loaded" },
	{ "policy.rejected", "rejected" },
	{ "notify.delivered", "delivered" },
	{ "notify.failed", "failed" },
};

static const char *const known[] = {
	"allowed", "refused", "requested", "approved", "granted", "denied", "cancelled",
	"lapsed", "expired", "revoked", "loaded", "rejected", "delivered", "failed", NULL
};

const char *sbx_rec_outcome(const json_t *rec)
{
	const char *ev = json_string_value(json_object_get(rec, "event"));
	const char *o;

	if (!ev)
		return NULL;
	/* A login decision: pam_sbx's allowed/denied.  "refused" so that a
	 * refused login and a denied request can be told apart. */
	if (strcmp(ev, "access.checked") == 0) {
		o = json_string_value(json_object_get(rec, "outcome"));
		if (o && strcmp(o, "allowed") == 0)
			return "allowed";
		if (o && strcmp(o, "denied") == 0)
			return "refused";
		return NULL;
	}
	for (size_t i = 0; i < sizeof(by_event) / sizeof(by_event[0]); i++)
		if (strcmp(ev, by_event[i].event) == 0)
			return by_event[i].outcome;
	return NULL;
}

bool sbx_rec_outcome_known(const char *outcome)
{
	for (size_t i = 0; known[i]; i++)
		if (strcmp(known[i], outcome) == 0)
			return true;
	return false;
}

const char *sbx_rec_outcome_list(void)
{
	return "allowed, refused, requested, approved, granted, denied, cancelled, lapsed, "
	       "expired, revoked, loaded, rejected, delivered, failed";
}

bool sbx_rec_event_match(const char *pattern, const char *event)
{
	size_t n;

	if (!pattern || !event)
		return false;
	n = strlen(pattern);
	if (n >= 2 && pattern[n - 2] == '.' && pattern[n - 1] == '*')
		return strncmp(pattern, event, n - 1) == 0;
	if (n >= 1 && pattern[n - 1] == '.')
		return strncmp(pattern, event, n) == 0;
	return strcmp(pattern, event) == 0;
}

const char *sbx_rec_host(const json_t *rec, const char *current_host)
{
	const char *h = json_string_value(json_object_get(rec, "host"));

	return h ? h : current_host;
}

bool sbx_rec_track_host(const json_t *rec, char *buf, size_t len)
{
	const char *ev = json_string_value(json_object_get(rec, "event"));
	const char *h;

	if (!ev || strcmp(ev, "broker.started") != 0)
		return false;
	h = json_string_value(json_object_get(rec, "host"));
	snprintf(buf, len, "%s", h ? h : "");
	return true;
}

static bool member_is(const json_t *rec, const char *key, const char *want)
{
	const char *v = json_string_value(json_object_get(rec, key));

	return v && strcmp(v, want) == 0;
}

bool sbx_rec_filter_match(const json_t *rec, const struct sbx_rec_filter *f,
			  const char *current_host)
{
	const char *s;
	int64_t t;

	if (f->user && !member_is(rec, "user", f->user) && !member_is(rec, "actor", f->user))
		return false;
	if (f->actor && !member_is(rec, "actor", f->actor))
		return false;
	if (f->role && !member_is(rec, "role", f->role))
		return false;
	if (f->has_id && json_integer_value(json_object_get(rec, "id")) != (json_int_t)f->id)
		return false;
	if (f->event && !sbx_rec_event_match(f->event,
					     json_string_value(json_object_get(rec, "event"))))
		return false;
	if (f->host) {
		s = sbx_rec_host(rec, current_host);
		if (!s || strcmp(s, f->host) != 0)
			return false;
	}
	if (f->outcome) {
		s = sbx_rec_outcome(rec);
		if (!s || strcmp(s, f->outcome) != 0)
			return false;
	}
	if (f->has_since || f->has_until) {
		/* A record without a readable time cannot be placed in a window. */
		if (sbx_parse_rfc3339_us(json_string_value(json_object_get(rec, "time")) ?: "", &t) < 0)
			return false;
		if (f->has_since && t < f->since_us)
			return false;
		if (f->has_until && t >= f->until_us)
			return false;
	}
	return true;
}

/* Printable ASCII without '"' and '\\' is written by the journal as is. */
static bool plain(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e || *s == '"' || *s == '\\')
			return false;
	return true;
}

const char *sbx_rec_filter_needle(const struct sbx_rec_filter *f, char *buf, size_t len)
{
	/* The most selective of the names given: a user, else an actor,
	 * else a role.  Any member holding that string is enough to parse. */
	const char *s = f->user ? f->user : f->actor ? f->actor : f->role;

	if (!s || !plain(s) || snprintf(buf, len, "\"%s\"", s) >= (int)len)
		return NULL;
	return buf;
}
