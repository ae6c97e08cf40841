/*
 * From a reply frame to the JSON the API answers with: one table of the
 * protocol's tags and the names, types and shapes they get in JSON
 * (docs/openapi.yaml describes the result).  Times become RFC 3339 text,
 * 0|1 flags booleans, repeated fields arrays.
 */
#include "config.h"

#include "api_int.h"

#include "frame.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum shape {
	S_TEXT, S_COUNT, S_SECONDS, S_TIME, S_BOOL,
	S_TEXTS,    /* repeated STR: an array */
	S_RECS,     /* repeated REC: an array */
	S_CURSOR,   /* U32 as text: a list's next_cursor, opaque to clients */
};

struct tag_name {
	uint16_t tag;
	const char *name;
	enum shape shape;
};

static const struct tag_name names[] = {
	{ SBX_F_MESSAGE, "message", S_TEXT },
	/* FLAGS in a reply is REQUEST's SBX_REQUEST_EXISTED: a retry. */
	{ SBX_F_FLAGS, "existed", S_BOOL },
	{ SBX_F_USER, "user", S_TEXT },
	{ SBX_F_SERVICE, "service", S_TEXT },
	{ SBX_F_RHOST, "rhost", S_TEXT },
	{ SBX_F_TTY, "tty", S_TEXT },
	{ SBX_F_ALLOWED, "allowed", S_BOOL },
	{ SBX_F_VIA, "via", S_TEXT },
	{ SBX_F_HOST, "host", S_TEXT },
	{ SBX_F_ID, "id", S_COUNT },
	{ SBX_F_ROLE, "role", S_TEXT },
	{ SBX_F_DURATION, "duration", S_SECONDS },
	{ SBX_F_REASON, "reason", S_TEXT },
	{ SBX_F_TICKET, "ticket", S_TEXT },
	{ SBX_F_COMMENT, "comment", S_TEXT },
	{ SBX_F_EXTENDS, "extends", S_COUNT },
	{ SBX_F_REQUEST, "requests", S_RECS },
	{ SBX_F_STATE, "state", S_TEXT },
	{ SBX_F_CREATED_AT, "created_at", S_TIME },
	{ SBX_F_ACTIVATED_AT, "activated_at", S_TIME },
	{ SBX_F_EXPIRES_AT, "expires_at", S_TIME },
	{ SBX_F_ENDED_AT, "ended_at", S_TIME },
	{ SBX_F_APPROVALS_NEEDED, "approvals_needed", S_COUNT },
	{ SBX_F_APPROVED_BY, "approved_by", S_TEXTS },
	{ SBX_F_UNIX_GROUP, "unix_group", S_TEXT },
	{ SBX_F_GID, "gid", S_COUNT },
	{ SBX_F_ACTOR, "actor", S_TEXT },
	{ SBX_F_THROUGH, "through", S_TEXT },
	{ SBX_F_END_REASON, "end_reason", S_TEXT },
	{ SBX_F_ENDED_BY, "ended_by", S_TEXT },
	{ SBX_F_APPROVERS, "approvers", S_TEXT },
	{ SBX_F_NOTE, "note", S_TEXT },
	{ SBX_F_ROLEINFO, "roles", S_RECS },
	{ SBX_F_DESCRIPTION, "description", S_TEXT },
	{ SBX_F_HOSTS, "hosts", S_TEXTS },
	{ SBX_F_MAX_DURATION, "max_duration", S_SECONDS },
	{ SBX_F_DEFAULT_DURATION, "default_duration", S_SECONDS },
	{ SBX_F_AUTO_APPROVE, "auto_approve", S_BOOL },
	{ SBX_F_REQUIRE_REASON, "require_reason", S_BOOL },
	{ SBX_F_REQUIRE_TICKET, "require_ticket", S_TEXTS },
	{ SBX_F_REASON_MIN, "reason_min_length", S_COUNT },
	{ SBX_F_MEMBERSHIP, "memberships", S_RECS },
	{ SBX_F_HOW, "how", S_TEXT },
	{ SBX_F_LOGIN, "login", S_BOOL },
	{ SBX_F_HOST_MATCH, "host_match", S_BOOL },
	{ SBX_F_VERSION, "version", S_TEXT },
	{ SBX_F_POLICY_SHA, "policy_sha", S_TEXT },
	{ SBX_F_SEQ, "seq", S_COUNT },
	{ SBX_F_DEGRADED, "degraded", S_TEXT },
	{ SBX_F_TOKEN_NAME, "name", S_TEXT },
	{ SBX_F_TOKEN_ID, "token_id", S_TEXT },
	{ SBX_F_SCOPES, "scopes", S_TEXT },
	{ SBX_F_TOKENINFO, "tokens", S_RECS },
	/* drift */
	{ SBX_F_DRIFT, "findings", S_RECS },
	{ SBX_F_FINDING, "finding", S_TEXT },
	{ SBX_F_KIND, "kind", S_TEXT },
	{ SBX_F_SUBJECT, "subject", S_TEXT },
	{ SBX_F_FILE, "file", S_TEXT },
	{ SBX_F_LINE, "line", S_COUNT },
	{ SBX_F_FOUND, "found", S_TEXT },
	{ SBX_F_POLICY_SAYS, "policy_says", S_TEXT },
	{ SBX_F_DETECTED_AT, "detected_at", S_TIME },
	{ SBX_F_SCANS, "scans", S_COUNT },
	{ SBX_F_SCANNED_AT, "scanned_at", S_TIME },
	{ SBX_F_SCANNING, "scanning", S_BOOL },
	/* reviews (DURATION in REVIEWINFO: api_http.c names it review_every) */
	{ SBX_F_REVIEWINFO, "reviews", S_RECS },
	{ SBX_F_LAST_REVIEW, "last_review", S_TIME },
	{ SBX_F_NEXT_DUE, "next_due", S_TIME },
	{ SBX_F_ON_MISSED, "on_missed", S_TEXT },
	/* lists in pages (pages.h) */
	{ SBX_F_NEXT_CURSOR, "next_cursor", S_CURSOR },
};

