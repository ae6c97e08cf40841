#include "config.h"

#include "pam_sbx_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "sbxio.h"

const char *psbx_outcome_name(enum psbx_outcome o)
{
	switch (o) {
	case PSBX_YES: return "yes";
	case PSBX_NO: return "no";
	case PSBX_UNREACHABLE: return "broker unreachable";
	case PSBX_BAD: return "unusable answer";
	}
	return "?";
}

static void answer_reset(struct psbx_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->outcome = PSBX_BAD;
}

enum psbx_outcome psbx_outcome_of_errno(int err)
{
	switch (-err) {
	case EPERM:     /* socket or peer not root: an impostor, or a bad setup */
	case EBADMSG:   /* malformed frame, or a reply to another op */
	case EPROTO:
		return PSBX_BAD;
	}
	return PSBX_UNREACHABLE;
}

/* Put a string field, cut to max bytes on a UTF-8 boundary: PAM items
 * such as PAM_RHOST can be longer than the broker accepts, and a login
 * must not fail over the length of what is only recorded. */
static void put_cut(sbx_msg *m, uint16_t tag, const char *s, size_t max)
{
	char buf[256];
	size_t n;

	if (!s || !*s)
		return;
	n = strlen(s);
	if (n > max)
		n = max;
	if (n >= sizeof(buf))
		n = sizeof(buf) - 1;
	while (n > 0 && n < strlen(s) && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	memcpy(buf, s, n);
	buf[n] = '\0';
	sbx_msg_put_str_opt(m, tag, buf);
}

/* The sizes ops.c accepts for these fields (its struct args). */
#define MAX_SERVICE SBX_NAME_MAX
#define MAX_RHOST 255
#define MAX_TTY 63

static void put_login(sbx_msg *m, const struct psbx_login *l)
{
	sbx_msg_put_str(m, SBX_F_USER, l->user ? l->user : "");
	put_cut(m, SBX_F_SERVICE, l->service, MAX_SERVICE);
	put_cut(m, SBX_F_RHOST, l->rhost, MAX_RHOST);
	put_cut(m, SBX_F_TTY, l->tty, MAX_TTY);
}

/* One round trip.  On a reply, fills status and message and returns the
 * frame (caller frees); otherwise sets the outcome and returns NULL. */
static uint8_t *round_trip(const struct psbx_conn *c, sbx_msg *req, size_t *n,
			   struct psbx_answer *a)
{
	struct sbx_conn_opts o = {
		.path = c->socket,
		.timeout_ms = c->timeout_ms,
		.require_root = c->require_root,
	};
	uint8_t *frame = NULL;
	int rc;

	rc = sbx_call(&o, req, &frame, n);
	if (rc < 0) {
		a->err = rc;
		a->outcome = psbx_outcome_of_errno(rc);
		return NULL;
	}
	if (sbx_reply_status(frame, *n, &a->status, a->message, sizeof(a->message)) < 0) {
		a->err = -EBADMSG;
		a->outcome = PSBX_BAD;
		free(frame);
		return NULL;
	}
	return frame;
}

/* A reply that is not OK: the broker refused (NO), cannot record now
 * (UNREACHABLE, it keeps nothing), or did not understand us (BAD). */
static void classify_status(struct psbx_answer *a)
{
	switch (a->status) {
	case SBX_ST_REFUSED:
	case SBX_ST_BADINPUT:
	case SBX_ST_NOTFOUND:
		a->outcome = PSBX_NO;
		break;
	case SBX_ST_UNAVAILABLE:
		a->outcome = PSBX_UNREACHABLE;
		a->err = -EAGAIN;
		break;
	default:
		a->outcome = PSBX_BAD;
		a->err = -EPROTO;
		break;
	}
}

static void copy_str(const sbx_field *f, char *dst, size_t len)
{
	if (sbx_field_str(f, dst, len) < 0)
		dst[0] = '\0';
}

void psbx_check(const struct psbx_conn *c, const struct psbx_login *l, struct psbx_answer *a)
{
	sbx_msg req = { 0 };
	uint8_t *frame = NULL;
	size_t n = 0;
	sbx_reader r;
	sbx_field f;
	bool have_allowed = false;
	uint32_t allowed = 0;

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_CHECK);
	put_login(&req, l);
	sbx_msg_put_u32(&req, SBX_F_FLAGS, SBX_CHECK_RECORD);
	frame = round_trip(c, &req, &n, a);
	if (!frame)
		goto out;
	if (a->status != SBX_ST_OK) {
		classify_status(a);
		goto out;
	}
	sbx_reader_init_frame(&r, frame, n);
	while (sbx_reader_next(&r, &f) == 1) {
		switch (f.tag) {
		case SBX_F_ALLOWED:
			allowed = sbx_field_u32(&f);
			have_allowed = true;
			break;
		case SBX_F_ID: a->grant = sbx_field_u32(&f); break;
		case SBX_F_ROLE: copy_str(&f, a->role, sizeof(a->role)); break;
		case SBX_F_VIA: copy_str(&f, a->via, sizeof(a->via)); break;
		}
	}
	/* An OK without a clear yes or no is not an answer. */
	if (!have_allowed || allowed > 1) {
		a->outcome = PSBX_BAD;
		a->err = -EBADMSG;
		goto out;
	}
	a->outcome = allowed ? PSBX_YES : PSBX_NO;
out:
	free(frame);
	sbx_msg_free(&req);
}

