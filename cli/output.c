#include "config.h"

#include "output.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"
#include "sbx_proto.h"
#include "timeutil.h"
#include "text.h"

/* ------------------------------------------------------------------ */
/* Decoding                                                            */

enum key_kind {
	K_STR,
	K_U32,
	K_I64,
	K_BOOL,
	K_TIME,     /* I64 Unix seconds -> RFC 3339 string; <= 0 is null */
	K_SECS,     /* I64 seconds -> integer, plus "<name>_text" ("1h30m") */
	K_STRLIST,  /* repeated STR -> array */
	K_RECLIST,  /* repeated REC -> array of objects of kind sub */
};

struct key {
	uint16_t tag;
	const char *name;
	enum key_kind kind;
	enum sbx_out_kind sub;
};

#define KEY(tag, name, kind) { SBX_F_##tag, name, kind, SBX_OUT_REQUEST }

static const struct key request_keys[] = {
	KEY(ID, "id", K_U32),
	KEY(USER, "user", K_STR),
	KEY(ROLE, "role", K_STR),
	KEY(STATE, "state", K_STR),
	KEY(EXPIRES_AT, "expires_at", K_TIME),
	KEY(CREATED_AT, "created_at", K_TIME),
	KEY(ACTIVATED_AT, "activated_at", K_TIME),
	KEY(ENDED_AT, "ended_at", K_TIME),
	KEY(DURATION, "duration", K_SECS),
	KEY(REASON, "reason", K_STR),
	KEY(TICKET, "ticket", K_STR),
	KEY(APPROVALS_NEEDED, "approvals_needed", K_U32),
	KEY(APPROVED_BY, "approved_by", K_STRLIST),
	KEY(APPROVERS, "approvers", K_STR),
	KEY(UNIX_GROUP, "unix_group", K_STR),
	KEY(GID, "gid", K_U32),
	KEY(ACTOR, "requested_by", K_STR),
	KEY(THROUGH, "through", K_STR),
	KEY(END_REASON, "end_reason", K_STR),
	KEY(ENDED_BY, "ended_by", K_STR),
	KEY(EXTENDS, "extends", K_U32),
	KEY(COMMENT, "comment", K_STR),
	KEY(NOTE, "note", K_STR),
	{ SBX_F_COMMANDINFO, "commands", K_RECLIST, SBX_OUT_COMMAND },
};

static const struct key command_keys[] = {
	KEY(COMMAND, "command", K_STR),
	KEY(RUNAS, "runas", K_STR),
	KEY(CREATED_AT, "at", K_TIME),
	KEY(EXIT_STATUS, "exit_status", K_U32),
	KEY(SIGNAL, "signal", K_U32),
};

static const struct key roleinfo_keys[] = {
	KEY(ROLE, "role", K_STR),
	KEY(DESCRIPTION, "description", K_STR),
	KEY(HOW, "how", K_STR),
	KEY(VIA, "via", K_STR),
	KEY(HOSTS, "hosts", K_STRLIST),
	KEY(HOST_MATCH, "host_match", K_BOOL),
	KEY(DEFAULT_DURATION, "default_duration", K_SECS),
	KEY(MAX_DURATION, "max_duration", K_SECS),
	KEY(AUTO_APPROVE, "auto_approve", K_BOOL),
	KEY(APPROVALS_NEEDED, "approvals_needed", K_U32),
	KEY(APPROVERS, "approvers", K_STR),
	KEY(REQUIRE_REASON, "require_reason", K_BOOL),
	KEY(REASON_MIN, "reason_min_length", K_U32),
	KEY(REQUIRE_TICKET, "require_ticket", K_STRLIST),
	KEY(UNIX_GROUP, "unix_group", K_STR),
	KEY(GID, "gid", K_U32),
};

static const struct key membership_keys[] = {
	KEY(ROLE, "role", K_STR),
	KEY(HOW, "how", K_STR),
	KEY(VIA, "via", K_STR),
	KEY(LOGIN, "login", K_BOOL),
	KEY(HOST_MATCH, "host_match", K_BOOL),
	KEY(EXPIRES_AT, "expires_at", K_TIME),
};

