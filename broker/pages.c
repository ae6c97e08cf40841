/*
 * Lists in pages (pages.h): the walk over request ids, and the reply
 * that stops at LIMIT or a full frame and says where to go on.
 */
#include "config.h"

#include "pages.h"

#include "text.h"
#include "timeutil.h"

#include <string.h>

bool sbx_page_first(uint32_t cursor, size_t n, bool newest_first, size_t *i)
{
	if (n == 0)
		return false;
	if (newest_first) {
		/* ids below cursor: the highest is cursor - 1, index cursor - 2 */
		if (cursor == 1)
			return false;
		*i = cursor == 0 || (size_t)cursor - 1 > n ? n - 1 : (size_t)cursor - 2;
		return true;
	}
	/* ids above cursor: the lowest is cursor + 1, index cursor */
	if ((size_t)cursor >= n)
		return false;
	*i = cursor;
	return true;
}

/* The next index of the walk; false at its end. */
static bool page_step(size_t *i, size_t n, bool newest_first)
{
	if (newest_first) {
		if (*i == 0)
			return false;
		(*i)--;
		return true;
	}
	if (*i + 1 >= n)
		return false;
	(*i)++;
	return true;
}

/* Decimal 1..max, digits only, at most 10 of them.  0 or -1. */
static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;
	size_t len = strlen(s);

	if (len == 0 || len > 10 || strspn(s, "0123456789") != len)
		return -1;
	for (const char *p = s; *p; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (v == 0 || v > max)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

int sbx_page_parse_limit(const char *s, uint32_t def, uint32_t max, uint32_t *out, char *why,
			 size_t whylen)
{
	if (!s) {
		*out = def;
		return 0;
	}
	if (parse_u32(s, max, out) < 0)
		return sbx_whyf(why, whylen, -1, "limit must be a number from 1 to %u", max);
	return 0;
}

int sbx_page_parse_cursor(const char *s, uint32_t *out, char *why, size_t whylen)
{
	if (!s) {
		*out = 0;
		return 0;
	}
	if (parse_u32(s, UINT32_MAX, out) < 0)
		return sbx_whyf(why, whylen, -1, "cursor is not one this list gave (next_cursor)");
	return 0;
}

void sbx_reply_page(struct sbx_broker *b, struct sbx_call *c, bool newest_first,
		    sbx_page_pick_fn pick)
{
	size_t n = sbx_state_count(b->state), i;
	uint32_t limit = c->a.has_limit ? c->a.limit : UINT32_MAX, put = 0;
	uint32_t last = 0, before_last = 0;
	sbx_msg_mark last_mark = { 0 };
	int64_t now = sbx_now();
	bool more = false;

	if (c->a.has_limit && c->a.limit == 0) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "limit must be at least 1");
		return;
	}
	sbx_reply_ok(c, NULL);
	for (bool go = sbx_page_first(c->a.cursor, n, newest_first, &i); go;
	     go = page_step(&i, n, newest_first)) {
		const struct sbx_req *r = sbx_state_at(b->state, i);
		sbx_msg_mark mark;

		if (!r || !pick(b, c, r, now))
			continue;
		/* One more than the page holds: the page is full and says so. */
		if (put == limit) {
			more = true;
			break;
		}
		mark = sbx_msg_here(c->reply);
		sbx_reply_put_req(b, c->reply, r);
		if (sbx_msg_undo_if_failed(c->reply, mark)) {
			more = true;
			break;
		}
		put++;
		before_last = last;
		last = r->id;
		last_mark = mark;
	}
	if (!more)
		return;
	if (put == 0) {
		/* Cannot be with the caps on a request's fields; never loop. */
		sbx_reply_fail(c, SBX_ST_INTERNAL, "a request does not fit one frame");
		return;
	}
	if (sbx_msg_put_u32(c->reply, SBX_F_NEXT_CURSOR, last) == 0)
		return;
	/* No room left for the cursor: the last record goes to the next page. */
	(void)sbx_msg_undo_if_failed(c->reply, last_mark);
	if (put == 1) {
		sbx_reply_fail(c, SBX_ST_INTERNAL, "a request does not fit one frame");
		return;
	}
	sbx_msg_put_u32(c->reply, SBX_F_NEXT_CURSOR, before_last);
}
