/*
 * One record's text, made and checked by itself: what the journal's append
 * and scan do inside a file, for records that live elsewhere too (the
 * fleet's log in PostgreSQL keeps the very same lines).  docs/audit.md is
 * the format.
 */
#include "config.h"

#include "journal_int.h"
#include "timeutil.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool reserved_key(const char *k)
{
	static const char *const keys[] = { "seq", "time", "event", "actor", "prev", "hash",
					    "continued" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(k, keys[i]) == 0)
			return true;
	return false;
}

/* jansson leaves DEL (0x7f) as it is: write it as \u007f, so every line
 * is printable ASCII (docs/audit.md).  DEL can only stand inside a
 * string, where the escape means the same.  Returns s, or a new string
 * (s freed), or NULL when out of memory (s freed). */
static char *escape_del(char *s, size_t *len)
{
	size_t dels = 0, o = 0;
	char *out;

	for (size_t i = 0; i < *len; i++)
		dels += s[i] == 0x7f;
	if (!dels)
		return s;
	out = malloc(*len + 5 * dels + 1);
	if (!out) {
		free(s);
		return NULL;
	}
	for (size_t i = 0; i < *len; i++) {
		if (s[i] != 0x7f) {
			out[o++] = s[i];
			continue;
		}
		memcpy(out + o, "\\u007f", 6);
		o += 6;
	}
	out[o] = '\0';
	free(s);
	*len = o;
	return out;
}

