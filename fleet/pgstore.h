/*
 * The fleet's shared log in PostgreSQL: one ordered, hash-chained log of
 * journal records that several brokers append to and read from.  This is
 * only the database layer (libpq); the journal library makes, chains and
 * checks the records and their hashes, this file never computes or
 * verifies a hash: it stores and returns them.
 *
 * Schema (version SBX_PGSTORE_SCHEMA_VERSION; the SQL is in pgstore.c,
 * `schema_v1`, one comment per table):
 *   sbx_schema  one row: the schema version this database holds
 *   sbx_log     seq bigint PRIMARY KEY (1, 2, 3, ... gapless), line text
 *               (the record exactly as given), hash, prev (64 lowercase
 *               hex each), host (who appended it), created (database clock)
 *   sbx_hosts   one row per broker: applied seq, policy sha256, version,
 *               last contact (database clock)
 * The tables live in the first schema of the connection's search_path
 * (set `options=-csearch_path=NAME` in the conninfo for another one).
 *
 * Conflict rule (optimistic concurrency): a broker validates an operation
 * against the log as it applied it up to seq N and appends its record(s)
 * as N+1, N+2, ... in ONE transaction (one multi-row INSERT).  Appenders
 * first take a transaction-scoped advisory lock (key 126926429155175) and
 * check that the log ends at N: when another broker got there first,
 * sbx_pgstore_append() rolls back without writing and returns -EEXIST,
 * and the caller fetches what is new, revalidates and retries; a log that
 * ends before N is -ERANGE (nobody can leave a gap).  seq stays the
 * primary key, so a writer that skips the lock still cannot take a seq
 * twice (SQLSTATE 23505, also -EEXIST).
 *
 * NOTIFY: a successful append sends, in its transaction (so only on
 * commit), a notification on channel "sbx_log" whose payload is the
 * batch's last seq in decimal.  Listeners use it as a hint only: the log
 * is the truth, and notifications are lost while a connection is down,
 * which is why sbx_pgstore_wait() reports every reconnect as a wake-up.
 * Brokers also poll (1 s) in case a notification never comes.
 *
 * Timeouts: every call has one deadline, opts.timeout_ms from its start,
 * covering (re)connecting and every statement it sends; past it the
 * connection is dropped (the server then rolls back whatever was open) and
 * the call returns -ETIMEDOUT.  Connecting is asynchronous (PQconnectPoll,
 * our own poll()) and tries the hosts of a multi-host conninfo one by one,
 * each with a share of what is left of the deadline, so a silent host
 * cannot starve the next one; the host that worked last is tried first.
 * The server is also told statement_timeout = timeout_ms and
 * idle_in_transaction_session_timeout (so it gives up on its own), and the
 * socket gets TCP keepalives and tcp_user_timeout (unless the conninfo
 * sets them), so an idle LISTEN connection to a dead peer breaks too.
 * connect_timeout in the conninfo plays no part (libpq ignores it for
 * asynchronous connections).  Host name resolution (getaddrinfo) inside
 * libpq is the one step without a deadline of ours: use IP addresses or
 * hostaddr= for hard bounds.
 *
 * Errors: negative errno, and `why` in English naming the database as
 * host:port (never the password), e.g. "database 127.0.0.1:5432: ...".
 *   -ENOTCONN   no connection could be made, or it broke during the call
 *   -ETIMEDOUT  the deadline passed (or the server's statement_timeout)
 *   -EEXIST     append: another writer took one of those seqs
 *   -ERANGE     append: the log ends before recs[0].seq - 1 (a gap)
 *   -EROFS      the server is read-only (a standby): use
 *               target_session_attrs=read-write, or wait for promotion
 *   -EPROTO     schema version unknown to this code (newer, or older
 *               than it can use without init), or a database encoding
 *               other than UTF8/SQL_ASCII
 *   -ENOENT     no sbx schema in that database
 *   -EINVAL     a bad argument, or data the server refused
 *   -EACCES     the server wants a password and none was given, or
 *               the user may not use a table
 *   -EAGAIN     serialization failure or deadlock (retry)
 *   -ENOMEM, -EIO (anything else the server reported)
 * A wrong password is -ENOTCONN (libpq does not tell it apart from other
 * refusals); the why carries the server's words.
 * After -ENOTCONN or -ETIMEDOUT from an append whose COMMIT was already
 * sent, the outcome is unknown (the server may have committed): fetch
 * from N and compare hashes, as after -EEXIST.  A connection that broke is
 * dropped and the next call reconnects; a call that finds its idle
 * connection broken at its first statement reconnects and retries once
 * (within its deadline), so one server restart or failover costs no
 * failed call.
 *
 * Threading: a store is one connection.  Use it from one thread at a time
 * (the broker's fleet worker); different stores may be used in parallel.
 * All calls block, none beyond its deadline.  Nothing here logs, prints
 * or keeps global state.
 */
