/*
 * Password checks for the dashboard's sign-in: pam_authenticate and
 * pam_acct_mgmt of service sbx-web (so the site decides how: pam_unix,
 * pam_sss, a second factor that needs no prompt), each on its own
 * detached thread, because a PAM module may take as long as it likes and
 * the loop must not wait for it.  The loop polls the job; when it stops
 * caring (deadline, connection gone) it abandons the job and the thread
 * frees it when PAM returns.
 */
#include "config.h"

#include "web_int.h"

#include <pthread.h>
#include <security/pam_appl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void job_free(struct pam_job *j)
{
	if (j->password) {
		memset(j->password, 0, strlen(j->password));
		free(j->password);
	}
	pthread_mutex_destroy(&j->lock);
	free(j);
}

/* Answers every prompt that hides its echo with the password; anything
 * else PAM says or asks is not answered (no prompt to show it on). */
static int conv(int n, const struct pam_message **msg, struct pam_response **resp, void *arg)
{
	struct pam_job *j = arg;
	struct pam_response *r;

	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	r = calloc((size_t)n, sizeof(*r));
	if (!r)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		if (msg[i]->msg_style != PAM_PROMPT_ECHO_OFF)
			continue;
		r[i].resp = strdup(j->password);
		if (!r[i].resp) {
			for (int k = 0; k < i; k++)
				free(r[k].resp);
			free(r);
			return PAM_BUF_ERR;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

static void *run(void *arg)
{
	struct pam_job *j = arg;
	struct pam_conv c = { conv, j };
	pam_handle_t *h = NULL;
	int rc;
	bool abandoned;

	rc = pam_start(SBX_WEB_PAM_SERVICE, j->user, &c, &h);
	if (rc == PAM_SUCCESS)
		rc = pam_set_item(h, PAM_RHOST, j->rhost);
	if (rc == PAM_SUCCESS)
		rc = pam_set_item(h, PAM_RUSER, j->user);
	if (rc == PAM_SUCCESS)
		rc = pam_authenticate(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	if (rc == PAM_SUCCESS)
		rc = pam_acct_mgmt(h, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
	pthread_mutex_lock(&j->lock);
	j->ok = rc == PAM_SUCCESS;
	snprintf(j->why, sizeof(j->why), "PAM (service %s): %s", SBX_WEB_PAM_SERVICE,
		 h ? pam_strerror(h, rc) : "cannot start");
	memset(j->password, 0, strlen(j->password));
	j->done = true;
	abandoned = j->abandoned;
	pthread_mutex_unlock(&j->lock);
	if (h)
		pam_end(h, rc);
	if (abandoned)
		job_free(j);
	return NULL;
}

struct pam_job *sbx_web_pam_start(const char *user, const char *password, const char *rhost)
{
	struct pam_job *j = calloc(1, sizeof(*j));
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t th;
	int rc;

	if (!j)
		return NULL;
	snprintf(j->user, sizeof(j->user), "%s", user);
	snprintf(j->rhost, sizeof(j->rhost), "%s", rhost);
	j->password = strdup(password);
	if (!j->password || pthread_mutex_init(&j->lock, NULL) != 0) {
		free(j->password);
		free(j);
		return NULL;
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* Signals stay with the loop thread (signalfd). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&th, &attr, run, j);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		job_free(j);
		return NULL;
	}
	return j;
}

bool sbx_web_pam_poll(struct pam_job *j, bool *ok, char *why, size_t whylen)
{
	bool done;

	pthread_mutex_lock(&j->lock);
	done = j->done;
	if (done) {
		*ok = j->ok;
		snprintf(why, whylen, "%s", j->why);
	}
	pthread_mutex_unlock(&j->lock);
	return done;
}

void sbx_web_pam_abandon(struct pam_job *j)
{
	bool done;

	if (!j)
		return;
	pthread_mutex_lock(&j->lock);
	done = j->done;
	j->abandoned = true;
	pthread_mutex_unlock(&j->lock);
	if (done)
		job_free(j);
}
