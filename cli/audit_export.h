/*
 * sbxctl audit export / verify-export: a time range of the journal as a
 * file for auditors, with a companion FILE.manifest.json naming what it
 * holds and what proves it (docs/audit.md, "Exports"), and the check of
 * both against the journal or the verification key.  Offline, read-only:
 * the broker is not asked.
 */
#ifndef SBX_CLI_AUDIT_EXPORT_H
#define SBX_CLI_AUDIT_EXPORT_H

#include <stdint.h>

#include "client.h"

enum sbx_export_format {
	SBX_EXPORT_JSONL,  /* the journal's lines, byte for byte */
	SBX_EXPORT_JSON,   /* the same lines as the elements of one JSON array */
	SBX_EXPORT_CSV,    /* RFC 4180, one row per record, the line in the last column */
};

/* "csv", "jsonl", "json" -> 0 and *f; -1 otherwise. */
int sbx_export_parse_format(const char *s, enum sbx_export_format *f);

/* Write the records of [since, until) under state_dir to out (created,
 * mode 0600; an existing file is refused) and out.manifest.json.
 * Returns the exit code. */
int sbx_audit_export(const struct sbx_cli *c, const char *state_dir, int64_t since_us,
		     int64_t until_us, enum sbx_export_format fmt, const char *out);

/* Check file and file.manifest.json: against the journal under state_dir
 * (key_file NULL), or against the verification key in key_file (the
 * journal is not read).  Returns the exit code: 0 good, 1 something is
 * wrong (said on stdout), 2 cannot check. */
int sbx_audit_verify_export(const struct sbx_cli *c, const char *state_dir, const char *file,
			    const char *key_file);

#endif
