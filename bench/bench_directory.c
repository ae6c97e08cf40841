/*
 * bench_directory: what users and groups from LDAP cost the check path.
 *
 * Starts a private slapd (127.0.0.1, a free port, mdb) loaded with N users
 * (default 10,000, each with a manager DN and a mail address) and G groups
 * (default 1,000: odd ones groupOfNames with member DNs, even ones
 * posixGroup with memberUid), then drives SBX_OP_CHECK (connect + check +
 * close, as pam_sbx does) at a broker started on:
 *
 *   yaml         the same users and groups written into the policy file
 *                (the baseline);
 *   warm         the directory, read once at start-up (cache_ttl 10m);
 *   refreshing   the directory read again every second (cache_ttl 1s) with
 *                nothing changed;
 *   changing     the same with a group changed every 0.5 s, so every read
 *                is merged into the policy on the event loop;
 *
 * and measures the cold side: how long the broker takes to start (the
 * first full read and merge included), and how long a user added to the
 * directory waits, from the first check that finds them unknown (which
 * asks the directory at once) to the first check that lets them in.
 *
 * The checked users cycle through all N, so every decision path is taken
 * (standing, eligible with its hint, no role).  Numbers are printed, never
 * asserted.  Target (issue 5): warm throughput >= 90% of yaml's.
 */
#include "config.h"

#include "benchlib.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ldap.h>

#define BASE "dc=example,dc=org"
#define SBX_DN "cn=sbx,ou=services," BASE
#define SBX_PW "bench-secret"
#define ADMIN_DN "cn=admin," BASE
#define ADMIN_PW "bench-admin"
#define TARGET_RATIO 0.90
#define NEW_USERS 20

extern char **environ;

static const char usage_text[] =
	"Usage: bench_directory [--users N] [--groups G] [--clients LIST] [--duration SECS]\n"
	"                       [--broker PATH] [--slapd PATH] [--slapadd PATH]\n"
	"\n"
	"Start a private slapd with N users and G groups and measure SBX_OP_CHECK\n"
	"(connect+check+close) against brokers that read them from the policy file\n"
	"(yaml) and from the directory (warm, refreshing every second, changing\n"
	"every half second); also the start-up time and how long a user new to the\n"
	"directory waits.  Numbers are printed, never asserted.\n"
	"\n"
	"Options:\n"
	"  --users N         directory users (default 10000)\n"
	"  --groups G        directory groups (default 1000; at most N / 2)\n"
	"  --clients LIST    concurrency levels (default 1,8)\n"
	"  --duration SECS   per level and configuration (default 3)\n"
	"  --broker PATH     sbx-brokerd (default: the one in this build tree)\n"
	"  --slapd PATH      (default /usr/sbin/slapd)\n"
	"  --slapadd PATH    (default /usr/sbin/slapadd)\n"
	"  -h, --help        show this help\n"
	"\n"
	"Exit status: 0 measured (whatever the numbers), 1 could not set up, 2 usage.\n";

struct cfg {
	unsigned long users, groups;
	unsigned levels[BENCH_MAX_LEVELS];
	size_t n_levels;
	double duration_s;
	char broker[PATH_MAX];
	const char *slapd, *slapadd;
};

struct env {
	struct bench_broker b;   /* its dir holds everything */
	char ldap_dir[PATH_MAX];
	char uri[64];
	int port;
	pid_t slapd;
};

/* ---- options ------------------------------------------------------------ */

