#!/bin/bash
# broker.keep_ended: past it, the requests that ended first leave the
# broker's memory (issue 11: memory follows live state, not age).  A
# forgotten request is answered with where its history is, ids go on, a
# restart (replay or snapshot) forgets the same ones, and the journal
# still has every record (sbxctl audit query --id).
. "$(dirname "$0")/lib.sh"
sbx_init

policy_many_users "$POLICY" 12 true
sed -i 's/^  request_ttl: .*/&\n  keep_ended: 3/' "$POLICY"

broker_start
tap_result "broker starts with keep_ended: 3" || {
	tap_done
	exit
}

IDS=()
for u in u001 u002 u003 u004 u005 u006; do
	req --as "$u" --json burst --reason "forget test"
	id=$(out_id)
	IDS+=("$id")
	req --as "$u" drop "$id"
done
assert_eq "six grants were made and given back" 6 "$(journal_select '.event == "grant.revoked"' | wc -l)"

# forgotten_checks WHEN
forgotten_checks() {
	local when=$1

	req --as u001 status "${IDS[0]}"
	assert_rc "$when: status of the first (forgotten) request: exit 1" 1
	assert_contains "$when: ... says it ended long ago" "$ERR" "ended long ago"
	assert_contains "$when: ... and where its history is" "$ERR" "sbxctl audit query --id ${IDS[0]}"
	req --as u003 status "${IDS[2]}"
	assert_rc "$when: the third is forgotten too" 1
	req --as u004 --json status "${IDS[3]}"
	assert_rc "$when: the fourth (one of the last 3 to end) is still there" 0
	assert_eq "$when: ... revoked" revoked "$(json_get .state)"
	req --as u006 --json status "${IDS[5]}"
	assert_eq "$when: the sixth is revoked too" revoked "$(json_get .state)"
	ctl revoke "${IDS[0]}"
	assert_rc "$when: revoking a forgotten grant: exit 1" 1
	assert_contains "$when: ... says why" "$ERR" "ended long ago"
	req --as u009 status 999
	assert_rc "$when: an id never given: exit 2" 2
	assert_contains "$when: ... 'no request 999'" "$ERR" "no request 999"
}
forgotten_checks "running"

broker_stop
broker_start
tap_result "the broker starts again" || {
	tap_done
	exit
}
forgotten_checks "after a restart"

req --as u007 --json burst --reason "forget test"
assert_eq "ids go on after the forgotten ones" $((IDS[5] + 1)) "$(out_id)"

run "$SBXCTL" audit query --state-dir "$STATE" --format jsonl --id "${IDS[0]}"
assert_eq "the journal still has the first request's whole life" \
	"request.created grant.activated grant.revoked" \
	"$(printf '%s\n' "$OUT" | jq -r .event | tr '\n' ' ' | sed 's/ $//')"

tap_done
