/*
 * The text check of a record (journal_int.h: sbx_jr_lite_check): what
 * `audit verify` needs from a record without building a jansson value.
 *
 * It validates the line as JSON but accepts only the plain shapes the
 * broker writes (printable ASCII, integers, simple escapes, shallow
 * nesting).  Everything else it declines, and the caller parses in full:
 * so a record it accepts is one jansson accepts and parses to the same
 * members, and a record it declines gets jansson's verdict and words.
 * It never says "invalid" by itself; that is what keeps verify's
 * findings identical with and without it.
 */
#include "config.h"

#include "journal_int.h"

#include <string.h>

#define LITE_DEPTH 32

struct lite {
	const char *p, *end;
};

static void ws(struct lite *l)
{
	while (l->p < l->end && (*l->p == ' ' || *l->p == '\t' || *l->p == '\n' || *l->p == '\r'))
		l->p++;
}

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

/* A string at l->p (the opening quote).  *escaped: it held an escape. */
static bool string(struct lite *l, bool *escaped)
{
	*escaped = false;
	l->p++;
	while (l->p < l->end) {
		unsigned char c = (unsigned char)*l->p;
		const char *q;

		if (c == '"') {
			l->p++;
			return true;
		}
		if (c < 0x20 || c >= 0x80)
			return false; /* control: invalid; non-ASCII: needs UTF-8 checks */
		if (c != '\\') {
			/* The common case: skip to the next quote or backslash. */
			q = l->p + 1;
			while (q < l->end && *q != '"' && *q != '\\' &&
			       (unsigned char)*q >= 0x20 && (unsigned char)*q < 0x80)
				q++;
			l->p = q;
			continue;
		}
		*escaped = true;
		if (l->end - l->p < 2)
			return false;
		switch (l->p[1]) {
		case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
			l->p += 2;
			break;
		case 'u': {
			int v = 0;

			if (l->end - l->p < 6)
				return false;
			for (int i = 2; i < 6; i++) {
				int h = hexval(l->p[i]);

				if (h < 0)
					return false;
				v = v * 16 + h;
			}
			/* \u0000 and surrogates: jansson's own rules decide. */
			if (v == 0 || (v >= 0xd800 && v <= 0xdfff))
				return false;
			l->p += 6;
			break;
		}
		default:
			return false;
		}
	}
	return false;
}

/* An integer; reals and anything over 18 digits are declined. */
static bool number(struct lite *l, bool *neg, uint64_t *val)
{
	const char *s;
	uint64_t v = 0;

	*neg = false;
	if (*l->p == '-') {
		*neg = true;
		l->p++;
	}
	s = l->p;
	while (l->p < l->end && *l->p >= '0' && *l->p <= '9') {
		v = v * 10 + (uint64_t)(*l->p - '0');
		l->p++;
	}
	if (l->p == s || l->p - s > 18 || (*s == '0' && l->p - s > 1))
		return false;
	if (l->p < l->end && (*l->p == '.' || *l->p == 'e' || *l->p == 'E'))
		return false;
	*val = v;
	return true;
}

static bool literal(struct lite *l, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(l->end - l->p) < n || memcmp(l->p, word, n) != 0)
		return false;
	l->p += n;
	return true;
}

static bool value(struct lite *l, int depth);

static bool object(struct lite *l, int depth)
{
	bool esc;

	l->p++;
	ws(l);
	if (l->p < l->end && *l->p == '}') {
		l->p++;
		return true;
	}
	for (;;) {
		if (l->p >= l->end || *l->p != '"' || !string(l, &esc))
			return false;
		ws(l);
		if (l->p >= l->end || *l->p != ':')
			return false;
		l->p++;
		ws(l);
		if (!value(l, depth + 1))
			return false;
		ws(l);
		if (l->p >= l->end)
			return false;
		if (*l->p == '}') {
			l->p++;
			return true;
		}
		if (*l->p != ',')
			return false;
		l->p++;
		ws(l);
	}
}

static bool array(struct lite *l, int depth)
{
	l->p++;
	ws(l);
	if (l->p < l->end && *l->p == ']') {
		l->p++;
		return true;
	}
	for (;;) {
		if (!value(l, depth + 1))
			return false;
		ws(l);
		if (l->p >= l->end)
			return false;
		if (*l->p == ']') {
			l->p++;
			return true;
		}
		if (*l->p != ',')
			return false;
		l->p++;
		ws(l);
	}
}

