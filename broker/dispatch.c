/*
 * The op table and the one path every request takes through it: look the
 * op up, check who may call it, copy its fields out of the frame (only
 * those the op takes), resolve the person it acts for, run the handler.
 * In the style of OpenSSH's monitor.c: what each op may do is one line
 * here, not spread over its handler.
 */
#include "config.h"

#include "dispatch.h"

#include "drift.h"
#include "fleet.h"

#include "user_limits.h"
#include "log.h"
#include "sbxio.h"
#include "sessions.h"
#include "grouptable.h"
#include "reviews.h"
#include "tail.h"
#include "commands.h"
#include "text.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the fields ------------------------------------------------------------ */

enum arg_bit {
	A_FLAGS = 1u << 0,
	A_USER = 1u << 1,
	A_ROLE = 1u << 2,
	A_SERVICE = 1u << 3,
	A_RHOST = 1u << 4,
	A_TTY = 1u << 5,
	A_TICKET = 1u << 6,
	A_REASON = 1u << 7,
	A_COMMENT = 1u << 8,
	A_ID = 1u << 9,
	A_EXTENDS = 1u << 10,
	A_DURATION = 1u << 11,
	A_SESSION = 1u << 12,
	A_PID = 1u << 13,
	A_GID = 1u << 14,
	A_UNIX_GROUP = 1u << 15,
	A_AS_USER = 1u << 16,
	A_ACTOR = 1u << 17,
	A_HOST = 1u << 18,
	A_EVENT = 1u << 19,
	A_OUTCOME = 1u << 20,
	A_COUNT = 1u << 21,
	A_TOKEN = 1u << 22,     /* TOKEN_NAME TOKEN_ID SCOPES */
	A_COMMAND = 1u << 23,  /* COMMAND CWD RUNAS PLUGIN VERDICT */
	A_EXIT = 1u << 24,     /* SEQ EXIT_STATUS SIGNAL ELAPSED_MS */
	A_SPOOL = 1u << 25,    /* STATE UID CREATED_AT */
	A_PAGE = 1u << 26,     /* CURSOR LIMIT (pages.h) */
};

/* What the three kinds of clients send.  AS_USER may come with any
 * request (sbx_proto.h); group ops ignore it. */
#define PERSON_FIELDS (A_AS_USER | A_FLAGS | A_USER | A_ROLE | A_SERVICE | A_RHOST | A_TTY | \
		       A_TICKET | A_REASON | A_COMMENT | A_ID | A_EXTENDS | A_DURATION)
#define SESSION_FIELDS (A_AS_USER | A_USER | A_SERVICE | A_RHOST | A_TTY | A_SESSION | A_ID | \
			A_PID)
#define LIST_FIELDS (PERSON_FIELDS | A_PAGE)
#define TOKEN_FIELDS (A_AS_USER | A_FLAGS | A_USER | A_DURATION | A_REASON | A_TOKEN)
#define GROUP_FIELDS (A_AS_USER | A_UNIX_GROUP | A_USER | A_GID | A_ID)
#define DRIFT_FIELDS (A_AS_USER)
#define TAIL_FIELDS (A_AS_USER | A_FLAGS | A_COUNT | A_USER | A_ACTOR | A_ROLE | A_ID | \
		     A_EVENT | A_HOST | A_OUTCOME)
/* sbx_sudo: the person is never a field (commands.c reads the caller). */
#define SUDO_FIELDS (A_FLAGS | A_TTY | A_REASON | A_COMMAND | A_EXIT | A_ID)
#define SPOOL_FIELDS (SUDO_FIELDS | A_SPOOL)

struct field_spec {
	uint16_t tag;
	uint32_t bit;
	const char *name;     /* in messages */
	size_t str_off;       /* STR fields: where in struct sbx_args, and its size */
	size_t str_len;
};

#define STR_FIELD(tag, bit, name, member) \
	{ tag, bit, name, offsetof(struct sbx_args, member), sizeof(((struct sbx_args *)0)->member) }
#define NUM_FIELD(tag, bit, name) { tag, bit, name, 0, 0 }

