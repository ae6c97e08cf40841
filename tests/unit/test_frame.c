/*
 * Frame codec (common/frame.c) and client socket I/O (common/sbxio.c).
 */
#include "config.h"

#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "frame.h"
#include "sbxio.h"

/* ------------------------------------------------------------------------
 * helpers
 */

static void be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A frame from hand-written field bytes, so malformed ones can be made. */
static size_t raw_frame(uint8_t *out, uint16_t version, uint16_t op, const uint8_t *fields,
			size_t flen)
{
	be32(out, (uint32_t)(SBX_HDR_LEN + flen));
	be16(out + 4, version);
	be16(out + 6, op);
	if (flen)
		memcpy(out + SBX_HDR_LEN, fields, flen);
	return SBX_HDR_LEN + flen;
}

static size_t raw_field(uint8_t *out, uint16_t tag, uint16_t len, const void *val)
{
	be16(out, tag);
	be16(out + 2, len);
	if (len && val)
		memcpy(out + 4, val, len);
	return 4u + len;
}

static int validate(const uint8_t *f, size_t n, char *why, size_t whylen)
{
	return sbx_frame_validate(f, n, 0, why, whylen);
}

#define expect_invalid(buf, n, substr)                                                     \
	do {                                                                               \
		char why_[256];                                                            \
		int rc_ = validate((buf), (n), why_, sizeof(why_));                        \
		cr_expect_lt(rc_, 0, "validate accepted it");                              \
		cr_expect(strstr(why_, (substr)) != NULL, "why \"%s\" lacks \"%s\"", why_, \
			  (substr));                                                       \
	} while (0)

/* The same frame the docs' hex dump shows. */
static void build_check(sbx_msg *m, const char *user)
{
	cr_assert_eq(sbx_msg_init(m, SBX_OP_CHECK), 0);
	sbx_msg_put_str(m, SBX_F_USER, user);
	sbx_msg_put_str(m, SBX_F_SERVICE, "sshd");
	sbx_msg_put_u32(m, SBX_F_FLAGS, SBX_CHECK_RECORD);
	cr_assert_eq(sbx_msg_finish(m), 0);
}

/* ------------------------------------------------------------------------
 * builder and reader
 */

Test(frame, exact_bytes_network_order)
{
	static const uint8_t want[] = {
		0x00, 0x00, 0x00, 0x24, 0x00, 0x01, 0x00, 0x01, /* len 36, v1, CHECK */
		0x01, 0x01, 0x00, 0x04, 'e', 'r', 'i', 'n',     /* USER "erin" */
		0x02, 0x03, 0x00, 0x08, 0xff, 0xff, 0xff, 0xff, /* DURATION -2 */
		0xff, 0xff, 0xff, 0xfe,
		0x02, 0x01, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04, /* ID 0x01020304 */
	};
	sbx_msg m;

	/* DURATION and ID make no sense in a CHECK, but the codec does not
	 * know per-op fields; it checks framing and types. */
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_CHECK), 0);
	cr_assert_eq(sbx_msg_put_str(&m, SBX_F_USER, "erin"), 0);
	cr_assert_eq(sbx_msg_put_i64(&m, SBX_F_DURATION, -2), 0);
	cr_assert_eq(sbx_msg_put_u32(&m, SBX_F_ID, 0x01020304u), 0);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(m.len, sizeof(want));
	cr_assert(memcmp(m.buf, want, sizeof(want)) == 0, "bytes differ");
	sbx_msg_free(&m);
}

/* The hex dumps in docs/protocol.md. */
Test(frame, doc_example_bytes)
{
	static const uint8_t req[] = {
		0x00, 0x00, 0x00, 0x20, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x00, 0x04,
		0x65, 0x72, 0x69, 0x6e, 0x01, 0x02, 0x00, 0x04, 0x73, 0x73, 0x68, 0x64,
		0x00, 0x04, 0x00, 0x04, 0x00, 0x00, 0x00, 0x01,
	};
	static const uint8_t rep[] = {
		0x00, 0x00, 0x00, 0x4a, 0x00, 0x01, 0x80, 0x01, 0x00, 0x01, 0x00, 0x04,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x0c, 0x61, 0x63, 0x74, 0x69,
		0x76, 0x65, 0x20, 0x67, 0x72, 0x61, 0x6e, 0x74, 0x01, 0x05, 0x00, 0x04,
		0x00, 0x00, 0x00, 0x01, 0x02, 0x02, 0x00, 0x0d, 0x73, 0x61, 0x6e, 0x64,
		0x62, 0x6f, 0x78, 0x2d, 0x61, 0x64, 0x6d, 0x69, 0x6e, 0x02, 0x01, 0x00,
		0x04, 0x00, 0x00, 0x00, 0x07, 0x01, 0x06, 0x00, 0x05, 0x67, 0x72, 0x61,
		0x6e, 0x74,
	};
	sbx_msg m;

	build_check(&m, "erin");
	cr_assert_eq(m.len, sizeof(req));
	cr_assert(memcmp(m.buf, req, sizeof(req)) == 0);
	cr_assert_eq(validate(m.buf, m.len, NULL, 0), 0);
	sbx_msg_free(&m);

	cr_assert_eq(sbx_msg_init_reply(&m, SBX_OP_CHECK, SBX_ST_OK, "active grant"), 0);
	sbx_msg_put_u32(&m, SBX_F_ALLOWED, 1);
	sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
	sbx_msg_put_u32(&m, SBX_F_ID, 7);
	sbx_msg_put_str(&m, SBX_F_VIA, "grant");
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(m.len, sizeof(rep));
	cr_assert(memcmp(m.buf, rep, sizeof(rep)) == 0);
	sbx_msg_free(&m);
}

