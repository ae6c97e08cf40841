#!/bin/bash
# Lists in pages (issue 15): more grants than one reply frame holds (the
# GRANTS op used to answer with the newest few hundred), walked page by
# page through the API and the CLIs.  Every grant appears exactly once,
# also while grants come and go between pages; a person's pages hold only
# what they may see; a bad limit or cursor is 400 bad_request; every
# response is validated against docs/openapi.yaml with api_driver.py's
# validator (tests/integration/api_paging_driver.py does the calls).
. "$(dirname "$0")/lib.sh"
sbx_init

if ! python3 -c 'import jsonschema, yaml' 2>/dev/null; then
	tap_skip "lists in pages" "python3-jsonschema and python3-yaml are needed (scripts/deps.sh test)"
	tap_done
	exit
fi

# 1000 people, each with a live grant of "burst"; "extra1".."extra5" give
# one person several; "asked" needs their manager, boss.  The budget of
# changes is raised: not root, the test's --as calls would spend it.
USERS=1000
{
	policy_broker 24h
	echo "  max_changes_per_minute: 100000"
	policy_crowd "$USERS" 4
	echo "roles:"
	for r in burst extra1 extra2 extra3 extra4 extra5; do
		cat <<EOR
  $r:
    description: Live grants for the pages
    hosts: ["sbx-*"]
    eligible: { groups: [crowd] }
    approvers: { manager: true }
    auto_approve: true
    default_duration: 1h
    max_duration: 2h
EOR
	done
	cat <<EOR
  asked:
    description: Pending requests for the pages
    hosts: ["sbx-*"]
    eligible: { groups: [crowd] }
    approvers: { manager: true }
    default_duration: 1h
    max_duration: 2h
EOR
	printf '\napi:\n  listen: 127.0.0.1:0\n'
} >"$POLICY"

broker_start
tap_result "the broker starts with $USERS people and an api: section" || {
	tap_done
	exit
}
API=$(grep -o 'api: listening on http://127\.0\.0\.1:[0-9]*' "$LOG" | sed 's/.*on //')
assert_match "it says where the API listens" '^http://127\.0\.0\.1:[0-9]+$' "$API"

API=$API SBXREQ=$SBXREQ SBXCTL=$SBXCTL SOCK=$SOCK STATE=$STATE POLICY=$POLICY \
	BROKER_PID=$BROKER_PID SPEC="$SBX_SRCDIR/docs/openapi.yaml" USERS=$USERS \
	timeout 600 python3 "$SBX_SRCDIR/tests/integration/api_paging_driver.py" \
	>"$T/driver.out" 2>&1
DRIVER_RC=$?
tap_from_lines <"$T/driver.out"
assert_eq "the driver ran to its end" 0 "$DRIVER_RC"

broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"
tap_done
