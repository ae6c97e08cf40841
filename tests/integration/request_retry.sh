#!/bin/bash
# Asking again after a lost answer:
#   - a retried `sbx-request ROLE --reason R` (the same role, reason, ticket
#     and duration) while the request is open gets that request back, exit
#     0, "already exists", and writes nothing to the journal; a different
#     reason, ticket or duration is refused as before; an ended request is
#     not returned;
#   - a change sent whole to a broker that never answers (it closes the
#     connection, or stays silent past --timeout-ms) is "outcome unknown",
#     exit 5, saying where to look; a socket nobody listens on, and a
#     command that changes nothing, are still exit 3 "cannot reach".
. "$(dirname "$0")/lib.sh"
sbx_init

broker_start
tap_result "broker starts on the reference policy" || {
	tap_done
	exit
}

REASON="debug the ingest pipeline on sbx-01"

# The last journal seq, as the broker reports it.
seq_now() { "$SBXCTL" --socket "$SOCK" --json status 2>/dev/null | jq -r .seq; }

# How many request.created records USER ROLE has.
created_count() {
	journal_select ".event == \"request.created\" and .user == \"$1\" and .role == \"$2\"" |
		wc -l
}

# --- a retried request returns the open one -----------------------------------------
req --as erin --json sandbox-admin --reason "$REASON"
assert_rc "erin asks for sandbox-admin: exit 0" 0
A=$(out_id)
assert_eq "it is pending" pending "$(json_get .state)"
assert_eq "a new request says already_existed false" false "$(json_get .already_existed)"

seq0=$(seq_now)
req --as erin --json sandbox-admin --reason "$REASON"
assert_rc "the same request again: exit 0" 0
assert_eq "the retry returns the same id" "$A" "$(out_id)"
assert_eq "the retry says already_existed true" true "$(json_get .already_existed)"
assert_eq "the request is still pending" pending "$(json_get .state)"

req --as erin sandbox-admin --reason "$REASON"
assert_rc "the same request again, text: exit 0" 0
assert_match "text: request N already exists (pending): the sentence" \
	"^request $A already exists \(pending\): erin asks for sandbox-admin for 1h" "$OUT"

req --as erin --json sandbox-admin --reason "$REASON" --for 1h
assert_rc "the same again with --for 1h, the role's default it was filed with: exit 0" 0
assert_eq "it returns the open request" "$A true" "$(json_get '"\(.id) \(.already_existed)"')"

assert_eq "no retry wrote to the journal (seq unchanged)" "$seq0" "$(seq_now)"
assert_eq "the journal holds one request.created for erin's sandbox-admin" 1 \
	"$(created_count erin sandbox-admin)"

# --- anything else is refused as before -----------------------------------------------
req --as erin sandbox-admin --reason "another reason, a second request"
assert_rc "a different reason: exit 1" 1
assert_contains "it is refused: one open request per role" "$ERR" \
	"already has pending request $A"
req --as erin sandbox-admin --reason "$REASON" --ticket OPS-1
assert_rc "the same reason with a ticket the request lacks: exit 1" 1
assert_contains "refused the same way" "$ERR" "already has pending request $A"
req --as erin sandbox-admin --reason "$REASON" --for 2h
assert_rc "the same reason for another duration: exit 1" 1
assert_contains "refused the same way too" "$ERR" "already has pending request $A"
assert_eq "still one request.created for erin's sandbox-admin" 1 \
	"$(created_count erin sandbox-admin)"

# --- once approved, a retry finds the grant -----------------------------------------------
ctl --as frank approve "$A"
assert_rc "frank approves it" 0
seq1=$(seq_now)
req --as erin --json sandbox-admin --reason "$REASON"
assert_rc "the same request after the approval: exit 0" 0
assert_eq "it returns the grant, same id" "$A active true" \
	"$(json_get '"\(.id) \(.state) \(.already_existed)"')"
req --as erin sandbox-admin --reason "$REASON"
assert_match "text: request N already exists (active)" \
	"^request $A already exists \(active\): erin has sandbox-admin" "$OUT"
assert_eq "nothing was written for it" "$seq1" "$(seq_now)"

# --- auto-approved: one request, one grant ------------------------------------------------
req --as alice --json sandbox-readonly --reason "read the import logs"
assert_rc "alice asks for auto-approved sandbox-readonly" 0
R=$(out_id)
assert_eq "it is active at once" active "$(json_get .state)"
req --as alice --json sandbox-readonly --reason "read the import logs"
assert_eq "asking again returns the same grant" "$R active true" \
	"$(json_get '"\(.id) \(.state) \(.already_existed)"')"
assert_eq "the journal has its request.created and grant.activated once each" \
	"request.created grant.activated" "$(events_of "$R")"

