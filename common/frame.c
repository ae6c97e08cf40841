#include "frame.h"
#include "text.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Most frames (a check, a single request) fit here; lists grow by doubling. */
#define MSG_INITIAL_CAP 256u

/* ---------------------------------------------------------------------------
 * Byte order.  Explicit shifts instead of htonl() + memcpy: no alignment
 * assumptions about where a field lands in the buffer.
 */
static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---------------------------------------------------------------------------
 * Builder
 */

/* Record the first error only: it is the one that explains the others. */
static int msg_fail(sbx_msg *m, int err)
{
	if (!m->error)
		m->error = err;
	return m->error;
}

/* Make room for n more bytes without ever exceeding SBX_FRAME_MAX. */
static int msg_reserve(sbx_msg *m, size_t n)
{
	size_t want, cap;
	uint8_t *nb;

	if (m->error)
		return m->error;
	if (n > SBX_FRAME_MAX || m->len > SBX_FRAME_MAX - n)
		return msg_fail(m, -EMSGSIZE);
	want = m->len + n;
	if (want <= m->cap)
		return 0;
	cap = m->cap ? m->cap : MSG_INITIAL_CAP;
	while (cap < want)
		cap *= 2;
	if (cap > SBX_FRAME_MAX)
		cap = SBX_FRAME_MAX;
	nb = realloc(m->buf, cap);
	if (!nb)
		return msg_fail(m, -ENOMEM);
	m->buf = nb;
	m->cap = cap;
	return 0;
}

/* Builder calls must match the tag's type: a mismatch is a programming
 * error that the peer would reject anyway, so catch it where it happens. */
static int msg_check_tag(sbx_msg *m, uint16_t tag, enum sbx_type want)
{
	if (m->error)
		return m->error;
	if (sbx_field_type(tag) != want)
		return msg_fail(m, -EINVAL);
	return 0;
}

static int msg_put_field(sbx_msg *m, uint16_t tag, const void *val, size_t len)
{
	int rc;

	if (len > UINT16_MAX)
		return msg_fail(m, -EMSGSIZE);
	rc = msg_reserve(m, SBX_FIELD_HDR_LEN + len);
	if (rc)
		return rc;
	put_be16(m->buf + m->len, tag);
	put_be16(m->buf + m->len + 2, (uint16_t)len);
	if (len)
		memcpy(m->buf + m->len + SBX_FIELD_HDR_LEN, val, len);
	m->len += SBX_FIELD_HDR_LEN + len;
	return 0;
}

int sbx_msg_init(sbx_msg *m, uint16_t op)
{
	memset(m, 0, sizeof(*m));
	if (msg_reserve(m, SBX_HDR_LEN))
		return m->error;
	/* The length is filled in by sbx_msg_finish(). */
	put_be32(m->buf, 0);
	put_be16(m->buf + 4, (uint16_t)SBX_PROTO_VERSION);
	put_be16(m->buf + 6, op);
	m->len = SBX_HDR_LEN;
	return 0;
}

void sbx_msg_free(sbx_msg *m)
{
	if (!m)
		return;
	free(m->buf);
	memset(m, 0, sizeof(*m));
}

/* Longest prefix of s that is at most max bytes and does not end inside a
 * UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	len = max;
	while (len > 0 && ((unsigned char)s[len] & 0xc0) == 0x80)
		len--;
	return len;
}

/* op may be the request's op or already op | SBX_OP_REPLY; SBX_OP_ERROR
 * stays as it is.  A message longer than SBX_STR_MAX is cut (at a UTF-8
 * boundary) rather than failing: an error reply must always be buildable. */
int sbx_msg_init_reply(sbx_msg *m, uint16_t op, uint32_t status, const char *msg)
{
	uint16_t rop = op == SBX_OP_ERROR ? op : (uint16_t)(op | SBX_OP_REPLY);
	size_t len;
	int rc;

	rc = sbx_msg_init(m, rop);
	if (rc)
		return rc;
	if (!msg)
		msg = "";
	len = utf8_prefix(msg, strlen(msg), SBX_STR_MAX);
	if (sbx_msg_put_u32(m, SBX_F_STATUS, status))
		return m->error;
	if (msg_check_tag(m, SBX_F_MESSAGE, SBX_T_STR))
		return m->error;
	return msg_put_field(m, SBX_F_MESSAGE, msg, len);
}

