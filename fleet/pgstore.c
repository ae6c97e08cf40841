/*
 * The fleet's shared log in PostgreSQL (see pgstore.h for the design).
 *
 * Everything goes through libpq's asynchronous calls (PQconnectStartParams
 * + PQconnectPoll, PQsendQueryParams + PQconsumeInput) and our own poll()
 * with the call's deadline, because libpq's blocking calls have no bound:
 * connect_timeout is per host and in whole seconds, and PQexec waits for
 * a silent server forever.  Data only ever travels as parameters of the
 * extended protocol (PQsendQueryParams is PQexecParams without the
 * blocking); no SQL is built from data.
 */
#include "config.h"

#include "pgstore.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* pg_advisory_xact_lock key for schema changes: "sbxfleet" in ASCII. */
#define SCHEMA_LOCK_KEY "8313471163330160756"
/* At most this many hosts in one conninfo (libpq has no limit; a list
 * longer than this is a typo). */
#define MAX_HOSTS 16

/* ------------------------------------------------------------ the schema
 *
 * All of it, in one place.  schema_base runs on every init (it only
 * creates what is missing); migrations[v - 1] takes a database from
 * version v - 1 to v inside the same transaction.  Add a version by adding
 * an array, never by editing one that has shipped.
 */

static const char *const schema_base[] = {
	/* sbx_schema: exactly one row, the schema version this database
	 * holds.  Brokers refuse a version they do not know. */
	"CREATE TABLE IF NOT EXISTS sbx_schema ("
	" one boolean PRIMARY KEY DEFAULT true CHECK (one),"
	" version integer NOT NULL CHECK (version > 0),"
	" updated timestamptz NOT NULL DEFAULT now())",
	NULL,
};

static const char *const schema_v1[] = {
	/* sbx_log: the shared journal, one row per record.  seq is the
	 * primary key: two brokers appending the same seq is the conflict
	 * (unique violation) that makes the loser fetch and retry.  line is
	 * the record exactly as the journal wrote it (text, so the bytes come
	 * back unchanged); hash and prev are its chain links, stored, never
	 * computed here.  host and created say who appended it and when (by
	 * the database's clock). */
	"CREATE TABLE sbx_log ("
	" seq bigint PRIMARY KEY CHECK (seq > 0),"
	" line text NOT NULL,"
	" hash text NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),"
	" prev text NOT NULL CHECK (prev ~ '^[0-9a-f]{64}$'),"
	" host text NOT NULL,"
	" created timestamptz NOT NULL DEFAULT clock_timestamp())",
	"COMMENT ON TABLE sbx_log IS"
	" 'sbx fleet: the shared hash-chained journal (seq gapless from 1)'",
	/* sbx_hosts: one row per broker, replaced by each report: how far it
	 * has applied the log, which policy it runs (sha256 of the file) and
	 * its version; last_contact by the database's clock. */
	"CREATE TABLE sbx_hosts ("
	" host text PRIMARY KEY,"
	" applied_seq bigint NOT NULL CHECK (applied_seq >= 0),"
	" policy_sha256 text CHECK (policy_sha256 ~ '^[0-9a-f]{64}$'),"
	" version text,"
	" last_contact timestamptz NOT NULL DEFAULT now())",
	"COMMENT ON TABLE sbx_hosts IS 'sbx fleet: what each broker last reported'",
	NULL,
};

static const char *const *const migrations[SBX_PGSTORE_SCHEMA_VERSION] = {
	schema_v1,
};

/* The statements, with their data always in parameters. */
#define SQL_GET_VERSION "SELECT version FROM sbx_schema"
#define SQL_SET_VERSION \
	"INSERT INTO sbx_schema (one, version) VALUES (true, $1::integer)" \
	" ON CONFLICT (one) DO UPDATE SET version = EXCLUDED.version, updated = now()"
/* The first record of a batch must follow an existing one: no gaps. */
#define SQL_INSERT_BATCH \
	"INSERT INTO sbx_log (seq, line, hash, prev, host)" \
	" SELECT t.seq, t.line, t.hash, t.prev, $5::text" \
	" FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[])" \
	" AS t(seq, line, hash, prev) ORDER BY t.seq"
/* Appenders take it for their transaction (an arbitrary fixed key: 'sbxlog'). */
#define SQL_WRITER_LOCK "SELECT pg_advisory_xact_lock(126926429155175)"
#define SQL_NOTIFY "SELECT pg_notify('" SBX_PGSTORE_CHANNEL "', $1::text)"
#define SQL_LAST "SELECT coalesce(max(seq), 0) FROM sbx_log"
#define SQL_FETCH \
	"SELECT seq, line, hash, prev, host FROM sbx_log" \
	" WHERE seq > $1::bigint ORDER BY seq LIMIT $2::bigint"
#define SQL_REPORT \
	"INSERT INTO sbx_hosts (host, applied_seq, policy_sha256, version, last_contact)" \
	" VALUES ($1::text, $2::bigint, $3::text, $4::text, now())" \
	" ON CONFLICT (host) DO UPDATE SET applied_seq = EXCLUDED.applied_seq," \
	" policy_sha256 = EXCLUDED.policy_sha256, version = EXCLUDED.version," \
	" last_contact = now()"
#define SQL_HOSTS \
	"SELECT host, applied_seq, coalesce(policy_sha256, ''), coalesce(version, '')," \
	" floor(extract(epoch FROM last_contact) * 1000)::bigint," \
	" floor(extract(epoch FROM now() - last_contact) * 1000)::bigint" \
	" FROM sbx_hosts ORDER BY host"

/* ------------------------------------------------------------ the store */

struct target {
	char *host;             /* each may be NULL: libpq's default */
	char *hostaddr;
	char *port;
};

struct sbx_pgstore {
	/* The admin's conninfo, parsed, without host/hostaddr/port/password,
	 * with our defaults added.  NULL-terminated. */
	char **kw;
	char **val;
	size_t nkw;
	struct target tg[MAX_HOSTS];
	size_t ntg;
	size_t pref;            /* the target that worked last: tried first */
	char *password;
	char *host;
	int timeout_ms;

	PGconn *conn;
	char server[300];       /* "host:port" of conn */
	char where[300];        /* for a why without a connection */
	bool listening;         /* LISTEN wanted (and done on each connect) */
	bool missed;            /* reconnected while listening */
};

/* One public call: its deadline and what happened so far. */
struct call {
	int64_t deadline;
	int nstmt;              /* statements sent */
	bool lost_at_first;     /* the connection broke at the first one */
};

