/*
 * Client side of the broker socket, written to live inside other people's
 * processes (sshd via PAM, anything that resolves a group via NSS):
 * every fd is close-on-exec and kept off 0-2, every step has a deadline
 * (poll), writes use MSG_NOSIGNAL, nothing calls exit, no global state.
 */
#ifndef SBX_SBXIO_H
#define SBX_SBXIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "frame.h"

/* Monotonic milliseconds, for deadlines. */
int64_t sbx_mono_ms(void);

struct sbx_conn_opts {
	const char *path;   /* socket path */
	int timeout_ms;     /* whole call: connect + send + receive */
	int require_root;   /* refuse a socket not owned by root / a peer not root */
	int or_own_uid;     /* with require_root: this process's effective uid is
	                     * trusted as well (NSS inside an unprivileged test
	                     * or service talks to a broker of its own uid) */
};

/* Connect with a deadline.  Returns an fd (>= 3, O_CLOEXEC, non-blocking)
 * or a negative errno: -ENOENT/-ECONNREFUSED (no broker), -ETIMEDOUT,
 * -EPERM (ownership check failed). */
int sbx_connect(const struct sbx_conn_opts *o, int64_t deadline_ms);

/* Send all bytes before the deadline.  0 or negative errno. */
int sbx_send_all(int fd, const uint8_t *buf, size_t n, int64_t deadline_ms);

/* Receive one frame into a malloc'd buffer (validated with
 * sbx_frame_validate, unknown ops allowed).  0 or negative errno:
 * -ETIMEDOUT, -ECONNRESET (closed early), -EBADMSG (malformed). */
int sbx_recv_frame(int fd, uint8_t **frame, size_t *n, int64_t deadline_ms);

/* One round trip on a fresh connection: finish and send req, receive the
 * reply, check its op is req's op | SBX_OP_REPLY or SBX_OP_ERROR, close.
 * Returns 0 (reply in *frame, caller frees) or negative errno; errno is
 * left as it was (callers inside NSS and PAM must not see it move). */
int sbx_call(const struct sbx_conn_opts *o, sbx_msg *req, uint8_t **frame, size_t *n);
/* The same, also saying whether the request left whole (*sent): a broker
 * that read it may have acted on it, answer or not. */
int sbx_call_sent(const struct sbx_conn_opts *o, sbx_msg *req, uint8_t **frame, size_t *n,
		  bool *sent);

/* STATUS and MESSAGE of a reply frame (message into msg, may be truncated). */
int sbx_reply_status(const uint8_t *frame, size_t n, uint32_t *status, char *msg, size_t msglen);

#endif
