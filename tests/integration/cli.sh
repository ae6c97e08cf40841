#!/bin/bash
# The command-line contract of sbx-request and sbxctl: help everywhere
# (with the exit codes), usage errors (exit 2, naming the problem), an
# unreachable broker (exit 3), --wait and its timeout (exit 4), policy
# check/explain, and audit query's filters and formats.
. "$(dirname "$0")/lib.sh"
sbx_init

EXIT_RE="4 +timed out waiting"

# --- help ----------------------------------------------------------------------------
for tool in "$SBXREQ" "$SBXCTL"; do
	name=$(basename "$tool")
	run "$tool" --help
	assert_rc "$name --help: exit 0" 0
	assert_match "$name --help lists the exit codes" "$EXIT_RE" "$OUT"
	assert_match "$name --help lists exit 3" "3 +broker unreachable" "$OUT"
	run "$tool" --version
	assert_rc "$name --version: exit 0" 0
done
for cmd in request list status cancel drop extend roles; do
	run "$SBXREQ" help $cmd
	assert_rc "sbx-request help $cmd: exit 0" 0
	assert_match "sbx-request help $cmd mentions the exit codes" "$EXIT_RE" "$OUT"
done
for cmd in list status cancel drop extend roles; do
	run "$SBXREQ" $cmd --help
	assert_rc "sbx-request $cmd --help: exit 0" 0
	assert_contains "sbx-request $cmd --help shows its usage" "$OUT" "Usage: sbx-request $cmd"
done
for cmd in pending approve deny revoke grants check status "policy check" "policy explain" \
	"audit verify" "audit query" "fleet init" "fleet status" "fleet verify"; do
	# shellcheck disable=SC2086
	run "$SBXCTL" $cmd --help
	assert_rc "sbxctl $cmd --help: exit 0" 0
	assert_match "sbxctl $cmd --help mentions the exit codes" "$EXIT_RE" "$OUT"
done

# --- usage errors: exit 2, naming the problem -----------------------------------------
usage_case() {
	local desc=$1 needle=$2

	shift 2
	run "$@"
	assert_rc "usage: $desc: exit 2" 2
	assert_contains "usage: $desc: the message names it" "$ERR" "$needle"
}
usage_case "sbx-request with no arguments" "ROLE" "$SBXREQ"
usage_case "an unknown option" "--bogus" "$SBXREQ" --bogus list
usage_case "status without an id" "status" "$SBXREQ" status
usage_case "a non-numeric id" "abc" "$SBXREQ" status abc
usage_case "a bad --for" "--for" "$SBXREQ" sandbox-admin --for 5x --reason "a reason that is long"
usage_case "--timeout without --wait" "--wait" "$SBXREQ" sandbox-admin --timeout 2s
usage_case "extend without --for" "--for" "$SBXREQ" extend 5 --reason "a reason that is long"
usage_case "a reason over 1024 bytes" "--reason" "$SBXREQ" sandbox-admin \
	--reason "$(head -c 1100 /dev/zero | tr '\0' x)"
usage_case "an unknown sbxctl command" "frobnicate" "$SBXCTL" frobnicate
usage_case "approve without an id" "approve" "$SBXCTL" approve
usage_case "approve with two ids" "approve" "$SBXCTL" approve 1 2
usage_case "request id 0" "0" "$SBXCTL" approve 0
usage_case "a bad --timeout-ms" "--timeout-ms" "$SBXCTL" --timeout-ms abc status
usage_case "audit query --format xml" "xml" "$SBXCTL" audit query --state-dir "$STATE" --format xml
usage_case "audit query --since nonsense" "nonsense" "$SBXCTL" audit query --state-dir "$STATE" \
	--since nonsense
usage_case "a bad user name for check" "x y" "$SBXCTL" check 'x y'

# --- unreachable broker: exit 3 ---------------------------------------------------------
run "$SBXCTL" --socket "$T/nope.sock" status
assert_rc "no socket: exit 3" 3
assert_contains "the message names the socket" "$ERR" "$T/nope.sock"
assert_contains "the message says the broker cannot be reached" "$ERR" "cannot reach the broker"
SBX_SOCKET="$T/nope.sock" run "$SBXREQ" list
assert_rc "SBX_SOCKET pointing nowhere: exit 3" 3

broker_start
tap_result "broker starts" || {
	tap_done
	exit
}
SBX_SOCKET="$SOCK" run "$SBXCTL" status
assert_rc "SBX_SOCKET is honoured" 0