Test(frame, roundtrip_every_type)
{
	static const int64_t i64s[] = { 0, 1, -1, INT64_MIN, INT64_MAX, 1764288594 };
	static const uint32_t u32s[] = { 0, 1, 0x7fffffffu, 0x80000000u, 0xffffffffu };
	char longstr[SBX_STR_MAX + 1];
	sbx_reader r;
	sbx_field f;
	sbx_msg m;
	char buf[SBX_STR_MAX + 1];
	size_t i;

	memset(longstr, 'x', SBX_STR_MAX);
	longstr[SBX_STR_MAX] = '\0';
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_REQUEST), 0);
	sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
	sbx_msg_put_str(&m, SBX_F_REASON, "");
	sbx_msg_put_str(&m, SBX_F_REASON, longstr);
	sbx_msg_put_str(&m, SBX_F_TICKET, "caf\xc3\xa9 \xe2\x82\xac");
	for (i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++)
		sbx_msg_put_u32(&m, SBX_F_ID, u32s[i]);
	for (i = 0; i < sizeof(i64s) / sizeof(i64s[0]); i++)
		sbx_msg_put_i64(&m, SBX_F_DURATION, i64s[i]);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(validate(m.buf, m.len, NULL, 0), 0);

	sbx_reader_init_frame(&r, m.buf, m.len);
	cr_assert_eq(sbx_reader_next(&r, &f), 1);
	cr_assert_eq(f.tag, SBX_F_ROLE);
	cr_assert_eq(sbx_field_str(&f, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "sandbox-admin");
	cr_assert_eq(sbx_reader_next(&r, &f), 1);
	cr_assert_eq(f.len, 0);
	cr_assert_eq(sbx_field_str(&f, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "");
	cr_assert_eq(sbx_reader_next(&r, &f), 1);
	cr_assert_eq(f.len, SBX_STR_MAX);
	cr_assert_eq(sbx_field_str(&f, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, longstr);
	cr_assert_eq(sbx_reader_next(&r, &f), 1);
	cr_assert_eq(sbx_field_str(&f, buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "caf\xc3\xa9 \xe2\x82\xac");
	for (i = 0; i < sizeof(u32s) / sizeof(u32s[0]); i++) {
		cr_assert_eq(sbx_reader_next(&r, &f), 1);
		cr_assert_eq(f.tag, SBX_F_ID);
		cr_assert_eq(sbx_field_u32(&f), u32s[i]);
	}
	for (i = 0; i < sizeof(i64s) / sizeof(i64s[0]); i++) {
		cr_assert_eq(sbx_reader_next(&r, &f), 1);
		cr_assert_eq(f.tag, SBX_F_DURATION);
		cr_assert_eq(sbx_field_i64(&f), i64s[i], "i64 #%zu", i);
	}
	cr_assert_eq(sbx_reader_next(&r, &f), 0);
	cr_assert_eq(sbx_reader_next(&r, &f), 0, "stays at the end");
	sbx_msg_free(&m);
}

Test(frame, record_depth_is_limited)
{
	sbx_msg m;

	cr_assert_eq(sbx_msg_init(&m, SBX_OP_LIST), 0);
	/* three levels: REQUEST > ROLEINFO > MEMBERSHIP */
	cr_assert_eq(sbx_msg_begin_rec(&m, SBX_F_REQUEST), 0);
	cr_assert_eq(sbx_msg_begin_rec(&m, SBX_F_ROLEINFO), 0);
	cr_assert_eq(sbx_msg_begin_rec(&m, SBX_F_MEMBERSHIP), 0);
	cr_assert_eq(sbx_msg_put_str(&m, SBX_F_ROLE, "deep"), 0);
	cr_assert_eq(sbx_msg_begin_rec(&m, SBX_F_REQUEST), -EINVAL, "a fourth level is refused");
	cr_assert_eq(sbx_msg_end_rec(&m), -EINVAL, "sticky");
	cr_assert_eq(sbx_msg_finish(&m), -EINVAL);
	sbx_msg_free(&m);

	cr_assert_eq(sbx_msg_init(&m, SBX_OP_LIST), 0);
	cr_assert_eq(sbx_msg_begin_rec(&m, SBX_F_REQUEST), 0);
	cr_assert_eq(sbx_msg_begin_rec(&m, SBX_F_ROLEINFO), 0);
	cr_assert_eq(sbx_msg_begin_rec(&m, SBX_F_MEMBERSHIP), 0);
	cr_assert_eq(sbx_msg_end_rec(&m), 0);
	cr_assert_eq(sbx_msg_end_rec(&m), 0);
	cr_assert_eq(sbx_msg_end_rec(&m), 0);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(validate(m.buf, m.len, NULL, 0), 0, "three levels validate");
	cr_assert_eq(sbx_msg_end_rec(&m), -EINVAL, "end without begin");
	cr_assert_eq(m.error, -EINVAL);
	sbx_msg_free(&m);
}

Test(frame, nested_records_and_repeated_tags)
{
	sbx_reader r, rr, r3, r4;
	sbx_field f, rec;
	sbx_msg m;
	char s[64];
	int n, rc;

	cr_assert_eq(sbx_msg_init_reply(&m, SBX_OP_EXPLAIN, SBX_ST_OK, "erin may not log in"), 0);
	for (int i = 0; i < 3; i++) {
		sbx_msg_begin_rec(&m, SBX_F_MEMBERSHIP);
		snprintf(s, sizeof(s), "role%d", i);
		sbx_msg_put_str(&m, SBX_F_ROLE, s);
		if (i == 1) {
			sbx_msg_begin_rec(&m, SBX_F_REQUEST);
			sbx_msg_put_u32(&m, SBX_F_ID, 7);
			sbx_msg_put_str(&m, SBX_F_APPROVED_BY, "frank");
			sbx_msg_put_str(&m, SBX_F_APPROVED_BY, "carol");
			sbx_msg_begin_rec(&m, SBX_F_ROLEINFO);
			sbx_msg_put_str(&m, SBX_F_HOSTS, "sbx-*");
			sbx_msg_put_str(&m, SBX_F_HOSTS, "dev-*");
			sbx_msg_end_rec(&m);
			sbx_msg_put_i64(&m, SBX_F_EXPIRES_AT, 1764288594);
			sbx_msg_end_rec(&m);
		}
		sbx_msg_put_str(&m, SBX_F_HOW, "eligible");
		sbx_msg_end_rec(&m);
	}
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(validate(m.buf, m.len, NULL, 0), -EBADMSG, "reply op is not a request op");
	cr_assert_eq(sbx_frame_validate(m.buf, m.len, 1, NULL, 0), 0);

	sbx_reader_init_frame(&r, m.buf, m.len);
	cr_assert_eq(sbx_reader_next(&r, &f), 1);
	cr_assert_eq(f.tag, SBX_F_STATUS);
	cr_assert_eq(sbx_reader_next(&r, &f), 1);
	cr_assert_eq(f.tag, SBX_F_MESSAGE);
	n = 0;
	while ((rc = sbx_reader_next(&r, &rec)) == 1) {
		cr_assert_eq(rec.tag, SBX_F_MEMBERSHIP);
		sbx_reader_init_rec(&rr, &rec);
		cr_assert_eq(sbx_reader_find(&rr, SBX_F_ROLE, &f), 1);
		snprintf(s, sizeof(s), "role%d", n);
		cr_assert_eq(f.len, strlen(s));
		cr_assert(memcmp(f.val, s, f.len) == 0);
		cr_assert_eq(sbx_reader_find(&rr, SBX_F_HOW, &f), 1);
		cr_assert_eq(f.len, 8);
		if (n == 1) {
			sbx_field req, ri;
			int approvers = 0, hosts = 0;

			cr_assert_eq(sbx_reader_find(&rr, SBX_F_REQUEST, &req), 1);
			sbx_reader_init_rec(&r3, &req);
			while (sbx_reader_next(&r3, &f) == 1)
				approvers += f.tag == SBX_F_APPROVED_BY;
			cr_assert_eq(approvers, 2, "repeated tags are all there");
			sbx_reader_init_rec(&r3, &req);
			cr_assert_eq(sbx_reader_find(&r3, SBX_F_APPROVED_BY, &f), 1);
			cr_assert_eq(memcmp(f.val, "frank", 5), 0, "find returns the first");
			cr_assert_eq(sbx_reader_find(&r3, SBX_F_EXPIRES_AT, &f), 1);
			cr_assert_eq(sbx_field_i64(&f), 1764288594);
			cr_assert_eq(sbx_reader_find(&r3, SBX_F_ROLEINFO, &ri), 1);
			sbx_reader_init_rec(&r4, &ri);
			while (sbx_reader_next(&r4, &f) == 1) {
				cr_assert_eq(f.tag, SBX_F_HOSTS);
				hosts++;
			}
			cr_assert_eq(hosts, 2);
		} else {
			cr_assert_eq(sbx_reader_find(&rr, SBX_F_REQUEST, &f), 0);
		}
		n++;
	}
	cr_assert_eq(rc, 0);
	cr_assert_eq(n, 3);
	/* find does not move the reader */
	sbx_reader_init_frame(&r, m.buf, m.len);
	cr_assert_eq(sbx_reader_find(&r, SBX_F_MESSAGE, &f), 1);
	cr_assert_eq(sbx_reader_next(&r, &f), 1);
	cr_assert_eq(f.tag, SBX_F_STATUS);
	cr_assert_eq(sbx_reader_find(&r, SBX_F_USER, &f), 0);
	sbx_msg_free(&m);
}

Test(frame, empty_record_and_empty_frame)
{
	sbx_reader r, rr;
	sbx_field f;
	sbx_msg m;

	cr_assert_eq(sbx_msg_init(&m, SBX_OP_PING), 0);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(m.len, SBX_HDR_LEN);
	cr_assert_eq(validate(m.buf, m.len, NULL, 0), 0);
	sbx_reader_init_frame(&r, m.buf, m.len);
	cr_assert_eq(sbx_reader_next(&r, &f), 0);
	sbx_msg_free(&m);

	cr_assert_eq(sbx_msg_init(&m, SBX_OP_LIST), 0);
	sbx_msg_begin_rec(&m, SBX_F_REQUEST);
	sbx_msg_end_rec(&m);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(validate(m.buf, m.len, NULL, 0), 0);
	sbx_reader_init_frame(&r, m.buf, m.len);
	cr_assert_eq(sbx_reader_next(&r, &f), 1);
	cr_assert_eq(f.len, 0);
	sbx_reader_init_rec(&rr, &f);
	cr_assert_eq(sbx_reader_next(&rr, &f), 0);
	sbx_msg_free(&m);
}

Test(frame, init_reply_ops_and_message)
{
	char big[SBX_STR_MAX + 16];
	uint32_t st;
	char msg[SBX_STR_MAX + 16];
	sbx_msg m;

	cr_assert_eq(sbx_msg_init_reply(&m, SBX_OP_CHECK, SBX_ST_REFUSED, "no grant"), 0);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(m.buf[6], 0x80);
	cr_assert_eq(m.buf[7], 0x01);
	cr_assert_eq(sbx_reply_status(m.buf, m.len, &st, msg, sizeof(msg)), 0);
	cr_assert_eq(st, SBX_ST_REFUSED);
	cr_assert_str_eq(msg, "no grant");
	sbx_msg_free(&m);

	cr_assert_eq(sbx_msg_init_reply(&m, SBX_OP_CHECK | SBX_OP_REPLY, SBX_ST_OK, NULL), 0);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(m.buf[6], 0x80, "an op already marked as reply stays one");
	cr_assert_eq(m.buf[7], 0x01);
	cr_assert_eq(sbx_reply_status(m.buf, m.len, &st, msg, sizeof(msg)), 0);
	cr_assert_str_eq(msg, "", "NULL message is an empty MESSAGE");
	sbx_msg_free(&m);

	cr_assert_eq(sbx_msg_init_reply(&m, SBX_OP_ERROR, SBX_ST_PROTO, "bad"), 0);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(m.buf[6], 0x7f);
	cr_assert_eq(m.buf[7], 0xff);
	sbx_msg_free(&m);

	/* A message past SBX_STR_MAX is cut before a multibyte character,
	 * never fails: error replies must always be sendable. */
	memset(big, 'a', SBX_STR_MAX - 1);
	memcpy(big + SBX_STR_MAX - 1, "\xe2\x82\xac tail", 9);
	cr_assert_eq(sbx_msg_init_reply(&m, SBX_OP_ERROR, SBX_ST_PROTO, big), 0);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(sbx_frame_validate(m.buf, m.len, 1, NULL, 0), 0);
	cr_assert_eq(sbx_reply_status(m.buf, m.len, &st, msg, sizeof(msg)), 0);
	cr_assert_eq(strlen(msg), SBX_STR_MAX - 1);
	sbx_msg_free(&m);
	/* and sbx_reply_status also cuts at a character boundary */
	cr_assert_eq(sbx_msg_init_reply(&m, SBX_OP_ERROR, SBX_ST_PROTO, "ab\xe2\x82\xac"), 0);
	sbx_msg_finish(&m);
	cr_assert_eq(sbx_reply_status(m.buf, m.len, &st, msg, 5), 0);
	cr_assert_str_eq(msg, "ab");
	sbx_msg_free(&m);
}

Test(frame, builder_errors_are_sticky)
{
	char longstr[SBX_STR_MAX + 2];
	sbx_msg m;

	memset(longstr, 'y', SBX_STR_MAX + 1);
	longstr[SBX_STR_MAX + 1] = '\0';
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_CHECK), 0);
	cr_assert_eq(sbx_msg_put_str(&m, SBX_F_USER, longstr), -EINVAL);
	cr_assert_eq(sbx_msg_put_str(&m, SBX_F_USER, "ok"), -EINVAL, "sticky");
	cr_assert_eq(sbx_msg_put_u32(&m, SBX_F_FLAGS, 1), -EINVAL);
	cr_assert_eq(sbx_msg_begin_rec(&m, SBX_F_REQUEST), -EINVAL);
	cr_assert_eq(sbx_msg_finish(&m), -EINVAL);
	sbx_msg_free(&m);
	cr_assert_null(m.buf);
	sbx_msg_free(NULL);

	/* tag of the wrong type */
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_CHECK), 0);
	cr_assert_eq(sbx_msg_put_u32(&m, SBX_F_USER, 1), -EINVAL);
	sbx_msg_free(&m);
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_CHECK), 0);
	cr_assert_eq(sbx_msg_put_str(&m, 0x7777, "x"), -EINVAL, "unknown tag");
	sbx_msg_free(&m);
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_CHECK), 0);
	cr_assert_eq(sbx_msg_begin_rec(&m, SBX_F_USER), -EINVAL);
	sbx_msg_free(&m);
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_CHECK), 0);
	cr_assert_eq(sbx_msg_put_str(&m, SBX_F_USER, NULL), -EINVAL);
	sbx_msg_free(&m);

	/* an open record cannot be finished */
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_LIST), 0);
	cr_assert_eq(sbx_msg_begin_rec(&m, SBX_F_REQUEST), 0);
	cr_assert_eq(sbx_msg_finish(&m), -EINVAL);
	sbx_msg_free(&m);

	/* optional strings */
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_CHECK), 0);
	cr_assert_eq(sbx_msg_put_str_opt(&m, SBX_F_RHOST, NULL), 0);
	cr_assert_eq(sbx_msg_put_str_opt(&m, SBX_F_RHOST, ""), 0);
	cr_assert_eq(m.len, SBX_HDR_LEN);
	cr_assert_eq(sbx_msg_put_str_opt(&m, SBX_F_RHOST, "10.0.0.1"), 0);
	cr_assert_eq(m.len, SBX_HDR_LEN + 4 + 8);
	sbx_msg_free(&m);
}

