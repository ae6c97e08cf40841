/*
 * Slack approvals: the parts that need no network and no broker, so the
 * unit tests can reach them: secret files, request signatures, the replay
 * cache, form and payload parsing, button MACs, URL rules, backoff.
 */
#include "config.h"

#include "slack_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char hexdig[] = "0123456789abcdef";

static void hex(const unsigned char *in, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

/* ---- signatures ---------------------------------------------------------------- */

int slack_sign(const char *secret, size_t secret_len, const char *ts, const char *body,
	       size_t body_len, char out[SLACK_SIG_LEN + 1])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t tslen = strlen(ts), n = 3 + tslen + 1 + body_len;
	char *base = malloc(n ? n : 1);
	int ret = -1;

	if (!base || secret_len > (size_t)INT32_MAX)
		goto out;
	memcpy(base, "v0:", 3);
	memcpy(base + 3, ts, tslen);
	base[3 + tslen] = ':';
	if (body_len)
		memcpy(base + 4 + tslen, body, body_len);
	if (!HMAC(EVP_sha256(), secret, (int)secret_len, (const unsigned char *)base, n, mac,
		  &maclen) || maclen != 32)
		goto out;
	memcpy(out, "v0=", 3);
	hex(mac, maclen, out + 3);
	ret = 0;
out:
	free(base);
	return ret;
}

static int parse_ts(const char *s, int64_t *out)
{
	int64_t v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 18)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

enum slack_verdict slack_verify(const char *secret, size_t secret_len, const char *ts,
				const char *sig, const char *body, size_t body_len, int64_t now,
				int64_t *ts_out)
{
	char want[SLACK_SIG_LEN + 1];
	int64_t t;

	if (!ts || !sig)
		return SLACK_SIG_MISSING;
	if (parse_ts(ts, &t) < 0)
		return SLACK_SIG_BAD_TS;
	*ts_out = t;
	if (t > now + SLACK_SKEW_MAX || t < now - SLACK_SKEW_MAX)
		return SLACK_SIG_STALE;
	if (strlen(sig) != SLACK_SIG_LEN)
		return SLACK_SIG_MISMATCH;
	if (slack_sign(secret, secret_len, ts, body, body_len, want) < 0)
		return SLACK_SIG_MISMATCH;
	return CRYPTO_memcmp(want, sig, SLACK_SIG_LEN) == 0 ? SLACK_SIG_OK : SLACK_SIG_MISMATCH;
}

const char *slack_verdict_text(enum slack_verdict v)
{
	switch (v) {
	case SLACK_SIG_OK: return "signature ok";
	case SLACK_SIG_MISSING: return "no X-Slack-Signature or X-Slack-Request-Timestamp";
	case SLACK_SIG_BAD_TS: return "X-Slack-Request-Timestamp is not a number";
	case SLACK_SIG_STALE: return "X-Slack-Request-Timestamp is more than 5 minutes off";
	case SLACK_SIG_MISMATCH: return "X-Slack-Signature does not match";
	}
	return "?";
}

/* ---- replay cache ---------------------------------------------------------------- */

struct slack_seen {
	char sig[SLACK_SIG_LEN + 1];
	int64_t until;
};

struct slack_replay {
	struct slack_seen *v;
	size_t n, cap;
};

struct slack_replay *slack_replay_new(size_t cap)
{
	struct slack_replay *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->v = calloc(cap ? cap : 1, sizeof(*c->v));
	if (!c->v) {
		free(c);
		return NULL;
	}
	c->cap = cap;
	return c;
}

/* A linear scan: at Slack's rates (people pressing buttons) the cache
 * holds a handful of entries. */
int slack_replay_check(struct slack_replay *c, const char *sig, int64_t ts, int64_t now)
{
	size_t k = 0;

	for (size_t i = 0; i < c->n; i++)
		if (c->v[i].until >= now)
			c->v[k++] = c->v[i];
	c->n = k;
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->v[i].sig, sig) == 0)
			return 1;
	if (c->n >= c->cap)
		return -1;
	snprintf(c->v[c->n].sig, sizeof(c->v[c->n].sig), "%s", sig);
	c->v[c->n].until = ts + SLACK_SKEW_MAX;
	c->n++;
	return 0;
}

