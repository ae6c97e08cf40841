#include "config.h"

#include "sealing.h"

#include "broker.h"
#include "evidence.h"
#include "log.h"
#include "retention.h"
#include "seal.h"
#include "timeutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sbx_sealing {
	bool on;                      /* a key file exists */
	struct sbx_seal_state st;     /* the current epoch and its key */
	int64_t due_us;               /* when the current epoch ends */
	/* The last seal the start-up replay saw. */
	bool seen;
	char seen_key_id[SBX_SEAL_ID_LEN + 1];
	uint64_t seen_epoch, seen_seq;
	char seen_until[SBX_RFC3339_LEN];
};

struct sbx_sealing *sbx_sealing_new(void)
{
	return calloc(1, sizeof(struct sbx_sealing));
}

void sbx_sealing_free(struct sbx_sealing *s)
{
	if (!s)
		return;
	sbx_seal_state_wipe(&s->st);
	free(s);
}

void sbx_sealing_replay(struct sbx_sealing *s, const json_t *rec)
{
	const char *event = json_string_value(json_object_get(rec, "event"));
	const char *kid = json_string_value(json_object_get(rec, "key_id"));
	const char *t = json_string_value(json_object_get(rec, "time"));

	if (!s || !event || strcmp(event, SBX_SEAL_EVENT) != 0 || !kid || !t)
		return;
	s->seen = true;
	snprintf(s->seen_key_id, sizeof(s->seen_key_id), "%s", kid);
	s->seen_epoch = (uint64_t)json_integer_value(json_object_get(rec, "epoch"));
	s->seen_seq = (uint64_t)json_integer_value(json_object_get(rec, "seq"));
	snprintf(s->seen_until, sizeof(s->seen_until), "%s", t);
}

static int64_t epoch_us(const struct sbx_broker *b)
{
	int64_t secs = b->settings.audit.seal_every > 0 ? b->settings.audit.seal_every : 60;

	return secs * 1000000;
}

/* The record comes first and must be durable before the key moves on: a
 * crash in between leaves the old key, and the next start sees the seal
 * and only moves the key on. */
static int seal_now(struct sbx_broker *b, const char *why)
{
	struct sbx_sealing *s = b->sealing;
	char until[SBX_RFC3339_LEN], err[512];
	struct sbx_evidence_seal seal;
	uint64_t seq = 0;

	if (!s->on || b->degraded[0])
		return -1;
	if (sbx_seal_append(b->journal, &s->st, SBX_SYSTEM_ACTOR, why, &seq, until, err,
			    sizeof(err)) < 0) {
		sbx_err("journal: %s", err);
		if (sbx_journal_failed(b->journal, NULL, 0))
			sbx_broker_degrade(b);
		return -1;
	}
	seal.seq = seq;
	seal.epoch = s->st.epoch;
	seal.first_seq = s->st.first_seq;
	seal.key_id = s->st.key_id;
	seal.why = why;
	seal.time = until;
	sbx_evidence_on_seal(b, &seal);
	sbx_seal_state_advance(&s->st, until, seq + 1);
	s->st.replaces[0] = '\0';
	if (sbx_seal_state_write(b->policy->broker.state_dir, &s->st, err, sizeof(err)) < 0)
		sbx_err("journal: sealed epoch %" PRIu64 " but could not store the next key: %s "
			"(the old key stays on disk until the next seal)", s->st.epoch - 1, err);
	s->due_us = sbx_now_us() + epoch_us(b);
	return 0;
}

/* `sbxctl audit init --force` (or a key file made anew while the journal
 * holds seals of another key): the journal says so before the new key
 * seals anything. */
