/*
 * The token ops of the socket (sbx-request token create/list, sbxctl
 * token revoke) and the tokens' timers.  What a token may do once it
 * exists is decided in api_auth.c; this file makes and ends them.
 */
#include "config.h"

#include "api.h"
#include "token.h"

#include "dispatch.h"
#include "duration.h"
#include "text.h"
#include "timeutil.h"

#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

int64_t sbx_api_token_max(const struct sbx_policy *p, const char *person)
{
	int64_t max = 0;

	/* The strictest profile among the roles the person may hold or ask
	 * for: a token can do what they can, so it lives no longer than the
	 * strictest of those allows. */
	for (size_t i = 0; i < p->n_roles; i++) {
		const struct sbx_role *r = &p->roles[i];

		if (!r->profile || sbx_policy_membership(p, r, person, NULL) == SBX_MEMBER_NONE)
			continue;
		for (size_t j = 0; j < p->n_profiles; j++) {
			const struct sbx_profile *pf = &p->profiles[j];

			if (strcmp(pf->name, r->profile) == 0 && pf->api_token_max &&
			    (!max || pf->api_token_max < max))
				max = pf->api_token_max;
		}
	}
	return max ? max : SBX_TOKEN_DEFAULT_MAX;
}

bool sbx_api_may_audit(const struct sbx_broker *b, const char *person, bool admin)
{
	return admin || sbx_policy_in_group(b->policy, SBX_API_AUDITORS, person);
}

static void put_tokeninfo(sbx_msg *m, const struct sbx_token *t)
{
	char scopes[64];

	sbx_msg_begin_rec(m, SBX_F_TOKENINFO);
	sbx_msg_put_str(m, SBX_F_TOKEN_ID, t->id);
	sbx_msg_put_str(m, SBX_F_TOKEN_NAME, t->name);
	sbx_msg_put_str(m, SBX_F_USER, t->owner);
	sbx_msg_put_str(m, SBX_F_SCOPES, sbx_token_scopes_text(t->scopes, scopes, sizeof(scopes)));
	sbx_msg_put_i64(m, SBX_F_CREATED_AT, t->created_at);
	sbx_msg_put_i64(m, SBX_F_EXPIRES_AT, t->expires_at);
	sbx_msg_put_str(m, SBX_F_STATE, t->live ? "live" : "ended");
	sbx_msg_end_rec(m);
}

static json_t *created_fields(const struct sbx_token *t, const char *through)
{
	char salt[2 * SBX_TOKEN_SALT_BYTES + 1], hash[65];
	json_t *f = sbx_token_fields(t);

	sbx_token_hex(t->salt, SBX_TOKEN_SALT_BYTES, salt);
	sbx_token_hex(t->hash, sizeof(t->hash), hash);
	if (f) {
		json_object_set_new(f, "secret_salt", json_string(salt));
		json_object_set_new(f, "secret_hash", json_string(hash));
		sbx_rec_str(f, "through", through);
	}
	return f;
}

