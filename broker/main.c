#include "config.h"

#include "broker.h"
#include "log.h"
#include "notify.h"
#include "server.h"
#include "text.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SBX_DEFAULT_CONFIG
#define SBX_DEFAULT_CONFIG "/etc/sbx/policy.yaml"
#endif

static const char usage_text[] =
	"Usage: sbx-brokerd [--config FILE] [--foreground] [--check]\n"
	"                   [--socket PATH] [--state-dir DIR] [--host NAME] [--debug]\n"
	"\n"
	"sbx-brokerd is the one daemon that decides who may log in to this sandbox\n"
	"host and who holds which time-limited grant.  It reads the RBAC policy\n"
	"(YAML), answers pam_sbx, libnss_sbx, sbx-request and sbxctl over a Unix\n"
	"socket, ends grants at their expiry, and writes every decision to a\n"
	"hash-chained journal under broker.state_dir before acknowledging it.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE     policy file (default " SBX_DEFAULT_CONFIG ")\n"
	"  -f, --foreground      stay in the foreground and log to stderr\n"
	"                        (default: detach once ready, log to syslog)\n"
	"      --check           validate the policy file, print a summary, exit\n"
	"      --socket PATH     listen here instead of broker.socket\n"
	"      --state-dir DIR   keep the journal here instead of broker.state_dir\n"
	"      --host NAME       decide for host NAME instead of broker.host (the\n"
	"                        name roles' hosts patterns are matched against;\n"
	"                        in a fleet, how this broker is known to the others)\n"
	"  -d, --debug           log debug messages\n"
	"  -h, --help            show this help\n"
	"  -V, --version         show the version\n"
	"\n"
	"Signals:\n"
	"  SIGHUP    reload the policy; a file with errors keeps the old policy\n"
	"            and the journal records policy.rejected with the reasons\n"
	"  SIGTERM   stop cleanly (SIGINT too)\n"
	"  SIGUSR1   write a snapshot now (in a child process; the broker goes on)\n"
	"\n"
	"Exit status:\n"
	"  0  stopped cleanly, or --check found the policy valid\n"
	"  1  could not start (journal broken or locked, socket in use, ...)\n"
	"  2  usage error or invalid policy\n"
	"\n"
	"Files:\n"
	"  STATE_DIR/journal/*.jsonl   the journal (see docs/audit.md)\n"
	"  STATE_DIR/snapshot.json     state as of a journal seq, for fast start-up\n"
	"\n"
	"See also: sbxctl(8), sbx-request(1), sbx-policy(5), pam_sbx(8), libnss_sbx(8).\n";

struct options {
	const char *config;
	const char *socket;
	const char *state_dir;
	const char *host;
	bool foreground;
	bool check;
	bool debug;
};

static int parse_options(int argc, char **argv, struct options *o)
{
	enum { OPT_CHECK = 256, OPT_SOCKET, OPT_STATE_DIR, OPT_HOST };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "socket", required_argument, NULL, OPT_SOCKET },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	o->config = SBX_DEFAULT_CONFIG;
	while ((c = getopt_long(argc, argv, "c:fdhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c': o->config = optarg; break;
		case 'f': o->foreground = true; break;
		case 'd': o->debug = true; break;
		case OPT_CHECK: o->check = true; break;
		case OPT_SOCKET: o->socket = optarg; break;
		case OPT_STATE_DIR: o->state_dir = optarg; break;
		case OPT_HOST: o->host = optarg; break;
		case 'h': fputs(usage_text, stdout); exit(0);
		case 'V': printf("sbx-brokerd %s\n", PACKAGE_VERSION); exit(0);
		default:
			fprintf(stderr, "Try 'sbx-brokerd --help'.\n");
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sbx-brokerd: unexpected argument '%s'\nTry 'sbx-brokerd --help'.\n",
			argv[optind]);
		return -1;
	}
	return 0;
}

