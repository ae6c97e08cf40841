#!/bin/bash
# Garbage, oversized, half-sent, unknown-op and wrong-version frames each
# get an error reply or a close, and the broker keeps serving everyone
# else, quickly, meanwhile and afterwards; stuck clients (a half frame,
# 50 silent connections) never block a check.
. "$(dirname "$0")/lib.sh"
sbx_init

if [ ! -x "$FRAME_TOOL" ]; then
	tap_skip "bad frames" "frame_tool is not built (make tests/integration/frame_tool)"
	tap_done
	exit
fi

broker_start
tap_result "broker starts" || {
	tap_done
	exit
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# timed_check DESCRIPTION: `frame_tool check alice` answers "allowed" in
# under 3 s.  A check normally takes a few ms; 3 s keeps a loaded
# sanitizer build from failing the test while still proving that no held
# connection blocks it: a check stuck behind one would wait for the
# broker's 5 s io timeout (or the client's 10 s hold).
timed_check() {
	local t0 ms

	t0=$(now_ms)
	run "$FRAME_TOOL" "$SOCK" check alice
	ms=$(($(now_ms) - t0))
	if [ "$RC" -eq 0 ] && [ "$ms" -lt 3000 ]; then
		tap_ok "$1 (${ms} ms)"
	else
		tap_fail "$1"
		diag "exit $RC after $ms ms: $OUT"
	fi
}

# abuse MODE [ARGS]: the broker answers with an error reply or closes.
abuse() {
	run "$FRAME_TOOL" "$SOCK" "$@"
	assert_rc "$*: the broker rejects it (error reply or close)" 0
	diag "$OUT"
}

abuse garbage 1
abuse garbage 2
abuse garbage 12345
timed_check "after garbage the broker still answers a check"

abuse oversized
assert_contains "oversized: an error reply with status 5 (protocol)" "$OUT" "status=5"
assert_contains "oversized: the broker closes the connection" "$OUT" "closed"
timed_check "after an oversized frame the broker still answers"

abuse unknown-op
assert_contains "unknown op: an error reply with status 5" "$OUT" "status=5"
assert_contains "unknown op: the reply says what is wrong" "$OUT" "op"
assert_contains "unknown op: the broker closes the connection" "$OUT" "closed"
timed_check "after an unknown op the broker still answers"

abuse badversion
assert_contains "bad version: an error reply with status 5" "$OUT" "status=5"
assert_contains "bad version: the reply names the version" "$OUT" "version"
assert_contains "bad version: the broker closes the connection" "$OUT" "closed"
timed_check "after a bad version the broker still answers"

# Twenty garbage clients at once.
for s in $(seq 100 119); do
	"$FRAME_TOOL" "$SOCK" garbage "$s" >"$T/garbage.$s" 2>&1 &
	track_pid $!
done
fails=0
wait_until 15 eval '[ "$(cat "$T"/garbage.* | grep -c "^seed")" -ge 20 ]'
for job in $(jobs -p); do
	[ "$job" = "$BROKER_PID" ] && continue
	wait "$job" || fails=$((fails + 1))
done
assert_eq "twenty garbage clients at once are each rejected" 0 "$fails"
timed_check "after the garbage flood the broker still answers"

# --- a half-sent frame held open ---------------------------------------------------
"$FRAME_TOOL" "$SOCK" half 10 >"$T/half.out" 2>&1 &
HALF=$!
track_pid "$HALF"
wait_until 5 grep -q "^sent" "$T/half.out"
timed_check "a check is answered while a half-sent frame is held"
ctl --json check alice
assert_rc "sbxctl check alice answers meanwhile" 0
assert_eq "sbxctl check alice: allowed" true "$(json_get .allowed)"

# --- silent clients -------------------------------------------------------------------
"$FRAME_TOOL" "$SOCK" hold 10 >"$T/hold1.out" 2>&1 &
track_pid $!
wait_until 5 grep -q "^connected" "$T/hold1.out"
timed_check "a check is answered while a silent client holds a connection"

holders=()
for i in $(seq 1 50); do
	"$FRAME_TOOL" "$SOCK" hold 10 >"$T/hold.$i" 2>&1 &
	holders+=($!)
	track_pid $!
done
wait_until 10 eval '[ "$(cat "$T"/hold.* | grep -c "^connected")" -ge 50 ]'
assert_eq "50 silent clients are connected" 50 "$(cat "$T"/hold.* | grep -c '^connected')"
timed_check "a check is answered while 50 silent clients hold connections"
req --json list
assert_rc "sbx-request list answers while 50 silent clients hold connections" 0

# The stuck clients are hung up on (io timeout), not served forever.
wait "$HALF"
half_out=$(cat "$T/half.out")
diag "$half_out"
assert_match "the broker hangs up on a half-sent frame before the client gives up" \
	'^closed( after [0-9]+ ms)?$' "$half_out"
for p in "${holders[@]}"; do
	wait "$p"
done
assert_eq "the broker hangs up on silent clients before they give up" 50 \
	"$(cat "$T"/hold.* | grep -cE '^closed')"

# --- afterwards --------------------------------------------------------------------
assert_true "the broker is still running" alive "$BROKER_PID"
timed_check "afterwards the broker still answers"
run "$FRAME_TOOL" "$SOCK" check bob
assert_rc "a denial still comes back as a denial (bob)" 1
assert_contains "bob's denial says why" "$OUT" "denied: "
ctl status
assert_rc "sbxctl status after the abuse" 0
broker_stop
assert_rc "the broker stops cleanly after the abuse" 0 "$BROKER_RC"

tap_done
