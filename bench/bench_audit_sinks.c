/*
 * bench_audit_sinks: what sealing and syslog cost the broker's appends
 * (docs/audit.md, "Evidence off the host").
 *
 * Appends broker-shaped records through the real paths, in a fresh state
 * dir per run, and measures durable records per second:
 *
 *   off            the journal alone (hash chain, group commit, fdatasync)
 *   sealing        + a seal every --seal-every seconds (sbx_seal_append:
 *                  a record and its own fdatasync, the key evolved and its
 *                  file replaced), each seal's line to syslog
 *   sealing+syslog + every record to syslog (broker/evidence.c, as the
 *                  broker calls it: lines of an operation held until it
 *                  ends and sent with their final hashes)
 *
 * Each unit is what one approved request and --logins logins (default 1)
 * leave: an operation of three records (request.created,
 * request.approval, grant.activated) and one access.checked per login;
 * --batch units share a commit
 * and its fdatasync, as concurrent clients of one loop pass do.  syslog
 * is a datagram socket in the run's directory read by a thread of this
 * program (a syslog daemon that keeps up); the lines it got and those
 * dropped are printed.  Rounds alternate the modes; the median of each is
 * compared with "off".  Prints numbers; asserts nothing.
 *
 *   bench_audit_sinks [--records N] [--batch N] [--rounds N] [--logins N]
 *                     [--seal-every SECS] [--dir DIR]
 *
 * DIR (default $TMPDIR or /tmp) decides what fdatasync costs: on tmpfs
 * nothing, so the difference shows the CPU cost alone.
 */
#include "config.h"

#include "benchlib.h"
#include "broker.h"
#include "evidence.h"
#include "journal.h"
#include "seal.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

enum mode { MODE_OFF, MODE_SEAL, MODE_SYSLOG, MODES };
static const char *const mode_name[MODES] = { "off", "sealing", "sealing+syslog" };

struct cfg {
	unsigned long records, batch, rounds, logins;
	double seal_every;
	const char *dir;
};

struct result {
	double rate;          /* durable records/s */
	double cpu_us;        /* CPU per record: this process (main thread and
			       * the journal's writer), the receiver's left out */
	double loop_us;       /* CPU per record of the appending thread alone
			       * (the broker's event loop) */
	uint64_t records, seals, lines;
};

static double thread_cpu_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the syslog daemon that keeps up ---- */

struct receiver {
	int fd;
	atomic_bool stop;
	atomic_uint_fast64_t got;
	pthread_t th;
	double cpu_s;        /* the thread's own CPU time, once stopped */
};

