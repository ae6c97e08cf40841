/*
 * A journal record as one row of CSV (RFC 4180), the shape of `sbxctl
 * audit export --format csv` and of GET /v1/audit?format=csv
 * (docs/audit.md, "Exports"): fixed columns, the outcome, the other
 * members as one JSON object, the hash, and the journal line itself, so
 * that a row can be checked with the verification key alone.  A cell a
 * spreadsheet would take for a formula (= + - @ first) gets a leading '.
 */
#ifndef SBX_RECORD_CSV_H
#define SBX_RECORD_CSV_H

#include <stdbool.h>
#include <stddef.h>

#define SBX_CSV_HEADER \
	"seq,time,event,actor,through,user,role,id,host,outcome,details,hash,record\r\n"

/* A growing text buffer; oom is set (and sticks) when memory ran out. */
struct sbx_csv_buf {
	char *p;
	size_t len, cap;
	bool oom;
};

void sbx_csv_buf_add(struct sbx_csv_buf *b, const void *s, size_t n);
void sbx_csv_buf_free(struct sbx_csv_buf *b);

/* Append the row (ending in CRLF) of the journal line (without its
 * newline) to row.  0, or -1 with why (a line that is no record, or out
 * of memory). */
int sbx_record_csv_row(struct sbx_csv_buf *row, const char *line, size_t len, char *why,
		       size_t whylen);

#endif
