#include "config.h"

#include "ssudo_client.h"

#include "sbxio.h"
#include "text.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- options -------------------------------------------------------------- */

static const char *value_of(const char *arg, const char *key)
{
	size_t n = strlen(key);

	return strncmp(arg, key, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

static int copy_path(char *dst, size_t len, const char *v)
{
	if (v[0] != '/' || strlen(v) >= len)
		return -1;
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

int ssudo_opts_parse(struct ssudo_opts *o, char *const args[])
{
	const char *v;

	memset(o, 0, sizeof(*o));
	snprintf(o->socket, sizeof(o->socket), "%s", SSUDO_DEFAULT_SOCKET);
	snprintf(o->spool, sizeof(o->spool), "%s", "/var/spool/sbx-sudo");
	o->timeout_ms = SSUDO_DEFAULT_TIMEOUT_MS;
	for (size_t i = 0; args && args[i]; i++) {
		const char *arg = args[i];
		char *end = NULL;
		long ms;

		if ((v = value_of(arg, "socket"))) {
			if (copy_path(o->socket, sizeof(o->socket), v) < 0)
				goto bad;
		} else if ((v = value_of(arg, "spool"))) {
			if (copy_path(o->spool, sizeof(o->spool), v) < 0)
				goto bad;
		} else if ((v = value_of(arg, "timeout"))) {
			errno = 0;
			ms = strtol(v, &end, 10);
			if (errno || end == v || *end || ms < 1 || ms > SSUDO_MAX_TIMEOUT_MS)
				goto bad;
			o->timeout_ms = (int)ms;
		} else if ((v = value_of(arg, "failmode"))) {
			if (strcmp(v, "secure") == 0)
				o->fail_open = false;
			else if (strcmp(v, "open") == 0)
				o->fail_open = true;
			else
				goto bad;
		} else {
			goto bad;
		}
		continue;
bad:
		sbx_sanitize(arg, o->bad, sizeof(o->bad));
		return -1;
	}
	return 0;
}

/* ---- round trips ------------------------------------------------------------ */

/* Failing open must rest on a broker that is gone, never on a doubt (the
 * same short list as pam_sbx's psbx_outcome_of_errno). */
enum ssudo_outcome ssudo_outcome_of_errno(int err)
{
	switch (err) {
	case -ENOENT:
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -ECONNRESET:
	case -EPIPE:
	case -ENOTCONN:
	case -EAGAIN:
		return SSUDO_UNREACHABLE;
	}
	return SSUDO_BAD;
}

static void answer_reset(struct ssudo_answer *a)
{
	memset(a, 0, sizeof(*a));
	a->outcome = SSUDO_BAD;
}

/* Recorded text: cut to max bytes, control characters and invalid UTF-8
 * made '?' (the command itself arrives escaped already). */
static void put_text(sbx_msg *m, uint16_t tag, const char *s, size_t max)
{
	char buf[SBX_COMMAND_MAX + 1];

	if (!s || !*s)
		return;
	sbx_sanitize(s, buf, max + 1 < sizeof(buf) ? max + 1 : sizeof(buf));
	sbx_msg_put_str_opt(m, tag, buf);
}

static void put_cmd(sbx_msg *m, const struct ssudo_cmd *c)
{
	put_text(m, SBX_F_RUNAS, c->runas, SBX_NAME_MAX);
	put_text(m, SBX_F_COMMAND, c->command ? c->command : "", SBX_COMMAND_MAX);
	put_text(m, SBX_F_CWD, c->cwd, 1024);
	put_text(m, SBX_F_TTY, c->tty, 63);
}

/* One round trip; the reply's fields sorted into a. */
static void round_trip(const struct ssudo_opts *o, sbx_msg *req, struct ssudo_answer *a)
{
	struct sbx_conn_opts co = {
		.path = o->socket,
		.timeout_ms = o->timeout_ms,
		.require_root = 1,
	};
	uint8_t *frame = NULL;
	size_t n = 0;
	sbx_reader r;
	sbx_field f;
	int rc;

	rc = sbx_msg_finish(req);
	if (rc < 0) {
		a->err = rc;
		snprintf(a->message, sizeof(a->message), "the request cannot be framed");
		goto out;
	}
	rc = sbx_call(&co, req, &frame, &n);
	if (rc < 0) {
		a->err = rc;
		a->outcome = ssudo_outcome_of_errno(rc);
		snprintf(a->message, sizeof(a->message), "%s", strerror(-rc));
		goto out;
	}
	if (sbx_reply_status(frame, n, &a->status, a->message, sizeof(a->message)) < 0) {
		a->err = -EBADMSG;
		goto out;
	}
	switch (a->status) {
	case SBX_ST_OK:
		a->outcome = SSUDO_YES;
		break;
	case SBX_ST_REFUSED:
	case SBX_ST_BADINPUT:
	case SBX_ST_NOTFOUND:
		a->outcome = SSUDO_NO;
		break;
	case SBX_ST_UNAVAILABLE:
		a->outcome = SSUDO_UNREACHABLE;
		a->err = -EAGAIN;
		break;
	default:
		a->err = -EPROTO;
		goto out;
	}
	sbx_reader_init_frame(&r, frame, n);
	while (sbx_reader_next(&r, &f) == 1) {
		switch (f.tag) {
		case SBX_F_ALLOWED:
			if (a->outcome == SSUDO_YES && sbx_field_u32(&f) != 1)
				a->outcome = SSUDO_NO;
			break;
		case SBX_F_APPROVERS:
			if (sbx_field_str(&f, a->approvers, sizeof(a->approvers)) < 0)
				a->approvers[0] = '\0';
			break;
		case SBX_F_DURATION: a->wait_s = sbx_field_i64(&f); break;
		case SBX_F_REQUEST: {
			/* STATUS: the request's own fields */
			sbx_reader rr;
			sbx_field g;

			sbx_reader_init_rec(&rr, &f);
			while (sbx_reader_next(&rr, &g) == 1) {
				if (g.tag == SBX_F_STATE && sbx_field_str(&g, a->state, sizeof(a->state)) < 0)
					a->state[0] = '\0';
				if (g.tag == SBX_F_ENDED_BY &&
				    sbx_field_str(&g, a->ended_by, sizeof(a->ended_by)) < 0)
					a->ended_by[0] = '\0';
				if (g.tag == SBX_F_END_REASON &&
				    sbx_field_str(&g, a->end_reason, sizeof(a->end_reason)) < 0)
					a->end_reason[0] = '\0';
			}
			break;
		}
		case SBX_F_ID: a->grant = sbx_field_u32(&f); break;
		case SBX_F_SEQ: a->seq = sbx_field_i64(&f); break;
		case SBX_F_ROLE:
			if (sbx_field_str(&f, a->role, sizeof(a->role)) < 0)
				a->role[0] = '\0';
			break;
		case SBX_F_VIA:
			if (sbx_field_str(&f, a->via, sizeof(a->via)) < 0)
				a->via[0] = '\0';
			break;
		}
	}
	/* OK, not allowed, with a request id: it waits for an approval. */
	if (a->outcome == SSUDO_NO && a->status == SBX_ST_OK && a->grant)
		a->outcome = SSUDO_PENDING;
out:
	free(frame);
	sbx_msg_free(req);
}

void ssudo_check(const struct ssudo_opts *o, const struct ssudo_cmd *c, struct ssudo_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_SUDO_CHECK);
	if (c->runas_root)
		sbx_msg_put_u32(&req, SBX_F_FLAGS, SBX_SUDO_RUNAS_ROOT);
	put_cmd(&req, c);
	round_trip(o, &req, a);
}

void ssudo_check_approved(const struct ssudo_opts *o, const struct ssudo_cmd *c, uint32_t id,
			  struct ssudo_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_SUDO_CHECK);
	if (c->runas_root)
		sbx_msg_put_u32(&req, SBX_F_FLAGS, SBX_SUDO_RUNAS_ROOT);
	sbx_msg_put_u32(&req, SBX_F_ID, id);
	put_cmd(&req, c);
	round_trip(o, &req, a);
}

void ssudo_status(const struct ssudo_opts *o, uint32_t id, struct ssudo_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_STATUS);
	sbx_msg_put_u32(&req, SBX_F_ID, id);
	round_trip(o, &req, a);
}

