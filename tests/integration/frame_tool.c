/*
 * frame_tool: speaks (and abuses) the broker protocol for the integration
 * tests.  Links only libsbxcommon, like the PAM and NSS modules will.
 *
 * Everything it receives is printed one item per line, so a shell test can
 * grep for it:
 *   op=0x7fff status=5 message=unknown op 0x0fff   a reply frame
 *   closed | closed after N ms                      the broker hung up
 *   open after N ms                                 it did not
 *   timeout                                         no reply in time
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "sbx_proto.h"
#include "sbxio.h"
#include "text.h"

#define REPLY_TIMEOUT_MS 5000
#define CLOSE_WAIT_MS 2000

enum { EXIT_OK = 0, EXIT_NO = 1, EXIT_USAGE = 2, EXIT_IO = 3 };

static void usage(FILE *out)
{
	fprintf(out,
		"usage: frame_tool SOCKET MODE [ARGS]\n"
		"modes:\n"
		"  garbage [SEED]     send 64 random bytes (never version 1)\n"
		"  oversized          send a header claiming 1 MiB\n"
		"  unknown-op         a well-formed frame with op 0x0fff\n"
		"  badversion         a CHECK frame with version 2\n"
		"      these four print the reply and whether the broker closed;\n"
		"      exit 0 when an error reply or a close came, else 1\n"
		"  half SECONDS [USER] send half a CHECK frame, keep the connection\n"
		"                     open SECONDS, print what happened; exit 0\n"
		"  hold SECONDS       connect, send nothing, hold SECONDS; exit 0\n"
		"  check USER [record] a real CHECK: prints \"allowed\" (exit 0) or\n"
		"                     \"denied: MESSAGE\" (exit 1, also for an error reply);\n"
		"                     record: asks for access.checked as pam_sbx does\n"
		"                     (recorded only for root)\n"
		"  sudo-check COMMAND [FLAGS]  SUDO_CHECK with COMMAND sent as it is\n"
		"                     (sbx_sudo's question); prints the reply, exit 0 on OK\n"
		"exit 2: usage; exit 3: could not connect (check: or no answer in time)\n");
}

static int parse_seconds(const char *s, int *out)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > 3600)
		return -1;
	*out = (int)v;
	return 0;
}

static int connect_to(const char *path)
{
	struct sbx_conn_opts o = { .path = path, .timeout_ms = REPLY_TIMEOUT_MS };
	int fd = sbx_connect(&o, sbx_mono_ms() + REPLY_TIMEOUT_MS);

	if (fd < 0)
		printf("connect: %s\n", strerror(-fd));
	return fd;
}

static void send_bytes(int fd, const uint8_t *buf, size_t n)
{
	int rc = sbx_send_all(fd, buf, n, sbx_mono_ms() + REPLY_TIMEOUT_MS);

	if (rc)
		printf("send: %s\n", strerror(-rc));
	else
		printf("sent %zu bytes\n", n);
}

/* Print a reply as "op=... status=N message=...".  Returns 1 when it is an
 * error (op ERROR or a non-zero status). */
static int print_reply(const uint8_t *frame, size_t n)
{
	uint16_t op = (uint16_t)(frame[6] << 8 | frame[7]);
	char msg[SBX_STR_MAX + 1], clean[SBX_STR_MAX + 1];
	uint32_t status = 0;

	if (sbx_reply_status(frame, n, &status, msg, sizeof(msg)) != 0) {
		printf("op=0x%04x no status\n", op);
		return op == SBX_OP_ERROR;
	}
	printf("op=0x%04x status=%u message=%s\n", op, status,
	       sbx_sanitize(msg, clean, sizeof(clean)));
	fflush(stdout);
	return op == SBX_OP_ERROR || status != SBX_ST_OK;
}

/* Watch fd for ms: print any reply frame that arrives, and stop at a
 * close.  Returns 1 if the broker closed the connection. */
static int watch(int fd, int ms, int *got_error_reply)
{
	int64_t start = sbx_mono_ms(), deadline = start + ms;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int64_t left = deadline - sbx_mono_ms();
		uint8_t *frame = NULL;
		size_t n = 0;
		int rc;

		if (left <= 0)
			break;
		rc = poll(&p, 1, (int)left);
		if (rc < 0 && errno == EINTR)
			continue;
		if (rc <= 0)
			break;
		rc = sbx_recv_frame(fd, &frame, &n, sbx_mono_ms() + REPLY_TIMEOUT_MS);
		if (rc == 0) {
			if (print_reply(frame, n) && got_error_reply)
				*got_error_reply = 1;
			free(frame);
			continue;
		}
		if (rc == -ECONNRESET) {
			printf("closed after %lld ms\n", (long long)(sbx_mono_ms() - start));
			return 1;
		}
		printf("bad reply: %s\n", strerror(-rc));
		return 0;
	}
	printf("open after %lld ms\n", (long long)(sbx_mono_ms() - start));
	return 0;
}

/* After a malformed frame: the broker should answer with an error reply
 * and close.  Either one counts as handled. */
