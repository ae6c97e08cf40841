/*
 * Slack approvals (docs/slack.md).  With a slack: section in the policy,
 * every request that needs approval is posted to the team's incoming
 * webhook as a Block Kit message with Approve/Deny buttons; the buttons
 * call back to an HTTP endpoint inside the broker, which checks Slack's
 * signature, maps the Slack user to a person of the policy and decides
 * through the same functions as `sbxctl approve` and `sbxctl deny`
 * (sbx_broker_approve, sbx_broker_end in ops.h), recording
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

#include "ops.h"

/* Before the journal is opened (FEATURE-PREINIT): set up b->slack and
 * register for replay and snapshots, whether or not the policy has a
 * slack: section (so queued messages survive a broker run without one).
 * Returns 0, or -1 (out of memory). */
int sbx_slack_preinit(struct sbx_broker *b);

/* After replay (FEATURE-INIT): with a slack: section, read the secret
 * files, open the HTTP endpoint, hook into the loop and queue what is
 * missing (requests waiting for approval without a message, follow-ups
 * whose records were cut off by a crash).  Returns 0 (also when there is
 * no slack: section), or -1 after logging why the broker must not start
 * (a secret file that is unsafe or unreadable, the port in use, ...). */
int sbx_slack_init(struct sbx_broker *b);

/* FEATURE-FREE.  Posts in flight are abandoned: they stay queued in the
 * journal and go out after the next start. */
void sbx_slack_free(struct sbx_broker *b);

#endif
