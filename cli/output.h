/*
 * Turning broker replies into output.  A reply is first decoded into JSON
 * (the one representation); --json prints that, and the text output is
 * rendered from the same objects, so both always say the same thing.
 *
 * Text output sanitizes every string (sbx_sanitize); JSON output keeps
 * them as sent (jansson escapes control characters), except that invalid
 * UTF-8 is replaced with '?'.
 */
#ifndef SBX_CLI_OUTPUT_H
#define SBX_CLI_OUTPUT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "frame.h"

/* What a set of fields is.  Each kind has a fixed list of JSON keys, all
 * present in every object (null, false or [] when the broker sent
 * nothing), in the order docs/cli.md lists them. */
enum sbx_out_kind {
	SBX_OUT_REQUEST,     /* a REQUEST record: a request or grant */
	SBX_OUT_ROLEINFO,    /* a ROLEINFO record: a role one may ask for */
	SBX_OUT_MEMBERSHIP,  /* a MEMBERSHIP record: how a user belongs to a role */
	SBX_OUT_CHECK,       /* a CHECK reply's own fields */
	SBX_OUT_EXPLAIN,     /* an EXPLAIN reply's own fields, MEMBERSHIPs as "roles" */
	SBX_OUT_PING,        /* a PING reply's own fields */
	SBX_OUT_REVIEWINFO,  /* a REVIEWINFO record: one role's access review */
	SBX_OUT_COMMAND,     /* a COMMANDINFO record: a sudo command run under a grant */
};

/* Decode one REC field's contents.  NULL only on ENOMEM. */
json_t *sbx_out_decode_rec(const sbx_field *rec, enum sbx_out_kind kind);
/* Decode a reply's top-level fields (STATUS is left out; MESSAGE is
 * "reason" where the kind has it).  NULL only on ENOMEM. */
json_t *sbx_out_decode_reply(const uint8_t *frame, size_t n, enum sbx_out_kind kind);
/* Every top-level REC with this tag, decoded, as an array. */
json_t *sbx_out_reply_records(const uint8_t *frame, size_t n, uint16_t tag,
			      enum sbx_out_kind kind);
/* The first such REC, decoded, or NULL when there is none (or ENOMEM). */
json_t *sbx_out_reply_record(const uint8_t *frame, size_t n, uint16_t tag,
			     enum sbx_out_kind kind);

/* Pretty-printed JSON and a newline.  0 or -1. */
int sbx_out_print_json(FILE *f, const json_t *j);

/* A string member, or NULL when missing, null or not a string. */
const char *sbx_out_str(const json_t *obj, const char *key);

/* One sentence about a request, e.g. "request 42: erin asks for
 * sandbox-admin for 1h — pending, needs 1 approval from erin's manager
 * (frank) or security-leads (lapses 2026-11-29T00:10:00Z)". */
void sbx_out_print_request(FILE *f, const json_t *req);
/* The same sentence about a request that was already open when it was
 * asked for again: "request 42 already exists (pending): erin asks ...". */
void sbx_out_print_request_existed(FILE *f, const json_t *req);
/* The sentence, then every known detail on its own indented line. */
void sbx_out_print_request_detail(FILE *f, const json_t *req);

enum sbx_out_col {
	SBX_COL_ID,
	SBX_COL_USER,
	SBX_COL_ROLE,
	SBX_COL_GROUP,   /* the unix group a grant brings */
	SBX_COL_STATE,
	SBX_COL_FOR,     /* asked or granted duration */
	SBX_COL_WHEN,    /* "EXPIRES/ENDS": lapse or expiry time, or when it ended */
	SBX_COL_LAPSES,  /* the same value headed "LAPSES" (pending lists) */
	SBX_COL_REASON,
};

/* An aligned table of requests, a header line first. */
int sbx_out_print_request_table(FILE *f, const json_t *reqs, const enum sbx_out_col *cols,
				size_t ncols);
/* Roles one may ask for, a paragraph each. */
void sbx_out_print_roles(FILE *f, const json_t *roles);
/* ROLE HOW VIA LOGIN HOST-MATCH table of memberships. */
int sbx_out_print_memberships(FILE *f, const json_t *memberships);

/* A plain aligned table: headers, then rows added one by one.  Cells are
 * sanitized when added; the last column is not padded. */
struct sbx_out_table {
	size_t ncols;
	size_t nrows;   /* header included */
	size_t cap;
	char **cells;   /* nrows * ncols */
};

int sbx_out_table_init(struct sbx_out_table *t, const char *const *headers, size_t ncols);
/* NULL cells print as "-". 0 or -ENOMEM. */
int sbx_out_table_add(struct sbx_out_table *t, const char *const *cells);
void sbx_out_table_print(FILE *f, const struct sbx_out_table *t);
void sbx_out_table_free(struct sbx_out_table *t);

/* Columns a string takes on a terminal (UTF-8 code points). */
size_t sbx_out_width(const char *s);

/* --- audit query output --------------------------------------------- */

/* One CSV field per RFC 4180: quoted (with "" for ") when it holds a
 * comma, a quote, CR or LF; NULL prints as an empty field. */
void sbx_out_csv_field(FILE *f, const char *s);
/* A value for "key=value" text: a string as is when it has no space, '"',
 * '=' or '\', else in double quotes with \" and \\ (sanitized either
 * way); "" for an empty string; anything else as compact JSON. */
void sbx_out_kv_value(FILE *f, const json_t *v);
/* Does event match pattern?  Exact, or a prefix when the pattern ends in
 * '.' ("grant.") or ".*" ("grant.*"). */
bool sbx_out_event_match(const char *pattern, const char *event);

#endif
