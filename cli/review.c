/*
 * sbxctl review report: the policy and one streaming pass over the
 * journal, offline (docs/review.md).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "journal.h"
#include "output.h"
#include "policy_directory.h"
#include "sbx_ldap.h"
#include "review.h"
#include "text.h"
#include "timeutil.h"

#ifndef SBX_DEFAULT_STATE_DIR
#define SBX_DEFAULT_STATE_DIR "/var/lib/sbx"
#endif

#define US 1000000LL
#define DEFAULT_PERIOD (90LL * 86400)

struct report_ctx {
	struct sbx_review *rv;
	bool oom;
};

static int on_record(const json_t *rec, const char *line, size_t len, void *arg)
{
	struct report_ctx *x = arg;

	(void)line;
	(void)len;
	if (sbx_review_add(x->rv, rec) < 0) {
		x->oom = true;
		return -1;
	}
	return 0;
}

/* The period from --since / --quarter (default: the last 90 days). */
static int period(const struct sbx_cli *c, const struct sbx_review_args *a, int64_t now,
		  struct sbx_review_opts *o)
{
	char san[64];

	o->until_us = now;
	if (a->quarter && a->since)
		return sbx_cli_usage(c, "review report", "--since and --quarter exclude each other");
	if (a->quarter) {
		if (sbx_review_parse_quarter(a->quarter, &o->since_us, &o->until_us) == 0)
			return SBX_EXIT_OK;
		return sbx_cli_usage(c, "review report", "bad --quarter \"%s\": write YEARQN, e.g. "
				     "2026Q4", sbx_sanitize(a->quarter, san, sizeof(san)));
	}
	if (!a->since) {
		o->since_us = now - DEFAULT_PERIOD * US;
		return SBX_EXIT_OK;
	}
	if (sbx_cli_parse_when(a->since, now, &o->since_us) == 0 && o->since_us < now)
		return SBX_EXIT_OK;
	return sbx_cli_usage(c, "review report", "bad --since \"%s\": write a duration meaning "
			     "that long ago (90d), an RFC 3339 time or a date in the past",
			     sbx_sanitize(a->since, san, sizeof(san)));
}

/* --online: the directory's users and groups merged in, as the broker
 * would (so that directory groups show as the source).  Exit code. */
static int merge_directory(const struct sbx_cli *c, struct sbx_policy **p,
			   const struct sbx_directory_conf *conf)
{
	struct sbx_directory_data *d = NULL;
	struct sbx_ldap *s = NULL;
	char why[1024], san[1024];
	int rc = SBX_EXIT_REFUSED;

	if (!conf->enabled)
		return sbx_cli_usage(c, "review report", "--online: the policy has no directory: "
				     "section to read");
	if (!(s = sbx_ldap_new(conf))) {
		sbx_cli_error(c, "out of memory");
		goto out;
	}
	if (sbx_ldap_fetch(s, &d, why, sizeof(why)) != SBX_DIR_OK) {
		sbx_cli_error(c, "--online: the directory: %s", sbx_sanitize(why, san, sizeof(san)));
		goto out;
	}
	if (sbx_policy_merge_directory(p, d, NULL) < 0) {
		sbx_cli_error(c, "out of memory");
		goto out;
	}
	rc = SBX_EXIT_OK;
out:
	sbx_directory_data_free(d);
	sbx_ldap_free(s);
	return rc;
}

/* The report file: 0600 (it names people and what they hold), never
 * through a symlink, and an existing file only when it is the caller's
 * own, regular and with no other name: a file someone else put there
 * (in /tmp, say) would keep its owner and mode, and they would read the
 * report, or a hard link would make root overwrite what it points at. */
static FILE *open_out(const struct sbx_cli *c, const char *path)
{
	struct stat st;
	FILE *f = NULL;
	int fd;

	if (!path)
		return stdout;
	/* O_NONBLOCK: a FIFO planted there does not hold us. */
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0) {
		sbx_cli_error(c, "cannot write %s: %s", path, strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1) {
		sbx_cli_error(c, "will not write %s: it exists and is %s; remove it or choose "
			      "another --out", path, !S_ISREG(st.st_mode) ? "not a regular file"
			      : st.st_uid != geteuid() ? "another user's" : "a hard link");
		goto fail;
	}
	if (ftruncate(fd, 0) < 0 || fchmod(fd, 0600) < 0 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0 || !(f = fdopen(fd, "w"))) {
		sbx_cli_error(c, "cannot write %s: %s", path, strerror(errno));
		goto fail;
	}
	return f;
fail:
	if (fd >= 0)
		close(fd);
	return NULL;
}