Test(frame, oversize_builder_fails_with_emsgsize)
{
	char s[SBX_STR_MAX + 1];
	sbx_msg m;
	sbx_reader r;
	sbx_field f;
	int n = 0;

	/* 15 * (4 + 4096) + (4 + 4024) = 65528 = SBX_FRAME_MAX - 8: exactly full */
	memset(s, 'z', SBX_STR_MAX);
	s[SBX_STR_MAX] = '\0';
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_LIST), 0);
	for (int i = 0; i < 15; i++)
		cr_assert_eq(sbx_msg_put_str(&m, SBX_F_REASON, s), 0);
	s[4024] = '\0';
	cr_assert_eq(sbx_msg_put_str(&m, SBX_F_REASON, s), 0);
	cr_assert_eq(m.len, SBX_FRAME_MAX);
	cr_assert_leq(m.cap, SBX_FRAME_MAX);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert_eq(validate(m.buf, m.len, NULL, 0), 0, "a frame of exactly 64 KiB is fine");
	sbx_reader_init_frame(&r, m.buf, m.len);
	while (sbx_reader_next(&r, &f) == 1)
		n++;
	cr_assert_eq(n, 16);
	cr_assert_eq(sbx_msg_put_str(&m, SBX_F_REASON, ""), -EMSGSIZE);
	cr_assert_eq(sbx_msg_finish(&m), -EMSGSIZE);
	cr_assert_eq(m.len, SBX_FRAME_MAX, "a failed put leaves the frame as it was");
	sbx_msg_free(&m);

	/* growth through many small fields, records included */
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_LIST), 0);
	for (;;) {
		int rc;

		sbx_msg_begin_rec(&m, SBX_F_REQUEST);
		sbx_msg_put_u32(&m, SBX_F_ID, 1);
		rc = sbx_msg_end_rec(&m);
		if (rc) {
			cr_assert_eq(rc, -EMSGSIZE);
			break;
		}
	}
	cr_assert_leq(m.len, SBX_FRAME_MAX);
	cr_assert_eq(sbx_msg_finish(&m), -EMSGSIZE);
	sbx_msg_free(&m);
}

