/*
 * Frames as they arrive on the broker's socket and in every client
 * (common/frame.c, common/sbxio.c): sbx_frame_validate on any bytes; for
 * a frame it accepts, every reader and accessor (which must then never
 * report a truncation), sbx_reply_status and sbx_field_str into small
 * buffers, and a rebuild with the builder that must give back the very
 * same bytes.  The input is also used as a reply's message, which
 * sbx_msg_init_reply must cut at a UTF-8 boundary into a valid frame.
 */
#include "fuzz.h"

#include "frame.h"
#include "sbxio.h"

#include <errno.h>

/* Walk the fields of r (a validated range), copying each into m; level is
 * the number of enclosing RECs. */
static void walk(sbx_reader *r, sbx_msg *m, int level)
{
	char small[8], whole[SBX_STR_MAX + 1];
	sbx_field f;
	int rc;

	FUZZ_CHECK(level <= SBX_REC_DEPTH, "nested %d deep", level);
	while ((rc = sbx_reader_next(r, &f)) == 1) {
		switch (sbx_field_type(f.tag)) {
		case SBX_T_U32:
			FUZZ_CHECK(f.len == 4, "U32 of %u bytes", f.len);
			sbx_msg_put_u32(m, f.tag, sbx_field_u32(&f));
			break;
		case SBX_T_I64:
			FUZZ_CHECK(f.len == 8, "I64 of %u bytes", f.len);
			sbx_msg_put_i64(m, f.tag, sbx_field_i64(&f));
			break;
		case SBX_T_STR: {
			char *dup = sbx_field_strdup(&f);

			FUZZ_CHECK(f.len <= SBX_STR_MAX && !memchr(f.val, '\0', f.len), "bad STR");
			FUZZ_CHECK(dup && strlen(dup) == f.len && memcmp(dup, f.val, f.len) == 0,
				   "strdup");
			for (size_t room = 0; room <= sizeof(small); room++) {
				rc = sbx_field_str(&f, small, room);
				if (f.len < room)
					FUZZ_CHECK(rc == 0 && strcmp(small, dup) == 0, "str into %zu", room);
				else
					FUZZ_CHECK(rc == -ENAMETOOLONG && (!room || small[0] == '\0'),
						   "a %u-byte STR into %zu bytes", f.len, room);
			}
			FUZZ_CHECK(sbx_field_str(&f, whole, sizeof(whole)) == 0, "str");
			sbx_msg_put_str(m, f.tag, whole);
			free(dup);
			break;
		}
		case SBX_T_REC: {
			sbx_reader sub;

			sbx_reader_init_rec(&sub, &f);
			sbx_msg_begin_rec(m, f.tag);
			walk(&sub, m, level + 1);
			sbx_msg_end_rec(m);
			break;
		}
		case SBX_T_UNKNOWN:
			FUZZ_CHECK(0, "validated frame has unknown tag 0x%04x", f.tag);
		}
	}
	FUZZ_CHECK(rc == 0, "reader reports %d on a validated frame", rc);
}

static void check_valid(const uint8_t *data, size_t size)
{
	char msg[4];
	struct sbx_hdr h;
	sbx_reader r;
	sbx_msg m;
	uint32_t status;

	FUZZ_CHECK(sbx_hdr_decode(data, size, &h) == 0 && h.length == size, "header");
	FUZZ_CHECK(sbx_msg_init(&m, h.op) == 0, "init");
	sbx_reader_init_frame(&r, data, size);
	walk(&r, &m, 0);
	FUZZ_CHECK(sbx_msg_finish(&m) == 0, "rebuild failed: %d", m.error);
	FUZZ_CHECK(m.len == size && memcmp(m.buf, data, size) == 0,
		   "the rebuilt frame differs (%zu bytes, was %zu)", m.len, size);
	sbx_msg_free(&m);

	for (size_t room = 0; room <= sizeof(msg); room++) {
		if (sbx_reply_status(data, size, &status, room ? msg : NULL, room) == 0 && room)
			FUZZ_CHECK(strlen(msg) < room, "message overflows %zu bytes", room);
	}
}

/* Any text as a reply's message: cut to SBX_STR_MAX at a character
 * boundary, and the reply is a valid frame whose MESSAGE reads back. */
static void check_reply(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size), *back = malloc(SBX_STR_MAX + 1);
	uint32_t status = 0;
	size_t len;
	sbx_msg m;

	FUZZ_CHECK(back != NULL, "out of memory");
	FUZZ_CHECK(sbx_msg_init_reply(&m, SBX_OP_CHECK, SBX_ST_REFUSED, s) == 0, "init_reply");
	FUZZ_CHECK(sbx_msg_finish(&m) == 0, "finish");
	FUZZ_CHECK(sbx_frame_validate(m.buf, m.len, 1, NULL, 0) == 0, "reply does not validate");
	FUZZ_CHECK(sbx_reply_status(m.buf, m.len, &status, back, SBX_STR_MAX + 1) == 0 &&
		   status == SBX_ST_REFUSED, "status");
	len = strlen(back);
	FUZZ_CHECK(len <= SBX_STR_MAX && strncmp(back, s, len) == 0, "message is not a prefix");
	FUZZ_CHECK(len == strlen(s) || ((unsigned char)s[len] & 0xc0) != 0x80,
		   "message cut at %zu inside a character", len);
	sbx_msg_free(&m);
	free(back);
	free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];
	int strict, loose;

	strict = sbx_frame_validate(data, size, 0, why, sizeof(why));
	loose = sbx_frame_validate(data, size, 1, NULL, 0);
	FUZZ_CHECK(strict == 0 || why[0] != '\0', "a refusal without a reason");
	FUZZ_CHECK(strict != 0 || loose == 0, "valid, but not with unknown ops allowed");
	if (loose == 0)
		check_valid(data, size);
	check_reply(data, size);
	return 0;
}