static int parse_args(int argc, char **argv, struct cfg *c)
{
	const struct bench_opt opts[] = {
		{ "users", BENCH_OPT_ULONG, &c->users, NULL, 0, 20, 1000000, 0 },
		{ "groups", BENCH_OPT_ULONG, &c->groups, NULL, 0, 10, 100000, 0 },
		{ "clients", BENCH_OPT_LEVELS, c->levels, &c->n_levels, 0, 0, 0, 0 },
		{ "duration", BENCH_OPT_SECONDS, &c->duration_s, NULL, 0, 0, 0, 0 },
		{ "broker", BENCH_OPT_PATH, c->broker, NULL, sizeof(c->broker), 0, 0, 0 },
		{ "slapd", BENCH_OPT_STRING, &c->slapd, NULL, 0, 0, 0, 0 },
		{ "slapadd", BENCH_OPT_STRING, &c->slapadd, NULL, 0, 0, 0, 0 },
	};

	if (bench_parse_args("bench_directory", usage_text, argc, argv, opts,
			     sizeof(opts) / sizeof(opts[0])) < 0)
		return -1;
	if (c->groups * 2 > c->users) {
		fprintf(stderr, "bench_directory: bad arguments (groups at most users / 2)\n");
		return -1;
	}
	return 0;
}

/* ---- the data ------------------------------------------------------------- */

/* Group j (1-based) has users (j-1)*k+1 .. j*k, k = users / groups. */
static unsigned long per_group(const struct cfg *c)
{
	return c->users / c->groups;
}

static int write_ldif(const struct cfg *c, const char *path)
{
	FILE *f = fopen(path, "we");
	unsigned long k = per_group(c);

	if (!f)
		return -1;
	fprintf(f, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n"
		"o: Example\n\n", BASE);
	fprintf(f, "dn: ou=people,%s\nobjectClass: organizationalUnit\nou: people\n\n", BASE);
	fprintf(f, "dn: ou=groups,%s\nobjectClass: organizationalUnit\nou: groups\n\n", BASE);
	fprintf(f, "dn: ou=services,%s\nobjectClass: organizationalUnit\nou: services\n\n", BASE);
	fprintf(f, "dn: %s\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
		"cn: sbx\nuserPassword: %s\n\n", SBX_DN, SBX_PW);
	for (unsigned long i = 1; i <= c->users; i++) {
		fprintf(f, "dn: uid=u%06lu,ou=people,%s\nobjectClass: inetOrgPerson\nuid: u%06lu\n"
			"cn: User %lu\nsn: %lu\nmail: u%06lu@example.org\n", i, BASE, i, i, i, i);
		if (i > 1)
			fprintf(f, "manager: uid=u%06lu,ou=people,%s\n", i / 10 ? i / 10 : 1, BASE);
		fputc('\n', f);
	}
	for (unsigned long j = 1; j <= c->groups; j++) {
		if (j % 2) {
			fprintf(f, "dn: cn=g%05lu,ou=groups,%s\nobjectClass: groupOfNames\ncn: g%05lu\n",
				j, BASE, j);
			for (unsigned long i = (j - 1) * k + 1; i <= j * k; i++)
				fprintf(f, "member: uid=u%06lu,ou=people,%s\n", i, BASE);
		} else {
			fprintf(f, "dn: cn=g%05lu,ou=groups,%s\nobjectClass: posixGroup\ncn: g%05lu\n"
				"gidNumber: %lu\n", j, BASE, j, 10000 + j);
			for (unsigned long i = (j - 1) * k + 1; i <= j * k; i++)
				fprintf(f, "memberUid: u%06lu\n", i);
		}
		fputc('\n', f);
	}
	return fclose(f);
}

static void group_list(FILE *f, unsigned long from, unsigned long to)
{
	fputc('[', f);
	for (unsigned long j = from; j <= to; j++)
		fprintf(f, "%sg%05lu", j > from ? ", " : "", j);
	fputc(']', f);
}

/* The roles: a few groups each, as a real policy would have. */
static void write_roles(FILE *f, const struct cfg *c)
{
	unsigned long g = c->groups;

	fprintf(f, "broker: { host: sbx-01 }\nroles:\n  sandbox-user:\n    hosts: [\"sbx-*\"]\n"
		"    standing: { groups: ");
	group_list(f, 1, g / 100 ? g / 100 : 1);
	fprintf(f, " }\n  sandbox-admin:\n    hosts: [\"sbx-*\"]\n    eligible: { groups: ");
	group_list(f, g / 100 + 1, g / 50);
	fprintf(f, " }\n    approvers: { manager: true }\n    max_duration: 2h\n"
		"  sandbox-readonly:\n    hosts: [\"sbx-*\"]\n    eligible: { groups: ");
	group_list(f, g / 50 + 1, g / 20);
	fprintf(f, " }\n    auto_approve: true\n    max_duration: 30m\n");
}

