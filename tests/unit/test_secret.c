/* Secret files (common/secret.c): what is read, and every file refused. */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "secret.h"

/* In every test: buf, len and why are the caller's locals. */
#define READ(path) sbx_secret_read("secret_file", path, buf, sizeof(buf), &len, why, sizeof(why))

struct tmp {
	char dir[64];
	char path[128];
};

static void tmp_file(struct tmp *t, const char *content, mode_t mode)
{
	int fd;

	snprintf(t->dir, sizeof(t->dir), "/tmp/test_secret.XXXXXX");
	cr_assert_not_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/secret", t->dir);
	fd = open(t->path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	cr_assert_eq(chmod(t->path, mode), 0);
}

static void tmp_done(struct tmp *t)
{
	char link[160];

	snprintf(link, sizeof(link), "%s/link", t->dir);
	unlink(link);
	unlink(t->path);
	rmdir(t->dir);
}

Test(secret, read_from_a_private_file)
{
	struct tmp t;
	char buf[SBX_SECRET_MAX + 1], why[512];
	size_t len = 0;

	tmp_file(&t, "s3cr3t-value\n", 0600);
	cr_assert_eq(READ(t.path), 0, "%s", why);
	cr_assert_str_eq(buf, "s3cr3t-value");
	cr_assert_eq(len, 12);
	tmp_done(&t);
}

Test(secret, refuses_files_others_can_read)
{
	struct tmp t;
	char buf[SBX_SECRET_MAX + 1], why[512];
	size_t len = 0;

	tmp_file(&t, "s3cr3t-value\n", 0640);
	cr_assert_eq(READ(t.path), -1);
	cr_assert(strstr(why, "chmod 600"), "%s", why);
	cr_assert_null(strstr(why, "s3cr3t"), "the message must not show the secret: %s", why);
	cr_assert_eq(chmod(t.path, 0604), 0);
	cr_assert_eq(READ(t.path), -1);
	tmp_done(&t);
}

Test(secret, refuses_links_directories_empty_large_and_binary)
{
	struct tmp t;
	char buf[SBX_SECRET_MAX + 1], why[512], link[160], big[SBX_SECRET_MAX + 10];
	size_t len = 0;
	int fd;

	tmp_file(&t, "\n", 0600);
	cr_assert_eq(READ(t.path), -1);
	cr_assert(strstr(why, "empty"), "%s", why);
	snprintf(link, sizeof(link), "%s/link", t.dir);
	cr_assert_eq(symlink(t.path, link), 0);
	cr_assert_eq(READ(link), -1);
	cr_assert(strstr(why, "symbolic link"), "%s", why);
	cr_assert_eq(READ(t.dir), -1);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	fd = open(t.path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	cr_assert_eq(write(fd, big, strlen(big)), (ssize_t)strlen(big));
	close(fd);
	cr_assert_eq(READ(t.path), -1);
	cr_assert(strstr(why, "too large"), "%s", why);
	fd = open(t.path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	cr_assert_eq(write(fd, "two\nlines", 9), 9);
	close(fd);
	cr_assert_eq(READ(t.path), -1);
	cr_assert_eq(READ("/nonexistent/x"), -1);
	tmp_done(&t);
}