static const struct field_spec field_specs[] = {
	STR_FIELD(SBX_F_AS_USER, A_AS_USER, "--as user", as_user),
	STR_FIELD(SBX_F_USER, A_USER, "user", user),
	STR_FIELD(SBX_F_ROLE, A_ROLE, "role", role),
	STR_FIELD(SBX_F_SERVICE, A_SERVICE, "service", service),
	STR_FIELD(SBX_F_RHOST, A_RHOST, "rhost", rhost),
	STR_FIELD(SBX_F_TTY, A_TTY, "tty", tty),
	STR_FIELD(SBX_F_TICKET, A_TICKET, "ticket", ticket),
	STR_FIELD(SBX_F_REASON, A_REASON, "reason", reason),
	STR_FIELD(SBX_F_COMMENT, A_COMMENT, "comment", comment),
	STR_FIELD(SBX_F_UNIX_GROUP, A_UNIX_GROUP, "unix group", unix_group),
	STR_FIELD(SBX_F_ACTOR, A_ACTOR, "actor", actor),
	STR_FIELD(SBX_F_HOST, A_HOST, "host", host),
	STR_FIELD(SBX_F_EVENT, A_EVENT, "event", event),
	STR_FIELD(SBX_F_OUTCOME, A_OUTCOME, "outcome", outcome),
	NUM_FIELD(SBX_F_COUNT, A_COUNT, "count"),
	STR_FIELD(SBX_F_TOKEN_NAME, A_TOKEN, "token name", token_name),
	STR_FIELD(SBX_F_TOKEN_ID, A_TOKEN, "token id", token_id),
	STR_FIELD(SBX_F_SCOPES, A_TOKEN, "scopes", scopes),
	NUM_FIELD(SBX_F_FLAGS, A_FLAGS, "flags"),
	NUM_FIELD(SBX_F_ID, A_ID, "id"),
	NUM_FIELD(SBX_F_EXTENDS, A_EXTENDS, "extends"),
	NUM_FIELD(SBX_F_DURATION, A_DURATION, "duration"),
	NUM_FIELD(SBX_F_SESSION, A_SESSION, "session"),
	NUM_FIELD(SBX_F_PID, A_PID, "pid"),
	NUM_FIELD(SBX_F_GID, A_GID, "gid"),
	STR_FIELD(SBX_F_COMMAND, A_COMMAND, "command", command),
	STR_FIELD(SBX_F_CWD, A_COMMAND, "cwd", cwd),
	STR_FIELD(SBX_F_RUNAS, A_COMMAND, "runas", runas),
	STR_FIELD(SBX_F_PLUGIN, A_COMMAND, "plugin", plugin),
	STR_FIELD(SBX_F_VERDICT, A_COMMAND, "verdict", verdict),
	NUM_FIELD(SBX_F_SEQ, A_EXIT, "seq"),
	NUM_FIELD(SBX_F_EXIT_STATUS, A_EXIT, "exit status"),
	NUM_FIELD(SBX_F_SIGNAL, A_EXIT, "signal"),
	NUM_FIELD(SBX_F_ELAPSED_MS, A_EXIT, "elapsed ms"),
	STR_FIELD(SBX_F_STATE, A_SPOOL, "state", state),
	NUM_FIELD(SBX_F_UID, A_SPOOL, "uid"),
	NUM_FIELD(SBX_F_CREATED_AT, A_SPOOL, "created at"),
	NUM_FIELD(SBX_F_CURSOR, A_PAGE, "cursor"),
	NUM_FIELD(SBX_F_LIMIT, A_PAGE, "limit"),
};

static const struct field_spec *field_spec(uint16_t tag)
{
	for (size_t i = 0; i < sizeof(field_specs) / sizeof(field_specs[0]); i++)
		if (field_specs[i].tag == tag)
			return &field_specs[i];
	return NULL;
}

