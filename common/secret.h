/*
 * Secret files: the LDAP bind password, the Slack webhook URL and signing
 * secret, the fleet database's password.  Secrets never come from argv,
 * the policy itself or the environment, only from files that only their
 * owner can read.  Libc only.
 */
#ifndef SBX_SECRET_H
#define SBX_SECRET_H

#include <stddef.h>

/* The largest secret file sbx reads. */
#define SBX_SECRET_MAX 4096

/* Read the secret in path: not a symbolic link, a regular file, owned by
 * root or by this process's effective uid, neither readable nor writable
 * by group or others, at most SBX_SECRET_MAX bytes (and less than cap),
 * one line without control characters; trailing blanks and newlines are
 * dropped.  what names the setting in messages ("bind_password_file").
 * Returns 0 with the text in buf (NUL-terminated) and its length in
 * *len, or -1 with why set (why never contains the secret, and buf is
 * wiped). */
int sbx_secret_read(const char *what, const char *path, char *buf, size_t cap, size_t *len,
		    char *why, size_t whylen);

#endif