# A broker that does not answer: --timeout-ms bounds the wait.
kill -STOP "$BROKER_PID"
t0=$(date +%s%N)
run "$SBXCTL" --socket "$SOCK" --timeout-ms 500 check alice
ms=$((($(date +%s%N) - t0) / 1000000))
kill -CONT "$BROKER_PID"
assert_rc "a broker that does not answer: exit 3" 3
assert_int_between "--timeout-ms 500 gives up in time (${ms} ms)" 400 3000 "$ms"

# --- check ------------------------------------------------------------------------------
ctl check alice
assert_rc "check alice: exit 0" 0
assert_match "check alice prints allowed: why" '^allowed: ' "$OUT"
ctl check bob
assert_rc "check bob: exit 1" 1
assert_match "check bob prints denied: why" '^denied: ' "$OUT$ERR"
ctl --json check erin
assert_eq "check --json has allowed and reason" true \
	"$(json_get 'has("allowed") and has("reason") and (.allowed == false)')"
seq_before=$(journal | tail -n 1 | jq .seq)
ctl check alice --service sshd --rhost 10.0.0.7
assert_eq "check is a dry run: nothing recorded" "$seq_before" "$(journal | tail -n 1 | jq .seq)"

# --- policy check -----------------------------------------------------------------------
run "$SBXCTL" policy check "$REF_POLICY"
assert_rc "policy check on the reference policy: exit 0" 0
assert_contains "policy check says ok" "$OUT" "ok"

BROKEN="$T/broken.yaml"
cat >"$BROKEN" <<'EOF'
broker:
  host: sbx-01
  request_ttl: 24 hours
  colour: blue
profiles:
  standard:
    max_duration: 8h
    require_reason: true
groups:
  developers: [alice, ghost]
users:
  alice: { manager: nobody-known }
roles:
  loose:
    profile: standard
    hosts: ["sbx-*"]
    eligible: { groups: [developers, no-such-group] }
    max_duration: 9h
    require_ticket: "^(INC"
  other:
    profile: no-such-profile
    hosts: ["sbx-*"]
    unix_group: { name: grp-a, gid: 60001 }
  third:
    hosts: ["sbx-*"]
    unix_group: { name: grp-b, gid: 60001 }
    approvals: many
EOF
run "$SBXCTL" policy check "$BROKEN"
assert_ne "policy check on a broken file: non-zero" 0 "$RC"
assert_eq "policy check on a broken file: exit 2" 2 "$RC"
errs=$(printf '%s\n' "$ERR" | grep -cE "^$BROKEN:[0-9]+:[0-9]+: ")
diag "$ERR"
assert_int_between "every problem is a FILE:LINE:COL: line (9 problems)" 9 100 "$errs"
assert_match "the bad duration is reported at its line" "^$BROKEN:3:[0-9]+: .*24 hours" "$ERR"
assert_match "the unknown key is reported at its line and column" "^$BROKEN:4:3: .*colour" "$ERR"
assert_match "the unknown profile is reported" "^$BROKEN:[0-9]+:[0-9]+: .*no-such-profile" "$ERR"
assert_match "the unknown group is reported" "^$BROKEN:[0-9]+:[0-9]+: .*no-such-group" "$ERR"
assert_match "the bad regex is reported at its line" "^$BROKEN:19:[0-9]+: .*INC" "$ERR"
assert_match "the role loosening its profile is reported" "^$BROKEN:[0-9]+:[0-9]+: .*loosens" "$ERR"
assert_match "the duplicate gid is reported" "^$BROKEN:2[0-9]:[0-9]+: .*60001" "$ERR"
assert_match "the wrong type is reported at its line" "^$BROKEN:27:[0-9]+: .*approvals" "$ERR"
run "$SBXCTL" policy check "$REF_POLICY" "$BROKEN"
assert_eq "two files, one broken: exit 2" 2 "$RC"
assert_contains "two files: the good one is still reported ok" "$OUT" "$REF_POLICY"
run "$SBXCTL" policy check "$T/missing.yaml"
assert_ne "policy check on a missing file: non-zero" 0 "$RC"
assert_contains "the message names the missing file" "$ERR" "$T/missing.yaml"

# --- policy explain ----------------------------------------------------------------------
ctl policy explain alice
assert_rc "policy explain alice: exit 0" 0
assert_match "alice: allowed on the first line" '^allowed: ' "$(head -n 1 <<<"$OUT")"
assert_contains "alice: sandbox-user is named" "$OUT" "sandbox-user"
ctl --json policy explain alice
assert_eq "alice: standing member of sandbox-user via developers, may log in" \
	"standing developers true" \
	"$(json_get '.roles[] | select(.role == "sandbox-user") | "\(.how) \(.via) \(.login)"')"
assert_eq "alice: eligible for sandbox-readonly" eligible \
	"$(json_get '.roles[] | select(.role == "sandbox-readonly") | .how')"
