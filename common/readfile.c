#include "config.h"

#include "readfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int sbx_read_fd_whole(int fd, size_t size, char **buf, size_t *len, char *why, size_t whylen)
{
	char *b = malloc(size + 1);
	size_t n = 0;

	if (!b) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	while (n < size) {
		ssize_t got = read(fd, b + n, size - n);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(why, whylen, "cannot read: %s", strerror(errno));
			free(b);
			return -1;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	b[n] = '\0';
	*buf = b;
	*len = n;
	return 0;
}
