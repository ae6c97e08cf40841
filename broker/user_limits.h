/*
 * What any one local user can make the broker do: connections held open
 * and changes written to the journal.  Users are told apart by uid
 * (SO_PEERCRED).  Root is never limited by these counts (pam_sbx asks from
 * sshd, as root), and a reserve of connection slots is root's alone, so
 * no crowd of local users can make a login wait.  docs/security.md has
 * the budget table.
 *
 * Threads: the event-loop thread only.
 */
#ifndef SBX_USER_LIMITS_H
#define SBX_USER_LIMITS_H

#include <stdint.h>
#include <sys/types.h>

struct sbx_limits_conf {
	int max_conns;          /* every connection, root's included */
	int max_conns_per_uid;  /* for each uid but root */
	int root_reserve;       /* of max_conns, for root only */
	int changes_per_minute; /* for each uid but root; also the burst */
};

struct sbx_limits;

struct sbx_limits *sbx_limits_new(const struct sbx_limits_conf *c);
void sbx_limits_free(struct sbx_limits *l);
/* New settings (a reload); counts are kept. */
void sbx_limits_set(struct sbx_limits *l, const struct sbx_limits_conf *c);

/* May uid hold one more connection?  0 (and it is counted), -EUSERS (this
 * uid holds its share), -ENFILE (the slots left are root's), -ENOMEM (too
 * many different uids at once: refused, never uncounted). */
int sbx_limits_conn_open(struct sbx_limits *l, uid_t uid);
void sbx_limits_conn_close(struct sbx_limits *l, uid_t uid);
/* Connections uid holds now. */
int sbx_limits_conns(const struct sbx_limits *l, uid_t uid);

/* One change asked for by uid at now_ms (monotonic).  0, or -EAGAIN with
 * *retry_ms: how long until the next one is allowed. */
int sbx_limits_change(struct sbx_limits *l, uid_t uid, int64_t now_ms, int64_t *retry_ms);

#endif
