/*
 * The RBAC policy: loading and validating the YAML file, and the questions
 * the broker asks of it.  docs/policy.md describes every key.
 *
 * Nothing here knows about grants or the journal: the broker combines the
 * policy's answers with its own state.  Names are policy names (later also
 * directory names): a name needs no local unix account.
 */
#ifndef SBX_POLICY_H
#define SBX_POLICY_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "settings.h"

#define SBX_DEFAULT_REASON_MIN 10u
#define SBX_DEFAULT_REQUEST_TTL (24 * 3600)
#define SBX_DEFAULT_MAX_CONNECTIONS 4096u
#define SBX_DEFAULT_MAX_CONNECTIONS_PER_USER 64u
#define SBX_DEFAULT_MAX_CHANGES_PER_MINUTE 30u
/* Ended requests the broker keeps in memory; older ones are in the journal. */
#define SBX_DEFAULT_KEEP_ENDED 10000u

/* One problem found while loading: FILE:LINE:COL: msg (line, col 1-based). */
struct sbx_policy_error {
	int line;
	int col;
	char *msg;
};

struct sbx_policy_errors {
	char *file; /* name used in messages */
	struct sbx_policy_error *v;
	size_t n;
};

void sbx_policy_errors_print(FILE *out, const struct sbx_policy_errors *e);
void sbx_policy_errors_free(struct sbx_policy_errors *e);
/* Append msg as a line-0 problem of file.  0 or -ENOMEM. */
int sbx_policy_errors_add(struct sbx_policy_errors *e, const char *file, const char *msg);

struct sbx_strlist {
	char **v;
	size_t n;
};

/* What happens to a user's processes when a grant of the role ends.  Not
 * written in the file: terminate for a role with a unix_group (its
 * processes hold the group in their credentials), keep otherwise. */
enum sbx_on_expiry { SBX_ON_EXPIRY_UNSET = 0, SBX_ON_EXPIRY_KEEP, SBX_ON_EXPIRY_TERMINATE };

struct sbx_user {
	char *name;
	char *manager; /* NULL when none */
	char *email;
	char *slack_id;
};

struct sbx_group {
	char *name;
	struct sbx_strlist members;
};

/* What a missed review (review_every passed, then review_grace) does
 * (docs/review.md). */
enum sbx_on_missed_review { SBX_MISSED_NOTIFY = 0, SBX_MISSED_SUSPEND };

struct sbx_profile {
	char *name;
	int64_t max_duration;      /* 0 = not set */
	int64_t default_duration;  /* 0 = not set */
	int64_t review_every;      /* 0 = not set */
	int64_t review_grace;      /* 0 = not set (the default: 7d) */
	enum sbx_on_missed_review on_missed_review;
	bool require_reason;
	char *require_ticket;      /* NULL = not set */
	regex_t ticket_re;
	unsigned approvals;        /* 0 = not set */
	unsigned reason_min_length; /* 0 = not set */
	bool auto_approve;
	int64_t retention;         /* seconds the journal keeps records; 0 = not set */
	int64_t api_token_max;     /* 0 = not set: the longest an API token may live */
};

/* A role with its profile already folded in: every field is the effective
 * value the broker enforces. */
