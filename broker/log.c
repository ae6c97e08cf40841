#include "log.h"
#include "sbx_proto.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Lines from one call site (one format string) beyond LOG_BURST within
 * LOG_WINDOW_MS are held back and counted: a flood of the same event
 * (refused connections, a failing disk) must not become a flood of the
 * log.  The count is said with the next line from that site. */
#define LOG_BURST 10
#define LOG_WINDOW_MS 10000
#define LOG_SITES 64

struct site {
	const char *fmt;
	int64_t window_ms;
	unsigned lines;
	unsigned held;
};

/* The loop and the directory's worker both log. */
static pthread_mutex_t sites_lock = PTHREAD_MUTEX_INITIALIZER;
static struct site sites[LOG_SITES];

/* Set once at start-up, before any thread exists; read-only afterwards.
 * Library code that lives in other processes (PAM, NSS) never calls
 * sbx_log_init and so never touches these. */
static const char *log_ident = "sbx";
static enum sbx_log_target log_target = SBX_LOG_STDERR;
static int log_debug;
static bool log_journal;

bool sbx_log_stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	int end = 0;

	/* systemd sets "DEV:INODE" of the stream it connected to stderr; a
	 * stderr redirected since (a shell, a test) is another file. */
	if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &end) != 2 || e[end] != '\0')
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

void sbx_log_init(const char *ident, enum sbx_log_target target, int debug)
{
	log_ident = ident;
	log_target = target;
	log_debug = debug;
	log_journal = target == SBX_LOG_STDERR && sbx_log_stderr_is_journal();
	if (target == SBX_LOG_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
}

bool sbx_log_is_syslog(void)
{
	return log_target == SBX_LOG_SYSLOG;
}

static const char *prio_name(int priority)
{
	switch (priority) {
	case LOG_EMERG: case LOG_ALERT: case LOG_CRIT: return "critical";
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: return "notice";
	case LOG_INFO: return "info";
	}
	return "debug";
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* May a line from fmt go out now?  *held gets how many from it were held
 * back since its last line. */
static bool site_allows(const char *fmt, unsigned *held)
{
	struct site *s = &sites[((uintptr_t)fmt >> 4) % LOG_SITES];
	int64_t now = mono_ms();
	bool ok;

	pthread_mutex_lock(&sites_lock);
	if (s->fmt != fmt || now - s->window_ms >= LOG_WINDOW_MS) {
		*held = s->fmt == fmt ? s->held : 0;
		*s = (struct site){ .fmt = fmt, .window_ms = now };
	} else {
		*held = 0;
	}
	ok = s->lines < LOG_BURST;
	if (ok)
		s->lines++;
	else
		s->held++;
	pthread_mutex_unlock(&sites_lock);
	return ok;
}

void sbx_log(int priority, const char *fmt, ...)
{
	unsigned held = 0;
	va_list ap;
	char msg[2048], more[64] = "";

	if (priority == LOG_DEBUG && !log_debug)
		return;
	if (!site_allows(fmt, &held))
		return;
	if (held)
		snprintf(more, sizeof(more), " (%u more like it held back)", held);
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_target == SBX_LOG_SYSLOG) {
		syslog(priority, "%s%s", msg, more);
		return;
	}
	/* journald reads a leading "<N>" as the line's priority (sd-daemon(3))
	 * and names the program itself; without it every line would have the
	 * unit's one level, and `journalctl -p err` would miss errors. */
	if (log_journal)
		fprintf(stderr, "<%d>%s: %s%s\n", priority, prio_name(priority), msg, more);
	else
		fprintf(stderr, "%s: %s: %s%s\n", log_ident, prio_name(priority), msg, more);
}
