/*
 * Secret files (secret.h).  Checked on the open fd (fstat), never on the
 * path, so nothing can be swapped in between the check and the read.
 */
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int read_all(int fd, char *buf, size_t want, size_t *got)
{
	size_t n = 0;

	while (n < want) {
		ssize_t r = read(fd, buf + n, want - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -1;
		if (r == 0)
			break;
		n += (size_t)r;
	}
	*got = n;
	return 0;
}

static int check_file(const char *what, const char *path, const struct stat *st, size_t cap,
		      char *why, size_t whylen)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(why, whylen, "%s %s is not a regular file", what, path);
		return -1;
	}
	if (st->st_mode & 077) {
		snprintf(why, whylen, "%s %s may be read by others (mode %03o): chmod 600 %s", what,
			 path, (unsigned)(st->st_mode & 0777), path);
		return -1;
	}
	if (st->st_uid != 0 && st->st_uid != geteuid()) {
		snprintf(why, whylen, "%s %s belongs to uid %u: it must belong to root or to the "
			 "broker's user", what, path, (unsigned)st->st_uid);
		return -1;
	}
	if (st->st_size > SBX_SECRET_MAX || (size_t)st->st_size >= cap) {
		snprintf(why, whylen, "%s %s is too large (%lld bytes; at most %d)", what, path,
			 (long long)st->st_size, SBX_SECRET_MAX);
		return -1;
	}
	return 0;
}

int sbx_secret_read(const char *what, const char *path, char *buf, size_t cap, size_t *len,
		    char *why, size_t whylen)
{
	struct stat st;
	size_t n = 0;
	int fd, ret = -1;

	if (!cap)
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		if (errno == ELOOP)
			snprintf(why, whylen, "%s %s is a symbolic link: give the real file's path",
				 what, path);
		else
			snprintf(why, whylen, "cannot open %s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(why, whylen, "cannot stat %s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if (check_file(what, path, &st, cap, why, whylen) < 0)
		goto out;
	if (read_all(fd, buf, (size_t)st.st_size, &n) < 0) {
		snprintf(why, whylen, "cannot read %s %s: %s", what, path, strerror(errno));
		goto out;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' ||
			 buf[n - 1] == '\t'))
		n--;
	buf[n] = '\0';
	if (n == 0) {
		snprintf(why, whylen, "%s %s is empty", what, path);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)buf[i] < ' ' || buf[i] == 0x7f) {
			snprintf(why, whylen, "%s %s has control characters in it (one line "
				 "expected)", what, path);
			goto out;
		}
	}
	*len = n;
	ret = 0;
out:
	if (ret < 0)
		explicit_bzero(buf, cap);
	if (fd >= 0)
		close(fd);
	return ret;
}
