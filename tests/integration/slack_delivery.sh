#!/bin/bash
# Slack delivery is never lost and never doubled: a request waiting for
# approval when Slack is switched on is posted at start-up; the webhook
# down for a while (500s) then up gives one message; 429 is retried after
# its Retry-After; a hung webhook times out and is retried; a broker
# killed (kill -9) or stopped with an undelivered message delivers it
# after the restart, once; a restart after delivery sends nothing again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slack_lib.sh"
sbx_init

cat >>"$POLICY" <<'EOF'

  spare:
    description: A role for the restart cases
    hosts: ["sbx-*"]
    eligible: { users: [erin, dave] }
    approvers: { manager: true }
EOF
cp "$POLICY" "$T/no-slack.yaml"
slack_setup

# created_id USER ROLE: the id of USER's latest request for ROLE.
created_id() {
	journal_select ".event == \"request.created\" and .user == \"$1\" and .role == \"$2\"" |
		jq -r .id | tail -n 1
}
# posts_of ID STATUS: how many webhook posts for request ID got STATUS.
posts_of() {
	jq -c --arg h "Access request #$1:" --argjson st "$2" \
		'select(.status == $st and (.path | startswith("/services/")) and
		        ((.json.blocks[0].text.text // "") | startswith($h)))' "$FAKE_LOG" | grep -c .
}
queued_of() {
	journal_select ".event == \"notify.queued\" and .id == $1" | grep -c .
}

# --- a request from before Slack was configured ----------------------------------------
broker_start "$T/no-slack.yaml"
tap_result "broker starts without a slack: section" || {
	tap_done
	exit
}
req --as erin spare --reason "waiting since before Slack"
E=$(created_id erin spare)
broker_stop
broker_start
tap_result "broker restarts with a slack: section"
slack_wait_delivered "$E" pending/0
tap_result "the request that was already waiting is posted at start-up"
assert_eq "once" 1 "$(posts_of "$E" 200)"
ctl --as frank approve "$E"
slack_wait_delivered "$E" active
tap_result "approved with sbxctl: a follow-up is posted (no response_url: a new message)"

# --- down for a while, then up ------------------------------------------------------------
printf '500\n500\n' >"$FAKE_SCRIPT"
req --as erin sandbox-admin --reason "debugging the ingest pipeline"
A=$(created_id erin sandbox-admin)
slack_wait_delivered "$A" pending/0 20
tap_result "the webhook answers 500 twice, then the message is delivered"
assert_eq "two failed attempts reached the webhook" 2 "$(posts_of "$A" 500)"
assert_eq "the message arrived once" 1 "$(posts_of "$A" 200)"
assert_eq "notify.delivered says 3 attempts" 3 \
	"$(journal_select ".event == \"notify.delivered\" and .id == $A" | jq -r .attempts)"
assert_contains "the failure is logged" "$(cat "$LOG")" "request $A: posting its message failed (attempt 1): HTTP 500"

# --- 429 with Retry-After ------------------------------------------------------------------------
printf '429 2\n' >"$FAKE_SCRIPT"
req --as dave sandbox-admin --reason "looking at the crash dumps"
B=$(created_id dave sandbox-admin)
slack_wait_delivered "$B" pending/0 20
tap_result "after a 429 the message is delivered"
GAP=$(jq -s --arg h "Access request #$B:" \
	'[.[] | select((.json.blocks[0].text.text // "") | startswith($h))] |
	 (map(select(.status == 200))[0].t - map(select(.status == 429))[0].t)' "$FAKE_LOG")
assert_true "the retry waited for Retry-After: 2 (${GAP}s)" \
	awk -v g="$GAP" 'BEGIN { exit !(g >= 1.9) }'
assert_eq "once" 1 "$(posts_of "$B" 200)"

# --- a webhook that hangs -----------------------------------------------------------------------------
printf 'hang 5\n' >"$FAKE_SCRIPT"
req --as alice sandbox-admin --reason "alice needs root for a while"
C=$(created_id alice sandbox-admin)
slack_wait_delivered "$C" pending/0 20
tap_result "a hung attempt times out (timeout: 2s) and the retry is delivered"
assert_eq "after 2 attempts" 2 \
	"$(journal_select ".event == \"notify.delivered\" and .id == $C" | jq -r .attempts)"
assert_match "the timeout is logged" "request $C: posting its message failed \\(attempt 1\\): .*timed out" \
	"$(cat "$LOG")"

# --- killed with a message undelivered -------------------------------------------------------------------
for i in $(seq 100); do echo 500; done >"$FAKE_SCRIPT"
req --as dave spare --reason "before the broker is killed"
D=$(created_id dave spare)
wait_until 10 test "$(posts_of "$D" 500)" -ge 1
tap_result "the webhook is down: the message is queued and failing"
assert_true "notify.queued is in the journal" journal_has "(.event == \"notify.queued\" and .id == $D)"
broker_kill9
: >"$FAKE_SCRIPT"
broker_start
tap_result "broker restarts after kill -9"
slack_wait_delivered "$D" pending/0 15
tap_result "the undelivered message goes out after the restart"
assert_eq "once" 1 "$(posts_of "$D" 200)"
assert_eq "queued once: the restart did not queue it again" 1 "$(queued_of "$D")"

# --- stopped with a message undelivered (it rides in the snapshot) -------------------------------------
for i in $(seq 100); do echo 500; done >"$FAKE_SCRIPT"
ctl --as bob deny "$D" --reason "not today"
assert_rc "bob denies it with sbxctl" 0
denial_posts() {
	jq -c --arg t "Request #$D (dave, spare) is denied" \
		"select(.status == $1 and .json.text == \$t)" "$FAKE_LOG" | grep -c .
}
wait_until 10 test "$(denial_posts 500)" -ge 1
tap_result "the denial's follow-up is failing"
broker_stop
assert_rc "broker stops cleanly with it undelivered" 0 "$BROKER_RC"
: >"$FAKE_SCRIPT"
broker_start
slack_wait_delivered "$D" denied 15
tap_result "delivered after the restart"
assert_eq "one follow-up for the denial" 1 "$(denial_posts 200)"

# --- nothing is sent twice -------------------------------------------------------------------------------------
BEFORE=$(grep -c . "$FAKE_LOG")
QUEUED=$(journal_select '.event == "notify.queued"' | grep -c .)
broker_stop
broker_start
tap_result "one more restart"
sleep 1.5
assert_eq "no post after it" "$BEFORE" "$(grep -c . "$FAKE_LOG")"
assert_eq "nothing queued again" "$QUEUED" "$(journal_select '.event == "notify.queued"' | grep -c .)"
assert_eq "every queued message was delivered" \
	"$(journal_select '.event == "notify.queued"' | jq -r .nid | sort -n | tr '\n' ' ')" \
	"$(journal_select '.event == "notify.delivered"' | jq -r .nid | sort -n | tr '\n' ' ')"

broker_stop
assert_rc "broker stops cleanly" 0 "$BROKER_RC"
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "the journal verifies" 0
tap_done