int sbx_msg_put_str(sbx_msg *m, uint16_t tag, const char *s)
{
	size_t len;
	int rc;

	rc = msg_check_tag(m, tag, SBX_T_STR);
	if (rc)
		return rc;
	if (!s)
		return msg_fail(m, -EINVAL);
	len = strnlen(s, SBX_STR_MAX + 1);
	if (len > SBX_STR_MAX)
		return msg_fail(m, -EINVAL);
	return msg_put_field(m, tag, s, len);
}

int sbx_msg_put_str_opt(sbx_msg *m, uint16_t tag, const char *s)
{
	if (m->error)
		return m->error;
	if (!s || !*s)
		return 0;
	return sbx_msg_put_str(m, tag, s);
}

int sbx_msg_put_u32(sbx_msg *m, uint16_t tag, uint32_t v)
{
	uint8_t b[4];
	int rc;

	rc = msg_check_tag(m, tag, SBX_T_U32);
	if (rc)
		return rc;
	put_be32(b, v);
	return msg_put_field(m, tag, b, sizeof(b));
}

int sbx_msg_put_i64(sbx_msg *m, uint16_t tag, int64_t v)
{
	uint64_t u = (uint64_t)v;
	uint8_t b[8];
	int rc;

	rc = msg_check_tag(m, tag, SBX_T_I64);
	if (rc)
		return rc;
	put_be32(b, (uint32_t)(u >> 32));
	put_be32(b + 4, (uint32_t)u);
	return msg_put_field(m, tag, b, sizeof(b));
}

int sbx_msg_begin_rec(sbx_msg *m, uint16_t tag)
{
	size_t start;
	int rc;

	rc = msg_check_tag(m, tag, SBX_T_REC);
	if (rc)
		return rc;
	if (m->depth < 0 || m->depth >= SBX_REC_DEPTH)
		return msg_fail(m, -EINVAL);
	start = m->len;
	/* Length 0 for now; sbx_msg_end_rec() patches it. */
	rc = msg_put_field(m, tag, NULL, 0);
	if (rc)
		return rc;
	m->rec_start[m->depth++] = start;
	return 0;
}

int sbx_msg_end_rec(sbx_msg *m)
{
	size_t start, vlen;

	if (m->error)
		return m->error;
	if (m->depth <= 0 || m->depth > SBX_REC_DEPTH)
		return msg_fail(m, -EINVAL);
	start = m->rec_start[--m->depth];
	vlen = m->len - start - SBX_FIELD_HDR_LEN;
	/* Cannot happen while frames are capped at 64 KiB, but the field
	 * length is 16 bits and a silent wrap would corrupt the frame. */
	if (vlen > UINT16_MAX)
		return msg_fail(m, -EMSGSIZE);
	put_be16(m->buf + start + 2, (uint16_t)vlen);
	return 0;
}

sbx_msg_mark sbx_msg_here(const sbx_msg *m)
{
	return (sbx_msg_mark){ .len = m->len, .depth = m->depth };
}

int sbx_msg_undo_if_failed(sbx_msg *m, sbx_msg_mark mark)
{
	if (!m->error)
		return 0;
	/* A record left open by the failed put is closed by going back to
	 * where it had not begun. */
	m->error = 0;
	m->len = mark.len;
	m->depth = mark.depth;
	return 1;
}

int sbx_msg_finish(sbx_msg *m)
{
	if (m->error)
		return m->error;
	if (!m->buf || m->len < SBX_HDR_LEN)
		return msg_fail(m, -EINVAL);
	if (m->depth != 0)
		return msg_fail(m, -EINVAL);
	put_be32(m->buf, (uint32_t)m->len);
	return 0;
}

