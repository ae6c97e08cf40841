#!/bin/bash
# Slack approvals that work: a request posts exactly one message with the
# right fields and buttons; a correctly signed Approve from the manager's
# Slack id activates the grant (recorded as the manager, via Slack, with
# the Slack id) and the message is updated through response_url; a
# 2-approval role needs two different approvers; Deny denies; follow-ups
# when a grant is revoked and when it expires; what people typed (a reason
# dressed up as sbx's status text, a revoke reason) reaches Slack only as
# plain text; the secrets never reach the log or the journal.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slack_lib.sh"
sbx_init

cat >>"$POLICY" <<'EOF'

  two-keys:
    description: Needs two security leads
    hosts: ["sbx-*"]
    eligible: { users: [erin] }
    approvers: { groups: [security-leads] }
    approvals: 2

  quick:
    description: Short grants for the tests
    hosts: ["sbx-*"]
    eligible: { users: [erin] }
    approvers: { manager: true }
    default_duration: 2s
    max_duration: 3s
EOF
slack_setup

broker_start
tap_result "broker starts with a slack: section" || {
	tap_done
	exit
}
assert_match "it says where it listens for Slack" \
	'slack: listening on 127\.0\.0\.1:[0-9]+/slack/interactive' "$(cat "$LOG")"

# --- one request, one message ------------------------------------------------
req --as erin sandbox-admin --for 90m --reason "debugging the ingest pipeline" --ticket INC-7 --json
A=$(out_id)
assert_eq "erin's request is pending" "pending" "$(json_get .state)"
slack_wait_delivered "$A" pending/0
tap_result "notify.delivered recorded for the request's message"
assert_true "notify.queued came first" journal_has \
	"(.event == \"notify.queued\" and .id == $A and .state == \"pending/0\" and .message.blocks != null)"
MSG=$(slack_messages "$A")
assert_eq "exactly one message posted for it" 1 "$(printf '%s\n' "$MSG" | grep -c .)"
FIELDS=$(printf '%s' "$MSG" | jq -r '[.json.blocks[] | (.text.text // empty), (.fields[]?.text)] | join("\n")')
assert_contains "message: who" "$FIELDS" $'*Who*\nerin'
assert_contains "message: role" "$FIELDS" "sandbox-admin - Root via sudo on sandbox hosts"
assert_contains "message: hosts" "$FIELDS" '`sbx-*` (this host: sbx-01)'
assert_contains "message: how long" "$FIELDS" $'*For*\n1h30m'
assert_contains "message: reason" "$FIELDS" "Reason: debugging the ingest pipeline"
assert_contains "message: ticket" "$FIELDS" "Ticket: INC-7"
assert_contains "message: approvals needed" "$FIELDS" $'*Approvals*\n0 of 1'
assert_contains "message: who can approve" "$FIELDS" "erin's manager (frank) or security-leads (frank, grace)"
APPROVE=$(slack_button "$A" approve)
DENY=$(slack_button "$A" deny)
assert_match "Approve button carries the request id and a MAC" "^v1\\.$A\\.[0-9a-f]{64}\$" "$APPROVE"
assert_match "Deny button too, with another MAC" "^v1\\.$A\\.[0-9a-f]{64}\$" "$DENY"
assert_ne "the two buttons differ" "$APPROVE" "$DENY"
assert_eq "fallback text" "erin asks for sandbox-admin on sbx-01 for 1h30m (request #$A)" \
	"$(printf '%s' "$MSG" | jq -r .json.text)"

# --- frank approves in Slack -----------------------------------------------------
slack_click U0FRANK approve "$APPROVE"
assert_eq "Slack gets 200 for a good approval" 200 "$HTTP"
assert_true "and within Slack's 3 seconds ($SECS s)" awk -v s="$SECS" 'BEGIN { exit !(s < 3) }'
assert_true "request.approval recorded as frank, via slack, with his Slack id" journal_has \
	"(.event == \"request.approval\" and .id == $A and .actor == \"frank\" and .via == \"slack\" and .slack_user == \"U0FRANK\")"
assert_true "grant.activated" journal_has "(.event == \"grant.activated\" and .id == $A)"
req --as erin status "$A" --json
assert_eq "the grant is active" "active" "$(json_get .state)"
ctl check erin --json
assert_eq "sbxctl check erin allows" "true" "$(json_get .allowed)"
slack_wait_delivered "$A" active
tap_result "the follow-up is delivered"
UPD=$(slack_updates "$A" | tail -n 1)
assert_eq "it updated the original message through response_url" "true" \
	"$(printf '%s' "$UPD" | jq -r .json.replace_original)"
assert_contains "the update says approved by frank" "$(printf '%s' "$UPD" | jq -r '.json.blocks[].text.text // empty')" \
	"*Approved* by frank"
