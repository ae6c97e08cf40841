/*
 * Personal API tokens (docs/api.md): a secret a person makes for a
 * pipeline, with which it acts as that person (never more) within the
 * token's scopes, until it expires or is revoked.
 *
 * The secret is shown once, when it is made; the broker keeps only a
 * salted SHA-256 of it, in the journal like everything else
 * (token.created, token.used at most once an hour per token,
 * token.revoked, token.expired; docs/audit.md).  The table here is
 * rebuilt from those records at start-up and kept in snapshots.
 *
 * A token's text is "sbxt_" + 16 hex digits (its public id) + "_" + 64
 * hex digits (the secret).  The id finds the entry; the secret is then
 * checked against the salted hash in constant time.
 *
 * The event-loop thread owns the table.
 */
#ifndef SBX_API_TOKEN_H
#define SBX_API_TOKEN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sbx_proto.h"

#define SBX_TOKEN_PREFIX "sbxt_"
#define SBX_TOKEN_ID_HEX 16
#define SBX_TOKEN_SECRET_BYTES 32
#define SBX_TOKEN_SALT_BYTES 16
/* "sbxt_" id "_" secret */
#define SBX_TOKEN_TEXT_LEN (5 + SBX_TOKEN_ID_HEX + 1 + 2 * SBX_TOKEN_SECRET_BYTES)
/* A person holds at most this many live tokens. */
#define SBX_TOKENS_PER_USER 16
/* Without a compliance profile's api_token_max, the longest a token lives. */
#define SBX_TOKEN_DEFAULT_MAX (90 * 86400)
/* token.used is recorded at most this often per token (seconds). */
#define SBX_TOKEN_USED_EVERY 3600

enum sbx_token_scope {
	SBX_SCOPE_READ = 1u << 0,    /* own requests, check, roles, policy explain */
	SBX_SCOPE_REQUEST = 1u << 1, /* file, cancel, drop, extend own requests */
	SBX_SCOPE_APPROVE = 1u << 2, /* decide as the owner, where the owner is an approver */
	SBX_SCOPE_AUDIT = 1u << 3,   /* journal query/export: admins and auditors only */
};
#define SBX_SCOPE_ALL 0xfu

struct sbx_token {
	char id[SBX_TOKEN_ID_HEX + 1];
	char name[SBX_NAME_MAX + 1];
	char owner[SBX_NAME_MAX + 1];
	unsigned scopes;
	int64_t created_at, expires_at;
	uint8_t salt[SBX_TOKEN_SALT_BYTES];
	uint8_t hash[32];
	bool live;                /* neither revoked nor expired */
	int64_t used_recorded;    /* when token.used was last recorded (not kept) */
	/* the per-token rate limit: a token bucket (not kept) */
	double bucket;
	int64_t bucket_at_ms;
};

struct sbx_tokens;

struct sbx_tokens *sbx_tokens_new(void);
void sbx_tokens_free(struct sbx_tokens *t);

/* ---- pure helpers (tests/unit/test_tokens.c) ----------------------------- */

/* "read,request" -> bits; "" is refused.  0, or -1 with why. */
int sbx_token_scopes_parse(const char *text, unsigned *scopes, char *why, size_t whylen);
/* The bits as "read,request,..." into buf. */
const char *sbx_token_scopes_text(unsigned scopes, char *buf, size_t len);
/* Split a token's text into its id and secret.  0, or -1 when it is not
 * one (wrong length, prefix or digits). */
int sbx_token_parse(const char *text, char id[SBX_TOKEN_ID_HEX + 1],
		    uint8_t secret[SBX_TOKEN_SECRET_BYTES]);
/* The text of a token from its id and secret (buf: SBX_TOKEN_TEXT_LEN + 1). */
void sbx_token_format(const char *id, const uint8_t secret[SBX_TOKEN_SECRET_BYTES], char *buf);
/* n bytes as 2n lowercase hex digits and a NUL into out. */
void sbx_token_hex(const uint8_t *in, size_t n, char *out);
/* SHA-256(salt || secret). */
void sbx_token_hash(const uint8_t salt[SBX_TOKEN_SALT_BYTES],
		    const uint8_t secret[SBX_TOKEN_SECRET_BYTES], uint8_t out[32]);
/* Does secret match t's hash?  Constant time in the secret. */
bool sbx_token_matches(const struct sbx_token *t, const uint8_t secret[SBX_TOKEN_SECRET_BYTES]);
/* A new id, salt and secret from the system's random source, and the
 * salted hash in t.  0, or -1 when there is no randomness. */
int sbx_token_mint(struct sbx_token *t, uint8_t secret[SBX_TOKEN_SECRET_BYTES]);

/* ---- the table --------------------------------------------------------------- */

/* token.created / token.revoked / token.expired (live and replay); other
 * records are ignored. */
void sbx_tokens_apply(struct sbx_tokens *t, const json_t *rec);
/* The table for a snapshot's "ext"."tokens", and back (0, or -1). */
json_t *sbx_tokens_save(const struct sbx_tokens *t);
int sbx_tokens_load(struct sbx_tokens *t, const json_t *saved);
/* Forget everything (a snapshot given up halfway). */
void sbx_tokens_clear(struct sbx_tokens *t);

struct sbx_token *sbx_tokens_by_id(struct sbx_tokens *t, const char *id);
/* owner's live token called name, or NULL. */
struct sbx_token *sbx_tokens_by_name(struct sbx_tokens *t, const char *owner, const char *name);
/* How many live tokens owner has. */
size_t sbx_tokens_count_live(const struct sbx_tokens *t, const char *owner);
/* The i-th token (0 <= i < sbx_tokens_size), live or not. */
size_t sbx_tokens_size(const struct sbx_tokens *t);
struct sbx_token *sbx_tokens_at(struct sbx_tokens *t, size_t i);
/* A record's fields describing t (id, name, owner, scopes, expires_at). */
json_t *sbx_token_fields(const struct sbx_token *t);

#endif