static const struct key check_keys[] = {
	KEY(ALLOWED, "allowed", K_BOOL),
	KEY(MESSAGE, "reason", K_STR),
	KEY(USER, "user", K_STR),
	KEY(ROLE, "role", K_STR),
	KEY(ID, "id", K_U32),
	KEY(VIA, "via", K_STR),
	KEY(HOST, "host", K_STR),
};

static const struct key explain_keys[] = {
	KEY(USER, "user", K_STR),
	KEY(ALLOWED, "allowed", K_BOOL),
	KEY(MESSAGE, "reason", K_STR),
	KEY(HOST, "host", K_STR),
	{ SBX_F_MEMBERSHIP, "roles", K_RECLIST, SBX_OUT_MEMBERSHIP },
};

static const struct key reviewinfo_keys[] = {
	KEY(ROLE, "role", K_STR),
	KEY(STATE, "state", K_STR),
	KEY(DURATION, "review_every", K_SECS),
	KEY(LAST_REVIEW, "last_review", K_TIME),
	KEY(NEXT_DUE, "next_due", K_TIME),
	KEY(ON_MISSED, "on_missed_review", K_STR),
	KEY(NOTE, "note", K_STR),
};

static const struct key ping_keys[] = {
	KEY(VERSION, "version", K_STR),
	KEY(HOST, "host", K_STR),
	KEY(POLICY_SHA, "policy_sha256", K_STR),
	KEY(SEQ, "seq", K_I64),
	KEY(DEGRADED, "degraded", K_STR),
	KEY(FLEET, "fleet", K_STR),
	KEY(FLEET_SEQ, "fleet_seq", K_I64),
	KEY(STALE, "fleet_stale", K_BOOL),
	KEY(WRITABLE, "fleet_writable", K_BOOL),
};

#define SPEC(k) { k, sizeof(k) / sizeof(k[0]) }
static const struct {
	const struct key *keys;
	size_t n;
} specs[] = {
	[SBX_OUT_REQUEST] = SPEC(request_keys),
	[SBX_OUT_ROLEINFO] = SPEC(roleinfo_keys),
	[SBX_OUT_MEMBERSHIP] = SPEC(membership_keys),
	[SBX_OUT_CHECK] = SPEC(check_keys),
	[SBX_OUT_EXPLAIN] = SPEC(explain_keys),
	[SBX_OUT_PING] = SPEC(ping_keys),
	[SBX_OUT_REVIEWINFO] = SPEC(reviewinfo_keys),
	[SBX_OUT_COMMAND] = SPEC(command_keys),
};

/* A STR field as a JSON string.  The frame validator does not promise
 * UTF-8, and jansson refuses invalid UTF-8: fall back to a sanitized copy. */
static json_t *field_string(const sbx_field *f)
{
	char *s = sbx_field_strdup(f);
	char *san = NULL;
	json_t *j = NULL;

	if (!s)
		return NULL;
	j = json_string(s);
	if (!j) {
		san = malloc(strlen(s) + 1);
		if (san)
			j = json_string(sbx_sanitize(s, san, strlen(s) + 1));
	}
	free(san);
	free(s);
	return j;
}

static json_t *time_value(int64_t secs)
{
	char buf[SBX_RFC3339_LEN];

	if (secs <= 0)
		return json_null();
	sbx_format_rfc3339(secs, buf);
	return json_string(buf);
}

static json_t *default_value(enum key_kind kind)
{
	switch (kind) {
	case K_BOOL:
		return json_false();
	case K_STRLIST:
	case K_RECLIST:
		return json_array();
	default:
		return json_null();
	}
}

/* Every key of the spec, at its default, in spec order. */
static json_t *skeleton(enum sbx_out_kind kind)
{
	json_t *o = json_object();

	if (!o)
		return NULL;
	for (size_t i = 0; i < specs[kind].n; i++) {
		const struct key *k = &specs[kind].keys[i];
		char name[64];

		if (json_object_set_new(o, k->name, default_value(k->kind)) < 0)
			goto fail;
		if (k->kind == K_SECS) {
			snprintf(name, sizeof(name), "%s_text", k->name);
			if (json_object_set_new(o, name, json_null()) < 0)
				goto fail;
		}
	}
	return o;
fail:
	json_decref(o);
	return NULL;
}

