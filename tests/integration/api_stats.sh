#!/bin/bash
# GET /v1/stats: per UTC day, grants activated per role and refused
# logins, counted by the broker from its journal.  The past days are
# records written through the journal's own code with their times
# (journal_writer), today's are made through the live broker (requests
# approved by hand and automatically, logins refused and allowed through
# the recorded CHECK pam_sbx sends).  The counts are asserted exactly: all
# of them for root's audit token, one's own for erin and bob; a bad days
# is 400, no token 401, a token without the read scope 403; every answer
# validates against docs/openapi.yaml.  A journal of 200,000 more records
# is counted exactly, and a broker stopped while it counts stops cleanly.
. "$(dirname "$0")/lib.sh"
sbx_init

if ! python3 -c 'import jsonschema, yaml' 2>/dev/null; then
	tap_skip "GET /v1/stats" "python3-jsonschema and python3-yaml are needed (scripts/deps.sh test)"
	tap_done
	exit
fi
if ! is_root; then
	# Only root's checks are recorded (pam_sbx runs as root).
	tap_skip "GET /v1/stats" "root is needed to record refused logins"
	tap_done
	exit
fi

# Counting "today" must not straddle midnight UTC.
s=$(($(date -u +%s) % 86400))
if [ "$s" -gt $((86400 - 120)) ]; then
	diag "waiting for midnight UTC to pass"
	sleep $((86400 - s + 2))
fi
D0=$(date -u +%F)
D1=$(date -u -d "$D0 -1 day" +%F)
D2=$(date -u -d "$D0 -2 day" +%F)
D10=$(date -u -d "$D0 -10 day" +%F)

# The past: erin's sandbox-admin and two refused logins of bob yesterday;
# alice's auto-approved sandbox-readonly and carol's allowed login the day
# before; dave's sandbox-admin and a refused login of bob ten days ago.
mkdir -p "$STATE"
cat >"$T/past.jsonl" <<EOF
{"time":"${D10}T12:00:00Z","event":"request.created","actor":"dave","id":1,"user":"dave","role":"sandbox-admin","duration":3600,"reason":"old","approvals_needed":1,"lapses_at":"${D10}T23:00:00Z"}
{"time":"${D10}T12:05:00Z","event":"request.approval","actor":"bob","id":1,"user":"dave","role":"sandbox-admin","ground":"manager of dave","approvals":1,"approvals_needed":1,"continued":true}
{"time":"${D10}T12:05:00Z","event":"grant.activated","actor":"sbx","id":1,"user":"dave","role":"sandbox-admin","activated_at":"${D10}T12:05:00Z","expires_at":"${D10}T13:05:00Z","duration":3600}
{"time":"${D10}T14:00:00Z","event":"access.checked","actor":"sbx","user":"bob","service":"sshd","outcome":"denied"}
{"time":"${D2}T09:00:00Z","event":"request.created","actor":"alice","id":2,"user":"alice","role":"sandbox-readonly","duration":900,"reason":"read the logs","approvals_needed":0,"lapses_at":"${D2}T23:00:00Z","continued":true}
{"time":"${D2}T09:00:00Z","event":"grant.activated","actor":"sbx","id":2,"user":"alice","role":"sandbox-readonly","activated_at":"${D2}T09:00:00Z","expires_at":"${D2}T09:15:00Z","duration":900}
{"time":"${D2}T10:00:00Z","event":"access.checked","actor":"sbx","user":"carol","service":"sshd","outcome":"allowed","role":"sandbox-user"}
{"time":"${D1}T12:00:00Z","event":"request.created","actor":"erin","id":3,"user":"erin","role":"sandbox-admin","duration":3600,"reason":"yesterday","approvals_needed":1,"lapses_at":"${D1}T23:00:00Z"}
{"time":"${D1}T12:05:00Z","event":"request.approval","actor":"frank","id":3,"user":"erin","role":"sandbox-admin","ground":"manager of erin","approvals":1,"approvals_needed":1,"continued":true}
{"time":"${D1}T12:05:00Z","event":"grant.activated","actor":"sbx","id":3,"user":"erin","role":"sandbox-admin","activated_at":"${D1}T12:05:00Z","expires_at":"${D1}T13:05:00Z","duration":3600}
{"time":"${D1}T13:00:00Z","event":"access.checked","actor":"sbx","user":"bob","service":"sshd","outcome":"denied"}
{"time":"${D1}T13:01:00Z","event":"access.checked","actor":"sbx","user":"bob","service":"sshd","outcome":"denied"}
EOF
run "$SBX_BUILDDIR/tests/integration/journal_writer" "$STATE" <"$T/past.jsonl"
assert_rc "the past days are written to the journal" 0

printf '\napi:\n  listen: 127.0.0.1:0\n' >>"$POLICY"
# A person named like the broker's own actor (below).
sed -i 's/^  grace: { slack_id: U0GRACE }$/&\n  sbx:   { manager: frank }/' "$POLICY"
broker_start
tap_result "the broker starts on that journal with an api: section" || {
	tap_done
	exit
}
API=$(grep -o 'api: listening on http://127\.0\.0\.1:[0-9]*' "$LOG" | sed 's/.*on //')

