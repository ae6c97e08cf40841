/*
 * A command line as one line of text, for the journal and a terminal:
 * sbx_sudo escapes each argv before it leaves sudo, and the broker
 * refuses what is not in this form.  Libc only, no state.
 *
 * Form: the arguments joined by one space.  An argument made only of
 * printable ASCII other than space, '"', '\'' and '\\' stays as it is;
 * any other is put in double quotes, with '\\' and '"' escaped by a
 * backslash, \n \r \t as such, every other control byte, DEL and every
 * byte that is not part of valid UTF-8 as \xHH.  Valid UTF-8 above ASCII
 * stays as it is.  A line longer than the room is cut after the last
 * whole argument (or escape) that fits, followed by " ...[N more bytes]"
 * where N counts the raw bytes left out.
 */
#ifndef SBX_CMDLINE_H
#define SBX_CMDLINE_H

#include <stdbool.h>
#include <stddef.h>

/* Escape argv (NULL-terminated) into out (outlen >= 64), NUL-terminated.
 * Returns the length written; *cut (may be NULL) says whether it was cut. */
size_t sbx_cmdline_escape(char *const argv[], char *out, size_t outlen, bool *cut);

/* Does s hold only what sbx_cmdline_escape writes: valid UTF-8 with no
 * control characters (no newline, no tab, no DEL)?  1 or 0. */
int sbx_cmdline_valid(const char *s);

#endif
