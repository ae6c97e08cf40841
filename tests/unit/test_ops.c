/*
 * The broker's decision rules, in process: filing requests, approving,
 * denying, revoking, cancelling, giving back, who may see and do what, and
 * the dispatcher's own rules (unknown ops, fields an op does not take,
 * root-only ops), all through sbx_broker_handle as the event loop calls
 * it, on the reference policy.  People act through root's --as, as
 * pam_sbx and the demo do; "nobody" stands for an unprivileged caller.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "broker_rig.h"

static struct rig R;

static void setup(void)
{
	rig_setup(&R);
}

static void teardown(void)
{
	rig_teardown(&R);
}

TestSuite(ops, .init = setup, .fini = teardown);

static char msg[1024];

/* op with AS_USER as (NULL: the caller itself) and the fields below. */
struct req {
	uint16_t op;
	const char *as, *user, *role, *reason, *ticket, *comment;
	uint32_t id, extends;
	int64_t duration;
	uint16_t extra_tag; /* a field to add that the op may not take */
};

static uint32_t send_as(struct sbx_caller *c, const struct req *q, uint32_t *id_out)
{
	sbx_msg m, reply = { 0 };
	uint32_t st;
	sbx_reader rd, rec;
	sbx_field f, g;

	sbx_msg_init(&m, q->op);
	if (q->as)
		sbx_msg_put_str(&m, SBX_F_AS_USER, q->as);
	sbx_msg_put_str_opt(&m, SBX_F_USER, q->user);
	sbx_msg_put_str_opt(&m, SBX_F_ROLE, q->role);
	sbx_msg_put_str_opt(&m, SBX_F_REASON, q->reason);
	sbx_msg_put_str_opt(&m, SBX_F_TICKET, q->ticket);
	sbx_msg_put_str_opt(&m, SBX_F_COMMENT, q->comment);
	if (q->id)
		sbx_msg_put_u32(&m, SBX_F_ID, q->id);
	if (q->extends)
		sbx_msg_put_u32(&m, SBX_F_EXTENDS, q->extends);
	if (q->duration)
		sbx_msg_put_i64(&m, SBX_F_DURATION, q->duration);
	if (q->extra_tag)
		sbx_msg_put_u32(&m, q->extra_tag, 1);
	st = rig_call(&R, c, &m, msg, sizeof(msg), &reply);
	if (id_out) {
		*id_out = 0;
		sbx_reader_init_frame(&rd, reply.buf, reply.len);
		if (sbx_reader_find(&rd, SBX_F_REQUEST, &f) == 1) {
			sbx_reader_init_rec(&rec, &f);
			if (sbx_reader_find(&rec, SBX_F_ID, &g) == 1)
				*id_out = sbx_field_u32(&g);
		}
	}
	sbx_msg_free(&reply);
	return st;
}

static uint32_t as_root(const struct req *q, uint32_t *id)
{
	return send_as(&R.root, q, id);
}

static const struct sbx_req *req_of(uint32_t id)
{
	const struct sbx_req *r = sbx_state_get(R.b.state, id);

	cr_assert_not_null(r, "no request %u", id);
	return r;
}

/* erin asks for sandbox-admin (frank, her manager, may approve). */
static uint32_t erin_asks(void)
{
	uint32_t id = 0;

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin",
					    .reason = "debug the ingest pipeline" }, &id),
		     SBX_ST_OK, "%s", msg);
	cr_assert_str_eq(msg, "pending approval");
	return id;
}

static uint32_t erin_holds(void)
{
	uint32_t id = erin_asks();

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank", .id = id }, NULL),
		     SBX_ST_OK, "%s", msg);
	cr_assert_eq(req_of(id)->state, SBX_REQ_ACTIVE);
	return id;
}

/* ---- filing ---------------------------------------------------------------- */

Test(ops, an_eligible_person_files_a_pending_request)
{
	uint32_t id = erin_asks();
	const struct sbx_req *r = req_of(id);

	cr_assert_str_eq(r->user, "erin");
	cr_assert_eq(r->state, SBX_REQ_PENDING);
	cr_assert_eq(r->duration, 3600, "the role's default_duration");
	cr_assert_eq(r->approvals_needed, 1);
	cr_assert_str_eq(r->through, "root", "root spoke for erin");
}

