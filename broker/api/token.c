/*
 * The token table and the pure parts of a token: its text, its scopes,
 * its salted hash.  See token.h.
 */
#include "config.h"

#include "token.h"

#include "text.h"
#include "timeutil.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sbx_tokens {
	struct sbx_token *v;
	size_t n, cap;
};

static const char *const scope_names[] = { "read", "request", "approve", "audit" };
#define N_SCOPES (sizeof(scope_names) / sizeof(scope_names[0]))

struct sbx_tokens *sbx_tokens_new(void)
{
	return calloc(1, sizeof(struct sbx_tokens));
}

void sbx_tokens_free(struct sbx_tokens *t)
{
	if (!t)
		return;
	/* The hashes are not secrets, but nothing of a token lingers. */
	if (t->v)
		OPENSSL_cleanse(t->v, t->cap * sizeof(*t->v));
	free(t->v);
	free(t);
}

void sbx_tokens_clear(struct sbx_tokens *t)
{
	t->n = 0;
}

int sbx_token_scopes_parse(const char *text, unsigned *scopes, char *why, size_t whylen)
{
	const char *p = text;

	*scopes = 0;
	while (*p) {
		size_t len = strcspn(p, ",");
		unsigned bit = 0;

		for (size_t i = 0; i < N_SCOPES; i++)
			if (strlen(scope_names[i]) == len && strncmp(p, scope_names[i], len) == 0)
				bit = 1u << i;
		if (!bit)
			return sbx_whyf(why, whylen, -1, "unknown scope '%.*s': the scopes are read, "
					"request, approve and audit", (int)(len > 32 ? 32 : len), p);
		*scopes |= bit;
		p += len;
		if (*p == ',')
			p++;
	}
	if (!*scopes)
		return sbx_whyf(why, whylen, -1, "no scope given: the scopes are read, request, "
				"approve and audit");
	return 0;
}

const char *sbx_token_scopes_text(unsigned scopes, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < N_SCOPES; i++) {
		if (!(scopes & (1u << i)))
			continue;
		off += (size_t)snprintf(buf + off, off < len ? len - off : 0, "%s%s",
					off ? "," : "", scope_names[i]);
	}
	return buf;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

void sbx_token_hex(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hex_decode(const char *in, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int sbx_token_parse(const char *text, char id[SBX_TOKEN_ID_HEX + 1],
		    uint8_t secret[SBX_TOKEN_SECRET_BYTES])
{
	const char *p;

	if (!text || strlen(text) != SBX_TOKEN_TEXT_LEN || strncmp(text, SBX_TOKEN_PREFIX, 5) != 0)
		return -1;
	p = text + 5;
	for (size_t i = 0; i < SBX_TOKEN_ID_HEX; i++)
		if (hexval(p[i]) < 0)
			return -1;
	if (p[SBX_TOKEN_ID_HEX] != '_')
		return -1;
	if (hex_decode(p + SBX_TOKEN_ID_HEX + 1, SBX_TOKEN_SECRET_BYTES, secret) < 0)
		return -1;
	memcpy(id, p, SBX_TOKEN_ID_HEX);
	id[SBX_TOKEN_ID_HEX] = '\0';
	return 0;
}

void sbx_token_format(const char *id, const uint8_t secret[SBX_TOKEN_SECRET_BYTES], char *buf)
{
	memcpy(buf, SBX_TOKEN_PREFIX, 5);
	memcpy(buf + 5, id, SBX_TOKEN_ID_HEX);
	buf[5 + SBX_TOKEN_ID_HEX] = '_';
	sbx_token_hex(secret, SBX_TOKEN_SECRET_BYTES, buf + 5 + SBX_TOKEN_ID_HEX + 1);
}

void sbx_token_hash(const uint8_t salt[SBX_TOKEN_SALT_BYTES],
		    const uint8_t secret[SBX_TOKEN_SECRET_BYTES], uint8_t out[32])
{
	uint8_t buf[SBX_TOKEN_SALT_BYTES + SBX_TOKEN_SECRET_BYTES];

	memcpy(buf, salt, SBX_TOKEN_SALT_BYTES);
	memcpy(buf + SBX_TOKEN_SALT_BYTES, secret, SBX_TOKEN_SECRET_BYTES);
	SHA256(buf, sizeof(buf), out);
	OPENSSL_cleanse(buf, sizeof(buf));
}

bool sbx_token_matches(const struct sbx_token *t, const uint8_t secret[SBX_TOKEN_SECRET_BYTES])
{
	uint8_t h[32];
	bool ok;

	sbx_token_hash(t->salt, secret, h);
	/* Constant time: a timing difference must not tell how much of a
	 * guess was right. */
	ok = CRYPTO_memcmp(h, t->hash, sizeof(h)) == 0;
	OPENSSL_cleanse(h, sizeof(h));
	return ok;
}

int sbx_token_mint(struct sbx_token *t, uint8_t secret[SBX_TOKEN_SECRET_BYTES])
{
	uint8_t id[SBX_TOKEN_ID_HEX / 2];

	if (RAND_bytes(id, sizeof(id)) != 1 || RAND_bytes(t->salt, sizeof(t->salt)) != 1 ||
	    RAND_bytes(secret, SBX_TOKEN_SECRET_BYTES) != 1)
		return -1;
	sbx_token_hex(id, sizeof(id), t->id);
	sbx_token_hash(t->salt, secret, t->hash);
	return 0;
}

/* ---- the table ------------------------------------------------------------- */

struct sbx_token *sbx_tokens_by_id(struct sbx_tokens *t, const char *id)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].id, id) == 0)
			return &t->v[i];
	return NULL;
}

