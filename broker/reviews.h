/*
 * Access reviews in the broker (docs/review.md): decisions that are
 * recorded and deadlines that have consequences.
 *
 * - `sbxctl review certify|revoke USER ROLE --comment TEXT` (ops
 *   REVIEW_CERTIFY, REVIEW_REVOKE), by the role's approvers or admins,
 *   never by USER: review.certified / review.revoked.  A revoke ends USER's
 *   live grants of ROLE at once and, for an eligible member, takes the
 *   eligibility away while the policy file stays the same (an override
 *   kept in the journal: the revoke record names the policy's sha256).
 * - A role whose profile sets review_every is due that long after its
 *   last review (certify or revoke of any member), or after the first
 *   policy.loaded when it has none: review.due, once per deadline, with
 *   the approvers named (the log says it too).  With on_missed_review:
 *   suspend, review_grace later the role is suspended (review.suspended):
 *   new requests for it are refused, saying why, until a review decision
 *   (review.resumed).
 * - `sbxctl review status` (op REVIEW_STATUS): each reviewed role's last
 *   review, next due date and state.
 *
 * The table is rebuilt from the records (replay) and kept in snapshots
 * under "ext"."reviews".  Everything runs on the event loop.
 */
#ifndef SBX_REVIEWS_H
#define SBX_REVIEWS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sbx_broker;
struct sbx_call;
struct sbx_reviews;

/* Empty, before the replay.  NULL on ENOMEM. */
struct sbx_reviews *sbx_reviews_new(void);
void sbx_reviews_free(struct sbx_reviews *t);

/* review.*, policy.loaded: during the replay and for every live record. */
void sbx_reviews_replay(struct sbx_reviews *t, const json_t *rec);
void sbx_reviews_on_record(struct sbx_broker *b, const json_t *rec);
/* The table for a snapshot's "ext"."reviews", and back (0 or -1). */
json_t *sbx_reviews_save(const struct sbx_reviews *t);
int sbx_reviews_load(struct sbx_reviews *t, const json_t *saved);

/* Every loop pass: record the deadlines that passed (review.due,
 * review.suspended) and what ended (review.resumed). */
void sbx_reviews_tick(struct sbx_broker *b, int64_t now_us);

/* May person file a request for role now?  0, or -1 with why: the role
 * is suspended for a missed review, or person's eligibility was revoked
 * in a review under this policy. */
int sbx_reviews_check_request(const struct sbx_broker *b, const char *role, const char *person,
			      char *why, size_t whylen);

/* Was user's eligibility for role revoked in a review (under the policy in
 * force)?  true with a sentence in why. */
bool sbx_reviews_revoked(const struct sbx_broker *b, const char *user, const char *role,
			 char *why, size_t whylen);

/* The ops. */
void sbx_op_review_decide(struct sbx_broker *b, struct sbx_call *c);
void sbx_op_review_status(struct sbx_broker *b, struct sbx_call *c);

#endif
