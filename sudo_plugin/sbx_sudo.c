/*
 * sbx_sudo.so: two sudo plugins in one object (sudo_plugin(5)).
 *
 *   sbx_approval  asks the broker, after sudoers said yes, whether this
 *                 command may run now (SUDO_CHECK): a command run as root
 *                 by someone whose credentials hold an sbx role's group
 *                 needs that role live now, by grant or standing.  The
 *                 broker records command.run or command.refused as it
 *                 answers, before the command starts.
 *   sbx_audit     records what the approval plugin did not see: refusals
 *                 by sudoers or other plugins, errors, and how the
 *                 command ended (command.exited).
 *
 * A thin client like pam_sbx: libc and common/ only, one round trip per
 * question with a deadline (timeout=), fds close-on-exec, nothing calls
 * exit.  sudo loads the object once per run and calls the plugins in
 * order from one thread, so the little state one run needs lives in one
 * static struct (sudo gives plugins no handle to keep it in).  The only
 * place an answer becomes sudo's result is decide().
 */
#include "config.h"

#include <sudo_plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cmdline.h"
#include "ssudo_client.h"
#include "ssudo_spool.h"
#include "text.h"

#define PLUGIN_APPROVAL "sbx_approval"

struct run {
	struct ssudo_opts opts;
	bool opts_ok;
	sudo_printf_t say;
	char tty[64];
	char cwd[1024];
	char user[SBX_NAME_MAX + 1]; /* as sudo says, for the spool and logs only */
	/* The command that was decided on, escaped. */
	char command[SBX_COMMAND_MAX + 1];
	char runas[SBX_NAME_MAX + 1];
	/* Set by the approval plugin: the broker recorded the run (seq) or
	 * the refusal already. */
	int64_t run_seq;
	bool refusal_recorded;
	bool spooled;
	/* The broker did not answer once in this run: the other callbacks
	 * do not wait for it again (sudo never waits longer than one
	 * timeout= for sbx). */
	bool unreachable;
	int64_t started_ms;
};

static struct run R;

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *find(char *const list[], const char *key)
{
	size_t n = strlen(key);

	for (size_t i = 0; list && list[i]; i++)
		if (strncmp(list[i], key, n) == 0 && list[i][n] == '=')
			return list[i] + n + 1;
	return NULL;
}

static void copy(char *dst, size_t len, const char *src)
{
	sbx_sanitize(src ? src : "", dst, len);
}

/* A line for the user, cleaned of anything a terminal would act on. */
static void tell(int type, const char *fmt, ...)
{
	char raw[1200], clean[1200];
	va_list ap;

	if (!R.say)
		return;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	sbx_sanitize(raw, clean, sizeof(clean));
	R.say(type, "sbx: %s\n", clean);
}

static void log_line(int prio, const char *fmt, ...)
{
	char raw[1200], clean[1200];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	sbx_sanitize(raw, clean, sizeof(clean));
	syslog(LOG_AUTHPRIV | prio, "sbx_sudo: %s", clean);
}

/* Both plugins' open: options and what sudo says about the run. */
static int open_common(sudo_printf_t say, char *const user_info[], char *const options[],
		       const char **errstr)
{
	static char msg[400];

	R.say = say;
	R.opts_ok = ssudo_opts_parse(&R.opts, options) == 0;
	copy(R.tty, sizeof(R.tty), find(user_info, "tty"));
	copy(R.cwd, sizeof(R.cwd), find(user_info, "cwd"));
	copy(R.user, sizeof(R.user), find(user_info, "user"));
	if (!R.opts_ok) {
		/* A typo in sudo.conf must not turn the plugin off quietly. */
		snprintf(msg, sizeof(msg), "sbx: bad option \"%s\" for sbx_sudo.so in sudo.conf "
			 "(socket=PATH timeout=MS failmode=secure|open spool=DIR)", R.opts.bad);
		*errstr = msg;
		if (say)
			say(SUDO_CONV_ERROR_MSG, "%s\n", msg);
		log_line(LOG_ERR, "%s", msg);
		return -1;
	}
	return 1;
}