char *sbx_jr_serialize_middle(const char *event, const char *actor, const json_t *fields,
			      size_t *len)
{
	json_t *tmp = json_object(), *v;
	const char *k;
	char *s = NULL;

	if (!tmp || json_object_set_new(tmp, "event", json_string(event)) ||
	    json_object_set_new(tmp, "actor", json_string(actor)))
		goto out;
	if (fields) {
		/* jansson's iteration API is not const-correct. */
		json_object_foreach((json_t *)fields, k, v) {
			if (reserved_key(k) || json_object_set(tmp, k, v))
				goto out;
		}
	}
	s = json_dumps(tmp, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
	if (s) {
		size_t n = strlen(s);

		memmove(s, s + 1, n - 2);
		s[n - 2] = '\0';
		*len = n - 2;
		s = escape_del(s, len);
	}
out:
	json_decref(tmp);
	return s;
}

size_t sbx_jr_line_len(uint64_t seq, const char *ts, size_t midlen)
{
	char head[96];
	size_t headlen = (size_t)snprintf(head, sizeof(head), "{\"seq\":%" PRIu64 ",\"time\":\"%s\",",
					  seq, ts);

	/* head, middle, ,"prev":"<hex>" and ,"hash":"<hex>"} */
	return headlen + midlen + 9 + SBX_JR_HEX + 1 + SBX_JR_HASH_TAIL;
}

int sbx_jr_build_line(struct sbx_jr_sha *s, uint64_t seq, const char *ts, const char *mid,
		      size_t midlen, const char prev[SBX_JR_HEX + 1], char *out,
		      char hash[SBX_JR_HEX + 1])
{
	size_t headlen = (size_t)sprintf(out, "{\"seq\":%" PRIu64 ",\"time\":\"%s\",", seq, ts);
	size_t nohash = headlen + midlen + 9 + SBX_JR_HEX + 2;  /* ...,"prev":"<hex>"} */

	memcpy(out + headlen, mid, midlen);
	memcpy(out + headlen + midlen, ",\"prev\":\"", 9);
	memcpy(out + headlen + midlen + 9, prev, SBX_JR_HEX);
	memcpy(out + nohash - 2, "\"}", 2);
	if (sbx_jr_sha_hex(s, out, nohash, hash))
		return -1;
	memcpy(out + nohash - 1, ",\"hash\":\"", 9);
	memcpy(out + nohash + 8, hash, SBX_JR_HEX);
	memcpy(out + nohash + 8 + SBX_JR_HEX, "\"}", 2);
	return 0;
}

int sbx_record_make(uint64_t seq, int64_t time_us, const char *event, const char *actor,
		    const json_t *fields, const char *prev, char **line, size_t *len,
		    char hash[65])
{
	struct sbx_jr_sha sha = { 0 };
	char ts[SBX_RFC3339_LEN], *mid = NULL, *out = NULL;
	size_t midlen = 0, linelen;
	int ret = -1, err = EINVAL;

	*line = NULL;
	if (!seq || !event || !actor || (fields && !json_is_object(fields)) ||
	    !sbx_jr_is_hex64(prev))
		goto out;
	mid = sbx_jr_serialize_middle(event, actor, fields, &midlen);
	if (!mid)
		goto out;
	sbx_format_rfc3339_us(time_us, ts);
	linelen = sbx_jr_line_len(seq, ts, midlen);
	err = E2BIG;
	if (linelen > SBX_JOURNAL_LINE_MAX)
		goto out;
	err = ENOMEM;
	out = malloc(linelen + 1);
	if (!out || sbx_jr_sha_init(&sha) < 0 ||
	    sbx_jr_build_line(&sha, seq, ts, mid, midlen, prev, out, hash) < 0)
		goto out;
	out[linelen] = '\0';
	*line = out;
	*len = linelen;
	out = NULL;
	ret = 0;
out:
	sbx_jr_sha_free(&sha);
	free(out);
	free(mid);
	if (ret)
		errno = err;
	return ret;
}

int sbx_record_check(const char *line, size_t len, uint64_t seq, const char *prev,
		     char hash[65], json_t **rec, char *err, size_t errlen)
{
	struct sbx_jr_sha sha = { 0 };
	char what[256];
	const char *claimed, *said_prev;
	json_t *parsed = NULL;
	int ret = -1;

	if (rec)
		*rec = NULL;
	if (len > SBX_JOURNAL_LINE_MAX || memchr(line, '\n', len)) {
		snprintf(err, errlen, "record seq %" PRIu64 ": not one line of at most %u bytes", seq,
			 SBX_JOURNAL_LINE_MAX);
		goto out;
	}
	if (sbx_jr_leading_seq(line, len) != seq || !sbx_jr_tail_ok(line, len)) {
		snprintf(err, errlen, "record seq %" PRIu64 ": malformed (not {\"seq\":%" PRIu64
			 ",...,\"prev\":...,\"hash\":...})", seq, seq);
		goto out;
	}
	claimed = line + len - SBX_JR_HEX - 2;
	said_prev = claimed - 10 - SBX_JR_HEX;
	if (sbx_jr_sha_init(&sha) < 0 || sbx_jr_line_hash(&sha, line, len, hash) < 0) {
		snprintf(err, errlen, "record seq %" PRIu64 ": cannot compute SHA-256", seq);
		goto out;
	}
	if (memcmp(hash, claimed, SBX_JR_HEX) != 0) {
		snprintf(err, errlen, "record seq %" PRIu64 ": hash mismatch: its bytes hash to "
			 "%.12s..., it says %.12s...", seq, hash, claimed);
		goto out;
	}
	if (prev && memcmp(said_prev, prev, SBX_JR_HEX) != 0) {
		snprintf(err, errlen, "record seq %" PRIu64 ": prev does not match the hash of seq %"
			 PRIu64 " (chain broken)", seq, seq - 1);
		goto out;
	}
	parsed = sbx_jr_check_parsed(line, len, seq, true, what, sizeof(what));
	if (!parsed) {
		snprintf(err, errlen, "record seq %" PRIu64 ": %s", seq, what);
		goto out;
	}
	if (rec) {
		*rec = parsed;
		parsed = NULL;
	}
	ret = 0;
out:
	json_decref(parsed);
	sbx_jr_sha_free(&sha);
	return ret;
}