# --- an ended request is not returned -----------------------------------------------------
req --as dave --json sandbox-admin --reason "$REASON"
D=$(out_id)
req --as dave cancel "$D"
assert_rc "dave cancels his request" 0
req --as dave --json sandbox-admin --reason "$REASON"
assert_rc "dave asks again the same way: exit 0" 0
assert_ne "a cancelled request is not returned: a new id" "$D" "$(out_id)"
assert_eq "and it is new" false "$(json_get .already_existed)"

# --- stand-in brokers that read a request and never answer --------------------------------
if ! command -v python3 >/dev/null; then
	tap_skip "outcome unknown" "python3 is needed for the stand-in broker"
	tap_done
	exit
fi

# silent MODE: start silent_broker.py MODE on $T/MODE.sock, logging to $T/MODE.log.
silent() {
	python3 "$LIB_DIR/silent_broker.py" "$1" "$T/$1.sock" "$T/$1.log" >"$T/$1.ready" 2>&1 &
	track_pid $!
	wait_until 10 grep -q ready "$T/$1.ready"
}
silent close
tap_result "a stand-in that closes after reading the request listens" || {
	tap_done
	exit
}
silent hang
tap_result "a stand-in that never answers listens" || {
	tap_done
	exit
}

run "$SBXREQ" --socket "$T/close.sock" sandbox-admin --reason "$REASON"
assert_rc "closed after the request was read: exit 5" 5
assert_contains "it says the outcome is unknown" "$ERR" "sbx-request: outcome unknown: the request reached the broker at $T/close.sock"
assert_contains "it says the connection closed" "$ERR" "the connection closed before the answer"
assert_contains "it says where to look" "$ERR" "look with \`sbx-request list\`"
assert_contains "and that asking again the same way is safe" "$ERR" \
	"asking again the same way (role, --reason, --ticket, --for) is safe"
assert_not_contains "it does not say the broker cannot be reached" "$ERR" "cannot reach"
assert_match "the stand-in got the whole REQUEST frame" '^op=0x0010 length=([0-9]+) got=\1$' \
	"$(tail -n 1 "$T/close.log")"

run "$SBXREQ" --socket "$T/close.sock" --as erin --json sandbox-admin --reason "$REASON"
assert_rc "with --json too: exit 5" 5
assert_eq "and nothing on stdout" "" "$OUT"
assert_contains "the way to look names --as" "$ERR" "\`sbx-request --as erin list\`"

t0=$(date +%s%N)
run "$SBXREQ" --socket "$T/hang.sock" --timeout-ms 500 sandbox-admin --reason "$REASON"
ms=$((($(date +%s%N) - t0) / 1000000))
assert_rc "no answer within --timeout-ms after the request was sent: exit 5" 5
assert_contains "it says no answer came in time" "$ERR" "no answer came within 500 ms"
assert_contains "and that the outcome is unknown" "$ERR" "outcome unknown"
assert_int_between "--timeout-ms 500 gives up in time (${ms} ms)" 400 10000 "$ms"

run "$SBXREQ" --socket "$T/close.sock" cancel 42
assert_rc "cancel, answer lost: exit 5" 5
assert_contains "it says to look at the request" "$ERR" \
	"the cancellation reached the broker at $T/close.sock, but the connection closed before the answer; it may have been recorded: look with \`sbx-request status 42\`"
run "$SBXCTL" --socket "$T/close.sock" approve 42
assert_rc "sbxctl approve, answer lost: exit 5" 5
assert_contains "sbxctl says it too" "$ERR" "sbxctl: outcome unknown: the approval reached"
run "$SBXCTL" --socket "$T/hang.sock" --timeout-ms 300 revoke 42
assert_rc "sbxctl revoke, no answer in time: exit 5" 5

run "$SBXREQ" --socket "$T/close.sock" list
assert_rc "list (changes nothing), answer lost: still exit 3" 3
assert_contains "it says the broker cannot be reached" "$ERR" "cannot reach the broker"

# --- nobody there: exit 3 as before -------------------------------------------------------
run "$SBXREQ" --socket "$T/nowhere.sock" sandbox-admin --reason "$REASON"
assert_rc "no socket file: exit 3" 3
assert_contains "cannot reach the broker" "$ERR" \
	"sbx-request: cannot reach the broker at $T/nowhere.sock"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$T/deaf.sock"
run "$SBXREQ" --socket "$T/deaf.sock" sandbox-admin --reason "$REASON"
assert_rc "a socket nobody listens on: exit 3" 3
assert_contains "cannot reach the broker: refused" "$ERR" "Connection refused"

run "$SBXREQ" --help
assert_match "--help lists exit 5" "5 +outcome unknown" "$OUT"
run "$SBXCTL" help approve
assert_contains "a command's help names exit 5" "$OUT" "5 outcome unknown"

tap_done