/* The command as it will run: command_info's path, then run_argv after
 * its first word. */
static void describe(char *const command_info[], char *const run_argv[],
		     struct ssudo_cmd *c)
{
	const char *path = find(command_info, "command");
	const char *cwd = find(command_info, "cwd");
	const char *uid = find(command_info, "runas_uid");
	const char **argv;
	size_t n = 0;

	while (run_argv && run_argv[n])
		n++;
	argv = calloc(n + 2, sizeof(*argv));
	if (argv) {
		argv[0] = path ? path : (n ? run_argv[0] : "");
		for (size_t i = 1; i < n; i++)
			argv[i] = run_argv[i];
		sbx_cmdline_escape((char *const *)argv, R.command, sizeof(R.command), NULL);
		free(argv);
	} else if (run_argv) {
		sbx_cmdline_escape(run_argv, R.command, sizeof(R.command), NULL);
	}
	copy(R.runas, sizeof(R.runas), find(command_info, "runas_user"));
	if (cwd)
		copy(R.cwd, sizeof(R.cwd), cwd);
	c->command = R.command;
	c->runas = R.runas[0] ? R.runas : NULL;
	c->runas_root = uid && strcmp(uid, "0") == 0;
	c->cwd = R.cwd[0] ? R.cwd : NULL;
	c->tty = R.tty[0] ? R.tty : NULL;
}

/* failmode=open: the run is written down, before the command runs, for
 * a later sudo run to hand to the broker (ssudo_spool.h). */
static int spool(const char *kind, const struct ssudo_cmd *c)
{
	struct ssudo_spooled sp = { .kind = kind, .uid = getuid(), .cmd = c };

	return ssudo_spool_write(R.opts.spool, &sp);
}

/* Ctrl-C while a one-command request waits: cancel it. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
	(void)sig;
	interrupted = 1;
}

/* approve_each: the request is filed; wait (at most its wait, polling its
 * state once a second) until it is approved, then come back with it for
 * this one run; Ctrl-C or the end of the wait cancels it.  1: run it;
 * 0: refused (msg). */
static int wait_approval(const struct ssudo_answer *first, const struct ssudo_cmd *c,
			 char *msg, size_t len)
{
	struct sigaction sa, old_int;
	struct ssudo_answer a;
	uint32_t id = first->grant;
	int64_t wait = first->wait_s < 1 ? 120 : first->wait_s > 600 ? 600 : first->wait_s;
	int64_t deadline = mono_ms() + wait * 1000, left;
	sigset_t unblock, old_mask;
	int ret = 0;

	tell(SUDO_CONV_ERROR_MSG, "%s", first->message);
	tell(SUDO_CONV_ERROR_MSG, "asked: %s; waiting up to %llds for an approval (Ctrl-C "
	     "cancels)", first->approvers[0] ? first->approvers : "the role's approvers",
	     (long long)wait);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sigemptyset(&sa.sa_mask);
	interrupted = 0;
	sigaction(SIGINT, &sa, &old_int);
	sigemptyset(&unblock);
	sigaddset(&unblock, SIGINT);
	sigprocmask(SIG_UNBLOCK, &unblock, &old_mask);
	while (!interrupted && (left = deadline - mono_ms()) > 0) {
		(void)poll(NULL, 0, left < 1000 ? (int)left : 1000);
		if (interrupted)
			break;
		ssudo_status(&R.opts, id, &a);
		if (a.outcome != SSUDO_YES || strcmp(a.state, "pending") == 0)
			continue;
		if (strcmp(a.state, "active") == 0) {
			ssudo_check_approved(&R.opts, c, id, &a);
			if (a.outcome == SSUDO_YES) {
				R.run_seq = a.seq;
				tell(SUDO_CONV_ERROR_MSG, "request %u approved: running the command once",
				     id);
				ret = 1;
			} else {
				R.refusal_recorded = a.outcome == SSUDO_NO;
				snprintf(msg, len, "sbx: %s", a.message);
			}
			goto out;
		}
		if (strcmp(a.state, "lapsed") == 0)
			snprintf(msg, len, "sbx: request %u got no approval in time; the command was "
				 "not run", id);
		else
			snprintf(msg, len, "sbx: request %u was %s%s%s%s%s; the command was not run",
				 id, a.state, a.ended_by[0] ? " by " : "", a.ended_by,
				 a.end_reason[0] ? ": " : "", a.end_reason);
		goto out;
	}
	snprintf(msg, len, "sbx: request %u %s; the command was not run", id,
		 interrupted ? "cancelled at the terminal (Ctrl-C)" : "got no approval in time");
	ssudo_cancel(&R.opts, R.user, id, interrupted ? "cancelled at the terminal (Ctrl-C)"
						     : "no approval within sudo.wait", &a);
out:
	sigprocmask(SIG_SETMASK, &old_mask, NULL);
	sigaction(SIGINT, &old_int, NULL);
	return ret;
}

