/*
 * pam_holder: a login session that stays open, for the session tests.
 *
 *   pam_holder SERVICE USER [--ignore-hup] [--child]
 *
 * Runs the PAM account stack and opens a session (run it under
 * pam_wrapper), prints one line per step ("account 0", "open 0", "child
 * PID", "ready"), then holds the session until its stdin reaches EOF or
 * reads "close", closes the session ("close 0") and exits 0.  Before
 * "ready" it prints "sockets N": the sockets it has open (pam_sbx must
 * leave none).  It is the
 * session's leader, as sshd's process is for a real login.  When the
 * broker ends the session, SIGHUP kills it (exit status 129), unless
 * --ignore-hup, in which case only SIGKILL will.  --child also starts a
 * `sleep` below it that must end with the session.
 *
 * Exit: 0 closed normally, 1 a PAM step failed, 2 usage.
 */
#include "config.h"

#include <security/pam_appl.h>

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* Prints what the module says, answers no prompt. */
static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *data)
{
	struct pam_response *r = calloc((size_t)n, sizeof(*r));

	(void)data;
	if (!r)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_ON || msg[i]->msg_style == PAM_PROMPT_ECHO_OFF) {
			free(r);
			return PAM_CONV_ERR;
		}
		printf("msg %s\n", msg[i]->msg);
	}
	*resp = r;
	return PAM_SUCCESS;
}

/* Open sockets of this process: what a module left behind. */
static int count_sockets(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	char path[300], target[64];
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL) {
		ssize_t len;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", de->d_name);
		len = readlink(path, target, sizeof(target) - 1);
		if (len <= 0)
			continue;
		target[len] = '\0';
		if (strncmp(target, "socket:", 7) == 0)
			n++;
	}
	closedir(d);
	return n;
}

static pid_t start_child(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		/* Not the holder's SIGHUP disposition: a real shell's child
		 * dies of a hangup. */
		signal(SIGHUP, SIG_DFL);
		execlp("sleep", "sleep", "600", (char *)NULL);
		_exit(127);
	}
	return pid;
}

int main(int argc, char **argv)
{
	struct pam_conv c = { conv, NULL };
	pam_handle_t *ph = NULL;
	int ignore_hup = 0, child = 0, rc;
	char line[64];

	if (argc < 3) {
		fprintf(stderr, "usage: pam_holder SERVICE USER [--ignore-hup] [--child]\n");
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		if (strcmp(argv[i], "--ignore-hup") == 0)
			ignore_hup = 1;
		else if (strcmp(argv[i], "--child") == 0)
			child = 1;
		else {
			fprintf(stderr, "pam_holder: unknown option %s\n", argv[i]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (child) {
		pid_t pid = start_child();

		if (pid < 0)
			return 1;
		printf("child %d\n", (int)pid);
	}
	if (ignore_hup)
		signal(SIGHUP, SIG_IGN);
	if (pam_start(argv[1], argv[2], &c, &ph) != PAM_SUCCESS)
		return 1;
	pam_set_item(ph, PAM_TTY, "pts/99");
	pam_set_item(ph, PAM_RHOST, "192.0.2.7");
	rc = pam_acct_mgmt(ph, 0);
	printf("account %d\n", rc);
	if (rc != PAM_SUCCESS)
		goto out;
	rc = pam_open_session(ph, 0);
	printf("open %d\n", rc);
	if (rc != PAM_SUCCESS)
		goto out;
	/* pam_sbx keeps no connection open between calls. */
	printf("sockets %d\n", count_sockets());
	printf("ready\n");
	while (fgets(line, sizeof(line), stdin))
		if (strncmp(line, "close", 5) == 0)
			break;
	rc = pam_close_session(ph, 0);
	printf("close %d\n", rc);
out:
	pam_end(ph, rc);
	return rc == PAM_SUCCESS ? 0 : 1;
}
