/*
 * failmode=open's spool: a sudo run the broker could not hear about is
 * written down here before the command runs (and its end after), one
 * file each, and a later sudo run that reaches the broker hands them
 * over (SUDO_SPOOLED) and removes them.
 *
 * The directory is root's, mode 0700; each file 0600, written whole and
 * fsync'd, named TIME.NSEC.PID.uUID.KIND so that a name sort is time
 * order.  It holds at most SSUDO_SPOOL_MAX_FILES files, at most
 * SSUDO_SPOOL_MAX_PER_USER of one user's (a run's end has room up to
 * twice both): past that a write fails with EDQUOT.
 * A file is "key=value" lines; values are single lines (the command is
 * escaped, the rest sanitized), at most SSUDO_SPOOL_FILE_MAX bytes.
 */
#ifndef SSUDO_SPOOL_H
#define SSUDO_SPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "ssudo_client.h"

#define SSUDO_SPOOL_FILE_MAX 8192
/* Files handed over per sudo run: the rest wait for the next one. */
#define SSUDO_SPOOL_FLUSH_MAX 16
#define SSUDO_SPOOL_MAX_FILES 4096
#define SSUDO_SPOOL_MAX_PER_USER 256

struct ssudo_spooled {
	const char *kind;     /* run, refused, exited */
	uid_t uid;
	const struct ssudo_cmd *cmd;
	const char *verdict, *plugin, *reason; /* refused */
	bool has_status;      /* exited */
	int status, signal;
	int64_t elapsed_ms;
};

/* Write one file into dir.  0, or -1 with errno. */
int ssudo_spool_write(const char *dir, const struct ssudo_spooled *s);

/* Hand up to SSUDO_SPOOL_FLUSH_MAX files to the broker, oldest first,
 * removing each one it took (or refused as malformed).  Stops at the
 * first that does not get through.  Returns how many were handed over. */
int ssudo_spool_flush(const struct ssudo_opts *o);

#endif
