#!/bin/bash
# Restarts lose nothing: pending requests and active grants survive SIGTERM
# and kill -9; a grant that ran out while the broker was down gets
# grant.expired at start-up; a torn last record is cut off with a
# journal.recovered event; a tampered record in the middle stops the broker
# (naming the seq) and fails `sbxctl audit verify`.
. "$(dirname "$0")/lib.sh"
sbx_init

cat >>"$POLICY" <<'EOF'

  quick:
    description: Short grants for the tests
    hosts: ["sbx-*"]
    eligible: { users: [erin, dave] }
    approvers: { manager: true }
    approvals: 1
    default_duration: 2s
    max_duration: 5s
EOF

broker_start
tap_result "broker starts" || {
	tap_done
	exit
}

REASON="restart test: keep this request"

# snap ID: the fields that must survive a restart, as one line.
snap() {
	"$SBXREQ" --socket "$SOCK" --json status "$1" 2>/dev/null |
		jq -c '{id, user, role, state, duration, created_at, activated_at, expires_at, reason, approved_by}'
}

req --as erin --json sandbox-admin --reason "$REASON"
P1=$(out_id)
req --as dave --json sandbox-admin --for 90m --reason "rotate the sandbox certificates"
G1=$(out_id)
ctl --as bob approve "$G1"
assert_rc "bob approves dave's grant" 0
req --as alice --json sandbox-readonly
G2=$(out_id)

before_p1=$(snap "$P1")
before_g1=$(snap "$G1")
before_g2=$(snap "$G2")
assert_contains "P1 is pending before the restart" "$before_p1" '"state":"pending"'
assert_contains "G1 is active before the restart" "$before_g1" '"state":"active"'
assert_contains "G2 is active before the restart" "$before_g2" '"state":"active"'

# The short grant must still be running when the broker stops: approve it
# last, for 5s, so that a slow machine stops the broker well before it ends.
req --as erin --json quick --for 5s --reason "short grant that runs out while the broker is down"
G3=$(out_id)
ctl --as frank --json approve "$G3"
exp3=$(json_get .expires_at)
assert_eq "four requests made" 4 "$(printf '%s\n' "$P1" "$G1" "$G2" "$G3" | grep -c '^[0-9]')"

# --- SIGTERM, the short grant runs out while down, start again ---------------
broker_stop
assert_rc "SIGTERM: the broker exits 0" 0 "$BROKER_RC"
assert_true "broker.stopped recorded" journal_has '.event == "broker.stopped"'
ctl status
assert_rc "with the broker down the CLI says unreachable (exit 3)" 3
# Stay down until G3's expiry has passed.
if [ -n "$exp3" ] && [ "$exp3" != null ]; then
	wait_until 10 eval '[ "$(date +%s)" -gt "$(to_s "$exp3")" ]'
fi
assert_eq "G3 had no grant.expired before the restart" "" \
	"$(journal_select ".event == \"grant.expired\" and .id == ${G3:-0}")"
restart_seq=$(journal | tail -n 1 | jq .seq)

broker_start
tap_result "broker starts again after SIGTERM" || {
	tap_done
	exit
}
assert_eq "P1 survives SIGTERM unchanged" "$before_p1" "$(snap "$P1")"
assert_eq "G1 survives SIGTERM unchanged" "$before_g1" "$(snap "$G1")"
assert_eq "G2 survives SIGTERM unchanged" "$before_g2" "$(snap "$G2")"
wait_record 3 ".event == \"grant.expired\" and .id == ${G3:-0}"
rec=$(journal_select ".event == \"grant.expired\" and .id == ${G3:-0}" | head -n 1)
assert_ne "G3, which ran out while the broker was down, gets grant.expired" "" "$rec"
started=$(journal_select ".event == \"broker.started\" and .seq > ${restart_seq:-0}" | head -n 1 |
	jq .seq)
assert_true "that grant.expired comes at start-up, after broker.started" \
	[ "$(jq .seq <<<"${rec:-null}")" -gt "${started:-999999999}" ]
req --json status "${G3:-0}"
assert_eq "G3 is expired" expired "$(json_get .state)"
ctl --json grants
assert_eq "grants lists G1 and G2, not G3" "$G1 $G2" \
	"$(json_get '[.[].id] | sort | map(tostring) | join(" ")')"

