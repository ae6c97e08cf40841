#include "log.h"
#include "sbx_proto.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

void sbx_log_init(const char *ident, enum sbx_log_target target, int debug)
{
	log_ident = ident;
	log_target = target;
	log_debug = debug;
	if (target == SBX_LOG_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, LOG_AUTHPRIV);
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
	fprintf(stderr, "%s: %s: %s%s\n", log_ident, prio_name(priority), msg, more);
}
