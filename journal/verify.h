/*
 * The auditor's check of a whole journal in one pass (docs/audit.md,
 * "Verifying"): every segment is read once; each record's hash and prev
 * are checked, its text is checked as JSON (parsed in full only when the
 * text check cannot vouch for it, and for the journal's own records:
 * seals, key replacements, prunings), and with a verification key it goes
 * through the seal checker (seal.h) in the same pass.  A journal whose
 * old segments were pruned is checked from the anchor a journal.pruned
 * record gives; checkpoints kept off the host (seq and hash of a seal)
 * prove that nothing up to them was cut or rewritten.
 *
 * Offline: no lock, read-only, the snapshot is ignored.
 */
#ifndef SBX_JOURNAL_VERIFY_H
#define SBX_JOURNAL_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "seal.h"

/* What a journal.pruned record carries (docs/audit.md, "Retention"). */
#define SBX_PRUNED_EVENT "journal.pruned"

/* A record someone kept elsewhere: its seq and hash. */
struct sbx_checkpoint {
	uint64_t seq;
	char hash[65];
};

/* "SEQ:HASH" (HASH: 64 lowercase hex digits).  0, or -1 with why. */
int sbx_checkpoint_parse(const char *text, struct sbx_checkpoint *cp, char *why, size_t whylen);
/* Append cp to *cps (*n entries, grown only by this function and
 * sbx_checkpoint_read_file).  0, or -1 out of memory. */
int sbx_checkpoint_add(struct sbx_checkpoint **cps, size_t *n, const struct sbx_checkpoint *cp);
/* A file of checkpoints, one a line: SEQ:HASH, or a JSON object with
 * "seq" and "hash" (what a collector keeps; other members are ignored).
 * Blank lines and lines starting with # are skipped.  Appends to *cps
 * (malloc'd, *n entries).  0, or -1 with why naming FILE:LINE. */
int sbx_checkpoint_read_file(const char *path, struct sbx_checkpoint **cps, size_t *n,
			     char *why, size_t whylen);

struct sbx_verify_opts {
	const char *state_dir;
	const struct sbx_seal_vkey *vk;        /* NULL: the chain only */
	bool no_host_key;                      /* with vk: do not read seal.key */
	bool standalone;                       /* with vk: sbx_seal_check_standalone */
	const struct sbx_checkpoint *cps;      /* in any order */
	size_t ncps;
};

struct sbx_verify_result {
	uint64_t records;          /* records read */
	uint64_t first_seq;        /* the first one's seq (1 unless pruned) */
	uint64_t last_seq;
	uint64_t anchor_seq;       /* the journal.pruned record the start was proven by (0: none) */
	uint64_t checkpoints_ok;   /* checkpoints found with their hash */
	uint64_t checkpoints_pruned; /* checkpoints before the anchor: pruned, not checkable */
	size_t bad_checkpoint;     /* on failure: 1-based index into cps of the first one that failed */
	struct sbx_seal_summary seal; /* with vk */
	uint64_t bad_seq;          /* on failure */
};

/* 0 when intact (and, with vk, sealed; and every checkpoint found), else
 * -1 with r->bad_seq and err ("journal: record seq N: ..." for the chain,
 * "seq N: ..." for a seal, "checkpoint I (SEQ:HASH...): ..." for a
 * checkpoint). */
int sbx_journal_audit(const struct sbx_verify_opts *o, struct sbx_verify_result *r, char *err,
		      size_t errlen);

#endif
