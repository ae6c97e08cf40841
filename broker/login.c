/*
 * Who may log in on this host now: the one rule behind CHECK (pam_sbx's
 * account question), EXPLAIN and sessions.  A standing role that applies
 * to this host, or a live grant of one; else a refusal that says what the
 * person could ask for.
 */
#include "config.h"

#include "broker.h"

#include "directory.h"
#include "duration.h"
#include "policy_directory.h"
#include "timeutil.h"

#include <stdio.h>
#include <string.h>

const struct sbx_req *sbx_broker_live_grant(const struct sbx_broker *b, const char *user,
					    int64_t now, bool login_only)
{
	struct sbx_req *open[SBX_OPEN_MAX];
	size_t n = sbx_state_user_open(b->state, user, open, SBX_OPEN_MAX);
	const struct sbx_req *best = NULL;

	for (size_t i = 0; i < n; i++) {
		const struct sbx_role *role;

		if (!sbx_req_live(open[i], now))
			continue;
		role = sbx_policy_role(b->policy, open[i]->role);
		if (login_only && (!role || !role->matches_host))
			continue;
		if (!best || open[i]->expires_at > best->expires_at)
			best = open[i];
	}
	return best;
}

/* "sandbox-admin (1 approval: erin's manager (frank)), ... . Run:
 * sbx-request sandbox-admin --for 1h --reason "..."" for a refusal. */
static void eligible_hint(const struct sbx_broker *b, const char *user, char *buf, size_t len)
{
	size_t off = 0;
	const struct sbx_role *first = NULL;

	buf[0] = '\0';
	for (size_t i = 0; i < b->policy->n_roles; i++) {
		const struct sbx_role *r = &b->policy->roles[i];
		char approvers[256];
		int w;

		if (!r->matches_host ||
		    sbx_policy_membership(b->policy, r, user, NULL) != SBX_MEMBER_ELIGIBLE)
			continue;
		if (!first)
			first = r;
		if (r->auto_approve) {
			w = snprintf(buf + off, len - off, "%s%s (granted at once)", off ? ", " : "",
				     r->name);
		} else {
			sbx_policy_approvers_text(b->policy, r, user, approvers, sizeof(approvers));
			w = snprintf(buf + off, len - off, "%s%s (%u approval%s: %s)",
				     off ? ", " : "", r->name, r->approvals,
				     r->approvals == 1 ? "" : "s", approvers);
		}
		if (w < 0 || (size_t)w >= len - off)
			return;
		off += (size_t)w;
	}
	if (first) {
		char dur[32];

		sbx_duration_format(first->default_duration, dur, sizeof(dur));
		snprintf(buf + off, len - off, ". Run: sbx-request %s --for %s%s", first->name, dur,
			 first->require_reason ? " --reason \"...\"" : "");
	}
}

static void refusal(struct sbx_broker *b, const char *user, struct sbx_decision *d)
{
	const struct sbx_policy *p = b->policy;
	const char *unknown;
	char hint[700];

	d->allowed = false;
	if (!sbx_policy_user(p, user)) {
		unknown = sbx_directory_unknown_user(b, user);
		if (unknown)
			snprintf(d->message, sizeof(d->message), "%s", unknown);
		else
			snprintf(d->message, sizeof(d->message), "%s is not known to sbx on %s", user,
				 p->broker.host);
		return;
	}
	eligible_hint(b, user, hint, sizeof(hint));
	if (hint[0] && b->settings.api.enabled && b->settings.api.public_url[0])
		/* Someone refused here may have no shell to run sbx-request
		 * in: the dashboard's form needs none. */
		snprintf(d->message, sizeof(d->message),
			 "%s has no active grant on %s. Request access at %s. Eligible: %s",
			 user, p->broker.host, b->settings.api.public_url, hint);
	else if (hint[0])
		snprintf(d->message, sizeof(d->message),
			 "%s has no active grant on %s. Eligible: %s", user, p->broker.host, hint);
	else
		snprintf(d->message, sizeof(d->message),
			 "%s has no role that allows logging in on %s", user, p->broker.host);
}

void sbx_broker_decide(struct sbx_broker *b, const char *user, int64_t now,
		       struct sbx_decision *d)
{
	const struct sbx_policy *p = b->policy;
	const struct sbx_role *role;
	const struct sbx_req *g;
	const char *via = NULL;
	char until[SBX_RFC3339_LEN];

	memset(d, 0, sizeof(*d));
	role = sbx_policy_standing_login(p, user, &via);
	if (role) {
		d->allowed = true;
		d->role = role->name;
		d->via = "standing";
		snprintf(d->message, sizeof(d->message),
			 "%s may log in on %s: standing member of %s%s%s", user, p->broker.host,
			 role->name,
			 !via ? "" : sbx_policy_group_from_directory(p, via) ? " via ldap group "
									      : " via group ",
			 via ? via : "");
		return;
	}
	g = sbx_broker_live_grant(b, user, now, true);
	if (g) {
		d->allowed = true;
		d->role = g->role;
		d->grant = g->id;
		d->via = "grant";
		sbx_format_rfc3339(g->expires_at, until);
		snprintf(d->message, sizeof(d->message),
			 "%s may log in on %s: grant %u of %s until %s", user, p->broker.host,
			 g->id, g->role, until);
		return;
	}
	refusal(b, user, d);
}