assert_eq "alice: prod-data does not apply to this host" false \
	"$(json_get '.roles[] | select(.role == "prod-data") | .host_match')"
ctl --json policy explain erin
assert_rc "policy explain erin: exit 0 (even though denied)" 0
assert_eq "erin: may not log in now" false "$(json_get .allowed)"
assert_eq "erin: eligible for sandbox-admin via sre" "eligible sre" \
	"$(json_get '.roles[] | select(.role == "sandbox-admin") | "\(.how) \(.via)"')"
ctl --json policy explain bob
assert_eq "bob: may not log in" false "$(json_get .allowed)"
assert_eq "bob: no roles at all" 0 "$(json_get '.roles | length')"
ctl policy explain bob
assert_match "bob: denied on the first line" '^denied: ' "$(head -n 1 <<<"$OUT")"
run "$SBXCTL" --json policy explain alice --config "$REF_POLICY"
assert_rc "policy explain --config works offline" 0
assert_eq "offline: alice may log in" true "$(json_get .allowed)"

# --- roles ----------------------------------------------------------------------------------
req --as erin --json roles
assert_rc "sbx-request roles (erin): exit 0" 0
assert_eq "erin may ask for sandbox-admin, at most 2h" 7200 \
	"$(json_get '.[] | select(.role == "sandbox-admin") | .max_duration')"
assert_contains "roles says who approves (erin's manager frank)" \
	"$(json_get '.[] | select(.role == "sandbox-admin") | .approvers')" "frank"

# --- --wait ---------------------------------------------------------------------------------
REASON="cli test: waiting for an approver"
t0=$(date +%s%N)
req --as erin --json sandbox-admin --reason "$REASON" --wait --timeout 2s
ms=$((($(date +%s%N) - t0) / 1000000))
assert_rc "--wait --timeout 2s on a pending request: exit 4" 4
assert_int_between "--wait gave up after about 2 s (${ms} ms)" 1500 6000 "$ms"
assert_contains "the timeout says the request is still pending" "$ERR" "pending"
W1=$(out_id)
[ -n "$W1" ] || W1=$("$SBXREQ" --socket "$SOCK" --as erin --json list | jq -r '.[0].id')
req --json status "${W1:-0}"
assert_eq "after the timeout the request is still pending" pending "$(json_get .state)"
req --as erin cancel "${W1:-0}"

# Approved while waiting: exit 0.
"$SBXREQ" --socket "$SOCK" --as erin --json sandbox-admin --reason "$REASON" \
	--wait --timeout 30s >"$T/wait.out" 2>"$T/wait.err" &
WAITER=$!
track_pid "$WAITER"
pending_id() {
	"$SBXCTL" --socket "$SOCK" --as frank --json pending 2>/dev/null |
		jq -r '.[] | select(.user == "erin") | .id' | head -n 1
}
wait_until 10 eval '[ -n "$(pending_id)" ]'
W2=$(pending_id)
ctl --as frank approve "${W2:-0}"
assert_rc "frank approves while erin waits" 0
wait_until 10 eval '! alive "$WAITER"'
wait "$WAITER"
assert_eq "--wait ends with exit 0 once approved" 0 "$?"
assert_eq "--wait --json prints the active grant" active "$(jq -r .state "$T/wait.out" 2>/dev/null)"
req --as erin drop "${W2:-0}"

# Denied while waiting: exit 1.
"$SBXREQ" --socket "$SOCK" --as erin --json sandbox-admin --reason "$REASON" \
	--wait --timeout 30s >"$T/wait2.out" 2>"$T/wait2.err" &
WAITER=$!
track_pid "$WAITER"
wait_until 10 eval '[ -n "$(pending_id)" ]'
ctl --as frank deny "$(pending_id)" --reason "not now"
wait_until 10 eval '! alive "$WAITER"'
wait "$WAITER"
assert_eq "--wait ends with exit 1 when denied" 1 "$?"

# --- audit query ------------------------------------------------------------------------------
req --as alice --json sandbox-readonly
req --as dave --json sandbox-admin --for 10m --reason "$REASON"
ctl --as bob approve "$(out_id)"
broker_stop
mid_time=$(journal | sed -n '5p' | jq -r .time)
total=$(journal | grep -c .)

run "$SBXCTL" audit query --state-dir "$STATE" --format jsonl
assert_rc "audit query --format jsonl: exit 0" 0
assert_eq "jsonl without filters prints every record" "$total" "$(printf '%s\n' "$OUT" | grep -c .)"
assert_eq "jsonl lines are the journal's lines exactly" "$(cat "$STATE"/journal/*.jsonl)" "$OUT"

expect_count() { journal | jq -c "select($1)" | grep -c .; }