static const struct key *find_key(enum sbx_out_kind kind, uint16_t tag)
{
	for (size_t i = 0; i < specs[kind].n; i++)
		if (specs[kind].keys[i].tag == tag)
			return &specs[kind].keys[i];
	return NULL;
}

static int set_field(json_t *o, const struct key *k, const sbx_field *f)
{
	char text[64], name[64];
	json_t *v = NULL;

	switch (k->kind) {
	case K_STR:
		v = field_string(f);
		break;
	case K_U32:
		v = json_integer(sbx_field_u32(f));
		break;
	case K_I64:
		v = json_integer(sbx_field_i64(f));
		break;
	case K_BOOL:
		v = json_boolean(sbx_field_u32(f) != 0);
		break;
	case K_TIME:
		v = time_value(sbx_field_i64(f));
		break;
	case K_SECS:
		sbx_duration_format(sbx_field_i64(f), text, sizeof(text));
		snprintf(name, sizeof(name), "%s_text", k->name);
		if (json_object_set_new(o, name, json_string(text)) < 0)
			return -ENOMEM;
		v = json_integer(sbx_field_i64(f));
		break;
	case K_STRLIST:
		return json_array_append_new(json_object_get(o, k->name), field_string(f)) < 0 ?
			       -ENOMEM : 0;
	case K_RECLIST:
		return json_array_append_new(json_object_get(o, k->name),
					     sbx_out_decode_rec(f, k->sub)) < 0 ? -ENOMEM : 0;
	}
	return json_object_set_new(o, k->name, v) < 0 ? -ENOMEM : 0;
}

