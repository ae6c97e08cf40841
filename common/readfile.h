/*
 * Reading a whole file whose size fstat gave, for the daemon side (the
 * policy file, the files the drift scan looks at).  libc only.
 */
#ifndef SBX_READFILE_H
#define SBX_READFILE_H

#include <stddef.h>

/* Read up to size bytes from fd (what fstat said it holds: a file that
 * shrinks meanwhile is read as far as it goes, and *len says how far)
 * into a malloc'd buffer with a NUL after them.  0, or -1 with why ("out
 * of memory", "cannot read: ..."). */
int sbx_read_fd_whole(int fd, size_t size, char **buf, size_t *len, char *why, size_t whylen);

#endif
