/*
 * bench_fleet: the fleet's targets, with three real sbx-brokerd sharing one
 * log in PostgreSQL (broker/fleet.h, fleet/pgstore.h).
 *
 *   1. requests/s through the fleet: 3 brokers (sbx-01, sbx-02,
 *      sbx-clinical-01) x N clients each, every client doing
 *      connect+REQUEST+close for an auto_approve role as root with AS_USER,
 *      each request for a (user, role) pair never asked before; then the
 *      shared log is read back in full and checked: the hash chain, and
 *      that the request.created records are exactly the acknowledged
 *      requests (none missing, none twice).
 *   2. propagation: requests filed on sbx-01 for a role with a unix_group
 *      are approved on sbx-02 one at a time, and the time from the APPROVE
 *      reply (and from its sending) until the user is a live member of the
 *      group in sbx-01's groups.table (what libnss_sbx reads) is measured
 *      by a thread polling the table every 0.25 ms; once on an idle fleet,
 *      once while all three brokers file requests.
 *   3. login checks (connect+CHECK+close as uid 0) on a broker without a
 *      fleet and on a fleet broker, side by side, idle and while the other
 *      two fleet brokers file requests.
 *
 * Threads: the main thread sets up, runs each part and tears down; client
 * threads (bench_run_threads, or load_start for background load) share
 * only the pair counter and the acked[] flags (atomics) and their own
 * worker struct; part 2's watcher thread shares struct watcher under its
 * mutex.  Nothing else is shared.
 *
 * PostgreSQL: --postgres CONNINFO (and --password-file), or a throwaway
 * server started here (benchpg.h).  Either way the tables go into a new
 * schema of their own (options=-csearch_path=...), dropped at the end.
 *
 * Numbers are printed, never asserted: exit 0 unless setting up failed.
 */
#include "config.h"

#include "benchlib.h"
#include "benchpg.h"
#include "chain.h"
#include "pgstore.h"
#include "sbx_table.h"
#include "secret.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define N_HOSTS 3
#define FILE_ON 0               /* part 2 files on sbx-01 ... */
#define APPROVE_ON 1            /* ... and approves on sbx-02 */
#define THIRD 2
#define BENCH_GROUP "bench-users"
#define APPROVERS_GROUP "bench-approvers"
#define APPROVER "approver1"
#define CHECK_USER "alice"
#define SUDO_ROLE "bench-sudo"
#define SUDO_GROUP "sbx-bench"
#define SUDO_GID 61000
#define REASON "bench_fleet load test"
#define DEFAULT_PG_BIN "/usr/lib/postgresql/15/bin"
/* How long a user may take to show up in a table before it counts as
 * not seen. */
#define SEEN_TIMEOUT_MS 10000
#define POLL_NS 250000L
/* Part 3's columns take turns this many times per level. */
#define CHECK_ROUNDS 3
/* Commits timed to show what one writer at a time can reach. */
#define COMMIT_PROBES 200
/* The targets (the fleet issue), printed beside the results. */
#define TARGET_RATE 1000.0
#define TARGET_PROP_P50_MS 100.0
#define TARGET_PROP_P99_MS 500.0

static const char *const host_names[N_HOSTS] = { "sbx-01", "sbx-02", "sbx-clinical-01" };

static const char usage_text[] =
	"Usage: bench_fleet [--postgres CONNINFO [--password-file FILE]] [--pg-bin DIR]\n"
	"                   [--clients N] [--duration SECS] [--warmup SECS]\n"
	"                   [--users N] [--roles N] [--approvals N] [--load-clients N]\n"
	"                   [--check-clients LIST] [--check-duration SECS]\n"
	"                   [--parts LIST] [--broker PATH] [--keep-schema]\n"
	"\n"
	"Three sbx-brokerd (hosts sbx-01, sbx-02, sbx-clinical-01) share one log in\n"
	"PostgreSQL.  Measures (1) requests/s through the fleet, then checks the log\n"
	"(hash chain, every acknowledged request in it once); (2) the time from an\n"
	"approval on sbx-02 to the user's membership in sbx-01's groups.table;\n"
	"(3) login checks on a single-host broker and on a fleet broker, side by side.\n"
	"Run as root.  Numbers are printed, never asserted.\n"
	"\n"
	"Options:\n"
	"  --postgres CONNINFO  a PostgreSQL 15 server to use (libpq conninfo or URI,\n"
	"                       no password in it); default: start a throwaway one\n"
	"  --password-file FILE its password (a 0600 file; the brokers read it too)\n"
	"  --pg-bin DIR         PostgreSQL's binaries for the throwaway server\n"
	"                       (default " DEFAULT_PG_BIN ")\n"
	"  --clients N          part 1: clients per broker (default 8)\n"
	"  --duration SECS      part 1: measure this long (default 5)\n"
	"  --warmup SECS        unmeasured load before parts 1 and 3 (default 1; 0: none)\n"
	"  --users N            users u0001.. in the policy (default 3000, at most 9999)\n"
	"  --roles N            auto_approve roles bench-01.. for part 1 (default 16,\n"
	"                       at most 31): users x roles requests at most\n"
	"  --approvals N        part 2: approvals per block (default 200)\n"
	"  --load-clients N     part 2's second block and part 3's third column: this\n"
	"                       many clients per other broker keep filing requests\n"
	"                       (default 2; 0: leave those out)\n"
	"  --check-clients LIST part 3: concurrency levels (default 1,8)\n"
	"  --check-duration SECS part 3: each measurement this long (default 3)\n"
	"  --parts LIST         which parts to run, e.g. 1,3 (default 1,2,3)\n"
	"  --broker PATH        sbx-brokerd (default: the one in this build tree)\n"
	"  --keep-schema        leave the bench's schema (and its log) in the database\n"
	"  -h, --help           show this help\n"
	"\n"
	"Exit status: 0 measured (whatever the numbers), 1 could not set up, 2 usage.\n";

struct cfg {
	const char *postgres;
	char password_file[PATH_MAX];
	char pg_bin[PATH_MAX];
	char broker[PATH_MAX];
	unsigned long clients;
	double duration_s;
	double warmup_s;
	unsigned long users;
	unsigned long roles;
	unsigned long approvals;
	unsigned long load_clients;
	unsigned check_levels[BENCH_MAX_LEVELS];
	size_t n_check_levels;
	double check_duration_s;
	unsigned parts[BENCH_MAX_LEVELS];
	size_t n_parts;
	bool keep_schema;
};

/* Distinct error messages, digits folded, so that a run's errors can be
 * told apart without printing thousands of lines. */
#define ERR_KINDS 6
struct errtab {
	unsigned long n[ERR_KINDS];
	char msg[ERR_KINDS][200];
	unsigned long other;
};

struct env {
	struct cfg *cfg;
	struct bench_pg pg;
	bool own_pg;
	char base_conninfo[1024];       /* as given (or the throwaway server's) */
	char conninfo[1200];            /* with the bench's schema: brokers and pgstore */
	const char *pwfile;             /* NULL: no password */
	char password[SBX_SECRET_MAX];
	char schema[64];
	bool schema_made;
	PGconn *pq;                     /* our SQL connection, search_path = schema */
	struct sbx_pgstore *store;
	struct bench_broker fleet[N_HOSTS];
	struct bench_broker single;
	size_t n_pairs;                 /* users x roles */
	atomic_long next_pair;          /* the next (user, role) pair to ask for */
	atomic_uchar *acked;            /* [n_pairs]: 1 once a REQUEST reply said active */
	unsigned long next_sudo_user;   /* part 2: the next user for SUDO_ROLE */
	unsigned long acked_sudo, acked_approvals;
};

static int parse_args(int argc, char **argv, struct cfg *c)
{
	const struct bench_opt opts[] = {
		{ "postgres", BENCH_OPT_STRING, &c->postgres, NULL, 0, 0, 0, 0 },
		{ "password-file", BENCH_OPT_PATH, c->password_file, NULL, sizeof(c->password_file),
		  0, 0, 0 },
		{ "pg-bin", BENCH_OPT_PATH, c->pg_bin, NULL, sizeof(c->pg_bin), 0, 0, 0 },
		{ "clients", BENCH_OPT_ULONG, &c->clients, NULL, 0, 1, 256, 0 },
		{ "duration", BENCH_OPT_SECONDS, &c->duration_s, NULL, 0, 0, 0, 0 },
		{ "warmup", BENCH_OPT_SECONDS0, &c->warmup_s, NULL, 0, 0, 0, 0 },
		{ "users", BENCH_OPT_ULONG, &c->users, NULL, 0, 1, 9999, 0 },
		{ "roles", BENCH_OPT_ULONG, &c->roles, NULL, 0, 1, 31, 0 },
		{ "approvals", BENCH_OPT_ULONG, &c->approvals, NULL, 0, 1, 4999, 0 },
		{ "load-clients", BENCH_OPT_ULONG, &c->load_clients, NULL, 0, 0, 64, 0 },
		{ "check-clients", BENCH_OPT_LEVELS, c->check_levels, &c->n_check_levels, 0, 0, 0,
		  0 },
		{ "check-duration", BENCH_OPT_SECONDS, &c->check_duration_s, NULL, 0, 0, 0, 0 },
		{ "parts", BENCH_OPT_LEVELS, c->parts, &c->n_parts, 0, 0, 0, 0 },
		{ "broker", BENCH_OPT_PATH, c->broker, NULL, sizeof(c->broker), 0, 0, 0 },
		{ "keep-schema", BENCH_OPT_FLAG, &c->keep_schema, NULL, 0, 0, 0, 0 },
	};

	if (bench_parse_args("bench_fleet", usage_text, argc, argv, opts,
			     sizeof(opts) / sizeof(opts[0])) < 0)
		return -1;
	for (size_t i = 0; i < c->n_parts; i++) {
		if (c->parts[i] > 3) {
			fprintf(stderr, "bench_fleet: --parts: 1, 2 or 3, not %u\n", c->parts[i]);
			return -1;
		}
	}
	if (c->password_file[0] && !c->postgres) {
		fprintf(stderr, "bench_fleet: --password-file goes with --postgres\n");
		return -1;
	}
	if (c->password_file[0] && c->password_file[0] != '/') {
		fprintf(stderr, "bench_fleet: --password-file: an absolute path, please (the "
			"brokers read it)\n");
		return -1;
	}
	if (2 * c->approvals > c->users) {
		fprintf(stderr, "bench_fleet: --approvals %lu needs --users of at least %lu (two "
			"blocks, one user each)\n", c->approvals, 2 * c->approvals);
		return -1;
	}
	return 0;
}