static void store_number(struct sbx_args *a, const sbx_field *f)
{
	switch (f->tag) {
	case SBX_F_FLAGS: a->flags = sbx_field_u32(f); break;
	case SBX_F_ID: a->id = sbx_field_u32(f); a->has_id = true; break;
	case SBX_F_EXTENDS: a->extends = sbx_field_u32(f); break;
	case SBX_F_DURATION: a->duration = sbx_field_i64(f); a->has_duration = true; break;
	case SBX_F_SESSION: a->session = sbx_field_u32(f); break;
	case SBX_F_PID: a->pid = sbx_field_u32(f); break;
	case SBX_F_GID: a->gid = sbx_field_u32(f); a->has_gid = true; break;
	case SBX_F_COUNT: a->count = sbx_field_u32(f); a->has_count = true; break;
	case SBX_F_SEQ: a->seq = sbx_field_i64(f); a->has_seq = true; break;
	case SBX_F_EXIT_STATUS:
		a->exit_status = sbx_field_u32(f);
		a->has_exit_status = true;
		break;
	case SBX_F_SIGNAL: a->signal = sbx_field_u32(f); a->has_signal = true; break;
	case SBX_F_ELAPSED_MS: a->elapsed_ms = sbx_field_i64(f); break;
	case SBX_F_UID: a->uid = sbx_field_u32(f); a->has_uid = true; break;
	case SBX_F_CREATED_AT: a->created_at = sbx_field_i64(f); break;
	case SBX_F_CURSOR: a->cursor = sbx_field_u32(f); break;
	case SBX_F_LIMIT: a->limit = sbx_field_u32(f); a->has_limit = true; break;
	}
}

/* Copy the fields of a validated frame into a, taking only those in
 * allowed.  0, or -1 with why. */
static int parse_args(const uint8_t *frame, size_t n, uint32_t allowed, struct sbx_args *a,
		      char *why, size_t whylen)
{
	struct sbx_hdr h;
	sbx_reader rd;
	sbx_field f;
	int rc;

	memset(a, 0, sizeof(*a));
	sbx_hdr_decode(frame, n, &h);
	a->op = h.op;
	sbx_reader_init_frame(&rd, frame, n);
	while ((rc = sbx_reader_next(&rd, &f)) == 1) {
		const struct field_spec *s = field_spec(f.tag);

		if (!s || !(s->bit & allowed)) {
			snprintf(why, whylen, "field 0x%04x does not belong in this request", f.tag);
			return -1;
		}
		if (!s->str_len) {
			store_number(a, &f);
			continue;
		}
		/* Refused here, whole: text the journal could not hold as it was
		 * sent must never be dropped or changed on the way in. */
		if (!sbx_utf8_valid((const char *)f.val, f.len)) {
			snprintf(why, whylen, "%s is not valid UTF-8", s->name);
			return -1;
		}
		if (sbx_field_str(&f, (char *)a + s->str_off, s->str_len) < 0) {
			snprintf(why, whylen, "%s is too long (at most %zu bytes)", s->name,
				 s->str_len - 1);
			return -1;
		}
	}
	if (rc < 0) {
		snprintf(why, whylen, "truncated field");
		return -1;
	}
	return 0;
}

/* ---- the table ---------------------------------------------------------------- */

enum who_may {
	SBX_CALLER_ANY,     /* anyone; the handler decides what they may see */
	SBX_CALLER_PERSON,  /* anyone, acting for themselves or (--as) for someone else */
	SBX_CALLER_ADMIN,   /* root and broker.admin_group, acting as themselves */
	SBX_CALLER_ROOT,    /* uid 0 only */
};

/* What an op may write.  Callers other than root spend their change
 * budget (broker.max_changes_per_minute) on every op that may write. */
enum writes {
	NOTHING = 0,
	HOST,       /* this host's own records (sessions) */
	FLEET,      /* requests and grants: in a fleet, through its log (fleet.h) */
};

struct op_entry {
	uint16_t op;
	enum who_may who;
	uint32_t fields;
	enum writes changes;
	sbx_op_fn fn;
	const char *what;   /* for "only ... may WHAT" */
};