/* The one place an answer becomes the approval plugin's result. */
static int decide(const struct ssudo_answer *a, const struct ssudo_cmd *c, const char **errstr)
{
	static char msg[1200];
	char clean[1100];

	sbx_sanitize(a->message, clean, sizeof(clean));
	switch (a->outcome) {
	case SSUDO_YES:
		R.run_seq = a->seq;
		return 1;
	case SSUDO_NO:
		R.refusal_recorded = true;
		snprintf(msg, sizeof(msg), "sbx: %s", clean);
		tell(SUDO_CONV_ERROR_MSG, "%s", clean);
		*errstr = msg;
		return 0;
	case SSUDO_UNREACHABLE:
		R.unreachable = true;
		if (R.opts.fail_open) {
			if (spool("run", c) == 0) {
				R.spooled = true;
				tell(SUDO_CONV_ERROR_MSG, "the access broker is unreachable (%s); "
				     "letting the command run (failmode=open), recorded later", clean);
				log_line(LOG_WARNING, "%s ran %s as %s ALLOWED because failmode=open "
					 "(broker unreachable: %s)", R.user, c->command,
					 c->runas ? c->runas : "?", clean);
				return 1;
			}
			if (errno == EDQUOT)
				snprintf(msg, sizeof(msg), "sbx: the access broker is unreachable and "
					 "%s holds as many commands as it may until it is back (%d, "
					 "%d of one user's); refusing", R.opts.spool,
					 SSUDO_SPOOL_MAX_FILES, SSUDO_SPOOL_MAX_PER_USER);
			else
				snprintf(msg, sizeof(msg), "sbx: the access broker is unreachable and "
					 "the command cannot be written down in %s (%s); refusing",
					 R.opts.spool, strerror(errno));
			break;
		}
		snprintf(msg, sizeof(msg), "sbx: the access broker is unreachable (%s); refusing "
			 "the command (failmode=secure)", clean);
		break;
	case SSUDO_BAD:
		snprintf(msg, sizeof(msg), "sbx: no usable answer from the access broker (%s); "
			 "refusing the command", clean[0] ? clean : strerror(-a->err));
		break;
	case SSUDO_PENDING:
		if (wait_approval(a, c, msg, sizeof(msg)) == 1)
			return 1;
		break;
	}
	sbx_sanitize(msg, clean, sizeof(clean));
	R.say(SUDO_CONV_ERROR_MSG, "%s\n", clean);
	log_line(LOG_ERR, "%s ran %s: REFUSED: %s", R.user, c->command, msg);
	*errstr = msg;
	return 0;
}

/* ---- the approval plugin ----------------------------------------------------- */

static int approval_open(unsigned int version, sudo_conv_t conv, sudo_printf_t say,
			 char *const settings[], char *const user_info[], int submit_optind,
			 char *const submit_argv[], char *const submit_envp[],
			 char *const options[], const char **errstr)
{
	(void)version; (void)conv; (void)settings; (void)submit_optind; (void)submit_argv;
	(void)submit_envp;
	return open_common(say, user_info, options, errstr);
}

