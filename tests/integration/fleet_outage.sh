#!/bin/bash
# The fleet's database stopped (real PostgreSQL 15): every host still
# answers checks from its own copy, a grant still expires on time
# everywhere, requests and approvals are refused at once with a message
# naming the database (nothing is queued), a revocation holds on the host
# where it was made at once, a host restarted meanwhile starts from its
# copy, and a copy older than fleet.max_stale says so (status and the
# journal).  The database back: every host catches up, the revocation
# made during the outage reaches the others and wins, the expiry is
# recorded in the log exactly once, and requests work again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
fleet_init

fleet_policy "$POLICY"
HOSTS=(sbx-01 sbx-02 sbx-clinical-01)
fleet_start_hosts "${HOSTS[@]}"
REASON="fleet outage test, on purpose"

# Before: dave holds sandbox-admin; erin asks for a short grant.
freq sbx-01 --as dave --json sandbox-admin --for 1h --reason "$REASON"
DAVE=$(out_id)
fctl sbx-02 --as frank approve "$DAVE"
assert_rc "dave's grant is approved" 0
freq sbx-02 --as erin --json quick --for 8s --reason "$REASON"
ERIN=$(out_id)
fctl sbx-01 --as grace --json approve "$ERIN"
assert_rc "erin's 8 s grant is approved" 0
EXPIRES=$(json_get .expires_at)
freq sbx-clinical-01 --as erin --json sandbox-admin --reason "$REASON"
PEND=$(out_id)
assert_eq "and for sandbox-admin, which stays pending" pending "$(json_get .state)"
both() { allowed sbx-01 "$1" && allowed sbx-02 "$1"; }
wait_until 2 both erin
assert_true "erin may log in on sbx-01 and sbx-02" both erin

# --- the database stops -------------------------------------------------------------
pg_stop db
tap_result "the database is stopped"
for h in sbx-01 sbx-02; do
	assert_true "$h still answers checks: erin is allowed" allowed "$h" erin
done
assert_true "sbx-01 still answers: dave is allowed" allowed sbx-01 dave
t0=$(date +%s%N)
freq sbx-01 --as dave --json quick --reason "$REASON"
ms=$((($(date +%s%N) - t0) / 1000000))
assert_rc "a request is refused" 1
assert_contains "clearly: it names the database" "$ERR" "the fleet's database is unreachable"
assert_contains "and says nothing is queued" "$ERR" "nothing is queued"
assert_int_between "and at once (within the fleet's timeout, 2 s)" 0 2500 "$ms"
fctl sbx-02 --as grace approve "$PEND"
assert_rc "an approval is refused too" 1
assert_contains "(naming the database)" "$ERR" "database"
fctl sbx-01 status
assert_rc "sbxctl status exits 1 while the log cannot be written" 1
assert_contains "and says why" "$OUT" "unreachable"

# --- a revocation during the outage -------------------------------------------------
fctl sbx-01 --json revoke "$DAVE" --reason "incident during the outage"
assert_rc "root revokes dave's grant on sbx-01 anyway" 0
assert_eq "sbx-01 says revoked" revoked "$(json_get .state)"
assert_contains "and that it holds on sbx-01 only for now" "$(json_get .note)" "revoked on sbx-01 only"
assert_true "sbx-01 refuses dave at once" eval '! allowed sbx-01 dave'
assert_true "sbx-02 (not told yet) still lets him in" allowed sbx-02 dave
assert_true "sbx-01 recorded grant.revoked_here" \
	fjournal_has sbx-01 ".event == \"grant.revoked_here\" and .id == $DAVE"

# --- a host restarted during the outage ----------------------------------------------
fb_stop sbx-02
fb_start sbx-02
tap_result "sbx-02 starts again with the database down"
assert_true "it decides from its copy: erin allowed" allowed sbx-02 erin
run "$SBXCTL" audit verify --state-dir "$T/sbx-02/state"
assert_rc "its journal verifies" 0
fb_stop sbx-01
fb_start sbx-01
tap_result "sbx-01 starts again with the database down"
assert_true "and still refuses dave (its revocation is in its journal)" eval '! allowed sbx-01 dave'

# --- expiry by the local clock -----------------------------------------------------
end_s=$(to_s "$EXPIRES")
while [ "$(date +%s)" -lt "$end_s" ]; do sleep 0.1; done
gone() { ! allowed sbx-01 erin && ! allowed sbx-02 erin && ! in_group sbx-01 sbx-quick erin &&
	! in_group sbx-02 sbx-quick erin; }
wait_until 2 gone
assert_true "erin's grant ended on time on sbx-01 and sbx-02 (checks, group table)" gone
late=$((($(date +%s%N) / 1000000) - end_s * 1000))
diag "checked ${late} ms after expires_at"

# --- stale ----------------------------------------------------------------------------
stale() { "$SBXCTL" --socket "$(fsock sbx-clinical-01)" status 2>/dev/null | grep -q STALE; }
wait_until 8 stale
assert_true "after fleet.max_stale (4 s) a host says its copy is stale" stale
assert_true "and records fleet.stale" fjournal_has sbx-clinical-01 '.event == "fleet.stale"'

# --- the database is back ------------------------------------------------------------
pg_start db
tap_result "the database is back"
writable() { "$SBXCTL" --socket "$(fsock "$1")" status >/dev/null 2>&1; }
for h in "${HOSTS[@]}"; do
	wait_until 10 writable "$h"
	assert_true "$h can record changes again" writable "$h"
done
wait_until 5 eval '! allowed sbx-02 dave'
assert_true "sbx-02 learnt of the revocation made during the outage" eval '! allowed sbx-02 dave'
in_step() {
	local last

	last=$(fleet_dump | tail -n 1 | awk '{ print $3 }')
	[ "$(fleet_seq sbx-01)" = "$last" ] && [ "$(fleet_seq sbx-02)" = "$last" ] &&
		[ "$(fleet_seq sbx-clinical-01)" = "$last" ]
}
wait_until 10 in_step
assert_true "every host caught up with the log" in_step
DUMP=$(fleet_dump)
assert_eq "the revocation is in the log once, made on sbx-01" "1 sbx-01" \
	"$(printf '%s\n' "$DUMP" | awk -F'\t' -v id="$DAVE" '$2 == "grant.revoked" && $3 == id { n++; h = $6 } END { print n + 0, h }')"
assert_eq "erin's grant.expired is in the log exactly once" 1 \
	"$(printf '%s\n' "$DUMP" | awk -F'\t' -v id="$ERIN" '$2 == "grant.expired" && $3 == id' | wc -l)"
assert_true "the stale host recorded that it is current again" \
	fjournal_has sbx-clinical-01 '.event == "fleet.current"'
freq sbx-02 --as dave --json quick --reason "$REASON"
assert_rc "requests work again" 0
freq sbx-clinical-01 --as dave --json status "$DAVE"
assert_eq "everyone agrees dave's grant was revoked" revoked "$(json_get .state)"
assert_eq "with the reason given during the outage" "incident during the outage" \
	"$(json_get .end_reason)"
for h in "${HOSTS[@]}"; do
	run "$SBXCTL" audit verify --state-dir "$T/$h/state"
	assert_rc "$h: its journal verifies" 0
done

fleet_done
