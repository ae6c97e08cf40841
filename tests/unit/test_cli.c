/* The CLIs' pure helpers: argument parsing, exit codes, decoding replies
 * into JSON, and the text, CSV and key=value renderings. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "output.h"
#include "frame.h"
#include "timeutil.h"

/* Run fn against a memory stream and return what it wrote (malloc'd). */
#define CAPTURE(out, call)                                   \
	do {                                                 \
		size_t cap_len_ = 0;                         \
		FILE *f = open_memstream(&(out), &cap_len_); \
		cr_assert_not_null(f);                       \
		call;                                        \
		fclose(f);                                   \
	} while (0)

/* ---- argument parsing ------------------------------------------------ */

Test(cli_args, id_accepts_plain_decimal)
{
	uint32_t id = 0;

	cr_assert_eq(sbx_cli_parse_id("42", &id), 0);
	cr_assert_eq(id, 42);
	cr_assert_eq(sbx_cli_parse_id("4294967295", &id), 0);
	cr_assert_eq(id, UINT32_MAX);
}

Test(cli_args, id_rejects_everything_else)
{
	uint32_t id = 7;

	cr_assert_eq(sbx_cli_parse_id("", &id), -EINVAL);
	cr_assert_eq(sbx_cli_parse_id("abc", &id), -EINVAL);
	cr_assert_eq(sbx_cli_parse_id("-1", &id), -EINVAL);
	cr_assert_eq(sbx_cli_parse_id("+1", &id), -EINVAL);
	cr_assert_eq(sbx_cli_parse_id(" 42", &id), -EINVAL);
	cr_assert_eq(sbx_cli_parse_id("42x", &id), -EINVAL);
	cr_assert_eq(sbx_cli_parse_id("0x10", &id), -EINVAL);
	cr_assert_eq(sbx_cli_parse_id("0", &id), -ERANGE);
	cr_assert_eq(sbx_cli_parse_id("4294967296", &id), -ERANGE);
	cr_assert_eq(sbx_cli_parse_id("99999999999999999999999", &id), -ERANGE);
	cr_assert_eq(id, 7, "a failed parse must not touch the output");
}

Test(cli_args, long_bounds)
{
	long v = 0;

	cr_assert_eq(sbx_cli_parse_long("5000", 1, 600000, &v), 0);
	cr_assert_eq(v, 5000);
	cr_assert_eq(sbx_cli_parse_long("600001", 1, 600000, &v), -ERANGE);
	cr_assert_eq(sbx_cli_parse_long("0", 1, 600000, &v), -ERANGE);
	cr_assert_eq(sbx_cli_parse_long("1e3", 1, 600000, &v), -EINVAL);
}

Test(cli_args, when_rfc3339_and_date)
{
	int64_t us = 0;

	cr_assert_eq(sbx_cli_parse_when("2026-11-28T09:00:00Z", 0, &us), 0);
	cr_assert_eq(us, INT64_C(1795856400) * 1000000);
	cr_assert_eq(sbx_cli_parse_when("2026-11-28", 0, &us), 0);
	cr_assert_eq(us, INT64_C(1795824000) * 1000000);
}

Test(cli_args, when_duration_means_ago)
{
	int64_t now = INT64_C(1795856400) * 1000000, us = 0;

	cr_assert_eq(sbx_cli_parse_when("2h", now, &us), 0);
	cr_assert_eq(us, now - INT64_C(7200) * 1000000);
	cr_assert_eq(sbx_cli_parse_when("1d12h", now, &us), 0);
	cr_assert_eq(us, now - INT64_C(129600) * 1000000);
}

Test(cli_args, when_rejects_junk)
{
	int64_t us = 0;

	cr_assert_eq(sbx_cli_parse_when("", 0, &us), -EINVAL);
	cr_assert_eq(sbx_cli_parse_when("yesterday", 0, &us), -EINVAL);
	cr_assert_eq(sbx_cli_parse_when("90", 0, &us), -EINVAL);
	cr_assert_eq(sbx_cli_parse_when("2026-13-01", 0, &us), -EINVAL);
}

/* ---- exit codes ------------------------------------------------------ */