struct sbx_token *sbx_tokens_by_name(struct sbx_tokens *t, const char *owner, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].live && strcmp(t->v[i].owner, owner) == 0 &&
		    strcmp(t->v[i].name, name) == 0)
			return &t->v[i];
	return NULL;
}

size_t sbx_tokens_count_live(const struct sbx_tokens *t, const char *owner)
{
	size_t n = 0;

	for (size_t i = 0; i < t->n; i++)
		n += t->v[i].live && strcmp(t->v[i].owner, owner) == 0;
	return n;
}

size_t sbx_tokens_size(const struct sbx_tokens *t)
{
	return t->n;
}

struct sbx_token *sbx_tokens_at(struct sbx_tokens *t, size_t i)
{
	return i < t->n ? &t->v[i] : NULL;
}

static json_t *time_text(int64_t secs)
{
	char buf[SBX_RFC3339_LEN];

	sbx_format_rfc3339(secs, buf);
	return json_string(buf);
}

static int64_t time_of(const json_t *v)
{
	int64_t us;

	if (json_is_integer(v))
		return (int64_t)json_integer_value(v);
	if (!json_is_string(v) || sbx_parse_rfc3339_us(json_string_value(v), &us) < 0)
		return 0;
	return us / 1000000;
}

json_t *sbx_token_fields(const struct sbx_token *t)
{
	char scopes[64];

	return json_pack("{s:s, s:s, s:s, s:s, s:o}", "token_id", t->id, "token", t->name,
			 "owner", t->owner, "scopes", sbx_token_scopes_text(t->scopes, scopes,
									    sizeof(scopes)),
			 "expires_at", time_text(t->expires_at));
}

/* A token from a token.created record or a snapshot entry.  0, or -1
 * when it does not make sense (skipped). */
