/*
 * bench_requests: durable request throughput.
 *
 * N client threads each connect, send SBX_OP_REQUEST for an auto_approve
 * role and close, as sbx-request does.  The broker may answer only after
 * the request's journal records are on disk (fdatasync), batching
 * concurrent writers into one sync (group commit); this program just
 * measures: requests/s and latency percentiles per concurrency level.
 *
 * The broker allows one open request per user and role, so every request
 * is for a different (user, role) pair: the generated policy has users
 * u00001.. in one group eligible for roles bench-01.., all auto_approve with
 * a long max_duration, and root acts for them with AS_USER.  The pairs are
 * handed out in order, once each, across all levels.
 *
 * Without --socket it starts its own sbx-brokerd on that policy in a
 * temporary directory and removes it afterwards.  --grants N first writes
 * N live grants into that broker's journal, so that the rate can be
 * compared between a small and a large state; --check runs one more
 * client asking CHECK, as logins do, beside the requests.  Numbers are
 * printed, never asserted: exit 0 unless setting up failed.
 */
#include "config.h"

#include "benchlib.h"
#include "journal.h"
#include "timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_USERS 10000
#define DEFAULT_ROLES 8
#define BENCH_HOST "sbx-bench"
#define BENCH_GROUP "bench-users"
#define BENCH_REASON "bench_requests load test"
/* Issue 2's target, printed beside the results. */
#define TARGET_RATE 2000.0
/* fdatasync samples taken to show the disk's floor. */
#define FSYNC_PROBES 200
/* The role of the --grants users h000001.. (no client asks for it). */
#define HELD_ROLE "bench-held"
#define HELD_GID 61000
#define ROLE_GID 61001
#define GRANT_DAYS 30
/* Appends queued before waiting for them, as a broker's acks would. */
#define PRELOAD_FLUSH_EVERY 20000
#define MAX_GRANTS 5000000

static const char usage_text[] =
	"Usage: bench_requests [--clients LIST] [--duration SECS] [--warmup SECS]\n"
	"                      [--users N] [--roles N] [--grants N] [--records N]\n"
	"                      [--unix-groups] [--check]\n"
	"                      [--socket PATH | --broker PATH] [--print-policy]\n"
	"\n"
	"Measure durable request throughput: concurrent clients each do\n"
	"connect+REQUEST+close for an auto_approve role (as root, acting for users\n"
	"u00001.. with AS_USER) and the broker acknowledges each only once it is\n"
	"fdatasync'ed.  Prints requests/s and p50/p90/p99/max latency (us) for each\n"
	"concurrency level.  Numbers are printed, never asserted.\n"
	"\n"
	"Options:\n"
	"  --clients LIST    concurrency levels, comma-separated (default 1,8,32)\n"
	"  --duration SECS   measure each level this long (default 5)\n"
	"  --warmup SECS     unmeasured requests before each level (default 0.5; 0: none)\n"
	"  --users N         users in the generated policy (default 10000)\n"
	"  --roles N         auto_approve roles in it (default 8); every (user, role)\n"
	"                    pair is requested at most once, so a run makes at most\n"
	"                    users x roles requests and a level ends early when they\n"
	"                    run out\n"
	"  --grants N        before starting the broker, write N live grants (users\n"
	"                    h000001.., role " HELD_ROLE ", 30 days) into its journal, so\n"
	"                    that it serves with that many (default 0; not with --socket)\n"
	"  --records N       make the preloaded journal N records long, padding the\n"
	"                    grants' records with access.checked ones (which change no\n"
	"                    state): the broker snapshots after as many records as it\n"
	"                    found at start-up (at least 10,000), so runs that start\n"
	"                    with the same N keep the same snapshot schedule\n"
	"  --unix-groups     every role brings a unix group, so every grant is in the\n"
	"                    NSS group table the broker rewrites on each change\n"
	"  --check           one more client beside the requests does connect+CHECK+close\n"
	"                    for u00001 (what a login asks); its latency is printed\n"
	"                    apart\n"
	"  --socket PATH     use a running broker instead of starting one; its policy\n"
	"                    must be the generated one (see --print-policy) and its\n"
	"                    journal must not hold these requests yet\n"
	"  --broker PATH     sbx-brokerd to start (default: the one in this build tree,\n"
	"                    else ./sbx-brokerd)\n"
	"  --print-policy    print the generated policy and exit\n"
	"  -h, --help        show this help\n"
	"\n"
	"Exit status: 0 measured (whatever the numbers), 1 could not set up, 2 usage.\n";