static bool part_on(const struct cfg *c, unsigned part)
{
	for (size_t i = 0; i < c->n_parts; i++)
		if (c->parts[i] == part)
			return true;
	return false;
}

static void nap_ns(long ns)
{
	struct timespec ts = { .tv_sec = ns / 1000000000L, .tv_nsec = ns % 1000000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR && !bench_interrupted)
		;
}

/* ---------------------------------------------------------------- errors */

static void err_note(struct errtab *t, const char *msg)
{
	char folded[200];
	size_t j = 0;

	for (size_t i = 0; msg[i] && j + 1 < sizeof(folded); i++) {
		if (msg[i] >= '0' && msg[i] <= '9') {
			if (j && folded[j - 1] == '#')
				continue;
			folded[j++] = '#';
		} else {
			folded[j++] = msg[i];
		}
	}
	folded[j] = '\0';
	for (int k = 0; k < ERR_KINDS; k++) {
		if (!t->n[k]) {
			snprintf(t->msg[k], sizeof(t->msg[k]), "%s", folded);
			t->n[k] = 1;
			return;
		}
		if (strcmp(t->msg[k], folded) == 0) {
			t->n[k]++;
			return;
		}
	}
	t->other++;
}

static void err_merge(struct errtab *dst, const struct errtab *src)
{
	for (int k = 0; k < ERR_KINDS && src->n[k]; k++) {
		unsigned long n = src->n[k];

		err_note(dst, src->msg[k]);
		/* err_note counted one; add the rest where it went */
		for (int m = 0; m < ERR_KINDS; m++)
			if (dst->n[m] && strcmp(dst->msg[m], src->msg[k]) == 0) {
				dst->n[m] += n - 1;
				break;
			}
	}
	dst->other += src->other;
}

static void err_print(const struct errtab *t)
{
	for (int k = 0; k < ERR_KINDS && t->n[k]; k++)
		printf("    %6lu x %s\n", t->n[k], t->msg[k]);
	if (t->other)
		printf("    %6lu x (other messages)\n", t->other);
}

/* ---------------------------------------------------------------- policy */

