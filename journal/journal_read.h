/*
 * Reading a journal offline, one line at a time, for the audit tools
 * (sbxctl audit query/export/verify-export).  Read-only, no lock, no
 * chain check (audit verify does that): memory stays bounded by one read
 * buffer and the longest line, whatever the journal's size.
 */
#ifndef SBX_JOURNAL_READ_H
#define SBX_JOURNAL_READ_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Called with each complete line (without its '\n'), in seq order; the
 * bytes are valid only during the call.  Return 0 to go on, 1 to stop,
 * -1 on error (err is then the callback's to fill). */
typedef int (*sbx_journal_line_fn)(const char *line, size_t len, void *ctx, char *err,
				   size_t errlen);

/* Every line of the journal under state_dir, starting with the segment
 * that holds from_seq (1 or 0: from the start; lines before from_seq in
 * that segment are passed too: the caller filters).  An unterminated last
 * line (a torn write the broker will cut) is skipped.  0, 1 when the
 * callback stopped, -1 with err. */
int sbx_journal_lines(const char *state_dir, uint64_t from_seq, sbx_journal_line_fn fn, void *ctx,
		      char *err, size_t errlen);

/* The seq a record line starts with ({"seq":N,...), 0 when it does not. */
uint64_t sbx_journal_line_seq(const char *line, size_t len);

/* Parse one record line (the journal's fast parser, jansson's results).
 * NULL with err when it is not a JSON object. */
json_t *sbx_journal_line_parse(const char *line, size_t len, char *err, size_t errlen);

#endif