static int64_t mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int left_ms(int64_t deadline)
{
	int64_t left = deadline - mono_ms();

	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

__attribute__((format(printf, 3, 4)))
static void say(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* The first line of libpq's message, without the "connection to server
 * at ..., port N failed: " that repeats what our prefix says. */
static void first_line(const char *msg, char *out, size_t outlen)
{
	const char *p = msg ? msg : "", *f;
	size_t len;

	f = strstr(p, " failed: ");
	if (f && (size_t)(f - p) < strcspn(p, "\n"))
		p = f + strlen(" failed: ");
	while (*p == ' ' || *p == '\t')
		p++;
	len = strcspn(p, "\n");
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\r'))
		len--;
	if (len == 0) {
		p = "no message from libpq";
		len = strlen(p);
	}
	snprintf(out, outlen, "%.*s", (int)(len > INT_MAX ? INT_MAX : len), p);
}

/* Wait until fd is ready for events or the deadline passes: 0 or
 * -ETIMEDOUT (or -EBADF for no socket, which the next libpq call will
 * report properly). */
static int wait_sock(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int left = left_ms(deadline), rc;

		if (fd < 0)
			return -EBADF;
		if (left == 0)
			return -ETIMEDOUT;
		rc = poll(&pfd, 1, left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -errno;
	}
}

static void sleep_until(int64_t deadline)
{
	int left;

	while ((left = left_ms(deadline)) > 0)
		(void)poll(NULL, 0, left);
}

static void drop_conn(struct sbx_pgstore *s)
{
	if (s->conn)
		PQfinish(s->conn);
	s->conn = NULL;
}

/* Notices (e.g. "relation already exists, skipping") are not ours to
 * print: a library inside a daemon writes nothing to stderr. */
static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static bool is_hex64(const char *h)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((h[i] >= '0' && h[i] <= '9') || (h[i] >= 'a' && h[i] <= 'f')))
			return false;
	return h[64] == '\0';
}

static int parse_u64(const char *txt, uint64_t *v)
{
	char *end = NULL;
	unsigned long long x;

	if (!txt || *txt < '0' || *txt > '9')
		return -EBADMSG;
	errno = 0;
	x = strtoull(txt, &end, 10);
	if (errno || !end || *end)
		return -EBADMSG;
	*v = x;
	return 0;
}

static int parse_i64(const char *txt, int64_t *v)
{
	char *end = NULL;
	long long x;

	if (!txt || !*txt)
		return -EBADMSG;
	errno = 0;
	x = strtoll(txt, &end, 10);
	if (errno || !end || *end)
		return -EBADMSG;
	*v = x;
	return 0;
}

/* ------------------------------------------------------------ statements */

/* The connection broke (or libpq says it cannot go on): drop it. */
static int lost(struct sbx_pgstore *s, struct call *c, bool first, char *why, size_t whylen)
{
	char msg[256];

	first_line(s->conn ? PQerrorMessage(s->conn) : NULL, msg, sizeof(msg));
	say(why, whylen, "database %s: connection lost: %s", s->server, msg);
	drop_conn(s);
	if (first)
		c->lost_at_first = true;
	return -ENOTCONN;
}

static int timed_out(struct sbx_pgstore *s, char *why, size_t whylen)
{
	say(why, whylen, "database %s: no answer within %d ms", s->server, s->timeout_ms);
	/* Mid-statement: the protocol state is unknown, and closing is what
	 * makes the server roll back.  (PQcancel would open a new connection
	 * without a deadline.) */
	drop_conn(s);
	return -ETIMEDOUT;
}

/* What a server error means to the caller. */
static int map_sqlstate(const char *st)
{
	if (!st)
		return -EIO;
	if (!strcmp(st, "23505"))
		return -EEXIST;
	if (!strcmp(st, "57014") || !strcmp(st, "55P03"))
		return -ETIMEDOUT;     /* statement_timeout, lock_timeout */
	if (!strcmp(st, "25006"))
		return -EROFS;         /* read_only_sql_transaction: a standby */
	if (!strcmp(st, "42P01"))
		return -ENOENT;        /* undefined_table */
	if (!strcmp(st, "42501"))
		return -EACCES;
	if (!strcmp(st, "40001") || !strcmp(st, "40P01"))
		return -EAGAIN;
	if (!strncmp(st, "08", 2) || !strncmp(st, "57P", 3))
		return -ENOTCONN;      /* connection exception, shutdown */
	if (!strncmp(st, "22", 2) || !strncmp(st, "23", 2))
		return -EINVAL;        /* data exception, integrity */
	return -EIO;
}

/* Send one statement with its parameters (text) and wait for its result,
 * within the call's deadline.  Returns 0 with *resp (when resp is given;
 * else the result is freed), or a negative errno with why (the server's
 * SQLSTATE in it).  A broken or timed-out connection is dropped. */
static int exec(struct sbx_pgstore *s, struct call *c, const char *sql, int nparams,
		const char *const *params, PGresult **resp, char *why, size_t whylen)
{
	PGresult *res = NULL, *r = NULL;
	bool first = c->nstmt++ == 0;
	const char *st;
	int rc, f;

	if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
		rc = lost(s, c, first, why, whylen);
		goto out;
	}
	if (!PQsendQueryParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0)) {
		rc = lost(s, c, first, why, whylen);
		goto out;
	}
	/* Non-blocking: a full socket buffer (a big line, a silent peer)
	 * waits in poll() with the deadline, not in send(). */
	while ((f = PQflush(s->conn)) != 0) {
		if (f < 0) {
			rc = lost(s, c, first, why, whylen);
			goto out;
		}
		rc = wait_sock(PQsocket(s->conn), POLLIN | POLLOUT, c->deadline);
		if (rc == -ETIMEDOUT) {
			rc = timed_out(s, why, whylen);
			goto out;
		}
		if (!PQconsumeInput(s->conn)) {
			rc = lost(s, c, first, why, whylen);
			goto out;
		}
	}
	for (;;) {
		while (PQisBusy(s->conn)) {
			rc = wait_sock(PQsocket(s->conn), POLLIN, c->deadline);
			if (rc == -ETIMEDOUT) {
				rc = timed_out(s, why, whylen);
				goto out;
			}
			if (!PQconsumeInput(s->conn)) {
				rc = lost(s, c, first, why, whylen);
				goto out;
			}
		}
		r = PQgetResult(s->conn);
		if (!r)
			break;
		/* One statement, one result; keep an error over a success. */
		if (!res || PQresultStatus(r) == PGRES_FATAL_ERROR) {
			PQclear(res);
			res = r;
		} else {
			PQclear(r);
		}
		r = NULL;
	}
	if (!res) {
		rc = lost(s, c, first, why, whylen);
		goto out;
	}
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		/* Done, even if the connection broke right after (the next
		 * call notices that). */
		rc = 0;
		break;
	default:
		if (PQstatus(s->conn) != CONNECTION_OK) {
			rc = lost(s, c, first, why, whylen);
			break;
		}
		st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		rc = map_sqlstate(st);
		say(why, whylen, "database %s: %s (SQLSTATE %s)", s->server,
		    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) ?
		    PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : "error",
		    st ? st : "none");
		/* A standby stays a standby: the next call should look for a
		 * server that takes writes.  A shutdown message means the
		 * connection is going. */
		if (rc == -EROFS || rc == -ENOTCONN)
			drop_conn(s);
		if (rc == -ENOTCONN && first)
			c->lost_at_first = true;
		break;
	}
	if (rc == 0 && resp) {
		*resp = res;
		res = NULL;
	}