static void yaml_quoted(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

/* One policy for every broker: the same file (the same sha256) on each
 * fleet host; the single-host broker's lacks the fleet: section.  Host
 * names come from --host. */
static void write_policy(FILE *f, const struct env *e, bool fleet)
{
	const struct cfg *c = e->cfg;

	fprintf(f, "# generated by bench_fleet: %lu users, %lu auto_approve roles, %s\n",
		c->users, c->roles, fleet ? "fleet" : "single host");
	fprintf(f, "broker:\n  request_ttl: 24h\n\n");
	if (fleet) {
		fprintf(f, "fleet:\n  postgres: ");
		yaml_quoted(f, e->conninfo);
		fprintf(f, "\n");
		if (e->pwfile)
			fprintf(f, "  password_file: %s\n", e->pwfile);
		fprintf(f, "  timeout: 5s\n  max_stale: 60s\n  verify_every: 1h\n\n");
	}
	fprintf(f, "groups:\n  %s: [", BENCH_GROUP);
	for (unsigned long u = 1; u <= c->users; u++)
		fprintf(f, "%su%04lu", u == 1 ? "" : u % 16 == 1 ? ",\n    " : ", ", u);
	fprintf(f, "]\n  %s: [%s]\n\nusers:\n", APPROVERS_GROUP, APPROVER);
	for (unsigned long u = 1; u <= c->users; u++)
		fprintf(f, "  u%04lu: {}\n", u);
	fprintf(f, "  %s: {}\n  %s: {}\n\nroles:\n", APPROVER, CHECK_USER);
	fprintf(f,
		"  bench-login:\n"
		"    description: standing login for the checks\n"
		"    hosts: [\"sbx-*\"]\n"
		"    standing: { users: [%s] }\n", CHECK_USER);
	fprintf(f,
		"  %s:\n"
		"    description: approved by %s, brings unix group %s\n"
		"    hosts: [\"sbx-*\"]\n"
		"    unix_group: { name: %s, gid: %d }\n"
		"    eligible: { groups: [%s] }\n"
		"    approvers: { groups: [%s] }\n"
		"    approvals: 1\n"
		"    default_duration: 30d\n"
		"    max_duration: 30d\n"
		"    on_expiry: keep\n",
		SUDO_ROLE, APPROVER, SUDO_GROUP, SUDO_GROUP, SUDO_GID, BENCH_GROUP, APPROVERS_GROUP);
	for (unsigned long r = 1; r <= c->roles; r++)
		fprintf(f,
			"  bench-%02lu:\n"
			"    description: bench_fleet role %lu\n"
			"    hosts: [\"sbx-*\"]\n"
			"    eligible: { groups: [%s] }\n"
			"    auto_approve: true\n"
			"    default_duration: 30d\n"
			"    max_duration: 30d\n",
			r, r, BENCH_GROUP);
}

static int write_policy_file(const struct env *e, const struct bench_broker *b, bool fleet,
			     char *err, size_t errlen)
{
	int fd = open(b->config, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	if (!f) {
		snprintf(err, errlen, "%s: %s", b->config, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	write_policy(f, e, fleet);
	if (ferror(f) | fclose(f)) {
		snprintf(err, errlen, "%s: write failed", b->config);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- the broker's ops */

struct ping_info {
	int64_t seq;            /* local journal */
	int64_t fleet_seq;      /* -1: no fleet */
	uint32_t writable, stale;
	char fleet[256];
};

static int ping_fleet(const char *socket, struct ping_info *p, char *err, size_t errlen)
{
	struct sbx_conn_opts o = { .path = socket, .timeout_ms = BENCH_TIMEOUT_MS };
	sbx_msg m;
	uint8_t *frame = NULL;
	size_t n = 0;
	uint32_t status = 0;
	char msg[256];
	sbx_reader r;
	sbx_field f;
	int rc;

	memset(p, 0, sizeof(*p));
	p->fleet_seq = -1;
	sbx_msg_init(&m, SBX_OP_PING);
	rc = sbx_call(&o, &m, &frame, &n);
	sbx_msg_free(&m);
	if (rc < 0) {
		snprintf(err, errlen, "ping %s: %s", socket, strerror(-rc));
		goto out;
	}
	rc = -EPROTO;
	if (sbx_reply_status(frame, n, &status, msg, sizeof(msg)) < 0 || status != SBX_ST_OK) {
		snprintf(err, errlen, "ping %s: status %u: %s", socket, status, msg);
		goto out;
	}
	sbx_reader_init_frame(&r, frame, n);
	if (sbx_reader_find(&r, SBX_F_SEQ, &f) == 1)
		p->seq = sbx_field_i64(&f);
	if (sbx_reader_find(&r, SBX_F_FLEET_SEQ, &f) == 1)
		p->fleet_seq = sbx_field_i64(&f);
	if (sbx_reader_find(&r, SBX_F_WRITABLE, &f) == 1)
		p->writable = sbx_field_u32(&f);
	if (sbx_reader_find(&r, SBX_F_STALE, &f) == 1)
		p->stale = sbx_field_u32(&f);
	if (sbx_reader_find(&r, SBX_F_FLEET, &f) == 1)
		(void)sbx_field_str(&f, p->fleet, sizeof(p->fleet));
	rc = 0;
out:
	free(frame);
	return rc;
}

/* The REQUEST record of a reply: its id and state.  0, or -1 with the
 * broker's words in err. */
static int request_of(const uint8_t *frame, size_t n, uint32_t *id, char *state, size_t statelen,
		      char *err, size_t errlen)
{
	uint32_t status = 0;
	char msg[300];
	sbx_reader r, rec;
	sbx_field f;

	state[0] = '\0';
	*id = 0;
	if (sbx_reply_status(frame, n, &status, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "reply without STATUS");
		return -1;
	}
	if (status != SBX_ST_OK) {
		snprintf(err, errlen, "status %u: %s", status, msg);
		return -1;
	}
	sbx_reader_init_frame(&r, frame, n);
	if (sbx_reader_find(&r, SBX_F_REQUEST, &f) != 1) {
		snprintf(err, errlen, "reply without REQUEST");
		return -1;
	}
	sbx_reader_init_rec(&rec, &f);
	if (sbx_reader_find(&rec, SBX_F_ID, &f) == 1)
		*id = sbx_field_u32(&f);
	if (sbx_reader_find(&rec, SBX_F_STATE, &f) == 1)
		(void)sbx_field_str(&f, state, statelen);
	return 0;
}

/* File a request for user and role on the broker at socket (root acting
 * with AS_USER).  0 with its id and state, or -1 with err. */
static int file_request(const char *socket, const char *user, const char *role, uint32_t *id,
			char *state, size_t statelen, char *err, size_t errlen)
{
	struct sbx_conn_opts o = { .path = socket, .timeout_ms = BENCH_TIMEOUT_MS };
	sbx_msg m;
	uint8_t *frame = NULL;
	size_t n = 0;
	int rc;

	sbx_msg_init(&m, SBX_OP_REQUEST);
	sbx_msg_put_str(&m, SBX_F_ROLE, role);
	sbx_msg_put_str(&m, SBX_F_REASON, REASON);
	sbx_msg_put_str(&m, SBX_F_AS_USER, user);
	rc = sbx_call(&o, &m, &frame, &n);
	if (rc < 0)
		snprintf(err, errlen, "%s", strerror(-rc));
	else
		rc = request_of(frame, n, id, state, statelen, err, errlen);
	sbx_msg_free(&m);
	free(frame);
	return rc;
}

static int approve(const char *socket, uint32_t id, char *state, size_t statelen, char *err,
		   size_t errlen)
{
	struct sbx_conn_opts o = { .path = socket, .timeout_ms = BENCH_TIMEOUT_MS };
	sbx_msg m;
	uint8_t *frame = NULL;
	size_t n = 0;
	uint32_t got = 0;
	int rc;

	sbx_msg_init(&m, SBX_OP_APPROVE);
	sbx_msg_put_u32(&m, SBX_F_ID, id);
	sbx_msg_put_str(&m, SBX_F_COMMENT, "bench_fleet");
	sbx_msg_put_str(&m, SBX_F_AS_USER, APPROVER);
	rc = sbx_call(&o, &m, &frame, &n);
	if (rc < 0)
		snprintf(err, errlen, "%s", strerror(-rc));
	else
		rc = request_of(frame, n, &got, state, statelen, err, errlen);
	sbx_msg_free(&m);
	free(frame);
	return rc;
}

/* ---------------------------------------------------------------- PostgreSQL */

static bool is_uri(const char *s)
{
	return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

/* conninfo with the bench's schema first in the search_path. */
static int scoped_conninfo(const char *base, const char *schema, char *out, size_t len)
{
	int w;

	if (is_uri(base))
		w = snprintf(out, len, "%s%coptions=-csearch_path%%3D%s", base,
			     strchr(base, '?') ? '&' : '?', schema);
	else
		w = snprintf(out, len, "%s options=-csearch_path=%s", base, schema);
	return w < 0 || (size_t)w >= len ? -1 : 0;
}

static PGconn *pq_connect(const struct env *e, const char *conninfo, char *err, size_t errlen)
{
	const char *kw[] = { "dbname", "password", "connect_timeout", NULL };
	const char *val[] = { conninfo, e->pwfile ? e->password : NULL, "10", NULL };
	PGconn *c = PQconnectdbParams(kw, val, 1);

	if (!c || PQstatus(c) != CONNECTION_OK) {
		snprintf(err, errlen, "cannot connect to PostgreSQL: %s",
			 c ? PQerrorMessage(c) : "out of memory");
		if (c)
			PQfinish(c);
		return NULL;
	}
	return c;
}

/* One statement without rows.  0 or -1 with err. */
static int pq_exec(PGconn *c, const char *sql, char *err, size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	int ok = r && (PQresultStatus(r) == PGRES_COMMAND_OK ||
		       PQresultStatus(r) == PGRES_TUPLES_OK);

	if (!ok)
		snprintf(err, errlen, "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	return ok ? 0 : -1;
}

/* The first column of the first row, as text ("" when none). */
static int pq_value(PGconn *c, const char *sql, char *buf, size_t len)
{
	PGresult *r = PQexec(c, sql);
	int ret = -1;

	buf[0] = '\0';
	if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1) {
		snprintf(buf, len, "%s", PQgetvalue(r, 0, 0));
		ret = 0;
	}
	PQclear(r);
	return ret;
}

static int64_t pq_int(PGconn *c, const char *sql)
{
	char buf[64];

	if (pq_value(c, sql, buf, sizeof(buf)) < 0 || !buf[0])
		return -1;
	return strtoll(buf, NULL, 10);
}

/* The next transaction id the server will hand out (read without taking
 * one): the difference over a phase is how many transactions wrote. */
static int64_t next_xid(PGconn *c)
{
	return pq_int(c, "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint");
}

static int64_t log_last_seq(PGconn *c)
{
	return pq_int(c, "SELECT coalesce(max(seq), 0) FROM sbx_log");
}

/* What one commit at a time costs on this server: each broker appends one
 * batch (one transaction) at a time. */
static void print_commit_floor(struct env *e)
{
	struct bench_samples s = { 0 };
	struct bench_stats st;
	char err[512];

	if (pq_exec(e->pq, "CREATE TABLE bench_probe (x integer)", err, sizeof(err)) < 0)
		return;
	for (int i = 0; i < COMMIT_PROBES && !bench_interrupted; i++) {
		int64_t t = bench_now_ns();

		if (pq_exec(e->pq, "INSERT INTO bench_probe VALUES (1)", err, sizeof(err)) < 0 ||
		    bench_samples_add(&s, bench_now_ns() - t) < 0)
			break;
	}
	(void)pq_exec(e->pq, "DROP TABLE bench_probe", err, sizeof(err));
	bench_stats_compute(&s, &st);
	if (st.n)
		printf("commit:   one INSERT per transaction, p50 %.0f us, p99 %.0f us (%zu probes): "
		       "one writer at a time allows ~%.0f commits/s\n", st.p50_us, st.p99_us, st.n,
		       1e6 / st.p50_us);
	bench_samples_free(&s);
}

/* What one append costs through pgstore with nobody else writing, by batch
 * size: in a scratch schema of its own, with made-up records of a real
 * record's size (pgstore stores hashes, it never checks them). */
static void print_append_cost(struct env *e)
{
	static const size_t sizes[] = { 1, 16, 64, 256 };
	char schema[96], conninfo[1300], sql[192], err[600], line[401];
	struct sbx_pgstore_opts o = { .conninfo = conninfo,
				      .password = e->pwfile ? e->password : NULL,
				      .timeout_ms = 30000, .host = "bench_fleet" };
	struct sbx_pgstore *st = NULL;
	struct sbx_pgrec *recs = calloc(256, sizeof(*recs));
	char prev[65];
	uint64_t seq = 0;

	snprintf(schema, sizeof(schema), "%s_probe", e->schema);
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", schema);
	if (!recs || pq_exec(e->pq, sql, err, sizeof(err)) < 0)
		goto out;
	if (scoped_conninfo(e->base_conninfo, schema, conninfo, sizeof(conninfo)) < 0 ||
	    sbx_pgstore_open(&o, &st, err, sizeof(err)) < 0 ||
	    sbx_pgstore_init_schema(st, NULL, err, sizeof(err)) < 0) {
		printf("append:   cannot measure: %s\n", err);
		goto drop;
	}
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\0';
	memset(prev, '0', 64);
	prev[64] = '\0';
	printf("append:   sbx_pgstore_append alone (one writer, %zu-byte records), p50 per append:",
	       sizeof(line) - 1);
	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]) && !bench_interrupted; k++) {
		struct bench_samples smp = { 0 };
		struct bench_stats bs;
		int reps = sizes[k] >= 64 ? 10 : 30;

		for (int rep = 0; rep < reps; rep++) {
			int64_t t;

			for (size_t i = 0; i < sizes[k]; i++) {
				recs[i].seq = seq + 1 + i;
				recs[i].line = line;
				memcpy(recs[i].prev, prev, 65);
				snprintf(recs[i].hash, sizeof(recs[i].hash), "%064" PRIx64, recs[i].seq);
				memcpy(prev, recs[i].hash, 65);
			}
			t = bench_now_ns();
			if (sbx_pgstore_append(st, recs, sizes[k], err, sizeof(err)) < 0) {
				printf(" %s\n", err);
				bench_samples_free(&smp);
				goto drop;
			}
			(void)bench_samples_add(&smp, bench_now_ns() - t);
			seq += sizes[k];
		}
		bench_stats_compute(&smp, &bs);
		printf("%s %zu rec %.2f ms", k ? "," : "", sizes[k], bs.p50_us / 1000);
		bench_samples_free(&smp);
	}
	printf("\n");
drop:
	sbx_pgstore_close(st);
	snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
	(void)pq_exec(e->pq, sql, err, sizeof(err));
out:
	free(recs);
}

/* CPU seconds of the postmaster and its children (each backend is a
 * session leader of its own, so they are found by their parent), and what
 * the postmaster reaped of those that ended. */
static double pg_cpu_seconds(pid_t postmaster)
{
	DIR *d;
	struct dirent *de;
	double sum = 0;
	long tick = sysconf(_SC_CLK_TCK);

	if (postmaster <= 0 || tick <= 0 || !(d = opendir("/proc")))
		return -1;
	while ((de = readdir(d))) {
		char path[300], buf[1024], *p;
		unsigned long ut = 0, stime = 0;
		long cut = 0, cst = 0;
		int ppid = 0, fd;
		ssize_t n;
		bool self;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		p = strrchr(buf, ')');
		self = strtol(de->d_name, NULL, 10) == postmaster;
		if (!p || sscanf(p + 1, " %*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld",
				 &ppid, &ut, &stime, &cut, &cst) != 5 || (ppid != postmaster && !self))
			continue;
		sum += (double)(ut + stime);
		if (self)
			sum += (double)(cut + cst);
	}
	closedir(d);
	return sum / (double)tick;
}

/* ---------------------------------------------------------------- cpu */

struct cpu_mark {
	double broker[N_HOSTS + 1];     /* the fleet's, then the single-host broker */
	double pg, own;
	int64_t t_ns;
};

static void cpu_mark(const struct env *e, struct cpu_mark *m)
{
	for (int i = 0; i < N_HOSTS; i++)
		m->broker[i] = e->fleet[i].pid ? bench_cpu_seconds(e->fleet[i].pid) : -1;
	m->broker[N_HOSTS] = e->single.pid ? bench_cpu_seconds(e->single.pid) : -1;
	m->pg = e->own_pg ? pg_cpu_seconds(e->pg.pid) : -1;
	m->own = bench_cpu_seconds(0);
	m->t_ns = bench_now_ns();
}

static double cores(double a, double b, double secs)
{
	return a >= 0 && b >= 0 && secs > 0 ? (b - a) / secs : -1;
}

static void print_cpu(const struct cpu_mark *a, const struct cpu_mark *b, bool fleet,
		      bool single)
{
	double secs = (double)(b->t_ns - a->t_ns) / 1e9;

	printf("  cpu (cores):");
	if (fleet)
		for (int i = 0; i < N_HOSTS; i++)
			printf(" %s %.2f,", host_names[i], cores(a->broker[i], b->broker[i], secs));
	if (single)
		printf(" single-host %.2f,", cores(a->broker[N_HOSTS], b->broker[N_HOSTS], secs));
	if (a->pg >= 0 && b->pg >= 0)
		printf(" postgres %.2f,", cores(a->pg, b->pg, secs));
	printf(" bench %.2f\n", cores(a->own, b->own, secs));
}

/* ---------------------------------------------------------------- waiting for the fleet */

/* Until every fleet broker has applied the whole log (and the log stays
 * put for 300 ms).  0 with *seq, or -1. */
static int wait_settled(struct env *e, int timeout_ms, int64_t *seq)
{
	int64_t end = bench_now_ns() + (int64_t)timeout_ms * 1000000, last = -1, since = 0;
	char err[512];

	while (!bench_interrupted && bench_now_ns() < end) {
		int64_t top = log_last_seq(e->pq);
		bool all = top >= 0;

		for (int i = 0; i < N_HOSTS && all; i++) {
			struct ping_info p;

			if (ping_fleet(e->fleet[i].socket, &p, err, sizeof(err)) < 0 ||
			    p.fleet_seq != top)
				all = false;
		}
		if (all && top == last) {
			if (bench_now_ns() - since >= 300000000) {
				*seq = top;
				return 0;
			}
		} else {
			last = all ? top : -1;
			since = bench_now_ns();
		}
		nap_ns(20000000);
	}
	return -1;
}

/* ---------------------------------------------------------------- load: requests */

/* What a run of request clients shares. */
struct req_run {
	struct env *e;
	int64_t t0_ns;
	int64_t dur_ns;         /* 0: until stop */
	atomic_int stop;
	atomic_int exhausted;
};

struct req_worker {
	struct req_run *run;
	int host;
	struct bench_samples lat;
	struct bench_samples err_lat;   /* how long the refused ones took */
	unsigned long done, errors;
	struct errtab errs;
	int oom;
};

static long take_pair(struct req_run *run)
{
	long k = atomic_fetch_add(&run->e->next_pair, 1);

	if ((size_t)k >= run->e->n_pairs) {
		atomic_store(&run->exhausted, 1);
		return -1;
	}
	return k;
}

static void pair_names(const struct env *e, long k, char *user, size_t ulen, char *role,
		       size_t rlen)
{
	snprintf(user, ulen, "u%04u", (unsigned)((unsigned long)k % e->cfg->users + 1));
	snprintf(role, rlen, "bench-%02u", (unsigned)((unsigned long)k / e->cfg->users + 1));
}

static void *req_worker_main(void *p)
{
	struct req_worker *w = p;
	struct req_run *run = w->run;
	struct env *e = run->e;
	int64_t t = bench_now_ns();

	while (!bench_interrupted && !atomic_load(&run->stop) &&
	       (!run->dur_ns || t - run->t0_ns < run->dur_ns)) {
		char user[24], role[24], state[32], err[400];
		uint32_t id;
		long k = take_pair(run);
		int64_t t1;
		int rc;

		if (k < 0)
			break;
		pair_names(e, k, user, sizeof(user), role, sizeof(role));
		rc = file_request(e->fleet[w->host].socket, user, role, &id, state, sizeof(state),
				  err, sizeof(err));
		t1 = bench_now_ns();
		if (rc == 0 && strcmp(state, "active") != 0) {
			snprintf(err, sizeof(err), "request not granted at once: state '%s'", state);
			rc = -1;
		}
		if (rc < 0) {
			w->errors++;
			err_note(&w->errs, err);
			(void)bench_samples_add(&w->err_lat, t1 - t);
		} else {
			atomic_store(&e->acked[k], 1);
			if (bench_samples_add(&w->lat, t1 - t) < 0)
				w->oom = 1;
			w->done++;
		}
		t = t1;
	}
	return NULL;
}

/* Clients running in the background until load_stop(). */
struct bg_load {
	struct req_run run;
	struct req_worker *w;
	pthread_t *tid;
	unsigned n;
};

static int load_start(struct env *e, struct bg_load *l, const bool hosts[N_HOSTS],
		      unsigned per_host)
{
	unsigned want = 0;

	memset(l, 0, sizeof(*l));
	l->run.e = e;
	atomic_init(&l->run.stop, 0);
	atomic_init(&l->run.exhausted, 0);
	for (int h = 0; h < N_HOSTS; h++)
		want += hosts[h] ? per_host : 0;
	l->w = calloc(want ? want : 1, sizeof(*l->w));
	l->tid = calloc(want ? want : 1, sizeof(*l->tid));
	if (!l->w || !l->tid)
		return -1;
	for (int h = 0; h < N_HOSTS; h++) {
		for (unsigned i = 0; hosts[h] && i < per_host; i++) {
			l->w[l->n].run = &l->run;
			l->w[l->n].host = h;
			if (pthread_create(&l->tid[l->n], NULL, req_worker_main, &l->w[l->n]) != 0)
				return -1;
			l->n++;
		}
	}
	return 0;
}

/* Stop and join; *done and *errors get what they did. */
static void load_stop(struct bg_load *l, unsigned long *done, unsigned long *errors)
{
	atomic_store(&l->run.stop, 1);
	*done = *errors = 0;
	for (unsigned i = 0; i < l->n; i++) {
		pthread_join(l->tid[i], NULL);
		*done += l->w[i].done;
		*errors += l->w[i].errors;
		bench_samples_free(&l->w[i].lat);
		bench_samples_free(&l->w[i].err_lat);
	}
	free(l->w);
	free(l->tid);
	memset(l, 0, sizeof(*l));
}

/* ---------------------------------------------------------------- part 1 */

struct req_result {
	double wall_s;
	unsigned long done, errors;
	struct bench_stats st, host_st[N_HOSTS], err_st;
	double err_min_us;
	unsigned long host_done[N_HOSTS], host_errors[N_HOSTS];
	struct errtab errs;
	int exhausted, oom;
};

/* n clients per broker for secs; res gets the merged numbers.  -1 when
 * the threads could not start. */
static int run_requests(struct env *e, unsigned per_host, double secs, struct req_result *res)
{
	unsigned n = per_host * N_HOSTS;
	struct req_run run = { .e = e, .dur_ns = (int64_t)(secs * 1e9) };
	struct req_worker *w = calloc(n, sizeof(*w));
	void **args = calloc(n, sizeof(*args));
	struct bench_samples all = { 0 }, host[N_HOSTS] = { { 0 } }, errs = { 0 };
	int ret = -1;

	memset(res, 0, sizeof(*res));
	atomic_init(&run.stop, 0);
	atomic_init(&run.exhausted, 0);
	if (!w || !args)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		w[i].run = &run;
		w[i].host = (int)(i % N_HOSTS);
		args[i] = &w[i];
	}
	if (bench_run_threads(n, req_worker_main, args, &run.t0_ns, &res->wall_s) < 0)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		struct bench_samples copy = { 0 };

		res->done += w[i].done;
		res->errors += w[i].errors;
		res->host_done[w[i].host] += w[i].done;
		res->host_errors[w[i].host] += w[i].errors;
		err_merge(&res->errs, &w[i].errs);
		res->oom |= w[i].oom;
		(void)bench_samples_take(&errs, &w[i].err_lat);
		/* the samples go into their host's set and into all */
		if (bench_samples_take(&copy, &w[i].lat) < 0) {
			res->oom = 1;
			continue;
		}
		for (size_t j = 0; j < copy.n; j++)
			if (bench_samples_add(&all, copy.v[j]) < 0)
				res->oom = 1;
		if (bench_samples_take(&host[w[i].host], &copy) < 0)
			res->oom = 1;
		bench_samples_free(&copy);
	}
	res->exhausted = atomic_load(&run.exhausted);
	bench_stats_compute(&all, &res->st);
	bench_stats_compute(&errs, &res->err_st);
	res->err_min_us = errs.n ? (double)errs.v[0] / 1000.0 : 0;      /* sorted */
	for (int h = 0; h < N_HOSTS; h++)
		bench_stats_compute(&host[h], &res->host_st[h]);
	ret = 0;
out:
	if (w)
		for (unsigned i = 0; i < n; i++) {
			bench_samples_free(&w[i].lat);
			bench_samples_free(&w[i].err_lat);
		}
	bench_samples_free(&all);
	bench_samples_free(&errs);
	for (int h = 0; h < N_HOSTS; h++)
		bench_samples_free(&host[h]);
	free(w);
	free(args);
	return ret;
}

/* How the log was written during a phase: committed batches (distinct
 * inserting transactions), and transactions that wrote but left nothing
 * in the log (appends refused because another broker took those seqs
 * first, and the hosts' status reports). */
static void print_log_writes(struct env *e, int64_t seq0, int64_t xid0, double wall_s)
{
	char sql[512];
	PGresult *r;
	int64_t xid1 = next_xid(e->pq), recs = 0, batches = 0, reports;

	snprintf(sql, sizeof(sql),
		 "SELECT host, count(*), count(DISTINCT xmin::text) FROM sbx_log WHERE seq > %lld "
		 "GROUP BY host ORDER BY host", (long long)seq0);
	r = PQexec(e->pq, sql);
	if (!r || PQresultStatus(r) != PGRES_TUPLES_OK) {
		printf("  log: cannot read it: %s", PQerrorMessage(e->pq));
		PQclear(r);
		return;
	}
	printf("  log writes (batches = committed append transactions):\n");
	for (int i = 0; i < PQntuples(r); i++) {
		int64_t n = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		int64_t b = strtoll(PQgetvalue(r, i, 2), NULL, 10);

		printf("    %-16s %7lld records in %5lld batches (%.1f records per batch)\n",
		       PQgetvalue(r, i, 0), (long long)n, (long long)b, b ? (double)n / (double)b : 0);
		recs += n;
		batches += b;
	}
	PQclear(r);
	/* each broker reports its status every 5 s: one transaction each */
	reports = (int64_t)(wall_s / 5.0 + 1) * N_HOSTS;
	if (xid0 >= 0 && xid1 >= 0)
		printf("    transactions that wrote: %lld; batches committed %lld; so about %lld "
		       "appends were refused (another broker had taken their seqs; ~%lld of the "
		       "rest are status reports)\n", (long long)(xid1 - xid0), (long long)batches,
		       (long long)(xid1 - xid0 - batches - reports > 0 ? xid1 - xid0 - batches - reports
								     : 0), (long long)reports);
	(void)recs;
}

static void part_requests(struct env *e, double *best_rate)
{
	const struct cfg *c = e->cfg;
	struct req_result warm, res;
	struct cpu_mark m0, m1;
	int64_t seq0 = 0, xid0, settled;
	double rate;

	printf("\n== 1. fleet requests: %d brokers x %lu clients, connect+request+close "
	       "(auto_approve; acknowledged once in the log and the local journal) ==\n", N_HOSTS,
	       c->clients);
	if (c->warmup_s > 0 && run_requests(e, (unsigned)c->clients, c->warmup_s, &warm) < 0)
		goto threads;
	if (c->warmup_s > 0)
		printf("  warm-up: %lu requests in %.2f s (errors %lu), not counted below\n",
		       warm.done, warm.wall_s, warm.errors);
	if (wait_settled(e, 30000, &seq0) < 0 && !bench_interrupted)
		printf("  note: the fleet did not settle after the warm-up\n");
	xid0 = next_xid(e->pq);
	cpu_mark(e, &m0);
	if (run_requests(e, (unsigned)c->clients, c->duration_s, &res) < 0)
		goto threads;
	cpu_mark(e, &m1);
	rate = res.wall_s > 0 ? (double)res.done / res.wall_s : 0;
	if (rate > *best_rate)
		*best_rate = rate;
	printf("  requests %lu in %.2f s: %.0f requests/s  (errors %lu)\n", res.done, res.wall_s,
	       rate, res.errors);
	bench_stats_print(stdout, &res.st);
	for (int h = 0; h < N_HOSTS; h++)
		printf("    %-16s %6lu requests, %5.0f/s, errors %4lu   p50 %6.0f  p90 %6.0f  p99 %6.0f  "
		       "max %7.0f us\n", host_names[h], res.host_done[h], res.wall_s > 0 ?
		       (double)res.host_done[h] / res.wall_s : 0, res.host_errors[h],
		       res.host_st[h].p50_us, res.host_st[h].p90_us, res.host_st[h].p99_us,
		       res.host_st[h].max_us);
	print_cpu(&m0, &m1, true, false);
	if (res.errors) {
		printf("  errors by message (refused after %.1f ms at the least, p50 %.1f, max %.1f):\n",
		       res.err_min_us / 1000, res.err_st.p50_us / 1000,
		       res.err_st.max_us / 1000);
		err_print(&res.errs);
	}
	if (res.exhausted)
		printf("  note: ran out of (user, role) pairs before the time was up; raise --users "
		       "or --roles\n");
	if (res.oom)
		printf("  note: out of memory for samples: latencies incomplete\n");
	if (wait_settled(e, 60000, &settled) == 0)
		print_log_writes(e, seq0, xid0, res.wall_s);
	else
		printf("  note: the brokers did not all catch up with the log within 60 s\n");
	fflush(stdout);
	return;
threads:
	printf("  cannot start the client threads\n");
}

/* ---------------------------------------------------------------- the log, read back */

struct log_check {
	uint64_t records;
	bool chain_ok;
	char chain_why[300];
	uint64_t created_pairs;         /* request.created of the bench-NN roles */
	uint64_t created_sudo;
	uint64_t activated, approvals, policy_loaded, other;
	uint64_t dup_pairs;             /* a pair filed twice */
	uint64_t acked_missing;         /* acknowledged, not in the log */
	uint64_t unacked_present;       /* in the log, never acknowledged */
	uint64_t acked;
};

static void count_record(const struct env *e, const char *line, unsigned char *seen,
			 struct log_check *lc)
{
	json_t *rec = json_loads(line, 0, NULL);
	const char *event = rec ? json_string_value(json_object_get(rec, "event")) : NULL;
	const char *role, *user;

	if (!event) {
		lc->other++;
		json_decref(rec);
		return;
	}
	if (strcmp(event, "request.created") == 0) {
		role = json_string_value(json_object_get(rec, "role"));
		user = json_string_value(json_object_get(rec, "user"));
		if (role && strcmp(role, SUDO_ROLE) == 0) {
			lc->created_sudo++;
		} else if (role && user && strncmp(role, "bench-", 6) == 0 && user[0] == 'u') {
			unsigned long r = strtoul(role + 6, NULL, 10), u = strtoul(user + 1, NULL, 10);

			lc->created_pairs++;
			if (r >= 1 && r <= e->cfg->roles && u >= 1 && u <= e->cfg->users) {
				size_t k = (r - 1) * e->cfg->users + (u - 1);

				if (seen[k])
					lc->dup_pairs++;
				seen[k] = 1;
			}
		} else {
			lc->other++;
		}
	} else if (strcmp(event, "grant.activated") == 0) {
		lc->activated++;
	} else if (strcmp(event, "request.approval") == 0) {
		lc->approvals++;
	} else if (strcmp(event, "policy.loaded") == 0) {
		lc->policy_loaded++;
	} else {
		lc->other++;
	}
	json_decref(rec);
}

/* Read the whole log through pgstore, check the chain with sbx_chain_check
 * and compare its request.created records with the acknowledged ones. */
static int check_log(struct env *e, struct log_check *lc, char *err, size_t errlen)
{
	struct sbx_chain_pos pos;
	unsigned char *seen = calloc(e->n_pairs ? e->n_pairs : 1, 1);
	int ret = -1;

	memset(lc, 0, sizeof(*lc));
	lc->chain_ok = true;
	sbx_chain_pos_init(&pos);
	if (!seen) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (;;) {
		struct sbx_pgrec *recs = NULL;
		size_t n = 0, n_ok = 0;
		uint64_t bad = 0;

		if (sbx_pgstore_fetch(e->store, pos.seq, SBX_PGSTORE_FETCH_MAX, &recs, &n, err,
				      errlen) < 0)
			goto out;
		if (n == 0)
			break;
		if (sbx_chain_check(&pos, recs, n, &n_ok, &bad, lc->chain_why,
				    sizeof(lc->chain_why)) < 0)
			lc->chain_ok = false;
		for (size_t i = 0; i < n_ok; i++)
			count_record(e, recs[i].line, seen, lc);
		lc->records += n_ok;
		sbx_pgrecs_free(recs, n);
		if (!lc->chain_ok)
			break;
	}
	for (size_t k = 0; k < e->n_pairs; k++) {
		bool acked = atomic_load(&e->acked[k]) != 0;

		lc->acked += acked;
		if (acked && !seen[k])
			lc->acked_missing++;
		if (!acked && seen[k])
			lc->unacked_present++;
	}
	ret = 0;
out:
	free(seen);
	return ret;
}

static void print_log_check(struct env *e, const char *when)
{
	struct log_check lc;
	char err[600];
	int64_t t = bench_now_ns();

	if (check_log(e, &lc, err, sizeof(err)) < 0) {
		printf("  log (%s): cannot read it: %s\n", when, err);
		return;
	}
	printf("  log (%s): %" PRIu64 " records, chain %s; part-1 requests acknowledged %" PRIu64
	       ", request.created in the log %" PRIu64 " (acknowledged but missing %" PRIu64
	       ", never acknowledged %" PRIu64 ", filed twice %" PRIu64 "); read and checked in "
	       "%.2f s\n", when, lc.records, lc.chain_ok ? "intact" : "BROKEN", lc.acked,
	       lc.created_pairs, lc.acked_missing, lc.unacked_present, lc.dup_pairs,
	       (double)(bench_now_ns() - t) / 1e9);
	if (!lc.chain_ok)
		printf("    %s\n", lc.chain_why);
	printf("    %s: acknowledged %lu requests and %lu approvals; in the log %" PRIu64
	       " request.created, %" PRIu64 " request.approval\n", SUDO_ROLE, e->acked_sudo,
	       e->acked_approvals, lc.created_sudo, lc.approvals);
	printf("    grant.activated %" PRIu64 " (= acknowledged requests + approvals: %s), "
	       "policy.loaded %" PRIu64 ", other %" PRIu64 "\n", lc.activated,
	       lc.activated == lc.acked + e->acked_approvals ? "yes" : "NO", lc.policy_loaded,
	       lc.other);
	fflush(stdout);
}

/* ---------------------------------------------------------------- part 2 */

/* A broker's groups.table, re-read whenever the file is replaced. */
struct table_watch {
	char path[PATH_MAX];
	dev_t dev;
	ino_t ino;
	struct timespec mtim;
	off_t size;
	uint8_t *buf;
	size_t len;
	bool valid;
};

static void watch_init(struct table_watch *w, const struct bench_broker *b)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->path, sizeof(w->path), "%s/%s", b->dir, SBX_TBL_FILE);
}