struct sbx_role {
	char *name;
	char *description;
	char *profile;             /* NULL when none */
	struct sbx_strlist hosts;  /* fnmatch globs */
	bool matches_host;         /* hosts match broker.host */
	char *unix_group;          /* NULL when none */
	uint32_t gid;
	struct sbx_strlist standing_groups, standing_users;
	struct sbx_strlist eligible_groups, eligible_users;
	bool approver_manager;
	struct sbx_strlist approver_groups, approver_users;
	unsigned approvals;        /* needed when !auto_approve; >= 1 */
	bool auto_approve;
	int64_t default_duration;  /* seconds, <= max_duration */
	int64_t max_duration;      /* seconds */
	bool require_reason;
	unsigned reason_min_length;
	/* A ticket must match every pattern here (the profile's, then the
	 * role's own): a role can only tighten what its profile asks. */
	size_t n_ticket_re;
	char *ticket_pattern[2];
	regex_t ticket_re[2];
	int64_t review_every;      /* 0 = none */
	/* From the profile: after review_every and then review_grace without
	 * a review, notify again or suspend new grants (docs/review.md). */
	int64_t review_grace;      /* seconds (default 7d) */
	enum sbx_on_missed_review on_missed_review;
	enum sbx_on_expiry on_expiry;
	/* A directory refresh that ends someone's eligibility also ends
	 * their grants of this role (revoke_on_ineligible). */
	bool revoke_on_ineligible;
	/* sudo: command patterns (fnmatch, on the command line as sbx_sudo
	 * records it: docs/sudo.md) its grants cover, and those that need a
	 * one-off approval each time (policy_sudo.c).  No allow: any command
	 * (the drift scan too reports a sudoers rule that gives more only
	 * when there is an allow:). */
	struct sbx_strlist sudo_allow, sudo_approve_each;
};

struct sbx_policy {
	char *path;
	char sha256_hex[65];       /* of the file's bytes */
	struct {
		char *host;            /* default: gethostname() */
		char *socket;          /* default: SBX_DEFAULT_SOCKET */
		char *state_dir;       /* default: /var/lib/sbx */
		char *admin_group;     /* NULL = only root */
		int64_t request_ttl;   /* default 24h */
		/* What one local user may hold or do (docs/security.md). */
		unsigned max_connections;          /* default 4096 */
		unsigned max_connections_per_user; /* default 64 */
		unsigned max_changes_per_minute;   /* default 30 */
		unsigned keep_ended;               /* ended requests kept in memory */
	} broker;
	struct sbx_profile *profiles;
	size_t n_profiles;
	struct sbx_group *groups;
	size_t n_groups;
	struct sbx_user *users;
	size_t n_users;
	struct sbx_role *roles;
	size_t n_roles;
	/* The file has a fleet: section: a request may be filed on any host
	 * of the fleet for any role; its hosts patterns decide where the
	 * grant applies (docs/fleet.md). */
	bool fleet_wide;
	/* With a directory: section the file may name users and groups that
	 * only the directory defines; the broker merges the directory's users
	 * and groups in as the last n_dir_users / n_dir_groups entries of
	 * users and groups (policy_directory.h; 0 in a policy as loaded). */
	bool names_from_directory;
	size_t n_dir_users, n_dir_groups;
	void *index; /* private: name lookups */
};

/* Load and validate.  On success returns 0, *out and (when settings is
 * not NULL) the file's other sections in *settings; on any error returns
 * -1 with every problem found appended to errs (never stops at the first).
 * A problem of I/O (missing file, too large, not a regular file) is one
 * error at line 0. */
int sbx_policy_load_file(const char *path, struct sbx_policy **out,
			 struct sbx_settings *settings, struct sbx_policy_errors *errs);
/* The same from memory; name is used in messages and as path. */
int sbx_policy_load_buffer(const char *buf, size_t len, const char *name,
			   struct sbx_policy **out, struct sbx_settings *settings,
			   struct sbx_policy_errors *errs);
void sbx_policy_free(struct sbx_policy *p);

/* Take host as this host's name instead of broker.host (sbx-brokerd
 * --host): every role's hosts patterns are matched again.  0, or -ENOMEM
 * (the policy is unchanged). */
int sbx_policy_set_host(struct sbx_policy *p, const char *host);

const struct sbx_role *sbx_policy_role(const struct sbx_policy *p, const char *name);
const struct sbx_user *sbx_policy_user(const struct sbx_policy *p, const char *name);
const struct sbx_group *sbx_policy_group(const struct sbx_policy *p, const char *name);
bool sbx_policy_in_group(const struct sbx_policy *p, const char *group, const char *user);

enum sbx_membership {
	SBX_MEMBER_NONE = 0,
	SBX_MEMBER_ELIGIBLE = 1,
	SBX_MEMBER_STANDING = 2,
};

