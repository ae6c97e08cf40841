/*
 * sbxctl audit: reading the journal offline, without the broker.
 * verify checks the hash chain; query filters and prints records
 * (export: audit_export.h; tail, from the broker: audit_tail.h).
 */
#ifndef SBX_CLI_AUDIT_H
#define SBX_CLI_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "client.h"
#include "record_filter.h"

enum sbx_audit_format {
	SBX_AUDIT_TEXT,   /* one aligned line per record */
	SBX_AUDIT_JSONL,  /* the journal's lines, byte for byte */
	SBX_AUDIT_CSV,    /* RFC 4180 with a header line */
	SBX_AUDIT_JSON,   /* --json: one JSON array of the records */
};

struct sbx_audit_query {
	struct sbx_rec_filter f;   /* journal/record_filter.h */
	enum sbx_audit_format format;
};

/* One record as audit query's text line (sanitized), with '\n'. */
void sbx_audit_print_text(FILE *f, const json_t *rec);

/* "text", "jsonl", "csv" -> 0 and *f; -EINVAL otherwise. */
int sbx_audit_parse_format(const char *s, enum sbx_audit_format *f);

/* Is there a journal under state_dir that we can read?  0, or
 * SBX_EXIT_USAGE after saying what is wrong (no such directory, or it is
 * root's). */
int sbx_audit_check_dir(const struct sbx_cli *c, const char *state_dir);

/* Check the journal under state_dir and say so.  Returns the exit code:
 * 0 intact, 1 broken, 2 no readable journal there. */
int sbx_audit_verify(const struct sbx_cli *c, const char *state_dir);

/* audit init: a new sealing key in state_dir (refused when there is one,
 * unless force), the verification key printed and written to out (may be
 * NULL). */
int sbx_audit_init(const struct sbx_cli *c, const char *state_dir, const char *out, bool force);

/* audit verify --key: the chain, then every seal (journal/seal.h). */
int sbx_audit_verify_sealed(const struct sbx_cli *c, const char *state_dir, const char *key_file,
			    bool no_host_key);

/* Print the records that match q, streaming: one record in memory at a
 * time.  Returns the exit code (0 even when nothing matched). */
int sbx_audit_query(const struct sbx_cli *c, const char *state_dir,
		    const struct sbx_audit_query *q);

/* audit verify in full (cli/audit_verify.c): the chain, with key_file
 * (may be NULL) the seals (standalone: the host was never in a fleet,
 * sbx_seal_check_standalone), and each checkpoint (SEQ:HASH or a file of
 * them).  Returns the exit code: 0 intact, 1 broken, 2 usage. */
int sbx_audit_verify_run(const struct sbx_cli *c, const char *state_dir, const char *key_file,
			 bool no_host_key, bool standalone, const char *const *checkpoints,
			 size_t ncheckpoints);

#endif