static void watch_free(struct table_watch *w)
{
	free(w->buf);
	w->buf = NULL;
	w->valid = false;
}

static void watch_refresh(struct table_watch *w)
{
	struct stat st;
	uint8_t *buf;
	int fd;

	if (stat(w->path, &st) < 0)
		return;
	if (w->valid && st.st_ino == w->ino && st.st_dev == w->dev && st.st_size == w->size &&
	    st.st_mtim.tv_sec == w->mtim.tv_sec && st.st_mtim.tv_nsec == w->mtim.tv_nsec)
		return;
	fd = open(w->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size > SBX_TBL_MAX_SIZE) {
		if (fd >= 0)
			close(fd);
		return;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf || read(fd, buf, (size_t)st.st_size) != st.st_size) {
		free(buf);
		close(fd);
		return;
	}
	close(fd);
	watch_free(w);
	w->buf = buf;
	w->len = (size_t)st.st_size;
	w->ino = st.st_ino;
	w->dev = st.st_dev;
	w->size = st.st_size;
	w->mtim = st.st_mtim;
	w->valid = true;
}

/* Is user a live member of group in the table as last read? */
static bool watch_member(const struct table_watch *w, const char *group, const char *user)
{
	struct sbx_tbl t;
	struct sbx_tbl_group g;

	if (!w->valid || sbx_tbl_open(&t, w->buf, w->len, 1, NULL, 0) < 0 ||
	    sbx_tbl_find_name(&t, group, &g) != 1)
		return false;
	return sbx_tbl_is_member(&t, &g, user, (int64_t)time(NULL)) == 1;
}

