/*
 * Building and reading sbx frames (see sbx_proto.h for the format).
 * No allocation on the read side; the builder owns one heap buffer of at
 * most SBX_FRAME_MAX bytes.  Safe for use inside PAM and NSS modules: no
 * global state, no dependency beyond libc.
 */
#ifndef SBX_FRAME_H
#define SBX_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include "sbx_proto.h"

/* A frame being built.  Errors are sticky: after one failed put, every
 * later call fails too and sbx_msg_finish() reports it. */
typedef struct sbx_msg {
	uint8_t *buf;
	size_t len;
	size_t cap;
	size_t rec_start[SBX_REC_DEPTH];
	int depth;
	int error; /* 0 or a negative errno (-EMSGSIZE, -ENOMEM, -EINVAL) */
} sbx_msg;

int sbx_msg_init(sbx_msg *m, uint16_t op);
void sbx_msg_free(sbx_msg *m);
/* Start a reply: header with op, then STATUS and MESSAGE (msg may be NULL). */
int sbx_msg_init_reply(sbx_msg *m, uint16_t op, uint32_t status, const char *msg);
int sbx_msg_put_str(sbx_msg *m, uint16_t tag, const char *s);
/* Put s only when it is non-NULL and non-empty. */
int sbx_msg_put_str_opt(sbx_msg *m, uint16_t tag, const char *s);
int sbx_msg_put_u32(sbx_msg *m, uint16_t tag, uint32_t v);
int sbx_msg_put_i64(sbx_msg *m, uint16_t tag, int64_t v);
int sbx_msg_begin_rec(sbx_msg *m, uint16_t tag);
int sbx_msg_end_rec(sbx_msg *m);
/* A place in a message to come back to.  A list reply puts one record
 * after another; when one no longer fits, the reply keeps the records
 * before it (the client sees a shorter list, newest first). */
typedef struct sbx_msg_mark {
	size_t len;
	int depth;
} sbx_msg_mark;

sbx_msg_mark sbx_msg_here(const sbx_msg *m);
/* If anything put since mark failed, go back to mark (error cleared) and
 * return 1: the caller stops adding.  0 while all is well. */
int sbx_msg_undo_if_failed(sbx_msg *m, sbx_msg_mark mark);

/* Fill in the length; returns 0 or the sticky error.  After this, m->buf
 * and m->len are the frame to send. */
int sbx_msg_finish(sbx_msg *m);

struct sbx_hdr {
	uint32_t length;
	uint16_t version;
	uint16_t op;
};

/* Decode the 8-byte header.  Returns 0, or -EBADMSG (length out of range),
 * -EPROTO (other version).  Needs n >= SBX_HDR_LEN. */
int sbx_hdr_decode(const uint8_t *buf, size_t n, struct sbx_hdr *h);

/* Check a whole frame (header included) against every rule in sbx_proto.h:
 * known op (unless allow_unknown_op), known tags, value sizes, no NUL in
 * STR, nesting depth.  Returns 0 or a negative errno and, when why is
 * given, a short English reason ("field 0x0201 has length 3, want 4"). */
int sbx_frame_validate(const uint8_t *frame, size_t n, int allow_unknown_op,
		       char *why, size_t whylen);

typedef struct sbx_field {
	uint16_t tag;
	uint16_t len;
	const uint8_t *val;
} sbx_field;

typedef struct sbx_reader {
	const uint8_t *p;
	const uint8_t *end;
} sbx_reader;

/* Iterate over the fields of a validated frame (after its header) or of a
 * REC field's value. */
void sbx_reader_init_frame(sbx_reader *r, const uint8_t *frame, size_t n);
void sbx_reader_init_rec(sbx_reader *r, const sbx_field *rec);
/* 1: *f is the next field; 0: no more; -EBADMSG: truncated (only possible
 * on frames that were not validated). */
int sbx_reader_next(sbx_reader *r, sbx_field *f);

uint32_t sbx_field_u32(const sbx_field *f);
int64_t sbx_field_i64(const sbx_field *f);
/* Copy a STR value into dst as a C string.  -ENAMETOOLONG if it does not fit. */
int sbx_field_str(const sbx_field *f, char *dst, size_t dstlen);
/* malloc'd copy of a STR value, NULL on ENOMEM. */
char *sbx_field_strdup(const sbx_field *f);
/* First field with this tag in the reader's range (does not move r). */
int sbx_reader_find(const sbx_reader *r, uint16_t tag, sbx_field *f);

#endif
