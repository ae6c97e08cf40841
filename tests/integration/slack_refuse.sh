#!/bin/bash
# What the Slack endpoint refuses, each time changing nothing: unsafe
# secret files (the broker does not start), a bad signature, a tampered
# body, a stale or future timestamp, a replayed request, an unknown Slack
# user, the requester approving themselves, a non-approver, a forged or
# recycled button, a second click, a request no longer pending, an
# unknown action; and the HTTP rules (method, path, size, content type).
# Refused clicks get a private (ephemeral) answer through response_url.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slack_lib.sh"
sbx_init
slack_setup

# --- secret files the broker will not use ------------------------------------------
chmod 644 "$T/slack-signing-secret"
broker_start
assert_ne "a signing secret others can read: the broker does not start" 0 "${BROKER_RC:-0}"
assert_contains "and says how to fix it" "$(cat "$LOG")" "chmod 600 $T/slack-signing-secret"
chmod 600 "$T/slack-signing-secret"

mv "$T/slack-webhook" "$T/slack-webhook.real"
ln -s "$T/slack-webhook.real" "$T/slack-webhook"
broker_start
assert_ne "a webhook file that is a symbolic link: refused" 0 "${BROKER_RC:-0}"
assert_contains "saying so" "$(cat "$LOG")" "slack-webhook is a symbolic link"
rm "$T/slack-webhook"

(umask 077 && echo "http://hooks.slack.com/services/T0/B0/x" >"$T/slack-webhook")
broker_start
assert_ne "a plain-http webhook to the internet: refused" 0 "${BROKER_RC:-0}"
assert_contains "saying https is needed" "$(cat "$LOG")" "must start with https://"
mv "$T/slack-webhook.real" "$T/slack-webhook"

broker_start
tap_result "broker starts with safe secret files" || {
	tap_done
	exit
}

req --as erin sandbox-admin --reason "debugging the ingest pipeline"
A=$(journal_select '.event == "request.created" and .user == "erin"' | jq -r .id)
slack_wait_delivered "$A" pending/0
tap_result "erin's request is posted"
APPROVE=$(slack_button "$A" approve)

# approvals_of ID: how many request.approval records request ID has.
approvals_of() {
	journal_select ".event == \"request.approval\" and .id == $1" | grep -c .
}
state_of() {
	req --as "$2" status "$1" --json
	json_get .state
}
# wait_answer TEXT: an ephemeral answer containing TEXT arrives.
wait_answer() {
	WANT=$1
	wait_until 5 eval 'slack_ephemeral | grep -qF -- "$WANT"'
}

# --- signatures ------------------------------------------------------------------------
slack_click U0FRANK approve "$APPROVE" "$(date +%s)" "not-the-secret"
assert_eq "signed with another secret: 401" 401 "$HTTP"
NOW=$(date +%s)
BODY="payload=$(slack_payload U0FRANK sbx_approve "$APPROVE" | jq -sRr @uri)"
SIG=$(slack_sign "$NOW" "$BODY")
slack_send "$NOW" "$SIG" "${BODY/U0FRANK/U0GRACE}"
assert_eq "a body changed after signing: 401" 401 "$HTTP"
slack_click U0FRANK approve "$APPROVE" $((NOW - 400))
assert_eq "a timestamp 400 s old (signed correctly): 401" 401 "$HTTP"
slack_click U0FRANK approve "$APPROVE" $((NOW + 400))
assert_eq "a timestamp 400 s ahead: 401" 401 "$HTTP"
HTTP=$(printf '%s' "$BODY" | curl -sS -o /dev/null -w '%{http_code}' --max-time 10 \
	-H 'Content-Type: application/x-www-form-urlencoded' --data-binary @- \
	"http://127.0.0.1:$(slack_port)/slack/interactive")
assert_eq "no signature headers: 401" 401 "$HTTP"
assert_eq "none of these approved anything" 0 "$(approvals_of "$A")"
assert_eq "the request is still pending" pending "$(state_of "$A" erin)"
assert_match "refusals are logged with the reason" "does not match|more than 5 minutes" "$(cat "$LOG")"

# --- replay --------------------------------------------------------------------------------
req --as dave sandbox-admin --reason "looking at the crash dumps"
B=$(journal_select '.event == "request.created" and .user == "dave"' | jq -r .id)
slack_wait_delivered "$B" pending/0
NOW=$(date +%s)
BODY="payload=$(slack_payload U0BOB sbx_approve "$(slack_button "$B" approve)" | jq -sRr @uri)"
SIG=$(slack_sign "$NOW" "$BODY")
slack_send "$NOW" "$SIG" "$BODY"
assert_eq "bob's approval of dave's request: 200" 200 "$HTTP"
slack_send "$NOW" "$SIG" "$BODY"
assert_eq "the same signed request again (replay): 401" 401 "$HTTP"
assert_eq "one approval, not two" 1 "$(approvals_of "$B")"

# --- who pressed ------------------------------------------------------------------------------
slack_click U0NOBODY approve "$APPROVE"
assert_eq "an unknown Slack user: Slack still gets 200" 200 "$HTTP"
wait_answer "Your Slack account (U0NOBODY) is not linked to anyone"
tap_result "and they are told privately how to get linked"