Test(ops, an_auto_approve_role_is_granted_at_once)
{
	uint32_t id = 0;

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "carol",
					    .role = "sandbox-readonly", .duration = 600 }, &id),
		     SBX_ST_OK, "%s", msg);
	cr_assert_str_eq(msg, "granted");
	cr_assert_eq(req_of(id)->state, SBX_REQ_ACTIVE);
	cr_assert_gt(req_of(id)->expires_at, sbx_now() + 590);
}

Test(ops, requests_the_policy_refuses)
{
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "bob",
					    .role = "sandbox-admin", .reason = "I would like root" },
			     NULL), SBX_ST_REFUSED);
	cr_assert(strstr(msg, "not eligible"), "%s", msg);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin", .reason = "too long a time",
					    .duration = 3 * 3600 }, NULL), SBX_ST_REFUSED);
	cr_assert(strstr(msg, "at most 2h"), "%s", msg);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin" }, NULL), SBX_ST_REFUSED);
	cr_assert(strstr(msg, "reason"), "%s", msg);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "no-such-role" }, NULL), SBX_ST_NOTFOUND);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin" }, NULL),
		     SBX_ST_BADINPUT);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin", .reason = "negative time",
					    .duration = -5 }, NULL), SBX_ST_BADINPUT);
	cr_assert_eq(sbx_state_count(R.b.state), 0, "nothing refused was recorded");
}

Test(ops, one_open_request_per_role)
{
	uint32_t id = erin_asks();

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin", .reason = "asking a second time" },
			     NULL), SBX_ST_REFUSED);
	cr_assert(strstr(msg, "already has pending request"), "%s", msg);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank", .id = id }, NULL),
		     SBX_ST_OK);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin", .reason = "asking a second time" },
			     NULL), SBX_ST_REFUSED);
	cr_assert(strstr(msg, "already holds grant"), "%s", msg);
}

/* A request asked again the same way (its reply was lost) is the open one,
 * pending or granted, and nothing is recorded; any difference is a new
 * request, refused while one is open. */
Test(ops, a_repeated_request_is_the_open_one)
{
	const struct req again = { .op = SBX_OP_REQUEST, .as = "erin", .role = "sandbox-admin",
				   .reason = "debug the ingest pipeline" };
	uint32_t id = erin_asks(), got = 0;
	uint64_t last = sbx_journal_last_seq(R.b.journal);

	cr_assert_eq(as_root(&again, &got), SBX_ST_OK, "%s", msg);
	cr_assert_eq(got, id);
	cr_assert(strstr(msg, "already exists (pending)"), "%s", msg);
	cr_assert_eq(sbx_journal_last_seq(R.b.journal), last, "a retry recorded something");
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin",
					    .reason = "debug the ingest pipeline", .ticket = "OPS-1" },
			     NULL), SBX_ST_REFUSED, "another ticket is another request");
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin",
					    .reason = "debug the ingest pipeline", .duration = 600 },
			     NULL), SBX_ST_REFUSED, "another duration is another request");
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank", .id = id }, NULL),
		     SBX_ST_OK, "%s", msg);
	cr_assert_eq(as_root(&again, &got), SBX_ST_OK, "%s", msg);
	cr_assert_eq(got, id);
	cr_assert(strstr(msg, "already exists (active)"), "%s", msg);
	/* Someone else asking with erin's words is not erin's retry. */
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "dave",
					    .role = "sandbox-admin",
					    .reason = "debug the ingest pipeline" }, &got),
		     SBX_ST_OK, "%s", msg);
	cr_assert_neq(got, id);
}

Test(ops, an_extension_runs_on_from_the_grant)
{
	uint32_t id = erin_holds(), ext = 0;

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin", .extends = id,
					    .reason = "the pipeline still fails", .duration = 1800 },
			     &ext), SBX_ST_OK, "%s", msg);
	cr_assert_str_eq(req_of(ext)->role, "sandbox-admin");
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank", .id = ext },
			     NULL), SBX_ST_OK, "%s", msg);
	cr_assert_eq(req_of(ext)->expires_at, req_of(id)->expires_at + 1800);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "dave", .extends = id,
					    .reason = "not my grant at all" }, NULL),
		     SBX_ST_REFUSED);
	cr_assert(strstr(msg, "belongs to erin"), "%s", msg);
}

/* ---- approving ---------------------------------------------------------------- */

