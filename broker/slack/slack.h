/*
 * Slack approvals (docs/slack.md).  With a slack: section in the policy,
 * every request that needs approval is posted to the team's incoming
 * webhook as a Block Kit message with Approve/Deny buttons; the buttons
 * call back to an HTTP endpoint inside the broker, which checks Slack's
 * signature, maps the Slack user to a person of the policy and decides
 * through the same functions as `sbxctl approve` and `sbxctl deny`
 * (sbx_broker_approve, sbx_broker_end in broker.h), recording
 * "via":"slack" and "slack_user":"U..." with the approval or denial.
 * Follow-ups (approved, denied, cancelled, lapsed, expired, revoked)
 * update the original message through Slack's response_url when a click
 * gave one, else are posted as new messages.
 *
 * Delivery is never lost: each message is journaled as notify.queued
 * (with the message itself) and sent only once that record is durable,
 * retried with backoff (and Retry-After on 429), journaled as
 * notify.delivered once Slack took it, and resumed after a restart.
 *
 * Everything runs on the broker's event loop; nothing here blocks.
 */
#ifndef SBX_SLACK_H
#define SBX_SLACK_H

#include <jansson.h>

struct sbx_broker;
struct sbx_slack;

/* Before the journal is replayed: set up b->slack, whether or not the
 * settings have a slack: section (so queued messages survive a broker run
 * without one).  0 or -ENOMEM. */
int sbx_slack_new(struct sbx_broker *b);

/* During the start-up replay: notify.* records rebuild the outbox. */
void sbx_slack_replay(struct sbx_slack *s, const json_t *rec);
/* The outbox for a snapshot's "ext"."slack", and back (0; what does not
 * make sense is skipped with a warning). */
json_t *sbx_slack_save(const struct sbx_slack *s);
int sbx_slack_load(struct sbx_slack *s, const json_t *saved);

/* After replay: with a slack: section, read the secret files, open the
 * HTTP endpoint and queue what is missing (requests waiting for approval
 * without a message, follow-ups whose records were cut off by a crash).
 * Returns 0 (also when there is no slack: section), or -1 after logging
 * why the broker must not start (a secret file that is unsafe or
 * unreadable, the port in use, ...). */
int sbx_slack_start(struct sbx_broker *b);

/* Posts in flight are abandoned: they stay queued in the journal and go
 * out after the next start. */
void sbx_slack_free(struct sbx_broker *b);

/* The fd the loop watches for Slack (HTTP callbacks, posts, timers), or
 * -1 when Slack is not running; and what to do when it is readable. */
int sbx_slack_fd(const struct sbx_broker *b);
void sbx_slack_on_ready(struct sbx_broker *b);

/* Every record (live): a request's change may need a message. */
void sbx_slack_on_record(struct sbx_broker *b, const json_t *rec);
/* A message tied to no request: an alert (state "alert", key "alert":
 * the rule) or an access review notice (state "review.due", user
 * "approvers"; docs/review.md).  text is already sanitized. */
struct sbx_slack_notice {
	const char *user, *role, *state, *text;
	const char *key, *value;        /* one more field of notify.queued, or NULL */
};
/* Queue it through the outbox like every other message (notify.queued
 * with id 0).  0 also without a slack: section (nothing queued); -1 when
 * the journal did not take it.  Queued before Slack starts, it is sent
 * once it has. */
int sbx_slack_queue_notice(struct sbx_broker *b, const struct sbx_slack_notice *nt);
/* Every loop pass: queue the messages this pass's changes need, release
 * callback replies whose records are durable, send what is due. */
void sbx_slack_tick(struct sbx_broker *b);
/* SIGHUP: new secrets take effect (rotation); the address needs a
 * restart. */
void sbx_slack_on_reload(struct sbx_broker *b);

#endif