static int write_yaml_policy(const struct cfg *c, const char *path)
{
	FILE *f = fopen(path, "we");
	unsigned long k = per_group(c);

	if (!f)
		return -1;
	write_roles(f, c);
	fprintf(f, "users:\n");
	for (unsigned long i = 1; i <= c->users; i++) {
		fprintf(f, "  u%06lu: { email: u%06lu@example.org", i, i);
		if (i > 1)
			fprintf(f, ", manager: u%06lu", i / 10 ? i / 10 : 1);
		fprintf(f, " }\n");
	}
	fprintf(f, "groups:\n");
	for (unsigned long j = 1; j <= c->groups; j++) {
		fprintf(f, "  g%05lu: [", j);
		for (unsigned long i = (j - 1) * k + 1; i <= j * k; i++)
			fprintf(f, "%su%06lu", i > (j - 1) * k + 1 ? ", " : "", i);
		fprintf(f, "]\n");
	}
	return fclose(f);
}

static int write_dir_policy(const struct cfg *c, const struct env *e, const char *path,
			    const char *cache_ttl)
{
	char pw[PATH_MAX];
	FILE *f;
	int fd;

	if ((size_t)snprintf(pw, sizeof(pw), "%s/sbx.pw", e->ldap_dir) >= sizeof(pw))
		return -1;
	fd = open(pw, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, SBX_PW "\n", strlen(SBX_PW) + 1) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	f = fopen(path, "we");
	if (!f)
		return -1;
	write_roles(f, c);
	fprintf(f, "directory:\n  uri: %s\n  start_tls: false\n  base: %s\n  bind_dn: %s\n"
		"  bind_password_file: %s\n  user_search: { base: \"ou=people,%s\" }\n"
		"  group_search: { base: \"ou=groups,%s\" }\n  timeout: 5s\n  cache_ttl: %s\n"
		"  max_stale: 1h\n", e->uri, BASE, SBX_DN, pw, BASE, BASE, cache_ttl);
	return fclose(f);
}

/* ---- slapd ------------------------------------------------------------------- */

static int free_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static int run_wait(char *const argv[], const char *log)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int status, rc;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -1;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int ldap_bind_admin(const char *uri, LDAP **out)
{
	struct berval cred = { strlen(ADMIN_PW), (char *)ADMIN_PW };
	int v3 = LDAP_VERSION3;
	LDAP *ld = NULL;

	if (ldap_initialize(&ld, uri) != LDAP_SUCCESS)
		return -1;
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &v3);
	if (ldap_sasl_bind_s(ld, ADMIN_DN, LDAP_SASL_SIMPLE, &cred, NULL, NULL, NULL) !=
	    LDAP_SUCCESS) {
		ldap_unbind_ext_s(ld, NULL, NULL);
		return -1;
	}
	*out = ld;
	return 0;
}