static double thread_cpu_s(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) < 0)
		return 0;
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *receive_main(void *arg)
{
	struct receiver *r = arg;
	char buf[2048];

	while (!atomic_load(&r->stop)) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };

		if (poll(&p, 1, 50) <= 0)
			continue;
		while (recv(r->fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
			atomic_fetch_add(&r->got, 1);
	}
	while (recv(r->fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		atomic_fetch_add(&r->got, 1);
	r->cpu_s = thread_cpu_s();
	return NULL;
}

static int receiver_start(struct receiver *r, const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };

	memset(r, 0, sizeof(*r));
	r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (r->fd < 0 || strlen(path) >= sizeof(a.sun_path))
		return -1;
	memcpy(a.sun_path, path, strlen(path) + 1);
	if (bind(r->fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    pthread_create(&r->th, NULL, receive_main, r) != 0) {
		close(r->fd);
		return -1;
	}
	return 0;
}

static void receiver_stop(struct receiver *r)
{
	atomic_store(&r->stop, true);
	pthread_join(r->th, NULL);
	close(r->fd);
}

/* ---- one run ---- */

struct run {
	enum mode mode;
	struct sbx_broker b;
	struct sbx_journal *j;
	struct sbx_seal_state st;
	char state[640];
	int64_t seal_due_ns, seal_every_ns;
	uint64_t seals;
	char err[512];
};

static int append(struct run *r, const char *event, const char *actor, json_t *f)
{
	json_t *rec = NULL;
	int rc = sbx_journal_append(r->j, event, actor, f, NULL, &rec);

	json_decref(f);
	if (rc < 0) {
		snprintf(r->err, sizeof(r->err), "append: %s", strerror(errno));
		return -1;
	}
	if (r->b.evidence)
		sbx_evidence_on_record(&r->b, rec);
	json_decref(rec);
	return 0;
}

static void op_begin(struct run *r)
{
	sbx_journal_op_begin(r->j);
	if (r->b.evidence)
		sbx_evidence_op_begin(&r->b);
}

static void op_end(struct run *r)
{
	sbx_journal_op_end(r->j);
	if (r->b.evidence)
		sbx_evidence_op_end(&r->b);
}

/* One approved request and logins logins. */
static int unit(struct run *r, uint64_t id, unsigned long logins)
{
	char user[24];
	int rc = 0;

	snprintf(user, sizeof(user), "u%06" PRIu64, id % 100000);
	op_begin(r);
	rc |= append(r, "request.created", user,
		     json_pack("{s:I, s:s, s:s, s:i, s:s, s:s, s:i, s:s}", "id", (json_int_t)id,
			       "user", user, "role", "sandbox-admin", "duration", 3600, "reason",
			       "debugging the payment job", "ticket", "OPS-1234",
			       "approvals_needed", 1, "lapses_at", "2026-12-08T00:00:00Z"));
	rc |= append(r, "request.approval", "bob",
		     json_pack("{s:I, s:s, s:s, s:s, s:i, s:i}", "id", (json_int_t)id, "user",
			       user, "role", "sandbox-admin", "ground", "manager", "approvals", 1,
			       "approvals_needed", 1));
	rc |= append(r, "grant.activated", "sbx",
		     json_pack("{s:I, s:s, s:s, s:s, s:s, s:i}", "id", (json_int_t)id, "user",
			       user, "role", "sandbox-admin", "activated_at",
			       "2026-12-07T00:00:00Z", "expires_at", "2026-12-07T01:00:00Z",
			       "duration", 3600));
	op_end(r);
	for (unsigned long i = 0; i < logins; i++) {
		op_begin(r);
		rc |= append(r, "access.checked", "sbx",
			     json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "user", user, "service",
				       "sshd", "rhost", "10.0.0.7", "outcome", "allowed", "role",
				       "sandbox-admin", "id", (json_int_t)id));
		op_end(r);
	}
	return rc ? -1 : 0;
}

static int seal(struct run *r)
{
	char until[SBX_RFC3339_LEN];
	struct sbx_evidence_seal s;
	uint64_t seq;

	if (sbx_seal_append(r->j, &r->st, "sbx", "timer", &seq, until, r->err, sizeof(r->err)) < 0)
		return -1;
	s = (struct sbx_evidence_seal){ .seq = seq, .epoch = r->st.epoch,
					.first_seq = r->st.first_seq, .key_id = r->st.key_id,
					.why = "timer", .time = until };
	sbx_evidence_on_seal(&r->b, &s);
	sbx_seal_state_advance(&r->st, until, seq + 1);
	r->seals++;
	return sbx_seal_state_write(r->state, &r->st, r->err, sizeof(r->err));
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int run_one(const struct cfg *c, const char *top, enum mode mode, unsigned round,
		   struct result *res)
{
	struct run r = { .mode = mode };
	struct sbx_journal_opts jo = { 0 };
	struct sbx_replay_info info;
	struct sbx_seal_vkey vk;
	struct receiver rcv = { .fd = -1 };
	char sock[600];
	uint64_t units = (c->records + 2 + c->logins) / (3 + c->logins), id;
	int64_t t0, t1;
	double cpu0, cpu1, loop0, loop1;
	int ret = -1;

	memset(res, 0, sizeof(*res));
	snprintf(r.state, sizeof(r.state), "%s/%s-%u", top, mode_name[mode], round);
	snprintf(sock, sizeof(sock), "%s/log", top);
	(void)unlink(sock);
	if (mkdir(r.state, 0700) < 0) {
		fprintf(stderr, "bench_audit_sinks: mkdir %s: %s\n", r.state, strerror(errno));
		return -1;
	}
	jo.state_dir = r.state;
	if (sbx_journal_open(&jo, NULL, NULL, NULL, &info, &r.j, r.err, sizeof(r.err)) < 0)
		goto out;
	sbx_journal_defer_commits(r.j, true);
	r.b.journal = r.j;
	r.b.settings.audit.syslog = mode == MODE_SYSLOG;
	if (mode != MODE_OFF) {
		if (receiver_start(&rcv, sock) < 0) {
			snprintf(r.err, sizeof(r.err), "cannot bind %s", sock);
			goto out;
		}
		if (sbx_evidence_new_at(&r.b, sock) < 0 ||
		    sbx_seal_vkey_new(&vk, r.err, sizeof(r.err)) < 0)
			goto out;
		sbx_seal_state_init(&r.st, &vk);
		if (sbx_seal_state_write(r.state, &r.st, r.err, sizeof(r.err)) < 0)
			goto out;
	}
	r.seal_every_ns = (int64_t)(c->seal_every * 1e9);
	cpu0 = bench_cpu_seconds(0);
	loop0 = thread_cpu_seconds();
	t0 = bench_now_ns();
	r.seal_due_ns = t0 + r.seal_every_ns;
	for (id = 1; id <= units && !bench_interrupted; id++) {
		if (unit(&r, id, c->logins) < 0)
			goto out;
		if (id % c->batch == 0) {
			/* The end of a loop pass: the broker's commit, and its
			 * lines to syslog. */
			sbx_evidence_tick(&r.b);
			sbx_journal_commit(r.j);
			if (sbx_journal_flush(r.j) < 0) {
				snprintf(r.err, sizeof(r.err), "flush failed");
				goto out;
			}
		}
		if (mode != MODE_OFF && bench_now_ns() >= r.seal_due_ns) {
			if (seal(&r) < 0)
				goto out;
			r.seal_due_ns += r.seal_every_ns;
		}
	}
	sbx_journal_commit(r.j);
	if (sbx_journal_flush(r.j) < 0) {
		snprintf(r.err, sizeof(r.err), "flush failed");
		goto out;
	}
	t1 = bench_now_ns();
	loop1 = thread_cpu_seconds();
	/* The sink's thread finishes what the appends queued: its CPU time
	 * is the appends' cost, not the receiver's. */
	sbx_evidence_free(&r.b);
	cpu1 = bench_cpu_seconds(0);
	res->records = sbx_journal_last_seq(r.j);
	res->seals = r.seals;
	res->rate = (double)res->records / ((double)(t1 - t0) / 1e9);
	ret = 0;
out:
	if (ret < 0)
		fprintf(stderr, "bench_audit_sinks: %s: %s\n", mode_name[mode], r.err);
	sbx_evidence_free(&r.b);
	sbx_journal_close(r.j);
	if (rcv.fd >= 0) {
		receiver_stop(&rcv);
		res->lines = atomic_load(&rcv.got);
	}
	if (ret == 0 && res->records) {
		res->cpu_us = (cpu1 - cpu0 - rcv.cpu_s) * 1e6 / (double)res->records;
		res->loop_us = (loop1 - loop0) * 1e6 / (double)res->records;
	}
	sbx_seal_state_wipe(&r.st);
	(void)nftw(r.state, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	(void)unlink(sock);
	return ret;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static const char usage_text[] =
	"Usage: bench_audit_sinks [--records N] [--batch N] [--rounds N] [--logins N]\n"
	"                         [--seal-every SECS] [--dir DIR]\n";

int main(int argc, char **argv)
{
	struct cfg c = { .records = 400000, .batch = 16, .rounds = 3, .seal_every = 1.0,
			 .logins = 1 };
	const char *tmp = getenv("TMPDIR");
	char top[448], dirbuf[400] = "";
	const struct bench_opt opts[] = {
		{ "records", BENCH_OPT_ULONG, &c.records, NULL, 0, 1000, 100000000, 0 },
		{ "batch", BENCH_OPT_ULONG, &c.batch, NULL, 0, 1, 100000, 0 },
		{ "rounds", BENCH_OPT_ULONG, &c.rounds, NULL, 0, 1, 50, 0 },
		{ "logins", BENCH_OPT_ULONG, &c.logins, NULL, 0, 0, 1000, 0 },
		{ "seal-every", BENCH_OPT_SECONDS, &c.seal_every, NULL, 0, 0, 0, 0 },
		{ "dir", BENCH_OPT_PATH, dirbuf, NULL, sizeof(dirbuf), 0, 0, 0 },
	};
	double rates[MODES][50], cpus[MODES][50], loops[MODES][50];
	struct result last[MODES];
	int ret = 1;

	if (bench_parse_args("bench_audit_sinks", usage_text, argc, argv, opts,
			     sizeof(opts) / sizeof(opts[0])) < 0)
		return 2;
	c.dir = dirbuf[0] ? dirbuf : tmp && tmp[0] ? tmp : "/tmp";
	snprintf(top, sizeof(top), "%s/bench_audit_sinks.XXXXXX", c.dir);
	if (!mkdtemp(top)) {
		fprintf(stderr, "bench_audit_sinks: mkdtemp %s: %s\n", top, strerror(errno));
		return 1;
	}
	if (bench_catch_signals() < 0)
		goto out;
	bench_print_machine(stdout, NULL);
	bench_print_fs(stdout, "state dir", top);
	printf("records %lu per run (units of a 3-record operation + %lu logins), %lu units per "
	       "commit, a seal every %.1f s, %lu rounds\n\n", c.records, c.logins, c.batch,
	       c.seal_every, c.rounds);
	for (unsigned long i = 0; i < c.rounds && !bench_interrupted; i++) {
		for (int m = 0; m < MODES; m++) {
			if (run_one(&c, top, (enum mode)m, (unsigned)i, &last[m]) < 0)
				goto out;
			rates[m][i] = last[m].rate;
			cpus[m][i] = last[m].cpu_us;
			loops[m][i] = last[m].loop_us;
			printf("  round %lu %-15s %9.0f records/s  %5.2f us CPU/record  %5.2f us loop  (%" PRIu64
			       " records, %" PRIu64 " seals, %" PRIu64 " syslog lines received)\n",
			       i + 1, mode_name[m], last[m].rate, last[m].cpu_us, last[m].loop_us,
			       last[m].records,
			       last[m].seals, last[m].lines);
			fflush(stdout);
		}
	}
	printf("\n== median of %lu rounds ==\n", c.rounds);
	for (int m = 0; m < MODES; m++) {
		qsort(rates[m], c.rounds, sizeof(double), cmp_double);
		qsort(cpus[m], c.rounds, sizeof(double), cmp_double);
		qsort(loops[m], c.rounds, sizeof(double), cmp_double);
	}
	for (int m = 0; m < MODES; m++) {
		double med = rates[m][c.rounds / 2], off = rates[MODE_OFF][c.rounds / 2];
		double cpu = cpus[m][c.rounds / 2], cpu_off = cpus[MODE_OFF][c.rounds / 2];
		double loop = loops[m][c.rounds / 2], loop_off = loops[MODE_OFF][c.rounds / 2];

		printf("  %-15s %9.0f records/s %+6.1f %%   %5.2f us CPU/record %+6.1f %%   "
		       "%5.2f us loop %+6.1f %%%s\n",
		       mode_name[m], med, (med / off - 1.0) * 100.0, cpu,
		       (cpu / cpu_off - 1.0) * 100.0, loop, (loop / loop_off - 1.0) * 100.0,
		       m == MODE_SYSLOG ? "   (target: throughput >= -10 %)" : "");
	}
	ret = 0;
out:
	(void)nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return ret;
}