Test(ops, nobody_approves_their_own_request)
{
	uint32_t id = erin_asks();

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "erin", .id = id }, NULL),
		     SBX_ST_REFUSED);
	cr_assert(strstr(msg, "own request"), "%s", msg);
	cr_assert_eq(req_of(id)->state, SBX_REQ_PENDING);
}

Test(ops, only_approvers_approve)
{
	uint32_t id = erin_asks();

	/* carol may not decide erin's request, so for her it does not exist. */
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "carol", .id = id },
			     NULL), SBX_ST_NOTFOUND);
	cr_assert_str_eq(msg, "no request 1");
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "grace", .id = id,
					    .comment = "security lead says yes" }, NULL),
		     SBX_ST_OK, "%s", msg);
	cr_assert_str_eq(msg, "approved: the grant is active");
	cr_assert_str_eq(req_of(id)->approvals[0].who, "grace");
	cr_assert_str_eq(req_of(id)->unix_group, "sbx-admin");
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank", .id = id }, NULL),
		     SBX_ST_REFUSED);
	cr_assert(strstr(msg, "not pending"), "%s", msg);
}

Test(ops, an_approver_may_shorten_never_lengthen)
{
	uint32_t id = erin_asks();

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank", .id = id,
					    .duration = 7200 }, NULL), SBX_ST_BADINPUT);
	cr_assert(strstr(msg, "never lengthen"), "%s", msg);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank", .id = id,
					    .duration = 900 }, NULL), SBX_ST_OK, "%s", msg);
	cr_assert_eq(req_of(id)->expires_at - req_of(id)->activated_at, 900);
}

Test(ops, decisions_name_a_request_that_exists)
{
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank" }, NULL),
		     SBX_ST_BADINPUT);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank", .id = 99 }, NULL),
		     SBX_ST_NOTFOUND);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REVOKE, .id = 99 }, NULL),
		     SBX_ST_NOTFOUND);
}

/* ---- denying, revoking, cancelling, giving back ----------------------------------- */

Test(ops, deny_is_for_approvers_and_pending_requests)
{
	uint32_t id = erin_asks();

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_DENY, .as = "erin", .id = id }, NULL),
		     SBX_ST_REFUSED, "a requester cancels, never denies");
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_DENY, .as = "frank", .id = id,
					    .reason = "not this week" }, NULL), SBX_ST_OK, "%s", msg);
	cr_assert_eq(req_of(id)->state, SBX_REQ_DENIED);
	cr_assert_str_eq(req_of(id)->end_reason, "not this week");
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_DENY, .as = "frank", .id = id }, NULL),
		     SBX_ST_REFUSED);
}

Test(ops, revoke_by_an_approver_or_an_admin)
{
	uint32_t a = erin_holds(), b;

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REVOKE, .as = "carol", .id = a }, NULL),
		     SBX_ST_NOTFOUND);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REVOKE, .as = "frank", .id = a,
					    .reason = "compromised laptop" }, NULL),
		     SBX_ST_OK, "%s", msg);
	cr_assert_eq(req_of(a)->state, SBX_REQ_REVOKED);
	cr_assert_str_eq(req_of(a)->ended_by, "frank");
	b = erin_holds();
	/* root, not acting for anyone, is an admin: may end what it could not
	 * approve. */
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REVOKE, .id = b }, NULL), SBX_ST_OK,
		     "%s", msg);
	cr_assert_str_eq(req_of(b)->end_reason, "revoked");
}

Test(ops, a_holder_gives_back_and_a_requester_cancels)
{
	uint32_t g = erin_holds(), p = 0;

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_DROP, .as = "dave", .id = g }, NULL),
		     SBX_ST_NOTFOUND);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_DROP, .as = "frank", .id = g }, NULL),
		     SBX_ST_REFUSED, "frank, erin's approver, sees the grant but may not drop it");
	cr_assert(strstr(msg, "not yours"), "%s", msg);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_DROP, .as = "erin", .id = g,
					    .reason = "done early" }, NULL), SBX_ST_OK, "%s", msg);
	cr_assert_str_eq(req_of(g)->end_reason, "given back by erin: done early");
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "dave",
					    .role = "sandbox-admin", .reason = "rotate certificates" },
			     &p), SBX_ST_OK);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_CANCEL, .as = "erin", .id = p }, NULL),
		     SBX_ST_NOTFOUND);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_CANCEL, .as = "dave", .id = p }, NULL),
		     SBX_ST_OK, "%s", msg);
	cr_assert_eq(req_of(p)->state, SBX_REQ_CANCELLED);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_CANCEL, .as = "dave", .id = p }, NULL),
		     SBX_ST_REFUSED);
}

