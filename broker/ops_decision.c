/*
 * The ops approvers and admins call: what waits for me, approve, deny,
 * revoke, and the grants in force.  The decisions themselves are
 * sbx_broker_approve / sbx_broker_end (broker.c), which Slack uses too.
 */
#include "config.h"

#include "dispatch.h"

#include "pages.h"

#include "timeutil.h"

#include <stdio.h>
#include <string.h>

static bool pick_pending(struct sbx_broker *b, const struct sbx_call *c,
			 const struct sbx_req *r, int64_t now)
{
	char why[256];

	(void)now;
	if (r->state != SBX_REQ_PENDING)
		return false;
	return c->who.admin || sbx_broker_may_decide(b, r, c->who.person, why, sizeof(why));
}

void sbx_op_pending(struct sbx_broker *b, struct sbx_call *c)
{
	/* Oldest first: who waits longest comes first. */
	sbx_reply_page(b, c, false, pick_pending);
}

/* Approve, deny and revoke name a request the caller may see (to anyone
 * else it does not exist).  Slack's buttons skip this: whoever presses
 * one has seen the request in the channel. */
static bool names_visible_request(struct sbx_broker *b, struct sbx_call *c)
{
	const struct sbx_req *r;
	char why[300];

	if (!c->a.has_id || !c->a.id) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "a request id is required");
		return false;
	}
	r = sbx_state_get(b->state, c->a.id);
	if (r && sbx_broker_may_see(b, r, c->who.person, c->who.admin))
		return true;
	if (sbx_state_forgotten(b->state, c->a.id))
		sbx_reply_fail(c, SBX_ST_REFUSED, "%s",
			       sbx_broker_forgotten(b, c->a.id, why, sizeof(why)));
	else
		sbx_reply_fail(c, SBX_ST_NOTFOUND, "no request %u", c->a.id);
	return false;
}

void sbx_op_approve(struct sbx_broker *b, struct sbx_call *c)
{
	char why[512];
	int rc;

	if (!names_visible_request(b, c))
		return;
	if (c->a.has_duration && c->a.duration <= 0) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "the duration must be positive");
		return;
	}
	rc = sbx_broker_approve(b, c->a.id, c->who.person, c->who.through, c->a.comment,
				c->a.has_duration ? c->a.duration : 0, NULL, &c->wait_seq, why,
				sizeof(why));
	sbx_reply_decision(b, c, rc, why);
}

void sbx_op_deny_revoke(struct sbx_broker *b, struct sbx_call *c)
{
	char why[512];
	int rc;

	if (!names_visible_request(b, c))
		return;
	rc = sbx_broker_end(b, c->a.id, c->a.op == SBX_OP_DENY, c->who.person, c->who.through,
			    c->who.admin, c->a.reason, NULL, &c->wait_seq, why, sizeof(why));
	sbx_reply_decision(b, c, rc, why);
}

static bool pick_grant(struct sbx_broker *b, const struct sbx_call *c, const struct sbx_req *r,
		       int64_t now)
{
	bool ended = r->state == SBX_REQ_EXPIRED || r->state == SBX_REQ_REVOKED;

	(void)b;
	if (!sbx_req_live(r, now) && !((c->a.flags & SBX_LIST_ALL) && ended))
		return false;
	if (c->a.user[0] && strcmp(r->user, c->a.user) != 0)
		return false;
	return c->who.admin || strcmp(r->user, c->who.person) == 0;
}

void sbx_op_grants(struct sbx_broker *b, struct sbx_call *c)
{
	if (!c->who.admin && c->a.user[0] && strcmp(c->a.user, c->who.person) != 0) {
		sbx_reply_fail(c, SBX_ST_REFUSED, "only admins may list other people's grants");
		return;
	}
	sbx_reply_page(b, c, true, pick_grant);
}