static int expect_rejection(int fd)
{
	uint8_t *frame = NULL;
	size_t n = 0;
	int rc, error_reply = 0, closed;

	rc = sbx_recv_frame(fd, &frame, &n, sbx_mono_ms() + REPLY_TIMEOUT_MS);
	if (rc == 0) {
		error_reply = print_reply(frame, n);
		free(frame);
		closed = watch(fd, CLOSE_WAIT_MS, &error_reply);
	} else if (rc == -ECONNRESET) {
		printf("closed\n");
		closed = 1;
	} else if (rc == -ETIMEDOUT) {
		printf("timeout\n");
		closed = 0;
	} else {
		printf("bad reply: %s\n", strerror(-rc));
		closed = 0;
	}
	return error_reply || closed ? EXIT_OK : EXIT_NO;
}

static void put_hdr(uint8_t *b, uint32_t length, uint16_t version, uint16_t op)
{
	b[0] = (uint8_t)(length >> 24);
	b[1] = (uint8_t)(length >> 16);
	b[2] = (uint8_t)(length >> 8);
	b[3] = (uint8_t)length;
	b[4] = (uint8_t)(version >> 8);
	b[5] = (uint8_t)version;
	b[6] = (uint8_t)(op >> 8);
	b[7] = (uint8_t)op;
}

static int build_check(sbx_msg *m, uint16_t op, const char *user)
{
	sbx_msg_init(m, op);
	sbx_msg_put_str(m, SBX_F_USER, user);
	sbx_msg_put_str(m, SBX_F_SERVICE, "frame_tool");
	return sbx_msg_finish(m);
}

static void fill_random(uint8_t *b, size_t n, const char *seed_arg)
{
	uint64_t x = 0;
	char *end = NULL;

	if (seed_arg) {
		errno = 0;
		x = strtoull(seed_arg, &end, 10);
		if (errno || end == seed_arg || *end)
			x = 0;
	} else if (getrandom(&x, sizeof(x), 0) != (ssize_t)sizeof(x)) {
		x = (uint64_t)sbx_mono_ms() ^ (uint64_t)getpid() << 32;
	}
	if (!x)
		x = 0x9e3779b97f4a7c15ULL;
	printf("seed %llu\n", (unsigned long long)x);
	for (size_t i = 0; i < n; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		b[i] = (uint8_t)((x * 2685821657736338717ULL) >> 56);
	}
}

static int mode_garbage(const char *path, const char *seed)
{
	uint8_t b[64];
	int fd, rc;

	fill_random(b, sizeof(b), seed);
	/* Version 1 with a plausible length would make the broker wait for
	 * the rest of a "frame": keep the garbage recognisable as garbage. */
	if (b[4] == 0 && b[5] == 1)
		b[5] = 2;
	fd = connect_to(path);
	if (fd < 0)
		return EXIT_IO;
	send_bytes(fd, b, sizeof(b));
	rc = expect_rejection(fd);
	close(fd);
	return rc;
}

static int mode_header_only(const char *path, uint32_t length, uint16_t version, uint16_t op)
{
	uint8_t b[SBX_HDR_LEN];
	int fd, rc;

	put_hdr(b, length, version, op);
	fd = connect_to(path);
	if (fd < 0)
		return EXIT_IO;
	send_bytes(fd, b, sizeof(b));
	rc = expect_rejection(fd);
	close(fd);
	return rc;
}

static int mode_bad_frame(const char *path, uint16_t op, uint16_t version)
{
	sbx_msg m;
	int fd, rc;

	if (build_check(&m, op, "alice") != 0) {
		printf("cannot build frame\n");
		sbx_msg_free(&m);
		return EXIT_IO;
	}
	m.buf[4] = (uint8_t)(version >> 8);
	m.buf[5] = (uint8_t)version;
	fd = connect_to(path);
	if (fd < 0) {
		sbx_msg_free(&m);
		return EXIT_IO;
	}
	send_bytes(fd, m.buf, m.len);
	rc = expect_rejection(fd);
	close(fd);
	sbx_msg_free(&m);
	return rc;
}

static int mode_half(const char *path, int secs, const char *user)
{
	sbx_msg m;
	int fd;

	if (build_check(&m, SBX_OP_CHECK, user) != 0) {
		printf("cannot build frame\n");
		sbx_msg_free(&m);
		return EXIT_USAGE;
	}
	fd = connect_to(path);
	if (fd < 0) {
		sbx_msg_free(&m);
		return EXIT_IO;
	}
	send_bytes(fd, m.buf, m.len / 2);
	fflush(stdout);
	(void)watch(fd, secs * 1000, NULL);
	close(fd);
	sbx_msg_free(&m);
	return EXIT_OK;
}

static int mode_hold(const char *path, int secs)
{
	int fd = connect_to(path);

	if (fd < 0)
		return EXIT_IO;
	printf("connected\n");
	fflush(stdout);
	(void)watch(fd, secs * 1000, NULL);
	close(fd);
	return EXIT_OK;
}