req --as alice sandbox-admin --reason "alice needs root for a while"
C=$(journal_select '.event == "request.created" and .user == "alice"' | jq -r .id)
slack_wait_delivered "$C" pending/0
slack_click U0ALICE approve "$(slack_button "$C" approve)"
assert_eq "alice approving her own request: 200" 200 "$HTTP"
wait_answer "Request #$C: you cannot approve your own request"
tap_result "she is told she cannot approve her own request"
assert_eq "her request has no approval" 0 "$(approvals_of "$C")"

slack_click U0ALICE approve "$APPROVE"
wait_answer "alice is not an approver of sandbox-admin"
tap_result "alice (not an approver of erin's request) is told who can approve"

# --- buttons that are not ours ----------------------------------------------------------------
slack_click U0FRANK approve "v1.$A.$(printf '%064d' 0)"
wait_answer "This button was not made by sbx"
tap_result "a forged button is refused"
slack_click U0BOB approve "v1.$C.${APPROVE#v1."$A".}"
assert_eq "erin's button edited to name alice's request: 200" 200 "$HTTP"
slack_click U0BOB approve "$(slack_button "$C" deny)"
assert_eq "alice's Deny button sent as Approve: 200" 200 "$HTTP"
sleep 0.3
assert_eq "neither approved alice's request" 0 "$(approvals_of "$C")"
assert_eq "and it is still pending" pending "$(state_of "$C" alice)"
assert_true "both were logged as buttons sbx did not make" \
	test "$(grep -c 'pressed a button this broker did not make' "$LOG")" -ge 3

BODY="payload=$(slack_payload U0FRANK sbx_launch_rockets "$APPROVE" | jq -sRr @uri)"
NOW=$(date +%s)
slack_send "$NOW" "$(slack_sign "$NOW" "$BODY")" "$BODY"
assert_eq "an unknown action: 200" 200 "$HTTP"
wait_answer "this is not an sbx button"
tap_result "answered: sbx cannot do that"

# --- a second click, and a request that is no longer pending -------------------------------------
slack_click U0FRANK approve "$APPROVE"
assert_eq "frank approves erin's request" 200 "$HTTP"
assert_eq "it is active" active "$(state_of "$A" erin)"
slack_click U0GRACE approve "$APPROVE"
assert_eq "grace presses Approve on the active grant: 200" 200 "$HTTP"
wait_answer "Request #$A: request $A is active, not pending"
tap_result "she is told it is no longer pending"
slack_click U0GRACE deny "$(slack_button "$A" deny)"
wait_answer "Nothing was changed"
assert_eq "Deny after approval changes nothing" active "$(state_of "$A" erin)"
assert_eq "erin's request has exactly frank's approval" "frank" \
	"$(journal_select ".event == \"request.approval\" and .id == $A" | jq -r .actor | tr '\n' ' ' | sed 's/ $//')"
assert_eq "nothing was denied" 0 "$(journal_select '.event == "request.denied"' | grep -c .)"

# --- HTTP rules ---------------------------------------------------------------------------------------
URL="http://127.0.0.1:$(slack_port)"
assert_eq "GET: 405" 405 "$(curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$URL/slack/interactive")"
NOW=$(date +%s)
BODY="payload=$(slack_payload U0FRANK sbx_approve "$APPROVE" | jq -sRr @uri)"
slack_send "$NOW" "$(slack_sign "$NOW" "$BODY")" "$BODY" /elsewhere
assert_eq "another path: 404" 404 "$HTTP"
BIG="payload=$(head -c 70000 /dev/zero | tr '\0' a)"
slack_send "$NOW" "$(slack_sign "$NOW" "$BIG")" "$BIG"
assert_eq "a body over 64 KiB: 413" 413 "$HTTP"
NOW=$(date +%s)
slack_send "$NOW" "$(slack_sign "$NOW" "$BODY")" "$BODY" /slack/interactive application/json
assert_eq "signed, but not form-encoded: 415" 415 "$HTTP"
NOW=$(date +%s)
slack_send "$NOW" "$(slack_sign "$NOW" "token=x")" "token=x"
assert_eq "signed, without a payload: 400" 400 "$HTTP"
alive "$BROKER_PID"
tap_result "the broker is still running"
ctl check erin --json
assert_eq "and answering" true "$(json_get .allowed)"

# --- the private answers ---------------------------------------------------------------------------
EPH=$(jq -c 'select(.json.response_type == "ephemeral")' "$FAKE_LOG")
assert_eq "every private answer went to the response_url" "" \
	"$(printf '%s\n' "$EPH" | jq -r 'select(.path | startswith("/actions/") | not) | .path')"
assert_eq "and replaces nothing" "" \
	"$(printf '%s\n' "$EPH" | jq -r 'select(.json.replace_original != false) | .path')"

broker_stop
assert_rc "broker stops cleanly" 0 "$BROKER_RC"
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "the journal verifies" 0
tap_done
