/*
 * Lists in pages: LIST, PENDING and GRANTS answer with requests in id
 * order (newest or oldest first), at most LIMIT of them and never more
 * than one frame holds, and end with NEXT_CURSOR when more follow.  A
 * cursor is a request id: ids are never reused or renumbered, so a walk
 * that sends each reply's NEXT_CURSOR back as CURSOR sees every request
 * that stays on the list exactly once, however many come or go between
 * the pages.  Which requests a list holds for whom is the caller's pick
 * function: a page never shows more than the whole list did.
 */
#ifndef SBX_PAGES_H
#define SBX_PAGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dispatch.h"

/* The HTTP API's bounds on ?limit= (docs/api.md, "Lists in pages"). */
#define SBX_PAGE_LIMIT_DEFAULT 100u
#define SBX_PAGE_LIMIT_MAX 1000u

/* The walk over ids 1..n (index id - 1) that goes on after cursor (0:
 * from the start), newest first (down) or oldest first (up): *i gets the
 * first index to look at.  false when there is none. */
bool sbx_page_first(uint32_t cursor, size_t n, bool newest_first, size_t *i);

/* ?limit=: absent (NULL) is def; else decimal 1..max, digits only.
 * 0, or -1 with why. */
int sbx_page_parse_limit(const char *s, uint32_t def, uint32_t max, uint32_t *out, char *why,
			 size_t whylen);
/* ?cursor=: absent (NULL) is 0, from the start; else what a reply's
 * next_cursor said (a request id, 1..UINT32_MAX).  0, or -1 with why. */
int sbx_page_parse_cursor(const char *s, uint32_t *out, char *why, size_t whylen);

/* Does request r belong on c's list (and may c's person see it)? */
typedef bool (*sbx_page_pick_fn)(struct sbx_broker *b, const struct sbx_call *c,
				 const struct sbx_req *r, int64_t now);

/* Reply to c with the page of the requests pick takes that starts after
 * c->a.cursor: at most c->a.limit of them (when given) and what fits one
 * frame, then NEXT_CURSOR if more follow.  A LIMIT of 0 is BADINPUT. */
void sbx_reply_page(struct sbx_broker *b, struct sbx_call *c, bool newest_first,
		    sbx_page_pick_fn pick);

#endif