void slack_replay_free(struct slack_replay *c)
{
	if (!c)
		return;
	free(c->v);
	free(c);
}

/* ---- form and payload ---------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decode n bytes of form encoding into out (room for n + 1); -1 on a bad
 * escape or an encoded NUL. */
static int form_decode(const char *in, size_t n, char *out)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (in[i] == '+') {
			out[k++] = ' ';
		} else if (in[i] == '%') {
			int hi, lo;

			if (i + 2 >= n)
				return -1;
			hi = hexval(in[i + 1]);
			lo = hexval(in[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
				return -1;
			out[k++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[k++] = in[i];
		}
	}
	out[k] = '\0';
	return 0;
}

char *slack_form_value(const char *body, size_t len, const char *name)
{
	size_t namelen = strlen(name), i = 0;

	while (i < len) {
		size_t end = i, eq;

		while (end < len && body[end] != '&')
			end++;
		eq = i;
		while (eq < end && body[eq] != '=')
			eq++;
		if (eq < end && eq - i == namelen && memcmp(body + i, name, namelen) == 0) {
			char *v = malloc(end - eq);

			if (!v)
				return NULL;
			if (form_decode(body + eq + 1, end - eq - 1, v) < 0) {
				free(v);
				return NULL;
			}
			return v;
		}
		i = end + 1;
	}
	return NULL;
}

static int copy_str(const json_t *o, const char *key, char *out, size_t outlen)
{
	const char *s = json_string_value(json_object_get(o, key));

	if (!s || strlen(s) >= outlen)
		return -1;
	memcpy(out, s, strlen(s) + 1);
	return 0;
}

static bool slack_id_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

enum slack_click_kind slack_parse_click(const char *payload, struct slack_click *c, char *why,
					size_t whylen)
{
	enum slack_click_kind ret = SLACK_CLICK_MALFORMED;
	json_t *root, *user, *action;
	const char *action_id;

	memset(c, 0, sizeof(*c));
	root = json_loads(payload, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(root)) {
		snprintf(why, whylen, "the payload is not a JSON object");
		goto out;
	}
	if (copy_str(root, "type", c->type, sizeof(c->type)) < 0) {
		snprintf(why, whylen, "the payload has no type");
		goto out;
	}
	user = json_object_get(root, "user");
	if (copy_str(user, "id", c->user_id, sizeof(c->user_id)) < 0 || !slack_id_ok(c->user_id)) {
		snprintf(why, whylen, "the payload has no valid user.id");
		goto out;
	}
	if (json_object_get(root, "response_url") &&
	    copy_str(root, "response_url", c->response_url, sizeof(c->response_url)) < 0) {
		snprintf(why, whylen, "the payload's response_url is not a usable URL");
		goto out;
	}
	ret = SLACK_CLICK_UNKNOWN;
	if (strcmp(c->type, "block_actions") != 0) {
		snprintf(why, whylen, "sbx only handles button presses, not %s", c->type);
		goto out;
	}
	action = json_array_get(json_object_get(root, "actions"), 0);
	action_id = json_string_value(json_object_get(action, "action_id"));
	if (!action_id || (strcmp(action_id, "sbx_approve") != 0 &&
			   strcmp(action_id, "sbx_deny") != 0)) {
		snprintf(why, whylen, "this is not an sbx button");
		goto out;
	}
	snprintf(c->action, sizeof(c->action), "%s",
		 strcmp(action_id, "sbx_approve") == 0 ? "approve" : "deny");
	if (copy_str(action, "value", c->value, sizeof(c->value)) < 0) {
		snprintf(why, whylen, "the button carries no valid value");
		goto out;
	}
	ret = SLACK_CLICK_OK;
out:
	json_decref(root);
	return ret;
}

/* ---- buttons ---------------------------------------------------------------------- */

static void button_mac(const uint8_t key[SLACK_KEY_LEN], const struct sbx_req *r,
		       const char *action, char out[65])
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char msg[512];
	int n;

	/* NUL separators: no field can contain one, so no two inputs
	 * serialize alike. */
	n = snprintf(msg, sizeof(msg), "sbx-slack-button v1%c%s%c%u%c%s%c%s%c%lld", 0, action, 0,
		     r->id, 0, r->user ? r->user : "", 0, r->role ? r->role : "", 0,
		     (long long)r->created_at);
	if (n < 0 || (size_t)n >= sizeof(msg) ||
	    !HMAC(EVP_sha256(), key, SLACK_KEY_LEN, (const unsigned char *)msg, (size_t)n, mac,
		  &maclen) || maclen != 32) {
		memset(out, 'x', 64);
		out[64] = '\0';
		return;
	}
	hex(mac, 32, out);
}