# --- kill -9 right after an acknowledged request -------------------------------
req --as carol --json sandbox-readonly
assert_rc "carol's request is acknowledged" 0
G4=$(out_id)
before_g4=$(snap "$G4")
broker_kill9
broker_start
tap_result "broker starts again after kill -9" || {
	tap_done
	exit
}
assert_eq "P1 survives kill -9" "$before_p1" "$(snap "$P1")"
assert_eq "G1 survives kill -9" "$before_g1" "$(snap "$G1")"
assert_eq "G2 survives kill -9" "$before_g2" "$(snap "$G2")"
assert_eq "the request acknowledged just before kill -9 survives" "$before_g4" "$(snap "$G4")"
req --json sandbox-admin --as erin --reason "$REASON, a second time"
assert_rc "the pending request still blocks a duplicate after the restarts" 1
assert_contains "the duplicate refusal names P1" "$ERR" "$P1"
req --json sandbox-admin --as erin --reason "$REASON"
assert_eq "the same request again after the restarts returns P1, already there" "$P1 true" \
	"$(json_get '"\(.id) \(.already_existed)"')"
req --as erin --json quick --reason "a request after the restarts gets a new id"
assert_true "new ids continue after the highest one" [ "$(out_id)" -gt "${G4:-0}" ]

broker_stop
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "audit verify passes on the journal after the restarts" 0
diag "$OUT"

# --- a torn last record ----------------------------------------------------------
segs=("$STATE"/journal/*.jsonl)
last_seg=${segs[${#segs[@]} - 1]}
half='{"seq":99999,"time":"2026-01-01T00:00:00.000000Z","event":"request.cre'
printf '%s' "$half" >>"$last_seg"
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_ne "audit verify reports a torn last record" 0 "$RC"
broker_start
tap_result "the broker starts with a torn last record" || {
	tap_done
	exit
}
rec=$(journal_select '.event == "journal.recovered"' | tail -n 1)
assert_ne "journal.recovered is recorded" "" "$rec"
assert_eq "journal.recovered says how many bytes were cut" "${#half}" \
	"$(jq -r .bytes_cut <<<"${rec:-null}")"
assert_eq "P1 is intact after the recovery" "$before_p1" "$(snap "$P1")"
broker_stop
assert_eq "the torn bytes are gone from the journal" 0 \
	"$(cat "$STATE"/journal/*.jsonl | grep -c '"seq":99999')"
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "audit verify passes after the recovery" 0

# tamper NAME ID OLD NEW: change request ID's reason in its request.created
# record from OLD to NEW (same length, so only the hash chain can tell),
# then expect the broker to refuse to start naming that seq, and audit
# verify to fail naming it too.
tamper() {
	local name=$1 id=$2 old=$3 new=$4 seq file

	seq=$(journal_select ".event == \"request.created\" and .id == $id" | jq .seq)
	file=$(grep -l "\"reason\":\"$old\"" "$STATE"/journal/*.jsonl | head -n 1)
	if [ -z "$seq" ] || [ -z "$file" ]; then
		tap_fail "$name: found request $id's record to tamper with"
		return
	fi
	cp "$file" "$T/segment.orig"
	sed -i "s/\"reason\":\"$old\"/\"reason\":\"$new\"/" "$file"
	assert_true "$name: the record (seq $seq) was changed" grep -q "\"reason\":\"$new\"" "$file"
	broker_start
	assert_ne "$name: the broker refuses to start on the tampered journal" 0 "${BROKER_RC:-0}"
	[ -n "$BROKER_PID" ] && broker_kill9
	assert_match "$name: the broker's log names the first bad seq ($seq)" "seq $seq([^0-9]|\$)" \
		"$(tail -n 5 "$LOG")"
	run "$SBXCTL" audit verify --state-dir "$STATE"
	assert_ne "$name: audit verify fails" 0 "$RC"
	assert_match "$name: audit verify names seq $seq" "seq $seq([^0-9]|\$)" "$OUT$ERR"
	TAMPERED_FILE=$file
}

# --- a tampered record after the last snapshot ----------------------------------
# (kill -9 writes no snapshot, so the records since the last start are
# only in the journal.)
broker_start
REASON2="restart test: a record after the snapshot"
req --as dave --json quick --reason "$REASON2"
T1=$(out_id)
broker_kill9
tamper "after the snapshot" "${T1:-0}" "$REASON2" "${REASON2/after/AFTER}"
[ -n "${TAMPERED_FILE:-}" ] && cp "$T/segment.orig" "$TAMPERED_FILE"
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "with the record restored, audit verify passes again" 0

# --- a tampered record before the snapshot ---------------------------------------
broker_start
broker_stop
assert_true "a clean stop leaves a snapshot" test -e "$STATE/snapshot.json"
tamper "before the snapshot" "${P1:-0}" "$REASON" "${REASON/keep/lose}"

tap_done