int sbx_review_report(const struct sbx_cli *c, const struct sbx_review_args *a)
{
	struct sbx_policy_errors errs = { 0 };
	struct sbx_settings settings;
	struct sbx_policy *p = NULL;
	struct sbx_review_opts o = { 0 };
	struct report_ctx x = { 0 };
	enum sbx_review_format fmt = SBX_REVIEW_MD;
	const char *dir;
	char err[1024] = "", san[1024];
	int64_t now = a->now_us ? a->now_us : sbx_now_us();
	FILE *out = NULL;
	int rc;

	if (a->format && sbx_review_parse_format(a->format, &fmt) < 0)
		return sbx_cli_usage(c, "review report", "bad --format \"%s\": use md, csv, json or "
				     "html", sbx_sanitize(a->format, san, sizeof(san)));
	rc = period(c, a, now, &o);
	if (rc)
		return rc;
	if (sbx_policy_load_file(a->config, &p, &settings, &errs) < 0) {
		sbx_policy_errors_print(stderr, &errs);
		sbx_cli_error(c, "%s is not a valid policy (see `sbxctl policy check %s`)", a->config,
			      a->config);
		rc = SBX_EXIT_USAGE;
		goto out;
	}
	if (a->online && (rc = merge_directory(c, &p, &settings.directory)) != SBX_EXIT_OK)
		goto out;
	o.role = a->role;
	o.user = a->user;
	o.now_us = now < o.until_us ? now : o.until_us;
	o.unused_after = settings.review.unused_after;
	dir = a->state_dir ? a->state_dir
	      : p->broker.state_dir ? p->broker.state_dir : SBX_DEFAULT_STATE_DIR;
	rc = sbx_audit_check_dir(c, dir);
	if (rc)
		goto out;
	if (!(x.rv = sbx_review_new(p, &o)))
		goto oom;
	if (sbx_journal_foreach(dir, on_record, &x, err, sizeof(err)) < 0) {
		if (x.oom)
			goto oom;
		sbx_cli_error(c, "reading the journal in %s failed: %s", dir,
			      sbx_sanitize(err[0] ? err : "unknown error", san, sizeof(san)));
		rc = SBX_EXIT_REFUSED;
		goto out;
	}
	if (sbx_review_finish(x.rv) < 0)
		goto oom;
	if (!(out = open_out(c, a->out))) {
		rc = SBX_EXIT_USAGE;
		goto out;
	}
	if (sbx_review_write(out, x.rv, fmt) < 0 || fflush(out) != 0) {
		sbx_cli_error(c, "writing the report to %s failed: %s", a->out ? a->out : "stdout",
			      strerror(errno));
		rc = SBX_EXIT_REFUSED;
		goto out;
	}
	rc = SBX_EXIT_OK;
	goto out;
oom:
	sbx_cli_error(c, "out of memory");
	rc = SBX_EXIT_REFUSED;
out:
	if (out && out != stdout && fclose(out) != 0 && rc == SBX_EXIT_OK) {
		sbx_cli_error(c, "writing %s failed: %s", a->out, strerror(errno));
		rc = SBX_EXIT_REFUSED;
	}
	sbx_review_free(x.rv);
	sbx_policy_free(p);
	sbx_policy_errors_free(&errs);
	return rc;
}

/* ---- decisions and status (the broker) ---- */

int sbx_review_decide(const struct sbx_cli *c, bool revoke, const char *user, const char *role,
		      const char *comment)
{
	struct sbx_cli_reply rep = { 0 };
	char san[SBX_STR_MAX + 1];
	sbx_msg m = { 0 };
	json_t *j;
	int rc;

	if (sbx_cli_arg_name(c, "user", user) || sbx_cli_arg_name(c, "role", role))
		return SBX_EXIT_USAGE;
	if (!comment || !comment[0])
		return sbx_cli_usage(c, revoke ? "review revoke" : "review certify",
				     "a review decision needs --comment TEXT (the auditors read it)");
	if (sbx_cli_arg_text(c, "--comment", comment))
		return SBX_EXIT_USAGE;
	sbx_cli_msg_init(c, &m, revoke ? SBX_OP_REVIEW_REVOKE : SBX_OP_REVIEW_CERTIFY);
	sbx_msg_put_str(&m, SBX_F_USER, user);
	sbx_msg_put_str(&m, SBX_F_ROLE, role);
	sbx_msg_put_str(&m, SBX_F_COMMENT, comment);
	rc = sbx_cli_call(c, &m, &rep);
	if (rc == SBX_EXIT_OK && c->json) {
		j = json_pack("{s:s, s:s, s:s, s:s}", "decision", revoke ? "revoked" : "certified",
			      "user", user, "role", role, "message", rep.message);
		rc = j ? sbx_cli_print_json(c, j) : SBX_EXIT_REFUSED;
		json_decref(j);
	} else if (rc == SBX_EXIT_OK) {
		printf("%s\n", sbx_sanitize(rep.message, san, sizeof(san)));
	}
	sbx_cli_reply_free(&rep);
	sbx_msg_free(&m);
	return rc;
}

static const char *jstr(const json_t *o, const char *k, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : dflt;
}

int sbx_review_status(const struct sbx_cli *c)
{
	char a[SBX_STR_MAX + 1], b[64], d[64], e[64];
	json_t *roles = NULL, *r;
	sbx_msg m = { 0 };
	size_t i;
	int rc;

	sbx_cli_msg_init(c, &m, SBX_OP_REVIEW_STATUS);
	rc = sbx_cli_call_json(c, &m, SBX_F_REVIEWINFO, true, SBX_OUT_REVIEWINFO, &roles);
	sbx_msg_free(&m);
	if (rc != SBX_EXIT_OK)
		return rc;
	if (c->json) {
		rc = sbx_cli_print_json(c, roles);
		json_decref(roles);
		return rc;
	}
	if (!json_array_size(roles))
		printf("no role has a review_every: nothing is reviewed\n");
	else
		printf("%-24s %-10s %-8s %-21s %-21s %s\n", "ROLE", "STATE", "EVERY", "LAST REVIEW",
		       "NEXT DUE", "MISSED");
	json_array_foreach(roles, i, r) {
		sbx_sanitize(jstr(r, "role", "?"), a, sizeof(a));
		snprintf(b, sizeof(b), "%s", jstr(r, "review_every_text", "-"));
		snprintf(d, sizeof(d), "%s", jstr(r, "last_review", "never"));
		snprintf(e, sizeof(e), "%s", jstr(r, "next_due", "-"));
		printf("%-24s %-10s %-8s %-21s %-21s %s\n", a, jstr(r, "state", "?"), b, d, e,
		       jstr(r, "on_missed_review", "-"));
	}
	json_decref(roles);
	return SBX_EXIT_OK;
}