static int override(char **setting, const char *value)
{
	char *copy;

	if (!value)
		return 0;
	if (value[0] != '/') {
		fprintf(stderr, "sbx-brokerd: %s: must be an absolute path\n", value);
		return -1;
	}
	copy = strdup(value);
	if (!copy)
		return -1;
	free(*setting);
	*setting = copy;
	return 0;
}

static struct sbx_policy *load_policy(const struct options *o, struct sbx_broker *b)
{
	struct sbx_policy_errors errs = { 0 };
	struct sbx_policy *p = NULL;

	if (sbx_policy_load_file(o->config, &p, &b->settings, &errs) < 0) {
		sbx_policy_errors_print(stderr, &errs);
		fprintf(stderr, "sbx-brokerd: %s: %zu error%s; not starting\n", o->config, errs.n,
			errs.n == 1 ? "" : "s");
		sbx_policy_errors_free(&errs);
		return NULL;
	}
	sbx_policy_errors_free(&errs);
	b->file_socket = strdup(p->broker.socket);
	b->file_state_dir = strdup(p->broker.state_dir);
	if (override(&p->broker.socket, o->socket) < 0 ||
	    override(&p->broker.state_dir, o->state_dir) < 0) {
		sbx_policy_free(p);
		return NULL;
	}
	if (o->host) {
		if (!sbx_name_valid(o->host) || sbx_policy_set_host(p, o->host) < 0 ||
		    !(b->host_override = strdup(o->host))) {
			fprintf(stderr, "sbx-brokerd: --host %s: not a usable host name\n", o->host);
			sbx_policy_free(p);
			return NULL;
		}
	}
	return p;
}

/* What the policy will not do that its author probably meant (policy.h):
 * printed by --check, logged at start, never fatal. */
static void policy_warnings(const struct sbx_policy *p, bool check)
{
	struct sbx_policy_errors w = { 0 };
	FILE *groups = fopen("/etc/group", "re");

	if (sbx_policy_warnings(p, groups, &w) < 0)
		sbx_warn("cannot check the policy for warnings: out of memory");
	if (groups)
		fclose(groups);
	if (check)
		sbx_policy_warnings_print(stderr, &w);
	else
		for (size_t i = 0; i < w.n; i++)
			sbx_warn("%s: %s", w.file, w.v[i].msg);
	sbx_policy_errors_free(&w);
}

/* Tell systemd (Type=notify) where the broker is; never fatal: a broker
 * started by hand has nobody to tell. */
static void notify(const char *state)
{
	int rc = sbx_notify(state);

	if (rc < 0)
		sbx_warn("cannot notify the service manager (NOTIFY_SOCKET): %s", strerror(-rc));
}

/* Only now: systemd starts ssh.service and sudo.service (ordered after
 * the broker) once READY=1 arrives, and their first login asks. */
static void notify_ready(const struct sbx_policy *p)
{
	char state[512];

	snprintf(state, sizeof(state), "READY=1\nSTATUS=ready: host %s, socket %s",
		 p->broker.host, p->broker.socket);
	notify(state);
}

/* Detach, keeping a pipe to the parent so it exits only once the child is
 * ready (or says why it is not): scripts can start the broker and use it
 * on the next line. */
static int daemonize(int *ready_fd)
{
	int fds[2];
	pid_t pid;
	char status = 1;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		close(fds[1]);
		if (read(fds[0], &status, 1) != 1)
			status = 1;
		_exit(status);
	}
	close(fds[0]);
	setsid();
	*ready_fd = fds[1];
	return 0;
}

static void signal_ready(int *ready_fd, char status)
{
	int devnull;

	if (*ready_fd < 0)
		return;
	if (write(*ready_fd, &status, 1) != 1)
		sbx_warn("could not tell the parent process we are ready");
	close(*ready_fd);
	*ready_fd = -1;
	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull >= 0) {
		dup2(devnull, 0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		if (devnull > 2)
			close(devnull);
	}
}

