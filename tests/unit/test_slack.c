/*
 * Slack approvals without a network: Slack's published signing example,
 * the verification rules, the replay cache, form and payload parsing,
 * button MACs, URL rules, escaping, the slack: section of
 * the policy, and the message a request renders to.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "slack_int.h"

#define REFERENCE SBX_TEST_SRCDIR "/packaging/examples/policy.yaml"

/* Slack's worked example ("Verifying requests from Slack"). */
#define DOC_SECRET "8f742231b10e8888abcd99yyyzzz85a5"
#define DOC_TS "1531420618"
#define DOC_BODY                                                                              \
	"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=" \
	"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2F"    \
	"webhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F"      \
	"T1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015."        \
	"47445629121.803a0bc887a14d10d2c447fce8b6703c"
#define DOC_SIG "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
#define DOC_NOW 1531420618

static enum slack_verdict verify(const char *ts, const char *sig, const char *body, int64_t now)
{
	int64_t t = 0;

	return slack_verify(DOC_SECRET, strlen(DOC_SECRET), ts, sig, body, strlen(body), now, &t);
}

/* ---- signatures ------------------------------------------------------------------ */

Test(sign, slack_published_example)
{
	char sig[SLACK_SIG_LEN + 1];

	cr_assert_eq(slack_sign(DOC_SECRET, strlen(DOC_SECRET), DOC_TS, DOC_BODY, strlen(DOC_BODY),
				sig), 0);
	cr_assert_str_eq(sig, DOC_SIG);
	cr_assert_eq(verify(DOC_TS, DOC_SIG, DOC_BODY, DOC_NOW + 60), SLACK_SIG_OK);
}

Test(sign, refuses_a_changed_body_or_secret)
{
	char body[] = DOC_BODY;
	int64_t t;

	body[10] ^= 1;
	cr_assert_eq(verify(DOC_TS, DOC_SIG, body, DOC_NOW), SLACK_SIG_MISMATCH);
	cr_assert_eq(slack_verify("another", 7, DOC_TS, DOC_SIG, DOC_BODY, strlen(DOC_BODY), DOC_NOW,
				  &t), SLACK_SIG_MISMATCH);
	/* One digit of the signature off, and a truncated one. */
	cr_assert_eq(verify(DOC_TS, "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b504",
			    DOC_BODY, DOC_NOW), SLACK_SIG_MISMATCH);
	cr_assert_eq(verify(DOC_TS, "v0=a2114d57", DOC_BODY, DOC_NOW), SLACK_SIG_MISMATCH);
	/* The timestamp is part of what is signed. */
	cr_assert_eq(verify("1531420619", DOC_SIG, DOC_BODY, DOC_NOW), SLACK_SIG_MISMATCH);
}

Test(sign, refuses_times_more_than_five_minutes_off)
{
	cr_assert_eq(verify(DOC_TS, DOC_SIG, DOC_BODY, DOC_NOW + 300), SLACK_SIG_OK);
	cr_assert_eq(verify(DOC_TS, DOC_SIG, DOC_BODY, DOC_NOW - 300), SLACK_SIG_OK);
	cr_assert_eq(verify(DOC_TS, DOC_SIG, DOC_BODY, DOC_NOW + 301), SLACK_SIG_STALE);
	cr_assert_eq(verify(DOC_TS, DOC_SIG, DOC_BODY, DOC_NOW - 301), SLACK_SIG_STALE);
}

Test(sign, refuses_missing_or_malformed_headers)
{
	int64_t t;

	cr_assert_eq(slack_verify(DOC_SECRET, strlen(DOC_SECRET), NULL, DOC_SIG, DOC_BODY,
				  strlen(DOC_BODY), DOC_NOW, &t), SLACK_SIG_MISSING);
	cr_assert_eq(slack_verify(DOC_SECRET, strlen(DOC_SECRET), DOC_TS, NULL, DOC_BODY,
				  strlen(DOC_BODY), DOC_NOW, &t), SLACK_SIG_MISSING);
	cr_assert_eq(verify("", DOC_SIG, DOC_BODY, DOC_NOW), SLACK_SIG_BAD_TS);
	cr_assert_eq(verify("-1531420618", DOC_SIG, DOC_BODY, DOC_NOW), SLACK_SIG_BAD_TS);
	cr_assert_eq(verify("1531420618.5", DOC_SIG, DOC_BODY, DOC_NOW), SLACK_SIG_BAD_TS);
	cr_assert_eq(verify("99999999999999999999999", DOC_SIG, DOC_BODY, DOC_NOW),
		     SLACK_SIG_BAD_TS);
}