static int approval_check(char *const command_info[], char *const run_argv[],
			  char *const run_envp[], const char **errstr)
{
	struct ssudo_cmd c = { 0 };
	struct ssudo_answer a;

	(void)run_envp;
	describe(command_info, run_argv, &c);
	R.started_ms = mono_ms();
	ssudo_check(&R.opts, &c, &a);
	return decide(&a, &c, errstr);
}

static int approval_version(int verbose)
{
	(void)verbose;
	if (R.say)
		R.say(SUDO_CONV_INFO_MSG, "sbx approval plugin version %s\n", PACKAGE_VERSION);
	return 1;
}

/* ---- the audit plugin ---------------------------------------------------------- */

static int audit_open(unsigned int version, sudo_conv_t conv, sudo_printf_t say,
		      char *const settings[], char *const user_info[], int submit_optind,
		      char *const submit_argv[], char *const submit_envp[], char *const options[],
		      const char **errstr)
{
	(void)version; (void)conv; (void)settings; (void)submit_envp;
	if (submit_argv && submit_optind >= 0) {
		/* What was asked, for a refusal that comes before sudoers
		 * resolved a command (unknown runas user, no rule). */
		size_t n = 0;

		while (submit_argv[n])
			n++;
		if ((size_t)submit_optind <= n)
			sbx_cmdline_escape(submit_argv + submit_optind, R.command, sizeof(R.command),
					   NULL);
	}
	return open_common(say, user_info, options, errstr);
}

static int audit_accept(const char *plugin_name, unsigned int plugin_type,
			char *const command_info[], char *const run_argv[],
			char *const run_envp[], const char **errstr)
{
	struct ssudo_cmd c = { 0 };
	struct ssudo_answer a;

	(void)plugin_name; (void)run_envp; (void)errstr;
	/* sudo's own accept comes last, once every plugin said yes.  The run
	 * was recorded by the approval plugin, unless it is not loaded. */
	if (plugin_type != SUDO_FRONT_END || R.run_seq || R.spooled)
		return 1;
	describe(command_info, run_argv, &c);
	R.started_ms = mono_ms();
	if (R.unreachable) {
		a.outcome = SSUDO_UNREACHABLE;
		snprintf(a.message, sizeof(a.message), "the broker did not answer before");
	} else {
		ssudo_run(&R.opts, &c, &a);
	}
	if (a.outcome == SSUDO_UNREACHABLE && R.opts.fail_open && spool("run", &c) == 0) {
		R.spooled = true;
		return 1;
	}
	if (a.outcome == SSUDO_YES)
		R.run_seq = a.seq;
	else
		log_line(LOG_ERR, "%s ran %s: not recorded: %s", R.user, c.command, a.message);
	/* The audit plugin records; it does not decide (sbx_approval does). */
	return 1;
}

static void record_refusal(const char *plugin_name, const char *verdict, const char *audit_msg,
			   char *const command_info[])
{
	struct ssudo_cmd c = { 0 };
	struct ssudo_answer a;

	if (plugin_name && strcmp(plugin_name, PLUGIN_APPROVAL) == 0 && R.refusal_recorded)
		return;
	/* The command line stays what was asked (or what the approval
	 * plugin saw); command_info, when there is one, says as whom. */
	if (command_info && find(command_info, "runas_user"))
		copy(R.runas, sizeof(R.runas), find(command_info, "runas_user"));
	if (command_info && find(command_info, "cwd"))
		copy(R.cwd, sizeof(R.cwd), find(command_info, "cwd"));
	c.command = R.command;
	c.runas = R.runas[0] ? R.runas : NULL;
	c.cwd = R.cwd[0] ? R.cwd : NULL;
	c.tty = R.tty[0] ? R.tty : NULL;
	if (R.unreachable) {
		a.outcome = SSUDO_UNREACHABLE;
		snprintf(a.message, sizeof(a.message), "the broker did not answer before");
	} else {
		ssudo_refused(&R.opts, &c, plugin_name, verdict, audit_msg, &a);
		if (a.outcome == SSUDO_UNREACHABLE)
			R.unreachable = true;
	}
	if (a.outcome != SSUDO_YES) {
		if (R.opts.fail_open && a.outcome == SSUDO_UNREACHABLE) {
			struct ssudo_spooled sp = {
				.kind = "refused", .uid = getuid(), .cmd = &c, .verdict = verdict,
				.plugin = plugin_name ? plugin_name : "sudo", .reason = audit_msg,
			};

			(void)ssudo_spool_write(R.opts.spool, &sp);
		}
		log_line(LOG_ERR, "%s: %s %s: not recorded: %s", R.user, verdict, R.command,
			 a.message);
	}
}

