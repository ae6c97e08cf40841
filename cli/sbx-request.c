/*
 * sbx-request: ask for just-in-time access to a role and manage one's own
 * requests.  Every decision is the broker's; this program only asks and
 * reports (see docs/cli.md).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "client.h"
#include "duration.h"
#include "output.h"
#include "sbxio.h"
#include "token_cmd.h"

#define WAIT_DEFAULT_SECS (15 * 60)
#define WAIT_POLL_MS 1000

enum {
	O_FOR,
	O_REASON,
	O_TICKET,
	O_WAIT,
	O_TIMEOUT,
	O_ALL,
	O_NAME,
	O_EXPIRES,
	O_SCOPE,
	N_OPTS,
};

static const struct sbx_cli_opt opts[N_OPTS] = {
	[O_FOR] = { "for", true },
	[O_REASON] = { "reason", true },
	[O_TICKET] = { "ticket", true },
	[O_WAIT] = { "wait", false },
	[O_TIMEOUT] = { "timeout", true },
	[O_ALL] = { "all", false },
	[O_NAME] = { "name", true },
	[O_EXPIRES] = { "expires", true },
	[O_SCOPE] = { "scope", true },
};

#define BIT(o) SBX_CLI_OPT_BIT(o)

/* ------------------------------------------------------------------ */
/* Shared steps                                                        */

static bool state_is(const json_t *req, const char *state)
{
	const char *s = sbx_out_str(req, "state");

	return s && strcmp(s, state) == 0;
}

static int print_request(const struct sbx_cli *c, const json_t *req, bool detail)
{
	if (c->json)
		return sbx_cli_print_json(c, req);
	if (detail)
		sbx_out_print_request_detail(stdout, req);
	else
		sbx_out_print_request(stdout, req);
	return SBX_EXIT_OK;
}