/* Every connection is an fd: take the hard limit (systemd's default soft
 * limit, 1024, is below broker.max_connections). */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
		return;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		sbx_warn("cannot raise the open files limit: %s", strerror(errno));
}

static int block_signals(void)
{
	sigset_t mask;
	struct sigaction ign = { .sa_handler = SIG_IGN };

	/* Blocked before any thread starts, so the journal's writer thread
	 * inherits the mask and the signalfd sees every signal. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return -1;
	sigemptyset(&ign.sa_mask);
	sigaction(SIGPIPE, &ign, NULL);
	/* A file-size limit must surface as EFBIG, which the journal handles. */
	sigaction(SIGXFSZ, &ign, NULL);
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct sbx_broker b = { 0 };
	struct sbx_server_opts so = { .io_timeout_ms = 5000 };
	char err[1024];
	int ready_fd = -1, listen_fd = -1, ret = 2;

	if (parse_options(argc, argv, &o) < 0)
		return 2;
	sbx_log_init("sbx-brokerd", o.foreground || o.check ? SBX_LOG_STDERR : SBX_LOG_SYSLOG,
		     o.debug);
	b.policy = load_policy(&o, &b);
	if (!b.policy)
		goto out;
	if (o.check) {
		printf("%s: ok: %zu roles, host %s, socket %s, state dir %s, sha256 %s\n", o.config,
		       b.policy->n_roles, b.policy->broker.host, b.policy->broker.socket,
		       b.policy->broker.state_dir, b.policy->sha256_hex);
		policy_warnings(b.policy, true);
		ret = 0;
		goto out;
	}
	ret = 1;
	b.config_path = strdup(o.config);
	if (!b.config_path)
		goto out;
	umask(077);
	if (!o.foreground && daemonize(&ready_fd) < 0) {
		fprintf(stderr, "sbx-brokerd: cannot detach: %s\n", strerror(errno));
		goto out;
	}
	policy_warnings(b.policy, false);
	raise_fd_limit();
	if (block_signals() < 0) {
		sbx_err("cannot block signals: %s", strerror(errno));
		goto out;
	}
	/* The socket's directory holds the group table too: refuse an unsafe
	 * one before anything is written there. */
	if (sbx_server_socket_dir(b.policy->broker.socket, err, sizeof(err)) < 0) {
		sbx_err("%s", err);
		goto out;
	}
	if (sbx_broker_start(&b, err, sizeof(err)) < 0) {
		sbx_err("%s", err);
		goto out;
	}
	listen_fd = sbx_server_listen(b.policy->broker.socket, err, sizeof(err));
	if (listen_fd < 0) {
		sbx_err("%s", err);
		goto out;
	}
	if (sbx_journal_flush(b.journal) < 0) {
		char why[512];

		if (!sbx_journal_failed(b.journal, why, sizeof(why)))
			snprintf(why, sizeof(why), "%s", b.degraded[0] ? b.degraded : "flush failed");
		sbx_err("journal: cannot write the start-up records to %s/journal: %s; "
			"not starting (free space or fix the file system, then start again)",
			b.policy->broker.state_dir, why);
		goto out;
	}
	sbx_info("ready: host %s, socket %s, %llu journal records, %zu requests",
		 b.policy->broker.host, b.policy->broker.socket,
		 (unsigned long long)sbx_journal_last_seq(b.journal), sbx_state_count(b.state));
	signal_ready(&ready_fd, 0);
	notify_ready(b.policy);
	sbx_journal_defer_commits(b.journal, true);
	ret = sbx_server_run(&b, listen_fd, &so) == 0 ? 0 : 1;
	notify("STOPPING=1");
	sbx_broker_shutdown(&b);
	sbx_info("stopped");
out:
	if (ready_fd >= 0) {
		char status = 1;

		if (write(ready_fd, &status, 1) < 0)
			ret = 1;
		close(ready_fd);
	}
	if (listen_fd >= 0) {
		close(listen_fd);
		unlink(b.policy->broker.socket);
	}
	sbx_broker_free(&b);
	return ret;
}