struct filing {
	struct env *e;
	unsigned long first_user;       /* users first_user .. first_user + n - 1 */
	unsigned long n;
	atomic_ulong next;
	uint32_t *ids;                  /* [n]; 0 when filing failed */
	atomic_ulong errors;
	char first_err[480];
	pthread_mutex_t mu;
};

static void *filing_main(void *p)
{
	struct filing *fl = p;
	unsigned long i;

	while (!bench_interrupted && (i = atomic_fetch_add(&fl->next, 1)) < fl->n) {
		char user[24], state[32], err[400];
		uint32_t id = 0;

		snprintf(user, sizeof(user), "u%04lu", fl->first_user + i);
		if (file_request(fl->e->fleet[FILE_ON].socket, user, SUDO_ROLE, &id, state,
				 sizeof(state), err, sizeof(err)) < 0 || strcmp(state, "pending") != 0) {
			if (atomic_fetch_add(&fl->errors, 1) == 0) {
				pthread_mutex_lock(&fl->mu);
				snprintf(fl->first_err, sizeof(fl->first_err), "%s: %s", user,
					 state[0] ? state : err);
				pthread_mutex_unlock(&fl->mu);
			}
			continue;
		}
		fl->ids[i] = id;
	}
	return NULL;
}

/* Watches sbx-01's and the third host's tables for the user being
 * approved, on a thread of its own, so that a membership that shows up
 * before sbx-02's reply has its time too. */
struct watcher {
	pthread_mutex_t mu;
	char user[24];                  /* "" between approvals */
	uint64_t gen;
	int64_t seen_ns[2];             /* 0 until seen, for gen */
	bool stop;
	struct table_watch w[2];
};

static void *watcher_main(void *p)
{
	struct watcher *wt = p;

	for (;;) {
		char user[24];
		uint64_t gen;
		bool todo[2];

		pthread_mutex_lock(&wt->mu);
		if (wt->stop) {
			pthread_mutex_unlock(&wt->mu);
			break;
		}
		snprintf(user, sizeof(user), "%s", wt->user);
		gen = wt->gen;
		todo[0] = !wt->seen_ns[0];
		todo[1] = !wt->seen_ns[1];
		pthread_mutex_unlock(&wt->mu);
		for (int k = 0; k < 2 && user[0]; k++) {
			if (!todo[k])
				continue;
			watch_refresh(&wt->w[k]);
			if (watch_member(&wt->w[k], SUDO_GROUP, user)) {
				int64_t now = bench_now_ns();

				pthread_mutex_lock(&wt->mu);
				if (wt->gen == gen && !wt->seen_ns[k])
					wt->seen_ns[k] = now;
				pthread_mutex_unlock(&wt->mu);
			}
		}
		nap_ns(POLL_NS);
	}
	return NULL;
}