static const struct op_entry op_table[] = {
	/* op                      who may call it    fields taken    writes */
	/* decisions */
	{ SBX_OP_CHECK,            SBX_CALLER_ANY,    PERSON_FIELDS,  NOTHING,
	  sbx_op_check, "check a login" },
	{ SBX_OP_EXPLAIN,          SBX_CALLER_ANY,    PERSON_FIELDS,  NOTHING,
	  sbx_op_explain, "explain access" },
	{ SBX_OP_PING,             SBX_CALLER_ANY,    PERSON_FIELDS,  NOTHING,
	  sbx_op_ping, "ask how the broker is" },
	/* a person's own requests */
	{ SBX_OP_REQUEST,          SBX_CALLER_PERSON, PERSON_FIELDS,  FLEET,
	  sbx_op_request, "request access" },
	{ SBX_OP_LIST,             SBX_CALLER_PERSON, LIST_FIELDS,    NOTHING,
	  sbx_op_list, "list requests" },
	{ SBX_OP_STATUS,           SBX_CALLER_PERSON, PERSON_FIELDS,  NOTHING,
	  sbx_op_status, "see a request" },
	{ SBX_OP_CANCEL,           SBX_CALLER_PERSON, PERSON_FIELDS,  FLEET,
	  sbx_op_cancel_drop, "cancel a request" },
	{ SBX_OP_DROP,             SBX_CALLER_PERSON, PERSON_FIELDS,  FLEET,
	  sbx_op_cancel_drop, "give a grant back" },
	{ SBX_OP_ROLES,            SBX_CALLER_PERSON, PERSON_FIELDS,  NOTHING,
	  sbx_op_roles, "list roles" },
	/* approvers and admins */
	{ SBX_OP_PENDING,          SBX_CALLER_PERSON, LIST_FIELDS,    NOTHING,
	  sbx_op_pending, "list pending requests" },
	{ SBX_OP_APPROVE,          SBX_CALLER_PERSON, PERSON_FIELDS,  FLEET,
	  sbx_op_approve, "approve" },
	{ SBX_OP_DENY,             SBX_CALLER_PERSON, PERSON_FIELDS,  FLEET,
	  sbx_op_deny_revoke, "deny" },
	{ SBX_OP_REVOKE,           SBX_CALLER_PERSON, PERSON_FIELDS,  FLEET,
	  sbx_op_deny_revoke, "revoke" },
	{ SBX_OP_GRANTS,           SBX_CALLER_PERSON, LIST_FIELDS,    NOTHING,
	  sbx_op_grants, "list grants" },
	/* personal API tokens (api/ops_token.c) */
	{ SBX_OP_TOKEN_CREATE,     SBX_CALLER_PERSON, TOKEN_FIELDS,   HOST,
	  sbx_op_token_create, "create API tokens" },
	{ SBX_OP_TOKEN_LIST,       SBX_CALLER_PERSON, TOKEN_FIELDS,   NOTHING,
	  sbx_op_token_list, "list API tokens" },
	{ SBX_OP_TOKEN_REVOKE,     SBX_CALLER_PERSON, TOKEN_FIELDS,   HOST,
	  sbx_op_token_revoke, "revoke API tokens" },
	/* sessions (pam_sbx, from sshd's PAM stack) */
	{ SBX_OP_SESSION_OPEN,     SBX_CALLER_ROOT,   SESSION_FIELDS, HOST,
	  sbx_op_session_open, "register or close sessions (pam_sbx does, in sshd's PAM stack)" },
	{ SBX_OP_SESSION_CLOSE,    SBX_CALLER_ROOT,   SESSION_FIELDS, HOST,
	  sbx_op_session_close, "register or close sessions (pam_sbx does, in sshd's PAM stack)" },
	{ SBX_OP_SESSIONS,         SBX_CALLER_ADMIN,  SESSION_FIELDS, NOTHING,
	  sbx_op_sessions, "list sessions" },
	/* unix groups (libnss_sbx's fallback; membership is public, as in
	 * /etc/group) */
	{ SBX_OP_GROUP_BYNAME,     SBX_CALLER_ANY,    GROUP_FIELDS,   NOTHING,
	  sbx_op_group, "look up groups" },
	{ SBX_OP_GROUP_BYGID,      SBX_CALLER_ANY,    GROUP_FIELDS,   NOTHING,
	  sbx_op_group, "look up groups" },
	{ SBX_OP_GROUP_LIST,       SBX_CALLER_ANY,    GROUP_FIELDS,   NOTHING,
	  sbx_op_group, "look up groups" },
	{ SBX_OP_GROUP_MEMBERSHIPS, SBX_CALLER_ANY,   GROUP_FIELDS,   NOTHING,
	  sbx_op_group, "look up groups" },
	/* permission drift (drift.h) */
	{ SBX_OP_DRIFT,            SBX_CALLER_ADMIN,  DRIFT_FIELDS,   NOTHING,
	  sbx_op_drift, "list drift findings" },
	{ SBX_OP_DRIFT_SCAN,       SBX_CALLER_ADMIN,  DRIFT_FIELDS,   NOTHING,
	  sbx_op_drift_scan, "start a drift scan" },
	/* access reviews (reviews.h): the handler checks the role's approvers */
	{ SBX_OP_REVIEW_CERTIFY,   SBX_CALLER_PERSON, PERSON_FIELDS,  HOST,
	  sbx_op_review_decide, "certify access" },
	{ SBX_OP_REVIEW_REVOKE,    SBX_CALLER_PERSON, PERSON_FIELDS,  HOST,
	  sbx_op_review_decide, "revoke access in a review" },
	{ SBX_OP_REVIEW_STATUS,    SBX_CALLER_PERSON, PERSON_FIELDS,  NOTHING,
	  sbx_op_review_status, "see access reviews" },
	/* audit: the live record stream (tail.c decides what each caller sees) */
	{ SBX_OP_TAIL,             SBX_CALLER_PERSON, TAIL_FIELDS,    NOTHING,
	  sbx_op_tail, "follow the journal" },
	/* sudo commands (sbx_sudo.so in sudo, which runs as root; the
	 * person's own budget is spent in commands.c) */
	{ SBX_OP_SUDO_CHECK,       SBX_CALLER_ROOT,   SUDO_FIELDS,    HOST,
	  sbx_op_sudo_check, "record sudo commands (sbx_sudo.so does, inside sudo)" },
	{ SBX_OP_SUDO_RUN,         SBX_CALLER_ROOT,   SUDO_FIELDS,    HOST,
	  sbx_op_sudo_run, "record sudo commands (sbx_sudo.so does, inside sudo)" },
	{ SBX_OP_SUDO_REFUSED,     SBX_CALLER_ROOT,   SUDO_FIELDS,    HOST,
	  sbx_op_sudo_refused, "record sudo commands (sbx_sudo.so does, inside sudo)" },
	{ SBX_OP_SUDO_EXITED,      SBX_CALLER_ROOT,   SUDO_FIELDS,    HOST,
	  sbx_op_sudo_exited, "record sudo commands (sbx_sudo.so does, inside sudo)" },
	{ SBX_OP_SUDO_SPOOLED,     SBX_CALLER_ROOT,   SPOOL_FIELDS,   HOST,
	  sbx_op_sudo_spooled, "record sudo commands (sbx_sudo.so does, inside sudo)" },
};