/* ---------------------------------------------------------------------------
 * Header and validation
 */

int sbx_hdr_decode(const uint8_t *buf, size_t n, struct sbx_hdr *h)
{
	uint32_t length;
	uint16_t version;

	if (!buf || n < SBX_HDR_LEN)
		return -EBADMSG;
	length = get_be32(buf);
	version = get_be16(buf + 4);
	if (length < SBX_HDR_LEN || length > SBX_FRAME_MAX)
		return -EBADMSG;
	if (version != SBX_PROTO_VERSION)
		return -EPROTO;
	h->length = length;
	h->version = version;
	h->op = get_be16(buf + 6);
	return 0;
}

static int validate_value(uint16_t tag, const uint8_t *val, uint16_t len, size_t off,
			  char *why, size_t whylen)
{
	switch (sbx_field_type(tag)) {
	case SBX_T_U32:
		if (len != 4)
			return sbx_whyf(why, whylen, -EBADMSG,
				       "field 0x%04x has length %u, want 4", tag, len);
		return 0;
	case SBX_T_I64:
		if (len != 8)
			return sbx_whyf(why, whylen, -EBADMSG,
				       "field 0x%04x has length %u, want 8", tag, len);
		return 0;
	case SBX_T_STR:
		if (len > SBX_STR_MAX)
			return sbx_whyf(why, whylen, -EBADMSG,
				       "field 0x%04x has length %u, more than %u", tag, len,
				       SBX_STR_MAX);
		if (len && memchr(val, '\0', len))
			return sbx_whyf(why, whylen, -EBADMSG,
				       "field 0x%04x contains a NUL byte", tag);
		return 0;
	case SBX_T_REC:
		return 0;
	case SBX_T_UNKNOWN:
		break;
	}
	return sbx_whyf(why, whylen, -EBADMSG, "unknown tag 0x%04x at offset %zu", tag, off);
}

/* Check the fields in [p, end); level is how many RECs enclose them.
 * base is the frame start, for offsets in the messages. */
static int validate_fields(const uint8_t *base, const uint8_t *p, const uint8_t *end, int level,
			   char *why, size_t whylen)
{
	while (p < end) {
		size_t off = (size_t)(p - base), left = (size_t)(end - p);
		uint16_t tag, len;
		int rc;

		if (left < SBX_FIELD_HDR_LEN)
			return sbx_whyf(why, whylen, -EBADMSG,
				       "truncated field header at offset %zu (%zu bytes left)", off,
				       left);
		tag = get_be16(p);
		len = get_be16(p + 2);
		if (len > left - SBX_FIELD_HDR_LEN)
			return sbx_whyf(why, whylen, -EBADMSG,
				       "field 0x%04x at offset %zu has length %u, past the end of its "
				       "%s (%zu bytes left)",
				       tag, off, len, level ? "record" : "frame",
				       left - SBX_FIELD_HDR_LEN);
		p += SBX_FIELD_HDR_LEN;
		rc = validate_value(tag, p, len, off, why, whylen);
		if (rc)
			return rc;
		if (sbx_field_type(tag) == SBX_T_REC) {
			if (level >= SBX_REC_DEPTH)
				return sbx_whyf(why, whylen, -EBADMSG,
					       "record 0x%04x at offset %zu nests deeper than %d levels",
					       tag, off, SBX_REC_DEPTH);
			rc = validate_fields(base, p, p + len, level + 1, why, whylen);
			if (rc)
				return rc;
		}
		p += len;
	}
	return 0;
}

