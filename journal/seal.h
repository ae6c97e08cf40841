/*
 * Forward-secure sealing of the journal (docs/audit.md, "Sealing").
 *
 * Pure parts shared by the broker and sbxctl: the one-way key evolution,
 * the MAC of a seal, the two key files, and the checker that walks a
 * journal's records and proves each one is covered by the seal of its own
 * epoch.  No journal I/O here: the caller feeds records in order.
 *
 * Keys: K(0) is random (sbxctl audit init); K(i+1) = HMAC-SHA-256(K(i),
 * "sbx-seal-evolve" || i as 8 bytes big-endian).  The host keeps only the
 * current K(i); the auditor keeps K(0) (the verification key) and derives
 * every other one.
 */
#ifndef SBX_SEAL_H
#define SBX_SEAL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "timeutil.h"

#define SBX_SEAL_KEY_LEN 32
#define SBX_SEAL_ID_LEN 16          /* hex digits of a key id */
#define SBX_SEAL_EVENT "journal.sealed"
#define SBX_SEAL_REPLACED_EVENT "journal.seal_key_replaced"
#define SBX_SEAL_KEY_FILE "seal.key"
/* How far past a seal's own epoch the checker looks for the key that made
 * it, to say "forged with a later key" rather than only "wrong MAC". */
#define SBX_SEAL_LATER_KEYS 4096

/* What the auditor keeps: K(0), its id and when it was made (the start of
 * epoch 0).  One line on disk: sbxseal1:<id>:<created>:<K(0) hex>. */
struct sbx_seal_vkey {
	uint8_t k0[SBX_SEAL_KEY_LEN];
	char key_id[SBX_SEAL_ID_LEN + 1];
	char created[SBX_RFC3339_LEN];
};

/* What the host keeps in <state_dir>/seal.key (mode 0600): the current
 * epoch and its key only.  One line on disk:
 * sbxsealkey1 <id> <epoch> <from> <first_seq> <key hex> [<replaced id> <its epoch>] */
struct sbx_seal_state {
	char key_id[SBX_SEAL_ID_LEN + 1];
	uint64_t epoch;
	uint8_t key[SBX_SEAL_KEY_LEN];
	char from[SBX_RFC3339_LEN];  /* when this epoch began */
	uint64_t first_seq;          /* the first record this epoch covers */
	/* Set by `audit init --force` until the broker has recorded it. */
	char replaces[SBX_SEAL_ID_LEN + 1];
	uint64_t replaces_epoch;
};

/* One seal's content, as its journal.sealed record carries it.  until is
 * the seal record's own time; head is the hash of record last_seq (the
 * chain head the seal vouches for). */
struct sbx_seal_fields {
	const char *key_id;
	uint64_t epoch, first_seq, last_seq;
	const char *from, *until, *head, *why;
};

/* K(i) -> K(i+1), in place; the old key is gone. */
void sbx_seal_evolve(uint8_t key[SBX_SEAL_KEY_LEN], uint64_t i);
/* K(epoch) from K(0). */
void sbx_seal_derive(const uint8_t k0[SBX_SEAL_KEY_LEN], uint64_t epoch,
		     uint8_t out[SBX_SEAL_KEY_LEN]);
/* The key id: hex of the first 8 bytes of SHA-256("sbx-seal-id" || K(0)). */
void sbx_seal_key_id(const uint8_t k0[SBX_SEAL_KEY_LEN], char id[SBX_SEAL_ID_LEN + 1]);
/* The seal's MAC under key, as 64 lowercase hex digits.  0, or -1 for a
 * field missing. */
int sbx_seal_mac(const uint8_t key[SBX_SEAL_KEY_LEN], const struct sbx_seal_fields *f,
		 char mac[65]);

/* A new random K(0) made now. */
int sbx_seal_vkey_new(struct sbx_seal_vkey *vk, char *why, size_t whylen);
/* The one-line text of a verification key (with '\n'). */
void sbx_seal_vkey_format(const struct sbx_seal_vkey *vk, char *buf, size_t len);
/* Read one from a file (a secret file: 0600, not a link). */
int sbx_seal_vkey_read(const char *path, struct sbx_seal_vkey *vk, char *why, size_t whylen);
/* The host's state for epoch 0 of vk. */
void sbx_seal_state_init(struct sbx_seal_state *st, const struct sbx_seal_vkey *vk);
/* Read <dir>/seal.key.  0; -ENOENT when there is none; other -errno with why. */
int sbx_seal_state_read(const char *state_dir, struct sbx_seal_state *st, char *why,
			size_t whylen);