Test(frame, reader_on_unvalidated_bytes)
{
	uint8_t fields[64], frame[80];
	size_t n, fl;
	sbx_reader r;
	sbx_field f;
	char small[4];
	char *dup;

	/* USER "alice", then a header that claims 100 bytes */
	fl = raw_field(fields, SBX_F_USER, 5, "alice");
	fl += raw_field(fields + fl, SBX_F_REASON, 100, NULL) - 100;
	n = raw_frame(frame, 1, SBX_OP_CHECK, fields, fl);
	sbx_reader_init_frame(&r, frame, n);
	cr_assert_eq(sbx_reader_next(&r, &f), 1);
	cr_assert_eq(sbx_field_str(&f, small, sizeof(small)), -ENAMETOOLONG);
	cr_assert_str_eq(small, "");
	dup = sbx_field_strdup(&f);
	cr_assert_str_eq(dup, "alice");
	free(dup);
	cr_assert_eq(sbx_reader_next(&r, &f), -EBADMSG);
	cr_assert_eq(sbx_reader_next(&r, &f), -EBADMSG, "stays in error");
	/* three stray bytes after the header: a truncated field header */
	n = raw_frame(frame, 1, SBX_OP_CHECK, (const uint8_t *)"\x01\x01\x00", 3);
	sbx_reader_init_frame(&r, frame, n);
	cr_assert_eq(sbx_reader_next(&r, &f), -EBADMSG);
	cr_assert_eq(sbx_reader_find(&r, SBX_F_USER, &f), -EBADMSG);
	/* too short to have a header at all */
	sbx_reader_init_frame(&r, frame, 4);
	cr_assert_eq(sbx_reader_next(&r, &f), 0);
	sbx_reader_init_frame(&r, NULL, 0);
	cr_assert_eq(sbx_reader_next(&r, &f), 0);
	/* wrong-size numbers read as 0 instead of past the value */
	f.tag = SBX_F_ID;
	f.len = 3;
	f.val = (const uint8_t *)"\xff\xff\xff";
	cr_assert_eq(sbx_field_u32(&f), 0);
	cr_assert_eq(sbx_field_i64(&f), 0);
}

/* ------------------------------------------------------------------------
 * header and validation
 */

Test(frame, hdr_decode)
{
	uint8_t b[8];
	struct sbx_hdr h = { 0 };

	raw_frame(b, 1, SBX_OP_PING, NULL, 0);
	cr_assert_eq(sbx_hdr_decode(b, 8, &h), 0);
	cr_assert_eq(h.length, 8);
	cr_assert_eq(h.version, 1);
	cr_assert_eq(h.op, SBX_OP_PING);
	cr_assert_eq(sbx_hdr_decode(b, 7, &h), -EBADMSG);
	be32(b, 7);
	cr_assert_eq(sbx_hdr_decode(b, 8, &h), -EBADMSG);
	be32(b, SBX_FRAME_MAX + 1);
	cr_assert_eq(sbx_hdr_decode(b, 8, &h), -EBADMSG);
	be32(b, SBX_FRAME_MAX);
	cr_assert_eq(sbx_hdr_decode(b, 8, &h), 0, "the header alone does not know the frame size");
	cr_assert_eq(h.length, SBX_FRAME_MAX);
	be16(b + 4, 2);
	cr_assert_eq(sbx_hdr_decode(b, 8, &h), -EPROTO);
}

Test(frame, validate_rejects_bad_headers)
{
	uint8_t b[64] = { 0 }, f[32];
	size_t n, fl;
	char why[128];

	cr_assert_eq(sbx_frame_validate(b, 0, 0, why, sizeof(why)), -EBADMSG);
	cr_assert_eq(sbx_frame_validate(NULL, 0, 0, why, sizeof(why)), -EBADMSG);
	n = raw_frame(b, 1, SBX_OP_PING, NULL, 0);
	expect_invalid(b, 7, "shorter than");

	be32(b, 4);
	expect_invalid(b, 8, "outside");
	be32(b, 0);
	expect_invalid(b, 8, "outside");
	be32(b, SBX_FRAME_MAX + 1);
	expect_invalid(b, 8, "outside");
	be32(b, 0xffffffffu);
	expect_invalid(b, 8, "outside");

	/* length field disagrees with the bytes given */
	fl = raw_field(f, SBX_F_USER, 3, "bob");
	n = raw_frame(b, 1, SBX_OP_CHECK, f, fl);
	cr_assert_eq(validate(b, n, NULL, 0), 0);
	expect_invalid(b, n - 1, "says 15 bytes, got 14");
	expect_invalid(b, n + 1, "says 15 bytes, got 16");

	n = raw_frame(b, 2, SBX_OP_CHECK, f, fl);
	cr_assert_eq(validate(b, n, why, sizeof(why)), -EPROTO);
	cr_assert(strstr(why, "version 2") != NULL, "%s", why);
	n = raw_frame(b, 0, SBX_OP_CHECK, f, fl);
	expect_invalid(b, n, "version 0");

	n = raw_frame(b, 1, 0x0fff, f, fl);
	expect_invalid(b, n, "unknown op 0x0fff");
	cr_assert_eq(sbx_frame_validate(b, n, 1, NULL, 0), 0, "allowed when asked");
	n = raw_frame(b, 1, 0, f, fl);
	expect_invalid(b, n, "unknown op");
	n = raw_frame(b, 1, SBX_OP_ERROR, f, fl);
	expect_invalid(b, n, "unknown op"); /* ERROR is not a request */
	n = raw_frame(b, 1, SBX_OP_CHECK | SBX_OP_REPLY, f, fl);
	expect_invalid(b, n, "unknown op");
	cr_assert_eq(sbx_frame_validate(b, n, 1, NULL, 0), 0);
	/* validation must not need a why buffer */
	cr_assert_eq(sbx_frame_validate(b, n, 0, NULL, 0), -EBADMSG);
	cr_assert_eq(sbx_frame_validate(b, n, 0, why, 1), -EBADMSG);
	cr_assert_str_eq(why, "");
}

Test(frame, validate_rejects_bad_fields)
{
	uint8_t b[128], f[96];
	size_t n, fl;

	fl = raw_field(f, 0x0999, 1, "x");
	n = raw_frame(b, 1, SBX_OP_CHECK, f, fl);
	expect_invalid(b, n, "unknown tag 0x0999");
	fl = raw_field(f, 0, 0, NULL);
	n = raw_frame(b, 1, SBX_OP_CHECK, f, fl);
	expect_invalid(b, n, "unknown tag 0x0000");

	fl = raw_field(f, SBX_F_ID, 3, "\0\0\1");
	n = raw_frame(b, 1, SBX_OP_STATUS, f, fl);
	expect_invalid(b, n, "field 0x0201 has length 3, want 4");
	fl = raw_field(f, SBX_F_ID, 8, "\0\0\0\0\0\0\0\1");
	n = raw_frame(b, 1, SBX_OP_STATUS, f, fl);
	expect_invalid(b, n, "want 4");
	fl = raw_field(f, SBX_F_ID, 0, NULL);
	n = raw_frame(b, 1, SBX_OP_STATUS, f, fl);
	expect_invalid(b, n, "want 4");
	fl = raw_field(f, SBX_F_DURATION, 4, "\0\0\0\1");
	n = raw_frame(b, 1, SBX_OP_REQUEST, f, fl);
	expect_invalid(b, n, "field 0x0203 has length 4, want 8");
	fl = raw_field(f, SBX_F_DURATION, 9, "\0\0\0\0\0\0\0\0\1");
	n = raw_frame(b, 1, SBX_OP_REQUEST, f, fl);
	expect_invalid(b, n, "want 8");

	fl = raw_field(f, SBX_F_USER, 5, "al\0ce");
	n = raw_frame(b, 1, SBX_OP_CHECK, f, fl);
	expect_invalid(b, n, "NUL");
	fl = raw_field(f, SBX_F_USER, 1, "\0");
	n = raw_frame(b, 1, SBX_OP_CHECK, f, fl);
	expect_invalid(b, n, "NUL");

	/* a field running past the frame */
	fl = raw_field(f, SBX_F_USER, 5, "alice");
	be16(f + 2, 6);
	n = raw_frame(b, 1, SBX_OP_CHECK, f, fl);
	expect_invalid(b, n, "past the end");
	/* trailing partial field header */
	fl = raw_field(f, SBX_F_USER, 5, "alice");
	memcpy(f + fl, "\x01\x02", 2);
	n = raw_frame(b, 1, SBX_OP_CHECK, f, fl + 2);
	expect_invalid(b, n, "truncated field header");
}