void sbx_op_token_create(struct sbx_broker *b, struct sbx_call *c)
{
	const char *person = c->who.person;
	uint8_t secret[SBX_TOKEN_SECRET_BYTES];
	char text[SBX_TOKEN_TEXT_LEN + 1], why[256], maxs[32];
	struct sbx_token t = { 0 };
	int64_t max = sbx_api_token_max(b->policy, person);
	const struct sbx_token *made;

	if (sbx_reply_if_degraded(b, c))
		return;
	if (!sbx_api_owner_known(b, person)) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "%s is neither a person of the policy nor an "
			       "account of this host: no token for them", person);
		return;
	}
	if (!sbx_name_valid(c->a.token_name)) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "a token needs a name (--name): letters, digits, "
			       "'.', '_' and '-'");
		return;
	}
	if (!c->a.has_duration || c->a.duration <= 0) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "a token needs a lifetime (--expires, e.g. 30d)");
		return;
	}
	sbx_duration_format(max, maxs, sizeof(maxs));
	if (c->a.duration > max) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "a token of %s may live at most %s (api_token_max "
			       "of the compliance profiles of %s's roles)", person, maxs, person);
		return;
	}
	if (sbx_token_scopes_parse(c->a.scopes[0] ? c->a.scopes : "read,request", &t.scopes, why,
				   sizeof(why)) < 0) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "%s", why);
		return;
	}
	if ((t.scopes & SBX_SCOPE_AUDIT) && !sbx_api_may_audit(b, person, c->who.admin)) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "the audit scope is for admins and members of the "
			       "policy's group %s; %s is neither", SBX_API_AUDITORS, person);
		return;
	}
	if (sbx_tokens_by_name(b->tokens, person, c->a.token_name)) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "%s already has a token named %s: revoke it first, "
			       "or choose another name", person, c->a.token_name);
		return;
	}
	if (sbx_tokens_count_live(b->tokens, person) >= SBX_TOKENS_PER_USER) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "%s holds %d tokens already (the most one person "
			       "may): revoke one first", person, SBX_TOKENS_PER_USER);
		return;
	}
	if (sbx_token_mint(&t, secret) < 0) {
		sbx_reply_fail(c, SBX_ST_INTERNAL, "no randomness for a token");
		return;
	}
	snprintf(t.name, sizeof(t.name), "%s", c->a.token_name);
	snprintf(t.owner, sizeof(t.owner), "%s", person);
	t.created_at = sbx_now();
	t.expires_at = t.created_at + c->a.duration;
	if (sbx_broker_record(b, "token.created", person, created_fields(&t, c->who.through),
			      &c->wait_seq) < 0) {
		sbx_reply_if_degraded(b, c);
		goto out;
	}
	made = sbx_tokens_by_id(b->tokens, t.id);
	if (!made) {
		sbx_reply_fail(c, SBX_ST_INTERNAL, "the token was recorded but is not in the table");
		goto out;
	}
	sbx_token_format(t.id, secret, text);
	sbx_reply_okf(c, "token %s for %s: shown this once, keep it in your CI's secret store",
		      t.name, person);
	sbx_msg_put_str(c->reply, SBX_F_TOKEN, text);
	put_tokeninfo(c->reply, made);
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(text, sizeof(text));
}

void sbx_op_token_list(struct sbx_broker *b, struct sbx_call *c)
{
	bool all = (c->a.flags & SBX_LIST_ALL) != 0;

	if (all && !c->who.admin) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "only admins may list everyone's tokens");
		return;
	}
	sbx_reply_ok(c, NULL);
	for (size_t i = 0; i < sbx_tokens_size(b->tokens); i++) {
		const struct sbx_token *t = sbx_tokens_at(b->tokens, i);
		sbx_msg_mark mark = sbx_msg_here(c->reply);

		if (!t->live || (!all && strcmp(t->owner, c->who.person) != 0))
			continue;
		put_tokeninfo(c->reply, t);
		if (sbx_msg_undo_if_failed(c->reply, mark))
			break;
	}
}

void sbx_op_token_revoke(struct sbx_broker *b, struct sbx_call *c)
{
	const char *owner = c->a.user[0] ? c->a.user : c->who.person;
	struct sbx_token *t = NULL;
	json_t *f;

	if (sbx_reply_if_degraded(b, c))
		return;
	if (c->a.token_id[0])
		t = sbx_tokens_by_id(b->tokens, c->a.token_id);
	else if (c->a.token_name[0])
		t = sbx_tokens_by_name(b->tokens, owner, c->a.token_name);
	else {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "which token? give its name or its id");
		return;
	}
	/* Someone else's token does not exist for anyone but admins. */
	if (!t || !t->live || (!c->who.admin && strcmp(t->owner, c->who.person) != 0)) {
		sbx_reply_fail(c, SBX_ST_NOTFOUND, "no live token %s%s%s", c->a.token_id[0] ?
			       c->a.token_id : c->a.token_name, c->a.token_id[0] ? "" : " of ",
			       c->a.token_id[0] ? "" : owner);
		return;
	}
	f = sbx_token_fields(t);
	sbx_rec_str(f, "through", c->who.through);
	sbx_rec_str(f, "reason", c->a.reason[0] ? c->a.reason : NULL);
	if (sbx_broker_record(b, "token.revoked", c->who.person, f, &c->wait_seq) < 0) {
		sbx_reply_if_degraded(b, c);
		return;
	}
	sbx_reply_okf(c, "token %s of %s revoked", t->name, t->owner);
	put_tokeninfo(c->reply, t);
}

void sbx_api_tokens_expire(struct sbx_broker *b, int64_t now)
{
	if (!b->tokens || b->degraded[0])
		return;
	for (size_t i = 0; i < sbx_tokens_size(b->tokens); i++) {
		const struct sbx_token *t = sbx_tokens_at(b->tokens, i);
		uint64_t seq;

		if (t->live && t->expires_at <= now)
			(void)sbx_broker_record(b, "token.expired", SBX_SYSTEM_ACTOR,
						sbx_token_fields(t), &seq);
	}
}