Test(cli_exit, status_mapping_matches_the_manual)
{
	cr_assert_eq(sbx_cli_exit_for_status(SBX_ST_OK), 0);
	cr_assert_eq(sbx_cli_exit_for_status(SBX_ST_REFUSED), 1);
	cr_assert_eq(sbx_cli_exit_for_status(SBX_ST_BADINPUT), 2);
	cr_assert_eq(sbx_cli_exit_for_status(SBX_ST_NOTFOUND), 2);
	cr_assert_eq(sbx_cli_exit_for_status(SBX_ST_UNAVAILABLE), 1);
	cr_assert_eq(sbx_cli_exit_for_status(SBX_ST_PROTO), 1);
	cr_assert_eq(sbx_cli_exit_for_status(SBX_ST_INTERNAL), 1);
	cr_assert_eq(sbx_cli_exit_for_status(99), 1);
}

Test(cli_exit, transport_errors_are_unreachable)
{
	cr_assert_eq(sbx_cli_exit_for_errno(-ENOENT), 3);
	cr_assert_eq(sbx_cli_exit_for_errno(-ECONNREFUSED), 3);
	cr_assert_eq(sbx_cli_exit_for_errno(-ETIMEDOUT), 3);
	cr_assert_eq(sbx_cli_exit_for_errno(-ECONNRESET), 3);
	cr_assert_eq(sbx_cli_exit_for_errno(-EACCES), 3);
	cr_assert_eq(sbx_cli_exit_for_errno(-EBADMSG), 1);
	cr_assert_eq(sbx_cli_exit_for_errno(-EMSGSIZE), 2);
}

/* ---- decoding -------------------------------------------------------- */

/* A STATUS reply carrying one pending request, as the broker sends it. */
static void pending_reply(sbx_msg *m)
{
	cr_assert_eq(sbx_msg_init_reply(m, SBX_OP_STATUS | SBX_OP_REPLY, SBX_ST_OK, NULL), 0);
	sbx_msg_begin_rec(m, SBX_F_REQUEST);
	sbx_msg_put_u32(m, SBX_F_ID, 42);
	sbx_msg_put_str(m, SBX_F_USER, "erin");
	sbx_msg_put_str(m, SBX_F_ROLE, "sandbox-admin");
	sbx_msg_put_str(m, SBX_F_STATE, "pending");
	sbx_msg_put_i64(m, SBX_F_DURATION, 3600);
	sbx_msg_put_i64(m, SBX_F_CREATED_AT, 1795824600);    /* 2026-11-28T00:10:00Z */
	sbx_msg_put_i64(m, SBX_F_EXPIRES_AT, 1795911000);    /* 2026-11-29T00:10:00Z */
	sbx_msg_put_str(m, SBX_F_REASON, "restart the import job");
	sbx_msg_put_u32(m, SBX_F_APPROVALS_NEEDED, 1);
	sbx_msg_put_str(m, SBX_F_UNIX_GROUP, "sbx-admin");
	sbx_msg_put_u32(m, SBX_F_GID, 60001);
	sbx_msg_put_str(m, SBX_F_ACTOR, "erin");
	sbx_msg_put_str(m, SBX_F_APPROVERS, "erin's manager (frank) or security-leads");
	sbx_msg_end_rec(m);
	cr_assert_eq(sbx_msg_finish(m), 0);
}

Test(cli_decode, request_has_every_key)
{
	sbx_msg m = { 0 };
	json_t *r;

	pending_reply(&m);
	r = sbx_out_reply_record(m.buf, m.len, SBX_F_REQUEST, SBX_OUT_REQUEST);
	cr_assert_not_null(r);
	cr_assert_eq(json_integer_value(json_object_get(r, "id")), 42);
	cr_assert_str_eq(sbx_out_str(r, "user"), "erin");
	cr_assert_str_eq(sbx_out_str(r, "state"), "pending");
	cr_assert_str_eq(sbx_out_str(r, "expires_at"), "2026-11-29T00:10:00Z");
	cr_assert_str_eq(sbx_out_str(r, "created_at"), "2026-11-28T00:10:00Z");
	cr_assert_eq(json_integer_value(json_object_get(r, "duration")), 3600);
	cr_assert_str_eq(sbx_out_str(r, "duration_text"), "1h");
	cr_assert_str_eq(sbx_out_str(r, "requested_by"), "erin");
	cr_assert_eq(json_integer_value(json_object_get(r, "gid")), 60001);
	/* Absent fields are present as null or an empty array. */
	cr_assert(json_is_null(json_object_get(r, "activated_at")));
	cr_assert(json_is_null(json_object_get(r, "ended_at")));
	cr_assert(json_is_null(json_object_get(r, "ticket")));
	cr_assert(json_is_null(json_object_get(r, "extends")));
	cr_assert(json_is_array(json_object_get(r, "approved_by")));
	cr_assert_eq(json_array_size(json_object_get(r, "approved_by")), 0);
	json_decref(r);
	sbx_msg_free(&m);
}

