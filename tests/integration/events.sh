#!/bin/bash
# GET /v1/events against a live broker: the records a token's owner may
# see arrive as Server-Sent Events (an admin's token sees everyone's), the
# filters of `audit tail` apply, Last-Event-ID resumes from the broker's
# ring, the per-person cap answers 429, and no token (or a bad one) 401.
. "$(dirname "$0")/lib.sh"
sbx_init

if ! command -v curl >/dev/null; then
	tap_skip "the event stream" "curl is needed"
	tap_done
	exit
fi
printf '\napi:\n  listen: 127.0.0.1:0\n  events_per_person: 3\n' >>"$POLICY"
printf '  public_url: https://sbx.example.org/\n' >>"$POLICY"
broker_start
tap_result "the broker starts with an api: section" || {
	tap_done
	exit
}
API=$(grep -o 'api: listening on http://127\.0\.0\.1:[0-9]*' "$LOG" | sed 's/.*on //')

req --as erin token create --name feed --expires 1d --scope read
ERIN=$OUT
assert_match "erin has a read token" '^sbxt_' "$ERIN"
req token create --name feed --expires 1d --scope read
ROOT=$OUT
assert_match "root has a read token" '^sbxt_' "$ROOT"

# stream NAME TOKEN QUERY [HEADER]: follow in the background into $T/NAME.
stream() {
	curl -sS -N --max-time 60 -H "Authorization: Bearer $2" ${4:+-H "$4"} \
		"$API/v1/events$3" >"$T/$1" 2>"$T/$1.err" &
	track_pid $!
	eval "PID_$1=$!"
}
stream erin "$ERIN" ""
stream root "$ROOT" ""
stream denied "$ROOT" "?event=request.denied"
sleep 0.5
run curl -sS -D - -o /dev/null --max-time 2 -H "Authorization: Bearer $ERIN" "$API/v1/events"
assert_contains "the stream is text/event-stream" "$OUT" "Content-Type: text/event-stream"

req --as erin sandbox-admin --for 1h --reason "events test: erin"
req --as dave sandbox-admin --for 1h --reason "events test: dave"
wait_until 5 grep -q "events test: dave" "$T/root"
tap_result "an admin's token sees dave's request"
wait_until 5 grep -q "events test: erin" "$T/erin"
tap_result "erin's token sees her own request"
assert_not_contains "erin's token does not see dave's" "$(cat "$T/erin")" "events test: dave"
assert_match "each record is an event with its seq as id" '^id: [0-9]+$' "$(head -n 1 "$T/erin")"
assert_match "and its JSON as data" '^data: \{"seq":' "$(sed -n 2p "$T/erin")"
assert_eq "the event filter holds" "" "$(cat "$T/denied")"

# Resume: from the first record erin saw, the rest of hers again.
FIRST=$(head -n 1 "$T/erin" | sed 's/^id: //')
# A stream that just ended counts against root's until the broker notices
# its reader is gone (within about a second): ask again while the answer is
# "rate_limited".
stream_again() {
	for _ in $(seq 30); do
		run curl -sS -N --max-time 2 -H "Authorization: Bearer $ROOT" "$@"
		case $OUT in *'"rate_limited"'*) sleep 0.1 ;; *) return ;; esac
	done
}
stream_again -H "Last-Event-ID: $((FIRST - 1))" "$API/v1/events?user=erin"
assert_contains "Last-Event-ID resumes from the ring" "$OUT" "id: $FIRST"
assert_not_contains "with the user filter" "$OUT" "events test: dave"
stream_again "$API/v1/events?count=1&user=dave"
assert_contains "count=N gives the last N first" "$OUT" "events test: dave"

run curl -sS --max-time 2 -w '%{http_code}' -H "Authorization: Bearer $ERIN" "$API/v1/events?outcome=maybe"
assert_contains "an unknown outcome: 400" "$OUT" "400"

# Caps: 3 per person here (events_per_person); erin holds one already.
stream e2 "$ERIN" ""
stream e3 "$ERIN" ""
sleep 0.5
run curl -sS --max-time 2 -w '%{http_code}' -H "Authorization: Bearer $ERIN" "$API/v1/events"
assert_contains "a fourth stream of erin's is refused" "$OUT" "429"
assert_contains "saying why" "$OUT" "events_per_person"
run curl -sS --max-time 2 -w '%{http_code}' "$API/v1/events"
assert_contains "no token: 401" "$OUT" "401"
run curl -sS --max-time 2 -w '%{http_code}' -H "Authorization: Bearer sbxt_0000000000000000_$(printf '0%.0s' $(seq 64))" "$API/v1/events"
assert_contains "a wrong token: 401" "$OUT" "401"

# A stream ended by its reader frees its place.
kill "$PID_e2" "$PID_e3" 2>/dev/null
sleep 0.3
ID=$(sed -n 's/^data: .*"event":"request.created".*"id":\([0-9]*\).*/\1/p' "$T/erin" | head -n 1)
[ -n "$ID" ] || ID=$(sed -n 's/^data: .*"id":\([0-9]*\).*/\1/p' "$T/erin" | head -n 1)
req --as erin cancel "$ID"
wait_until 5 bash -c "curl -sS --max-time 1 -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer $ERIN' '$API/v1/events' | grep -qv 429"
tap_result "a closed stream's place is free again (noticed at the next write)"

# A stream ends with the token it was opened with.
stream last "$ERIN" ""
sleep 0.3
ctl token revoke "$(printf '%s' "$ERIN" | cut -c6-21)" --reason "events test"
assert_rc "erin's token is revoked" 0 "$RC"
wait_until 5 bash -c "! kill -0 $PID_last 2>/dev/null"
tap_result "her open stream ends when her token is revoked"

# Someone refused at login is told where the dashboard is (api.public_url).
ctl check erin
assert_contains "the login refusal names the dashboard's URL" "$OUT" \
	"Request access at https://sbx.example.org/."
assert_contains "and still says what to run" "$OUT" "Run: sbx-request"

broker_stop
tap_done