static int slapd_up(const struct cfg *c, struct env *e, char *err, size_t errlen)
{
	char conf[PATH_MAX + 32], ldif[PATH_MAX + 32], log[PATH_MAX + 32], db[PATH_MAX + 32],
		pidf[PATH_MAX + 32], url[96];
	FILE *f;
	LDAP *ld = NULL;

	snprintf(e->ldap_dir, sizeof(e->ldap_dir), "%s/ldap", e->b.dir);
	snprintf(conf, sizeof(conf), "%s/slapd.conf", e->ldap_dir);
	snprintf(ldif, sizeof(ldif), "%s/data.ldif", e->ldap_dir);
	snprintf(log, sizeof(log), "%s/slapd.log", e->ldap_dir);
	snprintf(db, sizeof(db), "%s/db", e->ldap_dir);
	snprintf(pidf, sizeof(pidf), "%s/slapd.pid", e->ldap_dir);
	if (mkdir(e->ldap_dir, 0700) < 0 || mkdir(db, 0700) < 0) {
		snprintf(err, errlen, "mkdir %.300s: %s", db, strerror(errno));
		return -1;
	}
	e->port = free_port();
	snprintf(e->uri, sizeof(e->uri), "ldap://127.0.0.1:%d", e->port);
	f = fopen(conf, "we");
	if (!f)
		return -1;
	fprintf(f, "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n"
		"include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n"
		"pidfile %s\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\ndatabase mdb\n"
		"maxsize 1073741824\nsuffix \"%s\"\nrootdn \"%s\"\nrootpw %s\ndirectory %s\n"
		"limits dn.exact=\"%s\" size=unlimited\n"
		"index objectClass,uid,memberUid,member eq\n"
		"access to attrs=userPassword by self write by anonymous auth by * none\n"
		"access to * by * read\n", pidf, BASE, ADMIN_DN, ADMIN_PW, db, SBX_DN);
	fclose(f);
	if (write_ldif(c, ldif) < 0) {
		snprintf(err, errlen, "cannot write %.300s", ldif);
		return -1;
	}
	{
		char *argv[] = { (char *)c->slapadd, "-q", "-f", conf, "-l", ldif, NULL };

		if (run_wait(argv, log) < 0) {
			snprintf(err, errlen, "slapadd failed (see %.300s)", log);
			return -1;
		}
	}
	snprintf(url, sizeof(url), "%s/", e->uri);
	{
		/* -d 0: stay in the foreground, so it is our child to stop. */
		char *argv[] = { (char *)c->slapd, "-d", "0", "-f", conf, "-h", url, NULL };
		posix_spawn_file_actions_t fa;

		posix_spawn_file_actions_init(&fa);
		posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		posix_spawn_file_actions_adddup2(&fa, 1, 2);
		if (posix_spawn(&e->slapd, c->slapd, &fa, NULL, argv, environ) != 0) {
			posix_spawn_file_actions_destroy(&fa);
			snprintf(err, errlen, "cannot start %s", c->slapd);
			e->slapd = 0;
			return -1;
		}
		posix_spawn_file_actions_destroy(&fa);
	}
	for (int i = 0; i < 500 && !bench_interrupted; i++) {
		if (ldap_bind_admin(e->uri, &ld) == 0) {
			ldap_unbind_ext_s(ld, NULL, NULL);
			return 0;
		}
		usleep(20000);
	}
	snprintf(err, errlen, "slapd did not answer on %s (see %.300s)", e->uri, log);
	return -1;
}

static void slapd_down(struct env *e)
{
	int status;

	if (e->slapd <= 0)
		return;
	kill(e->slapd, SIGTERM);
	while (waitpid(e->slapd, &status, 0) < 0 && errno == EINTR)
		;
	e->slapd = 0;
}

/* ---- checks ------------------------------------------------------------------- */

struct run {
	const struct cfg *c;
	const char *socket;
	int64_t t0_ns, dur_ns;
	atomic_ulong next_user;
};

struct worker {
	struct run *run;
	struct bench_samples lat;
	unsigned long done, errors, allowed;
	char first_err[200];
};

