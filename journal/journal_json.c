/*
 * A fast path for parsing journal lines into jansson values.
 *
 * json_loadb reads one character at a time through callbacks and manages
 * about 65 MB/s here, which makes a 1M-record replay take 4 s.  Records
 * are written by us with JSON_COMPACT|JSON_ENSURE_ASCII, so they are
 * plain ASCII with simple escapes and integers.  This parser handles
 * exactly that subset and declines everything else (reals, \u escapes,
 * raw bytes >= 0x80, control characters, nesting deeper than FP_DEPTH,
 * any syntax error); the caller then uses json_loadb, so the result is
 * always what jansson would have produced, with jansson's error text.
 */
#include "config.h"

#include "journal_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FP_DEPTH 64
#define FP_KEY_MAX 128
#define FP_INT_DIGITS 18 /* always fits json_int_t without overflow checks */

struct fp {
	const char *p;
	const char *end;
	char *tmp;      /* unescaped string text */
	size_t tmpcap;
};

static json_t *fp_value(struct fp *f, int depth);

/* Bytes that stand for themselves inside a string: printable ASCII other
 * than '"' and '\\'.  A table beats three comparisons per byte, and most
 * of a record is string bytes (the two hashes alone are 128). */
#define R8(x) x, x, x, x, x, x, x, x
static const unsigned char plain[256] = {
	R8(0), R8(0), R8(0), R8(0),                   /* 0x00-0x1f control */
	1, 1, 0, 1, 1, 1, 1, 1, R8(1),                /* 0x20-0x2f, '"' */
	R8(1), R8(1), R8(1), R8(1), R8(1),            /* 0x30-0x57 */
	1, 1, 1, 1, 0, 1, 1, 1,                       /* 0x58-0x5f, '\\' */
	R8(1), R8(1), R8(1), R8(1),                   /* 0x60-0x7f */
	R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), /* 0x80-0xbf */
	R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), R8(0), /* 0xc0-0xff */
};
#undef R8

static void fp_ws(struct fp *f)
{
	while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r'))
		f->p++;
}

static int fp_tmp_put(struct fp *f, size_t at, char c)
{
	if (at >= f->tmpcap) {
		size_t cap = f->tmpcap ? f->tmpcap * 2 : 256;
		char *n = realloc(f->tmp, cap);

		if (!n)
			return -1;
		f->tmp = n;
		f->tmpcap = cap;
	}
	f->tmp[at] = c;
	return 0;
}

static int fp_unescape(char c, char *out)
{
	switch (c) {
	case '"': *out = '"'; return 0;
	case '\\': *out = '\\'; return 0;
	case '/': *out = '/'; return 0;
	case 'b': *out = '\b'; return 0;
	case 'f': *out = '\f'; return 0;
	case 'n': *out = '\n'; return 0;
	case 'r': *out = '\r'; return 0;
	case 't': *out = '\t'; return 0;
	}
	return -1; /* \u and invalid escapes: let jansson decide */
}

/* At '"'.  Sets s and n to the text, either in the input or in f->tmp (valid until
 * the next string). */
static int fp_string(struct fp *f, const char **s, size_t *n)
{
	const char *p = f->p + 1, *start = p;
	size_t len;

	while (p < f->end && plain[(unsigned char)*p])
		p++;
	if (p < f->end && *p == '"') {
		*s = start;
		*n = (size_t)(p - start);
		f->p = p + 1;
		return 0;
	}
	if (p >= f->end || *p != '\\')
		return -1;
	len = (size_t)(p - start);
	for (size_t i = 0; i < len; i++)
		if (fp_tmp_put(f, i, start[i]))
			return -1;
	while (p < f->end) {
		unsigned char c = (unsigned char)*p;
		char out;

		if (c == '"') {
			*s = f->tmp;
			*n = len;
			f->p = p + 1;
			return 0;
		}
		if (c < 0x20 || c >= 0x80)
			return -1;
		if (c == '\\') {
			if (p + 1 >= f->end || fp_unescape(p[1], &out))
				return -1;
			p += 2;
		} else {
			out = (char)c;
			p++;
		}
		if (fp_tmp_put(f, len++, out))
			return -1;
	}
	return -1;
}

