/*
 * What the service manager sees of the broker: log lines whose priority
 * journald can read when stderr is the journal (log.c), and readiness
 * through NOTIFY_SOCKET (notify.c), as sbx-brokerd.service expects.
 */
#include "config.h"

#include "log.h"
#include "notify.h"

#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* ---------------------------------------------------------------------- */
/* Log lines */

static char log_path[] = "/tmp/sbx-test-log.XXXXXX";

/* stderr becomes a fresh file; returns its "DEV:INODE". */
static void stderr_to_file(char *stream, size_t len)
{
	struct stat st;
	int fd = mkstemp(log_path);

	cr_assert_geq(fd, 0);
	cr_assert_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	cr_assert_eq(fstat(STDERR_FILENO, &st), 0);
	snprintf(stream, len, "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
}

static char *logged(void)
{
	static char buf[4096];
	FILE *f;
	size_t n;

	fflush(stderr);
	f = fopen(log_path, "re");
	cr_assert_not_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	unlink(log_path);
	buf[n] = '\0';
	return buf;
}

Test(journal, priority_prefix_when_stderr_is_the_journal)
{
	char stream[64];

	stderr_to_file(stream, sizeof(stream));
	cr_assert_eq(setenv("JOURNAL_STREAM", stream, 1), 0);
	sbx_log_init("sbx-brokerd", SBX_LOG_STDERR, 1);
	sbx_err("disk %s", "full");
	sbx_warn("slow %d", 1);
	sbx_info("ready %d", 2);
	sbx_debug("detail %d", 3);
	cr_assert_str_eq(logged(), "<3>error: disk full\n<4>warning: slow 1\n<6>info: ready 2\n"
			 "<7>debug: detail 3\n");
}

Test(journal, no_prefix_without_journal_stream)
{
	char stream[64];

	stderr_to_file(stream, sizeof(stream));
	cr_assert_eq(unsetenv("JOURNAL_STREAM"), 0);
	sbx_log_init("sbx-brokerd", SBX_LOG_STDERR, 0);
	sbx_err("plain %s", "line");
	cr_assert_str_eq(logged(), "sbx-brokerd: error: plain line\n");
}

/* systemd's stream was replaced (sbx-brokerd --foreground 2>file run
 * from a unit's shell): the variable is inherited but no longer true. */
Test(journal, no_prefix_when_stderr_is_another_file)
{
	char stream[64], other[64];
	unsigned long long dev, ino;

	stderr_to_file(stream, sizeof(stream));
	cr_assert_eq(sscanf(stream, "%llu:%llu", &dev, &ino), 2);
	snprintf(other, sizeof(other), "%llu:%llu", dev, ino + 1);
	cr_assert_eq(setenv("JOURNAL_STREAM", other, 1), 0);
	cr_assert_not(sbx_log_stderr_is_journal());
	sbx_log_init("sbx-brokerd", SBX_LOG_STDERR, 0);
	sbx_err("other %s", "file");
	cr_assert_str_eq(logged(), "sbx-brokerd: error: other file\n");
}

Test(journal, malformed_journal_stream_is_ignored)
{
	static const char *const bad[] = { "", "12", "12:", ":12", "12:34x", "a:b", "12:34:56" };
	char stream[64], v[80];

	stderr_to_file(stream, sizeof(stream));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cr_assert_eq(setenv("JOURNAL_STREAM", bad[i], 1), 0);
		cr_assert_not(sbx_log_stderr_is_journal(), "'%s' taken for a stream", bad[i]);
	}
	snprintf(v, sizeof(v), "%s ", stream);
	cr_assert_eq(setenv("JOURNAL_STREAM", v, 1), 0);
	cr_assert_not(sbx_log_stderr_is_journal(), "trailing garbage");
	cr_assert_eq(setenv("JOURNAL_STREAM", stream, 1), 0);
	cr_assert(sbx_log_stderr_is_journal());
	unlink(log_path);
}

/* ---------------------------------------------------------------------- */
/* Readiness */

/* A datagram socket like systemd's, at path (an "@name" is abstract),
 * receiving the sender's credentials. */
static int listener(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0), on = 1;

	cr_assert_geq(fd, 0);
	memcpy(sa.sun_path, path, strlen(path));
	if (path[0] == '@')
		sa.sun_path[0] = '\0';
	else
		len++;
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, len), 0, "bind %s: %s", path,
		     strerror(errno));
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof(on)), 0);
	return fd;
}

/* One datagram's text; *pid gets the sender's pid from its credentials. */
static char *received(int fd, pid_t *pid)
{
	static char buf[1024];
	union {
		struct cmsghdr h;
		char space[CMSG_SPACE(sizeof(struct ucred))];
	} ctl;
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
			    .msg_controllen = sizeof(ctl) };
	ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
	struct cmsghdr *c;

	cr_assert_gt(n, 0, "nothing was sent");
	buf[n] = '\0';
	*pid = 0;
	for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
			*pid = ((struct ucred *)(void *)CMSG_DATA(c))->pid;
	return buf;
}

Test(notify, ready_reaches_a_path_socket_from_this_pid)
{
	char path[64];
	pid_t pid;
	int fd;

	snprintf(path, sizeof(path), "/tmp/sbx-test-notify.%d", (int)getpid());
	unlink(path);
	fd = listener(path);
	cr_assert_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
	cr_assert_eq(sbx_notify("READY=1\nSTATUS=ready"), 0);
	cr_assert_str_eq(received(fd, &pid), "READY=1\nSTATUS=ready");
	cr_assert_eq(pid, getpid(), "systemd matches the main pid by the credentials");
	close(fd);
	unlink(path);
}

Test(notify, abstract_socket)
{
	char path[64];
	pid_t pid;
	int fd;

	snprintf(path, sizeof(path), "@sbx-test-notify-%d", (int)getpid());
	fd = listener(path);
	cr_assert_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
	cr_assert_eq(sbx_notify("STOPPING=1"), 0);
	cr_assert_str_eq(received(fd, &pid), "STOPPING=1");
	close(fd);
}

Test(notify, nobody_to_tell)
{
	cr_assert_eq(unsetenv("NOTIFY_SOCKET"), 0);
	cr_assert_eq(sbx_notify("READY=1"), 0);
	cr_assert_eq(setenv("NOTIFY_SOCKET", "", 1), 0);
	cr_assert_eq(sbx_notify("READY=1"), 0);
}

Test(notify, unusable_addresses_are_errors)
{
	char path[64];

	cr_assert_eq(setenv("NOTIFY_SOCKET", "vsock:2:1234", 1), 0);
	cr_assert_eq(sbx_notify("READY=1"), -EAFNOSUPPORT);
	cr_assert_eq(setenv("NOTIFY_SOCKET", "@", 1), 0);
	cr_assert_eq(sbx_notify("READY=1"), -EAFNOSUPPORT);
	snprintf(path, sizeof(path), "/tmp/sbx-test-notify-none.%d", (int)getpid());
	unlink(path);
	cr_assert_eq(setenv("NOTIFY_SOCKET", path, 1), 0);
	cr_assert_eq(sbx_notify("READY=1"), -ENOENT);
}