struct cfg {
	unsigned levels[BENCH_MAX_LEVELS];
	size_t n_levels;
	double duration_s;
	double warmup_s;
	unsigned long users;
	unsigned long roles;
	unsigned long grants;    /* preloaded live grants */
	unsigned long records;   /* preloaded journal records, at least 2 x grants */
	bool unix_groups;
	bool check;
	bool print_policy;
	const char *socket;
	char broker[PATH_MAX];
	struct sbx_conn_opts conn;
	atomic_long next_pair;   /* the next (user, role) pair to ask for */
};

struct level_run {
	struct cfg *cfg;
	int64_t t0_ns;
	int64_t dur_ns;
	atomic_int exhausted;
	atomic_int requesters_left; /* the checker stops when they are done */
};

struct worker {
	struct level_run *run;
	bool checker;
	struct bench_samples lat;
	unsigned long done;
	unsigned long errors;
	int oom;
	char first_err[256];
};

struct result {
	unsigned clients;
	double wall_s;
	unsigned long done, errors;
	int exhausted;
	int64_t records;          /* journal records written; -1 unknown */
	struct bench_stats st;
	unsigned long checks, check_errors;
	struct bench_stats check_st;
	unsigned long grants_before;
	double broker_cpu, own_cpu;
	char first_err[256];
};

static int parse_args(int argc, char **argv, struct cfg *c)
{
	const struct bench_opt opts[] = {
		{ "clients", BENCH_OPT_LEVELS, c->levels, &c->n_levels, 0, 0, 0, 0 },
		{ "duration", BENCH_OPT_SECONDS, &c->duration_s, NULL, 0, 0, 0, 0 },
		{ "warmup", BENCH_OPT_SECONDS0, &c->warmup_s, NULL, 0, 0, 0, 0 },
		{ "users", BENCH_OPT_ULONG, &c->users, NULL, 0, 1, 99999, 0 },
		{ "roles", BENCH_OPT_ULONG, &c->roles, NULL, 0, 1, 99, 0 },
		{ "grants", BENCH_OPT_ULONG, &c->grants, NULL, 0, 0, MAX_GRANTS, 0 },
		{ "records", BENCH_OPT_ULONG, &c->records, NULL, 0, 0, 4 * MAX_GRANTS, 0 },
		{ "unix-groups", BENCH_OPT_FLAG, &c->unix_groups, NULL, 0, 0, 0, 0 },
		{ "check", BENCH_OPT_FLAG, &c->check, NULL, 0, 0, 0, 0 },
		{ "socket", BENCH_OPT_STRING, &c->socket, NULL, 0, 0, 0, 0 },
		{ "broker", BENCH_OPT_PATH, c->broker, NULL, sizeof(c->broker), 0, 0, 0 },
		{ "print-policy", BENCH_OPT_FLAG, &c->print_policy, NULL, 0, 0, 0, 0 },
	};

	return bench_parse_args("bench_requests", usage_text, argc, argv, opts,
				sizeof(opts) / sizeof(opts[0]));
}

/* ---------------------------------------------------------------- policy */

static void write_role(FILE *f, const struct cfg *c, const char *name, unsigned gid)
{
	fprintf(f,
		"  %s:\n"
		"    description: bench_requests role %s\n"
		"    hosts: [\"sbx-*\"]\n"
		"    eligible: { groups: [%s] }\n"
		"    auto_approve: true\n"
		"    default_duration: %dd\n"
		"    max_duration: %dd\n",
		name, name, BENCH_GROUP, GRANT_DAYS, GRANT_DAYS);
	if (c->unix_groups)
		fprintf(f, "    unix_group: { name: sbx-%s, gid: %u }\n", name, gid);
}

/* Users u00001.. in one group, eligible for roles bench-01.. that grant at
 * once for 30 days: nothing expires or needs an approver during a run.
 * The role of the --grants users is there too, so that the group table
 * counts their grants like any other. */
