/*
 * What every fuzz target in tests/fuzz/ shares: libFuzzer's entry points
 * (declared here so the targets build warning-free without libFuzzer, as
 * the corpus replay in make check builds them) and a few helpers.
 *
 * A target aborts (FUZZ_CHECK) when something it checks is wrong: libFuzzer
 * and the replay both count an abort as a crash, and run saves the input.
 */
#ifndef SBX_FUZZ_H
#define SBX_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_CHECK(cond, ...)                                                         \
	do {                                                                          \
		if (!(cond)) {                                                        \
			fprintf(stderr, "fuzz: check failed at %s:%d: %s: ", __FILE__, \
				__LINE__, #cond);                                     \
			fprintf(stderr, __VA_ARGS__);                                 \
			fputc('\n', stderr);                                          \
			abort();                                                      \
		}                                                                     \
	} while (0)

/* Where a target makes its temp dirs: $SBX_FUZZ_TMP (tests/fuzz/run
 * sets it, and removes it afterwards, even when a target crashed), else
 * /dev/shm (the journal syncs every record: tmpfs keeps that cheap), else
 * /tmp. */
static inline const char *fuzz_tmp_base(void)
{
	const char *t = getenv("SBX_FUZZ_TMP");

	if (t && *t)
		return t;
	return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

/* The input as a C string (cut at its first NUL, as any C caller would
 * see it).  The caller frees it. */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	FUZZ_CHECK(s != NULL, "out of memory");
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Cut the input into at most max NUL-terminated pieces at each sep (the
 * last piece keeps any further seps).  Returns how many; each part[i]
 * points into one malloc'd block, *block, which the caller frees. */
static inline size_t fuzz_split(const uint8_t *data, size_t size, char sep, char **part,
				size_t max, char **block)
{
	char *s = fuzz_str(data, size), *p = s;
	size_t n = 0;

	*block = s;
	while (n < max) {
		char *e = n + 1 < max ? memchr(p, sep, (size_t)(s + size - p)) : NULL;

		part[n++] = p;
		if (!e)
			break;
		*e = '\0';
		p = e + 1;
	}
	return n;
}

#endif
