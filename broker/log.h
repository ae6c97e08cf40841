/*
 * Logging for the broker and the CLIs (never linked into the PAM and NSS
 * modules, which log through their host process).  Text that came from
 * outside (user names, reasons, ticket ids) must go through sbx_sanitize()
 * (text.h) before it reaches a log line or a terminal.
 */
#ifndef SBX_LOG_H
#define SBX_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

enum sbx_log_target { SBX_LOG_STDERR, SBX_LOG_SYSLOG };

/* With SBX_LOG_STDERR, when stderr is the journal's stream (systemd's
 * JOURNAL_STREAM names it), each line starts with its priority as "<N>"
 * instead of the program's name, so journald files it at that priority. */
void sbx_log_init(const char *ident, enum sbx_log_target target, int debug);
/* Is stderr the stream JOURNAL_STREAM names (its device and inode)? */
bool sbx_log_stderr_is_journal(void);
/* Does sbx_log write to syslog (authpriv)? */
bool sbx_log_is_syslog(void);
void sbx_log(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define sbx_err(...) sbx_log(LOG_ERR, __VA_ARGS__)
#define sbx_warn(...) sbx_log(LOG_WARNING, __VA_ARGS__)
#define sbx_info(...) sbx_log(LOG_INFO, __VA_ARGS__)
#define sbx_debug(...) sbx_log(LOG_DEBUG, __VA_ARGS__)

#endif