/* ---- replay cache ------------------------------------------------------------------- */

Test(replay, a_signature_is_accepted_once_while_it_could_be_valid)
{
	struct slack_replay *c = slack_replay_new(2);

	cr_assert_not_null(c);
	cr_assert_eq(slack_replay_check(c, "v0=aa", 1000, 1000), 0);
	cr_assert_eq(slack_replay_check(c, "v0=aa", 1000, 1100), 1);
	cr_assert_eq(slack_replay_check(c, "v0=bb", 1000, 1100), 0);
	/* Full of live entries: refused rather than forgetting one. */
	cr_assert_eq(slack_replay_check(c, "v0=cc", 1000, 1100), -1);
	/* Once the timestamps are too old to pass verification anyway, the
	 * entries go and there is room again. */
	cr_assert_eq(slack_replay_check(c, "v0=cc", 1301, 1301), 0);
	slack_replay_free(c);
}

/* ---- form and payload ------------------------------------------------------------- */

Test(form, decodes_the_payload_field)
{
	const char *body = "token=x&payload=%7B%22a%22%3A+%22b%2Bc%22%7D&other=1";
	char *v = slack_form_value(body, strlen(body), "payload");

	cr_assert_not_null(v);
	cr_assert_str_eq(v, "{\"a\": \"b+c\"}");
	free(v);
	v = slack_form_value(body, strlen(body), "other");
	cr_assert_str_eq(v, "1");
	free(v);
	cr_assert_null(slack_form_value(body, strlen(body), "pay"));
	cr_assert_null(slack_form_value(body, strlen(body), "missing"));
}