#ifndef SBX_FLEET_PGSTORE_H
#define SBX_FLEET_PGSTORE_H

#include <stddef.h>
#include <stdint.h>

#define SBX_PGSTORE_SCHEMA_VERSION 1
#define SBX_PGSTORE_TIMEOUT_DEFAULT_MS 5000
#define SBX_PGSTORE_FETCH_MAX 10000
#define SBX_PGSTORE_APPEND_MAX 1000
#define SBX_PGSTORE_CHANNEL "sbx_log"

struct sbx_pgstore;

struct sbx_pgstore_opts {
	const char *conninfo;   /* libpq conninfo or URI, as the admin wrote it */
	const char *password;   /* may be NULL (then the conninfo's, a passfile...);
	                         * already read from a file by the caller; never
	                         * logged or put into a why */
	int timeout_ms;         /* per call; 0 = SBX_PGSTORE_TIMEOUT_DEFAULT_MS */
	const char *host;       /* this broker's host name, stored with its appends */
};

/* One record of the log.  On append, host is ignored (the store's own
 * opts.host is stored).  hash and prev are 64 lowercase hex digits. */
struct sbx_pgrec {
	uint64_t seq;
	char *line;             /* the record's line, without '\n' */
	char hash[65];
	char prev[65];
	char *host;             /* who appended it (fetch only) */
};

/* What sbx_pgstore_hosts() returns, one per broker that reported. */
struct sbx_pghost {
	char *host;
	uint64_t applied_seq;
	char policy_sha256[65]; /* "" when not reported */
	char *version;          /* "" when not reported */
	int64_t last_contact_ms;/* Unix ms, by the database's clock */
	int64_t age_ms;         /* the database's now() minus last_contact: use
	                         * this for staleness (host clocks differ) */
};

/* Make a store and connect (within timeout_ms).  Copies what it needs of
 * o.  Returns 0 with *out set, or a negative errno with why; a store is
 * made only when the first connection works (so a typo in the conninfo or
 * a wrong password shows at start-up).  -EINVAL for a conninfo libpq
 * cannot parse or a missing host. */
int sbx_pgstore_open(const struct sbx_pgstore_opts *o, struct sbx_pgstore **out, char *why,
		     size_t whylen);

/* Close the connection and free.  NULL is fine. */
void sbx_pgstore_close(struct sbx_pgstore *s);

/* "host:port" of the server the store is connected to now ("" when not
 * connected).  Valid until the next call on s. */
const char *sbx_pgstore_server(const struct sbx_pgstore *s);

/* Create the schema, or migrate it to SBX_PGSTORE_SCHEMA_VERSION, in one
 * transaction under an advisory lock (brokers starting together do it
 * once).  Idempotent.  *version_out (may be NULL) gets the version the
 * database holds afterwards.  -EPROTO for a version newer than this code
 * knows: it never downgrades. */
