/*
 * Smart alerts (docs/policy.md, "alerts"): the policy's alert rules
 * matched against every record the broker appends.  A rule that matches
 * (count times within its window, per user or role, inside or outside
 * its hours) records alert.raised, once per window, then logs a warning
 * to syslog and, with Slack configured, queues a message through Slack's
 * outbox.
 *
 * Two layers: the engine (sbx_alerts_engine_*) knows only rules, records
 * and time, so the unit tests drive it directly; the feature
 * (sbx_alerts_*) is its place in the broker.
 *
 * Memory is bounded: each rule with a window keeps at most
 * SBX_ALERT_KEYS_MAX keys (users or roles), each at most count entries;
 * a new key beyond that evicts the one with the fewest matches in its
 * window, the least recently matched of those (its partial count is
 * forgotten, with a warning once per rule and run).
 *
 * Across a restart the windows survive: the snapshot holds them
 * ("ext"."alerts") and the start-up replays the records after it through
 * the same engine.  A window that filled during the replay counts as
 * raised: a restart never raises an alert a second time.  A rule whose
 * definition changed starts empty.
 *
 * Threads: the event loop only.
 */
#ifndef SBX_ALERTS_H
#define SBX_ALERTS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

#define SBX_ALERT_KEYS_MAX 256

struct sbx_broker;
struct sbx_alerts;

/* ---- the engine ---------------------------------------------------------------- */

/* An engine for conf (copied).  NULL when out of memory. */
struct sbx_alerts *sbx_alerts_engine_new(const struct sbx_alerts_conf *conf);
void sbx_alerts_engine_free(struct sbx_alerts *a);
/* New rules: the windows of rules whose name and definition are the same
 * carry over; the others start empty.  0 or -ENOMEM (a unchanged). */
int sbx_alerts_engine_set(struct sbx_alerts *a, const struct sbx_alerts_conf *conf);

/* Show the engine one record (with seq, time and event).  p answers
 * group: matches (may be NULL: no group matches).  When replaying,
 * nothing is raised (full windows are closed as if it had been).  Returns
 * the alerts raised, as a new JSON array of alert.raised fields (empty
 * when none), or NULL when out of memory. */
json_t *sbx_alerts_engine_feed(struct sbx_alerts *a, const struct sbx_policy *p,
			       const json_t *rec, bool replaying);

/* Is the time t (Unix seconds) inside h's days and hours, in h's zone? */
bool sbx_alert_hours_contain(const struct sbx_alert_hours *h, int64_t t);

/* ---- the feature ------------------------------------------------------------------ */

/* Before the journal is replayed (b->settings loaded).  0 or -ENOMEM. */
int sbx_alerts_new(struct sbx_broker *b);
void sbx_alerts_free(struct sbx_broker *b);
/* The windows for a snapshot's "ext"."alerts" (NULL: none open, no
 * part), and back (rules that changed since start empty; 0 always: what
 * does not fit is skipped). */
json_t *sbx_alerts_save(const struct sbx_alerts *a);
int sbx_alerts_load(struct sbx_alerts *a, const json_t *saved);
/* During the start-up replay: windows fill, nothing is raised. */
void sbx_alerts_replay(struct sbx_broker *b, const json_t *rec);
/* Every live record: match, and raise what fills. */
void sbx_alerts_on_record(struct sbx_broker *b, const json_t *rec);
/* SIGHUP: the new policy's rules. */
void sbx_alerts_on_reload(struct sbx_broker *b);
/* The journal failed (why): rules on journal.failed go to syslog only,
 * since nothing can be recorded or queued any more. */
void sbx_alerts_on_failure(struct sbx_broker *b, const char *why);

#endif