static const struct tag_name *name_of(uint16_t tag)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].tag == tag)
			return &names[i];
	return NULL;
}

static json_t *time_json(int64_t secs)
{
	char buf[SBX_RFC3339_LEN];

	sbx_format_rfc3339(secs, buf);
	return json_string(buf);
}

static json_t *object_of(sbx_reader *rd);

static json_t *value_of(const struct tag_name *n, const sbx_field *f)
{
	sbx_reader sub;
	char *s;
	json_t *v;

	switch (n->shape) {
	case S_TEXT:
	case S_TEXTS:
		s = sbx_field_strdup(f);
		v = s ? json_string(s) : NULL;
		free(s);
		return v;
	case S_COUNT:
		return json_integer(f->len == 4 ? (json_int_t)sbx_field_u32(f)
						: (json_int_t)sbx_field_i64(f));
	case S_SECONDS:
		return json_integer((json_int_t)sbx_field_i64(f));
	case S_TIME:
		return time_json(sbx_field_i64(f));
	case S_BOOL:
		return json_boolean(sbx_field_u32(f) != 0);
	case S_CURSOR:
		return json_sprintf("%u", (unsigned)sbx_field_u32(f));
	case S_RECS:
		sbx_reader_init_rec(&sub, f);
		return object_of(&sub);
	}
	return NULL;
}

/* The fields a reader has left, as an object (STATUS left out). */
static json_t *object_of(sbx_reader *rd)
{
	json_t *o = json_object();
	sbx_field f;

	while (o && sbx_reader_next(rd, &f) == 1) {
		const struct tag_name *n = name_of(f.tag);
		json_t *v;

		if (!n)
			continue;
		v = value_of(n, &f);
		if (!v)
			continue;
		if (n->shape == S_TEXTS || n->shape == S_RECS) {
			json_t *a = json_object_get(o, n->name);

			if (!a) {
				a = json_array();
				json_object_set_new(o, n->name, a);
			}
			json_array_append_new(a, v);
		} else {
			json_object_set_new(o, n->name, v);
		}
	}
	return o;
}

json_t *sbx_api_reply_json(const uint8_t *frame, size_t n, uint32_t *status)
{
	sbx_reader rd;
	sbx_field f;

	sbx_reader_init_frame(&rd, frame, n);
	*status = SBX_ST_INTERNAL;
	if (sbx_reader_find(&rd, SBX_F_STATUS, &f) == 1)
		*status = sbx_field_u32(&f);
	sbx_reader_init_frame(&rd, frame, n);
	return object_of(&rd);
}

json_t *sbx_api_error_json(const char *code, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	return json_pack("{s:s, s:s}", "code", code, "message", msg);
}