static int audit_reject(const char *plugin_name, unsigned int plugin_type,
			const char *audit_msg, char *const command_info[], const char **errstr)
{
	(void)plugin_type; (void)errstr;
	record_refusal(plugin_name, "rejected", audit_msg, command_info);
	return 1;
}

static int audit_error(const char *plugin_name, unsigned int plugin_type,
		       const char *audit_msg, char *const command_info[], const char **errstr)
{
	(void)plugin_type; (void)errstr;
	record_refusal(plugin_name, "error", audit_msg, command_info);
	return 1;
}

static void audit_close(int status_type, int status)
{
	struct ssudo_answer a;
	char why[300] = "";
	bool has = false;
	int code = 0, sig = 0;
	int64_t elapsed = R.started_ms ? mono_ms() - R.started_ms : 0;

	if (status_type == SUDO_PLUGIN_WAIT_STATUS) {
		has = true;
		if (WIFSIGNALED(status))
			sig = WTERMSIG(status);
		else
			code = WEXITSTATUS(status);
	} else if (status_type == SUDO_PLUGIN_EXEC_ERROR) {
		snprintf(why, sizeof(why), "exec failed: %s", strerror(status));
	}
	if (R.spooled) {
		struct ssudo_cmd c = { .command = R.command, .runas = R.runas, .cwd = R.cwd,
				       .tty = R.tty };
		struct ssudo_spooled sp = {
			.kind = "exited", .uid = getuid(), .cmd = &c, .reason = why,
			.has_status = has, .status = code, .signal = sig, .elapsed_ms = elapsed,
		};

		(void)ssudo_spool_write(R.opts.spool, &sp);
	} else if (R.run_seq) {
		ssudo_exited(&R.opts, R.run_seq, has, code, sig, elapsed, why[0] ? why : NULL, &a);
		if (a.outcome != SSUDO_YES)
			log_line(LOG_ERR, "%s: the end of %s was not recorded: %s", R.user, R.command,
				 a.message);
	}
	/* The broker answered in this run: hand it what failmode=open wrote
	 * down while it was away (after the command, so it never waits). */
	if (R.opts_ok && !R.unreachable && !R.spooled && (R.run_seq || R.refusal_recorded))
		(void)ssudo_spool_flush(&R.opts);
	memset(&R, 0, sizeof(R));
}

static int audit_version(int verbose)
{
	(void)verbose;
	if (R.say)
		R.say(SUDO_CONV_INFO_MSG, "sbx audit plugin version %s\n", PACKAGE_VERSION);
	return 1;
}

/* The two symbols sbx_sudo.so exports (sbx_sudo.map). */
__attribute__((visibility("default"))) struct approval_plugin sbx_approval = {
	.type = SUDO_APPROVAL_PLUGIN,
	.version = SUDO_API_VERSION,
	.open = approval_open,
	.check = approval_check,
	.show_version = approval_version,
};

__attribute__((visibility("default"))) struct audit_plugin sbx_audit = {
	.type = SUDO_AUDIT_PLUGIN,
	.version = SUDO_API_VERSION,
	.open = audit_open,
	.close = audit_close,
	.accept = audit_accept,
	.reject = audit_reject,
	.error = audit_error,
	.show_version = audit_version,
};
