#include "config.h"

#include "pam_sbx_prompt.h"

#include <security/pam_ext.h>

#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "duration.h"
#include "text.h"
#include "sbxio.h"

#define MAX_ROLES 8
#define POLL_MS 1000

/* One question through the conversation.  Returns the answer (malloc'd,
 * caller frees) or NULL when the conversation cannot prompt: sshd's
 * public-key path, for one, answers every prompt with PAM_CONV_ERR. */
static char *ask(pam_handle_t *pamh, const char *question)
{
	char *resp = NULL;

	if (pam_prompt(pamh, PAM_PROMPT_ECHO_ON, &resp, "%s", question) != PAM_SUCCESS) {
		free(resp);
		return NULL;
	}
	if (!resp)
		resp = strdup("");
	return resp;
}

static void trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		s[--n] = '\0';
	while (s[i] == ' ' || s[i] == '\t')
		i++;
	memmove(s, s + i, n - i + 1);
}

static int is_no(const char *s)
{
	return strcmp(s, "no") == 0 || strcmp(s, "n") == 0 || strcmp(s, "No") == 0 ||
	       strcmp(s, "N") == 0;
}

/* Replace a with a refusal of our own words. */
static void refuse(struct psbx_answer *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void refuse(struct psbx_answer *a, const char *fmt, ...)
{
	va_list ap;

	memset(a, 0, sizeof(*a));
	a->outcome = PSBX_NO;
	va_start(ap, fmt);
	vsnprintf(a->message, sizeof(a->message), fmt, ap);
	va_end(ap);
}

/* Which role: the first by default, one of the offered by name, or none. */
static int choose_role(pam_handle_t *pamh, const struct psbx_answer *a,
		       char roles[][SBX_NAME_MAX + 1], int n, int *pick)
{
	char q[1600], list[600] = "", clean[1100];
	size_t off = 0;
	char *resp;
	int ret = -1;

	for (int i = 0; i < n && off < sizeof(list); i++) {
		int w = snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", roles[i]);

		if (w < 0)
			break;
		off += (size_t)w;
	}
	/* The refusal goes into the prompt itself: OpenSSH may hold an
	 * info message back until after the next prompt. */
	snprintf(q, sizeof(q),
		 "sbx: %s\nsbx: request access now? Role (%s) [%s], or 'no': ",
		 sbx_sanitize(a->message, clean, sizeof(clean)), list, roles[0]);
	resp = ask(pamh, q);
	if (!resp)
		return -1;
	trim(resp);
	if (is_no(resp))
		goto out;
	if (!resp[0]) {
		*pick = 0;
		ret = 0;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if (strcmp(resp, roles[i]) == 0) {
			*pick = i;
			ret = 0;
			goto out;
		}
	}
	ret = -2;
out:
	free(resp);
	return ret;
}

/* Poll the request until it is decided or wait_s runs out. */
static void wait_for_approval(const struct psbx_opts *o, const struct psbx_conn *conn,
			      const struct psbx_login *login, uint32_t id, struct psbx_answer *a)
{
	int64_t end = sbx_mono_ms() + (int64_t)o->wait_s * 1000;

	for (;;) {
		struct psbx_answer st;

		psbx_status(conn, login->user, id, &st);
		if (st.outcome != PSBX_YES) {
			*a = st;
			return;
		}
		if (strcmp(st.state, "active") == 0) {
			psbx_check(conn, login, a);
			return;
		}
		if (strcmp(st.state, "pending") != 0) {
			refuse(a, "request %u was %s", id, st.state);
			return;
		}
		if (sbx_mono_ms() + POLL_MS > end)
			break;
		(void)poll(NULL, 0, POLL_MS);
	}
	refuse(a, "request %u is still waiting for approval; log in again once it is approved "
		  "(sbx-request status %u)", id, id);
}

void psbx_prompt(pam_handle_t *pamh, int flags, const struct psbx_opts *o,
		 const struct psbx_conn *conn, const struct psbx_login *login,
		 struct psbx_answer *a)
{
	char roles[MAX_ROLES][SBX_NAME_MAX + 1];
	char q[1200], dur[32], why[256], user_s[SBX_NAME_MAX + 1], clean[300];
	struct psbx_answer r;
	int64_t def = 0, secs = 0;
	char *resp = NULL, *reason = NULL;
	int n, pick = 0, rc;

	if (flags & PAM_SILENT)
		return;
	n = psbx_eligible_roles(conn, login->user, roles, MAX_ROLES, &def, &r);
	if (r.outcome != PSBX_YES || n == 0)
		return;
	sbx_sanitize(login->user, user_s, sizeof(user_s));
	rc = choose_role(pamh, a, roles, n, &pick);
	if (rc == -1)
		return; /* declined, or no prompting here: the refusal stands */
	if (rc == -2) {
		refuse(a, "that is not one of the roles offered; nothing was requested");
		return;
	}
	if (pick != 0)
		def = 0; /* only the first role's default is known here: let the broker choose */
	sbx_duration_format(def, dur, sizeof(dur));
	snprintf(q, sizeof(q), "sbx: for how long? [%s]: ", def ? dur : "the role's default");
	resp = ask(pamh, q);
	if (!resp)
		goto out;
	trim(resp);
	if (resp[0] && sbx_duration_parse(resp, &secs, why, sizeof(why)) < 0) {
		refuse(a, "%s; nothing was requested", why);
		goto out;
	}
	reason = ask(pamh, "sbx: reason: ");
	if (!reason)
		goto out;
	trim(reason);
	psbx_request(conn, login->user, roles[pick], secs, reason, &r);
	pam_syslog(pamh, LOG_NOTICE, "prompt: user=%s asked for %s: %s%s%s", user_s, roles[pick],
		   psbx_outcome_name(r.outcome), r.request ? ", request " : "",
		   r.request ? r.state : "");
	if (r.outcome != PSBX_YES) {
		*a = r;
		goto out;
	}
	if (strcmp(r.state, "active") == 0) {
		psbx_check(conn, login, a);
		goto out;
	}
	free(resp);
	snprintf(q, sizeof(q),
		 "sbx: request %u for %s is waiting for approval by %s.\n"
		 "sbx: press Enter to wait up to %d s here, or type 'no' to stop waiting: ",
		 r.request, roles[pick],
		 r.approvers[0] ? sbx_sanitize(r.approvers, clean, sizeof(clean)) : "an approver",
		 o->wait_s);
	resp = ask(pamh, q);
	if (resp)
		trim(resp);
	if (!resp || is_no(resp)) {
		refuse(a, "request %u is waiting for approval; log in again once it is approved "
			  "(sbx-request status %u)", r.request, r.request);
		goto out;
	}
	wait_for_approval(o, conn, login, r.request, a);
out:
	free(resp);
	free(reason);
}
