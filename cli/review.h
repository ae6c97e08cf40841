/*
 * sbxctl review: access reviews (docs/review.md).  The report reads the
 * journal and the policy offline, like `audit query`; the decisions and
 * the status ask the broker.
 */
#ifndef SBX_CLI_REVIEW_H
#define SBX_CLI_REVIEW_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "client.h"
#include "review_agg.h"

enum sbx_review_format {
	SBX_REVIEW_MD,
	SBX_REVIEW_CSV,
	SBX_REVIEW_JSON,
	SBX_REVIEW_HTML,
};

/* "md", "csv", "json", "html" -> 0 and *f; -EINVAL otherwise. */
int sbx_review_parse_format(const char *s, enum sbx_review_format *f);

struct sbx_review_args {
	const char *config;      /* the policy (required: it says who may do what) */
	const char *state_dir;   /* NULL: the policy's broker.state_dir */
	const char *since;       /* "90d", an RFC 3339 time or a date; NULL: 90d */
	const char *quarter;     /* "2026Q4"; excludes since */
	const char *role, *user;
	const char *format;      /* NULL: md */
	const char *out;         /* NULL: stdout */
	bool online;             /* merge the directory's users and groups in */
	int64_t now_us;          /* 0: the clock */
};

/* sbxctl review report.  Returns the exit code. */
int sbx_review_report(const struct sbx_cli *c, const struct sbx_review_args *a);

/* sbxctl review certify|revoke USER ROLE --comment TEXT, and review
 * status: ask the broker.  Return the exit code. */
int sbx_review_decide(const struct sbx_cli *c, bool revoke, const char *user, const char *role,
		      const char *comment);
int sbx_review_status(const struct sbx_cli *c);

/* Renderers (review_out.c), for the report and the tests.  0 or -1. */
json_t *sbx_review_to_json(const struct sbx_review *rv);
int sbx_review_write(FILE *f, const struct sbx_review *rv, enum sbx_review_format fmt);

#endif