static const struct op_entry *op_entry(uint16_t op)
{
	for (size_t i = 0; i < sizeof(op_table) / sizeof(op_table[0]); i++)
		if (op_table[i].op == op)
			return &op_table[i];
	return NULL;
}

/* ---- who ------------------------------------------------------------------------ */

/* Fill c->who from the caller and AS_USER.  0, or -1 with the reply
 * filled. */
static int resolve_person(struct sbx_broker *b, struct sbx_call *c)
{
	const char *admin_group = b->policy->broker.admin_group;
	const char *as = c->a.as_user;

	sbx_caller_resolve(c->caller, admin_group);
	c->who.admin = c->caller->admin;
	c->who.through = NULL;
	c->who.person = c->caller->name;
	if (!as[0])
		return 0;
	if (!c->caller->admin) {
		sbx_reply_fail(c, SBX_ST_REFUSED,
			       "only root%s%s may act for another user (--as); you are %s",
			       admin_group ? " and members of " : "", admin_group ? admin_group : "",
			       c->caller->name);
		return -1;
	}
	if (!sbx_name_valid(as)) {
		sbx_reply_fail(c, SBX_ST_BADINPUT, "--as: not a valid user name");
		return -1;
	}
	c->who.person = as;
	if (strcmp(as, c->caller->name) != 0) {
		c->who.through = c->caller->name;
		/* Acting for someone means acting with their rights, not the
		 * admin's: the journal will name them as the actor. */
		c->who.admin = false;
	}
	return 0;
}