Test(frame, validate_rejects_long_str)
{
	static uint8_t b[SBX_STR_MAX + 64], f[SBX_STR_MAX + 32];
	size_t n, fl;

	memset(f, 'a', sizeof(f));
	fl = raw_field(f, SBX_F_REASON, SBX_STR_MAX, NULL);
	n = raw_frame(b, 1, SBX_OP_REQUEST, f, fl);
	cr_assert_eq(validate(b, n, NULL, 0), 0);
	fl = raw_field(f, SBX_F_REASON, SBX_STR_MAX + 1, NULL);
	n = raw_frame(b, 1, SBX_OP_REQUEST, f, fl);
	expect_invalid(b, n, "more than 4096");
}

Test(frame, validate_rejects_record_overflow_and_depth)
{
	uint8_t b[128], f[96];
	size_t n, fl;

	/* REQUEST { ID (4 bytes) } but the inner field claims 6 bytes: it
	 * still fits the frame (trailing bytes follow) but not its record. */
	fl = raw_field(f, SBX_F_REQUEST, 8, NULL);
	raw_field(f + 4, SBX_F_ID, 4, "\0\0\0\1");
	be16(f + 6, 6);
	fl += raw_field(f + fl, SBX_F_USER, 2, "ab");
	n = raw_frame(b, 1, SBX_OP_LIST, f, fl);
	expect_invalid(b, n, "past the end of its record");

	/* the record itself longer than the frame */
	fl = raw_field(f, SBX_F_REQUEST, 8, NULL);
	raw_field(f + 4, SBX_F_ID, 4, "\0\0\0\1");
	be16(f + 2, 9);
	n = raw_frame(b, 1, SBX_OP_LIST, f, fl);
	expect_invalid(b, n, "past the end of its frame");

	/* a record that ends inside a field header of its content */
	fl = raw_field(f, SBX_F_REQUEST, 2, "\x02\x01");
	n = raw_frame(b, 1, SBX_OP_LIST, f, fl);
	expect_invalid(b, n, "truncated field header");

	/* depth: 3 levels are fine, 4 are not */
	be16(f, SBX_F_REQUEST);
	be16(f + 2, 12);
	be16(f + 4, SBX_F_ROLEINFO);
	be16(f + 6, 8);
	be16(f + 8, SBX_F_MEMBERSHIP);
	be16(f + 10, 4);
	be16(f + 12, SBX_F_REQUEST); /* the fourth level */
	be16(f + 14, 0);
	n = raw_frame(b, 1, SBX_OP_LIST, f, 16);
	expect_invalid(b, n, "deeper than 3");
	/* same thing with the innermost record turned into a STR */
	be16(f + 12, SBX_F_ROLE);
	n = raw_frame(b, 1, SBX_OP_LIST, f, 16);
	cr_assert_eq(validate(b, n, NULL, 0), 0);
	/* a wrong value inside a nested record is found */
	be16(f + 12, SBX_F_ID);
	n = raw_frame(b, 1, SBX_OP_LIST, f, 16);
	expect_invalid(b, n, "want 4");
}

/* ------------------------------------------------------------------------
 * fuzz: mutate a valid frame; validate must never crash and must agree
 * with an independent checker written on top of the reader.
 */

static uint64_t rng_state;

static uint32_t rng(void)
{
	/* xorshift64*: fixed seed, reproducible runs */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static int ref_fields(sbx_reader *r, int level)
{
	sbx_field f;
	int rc;

	while ((rc = sbx_reader_next(r, &f)) == 1) {
		switch (sbx_field_type(f.tag)) {
		case SBX_T_U32:
			if (f.len != 4)
				return 0;
			(void)sbx_field_u32(&f);
			break;
		case SBX_T_I64:
			if (f.len != 8)
				return 0;
			(void)sbx_field_i64(&f);
			break;
		case SBX_T_STR: {
			char *s;

			if (f.len > SBX_STR_MAX)
				return 0;
			for (unsigned i = 0; i < f.len; i++)
				if (!f.val[i])
					return 0;
			s = sbx_field_strdup(&f);
			if (!s || strlen(s) != f.len) {
				free(s);
				return 0;
			}
			free(s);
			break;
		}
		case SBX_T_REC: {
			sbx_reader rr;

			if (level >= SBX_REC_DEPTH)
				return 0;
			sbx_reader_init_rec(&rr, &f);
			if (!ref_fields(&rr, level + 1))
				return 0;
			break;
		}
		default:
			return 0;
		}
	}
	return rc == 0;
}

static int ref_valid(const uint8_t *b, size_t n)
{
	sbx_reader r;
	uint32_t len;
	uint16_t ver, op;

	if (n < 8)
		return 0;
	len = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
	ver = (uint16_t)(b[4] << 8 | b[5]);
	op = (uint16_t)(b[6] << 8 | b[7]);
	if (len != n || len > SBX_FRAME_MAX || ver != 1 || !sbx_op_known(op))
		return 0;
	sbx_reader_init_frame(&r, b, n);
	return ref_fields(&r, 0);
}

Test(frame, fuzz_mutations_agree, .timeout = 60)
{
	uint8_t work[1024];
	sbx_msg m;
	size_t base_len;
	long accepted = 0, rejected = 0;
	char why[128];

	rng_state = 0x5bd1e9955bd1e995ULL;
	cr_assert_eq(sbx_msg_init(&m, SBX_OP_REQUEST), 0);
	sbx_msg_put_str(&m, SBX_F_ROLE, "sandbox-admin");
	sbx_msg_put_i64(&m, SBX_F_DURATION, 3600);
	sbx_msg_put_str(&m, SBX_F_REASON, "debugging the payment job");
	sbx_msg_begin_rec(&m, SBX_F_REQUEST);
	sbx_msg_put_u32(&m, SBX_F_ID, 42);
	sbx_msg_put_str(&m, SBX_F_APPROVED_BY, "frank");
	sbx_msg_begin_rec(&m, SBX_F_ROLEINFO);
	sbx_msg_put_str(&m, SBX_F_HOSTS, "sbx-*");
	sbx_msg_begin_rec(&m, SBX_F_MEMBERSHIP);
	sbx_msg_put_u32(&m, SBX_F_LOGIN, 1);
	sbx_msg_end_rec(&m);
	sbx_msg_end_rec(&m);
	sbx_msg_end_rec(&m);
	sbx_msg_put_u32(&m, SBX_F_FLAGS, 1);
	cr_assert_eq(sbx_msg_finish(&m), 0);
	cr_assert(m.len < sizeof(work));
	base_len = m.len;
	cr_assert_eq(validate(m.buf, base_len, NULL, 0), 0);
	cr_assert(ref_valid(m.buf, base_len));

	for (int iter = 0; iter < 100000; iter++) {
		size_t n = base_len;
		int muts = 1 + (int)(rng() % 4), v, ref;

		memcpy(work, m.buf, base_len);
		for (int k = 0; k < muts; k++) {
			size_t pos = rng() % n;

			switch (rng() % 6) {
			case 0: /* flip a bit */
				work[pos] ^= (uint8_t)(1u << (rng() % 8));
				break;
			case 1: /* random byte */
				work[pos] = (uint8_t)rng();
				break;
			case 2: /* interesting byte */
				work[pos] = (uint8_t[]){ 0, 1, 3, 4, 7, 8, 0x7f, 0x80, 0xff }[rng() % 9];
				break;
			case 3: /* truncate */
				n = pos + 1;
				break;
			case 4: /* extend with random bytes */
				if (n + 8 < sizeof(work))
					for (int j = 0; j < 8; j++)
						work[n++] = (uint8_t)rng();
				break;
			case 5: /* keep the header length honest, to get past it */
				be32(work, (uint32_t)n);
				break;
			}
		}
		v = validate(work, n, why, sizeof(why));
		ref = ref_valid(work, n);
		cr_assert_eq(v == 0, ref, "iteration %d: validate=%d (%s) reference=%d", iter, v, why,
			     ref);
		if (v == 0)
			accepted++;
		else
			rejected++;
	}
	/* The mutations must reach both sides, or the loop proves little. */
	cr_expect_gt(accepted, 1000);
	cr_expect_gt(rejected, 1000);
	sbx_msg_free(&m);
}

/* ------------------------------------------------------------------------
 * sbxio: test servers in a thread
 */

/* Temp dirs are removed by the suite's fini too, so a failed assertion
 * (which ends the test early) leaves nothing behind in /tmp. */
static char tmpdirs[8][64];

static void make_tmpdir(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/sbx-test-frame-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	for (size_t i = 0; i < sizeof(tmpdirs) / sizeof(tmpdirs[0]); i++) {
		if (!tmpdirs[i][0]) {
			snprintf(tmpdirs[i], sizeof(tmpdirs[i]), "%s", dir);
			return;
		}
	}
}

static void remove_tmpdirs(void)
{
	for (size_t i = 0; i < sizeof(tmpdirs) / sizeof(tmpdirs[0]); i++) {
		DIR *d;
		struct dirent *e;
		char p[64 + sizeof(((struct dirent *)0)->d_name) + 2];

		if (!tmpdirs[i][0] || !(d = opendir(tmpdirs[i])))
			continue;
		while ((e = readdir(d)))
			if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
			    snprintf(p, sizeof(p), "%s/%s", tmpdirs[i], e->d_name) < (int)sizeof(p))
				unlink(p);
		closedir(d);
		rmdir(tmpdirs[i]);
		tmpdirs[i][0] = '\0';
	}
}

