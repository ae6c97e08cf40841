/*
 * sbxctl audit tail: records as the broker appends them, live over its
 * socket (the TAIL op, docs/protocol.md), not by reading the files.
 */
#ifndef SBX_CLI_AUDIT_TAIL_H
#define SBX_CLI_AUDIT_TAIL_H

#include <stdbool.h>
#include <stdint.h>

#include "client.h"
#include "record_filter.h"

/* Print the last count records the caller may see that match f (text, or
 * with --json one JSON object per line); with follow, go on printing each
 * new durable one until the broker closes the stream or stdout goes away.
 * f's since/until are not used.  Returns the exit code. */
int sbx_audit_tail(const struct sbx_cli *c, const struct sbx_rec_filter *f, uint32_t count,
		   bool follow);

#endif