static int mode_check(const char *path, const char *user, bool record)
{
	struct sbx_conn_opts o = { .path = path, .timeout_ms = REPLY_TIMEOUT_MS };
	char msg[SBX_STR_MAX + 1], clean[SBX_STR_MAX + 1];
	uint8_t *reply = NULL;
	size_t n = 0;
	uint32_t status = 0, allowed = 0;
	sbx_reader r;
	sbx_field f;
	sbx_msg m;
	int rc, ret = EXIT_IO;

	sbx_msg_init(&m, SBX_OP_CHECK);
	sbx_msg_put_str(&m, SBX_F_USER, user);
	sbx_msg_put_str(&m, SBX_F_SERVICE, "frame_tool");
	if (record)
		sbx_msg_put_u32(&m, SBX_F_FLAGS, SBX_CHECK_RECORD);
	if (sbx_msg_finish(&m) != 0) {
		printf("cannot build frame (user name too long?)\n");
		sbx_msg_free(&m);
		return EXIT_USAGE;
	}
	rc = sbx_call(&o, &m, &reply, &n);
	if (rc) {
		printf("call: %s\n", strerror(-rc));
		goto out;
	}
	print_reply(reply, n);
	/* Anything but an OK reply with ALLOWED=1 is a denial; the status
	 * line above says which kind. */
	if (sbx_reply_status(reply, n, &status, msg, sizeof(msg)) != 0)
		msg[0] = '\0';
	sbx_reader_init_frame(&r, reply, n);
	if (status == SBX_ST_OK && sbx_reader_find(&r, SBX_F_ALLOWED, &f) == 1)
		allowed = sbx_field_u32(&f);
	if (allowed) {
		printf("allowed\n");
		ret = EXIT_OK;
	} else {
		printf("denied: %s\n", sbx_sanitize(msg, clean, sizeof(clean)));
		ret = EXIT_NO;
	}
out:
	free(reply);
	sbx_msg_free(&m);
	return ret;
}

/* SUDO_CHECK with the command exactly as given (control characters,
 * invalid UTF-8 and all): what the broker does with what sbx_sudo would
 * never send. */
static int mode_sudo_check(const char *path, const char *command, uint32_t flags)
{
	struct sbx_conn_opts o = { .path = path, .timeout_ms = REPLY_TIMEOUT_MS };
	uint8_t *reply = NULL;
	size_t n = 0;
	uint32_t status = 1;
	char msg[SBX_STR_MAX + 1];
	sbx_msg m;
	int rc, ret = EXIT_IO;

	sbx_msg_init(&m, SBX_OP_SUDO_CHECK);
	if (flags)
		sbx_msg_put_u32(&m, SBX_F_FLAGS, flags);
	sbx_msg_put_str(&m, SBX_F_RUNAS, "root");
	sbx_msg_put_str(&m, SBX_F_COMMAND, command);
	rc = sbx_call(&o, &m, &reply, &n);
	if (rc) {
		printf("call: %s\n", strerror(-rc));
		goto out;
	}
	print_reply(reply, n);
	if (sbx_reply_status(reply, n, &status, msg, sizeof(msg)) != 0)
		status = 1;
	ret = status == SBX_ST_OK ? EXIT_OK : EXIT_NO;
out:
	free(reply);
	sbx_msg_free(&m);
	return ret;
}

int main(int argc, char **argv)
{
	const char *path, *mode;
	int secs = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc < 3) {
		usage(stderr);
		return EXIT_USAGE;
	}
	path = argv[1];
	mode = argv[2];
	if (!strcmp(mode, "garbage") && argc <= 4)
		return mode_garbage(path, argc == 4 ? argv[3] : NULL);
	if (!strcmp(mode, "oversized") && argc == 3)
		return mode_header_only(path, 1u << 20, SBX_PROTO_VERSION, SBX_OP_CHECK);
	if (!strcmp(mode, "unknown-op") && argc == 3)
		return mode_bad_frame(path, 0x0fff, SBX_PROTO_VERSION);
	if (!strcmp(mode, "badversion") && argc == 3)
		return mode_bad_frame(path, SBX_OP_CHECK, SBX_PROTO_VERSION + 1);
	if (!strcmp(mode, "half") && (argc == 4 || argc == 5) && !parse_seconds(argv[3], &secs))
		return mode_half(path, secs, argc == 5 ? argv[4] : "alice");
	if (!strcmp(mode, "hold") && argc == 4 && !parse_seconds(argv[3], &secs))
		return mode_hold(path, secs);
	if (!strcmp(mode, "check") && argc == 4)
		return mode_check(path, argv[3], false);
	if (!strcmp(mode, "check") && argc == 5 && !strcmp(argv[4], "record"))
		return mode_check(path, argv[3], true);
	if (!strcmp(mode, "sudo-check") && (argc == 4 || argc == 5))
		return mode_sudo_check(path, argv[3],
				       argc == 5 ? (uint32_t)strtoul(argv[4], NULL, 10) : 0);
	usage(stderr);
	return EXIT_USAGE;
}