/* STATUS of one request.  Quiet: the caller decides what a failure means. */
static int fetch_status(const struct sbx_cli *c, uint32_t id, json_t **out, char *err,
			size_t errlen)
{
	struct sbx_cli_reply rep = { 0 };
	sbx_msg m = { 0 };
	int rc;

	*out = NULL;
	sbx_cli_msg_init(c, &m, SBX_OP_STATUS);
	sbx_msg_put_u32(&m, SBX_F_ID, id);
	rc = sbx_cli_call_quiet(c, &m, &rep, err, errlen);
	if (rc == SBX_EXIT_OK) {
		*out = sbx_out_reply_record(rep.frame, rep.len, SBX_F_REQUEST, SBX_OUT_REQUEST);
		if (!*out) {
			snprintf(err, errlen, "the broker's answer holds no request");
			rc = SBX_EXIT_REFUSED;
		}
	}
	sbx_cli_reply_free(&rep);
	sbx_msg_free(&m);
	return rc;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Poll until *req is no longer pending or the wait is over.  A broker
 * that cannot be reached for a moment (a restart) is asked again; only
 * when it is still unreachable at the end does that decide the exit code.
 * Returns 0 when decided. */
static int wait_decision(const struct sbx_cli *c, json_t **req, int64_t timeout_s)
{
	int64_t deadline = sbx_mono_ms() + timeout_s * 1000;
	json_int_t id = json_integer_value(json_object_get(*req, "id"));
	char err[SBX_STR_MAX + 256] = "", took[32];
	bool down = false;

	sbx_duration_format(timeout_s, took, sizeof(took));
	if (!c->json)
		fprintf(stderr, "%s: waiting up to %s for a decision on request %lld "
			"(Ctrl-C stops waiting; the request stays pending)\n", c->prog, took,
			(long long)id);
	while (state_is(*req, "pending")) {
		int64_t left = deadline - sbx_mono_ms();
		struct sbx_cli once = *c;
		json_t *fresh = NULL;
		bool clamped = false;
		int64_t t0;
		int rc;

		if (left <= 0) {
			if (down) {
				sbx_cli_error(c, "%s", err);
				return SBX_EXIT_UNREACHABLE;
			}
			sbx_cli_error(c, "still pending after %s: request %lld (ask an approver: "
				      "sbxctl approve %lld)", took, (long long)id, (long long)id);
			return SBX_EXIT_TIMEOUT;
		}
		sleep_ms(left < WAIT_POLL_MS ? left : WAIT_POLL_MS);
		left = deadline - sbx_mono_ms();
		if (left <= 0)
			continue;
		/* Never let one slow call stretch the wait past --timeout. */
		if (left < once.timeout_ms) {
			once.timeout_ms = (int)left;
			clamped = true;
		}
		t0 = sbx_mono_ms();
		rc = fetch_status(&once, (uint32_t)id, &fresh, err, sizeof(err));
		if (rc == SBX_EXIT_UNREACHABLE) {
			/* A call we cut short says nothing about the broker. */
			if (!clamped || sbx_mono_ms() - t0 < once.timeout_ms)
				down = true;
			continue;
		}
		if (rc != SBX_EXIT_OK) {
			sbx_cli_error(c, "%s", err);
			return rc;
		}
		down = false;
		json_decref(*req);
		*req = fresh;
	}
	return SBX_EXIT_OK;
}

struct ask {
	const char *role;
	int64_t duration;    /* 0: the role's default */
	const char *reason;
	const char *ticket;
	uint32_t extends;    /* 0: a new request */
	bool wait;
	int64_t wait_secs;
};

/* The options every way of asking shares (ROLE and extend). */
static int parse_ask(const struct sbx_cli *c, const struct sbx_cli_args *a, struct ask *k)
{
	k->wait_secs = WAIT_DEFAULT_SECS;
	if (a->val[O_FOR] && sbx_cli_arg_duration(c, "--for", a->val[O_FOR], &k->duration))
		return SBX_EXIT_USAGE;
	k->reason = a->val[O_REASON];
	if (k->reason && sbx_cli_arg_text(c, "--reason", k->reason))
		return SBX_EXIT_USAGE;
	k->ticket = a->val[O_TICKET];
	if (k->ticket && sbx_cli_arg_text(c, "--ticket", k->ticket))
		return SBX_EXIT_USAGE;
	k->wait = a->val[O_WAIT] != NULL;
	if (a->val[O_TIMEOUT] && !k->wait)
		return sbx_cli_usage(c, "request", "--timeout only applies to --wait");
	if (a->val[O_TIMEOUT] &&
	    sbx_cli_arg_duration(c, "--timeout", a->val[O_TIMEOUT], &k->wait_secs))
		return SBX_EXIT_USAGE;
	return SBX_EXIT_OK;
}

static void build_ask(const struct sbx_cli *c, const struct ask *k, sbx_msg *m)
{
	sbx_cli_msg_init(c, m, SBX_OP_REQUEST);
	sbx_msg_put_str(m, SBX_F_ROLE, k->role);
	if (k->duration > 0)
		sbx_msg_put_i64(m, SBX_F_DURATION, k->duration);
	sbx_msg_put_str_opt(m, SBX_F_REASON, k->reason);
	sbx_msg_put_str_opt(m, SBX_F_TICKET, k->ticket);
	if (k->extends)
		sbx_msg_put_u32(m, SBX_F_EXTENDS, k->extends);
}

/* File the request, then report it or wait for its decision.  A retry
 * that finds the request already open (SBX_REQUEST_EXISTED) is no
 * failure: it is what was asked for, and it is said so. */
static int ask(const struct sbx_cli *c, const struct ask *k)
{
	json_t *req = NULL;
	sbx_msg m = { 0 };
	uint32_t flags = 0;
	bool existed;
	int rc, prc;

	build_ask(c, k, &m);
	rc = sbx_cli_call_request(c, &m, &req, &flags);
	if (rc)
		goto out;
	existed = (flags & SBX_REQUEST_EXISTED) != 0;
	if (!c->json && existed)
		sbx_out_print_request_existed(stdout, req);
	else if (!c->json)
		sbx_out_print_request(stdout, req);
	if (k->wait && state_is(req, "pending")) {
		fflush(stdout);
		rc = wait_decision(c, &req, k->wait_secs);
		if (rc == SBX_EXIT_OK && !c->json)
			sbx_out_print_request(stdout, req);
	}
	if (k->wait && rc == SBX_EXIT_OK)
		rc = state_is(req, "active") ? SBX_EXIT_OK : SBX_EXIT_REFUSED;
	if (c->json) {
		/* Scripts get the last known state, also when the wait failed. */
		json_object_set_new(req, "already_existed", json_boolean(existed));
		prc = sbx_cli_print_json(c, req);
		if (rc == SBX_EXIT_OK)
			rc = prc;
	}
out:
	json_decref(req);
	sbx_msg_free(&m);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */

static int cmd_request(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	struct ask k = { .role = a->pos[0] };
	int rc;

	if (sbx_cli_arg_name(c, "role", k.role))
		return SBX_EXIT_USAGE;
	rc = parse_ask(c, a, &k);
	if (rc)
		return rc;
	return ask(c, &k);
}

static int cmd_extend(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	char err[SBX_STR_MAX + 256];
	struct ask k = { 0 };
	json_t *grant = NULL;
	int rc;

	if (sbx_cli_arg_id(c, "grant id", a->pos[0], &k.extends))
		return SBX_EXIT_USAGE;
	if (!a->val[O_FOR] || !a->val[O_REASON])
		return sbx_cli_usage(c, "extend", "extend needs --for DUR and --reason TEXT");
	rc = parse_ask(c, a, &k);
	if (rc)
		return rc;
	/* The new request names the grant's role; the broker checks that the
	 * grant is active and the caller's. */
	rc = fetch_status(c, k.extends, &grant, err, sizeof(err));
	if (rc) {
		sbx_cli_error(c, "%s", err);
		goto out;
	}
	k.role = sbx_out_str(grant, "role");
	if (!k.role) {
		sbx_cli_error(c, "the broker did not say which role grant %u is for", k.extends);
		rc = SBX_EXIT_REFUSED;
		goto out;
	}
	rc = ask(c, &k);
out:
	json_decref(grant);
	return rc;
}

/* An op about one request: ID [--reason], the request back. */
static int id_op(const struct sbx_cli *c, const struct sbx_cli_args *a, uint16_t op,
		 bool detail)
{
	struct sbx_cli_about q;
	json_t *req = NULL;
	int rc = sbx_cli_parse_about(c, a, O_REASON, -1, -1, &q);

	if (rc)
		return rc;
	rc = sbx_cli_call_about(c, op, &q, &req);
	if (rc == SBX_EXIT_OK)
		rc = print_request(c, req, detail);
	json_decref(req);
	return rc;
}

static int cmd_status(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	return id_op(c, a, SBX_OP_STATUS, true);
}

static int cmd_cancel(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	return id_op(c, a, SBX_OP_CANCEL, false);
}

static int cmd_drop(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	return id_op(c, a, SBX_OP_DROP, false);
}

/* An op without arguments that answers with repeated records. */
static int list_op(const struct sbx_cli *c, uint16_t op, uint32_t flags, uint16_t tag,
		   enum sbx_out_kind kind, json_t **out)
{
	sbx_msg m = { 0 };
	int rc;

	*out = NULL;
	sbx_cli_msg_init(c, &m, op);
	if (flags)
		sbx_msg_put_u32(&m, SBX_F_FLAGS, flags);
	rc = sbx_cli_call_json(c, &m, tag, true, kind, out);
	sbx_msg_free(&m);
	return rc;
}

static int cmd_list(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	static const enum sbx_out_col cols[] = { SBX_COL_ID, SBX_COL_ROLE, SBX_COL_STATE,
						 SBX_COL_WHEN, SBX_COL_REASON };
	bool all = a->val[O_ALL] != NULL;
	json_t *reqs = NULL;
	int rc;

	rc = sbx_cli_call_pages(c, SBX_OP_LIST, all ? SBX_LIST_ALL : 0, NULL, &reqs);
	if (rc)
		goto out;
	if (c->json)
		rc = sbx_cli_print_json(c, reqs);
	else if (json_array_size(reqs) == 0)
		puts(all ? "no requests yet"
			 : "no pending requests or active grants (`sbx-request list --all` "
			   "also shows ended ones)");
	else
		rc = sbx_out_print_request_table(stdout, reqs, cols, 5) < 0 ? SBX_EXIT_REFUSED
									 : SBX_EXIT_OK;
out:
	json_decref(reqs);
	return rc;
}

static int cmd_roles(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	json_t *roles = NULL;
	int rc;

	(void)a;
	rc = list_op(c, SBX_OP_ROLES, 0, SBX_F_ROLEINFO, SBX_OUT_ROLEINFO, &roles);
	if (rc)
		goto out;
	if (c->json)
		rc = sbx_cli_print_json(c, roles);
	else if (json_array_size(roles) == 0)
		puts("there is no role you may ask for on this host");
	else
		sbx_out_print_roles(stdout, roles);
out:
	json_decref(roles);
	return rc;
}

static int cmd_token_create(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	int64_t secs;
	int rc;

	if (!a->val[O_NAME] || !a->val[O_EXPIRES])
		return sbx_cli_usage(c, "token create", "token create needs --name NAME and "
				     "--expires DUR");
	rc = sbx_cli_arg_name(c, "--name", a->val[O_NAME]);
	if (!rc)
		rc = sbx_cli_arg_duration(c, "--expires", a->val[O_EXPIRES], &secs);
	if (rc)
		return rc;
	return sbx_token_cmd_create(c, a->val[O_NAME], secs, a->val[O_SCOPE]);
}

static int cmd_token_list(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	(void)a;
	return sbx_token_cmd_list(c, false);
}

static int cmd_token_revoke(const struct sbx_cli *c, const struct sbx_cli_args *a)
{
	return sbx_token_cmd_revoke(c, a->pos[0], NULL, a->val[O_REASON]);
}

/* ------------------------------------------------------------------ */
/* The manual                                                          */

static const struct sbx_cli_cmd request_cmd = {
	.name = "request",
	.synopsis = "ROLE [--for DUR] [--reason TEXT] [--ticket ID] [--wait [--timeout DUR]]",
	.summary = "ask for ROLE on this host",
	.help =
	"Ask the broker for ROLE on this host.  The policy decides whether you may\n"
	"ask (you must be eligible), for how long, what you must say, and who must\n"
	"approve.  An auto-approved role is granted at once; otherwise the request\n"
	"is pending until enough approvers say yes (sbxctl approve), one says no, you\n"
	"cancel it, or it lapses (the policy's broker.request_ttl).  A grant's\n"
	"clock starts when it becomes active, not when you ask.\n"
	"\n"
	"Prints one line saying what happened and what comes next, e.g.\n"
	"  request 42: erin asks for sandbox-admin for 1h \u2014 pending, needs 1\n"
	"  approval from erin's manager (frank) or security-leads (lapses\n"
	"  2026-11-29T00:10:00Z)\n"
	"\n"
	"You may have one open request (pending, or an active grant) per role.\n"
	"Asking again with the same role, --reason, --ticket and --for (none means\n"
	"the role's default) while it is open files nothing new: you are shown\n"
	"the open one, and the exit status is 0:\n"
	"  request 42 already exists (pending): erin asks for sandbox-admin ...\n"
	"Asking otherwise is refused (exit 1).  So when the answer to a\n"
	"request was lost (exit 5, outcome unknown), asking again the same way is\n"
	"safe, and `sbx-request list` shows what the broker has.\n"
	"\n"
	"Options:\n"
	"  --for DUR        how long the grant should last (default: the role's\n"
	"                   default_duration; at most its max_duration)\n"
	"  --reason TEXT    why you need it; required by most roles, with a minimum\n"
	"                   length (see `sbx-request roles`)\n"
	"  --ticket ID      a change or incident ticket, for roles that require one\n"
	"  --wait           after filing, ask every second until the request is\n"
	"                   decided: exit 0 once active, 1 if denied, cancelled or\n"
	"                   lapsed, 4 if still pending when the wait is over\n"
	"  --timeout DUR    how long --wait waits (default 15m).  Stopping the wait\n"
	"                   (Ctrl-C or timeout) leaves the request pending.\n"
	"\n"
	"Examples:\n"
	"  sbx-request sandbox-admin --for 1h --reason \"restart the stuck import job\"\n"
	"  sbx-request prod-data --reason \"INC-4711 data fix\" --ticket INC-4711 --wait\n",
	.min_args = 1,
	.max_args = 1,
	.opts = BIT(O_FOR) | BIT(O_REASON) | BIT(O_TICKET) | BIT(O_WAIT) | BIT(O_TIMEOUT),
	.run = cmd_request,
};

static const struct sbx_cli_cmd cmds[] = {
	{
		.name = "list",
		.synopsis = "list [--all]",
		.summary = "your pending requests and active grants",
		.help =
		"List your pending requests and active grants as a table:\n"
		"  ID  ROLE  STATE  EXPIRES/ENDS  REASON\n"
		"EXPIRES/ENDS is when a pending request lapses, when an active grant\n"
		"ends, or when an ended one ended.  The broker keeps the requests that\n"
		"ended last (broker.keep_ended, default 10000); older ones are in its\n"
		"journal (an admin or auditor: sbxctl audit query --id N).\n"
		"\n"
		"Options:\n"
		"  --all            also show ended requests and grants (expired, revoked,\n"
		"                   denied, cancelled, lapsed)\n"
		"\n"
		"Examples:\n"
		"  sbx-request list\n"
		"  sbx-request list --all --json\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_ALL),
		.run = cmd_list,
	},
	{
		.name = "status",
		.synopsis = "status ID",
		.summary = "everything about one request or grant",
		.help =
		"Show one request or grant: its sentence, then who, what, when, why,\n"
		"who approved it and how it ended.  You can see your own; approvers and\n"
		"admins can see the ones they may act on.\n"
		"\n"
		"Examples:\n"
		"  sbx-request status 42\n"
		"  sbx-request status 42 --json | jq -r .state\n",
		.min_args = 1,
		.max_args = 1,
		.opts = 0,
		.run = cmd_status,
	},
	{
		.name = "cancel",
		.synopsis = "cancel ID [--reason TEXT]",
		.summary = "withdraw a pending request",
		.help =
		"Withdraw a request that is still pending.  (To give back a grant that\n"
		"is already active, use `sbx-request drop`.)\n"
		"\n"
		"Options:\n"
		"  --reason TEXT    why, for the journal\n"
		"\n"
		"Example:\n"
		"  sbx-request cancel 42 --reason \"fixed without it\"\n",
		.min_args = 1,
		.max_args = 1,
		.opts = BIT(O_REASON),
		.run = cmd_cancel,
	},
	{
		.name = "drop",
		.synopsis = "drop ID [--reason TEXT]",
		.summary = "give an active grant back early",
		.help =
		"End one of your active grants now, before it expires.  The grant\n"
		"ends as revoked, by you.\n"
		"\n"
		"Options:\n"
		"  --reason TEXT    why, for the journal\n"
		"\n"
		"Example:\n"
		"  sbx-request drop 42 --reason done\n",
		.min_args = 1,
		.max_args = 1,
		.opts = BIT(O_REASON),
		.run = cmd_drop,
	},
	{
		.name = "extend",
		.synopsis = "extend ID --for DUR --reason TEXT [--ticket ID] [--wait [--timeout DUR]]",
		.summary = "ask for more time on an active grant",
		.help =
		"Ask for more time on your active grant ID.  This files a new request\n"
		"for the same role, linked to the grant, under the same rules as any\n"
		"request (eligibility, limits, reason, ticket, approvals).\n"
		"\n"
		"Options:\n"
		"  --for DUR        how much time to ask for (required)\n"
		"  --reason TEXT    why (required)\n"
		"  --ticket ID      a ticket, for roles that require one\n"
		"  --wait, --timeout DUR\n"
		"                   wait for the decision, as when asking for a role\n"
		"\n"
		"Example:\n"
		"  sbx-request extend 42 --for 30m --reason \"migration still running\"\n",
		.min_args = 1,
		.max_args = 1,
		.opts = BIT(O_FOR) | BIT(O_REASON) | BIT(O_TICKET) | BIT(O_WAIT) | BIT(O_TIMEOUT),
		.run = cmd_extend,
	},
	{
		.name = "roles",
		.synopsis = "roles",
		.summary = "the roles you may ask for, their limits and approvers",
		.help =
		"List the roles you may ask for: what each is for, how long you may\n"
		"have it (default and maximum), whether it needs a reason or a ticket,\n"
		"who approves it, which hosts it applies to and which unix group it\n"
		"grants.\n"
		"\n"
		"Example:\n"
		"  sbx-request roles\n",
		.min_args = 0,
		.max_args = 0,
		.opts = 0,
		.run = cmd_roles,
	},
	{
		.name = "token create",
		.synopsis = "token create --name NAME --expires DUR [--scope SCOPES]",
		.summary = "make a personal API token for a pipeline",
		.help =
		"Make a token with which a program (a CI job) acts as you through the\n"
		"broker's HTTP API (docs/api.md): never more than you may, and only\n"
		"within its scopes.  The token is printed once, alone on stdout (the\n"
		"rest goes to stderr); the broker keeps only a salted hash of it.  Keep\n"
		"it in your CI's secret store.  Everything done with it is recorded as\n"
		"you, \"via\": \"api\", with the token's name.\n"
		"\n"
		"Options:\n"
		"  --name NAME      what the token is for, e.g. ci-deploy (unique among\n"
		"                   your live tokens)\n"
		"  --expires DUR    its lifetime, e.g. 30d; at most the api_token_max of\n"
		"                   the compliance profiles of your roles (default 90d)\n"
		"  --scope SCOPES   comma-separated, default read,request:\n"
		"                     read     your requests and grants, check, roles,\n"
		"                              policy explain\n"
		"                     request  file, cancel, drop and extend your requests\n"
		"                     approve  approve and deny as you, where you are an\n"
		"                              approver; revoke grants\n"
		"                     audit    the journal (admins and the policy's\n"
		"                              auditors group only)\n"
		"\n"
		"Examples:\n"
		"  sbx-request token create --name ci-deploy --expires 30d\n"
		"  TOKEN=$(sbx-request token create --name nightly --expires 7d --scope read)\n",
		.min_args = 0,
		.max_args = 0,
		.opts = BIT(O_NAME) | BIT(O_EXPIRES) | BIT(O_SCOPE),
		.run = cmd_token_create,
	},
	{
		.name = "token list",
		.synopsis = "token list",
		.summary = "your live API tokens",
		.help =
		"List your live API tokens: id, name, owner, scopes and when each\n"
		"expires.  The tokens themselves are never shown again.\n"
		"\n"
		"Example:\n"
		"  sbx-request token list --json\n",
		.min_args = 0,
		.max_args = 0,
		.opts = 0,
		.run = cmd_token_list,
	},
	{
		.name = "token revoke",
		.synopsis = "token revoke NAME|ID [--reason TEXT]",
		.summary = "end one of your API tokens now",
		.help =
		"Revoke one of your live tokens, by its name or its 16-digit id: it\n"
		"stops working at once.  (Admins revoke anyone's with sbxctl token\n"
		"revoke.)\n"
		"\n"
		"Options:\n"
		"  --reason TEXT    why, for the journal\n"
		"\n"
		"Example:\n"
		"  sbx-request token revoke ci-deploy --reason \"rotated\"\n",
		.min_args = 1,
		.max_args = 1,
		.opts = BIT(O_REASON),
		.run = cmd_token_revoke,
	},
};

static const struct sbx_cli_tool tool = {
	.prog = "sbx-request",
	.purpose =
	"Ask for just-in-time access to a role on this host, follow your requests\n"
	"and give grants back early.  The sbx broker (sbx-brokerd) decides, following\n"
	"the site's policy; approvers decide with sbxctl.  A role's words that are\n"
	"also command names (list, status, ...) cannot be used as role names here.\n",
	.opts = opts,
	.n_opts = N_OPTS,
	.cmds = cmds,
	.n_cmds = sizeof(cmds) / sizeof(cmds[0]),
	.fallback = &request_cmd,
	.extra_help =
	"Durations (--for, --timeout): a number and a unit, largest unit first, each\n"
	"unit at most once: 90s, 30m, 1h, 1h30m, 2d, 1w.\n"
	"\n"
	"Request life: pending -> active (approved, or at once when auto-approved)\n"
	"-> expired | revoked; pending -> denied | cancelled | lapsed.\n"
	"\n"
	"--json prints a request as an object with id, user, role, state,\n"
	"expires_at (RFC 3339 or null), created_at, activated_at, ended_at,\n"
	"duration, duration_text, reason, ticket, approvals_needed, approved_by,\n"
	"approvers, unix_group, gid, requested_by, through, end_reason, ended_by,\n"
	"extends, comment; a list as an array of them; roles as an array of role\n"
	"objects.  Every key is always present (null when unknown).\n",
	.examples =
	"  sbx-request roles\n"
	"  sbx-request sandbox-admin --for 1h --reason \"restart the stuck import job\"\n"
	"  sbx-request sandbox-admin --reason \"debug the import job\" --wait --timeout 10m\n"
	"  sbx-request list --all\n"
	"  sbx-request drop 42\n",
};

int main(int argc, char **argv)
{
	return sbx_cli_main(&tool, argc, argv);
}
