/*
 * Slack approvals: the Block Kit message for a request.  One function
 * renders a request as it is now, so the first message and every update
 * (approved, denied, lapsed, expired, revoked) read alike; only the
 * outcome line and the buttons differ.
 *
 * Two kinds of text, never mixed in one text object: sbx's own words
 * (labels, the outcome line, names and words of the policy) in mrkdwn,
 * escaped, for bold labels, emoji and dates; and what people typed
 * (reason, ticket, deny and revoke reasons, approval comments) in
 * plain_text objects with "emoji": false, where Slack formats nothing
 * (no bold, no code, no emoji, no mentions, no links), folded into one
 * line, without invisible characters, under a label that says whose
 * words they are.  So a reason cannot pass for sbx's status lines.  The
 * notification text ("text") holds sbx's words and names only.
 */
#include "config.h"

#include "slack_int.h"

#include "duration.h"
#include "timeutil.h"

#include <stdio.h>
#include <string.h>

/* Slack's limits: header 150, a field 2000, a section's text 3000
 * characters (bytes are never fewer). */
#define FIELD_MAX 1900
#define TEXT_MAX 2900

void slack_state_key(const struct sbx_req *r, char *buf, size_t len)
{
	if (r->state == SBX_REQ_PENDING)
		snprintf(buf, len, "pending/%zu", r->n_approvals);
	else
		snprintf(buf, len, "%s", sbx_req_state_name(r->state));
}

bool slack_state_final(const char *key)
{
	return strncmp(key, "pending/", 8) != 0 && strcmp(key, "active") != 0;
}

/* sbx's words: mrkdwn, verbatim (Slack links nothing by itself). */
static json_t *mrkdwn(const char *text)
{
	return json_pack("{s:s, s:s, s:b}", "type", "mrkdwn", "text", text, "verbatim", 1);
}

/* Plain text: shown as it is; ":emoji:" codes too. */
static json_t *plain(const char *text)
{
	return json_pack("{s:s, s:s, s:b}", "type", "plain_text", "text", text, "emoji", 0);
}

static void add_field(json_t *fields, const char *label, const char *value)
{
	char esc[FIELD_MAX], buf[FIELD_MAX + 64];

	slack_escape(value, esc, sizeof(esc));
	snprintf(buf, sizeof(buf), "*%s*\n%s", label, esc);
	json_array_append_new(fields, mrkdwn(buf));
}

static void add_section(json_t *blocks, const char *text)
{
	json_array_append_new(blocks, json_pack("{s:s, s:o}", "type", "section", "text",
						mrkdwn(text)));
}

/* Words someone typed, as a section of their own: "LABEL: TEXT" in
 * plain_text (a label in plain text too, so nothing in the section is
 * formatted), the text cleaned by slack_plain. */
static void add_typed(json_t *blocks, const char *label, const char *typed)
{
	char lab[200], clean[TEXT_MAX], text[TEXT_MAX + 256];

	slack_plain(label, lab, sizeof(lab));
	slack_plain(typed, clean, sizeof(clean));
	snprintf(text, sizeof(text), "%s: %s", lab, clean[0] ? clean : "(nothing printable)");
	json_array_append_new(blocks, json_pack("{s:s, s:o}", "type", "section", "text",
						plain(text)));
}

/* Each glob in a code span, so "sbx-*" does not start bold text. */
static void hosts_text(const struct sbx_policy *p, const struct sbx_role *role, char *buf,
		       size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; role && i < role->hosts.n && off < len; i++) {
		int w = snprintf(buf + off, len - off, "%s`", i ? ", " : "");

		if (w < 0 || (size_t)w >= len - off)
			return;
		off += (size_t)w;
		for (const char *c = role->hosts.v[i]; *c && off + 2 < len; c++)
			buf[off++] = *c == '`' ? '\'' : *c;
		buf[off++] = '`';
		buf[off] = '\0';
	}
	if (off < len)
		snprintf(buf + off, len - off, "%s(this host: %s)", off ? " " : "",
			 p->broker.host);
}

/* A time every reader sees in their own time zone (Slack's date syntax),
 * with UTC for clients that cannot. */
