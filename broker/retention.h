/*
 * Retention (docs/audit.md, "Retention"; docs/policy.md): whole old
 * journal segments are removed once every record in them is older than
 * the policy keeps records, once they are sealed and wholly before the
 * seal the snapshot on disk names, and once no open request began in
 * them.  The removal is a journal.pruned record, sealed, before the files
 * go.  Driven by sealing.c after each timer seal.  Threads: the event
 * loop's only.
 */
#ifndef SBX_BROKER_RETENTION_H
#define SBX_BROKER_RETENTION_H

#include <stdint.h>

#include "journal.h"

struct sbx_broker;

struct sbx_state;

/* The cut-off, Unix microseconds: records older than this may go.  Now
 * minus the retention (seconds), or the creation of the oldest open
 * (pending or active) request when that is earlier. */
int64_t sbx_retention_cutoff(const struct sbx_state *st, int64_t now_us, int64_t retention);

/* Record what may go (journal.pruned), if anything.  1 recorded (the
 * caller seals, then calls sbx_retention_finish), 0 nothing to do, -1
 * failed (logged). */
int sbx_retention_record(struct sbx_broker *b, struct sbx_prune_plan *plan);
/* Remove the files a sealed journal.pruned record named. */
void sbx_retention_finish(struct sbx_broker *b, const struct sbx_prune_plan *plan);

#endif
