#include "config.h"

#include "ssudo_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "text.h"

static const char *or_empty(const char *s)
{
	return s ? s : "";
}

/* How many files dir holds (*all), and how many of them are uid's
 * (*mine: their names carry ".uUID.").  0, or -1 when it cannot be
 * read. */
static int spool_count(const char *dir, uid_t uid, unsigned *all, unsigned *mine)
{
	char tag[24];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return -1;
	snprintf(tag, sizeof(tag), ".u%u.", (unsigned)uid);
	*all = *mine = 0;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		(*all)++;
		if (strstr(e->d_name, tag))
			(*mine)++;
	}
	closedir(d);
	return 0;
}

/* Room for one more file of uid's?  1 yes, 0 no (errno EDQUOT), -1 the
 * spool cannot be read (errno).  A run's end has room up to twice the
 * bounds, so that a run written down gets its end too. */
static int spool_has_room(const char *dir, uid_t uid, bool is_end)
{
	unsigned all, mine, scale = is_end ? 2 : 1;

	if (spool_count(dir, uid, &all, &mine) < 0)
		return -1;
	if (all < scale * SSUDO_SPOOL_MAX_FILES && mine < scale * SSUDO_SPOOL_MAX_PER_USER)
		return 1;
	errno = EDQUOT;
	return 0;
}

int ssudo_spool_write(const char *dir, const struct ssudo_spooled *s)
{
	char path[512], body[SSUDO_SPOOL_FILE_MAX], reason[1024];
	const struct ssudo_cmd *c = s->cmd;
	struct timespec now;
	int fd = -1, ret = -1, n, saved;

	clock_gettime(CLOCK_REALTIME, &now);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -1;
	/* While the broker is away, one user must not fill the disk (or
	 * crowd out everyone else's records) by running sudo again and
	 * again. */
	if (spool_has_room(dir, s->uid, strcmp(s->kind, "exited") == 0) <= 0)
		return -1;
	/* Newlines in sudo's message must not make keys of their own. */
	sbx_sanitize(or_empty(s->reason), reason, sizeof(reason));
	n = snprintf(body, sizeof(body),
		     "kind=%s\ntime=%lld\nuid=%u\nrunas=%s\ncommand=%s\ncwd=%s\ntty=%s\n"
		     "verdict=%s\nplugin=%s\nreason=%s\nhas_status=%d\nstatus=%d\nsignal=%d\n"
		     "elapsed_ms=%lld\n",
		     s->kind, (long long)now.tv_sec, (unsigned)s->uid, or_empty(c->runas),
		     or_empty(c->command), or_empty(c->cwd), or_empty(c->tty),
		     or_empty(s->verdict), or_empty(s->plugin), reason, s->has_status ? 1 : 0,
		     s->status, s->signal, (long long)s->elapsed_ms);
	if (n < 0 || (size_t)n >= sizeof(body)) {
		errno = EMSGSIZE;
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%lld.%09ld.%d.u%u.%s", dir, (long long)now.tv_sec,
		 now.tv_nsec, (int)getpid(), (unsigned)s->uid, s->kind);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (write(fd, body, (size_t)n) == n && fsync(fd) == 0)
		ret = 0;
	saved = errno;
	close(fd);
	if (ret < 0)
		unlink(path);
	errno = saved;
	return ret;
}

/* The value of key in a file's text (lines "key=value"), copied into
 * out; "" when absent. */
static void value(const char *text, const char *key, char *out, size_t len)
{
	size_t k = strlen(key);

	out[0] = '\0';
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
		if (strncmp(p, key, k) == 0 && p[k] == '=') {
			const char *v = p + k + 1, *e = strchr(v, '\n');
			size_t n = e ? (size_t)(e - v) : strlen(v);

			if (n >= len)
				n = len - 1;
			memcpy(out, v, n);
			out[n] = '\0';
			return;
		}
	}
}

static long long num(const char *text, const char *key)
{
	char buf[32];

	value(text, key, buf, sizeof(buf));
	return strtoll(buf, NULL, 10);
}

/* Read a spool file: root's, a plain file, not too big.  0 or -1. */
static int read_file(int dirfd, const char *name, char *buf, size_t len)
{
	struct stat st;
	ssize_t n;
	int fd, ret = -1;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 022) || st.st_size <= 0 || (size_t)st.st_size >= len)
		goto out;
	n = read(fd, buf, len - 1);
	if (n != st.st_size)
		goto out;
	buf[n] = '\0';
	ret = 0;
out:
	close(fd);
	return ret;
}

static int only_spool_names(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

int ssudo_spool_flush(const struct ssudo_opts *o)
{
	struct dirent **names = NULL;
	struct stat st;
	int n, dirfd, done = 0;

	dirfd = open(o->spool, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dirfd < 0)
		return 0;
	/* Only a directory no one but root can write into is read. */
	if (fstat(dirfd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022)) {
		close(dirfd);
		return 0;
	}
	n = scandir(o->spool, &names, only_spool_names, alphasort);
	for (int i = 0; i < n; i++) {
		char text[SSUDO_SPOOL_FILE_MAX], kind[16], runas[SBX_NAME_MAX + 1];
		char command[SBX_COMMAND_MAX + 1], cwd[1025], tty[64], verdict[16];
		char plugin[SBX_NAME_MAX + 1], reason[1024];
		struct ssudo_cmd c = { 0 };
		struct ssudo_answer a;

		if (done < 0 || done >= SSUDO_SPOOL_FLUSH_MAX)
			goto next;
		if (read_file(dirfd, names[i]->d_name, text, sizeof(text)) < 0)
			goto next;
		value(text, "kind", kind, sizeof(kind));
		value(text, "runas", runas, sizeof(runas));
		value(text, "command", command, sizeof(command));
		value(text, "cwd", cwd, sizeof(cwd));
		value(text, "tty", tty, sizeof(tty));
		value(text, "verdict", verdict, sizeof(verdict));
		value(text, "plugin", plugin, sizeof(plugin));
		value(text, "reason", reason, sizeof(reason));
		c.runas = runas;
		c.command = command;
		c.cwd = cwd;
		c.tty = tty;
		ssudo_spooled_send(o, kind, (uint32_t)num(text, "uid"), num(text, "time"), &c,
				   verdict, plugin, reason, num(text, "has_status") != 0,
				   (int)num(text, "status"), (int)num(text, "signal"),
				   num(text, "elapsed_ms"), &a);
		if (a.outcome == SSUDO_YES || a.outcome == SSUDO_NO) {
			/* NO: the broker will never take this file; keeping it
			 * would stop every later one. */
			(void)unlinkat(dirfd, names[i]->d_name, 0);
			done++;
		} else {
			done = -1;
		}
next:
		free(names[i]);
	}
	free(names);
	close(dirfd);
	return done < 0 ? 0 : done;
}