/* Write <dir>/seal.key: tmp file (0600), fsync, rename, fsync the dir,
 * so the old key is replaced in one step.  0 or -errno with why. */
int sbx_seal_state_write(const char *state_dir, const struct sbx_seal_state *st, char *why,
			 size_t whylen);
/* Move st to the next epoch: evolve the key (wiping the old one), the
 * epoch began at until and starts with record first_seq. */
void sbx_seal_state_advance(struct sbx_seal_state *st, const char *until, uint64_t first_seq);
/* Wipe the keys in st. */
void sbx_seal_state_wipe(struct sbx_seal_state *st);

/* ---- sealing a journal ---- */

struct sbx_journal;

/* Append the seal of st's epoch to j (covering st->first_seq up to the
 * last record appended) and wait until it is durable.  Call outside any
 * operation (journal.h: a seal must not be "continued").  0 with the
 * seal's seq and time (until), or -1 with err.  The caller then moves st
 * on (sbx_seal_state_advance) and writes it. */
int sbx_seal_append(struct sbx_journal *j, const struct sbx_seal_state *st, const char *actor,
		    const char *why, uint64_t *seq, char until[SBX_RFC3339_LEN], char *err,
		    size_t errlen);

/* ---- the checker ---- */

struct sbx_seal_check;

/* What a check found besides the verdict. */
struct sbx_seal_summary {
	uint64_t records;          /* records seen */
	uint64_t seals;            /* seals of this key checked */
	uint64_t last_epoch;       /* the last one's epoch (with seals > 0) */
	uint64_t sealed_through;   /* the last one's seq: everything up to it is proven */
	uint64_t unsealed;         /* records after it */
	uint64_t other_seals;      /* seals made with other keys (not checked) */
	uint64_t replaced_at;      /* seq of the record saying this key was replaced, or 0 */
	bool host_checked;         /* the host's key file was compared */
	uint64_t fleet_exempt;     /* records copied from a fleet's log (fleet_hash): their
				    * time was not checked against their epoch's */
	uint64_t fleet_first;      /* the first one's seq, or 0 */
};

struct sbx_seal_check *sbx_seal_check_new(const struct sbx_seal_vkey *vk);
/* The host was never in a fleet: a record that says it was copied from
 * a fleet's log (fleet_hash) has its time checked like any other, so
 * that "fleet_hash" added to a back-dated record forged with a stolen
 * key does not excuse it (docs/audit.md, "What sealing proves"). */
void sbx_seal_check_standalone(struct sbx_seal_check *c);
void sbx_seal_check_free(struct sbx_seal_check *c);
/* Feed the next record (parsed, chain already checked).  0, or -1 with
 * *bad_seq and err ("seq N: what is wrong"); after -1 stop feeding. */
int sbx_seal_check_record(struct sbx_seal_check *c, const json_t *rec, uint64_t *bad_seq,
			  char *err, size_t errlen);
/* A journal pruned before first_seq (docs/audit.md, "Retention"): the
 * next record fed is first_seq, and the epoch it lies in is taken from
 * the first seal of this key (whose MAC proves it). */
void sbx_seal_check_start_at(struct sbx_seal_check *c, uint64_t first_seq);
/* Feed the next record that is neither a seal nor a key replacement
 * (the caller knows its event from the text): only its seq, its time
 * (not NUL-terminated) and whether it carries fleet_hash matter. */
int sbx_seal_check_plain(struct sbx_seal_check *c, uint64_t seq, const char *time,
			 size_t time_len, bool fleet, uint64_t *bad_seq, char *err, size_t errlen);
/* After the last record: is the end proven?  host is the host's seal.key
 * (NULL: not available, the end is not checked).  0, or -1 as above. */
int sbx_seal_check_end(struct sbx_seal_check *c, const struct sbx_seal_state *host,
		       struct sbx_seal_summary *sum, uint64_t *bad_seq, char *err, size_t errlen);

/* The whole of sbxctl audit verify --key for a state dir: the chain
 * (sbx_journal_verify), then every record through the checker, then the
 * host's key file (unless no_host_key).  0 when intact and sealed, or -1
 * with *bad_seq and err. */
int sbx_seal_verify_dir(const char *state_dir, const struct sbx_seal_vkey *vk, bool no_host_key,
			struct sbx_seal_summary *sum, uint64_t *bad_seq, char *err,
			size_t errlen);

#endif