Test(form, refuses_bad_escapes_and_nul)
{
	const char *bad[] = { "payload=%7", "payload=%zz", "payload=a%00b", "payload=%" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_null(slack_form_value(bad[i], strlen(bad[i]), "payload"), "%s", bad[i]);
}

#define PAYLOAD(type, action, value)                                                        \
	"{\"type\":\"" type "\",\"user\":{\"id\":\"U0FRANK\",\"username\":\"frank\"},"      \
	"\"response_url\":\"https://hooks.slack.com/actions/T1/2/x\",\"actions\":[{"         \
	"\"action_id\":\"" action "\",\"type\":\"button\",\"value\":\"" value "\"}]}"

Test(payload, a_button_press)
{
	struct slack_click c;
	char why[256];

	cr_assert_eq(slack_parse_click(PAYLOAD("block_actions", "sbx_approve", "v1.7.ab"), &c, why,
				       sizeof(why)), SLACK_CLICK_OK, "%s", why);
	cr_assert_str_eq(c.user_id, "U0FRANK");
	cr_assert_str_eq(c.action, "approve");
	cr_assert_str_eq(c.value, "v1.7.ab");
	cr_assert_str_eq(c.response_url, "https://hooks.slack.com/actions/T1/2/x");
	cr_assert_eq(slack_parse_click(PAYLOAD("block_actions", "sbx_deny", "v1.7.ab"), &c, why,
				       sizeof(why)), SLACK_CLICK_OK);
	cr_assert_str_eq(c.action, "deny");
}

Test(payload, other_interactions_are_unknown_not_malformed)
{
	struct slack_click c;
	char why[256];

	cr_assert_eq(slack_parse_click(PAYLOAD("view_submission", "sbx_approve", "v"), &c, why,
				       sizeof(why)), SLACK_CLICK_UNKNOWN);
	cr_assert_eq(slack_parse_click(PAYLOAD("block_actions", "launch_rockets", "v"), &c, why,
				       sizeof(why)), SLACK_CLICK_UNKNOWN);
	/* Still known: who pressed and where to answer. */
	cr_assert_str_eq(c.user_id, "U0FRANK");
	cr_assert_str_eq(c.response_url, "https://hooks.slack.com/actions/T1/2/x");
}

Test(payload, malformed)
{
	const char *bad[] = {
		"not json",
		"[1,2]",
		"{\"type\":\"block_actions\"}",
		"{\"type\":\"block_actions\",\"user\":{\"id\":\"U 1\"}}",
		"{\"type\":\"block_actions\",\"user\":{\"id\":\"U1\"},\"user\":{\"id\":\"U2\"}}",
		"{\"type\":\"block_actions\",\"user\":{\"id\":\"U1\"},\"response_url\":7}",
	};
	struct slack_click c;
	char why[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(slack_parse_click(bad[i], &c, why, sizeof(why)), SLACK_CLICK_MALFORMED,
			     "%s", bad[i]);
}

/* ---- buttons ----------------------------------------------------------------------- */

static const uint8_t KEY[SLACK_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };

static struct sbx_req req(uint32_t id, char *user, char *role, int64_t created)
{
	struct sbx_req r = { .id = id, .user = user, .role = role, .created_at = created };

	return r;
}

Test(button, value_names_the_request_and_verifies)
{
	struct sbx_req r = req(42, "erin", "sandbox-admin", 1800000000);
	char v[160];
	uint32_t id = 0;

	slack_button_value(KEY, &r, "approve", v, sizeof(v));
	cr_assert_eq(strncmp(v, "v1.42.", 6), 0, "%s", v);
	cr_assert_eq(strlen(v), 6 + 64);
	cr_assert_eq(slack_button_id(v, &id), 0);
	cr_assert_eq(id, 42);
	cr_assert(slack_button_ok(KEY, &r, "approve", v));
}

Test(button, cannot_be_recycled_or_forged)
{
	struct sbx_req r = req(42, "erin", "sandbox-admin", 1800000000);
	struct sbx_req other = req(43, "erin", "sandbox-admin", 1800000000);
	struct sbx_req reused = req(42, "dave", "sandbox-admin", 1800000500);
	uint8_t key2[SLACK_KEY_LEN] = { 9 };
	char v[160], forged[160];

	slack_button_value(KEY, &r, "approve", v, sizeof(v));
	/* Deny's button does not approve, and vice versa. */
	cr_assert_not(slack_button_ok(KEY, &r, "deny", v));
	/* Another request, or the same id in a journal started afresh. */
	cr_assert_not(slack_button_ok(KEY, &other, "approve", v));
	cr_assert_not(slack_button_ok(KEY, &reused, "approve", v));
	/* Another broker's key. */
	cr_assert_not(slack_button_ok(key2, &r, "approve", v));
	/* The id edited to point at another request. */
	snprintf(forged, sizeof(forged), "v1.43.%s", v + 6);
	cr_assert_not(slack_button_ok(KEY, &other, "approve", forged));
	/* A changed or shortened MAC. */
	snprintf(forged, sizeof(forged), "%s", v);
	forged[10] = forged[10] == 'a' ? 'b' : 'a';
	cr_assert_not(slack_button_ok(KEY, &r, "approve", forged));
	forged[10] = v[10];
	forged[strlen(forged) - 1] = '\0';
	cr_assert_not(slack_button_ok(KEY, &r, "approve", forged));
}

Test(button, ids_parse_strictly)
{
	const char *bad[] = { "", "v1.", "v1..ab", "v2.4.ab", "v1.0.ab", "v1.4ab", "v1.99999999999.a",
			      "v1.-4.ab" };
	uint32_t id;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(slack_button_id(bad[i], &id), -1, "%s", bad[i]);
	cr_assert_eq(slack_button_id("v1.4294967295.x", &id), 0);
	cr_assert_eq(id, 4294967295u);
}

/* ---- URLs, backoff, escaping ---------------------------------------------------------- */

Test(url, https_or_loopback_http)
{
	char why[200];

	cr_assert_eq(slack_url_ok("https://hooks.slack.com/services/T0/B0/x", why, sizeof(why)), 0);
	cr_assert_eq(slack_url_ok("http://127.0.0.1:8080/services/x", why, sizeof(why)), 0);
	cr_assert_eq(slack_url_ok("http://localhost/x", why, sizeof(why)), 0);
	cr_assert_eq(slack_url_ok("http://[::1]:9/x", why, sizeof(why)), 0);
	cr_assert_eq(slack_url_ok("http://hooks.slack.com/services/x", why, sizeof(why)), -1);
	cr_assert(strstr(why, "https://"), "%s", why);
	cr_assert_eq(slack_url_ok("ftp://hooks.slack.com/x", why, sizeof(why)), -1);
	cr_assert_eq(slack_url_ok("hooks.slack.com/x", why, sizeof(why)), -1);
	cr_assert_eq(slack_url_ok("", why, sizeof(why)), -1);
}

Test(url, same_origin)
{
	cr_assert(slack_same_origin("https://hooks.slack.com/services/T/B/x",
				    "https://hooks.slack.com/actions/T/1/y"));
	cr_assert(slack_same_origin("https://hooks.slack.com/a", "https://HOOKS.slack.com:443/b"));
	cr_assert_not(slack_same_origin("https://hooks.slack.com/a", "https://evil.example/b"));
	cr_assert_not(slack_same_origin("https://hooks.slack.com/a", "http://hooks.slack.com/b"));
	cr_assert_not(slack_same_origin("http://127.0.0.1:80/a", "http://127.0.0.1:81/a"));
	cr_assert_not(slack_same_origin("https://hooks.slack.com/a", "not a url"));
}

Test(backoff, doubles_up_to_five_minutes)
{
	cr_assert_eq(slack_backoff_ms(1), 1000);
	cr_assert_eq(slack_backoff_ms(2), 2000);
	cr_assert_eq(slack_backoff_ms(5), 16000);
	cr_assert_eq(slack_backoff_ms(9), 256000);
	cr_assert_eq(slack_backoff_ms(10), 300000);
	cr_assert_eq(slack_backoff_ms(1000), 300000);
}

Test(escape, no_mentions_links_or_control_characters)
{
	char out[200];

	slack_escape("<!channel> & <https://x|y>", out, sizeof(out));
	cr_assert_str_eq(out, "&lt;!channel&gt; &amp; &lt;https://x|y&gt;");
	slack_escape("a\tb\nc\x1b[31m", out, sizeof(out));
	cr_assert_str_eq(out, "a b\nc [31m");
	slack_escape("bad \xff\xc3 utf8", out, sizeof(out));
	cr_assert_str_eq(out, "bad ?? utf8");
}

Test(escape, cuts_at_a_character_boundary)
{
	char out[12];

	/* "é" is two bytes: never split, and the cut is marked. */
	slack_escape("ééééééééé", out, sizeof(out));
	cr_assert_str_eq(out, "éééé...");
	slack_escape("short", out, sizeof(out));
	cr_assert_str_eq(out, "short");
}

Test(escape, mrkdwn_drops_invisible_characters)
{
	char out[200];

	/* RLO, zero-width space, BOM, a C1 control: gone; a newline stays
	 * (sbx's own text has lines). */
	slack_escape("a\u202eb\u200bc\ufeffd\xc2\x9b" "e\nf", out, sizeof(out));
	cr_assert_str_eq(out, "abcde\nf");
}

/* Text a person typed, for plain_text: nothing in it may act as Slack
 * syntax or lay itself out as lines of sbx's. */
Test(plain, each_attack_is_neutralized)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		/* mrkdwn and emoji codes stay as typed: plain_text (emoji
		 * false) shows them as they are, bold or green tick never. */
		{ "*APPROVED*", "*APPROVED*" },
		{ "`sbxctl approve 7` ```done```", "`sbxctl approve 7` ```done```" },
		{ ":white_check_mark: approved", ":white_check_mark: approved" },
		/* Bidi overrides and isolates, zero-width characters, BOM. */
		{ "fix \u202edeganam\u202c now", "fix deganam now" },
		{ "a\u2066b\u2069c\u200dd\u200ee\ufefff\u2060g", "abcdefg" },
		/* Line breaks of every kind fold into one space; nothing at
		 * either end. */
		{ "\n*Status:* approved", "*Status:* approved" },
		{ "need root\n\n*Status:* approved by frank", "need root *Status:* approved by frank" },
		{ "a\r\nb\tc\u2028d\u2029e\xc2\x85" "f\u00a0\u3000g  ", "a b c d e f g" },
		/* Other controls go (C0, DEL, C1), invalid UTF-8 shows as '?'. */
		{ "a\x01" "b\x1b[31mc\x7f" "d\xc2\x9b" "e", "ab[31mcde" },
		{ "bad \xff\xc0\xaf \xed\xa0\x80 utf8", "bad ??? ??? utf8" },
		/* Mentions and links: Slack reads & < > in every text object. */
		{ "<!channel> look", "&lt;!channel&gt; look" },
		{ "<https://evil|click>", "&lt;https://evil|click&gt;" },
		{ "<@U024BE7LH> & <#C0>", "&lt;@U024BE7LH&gt; &amp; &lt;#C0&gt;" },
		{ "", "" },
		{ "\u202e\u200b \n", "" },
	};
	char out[200];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		slack_plain(cases[i].in, out, sizeof(out));
		cr_assert_str_eq(out, cases[i].out, "case %zu", i);
	}
}

