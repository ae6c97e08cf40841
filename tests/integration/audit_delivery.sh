#!/bin/bash
# Seals to the checkpoint collector (docs/audit.md, "Evidence off the
# host"), against a local HTTPS collector (checkpoint_collector.py, a
# throwaway self-signed certificate that audit.checkpoint_ca_file trusts):
# - with the collector down the start-up seal waits, retried, and goes
#   out once the collector is back, with the broker still running;
# - a seal made at a stop goes out after the next start (from the
#   snapshot written at the stop, and from the journal when there is none),
#   and so do the seals waiting when the broker was killed;
# - every seal reaches the collector exactly once, with the journal's
#   seq, hash and epoch, and has exactly one checkpoint.delivered record;
# - a plain http:// collector off the host is a policy error; a CA file
#   that cannot be read stops the broker from starting.
# Nothing depends on timing but generous upper bounds on waits.
. "$(dirname "$0")/lib.sh"
sbx_init

skip_all() {
	tap_skip "seals to a checkpoint collector" "$1"
	tap_done
	exit
}
command -v openssl >/dev/null || skip_all "openssl is not installed"
command -v python3 >/dev/null || skip_all "python3 is not installed"

COLLECTOR="$(dirname "$0")/checkpoint_collector.py"
CLOG="$T/collector.log"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
	-subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" >"$T/openssl.log" 2>&1
assert_true "a throwaway self-signed certificate for 127.0.0.1" test -s "$T/cert.pem"

# collector_up PORT: start the collector; sets COLLECTOR_PID and PORT.
collector_up() {
	rm -f "$CLOG.port"
	python3 "$COLLECTOR" "$1" "$T/cert.pem" "$T/key.pem" "$CLOG" 2>>"$T/collector.err" &
	COLLECTOR_PID=$!
	track_pid "$COLLECTOR_PID"
	wait_until 10 test -s "$CLOG.port" || return 1
	PORT=$(cat "$CLOG.port")
}
collector_down() {
	kill "$COLLECTOR_PID" 2>/dev/null
	wait "$COLLECTOR_PID" 2>/dev/null
}
# A free port, found by the collector itself; then it goes away.
collector_up 0
tap_result "the test collector serves HTTPS" || {
	diag "$(cat "$T/collector.err")"
	tap_done
	exit
}
collector_down
: >"$CLOG"

cat >>"$POLICY" <<EOF

audit:
  seal_every: 1h
  checkpoint_url: https://127.0.0.1:$PORT/checkpoints
  checkpoint_ca_file: $T/cert.pem
EOF
mkdir -m 700 "$STATE"
run "$SBXCTL" audit init --state-dir "$STATE" --out "$T/verify.key"
assert_rc "audit init makes a sealing key" 0

seals() { journal_select '.event == "journal.sealed"' | jq -r .seq; }
delivered() { journal_select '.event == "checkpoint.delivered"' | jq -r .seal_seq; }
is_delivered() { journal_has ".event == \"checkpoint.delivered\" and .seal_seq == $1"; }

# ---- the collector away at start-up ----
broker_start
tap_result "the broker starts with the collector away" || {
	tap_done
	exit
}
S1=$(seals | tail -n 1)
wait_until 20 grep -q "seal at seq $S1 to the checkpoint collector failed" "$LOG"
tap_result "sending the start-up seal fails and is retried"
assert_eq "... nothing is recorded as delivered" "" "$(delivered)"
collector_up "$PORT"
tap_result "the collector comes back on the same port"
wait_until 40 is_delivered "$S1"
tap_result "the start-up seal reaches the collector once it is back, the broker still running"
REC=$(journal_select ".event == \"checkpoint.delivered\" and .seal_seq == $S1")
assert_ne "... after more than one attempt" 1 "$(printf '%s' "$REC" | jq .attempts)"
assert_eq "... its record names the seal's hash, epoch and the answer" \
	"$(journal_select ".seq == $S1" | jq -r '"\(.hash) \(.epoch)"') 200" \
	"$(printf '%s' "$REC" | jq -r '"\(.seal_hash) \(.epoch) \(.status)"')"