static void when_text(int64_t secs, char *buf, size_t len)
{
	char utc[SBX_RFC3339_LEN];

	sbx_format_rfc3339(secs, utc);
	snprintf(buf, len, "<!date^%lld^{date_short_pretty} {time}|%s>", (long long)secs, utc);
}

static void approved_by(const struct sbx_req *r, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < r->n_approvals && off < len; i++) {
		char who[200];
		int w;

		slack_escape(r->approvals[i].who ? r->approvals[i].who : "?", who, sizeof(who));
		w = snprintf(buf + off, len - off, "%s%s", i ? ", " : "", who);
		if (w < 0)
			return;
		off += (size_t)w;
	}
}

/* The line that says where the request stands, in mrkdwn: sbx's words,
 * with names (escaped) and never what anyone typed (the deny or revoke
 * reason follows in a section of its own). */
static void outcome_text(struct sbx_broker *b, const struct sbx_req *r,
			 const struct sbx_role *role, char *buf, size_t len)
{
	char when[128], who[512], raw[768], approvers[768], by[200];
	unsigned left = r->approvals_needed > r->n_approvals
				? r->approvals_needed - (unsigned)r->n_approvals : 0;

	approved_by(r, who, sizeof(who));
	slack_escape(r->ended_by ? r->ended_by : r->state == SBX_REQ_CANCELLED ? r->user : "?", by,
		     sizeof(by));
	switch (r->state) {
	case SBX_REQ_PENDING:
		raw[0] = '\0';
		if (role)
			sbx_policy_approvers_text(b->policy, role, r->user, raw, sizeof(raw));
		slack_escape(raw, approvers, sizeof(approvers));
		when_text(r->lapses_at, when, sizeof(when));
		snprintf(buf, len,
			 ":hourglass_flowing_sand: *Waiting for %u approval%s* from %s.%s%s "
			 "Lapses at %s unless approved.", left, left == 1 ? "" : "s",
			 approvers[0] ? approvers : "an approver", who[0] ? " Approved so far: " : "",
			 who, when);
		break;
	case SBX_REQ_ACTIVE:
		when_text(r->expires_at, when, sizeof(when));
		snprintf(buf, len, ":white_check_mark: *Approved* by %s. The grant is active until %s.",
			 who[0] ? who : "policy", when);
		break;
	case SBX_REQ_DENIED:
		snprintf(buf, len, ":no_entry: *Denied* by %s.", by);
		break;
	case SBX_REQ_CANCELLED:
		snprintf(buf, len, ":leftwards_arrow_with_hook: *Cancelled* by %s.", by);
		break;
	case SBX_REQ_LAPSED:
		when_text(r->lapses_at, when, sizeof(when));
		snprintf(buf, len, ":zzz: *Lapsed*: not approved by %s.", when);
		break;
	case SBX_REQ_EXPIRED:
		when_text(r->expires_at, when, sizeof(when));
		snprintf(buf, len, ":checkered_flag: *Expired*: the grant ended at %s.", when);
		break;
	case SBX_REQ_REVOKED:
		snprintf(buf, len, ":octagonal_sign: *Revoked* by %s.", by);
		break;
	}
}

static json_t *button(const char *label, const char *action_id, const char *style,
		      const char *value)
{
	return json_pack("{s:s, s:o, s:s, s:s, s:s}", "type", "button", "text", plain(label),
			 "action_id", action_id, "style", style, "value", value);
}

static json_t *buttons(const uint8_t key[SLACK_KEY_LEN], const struct sbx_req *r)
{
	char approve[160], deny[160], block_id[32];
	json_t *deny_btn;

	slack_button_value(key, r, "approve", approve, sizeof(approve));
	slack_button_value(key, r, "deny", deny, sizeof(deny));
	snprintf(block_id, sizeof(block_id), "sbx-request-%u", r->id);
	deny_btn = button("Deny", "sbx_deny", "danger", deny);
	json_object_set_new(deny_btn, "confirm",
			    json_pack("{s:o, s:o, s:o, s:o}", "title", plain("Deny this request?"),
				      "text", plain("The requester is told it was denied."),
				      "confirm", plain("Deny"), "deny", plain("Back")));
	return json_pack("{s:s, s:s, s:[o, o]}", "type", "actions", "block_id", block_id,
			 "elements", button("Approve", "sbx_approve", "primary", approve), deny_btn);
}

