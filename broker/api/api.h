/*
 * The HTTP API (docs/api.md, docs/openapi.yaml): JSON under /v1/ on the
 * address of the policy's api: section, authenticated by personal tokens
 * (token.h).  A call is parsed and authenticated here, then turned into
 * the very op a CLI would send and run through sbx_broker_handle
 * (dispatch.h): the same op table, the same handlers, the same
 * sbx_broker_* decisions, so no rule exists twice.  A reply that
 * acknowledges a change is held until its record is durable, as on the
 * socket.  Every record an API call causes carries "via":"api" and the
 * token's name and id (struct sbx_broker's record_extra).
 *
 * libmicrohttpd runs in external-epoll mode on the broker's loop, with
 * the protections of broker/httpguard.h (a deadline per connection, a
 * cap per address) and a rate limit per token.
 */
#ifndef SBX_API_H
#define SBX_API_H

#include <stdbool.h>
#include <stdint.h>

#include "broker.h"

/* The policy group whose members may hold the audit scope (besides
 * admins). */
#define SBX_API_AUDITORS "auditors"

/* Before the journal is replayed: b->tokens.  0 or -ENOMEM. */
int sbx_api_new(struct sbx_broker *b);
/* After replay: with an api: section, open the listener.  0, or -1
 * after logging why the broker must not start. */
int sbx_api_start(struct sbx_broker *b);
void sbx_api_free(struct sbx_broker *b);

/* The fd the loop watches (-1 without an api: section), and what to do
 * when it is readable. */
int sbx_api_fd(const struct sbx_broker *b);
void sbx_api_on_ready(struct sbx_broker *b);
/* Every loop pass: tokens that expired, replies whose records are
 * durable, long polls whose request changed or whose wait is over. */
void sbx_api_tick(struct sbx_broker *b);



/* Records: token.* change the table (live and replay). */
void sbx_api_on_record(struct sbx_broker *b, const json_t *rec);

/* May owner hold and use tokens?  Only a person the policy (with the
 * directory's people merged in) or the host's accounts know: a token of
 * someone who left the directory stops working at its next refresh. */
bool sbx_api_owner_known(const struct sbx_broker *b, const char *owner);

/* ops_token.c */
/* The longest a token of person may live: the smallest api_token_max of
 * the compliance profiles of the roles person belongs to, else
 * SBX_TOKEN_DEFAULT_MAX. */
int64_t sbx_api_token_max(const struct sbx_policy *p, const char *person);
/* May person hold the audit scope? */
bool sbx_api_may_audit(const struct sbx_broker *b, const char *person, bool admin);
/* Record token.expired for the live tokens whose time is up. */
void sbx_api_tokens_expire(struct sbx_broker *b, int64_t now);

#endif