TestSuite(sbxio, .fini = remove_tmpdirs);

enum behaviour {
	SRV_ANSWER,    /* reply op|REPLY, STATUS OK, MESSAGE "hello <user>" */
	SRV_SILENT,    /* accept, read, never answer until the client leaves */
	SRV_GARBAGE,   /* answer with a malformed frame */
	SRV_CLOSE,     /* accept and close at once */
	SRV_WRONG_OP,  /* answer a well-formed reply to another op */
	SRV_ERROR_OP,  /* answer SBX_OP_ERROR */
	SRV_HALF,      /* send half a reply, then close */
};

struct server {
	char dir[64];
	char path[96];
	int lfd;
	enum behaviour how;
	int conns; /* connections to serve */
	pthread_t thread;
	int started;
};

static int wait_readable(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, ms);
}

static void serve_one(struct server *s, int c)
{
	uint8_t *req = NULL, junk[256];
	size_t n = 0;
	sbx_msg m = { 0 };
	sbx_reader r;
	sbx_field f;
	char user[64] = "?", msg[128];
	int64_t dl = sbx_mono_ms() + 5000;

	if (s->how == SRV_CLOSE)
		return;
	if (sbx_recv_frame(c, &req, &n, dl) != 0)
		return;
	sbx_reader_init_frame(&r, req, n);
	if (sbx_reader_find(&r, SBX_F_USER, &f) == 1)
		sbx_field_str(&f, user, sizeof(user));
	snprintf(msg, sizeof(msg), "hello %s", user);
	switch (s->how) {
	case SRV_ANSWER:
	case SRV_HALF:
		sbx_msg_init_reply(&m, (uint16_t)(req[6] << 8 | req[7]), SBX_ST_OK, msg);
		sbx_msg_put_u32(&m, SBX_F_ALLOWED, 1);
		sbx_msg_finish(&m);
		sbx_send_all(c, m.buf, s->how == SRV_HALF ? m.len / 2 : m.len, dl);
		break;
	case SRV_WRONG_OP:
		sbx_msg_init_reply(&m, SBX_OP_PING, SBX_ST_OK, msg);
		sbx_msg_finish(&m);
		sbx_send_all(c, m.buf, m.len, dl);
		break;
	case SRV_ERROR_OP:
		sbx_msg_init_reply(&m, SBX_OP_ERROR, SBX_ST_PROTO, "unknown op");
		sbx_msg_finish(&m);
		sbx_send_all(c, m.buf, m.len, dl);
		break;
	case SRV_GARBAGE: {
		/* right length, right version, a field with an unknown tag */
		uint8_t g[16];

		raw_frame(g, 1, SBX_OP_CHECK | SBX_OP_REPLY,
			  (const uint8_t *)"\x09\x99\x00\x04" "abcd", 8);
		sbx_send_all(c, g, sizeof(g), dl);
		break;
	}
	case SRV_SILENT:
		/* hold the connection until the client gives up */
		while (wait_readable(c, 5000) > 0 && read(c, junk, sizeof(junk)) > 0)
			;
		break;
	case SRV_CLOSE:
		break;
	}
	sbx_msg_free(&m);
	free(req);
}

static void *server_main(void *arg)
{
	struct server *s = arg;

	for (int i = 0; i < s->conns; i++) {
		int c;

		if (wait_readable(s->lfd, 5000) <= 0)
			break;
		c = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			break;
		serve_one(s, c);
		close(c);
	}
	return NULL;
}

static int listen_at(const char *path, int backlog)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s: %s", path,
		     strerror(errno));
	cr_assert_eq(listen(fd, backlog), 0);
	return fd;
}

static void server_start(struct server *s, enum behaviour how, int conns)
{
	memset(s, 0, sizeof(*s));
	make_tmpdir(s->dir, sizeof(s->dir));
	snprintf(s->path, sizeof(s->path), "%s/sock", s->dir);
	s->lfd = listen_at(s->path, 16);
	s->how = how;
	s->conns = conns;
	cr_assert_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
	s->started = 1;
}

static void server_stop(struct server *s)
{
	if (s->started)
		pthread_join(s->thread, NULL);
	s->started = 0;
	if (s->lfd >= 0)
		close(s->lfd);
	s->lfd = -1;
	unlink(s->path);
	rmdir(s->dir);
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own fd */
}

static int call_check(const char *path, int timeout_ms, uint8_t **reply, size_t *n)
{
	struct sbx_conn_opts o = { .path = path, .timeout_ms = timeout_ms };
	sbx_msg m;
	int rc;

	build_check(&m, "erin");
	rc = sbx_call(&o, &m, reply, n);
	sbx_msg_free(&m);
	return rc;
}

Test(sbxio, mono_ms_moves_forward)
{
	int64_t a = sbx_mono_ms(), b;

	cr_assert_gt(a, 0);
	usleep(20000);
	b = sbx_mono_ms();
	cr_assert_geq(b - a, 19);
	cr_assert_lt(b - a, 2000);
}

