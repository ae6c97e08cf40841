/*
 * Lists in pages (broker/pages.h): the walk over request ids a cursor
 * starts, the API's ?limit= and ?cursor= parsers, and LIST / PENDING /
 * GRANTS through the dispatcher with CURSOR and LIMIT on the reference
 * policy: each page goes on after the cursor, says NEXT_CURSOR only when
 * more follow, and holds only what the caller may see.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "broker_rig.h"
#include "pages.h"

/* ---- the walk ------------------------------------------------------------ */

Test(pages, newest_first_starts_below_the_cursor)
{
	size_t i = 99;

	cr_assert(sbx_page_first(0, 5, true, &i));
	cr_assert_eq(i, 4, "from the start: the newest, id 5");
	cr_assert(sbx_page_first(5, 5, true, &i));
	cr_assert_eq(i, 3, "after id 5: id 4");
	cr_assert(sbx_page_first(2, 5, true, &i));
	cr_assert_eq(i, 0, "after id 2: id 1");
	cr_assert_not(sbx_page_first(1, 5, true, &i), "nothing is below id 1");
	cr_assert(sbx_page_first(900, 5, true, &i));
	cr_assert_eq(i, 4, "a cursor past the end: from the newest");
	cr_assert(sbx_page_first(6, 5, true, &i));
	cr_assert_eq(i, 4);
	cr_assert_not(sbx_page_first(0, 0, true, &i), "an empty list has no first");
	cr_assert(sbx_page_first(UINT32_MAX, 3, true, &i));
	cr_assert_eq(i, 2);
}

Test(pages, oldest_first_starts_above_the_cursor)
{
	size_t i = 99;

	cr_assert(sbx_page_first(0, 5, false, &i));
	cr_assert_eq(i, 0, "from the start: the oldest, id 1");
	cr_assert(sbx_page_first(1, 5, false, &i));
	cr_assert_eq(i, 1, "after id 1: id 2");
	cr_assert(sbx_page_first(4, 5, false, &i));
	cr_assert_eq(i, 4);
	cr_assert_not(sbx_page_first(5, 5, false, &i), "nothing is above the newest");
	cr_assert_not(sbx_page_first(UINT32_MAX, 5, false, &i));
	cr_assert_not(sbx_page_first(0, 0, false, &i));
}

/* ---- the API's query --------------------------------------------------------- */

Test(pages, limit_is_a_number_within_bounds)
{
	static const char *bad[] = { "0", "1001", "-1", "", "ten", "1e3", " 5", "5 ", "+5",
				     "0x10", "99999999999", "4294967297" };
	uint32_t v = 7;
	char why[128];

	cr_assert_eq(sbx_page_parse_limit(NULL, 100, 1000, &v, why, sizeof(why)), 0);
	cr_assert_eq(v, 100, "absent: the default");
	cr_assert_eq(sbx_page_parse_limit("1", 100, 1000, &v, why, sizeof(why)), 0);
	cr_assert_eq(v, 1);
	cr_assert_eq(sbx_page_parse_limit("1000", 100, 1000, &v, why, sizeof(why)), 0);
	cr_assert_eq(v, 1000);
	cr_assert_eq(sbx_page_parse_limit("007", 100, 1000, &v, why, sizeof(why)), 0);
	cr_assert_eq(v, 7);
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		v = 42;
		cr_assert_eq(sbx_page_parse_limit(bad[k], 100, 1000, &v, why, sizeof(why)), -1,
			     "limit=%s", bad[k]);
		cr_assert_eq(v, 42, "limit=%s leaves the value alone", bad[k]);
		cr_assert_str_eq(why, "limit must be a number from 1 to 1000");
	}
}

Test(pages, cursor_is_what_next_cursor_said)
{
	static const char *bad[] = { "0", "", "abc", "-5", "12x", "4294967296",
				     "99999999999", " 1" };
	uint32_t v = 7;
	char why[128];

	cr_assert_eq(sbx_page_parse_cursor(NULL, &v, why, sizeof(why)), 0);
	cr_assert_eq(v, 0, "absent: from the start");
	cr_assert_eq(sbx_page_parse_cursor("4294967295", &v, why, sizeof(why)), 0);
	cr_assert_eq(v, UINT32_MAX);
	cr_assert_eq(sbx_page_parse_cursor("12", &v, why, sizeof(why)), 0);
	cr_assert_eq(v, 12);
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++)
		cr_assert_eq(sbx_page_parse_cursor(bad[k], &v, why, sizeof(why)), -1,
			     "cursor=%s", bad[k]);
}

/* ---- through the dispatcher ---------------------------------------------------- */

static struct rig R;
static char msg[1024];

static void setup(void)
{
	rig_setup(&R);
}

static void teardown(void)
{
	rig_teardown(&R);
}

TestSuite(page_ops, .init = setup, .fini = teardown);

/* as files for role; the new request's id. */
static uint32_t file(const char *as, const char *role)
{
	sbx_msg m, reply = { 0 };
	sbx_reader rd, rec;
	sbx_field f, g;
	uint32_t id = 0;

	sbx_msg_init(&m, SBX_OP_REQUEST);
	sbx_msg_put_str(&m, SBX_F_AS_USER, as);
	sbx_msg_put_str(&m, SBX_F_ROLE, role);
	sbx_msg_put_str(&m, SBX_F_REASON, "the pages need requests to list");
	cr_assert_eq(rig_call(&R, &R.root, &m, msg, sizeof(msg), &reply), SBX_ST_OK, "%s", msg);
	sbx_reader_init_frame(&rd, reply.buf, reply.len);
	cr_assert_eq(sbx_reader_find(&rd, SBX_F_REQUEST, &f), 1);
	sbx_reader_init_rec(&rec, &f);
	cr_assert_eq(sbx_reader_find(&rec, SBX_F_ID, &g), 1);
	id = sbx_field_u32(&g);
	sbx_msg_free(&reply);
	return id;
}