run "$SBXCTL" audit query --state-dir "$STATE" --format jsonl --user erin
want=$(expect_count '.user == "erin" or .actor == "erin"')
assert_eq "--user erin: the records about or by erin ($want)" "$want" "$(printf '%s' "$OUT" | grep -c .)"
assert_eq "--user erin: nothing else" "" \
	"$(printf '%s\n' "$OUT" | jq -c 'select(.user != "erin" and .actor != "erin")' 2>&1)"

run "$SBXCTL" audit query --state-dir "$STATE" --format jsonl --role sandbox-admin
want=$(expect_count '.role == "sandbox-admin"')
assert_eq "--role sandbox-admin ($want records)" "$want" "$(printf '%s' "$OUT" | grep -c .)"

dave_id=$(journal | jq -r 'select(.event == "request.created" and .user == "dave") | .id' | tail -n 1)
run "$SBXCTL" audit query --state-dir "$STATE" --format jsonl --id "$dave_id"
want=$(expect_count ".id == $dave_id")
assert_eq "--id $dave_id: the records of dave's request ($want)" "$want" \
	"$(printf '%s' "$OUT" | grep -c .)"
assert_eq "--id $dave_id: created, approved, activated" \
	"request.created request.approval grant.activated" \
	"$(printf '%s\n' "$OUT" | jq -r .event | tr '\n' ' ' | sed 's/ $//')"
usage_case "audit query --id x" "x" "$SBXCTL" audit query --state-dir "$STATE" --id x

run "$SBXCTL" audit query --state-dir "$STATE" --format jsonl --event grant.
want=$(expect_count '.event | startswith("grant.")')
assert_eq "--event grant. matches every grant.* record ($want)" "$want" \
	"$(printf '%s' "$OUT" | grep -c .)"
run "$SBXCTL" audit query --state-dir "$STATE" --format jsonl --event request.created
want=$(expect_count '.event == "request.created"')
assert_eq "--event request.created: exact ($want)" "$want" "$(printf '%s' "$OUT" | grep -c .)"

run "$SBXCTL" audit query --state-dir "$STATE" --format jsonl --since "$mid_time"
assert_eq "--since the 5th record's time: from there on" $((total - 4)) \
	"$(printf '%s' "$OUT" | grep -c .)"
run "$SBXCTL" audit query --state-dir "$STATE" --format jsonl --since 1h
assert_eq "--since 1h: everything (the test is younger)" "$total" "$(printf '%s' "$OUT" | grep -c .)"
run "$SBXCTL" audit query --state-dir "$STATE" --format jsonl --since 2999-01-01
assert_rc "--since in the future: exit 0" 0
assert_eq "--since in the future: nothing" "" "$OUT"
run "$SBXCTL" audit query --state-dir "$STATE" --format jsonl --until 2000-01-01
assert_eq "--until long ago: nothing" "" "$OUT"

run "$SBXCTL" audit query --state-dir "$STATE" --format csv --event grant.
assert_rc "--format csv: exit 0" 0
assert_eq "csv header" "seq,time,event,actor,through,user,role,id,details" \
	"$(head -n 1 <<<"$OUT" | tr -d '\r')"
assert_eq "csv lines end in CRLF" "$(printf '%s\n' "$OUT" | grep -c .)" \
	"$(printf '%s\n' "$OUT" | grep -c $'\r$')"
assert_eq "csv: one row per grant.* record" "$(expect_count '.event | startswith("grant.")')" \
	$(($(printf '%s\n' "$OUT" | grep -c .) - 1))
assert_eq "csv: every row is a grant.* event" "" \
	"$(tail -n +2 <<<"$OUT" | cut -d, -f3 | grep -v '^grant\.')"

run "$SBXCTL" audit query --state-dir "$STATE" --format text --role sandbox-readonly
assert_rc "--format text: exit 0" 0
assert_eq "text: one line per record" "$(expect_count '.role == "sandbox-readonly"')" \
	"$(printf '%s' "$OUT" | grep -c .)"
if [ -n "$OUT" ]; then
	assert_eq "text: every line names the role" "" "$(grep -v sandbox-readonly <<<"$OUT")"
fi
run "$SBXCTL" --json audit query --state-dir "$STATE" --event broker.
assert_eq "--json: an array of the records" "$(expect_count '.event | startswith("broker.")')" \
	"$(json_get 'if type == "array" then length else "not an array" end')"

run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "audit verify: exit 0" 0
assert_contains "audit verify says intact" "$OUT" "intact"
run "$SBXCTL" audit verify --state-dir "$T/empty-state"
assert_eq "audit verify without a journal: exit 2" 2 "$RC"

tap_done
