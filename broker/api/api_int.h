/*
 * What the API's files share (not part of the broker's public face).
 */
#ifndef SBX_API_INT_H
#define SBX_API_INT_H

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "sbx_proto.h"

/* A reply frame as JSON: its fields by name (api_json.c), *status its
 * STATUS.  NULL when out of memory. */
json_t *sbx_api_reply_json(const uint8_t *frame, size_t n, uint32_t *status);

/* An error's body, the same on every route and the dashboard's:
 * {"code": a stable word, "message": fmt with ap}.  NULL when out of
 * memory. */
json_t *sbx_api_error_json(const char *code, const char *fmt, va_list ap);

/* ---- GET /v1/audit (api_audit.c) ---- */

#include <microhttpd.h>
#include <stdbool.h>

struct sbx_api_audit_query {
	char user[SBX_NAME_MAX + 1];  /* "user" or "actor" is it; "" any */
	char role[SBX_NAME_MAX + 1];
	char event[64];               /* exact, or a prefix "request." / "request.*" */
	bool has_id;
	uint32_t id;
	int64_t since_us, until_us;   /* 0: open */
	uint64_t max_seq;             /* records up to this seq (durable ones); 0: all */
	enum sbx_api_audit_format {
		SBX_API_AUDIT_JSONL,  /* the journal's lines, one a line */
		SBX_API_AUDIT_JSON,   /* the same lines as one JSON array */
		SBX_API_AUDIT_CSV,    /* RFC 4180 (journal/record_csv.h), as audit export */
	} format;
};

bool sbx_api_audit_match(const json_t *rec, const struct sbx_api_audit_query *q);

/* A response to conn streaming the records of the journal under
 * state_dir that match q, in q->format.  ep: the API's epoll set, which
 * watches the stream's fd (data.ptr: the stream) while the connection
 * waits, suspended, for more.  NULL with why when no stream can start
 * now. */
struct MHD_Response *sbx_api_audit_stream(const char *state_dir,
					  const struct sbx_api_audit_query *q, int ep,
					  struct MHD_Connection *conn, char *why, size_t whylen);
/* The stream's fd became readable: wake its connection. */
void sbx_api_audit_ready(void *stream);
/* Before MHD stops: wake every sleeping stream. */
void sbx_api_audit_resume_all(void);

/* ---- GET /v1/stats (api_stats.c) ---- */

struct sbx_broker;

/* Per UTC day of the last ?days=N, grants activated per role and refused
 * logins, counted from the journal on a thread; see_all for admins and
 * the audit scope, else only owner's records.  ep: the API's epoll set.
 * The answer (or refusal) is queued on conn. */
enum MHD_Result sbx_api_stats_serve(struct sbx_broker *b, int ep, struct MHD_Connection *conn,
				    const char *owner, bool see_all);
/* The data.ptr of the counting threads' wake-up in the API's epoll set
 * ep; when it is readable, sbx_api_stats_ready resumes the answers that
 * are ready. */
void *sbx_api_stats_tag(void);
void sbx_api_stats_ready(void);
/* Before MHD stops: wake every waiting answer (it ends). */
void sbx_api_stats_stop(void);

#endif