static bool value(struct lite *l, int depth)
{
	bool esc, neg;
	uint64_t v;

	if (l->p >= l->end || depth > LITE_DEPTH)
		return false;
	switch (*l->p) {
	case '{':
		return object(l, depth);
	case '[':
		return array(l, depth);
	case '"':
		return string(l, &esc);
	case 't':
		return literal(l, "true");
	case 'f':
		return literal(l, "false");
	case 'n':
		return literal(l, "null");
	default:
		return (*l->p == '-' || (*l->p >= '0' && *l->p <= '9')) && number(l, &neg, &v);
	}
}

/* The top-level members a check reads; each may appear once. */
enum { K_SEQ, K_TIME, K_EVENT, K_ACTOR, K_PREV, K_HASH, K_FLEET_HASH, K_N };
static const char *const keys[K_N] = { "seq", "time", "event", "actor", "prev", "hash",
				       "fleet_hash" };

bool sbx_jr_lite_check(const char *line, size_t len, uint64_t seq, struct sbx_jr_lite *out)
{
	struct lite l = { .p = line, .end = line + len };
	const char *vstart[K_N] = { NULL };
	bool vesc[K_N] = { false };

	memset(out, 0, sizeof(*out));
	if (len < 2 || line[0] != '{')
		return false;
	l.p++;
	ws(&l);
	for (;;) {
		const char *k = l.p + 1, *kend;
		bool esc, neg;
		int which = -1;

		if (l.p >= l.end || *l.p != '"' || !string(&l, &esc) || esc)
			return false;
		kend = l.p - 1;
		for (int i = 0; i < K_N; i++)
			if ((size_t)(kend - k) == strlen(keys[i]) && memcmp(k, keys[i], (size_t)(kend - k)) == 0)
				which = i;
		ws(&l);
		if (l.p >= l.end || *l.p != ':')
			return false;
		l.p++;
		ws(&l);
		if (which >= 0) {
			if (vstart[which])
				return false; /* a duplicate: jansson keeps the last */
			vstart[which] = l.p;
		}
		if (which == K_SEQ) {
			uint64_t v;

			if (l.p >= l.end || !number(&l, &neg, &v) || neg || v != seq)
				return false;
		} else if (which >= 0 && which != K_FLEET_HASH) {
			if (l.p >= l.end || *l.p != '"' || !string(&l, &vesc[which]))
				return false;
		} else if (!value(&l, 1)) {
			return false;
		}
		ws(&l);
		if (l.p >= l.end)
			return false;
		if (*l.p == '}') {
			l.p++;
			break;
		}
		if (*l.p != ',')
			return false;
		l.p++;
		ws(&l);
	}
	ws(&l);
	if (l.p != l.end)
		return false;
	for (int i = K_SEQ; i <= K_HASH; i++)
		if (!vstart[i])
			return false;
	/* prev and hash are the members the chain check read from the tail,
	 * byte for byte, with no escape to make them mean something else. */
	if (vesc[K_PREV] || vesc[K_HASH] || vesc[K_EVENT] || vesc[K_TIME] ||
	    vstart[K_PREV] != line + len - SBX_JR_TAIL + 8 ||
	    vstart[K_HASH] != line + len - SBX_JR_HEX - 3)
		return false;
	out->seq = seq;
	out->time = vstart[K_TIME] + 1;
	out->time_len = (size_t)(strchr(out->time, '"') - out->time);
	out->event = vstart[K_EVENT] + 1;
	out->event_len = (size_t)(strchr(out->event, '"') - out->event);
	out->has_fleet_hash = vstart[K_FLEET_HASH] != NULL;
	return true;
}

bool sbx_jr_line_event_is(const char *line, size_t len, const char *event)
{
	static const char tpre[] = ",\"time\":\"", epre[] = "\",\"event\":\"";
	const char *p = memchr(line, ',', len < 32 ? len : 32), *end = line + len, *q;
	size_t n = strlen(event);

	if (!p || (size_t)(end - p) < sizeof(tpre) - 1 || memcmp(p, tpre, sizeof(tpre) - 1) != 0)
		return false;
	p += sizeof(tpre) - 1;
	q = memchr(p, '"', (size_t)(end - p) < 64 ? (size_t)(end - p) : 64);
	if (!q || (size_t)(end - q) < sizeof(epre) - 1 + n + 1)
		return false;
	return memcmp(q, epre, sizeof(epre) - 1) == 0 &&
	       memcmp(q + sizeof(epre) - 1, event, n) == 0 && q[sizeof(epre) - 1 + n] == '"';
}
