/*
 * The corpus replay: a main() for a fuzz target built without libFuzzer,
 * as make check builds it.  Usage: replay_TARGET DIR...
 *
 * Each directory is replayed in a child process (LLVMFuzzerInitialize,
 * then every regular file in name order through LLVMFuzzerTestOneInput),
 * so a crash, an abort or a sanitizer report is a "not ok" line naming the
 * file, not the end of the harness.  Prints TAP lines without numbers or
 * plan (tests/fuzz/replay.sh prints the plan), one per directory:
 *   ok - frame: 14 inputs from tests/fuzz/corpus/frame
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* Optional in a target, as with libFuzzer. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

/* What the child is doing, for the parent to report if it dies. */
struct progress {
	size_t done;
	char current[PATH_MAX];
};

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int read_file(const char *path, uint8_t **data, size_t *size)
{
	struct stat st;
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = -1;

	*data = NULL;
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		goto out;
	*data = malloc((size_t)st.st_size ? (size_t)st.st_size : 1);
	if (!*data)
		goto out;
	got = st.st_size ? read(fd, *data, (size_t)st.st_size) : 0;
	if (got != st.st_size)
		goto out;
	*size = (size_t)st.st_size;
	ret = 0;
out:
	if (ret < 0) {
		free(*data);
		*data = NULL;
	}
	close(fd);
	return ret;
}

/* In the child: every file of dir.  Exit 0, or 1 when a file cannot be
 * read. */
static int replay_dir(const char *dir, int argc, char **argv, struct progress *pr)
{
	struct dirent **names = NULL;
	int n = scandir(dir, &names, NULL, by_name), ret = 0;

	if (n < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];
		uint8_t *data;
		size_t size;

		if (names[i]->d_name[0] == '.' ||
		    snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name) >= (int)sizeof(path))
			continue;
		if (read_file(path, &data, &size) < 0) {
			struct stat st;

			if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
				continue;
			fprintf(stderr, "replay: cannot read %s\n", path);
			ret = 1;
			continue;
		}
		snprintf(pr->current, sizeof(pr->current), "%s", path);
		LLVMFuzzerTestOneInput(data, size);
		pr->done++;
		free(data);
	}
	pr->current[0] = '\0';
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return ret;
}

int main(int argc, char **argv)
{
	const char *target = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	struct progress *pr;
	int failed = 0;

	if (strncmp(target, "replay_", 7) == 0)
		target += 7;
	if (argc < 2) {
		fprintf(stderr, "usage: %s DIR...\n", argv[0]);
		return 2;
	}
	pr = mmap(NULL, sizeof(*pr), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (pr == MAP_FAILED) {
		perror("replay: mmap");
		return 2;
	}
	for (int i = 1; i < argc; i++) {
		pid_t pid;
		int status = 0;

		memset(pr, 0, sizeof(*pr));
		fflush(stdout);
		pid = fork();
		if (pid < 0) {
			perror("replay: fork");
			return 2;
		}
		if (pid == 0) {
			/* exit(), not _exit(): the target's atexit clean-up and
			 * LeakSanitizer's check run. */
			exit(replay_dir(argv[i], 1, argv, pr));
		}
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
			printf("ok - %s: %zu inputs from %s\n", target, pr->done, argv[i]);
			continue;
		}
		failed = 1;
		if (WIFSIGNALED(status))
			printf("not ok - %s: signal %d", target, WTERMSIG(status));
		else
			printf("not ok - %s: exit status %d", target, WEXITSTATUS(status));
		if (pr->current[0])
			printf(" on %s", pr->current);
		printf(" (%zu inputs of %s passed)\n", pr->done, argv[i]);
	}
	return failed;
}
