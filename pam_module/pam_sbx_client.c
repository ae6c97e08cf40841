#include "config.h"

#include "pam_sbx_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "sbxio.h"
#include "text.h"

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

/* Failing open must rest on a broker that is genuinely gone, never on a
 * doubt, so this is a short list and everything else refuses: a socket or
 * peer we must not trust (EPERM), a malformed answer (EBADMSG, EPROTO), a
 * request that cannot be framed (EINVAL, EMSGSIZE), a socket path that
 * cannot work (ENAMETOOLONG, ENOTDIR, EACCES), this process out of fds or
 * memory (EMFILE, ENOMEM): none of them says the broker is down, and
 * failmode=open would otherwise admit whoever could provoke one. */
enum psbx_outcome psbx_outcome_of_errno(int err)
{
	switch (err) {
	case -ENOENT:       /* no socket: the broker is not running, or never ran */
	case -ECONNREFUSED: /* a socket nobody listens on: the broker died */
	case -ETIMEDOUT:    /* no complete answer within timeout=: hung or swamped */
	case -ECONNRESET:   /* it hung up before the whole reply (a crash, a restart) */
	case -EPIPE:        /* ... or before it had read the whole request */
	case -ENOTCONN:     /* the connection went away under us: the same as a reset */
	case -EAGAIN:       /* its listen queue stayed full: swamped.  sbxio retries that
	                     * until the deadline and says ETIMEDOUT; should it ever
	                     * surface, it means the same */
		return PSBX_UNREACHABLE;
	}
	return PSBX_BAD;
}

/* The request cannot be framed, so it is never sent: a refusal whatever
 * failmode says (BAD, not UNREACHABLE), with the reason in message. */
static int unsent(struct psbx_answer *a, int err)
{
	a->outcome = PSBX_BAD;
	a->err = err;
	a->unsent = true;
	return err;
}

/* Can s (what: "user name", "reason") travel as a STR field exactly as it
 * is?  Used for what the broker decides on, which must not be changed to
 * fit.  NULL is fine (an absent field).  0, or -EMSGSIZE / -EILSEQ with
 * a refused a. */
static int check_exact(struct psbx_answer *a, const char *what, const char *s)
{
	size_t n;
	int ret = 0;

	if (!s)
		goto out;
	n = strnlen(s, SBX_STR_MAX + 1);
	if (n > SBX_STR_MAX) {
		ret = unsent(a, sbx_whyf(a->message, sizeof(a->message), -EMSGSIZE,
					 "the %s is %zu bytes, more than %u", what, strlen(s),
					 SBX_STR_MAX));
		goto out;
	}
	if (!sbx_utf8_valid(s, n))
		ret = unsent(a, sbx_whyf(a->message, sizeof(a->message), -EILSEQ,
					 "the %s is not valid UTF-8", what));
out:
	return ret;
}

/* Put a field that is only recorded (service, rhost, tty): PAM items can
 * be longer than the broker keeps or not UTF-8, and a login must not fail
 * over what is only written down.  So it is cut to max bytes on a
 * character boundary and cleaned the way every log line is (invalid
 * UTF-8 and control characters become '?'). */
static void put_recorded(sbx_msg *m, uint16_t tag, const char *s, size_t max)
{
	char buf[256];

	if (!s || !*s)
		return;
	sbx_sanitize(s, buf, max + 1 < sizeof(buf) ? max + 1 : sizeof(buf));
	sbx_msg_put_str_opt(m, tag, buf);
}

/* The sizes ops.c accepts for these fields (its struct args). */
#define MAX_SERVICE SBX_NAME_MAX
#define MAX_RHOST 255
#define MAX_TTY 63

/* The login's fields.  The user is who is decided about, so it goes as
 * it is or not at all (a is then refused, and round_trip sends nothing). */
static void put_login(sbx_msg *m, const struct psbx_login *l, struct psbx_answer *a)
{
	const char *user = l->user ? l->user : "";

	if (check_exact(a, "user name", user) < 0)
		return;
	sbx_msg_put_str(m, SBX_F_USER, user);
	put_recorded(m, SBX_F_SERVICE, l->service, MAX_SERVICE);
	put_recorded(m, SBX_F_RHOST, l->rhost, MAX_RHOST);
	put_recorded(m, SBX_F_TTY, l->tty, MAX_TTY);
}

/* One round trip.  On a reply, fills status and message and returns the
 * frame (caller frees); otherwise sets the outcome and returns NULL.  A
 * request whose building already failed (a->unsent) is not sent. */
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

	if (a->unsent)
		return NULL;
	/* Whatever the checks above missed: a frame that cannot be finished
	 * (a field too long, the whole too big) is a request never sent,
	 * not a broker that is down. */
	rc = sbx_msg_finish(req);
	if (rc < 0) {
		sbx_whyf(a->message, sizeof(a->message), rc, "the request cannot be framed");
		unsent(a, rc);
		return NULL;
	}
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
	put_login(&req, l, a);
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
	put_login(&req, l, a);
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
	put_login(&req, l, a);
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
	if (check_exact(a, "user name", user) == 0 && check_exact(a, "role", role) == 0)
		(void)check_exact(a, "reason", reason);
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
	(void)check_exact(a, "user name", user);
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
	(void)check_exact(a, "user name", user);
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
