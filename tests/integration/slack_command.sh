#!/bin/bash
# The /sbx slash command: a person who cannot reach the host yet asks for
# access from Slack.  A correctly signed "/sbx request ROLE for DUR REASON"
# from a Slack user linked through slack_id files the request as that
# person (recorded via slack, with the Slack id, on disk before the
# answer); "/sbx status" lists it; an unlinked Slack user, a role the
# person may not have, a bad signature and a replayed one change nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slack_lib.sh"
sbx_init
slack_setup
broker_start
tap_result "broker starts with a slack: section" || {
	tap_done
	exit
}

# slack_command USER TEXT [TS [SECRET]]: POST a signed slash command as Slack does.
slack_command() {
	local ts=${3:-$(date +%s)} secret=${4:-$SLACK_SECRET}

	BODY_SENT="token=unused&team_id=T0TEST&channel_id=C0TEST&user_id=$1&user_name=someone"
	BODY_SENT+="&command=%2Fsbx&text=$(printf '%s' "$2" | jq -sRr @uri)"
	BODY_SENT+="&response_url=$(printf '%s' "$RESPONSE_URL" | jq -sRr @uri)&trigger_id=1.2.3"
	SIG=$(slack_sign "$ts" "$BODY_SENT" "$secret")
	TS_SENT=$ts
	slack_send "$ts" "$SIG" "$BODY_SENT"
	ANSWER=$(jq -r .text "$T/click.out" 2>/dev/null)
}

slack_command U0ALICE "request sandbox-admin for 1h restart the stuck import job"
assert_eq "a linked Slack user's request is answered 200" 200 "$HTTP"
assert_match "the answer names the new request" '^Request #[0-9]+: alice asks for sandbox-admin for 1h on sbx-01: pending approval' "$ANSWER"
assert_eq "it is shown to that person only" ephemeral "$(jq -r .response_type "$T/click.out")"
ID=$(printf '%s' "$ANSWER" | sed -n 's/^Request #\([0-9]*\):.*/\1/p')
assert_true "request.created is on disk by then, as alice, via slack, with the Slack id" \
	journal_has "(.event == \"request.created\" and .id == ${ID:-0} and .actor == \"alice\" and .via == \"slack\" and .slack_user == \"U0ALICE\" and .reason == \"restart the stuck import job\" and .duration == 3600)"
req --as alice status "${ID:-0}" --json
assert_eq "sbx-request sees alice's pending request" pending "$(json_get .state)"

slack_command U0ALICE "status"
assert_contains "/sbx status lists it" "$ANSWER" "#$ID sandbox-admin: pending"

slack_command U0ALICE "request sandbox-admin for 1h the same again please"
assert_contains "a second open request for the role is refused, with the broker's words" \
	"$ANSWER" "Not filed:"
slack_command U0ALICE "request prod-data for 1h INC-1 data fix for the clinic"
assert_contains "a role alice may not have here is refused" "$ANSWER" "Not filed:"
slack_command U0NOBODY "request sandbox-admin for 1h let me in please now"
assert_contains "an unlinked Slack user is told how to be linked" "$ANSWER" "slack_id: U0NOBODY"
slack_command U0ALICE "request sandbox-admin"
assert_contains "a request without a duration gets the usage" "$ANSWER" "Usage: /sbx request"
slack_command U0ALICE "help"
assert_contains "/sbx help gives the usage" "$ANSWER" "/sbx status"

N=$(journal_select '.event == "request.created"' | wc -l)
slack_command U0ALICE "request sandbox-readonly for 10m reading logs" "$(date +%s)" wrongsecret
assert_eq "a wrong signature is refused" 401 "$HTTP"
slack_command U0ALICE "request sandbox-readonly for 10m reading logs"
assert_eq "alice may have sandbox-readonly at once" 200 "$HTTP"
assert_contains "it is granted" "$ANSWER" "granted"
slack_send "$TS_SENT" "$SIG" "$BODY_SENT"
assert_eq "the same signed command again is a replay: refused" 401 "$HTTP"
assert_eq "only that one request was recorded" $((N + 1)) \
	"$(journal_select '.event == "request.created"' | wc -l)"

broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"
tap_done