/* The next user to look for (and forget the last). */
static void watcher_look_for(struct watcher *wt, const char *user)
{
	pthread_mutex_lock(&wt->mu);
	snprintf(wt->user, sizeof(wt->user), "%s", user);
	wt->gen++;
	wt->seen_ns[0] = wt->seen_ns[1] = 0;
	pthread_mutex_unlock(&wt->mu);
}

/* Wait until both tables list the user, or until the deadline. */
static void watcher_wait(struct watcher *wt, int64_t deadline_ns, int64_t seen[2])
{
	for (;;) {
		pthread_mutex_lock(&wt->mu);
		seen[0] = wt->seen_ns[0];
		seen[1] = wt->seen_ns[1];
		pthread_mutex_unlock(&wt->mu);
		if ((seen[0] && seen[1]) || bench_now_ns() > deadline_ns || bench_interrupted)
			return;
		nap_ns(100000);
	}
}

static void print_ms(const char *label, const struct bench_samples *s_in, unsigned long of,
		     const char *note)
{
	struct bench_samples s = *s_in;
	struct bench_stats st;

	bench_stats_compute(&s, &st);
	printf("  %-36s %4zu of %-4lu p50 %7.1f  p90 %7.1f  p99 %7.1f  max %7.1f ms%s\n", label,
	       st.n, of, st.p50_us / 1000, st.p90_us / 1000, st.p99_us / 1000, st.max_us / 1000,
	       note);
}

/* One block: n requests filed on sbx-01, then approved on sbx-02 one at a
 * time, each followed until sbx-01 (and the third host) list the user. */
static void propagation_block(struct env *e, bool loaded, struct bench_stats *prop_out)
{
	const struct cfg *c = e->cfg;
	unsigned long n = c->approvals;
	struct filing fl = { .e = e, .first_user = e->next_sudo_user, .n = n,
			     .mu = PTHREAD_MUTEX_INITIALIZER };
	/* [0] sbx-01, [1] the third host */
	struct bench_samples appr = { 0 }, after_reply[2] = { { 0 } }, after_send[2] = { { 0 } };
	struct bench_samples refused = { 0 };   /* how long the refused approvals took */
	struct watcher wt = { .mu = PTHREAD_MUTEX_INITIALIZER };
	pthread_t wtid;
	bool wt_on = false, load_on = false;
	struct bg_load load;
	void *args[8];
	double wall;
	int64_t t0, filed_seq = -1;
	unsigned long approved = 0, not_seen[2] = { 0, 0 }, early[2] = { 0, 0 };
	unsigned long appr_errors = 0, ld = 0, le = 0;
	char err[400], state[32], first_appr_err[480] = "", label[64];

	e->next_sudo_user += n;
	printf("\n== 2. approval on %s -> member of %s in %s's groups.table, %lu grants, %s ==\n",
	       host_names[APPROVE_ON], SUDO_GROUP, host_names[FILE_ON], n,
	       loaded ? "while all three brokers file requests" : "fleet otherwise idle");
	fl.ids = calloc(n, sizeof(*fl.ids));
	atomic_init(&fl.next, 0);
	atomic_init(&fl.errors, 0);
	watch_init(&wt.w[0], &e->fleet[FILE_ON]);
	watch_init(&wt.w[1], &e->fleet[THIRD]);
	if (!fl.ids)
		goto out;
	for (int i = 0; i < 8; i++)
		args[i] = &fl;
	if (bench_run_threads(8, filing_main, args, &t0, &wall) < 0) {
		printf("  cannot start the client threads\n");
		goto out;
	}
	printf("  filed on %s: %lu %s requests (users u%04lu..u%04lu, pending) in %.2f s, "
	       "errors %lu%s%s\n", host_names[FILE_ON], n - atomic_load(&fl.errors), SUDO_ROLE,
	       fl.first_user, fl.first_user + n - 1, wall, atomic_load(&fl.errors),
	       fl.first_err[0] ? "; first: " : "", fl.first_err);
	e->acked_sudo += n - atomic_load(&fl.errors);
	/* sbx-02 must know the requests before it can approve them */
	{
		struct ping_info p;
		int64_t end = bench_now_ns() + 30000000000LL;

		if (ping_fleet(e->fleet[FILE_ON].socket, &p, err, sizeof(err)) == 0)
			filed_seq = p.fleet_seq;
		while (!bench_interrupted && bench_now_ns() < end &&
		       (ping_fleet(e->fleet[APPROVE_ON].socket, &p, err, sizeof(err)) < 0 ||
			p.fleet_seq < filed_seq))
			nap_ns(5000000);
	}
	if (pthread_create(&wtid, NULL, watcher_main, &wt) != 0) {
		printf("  cannot start the table watcher\n");
		goto out;
	}
	wt_on = true;
	if (loaded) {
		bool hosts[N_HOSTS] = { true, true, true };

		if (load_start(e, &load, hosts, (unsigned)c->load_clients) < 0) {
			printf("  cannot start the background clients\n");
			load_stop(&load, &ld, &le);
			goto out;
		}
		load_on = true;
		nap_ns(500000000);      /* let the load get going */
	}
	t0 = bench_now_ns();
	for (unsigned long i = 0; i < n && !bench_interrupted; i++) {
		char user[24];
		int64_t ta, tr, seen[2];

		if (!fl.ids[i])
			continue;
		snprintf(user, sizeof(user), "u%04lu", fl.first_user + i);
		watcher_look_for(&wt, user);
		ta = bench_now_ns();
		if (approve(e->fleet[APPROVE_ON].socket, fl.ids[i], state, sizeof(state), err,
			    sizeof(err)) < 0 || strcmp(state, "active") != 0) {
			if (!appr_errors++)
				snprintf(first_appr_err, sizeof(first_appr_err), "%s (id %u): %s", user,
					 fl.ids[i], state[0] ? state : err);
			(void)bench_samples_add(&refused, bench_now_ns() - ta);
			continue;
		}
		tr = bench_now_ns();
		approved++;
		e->acked_approvals++;
		(void)bench_samples_add(&appr, tr - ta);
		watcher_wait(&wt, tr + (int64_t)SEEN_TIMEOUT_MS * 1000000, seen);
		for (int k = 0; k < 2; k++) {
			if (!seen[k]) {
				not_seen[k]++;
				continue;
			}
			early[k] += seen[k] <= tr;
			(void)bench_samples_add(&after_reply[k], seen[k] > tr ? seen[k] - tr : 0);
			(void)bench_samples_add(&after_send[k], seen[k] - ta);
		}
	}
	wall = (double)(bench_now_ns() - t0) / 1e9;
	if (load_on)
		load_stop(&load, &ld, &le);
	print_ms("APPROVE on sbx-02, send to reply", &appr, approved, "");
	if (appr_errors) {
		print_ms("APPROVE refused, send to reply", &refused, appr_errors, "");
		printf("    first refusal: %s\n", first_appr_err);
	}
	for (int k = 0; k < 2; k++) {
		const char *h = host_names[k ? THIRD : FILE_ON];
		char note[96];

		snprintf(label, sizeof(label), "seen on %s after the reply", h);
		snprintf(note, sizeof(note), "  (%lu already there at the reply)", early[k]);
		print_ms(label, &after_reply[k], approved, note);
		snprintf(label, sizeof(label), "seen on %s after the send", h);
		print_ms(label, &after_send[k], approved, "");
		if (not_seen[k])
			printf("    NOT SEEN on %s within %d s: %lu\n", h, SEEN_TIMEOUT_MS / 1000,
			       not_seen[k]);
	}
	bench_stats_compute(&after_reply[0], prop_out);
	if (load_on)
		printf("  background: %lu requests filed meanwhile by %lu clients per broker "
		       "(%.0f/s, errors %lu)\n", ld, c->load_clients, wall > 0 ? (double)ld / wall : 0,
		       le);
out:
	if (wt_on) {
		pthread_mutex_lock(&wt.mu);
		wt.stop = true;
		pthread_mutex_unlock(&wt.mu);
		pthread_join(wtid, NULL);
	}
	fflush(stdout);
	watch_free(&wt.w[0]);
	watch_free(&wt.w[1]);
	bench_samples_free(&appr);
	bench_samples_free(&refused);
	for (int k = 0; k < 2; k++) {
		bench_samples_free(&after_reply[k]);
		bench_samples_free(&after_send[k]);
	}
	free(fl.ids);
}

/* ---------------------------------------------------------------- part 3 */

struct check_run {
	const char *socket;
	int require_root;
	int64_t t0_ns, dur_ns;
};

struct check_worker {
	struct check_run *run;
	struct bench_samples lat;
	unsigned long done, errors;
	char first_err[256];
};

static int check_once(const struct check_run *run, uint32_t *allowed, char *msg, size_t msglen)
{
	struct sbx_conn_opts o = { .path = run->socket, .timeout_ms = BENCH_TIMEOUT_MS,
				   .require_root = run->require_root };
	sbx_msg m;
	uint8_t *frame = NULL;
	size_t n = 0;
	uint32_t status = 0;
	sbx_reader r;
	sbx_field f;
	int rc;

	sbx_msg_init(&m, SBX_OP_CHECK);
	sbx_msg_put_str(&m, SBX_F_USER, CHECK_USER);
	rc = sbx_call(&o, &m, &frame, &n);
	sbx_msg_free(&m);
	if (rc < 0) {
		snprintf(msg, msglen, "%s", strerror(-rc));
		goto out;
	}
	rc = -1;
	if (sbx_reply_status(frame, n, &status, msg, msglen) < 0 || status != SBX_ST_OK)
		goto out;
	sbx_reader_init_frame(&r, frame, n);
	if (sbx_reader_find(&r, SBX_F_ALLOWED, &f) != 1) {
		snprintf(msg, msglen, "reply without ALLOWED");
		goto out;
	}
	if (allowed)
		*allowed = sbx_field_u32(&f);
	rc = 0;
out:
	free(frame);
	return rc;
}

static void *check_worker_main(void *p)
{
	struct check_worker *w = p;
	int64_t t = bench_now_ns();

	while (!bench_interrupted && t - w->run->t0_ns < w->run->dur_ns) {
		char msg[256];
		int rc = check_once(w->run, NULL, msg, sizeof(msg));
		int64_t t1 = bench_now_ns();

		if (rc < 0) {
			if (!w->errors++)
				snprintf(w->first_err, sizeof(w->first_err), "%s", msg);
		} else {
			(void)bench_samples_add(&w->lat, t1 - t);
			w->done++;
		}
		t = t1;
	}
	return NULL;
}