assert_eq "the update has no buttons" 0 \
	"$(printf '%s' "$UPD" | jq '[.json.blocks[] | select(.type == "actions")] | length')"
assert_eq "still exactly one message on the webhook" 1 "$(slack_messages "$A" | grep -c .)"

# --- a reason dressed up as sbx's own words ------------------------------------------
# Bold, code, an emoji code, a line of its own that reads like sbx's status
# line, a right-to-left override, a mention and a link.
RLO=$'\xe2\x80\xae'
SPOOF="XQ1 need it *APPROVED* by \`frank\` :white_check_mark:"$'\n'"*Status:* approved ${RLO}gnp.exe <!channel> <https://evil.example|click>"
req --as dave sandbox-admin --reason "$SPOOF" --ticket $'INC-9\n<!here>'
S=$(journal_select '.event == "request.created" and .user == "dave"' | jq -r .id | tail -n 1)
assert_true "the broker takes the request as it was typed" journal_has \
	"(.event == \"request.created\" and .id == ${S:-0} and (.reason | contains(\"<!channel>\")))"
slack_wait_delivered "$S" pending/0
tap_result "dave's request with the spoofing reason is posted"
SMSG=$(slack_messages "$S" | tail -n 1)
assert_eq "the reason is in one plain_text object with emoji false" "plain_text false" \
	"$(printf '%s' "$SMSG" | jq -r '[.. | objects | select(has("text") and (.text | type) == "string"
		and (.text | contains("XQ1")))] | map("\(.type) \(.emoji)") | join(",")')"
STEXT=$(printf '%s' "$SMSG" | jq -r '.json.blocks[].text | select(.type? == "plain_text") | .text' |
	grep XQ1)
assert_eq "folded into one line, without the override; mention and link made inert" \
	"Reason: XQ1 need it *APPROVED* by \`frank\` :white_check_mark: *Status:* approved gnp.exe &lt;!channel&gt; &lt;https://evil.example|click&gt;" \
	"$STEXT"
assert_eq "the ticket too" "plain_text false Ticket: INC-9 &lt;!here&gt;" \
	"$(printf '%s' "$SMSG" | jq -r '.json.blocks[].text | select(.text? // "" | startswith("Ticket:")) |
		"\(.type) \(.emoji) \(.text)"')"
assert_contains "labelled as the requester's words" \
	"$(printf '%s' "$SMSG" | jq -r '.json.blocks[].text.text // empty')" "*In the requester's words*"
assert_not_contains "no mention, link or override anywhere in the post" \
	"$(printf '%s' "$SMSG" | jq -r .body)" "<!channel>"
assert_not_contains "(the link)" "$(printf '%s' "$SMSG" | jq -r .body)" "<https://evil"
assert_not_contains "(the override)" "$(printf '%s' "$SMSG" | jq -r .body)" "$RLO"
assert_not_contains "the notification text has none of it" "$(printf '%s' "$SMSG" | jq -r .json.text)" "XQ1"
assert_eq "sbx's own status line is still mrkdwn" "mrkdwn" \
	"$(printf '%s' "$SMSG" | jq -r '.json.blocks[].text | select(.text? // "" | contains("*Waiting for")) | .type')"
ctl --as bob deny "$S" --reason "XQ2 *Approved* by frank :white_check_mark:"
assert_rc "bob denies it with a reason that looks like an approval" 0
slack_wait_delivered "$S" denied
DMSG=$(slack_messages "$S" | tail -n 1)
assert_eq "his reason is plain text too" "plain_text false Reason given by bob: XQ2 *Approved* by frank :white_check_mark:" \
	"$(printf '%s' "$DMSG" | jq -r '.json.blocks[].text | select(.text? // "" | contains("XQ2")) |
		"\(.type) \(.emoji) \(.text)"')"

# --- a 2-approval role needs two different approvers ---------------------------------
req --as erin two-keys --reason "rotating the signing keys today"
B=$(journal_select '.event == "request.created" and .role == "two-keys"' | jq -r .id | tail -n 1)
slack_wait_delivered "$B" pending/0
tap_result "two-keys request posted"
B_APPROVE=$(slack_button "$B" approve)
slack_click U0FRANK approve "$B_APPROVE"
assert_eq "frank's approval accepted" 200 "$HTTP"
req --as erin status "$B" --json
assert_eq "one approval of two: still pending" "pending" "$(json_get .state)"
slack_wait_delivered "$B" pending/1
tap_result "the message is updated to show one approval of two"
assert_contains "the update lists frank and keeps the buttons" \
	"$(slack_updates "$B" | tail -n 1 | jq -r '[.json.blocks[] | (.text.text // empty), (.fields[]?.text), (.type)] | join(" ")')" \
	"Approved so far: frank"