/* ---- who may see and act ------------------------------------------------------------- */

Test(ops, only_root_and_admins_act_for_others)
{
	struct sbx_caller nobody = { .uid = 65534, .gid = 65534, .pid = getpid() };

	cr_assert_eq(send_as(&nobody, &(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
						     .role = "sandbox-admin",
						     .reason = "pretending to be erin" }, NULL),
		     SBX_ST_REFUSED);
	cr_assert(strstr(msg, "may act for another user"), "%s", msg);
	cr_assert_eq(sbx_state_count(R.b.state), 0);
}

Test(ops, a_request_is_seen_by_its_owner_approvers_and_admins)
{
	uint32_t id = erin_asks();

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_STATUS, .as = "erin", .id = id }, NULL),
		     SBX_ST_OK);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_STATUS, .as = "frank", .id = id }, NULL),
		     SBX_ST_OK);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_STATUS, .id = id }, NULL), SBX_ST_OK);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_STATUS, .as = "carol", .id = id }, NULL),
		     SBX_ST_NOTFOUND);
	cr_assert_str_eq(msg, "no request 1", "nothing about whose it is");
}

Test(ops, walking_ids_tells_an_outsider_nothing)
{
	uint32_t id = erin_asks();
	char seen[1024];
	uint16_t ops[] = { SBX_OP_STATUS, SBX_OP_APPROVE, SBX_OP_DENY, SBX_OP_REVOKE,
			   SBX_OP_CANCEL, SBX_OP_DROP };

	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		cr_assert_eq(as_root(&(struct req){ .op = ops[i], .as = "carol", .id = id }, NULL),
			     SBX_ST_NOTFOUND, "op 0x%04x", ops[i]);
		snprintf(seen, sizeof(seen), "%s", msg);
		cr_assert_eq(as_root(&(struct req){ .op = ops[i], .as = "carol", .id = 999 }, NULL),
			     SBX_ST_NOTFOUND);
		cr_assert(strstr(seen, "erin") == NULL && strstr(seen, "sandbox-admin") == NULL &&
			  strstr(seen, "frank") == NULL, "op 0x%04x told carol: %s", ops[i], seen);
	}
}

Test(ops, a_holder_is_told_how_to_end_their_own)
{
	uint32_t g = erin_holds(), p = 0;

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REVOKE, .as = "erin", .id = g }, NULL),
		     SBX_ST_REFUSED);
	cr_assert(strstr(msg, "give it back with: sbx-request drop"), "%s", msg);
	cr_assert_null(strstr(msg, "approve"), "%s", msg);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "dave",
					    .role = "sandbox-admin", .reason = "rotate certificates" },
			     &p), SBX_ST_OK);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_DENY, .as = "dave", .id = p }, NULL),
		     SBX_ST_REFUSED);
	cr_assert(strstr(msg, "cancel it with: sbx-request cancel"), "%s", msg);
}

Test(ops, check_and_explain_are_about_oneself_unless_admin)
{
	struct sbx_caller nobody = { .uid = 65534, .gid = 65534, .pid = getpid() };

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_CHECK, .user = "alice" }, NULL),
		     SBX_ST_OK);
	cr_assert(strstr(msg, "standing member of sandbox-user"), "%s", msg);
	cr_assert_eq(send_as(&nobody, &(struct req){ .op = SBX_OP_CHECK, .user = "alice" }, NULL),
		     SBX_ST_REFUSED);
	cr_assert(strstr(msg, "only check yourself"), "%s", msg);
	cr_assert_eq(send_as(&nobody, &(struct req){ .op = SBX_OP_EXPLAIN, .user = "alice" }, NULL),
		     SBX_ST_REFUSED);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_CHECK, .user = "bad name!" }, NULL),
		     SBX_ST_BADINPUT);
}