/* How user belongs to role.  Standing wins over eligible.  *via (may be
 * NULL) is set to the group name that made them a member, or NULL when
 * they are listed by name. */
enum sbx_membership sbx_policy_membership(const struct sbx_policy *p,
					  const struct sbx_role *r,
					  const char *user, const char **via);

/* The first role that matches this host and makes user a standing member,
 * or NULL.  *via as above. */
const struct sbx_role *sbx_policy_standing_login(const struct sbx_policy *p,
						  const char *user, const char **via);

/* May approver approve user's request for role r?  Never for
 * approver == user ("you cannot approve your own request").  On false,
 * why says so ("carol is not an approver of sandbox-admin: approvers are
 * erin's manager (frank) or security-leads (frank, grace)").  On true, why
 * says on what ground ("manager of erin", "member of security-leads",
 * "approver of prod-data by name"). */
bool sbx_policy_may_approve(const struct sbx_policy *p, const struct sbx_role *r,
			    const char *requester, const char *approver,
			    char *why, size_t whylen);

/* "erin's manager (frank) or security-leads (frank, grace)"; requester may
 * be NULL for the role in general ("the requester's manager or ..."). */
void sbx_policy_approvers_text(const struct sbx_policy *p, const struct sbx_role *r,
			       const char *requester, char *buf, size_t buflen);

/* Check a request against the role's rules.  *duration in: asked seconds
 * (0 = the role's default); out: the granted duration.  Returns 0 when the
 * request may be filed, else -1 with a message for the user, e.g.
 * "sandbox-admin allows at most 2h (asked 3h)", "sandbox-admin needs a
 * reason (--reason) of at least 10 characters", "prod-data needs a ticket
 * (--ticket) matching ^(INC|CHG)-[0-9]+$", "bob is not eligible for
 * sandbox-admin", "sandbox-admin does not apply to this host (sbx-99):
 * its hosts are sbx-*".  Eligibility is part of this check (and comes
 * first: "zed is not in the policy"; a standing member is told there is
 * nothing to request), then host, duration, reason, ticket. */
int sbx_policy_check_request(const struct sbx_policy *p, const struct sbx_role *r,
			     const char *user, int64_t *duration,
			     const char *reason, const char *ticket,
			     char *why, size_t whylen);

/* What a valid policy will not do that its author probably meant, each
 * appended to warn as a line-0 message (sbx_policy_warnings_print says
 * "FILE: warning: ..."):
 * - no role applies to this host (none of the roles' hosts match
 *   broker.host, or there are no roles): nobody logs in through sbx here;
 * - a role's unix_group that group_file (an open group(5) file, normally
 *   /etc/group, read to its end; NULL skips this) already defines with
 *   members, who hold the group whatever sbx grants, or with another gid
 *   than the role's, which sudoers rules naming the group then mean.
 * Returns how many were appended, or -ENOMEM. */
int sbx_policy_warnings(const struct sbx_policy *p, FILE *group_file,
			struct sbx_policy_errors *warn);
void sbx_policy_warnings_print(FILE *out, const struct sbx_policy_errors *warn);

/* policy_sudo.c: what a role's sudo: says about one command line (escaped
 * as sbx_sudo sends it).  SBX_SUDO_FREE: the role says nothing about it;
 * ALLOWED: an allow: pattern matches; APPROVE_EACH: an approve_each:
 * pattern matches (it wins over allow:); NOT_ALLOWED: the role lists
 * allow: patterns and none matches.  *pattern (may be NULL) gets the
 * pattern that decided. */
enum sbx_sudo_rule {
	SBX_SUDO_FREE = 0,
	SBX_SUDO_ALLOWED,
	SBX_SUDO_APPROVE_EACH,
	SBX_SUDO_NOT_ALLOWED,
};
enum sbx_sudo_rule sbx_policy_sudo_rule(const struct sbx_role *r, const char *command,
					const char **pattern);
/* Is s a command pattern the policy accepts (1..1024 bytes, no control
 * characters)? */
bool sbx_policy_sudo_pattern_ok(const char *s);

#endif