out:
	PQclear(r);
	PQclear(res);
	return rc;
}

/* exec for statements without parameters or rows. */
static int exec0(struct sbx_pgstore *s, struct call *c, const char *sql, char *why, size_t whylen)
{
	return exec(s, c, sql, 0, NULL, NULL, why, whylen);
}

/* COMMIT, and make sure it was one: a transaction that failed earlier
 * "commits" as ROLLBACK without an error. */
static int commit(struct sbx_pgstore *s, struct call *c, char *why, size_t whylen)
{
	PGresult *res = NULL;
	int rc;

	rc = exec(s, c, "COMMIT", 0, NULL, &res, why, whylen);
	if (rc == 0 && strcmp(PQcmdStatus(res), "COMMIT") != 0) {
		say(why, whylen, "database %s: the transaction was rolled back (%s)", s->server,
		    PQcmdStatus(res));
		rc = -EIO;
	}
	PQclear(res);
	return rc;
}

/* Roll back an open transaction after a failure, keeping the first why.
 * If even that fails (or there is no time left), drop the connection:
 * closing rolls back too. */
static void rollback(struct sbx_pgstore *s, struct call *c)
{
	char ignored[256];

	if (!s->conn)
		return;
	if (left_ms(c->deadline) == 0 || exec0(s, c, "ROLLBACK", ignored, sizeof(ignored)))
		drop_conn(s);
}

/* ------------------------------------------------------------ connecting */

static void target_name(const struct target *t, char *out, size_t outlen)
{
	const char *h = t->host && *t->host ? t->host :
			t->hostaddr && *t->hostaddr ? t->hostaddr : "(default host)";

	snprintf(out, outlen, "%s:%s", h, t->port && *t->port ? t->port : "(default port)");
}

/* The database to name in a why: the server we are connected to, else
 * the one we would try first. */
static const char *where(struct sbx_pgstore *s)
{
	if (s->conn)
		return s->server;
	target_name(&s->tg[s->pref], s->where, sizeof(s->where));
	return s->where;
}

/* One connection attempt at target i, until deadline.  0 with s->conn set,
 * or a negative errno with the reason (without the host) in msg. */