# Today: erin's sandbox-admin approved by frank, dave's by bob, alice's
# sandbox-readonly (auto-approved), three refused logins of bob, one
# allowed login of alice.
for who in erin:frank dave:bob; do
	req --as "${who%:*}" --json sandbox-admin --for 1h --reason "work to do today"
	G=$(out_id)
	ctl --as "${who#*:}" --json approve "$G"
	assert_eq "${who%:*}'s grant is active" active "$(json_get .state)"
done
req --as alice --json sandbox-readonly --for 10m --reason "read the logs today"
assert_eq "alice's sandbox-readonly is active at once" active "$(json_get .state)"
for i in 1 2 3; do
	run "$FRAME_TOOL" "$SOCK" check bob record
done
run "$FRAME_TOOL" "$SOCK" check alice record
wait_record 5 '.event == "access.checked" and .user == "alice"'
assert_eq "three refused logins of bob are journaled today" 3 \
	"$(journal_select ".event == \"access.checked\" and .outcome == \"denied\" and (.time | startswith(\"$D0\"))" | grep -c .)"

req token create --name stats-audit --expires 1d --scope read,audit
ROOT_TOK=$OUT
req --as erin token create --name stats-erin --expires 1d --scope read
ERIN_TOK=$OUT
req --as bob token create --name stats-bob --expires 1d --scope read
BOB_TOK=$OUT
req --as erin token create --name stats-noread --expires 1d --scope request
NOREAD_TOK=$OUT
assert_match "tokens are made" '^sbxt_.* sbxt_.* sbxt_.* sbxt_' "$ROOT_TOK $ERIN_TOK $BOB_TOK $NOREAD_TOK"

# get NAME TOKEN QUERY: the answer in $OUT, its status in $STATUS; the
# body validated against docs/openapi.yaml.
get() {
	local auth=()
	[ -n "$2" ] && auth=(-H "Authorization: Bearer $2")
	run curl -sS --max-time 20 -o "$T/body" -w '%{http_code}' "${auth[@]}" "$API/v1/stats$3"
	STATUS=$OUT
	run python3 - "$SBX_SRCDIR/docs/openapi.yaml" "$STATUS" "$T/body" <<'PY'
import json, sys
import jsonschema, yaml
spec = yaml.safe_load(open(sys.argv[1]))
resp = spec["paths"]["/v1/stats"]["get"]["responses"][sys.argv[2]]
while "$ref" in resp:
    node = spec
    for part in resp["$ref"][2:].split("/"):
        node = node[part]
    resp = node
root = {"components": spec["components"]}
root.update(resp["content"]["application/json"]["schema"])
jsonschema.validate(json.load(open(sys.argv[3])), root, cls=jsonschema.Draft202012Validator,
                    format_checker=jsonschema.FormatChecker())
PY
	assert_rc "$1: the answer is as docs/openapi.yaml says" 0
	OUT=$(cat "$T/body")
}
# day DATE FIELD: one day's value of the last answer, as compact JSON.
day() { json_get ".per_day[] | select(.date == \"$1\") | $2 | tojson"; }

get "all, 7 days" "$ROOT_TOK" ""
assert_eq "200 for the audit token" 200 "$STATUS"
assert_eq "seven days by default, from $(date -u -d "$D0 -6 day" +%F) to today, every record" \
	"7 $(date -u -d "$D0 -6 day" +%F) $D0 all 7" \
	"$(json_get '"\(.days) \(.from) \(.to) \(.scope) \(.per_day | length)"')"
assert_eq "today: erin's and dave's sandbox-admin, alice's sandbox-readonly" \
	'{"sandbox-admin":2,"sandbox-readonly":1}' "$(day "$D0" '.grants')"
assert_eq "today: 3 grants, 3 refused logins (alice's allowed one not)" "3 3" \
	"$(day "$D0" '.grants_total') $(day "$D0" '.refused_logins')"
assert_eq "yesterday: one sandbox-admin, two refused logins" '{"sandbox-admin":1} 2' \
	"$(day "$D1" '.grants') $(day "$D1" '.refused_logins')"
assert_eq "the day before: one sandbox-readonly, no refused login (carol was let in)" \
	'{"sandbox-readonly":1} 0' "$(day "$D2" '.grants') $(day "$D2" '.refused_logins')"
assert_eq "the other days are there with zeros" '0 0 0 0 0 0 0 0' \
	"$(json_get '[.per_day[] | select(.date < "'"$D2"'") | .grants_total, .refused_logins] | join(" ")')"
assert_eq "ten days ago is not in the last seven" "" "$(day "$D10" '.grants')"
GEN=$(json_get .generated_at)
SEQ=$(json_get .through_seq)
assert_match "it says up to which record it counted" '^[1-9][0-9]*$' "$SEQ"

get "all, again at once" "$ROOT_TOK" ""
assert_eq "asked again at once: the same answer, not counted again" "$GEN $SEQ" \
	"$(json_get '"\(.generated_at) \(.through_seq)"')"

