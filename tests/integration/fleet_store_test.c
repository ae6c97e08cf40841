/*
 * fleet/pgstore.c against real PostgreSQL servers, which
 * tests/integration/fleet_store.sh starts (pg_lib.sh) and describes in the
 * environment:
 *   SBX_PG_CONNINFO            a primary (schema, log, notify, outage)
 *   SBX_PG_PORT                its port
 *   SBX_PG_PWFILE              the password of user sbx (TCP needs it)
 *   SBX_PG_STOP / _START / _FREEZE / _THAW
 *                              shell commands acting on that primary
 *   SBX_PG_FAILOVER_CONNINFO   standby,primary with target_session_attrs
 *   SBX_PG_STANDBY_CONNINFO    the standby alone
 *   SBX_PG_FAILOVER            kill the primary hard, promote the standby
 * Each suite runs in its own criterion run (--filter), one test at a time
 * (--jobs=1): the outage and failover tests change the servers.  Every
 * test works in a database of its own.
 *
 * Threads never assert (criterion's asserts end the test from the test's
 * own thread only): they record what happened and the test checks it
 * after joining them.  Measurements go to stderr as "fleet-note: ..."
 * lines, which the script shows as TAP diagnostics.
 */
#include "config.h"

#include "fleet/pgstore.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Allowed on top of a call's timeout: scheduling, a sanitizer build. */
#define SLACK_MS 300

static char password[256];
static char why[1024];

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

__attribute__((format(printf, 1, 2)))
static void note(const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "fleet-note: %s\n", buf);
	fflush(stderr);
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	cr_assert(v && *v, "%s is not set: run this through tests/integration/fleet_store.sh", name);
	return v;
}

static void load_password(void)
{
	FILE *f = fopen(env("SBX_PG_PWFILE"), "r");

	cr_assert_not_null(f, "cannot read SBX_PG_PWFILE");
	cr_assert_not_null(fgets(password, sizeof(password), f));
	fclose(f);
	password[strcspn(password, "\n")] = '\0';
}

static void hook(const char *name)
{
	int64_t t0 = now_ms();
	int rc = system(env(name));

	cr_assert_eq(rc, 0, "%s (%s) failed: %d", name, env(name), rc);
	note("%s took %" PRId64 " ms", name, now_ms() - t0);
}

