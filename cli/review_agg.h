/*
 * Access reviews: folding the journal and the policy into one row per
 * role and user (sbxctl review report, docs/review.md).  Pure: records go
 * in one at a time (in journal order), rows come out; nothing here reads
 * a file or prints.
 */
#ifndef SBX_CLI_REVIEW_AGG_H
#define SBX_CLI_REVIEW_AGG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

/* The default of review.unused_after (docs/review.md). */
#define SBX_REVIEW_UNUSED_AFTER_DEFAULT (30 * 86400)
/* Distinct reasons and tickets kept per row (the rest are counted). */
#define SBX_REVIEW_KEEP_TEXTS 5
/* Distinct approvers kept per row. */
#define SBX_REVIEW_KEEP_APPROVERS 8
/* Weeks the chart of grants can show (a longer period shows its last ones). */
#define SBX_REVIEW_MAX_WEEKS 60

enum sbx_review_flag {
	SBX_RF_UNUSED = 1u << 0,        /* standing access not used for unused_after */
	SBX_RF_MAX_DURATION = 1u << 1,  /* grants repeatedly at the role's max_duration */
	SBX_RF_SAME_APPROVER = 1u << 2, /* one approver for every approved grant */
	SBX_RF_AUTO_SENSITIVE = 1u << 3,/* auto-approved grants of a sensitive role */
	SBX_RF_DRIFT = 1u << 4,         /* open drift findings */
	SBX_RF_OVERDUE = 1u << 5,       /* the role's review is overdue */
	SBX_RF_REVOKED_STANDING = 1u << 6, /* revoked in a review, still standing in the file */
};
#define SBX_REVIEW_N_FLAGS 7

/* "unused", "max-duration", ... for bit i (0-based). */
const char *sbx_review_flag_name(unsigned bit);
/* One sentence for people, e.g. "standing access not used for 30d". */
const char *sbx_review_flag_text(unsigned bit);

enum sbx_review_access {
	SBX_RA_NONE = 0,    /* only seen in the journal (no longer in the policy) */
	SBX_RA_ELIGIBLE,
	SBX_RA_STANDING,
};

struct sbx_review_text {
	char *s;
	unsigned n;
};

struct sbx_review_row {
	char *role, *user;
	enum sbx_review_access access;
	char *source;            /* "policy file (by name)", "group ops (policy file)", ... */
	/* Grants activated in the period. */
	unsigned grants;
	int64_t grant_secs;      /* their durations added up */
	unsigned at_max;         /* of them at the role's max_duration */
	unsigned auto_approved;  /* of them needing no approval */
	unsigned approved;       /* of them approved by someone */
	int64_t wait_secs_sum;   /* request filed -> grant live, over approved ones */
	int64_t wait_secs_max;
	struct sbx_review_text reasons[SBX_REVIEW_KEEP_TEXTS];
	size_t n_reasons;
	unsigned more_reasons;
	struct sbx_review_text tickets[SBX_REVIEW_KEEP_TEXTS];
	size_t n_tickets;
	unsigned more_tickets;
	struct sbx_review_text approvers[SBX_REVIEW_KEEP_APPROVERS];
	size_t n_approvers;
	unsigned more_approvers;
	/* Use: allowed logins (access.checked) and sessions in the period. */
	unsigned logins, sessions;
	int64_t last_login_us;   /* ever (up to the period's end); 0: never */
	int64_t last_session_us;
	/* sudo commands run under the row's grants or standing role in the
	 * period (command.run, docs/sudo.md). */
	unsigned commands;
	unsigned drift_open;
	/* Review decisions (the last one). */
	int64_t decided_us;      /* 0: none */
	bool revoked;            /* the last decision was a revoke */
	char *decided_by;
	char *decision_comment;
	unsigned flags;          /* enum sbx_review_flag */
};

struct sbx_review_role {
	char *name;
	bool in_policy;
	bool sensitive;          /* has a unix_group or a review_every */
	int64_t review_every;    /* seconds, 0: none */
	int64_t max_duration;
	int64_t first_seen_us;   /* first policy.loaded with it (or the first at all) */
	int64_t last_review_us;  /* last review.certified/revoked of the role; 0: none */
	int64_t next_due_us;     /* 0: no review_every */
	bool overdue;
	unsigned grants;         /* in the period */
	unsigned week[SBX_REVIEW_MAX_WEEKS]; /* grants per week, from the period's start */
};

struct sbx_review_opts {
	int64_t since_us, until_us;  /* the period: since <= time < until */
	int64_t now_us;              /* the report's "now" (unused, overdue) */
	const char *role, *user;     /* only rows of these (NULL: all) */
	int64_t unused_after;        /* seconds */
};

struct sbx_review;

/* p is borrowed and must outlive the review.  NULL on ENOMEM. */
struct sbx_review *sbx_review_new(const struct sbx_policy *p, const struct sbx_review_opts *o);
/* One journal record, in order.  0, or -1 (ENOMEM). */
int sbx_review_add(struct sbx_review *rv, const json_t *rec);
/* After the last record: flags, roles' dates, rows sorted (flagged first,
 * then role, user).  0 or -1 (ENOMEM). */
int sbx_review_finish(struct sbx_review *rv);

struct sbx_review_summary {
	size_t rows, flagged, roles;
	unsigned grants;
	int64_t grant_secs;
	unsigned logins, drift_open, records;
	unsigned flag_count[SBX_REVIEW_N_FLAGS];
	unsigned weeks;          /* columns of the chart */
	int64_t week0_us;        /* the first week's start */
};

const struct sbx_review_opts *sbx_review_opts_of(const struct sbx_review *rv);
void sbx_review_summary(const struct sbx_review *rv, struct sbx_review_summary *s);
size_t sbx_review_n_rows(const struct sbx_review *rv);
const struct sbx_review_row *sbx_review_row_at(const struct sbx_review *rv, size_t i);
size_t sbx_review_n_roles(const struct sbx_review *rv);
const struct sbx_review_role *sbx_review_role_at(const struct sbx_review *rv, size_t i);
/* The role of that name, or NULL. */
const struct sbx_review_role *sbx_review_role_find(const struct sbx_review *rv, const char *name);
void sbx_review_free(struct sbx_review *rv);

/* --quarter 2026Q4 -> [2026-10-01, 2027-01-01) in Unix microseconds.
 * 0 or -EINVAL. */
int sbx_review_parse_quarter(const char *s, int64_t *since_us, int64_t *until_us);

#endif
