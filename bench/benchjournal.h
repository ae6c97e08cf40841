/*
 * A broker-shaped journal for the benches that measure start-up and
 * snapshots: requests filed, granted and ended with the fields the broker
 * writes, and login checks between them, appended through the journal's
 * own path (hash chain, group commit), so that sbx-brokerd or
 * sbx_state_apply replays it like one it wrote itself.
 */
#ifndef SBX_BENCHJOURNAL_H
#define SBX_BENCHJOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal.h"

struct bench_journal {
	const char *state_dir;  /* created if missing; must hold no journal */
	uint64_t records;       /* at least; more when the requests need more */
	uint64_t requests;      /* ids 1..requests */
	uint64_t live;          /* the first ones ended, these last ones live */
	/* Called with every record appended, in order (may be NULL): the
	 * caller's own state follows the journal, as the broker's does. */
	int (*on_record)(const json_t *rec, void *ctx);
	void *ctx;
	/* With snapshot_at > 0 and write_state: a snapshot (waited for) once
	 * that many records are appended. */
	uint64_t snapshot_at;
	sbx_snapshot_write_fn write_state;
	/* out: that snapshot, as the journal saw it */
	struct sbx_snapshot_stats snap;
};

/* The journal's records for o: how many the requests need (2 per live
 * grant, 2 or 3 per ended request); o->records is raised to it. */
uint64_t bench_journal_needed(const struct bench_journal *o);

/* Write it.  0, or -1 with err.  *written: records appended. */
int bench_journal_write(struct bench_journal *o, uint64_t *written, char *err, size_t errlen);

#endif