/* Read SESSION and ID of an OK session reply; no SESSION is not an answer. */
static void session_reply(const uint8_t *frame, size_t n, struct psbx_answer *a)
{
	sbx_reader r;
	sbx_field f;

	if (a->status != SBX_ST_OK) {
		classify_status(a);
		return;
	}
	sbx_reader_init_frame(&r, frame, n);
	while (sbx_reader_next(&r, &f) == 1) {
		switch (f.tag) {
		case SBX_F_SESSION: a->session = sbx_field_u32(&f); break;
		case SBX_F_ID: a->grant = sbx_field_u32(&f); break;
		case SBX_F_ROLE: copy_str(&f, a->role, sizeof(a->role)); break;
		case SBX_F_VIA: copy_str(&f, a->via, sizeof(a->via)); break;
		}
	}
	if (!a->session) {
		a->outcome = PSBX_BAD;
		a->err = -EBADMSG;
		return;
	}
	a->outcome = PSBX_YES;
}

/* One round trip of req (freed here) whose reply read_reply makes sense of. */
static void exchange(const struct psbx_conn *c, sbx_msg *req, struct psbx_answer *a,
		     void (*read_reply)(const uint8_t *frame, size_t n, struct psbx_answer *a))
{
	uint8_t *frame = NULL;
	size_t n = 0;

	frame = round_trip(c, req, &n, a);
	if (frame)
		read_reply(frame, n, a);
	free(frame);
	sbx_msg_free(req);
}

void psbx_session_open(const struct psbx_conn *c, const struct psbx_login *l, uint32_t grant,
		       struct psbx_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_SESSION_OPEN);
	put_login(&req, l);
	if (grant)
		sbx_msg_put_u32(&req, SBX_F_ID, grant);
	exchange(c, &req, a, session_reply);
}

void psbx_session_close(const struct psbx_conn *c, const struct psbx_login *l, uint32_t session,
			struct psbx_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_SESSION_CLOSE);
	if (session)
		sbx_msg_put_u32(&req, SBX_F_SESSION, session);
	put_login(&req, l);
	exchange(c, &req, a, session_reply);
}

