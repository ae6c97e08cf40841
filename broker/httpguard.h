/*
 * What every HTTP endpoint of the broker (Slack's callbacks, the API)
 * needs so that no peer can hold it: libmicrohttpd callbacks that cap the
 * connections of one address, give each connection a deadline (MHD's own
 * timeout is an idle timeout, which a byte every few seconds resets), cut
 * the overdue ones, and keep what peers can cause once per connection
 * (refusals, cuts, MHD's complaints) to one log line per address (or
 * message) per minute, with a count.
 *
 * Use: pass sbx_httpguard_on_accept as MHD's accept policy,
 * sbx_httpguard_on_connection as MHD_OPTION_NOTIFY_CONNECTION and
 * sbx_httpguard_mhd_log as MHD_OPTION_EXTERNAL_LOGGER, each with the
 * guard as cls; call sbx_httpguard_cut_overdue before each MHD_run and
 * sbx_httpguard_flush once a pass.  Runs on the loop thread only.
 */
#ifndef SBX_HTTPGUARD_H
#define SBX_HTTPGUARD_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <microhttpd.h>

struct sbx_httpguard;

/* label starts each log line ("slack", "api"); timeout_s: how long a
 * connection (with rearm: a request) may take; per_address: connections
 * one address may hold at once.  NULL when out of memory. */
struct sbx_httpguard *sbx_httpguard_new(const char *label, int64_t timeout_s,
					unsigned per_address);
/* Says what was counted and not said yet. */
void sbx_httpguard_free(struct sbx_httpguard *g);

enum MHD_Result sbx_httpguard_on_accept(void *cls, const struct sockaddr *sa, socklen_t salen);
void sbx_httpguard_on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
				 enum MHD_ConnectionNotificationCode toe);
void sbx_httpguard_mhd_log(void *cls, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* For keep-alive endpoints, what a connection is doing now; its deadline
 * starts again with each change. */
enum sbx_guard_state {
	SBX_GUARD_BUSY,  /* a request is coming in: cut at the deadline, and said */
	SBX_GUARD_IDLE,  /* answered, waiting for the next one: cut quietly */
	SBX_GUARD_HELD,  /* the broker, not the peer, makes it wait (a reply held
			  * for the journal, a long poll): no deadline */
};
void sbx_httpguard_rearm(struct MHD_Connection *conn, enum sbx_guard_state st);

/* Shut down the connections past their deadline (MHD sees the end on its
 * next run).  Returns how many. */
unsigned sbx_httpguard_cut_overdue(struct sbx_httpguard *g);
/* Say what was counted over intervals that ended (all: every interval). */
void sbx_httpguard_flush(struct sbx_httpguard *g, bool all);
/* The earliest deadline (monotonic ms), or INT64_MAX. */
int64_t sbx_httpguard_deadline(const struct sbx_httpguard *g);

/* A request body, gathered as MHD hands it over, capped. */
struct sbx_http_body {
	char *buf;          /* NUL-terminated; NULL until something came */
	size_t len, cap;
	bool too_big;       /* more than the cap came (or no memory): stop reading */
};
/* Does the request say (Content-Length) it is longer than max, or say it
 * in a way that is not a number? */
bool sbx_http_length_over(struct MHD_Connection *conn, size_t max);
/* Add n bytes; past max, too_big is set and nothing more is kept. */
void sbx_http_body_add(struct sbx_http_body *b, const char *data, size_t n, size_t max);
void sbx_http_body_free(struct sbx_http_body *b);

/* The peer's numeric address as text ("?" when unknown). */
const char *sbx_http_addr_text(const struct sockaddr *sa, char *buf, size_t len);
const char *sbx_http_peer(struct MHD_Connection *conn, char *buf, size_t len);

#endif
