/*
 * sbxctl: for approvers and admins.  Decide on requests, look at grants,
 * ask the broker the PAM module's question, check and explain policies
 * and read the journal offline (see docs/cli.md).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "audit_export.h"
#include "audit_tail.h"
#include "client.h"
#include "drift_cmd.h"
#include "token_cmd.h"
#include "fleet_cmd.h"
#include "output.h"
#include "policy.h"
#include "review.h"
#include "sbx_ldap.h"
#include "timeutil.h"
#include "text.h"

#ifndef SBX_DEFAULT_STATE_DIR
#define SBX_DEFAULT_STATE_DIR "/var/lib/sbx"
#endif
#ifndef SBX_DEFAULT_CONFIG
#define SBX_DEFAULT_CONFIG "/etc/sbx/policy.yaml"
#endif

enum {
	O_COMMENT,
	O_FOR,
	O_REASON,
	O_USER,
	O_ALL,
	O_SERVICE,
	O_RHOST,
	O_TTY,
	O_CONFIG,
	O_STATE_DIR,
	O_ROLE,
	O_EVENT,
	O_SINCE,
	O_UNTIL,
	O_FORMAT,
	O_ONLINE,
	O_ID,
	O_KEY,
	O_OUT,
	O_FORCE,
	O_NO_HOST_KEY,
	O_STANDALONE,
	O_QUARTER,
	O_CHECKPOINT,
	O_HOST,
	O_OUTCOME,
	O_ACTOR,
	O_FOLLOW,
	O_LINES,
	O_GRANT,
	N_OPTS,
};

static const struct sbx_cli_opt opts[N_OPTS] = {
	[O_COMMENT] = { "comment", true },
	[O_FOR] = { "for", true },
	[O_REASON] = { "reason", true },
	[O_USER] = { "user", true },
	[O_ALL] = { "all", false },
	[O_SERVICE] = { "service", true },
	[O_RHOST] = { "rhost", true },
	[O_TTY] = { "tty", true },
	[O_CONFIG] = { "config", true },
	[O_STATE_DIR] = { "state-dir", true },
	[O_ROLE] = { "role", true },
	[O_EVENT] = { "event", true },
	[O_SINCE] = { "since", true },
	[O_UNTIL] = { "until", true },
	[O_FORMAT] = { "format", true },
	[O_ONLINE] = { "online", false },
	[O_ID] = { "id", true },
	[O_KEY] = { "key", true },
	[O_OUT] = { "out", true },
	[O_FORCE] = { "force", false },
	[O_NO_HOST_KEY] = { "no-host-key", false },
	[O_STANDALONE] = { "standalone", false },
	[O_QUARTER] = { "quarter", true },
	[O_CHECKPOINT] = { "checkpoint", true },
	[O_HOST] = { "host", true },
	[O_OUTCOME] = { "outcome", true },
	[O_ACTOR] = { "actor", true },
	[O_FOLLOW] = { "follow", false, 'f' },
	[O_LINES] = { "lines", true, 'n' },
	[O_GRANT] = { "grant", true },
};

#define BIT(o) SBX_CLI_OPT_BIT(o)

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

/* ------------------------------------------------------------------ */
/* Requests and grants                                                 */

static int print_requests(const struct sbx_cli *c, const json_t *reqs,
			  const enum sbx_out_col *cols, size_t ncols, const char *none)
{
	if (c->json)
		return sbx_cli_print_json(c, reqs);
	if (json_array_size(reqs) == 0) {
		puts(none);
		return SBX_EXIT_OK;
	}
	if (sbx_out_print_request_table(stdout, reqs, cols, ncols) < 0) {
		sbx_cli_error(c, "out of memory");
		return SBX_EXIT_REFUSED;
	}
	return SBX_EXIT_OK;
}

static int cmd_pending(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	static const enum sbx_out_col cols[] = { SBX_COL_ID, SBX_COL_USER, SBX_COL_ROLE,
						 SBX_COL_FOR, SBX_COL_LAPSES, SBX_COL_REASON };
	json_t *reqs = NULL;
	int rc;

	(void)a;
	rc = sbx_cli_call_pages(c, SBX_OP_PENDING, 0, NULL, &reqs);
	if (rc == SBX_EXIT_OK)
		rc = print_requests(c, reqs, cols, 6, "no pending requests you may decide");
	json_decref(reqs);
	return rc;
}

static int cmd_grants(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	static const enum sbx_out_col cols[] = { SBX_COL_ID, SBX_COL_USER, SBX_COL_ROLE,
						 SBX_COL_GROUP, SBX_COL_STATE, SBX_COL_WHEN,
						 SBX_COL_REASON };
	bool all = a->val[O_ALL] != NULL;
	json_t *reqs = NULL;
	int rc;

	if (a->val[O_USER] && sbx_cli_arg_name(c, "user", a->val[O_USER]))
		return SBX_EXIT_USAGE;
	rc = sbx_cli_call_pages(c, SBX_OP_GRANTS, all ? SBX_LIST_ALL : 0, a->val[O_USER], &reqs);
	if (rc == SBX_EXIT_OK)
		rc = print_requests(c, reqs, cols, sizeof(cols) / sizeof(cols[0]),
				    all ? "no grants" : "no active grants");
	json_decref(reqs);
	return rc;
}

/* approve, deny, revoke: ID and a few optional fields, the request back. */
static int decide(const struct sbx_cli *c, const struct sbx_cli_args *a, uint16_t op)
{
	struct sbx_cli_about q;
	json_t *req = NULL;
	int rc = sbx_cli_parse_about(c, a, O_REASON, O_COMMENT, O_FOR, &q);

	if (rc)
		return rc;
	rc = sbx_cli_call_about(c, op, &q, &req);
	if (rc == SBX_EXIT_OK && c->json)
		rc = sbx_cli_print_json(c, req);
	else if (rc == SBX_EXIT_OK)
		sbx_out_print_request(stdout, req);
	json_decref(req);
	return rc;
}

static int cmd_approve(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	return decide(c, a, SBX_OP_APPROVE);
}

static int cmd_deny(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	return decide(c, a, SBX_OP_DENY);
}

static int cmd_revoke(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	return decide(c, a, SBX_OP_REVOKE);
}

/* ------------------------------------------------------------------ */
/* Decisions and the broker                                            */

static int cmd_check(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	const char *user = a->pos[0];
	json_t *res = NULL;
	sbx_msg m = { 0 };
	char msg[SBX_STR_MAX + 1];
	bool allowed;
	int rc;

	if (sbx_cli_arg_name(c, "user", user))
		return SBX_EXIT_USAGE;
	sbx_cli_msg_init(c, &m, SBX_OP_CHECK);
	/* No SBX_CHECK_RECORD: a dry run leaves no access.checked record. */
	sbx_msg_put_str(&m, SBX_F_USER, user);
	sbx_msg_put_str_opt(&m, SBX_F_SERVICE, a->val[O_SERVICE]);
	sbx_msg_put_str_opt(&m, SBX_F_RHOST, a->val[O_RHOST]);
	sbx_msg_put_str_opt(&m, SBX_F_TTY, a->val[O_TTY]);
	rc = sbx_cli_call_json(c, &m, 0, false, SBX_OUT_CHECK, &res);
	if (rc)
		goto out;
	if (json_is_null(json_object_get(res, "user")))
		json_object_set_new(res, "user", json_string(user));
	allowed = json_is_true(json_object_get(res, "allowed"));
	if (c->json) {
		rc = sbx_cli_print_json(c, res);
	} else {
		const char *why = sbx_out_str(res, "reason");

		printf("%s: %s\n", allowed ? "allowed" : "denied",
		       why && *why ? sbx_sanitize(why, msg, sizeof(msg))
				   : (allowed ? "the broker allows it" : "the broker says no"));
	}
	if (rc == SBX_EXIT_OK && !allowed)
		rc = SBX_EXIT_REFUSED;
out:
	json_decref(res);
	sbx_msg_free(&m);
	return rc;
}

static void ping_line(const char *label, const json_t *j, const char *key, const char *prefix)
{
	char buf[SBX_STR_MAX + 1];
	const char *v = sbx_out_str(j, key);

	if (v)
		printf("%-9s %s%s\n", label, prefix, sbx_sanitize(v, buf, sizeof(buf)));
	else
		printf("%-9s (not said)\n", label);
}