/* 0 when the caller may call e's op (c->who filled where it applies), or
 * -1 with the refusal in the reply. */
static int check_caller(struct sbx_broker *b, const struct op_entry *e, struct sbx_call *c)
{
	switch (e->who) {
	case SBX_CALLER_ANY:
		return 0;
	case SBX_CALLER_ROOT:
		if (c->caller->uid == 0)
			return 0;
		sbx_reply_fail(c, SBX_ST_REFUSED, "only root may %s", e->what);
		return -1;
	case SBX_CALLER_PERSON:
		return resolve_person(b, c);
	case SBX_CALLER_ADMIN:
		if (resolve_person(b, c) < 0)
			return -1;
		if (c->who.admin)
			return 0;
		sbx_reply_fail(c, SBX_ST_REFUSED, "only admins may %s", e->what);
		return -1;
	}
	return -1;
}

/* A change asked for by someone other than root spends one of their
 * budget; past it, "slow down".  true when refused. */
static bool over_budget(struct sbx_broker *b, struct sbx_call *c)
{
	int64_t retry_ms = 0;

	if (sbx_limits_change(b->limits, c->caller->uid, sbx_mono_ms(), &retry_ms) == 0)
		return false;
	sbx_caller_resolve(c->caller, b->policy->broker.admin_group);
	sbx_reply_fail(c, SBX_ST_REFUSED,
		       "slow down: %s may make at most %u changes a minute "
		       "(broker.max_changes_per_minute); try again in %lld s", c->caller->name,
		       b->policy->broker.max_changes_per_minute,
		       (long long)((retry_ms + 999) / 1000));
	return true;
}

/* A request that changes the fleet's state, waiting for its log
 * (fleet.h): everything the handler needs, kept to run it again. */
struct deferred {
	struct sbx_change ch;
	const struct op_entry *e;
	struct sbx_caller caller;
	struct sbx_args a;
	sbx_msg reply;
};

static void reply_fixup(sbx_msg *reply, uint16_t op)
{
	if (reply->error) {
		/* A reply that does not fit is a bug or an absurd request. */
		sbx_msg_free(reply);
		sbx_msg_init_reply(reply, op | SBX_OP_REPLY, SBX_ST_INTERNAL, "reply too large");
	}
}

static void deferred_run(struct sbx_broker *b, struct sbx_change *ch, uint64_t *local_seq)
{
	struct deferred *d = (struct deferred *)ch;
	struct sbx_call c = { .caller = &d->caller, .a = d->a, .reply = &d->reply };

	if (check_caller(b, d->e, &c) == 0) {
		sbx_broker_op_begin(b);
		d->e->fn(b, &c);
		sbx_broker_op_end(b);
	}
	*local_seq = c.wait_seq;
}

static void deferred_refuse(struct sbx_broker *b, struct sbx_change *ch, const char *why)
{
	struct deferred *d = (struct deferred *)ch;

	(void)b;
	sbx_msg_free(&d->reply);
	sbx_msg_init_reply(&d->reply, d->a.op | SBX_OP_REPLY, SBX_ST_UNAVAILABLE, why);
}

static void deferred_free(struct sbx_change *ch)
{
	struct deferred *d = (struct deferred *)ch;

	sbx_msg_free(&d->reply);
	free(d);
}

/* Hand the op to the fleet.  NULL when out of memory (the reply says so). */
static struct sbx_change *defer(struct sbx_broker *b, const struct op_entry *e,
				const struct sbx_call *c)
{
	struct deferred *d = calloc(1, sizeof(*d));

	if (!d) {
		sbx_msg_free(c->reply);
		sbx_msg_init_reply(c->reply, c->a.op | SBX_OP_REPLY, SBX_ST_INTERNAL, "out of memory");
		return NULL;
	}
	d->ch.run = deferred_run;
	d->ch.refuse = deferred_refuse;
	d->ch.free = deferred_free;
	d->e = e;
	d->caller = *c->caller;
	d->a = c->a;
	sbx_fleet_submit(b, &d->ch);
	return &d->ch;
}

