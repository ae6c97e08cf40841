/*
 * The grant table for libnss_sbx: each role's unix_group with its members
 * (users holding a live grant of the role, with the grant's expires_at,
 * and the role's standing members, without expiry), written to
 * <directory of broker.socket>/groups.table on every change.  The format
 * is common/sbx_table.h's; docs/nss.md describes it.
 *
 * The broker also answers the module's fallback ops (SBX_OP_GROUP_*) from
 * the same bytes, for when the file is missing or unreadable.
 */
#ifndef SBX_GROUPTABLE_H
#define SBX_GROUPTABLE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct sbx_broker;
struct sbx_policy;
struct sbx_state;

/* Exported from sbx-brokerd's executable (see SBX_BROKER_GUARD_SYMBOL):
 * libnss_sbx finds it with dlsym() and then never calls the broker's
 * socket from inside the broker. */
extern int sbx_brokerd_nss_guard;

/* Build and write the table once.  A table that cannot be written is
 * logged, not fatal: the module then asks the socket.  0 or a negative
 * errno. */
int sbx_grouptable_start(struct sbx_broker *b);
void sbx_grouptable_free(struct sbx_broker *b);

/* Every record (live): a grant.* record of a role with a unix group marks
 * the table for a rebuild. */
void sbx_grouptable_on_record(struct sbx_broker *b, const json_t *rec);
/* Every loop pass, last before the journal commit: rewrite the table if
 * it changed (or the broker swapped its state or policy), so the file is
 * current before any reply acknowledging a change goes out. */
void sbx_grouptable_tick(struct sbx_broker *b);
/* A reload may change roles' groups: rebuild at the next pass. */
void sbx_grouptable_on_reload(struct sbx_broker *b);

/* The table's bytes for policy p and state s at time now: every role with
 * a unix_group is a group; members are the role's standing members and
 * the holders of grants live at now, when the role's hosts match this
 * host.  *out is malloc'd.  0 or a negative errno. */
int sbx_grouptable_build(const struct sbx_policy *p, const struct sbx_state *s, int64_t now,
			 uint64_t generation, uint8_t **out, size_t *len);

/* "<dir of socket>/groups.table" into buf.  0 or -ENAMETOOLONG/-EINVAL. */
int sbx_grouptable_path(const char *socket, char *buf, size_t len);

/* Write buf to path through a temp file in the same directory and a
 * rename, mode 0644, so a reader sees the old table or the new one,
 * never a mix.  0, or -1 with err set. */
int sbx_grouptable_write(const char *path, const uint8_t *buf, size_t len, char *err,
			 size_t errlen);

#endif