Test(cli_decode, list_collects_every_record_and_repeats)
{
	sbx_msg m = { 0 };
	json_t *a;

	sbx_msg_init_reply(&m, SBX_OP_LIST | SBX_OP_REPLY, SBX_ST_OK, NULL);
	for (uint32_t id = 1; id <= 3; id++) {
		sbx_msg_begin_rec(&m, SBX_F_REQUEST);
		sbx_msg_put_u32(&m, SBX_F_ID, id);
		sbx_msg_put_str(&m, SBX_F_APPROVED_BY, "frank");
		sbx_msg_put_str(&m, SBX_F_APPROVED_BY, "grace");
		sbx_msg_end_rec(&m);
	}
	cr_assert_eq(sbx_msg_finish(&m), 0);
	a = sbx_out_reply_records(m.buf, m.len, SBX_F_REQUEST, SBX_OUT_REQUEST);
	cr_assert_eq(json_array_size(a), 3);
	cr_assert_eq(json_integer_value(json_object_get(json_array_get(a, 2), "id")), 3);
	cr_assert_eq(json_array_size(json_object_get(json_array_get(a, 0), "approved_by")), 2);
	json_decref(a);
	sbx_msg_free(&m);
}

Test(cli_decode, check_reply_fields)
{
	sbx_msg m = { 0 };
	json_t *c;

	sbx_msg_init_reply(&m, SBX_OP_CHECK | SBX_OP_REPLY, SBX_ST_OK, "erin holds grant 42");
	sbx_msg_put_u32(&m, SBX_F_ALLOWED, 1);
	sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
	sbx_msg_put_u32(&m, SBX_F_ID, 42);
	sbx_msg_put_str(&m, SBX_F_VIA, "grant");
	cr_assert_eq(sbx_msg_finish(&m), 0);
	c = sbx_out_decode_reply(m.buf, m.len, SBX_OUT_CHECK);
	cr_assert(json_is_true(json_object_get(c, "allowed")));
	cr_assert_str_eq(sbx_out_str(c, "reason"), "erin holds grant 42");
	cr_assert_str_eq(sbx_out_str(c, "via"), "grant");
	cr_assert(json_is_null(json_object_get(c, "user")));
	cr_assert_null(json_object_get(c, "status"), "STATUS is not part of the answer");
	json_decref(c);
	sbx_msg_free(&m);
}

Test(cli_decode, denied_check_defaults_to_false)
{
	sbx_msg m = { 0 };
	json_t *c;

	sbx_msg_init_reply(&m, SBX_OP_CHECK | SBX_OP_REPLY, SBX_ST_OK, "no");
	cr_assert_eq(sbx_msg_finish(&m), 0);
	c = sbx_out_decode_reply(m.buf, m.len, SBX_OUT_CHECK);
	cr_assert(json_is_false(json_object_get(c, "allowed")));
	json_decref(c);
	sbx_msg_free(&m);
}

Test(cli_decode, explain_nests_memberships_as_roles)
{
	sbx_msg m = { 0 };
	json_t *e, *roles;

	sbx_msg_init_reply(&m, SBX_OP_EXPLAIN | SBX_OP_REPLY, SBX_ST_OK, "needs a grant");
	sbx_msg_put_u32(&m, SBX_F_ALLOWED, 0);
	sbx_msg_put_str(&m, SBX_F_USER, "erin");
	sbx_msg_begin_rec(&m, SBX_F_MEMBERSHIP);
	sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
	sbx_msg_put_str(&m, SBX_F_HOW, "eligible");
	sbx_msg_put_str(&m, SBX_F_VIA, "sre");
	sbx_msg_put_u32(&m, SBX_F_LOGIN, 0);
	sbx_msg_put_u32(&m, SBX_F_HOST_MATCH, 1);
	sbx_msg_end_rec(&m);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	e = sbx_out_decode_reply(m.buf, m.len, SBX_OUT_EXPLAIN);
	roles = json_object_get(e, "roles");
	cr_assert_eq(json_array_size(roles), 1);
	cr_assert_str_eq(sbx_out_str(json_array_get(roles, 0), "how"), "eligible");
	cr_assert(json_is_true(json_object_get(json_array_get(roles, 0), "host_match")));
	cr_assert(json_is_false(json_object_get(json_array_get(roles, 0), "login")));
	cr_assert_str_eq(sbx_out_str(e, "reason"), "needs a grant");
	json_decref(e);
	sbx_msg_free(&m);
}