static json_t *fp_number(struct fp *f)
{
	const char *p = f->p;
	json_int_t v = 0;
	int digits = 0;
	bool neg = false;

	if (*p == '-') {
		neg = true;
		p++;
	}
	if (p >= f->end || *p < '0' || *p > '9')
		return NULL;
	if (*p == '0') {
		p++;
	} else {
		while (p < f->end && *p >= '0' && *p <= '9') {
			if (++digits > FP_INT_DIGITS)
				return NULL;
			v = v * 10 + (*p - '0');
			p++;
		}
	}
	if (p < f->end && (*p == '.' || *p == 'e' || *p == 'E'))
		return NULL;
	f->p = p;
	return json_integer(neg ? -v : v);
}

static json_t *fp_literal(struct fp *f, const char *word, size_t n, json_t *v)
{
	if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0)
		return NULL;
	f->p += n;
	return v;
}

static json_t *fp_object(struct fp *f, int depth)
{
	json_t *o = NULL;
	char key[FP_KEY_MAX];

	if (depth > FP_DEPTH)
		return NULL;
	o = json_object();
	if (!o)
		return NULL;
	f->p++;
	fp_ws(f);
	if (f->p < f->end && *f->p == '}') {
		f->p++;
		return o;
	}
	for (;;) {
		const char *k;
		size_t kn;
		json_t *v;

		fp_ws(f);
		if (f->p >= f->end || *f->p != '"' || fp_string(f, &k, &kn) || kn >= sizeof(key))
			goto fail;
		/* k may point into f->tmp, which the value reuses. */
		memcpy(key, k, kn);
		key[kn] = '\0';
		fp_ws(f);
		if (f->p >= f->end || *f->p != ':')
			goto fail;
		f->p++;
		fp_ws(f);
		v = fp_value(f, depth);
		if (!v || json_object_set_new_nocheck(o, key, v))
			goto fail;
		fp_ws(f);
		if (f->p < f->end && *f->p == '}') {
			f->p++;
			return o;
		}
		if (f->p >= f->end || *f->p != ',')
			goto fail;
		f->p++;
	}
fail:
	json_decref(o);
	return NULL;
}

static json_t *fp_array(struct fp *f, int depth)
{
	json_t *a = NULL;

	if (depth > FP_DEPTH)
		return NULL;
	a = json_array();
	if (!a)
		return NULL;
	f->p++;
	fp_ws(f);
	if (f->p < f->end && *f->p == ']') {
		f->p++;
		return a;
	}
	for (;;) {
		json_t *v;

		fp_ws(f);
		v = fp_value(f, depth);
		if (!v || json_array_append_new(a, v))
			goto fail;
		fp_ws(f);
		if (f->p < f->end && *f->p == ']') {
			f->p++;
			return a;
		}
		if (f->p >= f->end || *f->p != ',')
			goto fail;
		f->p++;
	}
fail:
	json_decref(a);
	return NULL;
}

static json_t *fp_value(struct fp *f, int depth)
{
	const char *s;
	size_t n;

	if (f->p >= f->end)
		return NULL;
	switch (*f->p) {
	case '{':
		return fp_object(f, depth + 1);
	case '[':
		return fp_array(f, depth + 1);
	case '"':
		if (fp_string(f, &s, &n))
			return NULL;
		return json_stringn_nocheck(s, n);
	case 't':
		return fp_literal(f, "true", 4, json_true());
	case 'f':
		return fp_literal(f, "false", 5, json_false());
	case 'n':
		return fp_literal(f, "null", 4, json_null());
	default:
		return fp_number(f);
	}
}

json_t *sbx_jr_parse_fast(const char *s, size_t n)
{
	struct fp f = { .p = s, .end = s + n };
	json_t *v = NULL;

	fp_ws(&f);
	/* json_loadb without JSON_DECODE_ANY only takes an object or array. */
	if (f.p < f.end && (*f.p == '{' || *f.p == '['))
		v = fp_value(&f, 0);
	if (v) {
		fp_ws(&f);
		if (f.p != f.end) {
			json_decref(v);
			v = NULL;
		}
	}
	free(f.tmp);
	return v;
}

json_t *sbx_jr_parse(const char *s, size_t n, char *err, size_t errlen)
{
	json_error_t je;
	json_t *v = sbx_jr_parse_fast(s, n);

	if (v)
		return v;
	v = json_loadb(s, n, 0, &je);
	if (!v && err)
		snprintf(err, errlen, "%s (column %d)", je.text, je.column);
	return v;
}
