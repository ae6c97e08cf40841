/*
 * Permission drift: access on this host that does not come from sbx.
 * With a drift: section in the policy, a scan runs at start-up, every
 * drift.interval, after a policy reload and on `sbxctl drift scan`.  The
 * files are read on a thread of its own (drift_scan.c), so checks keep
 * their latency; the loop builds what the scan checks against from the
 * policy and the grants, and turns its result into records.
 *
 * Each finding is recorded once while it lasts (drift.detected) and
 * again when it goes (drift.resolved); remediate: remove takes a user out
 * of a role's unix group in the group file (drift.remediated).  The open
 * findings are rebuilt from the journal and kept in snapshots under
 * "ext"."drift".  docs/audit.md describes the records, docs/policy.md the
 * section.
 */
#ifndef SBX_DRIFT_H
#define SBX_DRIFT_H

#include <stdint.h>

#include <jansson.h>

struct sbx_broker;
struct sbx_call;
struct sbx_drift;

/* Made before the journal is replayed.  NULL when out of memory. */
struct sbx_drift *sbx_drift_new(void);
/* Waits for a scan under way. */
void sbx_drift_free(struct sbx_drift *d);

/* drift.* records rebuild the open findings (replay and live alike). */
void sbx_drift_replay(struct sbx_drift *d, const json_t *rec);
void sbx_drift_on_record(struct sbx_broker *b, const json_t *rec);
/* The open findings for a snapshot's "ext"."drift", and back (0 or -1). */
json_t *sbx_drift_save(const struct sbx_drift *d);
int sbx_drift_load(struct sbx_drift *d, const json_t *saved);

/* After replay: the first scan is due at once.  0. */
int sbx_drift_start(struct sbx_broker *b);
/* A new policy: scan again now (or stop, without a drift: section). */
void sbx_drift_on_reload(struct sbx_broker *b);
/* Every loop pass: take a finished scan's result; start one when due. */
void sbx_drift_tick(struct sbx_broker *b, int64_t now);

/* Ops (dispatch.c): DRIFT (the open findings), DRIFT_SCAN (scan now). */
void sbx_op_drift(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_drift_scan(struct sbx_broker *b, struct sbx_call *c);

/* For tests: how many findings are open; how many scans have finished. */
size_t sbx_drift_open_count(const struct sbx_broker *b);
uint64_t sbx_drift_scans(const struct sbx_broker *b);

#endif