static int check_once(const char *socket, const char *user, bool *allowed, char *err,
		      size_t errlen)
{
	struct sbx_conn_opts co = { .path = socket, .timeout_ms = BENCH_TIMEOUT_MS };
	uint8_t *frame = NULL;
	size_t n = 0;
	uint32_t status = 0;
	char msg[256];
	sbx_reader r;
	sbx_field f;
	sbx_msg m;
	int rc;

	sbx_msg_init(&m, SBX_OP_CHECK);
	sbx_msg_put_str(&m, SBX_F_USER, user);
	rc = sbx_msg_finish(&m);
	if (rc == 0)
		rc = sbx_call(&co, &m, &frame, &n);
	sbx_msg_free(&m);
	if (rc < 0) {
		snprintf(err, errlen, "%s", strerror(-rc));
		return -1;
	}
	rc = -1;
	if (sbx_reply_status(frame, n, &status, msg, sizeof(msg)) < 0 || status != SBX_ST_OK) {
		snprintf(err, errlen, "status %u: %.150s", status, msg);
		goto out;
	}
	sbx_reader_init_frame(&r, frame, n);
	if (sbx_reader_find(&r, SBX_F_ALLOWED, &f) != 1) {
		snprintf(err, errlen, "no ALLOWED");
		goto out;
	}
	*allowed = sbx_field_u32(&f) != 0;
	rc = 0;
out:
	free(frame);
	return rc;
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	struct run *run = w->run;
	char user[32], err[200];
	int64_t t = bench_now_ns();

	while (!bench_interrupted && t - run->t0_ns < run->dur_ns) {
		unsigned long u = atomic_fetch_add(&run->next_user, 1) % run->c->users + 1;
		bool allowed = false;
		int64_t t1;

		snprintf(user, sizeof(user), "u%06lu", u);
		if (check_once(run->socket, user, &allowed, err, sizeof(err)) < 0) {
			if (!w->errors++)
				snprintf(w->first_err, sizeof(w->first_err), "%s", err);
		} else {
			w->done++;
			w->allowed += allowed;
		}
		t1 = bench_now_ns();
		(void)bench_samples_add(&w->lat, t1 - t);
		t = t1;
	}
	return NULL;
}

/* One level; returns checks/s (0 when it could not run). */
static double measure(const struct cfg *c, struct env *e, const char *label, unsigned clients)
{
	struct run run = { .c = c, .socket = e->b.socket };
	struct worker *w = calloc(clients, sizeof(*w));
	void **args = calloc(clients, sizeof(*args));
	struct bench_samples all = { 0 };
	struct bench_stats st;
	unsigned long done = 0, errors = 0, allowed = 0;
	double wall = 0, rate = 0, cpu0 = bench_cpu_seconds(e->b.pid), cpu1;
	const char *first_err = NULL;

	if (!w || !args)
		goto out;
	run.dur_ns = (int64_t)(c->duration_s * 1e9);
	atomic_init(&run.next_user, 0);
	for (unsigned i = 0; i < clients; i++) {
		w[i].run = &run;
		args[i] = &w[i];
	}
	if (bench_run_threads(clients, worker_main, args, &run.t0_ns, &wall) < 0)
		goto out;
	cpu1 = bench_cpu_seconds(e->b.pid);
	for (unsigned i = 0; i < clients; i++) {
		done += w[i].done;
		errors += w[i].errors;
		allowed += w[i].allowed;
		if (w[i].errors && !first_err)
			first_err = w[i].first_err;
		(void)bench_samples_take(&all, &w[i].lat);
	}
	bench_stats_compute(&all, &st);
	rate = wall > 0 ? (double)done / wall : 0;
	printf("== %-10s %u client%s: %8.0f checks/s  p50 %6.0f us  p99 %7.0f us  max %7.0f us"
	       "  (allowed %lu, errors %lu, broker cpu %.2f)\n", label, clients,
	       clients == 1 ? " " : "s", rate, st.p50_us, st.p99_us, st.max_us, allowed, errors,
	       cpu0 >= 0 && cpu1 >= 0 && wall > 0 ? (cpu1 - cpu0) / wall : -1.0);
	if (first_err)
		printf("   first error: %s\n", first_err);
out:
	for (unsigned i = 0; w && i < clients; i++)
		bench_samples_free(&w[i].lat);
	bench_samples_free(&all);
	free(w);
	free(args);
	return rate;
}

/* ---- the group that keeps changing ------------------------------------------ */

struct churn {
	const char *uri;
	atomic_bool stop;
	unsigned long changes;
};

