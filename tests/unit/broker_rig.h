/*
 * A whole broker in the test process: the reference policy, a journal in
 * a temp dir, every feature started as sbx-brokerd starts them, and
 * requests handed to the same dispatcher the event loop uses, as any uid.
 * For the unit tests of the broker's ops and sessions.
 */
#ifndef SBX_TEST_BROKER_RIG_H
#define SBX_TEST_BROKER_RIG_H

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "dispatch.h"
#include "sbxio.h"
#include "timeutil.h"

#define RIG_POLICY SBX_TEST_SRCDIR "/packaging/examples/policy.yaml"

struct rig {
	char dir[64];
	char socket[128];
	char state[128];
	struct sbx_broker b;
	struct sbx_caller root;
};

/* Start a broker on the rig's dir (its journal kept across a close and
 * an open: a restart). */
static inline void rig_open(struct rig *r)
{
	struct sbx_policy_errors errs = { 0 };
	char why[1024];

	memset(&r->b, 0, sizeof(r->b));
	cr_assert_eq(sbx_policy_load_file(RIG_POLICY, &r->b.policy, &r->b.settings, &errs), 0);
	sbx_policy_errors_free(&errs);
	free(r->b.policy->broker.socket);
	free(r->b.policy->broker.state_dir);
	r->b.policy->broker.socket = strdup(r->socket);
	r->b.policy->broker.state_dir = strdup(r->state);
	r->b.config_path = strdup(RIG_POLICY);
	cr_assert_eq(sbx_broker_start(&r->b, why, sizeof(why)), 0, "%s", why);
	r->root = (struct sbx_caller){ .uid = 0, .gid = 0, .pid = getpid() };
}

static inline void rig_close(struct rig *r)
{
	sbx_journal_flush(r->b.journal);
	sbx_broker_free(&r->b);
	memset(&r->b, 0, sizeof(r->b));
}

static inline void rig_setup(struct rig *r)
{
	snprintf(r->dir, sizeof(r->dir), "/tmp/sbx-rig-XXXXXX");
	cr_assert_not_null(mkdtemp(r->dir));
	snprintf(r->socket, sizeof(r->socket), "%s/run/broker.sock", r->dir);
	snprintf(r->state, sizeof(r->state), "%s/state", r->dir);
	rig_open(r);
}

static inline void rig_teardown(struct rig *r)
{
	char cmd[128];

	rig_close(r);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->dir);
	cr_assert_eq(system(cmd), 0);
}

/* One loop pass's timers, as the event loop runs them. */
static inline void rig_tick(struct rig *r)
{
	sbx_broker_timers(&r->b, sbx_now());
}

/* One request through the broker's dispatcher, as caller c.  Returns the
 * STATUS; the reply's MESSAGE goes into msg (may be NULL) and, when given,
 * the whole reply into *reply (the caller frees it). */
static inline uint32_t rig_call(struct rig *r, struct sbx_caller *c, sbx_msg *req, char *msg,
				size_t msglen, sbx_msg *reply_out)
{
	sbx_msg reply = { 0 };
	uint64_t wait_seq = 0;
	uint32_t status = 99;
	char buf[1024];

	cr_assert_eq(sbx_msg_finish(req), 0);
	cr_assert_eq(sbx_frame_validate(req->buf, req->len, 0, NULL, 0), 0);
	sbx_broker_handle(&r->b, c, req->buf, req->len, &reply, &wait_seq);
	cr_assert_eq(sbx_msg_finish(&reply), 0);
	cr_assert_eq(sbx_reply_status(reply.buf, reply.len, &status, msg ? msg : buf,
				      msg ? msglen : sizeof(buf)), 0);
	if (reply_out)
		*reply_out = reply;
	else
		sbx_msg_free(&reply);
	sbx_msg_free(req);
	return status;
}

#endif
