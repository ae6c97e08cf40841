# shellcheck shell=bash
# Helpers for the Slack tests (tests/integration/slack_*.sh).  Source after
# lib.sh and sbx_init; append any roles to $POLICY before slack_setup (the
# roles: section is the reference policy's last).
#
#   slack_setup            start fake_slack.py, write the secret files (0600)
#                          and add a slack: section to $POLICY (listen on
#                          127.0.0.1:0: the broker logs the port it got)
#   slack_click U ACTION VALUE [TS [SECRET]]
#                          POST a signed button press as Slack does; sets
#                          HTTP (status), SECS (time taken), BODY_SENT, SIG
#   slack_send TS SIG BODY [PATH [CONTENT-TYPE]]
#                          POST exactly that; sets HTTP, SECS
#                          (from the local address $SLACK_FROM when set)
#   slack_button ID ACTION the value of request ID's Approve/Deny button
#   slack_messages ID      webhook posts (answered 200) for request ID
#   slack_updates ID       response_url updates (answered 200) for request ID
#   slack_ephemeral        texts of the private answers, one per line
#
# The fake answers as $FAKE_SCRIPT says, one line per request (see
# fake_slack.py); an empty script means 200 "ok".

SLACK_SECRET=8f742231b10e8888abcd99yyyzzz85a5
FAKE_PID=
FAKE_PORT=
FAKE_LOG=
FAKE_SCRIPT=
WEBHOOK=
RESPONSE_URL=

slack_setup() {
	mkdir -p "$T/fake"
	FAKE_LOG="$T/fake/posts.jsonl"
	FAKE_SCRIPT="$T/fake/script"
	: >"$FAKE_LOG"
	if ! command -v python3 >/dev/null || ! command -v openssl >/dev/null ||
		! command -v curl >/dev/null; then
		echo "Bail out! python3, openssl and curl are needed (scripts/deps.sh test)"
		exit 1
	fi
	python3 "$LIB_DIR/fake_slack.py" "$T/fake/port" "$FAKE_LOG" "$FAKE_SCRIPT" \
		2>>"$T/fake/stderr" &
	FAKE_PID=$!
	track_pid "$FAKE_PID"
	if ! wait_until 10 test -s "$T/fake/port"; then
		echo "Bail out! fake_slack.py did not start: $(cat "$T/fake/stderr")"
		exit 1
	fi
	FAKE_PORT=$(cat "$T/fake/port")
	WEBHOOK="http://127.0.0.1:$FAKE_PORT/services/T0TEST/B0TEST/webhooksecretpart"
	RESPONSE_URL="http://127.0.0.1:$FAKE_PORT/actions/T0TEST/1/responsesecretpart"
	(
		umask 077
		printf '%s\n' "$WEBHOOK" >"$T/slack-webhook"
		printf '%s\n' "$SLACK_SECRET" >"$T/slack-signing-secret"
	)
	cat >>"$POLICY" <<EOF

slack:
  webhook_url_file: $T/slack-webhook
  signing_secret_file: $T/slack-signing-secret
  listen: 127.0.0.1:0
  request_path: /slack/interactive
  timeout: ${SLACK_TIMEOUT:-2s}
EOF
}

# The broker's HTTP port, from the latest "slack: listening on" line.
slack_port() {
	grep -o 'slack: listening on 127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*://'
}

slack_send() {
	local ts=$1 sig=$2 body=$3 path=${4:-/slack/interactive}
	local ctype=${5:-application/x-www-form-urlencoded} out from=()

	[ -n "${SLACK_FROM:-}" ] && from=(--interface "$SLACK_FROM")
	out=$(printf '%s' "$body" | curl -sS -o "$T/click.out" -w '%{http_code} %{time_total}' \
		"${from[@]}" --max-time 10 -X POST "http://127.0.0.1:$(slack_port)$path" \
		-H "Content-Type: $ctype" -H "X-Slack-Request-Timestamp: $ts" \
		-H "X-Slack-Signature: $sig" --data-binary @- 2>>"$T/curl.err")
	HTTP=${out%% *}
	SECS=${out#* }
}

# slack_payload U ACTION_ID VALUE: the JSON Slack sends for a button press
# (action_ts differs each time, as with real presses).
slack_payload() {
	jq -cn --arg u "$1" --arg a "$2" --arg v "$3" --arg r "$RESPONSE_URL" \
		--arg ts "$(date +%s.%N)" '{
		type: "block_actions", user: {id: $u, username: "someone", team_id: "T0TEST"},
		team: {id: "T0TEST", domain: "test"}, api_app_id: "A0TEST", token: "unused",
		container: {type: "message", message_ts: "1.2", channel_id: "C0TEST"},
		channel: {id: "C0TEST", name: "access"}, response_url: $r,
		actions: [{type: "button", action_id: $a, block_id: "b", value: $v,
			action_ts: $ts, text: {type: "plain_text", text: "x"}}]}'
}

# slack_sign TS BODY [SECRET]
slack_sign() {
	printf 'v0=%s' "$(printf 'v0:%s:%s' "$1" "$2" |
		openssl dgst -sha256 -hmac "${3:-$SLACK_SECRET}" -r | cut -d' ' -f1)"
}

slack_click() {
	local user=$1 action=$2 value=$3 ts=${4:-$(date +%s)} secret=${5:-$SLACK_SECRET}

	BODY_SENT="payload=$(slack_payload "$user" "sbx_$action" "$value" | jq -sRr @uri)"
	SIG=$(slack_sign "$ts" "$BODY_SENT" "$secret")
	slack_send "$ts" "$SIG" "$BODY_SENT"
}

slack_button() {
	jq -r --arg b "sbx-request-$1" --arg a "sbx_$2" \
		'select(.status == 200) | .json.blocks[]? |
		 select(.type == "actions" and .block_id == $b) |
		 .elements[] | select(.action_id == $a) | .value' "$FAKE_LOG" | head -n 1
}

# Posts whose header names request ID.
_slack_posts() {
	jq -c --arg h "Access request #$2:" --arg p "$1" \
		'select(.status == 200 and (.path | startswith($p)) and
			((.json.blocks[0].text.text // "") | startswith($h)))' "$FAKE_LOG"
}

slack_messages() { _slack_posts /services/ "$1"; }
slack_updates() { _slack_posts /actions/ "$1"; }

slack_ephemeral() {
	jq -r 'select(.json.response_type == "ephemeral") | .json.text' "$FAKE_LOG"
}

# Wait until the journal says request ID's message showing STATE went out.
slack_wait_delivered() {
	wait_record "${3:-10}" "(.event == \"notify.delivered\" and .id == $1 and .state == \"$2\")"
}