Test(plain, a_10k_reason_is_cut_at_a_character_boundary)
{
	char *big = malloc(10 * 1024 + 1), out[2900];
	size_t n;

	cr_assert_not_null(big);
	/* 5120 two-byte characters, one more byte than fits anywhere. */
	for (size_t i = 0; i < 10 * 1024; i += 2)
		memcpy(big + i, "\xc3\xa9", 2);
	big[10 * 1024] = '\0';
	slack_plain(big, out, sizeof(out));
	n = strlen(out);
	cr_assert_lt(n, sizeof(out));
	cr_assert_eq(strcmp(out + n - 3, "..."), 0, "the cut is marked");
	/* Only whole characters before the mark. */
	cr_assert_eq((n - 3) % 2, 0);
	for (size_t i = 0; i < n - 3; i += 2)
		cr_assert(out[i] == '\xc3' && out[i + 1] == '\xa9', "byte %zu", i);
	free(big);
}

/* ---- the slack: section ----------------------------------------------------------------- */

static const char *BASE =
	"broker: { host: sbx-01 }\n"
	"users: { erin: {}, frank: {} }\n"
	"roles:\n"
	"  r: { hosts: [\"sbx-*\"], eligible: { users: [erin] }, approvers: { users: [frank] } }\n";

/* The settings of the last policy load_with() loaded. */
static struct sbx_settings S;