void sbx_broker_take_reply(struct sbx_change *ch, sbx_msg *reply, uint64_t *wait_seq)
{
	struct deferred *d = (struct deferred *)ch;

	sbx_msg_free(reply);
	*reply = d->reply;
	memset(&d->reply, 0, sizeof(d->reply));
	if (!reply->buf && !reply->error)
		sbx_msg_init_reply(reply, d->a.op | SBX_OP_REPLY, SBX_ST_INTERNAL, "no answer");
	reply_fixup(reply, d->a.op);
	*wait_seq = ch->wait_seq;
	ch->free(ch);
}

struct sbx_change *sbx_broker_handle(struct sbx_broker *b, struct sbx_caller *caller,
				     const uint8_t *frame, size_t n, sbx_msg *reply,
				     uint64_t *wait_seq)
{
	struct sbx_call c = { .caller = caller, .reply = reply };
	struct sbx_change *later = NULL;
	const struct op_entry *e;
	struct sbx_hdr h;
	char why[256];

	sbx_hdr_decode(frame, n, &h);
	c.a.op = h.op;
	e = op_entry(h.op);
	if (!e) {
		sbx_reply_fail(&c, SBX_ST_PROTO, "unknown op 0x%04x", h.op);
		goto out;
	}
	/* Root-only ops say no before reading anything else. */
	if (e->who == SBX_CALLER_ROOT && check_caller(b, e, &c) < 0)
		goto out;
	if (parse_args(frame, n, e->fields, &c.a, why, sizeof(why)) < 0) {
		sbx_reply_fail(&c, SBX_ST_BADINPUT, "%s", why);
		goto out;
	}
	if (e->who != SBX_CALLER_ROOT && check_caller(b, e, &c) < 0)
		goto out;
	if (e->changes && over_budget(b, &c))
		goto out;
	if (e->changes == FLEET && b->fleet) {
		later = defer(b, e, &c);
		goto out;
	}
	/* Whatever one call records is one operation. */
	sbx_broker_op_begin(b);
	e->fn(b, &c);
	sbx_broker_op_end(b);
out:
	reply_fixup(reply, h.op);
	*wait_seq = c.wait_seq;
	return later;
}

void sbx_broker_malformed(sbx_msg *reply, const char *why)
{
	char msg[512];

	snprintf(msg, sizeof(msg), "malformed request: %s", why);
	sbx_msg_free(reply);
	sbx_msg_init_reply(reply, SBX_OP_ERROR, SBX_ST_PROTO, msg);
}

/* ---- replies ---------------------------------------------------------------------- */

static void reply_start(struct sbx_call *c, uint32_t status, const char *msg)
{
	sbx_msg_free(c->reply);
	sbx_msg_init_reply(c->reply, c->a.op | SBX_OP_REPLY, status, msg);
}

void sbx_reply_fail(struct sbx_call *c, uint32_t status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_start(c, status, msg);
}

void sbx_reply_ok(struct sbx_call *c, const char *msg)
{
	reply_start(c, SBX_ST_OK, msg);
}

void sbx_reply_okf(struct sbx_call *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	reply_start(c, SBX_ST_OK, msg);
}

static void put_req(struct sbx_broker *b, sbx_msg *m, const struct sbx_req *r, bool commands);

void sbx_reply_put_req(struct sbx_broker *b, sbx_msg *m, const struct sbx_req *r)
{
	put_req(b, m, r, false);
}

void sbx_reply_put_req_commands(struct sbx_broker *b, sbx_msg *m, const struct sbx_req *r)
{
	put_req(b, m, r, true);
}

