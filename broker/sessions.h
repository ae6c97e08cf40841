/*
 * Login sessions: pam_sbx registers each session it opens (who, the pid
 * leading it, tty, remote host, and the grant the login rested on) and
 * closes it at logout.  When a grant of a role with `on_expiry: terminate`
 * ends (expiry or revocation), the broker ends the sessions resting on
 * it: SIGHUP to the leader and everything below it, SIGKILL to whatever is
 * left after SBX_SESSION_GRACE_MS.
 *
 * The table lives in the journal like everything else (session.opened,
 * session.closed, session.terminated, session.killed, session.rebased) and
 * in snapshots under "ext"."sessions", so a restarted broker still knows
 * which sessions rest on which grant.  docs/pam.md and docs/audit.md
 * describe the events.
 */
#ifndef SBX_SESSIONS_H
#define SBX_SESSIONS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct sbx_broker;
struct sbx_sessions;

/* Between SIGHUP and SIGKILL. */
#define SBX_SESSION_GRACE_MS 5000
/* How often open sessions are checked for a leader that is gone. */
#define SBX_SESSION_SWEEP_MS 1000
/* At most this many sessions at once (a bound on memory and on the sweep). */
#define SBX_SESSION_MAX 16384

/* The table, empty; made before the journal is replayed.  NULL when out
 * of memory. */
struct sbx_sessions *sbx_sessions_new(void);
void sbx_sessions_free(struct sbx_sessions *t);

/* During the start-up replay: session.* records rebuild the table. */
void sbx_sessions_replay(struct sbx_sessions *t, const json_t *rec);
/* The table for a snapshot's "ext"."sessions", and back (0 or -1). */
json_t *sbx_sessions_save(const struct sbx_sessions *t);
int sbx_sessions_load(struct sbx_sessions *t, const json_t *saved);

/* After replay: end sessions whose terminate-grant ended while nobody
 * acted on it (a crash between the two).  0. */
int sbx_sessions_start(struct sbx_broker *b);

/* Every record (live): session.* keep the table; the end of a grant ends
 * or rebases the sessions resting on it. */
void sbx_sessions_on_record(struct sbx_broker *b, const json_t *rec);
/* Every loop pass: SIGKILL what outlived the grace, close sessions whose
 * leader is gone. */
void sbx_sessions_tick(struct sbx_broker *b, int64_t now_us);

/* For tests and sbxctl-style listings: how many sessions are in the table
 * (open or being ended). */
size_t sbx_sessions_count(const struct sbx_broker *b);
/* Each open session (the drift scan's question: on what does it rest
 * now?).  The user is borrowed for the call. */
typedef void sbx_session_fn(uint32_t id, const char *user, pid_t leader, int64_t opened_at,
			    void *ctx);
void sbx_sessions_each_open(const struct sbx_broker *b, sbx_session_fn *fn, void *ctx);

/* The process identity the broker keeps for a pid: its start time in
 * clock ticks since boot (/proc/PID/stat field 22), so that a recycled pid
 * is never signalled.  0 or -1 (no such process, or it is a zombie). */
int sbx_proc_start_time(pid_t pid, uint64_t *start);

#endif