Test(sbxio, call_round_trip)
{
	struct server s;
	uint8_t *reply = NULL;
	size_t n = 0;
	uint32_t st = 99;
	char msg[64];
	sbx_reader r;
	sbx_field f;

	server_start(&s, SRV_ANSWER, 1);
	errno = 1234;
	cr_assert_eq(call_check(s.path, 2000, &reply, &n), 0);
	cr_assert_eq(errno, 1234, "errno is left as it was");
	cr_assert_not_null(reply);
	cr_assert_eq(sbx_frame_validate(reply, n, 1, NULL, 0), 0);
	cr_assert_eq(reply[6], 0x80);
	cr_assert_eq(reply[7], 0x01);
	cr_assert_eq(sbx_reply_status(reply, n, &st, msg, sizeof(msg)), 0);
	cr_assert_eq(st, SBX_ST_OK);
	cr_assert_str_eq(msg, "hello erin", "the server read our USER");
	sbx_reader_init_frame(&r, reply, n);
	cr_assert_eq(sbx_reader_find(&r, SBX_F_ALLOWED, &f), 1);
	cr_assert_eq(sbx_field_u32(&f), 1);
	free(reply);
	server_stop(&s);
}

Test(sbxio, error_op_reply_is_accepted)
{
	struct server s;
	uint8_t *reply = NULL;
	size_t n = 0;
	uint32_t st = 0;
	char msg[64];

	server_start(&s, SRV_ERROR_OP, 1);
	cr_assert_eq(call_check(s.path, 2000, &reply, &n), 0);
	cr_assert_eq(sbx_reply_status(reply, n, &st, msg, sizeof(msg)), 0);
	cr_assert_eq(st, SBX_ST_PROTO);
	cr_assert_str_eq(msg, "unknown op");
	free(reply);
	server_stop(&s);
}

Test(sbxio, silent_server_times_out)
{
	struct server s;
	uint8_t *reply = NULL;
	size_t n = 0;
	int64_t t0, dt;

	server_start(&s, SRV_SILENT, 1);
	t0 = sbx_mono_ms();
	cr_assert_eq(call_check(s.path, 300, &reply, &n), -ETIMEDOUT);
	dt = sbx_mono_ms() - t0;
	cr_assert_geq(dt, 290, "gave up after %lld ms", (long long)dt);
	cr_assert_lt(dt, 1300, "took %lld ms", (long long)dt);
	cr_assert_null(reply);
	server_stop(&s);
}

Test(sbxio, garbage_is_ebadmsg)
{
	struct server s;
	uint8_t *reply = NULL;
	size_t n = 0;

	server_start(&s, SRV_GARBAGE, 1);
	cr_assert_eq(call_check(s.path, 2000, &reply, &n), -EBADMSG);
	cr_assert_null(reply);
	server_stop(&s);
}

Test(sbxio, reply_to_another_op_is_ebadmsg)
{
	struct server s;
	uint8_t *reply = NULL;
	size_t n = 0;

	server_start(&s, SRV_WRONG_OP, 1);
	cr_assert_eq(call_check(s.path, 2000, &reply, &n), -EBADMSG);
	cr_assert_null(reply);
	server_stop(&s);
}

Test(sbxio, early_close_is_an_error)
{
	struct server s;
	uint8_t *reply = NULL;
	size_t n = 0;
	int rc;

	server_start(&s, SRV_CLOSE, 1);
	rc = call_check(s.path, 2000, &reply, &n);
	/* Closed before reading: the send may see EPIPE or the read a reset. */
	cr_assert(rc == -ECONNRESET || rc == -EPIPE, "rc %d", rc);
	cr_assert_null(reply);
	server_stop(&s);

	server_start(&s, SRV_HALF, 1);
	cr_assert_eq(call_check(s.path, 2000, &reply, &n), -ECONNRESET);
	cr_assert_null(reply);
	server_stop(&s);
}

Test(sbxio, big_request_to_closed_peer_raises_no_sigpipe)
{
	struct server s;
	struct sbx_conn_opts o = { .timeout_ms = 2000 };
	char big[SBX_STR_MAX + 1];
	uint8_t *reply = NULL;
	size_t n = 0;
	sbx_msg m;
	int rc;

	memset(big, 'q', SBX_STR_MAX);
	big[SBX_STR_MAX] = '\0';
	server_start(&s, SRV_CLOSE, 1);
	o.path = s.path;
	sbx_msg_init(&m, SBX_OP_REQUEST);
	for (int i = 0; i < 15; i++)
		sbx_msg_put_str(&m, SBX_F_REASON, big);
	/* give the server time to close first */
	usleep(50000);
	rc = sbx_call(&o, &m, &reply, &n);
	cr_assert(rc == -EPIPE || rc == -ECONNRESET, "rc %d", rc);
	sbx_msg_free(&m);
	server_stop(&s);
}

Test(sbxio, missing_socket)
{
	char dir[64], path[96];
	uint8_t *reply = NULL;
	size_t n = 0;
	int fd, rc;

	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/nosuch.sock", dir);
	rc = call_check(path, 500, &reply, &n);
	cr_assert(rc == -ENOENT || rc == -ECONNREFUSED, "rc %d", rc);
	/* a socket file nobody listens on */
	fd = listen_at(path, 1);
	close(fd);
	rc = call_check(path, 500, &reply, &n);
	cr_assert_eq(rc, -ECONNREFUSED);
	cr_assert_null(reply);
	unlink(path);
	rmdir(dir);
}

Test(sbxio, connect_fd_flags_and_off_stdio)
{
	struct server s;
	struct sbx_conn_opts o = { .timeout_ms = 2000 };
	int fd, fl, status;
	pid_t pid;

	server_start(&s, SRV_CLOSE, 2);
	o.path = s.path;
	fd = sbx_connect(&o, sbx_mono_ms() + 2000);
	cr_assert_geq(fd, 3);
	fl = fcntl(fd, F_GETFD);
	cr_assert(fl >= 0 && (fl & FD_CLOEXEC), "close-on-exec");
	fl = fcntl(fd, F_GETFL);
	cr_assert(fl >= 0 && (fl & O_NONBLOCK), "non-blocking");
	close(fd);

	/* With stdin closed, socket() hands out fd 0: it must be moved.  In a
	 * child, where no server thread can take fd 0 in the meantime. */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(0);
		fd = sbx_connect(&o, sbx_mono_ms() + 2000);
		fl = fd >= 0 ? fcntl(fd, F_GETFD) : -1;
		_exit(fd < 3 ? 10 : fcntl(0, F_GETFD) != -1 ? 11 : !(fl & FD_CLOEXEC) ? 12 : 0);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "with fd 0 closed: child exit %d (10: fd < 3, 11: fd 0 left open, 12: no cloexec)",
		  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	server_stop(&s);
}

Test(sbxio, no_fd_leaks)
{
	struct server s;
	uint8_t *reply = NULL;
	size_t n = 0;
	int before, after;
	static const enum behaviour hows[] = { SRV_ANSWER, SRV_SILENT, SRV_GARBAGE, SRV_CLOSE,
					       SRV_WRONG_OP, SRV_HALF };

	/* warm up whatever libc opens lazily */
	count_fds();
	before = count_fds();
	for (size_t i = 0; i < sizeof(hows) / sizeof(hows[0]); i++) {
		server_start(&s, hows[i], 2);
		for (int k = 0; k < 2; k++) {
			reply = NULL;
			(void)call_check(s.path, hows[i] == SRV_SILENT ? 100 : 2000, &reply, &n);
			free(reply);
		}
		server_stop(&s);
	}
	(void)call_check("/tmp/sbx-test-frame-does-not-exist/sock", 100, &reply, &n);
	after = count_fds();
	cr_assert_eq(after, before, "fds before %d, after %d", before, after);
}

Test(sbxio, connect_times_out_on_full_backlog)
{
	char dir[64], path[96];
	struct sbx_conn_opts o = { .timeout_ms = 200 };
	int lfd, fds[16], nfds = 0, rc = 0;
	int64_t t0 = 0, dt;

	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	lfd = listen_at(path, 0);
	o.path = path;
	/* nobody accepts: after the queue fills, connect must hit the deadline */
	while (nfds < 16) {
		t0 = sbx_mono_ms();
		rc = sbx_connect(&o, t0 + 200);
		if (rc < 0)
			break;
		fds[nfds++] = rc;
	}
	dt = sbx_mono_ms() - t0;
	cr_assert_eq(rc, -ETIMEDOUT, "rc %d after %d connections", rc, nfds);
	cr_assert_geq(dt, 190);
	cr_assert_lt(dt, 1200);
	while (nfds > 0)
		close(fds[--nfds]);
	close(lfd);
	unlink(path);
	rmdir(dir);
}