static void write_policy(FILE *f, const struct cfg *c, const char *socket, const char *state)
{
	fprintf(f, "# generated by bench_requests: %lu users x %lu auto_approve roles\n",
		c->users, c->roles);
	fprintf(f, "broker:\n  host: %s\n", BENCH_HOST);
	if (socket)
		fprintf(f, "  socket: %s\n  state_dir: %s\n", socket, state);
	fprintf(f, "  request_ttl: 24h\n\ngroups:\n  %s: [", BENCH_GROUP);
	for (unsigned long u = 1; u <= c->users; u++)
		fprintf(f, "%su%05lu", u == 1 ? "" : u % 16 == 1 ? ",\n    " : ", ", u);
	fprintf(f, "]\n\nusers:\n");
	for (unsigned long u = 1; u <= c->users; u++)
		fprintf(f, "  u%05lu: {}\n", u);
	fprintf(f, "\nroles:\n");
	for (unsigned long r = 1; r <= c->roles; r++) {
		char name[32];

		snprintf(name, sizeof(name), "bench-%02lu", r);
		write_role(f, c, name, ROLE_GID + (unsigned)r - 1);
	}
	write_role(f, c, HELD_ROLE, HELD_GID);
}

/* ---------------------------------------------------------------- preload */

static json_t *time_json(int64_t secs)
{
	char buf[SBX_RFC3339_LEN];

	sbx_format_rfc3339(secs, buf);
	return json_string(buf);
}

/* The two records the broker writes for an auto_approve request.  The
 * expiries are spread over a day, as real ones are, and all lie beyond
 * any run. */
static int append_grant(struct sbx_journal *j, const struct cfg *c, unsigned long i, int64_t now)
{
	int64_t expires = now + (GRANT_DAYS - 1) * 86400 + (int64_t)(i % 86400);
	char user[16];
	json_t *f;
	int rc;

	snprintf(user, sizeof(user), "h%06lu", i);
	f = json_pack("{s:I, s:s, s:s, s:I, s:s, s:i, s:o}", "id", (json_int_t)i, "user", user,
		      "role", HELD_ROLE, "duration", (json_int_t)GRANT_DAYS * 86400, "reason",
		      BENCH_REASON, "approvals_needed", 0, "lapses_at", time_json(now + 86400));
	rc = f ? sbx_journal_append(j, "request.created", user, f, NULL, NULL) : -1;
	json_decref(f);
	if (rc < 0)
		return -1;
	f = json_pack("{s:I, s:s, s:s, s:o, s:o, s:I}", "id", (json_int_t)i, "user", user, "role",
		      HELD_ROLE, "activated_at", time_json(now), "expires_at", time_json(expires),
		      "duration", (json_int_t)GRANT_DAYS * 86400);
	if (f && c->unix_groups) {
		json_object_set_new(f, "unix_group", json_string("sbx-" HELD_ROLE));
		json_object_set_new(f, "gid", json_integer(HELD_GID));
	}
	rc = f ? sbx_journal_append(j, "grant.activated", "sbx", f, NULL, NULL) : -1;
	json_decref(f);
	return rc;
}

/* A login's record: no state changes, only the journal grows. */
static int append_check(struct sbx_journal *j, unsigned long i)
{
	char user[16];
	json_t *f;
	int rc;

	snprintf(user, sizeof(user), "u%05lu", i % 10000 + 1);
	f = json_pack("{s:s, s:s, s:s}", "user", user, "service", "sshd", "outcome", "denied");
	rc = f ? sbx_journal_append(j, "access.checked", "sbx", f, NULL, NULL) : -1;
	json_decref(f);
	return rc;
}

/* Write c->grants live grants into the state directory's journal, through
 * the journal's own append path, before the broker starts on it; then
 * pad it to c->records records. */
static int preload_grants(const struct cfg *c, const char *state_dir, char *err, size_t errlen)
{
	struct sbx_journal_opts o = { .state_dir = state_dir };
	struct sbx_journal *j = NULL;
	struct sbx_replay_info info;
	int64_t now = sbx_now(), t0 = bench_now_ns();
	int ret = -1;

	if (sbx_journal_open(&o, NULL, NULL, NULL, &info, &j, err, errlen) < 0)
		return -1;
	for (unsigned long i = 1; i <= c->grants && !bench_interrupted; i++) {
		if (append_grant(j, c, i, now) < 0 ||
		    (i % PRELOAD_FLUSH_EVERY == 0 && sbx_journal_flush(j) < 0)) {
			snprintf(err, errlen, "journal append failed at grant %lu", i);
			goto out;
		}
	}
	for (unsigned long i = 2 * c->grants; i < c->records && !bench_interrupted; i++) {
		if (append_check(j, i) < 0 ||
		    (i % PRELOAD_FLUSH_EVERY == 0 && sbx_journal_flush(j) < 0)) {
			snprintf(err, errlen, "journal append failed at record %lu", i + 1);
			goto out;
		}
	}
	if (sbx_journal_flush(j) < 0) {
		snprintf(err, errlen, "journal flush failed");
		goto out;
	}
	printf("preload:  %lu live grants (%lu records of %lu) written into the journal in "
	       "%.2f s\n", c->grants, 2 * c->grants,
	       c->records > 2 * c->grants ? c->records : 2 * c->grants,
	       (double)(bench_now_ns() - t0) / 1e9);
	ret = bench_interrupted ? -1 : 0;
out:
	sbx_journal_close(j);
	return ret;
}