static int connect_one(struct sbx_pgstore *s, size_t i, int64_t deadline, char *msg,
		       size_t msglen)
{
	const char **kw = NULL, **val = NULL;
	const struct target *t = &s->tg[i];
	PGconn *conn = NULL;
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	size_t k, n = 0;
	int rc, slice = left_ms(deadline);

	/* The admin's keywords, this target's host/hostaddr/port, the
	 * password, the terminator. */
	kw = calloc(s->nkw + 5, sizeof(*kw));
	val = calloc(s->nkw + 5, sizeof(*val));
	if (!kw || !val) {
		snprintf(msg, msglen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (k = 0; k < s->nkw; k++, n++) {
		kw[n] = s->kw[k];
		val[n] = s->val[k];
	}
	if (t->host) {
		kw[n] = "host";
		val[n++] = t->host;
	}
	if (t->hostaddr) {
		kw[n] = "hostaddr";
		val[n++] = t->hostaddr;
	}
	if (t->port) {
		kw[n] = "port";
		val[n++] = t->port;
	}
	if (s->password) {
		kw[n] = "password";
		val[n++] = s->password;
	}
	kw[n] = NULL;
	val[n] = NULL;

	conn = PQconnectStartParams(kw, val, 0);
	if (!conn) {
		snprintf(msg, msglen, "out of memory");
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		if (PQstatus(conn) == CONNECTION_BAD || st == PGRES_POLLING_FAILED) {
			first_line(PQerrorMessage(conn), msg, msglen);
			rc = PQconnectionNeedsPassword(conn) ? -EACCES : -ENOTCONN;
			goto out;
		}
		if (st == PGRES_POLLING_OK)
			break;
		rc = wait_sock(PQsocket(conn), st == PGRES_POLLING_READING ? POLLIN : POLLOUT,
			       deadline);
		if (rc == -ETIMEDOUT) {
			snprintf(msg, msglen, "no answer within %d ms", slice);
			goto out;
		}
		st = PQconnectPoll(conn);
	}
	if (PQsetnonblocking(conn, 1) != 0) {
		first_line(PQerrorMessage(conn), msg, msglen);
		rc = -ENOTCONN;
		goto out;
	}
	PQsetNoticeProcessor(conn, quiet, NULL);
	s->conn = conn;
	conn = NULL;
	snprintf(s->server, sizeof(s->server), "%s:%s", PQhost(s->conn), PQport(s->conn));
	rc = 0;
out:
	if (conn)
		PQfinish(conn);
	free(kw);
	free(val);
	return rc;
}

/* Connect to the first target that works, starting with the one that
 * worked last, each with an equal share of what is left of the deadline
 * (a silent host must not use up the next one's time).  Re-LISTENs. */
static int connect_all(struct sbx_pgstore *s, struct call *c, char *why, size_t whylen)
{
	char msg[256], name[300], all[1024] = "";
	size_t k, i, used = 0;
	bool all_timeouts = true, any_acces = false;
	int rc = -ENOTCONN, one;

	drop_conn(s);
	for (k = 0; k < s->ntg; k++) {
		int left = left_ms(c->deadline);

		i = (s->pref + k) % s->ntg;
		if (left == 0) {
			snprintf(msg, sizeof(msg), "no answer within %d ms", s->timeout_ms);
			one = -ETIMEDOUT;
		} else {
			one = connect_one(s, i, mono_ms() + left / (int)(s->ntg - k), msg,
					  sizeof(msg));
		}
		if (one == 0) {
			s->pref = i;
			rc = 0;
			break;
		}
		if (one != -ETIMEDOUT)
			all_timeouts = false;
		if (one == -EACCES)
			any_acces = true;
		target_name(&s->tg[i], name, sizeof(name));
		if (used < sizeof(all))
			used += (size_t)snprintf(all + used, sizeof(all) - used, "%s%s: %s",
						 used ? "; " : "", name, msg);
	}
	if (rc) {
		rc = all_timeouts ? -ETIMEDOUT : any_acces ? -EACCES : -ENOTCONN;
		say(why, whylen, "cannot connect to the database: %s", all);
		goto out;
	}
	if (s->listening) {
		rc = exec0(s, c, "LISTEN " SBX_PGSTORE_CHANNEL, why, whylen);
		if (rc) {
			drop_conn(s);
			goto out;
		}
		s->missed = true;
	}
out:
	return rc;
}

typedef int (*op_fn)(struct sbx_pgstore *s, struct call *c, void *arg, char *why, size_t whylen);

/* Run one public call: connect if needed, run fn; if the connection it
 * reused turned out broken at fn's first statement (server restarted,
 * failover), connect again and run fn once more, all within one
 * deadline. */
static int run(struct sbx_pgstore *s, op_fn fn, void *arg, char *why, size_t whylen)
{
	struct call c = { .deadline = mono_ms() + s->timeout_ms };
	bool reused;
	int rc = -ENOTCONN, attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		c.nstmt = 0;
		c.lost_at_first = false;
		if (s->conn && PQstatus(s->conn) != CONNECTION_OK)
			drop_conn(s);
		reused = s->conn != NULL;
		if (!s->conn) {
			rc = connect_all(s, &c, why, whylen);
			if (rc)
				break;
		}
		rc = fn(s, &c, arg, why, whylen);
		if (!(rc == -ENOTCONN && reused && c.lost_at_first))
			break;
	}
	return rc;
}

/* ------------------------------------------------------------ open/close */

static void free_kw(struct sbx_pgstore *s)
{
	size_t i;

	for (i = 0; i < s->nkw; i++) {
		if (!strcmp(s->kw[i], "password"))
			explicit_bzero(s->val[i], strlen(s->val[i]));
		free(s->kw[i]);
		free(s->val[i]);
	}
	free(s->kw);
	free(s->val);
	s->kw = s->val = NULL;
	s->nkw = 0;
}

static int add_kw(struct sbx_pgstore *s, const char *k, const char *v)
{
	char **nk, **nv;

	nk = realloc(s->kw, (s->nkw + 1) * sizeof(*nk));
	if (!nk)
		return -ENOMEM;
	s->kw = nk;
	nv = realloc(s->val, (s->nkw + 1) * sizeof(*nv));
	if (!nv)
		return -ENOMEM;
	s->val = nv;
	s->kw[s->nkw] = strdup(k);
	s->val[s->nkw] = strdup(v);
	if (!s->kw[s->nkw] || !s->val[s->nkw]) {
		free(s->kw[s->nkw]);
		free(s->val[s->nkw]);
		return -ENOMEM;
	}
	s->nkw++;
	return 0;
}

/* Split a comma-separated list (libpq's multi-host syntax) into
 * field idx of up to MAX_HOSTS targets; *count gets the list's length. */
static int split_into(struct sbx_pgstore *s, const char *list, size_t field, size_t *count)
{
	const char *p = list;
	size_t n = 0;

	for (;;) {
		size_t len = strcspn(p, ",");
		char *item;

		if (n == MAX_HOSTS)
			return -E2BIG;
		item = strndup(p, len);
		if (!item)
			return -ENOMEM;
		if (field == 0)
			s->tg[n].host = item;
		else if (field == 1)
			s->tg[n].hostaddr = item;
		else
			s->tg[n].port = item;
		n++;
		if (!p[len])
			break;
		p += len + 1;
	}
	*count = n;
	return 0;
}

/* The admin's conninfo, taken apart: host/hostaddr/port into targets
 * (tried one at a time), the rest kept, and our bounds added where the
 * admin set none. */
static int parse_conninfo(struct sbx_pgstore *s, const char *conninfo, char *why, size_t whylen)
{
	PQconninfoOption *opts = NULL, *o;
	char *err = NULL, *srvopts = NULL, buf[32];
	const char *host = NULL, *hostaddr = NULL, *port = NULL, *options = NULL;
	bool have_ka = false, have_kai = false, have_kaint = false, have_kac = false,
	     have_tut = false;
	size_t nh = 0, na = 0, np = 0, i;
	int rc;

	opts = PQconninfoParse(conninfo, &err);
	if (!opts) {
		char msg[256];

		first_line(err, msg, sizeof(msg));
		say(why, whylen, "database conninfo: %s", err ? msg : "out of memory");
		rc = err ? -EINVAL : -ENOMEM;
		goto out;
	}
	for (o = opts; o->keyword; o++) {
		if (!o->val)
			continue;
		if (!strcmp(o->keyword, "host")) {
			host = o->val;
		} else if (!strcmp(o->keyword, "hostaddr")) {
			hostaddr = o->val;
		} else if (!strcmp(o->keyword, "port")) {
			port = o->val;
		} else if (!strcmp(o->keyword, "options")) {
			options = o->val;
		} else if (!strcmp(o->keyword, "password") && s->password) {
			continue;       /* the caller's password wins */
		} else if (!strcmp(o->keyword, "client_encoding")) {
			continue;       /* always UTF8: lines must come back as sent */
		} else {
			have_ka |= !strcmp(o->keyword, "keepalives");
			have_kai |= !strcmp(o->keyword, "keepalives_idle");
			have_kaint |= !strcmp(o->keyword, "keepalives_interval");
			have_kac |= !strcmp(o->keyword, "keepalives_count");
			have_tut |= !strcmp(o->keyword, "tcp_user_timeout");
			rc = add_kw(s, o->keyword, o->val);
			if (rc)
				goto oom;
		}
	}

	if (host && (rc = split_into(s, host, 0, &nh)))
		goto list;
	if (hostaddr && (rc = split_into(s, hostaddr, 1, &na)))
		goto list;
	if (port && (rc = split_into(s, port, 2, &np)))
		goto list;
	if (nh && na && nh != na) {
		say(why, whylen, "database conninfo: %zu hosts but %zu hostaddrs", nh, na);
		rc = -EINVAL;
		goto out;
	}
	s->ntg = nh > na ? nh : na;
	if (s->ntg == 0)
		s->ntg = 1;     /* libpq's defaults (PGHOST, the socket) */
	if (np > 1 && np != s->ntg) {
		say(why, whylen, "database conninfo: %zu hosts but %zu ports", s->ntg, np);
		rc = -EINVAL;
		goto out;
	}
	/* One port for all hosts, as libpq does. */
	for (i = 1; np == 1 && i < s->ntg; i++) {
		s->tg[i].port = strdup(s->tg[0].port);
		if (!s->tg[i].port)
			goto oom;
	}

	rc = add_kw(s, "client_encoding", "UTF8");
	if (!rc && !have_ka)
		rc = add_kw(s, "keepalives", "1");
	snprintf(buf, sizeof(buf), "%d", s->timeout_ms / 1000 > 0 ? s->timeout_ms / 1000 : 1);
	if (!rc && !have_kai)
		rc = add_kw(s, "keepalives_idle", buf);
	if (!rc && !have_kaint)
		rc = add_kw(s, "keepalives_interval", "1");
	if (!rc && !have_kac)
		rc = add_kw(s, "keepalives_count", "3");
	snprintf(buf, sizeof(buf), "%d", s->timeout_ms);
	if (!rc && !have_tut)
		rc = add_kw(s, "tcp_user_timeout", buf);
	if (!rc)
		rc = add_kw(s, "fallback_application_name", "sbx-brokerd");
	/* The server's own bounds, after the admin's options (later -c
	 * wins): a statement never runs longer than we wait for it, and a
	 * transaction whose client vanished is rolled back. */
	if (!rc && asprintf(&srvopts, "%s%s-c statement_timeout=%d -c idle_in_transaction_session_timeout=%d",
			    options ? options : "", options && *options ? " " : "", s->timeout_ms,
			    s->timeout_ms > INT_MAX / 2 ? INT_MAX : 2 * s->timeout_ms) < 0) {
		srvopts = NULL;
		rc = -ENOMEM;
	}
	if (!rc)
		rc = add_kw(s, "options", srvopts);
	if (rc)
		goto oom;
	rc = 0;
	goto out;
list:
	if (rc == -E2BIG) {
		say(why, whylen, "database conninfo: more than %d hosts", MAX_HOSTS);
		rc = -EINVAL;
		goto out;
	}
oom:
	say(why, whylen, "database conninfo: out of memory");
	rc = -ENOMEM;
out:
	free(srvopts);
	if (opts)
		PQconninfoFree(opts);
	if (err)
		PQfreemem(err);
	return rc;
}

void sbx_pgstore_close(struct sbx_pgstore *s)
{
	size_t i;

	if (!s)
		return;
	drop_conn(s);
	free_kw(s);
	for (i = 0; i < MAX_HOSTS; i++) {
		free(s->tg[i].host);
		free(s->tg[i].hostaddr);
		free(s->tg[i].port);
	}
	if (s->password) {
		explicit_bzero(s->password, strlen(s->password));
		free(s->password);
	}
	free(s->host);
	free(s);
}

static int op_nothing(struct sbx_pgstore *s, struct call *c, void *arg, char *why, size_t whylen)
{
	(void)s;
	(void)c;
	(void)arg;
	(void)why;
	(void)whylen;
	return 0;
}

int sbx_pgstore_open(const struct sbx_pgstore_opts *o, struct sbx_pgstore **out, char *why,
		     size_t whylen)
{
	struct sbx_pgstore *s = NULL;
	int rc;

	if (out)
		*out = NULL;
	if (!o || !out || !o->conninfo || !o->host || !*o->host || o->timeout_ms < 0) {
		say(why, whylen, "database: no conninfo, no host name or a negative timeout");
		rc = -EINVAL;
		goto out;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		rc = -ENOMEM;
		say(why, whylen, "database: out of memory");
		goto out;
	}
	s->timeout_ms = o->timeout_ms ? o->timeout_ms : SBX_PGSTORE_TIMEOUT_DEFAULT_MS;
	s->host = strdup(o->host);
	s->password = o->password ? strdup(o->password) : NULL;
	if (!s->host || (o->password && !s->password)) {
		rc = -ENOMEM;
		say(why, whylen, "database: out of memory");
		goto out;
	}
	rc = parse_conninfo(s, o->conninfo, why, whylen);
	if (rc)
		goto out;
	rc = run(s, op_nothing, NULL, why, whylen);
	if (rc)
		goto out;
	*out = s;
	s = NULL;
out:
	sbx_pgstore_close(s);
	return rc;
}

const char *sbx_pgstore_server(const struct sbx_pgstore *s)
{
	return s && s->conn ? s->server : "";
}

/* ------------------------------------------------------------ schema */

/* The version sbx_schema holds: 0 when it has no row. */
static int read_version(struct sbx_pgstore *s, struct call *c, int *version, char *why,
			size_t whylen)
{
	PGresult *res = NULL;
	int64_t v = 0;
	int rc;

	rc = exec(s, c, SQL_GET_VERSION, 0, NULL, &res, why, whylen);
	if (rc)
		goto out;
	if (PQntuples(res) > 0 && (parse_i64(PQgetvalue(res, 0, 0), &v) || v <= 0 || v > INT_MAX)) {
		say(why, whylen, "database %s: sbx_schema holds a version that is not a number",
		    s->server);
		rc = -EPROTO;
		goto out;
	}
	*version = (int)v;
out:
	PQclear(res);
	return rc;
}

static int check_encoding(struct sbx_pgstore *s, char *why, size_t whylen)
{
	const char *enc = PQparameterStatus(s->conn, "server_encoding");

	if (enc && (!strcmp(enc, "UTF8") || !strcmp(enc, "SQL_ASCII")))
		return 0;
	say(why, whylen,
	    "database %s: its encoding is %s; sbx needs UTF8 (CREATE DATABASE ... ENCODING 'UTF8')",
	    s->server, enc ? enc : "unknown");
	return -EPROTO;
}

static int op_init_schema(struct sbx_pgstore *s, struct call *c, void *arg, char *why,
			  size_t whylen)
{
	int *version_out = arg, version = 0, v, rc;
	char vbuf[16];
	const char *params[1] = { vbuf };
	const char *const *sql;
	bool in_tx = false;

	rc = check_encoding(s, why, whylen);
	if (rc)
		goto out;
	rc = exec0(s, c, "BEGIN", why, whylen);
	if (rc)
		goto out;
	in_tx = true;
	rc = exec0(s, c, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK_KEY ")", why, whylen);
	for (sql = schema_base; !rc && *sql; sql++)
		rc = exec0(s, c, *sql, why, whylen);
	if (!rc)
		rc = read_version(s, c, &version, why, whylen);
	if (rc)
		goto out;
	if (version > SBX_PGSTORE_SCHEMA_VERSION) {
		say(why, whylen,
		    "database %s holds sbx schema version %d, newer than this sbx knows (%d): upgrade sbx; it never downgrades a schema",
		    s->server, version, SBX_PGSTORE_SCHEMA_VERSION);
		rc = -EPROTO;
		goto out;
	}
	for (v = version + 1; v <= SBX_PGSTORE_SCHEMA_VERSION; v++)
		for (sql = migrations[v - 1]; !rc && *sql; sql++)
			rc = exec0(s, c, *sql, why, whylen);
	if (rc)
		goto out;
	if (version < SBX_PGSTORE_SCHEMA_VERSION) {
		snprintf(vbuf, sizeof(vbuf), "%d", SBX_PGSTORE_SCHEMA_VERSION);
		rc = exec(s, c, SQL_SET_VERSION, 1, params, NULL, why, whylen);
		if (rc)
			goto out;
	}
	rc = commit(s, c, why, whylen);
	in_tx = false;
	if (rc)
		goto out;
	if (version_out)
		*version_out = SBX_PGSTORE_SCHEMA_VERSION;
out:
	if (rc && in_tx)
		rollback(s, c);
	return rc;
}

int sbx_pgstore_init_schema(struct sbx_pgstore *s, int *version_out, char *why, size_t whylen)
{
	if (!s)
		return -EINVAL;
	return run(s, op_init_schema, version_out, why, whylen);
}

static int op_check_schema(struct sbx_pgstore *s, struct call *c, void *arg, char *why,
			   size_t whylen)
{
	int version = 0, rc;

	(void)arg;
	rc = check_encoding(s, why, whylen);
	if (rc)
		goto out;
	rc = read_version(s, c, &version, why, whylen);
	if (rc == -ENOENT || (!rc && version == 0)) {
		say(why, whylen, "database %s has no sbx schema (no sbx_schema table or row): initialise it first",
		    s->server);
		rc = -ENOENT;
		goto out;
	}
	if (rc)
		goto out;
	if (version > SBX_PGSTORE_SCHEMA_VERSION) {
		say(why, whylen,
		    "database %s holds sbx schema version %d, newer than this sbx knows (%d): upgrade sbx",
		    s->server, version, SBX_PGSTORE_SCHEMA_VERSION);
		rc = -EPROTO;
	} else if (version < SBX_PGSTORE_SCHEMA_VERSION) {
		say(why, whylen,
		    "database %s holds sbx schema version %d, older than this sbx uses (%d): run the schema init to migrate it",
		    s->server, version, SBX_PGSTORE_SCHEMA_VERSION);
		rc = -EPROTO;
	}
out:
	return rc;
}

int sbx_pgstore_check_schema(struct sbx_pgstore *s, char *why, size_t whylen)
{
	if (!s)
		return -EINVAL;
	return run(s, op_check_schema, NULL, why, whylen);
}

/* ------------------------------------------------------------ the log */

struct append_arg {
	const struct sbx_pgrec *recs;
	size_t n;
};

static int op_last(struct sbx_pgstore *s, struct call *c, void *arg, char *why, size_t whylen)
{
	uint64_t *seq = arg;
	PGresult *res = NULL;
	int rc;

	rc = exec(s, c, SQL_LAST, 0, NULL, &res, why, whylen);
	if (rc)
		goto out;
	if (PQntuples(res) != 1 || parse_u64(PQgetvalue(res, 0, 0), seq)) {
		say(why, whylen, "database %s: max(seq) is not a number", s->server);
		rc = -EBADMSG;
	}
out:
	PQclear(res);
	return rc;
}

/* One text[] literal element: double-quoted, with \ and " escaped. */
static void array_put(char **p, const char *v)
{
	*(*p)++ = '"';
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			*(*p)++ = '\\';
		*(*p)++ = *v;
	}
	*(*p)++ = '"';
}

