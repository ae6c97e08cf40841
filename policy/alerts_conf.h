/*
 * The policy's alerts: section (docs/policy.md, "alerts"): named rules
 * the broker matches against every record it appends (broker/alerts.h).
 * Parsed by policy/policy_alerts.c; part of struct sbx_settings, so it
 * is fixed-size like the rest of it (copied by value, nothing to free).
 */
#ifndef SBX_ALERTS_CONF_H
#define SBX_ALERTS_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SBX_ALERT_RULES_MAX 32   /* rules in one policy */
#define SBX_ALERT_FIELDS_MAX 4   /* fields: matches in one rule */
#define SBX_ALERT_COUNT_MAX 100  /* count: */
#define SBX_ALERT_WITHIN_MAX (7 * 86400)

enum sbx_alert_per { SBX_ALERT_PER_ALL = 0, SBX_ALERT_PER_USER, SBX_ALERT_PER_ROLE };

/* Working hours, "Mon-Fri 08:00-19:00 Europe/Berlin".  A time is inside
 * when its weekday (in tz) is in days and its minute of the day is in
 * [from, to); a range with to <= from runs past midnight, and then its
 * part after midnight belongs to the day it started on. */
struct sbx_alert_hours {
	bool set;
	bool outside;            /* the rule fires outside the hours (else during) */
	uint8_t days;            /* bit d: struct tm's tm_wday d (0 Sunday) */
	uint16_t from, to;       /* minutes after midnight, to up to 1440 */
	char tz[64];             /* an IANA zone name; empty: the host's local time */
	char text[128];          /* as written, for messages */
};

struct sbx_alert_field {
	char key[32];
	char value[128];         /* compared with the record's string or integer */
};

struct sbx_alert_rule {
	char name[64];
	char event[64];          /* an event name, or a prefix ending in '.' */
	bool event_prefix;
	char role[64];           /* each empty: any */
	char user[64];
	char group[64];          /* the record's user is a member of this group */
	char outcome[16];
	struct sbx_alert_field fields[SBX_ALERT_FIELDS_MAX];
	size_t n_fields;
	unsigned count;          /* matches needed (default 1) */
	int64_t within;          /* seconds: the window; 0 = none */
	enum sbx_alert_per per;  /* what each window counts: all, per user, per role */
	struct sbx_alert_hours hours;
};

struct sbx_alerts_conf {
	struct sbx_alert_rule rule[SBX_ALERT_RULES_MAX];
	size_t n;
};

/* Is event one that sbx records (or that a rule may name)?  Exact names
 * only; alert.raised is not among them (alerts never fire on alerts). */
bool sbx_alert_event_known(const char *event);
/* Does some known event start with prefix (ending in '.')? */
bool sbx_alert_prefix_known(const char *prefix);
/* Is key a field some known event carries (or a record's own key)? */
bool sbx_alert_field_known(const char *key);

/* Parse "Mon-Fri 08:00-19:00 Europe/Berlin" into h (outside as given).
 * 0, or -1 with why.  The zone must exist under zoneinfo_dir (NULL:
 * /usr/share/zoneinfo); "UTC" always exists. */
int sbx_alert_hours_parse(const char *text, bool outside, const char *zoneinfo_dir,
			  struct sbx_alert_hours *h, char *why, size_t whylen);

#endif
