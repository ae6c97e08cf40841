/*
 * sbxctl drift (drift_cmd.h).  The reply's DRIFT records become JSON
 * objects with fixed keys (docs/cli.md), and the text output is rendered
 * from them, sanitized.
 */
#include "config.h"

#include "drift_cmd.h"

#include "text.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_text(json_t *o, const char *key, const sbx_field *f)
{
	char *s = sbx_field_strdup(f);

	json_object_set_new(o, key, s ? json_string(s) : json_null());
	if (s && !json_object_get(o, key))
		json_object_set_new(o, key, json_string("?"));
	free(s);
}

static json_t *time_of(int64_t secs)
{
	char buf[SBX_RFC3339_LEN];

	sbx_format_rfc3339(secs, buf);
	return json_string(buf);
}

/* One DRIFT record: {"finding", "kind", "subject", "file", "line", "found",
 * "policy", "detected_at"}; absent ones are null. */
static json_t *decode_finding(const sbx_field *rec)
{
	static const char *const keys[] = { "finding", "kind", "subject", "file", "line",
					     "found", "policy", "detected_at" };
	json_t *o = json_object();
	sbx_reader rd;
	sbx_field f;

	if (!o)
		return NULL;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		json_object_set_new(o, keys[i], json_null());
	sbx_reader_init_rec(&rd, rec);
	while (sbx_reader_next(&rd, &f) == 1) {
		switch (f.tag) {
		case SBX_F_FINDING: put_text(o, "finding", &f); break;
		case SBX_F_KIND: put_text(o, "kind", &f); break;
		case SBX_F_SUBJECT: put_text(o, "subject", &f); break;
		case SBX_F_FILE: put_text(o, "file", &f); break;
		case SBX_F_FOUND: put_text(o, "found", &f); break;
		case SBX_F_POLICY_SAYS: put_text(o, "policy", &f); break;
		case SBX_F_LINE:
			json_object_set_new(o, "line", json_integer(sbx_field_u32(&f)));
			break;
		case SBX_F_DETECTED_AT:
			json_object_set_new(o, "detected_at", time_of(sbx_field_i64(&f)));
			break;
		}
	}
	return o;
}

/* {"scans", "scanned_at", "scanning", "findings": [...]} */
static json_t *decode(const struct sbx_cli_reply *rep)
{
	json_t *o = json_pack("{s:i, s:n, s:b, s:[]}", "scans", 0, "scanned_at", "scanning", 0,
			      "findings");
	json_t *list = json_object_get(o, "findings");
	sbx_reader rd;
	sbx_field f;

	if (!o)
		return NULL;
	sbx_reader_init_frame(&rd, rep->frame, rep->len);
	while (sbx_reader_next(&rd, &f) == 1) {
		json_t *x;

		switch (f.tag) {
		case SBX_F_SCANS:
			json_object_set_new(o, "scans", json_integer(sbx_field_u32(&f)));
			break;
		case SBX_F_SCANNED_AT:
			json_object_set_new(o, "scanned_at", time_of(sbx_field_i64(&f)));
			break;
		case SBX_F_SCANNING:
			json_object_set_new(o, "scanning", json_boolean(sbx_field_u32(&f)));
			break;
		case SBX_F_DRIFT:
			x = decode_finding(&f);
			if (!x || json_array_append_new(list, x) < 0) {
				json_decref(o);
				return NULL;
			}
			break;
		}
	}
	return o;
}

static const char *text_of(const json_t *o, const char *key, char *buf, size_t len)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? sbx_sanitize(s, buf, len) : "-";
}

static void print_text(const json_t *o, const char *message)
{
	const json_t *list = json_object_get(o, "findings");
	char msg[1100];

	printf("%s\n", sbx_sanitize(message, msg, sizeof(msg)));
	for (size_t i = 0; i < json_array_size(list); i++) {
		const json_t *f = json_array_get(list, i);
		char a[300], b[300], c[1100], d[1100], e[2100], g[40];

		printf("\n%s  %s  %s\n", text_of(f, "finding", g, sizeof(g)),
		       text_of(f, "kind", a, sizeof(a)), text_of(f, "subject", b, sizeof(b)));
		if (json_is_string(json_object_get(f, "file")))
			printf("  where:   %s:%lld\n", text_of(f, "file", c, sizeof(c)),
			       (long long)json_integer_value(json_object_get(f, "line")));
		printf("  found:   %s\n", text_of(f, "found", e, sizeof(e)));
		printf("  policy:  %s\n", text_of(f, "policy", d, sizeof(d)));
		printf("  since:   %s\n", text_of(f, "detected_at", a, sizeof(a)));
	}
}

int sbx_cmd_drift(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	struct sbx_cli_reply rep = { 0 };
	sbx_msg m = { 0 };
	json_t *o = NULL;
	int rc;

	(void)a;
	sbx_cli_msg_init(c, &m, SBX_OP_DRIFT);
	rc = sbx_cli_call(c, &m, &rep);
	if (rc != SBX_EXIT_OK)
		goto out;
	o = decode(&rep);
	if (!o) {
		sbx_cli_error(c, "out of memory");
		rc = SBX_EXIT_REFUSED;
		goto out;
	}
	if (c->json)
		rc = sbx_cli_print_json(c, o);
	else
		print_text(o, rep.message);
	/* like grep: 1 when there is something to look at */
	if (rc == SBX_EXIT_OK && json_array_size(json_object_get(o, "findings")))
		rc = SBX_EXIT_REFUSED;
out:
	json_decref(o);
	sbx_cli_reply_free(&rep);
	sbx_msg_free(&m);
	return rc;
}

int sbx_cmd_drift_scan(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	struct sbx_cli_reply rep = { 0 };
	char msg[1100];
	sbx_msg m = { 0 };
	int rc;

	(void)a;
	sbx_cli_msg_init(c, &m, SBX_OP_DRIFT_SCAN);
	rc = sbx_cli_call(c, &m, &rep);
	if (rc == SBX_EXIT_OK && c->json) {
		json_t *o = json_pack("{s:s}", "message", rep.message);

		rc = sbx_cli_print_json(c, o);
		json_decref(o);
	} else if (rc == SBX_EXIT_OK) {
		printf("%s\n", sbx_sanitize(rep.message, msg, sizeof(msg)));
	}
	sbx_cli_reply_free(&rep);
	sbx_msg_free(&m);
	return rc;
}