void ssudo_cancel(const struct ssudo_opts *o, const char *user, uint32_t id, const char *why,
		  struct ssudo_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_CANCEL);
	put_text(&req, SBX_F_AS_USER, user, SBX_NAME_MAX);
	sbx_msg_put_u32(&req, SBX_F_ID, id);
	put_text(&req, SBX_F_REASON, why, SBX_TEXT_MAX);
	round_trip(o, &req, a);
}

void ssudo_run(const struct ssudo_opts *o, const struct ssudo_cmd *c, struct ssudo_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_SUDO_RUN);
	put_cmd(&req, c);
	round_trip(o, &req, a);
}

void ssudo_refused(const struct ssudo_opts *o, const struct ssudo_cmd *c, const char *plugin,
		   const char *verdict, const char *why, struct ssudo_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_SUDO_REFUSED);
	put_cmd(&req, c);
	put_text(&req, SBX_F_PLUGIN, plugin ? plugin : "sudo", SBX_NAME_MAX);
	put_text(&req, SBX_F_VERDICT, verdict, 16);
	put_text(&req, SBX_F_REASON, why, SBX_TEXT_MAX);
	round_trip(o, &req, a);
}

void ssudo_exited(const struct ssudo_opts *o, int64_t seq, bool has_status, int status,
		  int signal, int64_t elapsed_ms, const char *why, struct ssudo_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_SUDO_EXITED);
	sbx_msg_put_i64(&req, SBX_F_SEQ, seq);
	if (has_status && signal)
		sbx_msg_put_u32(&req, SBX_F_SIGNAL, (uint32_t)signal);
	else if (has_status)
		sbx_msg_put_u32(&req, SBX_F_EXIT_STATUS, (uint32_t)status);
	sbx_msg_put_i64(&req, SBX_F_ELAPSED_MS, elapsed_ms);
	put_text(&req, SBX_F_REASON, why, SBX_TEXT_MAX);
	round_trip(o, &req, a);
}

