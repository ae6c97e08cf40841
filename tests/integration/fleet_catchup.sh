#!/bin/bash
# A host that was stopped while the fleet's log grew by 10,000 records
# catches up when it starts: it applies them all, in order, copies them
# into its journal (which verifies), and decides from them (a grant made
# meanwhile on another host lets its user in).  How long it took is
# printed, not asserted (bench/ measures speed).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
fleet_init

fleet_policy "$POLICY"
fleet_start_hosts sbx-01 sbx-02
REASON="fleet catch-up test, on purpose"

fb_stop sbx-02
tap_result "sbx-02 is stopped"
run "$FLEET_TOOL" fill "$FLEET_CI" "$PG_PWFILE" 10000
assert_rc "10,000 records are added to the log meanwhile" 0
freq sbx-01 --as erin --json sandbox-admin --reason "$REASON"
ID=$(out_id)
fctl sbx-01 --as frank approve "$ID"
assert_rc "and erin gets a grant on sbx-01" 0
LAST=$(fleet_dump | tail -n 1 | awk '{ print $3 }')
diag "the log now ends at seq $LAST"
wait_until 10 eval '[ "$(fleet_seq sbx-01)" = "$LAST" ]'
assert_eq "sbx-01 follows it" "$LAST" "$(fleet_seq sbx-01)"

t0=$(date +%s%N)
fb_start sbx-02
tap_result "sbx-02 starts again"
# (its own policy.loaded joins the log as it starts)
log_end() { fleet_dump | tail -n 1 | awk '{ print $3 }'; }
caught() { [ "$(fleet_seq sbx-02)" = "$(log_end)" ]; }
wait_until 60 caught
assert_true "it caught up with the whole log" caught
LAST=$(log_end)
diag "caught up $((($(date +%s%N) - t0) / 1000000)) ms after it was started"
assert_true "and lets erin in" allowed sbx-02 erin
run "$SBXCTL" audit verify --state-dir "$T/sbx-02/state"
assert_rc "its journal verifies" 0
assert_eq "its journal holds a copy of every fleet record, in order" "$LAST ok" \
	"$(fjournal sbx-02 | jq -s -r '[.[] | select(.fleet_hash != null) | .fleet_seq] as $s |
		"\($s | length) \(if $s == [range(1; ($s | length) + 1)] then "ok" else "out of order" end)"')"
n=$(fjournal sbx-02 | jq -s '[.[] | select(.event == "request.created" and .host == "filler")] | length')
assert_eq "the 10,000 filled requests among them" 10000 "$n"
assert_eq "the same copy as sbx-01" \
	"$(fjournal sbx-01 | jq -s -c '[.[] | select(.fleet_hash != null) | .fleet_hash] | .[-1]')" \
	"$(fjournal sbx-02 | jq -s -c '[.[] | select(.fleet_hash != null) | .fleet_hash] | .[-1]')"
fb_stop sbx-02
fb_start sbx-02
tap_result "sbx-02 starts once more (from its snapshot and journal)"
wait_until 5 caught
assert_eq "and takes up where it left off" "$(log_end)" "$(fleet_seq sbx-02)"
assert_eq "without copying anything twice" 1 \
	"$(fjournal sbx-02 | jq -s "[.[] | select(.fleet_hash != null and .fleet_seq == $LAST)] | length")"

fleet_done