get "all, 31 days" "$ROOT_TOK" "?days=31"
assert_eq "31 days" "31 31" "$(json_get '"\(.days) \(.per_day | length)"')"
assert_eq "another number of days at once: cut from the same count, not counted again" \
	"$GEN $SEQ" "$(json_get '"\(.generated_at) \(.through_seq)"')"
assert_eq "ten days ago: dave's sandbox-admin and bob's refused login" '{"sandbox-admin":1} 1' \
	"$(day "$D10" '.grants') $(day "$D10" '.refused_logins')"
assert_eq "over 31 days: 6 grants, 6 refused logins" "6 6" \
	"$(json_get '[.per_day[].grants_total] | add') $(json_get '[.per_day[].refused_logins] | add')"

get "all, 1 day" "$ROOT_TOK" "?days=1"
assert_eq "one day: today only" "$D0 $D0 1" "$(json_get '"\(.from) \(.to) \(.per_day | length)"')"

get "erin's own" "$ERIN_TOK" "?days=31"
assert_eq "erin (no audit scope) counts her own records" "own" "$(json_get .scope)"
assert_eq "erin: her sandbox-admin today and yesterday, nothing else" \
	"$D1:{\"sandbox-admin\":1}:0 $D0:{\"sandbox-admin\":1}:0" \
	"$(json_get '[.per_day[] | select(.grants_total > 0 or .refused_logins > 0) | "\(.date):\(.grants | tojson):\(.refused_logins)"] | join(" ")')"

get "bob's own" "$BOB_TOK" "?days=31"
assert_eq "bob: his refused logins, nobody's grants" \
	"$D10:{}:1 $D1:{}:2 $D0:{}:3" \
	"$(json_get '[.per_day[] | select(.grants_total > 0 or .refused_logins > 0) | "\(.date):\(.grants | tojson):\(.refused_logins)"] | join(" ")')"

# A person named like the broker's own actor (sbx) is not the actor of
# every grant and login the broker records (as for TAIL).
req --as sbx token create --name stats-sbx --expires 1d --scope read
if [ "$RC" = 0 ]; then
	get "sbx's own" "$OUT" "?days=31"
	assert_eq "a person named sbx counts nothing of everyone's" "own 0 0" \
		"$(json_get '"\(.scope) \([.per_day[].grants_total] | add) \([.per_day[].refused_logins] | add)"')"
else
	diag "$ERR"
	false
	tap_result "a person named sbx gets a token (to count with)"
fi

for bad in 0 32 abc -1 7x "" 007; do
	get "days=$bad" "$ROOT_TOK" "?days=$bad"
	assert_eq "days=$bad: 400 bad_request" "400 bad_request" "$STATUS $(json_get .code)"
done
get "no token" "" ""
assert_eq "without a token: 401" "401 unauthorized" "$STATUS $(json_get .code)"
get "no read scope" "$NOREAD_TOK" ""
assert_eq "a token without the read scope: 403" "403 scope" "$STATUS $(json_get .code)"

# A session of the dashboard asks the same way (cookie instead of token).
run curl -sS -c "$T/jar" -H "Origin: $API" -d "{\"token\":\"$ROOT_TOK\"}" "$API/web/signin"
run curl -sS --max-time 20 -b "$T/jar" "$API/v1/stats?days=2"
assert_eq "a dashboard session of root gets the counts" "all 2" \
	"$(json_get '"\(.scope) \(.per_day | length)"')"

broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"

# A bigger journal: 200,000 more refused logins three days ago, counted
# exactly; then the broker is stopped while a count (most likely) runs on
# its thread, and must stop cleanly (a connection left waiting would make
# libmicrohttpd abort).
D3=$(date -u -d "$D0 -3 day" +%F)
awk -v d="$D3" 'BEGIN { for (i = 0; i < 200000; i++)
	printf "{\"time\":\"%sT10:00:00Z\",\"event\":\"access.checked\",\"actor\":\"sbx\",\"user\":\"u%d\",\"service\":\"sshd\",\"outcome\":\"denied\"}\n", d, i % 500 }' \
	>"$T/many.jsonl"
run "$SBX_BUILDDIR/tests/integration/journal_writer" "$STATE" <"$T/many.jsonl"
assert_rc "200,000 more records are written" 0
broker_start
API=$(grep -o 'api: listening on http://127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*on //')
get "all, 7 days, a bigger journal" "$ROOT_TOK" "?days=7"
assert_eq "three days ago: 200,000 refused logins" 200000 "$(day "$D3" '.refused_logins')"
assert_eq "today's counts are the same as before" '{"sandbox-admin":2,"sandbox-readonly":1} 3' \
	"$(day "$D0" '.grants') $(day "$D0" '.refused_logins')"
curl -sS --max-time 20 -o /dev/null -H "Authorization: Bearer $ROOT_TOK" "$API/v1/stats?days=30" 2>"$T/curl.err" &
CURL_PID=$!
track_pid "$CURL_PID"
sleep 0.05
broker_stop
assert_eq "stopped while counting, the broker stops cleanly" 0 "$BROKER_RC"
assert_not_contains "libmicrohttpd did not abort" "$(cat "$LOG")" "suspended connections"
wait "$CURL_PID" 2>/dev/null
tap_done