/* The batch as four array literals (seqs, lines, hashes, prevs), so that
 * one INSERT writes it: a short transaction leaves others a short window. */
static int batch_arrays(const struct append_arg *a, char *arr[4])
{
	size_t cap[4] = { 3, 3, 3, 3 };
	char *p[4];

	for (size_t i = 0; i < a->n; i++) {
		cap[0] += 21;
		cap[1] += 2 * strlen(a->recs[i].line) + 3;
		cap[2] += 67;
		cap[3] += 67;
	}
	for (int k = 0; k < 4; k++) {
		arr[k] = malloc(cap[k]);
		if (!arr[k])
			return -ENOMEM;
		p[k] = arr[k];
		*p[k]++ = '{';
	}
	for (size_t i = 0; i < a->n; i++) {
		if (i)
			for (int k = 0; k < 4; k++)
				*p[k]++ = ',';
		p[0] += sprintf(p[0], "%" PRIu64, a->recs[i].seq);
		array_put(&p[1], a->recs[i].line);
		array_put(&p[2], a->recs[i].hash);
		array_put(&p[3], a->recs[i].prev);
	}
	for (int k = 0; k < 4; k++) {
		*p[k]++ = '}';
		*p[k] = '\0';
	}
	return 0;
}

/* Under the writers' lock, does the log end right before the batch?  0,
 * -EEXIST (another writer took those seqs: nothing was written, the
 * caller fetches), -ERANGE (a gap), or the error. */