/* The REQUEST record of a reply: id, state, who may approve. */
static void request_reply(const uint8_t *frame, size_t n, struct psbx_answer *a)
{
	sbx_reader r, rec;
	sbx_field f, g;

	if (a->status != SBX_ST_OK) {
		classify_status(a);
		return;
	}
	sbx_reader_init_frame(&r, frame, n);
	if (sbx_reader_find(&r, SBX_F_REQUEST, &f) != 1) {
		a->outcome = PSBX_BAD;
		a->err = -EBADMSG;
		return;
	}
	sbx_reader_init_rec(&rec, &f);
	while (sbx_reader_next(&rec, &g) == 1) {
		switch (g.tag) {
		case SBX_F_ID: a->request = sbx_field_u32(&g); break;
		case SBX_F_STATE: copy_str(&g, a->state, sizeof(a->state)); break;
		case SBX_F_APPROVERS: copy_str(&g, a->approvers, sizeof(a->approvers)); break;
		case SBX_F_ROLE: copy_str(&g, a->role, sizeof(a->role)); break;
		}
	}
	if (!a->request || !a->state[0]) {
		a->outcome = PSBX_BAD;
		a->err = -EBADMSG;
		return;
	}
	a->outcome = PSBX_YES;
}

void psbx_request(const struct psbx_conn *c, const char *user, const char *role,
		  int64_t duration, const char *reason, struct psbx_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_REQUEST);
	sbx_msg_put_str(&req, SBX_F_AS_USER, user);
	sbx_msg_put_str(&req, SBX_F_ROLE, role);
	if (duration > 0)
		sbx_msg_put_i64(&req, SBX_F_DURATION, duration);
	sbx_msg_put_str_opt(&req, SBX_F_REASON, reason);
	exchange(c, &req, a, request_reply);
}

void psbx_status(const struct psbx_conn *c, const char *user, uint32_t id,
		 struct psbx_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_STATUS);
	sbx_msg_put_str(&req, SBX_F_AS_USER, user);
	sbx_msg_put_u32(&req, SBX_F_ID, id);
	exchange(c, &req, a, request_reply);
}

int psbx_eligible_roles(const struct psbx_conn *c, const char *user, char names[][SBX_NAME_MAX + 1],
			int max, int64_t *first_default, struct psbx_answer *a)
{
	sbx_msg req = { 0 };
	uint8_t *frame = NULL;
	size_t n = 0;
	sbx_reader r, rec;
	sbx_field f, g;
	int count = 0;

	answer_reset(a);
	*first_default = 0;
	sbx_msg_init(&req, SBX_OP_ROLES);
	sbx_msg_put_str(&req, SBX_F_AS_USER, user);
	frame = round_trip(c, &req, &n, a);
	if (!frame)
		goto out;
	if (a->status != SBX_ST_OK) {
		classify_status(a);
		goto out;
	}
	a->outcome = PSBX_YES;
	sbx_reader_init_frame(&r, frame, n);
	while (count < max && sbx_reader_next(&r, &f) == 1) {
		char role[SBX_NAME_MAX + 1] = "", how[16] = "";
		uint32_t host_match = 0;
		int64_t def = 0;

		if (f.tag != SBX_F_ROLEINFO)
			continue;
		sbx_reader_init_rec(&rec, &f);
		while (sbx_reader_next(&rec, &g) == 1) {
			switch (g.tag) {
			case SBX_F_ROLE: copy_str(&g, role, sizeof(role)); break;
			case SBX_F_HOW: copy_str(&g, how, sizeof(how)); break;
			case SBX_F_HOST_MATCH: host_match = sbx_field_u32(&g); break;
			case SBX_F_DEFAULT_DURATION: def = sbx_field_i64(&g); break;
			}
		}
		/* Only what would let this user log in here is worth offering. */
		if (!role[0] || strcmp(how, "eligible") != 0 || !host_match)
			continue;
		if (count == 0)
			*first_default = def;
		memcpy(names[count], role, sizeof(role));
		count++;
	}
out:
	free(frame);
	sbx_msg_free(&req);
	return count;
}
