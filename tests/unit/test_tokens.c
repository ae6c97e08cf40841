/*
 * API tokens without a broker (broker/api/token.h): the text of a token,
 * scopes, the salted hash and its constant-time check, and the table
 * built from token.* records and from a snapshot.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "token.h"

static struct sbx_token minted(uint8_t secret[SBX_TOKEN_SECRET_BYTES])
{
	struct sbx_token t = { 0 };

	cr_assert_eq(sbx_token_mint(&t, secret), 0);
	return t;
}

Test(tokens, text_round_trip)
{
	uint8_t secret[SBX_TOKEN_SECRET_BYTES], back[SBX_TOKEN_SECRET_BYTES];
	struct sbx_token t = minted(secret);
	char text[SBX_TOKEN_TEXT_LEN + 1], id[SBX_TOKEN_ID_HEX + 1];

	sbx_token_format(t.id, secret, text);
	cr_assert_eq(strlen(text), SBX_TOKEN_TEXT_LEN);
	cr_assert_eq(strncmp(text, "sbxt_", 5), 0);
	cr_assert_eq(sbx_token_parse(text, id, back), 0);
	cr_assert_str_eq(id, t.id);
	cr_assert_eq(memcmp(back, secret, sizeof(secret)), 0);
}

Test(tokens, parse_refuses_what_is_not_a_token)
{
	uint8_t secret[SBX_TOKEN_SECRET_BYTES];
	char id[SBX_TOKEN_ID_HEX + 1];
	char good[SBX_TOKEN_TEXT_LEN + 1], bad[SBX_TOKEN_TEXT_LEN + 2];
	struct sbx_token t = minted(secret);

	sbx_token_format(t.id, secret, good);
	cr_assert_eq(sbx_token_parse(NULL, id, secret), -1);
	cr_assert_eq(sbx_token_parse("", id, secret), -1);
	cr_assert_eq(sbx_token_parse("sbxt_", id, secret), -1);
	/* one character short, one too many */
	memcpy(bad, good, SBX_TOKEN_TEXT_LEN - 1);
	bad[SBX_TOKEN_TEXT_LEN - 1] = '\0';
	cr_assert_eq(sbx_token_parse(bad, id, secret), -1);
	snprintf(bad, sizeof(bad), "%sa", good);
	cr_assert_eq(sbx_token_parse(bad, id, secret), -1);
	/* another prefix, a missing separator, upper case, a non-hex digit */
	snprintf(bad, sizeof(bad), "%s", good);
	bad[0] = 'S';
	cr_assert_eq(sbx_token_parse(bad, id, secret), -1);
	snprintf(bad, sizeof(bad), "%s", good);
	bad[5 + SBX_TOKEN_ID_HEX] = '-';
	cr_assert_eq(sbx_token_parse(bad, id, secret), -1);
	snprintf(bad, sizeof(bad), "%s", good);
	bad[SBX_TOKEN_TEXT_LEN - 1] = 'G';
	cr_assert_eq(sbx_token_parse(bad, id, secret), -1);
	snprintf(bad, sizeof(bad), "%s", good);
	bad[6] = 'x';
	cr_assert_eq(sbx_token_parse(bad, id, secret), -1);
	cr_assert_eq(sbx_token_parse(good, id, secret), 0);
}

Test(tokens, hash_is_salted_and_checked_whole)
{
	uint8_t secret[SBX_TOKEN_SECRET_BYTES];
	struct sbx_token a = minted(secret), b = a;
	uint8_t h1[32], h2[32];

	cr_assert(sbx_token_matches(&a, secret));
	/* every bit of the secret counts */
	for (size_t i = 0; i < sizeof(secret); i++) {
		secret[i] ^= 0x01;
		cr_assert_not(sbx_token_matches(&a, secret), "byte %zu", i);
		secret[i] ^= 0x01;
	}
	/* the same secret under another salt hashes differently */
	b.salt[0] ^= 0xff;
	sbx_token_hash(a.salt, secret, h1);
	sbx_token_hash(b.salt, secret, h2);
	cr_assert_neq(memcmp(h1, h2, 32), 0);
	cr_assert_eq(memcmp(h1, a.hash, 32), 0);
	cr_assert_not(sbx_token_matches(&b, secret));
}

Test(tokens, mint_gives_distinct_ids_and_secrets)
{
	uint8_t s1[SBX_TOKEN_SECRET_BYTES], s2[SBX_TOKEN_SECRET_BYTES];
	struct sbx_token a = minted(s1), b = minted(s2);

	cr_assert_str_neq(a.id, b.id);
	cr_assert_neq(memcmp(s1, s2, sizeof(s1)), 0);
	cr_assert_neq(memcmp(a.salt, b.salt, sizeof(a.salt)), 0);
	cr_assert_eq(strlen(a.id), SBX_TOKEN_ID_HEX);
}