static int tail_is(struct sbx_pgstore *s, struct call *c, uint64_t want, char *why,
		   size_t whylen)
{
	uint64_t last = 0;
	int rc = exec(s, c, SQL_WRITER_LOCK, 0, NULL, NULL, why, whylen);

	if (!rc)
		rc = op_last(s, c, &last, why, whylen);
	if (rc)
		return rc;
	if (last > want) {
		say(why, whylen, "database %s: seq %" PRIu64 " was taken by another writer",
		    s->server, want + 1);
		return -EEXIST;
	}
	if (last < want) {
		say(why, whylen, "database %s: seq %" PRIu64 " would leave a gap: the log ends at seq %"
		    PRIu64, s->server, want + 1, last);
		return -ERANGE;
	}
	return 0;
}

static int op_append(struct sbx_pgstore *s, struct call *c, void *arg, char *why, size_t whylen)
{
	const struct append_arg *a = arg;
	PGresult *res = NULL;
	char *arr[4] = { NULL, NULL, NULL, NULL }, lastbuf[24];
	const char *params[5];
	bool in_tx = false;
	int rc;

	rc = batch_arrays(a, arr);
	if (rc) {
		say(why, whylen, "database %s: append: out of memory", s->server);
		goto out;
	}
	rc = exec0(s, c, "BEGIN", why, whylen);
	if (rc)
		goto out;
	in_tx = true;
	/* Writers queue on the lock instead of racing on the primary key:
	 * a loser learns it lost without writing (and waiting on) rows.  The
	 * key stays the last word: a writer without the lock still fails. */
	rc = tail_is(s, c, a->recs[0].seq - 1, why, whylen);
	if (rc)
		goto out;
	for (int k = 0; k < 4; k++)
		params[k] = arr[k];
	params[4] = s->host;
	rc = exec(s, c, SQL_INSERT_BATCH, 5, params, &res, why, whylen);
	if (rc == -EEXIST)
		say(why, whylen, "database %s: seq %" PRIu64 " was taken by another writer",
		    s->server, a->recs[0].seq);
	if (rc)
		goto out;
	/* Delivered to listeners only if the transaction commits. */
	snprintf(lastbuf, sizeof(lastbuf), "%" PRIu64, a->recs[a->n - 1].seq);
	params[0] = lastbuf;
	rc = exec(s, c, SQL_NOTIFY, 1, params, NULL, why, whylen);
	if (rc)
		goto out;
	/* The server's statement_timeout does not cover a COMMIT waiting for
	 * a synchronous standby (PostgreSQL disables it before committing),
	 * so only our deadline bounds this; past it the outcome is unknown. */
	rc = commit(s, c, why, whylen);
	in_tx = false;
out:
	PQclear(res);
	if (rc && in_tx)
		rollback(s, c);
	for (int k = 0; k < 4; k++)
		free(arr[k]);
	return rc;
}

