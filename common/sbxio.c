#include "config.h"

#include "sbxio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Used when a caller leaves timeout_ms at 0: never wait forever inside
 * somebody's login. */
#define SBX_DEFAULT_TIMEOUT_MS 5000
/* How long to wait before retrying a connect that found the broker's
 * listen queue full (AF_UNIX answers EAGAIN instead of queueing). */
#define SBX_CONNECT_RETRY_MS 5

int64_t sbx_mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left until deadline, clamped for poll(); 0 when it passed. */
static int remaining_ms(int64_t deadline_ms)
{
	int64_t left = deadline_ms - sbx_mono_ms();

	if (left <= 0)
		return 0;
	if (left > INT_MAX)
		return INT_MAX;
	return (int)left;
}

/* Wait until fd is ready for events or the deadline passes.  Returns 0
 * (ready, or an error/hangup the next syscall will report), -ETIMEDOUT or
 * a negative errno from poll. */
static int wait_fd(int fd, short events, int64_t deadline_ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int left = remaining_ms(deadline_ms);
		int rc;

		if (left == 0)
			return -ETIMEDOUT;
		rc = poll(&pfd, 1, left);
		if (rc < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (rc > 0)
			return 0;
	}
}

static void close_keep_errno(int fd)
{
	int saved = errno;

	if (fd >= 0)
		(void)close(fd); /* Linux frees the fd even on EINTR: never retry. */
	errno = saved;
}

/* A socket on 0-2 would be written to by code that believes it is
 * stdout/stderr once the host process reopens them. */
static int move_off_stdio(int fd)
{
	int nfd;

	if (fd >= 3)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0) {
		int err = -errno;

		close_keep_errno(fd);
		return err;
	}
	close_keep_errno(fd);
	return nfd;
}

static bool trusted_uid(uid_t uid, const struct sbx_conn_opts *o)
{
	return uid == 0 || (o->or_own_uid && uid == geteuid());
}

static int check_socket_file(const struct sbx_conn_opts *o)
{
	struct stat st;

	if (lstat(o->path, &st) != 0)
		return -errno;
	if (!S_ISSOCK(st.st_mode) || !trusted_uid(st.st_uid, o))
		return -EPERM;
	return 0;
}

static int check_peer(int fd, const struct sbx_conn_opts *o)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -errno;
	if (len != sizeof(cred) || !trusted_uid(cred.uid, o))
		return -EPERM;
	return 0;
}

/* Finish a connect that is in progress (EINPROGRESS or interrupted). */
static int connect_wait(int fd, int64_t deadline_ms)
{
	int err = 0, rc;
	socklen_t len = sizeof(err);

	rc = wait_fd(fd, POLLOUT, deadline_ms);
	if (rc)
		return rc;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
		return -errno;
	return err ? -err : 0;
}

static int connect_deadline(int fd, const struct sockaddr_un *sa, int64_t deadline_ms)
{
	for (;;) {
		if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
			return 0;
		switch (errno) {
		case EINPROGRESS:
		case EINTR:
			return connect_wait(fd, deadline_ms);
		case EAGAIN: {
			int left = remaining_ms(deadline_ms);

			if (left == 0)
				return -ETIMEDOUT;
			/* Nothing to poll on: the socket is not connecting. */
			(void)poll(NULL, 0, left < SBX_CONNECT_RETRY_MS ? left : SBX_CONNECT_RETRY_MS);
			continue;
		}
		default:
			return -errno;
		}
	}
}