static int load_with(const char *slack, struct sbx_policy **p, struct sbx_policy_errors *e)
{
	char buf[2048];

	snprintf(buf, sizeof(buf), "%s%s", BASE, slack);
	return sbx_policy_load_buffer(buf, strlen(buf), "t.yaml", p, &S, e);
}

Test(policy, no_section_no_slack)
{
	struct sbx_policy *p = NULL;

	cr_assert_eq(load_with("", &p, NULL), 0);
	cr_assert_not(S.slack.enabled);
	sbx_policy_free(p);
}

Test(policy, defaults_and_values)
{
	struct sbx_policy *p = NULL;

	cr_assert_eq(load_with("slack:\n  webhook_url_file: /etc/sbx/w\n"
			       "  signing_secret_file: /etc/sbx/s\n", &p, NULL), 0);
	cr_assert(S.slack.enabled);
	cr_assert_str_eq(S.slack.webhook_url_file, "/etc/sbx/w");
	cr_assert_str_eq(S.slack.signing_secret_file, "/etc/sbx/s");
	cr_assert_str_eq(S.slack.listen_host, "127.0.0.1");
	cr_assert_eq(S.slack.listen_port, 8089);
	cr_assert_str_eq(S.slack.request_path, "/slack/interactive");
	cr_assert_eq(S.slack.timeout, 10);
	sbx_policy_free(p);
	cr_assert_eq(load_with("slack:\n  webhook_url_file: /w\n  signing_secret_file: /s\n"
			       "  listen: \"[::1]:9000\"\n  request_path: /hooks/slack\n"
			       "  timeout: 30s\n", &p, NULL), 0);
	cr_assert_str_eq(S.slack.listen_host, "::1");
	cr_assert_eq(S.slack.listen_port, 9000);
	cr_assert_str_eq(S.slack.request_path, "/hooks/slack");
	cr_assert_eq(S.slack.timeout, 30);
	sbx_policy_free(p);
}

