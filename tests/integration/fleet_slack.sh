#!/bin/bash
# Slack in a fleet: one host has the slack: section (the one Slack's
# interactivity URL points at).  A request filed on another host is posted
# by it; an approval pressed in Slack goes through the fleet's log like any
# other change, is live on every matching host, and Slack hears back only
# once it is recorded; a denial too.  A press while the fleet's database
# is away changes nothing and says why.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
. "$(dirname "$0")/slack_lib.sh"
fleet_init

fleet_policy "$T/plain.yaml"
cp "$T/plain.yaml" "$POLICY"
slack_setup
LOG="$T/sbx-01.log"
fb_start sbx-01 "$POLICY"
tap_result "sbx-01 starts with the slack: section" || {
	fleet_done
	exit
}
fb_start sbx-02 "$T/plain.yaml"
tap_result "sbx-02 starts without it" || {
	fleet_done
	exit
}
REASON="fleet and Slack, on purpose"

freq sbx-02 --as erin --json sandbox-admin --reason "$REASON"
assert_rc "erin asks on sbx-02" 0
ID=$(out_id)
posted() { [ -n "$(slack_button "$ID" approve)" ]; }
wait_until 5 posted
assert_true "sbx-01 posts the request to Slack" posted
assert_eq "once" 1 "$(slack_messages "$ID" | wc -l)"

slack_click U0FRANK approve "$(slack_button "$ID" approve)"
assert_eq "frank's Approve press gets 200" 200 "$HTTP"
live() { allowed sbx-01 erin && allowed sbx-02 erin; }
wait_until 3 live
assert_true "the grant is live on both hosts" live
DUMP=$(fleet_dump)
assert_eq "the approval is in the fleet's log, made on sbx-01, via Slack" "request.approval sbx-01" \
	"$(printf '%s\n' "$DUMP" | awk -F'\t' -v id="$ID" '$2 == "request.approval" && $3 == id { print $2, $6 }')"
assert_true "sbx-02's copy says via slack" \
	fjournal_has sbx-02 ".event == \"request.approval\" and .id == $ID and .via == \"slack\" and .slack_user == \"U0FRANK\""
updated() { [ "$(slack_updates "$ID" | wc -l)" -ge 1 ]; }
wait_until 5 updated
assert_true "the message is updated" updated

freq sbx-02 --as dave --json sandbox-admin --reason "$REASON"
DAVE=$(out_id)
dposted() { [ -n "$(slack_button "$DAVE" deny)" ]; }
wait_until 5 dposted
slack_click U0GRACE deny "$(slack_button "$DAVE" deny)"
assert_eq "grace's Deny press gets 200" 200 "$HTTP"
denied() { freq sbx-02 --as dave --json status "$DAVE" && [ "$(json_get .state)" = denied ]; }
wait_until 3 denied
assert_true "the denial reaches sbx-02" denied

# --- the database away ---------------------------------------------------------------
freq sbx-02 --as dave --json quick --reason "$REASON"
QID=$(out_id)
qposted() { [ -n "$(slack_button "$QID" approve)" ]; }
wait_until 5 qposted
pg_stop db
slack_click U0FRANK approve "$(slack_button "$QID" approve)"
assert_eq "a press while the database is away still gets 200" 200 "$HTTP"
said() { slack_ephemeral | grep -q "database is unreachable"; }
wait_until 5 said
assert_true "and frank is told privately that nothing was changed, and why" said
pg_start db
freq sbx-01 --as dave --json status "$QID"
assert_eq "the request is still pending" pending "$(json_get .state)"

fleet_done