static void *churn_main(void *p)
{
	struct churn *ch = p;
	LDAP *ld = NULL;
	bool in = false;

	if (ldap_bind_admin(ch->uri, &ld) < 0)
		return NULL;
	while (!atomic_load(&ch->stop) && !bench_interrupted) {
		char *vals[] = { (char *)"uid=u000001,ou=people," BASE, NULL };
		LDAPMod mod = { .mod_op = in ? LDAP_MOD_DELETE : LDAP_MOD_ADD,
				.mod_type = (char *)"member", .mod_values = vals };
		LDAPMod *mods[] = { &mod, NULL };

		/* u000001 joins and leaves g00003 (a groupOfNames). */
		if (ldap_modify_ext_s(ld, "cn=g00003,ou=groups," BASE, mods, NULL, NULL) ==
		    LDAP_SUCCESS) {
			in = !in;
			ch->changes++;
		}
		usleep(500000);
	}
	ldap_unbind_ext_s(ld, NULL, NULL);
	return NULL;
}

/* ---- brokers ------------------------------------------------------------------- */

static int start_broker(const struct cfg *c, struct env *e, const char *name, double *secs)
{
	char err[512];
	int64_t t0;

	snprintf(e->b.state_dir, sizeof(e->b.state_dir), "%s/state-%s", e->b.dir, name);
	t0 = bench_now_ns();
	if (bench_broker_start(&e->b, c->broker, 120000, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_directory: %s\n", err);
		bench_broker_print_log(&e->b, stderr);
		return -1;
	}
	*secs = (double)(bench_now_ns() - t0) / 1e9;
	return 0;
}

/* A user new to the directory: from the first check (which finds them
 * unknown and asks the directory) to the first that lets them in. */
static void first_sight(const struct cfg *c, struct env *e)
{
	struct bench_samples s = { 0 };
	struct bench_stats st;
	LDAP *ld = NULL;
	unsigned long lost = 0;

	if (ldap_bind_admin(e->uri, &ld) < 0) {
		printf("   first sight: cannot bind as the directory's admin\n");
		return;
	}
	for (int i = 0; i < NEW_USERS && !bench_interrupted; i++) {
		char dn[128], uid[32], *oc[] = { (char *)"inetOrgPerson", NULL };
		char *uids[] = { uid, NULL }, *cn[] = { uid, NULL }, *dns[] = { dn, NULL };
		LDAPMod m_oc = { LDAP_MOD_ADD, (char *)"objectClass", { oc } };
		LDAPMod m_uid = { LDAP_MOD_ADD, (char *)"uid", { uids } };
		LDAPMod m_cn = { LDAP_MOD_ADD, (char *)"cn", { cn } };
		LDAPMod m_sn = { LDAP_MOD_ADD, (char *)"sn", { cn } };
		LDAPMod *add[] = { &m_oc, &m_uid, &m_cn, &m_sn, NULL };
		LDAPMod m_member = { LDAP_MOD_ADD, (char *)"member", { dns } };
		LDAPMod *mod[] = { &m_member, NULL };
		bool allowed = false;
		char err[200];
		int64_t t0, deadline;

		snprintf(uid, sizeof(uid), "new%03d", i);
		snprintf(dn, sizeof(dn), "uid=%s,ou=people,%s", uid, BASE);
		if (ldap_add_ext_s(ld, dn, add, NULL, NULL) != LDAP_SUCCESS ||
		    ldap_modify_ext_s(ld, "cn=g00001,ou=groups," BASE, mod, NULL, NULL) !=
			    LDAP_SUCCESS)
			break;
		t0 = bench_now_ns();
		deadline = t0 + 10 * (int64_t)1000000000;
		while (!allowed && bench_now_ns() < deadline && !bench_interrupted) {
			if (check_once(e->b.socket, uid, &allowed, err, sizeof(err)) < 0)
				break;
			if (!allowed)
				usleep(1000);
		}
		if (allowed)
			(void)bench_samples_add(&s, bench_now_ns() - t0);
		else
			lost++;
	}
	ldap_unbind_ext_s(ld, NULL, NULL);
	bench_stats_compute(&s, &st);
	printf("   first sight of a new user (%zu of %d, cache_ttl 10m): p50 %.1f ms, max %.1f ms"
	       "%s\n", s.n, NEW_USERS, st.p50_us / 1000, st.max_us / 1000,
	       lost ? " (some never got in!)" : "");
	bench_samples_free(&s);
}

int main(int argc, char **argv)
{
	struct cfg c = { .users = 10000, .groups = 1000, .duration_s = 3, .levels = { 1, 8 },
			 .n_levels = 2, .slapd = "/usr/sbin/slapd", .slapadd = "/usr/sbin/slapadd" };
	struct env e = { 0 };
	struct churn ch = { 0 };
	pthread_t churn_thread;
	double yaml_rate[BENCH_MAX_LEVELS] = { 0 }, warm_rate[BENCH_MAX_LEVELS] = { 0 };
	double t_yaml = 0, t_dir = 0;
	char err[512];
	int ret = 1;

	if (parse_args(argc, argv, &c) < 0)
		return 2;
	if (!c.broker[0] && bench_default_broker(c.broker, sizeof(c.broker)) < 0)
		strcpy(c.broker, "./sbx-brokerd");
	if (access(c.slapd, X_OK) < 0 || access(c.slapadd, X_OK) < 0) {
		fprintf(stderr, "bench_directory: needs slapd and slapadd (apt-get install slapd)\n");
		return 1;
	}
	if (bench_catch_signals() < 0 || bench_broker_prepare(&e.b, "sbx-bench-dir", err,
							       sizeof(err)) < 0) {
		fprintf(stderr, "bench_directory: %s\n", err);
		return 1;
	}
	bench_print_machine(stdout, e.b.dir);
	printf("settings: %lu directory users (manager DNs), %lu groups (%lu members each, half "
	       "groupOfNames, half posixGroup), %.1f s per level\n", c.users, c.groups,
	       per_group(&c), c.duration_s);
	printf("target:   warm throughput >= %.0f%% of yaml (issue 5)\n", TARGET_RATIO * 100);
	if (slapd_up(&c, &e, err, sizeof(err)) < 0) {
		fprintf(stderr, "bench_directory: %s\n", err);
		goto out;
	}

	if (write_yaml_policy(&c, e.b.config) < 0 || start_broker(&c, &e, "yaml", &t_yaml) < 0)
		goto out;
	for (size_t i = 0; i < c.n_levels; i++)
		yaml_rate[i] = measure(&c, &e, "yaml", c.levels[i]);
	bench_broker_stop(&e.b);

	if (write_dir_policy(&c, &e, e.b.config, "10m") < 0 ||
	    start_broker(&c, &e, "warm", &t_dir) < 0)
		goto out;
	printf("   start-up to first answer: yaml %.2f s, directory %.2f s (first read and merge "
	       "included)\n", t_yaml, t_dir);
	for (size_t i = 0; i < c.n_levels; i++)
		warm_rate[i] = measure(&c, &e, "warm", c.levels[i]);
	for (size_t i = 0; i < c.n_levels; i++)
		printf("   warm / yaml at %u client%s: %.0f%% (target >= %.0f%%)\n", c.levels[i],
		       c.levels[i] == 1 ? "" : "s",
		       yaml_rate[i] > 0 ? 100 * warm_rate[i] / yaml_rate[i] : 0, TARGET_RATIO * 100);
	first_sight(&c, &e);
	bench_broker_stop(&e.b);

	if (write_dir_policy(&c, &e, e.b.config, "1s") < 0 ||
	    start_broker(&c, &e, "refresh", &t_dir) < 0)
		goto out;
	for (size_t i = 0; i < c.n_levels; i++)
		measure(&c, &e, "refreshing", c.levels[i]);
	ch.uri = e.uri;
	atomic_init(&ch.stop, false);
	if (pthread_create(&churn_thread, NULL, churn_main, &ch) == 0) {
		for (size_t i = 0; i < c.n_levels; i++)
			measure(&c, &e, "changing", c.levels[i]);
		atomic_store(&ch.stop, true);
		pthread_join(churn_thread, NULL);
		printf("   (%lu directory changes during the changing runs, each merged on the event "
		       "loop)\n", ch.changes);
	}
	bench_broker_stop(&e.b);
	ret = 0;
out:
	bench_broker_stop(&e.b);
	slapd_down(&e);
	bench_broker_cleanup(&e.b, ret != 0);
	return ret;
}