void slack_button_value(const uint8_t key[SLACK_KEY_LEN], const struct sbx_req *r,
			const char *action, char *out, size_t outlen)
{
	char mac[65];

	button_mac(key, r, action, mac);
	snprintf(out, outlen, "v1.%u.%s", r->id, mac);
}

int slack_button_id(const char *value, uint32_t *id)
{
	uint64_t v = 0;
	const char *p;

	if (strncmp(value, "v1.", 3) != 0)
		return -1;
	for (p = value + 3; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > UINT32_MAX)
			return -1;
	}
	if (p == value + 3 || *p != '.' || v == 0)
		return -1;
	*id = (uint32_t)v;
	return 0;
}

bool slack_button_ok(const uint8_t key[SLACK_KEY_LEN], const struct sbx_req *r,
		     const char *action, const char *value)
{
	char want[160];
	size_t n;

	slack_button_value(key, r, action, want, sizeof(want));
	n = strlen(want);
	return strlen(value) == n && CRYPTO_memcmp(want, value, n) == 0;
}

/* ---- URLs ------------------------------------------------------------------------- */

struct url_parts {
	char *scheme, *host, *port;
};

static void url_parts_free(struct url_parts *u)
{
	curl_free(u->scheme);
	curl_free(u->host);
	curl_free(u->port);
}