Test(ops, a_grant_lets_its_holder_log_in_until_it_ends)
{
	struct sbx_decision d;
	uint32_t id;

	sbx_broker_decide(&R.b, "erin", sbx_now(), &d);
	cr_assert_not(d.allowed);
	cr_assert(strstr(d.message, "Eligible: sandbox-admin"), "%s", d.message);
	id = erin_holds();
	sbx_broker_decide(&R.b, "erin", sbx_now(), &d);
	cr_assert(d.allowed, "%s", d.message);
	cr_assert_eq(d.grant, id);
	cr_assert_eq(sbx_broker_expire(&R.b, req_of(id)->expires_at), 1);
	cr_assert_eq(req_of(id)->state, SBX_REQ_EXPIRED);
	sbx_broker_decide(&R.b, "erin", sbx_now(), &d);
	cr_assert_not(d.allowed);
}

Test(ops, an_extension_ends_with_the_grant_it_extends)
{
	uint32_t g = erin_holds(), ext = 0;

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin", .extends = g,
					    .reason = "one more hour please", .duration = 1800 },
			     &ext), SBX_ST_OK, "%s", msg);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REVOKE, .as = "frank", .id = g,
					    .reason = "compromised laptop" }, NULL), SBX_ST_OK);
	cr_assert_eq(req_of(ext)->state, SBX_REQ_CANCELLED, "the pending extension went with it");
	cr_assert(strstr(req_of(ext)->end_reason, "which it extends, ended"), "%s",
		  req_of(ext)->end_reason);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank", .id = ext },
			     NULL), SBX_ST_REFUSED);
	cr_assert_eq(req_of(g)->state, SBX_REQ_REVOKED, "no fresh hour after a revocation");
}

Test(ops, an_extension_of_an_ended_grant_is_never_approved)
{
	uint32_t g = erin_holds(), ext = 0;

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin", .extends = g,
					    .reason = "one more hour please" }, &ext), SBX_ST_OK);
	/* As if the end of the grant and its extension were not linked (a
	 * journal from before this rule): the approval itself checks. */
	((struct sbx_req *)req_of(g))->state = SBX_REQ_EXPIRED;
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank", .id = ext },
			     NULL), SBX_ST_REFUSED);
	cr_assert(strstr(msg, "has ended"), "%s", msg);
	((struct sbx_req *)req_of(g))->state = SBX_REQ_ACTIVE;
}

/* ---- what a local user can make the broker write ----------------------------------- */

Test(ops, only_root_checks_are_recorded)
{
	struct sbx_caller nobody = { .uid = 65534, .gid = 65534, .pid = getpid() };
	uint64_t before = sbx_journal_last_seq(R.b.journal);
	sbx_msg m;

	/* nobody is no admin, whatever groups this machine has */
	free(R.b.policy->broker.admin_group);
	R.b.policy->broker.admin_group = NULL;
	sbx_msg_init(&m, SBX_OP_CHECK);
	sbx_msg_put_str(&m, SBX_F_USER, "nobody");
	sbx_msg_put_str(&m, SBX_F_SERVICE, "sshd");
	sbx_msg_put_u32(&m, SBX_F_FLAGS, SBX_CHECK_RECORD);
	cr_assert_eq(rig_call(&R, &nobody, &m, msg, sizeof(msg), NULL), SBX_ST_OK, "%s", msg);
	cr_assert_eq(sbx_journal_last_seq(R.b.journal), before, "nobody's check wrote nothing");
	sbx_msg_init(&m, SBX_OP_CHECK);
	sbx_msg_put_str(&m, SBX_F_USER, "alice");
	sbx_msg_put_u32(&m, SBX_F_FLAGS, SBX_CHECK_RECORD);
	cr_assert_eq(rig_call(&R, &R.root, &m, msg, sizeof(msg), NULL), SBX_ST_OK, "%s", msg);
	cr_assert_eq(sbx_journal_last_seq(R.b.journal), before + 1, "root's check is recorded");
}