Test(policy, errors_name_the_line)
{
	struct sbx_policy *p = NULL;
	struct sbx_policy_errors e = { 0 };
	const char *want[] = {
		"slack needs signing_secret_file",
		"webhook_url_file must be an absolute path",
		"listen must be ADDRESS:PORT",
		"request_path must be a URL path",
		"timeout must be at most 5m",
		"unknown key 'colour' in slack",
	};

	cr_assert_eq(load_with("slack:\n  webhook_url_file: w\n  listen: localhost:80\n"
			       "  request_path: /a b\n  timeout: 10m\n  colour: red\n", &p, &e), -1);
	cr_assert_eq(e.n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < e.n; i++) {
		cr_assert(strstr(e.v[i].msg, want[i]), "%s", e.v[i].msg);
		cr_assert_geq(e.v[i].line, 5);
	}
	sbx_policy_errors_free(&e);
	cr_assert_eq(load_with("slack:\n  webhook_url_file: /w\n  signing_secret_file: /s\n"
			       "  listen: 127.0.0.1:70000\n", &p, NULL), -1);
	cr_assert_eq(load_with("slack:\n  webhook_url_file: /w\n  signing_secret_file: /s\n"
			       "  listen: \"::1:80\"\n", &p, NULL), -1);
}

/* ---- the message ------------------------------------------------------------------------- */

static struct sbx_policy *reference(void)
{
	struct sbx_policy *p = NULL;

	cr_assert_eq(sbx_policy_load_file(REFERENCE, &p, NULL, NULL), 0);
	return p;
}

/* The text of every block and field, joined: what a reader sees. */
static void all_text(const json_t *msg, char *out, size_t len)
{
	size_t i, k, off = 0;
	json_t *bl, *f;

	out[0] = '\0';
	json_array_foreach(json_object_get(msg, "blocks"), i, bl) {
		const char *t = json_string_value(json_object_get(json_object_get(bl, "text"), "text"));

		if (t)
			off += (size_t)snprintf(out + off, len - off, "%s\n", t);
		json_array_foreach(json_object_get(bl, "fields"), k, f)
			off += (size_t)snprintf(out + off, len - off, "%s\n",
						json_string_value(json_object_get(f, "text")));
	}
}

static json_t *actions_block(const json_t *msg)
{
	size_t i;
	json_t *bl;

	json_array_foreach(json_object_get(msg, "blocks"), i, bl)
		if (strcmp(json_string_value(json_object_get(bl, "type")), "actions") == 0)
			return bl;
	return NULL;
}

Test(message, a_pending_request_says_everything_and_has_buttons)
{
	struct sbx_broker b = { .policy = reference() };
	struct sbx_req r = req(7, "erin", "sandbox-admin", 1800000000);
	char text[8192], v[160];
	json_t *msg, *act, *el;

	r.reason = "debugging <!channel> & the ingest";
	r.ticket = "INC-42";
	r.duration = 5400;
	r.approvals_needed = 1;
	r.lapses_at = 1800086400;
	msg = slack_render(&b, &r, KEY);
	cr_assert_not_null(msg);
	cr_assert(strstr(json_string_value(json_object_get(msg, "text")), "erin asks for sandbox-admin"));
	all_text(msg, text, sizeof(text));
	cr_assert(strstr(text, "Access request #7: sandbox-admin for erin"), "%s", text);
	cr_assert(strstr(text, "*Who*\nerin"), "%s", text);
	cr_assert(strstr(text, "`sbx-*` (this host: sbx-01)"), "%s", text);
	cr_assert(strstr(text, "*For*\n1h30m"), "%s", text);
	cr_assert(strstr(text, "Ticket: INC-42"), "%s", text);
	cr_assert(strstr(text, "*Approvals*\n0 of 1"), "%s", text);
	cr_assert(strstr(text, "debugging &lt;!channel&gt; &amp; the ingest"), "%s", text);
	cr_assert(strstr(text, "erin's manager (frank) or security-leads (frank, grace)"), "%s",
		  text);
	act = actions_block(msg);
	cr_assert_not_null(act);
	cr_assert_str_eq(json_string_value(json_object_get(act, "block_id")), "sbx-request-7");
	el = json_array_get(json_object_get(act, "elements"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(el, "action_id")), "sbx_approve");
	cr_assert(slack_button_ok(KEY, &r, "approve",
				  json_string_value(json_object_get(el, "value"))));
	el = json_array_get(json_object_get(act, "elements"), 1);
	cr_assert_str_eq(json_string_value(json_object_get(el, "action_id")), "sbx_deny");
	slack_button_value(KEY, &r, "deny", v, sizeof(v));
	cr_assert_str_eq(json_string_value(json_object_get(el, "value")), v);
	json_decref(msg);
	sbx_policy_free(b.policy);
}