struct page {
	uint32_t status;
	uint32_t ids[16];
	size_t n;
	uint32_t next;      /* 0: no NEXT_CURSOR */
};

/* One page of op as `as` (NULL: root itself). */
static struct page list(uint16_t op, const char *as, uint32_t cursor, uint32_t limit,
			bool has_limit)
{
	struct page p = { 0 };
	sbx_msg m, reply = { 0 };
	sbx_reader rd, rec;
	sbx_field f, g;

	sbx_msg_init(&m, op);
	if (as)
		sbx_msg_put_str(&m, SBX_F_AS_USER, as);
	if (cursor)
		sbx_msg_put_u32(&m, SBX_F_CURSOR, cursor);
	if (has_limit)
		sbx_msg_put_u32(&m, SBX_F_LIMIT, limit);
	p.status = rig_call(&R, &R.root, &m, msg, sizeof(msg), &reply);
	sbx_reader_init_frame(&rd, reply.buf, reply.len);
	while (sbx_reader_next(&rd, &f) == 1) {
		if (f.tag == SBX_F_NEXT_CURSOR) {
			p.next = sbx_field_u32(&f);
		} else if (f.tag == SBX_F_REQUEST && p.n < 16) {
			sbx_reader_init_rec(&rec, &f);
			cr_assert_eq(sbx_reader_find(&rec, SBX_F_ID, &g), 1);
			p.ids[p.n++] = sbx_field_u32(&g);
		}
	}
	sbx_msg_free(&reply);
	return p;
}

Test(page_ops, grants_page_newest_first_and_say_where_to_go_on)
{
	uint32_t a = file("alice", "sandbox-readonly"), c = file("carol", "sandbox-readonly");
	uint32_t d = file("dave", "sandbox-readonly");
	struct page p;

	(void)file("erin", "sandbox-admin"); /* pending: not a grant */
	p = list(SBX_OP_GRANTS, NULL, 0, 2, true);
	cr_assert_eq(p.status, SBX_ST_OK, "%s", msg);
	cr_assert_eq(p.n, 2);
	cr_assert_eq(p.ids[0], d);
	cr_assert_eq(p.ids[1], c);
	cr_assert_eq(p.next, c, "the cursor is the last id given");
	p = list(SBX_OP_GRANTS, NULL, p.next, 2, true);
	cr_assert_eq(p.n, 1);
	cr_assert_eq(p.ids[0], a);
	cr_assert_eq(p.next, 0, "the last page says no NEXT_CURSOR");
	p = list(SBX_OP_GRANTS, NULL, 0, 3, true);
	cr_assert_eq(p.n, 3);
	cr_assert_eq(p.next, 0, "exactly LIMIT left: no empty page after it");
	p = list(SBX_OP_GRANTS, NULL, 0, 0, false);
	cr_assert_eq(p.n, 3, "no LIMIT: what fits one frame");
	cr_assert_eq(p.next, 0);
	p = list(SBX_OP_GRANTS, NULL, 0, 0, true);
	cr_assert_eq(p.status, SBX_ST_BADINPUT, "LIMIT 0 is refused");
	cr_assert_str_eq(msg, "limit must be at least 1");
}

Test(page_ops, a_persons_pages_hold_only_their_own)
{
	uint32_t a = file("alice", "sandbox-readonly");
	struct page p;

	(void)file("carol", "sandbox-readonly");
	(void)file("dave", "sandbox-readonly");
	p = list(SBX_OP_GRANTS, "alice", 0, 1, true);
	cr_assert_eq(p.status, SBX_ST_OK, "%s", msg);
	cr_assert_eq(p.n, 1);
	cr_assert_eq(p.ids[0], a);
	cr_assert_eq(p.next, 0, "others' grants are not 'more' for alice");
	/* a cursor someone made up shows nothing more */
	p = list(SBX_OP_GRANTS, "alice", 3, 5, true);
	cr_assert_eq(p.n, 1);
	cr_assert_eq(p.ids[0], a);
	p = list(SBX_OP_LIST, "carol", 0, 5, true);
	cr_assert_eq(p.n, 1);
	cr_assert_neq(p.ids[0], a);
}

Test(page_ops, pending_pages_oldest_first)
{
	uint32_t a = file("alice", "sandbox-admin"), e = file("erin", "sandbox-admin");
	uint32_t d = file("dave", "sandbox-admin");
	struct page p;

	p = list(SBX_OP_PENDING, "grace", 0, 2, true);
	cr_assert_eq(p.status, SBX_ST_OK, "%s", msg);
	cr_assert_eq(p.n, 2);
	cr_assert_eq(p.ids[0], a);
	cr_assert_eq(p.ids[1], e);
	cr_assert_eq(p.next, e);
	p = list(SBX_OP_PENDING, "grace", p.next, 2, true);
	cr_assert_eq(p.n, 1);
	cr_assert_eq(p.ids[0], d);
	cr_assert_eq(p.next, 0);
	p = list(SBX_OP_PENDING, "carol", 0, 2, true);
	cr_assert_eq(p.n, 0, "carol decides none of them");
	cr_assert_eq(p.next, 0);
}

Test(page_ops, other_ops_do_not_take_a_cursor)
{
	sbx_msg m;

	sbx_msg_init(&m, SBX_OP_ROLES);
	sbx_msg_put_u32(&m, SBX_F_CURSOR, 1);
	cr_assert_eq(rig_call(&R, &R.root, &m, msg, sizeof(msg), NULL), SBX_ST_BADINPUT);
	cr_assert(strstr(msg, "does not belong") != NULL, "%s", msg);
}