int sbx_frame_validate(const uint8_t *frame, size_t n, int allow_unknown_op,
		       char *why, size_t whylen)
{
	struct sbx_hdr h;
	int rc;

	if (why && whylen)
		why[0] = '\0';
	if (!frame || n < SBX_HDR_LEN)
		return sbx_whyf(why, whylen, -EBADMSG,
			       "frame of %zu bytes is shorter than the %u-byte header", n,
			       SBX_HDR_LEN);
	rc = sbx_hdr_decode(frame, n, &h);
	if (rc == -EPROTO)
		return sbx_whyf(why, whylen, rc, "protocol version %u, want %u",
			       get_be16(frame + 4), SBX_PROTO_VERSION);
	if (rc)
		return sbx_whyf(why, whylen, rc, "frame length %u is outside %u..%u",
			       get_be32(frame), SBX_HDR_LEN, SBX_FRAME_MAX);
	if (h.length != n)
		return sbx_whyf(why, whylen, -EBADMSG,
			       "frame header says %u bytes, got %zu", h.length, n);
	if (!allow_unknown_op && !sbx_op_known(h.op))
		return sbx_whyf(why, whylen, -EBADMSG, "unknown op 0x%04x", h.op);
	return validate_fields(frame, frame + SBX_HDR_LEN, frame + n, 0, why, whylen);
}

/* ---------------------------------------------------------------------------
 * Reader
 */

void sbx_reader_init_frame(sbx_reader *r, const uint8_t *frame, size_t n)
{
	if (!frame || n < SBX_HDR_LEN) {
		r->p = r->end = NULL;
		return;
	}
	r->p = frame + SBX_HDR_LEN;
	r->end = frame + n;
}

void sbx_reader_init_rec(sbx_reader *r, const sbx_field *rec)
{
	if (!rec || !rec->val) {
		r->p = r->end = NULL;
		return;
	}
	r->p = rec->val;
	r->end = rec->val + rec->len;
}

/* A truncated field leaves r where it is, so every later call reports the
 * same error instead of skipping into garbage. */
int sbx_reader_next(sbx_reader *r, sbx_field *f)
{
	size_t left;
	uint16_t len;

	if (!r->p || r->p >= r->end)
		return 0;
	left = (size_t)(r->end - r->p);
	if (left < SBX_FIELD_HDR_LEN)
		return -EBADMSG;
	len = get_be16(r->p + 2);
	if (len > left - SBX_FIELD_HDR_LEN)
		return -EBADMSG;
	f->tag = get_be16(r->p);
	f->len = len;
	f->val = r->p + SBX_FIELD_HDR_LEN;
	r->p += SBX_FIELD_HDR_LEN + len;
	return 1;
}

/* A value of the wrong size reads as 0: only possible on frames that were
 * not validated, and never a read past the value. */
uint32_t sbx_field_u32(const sbx_field *f)
{
	if (f->len != 4)
		return 0;
	return get_be32(f->val);
}

int64_t sbx_field_i64(const sbx_field *f)
{
	uint64_t u;

	if (f->len != 8)
		return 0;
	u = (uint64_t)get_be32(f->val) << 32 | get_be32(f->val + 4);
	return (int64_t)u;
}

/* On -ENAMETOOLONG dst is set to "" so a caller that ignores the result
 * never sees a half-copied or stale string. */
int sbx_field_str(const sbx_field *f, char *dst, size_t dstlen)
{
	if (!dstlen)
		return -ENAMETOOLONG;
	if ((size_t)f->len >= dstlen) {
		dst[0] = '\0';
		return -ENAMETOOLONG;
	}
	if (f->len)
		memcpy(dst, f->val, f->len);
	dst[f->len] = '\0';
	return 0;
}

char *sbx_field_strdup(const sbx_field *f)
{
	char *s = malloc((size_t)f->len + 1);

	if (!s)
		return NULL;
	if (f->len)
		memcpy(s, f->val, f->len);
	s[f->len] = '\0';
	return s;
}

/* 1 and *f filled: found; 0: absent; -EBADMSG: the range is truncated
 * before a match (the same convention as sbx_reader_next()). */
int sbx_reader_find(const sbx_reader *r, uint16_t tag, sbx_field *f)
{
	sbx_reader it = *r;
	sbx_field cur;
	int rc;

	while ((rc = sbx_reader_next(&it, &cur)) > 0) {
		if (cur.tag == tag) {
			*f = cur;
			return 1;
		}
	}
	return rc;
}