Test(message, outcomes_have_no_buttons)
{
	struct sbx_broker b = { .policy = reference() };
	struct sbx_req r = req(7, "erin", "sandbox-admin", 1800000000);
	struct sbx_approval a = { .who = "frank" };
	char text[8192];
	json_t *msg;

	r.duration = 3600;
	r.approvals_needed = 1;
	r.approvals = &a;
	r.n_approvals = 1;
	r.state = SBX_REQ_ACTIVE;
	r.expires_at = 1800003600;
	msg = slack_render(&b, &r, KEY);
	all_text(msg, text, sizeof(text));
	cr_assert(strstr(text, "*Approved* by frank"), "%s", text);
	cr_assert(strstr(text, "<!date^1800003600^"), "%s", text);
	cr_assert_null(actions_block(msg));
	json_decref(msg);

	r.state = SBX_REQ_DENIED;
	r.n_approvals = 0;
	r.ended_by = "grace";
	r.end_reason = "not <during> the freeze";
	msg = slack_render(&b, &r, KEY);
	all_text(msg, text, sizeof(text));
	cr_assert(strstr(text, "*Denied* by grace."), "%s", text);
	cr_assert(strstr(text, "Reason given by grace: not &lt;during&gt; the freeze"), "%s", text);
	cr_assert_null(actions_block(msg));
	json_decref(msg);
	sbx_policy_free(b.policy);
}

Test(message, state_keys)
{
	struct sbx_req r = req(1, "erin", "r", 1);
	char key[32];

	slack_state_key(&r, key, sizeof(key));
	cr_assert_str_eq(key, "pending/0");
	cr_assert_not(slack_state_final(key));
	r.n_approvals = 1;
	slack_state_key(&r, key, sizeof(key));
	cr_assert_str_eq(key, "pending/1");
	r.state = SBX_REQ_ACTIVE;
	slack_state_key(&r, key, sizeof(key));
	cr_assert_not(slack_state_final(key));
	r.state = SBX_REQ_LAPSED;
	slack_state_key(&r, key, sizeof(key));
	cr_assert_str_eq(key, "lapsed");
	cr_assert(slack_state_final(key));
}

/* Where a marker typed by someone turns up in a message: every text
 * object whose text has it must be plain_text with emoji false, and no
 * other string (the notification "text", a button value...) may have it.
 * Returns how many places have it. */
static size_t typed_places(const json_t *v, const char *marker, const char *key)
{
	size_t n = 0, i;
	const char *k;
	json_t *x;

	if (json_is_string(v)) {
		cr_assert_null(strstr(json_string_value(v), marker),
			       "\"%s\" has what someone typed: %s", key, json_string_value(v));
		return 0;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			n += typed_places(x, marker, key);
		return n;
	}
	if (!json_is_object(v))
		return 0;
	if (json_is_string(json_object_get(v, "text")) && json_is_string(json_object_get(v, "type")) &&
	    strstr(json_string_value(json_object_get(v, "text")), marker)) {
		cr_assert_str_eq(json_string_value(json_object_get(v, "type")), "plain_text", "%s",
				 json_string_value(json_object_get(v, "text")));
		cr_assert(json_is_false(json_object_get(v, "emoji")), "%s",
			  json_string_value(json_object_get(v, "text")));
		return 1;
	}
	json_object_foreach((json_t *)v, k, x)
		n += typed_places(x, marker, k);
	return n;
}