static int url_split(const char *url, struct url_parts *u)
{
	CURLU *h = curl_url();
	int ret = -1;

	memset(u, 0, sizeof(*u));
	if (!h)
		return -1;
	if (curl_url_set(h, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_SCHEME, &u->scheme, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_HOST, &u->host, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_PORT, &u->port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		url_parts_free(u);
		memset(u, 0, sizeof(*u));
		goto out;
	}
	ret = 0;
out:
	curl_url_cleanup(h);
	return ret;
}

int slack_url_ok(const char *url, char *why, size_t whylen)
{
	struct url_parts u;
	int ret = -1;

	if (strlen(url) >= SLACK_URL_MAX || url_split(url, &u) < 0) {
		snprintf(why, whylen, "not a valid URL");
		return -1;
	}
	if (strcasecmp(u.scheme, "https") == 0)
		ret = 0;
	else if (strcasecmp(u.scheme, "http") == 0 &&
		 (strcmp(u.host, "127.0.0.1") == 0 || strcmp(u.host, "[::1]") == 0 ||
		  strcasecmp(u.host, "localhost") == 0))
		ret = 0;
	else
		snprintf(why, whylen, "must start with https:// (http:// only to a loopback "
			 "address), not %s://", u.scheme);
	url_parts_free(&u);
	return ret;
}

bool slack_same_origin(const char *a, const char *b)
{
	struct url_parts ua, ub;
	bool same = false;

	if (url_split(a, &ua) < 0)
		return false;
	if (url_split(b, &ub) == 0) {
		same = strcasecmp(ua.scheme, ub.scheme) == 0 && strcasecmp(ua.host, ub.host) == 0 &&
		       strcmp(ua.port, ub.port) == 0;
		url_parts_free(&ub);
	}
	url_parts_free(&ua);
	return same;
}

/* ---- the rest ---------------------------------------------------------------------- */

int64_t slack_backoff_ms(unsigned attempt)
{
	const int64_t cap = 300000;

	if (attempt == 0)
		return 0;
	if (attempt > 10)
		return cap;
	return (int64_t)1000 << (attempt - 1) < cap ? (int64_t)1000 << (attempt - 1) : cap;
}

/* The code point of the well-formed UTF-8 sequence at p, and its length;
 * 0 when it is not one (a stray byte, an overlong form, a surrogate, past
 * U+10FFFF): such bytes are shown as '?'. */
static size_t utf8_next(const char *p, uint32_t *cp)
{
	/* By length: the lead byte's bits, and the least value that needs
	 * that many bytes. */
	static const uint32_t lead_mask[5] = { 0, 0x7f, 0x1f, 0x0f, 0x07 };
	static const uint32_t least[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	const unsigned char *u = (const unsigned char *)p;
	size_t n = u[0] < 0x80 ? 1 : u[0] >= 0xc2 && u[0] < 0xe0 ? 2 : u[0] >= 0xe0 && u[0] < 0xf0 ? 3
		   : u[0] >= 0xf0 && u[0] < 0xf5 ? 4 : 0;
	uint32_t v = u[0] & lead_mask[n];

	if (n == 0)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((u[i] & 0xc0) != 0x80)
			return 0;
		v = v << 6 | (u[i] & 0x3f);
	}
	if (v < least[n] || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

/* Characters that change how the text around them reads without showing
 * themselves: C1 controls, bidi embeddings, overrides and isolates
 * (U+202E turns "gpj.exe" into "exe.jpg" on screen), zero-width and
 * joining characters, the BOM, invisible fillers, tags. */
static bool invisible(uint32_t c)
{
	return (c >= 0x80 && c <= 0x9f) || c == 0xad || c == 0x34f || c == 0x61c ||
	       c == 0x115f || c == 0x1160 || c == 0x17b4 || c == 0x17b5 || c == 0x180e ||
	       (c >= 0x200b && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) ||
	       (c >= 0x2060 && c <= 0x206f) || c == 0x3164 || c == 0xfeff || c == 0xffa0 ||
	       (c >= 0xfff0 && c <= 0xfffb) || (c >= 0xe0000 && c <= 0xe0fff);
}

/* Line breaks and spaces of every kind: one space in text people typed,
 * so it cannot lay itself out as lines of its own. */
static bool blank(uint32_t c)
{
	return c == ' ' || (c >= 0x09 && c <= 0x0d) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
	       (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
	       c == 0x205f || c == 0x3000;
}

/* slack_escape (plain false) and slack_plain (plain true). */
static void clean_text(const char *in, bool plain, char *out, size_t outlen)
{
	size_t k = 0;
	bool space = false;     /* plain: a folded blank, written before what follows */

	if (outlen == 0)
		return;
	for (const char *p = in; *p;) {
		const char *rep = NULL;
		char one[5] = { 0 };
		uint32_t c = 0;
		size_t n = utf8_next(p, &c), need;

		if (n == 0) {
			rep = "?";
			n = 1;
		} else if (c == '&') {
			rep = "&amp;";
		} else if (c == '<') {
			rep = "&lt;";
		} else if (c == '>') {
			rep = "&gt;";
		} else if (plain && blank(c)) {
			space = k > 0;
		} else if (c == '\n') {
			rep = "\n";
		} else if (c < 0x20 || c == 0x7f) {
			rep = plain ? NULL : " ";
		} else if (!invisible(c)) {
			memcpy(one, p, n);
			rep = one;
		}
		p += n;
		if (!rep)
			continue;
		/* Room is kept for "..." and the NUL: a cut is always marked. */
		need = (space ? 1 : 0) + strlen(rep);
		if (k + need + 4 > outlen) {
			if (k + 4 <= outlen) {
				memcpy(out + k, "...", 3);
				k += 3;
			}
			break;
		}
		if (space)
			out[k++] = ' ';
		space = false;
		memcpy(out + k, rep, strlen(rep));
		k += strlen(rep);
	}
	out[k] = '\0';
}

void slack_escape(const char *in, char *out, size_t outlen)
{
	clean_text(in, false, out, outlen);
}

void slack_plain(const char *in, char *out, size_t outlen)
{
	clean_text(in, true, out, outlen);
}