static void put_req(struct sbx_broker *b, sbx_msg *m, const struct sbx_req *r, bool commands)
{
	const struct sbx_role *role = sbx_policy_role(b->policy, r->role);
	char approvers[512] = "";

	sbx_msg_begin_rec(m, SBX_F_REQUEST);
	sbx_msg_put_u32(m, SBX_F_ID, r->id);
	sbx_msg_put_str(m, SBX_F_USER, r->user);
	sbx_msg_put_str(m, SBX_F_ROLE, r->role);
	/* Revoked here while the fleet's log is away: here it is over. */
	sbx_msg_put_str(m, SBX_F_STATE, r->revoked_here ? "revoked"
							: sbx_req_state_name(r->state));
	sbx_msg_put_i64(m, SBX_F_DURATION, r->duration);
	sbx_msg_put_i64(m, SBX_F_CREATED_AT, r->created_at);
	if (r->activated_at)
		sbx_msg_put_i64(m, SBX_F_ACTIVATED_AT, r->activated_at);
	if (r->state == SBX_REQ_PENDING)
		sbx_msg_put_i64(m, SBX_F_EXPIRES_AT, r->lapses_at);
	else if (r->expires_at)
		sbx_msg_put_i64(m, SBX_F_EXPIRES_AT, r->expires_at);
	if (r->ended_at)
		sbx_msg_put_i64(m, SBX_F_ENDED_AT, r->ended_at);
	if (r->revoked_here && r->state == SBX_REQ_ACTIVE) {
		char note[300];

		snprintf(note, sizeof(note), "revoked on %s only, while the fleet's database is "
			 "away; the other hosts learn of it when it is back",
			 b->policy->broker.host);
		sbx_msg_put_str(m, SBX_F_NOTE, note);
	}
	sbx_msg_put_str_opt(m, SBX_F_REASON, r->reason);
	sbx_msg_put_str_opt(m, SBX_F_TICKET, r->ticket);
	if (r->extends)
		sbx_msg_put_u32(m, SBX_F_EXTENDS, r->extends);
	sbx_msg_put_u32(m, SBX_F_APPROVALS_NEEDED, r->approvals_needed);
	for (size_t i = 0; i < r->n_approvals; i++)
		sbx_msg_put_str(m, SBX_F_APPROVED_BY, r->approvals[i].who);
	if (r->unix_group) {
		sbx_msg_put_str(m, SBX_F_UNIX_GROUP, r->unix_group);
		sbx_msg_put_u32(m, SBX_F_GID, r->gid);
	} else if (role && role->unix_group) {
		sbx_msg_put_str(m, SBX_F_UNIX_GROUP, role->unix_group);
		sbx_msg_put_u32(m, SBX_F_GID, role->gid);
	}
	sbx_msg_put_str_opt(m, SBX_F_ACTOR, r->actor);
	sbx_msg_put_str_opt(m, SBX_F_THROUGH, r->through);
	sbx_msg_put_str_opt(m, SBX_F_ENDED_BY, r->ended_by);
	sbx_msg_put_str_opt(m, SBX_F_END_REASON, r->end_reason);
	if (role && r->state == SBX_REQ_PENDING) {
		sbx_policy_approvers_text(b->policy, role, r->user, approvers, sizeof(approvers));
		sbx_msg_put_str_opt(m, SBX_F_APPROVERS, approvers);
	}
	if (commands)
		sbx_commands_put(b, m, r->id);
	sbx_msg_end_rec(m);
}

void sbx_reply_req(struct sbx_broker *b, struct sbx_call *c, const struct sbx_req *r,
		   const char *msg)
{
	sbx_reply_ok(c, msg);
	sbx_reply_put_req(b, c->reply, r);
}

void sbx_reply_decision(struct sbx_broker *b, struct sbx_call *c, int rc, const char *why)
{
	if (rc < 0)
		sbx_reply_fail(c, (uint32_t)-rc, "%s", why);
	else
		sbx_reply_req(b, c, sbx_state_get(b->state, c->a.id), why);
}

bool sbx_reply_if_degraded(struct sbx_broker *b, struct sbx_call *c)
{
	char why[700];

	if (!b->degraded[0])
		return false;
	sbx_reply_fail(c, SBX_ST_UNAVAILABLE, "%s", sbx_broker_unavailable(b, why, sizeof(why)));
	return true;
}