Test(cli_decode, invalid_utf8_becomes_question_marks_in_json)
{
	sbx_msg m = { 0 };
	json_t *r;

	sbx_msg_init_reply(&m, SBX_OP_STATUS | SBX_OP_REPLY, SBX_ST_OK, NULL);
	sbx_msg_begin_rec(&m, SBX_F_REQUEST);
	sbx_msg_put_str(&m, SBX_F_REASON, "bad \xff byte");
	sbx_msg_end_rec(&m);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	r = sbx_out_reply_record(m.buf, m.len, SBX_F_REQUEST, SBX_OUT_REQUEST);
	cr_assert_not_null(r);
	cr_assert_str_eq(sbx_out_str(r, "reason"), "bad ? byte");
	json_decref(r);
	sbx_msg_free(&m);
}

/* ---- text ------------------------------------------------------------ */

Test(cli_text, pending_sentence)
{
	sbx_msg m = { 0 };
	char *out = NULL;
	json_t *r;

	pending_reply(&m);
	r = sbx_out_reply_record(m.buf, m.len, SBX_F_REQUEST, SBX_OUT_REQUEST);
	CAPTURE(out, sbx_out_print_request(f, r));
	cr_assert_str_eq(out, "request 42: erin asks for sandbox-admin for 1h \u2014 pending, needs 1 "
			      "approval from erin's manager (frank) or security-leads (lapses "
			      "2026-11-29T00:10:00Z)\n");
	free(out);
	json_decref(r);
	sbx_msg_free(&m);
}

Test(cli_text, pending_with_one_of_two_approvals)
{
	json_t *r = json_pack("{s:i, s:s, s:s, s:s, s:s, s:i, s:[s], s:s}", "id", 7, "user",
			      "alice", "role", "prod-data", "state", "pending", "duration_text",
			      "4h", "approvals_needed", 2, "approved_by", "frank", "approvers",
			      "security-leads");
	char *out = NULL;

	CAPTURE(out, sbx_out_print_request(f, r));
	cr_assert_str_eq(out, "request 7: alice asks for prod-data for 4h \u2014 pending, needs 1 more "
			      "approval from security-leads (approved so far by frank)\n");
	free(out);
	json_decref(r);
}

Test(cli_text, active_and_ended_sentences)
{
	json_t *a = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:[s]}", "id", 42, "user", "erin",
			      "role", "sandbox-admin", "state", "active", "duration_text", "1h",
			      "expires_at", "2026-11-28T01:12:00Z", "approved_by", "frank");
	json_t *d = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "id", 43, "user", "erin",
			      "role", "sandbox-admin", "state", "denied", "ended_by", "frank",
			      "ended_at", "2026-11-28T00:15:00Z", "end_reason", "not today");
	char *out = NULL;

	CAPTURE(out, sbx_out_print_request(f, a));
	cr_assert_str_eq(out, "request 42: erin has sandbox-admin for 1h \u2014 active until "
			      "2026-11-28T01:12:00Z, approved by frank\n");
	free(out);
	CAPTURE(out, sbx_out_print_request(f, d));
	cr_assert_str_eq(out, "request 43: erin asked for sandbox-admin \u2014 denied by frank at "
			      "2026-11-28T00:15:00Z: not today\n");
	free(out);
	json_decref(a);
	json_decref(d);
}

Test(cli_text, sentence_sanitizes_broker_text)
{
	json_t *r = json_pack("{s:i, s:s, s:s, s:s}", "id", 1, "user", "erin\x1b[31m", "role",
			      "x", "state", "active");
	char *out = NULL;

	CAPTURE(out, sbx_out_print_request(f, r));
	cr_assert_null(strchr(out, '\x1b'), "escape sequences must not reach the terminal");
	cr_assert_not_null(strstr(out, "erin?[31m"));
	free(out);
	json_decref(r);
}