static int cmd_status(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	char buf[SBX_STR_MAX + 1];
	json_t *res = NULL;
	sbx_msg m = { 0 };
	const char *degraded;
	bool stale, in_fleet, fleet_down;
	int rc;

	(void)a;
	sbx_cli_msg_init(c, &m, SBX_OP_PING);
	rc = sbx_cli_call_json(c, &m, 0, false, SBX_OUT_PING, &res);
	if (rc)
		goto out;
	json_object_set_new(res, "socket", json_string(c->socket));
	degraded = sbx_out_str(res, "degraded");
	if (degraded && !*degraded)
		degraded = NULL;
	stale = json_is_true(json_object_get(res, "fleet_stale"));
	in_fleet = sbx_out_str(res, "fleet") != NULL;
	fleet_down = in_fleet && !json_is_true(json_object_get(res, "fleet_writable"));
	if (c->json) {
		rc = sbx_cli_print_json(c, res);
	} else {
		ping_line("broker:", res, "version", "sbx-brokerd ");
		ping_line("host:", res, "host", "");
		ping_line("socket:", res, "socket", "");
		ping_line("policy:", res, "policy_sha256", "sha256 ");
		printf("%-9s last seq %lld\n", "journal:",
		       (long long)json_integer_value(json_object_get(res, "seq")));
		if (in_fleet)
			ping_line("fleet:", res, "fleet", "");
		if (degraded)
			printf("%-9s DEGRADED, refusing changes: %s\n", "state:",
			       sbx_sanitize(degraded, buf, sizeof(buf)));
		else if (fleet_down)
			printf("%-9s refusing changes: the fleet's log cannot be written (see fleet:)\n",
			       "state:");
		else if (stale)
			printf("%-9s STALE: this host's copy of the fleet's log is older than "
			       "fleet.max_stale\n", "state:");
		else
			printf("%-9s ok\n", "state:");
	}
	if (rc == SBX_EXIT_OK && (degraded || stale || fleet_down))
		rc = SBX_EXIT_REFUSED;
out:
	json_decref(res);
	sbx_msg_free(&m);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Policy                                                              */

static json_t *errors_json(const struct sbx_policy_errors *e)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < e->n; i++) {
		if (json_array_append_new(a, json_pack("{s:i, s:i, s:s}", "line", e->v[i].line,
						       "col", e->v[i].col, "message",
						       e->v[i].msg ? e->v[i].msg : "")) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

/* Each line of text as an error at line 0 (what --online found). */
static int errors_append_lines(struct sbx_policy_errors *e, const char *file, const char *text)
{
	struct sbx_policy_error *v;
	const char *end;

	for (; text && *text; text = *end ? end + 1 : end) {
		end = strchr(text, '\n');
		if (!end)
			end = text + strlen(text);
		v = realloc(e->v, (e->n + 1) * sizeof(*v));
		if (!v)
			return -1;
		e->v = v;
		v[e->n] = (struct sbx_policy_error){ 0, 0, strndup(text, (size_t)(end - text)) };
		if (!v[e->n].msg)
			return -1;
		e->n++;
		if (!e->file && !(e->file = strdup(file)))
			return -1;
	}
	return 0;
}

/* Load a policy for an offline command (and its other sections when
 * settings is not NULL); print its errors when it fails. */
static int load_policy(const struct sbx_cli *c, const char *path, struct sbx_policy **p,
		       struct sbx_settings *settings)
{
	struct sbx_policy_errors errs = { 0 };
	int rc = SBX_EXIT_OK;

	*p = NULL;
	if (sbx_policy_load_file(path, p, settings, &errs) < 0) {
		sbx_policy_errors_print(stderr, &errs);
		sbx_cli_error(c, "%s is not a valid policy (see `sbxctl policy check %s`)", path,
			      path);
		sbx_policy_free(*p);
		*p = NULL;
		rc = SBX_EXIT_USAGE;
	}
	sbx_policy_errors_free(&errs);
	return rc;
}

/* --online: bind and read the directory as the broker would, then check
 * what only the directory can tell.  0, or -1 with the problems in err. */
static int check_online(const struct sbx_policy *p, const struct sbx_directory_conf *conf,
			char *err, size_t errlen)
{
	struct sbx_directory_data *d = NULL;
	struct sbx_ldap *s = NULL;
	char why[1024];
	int ret = -1;

	if (!conf->enabled)
		return 0;
	s = sbx_ldap_new(conf);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	if (sbx_ldap_fetch(s, &d, why, sizeof(why)) != SBX_DIR_OK) {
		snprintf(err, errlen, "directory: %s", why);
		goto out;
	}
	ret = sbx_policy_check_directory(p, d, err, errlen);
out:
	sbx_directory_data_free(d);
	sbx_ldap_free(s);
	return ret;
}

/* The warnings of a valid policy (policy.h), against this host's
 * /etc/group: read as a file, not through NSS, which would answer with
 * sbx's own groups.  -1 when out of memory. */
static int policy_warnings(const struct sbx_policy *p, struct sbx_policy_errors *w)
{
	FILE *groups = fopen("/etc/group", "re");
	int rc = sbx_policy_warnings(p, groups, w);

	if (groups)
		fclose(groups);
	return rc < 0 ? -1 : 0;
}

static json_t *warnings_json(const struct sbx_policy_errors *w)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < w->n; i++) {
		if (json_array_append_new(a, json_string(w->v[i].msg)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

static int cmd_policy_check(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	json_t *all = c->json ? json_array() : NULL;
	int rc = SBX_EXIT_OK;

	if (c->json && !all) {
		sbx_cli_error(c, "out of memory");
		return SBX_EXIT_REFUSED;
	}
	for (int i = 0; i < a->npos; i++) {
		struct sbx_policy_errors errs = { 0 }, warns = { 0 };
		struct sbx_policy *p = NULL;
		const char *file = a->pos[i];
		struct sbx_settings settings;
		bool ok = sbx_policy_load_file(file, &p, &settings, &errs) == 0;
		char online[4096] = "";

		if (ok && a->val[O_ONLINE] &&
		    check_online(p, &settings.directory, online, sizeof(online)) < 0) {
			ok = false;
			(void)errors_append_lines(&errs, file, online);
		}

		if (ok && policy_warnings(p, &warns) < 0) {
			sbx_cli_error(c, "out of memory");
			rc = SBX_EXIT_REFUSED;
		}
		if (!ok)
			rc = SBX_EXIT_USAGE;
		if (c->json) {
			json_array_append_new(all, json_pack("{s:s, s:b, s:o, s:o}", "file", file,
							     "ok", ok, "errors", errors_json(&errs),
							     "warnings", warnings_json(&warns)));
		} else if (ok) {
			printf("%s: ok\n", file);
			sbx_policy_warnings_print(stderr, &warns);
		} else {
			sbx_policy_errors_print(stderr, &errs);
		}
		sbx_policy_free(p);
		sbx_policy_errors_free(&errs);
		sbx_policy_errors_free(&warns);
	}
	if (c->json && sbx_cli_print_json(c, all) != SBX_EXIT_OK)
		rc = SBX_EXIT_REFUSED;
	json_decref(all);
	return rc;
}

static const char *how_text(enum sbx_membership m)
{
	switch (m) {
	case SBX_MEMBER_STANDING: return "standing";
	case SBX_MEMBER_ELIGIBLE: return "eligible";
	case SBX_MEMBER_NONE: break;
	}
	return "none";
}

/* As the broker words it: the group's name, or "listed by name". */
static const char *via_text(const char *group)
{
	return group ? group : "listed by name";
}

/* Why user may or may not log in, from the policy alone. */
static json_t *offline_reason(const struct sbx_policy *p, const char *user,
			      const struct sbx_role *login, const char *login_via,
			      const json_t *roles)
{
	char buf[1024];
	size_t off = 0;
	int n_eligible = 0;

	if (login) {
		snprintf(buf, sizeof(buf), "%s may log in on %s: standing member of %s (%s%s)", user,
			 p->broker.host, login->name, login_via ? "group " : "listed by name",
			 login_via ? login_via : "");
		return json_string(buf);
	}
	off = (size_t)snprintf(buf, sizeof(buf), "%s may not log in on %s without a grant: no "
			       "standing role here", user, p->broker.host);
	for (size_t i = 0; i < json_array_size(roles) && off < sizeof(buf); i++) {
		const json_t *m = json_array_get(roles, i);

		if (!str_eq(sbx_out_str(m, "how"), "eligible") ||
		    !json_is_true(json_object_get(m, "host_match")))
			continue;
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s",
					n_eligible++ ? ", " : "; may request ",
					sbx_out_str(m, "role"));
	}
	if (off < sizeof(buf))
		snprintf(buf + off, sizeof(buf) - off, " (grants are not known offline)");
	return json_string(buf);
}

static json_t *explain_offline(const struct sbx_policy *p, const char *user)
{
	const struct sbx_role *login;
	const char *login_via = NULL;
	json_t *roles = json_array(), *res = NULL;

	if (!roles)
		return NULL;
	for (size_t i = 0; i < p->n_roles; i++) {
		const struct sbx_role *r = &p->roles[i];
		const char *via = NULL;
		enum sbx_membership m = sbx_policy_membership(p, r, user, &via);

		if (m == SBX_MEMBER_NONE)
			continue;
		if (json_array_append_new(roles, json_pack("{s:s, s:s, s:s, s:b, s:b, s:n}",
							   "role", r->name, "how", how_text(m),
							   "via", via_text(via), "login",
							   m == SBX_MEMBER_STANDING && r->matches_host,
							   "host_match", r->matches_host,
							   "expires_at")) < 0)
			goto fail;
	}
	login = sbx_policy_standing_login(p, user, &login_via);
	res = json_pack("{s:s, s:b, s:o, s:s, s:O, s:b, s:s}", "user", user, "allowed",
			login != NULL, "reason", offline_reason(p, user, login, login_via, roles),
			"host", p->broker.host, "roles", roles, "offline", 1, "note",
			"grants are not known offline: without --config the broker answers, "
			"grants included");
fail:
	json_decref(roles);
	return res;
}

static int print_explain(const struct sbx_cli *c, const json_t *res)
{
	char buf[SBX_STR_MAX + 1];
	const json_t *roles = json_object_get(res, "roles");
	const char *why = sbx_out_str(res, "reason");

	if (c->json)
		return sbx_cli_print_json(c, res);
	printf("%s: %s\n", json_is_true(json_object_get(res, "allowed")) ? "allowed" : "denied",
	       why ? sbx_sanitize(why, buf, sizeof(buf)) : "");
	if (json_array_size(roles) == 0)
		printf("%s has no role in this policy\n",
		       sbx_sanitize(sbx_out_str(res, "user") ?: "?", buf, sizeof(buf)));
	else if (sbx_out_print_memberships(stdout, roles) < 0)
		return SBX_EXIT_REFUSED;
	if (sbx_out_str(res, "note"))
		printf("note: %s\n", sbx_out_str(res, "note"));
	return SBX_EXIT_OK;
}

static int cmd_policy_explain(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	const char *user = a->pos[0];
	struct sbx_policy *p = NULL;
	json_t *res = NULL;
	sbx_msg m = { 0 };
	int rc;

	if (sbx_cli_arg_name(c, "user", user))
		return SBX_EXIT_USAGE;
	if (a->val[O_CONFIG]) {
		rc = load_policy(c, a->val[O_CONFIG], &p, NULL);
		if (rc)
			goto out;
		res = explain_offline(p, user);
		if (!res) {
			sbx_cli_error(c, "out of memory");
			rc = SBX_EXIT_REFUSED;
			goto out;
		}
	} else {
		sbx_cli_msg_init(c, &m, SBX_OP_EXPLAIN);
		sbx_msg_put_str(&m, SBX_F_USER, user);
		rc = sbx_cli_call_json(c, &m, 0, false, SBX_OUT_EXPLAIN, &res);
		if (rc)
			goto out;
		if (json_is_null(json_object_get(res, "user")))
			json_object_set_new(res, "user", json_string(user));
		json_object_set_new(res, "offline", json_false());
	}
	rc = print_explain(c, res);
out:
	json_decref(res);
	sbx_msg_free(&m);
	sbx_policy_free(p);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Audit                                                               */

/* --state-dir, else the policy's broker.state_dir (--config), else the
 * built-in default.  *out is malloc'd. */
static int state_dir_for(const struct sbx_cli *c, const struct sbx_cli_args *a, char **out)
{
	struct sbx_policy *p = NULL;
	int rc;

	*out = NULL;
	if (a->val[O_STATE_DIR]) {
		*out = strdup(a->val[O_STATE_DIR]);
	} else if (a->val[O_CONFIG]) {
		rc = load_policy(c, a->val[O_CONFIG], &p, NULL);
		if (rc)
			return rc;
		*out = strdup(p->broker.state_dir ? p->broker.state_dir : SBX_DEFAULT_STATE_DIR);
		sbx_policy_free(p);
	} else {
		*out = strdup(SBX_DEFAULT_STATE_DIR);
	}
	if (!*out) {
		sbx_cli_error(c, "out of memory");
		return SBX_EXIT_REFUSED;
	}
	return SBX_EXIT_OK;
}

static int cmd_audit_verify(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	char *dir = NULL;
	int rc = state_dir_for(c, a, &dir);

	const char **cps = NULL;
	size_t ncps = 0;

	/* --checkpoint may be given again and again. */
	if (rc == SBX_EXIT_OK && a->val[O_CHECKPOINT]) {
		cps = calloc((size_t)a->nocc + 1, sizeof(*cps));
		if (!cps) {
			sbx_cli_error(c, "out of memory");
			rc = SBX_EXIT_REFUSED;
		}
		for (int k = 0; cps && k < a->nocc; k++)
			if (a->occ_opt[k] == O_CHECKPOINT)
				cps[ncps++] = a->occ[k];
	}
	if (rc == SBX_EXIT_OK && a->val[O_NO_HOST_KEY] && !a->val[O_KEY])
		rc = sbx_cli_usage(c, "audit verify", "--no-host-key goes with --key");
	else if (rc == SBX_EXIT_OK && a->val[O_STANDALONE] && !a->val[O_KEY])
		rc = sbx_cli_usage(c, "audit verify", "--standalone goes with --key");
	else if (rc == SBX_EXIT_OK)
		rc = sbx_audit_verify_run(c, dir, a->val[O_KEY], a->val[O_NO_HOST_KEY] != NULL,
					  a->val[O_STANDALONE] != NULL, cps, ncps);
	free(cps);
	free(dir);
	return rc;
}

static int cmd_audit_init(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	char *dir = NULL;
	int rc = state_dir_for(c, a, &dir);

	if (rc == SBX_EXIT_OK)
		rc = sbx_audit_init(c, dir, a->val[O_OUT], a->val[O_FORCE] != NULL);
	free(dir);
	return rc;
}

static int when_arg(const struct sbx_cli *c, const char *opt, const char *s, int64_t *us)
{
	char san[64];

	if (sbx_cli_parse_when(s, sbx_now_us(), us) == 0)
		return SBX_EXIT_OK;
	return sbx_cli_usage(c, "audit query", "bad time \"%s\" for %s: write an RFC 3339 time "
			     "(2026-11-28T09:00:00Z), a date (2026-11-28) or a duration meaning "
			     "that long ago (2h, 1d)", sbx_sanitize(s, san, sizeof(san)), opt);
}

/* The filters audit query takes (tail sends the same to the broker). */
static int audit_filter(const struct sbx_cli *c, const char *cmd, const struct sbx_cli_args *a,
			struct sbx_rec_filter *f)
{
	char san[64];

	f->user = a->val[O_USER];
	f->role = a->val[O_ROLE];
	f->event = a->val[O_EVENT];
	f->host = a->val[O_HOST];
	f->actor = a->val[O_ACTOR];
	f->outcome = a->val[O_OUTCOME];
	if (f->outcome && !sbx_rec_outcome_known(f->outcome))
		return sbx_cli_usage(c, cmd, "bad --outcome \"%s\": use one of %s",
				     sbx_sanitize(f->outcome, san, sizeof(san)),
				     sbx_rec_outcome_list());
	if (a->val[O_ID]) {
		if (sbx_cli_arg_id(c, "--id", a->val[O_ID], &f->id))
			return SBX_EXIT_USAGE;
		f->has_id = true;
	}
	if (a->val[O_SINCE]) {
		if (when_arg(c, "--since", a->val[O_SINCE], &f->since_us))
			return SBX_EXIT_USAGE;
		f->has_since = true;
	}
	if (a->val[O_UNTIL]) {
		if (when_arg(c, "--until", a->val[O_UNTIL], &f->until_us))
			return SBX_EXIT_USAGE;
		f->has_until = true;
	}
	return SBX_EXIT_OK;
}

static int cmd_audit_query(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	struct sbx_audit_query q = { .format = c->json ? SBX_AUDIT_JSON : SBX_AUDIT_TEXT };
	char *dir = NULL, san[64];
	int rc;

	if (a->val[O_FORMAT] && sbx_audit_parse_format(a->val[O_FORMAT], &q.format) < 0)
		return sbx_cli_usage(c, "audit query", "bad --format \"%s\": use text, jsonl or csv",
				     sbx_sanitize(a->val[O_FORMAT], san, sizeof(san)));
	rc = audit_filter(c, "audit query", a, &q.f);
	if (rc)
		return rc;
	rc = state_dir_for(c, a, &dir);
	if (rc == SBX_EXIT_OK)
		rc = sbx_audit_query(c, dir, &q);
	free(dir);
	return rc;
}

/* alert.raised records from the journal: the same reading as audit
 * query, so root (or whoever may read the journal) only: alerts name
 * other people's activity. */
static int cmd_alerts(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	struct sbx_audit_query q = {
		.f = { .event = "alert.raised", .has_since = true },
		.format = c->json ? SBX_AUDIT_JSON : SBX_AUDIT_TEXT,
	};
	const char *since = a->val[O_SINCE] ? a->val[O_SINCE] : "7d";
	char *dir = NULL, san[64];
	int rc;

	if (sbx_cli_parse_when(since, sbx_now_us(), &q.f.since_us) < 0)
		return sbx_cli_usage(c, "alerts", "bad time \"%s\" for --since: write an RFC 3339 "
				     "time (2026-11-28T09:00:00Z), a date (2026-11-28) or a duration "
				     "meaning that long ago (2h, 1d)", sbx_sanitize(since, san, sizeof(san)));
	rc = state_dir_for(c, a, &dir);
	if (rc == SBX_EXIT_OK)
		rc = sbx_audit_query(c, dir, &q);
	free(dir);
	return rc;
}

/* activity: the sudo commands in the journal (docs/sudo.md), through the
 * same reader as audit query. */
static int cmd_activity(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	struct sbx_audit_query q = {
		.f = { .user = a->val[O_USER], .event = "command." },
		.format = c->json ? SBX_AUDIT_JSON : SBX_AUDIT_TEXT,
	};
	char *dir = NULL;
	int rc;

	if (a->val[O_GRANT]) {
		if (sbx_cli_arg_id(c, "--grant", a->val[O_GRANT], &q.f.id))
			return SBX_EXIT_USAGE;
		q.f.has_id = true;
	}
	if (a->val[O_SINCE]) {
		if (when_arg(c, "--since", a->val[O_SINCE], &q.f.since_us))
			return SBX_EXIT_USAGE;
		q.f.has_since = true;
	}
	rc = state_dir_for(c, a, &dir);
	if (rc == SBX_EXIT_OK)
		rc = sbx_audit_query(c, dir, &q);
	free(dir);
	return rc;
}

static int cmd_audit_export(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	enum sbx_export_format fmt = SBX_EXPORT_JSONL;
	int64_t since, until;
	char *dir = NULL, san[64];
	int rc;

	if (!a->val[O_SINCE] || !a->val[O_UNTIL] || !a->val[O_OUT])
		return sbx_cli_usage(c, "audit export", "--since, --until and --out are required");
	if (a->val[O_FORMAT] && sbx_export_parse_format(a->val[O_FORMAT], &fmt) < 0)
		return sbx_cli_usage(c, "audit export", "bad --format \"%s\": use csv, jsonl or json",
				     sbx_sanitize(a->val[O_FORMAT], san, sizeof(san)));
	if (when_arg(c, "--since", a->val[O_SINCE], &since) ||
	    when_arg(c, "--until", a->val[O_UNTIL], &until))
		return SBX_EXIT_USAGE;
	rc = state_dir_for(c, a, &dir);
	if (rc == SBX_EXIT_OK)
		rc = sbx_audit_export(c, dir, since, until, fmt, a->val[O_OUT]);
	free(dir);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Access reviews (cli/review.c)                                       */

static int cmd_review_report(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	struct sbx_review_args r = {
		.config = a->val[O_CONFIG] ? a->val[O_CONFIG] : SBX_DEFAULT_CONFIG,
		.state_dir = a->val[O_STATE_DIR],
		.since = a->val[O_SINCE],
		.quarter = a->val[O_QUARTER],
		.role = a->val[O_ROLE],
		.user = a->val[O_USER],
		.format = a->val[O_FORMAT],
		.out = a->val[O_OUT],
		.online = a->val[O_ONLINE] != NULL,
	};

	return sbx_review_report(c, &r);
}

static int cmd_review_certify(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	return sbx_review_decide(c, false, a->pos[0], a->pos[1], a->val[O_COMMENT]);
}

static int cmd_review_revoke(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	return sbx_review_decide(c, true, a->pos[0], a->pos[1], a->val[O_COMMENT]);
}

static int cmd_review_status(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	(void)a;
	return sbx_review_status(c);
}

static int cmd_audit_verify_export(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	char *dir = NULL;
	int rc = SBX_EXIT_OK;

	if (a->val[O_KEY] && (a->val[O_STATE_DIR] || a->val[O_CONFIG]))
		return sbx_cli_usage(c, "audit verify-export", "--key checks without the journal: "
				     "it does not go with --state-dir or --config");
	if (!a->val[O_KEY])
		rc = state_dir_for(c, a, &dir);
	if (rc == SBX_EXIT_OK)
		rc = sbx_audit_verify_export(c, dir, a->pos[0], a->val[O_KEY]);
	free(dir);
	return rc;
}

static int cmd_audit_tail(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	struct sbx_rec_filter f = { 0 };
	long lines = 10;
	int rc;

	rc = audit_filter(c, "audit tail", a, &f);
	if (rc)
		return rc;
	if (a->val[O_LINES] && sbx_cli_parse_long(a->val[O_LINES], 0, 1024, &lines) < 0)
		return sbx_cli_usage(c, "audit tail", "bad -n/--lines: give 0 to 1024 (the broker "
				     "keeps the last 1024 records; older ones: audit query)");
	/* The broker takes names only (64 bytes of a name's letters). */
	if ((f.user && sbx_cli_arg_name(c, "--user", f.user)) ||
	    (f.actor && sbx_cli_arg_name(c, "--actor", f.actor)) ||
	    (f.role && sbx_cli_arg_name(c, "--role", f.role)) ||
	    (f.host && sbx_cli_arg_name(c, "--host", f.host)))
		return SBX_EXIT_USAGE;
	return sbx_audit_tail(c, &f, (uint32_t)lines, a->val[O_FOLLOW] != NULL);
}

/* ------------------------------------------------------------------ */
/* The fleet                                                           */

/* The policy a fleet command works from: --config, else the broker's. */
struct fleet_policy {
	struct sbx_policy *p;
	struct sbx_settings settings;
	struct sbx_fleet_target target;
};

static int fleet_policy_load(const struct sbx_cli *c, const struct sbx_cli_args *a,
			     struct fleet_policy *fp)
{
	const char *path = a->val[O_CONFIG] ? a->val[O_CONFIG] : SBX_DEFAULT_CONFIG;
	int rc = load_policy(c, path, &fp->p, &fp->settings);

	if (rc)
		return rc;
	fp->target = (struct sbx_fleet_target){
		.config = path,
		.host = fp->p->broker.host,
		.conf = &fp->settings.fleet,
	};
	return SBX_EXIT_OK;
}

static int cmd_fleet_init(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	struct fleet_policy fp = { 0 };
	int rc = fleet_policy_load(c, a, &fp);

	if (rc == SBX_EXIT_OK)
		rc = sbx_fleet_cmd_init(c, &fp.target);
	sbx_policy_free(fp.p);
	return rc;
}

static int cmd_fleet_status(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	struct fleet_policy fp = { 0 };
	int rc = fleet_policy_load(c, a, &fp);

	if (rc == SBX_EXIT_OK)
		rc = sbx_fleet_cmd_status(c, &fp.target);
	sbx_policy_free(fp.p);
	return rc;
}

static int cmd_fleet_verify(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	struct fleet_policy fp = { 0 };
	int rc = fleet_policy_load(c, a, &fp);

	if (rc == SBX_EXIT_OK)
		rc = sbx_fleet_cmd_verify(c, &fp.target, a->val[O_STATE_DIR]);
	sbx_policy_free(fp.p);
	return rc;
}

/* ------------------------------------------------------------------ */
/* API tokens (cli/token_cmd.c)                                        */

static int cmd_token_list(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	return sbx_token_cmd_list(c, a->val[O_ALL] != NULL);
}

static int cmd_token_revoke(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	if (a->val[O_USER] && sbx_cli_arg_name(c, "--user", a->val[O_USER]))
		return SBX_EXIT_USAGE;
	return sbx_token_cmd_revoke(c, a->pos[0], a->val[O_USER], a->val[O_REASON]);
}

/* ------------------------------------------------------------------ */
/* The manual                                                          */

static const struct sbx_cli_cmd cmds[] = {
	{
		.name = "pending",
		.synopsis = "pending",
		.summary = "requests waiting for your decision",
		.help =
		"List the pending requests you may approve or deny, as a table:\n"
		"  ID  USER  ROLE  FOR  LAPSES  REASON\n"
		"FOR is the duration asked for; LAPSES is when the request lapses if\n"
		"nobody decides.  Use --json to see approvers and approvals so far.\n"
		"\n"
		"Example:\n"
		"  sbxctl pending\n",
		.min_args = 0,
		.max_args = 0,
		.opts = 0,
		.run = cmd_pending,
	},
	{
		.name = "approve",
		.synopsis = "approve ID [--comment TEXT] [--for DUR]",
		.summary = "approve a pending request",
		.help =
		"Approve pending request ID.  Only approvers of the role count (the\n"
		"requester's manager, members of the listed groups, listed users), never\n"
		"the requester.  When enough approvals are in, the grant becomes active\n"
		"and its clock starts.\n"
		"\n"
		"Options:\n"
		"  --comment TEXT   a note for the requester and the journal\n"
		"  --for DUR        grant less time than asked; an approver may shorten a\n"
		"                   request, never lengthen it\n"
		"\n"
		"Examples:\n"
		"  sbxctl approve 42\n"
		"  sbxctl approve 42 --for 30m --comment \"30 minutes is enough for that\"\n",
		.min_args = 1,
		.max_args = 1,
		.opts = BIT(O_COMMENT) | BIT(O_FOR),
		.run = cmd_approve,
	},
	{
		.name = "deny",
		.synopsis = "deny ID [--reason TEXT]",
		.summary = "deny a pending request",
		.help =
		"Deny pending request ID.  One denial by an approver ends it.\n"
		"\n"
		"Options:\n"
		"  --reason TEXT    why, for the requester and the journal\n"
		"\n"
		"Example:\n"
		"  sbxctl deny 42 --reason \"use the read-only role for that\"\n",
		.min_args = 1,
		.max_args = 1,
		.opts = BIT(O_REASON),
		.run = cmd_deny,
	},
	{
		.name = "revoke",
		.synopsis = "revoke ID [--reason TEXT]",
		.summary = "end an active grant now",
		.help =
		"End active grant ID now.  Approvers of the role and admins may revoke;\n"
		"holders give their own grants back with `sbx-request drop`.\n"
		"\n"
		"Options:\n"
		"  --reason TEXT    why, for the holder and the journal\n"
		"\n"
		"Example:\n"
		"  sbxctl revoke 42 --reason \"incident closed\"\n",
		.min_args = 1,
		.max_args = 1,
		.opts = BIT(O_REASON),
		.run = cmd_revoke,
	},
	{
		.name = "grants",
		.synopsis = "grants [--user U] [--all]",
		.summary = "active grants",
		.help =
		"List active grants as a table, newest first:\n"
		"  ID  USER  ROLE  STATE  EXPIRES/ENDS  REASON\n"
		"Admins see everybody's grants, anyone else their own.  Every one is\n"
		"listed, however many: the broker answers in pages and all are fetched.\n"
		"\n"
		"Options:\n"
		"  --user U         only U's grants\n"
		"  --all            also grants that have ended (expired or revoked)\n"
		"\n"
		"Examples:\n"
		"  sbxctl grants\n"
		"  sbxctl grants --user erin --all --json\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_USER) | BIT(O_ALL),
		.run = cmd_grants,
	},
	{
		.name = "token list",
		.synopsis = "token list [--all]",
		.summary = "live API tokens (admins: --all, everyone's)",
		.help =
		"List live personal API tokens (docs/api.md): id, name, owner, scopes\n"
		"and expiry; your own, or with --all (admins) everyone's.  The tokens\n"
		"themselves are never shown.\n"
		"\n"
		"Options:\n"
		"  --all            everyone's tokens (admins only)\n"
		"\n"
		"Example:\n"
		"  sbxctl token list --all\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_ALL),
		.run = cmd_token_list,
	},
	{
		.name = "token revoke",
		.synopsis = "token revoke NAME|ID [--user U] [--reason TEXT]",
		.summary = "end an API token now",
		.help =
		"Revoke a personal API token by its name or its 16-digit id (from\n"
		"`sbxctl token list --all`): it stops working at once, and\n"
		"token.revoked is recorded.  Anyone may revoke their own tokens;\n"
		"admins anyone's (by id, or by name with --user).\n"
		"\n"
		"Options:\n"
		"  --user U         whose token NAME is (admins; default: yours)\n"
		"  --reason TEXT    why, for the journal\n"
		"\n"
		"Examples:\n"
		"  sbxctl token revoke 3f2a9c01d4e5b6a7 --reason \"leaked in a build log\"\n"
		"  sbxctl token revoke ci-deploy --user erin\n",
		.min_args = 1,
		.max_args = 1,
		.opts = BIT(O_USER) | BIT(O_REASON),
		.run = cmd_token_revoke,
	},
	{
		.name = "check",
		.synopsis = "check USER [--service S] [--rhost H] [--tty T]",
		.summary = "may USER log in on this host now? (dry run)",
		.help =
		"Ask the broker the question the PAM module asks at login: may USER log\n"
		"in on this host now, and why?  Prints \"allowed: <why>\" or\n"
		"\"denied: <why>\" and exits 0 or 1.  A dry run: nothing is recorded in the\n"
		"journal.\n"
		"\n"
		"Options:\n"
		"  --service S      the PAM service to ask about (e.g. sshd)\n"
		"  --rhost H        the remote host the login would come from\n"
		"  --tty T          the terminal\n"
		"\n"
		"Examples:\n"
		"  sbxctl check erin\n"
		"  sbxctl check erin --service sshd --rhost 10.0.0.7 --json\n",
		.min_args = 1,
		.max_args = 1,
		.opts = BIT(O_SERVICE) | BIT(O_RHOST) | BIT(O_TTY),
		.run = cmd_check,
	},
	{
		.name = "status",
		.synopsis = "status",
		.summary = "is the broker up and healthy?",
		.help =
		"Ask the broker how it is: its version, the host name it decides for,\n"
		"the sha256 of the policy it runs, the journal's last seq, and whether\n"
		"it is degraded (refusing changes because the journal cannot be\n"
		"written).  In a fleet (docs/fleet.md) also where its copy of the\n"
		"fleet's log stands, whether the database can be written, and whether\n"
		"the copy is stale (older than fleet.max_stale).  Exits 0 when healthy,\n"
		"1 when it refuses changes (degraded, or the fleet's log cannot be\n"
		"written) or its copy is stale, 3 when unreachable, so it can serve as\n"
		"a health check.\n"
		"\n"
		"Example:\n"
		"  sbxctl status\n",
		.min_args = 0,
		.max_args = 0,
		.opts = 0,
		.run = cmd_status,
	},
	{
		.name = "drift scan",
		.synopsis = "drift scan",
		.summary = "start a drift scan now (admins)",
		.help =
		"Ask the broker to scan for drift now rather than at the next\n"
		"drift.interval; when a scan is under way, another starts when it ends.\n"
		"Returns at once: the scan runs beside the broker's work, and its\n"
		"findings appear in `sbxctl drift` (whose \"scans\" count goes up) and\n"
		"in the journal.  Refused (exit 1) when the policy has no drift: section.\n"
		"\n"
		"Example:\n"
		"  sbxctl drift scan && sleep 1 && sbxctl drift\n",
		.min_args = 0,
		.max_args = 0,
		.opts = 0,
		.run = sbx_cmd_drift_scan,
	},
	{
		.name = "drift",
		.synopsis = "drift",
		.summary = "access on this host that does not come from sbx (admins)",
		.help =
		"List the open findings of the broker's drift scan (docs/policy.md,\n"
		"\"drift\"): access on this host that does not come from sbx.  Each has\n"
		"an id, a kind, a subject, where it is (FILE:LINE), what was found, what\n"
		"the policy says, and since when it is open.  Kinds:\n"
		"  group            a member of a role's unix group or a watched group\n"
		"                   (drift.watch_groups) whom no grant or standing role\n"
		"                   puts there\n"
		"  sudoers          a rule for a user or group the policy does not give\n"
		"                   sudo, or for a role's group with more commands than\n"
		"                   the role's sudo.allow; or a line that does not parse\n"
		"  authorized_keys  keys of an account the policy gives no login here\n"
		"  session          an open session (pam_sbx's, or a login in utmp) of\n"
		"                   someone whose grant has ended and who has no standing\n"
		"                   login\n"
		"  grant            a live grant the policy no longer supports\n"
		"  file             a file the scan would not or could not read (a link,\n"
		"                   another owner, writable by others, too large, binary,\n"
		"                   a line that is not a passwd or group line)\n"
		"A finding is recorded once as drift.detected and, when it goes, as\n"
		"drift.resolved (sbxctl audit query --event drift.).\n"
		"\n"
		"--json: {\"scans\", \"scanned_at\", \"scanning\", \"findings\": [{\"finding\",\n"
		"\"kind\", \"subject\", \"file\", \"line\", \"found\", \"policy\",\n"
		"\"detected_at\"}]}.\n"
		"\n"
		"Exit status: 0 nothing open; 1 findings are open (or not an admin); 3\n"
		"the broker is unreachable.\n"
		"\n"
		"Examples:\n"
		"  sbxctl drift\n"
		"  sbxctl drift --json | jq -r '.findings[] | select(.kind == \"group\") | .subject'\n",
		.min_args = 0,
		.max_args = 0,
		.opts = 0,
		.run = sbx_cmd_drift,
	},
	{
		.name = "policy check",
		.synopsis = "policy check FILE [FILE...] [--online]",
		.summary = "validate policy files (offline)",
		.help =
		"Load and validate each policy FILE without the broker.  Prints\n"
		"\"FILE: ok\" on stdout for a valid file and FILE:LINE:COL: message on\n"
		"stderr for every problem in an invalid one (unknown keys, wrong types,\n"
		"bad durations or regexes, unknown groups, users or profiles, a role\n"
		"loosening its profile, duplicate gids).  Exits 2 when any file has an\n"
		"error.  A valid file may still get \"FILE: warning: ...\" lines on\n"
		"stderr (exit 0): when no role applies to this host (broker.host, else\n"
		"the host name), and when a role's unix group already exists in\n"
		"/etc/group with members or another gid.  With --json, prints\n"
		"[{\"file\", \"ok\", \"errors\": [{\"line\", \"col\", \"message\"}],\n"
		"\"warnings\": [MESSAGE...]}] on stdout instead.\n"
		"\n"
		"  --online   also bind to the policy's directory (directory:) and read it\n"
		"             as the broker would: a refused bind, an unreachable server,\n"
		"             a name both the file and the directory define, and names the\n"
		"             file uses that neither defines are errors (at line 0)\n"
		"\n"
		"Example:\n"
		"  sbxctl policy check /etc/sbx/policy.yaml\n"
		"  sbxctl policy check --online /etc/sbx/policy.yaml\n",
		.min_args = 1,
		.max_args = -1,
		.opts = BIT(O_ONLINE),
		.run = cmd_policy_check,
	},
	{
		.name = "policy explain",
		.synopsis = "policy explain USER [--config FILE]",
		.summary = "which roles USER has, how, and may they log in",
		.help =
		"Show which roles USER has (standing or eligible, and through which\n"
		"group), which of them let USER log in on this host, and whether USER\n"
		"may log in now.  The first line is \"allowed: <why>\" or \"denied: <why>\";\n"
		"the exit status is 0 either way (use `sbxctl check` for a yes/no).\n"
		"\n"
		"Options:\n"
		"  --config FILE    work offline from this policy file alone, without the\n"
		"                   broker.  Grants are not known offline, so a user who\n"
		"                   could log in only through a grant shows as denied.\n"
		"\n"
		"Examples:\n"
		"  sbxctl policy explain erin\n"
		"  sbxctl policy explain erin --config /etc/sbx/policy.yaml\n",
		.min_args = 1,
		.max_args = 1,
		.opts = BIT(O_CONFIG),
		.run = cmd_policy_explain,
	},
	{
		.name = "alerts",
		.synopsis = "alerts [--state-dir DIR | --config FILE] [--since T]",
		.summary = "list the alerts raised (offline, from the journal)",
		.help =
		"Print the alerts the broker raised (alert.raised records: the policy's\n"
		"alerts: rules, docs/policy.md), oldest first, reading the journal\n"
		"without the broker.  Alerts name other people's activity, so this\n"
		"needs read access to the journal (root).\n"
		"\n"
		"Each line: time, seq, event, actor, user, role, id, then rule (the\n"
		"alert's name), matched (the event it matched), count, within (the\n"
		"window in seconds), per, outside or during (its hours) and seqs (the\n"
		"records that made it), as key=value.\n"
		"\n"
		"Options:\n"
		"  --state-dir DIR  the broker's state directory (default: " SBX_DEFAULT_STATE_DIR ")\n"
		"  --config FILE    take the state directory from the policy\n"
		"  --since T        alerts at or after T (default 7d): an RFC 3339 time,\n"
		"                   a date (midnight UTC) or a duration meaning that long\n"
		"                   ago (2h, 1d12h)\n"
		"  --json           one JSON array of the records\n"
		"\n"
		"Examples:\n"
		"  sbxctl alerts\n"
		"  sbxctl alerts --since 1d --json\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_STATE_DIR) | BIT(O_CONFIG) | BIT(O_SINCE),
		.run = cmd_alerts,
	},
	{
		.name = "audit init",
		.synopsis = "audit init [--state-dir DIR | --config FILE] [--out FILE] [--force]",
		.summary = "start sealing the journal: make the first key (offline)",
		.help =
		"Make epoch 0's sealing key in DIR/seal.key (mode 0600) and print the\n"
		"verification key, one line, once: the auditors keep it off this host and\n"
		"check the journal with `sbxctl audit verify --key FILE`.  From its next\n"
		"start the broker seals the journal every audit.seal_every (docs/audit.md,\n"
		"\"Sealing\").  Refuses while the broker runs, and when a key exists\n"
		"unless --force: a new key then replaces it, the broker records the\n"
		"replacement (journal.seal_key_replaced) when it next starts, and the old\n"
		"key's seals end there.\n"
		"\n"
		"Options:\n"
		"  --state-dir DIR  the broker's state directory (default: " SBX_DEFAULT_STATE_DIR ")\n"
		"  --config FILE    take the state directory from the policy\n"
		"  --out FILE       also write the verification key to FILE (mode 0600,\n"
		"                   never overwritten)\n"
		"  --force          replace an existing key\n"
		"\n"
		"Examples:\n"
		"  sbxctl audit init --out /root/sbx-verify.key\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_STATE_DIR) | BIT(O_CONFIG) | BIT(O_OUT) | BIT(O_FORCE),
		.run = cmd_audit_init,
	},
	{
		.name = "audit verify",
		.synopsis = "audit verify [--state-dir DIR | --config FILE] [--key FILE [--no-host-key] "
			    "[--standalone]] [--checkpoint SEQ:HASH | --checkpoint FILE]...",
		.summary = "check the journal's hash chain, and with --key its seals (offline)",
		.help =
		"Read the whole journal under DIR/journal without the broker, each segment\n"
		"once, and check every record: well-formed, seq contiguous, hash chain\n"
		"unbroken.  Prints \"journal intact: N records, last seq N\" and exits 0, or\n"
		"\"journal BROKEN at seq N: <what and where>\" and exits 1.  A torn last\n"
		"line (a crash mid-write the broker has not yet repaired) counts as\n"
		"broken.  Exits 2 when there is no readable journal in DIR.\n"
		"\n"
		"A journal whose old segments were removed for retention starts at a\n"
		"later seq: it is checked from the anchor its journal.pruned record gives\n"
		"(the range removed and the hash of its last record), and the output says\n"
		"so.  Segments missing without such a record are reported as missing.\n"
		"\n"
		"With --key (the verification key `audit init` printed) it also checks\n"
		"the seals: every epoch sealed in order, each with its own epoch's key,\n"
		"each record covered by the seal of its epoch, and the host's key file\n"
		"(DIR/seal.key) no further on than the journal's last seal, so a journal\n"
		"rewritten and re-hashed, or cut at the end, is caught too.  Records after\n"
		"the last seal are reported as not sealed yet.  Without --key only the\n"
		"chain is checked, and the output says so.\n"
		"\n"
		"A record forged later with a stolen key and given an old time fails as\n"
		"back-dated.  Records copied from a fleet's log keep that log's time, so\n"
		"they are not checked that way; the output counts them (sbxctl fleet\n"
		"verify compares them with the fleet's log).  For a host that was never\n"
		"in a fleet, --standalone checks them like any other record, so that\n"
		"fleet fields added to a forged record do not excuse it.\n"
		"\n"
		"With --checkpoint (again and again) it also proves that nothing up to each\n"
		"checkpoint was cut or rewritten: record SEQ must exist with that hash\n"
		"(the seq and hash of a seal, as sent to syslog or a collector).  A FILE\n"
		"holds one SEQ:HASH a line, or the JSON lines a collector keeps (objects\n"
		"with \"seq\" and \"hash\"); blank lines and # comments are skipped.  The\n"
		"first checkpoint that fails is named (\"checkpoint I (SEQ:HASH...): ...\").\n"
		"Checkpoints inside a pruned range are counted as not checkable.\n"
		"\n"
		"Options:\n"
		"  --state-dir DIR  the broker's state directory (default: " SBX_DEFAULT_STATE_DIR ")\n"
		"  --config FILE    take the state directory from the policy's\n"
		"                   broker.state_dir (--state-dir wins over it)\n"
		"  --key FILE       the verification key (a 0600 file)\n"
		"  --no-host-key    check a copy without the host's key file (a cut end\n"
		"                   with its seals then goes unnoticed)\n"
		"  --standalone     the host was never in a fleet: records that say they\n"
		"                   were copied from one get the back-dating check too\n"
		"  --checkpoint SEQ:HASH, --checkpoint FILE\n"
		"                   a record kept off the host, or a file of them\n"
		"\n"
		"Examples:\n"
		"  sbxctl audit verify\n"
		"  sbxctl audit verify --key /root/sbx-verify.key\n"
		"  sbxctl audit verify --key /root/sbx-verify.key --checkpoint /srv/collector/sbx-01.jsonl\n"
		"  sbxctl audit verify --state-dir /srv/sbx-demo/state\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_STATE_DIR) | BIT(O_CONFIG) | BIT(O_KEY) | BIT(O_NO_HOST_KEY) |
			BIT(O_STANDALONE) | BIT(O_CHECKPOINT),
		.run = cmd_audit_verify,
	},
	{
		.name = "audit query",
		.synopsis = "audit query [--state-dir DIR | --config FILE] [--user U] [--actor A] "
			    "[--role R] [--id N] [--event E] [--host H] [--outcome O] [--since T] "
			    "[--until T] [--format text|jsonl|csv]",
		.summary = "search the journal (offline)",
		.help =
		"Print the journal records that match every filter given, oldest first,\n"
		"reading the journal without the broker (and without checking the\n"
		"chain: use `audit verify` for that).  Records are read one at a time,\n"
		"so memory stays small whatever the journal's size; with --user,\n"
		"--actor or --role a line that cannot match is passed over unparsed.\n"
		"\n"
		"Options:\n"
		"  --state-dir DIR  the broker's state directory (default: " SBX_DEFAULT_STATE_DIR ")\n"
		"  --config FILE    take the state directory from the policy\n"
		"  --user U         records whose \"user\" or \"actor\" is U\n"
		"  --actor A        records whose \"actor\" (who acted) is A\n"
		"  --role R         records whose \"role\" is R\n"
		"  --id N           the records of request or grant N (its whole life,\n"
		"                     also after the broker no longer keeps it in memory)\n"
		"  --event E        records whose event is E, or starts with E when E ends\n"
		"                   in '.' or \".*\" (--event grant. matches grant.activated,\n"
		"                   grant.expired and grant.revoked)\n"
		"  --host H         records made on host H: their \"host\" member (a\n"
		"                   fleet's records), else the host the last\n"
		"                   broker.started before them named\n"
		"  --outcome O      records whose outcome is O: allowed or refused (a\n"
		"                   login), requested, approved, granted, denied,\n"
		"                   cancelled, lapsed, expired, revoked, loaded,\n"
		"                   rejected (a policy), delivered, failed (a\n"
		"                   notification); docs/audit.md, \"Outcomes\"\n"
		"  --since T        records at or after T\n"
		"  --until T        records before T\n"
		"                   T is an RFC 3339 time (2026-11-28T09:00:00Z), a date\n"
		"                   (2026-11-28, midnight UTC) or a duration meaning that\n"
		"                   long ago (2h, 1d12h)\n"
		"  --format F       text (default): one line per record: time, seq, event,\n"
		"                     actor, user, role, id, then the other fields as\n"
		"                     key=value (\"-\" for a missing column)\n"
		"                   jsonl: the journal's lines exactly as stored\n"
		"                   csv: RFC 4180 (CRLF), a header line, then\n"
		"                     seq,time,event,actor,through,user,role,id,details\n"
		"                     with details the other fields as a JSON object\n"
		"                   --json without --format prints one JSON array.\n"
		"  Text and CSV replace control characters with '?'; jsonl is exact;\n"
		"  --json is ASCII (other characters as \\u escapes).\n"
		"  prev and hash appear only in jsonl and --json.\n"
		"\n"
		"Examples:\n"
		"  sbxctl audit query --user erin --since 1d\n"
		"  sbxctl audit query --id 42\n"
		"  sbxctl audit query --outcome refused --host sbx-01 --since 1d\n"
		"  sbxctl audit query --event grant. --format csv > grants.csv\n"
		"  sbxctl audit query --since 2026-11-01 --until 2026-12-01 --format jsonl\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_STATE_DIR) | BIT(O_CONFIG) | BIT(O_USER) | BIT(O_ROLE) |
			BIT(O_EVENT) | BIT(O_SINCE) | BIT(O_UNTIL) | BIT(O_FORMAT) | BIT(O_ID) |
			BIT(O_HOST) | BIT(O_OUTCOME) | BIT(O_ACTOR),
		.run = cmd_audit_query,
	},
	{
		.name = "audit export",
		.synopsis = "audit export --since T --until T --out FILE [--format csv|jsonl|json] "
			    "[--state-dir DIR | --config FILE]",
		.summary = "export a time range of the journal for auditors (offline)",
		.help =
		"Write the journal's records from --since to --until into FILE, and a\n"
		"manifest beside it, FILE.manifest.json, that names what the export holds\n"
		"and what proves it: the range, the first and last seq and their hashes,\n"
		"the seals (journal.sealed records) that cover the records, the records\n"
		"between the last one and the seal after it, and the export's own SHA-256.\n"
		"`sbxctl audit verify-export FILE` checks both, against the journal or the\n"
		"verification key.  Reads the journal without the broker; neither file is\n"
		"ever overwritten; both are created with mode 0600.\n"
		"\n"
		"The export is the unbroken run of records from the first one at or after\n"
		"--since to the last one before --until, so that its hash chain can be\n"
		"checked by itself.  An --until in the future is taken as now.  Records\n"
		"after the journal's last seal are exported but not yet proven: a\n"
		"warning says which (export again after the next seal).\n"
		"\n"
		"Options:\n"
		"  --since T        the first record's time at or after T (required)\n"
		"  --until T        the last record's time before T (required)\n"
		"                   T is an RFC 3339 time, a date (midnight UTC) or a\n"
		"                   duration meaning that long ago (2h, 1d)\n"
		"  --out FILE       the export (required); the manifest is FILE.manifest.json\n"
		"  --format F       jsonl (default): the journal's lines byte for byte\n"
		"                   json: one JSON array whose elements are those lines\n"
		"                   csv: RFC 4180 (CRLF line ends, quotes doubled), a header,\n"
		"                     then one row per record: seq, time, event, actor,\n"
		"                     through, user, role, id, host, outcome, details (the\n"
		"                     other fields as JSON), hash, record (the journal line\n"
		"                     itself).  A cell starting with = + - or @ gets a\n"
		"                     leading ' so that a spreadsheet shows it as text\n"
		"                     instead of running it as a formula; control\n"
		"                     characters become '?' (the record column is exact)\n"
		"  --state-dir DIR  the broker's state directory (default: " SBX_DEFAULT_STATE_DIR ")\n"
		"  --config FILE    take the state directory from the policy\n"
		"\n"
		"Examples:\n"
		"  sbxctl audit export --since 2026-11-01 --until 2026-12-01 --format csv \\\n"
		"      --out /root/sbx-2026-11.csv\n"
		"  sbxctl audit verify-export /root/sbx-2026-11.csv --key /root/sbx-verify.key\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_STATE_DIR) | BIT(O_CONFIG) | BIT(O_SINCE) | BIT(O_UNTIL) |
			BIT(O_FORMAT) | BIT(O_OUT),
		.run = cmd_audit_export,
	},
	{
		.name = "audit tail",
		.synopsis = "audit tail [-f] [-n N] [--user U] [--actor A] [--role R] [--id N] "
			    "[--event E] [--host H] [--outcome O] [--json]",
		.summary = "show the newest records, and with -f each new one, live from the broker",
		.help =
		"Print the last N records of the journal that match every filter given,\n"
		"oldest first, as the broker has them in memory (it keeps the last 1024;\n"
		"older ones: audit query).  With -f, stay connected and print every new\n"
		"record as soon as it is durable (written and synced): the broker pushes\n"
		"it over its socket; nothing polls the journal's files.\n"
		"\n"
		"Root and members of broker.admin_group see every record; anyone else sees\n"
		"the records about them or by them (their requests, grants and logins).\n"
		"A user may follow on at most 4 connections at once (root 16; 64 in all).\n"
		"A reader that falls more than 1 MiB behind (output paused, a slow pipe)\n"
		"is dropped: sbxctl says from which seq on records were not sent, and\n"
		"exits 1.  When the broker stops, -f ends with exit 3.\n"
		"\n"
		"Options:\n"
		"  -f, --follow     keep printing new records until interrupted\n"
		"  -n, --lines N    the last N records first (default 10, 0 to 1024)\n"
		"  --user, --actor, --role, --id, --event, --host, --outcome\n"
		"                   as for `sbxctl audit query` (see its help)\n"
		"  --json           one JSON object per line (ASCII: other characters\n"
		"                   as \\u escapes) instead of query's text\n"
		"                   lines: the record's members, without prev, hash and\n"
		"                   continued (the journal's bytes: audit query and\n"
		"                   audit export have them); seals are not streamed\n"
		"\n"
		"Examples:\n"
		"  sbxctl audit tail -f\n"
		"  sbxctl audit tail -f --outcome refused --json\n"
		"  sbxctl audit tail -n 50 --user erin\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_USER) | BIT(O_ROLE) | BIT(O_EVENT) | BIT(O_ID) | BIT(O_HOST) |
			BIT(O_OUTCOME) | BIT(O_ACTOR) | BIT(O_FOLLOW) | BIT(O_LINES),
		.run = cmd_audit_tail,
	},
	{
		.name = "audit verify-export",
		.synopsis = "audit verify-export FILE [--state-dir DIR | --config FILE | --key KEYFILE]",
		.summary = "check an export and its manifest (offline)",
		.help =
		"Check an export made by `sbxctl audit export` and its manifest,\n"
		"FILE.manifest.json, and name the first thing that is wrong.\n"
		"\n"
		"Against the journal (the default): the export must hold exactly the\n"
		"journal's records of the manifest's range, rendered exactly as export\n"
		"renders them (a changed byte is named by its record), and every member of\n"
		"the manifest must be what the journal and the export's bytes make it:\n"
		"first and last seq and hashes, the seals, the records after the range up\n"
		"to the next seal, the size and the SHA-256.\n"
		"\n"
		"With --key (the verification key `audit init` printed), off the host and\n"
		"without the journal: the records of the export (in CSV, its record column,\n"
		"and every other cell must be what that record makes) must form an\n"
		"unbroken hash chain from the manifest's first_prev, continue through the\n"
		"manifest's after records to a seal, and every seal among them must be\n"
		"of this key, for the next epoch, and carry the right MAC of that epoch's\n"
		"key.  Records no seal covers yet fail: the key proves nothing about them.\n"
		"\n"
		"Prints `export intact: ...` (exit 0) or `export BROKEN: <what>` (exit 1);\n"
		"--json prints {intact, problems, ...}.\n"
		"\n"
		"Options:\n"
		"  --key KEYFILE    check against the verification key instead of the journal\n"
		"  --state-dir DIR  the journal to check against (default: " SBX_DEFAULT_STATE_DIR ")\n"
		"  --config FILE    take the state directory from the policy\n"
		"\n"
		"Examples:\n"
		"  sbxctl audit verify-export /root/sbx-2026-11.csv\n"
		"  sbxctl audit verify-export sbx-2026-11.jsonl --key sbx-verify.key\n",
		.min_args = 1,
		.max_args = 1,
		.opts = BIT(O_STATE_DIR) | BIT(O_CONFIG) | BIT(O_KEY),
		.run = cmd_audit_verify_export,
	},
	{
		.name = "review report",
		.synopsis = "review report [--config FILE] [--state-dir DIR] [--since T | --quarter Q] "
			    "[--role R] [--user U] [--format md|csv|json|html] [--out FILE] [--online]",
		.summary = "access review report: who may, who did, what is flagged (offline)",
		.help =
		"Read the policy and the whole journal once, without the broker, and\n"
		"report per role and user: standing and eligible access and where it\n"
		"comes from (the policy file by name, a group in it, or a directory\n"
		"group); the grants activated in the period (count, total hours, how many\n"
		"at the role's max_duration or auto-approved, reasons, tickets, who\n"
		"approved, how long requests waited); logins and sessions (count in the\n"
		"period, last ever); open permission drift findings; the last review\n"
		"decision; and flags.  Flagged rows come first.\n"
		"\n"
		"Flags:\n"
		"  unused                   standing access with no login or session within\n"
		"                           review.unused_after (default 30d) of the report's end\n"
		"  max-duration             2 or more grants at the role's max_duration, and at\n"
		"                           least half of them\n"
		"  same-approver            2 or more approved grants, all by one approver\n"
		"  auto-approved-sensitive  auto-approved grants of a role with a unix_group\n"
		"                           or a review_every\n"
		"  drift                    open drift.detected findings naming the user\n"
		"  review-overdue           the role's review_every has passed since its last\n"
		"                           review (sbxctl review certify/revoke)\n"
		"  revoked-still-standing   revoked in a review, still standing in the file\n"
		"\n"
		"Options:\n"
		"  --config FILE    the policy (default: " SBX_DEFAULT_CONFIG ")\n"
		"  --state-dir DIR  the broker's state directory (default: the policy's\n"
		"                   broker.state_dir)\n"
		"  --since T        the period starts at T: a duration meaning that long ago\n"
		"                   (90d, the default), an RFC 3339 time or a date; it ends now\n"
		"  --quarter Q      the period is calendar quarter Q (UTC), e.g. 2026Q4; the\n"
		"                   report is then as of the quarter's end\n"
		"  --role R         only role R\n"
		"  --user U         only user U\n"
		"  --format F       md (default), csv (RFC 4180, one line per row), json (one\n"
		"                   object: period, summary, roles, rows) or html (one\n"
		"                   self-contained printable file with a chart)\n"
		"  --out FILE       write there (mode 0600) instead of stdout; an existing\n"
		"                   FILE must be your own regular file, not a hard link\n"
		"  --online         with a directory: section, read the directory as the\n"
		"                   broker does, so that its users and groups are rows and\n"
		"                   sources (\"directory group G\"); without it only the\n"
		"                   file's names are known\n"
		"\n"
		"Examples:\n"
		"  sbxctl review report --quarter 2026Q4 --format html --out q4.html\n"
		"  sbxctl review report --since 30d --role sandbox-admin\n"
		"  sbxctl review report --user erin --format csv > erin.csv\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_STATE_DIR) | BIT(O_CONFIG) | BIT(O_USER) | BIT(O_ROLE) |
			BIT(O_SINCE) | BIT(O_QUARTER) | BIT(O_FORMAT) | BIT(O_OUT) | BIT(O_ONLINE),
		.run = cmd_review_report,
	},
	{
		.name = "review certify",
		.synopsis = "review certify USER ROLE --comment TEXT",
		.summary = "record that USER's access to ROLE was reviewed and stays",
		.help =
		"Record review.certified: USER's access to ROLE (standing, eligible or a\n"
		"live grant) was reviewed and may stay.  Allowed to ROLE's approvers for\n"
		"USER and to admins, never to USER.  Any decision about a member is the\n"
		"role's review: its next review is due review_every later, and a role\n"
		"suspended for a missed review (on_missed_review: suspend) takes requests\n"
		"again (review.resumed).\n"
		"\n"
		"Options:\n"
		"  --comment TEXT   why (required: the journal and the report keep it)\n"
		"\n"
		"Examples:\n"
		"  sbxctl review certify erin sandbox-admin --comment \"still on the db team\"\n",
		.min_args = 2,
		.max_args = 2,
		.opts = BIT(O_COMMENT),
		.run = cmd_review_certify,
	},
	{
		.name = "review revoke",
		.synopsis = "review revoke USER ROLE --comment TEXT",
		.summary = "take USER's access to ROLE away in a review",
		.help =
		"Record review.revoked, end USER's live grants of ROLE at once\n"
		"(grant.revoked, reason \"revoked in an access review: TEXT\"), and for an\n"
		"eligible member refuse their requests for ROLE until the policy file\n"
		"changes (sbxctl policy explain USER shows it as \"revoked\").  Standing\n"
		"access comes from the policy file: the decision is recorded, the access\n"
		"stays, and the report flags it (revoked-still-standing) until the policy\n"
		"drops the user.  Allowed to ROLE's approvers for USER and to admins,\n"
		"never to USER.  It also counts as the role's review.\n"
		"\n"
		"Options:\n"
		"  --comment TEXT   why (required)\n"
		"\n"
		"Examples:\n"
		"  sbxctl review revoke dave sandbox-admin --comment \"moved to sales\"\n",
		.min_args = 2,
		.max_args = 2,
		.opts = BIT(O_COMMENT),
		.run = cmd_review_revoke,
	},
	{
		.name = "review status",
		.synopsis = "review status",
		.summary = "each reviewed role's last review, next due date and state",
		.help =
		"List every role whose profile sets review_every: its last review (a\n"
		"certify or revoke of any member), when the next one is due (review_every\n"
		"after it, or after the broker first loaded a policy), what a missed one\n"
		"does (on_missed_review) and the state: ok, due (review.due recorded and\n"
		"the approvers told), or suspended (new grants refused until a review).\n"
		"\n"
		"--json prints an array of {\"role\", \"state\", \"review_every\",\n"
		"\"review_every_text\", \"last_review\", \"next_due\", \"on_missed_review\",\n"
		"\"note\"}.\n"
		"\n"
		"Examples:\n"
		"  sbxctl review status\n",
		.min_args = 0,
		.max_args = 0,
		.opts = 0,
		.run = cmd_review_status,
	},
	{
		.name = "activity",
		.synopsis = "activity [--grant ID | --user U | --since T] [--state-dir DIR | --config FILE]",
		.summary = "what was run with sudo, and under which grant (offline)",
		.help =
		"Print the sudo commands sbx_sudo.so recorded (docs/sudo.md), oldest\n"
		"first, reading the journal without the broker: command.run (before the\n"
		"command ran: user, runas, command, cwd, tty, and the grant it ran under:\n"
		"id, role, reason, ticket, approvers; or via standing / none),\n"
		"command.refused (by sudoers, sbx or another plugin, with why) and\n"
		"command.exited (exit status or signal, elapsed_ms).\n"
		"\n"
		"Options:\n"
		"  --grant ID       the commands run under grant ID (and their ends)\n"
		"  --user U         the commands of U\n"
		"  --since T        records at or after T (RFC 3339 time, date, or a\n"
		"                   duration meaning that long ago: 2h, 1d)\n"
		"  --state-dir DIR  the broker's state directory (default: " SBX_DEFAULT_STATE_DIR ")\n"
		"  --config FILE    take the state directory from the policy\n"
		"  --json           one JSON array of the records\n"
		"\n"
		"Examples:\n"
		"  sbxctl activity --grant 42\n"
		"  sbxctl activity --user erin --since 1d --json\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_STATE_DIR) | BIT(O_CONFIG) | BIT(O_USER) | BIT(O_SINCE) | BIT(O_GRANT),
		.run = cmd_activity,
	},
	{
		.name = "fleet init",
		.synopsis = "fleet init [--config FILE]",
		.summary = "create or migrate the fleet's schema in PostgreSQL",
		.help =
		"Create the tables of the fleet's shared log (sbx_schema, sbx_log,\n"
		"sbx_hosts) in the database the policy's fleet: section names, or migrate\n"
		"an older schema to the version this sbx uses, in one transaction.  Run it\n"
		"once before the first broker of a fleet starts (a broker refuses a\n"
		"database without the schema).  Running it again changes nothing.\n"
		"Prints \"fleet: schema version N in database HOST:PORT\" and what it did:\n"
		"(created), (already there) or (migrated from an older version).\n"
		"--json: {\"database\", \"schema_version\", \"action\"} with action created,\n"
		"present or migrated.\n"
		"\n"
		"It connects with fleet.postgres and the password in fleet.password_file\n"
		"(readable by its owner only, so usually run as root), within\n"
		"fleet.timeout.  It never downgrades: a database holding a newer schema\n"
		"is an error (exit 1).\n"
		"\n"
		"Options:\n"
		"  --config FILE    the policy with the fleet: section (default:\n"
		"                   " SBX_DEFAULT_CONFIG ")\n"
		"\n"
		"Exit status: 0 the schema is there; 1 the database refused (a newer\n"
		"schema, a standby, no right to create tables); 2 no fleet: section, an\n"
		"invalid policy or an unreadable password file; 3 the database cannot\n"
		"be reached or did not answer within fleet.timeout.\n"
		"\n"
		"Example:\n"
		"  sbxctl fleet init --config /etc/sbx/policy.yaml\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_CONFIG),
		.run = cmd_fleet_init,
	},
	{
		.name = "fleet status",
		.synopsis = "fleet status [--config FILE]",
		.summary = "how far each host of the fleet has applied the log",
		.help =
		"Read what every broker of the fleet last reported (each reports every\n"
		"5 s) and set it against the shared log: the database, the log's last\n"
		"seq, the policy most hosts run, then one line per host:\n"
		"  HOST  APPLIED  LAG  POLICY  VERSION  CONTACT  FLAGS\n"
		"APPLIED is the seq the host has applied, LAG the log's last seq minus\n"
		"that, POLICY the first 12 hex digits of its policy file's sha256,\n"
		"CONTACT how long ago it last reported (by the database's clock).  FLAGS:\n"
		"  STALE            no report for longer than fleet.max_stale\n"
		"  POLICY MISMATCH  its policy is not the one most hosts run (a tie goes\n"
		"                   to the policy of the host heard from last)\n"
		"  AHEAD OF LOG     it applied records the log no longer holds (the\n"
		"                   database was restored from an old backup?)\n"
		"Each problem also gets a line of its own, e.g.\n"
		"  fleet.policy_mismatch: sbx-02 (sha256 ...) differs from the other hosts\n"
		"  (sha256 ...)\n"
		"A LAG of a few records is normal for a moment: hosts report every 5 s.\n"
		"\n"
		"--json: {\"database\", \"last_seq\", \"policy_sha256\" (the majority's),\n"
		"\"max_stale_s\", \"hosts\": [{\"host\", \"applied_seq\", \"lag\",\n"
		"\"policy_sha256\", \"version\", \"last_contact_age_s\", \"stale\",\n"
		"\"policy_mismatch\", \"ahead_of_log\"}], \"policy_mismatch\": [hosts],\n"
		"\"healthy\"}.\n"
		"\n"
		"Options:\n"
		"  --config FILE    the policy with the fleet: section (default:\n"
		"                   " SBX_DEFAULT_CONFIG ")\n"
		"\n"
		"Exit status: 0 every host is current and runs the same policy (also\n"
		"when none has reported yet); 1 a host is stale, runs another policy or\n"
		"is ahead of the log, or the database has no sbx schema (or one of\n"
		"another version); 2 no fleet: section, an invalid policy or an\n"
		"unreadable password file; 3 the database cannot be reached or did not\n"
		"answer within fleet.timeout.\n"
		"\n"
		"Examples:\n"
		"  sbxctl fleet status\n"
		"  sbxctl fleet status --json | jq -r '.policy_mismatch[]'\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_CONFIG),
		.run = cmd_fleet_status,
	},
	{
		.name = "fleet verify",
		.synopsis = "fleet verify [--config FILE] [--state-dir DIR]",
		.summary = "check the fleet's log and a host's copy of it",
		.help =
		"Read the whole shared log from seq 1, a chunk at a time, and check\n"
		"every record as the brokers do: seq contiguous from 1, each one's prev\n"
		"the hash of the one before, its line well-formed and hashing to the\n"
		"hash it claims.  Prints \"fleet log intact: N records, last seq N (hash\n"
		"...)\", or \"fleet log BROKEN at seq N: <why>\" for the first record that\n"
		"fails (an edited, deleted or inserted row).  A log that merely lost its\n"
		"newest records still chains: --state-dir, or `fleet status` (AHEAD OF\n"
		"LOG), shows that.\n"
		"\n"
		"With --state-dir DIR (a broker's state directory), also compare every\n"
		"copy that broker keeps of a log record (the local records with fleet_seq\n"
		"and fleet_hash) with the log's record at that seq, and say how many were\n"
		"compared and the first that differs, e.g. \"local copy of seq 12 in DIR\n"
		"has hash X, the log Y\"; and check that journal's own chain as `audit\n"
		"verify` does.  Copies past a broken record of the log are not compared.\n"
		"\n"
		"--json: {\"database\", \"intact\", \"records\", \"last_seq\", \"last_hash\",\n"
		"\"bad_seq\", \"error\", \"local\"}; local is null, or {\"state_dir\",\n"
		"\"compared\", \"differ\", \"unchecked\", \"first_difference\",\n"
		"\"first_difference_seq\", \"read_error\", \"journal_intact\",\n"
		"\"journal_records\", \"journal_bad_seq\", \"journal_error\"}.\n"
		"\n"
		"Options:\n"
		"  --config FILE    the policy with the fleet: section (default:\n"
		"                   " SBX_DEFAULT_CONFIG ")\n"
		"  --state-dir DIR  also check this broker's copy and journal\n"
		"\n"
		"Exit status: 0 the log is intact (and the copy the same, the journal\n"
		"intact); 1 a broken log, a copy that differs, a broken journal, or no\n"
		"sbx schema; 2 no fleet: section, an invalid policy, an unreadable\n"
		"password file, or no readable journal in DIR; 3 the database cannot be\n"
		"reached or did not answer within fleet.timeout.\n"
		"\n"
		"Examples:\n"
		"  sbxctl fleet verify\n"
		"  sbxctl fleet verify --state-dir /var/lib/sbx\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_CONFIG) | BIT(O_STATE_DIR),
		.run = cmd_fleet_verify,
	},
};

static const struct sbx_cli_tool tool = {
	.prog = "sbxctl",
	.purpose =
	"Approve, deny and revoke access through the sbx broker (sbx-brokerd), see\n"
	"who holds what, ask the broker the login question, check policies and\n"
	"the journal and the fleet's shared log, and review access (reports,\n"
	"decisions, deadlines).  `policy check`, `policy explain --config`,\n"
	"`audit`, `review report` and `fleet` work without the broker (`fleet`\n"
	"talks to the fleet's database instead).\n",
	.opts = opts,
	.n_opts = N_OPTS,
	.cmds = cmds,
	.n_cmds = sizeof(cmds) / sizeof(cmds[0]),
	.fallback = NULL,
	.extra_help =
	"Durations (--for): a number and a unit, largest unit first, each unit at\n"
	"most once: 90s, 30m, 1h, 1h30m, 2d, 1w.\n"
	"\n"
	"--json prints a request or grant as an object with id, user, role, state,\n"
	"expires_at (RFC 3339 or null) and every other field (see docs/cli.md), a\n"
	"list as an array; check as {\"allowed\", \"reason\", \"user\", \"role\", \"id\",\n"
	"\"via\"}; policy explain as {\"user\", \"allowed\", \"reason\", \"roles\": [...]}.\n",
	.examples =
	"  sbxctl pending\n"
	"  sbxctl approve 42 --comment \"ok for the import fix\"\n"
	"  sbxctl check erin\n"
	"  sbxctl grants --user erin\n"
	"  sbxctl drift\n"
	"  sbxctl policy check /etc/sbx/policy.yaml\n"
	"  sbxctl audit verify --state-dir /var/lib/sbx\n"
	"  sbxctl audit query --event grant. --since 1d\n"
	"  sbxctl review report --quarter 2026Q4 --format html --out q4.html\n"
	"  sbxctl fleet status\n",
};

int main(int argc, char **argv)
{
	return sbx_cli_main(&tool, argc, argv);
}