static int token_from_json(const json_t *o, struct sbx_token *tok)
{
	const char *id = json_string_value(json_object_get(o, "token_id"));
	const char *name = json_string_value(json_object_get(o, "token"));
	const char *owner = json_string_value(json_object_get(o, "owner"));
	const char *scopes = json_string_value(json_object_get(o, "scopes"));
	const char *salt = json_string_value(json_object_get(o, "secret_salt"));
	const char *hash = json_string_value(json_object_get(o, "secret_hash"));
	char why[128];

	memset(tok, 0, sizeof(*tok));
	if (!id || strlen(id) != SBX_TOKEN_ID_HEX || !name || strlen(name) > SBX_NAME_MAX ||
	    !owner || strlen(owner) > SBX_NAME_MAX || !scopes || !salt ||
	    strlen(salt) != 2 * SBX_TOKEN_SALT_BYTES || !hash || strlen(hash) != 64)
		return -1;
	if (sbx_token_scopes_parse(scopes, &tok->scopes, why, sizeof(why)) < 0 ||
	    hex_decode(salt, SBX_TOKEN_SALT_BYTES, tok->salt) < 0 ||
	    hex_decode(hash, 32, tok->hash) < 0)
		return -1;
	snprintf(tok->id, sizeof(tok->id), "%s", id);
	snprintf(tok->name, sizeof(tok->name), "%s", name);
	snprintf(tok->owner, sizeof(tok->owner), "%s", owner);
	tok->expires_at = time_of(json_object_get(o, "expires_at"));
	tok->created_at = time_of(json_object_get(o, "created_at"));
	if (!tok->created_at)
		tok->created_at = time_of(json_object_get(o, "time"));
	tok->live = !json_is_false(json_object_get(o, "live"));
	return 0;
}

static json_t *token_to_json(const struct sbx_token *t)
{
	char salt[2 * SBX_TOKEN_SALT_BYTES + 1], hash[65];
	json_t *o = sbx_token_fields(t);

	sbx_token_hex(t->salt, sizeof(t->salt), salt);
	sbx_token_hex(t->hash, sizeof(t->hash), hash);
	json_t *more = json_pack("{s:s, s:s, s:o, s:b}", "secret_salt", salt, "secret_hash", hash, "created_at",
				 time_text(t->created_at), "live", t->live);

	if (!o || !more || json_object_update(o, more) < 0) {
		json_decref(o);
		o = NULL;
	}
	json_decref(more);
	return o;
}

static int add(struct sbx_tokens *t, const struct sbx_token *tok)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct sbx_token *v = realloc(t->v, cap * sizeof(*v));

		if (!v)
			return -1;
		t->v = v;
		t->cap = cap;
	}
	t->v[t->n++] = *tok;
	return 0;
}

void sbx_tokens_apply(struct sbx_tokens *t, const json_t *rec)
{
	const char *event = json_string_value(json_object_get(rec, "event"));
	struct sbx_token tok, *have;

	if (!t || !event || strncmp(event, "token.", 6) != 0)
		return;
	if (strcmp(event, "token.created") == 0) {
		if (token_from_json(rec, &tok) == 0 && !sbx_tokens_by_id(t, tok.id))
			(void)add(t, &tok);
		return;
	}
	have = sbx_tokens_by_id(t, json_string_value(json_object_get(rec, "token_id")) ?: "");
	if (!have)
		return;
	if (strcmp(event, "token.used") == 0)
		/* After a restart too, token.used waits its hour. */
		have->used_recorded = time_of(json_object_get(rec, "time"));
	else if (strcmp(event, "token.revoked") == 0 || strcmp(event, "token.expired") == 0)
		have->live = false;
}

json_t *sbx_tokens_save(const struct sbx_tokens *t)
{
	json_t *a = json_array();

	if (!a)
		return NULL;
	for (size_t i = 0; i < t->n; i++) {
		/* Ended tokens are history: the journal keeps them. */
		if (t->v[i].live && json_array_append_new(a, token_to_json(&t->v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

int sbx_tokens_load(struct sbx_tokens *t, const json_t *saved)
{
	size_t i;
	json_t *v;

	t->n = 0;
	if (!json_is_array(saved))
		return -1;
	json_array_foreach(saved, i, v) {
		struct sbx_token tok;

		if (token_from_json(v, &tok) == 0 && add(t, &tok) < 0)
			return -1;
	}
	return 0;
}