Test(sbxio, send_all_times_out_when_peer_never_reads)
{
	int sv[2];
	static uint8_t buf[1 << 20];
	int64_t t0, dt;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	t0 = sbx_mono_ms();
	/* 16 MiB does not fit any socket buffer */
	for (int i = 0; i < 16; i++) {
		int rc = sbx_send_all(sv[0], buf, sizeof(buf), t0 + 200);

		if (rc) {
			cr_assert_eq(rc, -ETIMEDOUT);
			break;
		}
		cr_assert_lt(i, 15, "16 MiB were accepted");
	}
	dt = sbx_mono_ms() - t0;
	cr_assert_geq(dt, 190);
	cr_assert_lt(dt, 1200);
	close(sv[1]);
	/* the peer is gone: EPIPE, and no SIGPIPE kills the process */
	cr_assert_eq(sbx_send_all(sv[0], buf, 16, sbx_mono_ms() + 200), -EPIPE);
	close(sv[0]);
}

Test(sbxio, recv_frame_checks_before_allocating)
{
	int sv[2];
	uint8_t h[8], *frame = NULL;
	size_t n = 0;
	sbx_msg m;
	int64_t t0;

	/* a header claiming 1 MiB is refused at once, without waiting for it */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	raw_frame(h, 1, SBX_OP_CHECK, NULL, 0);
	be32(h, 1u << 20);
	cr_assert_eq(write(sv[1], h, 8), 8);
	t0 = sbx_mono_ms();
	cr_assert_eq(sbx_recv_frame(sv[0], &frame, &n, t0 + 2000), -EBADMSG);
	cr_assert_lt(sbx_mono_ms() - t0, 500);
	cr_assert_null(frame);

	/* another version */
	raw_frame(h, 2, SBX_OP_CHECK, NULL, 0);
	cr_assert_eq(write(sv[1], h, 8), 8);
	cr_assert_eq(sbx_recv_frame(sv[0], &frame, &n, sbx_mono_ms() + 2000), -EBADMSG);

	/* an unknown op is fine on the receiving side of a client */
	raw_frame(h, 1, 0x0fff, NULL, 0);
	cr_assert_eq(write(sv[1], h, 8), 8);
	cr_assert_eq(sbx_recv_frame(sv[0], &frame, &n, sbx_mono_ms() + 2000), 0);
	cr_assert_eq(n, 8);
	free(frame);
	frame = NULL;

	/* a frame arriving in pieces on a blocking socket */
	build_check(&m, "dave");
	cr_assert_eq(write(sv[1], m.buf, 5), 5);
	cr_assert_eq(write(sv[1], m.buf + 5, m.len - 5), (ssize_t)(m.len - 5));
	cr_assert_eq(sbx_recv_frame(sv[0], &frame, &n, sbx_mono_ms() + 2000), 0);
	cr_assert_eq(n, m.len);
	cr_assert(memcmp(frame, m.buf, n) == 0);
	free(frame);
	frame = NULL;

	/* half a frame, then the peer goes away */
	cr_assert_eq(write(sv[1], m.buf, m.len - 1), (ssize_t)(m.len - 1));
	close(sv[1]);
	cr_assert_eq(sbx_recv_frame(sv[0], &frame, &n, sbx_mono_ms() + 2000), -ECONNRESET);
	cr_assert_null(frame);
	cr_assert_eq(sbx_recv_frame(sv[0], &frame, &n, sbx_mono_ms() + 2000), -ECONNRESET);
	sbx_msg_free(&m);
	close(sv[0]);
}

Test(sbxio, reply_status_needs_status)
{
	uint8_t b[32];
	size_t n;
	uint32_t st = 7;
	char msg[16] = "x";

	n = raw_frame(b, 1, SBX_OP_CHECK | SBX_OP_REPLY, NULL, 0);
	cr_assert_eq(sbx_reply_status(b, n, &st, msg, sizeof(msg)), -EBADMSG);
	cr_assert_eq(st, 7, "untouched on failure");
	n = raw_frame(b, 1, SBX_OP_CHECK | SBX_OP_REPLY,
		      (const uint8_t *)"\x00\x01\x00\x04\x00\x00\x00\x02", 8);
	cr_assert_eq(sbx_reply_status(b, n, &st, msg, sizeof(msg)), 0);
	cr_assert_eq(st, 2);
	cr_assert_str_eq(msg, "", "no MESSAGE reads as empty");
	cr_assert_eq(sbx_reply_status(b, n, &st, NULL, 0), 0);
}

/* ------------------------------------------------------------------------
 * require_root (the tests run as root in CI; as another user the
 * ownership checks can only be shown to refuse)
 */

Test(sbxio, require_root_file_checks)
{
	struct server s;
	struct sbx_conn_opts o = { .timeout_ms = 2000, .require_root = 1 };
	char file[160];
	int fd;

	server_start(&s, SRV_CLOSE, 1);
	o.path = s.path;
	if (geteuid() != 0) {
		cr_assert_eq(sbx_connect(&o, sbx_mono_ms() + 2000), -EPERM);
		/* let the server thread's accept time out cleanly */
		o.require_root = 0;
		fd = sbx_connect(&o, sbx_mono_ms() + 2000);
		close(fd);
		server_stop(&s);
		return;
	}
	fd = sbx_connect(&o, sbx_mono_ms() + 2000);
	cr_assert_geq(fd, 3, "root-owned socket, root peer: %d", fd);
	close(fd);

	/* owned by somebody else */
	cr_assert_eq(chown(s.path, 65534, 65534), 0);
	cr_assert_eq(sbx_connect(&o, sbx_mono_ms() + 2000), -EPERM);

	/* not a socket */
	snprintf(file, sizeof(file), "%s/plain", s.dir);
	fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
	o.path = file;
	cr_assert_eq(sbx_connect(&o, sbx_mono_ms() + 2000), -EPERM);
	/* a symlink to the real socket is not the socket */
	cr_assert_eq(chown(s.path, 0, 0), 0);
	unlink(file);
	cr_assert_eq(symlink(s.path, file), 0);
	cr_assert_eq(sbx_connect(&o, sbx_mono_ms() + 2000), -EPERM);
	unlink(file);
	/* missing */
	cr_assert_eq(sbx_connect(&o, sbx_mono_ms() + 2000), -ENOENT);
	server_stop(&s);
}

Test(sbxio, require_root_checks_the_peer)
{
	char dir[64], path[96];
	struct sbx_conn_opts o = { .timeout_ms = 2000, .require_root = 1 };
	int ready[2], status, rc;
	char c;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("needs root to listen as another uid");
	make_tmpdir(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	o.path = path;
	cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* The socket file is created as root, but listen() happens as
		 * nobody: SO_PEERCRED reports the listener's credentials. */
		struct sockaddr_un sa = { .sun_family = AF_UNIX };
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
		    setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0 ||
		    listen(fd, 4) != 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		if (wait_readable(fd, 5000) > 0) {
			int cfd = accept(fd, NULL, NULL);

			if (cfd >= 0)
				(void)wait_readable(cfd, 2000);
		}
		_exit(0);
	}
	close(ready[1]);
	cr_assert_eq(read(ready[0], &c, 1), 1, "child failed to listen");
	close(ready[0]);
	rc = sbx_connect(&o, sbx_mono_ms() + 2000);
	cr_assert_eq(rc, -EPERM, "rc %d", rc);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	unlink(path);
	rmdir(dir);
}