/* One column of one level, summed over its rounds. */
struct check_result {
	struct bench_samples all;
	double wall, cpu;               /* seconds: measuring, and the broker's CPU */
	unsigned long done, errors;
	struct bench_stats st;          /* at the end */
	char first_err[256];
};

/* clients check for secs; what they did is added to res (NULL: a warm-up,
 * dropped).  -1 when the threads could not start. */
static int run_checks(struct check_run *run, unsigned clients, double secs, pid_t broker,
		      struct check_result *res)
{
	struct check_worker *w = calloc(clients, sizeof(*w));
	void **args = calloc(clients, sizeof(*args));
	double wall = 0, b0 = bench_cpu_seconds(broker), b1;
	int ret = -1;

	run->dur_ns = (int64_t)(secs * 1e9);
	if (!w || !args)
		goto out;
	for (unsigned i = 0; i < clients; i++) {
		w[i].run = run;
		args[i] = &w[i];
	}
	if (bench_run_threads(clients, check_worker_main, args, &run->t0_ns, &wall) < 0)
		goto out;
	b1 = bench_cpu_seconds(broker);
	ret = 0;
	if (!res)
		goto out;
	res->wall += wall;
	res->cpu += b0 >= 0 && b1 >= 0 ? b1 - b0 : 0;
	for (unsigned i = 0; i < clients; i++) {
		res->done += w[i].done;
		res->errors += w[i].errors;
		if (w[i].errors && !res->first_err[0])
			snprintf(res->first_err, sizeof(res->first_err), "%s", w[i].first_err);
		(void)bench_samples_take(&res->all, &w[i].lat);
	}
out:
	if (w)
		for (unsigned i = 0; i < clients; i++)
			bench_samples_free(&w[i].lat);
	free(w);
	free(args);
	return ret;
}

static int want_root_check(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && st.st_uid == 0;
}

static int start_single(struct env *e, char *err, size_t errlen)
{
	struct bench_broker *b = &e->single;

	if (bench_broker_prepare(b, "bench_fleet-single", err, errlen) < 0)
		return -1;
	snprintf(b->host, sizeof(b->host), "%s", host_names[FILE_ON]);
	if (write_policy_file(e, b, false, err, errlen) < 0)
		return -1;
	return bench_broker_start(b, e->cfg->broker, 30000, err, errlen);
}

static void part_checks(struct env *e, double p99_out[2][BENCH_MAX_LEVELS])
{
	const struct cfg *c = e->cfg;
	const bool with_load = c->load_clients > 0;
	const int ncol = with_load ? 4 : 2;
	struct check_result res[4][BENCH_MAX_LEVELS];
	const char *label[4] = { "single-host", "fleet sbx-01", "single, busy", "sbx-01, busy" };
	const char *sockets[4];
	pid_t pids[4];
	char err[600], msg[256];
	uint32_t allowed = 0;

	printf("\n== 3. login checks: connect+CHECK(%s)+close as uid 0, single-host broker vs "
	       "fleet broker ==\n", CHECK_USER);
	if (start_single(e, err, sizeof(err)) < 0) {
		printf("  cannot start the single-host broker: %s\n", err);
		bench_broker_cleanup(&e->single, true);
		return;
	}
	/* even columns the single-host broker, odd ones sbx-01 */
	sockets[0] = sockets[2] = e->single.socket;
	sockets[1] = sockets[3] = e->fleet[FILE_ON].socket;
	pids[0] = pids[2] = e->single.pid;
	pids[1] = pids[3] = e->fleet[FILE_ON].pid;
	for (int k = 0; k < 2; k++) {
		struct check_run probe = { .socket = sockets[k] };

		if (check_once(&probe, &allowed, msg, sizeof(msg)) < 0)
			printf("  %s: check failed: %s\n", label[k], msg);
		else
			printf("  %-13s %s -> %s: %s (socket owner check %s)\n", label[k], CHECK_USER,
			       allowed ? "allowed" : "denied", msg,
			       want_root_check(sockets[k]) ? "on" : "off");
	}
	if (with_load)
		printf("  \"busy\": %lu clients on each of %s and %s file requests meanwhile: "
		       "%s applies their records from the log, the single-host broker does not; "
		       "both share this machine's cores with that load\n", c->load_clients,
		       host_names[APPROVE_ON], host_names[THIRD], host_names[FILE_ON]);
	memset(res, 0, sizeof(res));
	/* The columns take turns, a third of the time at once, so that the
	 * machine's other load and its drift fall on each alike. */
	for (size_t l = 0; l < c->n_check_levels && !bench_interrupted; l++) {
		for (int round = 0; round < CHECK_ROUNDS && !bench_interrupted; round++) {
			for (int k = 0; k < ncol && !bench_interrupted; k++) {
				struct check_run run = { .socket = sockets[k],
							 .require_root = want_root_check(sockets[k]) };
				struct bg_load load;
				bool load_on = false;
				unsigned long ld, le;

				if (k >= 2) {
					bool hosts[N_HOSTS] = { false, true, true };

					if (load_start(e, &load, hosts, (unsigned)c->load_clients) < 0) {
						load_stop(&load, &ld, &le);
						printf("  cannot start the background clients\n");
						continue;
					}
					load_on = true;
				}
				if (c->warmup_s > 0)
					(void)run_checks(&run, c->check_levels[l], c->warmup_s / CHECK_ROUNDS,
							 pids[k], NULL);
				(void)run_checks(&run, c->check_levels[l],
						 c->check_duration_s / CHECK_ROUNDS, pids[k], &res[k][l]);
				if (load_on)
					load_stop(&load, &ld, &le);
			}
		}
		for (int k = 0; k < ncol; k++)
			bench_stats_compute(&res[k][l].all, &res[k][l].st);
	}
	printf("  %-26s", "");
	for (int k = 0; k < ncol; k++)
		printf(" %14s", label[k]);
	printf("\n");
	for (size_t l = 0; l < c->n_check_levels; l++) {
		static const char *const rows[] = { "checks/s", "p50 us", "p90 us", "p99 us",
						    "max us", "broker cpu", "errors" };

		for (size_t row = 0; row < sizeof(rows) / sizeof(rows[0]); row++) {
			char lead[40] = "";

			if (row == 0)
				snprintf(lead, sizeof(lead), "%u client%s", c->check_levels[l],
					 c->check_levels[l] == 1 ? "" : "s");
			printf("  %-12s %-13s", lead, rows[row]);
			for (int k = 0; k < ncol; k++) {
				const struct check_result *r = &res[k][l];
				double v[] = { r->wall > 0 ? (double)r->done / r->wall : 0, r->st.p50_us,
					       r->st.p90_us, r->st.p99_us, r->st.max_us,
					       r->wall > 0 ? r->cpu / r->wall : 0, (double)r->errors };

				if (row == 5)
					printf(" %14.2f", v[row]);
				else
					printf(" %14.0f", v[row]);
			}
			printf("\n");
		}
		for (int k = 0; k < ncol; k++)
			if (res[k][l].first_err[0])
				printf("  first error (%s): %s\n", label[k], res[k][l].first_err);
		if (l < BENCH_MAX_LEVELS) {
			p99_out[0][l] = res[0][l].st.p99_us;
			p99_out[1][l] = res[1][l].st.p99_us;
		}
	}
	for (size_t l = 0; l < c->n_check_levels; l++)
		for (int k = 0; k < ncol; k++)
			bench_samples_free(&res[k][l].all);
	fflush(stdout);
}

/* ---------------------------------------------------------------- setting up */

/* The machine's other load shows in every number here. */
static void print_loadavg(const char *when)
{
	char buf[128] = "";
	FILE *f = fopen("/proc/loadavg", "re");

	if (f && fgets(buf, sizeof(buf), f)) {
		buf[strcspn(buf, "\n")] = '\0';
		printf("load:     %s: /proc/loadavg %s\n", when, buf);
	}
	if (f)
		fclose(f);
}

static int setup_postgres(struct env *e, char *err, size_t errlen)
{
	const struct cfg *c = e->cfg;
	char sql[256], buf[256];
	size_t len;
	int version = 0;

	if (c->postgres) {
		snprintf(e->base_conninfo, sizeof(e->base_conninfo), "%s", c->postgres);
		if (c->password_file[0]) {
			if (sbx_secret_read("--password-file", c->password_file, e->password,
					    sizeof(e->password), &len, err, errlen) < 0)
				return -1;
			e->pwfile = c->password_file;
		}
	} else {
		if (bench_pg_start(&e->pg, c->pg_bin[0] ? c->pg_bin : DEFAULT_PG_BIN, "bench_fleet",
				   err, errlen) < 0)
			return -1;
		e->own_pg = true;
		bench_pg_conninfo(&e->pg, e->base_conninfo, sizeof(e->base_conninfo));
		snprintf(e->password, sizeof(e->password), "%s", e->pg.password);
		e->pwfile = e->pg.pwfile;
	}
	e->pq = pq_connect(e, e->base_conninfo, err, errlen);
	if (!e->pq || pq_exec(e->pq, "SET client_min_messages TO warning", err, errlen) < 0)
		return -1;
	snprintf(e->schema, sizeof(e->schema), "sbx_bench_%ld_%d", (long)time(NULL), (int)getpid());
	snprintf(sql, sizeof(sql), "CREATE SCHEMA %s", e->schema);
	if (pq_exec(e->pq, sql, err, errlen) < 0)
		return -1;
	e->schema_made = true;
	snprintf(sql, sizeof(sql), "SET search_path TO %s", e->schema);
	if (pq_exec(e->pq, sql, err, errlen) < 0)
		return -1;
	if (scoped_conninfo(e->base_conninfo, e->schema, e->conninfo, sizeof(e->conninfo)) < 0) {
		snprintf(err, errlen, "--postgres: too long");
		return -1;
	}
	{
		struct sbx_pgstore_opts o = { .conninfo = e->conninfo,
					      .password = e->pwfile ? e->password : NULL,
					      .timeout_ms = 30000, .host = "bench_fleet" };

		if (sbx_pgstore_open(&o, &e->store, err, errlen) < 0 ||
		    sbx_pgstore_init_schema(e->store, &version, err, errlen) < 0)
			return -1;
	}
	(void)pq_value(e->pq, "SHOW server_version", buf, sizeof(buf));
	printf("postgres: %s %s at %s, schema %s (version %d, made with sbx_pgstore_init_schema)\n",
	       e->own_pg ? "throwaway server" : "server", buf, e->base_conninfo, e->schema, version);
	{
		char fsync_v[32], sc[32], wsm[32], sb[32];

		(void)pq_value(e->pq, "SHOW fsync", fsync_v, sizeof(fsync_v));
		(void)pq_value(e->pq, "SHOW synchronous_commit", sc, sizeof(sc));
		(void)pq_value(e->pq, "SHOW wal_sync_method", wsm, sizeof(wsm));
		(void)pq_value(e->pq, "SHOW shared_buffers", sb, sizeof(sb));
		printf("          fsync %s, synchronous_commit %s, wal_sync_method %s, shared_buffers "
		       "%s%s\n", fsync_v, sc, wsm, sb,
		       strcmp(fsync_v, "on") || strcmp(sc, "on") ? "  (NOT durable: commits are "
		       "cheaper than in production)" : "");
	}
	if (e->own_pg)
		bench_print_fs(stdout, "pgdata:", e->pg.data);
	print_commit_floor(e);
	print_append_cost(e);
	return 0;
}