static json_t *decode(sbx_reader *r, enum sbx_out_kind kind)
{
	json_t *o = skeleton(kind);
	sbx_field f;

	if (!o)
		return NULL;
	while (sbx_reader_next(r, &f) == 1) {
		const struct key *k = find_key(kind, f.tag);

		/* Fields this version does not show (or a future broker's) are
		 * skipped, as the protocol allows. */
		if (!k || sbx_field_type(f.tag) == SBX_T_UNKNOWN)
			continue;
		if (set_field(o, k, &f) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

json_t *sbx_out_decode_rec(const sbx_field *rec, enum sbx_out_kind kind)
{
	sbx_reader r;

	sbx_reader_init_rec(&r, rec);
	return decode(&r, kind);
}

json_t *sbx_out_decode_reply(const uint8_t *frame, size_t n, enum sbx_out_kind kind)
{
	sbx_reader r;

	sbx_reader_init_frame(&r, frame, n);
	return decode(&r, kind);
}

json_t *sbx_out_reply_records(const uint8_t *frame, size_t n, uint16_t tag,
			      enum sbx_out_kind kind)
{
	json_t *a = json_array();
	sbx_reader r;
	sbx_field f;

	if (!a)
		return NULL;
	sbx_reader_init_frame(&r, frame, n);
	while (sbx_reader_next(&r, &f) == 1) {
		if (f.tag != tag)
			continue;
		if (json_array_append_new(a, sbx_out_decode_rec(&f, kind)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

json_t *sbx_out_reply_record(const uint8_t *frame, size_t n, uint16_t tag,
			     enum sbx_out_kind kind)
{
	sbx_reader r;
	sbx_field f;

	sbx_reader_init_frame(&r, frame, n);
	if (sbx_reader_find(&r, tag, &f) != 1)
		return NULL;
	return sbx_out_decode_rec(&f, kind);
}

int sbx_out_print_json(FILE *f, const json_t *j)
{
	if (json_dumpf(j, f, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0)
		return -1;
	return fputc('\n', f) == EOF ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Reading the decoded objects                                         */

const char *sbx_out_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(obj, key));
}

static bool has_int(const json_t *obj, const char *key, json_int_t *v)
{
	const json_t *j = json_object_get(obj, key);

	if (!json_is_integer(j))
		return false;
	*v = json_integer_value(j);
	return true;
}

/* Print s sanitized; NULL prints dflt. */
static void put(FILE *f, const char *s, const char *dflt)
{
	char buf[SBX_STR_MAX + 1];

	fputs(s ? sbx_sanitize(s, buf, sizeof(buf)) : dflt, f);
}

static void put_key(FILE *f, const json_t *o, const char *key, const char *dflt)
{
	put(f, sbx_out_str(o, key), dflt);
}

/* "a, b and c" */
static void put_names(FILE *f, const json_t *arr)
{
	size_t n = json_array_size(arr);

	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			fputs(i + 1 == n ? " and " : ", ", f);
		put(f, json_string_value(json_array_get(arr, i)), "?");
	}
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* ------------------------------------------------------------------ */
/* A request in words                                                  */

static const char *const ended_states[] = { "expired", "revoked", "denied", "cancelled",
					    "lapsed", NULL };

static bool is_ended(const char *state)
{
	for (size_t i = 0; ended_states[i]; i++)
		if (str_eq(state, ended_states[i]))
			return true;
	return false;
}

/* "erin asks for sandbox-admin for 1h, extending grant 41 (filed by root)" */
static void put_subject(FILE *f, const json_t *r)
{
	const char *state = sbx_out_str(r, "state");
	const char *user = sbx_out_str(r, "user");
	const char *by = sbx_out_str(r, "requested_by");
	const char *verb = "asks for";
	json_int_t ext;

	if (str_eq(state, "active"))
		verb = "has";
	else if (str_eq(state, "expired") || str_eq(state, "revoked"))
		verb = "had";
	else if (is_ended(state))
		verb = "asked for";
	put(f, user, "someone");
	fprintf(f, " %s ", verb);
	put_key(f, r, "role", "a role");
	if (sbx_out_str(r, "duration_text")) {
		fputs(" for ", f);
		put_key(f, r, "duration_text", "");
	}
	if (has_int(r, "extends", &ext))
		fprintf(f, ", extending grant %lld", (long long)ext);
	if (by && user && !str_eq(by, user)) {
		fputs(" (filed by ", f);
		put(f, by, "");
		fputc(')', f);
	}
}

static void put_ended_by(FILE *f, const json_t *r)
{
	if (sbx_out_str(r, "ended_by")) {
		fputs(" by ", f);
		put_key(f, r, "ended_by", "");
	}
	if (sbx_out_str(r, "ended_at")) {
		fputs(" at ", f);
		put_key(f, r, "ended_at", "");
	}
	if (sbx_out_str(r, "end_reason")) {
		fputs(": ", f);
		put_key(f, r, "end_reason", "");
	}
}

/* approvals_needed is the total the role asks for; approved_by holds
 * those given so far. */
static void put_approvals(FILE *f, const json_t *r, const char *sep)
{
	const json_t *approved = json_object_get(r, "approved_by");
	json_int_t need, left;

	if (!has_int(r, "approvals_needed", &need))
		return;
	left = need - (json_int_t)json_array_size(approved);
	if (left < 0)
		left = 0;
	fprintf(f, "%sneeds %lld %sapproval%s", sep, (long long)left,
		json_array_size(approved) ? "more " : "", left == 1 ? "" : "s");
	if (sbx_out_str(r, "approvers")) {
		fputs(" from ", f);
		put_key(f, r, "approvers", "");
	}
	if (json_array_size(approved) > 0) {
		fputs(" (approved so far by ", f);
		put_names(f, approved);
		fputc(')', f);
	}
}

static void put_pending_clause(FILE *f, const json_t *r)
{
	fputs("pending", f);
	put_approvals(f, r, ", ");
	if (sbx_out_str(r, "expires_at")) {
		fputs(" (lapses ", f);
		put_key(f, r, "expires_at", "");
		fputc(')', f);
	}
}

static void put_state_clause(FILE *f, const json_t *r)
{
	const char *state = sbx_out_str(r, "state");
	const json_t *approved = json_object_get(r, "approved_by");

	if (str_eq(state, "pending")) {
		put_pending_clause(f, r);
	} else if (str_eq(state, "active")) {
		fputs("active", f);
		if (sbx_out_str(r, "expires_at")) {
			fputs(" until ", f);
			put_key(f, r, "expires_at", "");
		}
		if (json_array_size(approved) > 0) {
			fputs(", approved by ", f);
			put_names(f, approved);
		}
	} else if (str_eq(state, "expired")) {
		fputs("expired at ", f);
		put(f, sbx_out_str(r, "ended_at") ? sbx_out_str(r, "ended_at")
						  : sbx_out_str(r, "expires_at"), "?");
	} else if (str_eq(state, "lapsed")) {
		fputs("lapsed", f);
		if (sbx_out_str(r, "ended_at")) {
			fputs(" at ", f);
			put_key(f, r, "ended_at", "");
		}
		fputs(": not approved in time", f);
	} else if (is_ended(state)) {
		put(f, state, "?");
		put_ended_by(f, r);
	} else {
		put(f, state, "in an unknown state");
	}
}

/* The sentence after its "request N...: " opening. */
static void put_request_sentence(FILE *f, const json_t *r)
{
	put_subject(f, r);
	fputs(" \u2014 ", f);
	put_state_clause(f, r);
	fputc('\n', f);
	if (sbx_out_str(r, "note")) {
		fputs("  note: ", f);
		put_key(f, r, "note", "");
		fputc('\n', f);
	}
}

void sbx_out_print_request(FILE *f, const json_t *r)
{
	json_int_t id;

	if (has_int(r, "id", &id))
		fprintf(f, "request %lld: ", (long long)id);
	else
		fputs("request: ", f);
	put_request_sentence(f, r);
}

void sbx_out_print_request_existed(FILE *f, const json_t *r)
{
	json_int_t id;

	if (has_int(r, "id", &id))
		fprintf(f, "request %lld already exists (", (long long)id);
	else
		fputs("request already exists (", f);
	put_key(f, r, "state", "?");
	fputs("): ", f);
	put_request_sentence(f, r);
}

static void detail(FILE *f, const char *label, const json_t *r, const char *key)
{
	if (!sbx_out_str(r, key))
		return;
	fprintf(f, "  %-11s ", label);
	put_key(f, r, key, "");
	fputc('\n', f);
}

/* The sudo commands run under a grant (STATUS), one line each: when, as
 * whom, how it ended, the command (escaped by sbx_sudo; put_key cleans
 * it again for the terminal). */
static void put_commands(FILE *f, const json_t *cmds)
{
	size_t i;
	const json_t *c;
	json_int_t v;

	if (json_array_size(cmds) == 0)
		return;
	fprintf(f, "  %-11s\n", "commands:");
	json_array_foreach(cmds, i, c) {
		fputs("    ", f);
		put_key(f, c, "at", "?");
		fputs(" as ", f);
		put_key(f, c, "runas", "?");
		if (has_int(c, "exit_status", &v))
			fprintf(f, ", exit %lld", (long long)v);
		else if (has_int(c, "signal", &v))
			fprintf(f, ", signal %lld", (long long)v);
		else
			fputs(", running", f);
		fputs(": ", f);
		put_key(f, c, "command", "");
		fputc('\n', f);
	}
}

void sbx_out_print_request_detail(FILE *f, const json_t *r)
{
	const json_t *approved = json_object_get(r, "approved_by");
	const char *state = sbx_out_str(r, "state");
	json_int_t v;

	sbx_out_print_request(f, r);
	detail(f, "user:", r, "user");
	if (sbx_out_str(r, "role")) {
		fprintf(f, "  %-11s ", "role:");
		put_key(f, r, "role", "");
		if (sbx_out_str(r, "unix_group")) {
			fputs(" (unix group ", f);
			put_key(f, r, "unix_group", "");
			if (has_int(r, "gid", &v))
				fprintf(f, ", gid %lld", (long long)v);
			fputc(')', f);
		}
		fputc('\n', f);
	}
	detail(f, "state:", r, "state");
	detail(f, "duration:", r, "duration_text");
	detail(f, "reason:", r, "reason");
	detail(f, "ticket:", r, "ticket");
	if (sbx_out_str(r, "created_at")) {
		fprintf(f, "  %-11s ", "requested:");
		put_key(f, r, "created_at", "");
		if (sbx_out_str(r, "requested_by")) {
			fputs(" by ", f);
			put_key(f, r, "requested_by", "");
		}
		if (sbx_out_str(r, "through")) {
			fputs(" through ", f);
			put_key(f, r, "through", "");
		}
		fputc('\n', f);
	}
	if (has_int(r, "extends", &v))
		fprintf(f, "  %-11s grant %lld\n", "extends:", (long long)v);
	if (has_int(r, "approvals_needed", &v) && str_eq(state, "pending")) {
		fprintf(f, "  %-11s", "approvals:");
		put_approvals(f, r, " ");
		fputc('\n', f);
	} else if (json_array_size(approved) > 0) {
		fprintf(f, "  %-11s ", "approved by:");
		put_names(f, approved);
		fputc('\n', f);
	}
	detail(f, "comment:", r, "comment");
	detail(f, "activated:", r, "activated_at");
	detail(f, str_eq(state, "pending") ? "lapses:" : "expires:", r, "expires_at");
	if (sbx_out_str(r, "ended_at")) {
		fprintf(f, "  %-11s ", "ended:");
		put_key(f, r, "ended_at", "");
		if (sbx_out_str(r, "ended_by")) {
			fputs(" by ", f);
			put_key(f, r, "ended_by", "");
		}
		if (sbx_out_str(r, "end_reason")) {
			fputs(": ", f);
			put_key(f, r, "end_reason", "");
		}
		fputc('\n', f);
	}
	put_commands(f, json_object_get(r, "commands"));
}

/* ------------------------------------------------------------------ */
/* Tables                                                              */

size_t sbx_out_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

int sbx_out_table_init(struct sbx_out_table *t, const char *const *headers, size_t ncols)
{
	t->ncols = ncols;
	t->nrows = 0;
	t->cap = 0;
	t->cells = NULL;
	return sbx_out_table_add(t, headers);
}

int sbx_out_table_add(struct sbx_out_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **nc = realloc(t->cells, cap * t->ncols * sizeof(*nc));

		if (!nc)
			return -ENOMEM;
		t->cells = nc;
		t->cap = cap;
	}
	for (size_t i = 0; i < t->ncols; i++) {
		const char *s = cells[i] ? cells[i] : "-";
		size_t n = strlen(s) + 1;
		char *copy = malloc(n);

		if (!copy) {
			for (size_t j = 0; j < i; j++)
				free(t->cells[t->nrows * t->ncols + j]);
			return -ENOMEM;
		}
		t->cells[t->nrows * t->ncols + i] = sbx_sanitize(s, copy, n);
	}
	t->nrows++;
	return 0;
}

void sbx_out_table_print(FILE *f, const struct sbx_out_table *t)
{
	size_t widths[16] = { 0 };
	size_t ncols = t->ncols < 16 ? t->ncols : 16;

	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < ncols; c++) {
			size_t w = sbx_out_width(t->cells[r * t->ncols + c]);

			if (w > widths[c])
				widths[c] = w;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];

			fputs(s, f);
			if (c + 1 < ncols) {
				for (size_t pad = sbx_out_width(s); pad < widths[c] + 2; pad++)
					fputc(' ', f);
			}
		}
		fputc('\n', f);
	}
}

void sbx_out_table_free(struct sbx_out_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

static const char *col_header(enum sbx_out_col c)
{
	switch (c) {
	case SBX_COL_ID: return "ID";
	case SBX_COL_USER: return "USER";
	case SBX_COL_ROLE: return "ROLE";
	case SBX_COL_GROUP: return "GROUP";
	case SBX_COL_STATE: return "STATE";
	case SBX_COL_FOR: return "FOR";
	case SBX_COL_WHEN: return "EXPIRES/ENDS";
	case SBX_COL_LAPSES: return "LAPSES";
	case SBX_COL_REASON: return "REASON";
	}
	return "?";
}

/* The cell's text; buf is room for numbers. */
static const char *col_value(const json_t *r, enum sbx_out_col c, char *buf, size_t len)
{
	json_int_t id;

	switch (c) {
	case SBX_COL_ID:
		if (!has_int(r, "id", &id))
			return NULL;
		snprintf(buf, len, "%lld", (long long)id);
		return buf;
	case SBX_COL_USER: return sbx_out_str(r, "user");
	case SBX_COL_ROLE: return sbx_out_str(r, "role");
	case SBX_COL_GROUP: return sbx_out_str(r, "unix_group");
	case SBX_COL_STATE: return sbx_out_str(r, "state");
	case SBX_COL_FOR: return sbx_out_str(r, "duration_text");
	case SBX_COL_WHEN:
	case SBX_COL_LAPSES:
		if (is_ended(sbx_out_str(r, "state")) && sbx_out_str(r, "ended_at"))
			return sbx_out_str(r, "ended_at");
		return sbx_out_str(r, "expires_at");
	case SBX_COL_REASON: return sbx_out_str(r, "reason");
	}
	return NULL;
}

#define MAX_COLS 8

int sbx_out_print_request_table(FILE *f, const json_t *reqs, const enum sbx_out_col *cols,
				size_t ncols)
{
	struct sbx_out_table t = { 0 };
	const char *cells[MAX_COLS];
	char idbuf[24];
	int ret = -ENOMEM;

	if (ncols > MAX_COLS)
		return -EINVAL;
	for (size_t c = 0; c < ncols; c++)
		cells[c] = col_header(cols[c]);
	if (sbx_out_table_init(&t, cells, ncols) < 0)
		goto out;
	for (size_t i = 0; i < json_array_size(reqs); i++) {
		const json_t *r = json_array_get(reqs, i);

		for (size_t c = 0; c < ncols; c++)
			cells[c] = col_value(r, cols[c], idbuf, sizeof(idbuf));
		if (sbx_out_table_add(&t, cells) < 0)
			goto out;
	}
	sbx_out_table_print(f, &t);
	ret = 0;
out:
	sbx_out_table_free(&t);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Roles and memberships                                               */

static void put_role_limits(FILE *f, const json_t *r)
{
	const json_t *tickets;
	json_int_t v;

	if (sbx_out_str(r, "default_duration_text") || sbx_out_str(r, "max_duration_text")) {
		fputs("    duration: ", f);
		if (sbx_out_str(r, "default_duration_text")) {
			fputs("default ", f);
			put_key(f, r, "default_duration_text", "");
			if (sbx_out_str(r, "max_duration_text"))
				fputs(", ", f);
		}
		if (sbx_out_str(r, "max_duration_text")) {
			fputs("at most ", f);
			put_key(f, r, "max_duration_text", "");
		}
		fputc('\n', f);
	}
	if (json_is_true(json_object_get(r, "auto_approve"))) {
		fputs("    approval: none, granted at once\n", f);
	} else if (has_int(r, "approvals_needed", &v)) {
		fprintf(f, "    approval: %lld from ", (long long)v);
		put_key(f, r, "approvers", "an approver");
		fputs(" (never yourself)\n", f);
	}
	if (json_is_true(json_object_get(r, "require_reason"))) {
		fputs("    reason:   required (--reason)", f);
		if (has_int(r, "reason_min_length", &v))
			fprintf(f, ", at least %lld characters", (long long)v);
		fputc('\n', f);
	}
	tickets = json_object_get(r, "require_ticket");
	if (json_array_size(tickets) > 0) {
		fputs("    ticket:   required (--ticket), matching ", f);
		for (size_t i = 0; i < json_array_size(tickets); i++) {
			if (i)
				fputs(" and ", f);
			put(f, json_string_value(json_array_get(tickets, i)), "?");
		}
		fputc('\n', f);
	}
}

static void put_role(FILE *f, const json_t *r)
{
	const json_t *hosts = json_object_get(r, "hosts");
	json_int_t gid;

	put_key(f, r, "role", "?");
	if (sbx_out_str(r, "description")) {
		fputs(" \u2014 ", f);
		put_key(f, r, "description", "");
	}
	fputc('\n', f);
	if (str_eq(sbx_out_str(r, "how"), "none")) {
		fputs("    you are:  not a member (listed because you are an admin)\n", f);
	} else if (sbx_out_str(r, "how")) {
		fputs("    you are:  ", f);
		put_key(f, r, "how", "");
		if (sbx_out_str(r, "via")) {
			fputs(" (", f);
			put_key(f, r, "via", "");
			fputc(')', f);
		}
		fputc('\n', f);
	}
	put_role_limits(f, r);
	if (json_array_size(hosts) > 0) {
		fputs("    hosts:    ", f);
		for (size_t i = 0; i < json_array_size(hosts); i++) {
			if (i)
				fputs(", ", f);
			put(f, json_string_value(json_array_get(hosts, i)), "?");
		}
		fputs(json_is_true(json_object_get(r, "host_match")) ? " (this host matches)\n"
								     : " (not this host)\n", f);
	}
	if (sbx_out_str(r, "unix_group")) {
		fputs("    grants:   unix group ", f);
		put_key(f, r, "unix_group", "");
		if (has_int(r, "gid", &gid))
			fprintf(f, " (gid %lld)", (long long)gid);
		fputc('\n', f);
	}
}

void sbx_out_print_roles(FILE *f, const json_t *roles)
{
	for (size_t i = 0; i < json_array_size(roles); i++) {
		if (i)
			fputc('\n', f);
		put_role(f, json_array_get(roles, i));
	}
}

static const char *yes_no(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key)) ? "yes" : "no";
}

int sbx_out_print_memberships(FILE *f, const json_t *ms)
{
	static const char *const headers[] = { "ROLE", "HOW", "VIA", "LOGIN", "THIS HOST" };
	struct sbx_out_table t = { 0 };
	int ret = -ENOMEM;

	if (sbx_out_table_init(&t, headers, 5) < 0)
		goto out;
	for (size_t i = 0; i < json_array_size(ms); i++) {
		const json_t *m = json_array_get(ms, i);
		const char *cells[5] = {
			sbx_out_str(m, "role"), sbx_out_str(m, "how"), sbx_out_str(m, "via"),
			yes_no(m, "login"), yes_no(m, "host_match"),
		};

		if (sbx_out_table_add(&t, cells) < 0)
			goto out;
	}
	sbx_out_table_print(f, &t);
	ret = 0;
out:
	sbx_out_table_free(&t);
	return ret;
}

/* ------------------------------------------------------------------ */
/* Audit output                                                        */

void sbx_out_csv_field(FILE *f, const char *s)
{
	if (!s)
		return;
	if (!strpbrk(s, ",\"\r\n")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

void sbx_out_kv_value(FILE *f, const json_t *v)
{
	char *dump;

	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = strlen(s) + 1;
		char *san = malloc(n);

		if (!san)
			return;
		sbx_sanitize(s, san, n);
		if (*san && !strpbrk(san, " \"=\\")) {
			fputs(san, f);
		} else {
			fputc('"', f);
			for (const char *p = san; *p; p++) {
				if (*p == '"' || *p == '\\')
					fputc('\\', f);
				fputc(*p, f);
			}
			fputc('"', f);
		}
		free(san);
		return;
	}
	dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
	if (dump) {
		char *san = malloc(strlen(dump) + 1);

		/* A JSON dump escapes control characters, but a nested string
		 * may still carry terminal escapes in UTF-8. */
		if (san)
			fputs(sbx_sanitize(dump, san, strlen(dump) + 1), f);
		free(san);
	}
	free(dump);
}

bool sbx_out_event_match(const char *pattern, const char *event)
{
	size_t n;

	if (!pattern || !event)
		return false;
	n = strlen(pattern);
	if (n >= 2 && pattern[n - 2] == '.' && pattern[n - 1] == '*')
		return strncmp(pattern, event, n - 1) == 0;
	if (n >= 1 && pattern[n - 1] == '.')
		return strncmp(pattern, event, n) == 0;
	return strcmp(pattern, event) == 0;
}
