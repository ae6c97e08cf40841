/*
 * sbxctl audit tail (audit_tail.h).  One TAIL request; its reply holds
 * the backlog; with -f the broker then pushes a frame per batch of
 * durable records on the same connection, and this waits for them
 * without a deadline (a quiet journal is not an error), each frame once
 * begun within the usual timeout.
 */
#include "config.h"

#include "audit_tail.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "audit.h"
#include "sbxio.h"
#include "text.h"

/* Print the RECORD fields of one frame.  0, or 1 when stdout went away. */
static int print_records(const struct sbx_cli *c, const uint8_t *frame, size_t n)
{
	sbx_reader rd;
	sbx_field f;

	sbx_reader_init_frame(&rd, frame, n);
	while (sbx_reader_next(&rd, &f) == 1) {
		char *text;
		json_t *rec;

		if (f.tag != SBX_F_RECORD)
			continue;
		text = sbx_field_strdup(&f);
		rec = text ? json_loads(text, 0, NULL) : NULL;
		if (!rec) {
			sbx_cli_error(c, "the broker sent a record that is not JSON: skipped");
		} else if (c->json) {
			/* ASCII: jansson escapes C0 controls only, and a
			 * requester's C1 controls (U+0080..U+009F, CSI in some
			 * terminals) or bidi overrides would reach the
			 * reader's terminal as they are. */
			char *dump = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER |
						JSON_ENSURE_ASCII);

			if (dump)
				printf("%s\n", dump);
			free(dump);
		} else {
			sbx_audit_print_text(stdout, rec);
		}
		json_decref(rec);
		free(text);
	}
	fflush(stdout);
	return ferror(stdout) ? 1 : 0;
}

static int frame_status(const struct sbx_cli *c, const uint8_t *frame, size_t n, bool first)
{
	char msg[1024] = "", san[1024];
	uint32_t status = SBX_ST_INTERNAL;
	uint16_t op = (uint16_t)(frame[6] << 8 | frame[7]);

	if (op != (SBX_OP_TAIL | SBX_OP_REPLY) && op != SBX_OP_ERROR) {
		sbx_cli_error(c, "the broker answered with op 0x%04x: are sbxctl and sbx-brokerd "
			      "the same version?", op);
		return SBX_EXIT_UNKNOWN;
	}
	sbx_reply_status(frame, n, &status, msg, sizeof(msg));
	if (status == SBX_ST_OK)
		return SBX_EXIT_OK;
	sbx_sanitize(msg, san, sizeof(san));
	if (first && status == SBX_ST_PROTO && strstr(san, "unknown op"))
		sbx_cli_error(c, "this broker does not stream records (it is older than sbxctl): "
			      "%s", san);
	else
		sbx_cli_error(c, "%s", san[0] ? san : "refused by the broker");
	return sbx_cli_exit_for_status(status);
}

/* Wait for the next frame with no deadline; then read it whole within
 * the timeout.  0, or a negative errno (-ECONNRESET: the broker closed). */
static int next_frame(int fd, int timeout_ms, uint8_t **frame, size_t *n)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int rc;

	do
		rc = poll(&p, 1, -1);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	return sbx_recv_frame(fd, frame, n, sbx_mono_ms() + timeout_ms);
}

int sbx_audit_tail(const struct sbx_cli *c, const struct sbx_rec_filter *f, uint32_t count,
		   bool follow)
{
	int timeout = c->timeout_ms > 0 ? c->timeout_ms : SBX_CLI_TIMEOUT_MS_DEFAULT;
	struct sbx_conn_opts o = { .path = c->socket, .timeout_ms = timeout };
	uint8_t *frame = NULL;
	size_t n = 0;
	sbx_msg m = { 0 };
	int fd = -1, rc, ret = SBX_EXIT_UNREACHABLE;
	char san[256];

	sbx_cli_msg_init(c, &m, SBX_OP_TAIL);
	if (follow)
		sbx_msg_put_u32(&m, SBX_F_FLAGS, SBX_TAIL_FOLLOW);
	sbx_msg_put_u32(&m, SBX_F_COUNT, count);
	sbx_msg_put_str_opt(&m, SBX_F_USER, f->user);
	sbx_msg_put_str_opt(&m, SBX_F_ACTOR, f->actor);
	sbx_msg_put_str_opt(&m, SBX_F_ROLE, f->role);
	sbx_msg_put_str_opt(&m, SBX_F_EVENT, f->event);
	sbx_msg_put_str_opt(&m, SBX_F_HOST, f->host);
	sbx_msg_put_str_opt(&m, SBX_F_OUTCOME, f->outcome);
	if (f->has_id)
		sbx_msg_put_u32(&m, SBX_F_ID, f->id);
	if (sbx_msg_finish(&m) < 0) {
		sbx_cli_error(c, "the request does not fit in one frame");
		ret = SBX_EXIT_USAGE;
		goto out;
	}
	fd = sbx_connect(&o, sbx_mono_ms() + timeout);
	if (fd < 0 || (rc = sbx_send_all(fd, m.buf, m.len, sbx_mono_ms() + timeout)) < 0 ||
	    (rc = sbx_recv_frame(fd, &frame, &n, sbx_mono_ms() + timeout)) < 0) {
		rc = fd < 0 ? fd : rc;
		sbx_cli_error(c, "cannot reach the broker at %s: %s (is sbx-brokerd running? see "
			      "--socket)", sbx_sanitize(c->socket, san, sizeof(san)), strerror(-rc));
		ret = rc == -ETIMEDOUT ? SBX_EXIT_TIMEOUT : SBX_EXIT_UNREACHABLE;
		goto out;
	}
	ret = frame_status(c, frame, n, true);
	if (ret != SBX_EXIT_OK || print_records(c, frame, n) || !follow)
		goto out;
	for (;;) {
		free(frame);
		frame = NULL;
		rc = next_frame(fd, timeout, &frame, &n);
		if (rc < 0) {
			sbx_cli_error(c, "the broker closed the stream (%s): it stopped or "
				      "restarted; records from here on are in the journal (sbxctl "
				      "audit query)", rc == -ECONNRESET ? "end of stream"
									: strerror(-rc));
			ret = SBX_EXIT_UNREACHABLE;
			goto out;
		}
		ret = frame_status(c, frame, n, false);
		if (ret != SBX_EXIT_OK || print_records(c, frame, n))
			goto out;
	}
out:
	free(frame);
	sbx_msg_free(&m);
	if (fd >= 0)
		close(fd);
	return ret;
}