int sbx_connect(const struct sbx_conn_opts *o, int64_t deadline_ms)
{
	struct sockaddr_un sa;
	size_t plen;
	int fd = -1, ret;

	if (!o || !o->path || !*o->path)
		return -EINVAL;
	plen = strlen(o->path);
	if (plen >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, o->path, plen + 1);

	if (o->require_root) {
		ret = check_socket_file(o);
		if (ret)
			goto out;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	fd = move_off_stdio(fd);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	ret = connect_deadline(fd, &sa, deadline_ms);
	if (ret)
		goto out;
	/* The file check alone is racy (the path can be swapped after lstat);
	 * the peer's credentials are what the kernel vouches for. */
	if (o->require_root) {
		ret = check_peer(fd, o);
		if (ret)
			goto out;
	}
	ret = fd;
	fd = -1;
out:
	close_keep_errno(fd);
	return ret;
}

int sbx_send_all(int fd, const uint8_t *buf, size_t n, int64_t deadline_ms)
{
	size_t off = 0;

	while (off < n) {
		ssize_t w = send(fd, buf + off, n - off, MSG_NOSIGNAL | MSG_DONTWAIT);
		int rc;

		if (w >= 0) {
			off += (size_t)w;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		rc = wait_fd(fd, POLLOUT, deadline_ms);
		if (rc)
			return rc;
	}
	return 0;
}

/* Read exactly n bytes.  A clean close before the last byte is
 * -ECONNRESET, like a reset: either way the reply never came. */
static int recv_exact(int fd, uint8_t *buf, size_t n, int64_t deadline_ms)
{
	size_t off = 0;

	while (off < n) {
		ssize_t r = recv(fd, buf + off, n - off, MSG_DONTWAIT);
		int rc;

		if (r > 0) {
			off += (size_t)r;
			continue;
		}
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		rc = wait_fd(fd, POLLIN, deadline_ms);
		if (rc)
			return rc;
	}
	return 0;
}

int sbx_recv_frame(int fd, uint8_t **frame, size_t *n, int64_t deadline_ms)
{
	uint8_t hdr[SBX_HDR_LEN];
	uint8_t *buf = NULL;
	struct sbx_hdr h;
	int ret;

	ret = recv_exact(fd, hdr, sizeof(hdr), deadline_ms);
	if (ret)
		goto out;
	/* Length is checked here, before anything is allocated.  Another
	 * version is malformed too (sbx_proto.h, Rules). */
	if (sbx_hdr_decode(hdr, sizeof(hdr), &h) != 0) {
		ret = -EBADMSG;
		goto out;
	}
	buf = malloc(h.length);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	memcpy(buf, hdr, sizeof(hdr));
	ret = recv_exact(fd, buf + SBX_HDR_LEN, h.length - SBX_HDR_LEN, deadline_ms);
	if (ret)
		goto out;
	if (sbx_frame_validate(buf, h.length, 1, NULL, 0) != 0) {
		ret = -EBADMSG;
		goto out;
	}
	*frame = buf;
	*n = h.length;
	buf = NULL;
out:
	free(buf);
	return ret;
}

static uint16_t frame_op(const uint8_t *frame)
{
	return (uint16_t)((uint16_t)frame[6] << 8 | frame[7]);
}

int sbx_call(const struct sbx_conn_opts *o, sbx_msg *req, uint8_t **frame, size_t *n)
{
	bool sent;

	return sbx_call_sent(o, req, frame, n, &sent);
}

int sbx_call_sent(const struct sbx_conn_opts *o, sbx_msg *req, uint8_t **frame, size_t *n,
		  bool *sent)
{
	int saved_errno = errno;
	int timeout, fd = -1, ret;
	uint8_t *reply = NULL;
	size_t rlen = 0;
	int64_t deadline;
	uint16_t op, rop;

	*sent = false;
	if (!o || !req || !frame || !n) {
		ret = -EINVAL;
		goto out;
	}
	ret = sbx_msg_finish(req);
	if (ret)
		goto out;
	timeout = o->timeout_ms > 0 ? o->timeout_ms : SBX_DEFAULT_TIMEOUT_MS;
	deadline = sbx_mono_ms() + timeout;
	fd = sbx_connect(o, deadline);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	ret = sbx_send_all(fd, req->buf, req->len, deadline);
	if (ret)
		goto out;
	*sent = true;
	ret = sbx_recv_frame(fd, &reply, &rlen, deadline);
	if (ret)
		goto out;
	op = frame_op(req->buf);
	rop = frame_op(reply);
	if (rop != (uint16_t)(op | SBX_OP_REPLY) && rop != SBX_OP_ERROR) {
		ret = -EBADMSG;
		goto out;
	}
	*frame = reply;
	*n = rlen;
	reply = NULL;
out:
	free(reply);
	close_keep_errno(fd);
	/* Callers inside NSS and PAM must not see errno move under them;
	 * the result is in the return value. */
	errno = saved_errno;
	return ret;
}

int sbx_reply_status(const uint8_t *frame, size_t n, uint32_t *status, char *msg, size_t msglen)
{
	sbx_reader r;
	sbx_field f;
	size_t len;

	if (msg && msglen)
		msg[0] = '\0';
	sbx_reader_init_frame(&r, frame, n);
	if (sbx_reader_find(&r, SBX_F_STATUS, &f) != 1 || f.len != 4)
		return -EBADMSG;
	*status = sbx_field_u32(&f);
	if (!msg || !msglen || sbx_reader_find(&r, SBX_F_MESSAGE, &f) != 1)
		return 0;
	len = f.len;
	if (len >= msglen) {
		len = msglen - 1;
		/* Do not leave half a UTF-8 character at the end. */
		while (len > 0 && (f.val[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(msg, f.val, len);
	msg[len] = '\0';
	return 0;
}
