/*
 * A journal record as a CSV row (record_csv.h).
 */
#include "config.h"

#include "record_csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "journal_read.h"
#include "record_filter.h"
#include "sbx_proto.h"
#include "text.h"

#define HEX 64
/* Every line ends in ,"prev":"<64>","hash":"<64>"} (docs/audit.md). */
#define TAIL_LEN (9 + HEX + 1 + 9 + HEX + 2)

void sbx_csv_buf_add(struct sbx_csv_buf *b, const void *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *np;

		while (cap < b->len + n + 1)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void sbx_csv_buf_free(struct sbx_csv_buf *b)
{
	free(b->p);
	*b = (struct sbx_csv_buf){ 0 };
}

static void sb_adds(struct sbx_csv_buf *b, const char *s)
{
	sbx_csv_buf_add(b, s, strlen(s));
}

/* One RFC 4180 cell.  A cell a spreadsheet would take for a formula
 * (= + - @ first) gets a leading ' (OWASP's CSV injection advice);
 * quotes when it holds a comma, quote or line break. */
static void csv_cell(struct sbx_csv_buf *b, const char *s)
{
	bool guard = s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@';

	if (!guard && !strpbrk(s, ",\"\r\n")) {
		sb_adds(b, s);
		return;
	}
	sbx_csv_buf_add(b, "\"", 1);
	if (guard)
		sbx_csv_buf_add(b, "'", 1);
	for (; *s; s++) {
		if (*s == '"')
			sbx_csv_buf_add(b, "\"", 1);
		sbx_csv_buf_add(b, s, 1);
	}
	sbx_csv_buf_add(b, "\"", 1);
}

static const char *const csv_cols[] = { "seq", "time", "event", "actor", "through", "user",
					"role", "id", "host" };

static bool csv_fixed(const char *key)
{
	for (size_t i = 0; i < sizeof(csv_cols) / sizeof(csv_cols[0]); i++)
		if (strcmp(csv_cols[i], key) == 0)
			return true;
	return strcmp(key, "prev") == 0 || strcmp(key, "hash") == 0;
}

/* A scalar member as a cell's text: strings sanitized (control
 * characters become '?'), numbers in decimal, missing or null empty. */
static void csv_scalar(struct sbx_csv_buf *row, const json_t *rec, const char *key)
{
	const json_t *v = json_object_get(rec, key);
	char buf[SBX_STR_MAX + 1], *dump, *san;
	size_t n;

	if (!v || json_is_null(v)) {
		sbx_csv_buf_add(row, "", 0);
		return;
	}
	if (json_is_string(v)) {
		n = strlen(json_string_value(v)) + 1;
		san = malloc(n);
		if (!san) {
			row->oom = true;
			return;
		}
		csv_cell(row, sbx_sanitize(json_string_value(v), san, n));
		free(san);
		return;
	}
	if (json_is_integer(v)) {
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		csv_cell(row, buf);
		return;
	}
	dump = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_ENCODE_ANY |
			  JSON_PRESERVE_ORDER);
	if (!dump) {
		row->oom = true;
		return;
	}
	csv_cell(row, dump);
	free(dump);
}

/* One record's row: the fixed columns, its outcome, the other members as
 * a JSON object, its hash, and the journal line itself (so that the
 * export can be checked with the key alone). */
int sbx_record_csv_row(struct sbx_csv_buf *row, const char *line, size_t len, char *why,
		       size_t whylen)
{
	json_t *rec = sbx_journal_line_parse(line, len, why, whylen), *details = NULL, *v;
	char hash[HEX + 1], *dump = NULL;
	const char *key, *o;
	int ret = -1;

	if (!rec)
		return -1;
	details = json_object();
	if (!details)
		goto out;
	for (size_t i = 0; i < sizeof(csv_cols) / sizeof(csv_cols[0]); i++) {
		csv_scalar(row, rec, csv_cols[i]);
		sbx_csv_buf_add(row, ",", 1);
	}
	o = sbx_rec_outcome(rec);
	csv_cell(row, o ? o : "");
	sbx_csv_buf_add(row, ",", 1);
	json_object_foreach(rec, key, v) {
		if (!csv_fixed(key) && json_object_set(details, key, v) < 0)
			goto out;
	}
	dump = json_dumps(details, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
	if (!dump)
		goto out;
	csv_cell(row, dump);
	sbx_csv_buf_add(row, ",", 1);
	if (len > TAIL_LEN && memcmp(line + len - HEX - 12, "\",\"hash\":\"", 10) == 0) {
		memcpy(hash, line + len - HEX - 2, HEX);
		hash[HEX] = '\0';
	} else {
		snprintf(hash, sizeof(hash), "%s",
			 json_string_value(json_object_get(rec, "hash")) ?: "");
	}
	csv_cell(row, hash);
	sbx_csv_buf_add(row, ",", 1);
	{
		/* The line is printable ASCII (docs/audit.md, "Serialization"). */
		char *copy = strndup(line, len);

		if (!copy)
			goto out;
		csv_cell(row, copy);
		free(copy);
	}
	sbx_csv_buf_add(row, "\r\n", 2);
	ret = row->oom ? -1 : 0;
out:
	if (ret < 0 && !why[0])
		snprintf(why, whylen, "out of memory");
	free(dump);
	json_decref(details);
	json_decref(rec);
	return ret;
}

