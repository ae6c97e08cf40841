#!/bin/bash
# Someone with write access to the fleet's database edits, inserts or
# deletes a row behind the brokers' backs (real PostgreSQL 15): the chain
# breaks, every broker notices (an old row through its periodic full
# check, fleet.verify_every), refuses to apply past it and to record
# changes, names the seq (status, journal, refusals), and keeps deciding
# logins from its own copy.  Once the row is put back and the brokers
# restarted, the fleet works again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
fleet_init

fleet_policy "$POLICY"
HOSTS=(sbx-01 sbx-02 sbx-clinical-01)
start_all() {
	local h

	for h in "${HOSTS[@]}"; do
		fb_start "$h" || return 1
	done
}
stop_all() {
	local h

	for h in "${HOSTS[@]}"; do
		fb_stop "$h"
	done
}
start_all
tap_result "three brokers start on the fleet" || {
	fleet_done
	exit
}
REASON="fleet tamper test, on purpose"
freq sbx-01 --as erin --json sandbox-admin --reason "$REASON"
ID=$(out_id)
fctl sbx-02 --as frank approve "$ID"
assert_rc "erin holds a grant" 0
freq sbx-02 --as dave --json sandbox-admin --reason "$REASON"
assert_rc "dave asks for one" 0
sql() { pg_psql db "$*"; }
SEQ=$(sql "select seq from sbx_log where line like '%\"event\":\"request.created\"%' and line like '%\"id\":$ID,%'")
assert_match "erin's request.created is a row of the log" '^[0-9]+$' "$SEQ"
LINE=$(sql "select line from sbx_log where seq = $SEQ")

# broken_at HOST SEQ: HOST's status names a damaged log at SEQ.
broken_at() {
	"$SBXCTL" --socket "$(fsock "$1")" status 2>/dev/null | grep -q "record seq $2[^0-9]"
}
all_broken_at() {
	local h

	for h in "${HOSTS[@]}"; do
		broken_at "$h" "$1" || return 1
	done
}
# A new request each time: the same one again would be a retry, answered
# with the open request without writing anything.
refused_at() {
	freq "$1" --as dave --json quick --reason "$REASON (asked after seq $2)"
	[ "$RC" -ne 0 ] && [[ $ERR == *"record seq $2"* ]]
}

# --- an old row edited --------------------------------------------------------------
sql "update sbx_log set line = replace(line, '$REASON', 'harmless, honest') where seq = $SEQ"
assert_rc "someone edits row $SEQ (erin's request) in the database" 0 "$?"
wait_until 8 all_broken_at "$SEQ"
assert_true "every broker notices, naming seq $SEQ" all_broken_at "$SEQ"
for h in "${HOSTS[@]}"; do
	fctl "$h" status
	assert_rc "$h: sbxctl status exits 1" 1
	# status answers from memory; the record is on disk a commit later.
	assert_true "$h: its journal records fleet.chain_broken at seq $SEQ" \
		wait_until 5 fjournal_has "$h" ".event == \"fleet.chain_broken\" and .bad_seq == $SEQ"
done
assert_true "a request is refused, naming seq $SEQ" refused_at sbx-02 "$SEQ"
assert_contains "and saying what to do" "$ERR" "repairs the database"
assert_true "erin still gets in on sbx-01 (decided from its copy)" allowed sbx-01 erin
assert_true "and on sbx-02" allowed sbx-02 erin
assert_eq "the broker's copy still holds what erin typed" "$REASON" \
	"$(fjournal sbx-01 | jq -r "select(.event == \"request.created\" and .id == $ID) | .reason")"

# --- put back, restarted: the fleet works again ---------------------------------------
stop_all
sql "update sbx_log set line = \$sbx\$$LINE\$sbx\$ where seq = $SEQ"
start_all
tap_result "the row is put back and the brokers restarted"
writable() { "$SBXCTL" --socket "$(fsock "$1")" status >/dev/null 2>&1; }
wait_until 10 writable sbx-02
freq sbx-02 --as dave --json quick --reason "$REASON"
assert_rc "requests are recorded again" 0

# --- a row inserted at the end --------------------------------------------------------
last=$(sql "select max(seq) from sbx_log")
forged=$((last + 1))
sql "insert into sbx_log (seq, line, hash, prev, host) select $forged,
	replace(replace(line, '\"seq\":' || seq || ',', '\"seq\":$forged,'), 'debugging', 'debugging'),
	hash, hash, 'sbx-01' from sbx_log where seq = $last"
assert_rc "someone inserts a forged record $forged at the end" 0 "$?"
wait_until 8 all_broken_at "$forged"
assert_true "every broker refuses to apply it, naming seq $forged" all_broken_at "$forged"
assert_true "a request is refused" refused_at sbx-01 "$forged"
assert_eq "no broker applied it" "$last $last $last" \
	"$(fleet_seq sbx-01) $(fleet_seq sbx-02) $(fleet_seq sbx-clinical-01)"

# --- a row deleted ------------------------------------------------------------------
stop_all
sql "delete from sbx_log where seq = $forged"
start_all
tap_result "the forged row is removed and the brokers restarted"
wait_until 10 writable sbx-01
assert_true "sbx-01 records changes again" writable sbx-01
sql "delete from sbx_log where seq = 2"
assert_rc "someone deletes row 2 of the log" 0 "$?"
wait_until 8 all_broken_at 2
assert_true "every broker notices the hole at seq 2" all_broken_at 2
assert_contains "and says a record is missing" \
	"$("$SBXCTL" --socket "$(fsock sbx-clinical-01)" status)" "missing"

fleet_done
