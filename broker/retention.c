#include "config.h"

#include "retention.h"

#include "broker.h"
#include "log.h"
#include "policy.h"
#include "settings.h"
#include "state.h"
#include "timeutil.h"
#include "verify.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int64_t sbx_retention_cutoff(const struct sbx_state *st, int64_t now_us, int64_t retention)
{
	int64_t before = now_us - retention * 1000000;

	/* Before every open request began: its whole story stays in the
	 * journal while it lives. */
	for (size_t i = 0; i < sbx_state_open_count(st); i++) {
		const struct sbx_req *r = sbx_state_open_at(st, i);
		int64_t c = r->created_at * 1000000;

		if (c < before)
			before = c;
	}
	return before;
}

int sbx_retention_record(struct sbx_broker *b, struct sbx_prune_plan *plan)
{
	int64_t retention = sbx_retention_of(b->policy, &b->settings), before;
	char err[512];
	uint64_t seq;
	json_t *f;
	int rc;

	if (!retention || b->degraded[0] || b->fleet)
		return 0;
	before = sbx_retention_cutoff(b->state, sbx_now_us(), retention);
	rc = sbx_journal_prune_plan(b->journal, before, plan, err, sizeof(err));
	if (rc < 0)
		sbx_err("retention: %s", err);
	if (rc <= 0)
		return rc;
	f = sbx_prune_fields(plan, before);
	if (!f || sbx_broker_record(b, SBX_PRUNED_EVENT, SBX_SYSTEM_ACTOR, f, &seq) < 0) {
		sbx_err("retention: cannot record the pruning of seqs %" PRIu64 "..%" PRIu64,
			plan->first_seq, plan->last_seq);
		return -1;
	}
	return 1;
}

void sbx_retention_finish(struct sbx_broker *b, const struct sbx_prune_plan *plan)
{
	char err[512];

	if (sbx_journal_prune_apply(b->journal, plan, err, sizeof(err)) < 0) {
		sbx_err("retention: %s (the journal.pruned record stands; the next pruning "
			"removes what is left)", err);
		return;
	}
	sbx_info("retention: removed %zu segment(s) holding seqs %" PRIu64 "..%" PRIu64
		 " (journal.pruned recorded and sealed)", plan->nfiles, plan->first_seq,
		 plan->last_seq);
}
