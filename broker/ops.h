/*
 * What the broker does for each protocol op, and on its own when a grant
 * expires or a request lapses.  Every state change goes through
 * sbx_broker_record(): journal first, then memory, the same record both
 * times.  A reply that acknowledges a change is sent only once the journal
 * says the record is durable (the server holds it until then).
 */
#ifndef SBX_OPS_H
#define SBX_OPS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "frame.h"
#include "identity.h"
#include "journal.h"
#include "policy.h"
#include "state.h"

struct sbx_broker {
	struct sbx_policy *policy;
	char *config_path;
	struct sbx_state *state;
	struct sbx_journal *journal;
	/* broker.socket and broker.state_dir as the file says (the running
	 * values may come from --socket/--state-dir) */
	char *file_socket;
	char *file_state_dir;
	/* Non-empty once the journal failed: changes are refused, checks
	 * keep being answered from memory. */
	char degraded[512];
};

/* Handle one validated request frame.  Fills reply; *wait_seq is the seq
 * that must be durable before the reply may be sent (0: send now). */
void sbx_broker_handle(struct sbx_broker *b, struct sbx_caller *c,
		       const uint8_t *frame, size_t n, sbx_msg *reply, uint64_t *wait_seq);

/* The reply to a frame that failed validation. */
void sbx_broker_malformed(sbx_msg *reply, const char *why);

/* Journal a record and apply it to memory.  fields is stolen (may be NULL).
 * Returns 0 and the seq, or -1 when the broker cannot record (degraded). */
int sbx_broker_record(struct sbx_broker *b, const char *event, const char *actor,
		      json_t *fields, uint64_t *seq);

/* SIGHUP: read the policy file again.  A file with errors keeps the old
 * policy and records policy.rejected with the reasons; a good one is
 * recorded as policy.loaded.  socket and state_dir keep their values
 * (changing them needs a restart). */
void sbx_broker_reload(struct sbx_broker *b);

/* Record policy.loaded for the current policy. */
int sbx_broker_record_policy(struct sbx_broker *b, uint64_t *seq);

/* End grants and requests whose time has come.  Returns how many. */
size_t sbx_broker_tick(struct sbx_broker *b, int64_t now);

/* The journal failed: remember why, and rebuild memory from what is known
 * to be on disk, so nothing unrecorded is ever acted on. */
void sbx_broker_degrade(struct sbx_broker *b);

/* Replay callbacks for sbx_journal_open/reload (ctx = struct sbx_broker *). */
int sbx_broker_replay_record(const json_t *rec, void *ctx, char *err, size_t errlen);
int sbx_broker_replay_snapshot(const json_t *state, void *ctx, char *err, size_t errlen);
json_t *sbx_broker_snapshot_state(void *ctx);

/* The login decision of CHECK, shared with EXPLAIN. */
struct sbx_decision {
	bool allowed;
	char message[1024];
	const char *role; /* role it rests on, or NULL */
	uint32_t grant;   /* grant it rests on, or 0 */
	const char *via;  /* "standing", "grant" */
};
void sbx_broker_decide(struct sbx_broker *b, const char *user, int64_t now,
		       struct sbx_decision *d);

#endif
