/*
 * The token commands (token_cmd.h).
 */
#include "config.h"

#include "token_cmd.h"

#include "text.h"
#include "timeutil.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A TOKENINFO record as JSON: token_id, name, user, scopes, created_at,
 * expires_at, state. */
static json_t *tokeninfo(const sbx_field *rec)
{
	json_t *o = json_object();
	sbx_reader rd;
	sbx_field f;

	sbx_reader_init_rec(&rd, rec);
	while (o && sbx_reader_next(&rd, &f) == 1) {
		const char *key = NULL;
		char buf[SBX_RFC3339_LEN];
		char *s;

		switch (f.tag) {
		case SBX_F_TOKEN_ID: key = "token_id"; break;
		case SBX_F_TOKEN_NAME: key = "name"; break;
		case SBX_F_USER: key = "user"; break;
		case SBX_F_SCOPES: key = "scopes"; break;
		case SBX_F_STATE: key = "state"; break;
		case SBX_F_CREATED_AT:
		case SBX_F_EXPIRES_AT:
			sbx_format_rfc3339(sbx_field_i64(&f), buf);
			json_object_set_new(o, f.tag == SBX_F_CREATED_AT ? "created_at" : "expires_at",
					    json_string(buf));
			continue;
		default:
			continue;
		}
		s = sbx_field_strdup(&f);
		if (s)
			json_object_set_new(o, key, json_string(s));
		free(s);
	}
	return o;
}

/* Every TOKENINFO of a reply. */
static json_t *tokeninfos(const struct sbx_cli_reply *rep)
{
	json_t *a = json_array();
	sbx_reader rd;
	sbx_field f;

	sbx_reader_init_frame(&rd, rep->frame, rep->len);
	while (a && sbx_reader_next(&rd, &f) == 1)
		if (f.tag == SBX_F_TOKENINFO)
			json_array_append_new(a, tokeninfo(&f));
	return a;
}

static const char *str(const json_t *o, const char *key, char *buf, size_t len)
{
	const char *s = json_string_value(json_object_get(o, key));

	return sbx_sanitize(s ? s : "-", buf, len);
}

static void print_line(FILE *out, const json_t *t)
{
	char id[40], name[80], user[80], scopes[80], exp[40];

	fprintf(out, "%-16s  %-20s  %-12s  %-26s  expires %s\n", str(t, "token_id", id, sizeof(id)),
	       str(t, "name", name, sizeof(name)), str(t, "user", user, sizeof(user)),
	       str(t, "scopes", scopes, sizeof(scopes)), str(t, "expires_at", exp, sizeof(exp)));
}

int sbx_token_cmd_create(const struct sbx_cli *c, const char *name, int64_t secs,
			 const char *scopes)
{
	struct sbx_cli_reply rep = { 0 };
	json_t *list = NULL, *out = NULL;
	sbx_msg m = { 0 };
	char *token = NULL;
	sbx_reader rd;
	sbx_field f;
	int rc;

	sbx_cli_msg_init(c, &m, SBX_OP_TOKEN_CREATE);
	sbx_msg_put_str(&m, SBX_F_TOKEN_NAME, name);
	sbx_msg_put_i64(&m, SBX_F_DURATION, secs);
	if (scopes)
		sbx_msg_put_str(&m, SBX_F_SCOPES, scopes);
	rc = sbx_cli_call(c, &m, &rep);
	if (rc)
		goto out;
	sbx_reader_init_frame(&rd, rep.frame, rep.len);
	if (sbx_reader_find(&rd, SBX_F_TOKEN, &f) == 1)
		token = sbx_field_strdup(&f);
	list = tokeninfos(&rep);
	if (!token || json_array_size(list) != 1) {
		sbx_cli_error(c, "the broker's answer has no token");
		rc = SBX_EXIT_REFUSED;
		goto out;
	}
	if (c->json) {
		out = json_deep_copy(json_array_get(list, 0));
		json_object_set_new(out, "token", json_string(token));
		rc = sbx_cli_print_json(c, out);
	} else {
		/* The token alone on stdout, so `$(sbx-request token create ...)`
		 * captures it; the rest on stderr. */
		char clean[SBX_STR_MAX + 1];

		fprintf(stderr, "%s\n", sbx_sanitize(rep.message, clean, sizeof(clean)));
		print_line(stderr, json_array_get(list, 0));
		printf("%s\n", token);
	}
out:
	if (token)
		memset(token, 0, strlen(token));
	free(token);
	json_decref(out);
	json_decref(list);
	sbx_cli_reply_free(&rep);
	sbx_msg_free(&m);
	return rc;
}

int sbx_token_cmd_list(const struct sbx_cli *c, bool all)
{
	struct sbx_cli_reply rep = { 0 };
	json_t *list = NULL;
	sbx_msg m = { 0 };
	size_t i;
	json_t *t;
	int rc;

	sbx_cli_msg_init(c, &m, SBX_OP_TOKEN_LIST);
	if (all)
		sbx_msg_put_u32(&m, SBX_F_FLAGS, SBX_LIST_ALL);
	rc = sbx_cli_call(c, &m, &rep);
	if (rc)
		goto out;
	list = tokeninfos(&rep);
	if (c->json) {
		rc = sbx_cli_print_json(c, list);
		goto out;
	}
	if (json_array_size(list) == 0)
		puts(all ? "no live tokens" : "you have no live tokens");
	json_array_foreach(list, i, t)
		print_line(stdout, t);
out:
	json_decref(list);
	sbx_cli_reply_free(&rep);
	sbx_msg_free(&m);
	return rc;
}

static bool is_id(const char *s)
{
	if (strlen(s) != 16)
		return false;
	for (; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

int sbx_token_cmd_revoke(const struct sbx_cli *c, const char *which, const char *user,
			 const char *reason)
{
	struct sbx_cli_reply rep = { 0 };
	json_t *list = NULL;
	sbx_msg m = { 0 };
	char clean[SBX_STR_MAX + 1];
	int rc;

	sbx_cli_msg_init(c, &m, SBX_OP_TOKEN_REVOKE);
	sbx_msg_put_str(&m, is_id(which) ? SBX_F_TOKEN_ID : SBX_F_TOKEN_NAME, which);
	if (user)
		sbx_msg_put_str(&m, SBX_F_USER, user);
	if (reason)
		sbx_msg_put_str(&m, SBX_F_REASON, reason);
	rc = sbx_cli_call(c, &m, &rep);
	if (rc)
		goto out;
	list = tokeninfos(&rep);
	if (c->json)
		rc = sbx_cli_print_json(c, json_array_get(list, 0));
	else
		printf("%s\n", sbx_sanitize(rep.message, clean, sizeof(clean)));
out:
	json_decref(list);
	sbx_cli_reply_free(&rep);
	sbx_msg_free(&m);
	return rc;
}