int sbx_pgstore_append(struct sbx_pgstore *s, const struct sbx_pgrec *recs, size_t n, char *why,
		       size_t whylen)
{
	struct append_arg a = { .recs = recs, .n = n };
	size_t i;
	int rc;

	if (!s)
		return -EINVAL;
	if (!recs || n == 0 || n > SBX_PGSTORE_APPEND_MAX) {
		say(why, whylen, "database %s: append: between 1 and %d records at a time",
		    where(s), SBX_PGSTORE_APPEND_MAX);
		rc = -EINVAL;
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (recs[i].seq == 0 || recs[i].seq != recs[0].seq + i) {
			say(why, whylen, "database %s: append: record %zu has seq %" PRIu64 ", not %" PRIu64,
			    where(s), i, recs[i].seq, recs[0].seq + i);
			rc = -EINVAL;
			goto out;
		}
		if (!recs[i].line || !is_hex64(recs[i].hash) || !is_hex64(recs[i].prev)) {
			say(why, whylen,
			    "database %s: append: seq %" PRIu64 ": no line, or hash/prev not 64 lowercase hex digits",
			    where(s), recs[i].seq);
			rc = -EINVAL;
			goto out;
		}
	}
	rc = run(s, op_append, &a, why, whylen);
out:
	return rc;
}

int sbx_pgstore_last_seq(struct sbx_pgstore *s, uint64_t *seq, char *why, size_t whylen)
{
	if (!s || !seq)
		return -EINVAL;
	return run(s, op_last, seq, why, whylen);
}

struct fetch_arg {
	uint64_t after;
	size_t max;
	struct sbx_pgrec *v;
	size_t n;
};

static int op_fetch(struct sbx_pgstore *s, struct call *c, void *arg, char *why, size_t whylen)
{
	struct fetch_arg *a = arg;
	PGresult *res = NULL;
	struct sbx_pgrec *v = NULL;
	char after[24], max[24];
	const char *params[2] = { after, max };
	int i, rows = 0, rc;

	snprintf(after, sizeof(after), "%" PRIu64, a->after);
	snprintf(max, sizeof(max), "%zu", a->max);
	rc = exec(s, c, SQL_FETCH, 2, params, &res, why, whylen);
	if (rc)
		goto out;
	rows = PQntuples(res);
	if (rows > 0) {
		v = calloc((size_t)rows, sizeof(*v));
		if (!v) {
			say(why, whylen, "database %s: fetch: out of memory", s->server);
			rc = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < rows; i++) {
		if (parse_u64(PQgetvalue(res, i, 0), &v[i].seq) ||
		    PQgetlength(res, i, 2) != 64 || PQgetlength(res, i, 3) != 64) {
			say(why, whylen, "database %s: sbx_log row %d is not what sbx writes",
			    s->server, i);
			rc = -EBADMSG;
			goto out;
		}
		memcpy(v[i].hash, PQgetvalue(res, i, 2), 65);
		memcpy(v[i].prev, PQgetvalue(res, i, 3), 65);
		v[i].line = strdup(PQgetvalue(res, i, 1));
		v[i].host = strdup(PQgetvalue(res, i, 4));
		if (!v[i].line || !v[i].host) {
			say(why, whylen, "database %s: fetch: out of memory", s->server);
			rc = -ENOMEM;
			goto out;
		}
	}
	a->v = v;
	a->n = (size_t)rows;
	v = NULL;
out:
	sbx_pgrecs_free(v, (size_t)rows);
	PQclear(res);
	return rc;
}

int sbx_pgstore_fetch(struct sbx_pgstore *s, uint64_t after_seq, size_t max,
		      struct sbx_pgrec **out, size_t *n, char *why, size_t whylen)
{
	struct fetch_arg a = { .after = after_seq, .max = max };
	int rc;

	if (out)
		*out = NULL;
	if (n)
		*n = 0;
	if (!s)
		return -EINVAL;
	if (!out || !n || max == 0 || after_seq > INT64_MAX) {
		say(why, whylen, "database %s: fetch: no output, max 0 or after_seq past 2^63",
		    where(s));
		return -EINVAL;
	}
	if (a.max > SBX_PGSTORE_FETCH_MAX)
		a.max = SBX_PGSTORE_FETCH_MAX;
	rc = run(s, op_fetch, &a, why, whylen);
	if (rc == 0) {
		*out = a.v;
		*n = a.n;
	}
	return rc;
}

void sbx_pgrecs_free(struct sbx_pgrec *v, size_t n)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < n; i++) {
		free(v[i].line);
		free(v[i].host);
	}
	free(v);
}

