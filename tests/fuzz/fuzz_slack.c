/*
 * What Slack's callbacks bring (broker/slack/slack_util.c): the form body
 * (slack_form_value), the button press inside it (slack_parse_click), the
 * signature headers (slack_verify, with a fixed secret and timestamps from
 * the input), the button's value (slack_button_id), the response_url
 * (slack_url_ok, slack_same_origin) and mrkdwn escaping (slack_escape).
 * The input is "TIMESTAMP\nSIGNATURE\nBODY".
 */
#include "fuzz.h"

#include "slack_int.h"

#include <errno.h>

#define SECRET "8f742231b10e8888abcd99yyyzzz85a5"
#define NOW 1795000000LL

/* Text for Slack must never carry markup or control characters, and
 * must fit. */
static void check_escape(const char *in, size_t outlen)
{
	char *out = malloc(outlen + 1);

	FUZZ_CHECK(out != NULL, "out of memory");
	out[outlen] = 'X';
	slack_escape(in, out, outlen);
	FUZZ_CHECK(out[outlen] == 'X', "slack_escape wrote past %zu bytes", outlen);
	if (outlen) {
		FUZZ_CHECK(strlen(out) < outlen, "slack_escape overflows");
		for (const unsigned char *p = (const unsigned char *)out; *p; p++)
			FUZZ_CHECK(*p != '<' && *p != '>' && (*p >= 0x20 || *p == '\n') && *p != 0x7f,
				   "raw 0x%02x in escaped text", *p);
	}
	free(out);
}

static void check_click(const char *payload)
{
	struct slack_click c;
	char why[256] = "";
	enum slack_click_kind k = slack_parse_click(payload, &c, why, sizeof(why));
	uint32_t id;

	FUZZ_CHECK(k == SLACK_CLICK_OK || k == SLACK_CLICK_MALFORMED || k == SLACK_CLICK_UNKNOWN,
		   "kind %d", (int)k);
	if (k != SLACK_CLICK_OK) {
		FUZZ_CHECK(why[0] != '\0', "a refusal without a reason");
		return;
	}
	FUZZ_CHECK(strcmp(c.action, "approve") == 0 || strcmp(c.action, "deny") == 0, "action %s",
		   c.action);
	FUZZ_CHECK(c.user_id[0] != '\0' && strlen(c.user_id) < sizeof(c.user_id), "user id");
	if (slack_button_id(c.value, &id) == 0)
		FUZZ_CHECK(id > 0, "button id 0");
	if (c.response_url[0] && slack_url_ok(c.response_url, why, sizeof(why)) == 0)
		(void)slack_same_origin(c.response_url, "https://hooks.slack.com/services/T0/B0/x");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *part[3], *block, sig[SLACK_SIG_LEN + 1], why[256];
	const char *body;
	size_t n = fuzz_split(data, size, '\n', part, 3, &block), body_len;
	enum slack_verdict v;
	int64_t ts = 0;
	char *payload;
	uint32_t id;

	body = n == 3 ? part[2] : part[n - 1];
	body_len = strlen(body);

	/* The headers as they came, and as Slack would have signed them. */
	if (n >= 2) {
		v = slack_verify(SECRET, strlen(SECRET), part[0], part[1], body, body_len, NOW, &ts);
		FUZZ_CHECK(v >= SLACK_SIG_OK && v <= SLACK_SIG_MISMATCH, "verdict %d", (int)v);
		FUZZ_CHECK(slack_verdict_text(v) != NULL, "verdict text");
		if (v == SLACK_SIG_OK)
			FUZZ_CHECK(strlen(part[1]) == SLACK_SIG_LEN, "a signature of the wrong length passed");
		if (strlen(part[0]) < 64 && slack_sign(SECRET, strlen(SECRET), part[0], body, body_len,
						       sig) == 0) {
			v = slack_verify(SECRET, strlen(SECRET), part[0], sig, body, body_len, NOW, &ts);
			FUZZ_CHECK(v != SLACK_SIG_MISMATCH && v != SLACK_SIG_MISSING,
				   "our own signature does not verify");
			if (v == SLACK_SIG_OK)
				FUZZ_CHECK(ts >= NOW - SLACK_SKEW_MAX && ts <= NOW + SLACK_SKEW_MAX,
					   "a stale timestamp passed");
			v = slack_verify("another secret", 14, part[0], sig, body, body_len, NOW, &ts);
			FUZZ_CHECK(v != SLACK_SIG_OK, "a signature verifies with another secret");
		}
	}
	v = slack_verify(SECRET, strlen(SECRET), NULL, part[0], body, body_len, NOW, &ts);
	FUZZ_CHECK(v == SLACK_SIG_MISSING, "no timestamp, verdict %d", (int)v);

	/* The body as the endpoint reads it (the raw bytes, NULs and all). */
	payload = slack_form_value((const char *)data, size, "payload");
	if (payload) {
		check_click(payload);
		free(payload);
	}
	payload = slack_form_value(body, body_len, "payload");
	if (payload) {
		check_click(payload);
		free(payload);
	}
	check_click(body);

	if (slack_button_id(part[0], &id) == 0)
		FUZZ_CHECK(id > 0 && strncmp(part[0], "v1.", 3) == 0, "button id");
	if (slack_url_ok(body, why, sizeof(why)) == 0)
		(void)slack_same_origin(body, part[0]);
	for (size_t outlen = 0; outlen < 8; outlen++)
		check_escape(body, outlen);
	check_escape(body, 64);
	check_escape(body, body_len + 16);
	free(block);
	return 0;
}