Test(tokens, scopes)
{
	char why[200], buf[64];
	unsigned s;

	cr_assert_eq(sbx_token_scopes_parse("read,request", &s, why, sizeof(why)), 0);
	cr_assert_eq(s, SBX_SCOPE_READ | SBX_SCOPE_REQUEST);
	cr_assert_eq(sbx_token_scopes_parse("audit,approve,read,request", &s, why, sizeof(why)), 0);
	cr_assert_eq(s, SBX_SCOPE_ALL);
	cr_assert_str_eq(sbx_token_scopes_text(s, buf, sizeof(buf)), "read,request,approve,audit");
	cr_assert_str_eq(sbx_token_scopes_text(SBX_SCOPE_APPROVE, buf, sizeof(buf)), "approve");
	cr_assert_eq(sbx_token_scopes_parse("", &s, why, sizeof(why)), -1);
	cr_assert(strstr(why, "no scope"));
	cr_assert_eq(sbx_token_scopes_parse("read,admin", &s, why, sizeof(why)), -1);
	cr_assert(strstr(why, "'admin'"), "%s", why);
	cr_assert_eq(sbx_token_scopes_parse("readx", &s, why, sizeof(why)), -1);
	cr_assert_eq(sbx_token_scopes_parse("rea", &s, why, sizeof(why)), -1);
}

static json_t *created(const struct sbx_token *t)
{
	char salt[33], hash[65];
	json_t *r = sbx_token_fields(t);

	sbx_token_hex(t->salt, 16, salt);
	sbx_token_hex(t->hash, 32, hash);
	json_object_set_new(r, "event", json_string("token.created"));
	json_object_set_new(r, "time", json_string("2026-12-07T01:00:00.000000Z"));
	json_object_set_new(r, "secret_salt", json_string(salt));
	json_object_set_new(r, "secret_hash", json_string(hash));
	return r;
}

Test(tokens, table_from_records_and_snapshot)
{
	uint8_t secret[SBX_TOKEN_SECRET_BYTES];
	struct sbx_token t = minted(secret);
	struct sbx_tokens *tab = sbx_tokens_new(), *again = sbx_tokens_new();
	struct sbx_token *got;
	json_t *rec, *saved;

	snprintf(t.name, sizeof(t.name), "ci");
	snprintf(t.owner, sizeof(t.owner), "erin");
	t.scopes = SBX_SCOPE_READ;
	t.expires_at = 1900000000;
	rec = created(&t);
	sbx_tokens_apply(tab, rec);
	sbx_tokens_apply(tab, rec); /* replayed twice: still one */
	json_decref(rec);
	cr_assert_eq(sbx_tokens_size(tab), 1);
	got = sbx_tokens_by_name(tab, "erin", "ci");
	cr_assert_not_null(got);
	cr_assert(got->live);
	cr_assert_eq(got->expires_at, 1900000000);
	cr_assert(sbx_token_matches(got, secret), "the hash survives the record");
	cr_assert_null(sbx_tokens_by_name(tab, "frank", "ci"));
	cr_assert_eq(sbx_tokens_count_live(tab, "erin"), 1);

	/* a snapshot keeps live tokens whole */
	saved = sbx_tokens_save(tab);
	cr_assert_eq(sbx_tokens_load(again, saved), 0);
	json_decref(saved);
	got = sbx_tokens_by_id(again, t.id);
	cr_assert_not_null(got);
	cr_assert(sbx_token_matches(got, secret));
	cr_assert_str_eq(got->owner, "erin");

	/* revoked: no longer live, no longer listed by name, not saved */
	rec = json_pack("{s:s, s:s}", "event", "token.revoked", "token_id", t.id);
	sbx_tokens_apply(tab, rec);
	json_decref(rec);
	cr_assert_not(sbx_tokens_by_id(tab, t.id)->live);
	cr_assert_null(sbx_tokens_by_name(tab, "erin", "ci"));
	cr_assert_eq(sbx_tokens_count_live(tab, "erin"), 0);
	saved = sbx_tokens_save(tab);
	cr_assert_eq(json_array_size(saved), 0);
	json_decref(saved);

	/* a malformed record is skipped, not half taken */
	rec = json_pack("{s:s, s:s, s:s}", "event", "token.created", "token_id", "zz", "token",
			"x");
	sbx_tokens_apply(tab, rec);
	json_decref(rec);
	cr_assert_eq(sbx_tokens_size(tab), 1);
	sbx_tokens_free(tab);
	sbx_tokens_free(again);
}