Test(message, what_people_typed_is_only_plain_text)
{
	struct sbx_broker b = { .policy = reference() };
	struct sbx_req r = req(7, "erin", "sandbox-admin", 1800000000);
	struct sbx_approval a = { .who = "frank", .comment = "XQ3 ok <!here> *fine*" };
	json_t *msg;
	char *dump;

	r.reason = "XQ1 \n*Status:* :white_check_mark: *APPROVED* by `frank`\u202e <!channel> "
		   "<https://evil|click>";
	r.ticket = "XQ2 <!channel>\nINC-1";
	r.duration = 3600;
	r.approvals_needed = 2;
	r.approvals = &a;
	r.n_approvals = 1;
	r.lapses_at = 1800086400;
	msg = slack_render(&b, &r, KEY);
	cr_assert_eq(typed_places(msg, "XQ1", "message"), 1, "the reason, once");
	cr_assert_eq(typed_places(msg, "XQ2", "message"), 1, "the ticket, once");
	cr_assert_eq(typed_places(msg, "XQ3", "message"), 1, "the comment, once");
	dump = json_dumps(msg, JSON_COMPACT);
	/* Nothing survives that Slack would act on, nor the bidi override;
	 * what is left is in plain text, on one line. */
	cr_assert_null(strstr(dump, "<!channel>"), "%s", dump);
	cr_assert_null(strstr(dump, "<!here>"), "%s", dump);
	cr_assert_null(strstr(dump, "<https://evil"), "%s", dump);
	cr_assert_null(strstr(dump, "\xe2\x80\xae"), "%s", dump);
	cr_assert(strstr(dump, "\"Reason: XQ1 *Status:* :white_check_mark: *APPROVED* by `frank` "
			       "&lt;!channel&gt; &lt;https://evil|click&gt;\""), "%s", dump);
	cr_assert(strstr(dump, "\"Ticket: XQ2 &lt;!channel&gt; INC-1\""), "%s", dump);
	cr_assert(strstr(dump, "\"Comment by frank: XQ3 ok &lt;!here&gt; *fine*\""), "%s", dump);
	/* It is labelled as the requester's, and sbx's own line is mrkdwn. */
	cr_assert(strstr(dump, "*In the requester's words*"), "%s", dump);
	cr_assert(strstr(dump, "{\"type\":\"mrkdwn\",\"text\":\":hourglass_flowing_sand: *Waiting"),
		  "%s", dump);
	free(dump);
	json_decref(msg);

	/* A deny reason and a 10 KiB reason: plain text, cut to Slack's size. */
	r.state = SBX_REQ_DENIED;
	r.ended_by = "grace";
	r.end_reason = "XQ4 *Approved* by frank :white_check_mark:\n";
	r.reason = malloc(10 * 1024 + 8);
	cr_assert_not_null(r.reason);
	memset(r.reason, 'x', 10 * 1024);
	memcpy(r.reason, "XQ1", 3);
	r.reason[10 * 1024] = '\0';
	msg = slack_render(&b, &r, KEY);
	cr_assert_eq(typed_places(msg, "XQ1", "message"), 1);
	cr_assert_eq(typed_places(msg, "XQ4", "message"), 1);
	dump = json_dumps(msg, JSON_COMPACT);
	cr_assert(strstr(dump, "\"Reason given by grace: XQ4 *Approved* by frank :white_check_mark:\""),
		  "%s", dump);
	free(dump);
	{
		size_t i;
		json_t *bl;

		json_array_foreach(json_object_get(msg, "blocks"), i, bl) {
			const char *t = json_string_value(json_object_get(json_object_get(bl, "text"),
									  "text"));

			cr_assert(!t || strlen(t) <= 3000, "block %zu has %zu bytes", i, strlen(t));
		}
	}
	json_decref(msg);
	free(r.reason);
	sbx_policy_free(b.policy);
}