int sbx_pgstore_init_schema(struct sbx_pgstore *s, int *version_out, char *why, size_t whylen);

/* Check, without changing anything, that the database holds exactly
 * SBX_PGSTORE_SCHEMA_VERSION and uses a UTF8 (or SQL_ASCII) encoding, so
 * lines come back as they went in.  -ENOENT when there is no schema,
 * -EPROTO for another version (the why says which and what to do). */
int sbx_pgstore_check_schema(struct sbx_pgstore *s, char *why, size_t whylen);

/* Append n records (1..SBX_PGSTORE_APPEND_MAX) in one transaction with a
 * NOTIFY.  recs[i].seq must be recs[0].seq + i, and recs[0].seq the log's
 * last seq + 1.  0 when all were committed; otherwise nothing was (except
 * for the unknown outcome described above).  -EEXIST when another writer
 * took one of those seqs, -ERANGE when recs[0].seq would leave a gap,
 * -EINVAL for bad records (seq 0, seqs not consecutive, hash or prev not
 * 64 lowercase hex, a NULL line, text the database refuses such as invalid
 * UTF-8), -ENOTCONN/-ETIMEDOUT when the database is away. */
int sbx_pgstore_append(struct sbx_pgstore *s, const struct sbx_pgrec *recs, size_t n, char *why,
		       size_t whylen);

/* Records with seq > after_seq, in seq order, at most max (1..
 * SBX_PGSTORE_FETCH_MAX; more is clamped).  *out is a new array of *n
 * records (NULL when none); free it with sbx_pgrecs_free().  -EBADMSG for
 * a row that is not what this code wrote (a hash not 64 characters). */
int sbx_pgstore_fetch(struct sbx_pgstore *s, uint64_t after_seq, size_t max,
		      struct sbx_pgrec **out, size_t *n, char *why, size_t whylen);

/* The log's last seq (0 when empty). */
int sbx_pgstore_last_seq(struct sbx_pgstore *s, uint64_t *seq, char *why, size_t whylen);

/* LISTEN on SBX_PGSTORE_CHANNEL, now and after every reconnect. */
int sbx_pgstore_listen(struct sbx_pgstore *s, char *why, size_t whylen);

/* Wait up to timeout_ms for a notification from another connection (the
 * store's own appends are skipped: the caller knows about them).  Returns
 * 1 with *notified_seq = the highest seq notified, or 1 with
 * *notified_seq = 0 after a reconnect (notifications may have been
 * missed: fetch), 0 on timeout, or a negative errno (-EINVAL before
 * sbx_pgstore_listen).  When the connection is down it reconnects (within
 * opts.timeout_ms); when that fails it sleeps out the rest of timeout_ms
 * before returning the error, so a loop around it never spins.  A
 * connection that breaks while waiting gives -ENOTCONN at once (the next
 * call reconnects).  A silent server (the kernel still answers keepalives)
 * looks like quiet: the caller's 1 s poll, whose fetch times out, is what
 * notices it.  notified_seq may be NULL. */
int sbx_pgstore_wait(struct sbx_pgstore *s, int timeout_ms, uint64_t *notified_seq);

/* Record this broker's status (host = opts.host): the seq it has applied,
 * the sha256 of its policy (64 lowercase hex, or NULL) and its version
 * (or NULL).  last_contact is set to the database's now(). */
int sbx_pgstore_report_host(struct sbx_pgstore *s, uint64_t applied_seq,
			    const char *policy_sha256, const char *version, char *why,
			    size_t whylen);

/* Every host that reported, by name.  *out is a new array of *n (NULL
 * when none); free it with sbx_pghosts_free(). */
int sbx_pgstore_hosts(struct sbx_pgstore *s, struct sbx_pghost **out, size_t *n, char *why,
		      size_t whylen);

void sbx_pgrecs_free(struct sbx_pgrec *v, size_t n);
void sbx_pghosts_free(struct sbx_pghost *v, size_t n);

#endif