static int start_fleet(struct env *e, char *err, size_t errlen)
{
	for (int i = 0; i < N_HOSTS; i++) {
		struct bench_broker *b = &e->fleet[i];
		char prog[64];

		snprintf(prog, sizeof(prog), "bench_fleet-%s", host_names[i]);
		if (bench_broker_prepare(b, prog, err, errlen) < 0)
			return -1;
		snprintf(b->host, sizeof(b->host), "%s", host_names[i]);
		if (write_policy_file(e, b, true, err, errlen) < 0)
			return -1;
		if (bench_broker_start(b, e->cfg->broker, 30000, err, errlen) < 0)
			return -1;
	}
	/* every broker connected to the log, which holds their policy.loaded */
	for (int i = 0; i < N_HOSTS; i++) {
		int64_t end = bench_now_ns() + 30000000000LL;
		struct ping_info p = { 0 };

		while (!bench_interrupted && bench_now_ns() < end &&
		       (ping_fleet(e->fleet[i].socket, &p, err, errlen) < 0 || !p.writable))
			nap_ns(20000000);
		if (!p.writable) {
			snprintf(err, errlen, "%s: the fleet's log is not writable: %s", host_names[i],
				 p.fleet);
			return -1;
		}
	}
	return 0;
}

static void print_settings(const struct env *e)
{
	const struct cfg *c = e->cfg;
	struct ping_info p;
	char err[256];

	printf("brokers:  %s\n", c->broker);
	for (int i = 0; i < N_HOSTS; i++) {
		if (ping_fleet(e->fleet[i].socket, &p, err, sizeof(err)) < 0)
			snprintf(p.fleet, sizeof(p.fleet), "%s", err);
		printf("          %-16s pid %d, %s\n", host_names[i], (int)e->fleet[i].pid, p.fleet);
	}
	bench_print_fs(stdout, "state:", e->fleet[0].state_dir);
	printf("settings: part 1 %lu clients per broker, %.1f s (warm-up %.1f s); %lu users x %lu "
	       "roles (%zu requests at most); part 2 %lu approvals per block, background %lu "
	       "clients per broker; part 3 clients", c->clients, c->duration_s, c->warmup_s,
	       c->users, c->roles, e->n_pairs, c->approvals, c->load_clients);
	for (size_t i = 0; i < c->n_check_levels; i++)
		printf("%s%u", i ? "," : " ", c->check_levels[i]);
	printf(", %.1f s each\n", c->check_duration_s);
}

static void print_targets(const struct cfg *c, double best_rate, const struct bench_stats *prop,
			  double p99[2][BENCH_MAX_LEVELS])
{
	printf("\ntargets (fleet issue; printed, not asserted):\n");
	if (part_on(c, 1))
		printf("  >= %.0f fleet requests/s (3 brokers x %lu clients): %.0f requests/s  (%s)\n",
		       TARGET_RATE, c->clients, best_rate, best_rate >= TARGET_RATE ? "met" : "MISSED");
	if (part_on(c, 2) && prop->n)
		printf("  approval -> NSS table on another host p50 <= %.0f ms, p99 <= %.0f ms: "
		       "p50 %.1f ms, p99 %.1f ms (fleet idle)  (%s)\n", TARGET_PROP_P50_MS,
		       TARGET_PROP_P99_MS, prop->p50_us / 1000, prop->p99_us / 1000,
		       prop->p50_us / 1000 <= TARGET_PROP_P50_MS &&
		       prop->p99_us / 1000 <= TARGET_PROP_P99_MS ? "met" : "MISSED");
	if (part_on(c, 3))
		for (size_t l = 0; l < c->n_check_levels && p99[0][l] > 0 && p99[1][l] > 0; l++)
			printf("  login check p99 fleet vs single host, %u client%s: %.0f us vs %.0f us "
			       "(%+.0f%%)\n", c->check_levels[l], c->check_levels[l] == 1 ? "" : "s",
			       p99[1][l], p99[0][l], p99[0][l] > 0 ? 100.0 * (p99[1][l] - p99[0][l]) /
			       p99[0][l] : 0);
}

/* Warnings and errors in a broker's log: how many, and the first. */
static void print_log_summary(const struct bench_broker *b, const char *name)
{
	char line[1024], first[1024] = "";
	unsigned long n = 0;
	FILE *f = fopen(b->log, "re");

	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, ": warning: ") && !strstr(line, ": error: ") &&
		    !strstr(line, ": critical: "))
			continue;
		if (!n++)
			snprintf(first, sizeof(first), "%s", line);
	}
	fclose(f);
	printf("  %-16s %lu warnings/errors in its log%s%s", name, n, n ? "; first: " : "\n",
	       n ? first : "");
}

static void teardown(struct env *e, bool failed)
{
	char err[512], sql[128];

	if (e->fleet[0].dir[0] || e->single.dir[0])
		printf("\nbroker logs:\n");
	for (int i = 0; i < N_HOSTS; i++) {
		struct bench_broker *b = &e->fleet[i];

		if (!b->dir[0])
			continue;
		print_log_summary(b, host_names[i]);
		if (b->pid) {
			int st = bench_broker_stop(b);

			if (st != 0) {
				fprintf(stderr, "bench_fleet: %s stopped with status %d; its log:\n",
					host_names[i], st);
				bench_broker_print_log(b, stderr);
			}
		}
		bench_broker_cleanup(b, failed);
	}
	if (e->single.dir[0]) {
		print_log_summary(&e->single, "single-host");
		bench_broker_cleanup(&e->single, failed);
	}
	fflush(stdout);
	if (e->store)
		sbx_pgstore_close(e->store);
	if (e->pq && e->schema_made && !e->own_pg && !e->cfg->keep_schema) {
		snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", e->schema);
		if (pq_exec(e->pq, "RESET search_path", err, sizeof(err)) < 0 ||
		    pq_exec(e->pq, sql, err, sizeof(err)) < 0)
			fprintf(stderr, "bench_fleet: %s\n", err);
	} else if (e->schema_made && e->cfg->keep_schema && !e->own_pg) {
		printf("schema %s kept\n", e->schema);
	}
	if (e->pq)
		PQfinish(e->pq);
	if (e->own_pg) {
		if (failed)
			bench_pg_print_log(&e->pg, stderr);
		bench_pg_stop(&e->pg);
	}
	free(e->acked);
	explicit_bzero(e->password, sizeof(e->password));
}

int main(int argc, char **argv)
{
	static struct cfg c = { .clients = 8, .duration_s = 5, .warmup_s = 1, .users = 3000,
				.roles = 16, .approvals = 200, .load_clients = 2,
				.check_levels = { 1, 8 }, .n_check_levels = 2,
				.check_duration_s = 3, .parts = { 1, 2, 3 }, .n_parts = 3 };
	static struct env e;
	struct bench_stats prop = { 0 };
	double best_rate = 0, p99[2][BENCH_MAX_LEVELS] = { { 0 } };
	char err[1024];
	int ret = 1;

	if (parse_args(argc, argv, &c) < 0)
		return 2;
	e.cfg = &c;
	e.n_pairs = c.users * c.roles;
	e.next_sudo_user = 1;
	atomic_init(&e.next_pair, 0);
	e.acked = calloc(e.n_pairs, sizeof(*e.acked));
	if (!e.acked) {
		fprintf(stderr, "bench_fleet: out of memory\n");
		return 1;
	}
	/* A closed stdout must not kill the bench before it stops what it
	 * started. */
	signal(SIGPIPE, SIG_IGN);
	if (bench_catch_signals() < 0) {
		fprintf(stderr, "bench_fleet: cannot set signal handlers: %s\n", strerror(errno));
		return 1;
	}
	if (geteuid() != 0)
		fprintf(stderr, "bench_fleet: not root: AS_USER will be refused (run it as root)\n");
	if (!c.broker[0] && bench_default_broker(c.broker, sizeof(c.broker)) < 0) {
		fprintf(stderr, "bench_fleet: cannot find sbx-brokerd (use --broker PATH)\n");
		return 1;
	}
	printf("bench_fleet: %d sbx-brokerd sharing one log in PostgreSQL\n", N_HOSTS);
	bench_print_machine(stdout, NULL);
	print_loadavg("at the start");
	if (setup_postgres(&e, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_fleet: %s\n", err);
		goto out;
	}
	if (start_fleet(&e, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_fleet: %s\n", err);
		goto out;
	}
	print_settings(&e);
	fflush(stdout);
	if (part_on(&c, 1) && !bench_interrupted) {
		part_requests(&e, &best_rate);
		if (!bench_interrupted)
			print_log_check(&e, "after part 1");
	}
	if (part_on(&c, 2) && !bench_interrupted) {
		propagation_block(&e, false, &prop);
		if (c.load_clients && !bench_interrupted) {
			struct bench_stats loaded;

			propagation_block(&e, true, &loaded);
		}
	}
	if (part_on(&c, 3) && !bench_interrupted)
		part_checks(&e, p99);
	if (!bench_interrupted) {
		int64_t seq;

		printf("\n== the shared log at the end ==\n");
		if (wait_settled(&e, 60000, &seq) == 0)
			printf("  all %d brokers applied the log up to seq %lld\n", N_HOSTS,
			       (long long)seq);
		else
			printf("  NOTE: the brokers did not all catch up with the log within 60 s\n");
		print_log_check(&e, "everything");
	}
	print_loadavg("at the end");
	print_targets(&c, best_rate, &prop, p99);
	if (bench_interrupted)
		printf("(interrupted)\n");
	ret = 0;
out:
	teardown(&e, ret != 0);
	return ret;
}