# ---- a seal made at a stop goes after the next start ----
broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"
S2=$(seals | tail -n 1)
assert_true "the stop's seal is not delivered yet" eval '! is_delivered "$S2"'
assert_true "... and a snapshot was written at the stop" test -e "$STATE/snapshot.json"
broker_start
tap_result "the broker starts again"
S3=$(seals | tail -n 1)
wait_until 30 eval 'is_delivered "$S2" && is_delivered "$S3"'
tap_result "after the restart the stop's seal and the new start-up seal are delivered"
broker_stop
# Without a snapshot the journal alone brings the stop's seal back.
rm -f "$STATE/snapshot.json"
S4=$(seals | tail -n 1)
broker_start
tap_result "the broker starts without a snapshot"
S5=$(seals | tail -n 1)
wait_until 30 eval 'is_delivered "$S4" && is_delivered "$S5"'
tap_result "... and still delivers the stop's seal from the journal"
broker_stop

# ---- a crash with seals waiting ----
collector_down
broker_start
tap_result "the broker starts, the collector away again"
S6=$(seals | tail -n 1)
wait_until 20 grep -q "seal at seq $S6 to the checkpoint collector failed" "$LOG"
tap_result "... its start-up seal waits"
broker_kill9
collector_up "$PORT"
broker_start
tap_result "after a crash (SIGKILL) the broker starts with the collector back"
all_delivered() {
	local s
	for s in $(seals); do
		is_delivered "$s" || return 1
	done
}
wait_until 30 all_delivered
tap_result "... and every seal so far is delivered, those from before the crash included"
broker_stop
collector_down
LAST=$(seals | tail -n 1)

# ---- exactly once ----
EXPECT=$(seals | grep -vx "$LAST")
assert_eq "every seal but the last stop's has exactly one checkpoint.delivered" "$EXPECT" \
	"$(delivered | sort -n)"
assert_eq "the collector took each of them exactly once (200 answers by seq)" "$EXPECT" \
	"$(jq -r 'select(.status == 200) | .json.seq' "$CLOG" | sort -n)"
assert_eq "... and was never sent anything it refused" "" \
	"$(jq -r 'select(.status != 200) | .status' "$CLOG")"
assert_eq "what it got is the journal's seq, hash and epoch, with this host's name" \
	"$(journal_select ".event == \"journal.sealed\" and .seq != $LAST" |
		jq -r '"\(.seq) \(.hash) \(.epoch) \(.key_id) \(.time) sbx-01"')" \
	"$(jq -r 'select(.status == 200) | .json | "\(.seq) \(.hash) \(.epoch) \(.key_id) \(.time) \(.host)"' "$CLOG" | sort -n)"
assert_eq "... posted to the URL's path" "/checkpoints" "$(jq -r .path "$CLOG" | sort -u)"
run "$SBXCTL" audit verify --state-dir "$STATE" --key "$T/verify.key"
assert_rc "the journal with its checkpoint records verifies with the key" 0

# ---- refused settings ----
sed "s|^  checkpoint_url: .*|  checkpoint_url: http://192.0.2.1:$PORT/checkpoints|" "$POLICY" >"$T/plain.yaml"
run "$SBXCTL" policy check "$T/plain.yaml"
assert_rc "http:// to another host is a policy error" 2
assert_contains "... saying https:// is needed" "$ERR" "must start with https://"
sed "s|^  checkpoint_ca_file: .*|  checkpoint_ca_file: $T/missing.pem|" "$POLICY" >"$T/noca.yaml"
broker_start "$T/noca.yaml"
assert_ne "a CA file that cannot be read stops the start" 0 "${BROKER_RC:-0}"
assert_contains "... saying which" "$(tail -n 5 "$LOG")" "$T/missing.pem"

tap_done