Test(cli_text, table_aligns_columns)
{
	static const enum sbx_out_col cols[] = { SBX_COL_ID, SBX_COL_ROLE, SBX_COL_STATE,
						 SBX_COL_REASON };
	json_t *reqs = json_pack("[{s:i, s:s, s:s, s:s}, {s:i, s:s, s:s, s:n}]",
				 "id", 5, "role", "sandbox-admin", "state", "active", "reason", "fix",
				 "id", 123, "role", "x", "state", "pending", "reason");
	char *out = NULL;

	CAPTURE(out, sbx_out_print_request_table(f, reqs, cols, 4));
	cr_assert_str_eq(out,
			 "ID   ROLE           STATE    REASON\n"
			 "5    sandbox-admin  active   fix\n"
			 "123  x              pending  -\n");
	free(out);
	json_decref(reqs);
}

Test(cli_text, width_counts_code_points)
{
	cr_assert_eq(sbx_out_width("abc"), 3);
	cr_assert_eq(sbx_out_width("\u2014x"), 2);
	cr_assert_eq(sbx_out_width(""), 0);
}

/* ---- audit output ---------------------------------------------------- */

Test(cli_csv, plain_fields_are_bare)
{
	char *out = NULL;

	CAPTURE(out, sbx_out_csv_field(f, "grant.expired"));
	cr_assert_str_eq(out, "grant.expired");
	free(out);
	CAPTURE(out, sbx_out_csv_field(f, NULL));
	cr_assert_str_eq(out, "");
	free(out);
}

Test(cli_csv, quotes_per_rfc4180)
{
	char *out = NULL;

	CAPTURE(out, sbx_out_csv_field(f, "a,b"));
	cr_assert_str_eq(out, "\"a,b\"");
	free(out);
	CAPTURE(out, sbx_out_csv_field(f, "say \"hi\""));
	cr_assert_str_eq(out, "\"say \"\"hi\"\"\"");
	free(out);
	CAPTURE(out, sbx_out_csv_field(f, "two\r\nlines"));
	cr_assert_str_eq(out, "\"two\r\nlines\"");
	free(out);
	CAPTURE(out, sbx_out_csv_field(f, "{\"reason\":\"x\"}"));
	cr_assert_str_eq(out, "\"{\"\"reason\"\":\"\"x\"\"}\"");
	free(out);
}

Test(cli_kv, strings_numbers_and_objects)
{
	json_t *plain = json_string("frank"), *spaced = json_string("not \"today\""),
	       *empty = json_string(""), *num = json_integer(3600),
	       *obj = json_pack("{s:i}", "a", 1), *ctl = json_string("a\nb");
	char *out = NULL;

	CAPTURE(out, sbx_out_kv_value(f, plain));
	cr_assert_str_eq(out, "frank");
	free(out);
	CAPTURE(out, sbx_out_kv_value(f, spaced));
	cr_assert_str_eq(out, "\"not \\\"today\\\"\"");
	free(out);
	CAPTURE(out, sbx_out_kv_value(f, empty));
	cr_assert_str_eq(out, "\"\"");
	free(out);
	CAPTURE(out, sbx_out_kv_value(f, num));
	cr_assert_str_eq(out, "3600");
	free(out);
	CAPTURE(out, sbx_out_kv_value(f, obj));
	cr_assert_str_eq(out, "{\"a\":1}");
	free(out);
	CAPTURE(out, sbx_out_kv_value(f, ctl));
	cr_assert_str_eq(out, "a?b");
	free(out);
	json_decref(plain);
	json_decref(spaced);
	json_decref(empty);
	json_decref(num);
	json_decref(obj);
	json_decref(ctl);
}

Test(cli_event, exact_and_prefix)
{
	cr_assert(sbx_out_event_match("grant.expired", "grant.expired"));
	cr_assert_not(sbx_out_event_match("grant.expired", "grant.expired2"));
	cr_assert_not(sbx_out_event_match("grant", "grant.expired"));
	cr_assert(sbx_out_event_match("grant.", "grant.activated"));
	cr_assert(sbx_out_event_match("grant.*", "grant.revoked"));
	cr_assert_not(sbx_out_event_match("grant.", "request.created"));
	cr_assert_not(sbx_out_event_match("grant.*", "granted"));
	cr_assert_not(sbx_out_event_match("grant.", NULL));
}