static int write_policy_file(const struct cfg *c, const struct bench_broker *b, char *err,
			     size_t errlen)
{
	int fd = open(b->config, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;

	if (!f) {
		snprintf(err, errlen, "%s: %s", b->config, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	write_policy(f, c, b->socket, b->state_dir);
	if (ferror(f) | fclose(f)) {
		snprintf(err, errlen, "%s: write failed", b->config);
		return -1;
	}
	return 0;
}

/* ---------------------------------------------------------------- clients */

static int request_reply(const uint8_t *frame, size_t n, char *err, size_t errlen)
{
	uint32_t status = 0;
	char msg[200], state[32] = "";
	sbx_reader r, rec;
	sbx_field f;

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
	if (sbx_reader_find(&rec, SBX_F_STATE, &f) == 1)
		(void)sbx_field_str(&f, state, sizeof(state));
	if (strcmp(state, "active") != 0) {
		snprintf(err, errlen, "request not granted at once: state '%s' (%s)", state, msg);
		return -1;
	}
	return 0;
}

static int request_once(const struct cfg *c, long pair, char *err, size_t errlen)
{
	char user[32], role[32];
	sbx_msg m;
	uint8_t *frame = NULL;
	size_t n = 0;
	int rc;

	snprintf(user, sizeof(user), "u%05lu", (unsigned long)pair % c->users + 1);
	snprintf(role, sizeof(role), "bench-%02lu", (unsigned long)pair / c->users + 1);
	sbx_msg_init(&m, SBX_OP_REQUEST);
	sbx_msg_put_str(&m, SBX_F_ROLE, role);
	sbx_msg_put_str(&m, SBX_F_REASON, BENCH_REASON);
	sbx_msg_put_str(&m, SBX_F_AS_USER, user);
	rc = sbx_call(&c->conn, &m, &frame, &n);
	if (rc < 0)
		snprintf(err, errlen, "%s %s: %s", user, role, strerror(-rc));
	else
		rc = request_reply(frame, n, err, errlen);
	sbx_msg_free(&m);
	free(frame);
	return rc;
}

/* A good answer has STATUS OK and ALLOWED (u00001 holds a grant from
 * the first request on). */
static int check_reply(const uint8_t *frame, size_t n, char *err, size_t errlen)
{
	uint32_t status = 0;
	char msg[200];
	sbx_reader r;
	sbx_field f;

	if (sbx_reply_status(frame, n, &status, msg, sizeof(msg)) < 0) {
		snprintf(err, errlen, "check: reply without STATUS");
		return -1;
	}
	if (status != SBX_ST_OK) {
		snprintf(err, errlen, "check: status %u: %s", status, msg);
		return -1;
	}
	sbx_reader_init_frame(&r, frame, n);
	if (sbx_reader_find(&r, SBX_F_ALLOWED, &f) != 1) {
		snprintf(err, errlen, "check: reply without ALLOWED");
		return -1;
	}
	return 0;
}

/* connect + CHECK + close, as pam_sbx does at a login. */
static int check_once(const struct cfg *c, char *err, size_t errlen)
{
	sbx_msg m;
	uint8_t *frame = NULL;
	size_t n = 0;
	int rc;

	sbx_msg_init(&m, SBX_OP_CHECK);
	sbx_msg_put_str(&m, SBX_F_USER, "u00001");
	rc = sbx_call(&c->conn, &m, &frame, &n);
	if (rc < 0)
		snprintf(err, errlen, "check: %s", strerror(-rc));
	else
		rc = check_reply(frame, n, err, errlen);
	sbx_msg_free(&m);
	free(frame);
	return rc;
}

/* The next unused (user, role) pair, or -1 when none is left. */
static long take_pair(struct level_run *run)
{
	long k = atomic_fetch_add(&run->cfg->next_pair, 1);

	if ((unsigned long)k >= run->cfg->users * run->cfg->roles) {
		atomic_store(&run->exhausted, 1);
		return -1;
	}
	return k;
}

/* The checker goes on while any requester does. */
static bool go_on(struct worker *w, int64_t now)
{
	struct level_run *run = w->run;

	if (bench_interrupted)
		return false;
	if (w->checker)
		return atomic_load(&run->requesters_left) > 0;
	return now - run->t0_ns < run->dur_ns;
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	struct level_run *run = w->run;
	char err[256];
	int64_t t = bench_now_ns();

	while (go_on(w, t)) {
		long pair = w->checker ? 0 : take_pair(run);
		int64_t t1;
		int rc;

		if (pair < 0)
			break;
		rc = w->checker ? check_once(run->cfg, err, sizeof(err))
				: request_once(run->cfg, pair, err, sizeof(err));
		t1 = bench_now_ns();
		if (rc < 0) {
			if (!w->errors++)
				snprintf(w->first_err, sizeof(w->first_err), "%s", err);
		} else {
			if (bench_samples_add(&w->lat, t1 - t) < 0)
				w->oom = 1;
			w->done++;
		}
		t = t1;
	}
	if (!w->checker)
		atomic_fetch_sub(&run->requesters_left, 1);
	return NULL;
}

static int64_t journal_seq(const struct cfg *c)
{
	char err[256];
	int64_t seq = -1;

	if (bench_ping(c->conn.path, 0, NULL, 0, &seq, err, sizeof(err)) < 0)
		return -1;
	return seq;
}

static int run_level(struct cfg *c, unsigned clients, double secs, pid_t broker,
		     struct result *res)
{
	struct level_run run = { .cfg = c, .dur_ns = (int64_t)(secs * 1e9) };
	unsigned threads = clients + (c->check ? 1 : 0);
	struct worker *w = calloc(threads, sizeof(*w));
	void **args = calloc(threads, sizeof(*args));
	struct bench_samples all = { 0 }, checks = { 0 };
	double cpu0 = bench_cpu_seconds(0), bcpu0 = broker ? bench_cpu_seconds(broker) : -1;
	double cpu1, bcpu1;
	int64_t seq0 = journal_seq(c), seq1;
	int ret = -1;

	memset(res, 0, sizeof(*res));
	res->clients = clients;
	res->grants_before = c->grants + (unsigned long)atomic_load(&c->next_pair);
	if (!w || !args)
		goto out;
	atomic_init(&run.exhausted, 0);
	atomic_init(&run.requesters_left, (int)clients);
	for (unsigned i = 0; i < threads; i++) {
		w[i].run = &run;
		w[i].checker = i >= clients;
		args[i] = &w[i];
	}
	if (bench_run_threads(threads, worker_main, args, &run.t0_ns, &res->wall_s) < 0)
		goto out;
	cpu1 = bench_cpu_seconds(0);
	bcpu1 = broker ? bench_cpu_seconds(broker) : -1;
	seq1 = journal_seq(c);
	res->records = seq0 >= 0 && seq1 >= 0 ? seq1 - seq0 : -1;
	res->own_cpu = cpu0 >= 0 && cpu1 >= 0 ? (cpu1 - cpu0) / res->wall_s : -1;
	res->broker_cpu = bcpu0 >= 0 && bcpu1 >= 0 ? (bcpu1 - bcpu0) / res->wall_s : -1;
	res->exhausted = atomic_load(&run.exhausted);
	for (unsigned i = 0; i < threads; i++) {
		if (w[i].checker) {
			res->checks += w[i].done;
			res->check_errors += w[i].errors;
		} else {
			res->done += w[i].done;
			res->errors += w[i].errors;
		}
		if (w[i].errors && !res->first_err[0])
			snprintf(res->first_err, sizeof(res->first_err), "%s", w[i].first_err);
		if (w[i].oom || bench_samples_take(w[i].checker ? &checks : &all, &w[i].lat) < 0)
			snprintf(res->first_err, sizeof(res->first_err),
				 "out of memory for samples: latencies incomplete");
	}
	bench_stats_compute(&all, &res->st);
	bench_stats_compute(&checks, &res->check_st);
	ret = 0;
out:
	if (w)
		for (unsigned i = 0; i < threads; i++)
			bench_samples_free(&w[i].lat);
	bench_samples_free(&all);
	bench_samples_free(&checks);
	free(w);
	free(args);
	return ret;
}

static void print_result(const struct result *r)
{
	double rate = r->wall_s > 0 ? (double)r->done / r->wall_s : 0;

	printf("== %u client%s, connect+request+close (durable) ==\n", r->clients,
	       r->clients == 1 ? "" : "s");
	printf("  live grants at the start: %lu\n", r->grants_before);
	printf("  requests %lu in %.2f s: %.0f requests/s  (errors %lu)\n", r->done, r->wall_s,
	       rate, r->errors);
	bench_stats_print(stdout, &r->st);
	if (r->checks || r->check_errors) {
		printf("  beside them, 1 client connect+check+close: %lu checks (errors %lu)\n",
		       r->checks, r->check_errors);
		if (r->check_st.n)
			printf("  check latency us: p50 %.0f  p90 %.0f  p99 %.0f  max %.0f  (mean %.0f)\n",
			       r->check_st.p50_us, r->check_st.p90_us, r->check_st.p99_us,
			       r->check_st.max_us, r->check_st.mean_us);
	}
	if (r->records >= 0)
		printf("  journal: %lld records written (%.2f per request)\n", (long long)r->records,
		       r->done ? (double)r->records / (double)r->done : 0.0);
	if (r->broker_cpu >= 0)
		printf("  cpu: broker %.2f cores, bench %.2f cores\n", r->broker_cpu, r->own_cpu);
	if (r->exhausted)
		printf("  note: ran out of (user, role) pairs before the time was up; raise "
		       "--users or --roles\n");
	if (r->first_err[0])
		printf("  first error: %s\n", r->first_err);
	fflush(stdout);
}

static void print_targets(const struct result *res, size_t n)
{
	const struct result *best = NULL;
	double best_rate = 0;

	for (size_t i = 0; i < n; i++) {
		double rate = res[i].wall_s > 0 ? (double)res[i].done / res[i].wall_s : 0;

		if (!best || rate > best_rate) {
			best = &res[i];
			best_rate = rate;
		}
	}
	printf("\ntargets (issue 2; printed, not asserted):\n");
	if (best)
		printf("  >= %.0f durable requests/s: best %.0f requests/s with %u client%s  (%s)\n",
		       TARGET_RATE, best_rate, best->clients, best->clients == 1 ? "" : "s",
		       best_rate >= TARGET_RATE ? "met" : "MISSED");
	else
		printf("  >= %.0f durable requests/s: not measured\n", TARGET_RATE);
}

/* What one write + fdatasync costs on the disk under the journal: a single
 * client cannot go faster than that, and group commit is what lets many
 * clients share one sync. */
static void print_fsync_floor(const char *dir)
{
	char path[PATH_MAX], line[256];
	struct bench_samples s = { 0 };
	struct bench_stats st;
	int fd;

	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	snprintf(path, sizeof(path), "%s/fsync-probe", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	for (int i = 0; i < FSYNC_PROBES && !bench_interrupted; i++) {
		int64_t t = bench_now_ns();

		if (write(fd, line, sizeof(line)) != (ssize_t)sizeof(line) || fdatasync(fd) < 0)
			break;
		if (bench_samples_add(&s, bench_now_ns() - t) < 0)
			break;
	}
	close(fd);
	unlink(path);
	bench_stats_compute(&s, &st);
	if (st.n)
		printf("disk:     append+fdatasync p50 %.0f us, p99 %.0f us (%zu probes): one "
		       "sync at a time allows ~%.0f/s\n", st.p50_us, st.p99_us, st.n,
		       1e6 / st.p50_us);
	bench_samples_free(&s);
}

static int setup_broker(struct cfg *c, struct bench_broker *b, char *err, size_t errlen)
{
	if (!c->broker[0] && bench_default_broker(c->broker, sizeof(c->broker)) < 0) {
		snprintf(err, errlen, "cannot find sbx-brokerd (use --broker PATH)");
		return -1;
	}
	if (bench_broker_prepare(b, "bench_requests", err, errlen) < 0)
		return -1;
	if (write_policy_file(c, b, err, errlen) < 0)
		return -1;
	if ((c->grants || c->records) && preload_grants(c, b->state_dir, err, errlen) < 0)
		return -1;
	/* Replaying millions of records takes a while. */
	return bench_broker_start(b, c->broker, 30000 + (int)(c->records / 50 + c->grants / 25),
				  err, errlen);
}

static void print_settings(const struct cfg *c, const struct bench_broker *b)
{
	char host[128] = "?", err[256];
	int64_t seq = -1;

	bench_print_machine(stdout, b->pid ? b->state_dir : NULL);
	(void)bench_ping(c->conn.path, 0, host, sizeof(host), &seq, err, sizeof(err));
	if (b->pid) {
		printf("broker:   %s (pid %d, started by bench_requests), host %s\n", c->broker,
		       (int)b->pid, host);
		print_fsync_floor(b->state_dir);
	} else {
		printf("broker:   running at %s, host %s, journal seq %lld\n", c->conn.path, host,
		       (long long)seq);
	}
	printf("settings: clients");
	for (size_t i = 0; i < c->n_levels; i++)
		printf("%s%u", i ? "," : " ", c->levels[i]);
	printf(", %.1f s per level, warm-up %.1f s, policy %lu users x %lu auto_approve roles "
	       "(%lu requests at most)\n", c->duration_s, c->warmup_s, c->users, c->roles,
	       c->users * c->roles);
	printf("          %lu preloaded live grants, unix groups %s, checker %s\n", c->grants,
	       c->unix_groups ? "on (every grant is in the NSS group table)" : "off",
	       c->check ? "on" : "off");
}

int main(int argc, char **argv)
{
	static struct cfg c = { .levels = { 1, 8, 32 }, .n_levels = 3, .duration_s = 5,
				.warmup_s = 0.5, .users = DEFAULT_USERS, .roles = DEFAULT_ROLES };
	struct bench_broker b = { 0 };
	struct result res[BENCH_MAX_LEVELS];
	size_t n_res = 0;
	char err[512];
	int ret = 1;

	if (parse_args(argc, argv, &c) < 0)
		return 2;
	if ((c.grants || c.records) && c.socket) {
		fprintf(stderr, "bench_requests: --grants and --records need a broker of its own "
			"(not --socket)\n");
		return 2;
	}
	if (c.print_policy) {
		write_policy(stdout, &c, NULL, NULL);
		return fflush(stdout) == 0 ? 0 : 1;
	}
	if (bench_catch_signals() < 0) {
		fprintf(stderr, "bench_requests: cannot set signal handlers: %s\n", strerror(errno));
		return 1;
	}
	if (!c.socket && setup_broker(&c, &b, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_requests: %s\n", err);
		bench_broker_cleanup(&b, true);
		return 1;
	}
	c.conn.path = c.socket ? c.socket : b.socket;
	c.conn.timeout_ms = BENCH_TIMEOUT_MS;
	atomic_init(&c.next_pair, 0);
	if (bench_ping(c.conn.path, 0, NULL, 0, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_requests: %s\n", err);
		goto out;
	}
	printf("bench_requests: durable SBX_OP_REQUEST over %s\n", c.conn.path);
	print_settings(&c, &b);
	if (request_once(&c, atomic_fetch_add(&c.next_pair, 1), err, sizeof(err)) < 0) {
		fflush(stdout);
		fprintf(stderr, "bench_requests: first request failed: %s\n", err);
		goto out;
	}
	printf("\n");
	for (size_t i = 0; i < c.n_levels && !bench_interrupted; i++) {
		struct result warm;

		if ((unsigned long)atomic_load(&c.next_pair) >= c.users * c.roles) {
			printf("== %u clients: skipped, every (user, role) pair was used; raise --users "
			       "or --roles ==\n", c.levels[i]);
			continue;
		}

		if (c.warmup_s > 0 && run_level(&c, c.levels[i], c.warmup_s, 0, &warm) < 0)
			goto threads;
		if (run_level(&c, c.levels[i], c.duration_s, b.pid, &res[n_res]) < 0)
			goto threads;
		print_result(&res[n_res++]);
	}
	print_targets(res, n_res);
	if (bench_interrupted)
		printf("(interrupted)\n");
	ret = 0;
	goto out;
threads:
	fprintf(stderr, "bench_requests: cannot start the client threads\n");
out:
	if (b.pid) {
		int st = bench_broker_stop(&b);

		if (st != 0) {
			fprintf(stderr, "bench_requests: the broker stopped with status %d; its log:\n",
				st);
			bench_broker_print_log(&b, stderr);
		}
	}
	bench_broker_cleanup(&b, ret != 0 && b.dir[0]);
	return ret;
}
