#include "log.h"
#include "sbx_proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

void sbx_log(int priority, const char *fmt, ...)
{
	va_list ap;
	char msg[2048];

	if (priority == LOG_DEBUG && !log_debug)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_target == SBX_LOG_SYSLOG) {
		syslog(priority, "%s", msg);
		return;
	}
	fprintf(stderr, "%s: %s: %s\n", log_ident, prio_name(priority), msg);
}