Test(ops, changes_past_the_budget_are_refused_with_slow_down)
{
	struct sbx_caller nobody = { .uid = 65534, .gid = 65534, .pid = getpid() };
	unsigned budget = R.b.policy->broker.max_changes_per_minute, refused = 0;
	uint64_t before = sbx_journal_last_seq(R.b.journal);

	for (unsigned i = 0; i < budget + 5; i++) {
		uint32_t st = send_as(&nobody, &(struct req){ .op = SBX_OP_CANCEL, .id = 1 }, NULL);

		if (st == SBX_ST_REFUSED && strstr(msg, "slow down")) {
			refused++;
			cr_assert(strstr(msg, "max_changes_per_minute"), "%s", msg);
		}
	}
	cr_assert_eq(refused, 5, "exactly the calls past the budget (%u) are refused", budget);
	cr_assert_eq(sbx_journal_last_seq(R.b.journal), before);
	/* root (pam_sbx, sshd) is never slowed down */
	for (unsigned i = 0; i < budget + 5; i++)
		cr_assert_neq(as_root(&(struct req){ .op = SBX_OP_CANCEL, .as = "erin", .id = 99 },
				      NULL), SBX_ST_REFUSED, "%s", msg);
}

/* ---- the dispatcher ---------------------------------------------------------------- */

Test(ops, text_that_is_not_utf8_is_refused_whole)
{
	uint64_t before = sbx_journal_last_seq(R.b.journal);

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin",
					    .reason = "debug \xff\xfe the pipeline please" }, NULL),
		     SBX_ST_BADINPUT);
	cr_assert(strstr(msg, "reason is not valid UTF-8"), "%s", msg);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin",
					    .reason = "overlong \xc0\xaf slash in it" }, NULL),
		     SBX_ST_BADINPUT);
	cr_assert_eq(sbx_journal_last_seq(R.b.journal), before, "nothing was recorded");
}

Test(ops, a_del_in_a_reason_reaches_the_journal_escaped)
{
	uint32_t id = 0;
	char path[256], line[4096];
	FILE *f;
	bool found = false;

	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin",
					    .reason = "a DEL \x7f in the middle" }, &id), SBX_ST_OK);
	cr_assert_str_eq(req_of(id)->reason, "a DEL \x7f in the middle", "kept as given");
	cr_assert_eq(sbx_journal_flush(R.b.journal), 0);
	snprintf(path, sizeof(path), "%s/journal/000000000001.jsonl", R.state);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (fgets(line, sizeof(line), f)) {
		for (char *p = line; *p; p++)
			cr_assert(*p != 0x7f, "a raw DEL in the journal: %s", line);
		if (strstr(line, "a DEL \\u007f in the middle"))
			found = true;
	}
	fclose(f);
	cr_assert(found, "the reason is in the journal, escaped");
}

Test(ops, unknown_ops_and_foreign_fields_are_refused)
{
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "erin",
					    .role = "sandbox-admin", .reason = "with a session field",
					    .extra_tag = SBX_F_SESSION }, NULL), SBX_ST_BADINPUT);
	cr_assert(strstr(msg, "does not belong"), "%s", msg);
	cr_assert_eq(sbx_state_count(R.b.state), 0);
}

Test(ops, sessions_are_root_only)
{
	struct sbx_caller nobody = { .uid = 65534, .gid = 65534, .pid = getpid() };

	cr_assert_eq(send_as(&nobody, &(struct req){ .op = SBX_OP_SESSION_OPEN, .user = "alice" },
			     NULL), SBX_ST_REFUSED);
	cr_assert(strstr(msg, "only root"), "%s", msg);
	cr_assert_eq(send_as(&nobody, &(struct req){ .op = SBX_OP_SESSIONS }, NULL),
		     SBX_ST_REFUSED);
	cr_assert(strstr(msg, "only admins"), "%s", msg);
}

/* ---- a broker that cannot write ------------------------------------------------------- */

Test(ops, a_degraded_broker_refuses_every_change_and_keeps_answering)
{
	uint32_t id = erin_asks();

	snprintf(R.b.degraded, sizeof(R.b.degraded), "test: the disk is gone");
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_APPROVE, .as = "frank", .id = id }, NULL),
		     SBX_ST_UNAVAILABLE);
	cr_assert(strstr(msg, "cannot record changes (test: the disk is gone)"), "%s", msg);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_REQUEST, .as = "dave",
					    .role = "sandbox-admin", .reason = "rotate certificates" },
			     NULL), SBX_ST_UNAVAILABLE);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_CANCEL, .as = "erin", .id = id }, NULL),
		     SBX_ST_UNAVAILABLE);
	cr_assert_eq(as_root(&(struct req){ .op = SBX_OP_CHECK, .user = "alice" }, NULL),
		     SBX_ST_OK);
	cr_assert_eq(req_of(id)->state, SBX_REQ_PENDING);
	R.b.degraded[0] = '\0';
}