/* ------------------------------------------------------------ notifications */

static int op_listen(struct sbx_pgstore *s, struct call *c, void *arg, char *why, size_t whylen)
{
	(void)arg;
	return exec0(s, c, "LISTEN " SBX_PGSTORE_CHANNEL, why, whylen);
}

int sbx_pgstore_listen(struct sbx_pgstore *s, char *why, size_t whylen)
{
	int rc;

	if (!s)
		return -EINVAL;
	/* Wanted from now on, even if this LISTEN fails: the next connect
	 * does it. */
	s->listening = true;
	rc = run(s, op_listen, NULL, why, whylen);
	/* A connect inside run() LISTENed already; nothing was missed yet. */
	if (rc == 0)
		s->missed = false;
	return rc;
}

/* Take what libpq has queued: 1 (with *max_seq raised) if another
 * connection notified, else 0. */
static int drain(struct sbx_pgstore *s, uint64_t *max_seq)
{
	PGnotify *nf;
	int self = PQbackendPID(s->conn), got = 0;

	while ((nf = PQnotifies(s->conn)) != NULL) {
		uint64_t seq = 0;

		if (nf->be_pid != self && !strcmp(nf->relname, SBX_PGSTORE_CHANNEL)) {
			got = 1;
			if (parse_u64(nf->extra, &seq) == 0 && seq > *max_seq)
				*max_seq = seq;
		}
		PQfreemem(nf);
	}
	return got;
}

int sbx_pgstore_wait(struct sbx_pgstore *s, int timeout_ms, uint64_t *notified_seq)
{
	int64_t end = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	uint64_t max_seq = 0;
	int rc;

	if (!s || !s->listening)
		return -EINVAL;
	if (s->conn && PQstatus(s->conn) != CONNECTION_OK)
		drop_conn(s);
	if (!s->conn) {
		struct call c = { .deadline = mono_ms() + s->timeout_ms };

		rc = connect_all(s, &c, NULL, 0);
		if (rc) {
			sleep_until(end);
			goto out;
		}
	}
	if (s->missed) {
		s->missed = false;
		rc = 1;
		goto out;
	}
	for (;;) {
		if (!PQconsumeInput(s->conn)) {
			drop_conn(s);
			rc = -ENOTCONN;
			goto out;
		}
		if (drain(s, &max_seq)) {
			rc = 1;
			goto out;
		}
		rc = wait_sock(PQsocket(s->conn), POLLIN, end);
		if (rc == -ETIMEDOUT) {
			rc = 0;
			goto out;
		}
		if (rc) {
			drop_conn(s);
			rc = -ENOTCONN;
			goto out;
		}
	}
out:
	if (notified_seq)
		*notified_seq = max_seq;
	return rc;
}

/* ------------------------------------------------------------ hosts */

struct report_arg {
	uint64_t applied;
	const char *policy_sha256;
	const char *version;
};

static int op_report(struct sbx_pgstore *s, struct call *c, void *arg, char *why, size_t whylen)
{
	const struct report_arg *a = arg;
	char seq[24];
	const char *params[4] = { s->host, seq, a->policy_sha256, a->version };

	snprintf(seq, sizeof(seq), "%" PRIu64, a->applied);
	return exec(s, c, SQL_REPORT, 4, params, NULL, why, whylen);
}

int sbx_pgstore_report_host(struct sbx_pgstore *s, uint64_t applied_seq,
			    const char *policy_sha256, const char *version, char *why,
			    size_t whylen)
{
	struct report_arg a = { applied_seq, policy_sha256, version };

	if (!s)
		return -EINVAL;
	if (applied_seq > INT64_MAX || (policy_sha256 && !is_hex64(policy_sha256))) {
		say(why, whylen,
		    "database %s: report: applied seq past 2^63, or policy sha256 not 64 lowercase hex digits",
		    where(s));
		return -EINVAL;
	}
	return run(s, op_report, &a, why, whylen);
}

struct hosts_arg {
	struct sbx_pghost *v;
	size_t n;
};

static int op_hosts(struct sbx_pgstore *s, struct call *c, void *arg, char *why, size_t whylen)
{
	struct hosts_arg *a = arg;
	PGresult *res = NULL;
	struct sbx_pghost *v = NULL;
	int i, rows = 0, rc;

	rc = exec(s, c, SQL_HOSTS, 0, NULL, &res, why, whylen);
	if (rc)
		goto out;
	rows = PQntuples(res);
	if (rows > 0) {
		v = calloc((size_t)rows, sizeof(*v));
		if (!v) {
			say(why, whylen, "database %s: hosts: out of memory", s->server);
			rc = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < rows; i++) {
		if (parse_u64(PQgetvalue(res, i, 1), &v[i].applied_seq) ||
		    PQgetlength(res, i, 2) > 64 ||
		    parse_i64(PQgetvalue(res, i, 4), &v[i].last_contact_ms) ||
		    parse_i64(PQgetvalue(res, i, 5), &v[i].age_ms)) {
			say(why, whylen, "database %s: sbx_hosts row %d is not what sbx writes",
			    s->server, i);
			rc = -EBADMSG;
			goto out;
		}
		memcpy(v[i].policy_sha256, PQgetvalue(res, i, 2), (size_t)PQgetlength(res, i, 2) + 1);
		v[i].host = strdup(PQgetvalue(res, i, 0));
		v[i].version = strdup(PQgetvalue(res, i, 3));
		if (!v[i].host || !v[i].version) {
			say(why, whylen, "database %s: hosts: out of memory", s->server);
			rc = -ENOMEM;
			goto out;
		}
	}
	a->v = v;
	a->n = (size_t)rows;
	v = NULL;
out:
	sbx_pghosts_free(v, (size_t)rows);
	PQclear(res);
	return rc;
}

int sbx_pgstore_hosts(struct sbx_pgstore *s, struct sbx_pghost **out, size_t *n, char *why,
		      size_t whylen)
{
	struct hosts_arg a = { NULL, 0 };
	int rc;

	if (out)
		*out = NULL;
	if (n)
		*n = 0;
	if (!s || !out || !n)
		return -EINVAL;
	rc = run(s, op_hosts, &a, why, whylen);
	if (rc == 0) {
		*out = a.v;
		*n = a.n;
	}
	return rc;
}

void sbx_pghosts_free(struct sbx_pghost *v, size_t n)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < n; i++) {
		free(v[i].host);
		free(v[i].version);
	}
	free(v);
}
