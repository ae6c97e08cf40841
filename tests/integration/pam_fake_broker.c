/*
 * pam_fake_broker: a broker that misbehaves, for pam_sbx's tests.
 *
 *   pam_fake_broker SOCKET MODE
 *
 * Listens on SOCKET (removed first if it is a stale socket), prints
 * "ready", and serves every connection the same way until killed:
 *   silent      accept, read the request, never answer (hold it open)
 *   close       accept and close at once
 *   garbage     answer 64 bytes that are not a frame
 *   short       answer half a valid reply, then close
 *   wrongop     a well-formed reply to another op (PING)
 *   noallowed   a CHECK reply with STATUS OK but no ALLOWED
 *   badallowed  a CHECK reply with ALLOWED = 7
 *   error       an ERROR frame (STATUS PROTO)
 *   allow       a proper "allowed" CHECK reply (the control case)
 * Exit: 2 usage, 1 cannot listen.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "frame.h"
#include "sbx_proto.h"

#define MAX_HELD 64

static int listen_on(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 64) < 0 ||
	    chmod(path, 0666) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read what the client sent (one frame, or whatever comes within 1 s). */
static void drain_request(int fd)
{
	uint8_t buf[4096];
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 1000) > 0)
		(void)recv(fd, buf, sizeof(buf), 0);
}

static void send_msg(int fd, sbx_msg *m, size_t limit)
{
	if (sbx_msg_finish(m) == 0) {
		size_t n = limit && limit < m->len ? limit : m->len;

		(void)send(fd, m->buf, n, MSG_NOSIGNAL);
	}
	sbx_msg_free(m);
}

static void check_reply(int fd, int with_allowed, uint32_t allowed, size_t limit)
{
	sbx_msg m;

	sbx_msg_init_reply(&m, SBX_OP_CHECK | SBX_OP_REPLY, SBX_ST_OK, "fake broker says so");
	if (with_allowed)
		sbx_msg_put_u32(&m, SBX_F_ALLOWED, allowed);
	send_msg(fd, &m, limit);
}

/* Returns 1 when the connection must be kept open (silent). */
static int serve(int fd, const char *mode)
{
	sbx_msg m;

	if (strcmp(mode, "close") == 0)
		return 0;
	drain_request(fd);
	if (strcmp(mode, "silent") == 0)
		return 1;
	if (strcmp(mode, "garbage") == 0) {
		uint8_t junk[64];

		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)(0xa5 ^ (i * 37));
		(void)send(fd, junk, sizeof(junk), MSG_NOSIGNAL);
	} else if (strcmp(mode, "short") == 0) {
		check_reply(fd, 1, 1, 12);
	} else if (strcmp(mode, "wrongop") == 0) {
		sbx_msg_init_reply(&m, SBX_OP_PING | SBX_OP_REPLY, SBX_ST_OK, "pong");
		sbx_msg_put_u32(&m, SBX_F_ALLOWED, 1);
		send_msg(fd, &m, 0);
	} else if (strcmp(mode, "noallowed") == 0) {
		check_reply(fd, 0, 0, 0);
	} else if (strcmp(mode, "badallowed") == 0) {
		check_reply(fd, 1, 7, 0);
	} else if (strcmp(mode, "error") == 0) {
		sbx_msg_init_reply(&m, SBX_OP_ERROR, SBX_ST_PROTO, "malformed request: fake");
		send_msg(fd, &m, 0);
	} else {
		check_reply(fd, 1, 1, 0);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const char *modes[] = { "silent", "close", "garbage", "short", "wrongop",
				       "noallowed", "badallowed", "error", "allow" };
	int n_held = 0, lfd, known = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: pam_fake_broker SOCKET MODE\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		known |= strcmp(argv[2], modes[i]) == 0;
	if (!known) {
		fprintf(stderr, "pam_fake_broker: unknown mode %s\n", argv[2]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = listen_on(argv[1]);
	if (lfd < 0) {
		fprintf(stderr, "pam_fake_broker: cannot listen on %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			return 1;
		}
		/* silent: the fd stays open on purpose, so the client must
		 * give up on its own deadline. */
		if (serve(fd, argv[2]) && n_held < MAX_HELD) {
			n_held++;
			continue;
		}
		close(fd);
	}
	return 0;
}