static void record_replaced(struct sbx_broker *b)
{
	struct sbx_sealing *s = b->sealing;
	const char *old = s->st.replaces[0] ? s->st.replaces : s->seen_key_id;
	uint64_t old_epoch = s->st.replaces[0] ? s->st.replaces_epoch : s->seen_epoch + 1;
	json_t *f;
	uint64_t seq;

	if (!s->st.replaces[0] && (!s->seen || strcmp(s->seen_key_id, s->st.key_id) == 0))
		return;
	f = json_pack("{s:s, s:I, s:s}", "old_key_id", old, "old_epoch", (json_int_t)old_epoch,
		      "key_id", s->st.key_id);
	sbx_warn("journal: the sealing key was replaced (old key %s at epoch %" PRIu64 ", new "
		 "key %s): recorded", old, old_epoch, s->st.key_id);
	(void)sbx_broker_record(b, SBX_SEAL_REPLACED_EVENT, SBX_SYSTEM_ACTOR, f, &seq);
}

int sbx_sealing_start(struct sbx_broker *b, char *why, size_t whylen)
{
	struct sbx_sealing *s = b->sealing;
	const char *dir = b->policy->broker.state_dir;
	uint64_t last = sbx_journal_last_seq(b->journal);
	char err[512];
	int rc;

	rc = sbx_seal_state_read(dir, &s->st, err, sizeof(err));
	if (rc == -ENOENT && !s->seen) {
		sbx_info("journal: not sealed (no %s/" SBX_SEAL_KEY_FILE "; sbxctl audit init "
			 "starts sealing)", dir);
		return 0;
	}
	if (rc == -ENOENT) {
		snprintf(why, whylen, "journal: the journal is sealed (last seal: epoch %" PRIu64
			 " at seq %" PRIu64 ") but the sealing key %s/" SBX_SEAL_KEY_FILE " is "
			 "missing; restore it, or start a new key with sbxctl audit init --force "
			 "(which the journal records)", s->seen_epoch, s->seen_seq, dir);
		return -1;
	}
	if (rc < 0) {
		snprintf(why, whylen, "journal: cannot read the sealing key: %s", err);
		return -1;
	}
	s->on = true;
	if (s->seen && strcmp(s->seen_key_id, s->st.key_id) == 0 && !s->st.replaces[0]) {
		if (s->seen_epoch > s->st.epoch) {
			snprintf(why, whylen, "journal: the sealing key %s/" SBX_SEAL_KEY_FILE " is at "
				 "epoch %" PRIu64 ", behind the journal's last seal (epoch %" PRIu64
				 "): an old copy of the key file?", dir, s->st.epoch, s->seen_epoch);
			return -1;
		}
		/* Sealed, then stopped before the key moved on. */
		if (s->seen_epoch == s->st.epoch)
			sbx_seal_state_advance(&s->st, s->seen_until, s->seen_seq + 1);
	}
	if (s->st.first_seq > last + 1) {
		snprintf(why, whylen, "journal: the sealing key's epoch %" PRIu64 " starts at seq %"
			 PRIu64 " but the journal ends at seq %" PRIu64, s->st.epoch,
			 s->st.first_seq, last);
		return -1;
	}
	record_replaced(b);
	if (seal_now(b, "startup") < 0) {
		snprintf(why, whylen, "journal: cannot seal the epoch left open (%s)",
			 b->degraded[0] ? b->degraded : "see above");
		return -1;
	}
	sbx_info("journal: sealed; epoch %" PRIu64 " every %llds", s->st.epoch,
		 (long long)(epoch_us(b) / 1000000));
	return 0;
}

void sbx_sealing_tick(struct sbx_broker *b)
{
	struct sbx_sealing *s = b->sealing;
	struct sbx_prune_plan plan;

	if (!s || !s->on || sbx_now_us() < s->due_us)
		return;
	if (seal_now(b, "timer") < 0)
		return;
	/* Retention: old segments go only once their removal is recorded
	 * and sealed (retention.c). */
	if (sbx_retention_record(b, &plan) == 1 && seal_now(b, "retention") == 0)
		sbx_retention_finish(b, &plan);
}

void sbx_sealing_stop(struct sbx_broker *b)
{
	if (b->sealing && b->sealing->on)
		(void)seal_now(b, "shutdown");
}