static void quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* Run SQL as the superuser on conninfo (blocking libpq: test set-up). */
static void admin_sql(const char *conninfo, const char *sql)
{
	const char *kw[] = { "dbname", "password", NULL };
	const char *val[] = { conninfo, password, NULL };
	PGconn *c = PQconnectdbParams(kw, val, 1);
	PGresult *r;

	cr_assert_eq(PQstatus(c), CONNECTION_OK, "admin connect: %s", PQerrorMessage(c));
	PQsetNoticeProcessor(c, quiet, NULL);
	r = PQexec(c, sql);
	cr_assert(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK,
		  "%s: %s", sql, PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
}

/* A fresh database called name on the server of base; its conninfo. */
static char *fresh_db(const char *base, const char *name)
{
	char sql[256], *ci = NULL;

	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", name);
	admin_sql(base, sql);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	admin_sql(base, sql);
	cr_assert(asprintf(&ci, "%s dbname=%s", base, name) > 0);
	return ci;
}

static struct sbx_pgstore *open_store(const char *conninfo, int timeout_ms, const char *host)
{
	struct sbx_pgstore_opts o = {
		.conninfo = conninfo, .password = password, .timeout_ms = timeout_ms, .host = host,
	};
	struct sbx_pgstore *s = NULL;
	int rc = sbx_pgstore_open(&o, &s, why, sizeof(why));

	cr_assert_eq(rc, 0, "open: %d %s", rc, why);
	cr_assert_not_null(s);
	return s;
}

/* A stand-in hash: 64 lowercase hex digits that differ with seq, line and
 * salt.  (The store never checks hashes; the journal does.) */
static void fake_hash(uint64_t seq, const char *line, const char *salt, char out[65])
{
	int part;

	for (part = 0; part < 4; part++) {
		uint64_t h = 1469598103934665603ull ^ (uint64_t)part;
		const char *p;

		for (p = line; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		for (p = salt; *p; p++)
			h = (h ^ (unsigned char)*p) * 1099511628211ull;
		h = (h ^ seq) * 1099511628211ull;
		snprintf(out + part * 16, 17, "%016" PRIx64, h);
	}
}

static const char zero_hash[65] =
	"0000000000000000000000000000000000000000000000000000000000000000";

/* rec = { seq, line (owned by the caller), fake hash, prev }. */
static void mkrec(struct sbx_pgrec *r, uint64_t seq, const char *prev, char *line, const char *salt)
{
	char p[65];

	memcpy(p, prev ? prev : zero_hash, 65);     /* prev may be r->hash */
	memset(r, 0, sizeof(*r));
	r->seq = seq;
	r->line = line;
	memcpy(r->prev, p, 65);
	fake_hash(seq, line ? line : "", salt, r->hash);
}

static void setup(void)
{
	load_password();
}

/* ------------------------------------------------------------ schema */

TestSuite(schema, .init = setup, .timeout = 60);

Test(schema, init_is_idempotent)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_schema_init");
	struct sbx_pgstore *s = open_store(ci, 5000, "sbx-01");
	int version = -1, rc;
	uint64_t last = 99;

	rc = sbx_pgstore_check_schema(s, why, sizeof(why));
	cr_assert_eq(rc, -ENOENT, "check on an empty database: %d %s", rc, why);
	cr_assert(strstr(why, "no sbx schema") && strstr(why, sbx_pgstore_server(s)), "%s", why);

	rc = sbx_pgstore_init_schema(s, &version, why, sizeof(why));
	cr_assert_eq(rc, 0, "first init: %s", why);
	cr_assert_eq(version, SBX_PGSTORE_SCHEMA_VERSION);
	version = -1;
	rc = sbx_pgstore_init_schema(s, &version, why, sizeof(why));
	cr_assert_eq(rc, 0, "second init: %s", why);
	cr_assert_eq(version, SBX_PGSTORE_SCHEMA_VERSION);
	cr_assert_eq(sbx_pgstore_check_schema(s, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_pgstore_last_seq(s, &last, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(last, 0);
	sbx_pgstore_close(s);
	free(ci);
}

struct init_thread {
	const char *ci;
	int rc;
	char why[512];
};

static void *init_in_thread(void *arg)
{
	struct init_thread *t = arg;
	struct sbx_pgstore_opts o = {
		.conninfo = t->ci, .password = password, .timeout_ms = 5000, .host = "sbx-x",
	};
	struct sbx_pgstore *s = NULL;

	t->rc = sbx_pgstore_open(&o, &s, t->why, sizeof(t->why));
	if (t->rc == 0)
		t->rc = sbx_pgstore_init_schema(s, NULL, t->why, sizeof(t->why));
	sbx_pgstore_close(s);
	return NULL;
}

/* Brokers starting together: the advisory lock makes it one init. */
Test(schema, concurrent_init)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_schema_conc");
	struct init_thread t[4];
	pthread_t th[4];
	int i;

	for (i = 0; i < 4; i++) {
		t[i].ci = ci;
		t[i].why[0] = '\0';
		cr_assert_eq(pthread_create(&th[i], NULL, init_in_thread, &t[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_expect_eq(t[i].rc, 0, "init %d: %d %s", i, t[i].rc, t[i].why);
	}
	free(ci);
}

Test(schema, refuses_unknown_version)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_schema_999");
	struct sbx_pgstore *s = open_store(ci, 5000, "sbx-01"), *s2;
	int version = -1, rc;

	cr_assert_eq(sbx_pgstore_init_schema(s, NULL, why, sizeof(why)), 0, "%s", why);
	admin_sql(ci, "UPDATE sbx_schema SET version = 999");

	rc = sbx_pgstore_check_schema(s, why, sizeof(why));
	cr_assert_eq(rc, -EPROTO, "check: %d %s", rc, why);
	cr_assert(strstr(why, "version 999") && strstr(why, "newer"), "why: %s", why);
	note("check_schema on version 999: %s", why);
	rc = sbx_pgstore_init_schema(s, &version, why, sizeof(why));
	cr_assert_eq(rc, -EPROTO, "init must not downgrade: %d %s", rc, why);
	cr_assert_eq(version, -1);
	/* A broker starting now refuses too, and nothing was changed. */
	s2 = open_store(ci, 5000, "sbx-02");
	cr_assert_eq(sbx_pgstore_check_schema(s2, why, sizeof(why)), -EPROTO);
	admin_sql(ci, "UPDATE sbx_schema SET version = 1");
	cr_assert_eq(sbx_pgstore_check_schema(s2, why, sizeof(why)), 0, "%s", why);
	sbx_pgstore_close(s2);
	sbx_pgstore_close(s);
	free(ci);
}

Test(schema, bad_conninfo_and_password)
{
	struct sbx_pgstore_opts o = { .conninfo = "host=127.0.0.1 no_such_keyword=1", .host = "h" };
	struct sbx_pgstore *s = NULL;
	char ci[1024];
	int rc;

	rc = sbx_pgstore_open(&o, &s, why, sizeof(why));
	cr_assert_eq(rc, -EINVAL, "%d %s", rc, why);
	cr_assert_null(s);

	snprintf(ci, sizeof(ci), "%s", env("SBX_PG_CONNINFO"));
	o.conninfo = ci;
	o.password = "not-the-password-xyzzy";
	o.timeout_ms = 3000;
	rc = sbx_pgstore_open(&o, &s, why, sizeof(why));
	cr_assert(rc == -ENOTCONN || rc == -EACCES, "%d %s", rc, why);
	cr_assert_null(s);
	cr_assert(strstr(why, "password authentication failed"), "why: %s", why);
	cr_assert_null(strstr(why, "xyzzy"), "the password leaked into why: %s", why);
	cr_assert_null(strstr(why, password), "the password leaked into why: %s", why);
	note("wrong password: %s", why);

	o.password = NULL;
	rc = sbx_pgstore_open(&o, &s, why, sizeof(why));
	cr_assert_eq(rc, -EACCES, "no password: %d %s", rc, why);
}

/* ------------------------------------------------------------ log */

TestSuite(log, .init = setup, .timeout = 60);

Test(log, roundtrip_exact_bytes)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_log_rt");
	struct sbx_pgstore *s = open_store(ci, 5000, "sbx-01 \"main\"");
	char *lines[5], *big;
	struct sbx_pgrec r[5], *v = NULL;
	size_t n = 0, i, biglen = 200 * 1024;
	uint64_t last = 0;

	cr_assert_eq(sbx_pgstore_init_schema(s, NULL, why, sizeof(why)), 0, "%s", why);
	lines[0] = strdup("{\"seq\":1,\"event\":\"request.created\",\"actor\":\"alice\"}");
	lines[1] = strdup("{\"reason\":\"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x94\x92 "
			  "it's \\\"quoted\\\" and 'single' \\\\ back\\\\slash\\n\ttab\"}");
	lines[2] = strdup("'); DROP TABLE sbx_log; --  $1 $$ %s %n \\u00e9");
	lines[3] = strdup("  leading and trailing spaces  ");
	big = malloc(biglen + 1);
	cr_assert_not_null(big);
	for (i = 0; i < biglen; i++)
		big[i] = (char)('a' + i % 26);
	big[biglen] = '\0';
	lines[4] = big;

	mkrec(&r[0], 1, NULL, lines[0], "s");
	for (i = 1; i < 5; i++)
		mkrec(&r[i], i + 1, r[i - 1].hash, lines[i], "s");
	/* Three in one batch, then two. */
	cr_assert_eq(sbx_pgstore_append(s, r, 3, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_pgstore_append(s, r + 3, 2, why, sizeof(why)), 0, "%s", why);

	cr_assert_eq(sbx_pgstore_fetch(s, 0, 100, &v, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 5);
	for (i = 0; i < 5; i++) {
		cr_assert_eq(v[i].seq, i + 1);
		cr_assert_eq(strlen(v[i].line), strlen(lines[i]), "seq %zu length", i + 1);
		cr_assert_eq(memcmp(v[i].line, lines[i], strlen(lines[i])), 0, "seq %zu bytes", i + 1);
		cr_assert_str_eq(v[i].hash, r[i].hash);
		cr_assert_str_eq(v[i].prev, r[i].prev);
		cr_assert_str_eq(v[i].host, "sbx-01 \"main\"");
	}
	sbx_pgrecs_free(v, n);

	/* A window, and nothing past the end. */
	cr_assert_eq(sbx_pgstore_fetch(s, 2, 1, &v, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 1);
	cr_assert_eq(v[0].seq, 3);
	cr_assert_str_eq(v[0].line, lines[2]);
	sbx_pgrecs_free(v, n);
	cr_assert_eq(sbx_pgstore_fetch(s, 5, 10, &v, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 0);
	cr_assert_null(v);
	cr_assert_eq(sbx_pgstore_last_seq(s, &last, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(last, 5);

	for (i = 0; i < 5; i++)
		free(lines[i]);
	sbx_pgstore_close(s);
	free(ci);
}

Test(log, refuses_bad_records_and_gaps)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_log_bad");
	struct sbx_pgstore *s = open_store(ci, 5000, "sbx-01");
	char l1[] = "{\"n\":1}", l2[] = "{\"n\":2}", l3[] = "{\"n\":3}";
	struct sbx_pgrec r[3];
	uint64_t last = 0;
	int rc;

	cr_assert_eq(sbx_pgstore_init_schema(s, NULL, why, sizeof(why)), 0, "%s", why);
	mkrec(&r[0], 1, NULL, l1, "x");
	cr_assert_eq(sbx_pgstore_append(s, r, 1, why, sizeof(why)), 0, "%s", why);

	mkrec(&r[0], 0, NULL, l2, "x");
	cr_assert_eq(sbx_pgstore_append(s, r, 1, why, sizeof(why)), -EINVAL, "seq 0");
	mkrec(&r[0], 2, NULL, l2, "x");
	mkrec(&r[1], 4, r[0].hash, l3, "x");
	cr_assert_eq(sbx_pgstore_append(s, r, 2, why, sizeof(why)), -EINVAL, "seqs 2, 4");
	mkrec(&r[0], 2, NULL, l2, "x");
	r[0].hash[5] = 'A';
	cr_assert_eq(sbx_pgstore_append(s, r, 1, why, sizeof(why)), -EINVAL, "upper-case hash");
	mkrec(&r[0], 2, NULL, NULL, "x");
	cr_assert_eq(sbx_pgstore_append(s, r, 1, why, sizeof(why)), -EINVAL, "no line");
	cr_assert_eq(sbx_pgstore_append(s, r, 0, why, sizeof(why)), -EINVAL, "no records");

	/* Seq 3 while the log ends at 1: a gap. */
	mkrec(&r[0], 3, NULL, l3, "x");
	rc = sbx_pgstore_append(s, r, 1, why, sizeof(why));
	cr_assert_eq(rc, -ERANGE, "gap: %d %s", rc, why);
	cr_assert(strstr(why, "gap") && strstr(why, "ends at seq 1"), "why: %s", why);
	cr_assert_eq(sbx_pgstore_last_seq(s, &last, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(last, 1, "nothing of the refused appends was written");
	sbx_pgstore_close(s);
	free(ci);
}

/* A batch whose last record the server refuses (invalid UTF-8) leaves
 * nothing behind; a batch that loses the race leaves nothing either. */
Test(log, batch_is_atomic)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_log_atomic");
	struct sbx_pgstore *a = open_store(ci, 5000, "sbx-a"), *b = open_store(ci, 5000, "sbx-b");
	char l1[] = "one", l2[] = "two", bad[] = "three \xff\xfe not UTF-8", la[] = "a's",
	     lb[3][8] = { "b1", "b2", "b3" };
	struct sbx_pgrec r[3], *v = NULL;
	uint64_t last = 0;
	size_t n = 0;
	int rc;

	cr_assert_eq(sbx_pgstore_init_schema(a, NULL, why, sizeof(why)), 0, "%s", why);
	mkrec(&r[0], 1, NULL, l1, "a");
	mkrec(&r[1], 2, r[0].hash, l2, "a");
	mkrec(&r[2], 3, r[1].hash, bad, "a");
	rc = sbx_pgstore_append(a, r, 3, why, sizeof(why));
	cr_assert_eq(rc, -EINVAL, "invalid UTF-8 in record 3: %d %s", rc, why);
	note("invalid UTF-8: %s", why);
	cr_assert_eq(sbx_pgstore_last_seq(b, &last, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(last, 0, "records 1 and 2 of the refused batch must not be there");

	/* a takes seq 1; b's batch 1..3 loses as a whole. */
	mkrec(&r[0], 1, NULL, la, "a");
	cr_assert_eq(sbx_pgstore_append(a, r, 1, why, sizeof(why)), 0, "%s", why);
	mkrec(&r[0], 1, NULL, lb[0], "b");
	mkrec(&r[1], 2, r[0].hash, lb[1], "b");
	mkrec(&r[2], 3, r[1].hash, lb[2], "b");
	rc = sbx_pgstore_append(b, r, 3, why, sizeof(why));
	cr_assert_eq(rc, -EEXIST, "%d %s", rc, why);
	cr_assert(strstr(why, "seq 1 was taken"), "why: %s", why);
	cr_assert_eq(sbx_pgstore_fetch(b, 0, 10, &v, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 1, "only a's record");
	cr_assert_str_eq(v[0].line, la);
	cr_assert_str_eq(v[0].host, "sbx-a");
	sbx_pgrecs_free(v, n);
	/* The store is still usable after both failures. */
	mkrec(&r[0], 2, r[0].hash, lb[1], "b");
	cr_assert_eq(sbx_pgstore_append(b, r, 1, why, sizeof(why)), 0, "%s", why);
	sbx_pgstore_close(a);
	sbx_pgstore_close(b);
	free(ci);
}

/* Two brokers append the same seq at the same moment, round after round. */
#define RACE_ROUNDS 25
#define RACE_BATCH_MAX 3

struct racer {
	const char *ci;
	const char *name;
	pthread_barrier_t *bar;
	int rc[RACE_ROUNDS];
	size_t batch[RACE_ROUNDS];
	char why[RACE_ROUNDS][256];
	int setup_rc;
};

static void *race(void *arg)
{
	struct racer *t = arg;
	struct sbx_pgstore_opts o = {
		.conninfo = t->ci, .password = password, .timeout_ms = 5000, .host = t->name,
	};
	struct sbx_pgstore *s = NULL;
	struct sbx_pgrec r[RACE_BATCH_MAX];
	char lines[RACE_BATCH_MAX][64];
	int round;
	size_t i;

	t->setup_rc = sbx_pgstore_open(&o, &s, t->why[0], sizeof(t->why[0]));
	for (round = 0; round < RACE_ROUNDS; round++) {
		/* Both validated against "the log holds `round` batches":
		 * exactly one batch wins each round, so that stays true. */
		uint64_t first = (uint64_t)round * RACE_BATCH_MAX + 1;

		for (i = 0; i < RACE_BATCH_MAX; i++) {
			snprintf(lines[i], sizeof(lines[i]), "{\"round\":%d,\"by\":\"%s\",\"i\":%zu}",
				 round, t->name, i);
			mkrec(&r[i], first + i, i ? r[i - 1].hash : zero_hash, lines[i], t->name);
		}
		t->batch[round] = RACE_BATCH_MAX;
		pthread_barrier_wait(t->bar);
		t->rc[round] = t->setup_rc ? t->setup_rc :
			       sbx_pgstore_append(s, r, RACE_BATCH_MAX, t->why[round], sizeof(t->why[round]));
		pthread_barrier_wait(t->bar);
	}
	sbx_pgstore_close(s);
	return NULL;
}

Test(log, concurrent_append_one_wins)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_log_race");
	struct sbx_pgstore *s = open_store(ci, 5000, "checker");
	struct racer a = { .ci = ci, .name = "sbx-a" }, b = { .ci = ci, .name = "sbx-b" };
	pthread_barrier_t bar;
	pthread_t ta, tb;
	struct sbx_pgrec *v = NULL;
	size_t n = 0, i;
	int round, wins_a = 0, wins_b = 0;

	cr_assert_eq(sbx_pgstore_init_schema(s, NULL, why, sizeof(why)), 0, "%s", why);
	pthread_barrier_init(&bar, NULL, 2);
	a.bar = b.bar = &bar;
	cr_assert_eq(pthread_create(&ta, NULL, race, &a), 0);
	cr_assert_eq(pthread_create(&tb, NULL, race, &b), 0);
	pthread_join(ta, NULL);
	pthread_join(tb, NULL);
	pthread_barrier_destroy(&bar);
	cr_assert_eq(a.setup_rc, 0, "%s", a.why[0]);
	cr_assert_eq(b.setup_rc, 0, "%s", b.why[0]);

	cr_assert_eq(sbx_pgstore_fetch(s, 0, 1000, &v, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, (size_t)RACE_ROUNDS * RACE_BATCH_MAX, "every round added exactly one batch");
	for (round = 0; round < RACE_ROUNDS; round++) {
		const char *winner;

		cr_assert((a.rc[round] == 0 && b.rc[round] == -EEXIST) ||
			  (a.rc[round] == -EEXIST && b.rc[round] == 0),
			  "round %d: a=%d (%s) b=%d (%s)", round, a.rc[round], a.why[round],
			  b.rc[round], b.why[round]);
		winner = a.rc[round] == 0 ? "sbx-a" : "sbx-b";
		wins_a += a.rc[round] == 0;
		wins_b += b.rc[round] == 0;
		/* The whole batch is the winner's: nothing of the loser. */
		for (i = 0; i < RACE_BATCH_MAX; i++) {
			size_t k = (size_t)round * RACE_BATCH_MAX + i;

			cr_assert_eq(v[k].seq, k + 1);
			cr_assert_str_eq(v[k].host, winner, "seq %zu", k + 1);
			cr_assert(strstr(v[k].line, winner), "seq %zu: %s", k + 1, v[k].line);
		}
	}
	note("%d rounds of two writers racing for the same seqs: sbx-a won %d, sbx-b %d",
	     RACE_ROUNDS, wins_a, wins_b);
	sbx_pgrecs_free(v, n);
	sbx_pgstore_close(s);
	free(ci);
}

/* The broker's loop: validate against what you have, append, and on
 * -EEXIST fetch what is new and try again. */
#define WRITERS 3
#define PER_WRITER 30

struct writer {
	const char *ci;
	char name[16];
	int rc;
	char why[512];
	int conflicts;
};

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	struct sbx_pgstore_opts o = {
		.conninfo = w->ci, .password = password, .timeout_ms = 5000, .host = w->name,
	};
	struct sbx_pgstore *s = NULL;
	struct sbx_pgrec r, *v = NULL;
	char line[128], prev[65];
	uint64_t last = 0;
	size_t n = 0;
	int done = 0;

	w->rc = sbx_pgstore_open(&o, &s, w->why, sizeof(w->why));
	memcpy(prev, zero_hash, 65);
	while (!w->rc && done < PER_WRITER) {
		snprintf(line, sizeof(line), "{\"by\":\"%s\",\"n\":%d}", w->name, done);
		mkrec(&r, last + 1, prev, line, w->name);
		w->rc = sbx_pgstore_append(s, &r, 1, w->why, sizeof(w->why));
		if (w->rc == 0) {
			done++;
			last = r.seq;
			memcpy(prev, r.hash, 65);
			continue;
		}
		if (w->rc != -EEXIST)
			break;
		w->conflicts++;
		/* Catch up: apply everything after last. */
		w->rc = sbx_pgstore_fetch(s, last, 1000, &v, &n, w->why, sizeof(w->why));
		if (w->rc == 0 && n > 0) {
			last = v[n - 1].seq;
			memcpy(prev, v[n - 1].hash, 65);
		}
		sbx_pgrecs_free(v, n);
		v = NULL;
	}
	sbx_pgstore_close(s);
	return NULL;
}

Test(log, optimistic_retry_loop)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_log_loop");
	struct sbx_pgstore *s = open_store(ci, 5000, "checker");
	struct writer w[WRITERS];
	pthread_t th[WRITERS];
	struct sbx_pgrec *v = NULL;
	size_t n = 0, i;
	int k, count[WRITERS] = { 0 }, conflicts = 0;
	int64_t t0;

	cr_assert_eq(sbx_pgstore_init_schema(s, NULL, why, sizeof(why)), 0, "%s", why);
	t0 = now_ms();
	for (k = 0; k < WRITERS; k++) {
		memset(&w[k], 0, sizeof(w[k]));
		w[k].ci = ci;
		snprintf(w[k].name, sizeof(w[k].name), "sbx-%d", k);
		cr_assert_eq(pthread_create(&th[k], NULL, write_loop, &w[k]), 0);
	}
	for (k = 0; k < WRITERS; k++) {
		pthread_join(th[k], NULL);
		cr_assert_eq(w[k].rc, 0, "%s: %d %s", w[k].name, w[k].rc, w[k].why);
		conflicts += w[k].conflicts;
	}
	note("%d writers x %d records with retry on conflict: %" PRId64 " ms, %d conflicts",
	     WRITERS, PER_WRITER, now_ms() - t0, conflicts);
	cr_assert_eq(sbx_pgstore_fetch(s, 0, 1000, &v, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, (size_t)WRITERS * PER_WRITER);
	for (i = 0; i < n; i++) {
		cr_assert_eq(v[i].seq, i + 1, "gapless");
		cr_assert_str_eq(v[i].prev, i ? v[i - 1].hash : zero_hash, "chain at seq %zu", i + 1);
		cr_assert(sscanf(v[i].host, "sbx-%d", &k) == 1 && k >= 0 && k < WRITERS);
		cr_assert(strstr(v[i].line, v[i].host), "seq %zu: %s by %s", i + 1, v[i].line, v[i].host);
		count[k]++;
	}
	for (k = 0; k < WRITERS; k++)
		cr_assert_eq(count[k], PER_WRITER, "sbx-%d has %d records", k, count[k]);
	sbx_pgrecs_free(v, n);
	sbx_pgstore_close(s);
	free(ci);
}

Test(log, report_and_list_hosts)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_log_hosts");
	struct sbx_pgstore *a = open_store(ci, 5000, "sbx-a"), *b = open_store(ci, 5000, "sbx-b");
	struct sbx_pghost *h = NULL;
	const char *sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	size_t n = 0;

	cr_assert_eq(sbx_pgstore_init_schema(a, NULL, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_pgstore_hosts(a, &h, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 0);
	cr_assert_eq(sbx_pgstore_report_host(b, 7, NULL, NULL, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_pgstore_report_host(a, 5, sha, "0.1.0", why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_pgstore_report_host(a, 9, sha, "0.1.1", why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_pgstore_report_host(a, 9, "ABC", NULL, why, sizeof(why)), -EINVAL);
	cr_assert_eq(sbx_pgstore_hosts(b, &h, &n, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(h[0].host, "sbx-a");
	cr_assert_eq(h[0].applied_seq, 9, "the last report wins");
	cr_assert_str_eq(h[0].policy_sha256, sha);
	cr_assert_str_eq(h[0].version, "0.1.1");
	cr_assert_str_eq(h[1].host, "sbx-b");
	cr_assert_eq(h[1].applied_seq, 7);
	cr_assert_str_eq(h[1].policy_sha256, "");
	cr_assert_str_eq(h[1].version, "");
	cr_assert(h[0].age_ms >= 0 && h[0].age_ms < 5000, "age %" PRId64, h[0].age_ms);
	cr_assert(h[0].last_contact_ms > (int64_t)(time(NULL) - 3600) * 1000, "last contact %" PRId64,
		  h[0].last_contact_ms);
	sbx_pghosts_free(h, n);
	sbx_pgstore_close(a);
	sbx_pgstore_close(b);
	free(ci);
}

/* ------------------------------------------------------------ notify */

TestSuite(notify, .init = setup, .timeout = 60);

struct delayed {
	const char *ci;
	int delay_ms;
	uint64_t seq;
	int rc;
	char why[512];
	int64_t t_start, t_done;
};

static void *append_later(void *arg)
{
	struct delayed *d = arg;
	struct sbx_pgstore_opts o = {
		.conninfo = d->ci, .password = password, .timeout_ms = 5000, .host = "sbx-b",
	};
	struct sbx_pgstore *s = NULL;
	struct sbx_pgrec r;
	char line[64], prev[65];

	d->rc = sbx_pgstore_open(&o, &s, d->why, sizeof(d->why));
	if (d->rc)
		return NULL;
	memcpy(prev, zero_hash, 65);
	snprintf(line, sizeof(line), "{\"seq\":%" PRIu64 "}", d->seq);
	mkrec(&r, d->seq, prev, line, "b");
	usleep((useconds_t)d->delay_ms * 1000);
	d->t_start = now_ms();
	d->rc = sbx_pgstore_append(s, &r, 1, d->why, sizeof(d->why));
	d->t_done = now_ms();
	sbx_pgstore_close(s);
	return NULL;
}

Test(notify, wakes_waiter_quickly)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_notify_wake");
	struct sbx_pgstore *s = open_store(ci, 5000, "sbx-a");
	int64_t worst = 0;
	uint64_t seq, got = 0;
	int rc;

	cr_assert_eq(sbx_pgstore_init_schema(s, NULL, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_pgstore_wait(s, 10, &got), -EINVAL, "wait before listen");
	cr_assert_eq(sbx_pgstore_listen(s, why, sizeof(why)), 0, "%s", why);
	for (seq = 1; seq <= 5; seq++) {
		struct delayed d = { .ci = ci, .delay_ms = 100, .seq = seq };
		pthread_t th;
		int64_t t_wake, lat;

		cr_assert_eq(pthread_create(&th, NULL, append_later, &d), 0);
		rc = sbx_pgstore_wait(s, 3000, &got);
		t_wake = now_ms();
		pthread_join(th, NULL);
		cr_assert_eq(d.rc, 0, "append: %s", d.why);
		cr_assert_eq(rc, 1, "wait returned %d", rc);
		cr_assert_eq(got, seq, "notified seq");
		lat = t_wake - d.t_done;
		if (lat > worst)
			worst = lat;
		cr_assert_leq(t_wake - d.t_start, 200 + (d.t_done - d.t_start),
			      "woken %" PRId64 " ms after the append started (it took %" PRId64 " ms)",
			      t_wake - d.t_start, d.t_done - d.t_start);
		cr_assert_leq(lat, 200, "woken %" PRId64 " ms after the append returned", lat);
	}
	note("LISTEN/NOTIFY: a waiter woke at most %" PRId64 " ms after another connection's append returned (5 tries)",
	     worst);
	sbx_pgstore_close(s);
	free(ci);
}

Test(notify, timeout_and_own_appends)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_notify_self");
	struct sbx_pgstore *s = open_store(ci, 5000, "sbx-a");
	struct sbx_pgrec r;
	char line[] = "{\"mine\":true}";
	uint64_t got = 99;
	int64_t t0, took;
	int rc;

	cr_assert_eq(sbx_pgstore_init_schema(s, NULL, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_pgstore_listen(s, why, sizeof(why)), 0, "%s", why);
	t0 = now_ms();
	rc = sbx_pgstore_wait(s, 300, &got);
	took = now_ms() - t0;
	cr_assert_eq(rc, 0, "nothing happened: %d", rc);
	cr_assert(took >= 290 && took <= 300 + SLACK_MS, "took %" PRId64 " ms", took);
	mkrec(&r, 1, NULL, line, "a");
	cr_assert_eq(sbx_pgstore_append(s, &r, 1, why, sizeof(why)), 0, "%s", why);
	rc = sbx_pgstore_wait(s, 300, &got);
	cr_assert_eq(rc, 0, "its own append does not wake the store: %d (seq %" PRIu64 ")", rc, got);
	sbx_pgstore_close(s);
	free(ci);
}

/* ------------------------------------------------------------ outage */

TestSuite(outage, .init = setup, .timeout = 60);

#define OUT_TIMEOUT 1000

/* Expect rc to say "database away" and the call to have kept its bound. */
static void expect_away(const char *what, int rc, int64_t took, const char *server)
{
	note("%s while the database is away: %d after %" PRId64 " ms: %s", what, rc, took, why);
	cr_assert(rc == -ENOTCONN || rc == -ETIMEDOUT, "%s: rc %d (%s)", what, rc, why);
	cr_assert_leq(took, OUT_TIMEOUT + SLACK_MS, "%s took %" PRId64 " ms", what, took);
	cr_assert(strstr(why, server), "%s: why does not name %s: %s", what, server, why);
	cr_assert_null(strstr(why, password), "%s: the password is in why", what);
}

/* Every call, once: each must come back in time with ENOTCONN/ETIMEDOUT. */
static void all_calls_fail(struct sbx_pgstore *s, const char *conninfo, const char *server,
			   uint64_t next_seq)
{
	struct sbx_pgstore_opts o = {
		.conninfo = conninfo, .password = password, .timeout_ms = OUT_TIMEOUT, .host = "h",
	};
	struct sbx_pgstore *s2 = NULL;
	struct sbx_pgrec r, *v = NULL;
	struct sbx_pghost *h = NULL;
	char line[] = "{\"while\":\"down\"}";
	uint64_t last = 0;
	size_t n = 0;
	int64_t t0;
	int rc;

	t0 = now_ms();
	rc = sbx_pgstore_last_seq(s, &last, why, sizeof(why));
	expect_away("last_seq", rc, now_ms() - t0, server);
	t0 = now_ms();
	rc = sbx_pgstore_fetch(s, 0, 10, &v, &n, why, sizeof(why));
	expect_away("fetch", rc, now_ms() - t0, server);
	cr_assert_null(v);
	mkrec(&r, next_seq, NULL, line, "down");
	t0 = now_ms();
	rc = sbx_pgstore_append(s, &r, 1, why, sizeof(why));
	expect_away("append", rc, now_ms() - t0, server);
	t0 = now_ms();
	rc = sbx_pgstore_report_host(s, 1, NULL, NULL, why, sizeof(why));
	expect_away("report_host", rc, now_ms() - t0, server);
	t0 = now_ms();
	rc = sbx_pgstore_hosts(s, &h, &n, why, sizeof(why));
	expect_away("hosts", rc, now_ms() - t0, server);
	t0 = now_ms();
	rc = sbx_pgstore_check_schema(s, why, sizeof(why));
	expect_away("check_schema", rc, now_ms() - t0, server);
	t0 = now_ms();
	rc = sbx_pgstore_open(&o, &s2, why, sizeof(why));
	expect_away("open", rc, now_ms() - t0, server);
	cr_assert_null(s2);
}

Test(outage, stopped_then_restarted)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_outage_stop");
	struct sbx_pgstore *s = open_store(ci, OUT_TIMEOUT, "sbx-a"),
			   *other = open_store(ci, OUT_TIMEOUT, "sbx-b");
	char server[300], l1[] = "{\"n\":1}", l2[] = "{\"n\":2}", l3[] = "{\"n\":3}";
	struct sbx_pgrec r;
	uint64_t got = 0, last = 0;
	int64_t t0, took;
	int rc;

	cr_assert_eq(sbx_pgstore_init_schema(s, NULL, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_pgstore_listen(s, why, sizeof(why)), 0, "%s", why);
	snprintf(server, sizeof(server), "%s", sbx_pgstore_server(s));
	mkrec(&r, 1, NULL, l1, "a");
	cr_assert_eq(sbx_pgstore_append(s, &r, 1, why, sizeof(why)), 0, "%s", why);

	hook("SBX_PG_STOP");
	all_calls_fail(s, ci, server, 2);
	/* wait() with the connection gone: an error, but only after its
	 * timeout, so a loop around it does not spin. */
	t0 = now_ms();
	rc = sbx_pgstore_wait(s, 500, &got);
	took = now_ms() - t0;
	note("wait(500) while the database is away: %d after %" PRId64 " ms", rc, took);
	cr_assert(rc == -ENOTCONN || rc == -ETIMEDOUT, "wait: %d", rc);
	cr_assert(took >= 450 && took <= OUT_TIMEOUT + SLACK_MS, "wait took %" PRId64 " ms", took);

	hook("SBX_PG_START");
	t0 = now_ms();
	mkrec(&r, 2, r.hash, l2, "a");
	rc = sbx_pgstore_append(s, &r, 1, why, sizeof(why));
	note("first append after the restart: %d after %" PRId64 " ms", rc, now_ms() - t0);
	cr_assert_eq(rc, 0, "append after restart: %s", why);
	/* Reconnected: notifications may have been missed, wait says so. */
	rc = sbx_pgstore_wait(s, 1000, &got);
	cr_assert_eq(rc, 1, "wait after a reconnect: %d", rc);
	cr_assert_eq(got, 0);
	/* And LISTEN is back: another broker's append wakes it. */
	cr_assert_eq(sbx_pgstore_last_seq(other, &last, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(last, 2, "the append while down wrote nothing; the one after did");
	mkrec(&r, 3, r.hash, l3, "b");
	cr_assert_eq(sbx_pgstore_append(other, &r, 1, why, sizeof(why)), 0, "%s", why);
	rc = sbx_pgstore_wait(s, 1000, &got);
	cr_assert_eq(rc, 1, "wait: %d", rc);
	cr_assert_eq(got, 3);
	sbx_pgstore_close(other);
	sbx_pgstore_close(s);
	free(ci);
}

/* An idle connection that the server closed (restart) is noticed at the
 * next call's first statement and replaced within that call. */
Test(outage, idle_connection_survives_restart)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_outage_idle");
	struct sbx_pgstore *s = open_store(ci, OUT_TIMEOUT, "sbx-a");
	uint64_t last = 99;
	int64_t t0;
	int rc;

	cr_assert_eq(sbx_pgstore_init_schema(s, NULL, why, sizeof(why)), 0, "%s", why);
	hook("SBX_PG_STOP");
	hook("SBX_PG_START");
	t0 = now_ms();
	rc = sbx_pgstore_last_seq(s, &last, why, sizeof(why));
	note("first call on the old connection after a restart: %d after %" PRId64 " ms", rc,
	     now_ms() - t0);
	cr_assert_eq(rc, 0, "%d %s", rc, why);
	cr_assert_eq(last, 0);
	sbx_pgstore_close(s);
	free(ci);
}

/* A silent peer (SIGSTOP: the kernel still accepts connections, nobody
 * answers) costs each call its timeout, no more. */
Test(outage, silent_server)
{
	char *ci = fresh_db(env("SBX_PG_CONNINFO"), "t_outage_frozen");
	struct sbx_pgstore *s = open_store(ci, OUT_TIMEOUT, "sbx-a");
	char server[300], l1[] = "{\"n\":1}";
	struct sbx_pgrec r;
	uint64_t last = 99;
	int rc;

	cr_assert_eq(sbx_pgstore_init_schema(s, NULL, why, sizeof(why)), 0, "%s", why);
	snprintf(server, sizeof(server), "%s", sbx_pgstore_server(s));
	hook("SBX_PG_FREEZE");
	all_calls_fail(s, ci, server, 1);
	hook("SBX_PG_THAW");
	rc = sbx_pgstore_last_seq(s, &last, why, sizeof(why));
	cr_assert_eq(rc, 0, "after SIGCONT: %d %s", rc, why);
	cr_assert_eq(last, 0, "the append that timed out wrote nothing");
	mkrec(&r, 1, NULL, l1, "a");
	cr_assert_eq(sbx_pgstore_append(s, &r, 1, why, sizeof(why)), 0, "%s", why);
	sbx_pgstore_close(s);
	free(ci);
}

/* A silent first host in a multi-host conninfo (a socket that listens
 * and never accepts: the kernel completes the handshake, nobody speaks)
 * gets its share of the timeout, and the next host still gets the rest;
 * afterwards the host that worked is tried first. */
Test(outage, silent_first_host_does_not_starve_the_next)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t salen = sizeof(sa);
	struct sbx_pgstore *s;
	char ci[1024], expect[64];
	uint64_t last = 99;
	int64_t t0, took;
	int lfd, rc;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	cr_assert_geq(lfd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 16), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
	snprintf(ci, sizeof(ci), "host=127.0.0.1,127.0.0.1 port=%d,%s user=sbx dbname=postgres",
		 ntohs(sa.sin_port), env("SBX_PG_PORT"));
	snprintf(expect, sizeof(expect), "127.0.0.1:%s", env("SBX_PG_PORT"));

	t0 = now_ms();
	s = open_store(ci, 2000, "sbx-a");
	took = now_ms() - t0;
	note("open with a silent first host (timeout 2000 ms): connected to %s after %" PRId64 " ms",
	     sbx_pgstore_server(s), took);
	cr_assert_str_eq(sbx_pgstore_server(s), expect);
	cr_assert(took >= 900 && took <= 2000 + SLACK_MS, "took %" PRId64 " ms", took);
	/* After a restart the call reconnects to the host that worked,
	 * without spending half its time on the silent one first. */
	hook("SBX_PG_STOP");
	hook("SBX_PG_START");
	t0 = now_ms();
	rc = sbx_pgstore_last_seq(s, &last, why, sizeof(why));
	took = now_ms() - t0;
	note("first call after a restart, silent host still listed first: %d after %" PRId64 " ms",
	     rc, took);
	cr_assert_eq(rc, -ENOENT, "database postgres has no sbx_log: %d %s", rc, why);
	cr_assert_str_eq(sbx_pgstore_server(s), expect);
	cr_assert_lt(took, 500, "took %" PRId64 " ms", took);
	sbx_pgstore_close(s);

	/* Both silent: the call still ends in time, naming both. */
	snprintf(ci, sizeof(ci), "host=127.0.0.1,127.0.0.1 port=%d,%d user=sbx dbname=postgres",
		 ntohs(sa.sin_port), ntohs(sa.sin_port));
	{
		struct sbx_pgstore_opts o = {
			.conninfo = ci, .password = password, .timeout_ms = 1000, .host = "h",
		};

		s = NULL;
		t0 = now_ms();
		rc = sbx_pgstore_open(&o, &s, why, sizeof(why));
		took = now_ms() - t0;
		note("open with two silent hosts: %d after %" PRId64 " ms: %s", rc, took, why);
		cr_assert_eq(rc, -ETIMEDOUT, "%d %s", rc, why);
		cr_assert_null(s);
		cr_assert_leq(took, 1000 + SLACK_MS);
		cr_assert_not_null(strchr(why, ';'), "both hosts are named: %s", why);
	}
	close(lfd);
}

/* ------------------------------------------------------------ failover */

TestSuite(failover, .init = setup, .timeout = 90);

#define FO_MAX 2000

struct fo_writer {
	const char *ci;
	volatile int stop;      /* set by the main thread */
	int acked;              /* records whose append returned 0 */
	uint64_t seq[FO_MAX];
	char line[FO_MAX][64];
	int errors, conflicts, unknown_but_there;
	int open_rc;
	char why[512];
	int64_t first_err_ms, recovered_ms;     /* monotonic; 0 = not yet */
	int after_failover;     /* acked after the main thread's mark */
	volatile int mark;
};

static void *fo_write(void *arg)
{
	struct fo_writer *w = arg;
	struct sbx_pgstore_opts o = {
		.conninfo = w->ci, .password = password, .timeout_ms = 2000, .host = "sbx-w",
	};
	struct sbx_pgstore *s = NULL;
	struct sbx_pgrec r, *v = NULL;
	char prev[65], line[64];
	uint64_t last = 0;
	size_t n = 0;
	int rc, i = 0;

	w->open_rc = sbx_pgstore_open(&o, &s, w->why, sizeof(w->why));
	if (w->open_rc)
		return NULL;
	/* Start from the log as it is. */
	while (!w->stop && sbx_pgstore_fetch(s, 0, SBX_PGSTORE_FETCH_MAX, &v, &n, w->why, sizeof(w->why)))
		usleep(50000);
	memcpy(prev, n ? v[n - 1].hash : zero_hash, 65);
	last = n ? v[n - 1].seq : 0;
	sbx_pgrecs_free(v, n);
	v = NULL;
	while (!w->stop && w->acked < FO_MAX) {
		snprintf(line, sizeof(line), "{\"w\":%d}", i++);
		mkrec(&r, last + 1, prev, line, "w");
		rc = sbx_pgstore_append(s, &r, 1, w->why, sizeof(w->why));
		if (rc == 0) {
			w->seq[w->acked] = r.seq;
			snprintf(w->line[w->acked], sizeof(w->line[0]), "%s", line);
			w->acked++;
			if (w->mark)
				w->after_failover++;
			if (w->first_err_ms && !w->recovered_ms)
				w->recovered_ms = now_ms();
			last = r.seq;
			memcpy(prev, r.hash, 65);
			continue;
		}
		if (rc == -EEXIST)
			w->conflicts++;
		else
			w->errors++;
		if (rc != -EEXIST && !w->first_err_ms)
			w->first_err_ms = now_ms();
		/* Unknown outcome or lost race: look at what the log holds. */
		rc = sbx_pgstore_fetch(s, last, SBX_PGSTORE_FETCH_MAX, &v, &n, w->why, sizeof(w->why));
		if (rc) {
			usleep(20000);
			continue;
		}
		if (n > 0 && v[0].seq == r.seq && !strcmp(v[0].hash, r.hash))
			w->unknown_but_there++;
		if (n > 0) {
			last = v[n - 1].seq;
			memcpy(prev, v[n - 1].hash, 65);
		}
		sbx_pgrecs_free(v, n);
		v = NULL;
	}
	sbx_pgstore_close(s);
	return NULL;
}

Test(failover, sync_standby_keeps_every_acknowledged_record)
{
	const char *ci = env("SBX_PG_FAILOVER_CONNINFO");
	struct sbx_pgstore *s, *ro;
	struct fo_writer *w = calloc(1, sizeof(*w));
	char primary[300], lines[20][48];
	struct sbx_pgrec r, *v = NULL;
	char prev[65];
	uint64_t last = 0, seq;
	size_t n = 0, i;
	pthread_t th;
	int64_t t0, deadline;
	int rc, k;

	cr_assert_not_null(w);
	s = open_store(ci, 2000, "sbx-main");
	snprintf(primary, sizeof(primary), "%s", sbx_pgstore_server(s));
	note("multi-host conninfo (standby listed first) reached %s", primary);
	cr_assert_eq(sbx_pgstore_init_schema(s, NULL, why, sizeof(why)), 0, "%s", why);

	/* The standby alone: it reads, it refuses writes. */
	ro = open_store(env("SBX_PG_STANDBY_CONNINFO"), 2000, "sbx-ro");
	cr_assert_str_neq(sbx_pgstore_server(ro), primary, "the standby is another server");
	cr_assert_eq(sbx_pgstore_check_schema(ro, why, sizeof(why)), 0, "%s", why);
	memcpy(prev, zero_hash, 65);
	snprintf(lines[0], sizeof(lines[0]), "{\"to\":\"standby\"}");
	mkrec(&r, 1, prev, lines[0], "ro");
	rc = sbx_pgstore_append(ro, &r, 1, why, sizeof(why));
	cr_assert_eq(rc, -EROFS, "append on a standby: %d %s", rc, why);
	note("append on the standby alone: %s", why);
	{
		/* ... and asking for read-write, the standby alone is no match. */
		char rw[1024];
		struct sbx_pgstore_opts o = {
			.conninfo = rw, .password = password, .timeout_ms = 2000, .host = "h",
		};
		struct sbx_pgstore *no = NULL;

		snprintf(rw, sizeof(rw), "%s target_session_attrs=read-write",
			 env("SBX_PG_STANDBY_CONNINFO"));
		rc = sbx_pgstore_open(&o, &no, why, sizeof(why));
		note("open of the standby alone with target_session_attrs=read-write: %d %s", rc, why);
		cr_assert_eq(rc, -ENOTCONN, "%d %s", rc, why);
		cr_assert(strstr(why, "read-only"), "why: %s", why);
		cr_assert_null(no);
	}

	/* 20 acknowledged records, one by one. */
	for (k = 0; k < 20; k++) {
		snprintf(lines[k], sizeof(lines[k]), "{\"before\":%d}", k);
		mkrec(&r, (uint64_t)k + 1, prev, lines[k], "m");
		cr_assert_eq(sbx_pgstore_append(s, &r, 1, why, sizeof(why)), 0, "%s", why);
		memcpy(prev, r.hash, 65);
	}
	/* Synchronous means flushed on the standby, not yet visible there:
	 * give replay a moment. */
	deadline = now_ms() + 5000;
	while (sbx_pgstore_last_seq(ro, &last, why, sizeof(why)) == 0 && last < 20 && now_ms() < deadline)
		usleep(20000);
	cr_assert_eq(last, 20, "the standby has replayed the 20 records");
	sbx_pgstore_close(ro);

	/* A writer keeps appending through the failover. */
	w->ci = ci;
	cr_assert_eq(pthread_create(&th, NULL, fo_write, w), 0);
	deadline = now_ms() + 10000;
	while (w->acked < 20 && now_ms() < deadline)
		usleep(10000);
	cr_assert_geq(w->acked, 20, "the writer got going: %s", w->why);

	t0 = now_ms();
	w->mark = 1;
	hook("SBX_PG_FAILOVER");
	/* The very next call on the old connection reaches the new primary. */
	rc = sbx_pgstore_fetch(s, 0, SBX_PGSTORE_FETCH_MAX, &v, &n, why, sizeof(why));
	note("first fetch after kill+promote: %d after %" PRId64 " ms (from the hook's start), now on %s",
	     rc, now_ms() - t0, sbx_pgstore_server(s));
	cr_assert_eq(rc, 0, "%s", why);
	cr_assert_str_neq(sbx_pgstore_server(s), primary, "moved to the promoted standby");
	sbx_pgrecs_free(v, n);
	v = NULL;

	deadline = now_ms() + 15000;
	while (w->after_failover < 20 && now_ms() < deadline)
		usleep(10000);
	w->stop = 1;
	pthread_join(th, NULL);
	cr_assert_eq(w->open_rc, 0, "%s", w->why);
	note("writer: %d acknowledged (%d after the failover began), %d errors, %d conflicts, "
	     "%d unknown outcomes found committed, writes resumed %" PRId64 " ms after the first error",
	     w->acked, w->after_failover, w->errors, w->conflicts, w->unknown_but_there,
	     w->recovered_ms && w->first_err_ms ? w->recovered_ms - w->first_err_ms : -1);
	cr_assert_geq(w->after_failover, 20, "the writer went on on the new primary: %s", w->why);

	/* Every acknowledged record is on the new primary, byte for byte,
	 * and the log is gapless and chained. */
	rc = sbx_pgstore_fetch(s, 0, SBX_PGSTORE_FETCH_MAX, &v, &n, why, sizeof(why));
	cr_assert_eq(rc, 0, "%s", why);
	for (i = 0; i < n; i++) {
		cr_assert_eq(v[i].seq, i + 1, "gapless");
		cr_assert_str_eq(v[i].prev, i ? v[i - 1].hash : zero_hash, "chain at %zu", i + 1);
	}
	for (k = 0; k < 20; k++)
		cr_assert_str_eq(v[k].line, lines[k], "seq %d", k + 1);
	for (k = 0; k < w->acked; k++) {
		seq = w->seq[k];
		cr_assert_leq(seq, n, "acknowledged seq %" PRIu64 " is missing (log ends at %zu)", seq, n);
		cr_assert_str_eq(v[seq - 1].line, w->line[k], "acknowledged seq %" PRIu64, seq);
		cr_assert_str_eq(v[seq - 1].host, "sbx-w");
	}
	/* And appending goes on. */
	last = n;
	snprintf(lines[0], sizeof(lines[0]), "{\"after\":true}");
	mkrec(&r, last + 1, v[n - 1].hash, lines[0], "m");
	sbx_pgrecs_free(v, n);
	cr_assert_eq(sbx_pgstore_append(s, &r, 1, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(sbx_pgstore_last_seq(s, &last, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(last, r.seq);
	sbx_pgstore_close(s);
	free(w);
}