json_t *slack_render(struct sbx_broker *b, const struct sbx_req *r,
		     const uint8_t key[SLACK_KEY_LEN])
{
	const struct sbx_role *role = sbx_policy_role(b->policy, r->role);
	char header[160], summary[1024], dur[32], hosts[512], role_line[600], text[1024],
		outcome[2048], count[64], user[200], rolename[200], host[300], label[300];
	json_t *msg = NULL, *blocks = json_array(), *fields = json_array();

	if (!blocks || !fields)
		goto out;
	sbx_duration_format(r->duration, dur, sizeof(dur));
	hosts_text(b->policy, role, hosts, sizeof(hosts));
	slack_escape(r->user, user, sizeof(user));
	slack_escape(r->role, rolename, sizeof(rolename));
	slack_escape(b->policy->broker.host, host, sizeof(host));
	/* A header is plain text of at most 150 characters. */
	snprintf(text, sizeof(text), "Access request #%u: %s for %s", r->id, r->role, r->user);
	slack_plain(text, header, 151);
	json_array_append_new(blocks, json_pack("{s:s, s:o}", "type", "header", "text",
						plain(header)));

	snprintf(role_line, sizeof(role_line), "%s%s%s", r->role,
		 role && role->description ? " - " : "",
		 role && role->description ? role->description : "");
	add_field(fields, "Who", r->user);
	add_field(fields, "Role", role_line);
	add_field(fields, "Hosts", hosts);
	add_field(fields, "For", dur);
	snprintf(count, sizeof(count), "%zu of %u", r->n_approvals, r->approvals_needed);
	add_field(fields, "Approvals", count);
	json_array_append_new(blocks, json_pack("{s:s, s:o}", "type", "section", "fields", fields));
	fields = NULL;

	/* What the requester typed, below a label of sbx's that says so. */
	add_section(blocks, "*In the requester's words* (shown as typed):");
	add_typed(blocks, "Reason", r->reason && r->reason[0] ? r->reason : "(none given)");
	if (r->ticket && r->ticket[0])
		add_typed(blocks, "Ticket", r->ticket);

	outcome_text(b, r, role, outcome, sizeof(outcome));
	add_section(blocks, outcome);
	if ((r->state == SBX_REQ_DENIED || r->state == SBX_REQ_REVOKED) && r->end_reason &&
	    r->end_reason[0]) {
		snprintf(label, sizeof(label), "Reason given by %s", r->ended_by ? r->ended_by : "?");
		add_typed(blocks, label, r->end_reason);
	}
	for (size_t i = 0; i < r->n_approvals; i++) {
		if (!r->approvals[i].comment || !r->approvals[i].comment[0])
			continue;
		snprintf(label, sizeof(label), "Comment by %s",
			 r->approvals[i].who ? r->approvals[i].who : "?");
		add_typed(blocks, label, r->approvals[i].comment);
	}
	if (r->state == SBX_REQ_PENDING)
		json_array_append_new(blocks, buttons(key, r));
	snprintf(text, sizeof(text), "sbx-brokerd on %s - request #%u", host, r->id);
	json_array_append_new(blocks, json_pack("{s:s, s:[o]}", "type", "context", "elements",
						mrkdwn(text)));

	/* The notification: sbx's words and names only. */
	if (r->state == SBX_REQ_PENDING)
		snprintf(summary, sizeof(summary), "%s asks for %s on %s for %s (request #%u)",
			 user, rolename, host, dur, r->id);
	else
		snprintf(summary, sizeof(summary), "Request #%u (%s, %s) is %s", r->id, user,
			 rolename, sbx_req_state_name(r->state));
	msg = json_pack("{s:s, s:o}", "text", summary, "blocks", blocks);
	blocks = NULL;
out:
	json_decref(blocks);
	json_decref(fields);
	return msg;
}