void ssudo_spooled_send(const struct ssudo_opts *o, const char *kind, uint32_t uid,
			int64_t time, const struct ssudo_cmd *c, const char *verdict,
			const char *plugin, const char *reason, bool has_status, int status,
			int signal, int64_t elapsed_ms, struct ssudo_answer *a)
{
	sbx_msg req = { 0 };

	answer_reset(a);
	sbx_msg_init(&req, SBX_OP_SUDO_SPOOLED);
	put_text(&req, SBX_F_STATE, kind, 15);
	sbx_msg_put_u32(&req, SBX_F_UID, uid);
	sbx_msg_put_i64(&req, SBX_F_CREATED_AT, time);
	put_cmd(&req, c);
	put_text(&req, SBX_F_VERDICT, verdict, 15);
	put_text(&req, SBX_F_PLUGIN, plugin, SBX_NAME_MAX);
	put_text(&req, SBX_F_REASON, reason, SBX_TEXT_MAX);
	if (has_status && signal)
		sbx_msg_put_u32(&req, SBX_F_SIGNAL, (uint32_t)signal);
	else if (has_status)
		sbx_msg_put_u32(&req, SBX_F_EXIT_STATUS, (uint32_t)status);
	sbx_msg_put_i64(&req, SBX_F_ELAPSED_MS, elapsed_ms);
	round_trip(o, &req, a);
}