slack_click U0FRANK approve "$B_APPROVE"
assert_eq "frank again (a second click): Slack still gets 200" 200 "$HTTP"
wait_until 5 eval 'slack_ephemeral | grep -q "frank already approved request $B"'
tap_result "frank is told privately that he already approved"
req --as erin status "$B" --json
assert_eq "frank twice does not make two: still pending" "pending" "$(json_get .state)"
slack_click U0GRACE approve "$B_APPROVE"
assert_eq "grace's approval accepted" 200 "$HTTP"
req --as erin status "$B" --json
assert_eq "two different approvers: active" "active" "$(json_get .state)"
assert_eq "two approvals recorded, by frank and grace" "frank grace" \
	"$(journal_select ".event == \"request.approval\" and .id == $B" | jq -r .actor | sort | tr '\n' ' ' | sed 's/ $//')"

# --- deny ----------------------------------------------------------------------------------
req --as dave sandbox-admin --reason "looking at the crash dumps"
C=$(journal_select '.event == "request.created" and .user == "dave"' | jq -r .id | tail -n 1)
slack_wait_delivered "$C" pending/0
tap_result "dave's request posted"
slack_click U0BOB deny "$(slack_button "$C" deny)"
assert_eq "bob's Deny accepted" 200 "$HTTP"
assert_true "request.denied recorded as bob, via slack" journal_has \
	"(.event == \"request.denied\" and .id == $C and .actor == \"bob\" and .via == \"slack\" and .slack_user == \"U0BOB\")"
slack_wait_delivered "$C" denied
tap_result "the message is updated: denied"
assert_contains "the update says who denied" \
	"$(slack_updates "$C" | tail -n 1 | jq -r '.json.blocks[].text.text // empty')" "*Denied* by bob"

# --- follow-ups for a revocation (sbxctl) and an expiry --------------------------------------
ctl --as frank revoke "$A" --reason "done for today"
assert_rc "frank revokes erin's grant with sbxctl" 0
slack_wait_delivered "$A" revoked
tap_result "a follow-up when the grant is revoked"
REVOKED=$(slack_updates "$A" | tail -n 1)
assert_contains "it says revoked" \
	"$(printf '%s' "$REVOKED" | jq -r '.json.blocks[].text.text // empty')" "*Revoked* by frank."
assert_eq "and why, in frank's words, as plain text" "plain_text false" \
	"$(printf '%s' "$REVOKED" | jq -r '.json.blocks[].text |
		select(.text? == "Reason given by frank: done for today") | "\(.type) \(.emoji)"')"

req --as erin quick --reason "a quick look at the logs"
Q=$(journal_select '.event == "request.created" and .role == "quick"' | jq -r .id | tail -n 1)
slack_wait_delivered "$Q" pending/0
slack_click U0FRANK approve "$(slack_button "$Q" approve)"
assert_eq "quick grant approved in Slack" 200 "$HTTP"
slack_wait_delivered "$Q" expired 15
tap_result "a follow-up when the grant expires"
assert_contains "it says expired" \
	"$(slack_updates "$Q" | tail -n 1 | jq -r '.json.blocks[].text.text // empty')" "*Expired*"

# --- a lapse (after a reload that shortens request_ttl) ------------------------------------------
sed -i 's/^\(  request_ttl:\) 24h/\1 2s/' "$POLICY"
kill -HUP "$BROKER_PID"
wait_until 10 grep -q 'slack: re-read the webhook URL and signing secret' "$LOG"
tap_result "SIGHUP: the policy is reloaded and the Slack secrets read again"
req --as erin sandbox-admin --reason "this one will lapse unanswered"
L=$(journal_select '.event == "request.created" and .user == "erin" and .role == "sandbox-admin"' |
	jq -r .id | tail -n 1)
slack_wait_delivered "$L" lapsed 15
tap_result "a follow-up when the request lapses"
assert_contains "a new message (nobody pressed a button): it says lapsed" \
	"$(slack_messages "$L" | tail -n 1 | jq -r '.json.blocks[].text.text // empty')" "*Lapsed*"

# --- secrets stay secret ----------------------------------------------------------------------
assert_not_contains "the webhook URL is not in the log" "$(cat "$LOG")" "webhooksecretpart"
assert_not_contains "the signing secret is not in the log" "$(cat "$LOG")" "$SLACK_SECRET"
assert_not_contains "the webhook URL is not in the journal" "$(journal)" "webhooksecretpart"
assert_not_contains "the signing secret is not in the journal" "$(journal)" "$SLACK_SECRET"
assert_not_contains "nor in the broker's command line" "$(tr '\0' ' ' <"/proc/$BROKER_PID/cmdline")" \
	"webhooksecretpart"

broker_stop
assert_rc "broker stops cleanly" 0 "$BROKER_RC"
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "the journal verifies" 0
tap_done
