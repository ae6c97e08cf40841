#!/bin/bash
# Every record to syslog (docs/audit.md, "Evidence off the host"), on a
# real broker whose /dev/log is a test receiver's socket in a private
# mount namespace (syslog_lib.sh; root only):
# - each record of the journal arrives as one authpriv.info line with its
#   seq and hash (and event, actor, user, role, id), each seal as one
#   authpriv.notice line with its epoch: the lines and the journal agree
#   record for record;
# - audit.syslog: false sends no record lines, seals still go;
# - a receiver that stops reading does not stall the broker: the lines
#   wait in the broker's bounded queue (past it they would be dropped and
#   counted: tests/unit/test_syslog_sink.c) and go once it reads again;
#   the stop's seal line counts what was dropped, and lines received plus
#   dropped are the records.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/syslog_lib.sh"
sbx_init

if ! syslog_ns_start; then
	tap_skip "records to syslog" "$NS_WHY"
	tap_done
	exit
fi
tap_ok "a private mount namespace whose /dev/log is the test's receiver"

printf '\naudit:\n  seal_every: 1s\n' >>"$POLICY"
mkdir -m 700 "$STATE"
run "$SBXCTL" audit init --state-dir "$STATE" --out "$T/verify.key"
assert_rc "audit init makes a sealing key" 0

# The lines as "seq hash event pri", sorted by seq.
syslog_table() {
	syslog_lines 'sbx-brokerd\[' | sed -nE \
		's/^<([0-9]+)>.* sbx-brokerd\[[0-9]+\]: seq=([0-9]+) hash=([0-9a-f]{64}) event=([^ ]+).*/\2 \3 \4 \1/p' |
		sort -n
}
journal_table() {
	journal | jq -r '"\(.seq) \(.hash) \(.event) \(if .event == "journal.sealed" then 85 else 86 end)"' |
		sort -n
}

# ---- on by default ----
broker_start
tap_result "the broker starts in the namespace" || {
	tap_done
	exit
}
req --as dave --json sandbox-admin --for 90m --reason "syslog test: one request"
ID=$(out_id)
assert_ne "a request is filed" "" "$ID"
ctl --as bob approve "$ID"
assert_rc "... and approved" 0
wait_record 20 '.event == "journal.sealed" and .why == "timer" and .last_seq >= '"$(journal | jq -s 'map(select(.event == "grant.activated")) | .[0].seq')"
tap_result "a timer seal covers the grant"
broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"

assert_eq "every line is one whole datagram of the expected shape" "" \
	"$(syslog_lines . | grep -avE '^<8[56]>[A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} sbx-brokerd\[[0-9]+\]: seq=[0-9]+ hash=[0-9a-f]{64} event=')"
assert_eq "the lines and the journal agree record for record (seq, hash, event, priority)" \
	"$(journal_table)" "$(syslog_table)"
assert_ne "... and there are records and seals among them" "" \
	"$(journal_table | grep ' journal.sealed 85$' | head -n 1)"
assert_ne "... a grant among them" "" "$(journal_table | grep ' grant.activated 86$')"
LINE=$(syslog_lines " event=request.created ")
assert_match "request.created carries actor, user, role and id" \
	"event=request.created actor=dave through=root user=dave role=sandbox-admin id=$ID( |\$)" "$LINE"
LINE=$(syslog_lines " event=request.approval ")
assert_match "the approval names who approved" "actor=bob through=root user=dave role=sandbox-admin id=$ID" "$LINE"
LINE=$(syslog_lines " event=journal.sealed " | tail -n 1)
assert_match "a seal's line has its epoch, key, range and reason" \
	' epoch=[0-9]+ key_id=[0-9a-f]{16} first_seq=[0-9]+ last_seq=[0-9]+ why=shutdown syslog_dropped=0$' "$LINE"
LAST=$(journal | tail -n 1 | jq -r '"seq=\(.seq) hash=\(.hash) event=journal.sealed"')
assert_contains "... the last one is the stop's seal, as the journal ends" "$LINE" "$LAST"

# ---- audit.syslog: false ----
: >"$SYSLOG_OUT"
sed -i 's/^  seal_every: 1s$/  seal_every: 1s\n  syslog: false/' "$POLICY"
run "$SBXCTL" policy check "$POLICY"
assert_rc "audit.syslog: false is a valid policy" 0
BEFORE=$(journal | tail -n 1 | jq .seq)
broker_start
tap_result "the broker starts with audit.syslog: false"
req --as erin --json sandbox-admin --reason "syslog test: not sent"
assert_ne "a request is filed" "" "$(out_id)"
broker_stop
assert_eq "no record lines go out" "" "$(syslog_lines '^<86>')"
assert_eq "... but every seal does, as the journal has them" \
	"$(journal | jq -r --argjson b "$BEFORE" 'select(.seq > $b and .event == "journal.sealed") | "\(.seq) \(.hash)"')" \
	"$(syslog_table | awk '{ print $1, $2 }')"

# ---- a receiver that does not read ----
# Unix datagrams queue up to the receiver's limit (10 by default); then
# the broker's own queue takes them, never its event loop.  250
# auto-approved requests make 500 records or more.
: >"$SYSLOG_OUT"
rm -rf "$STATE"
mkdir -m 700 "$STATE"
run "$SBXCTL" audit init --state-dir "$STATE" --out "$T/verify2.key"
policy_many_users "$T/many.yaml" 250 true
printf '\naudit:\n  seal_every: 1h\n' >>"$T/many.yaml"
broker_start "$T/many.yaml"
tap_result "the broker starts with 250 users"
kill -STOP "$SYSLOG_RECEIVER_PID"
FILED=0
for i in $(seq -f '%03g' 1 250); do
	req --as "u$i" burst --reason "syslog test: filling the queue"
	[ "$RC" -eq 0 ] && FILED=$((FILED + 1))
done
assert_eq "all 250 requests are answered while syslog reads nothing" 250 "$FILED"
kill -CONT "$SYSLOG_RECEIVER_PID"
broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"
wait_until 10 eval 'syslog_lines " event=journal.sealed .*why=shutdown" | grep -q .'
tap_result "the stop's seal reaches syslog once it reads again"
LINE=$(syslog_lines " event=journal.sealed .*why=shutdown" | tail -n 1)
DROPPED=$(printf '%s' "$LINE" | sed -nE 's/.* syslog_dropped=([0-9]+)$/\1/p')
assert_int_between "the stop's seal line counts the dropped lines" 0 100000 "${DROPPED:-x}"
RECORDS=$(journal | jq -s 'map(select(.event != "journal.sealed")) | length')
GOT=$(syslog_lines '^<86>' | wc -l)
assert_eq "lines received + dropped = the records (none lost unseen)" "$RECORDS" \
	"$((GOT + DROPPED))"

tap_done
