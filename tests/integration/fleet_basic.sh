#!/bin/bash
# Three brokers as three hosts (sbx-01, sbx-02, sbx-clinical-01) on one
# fleet log in a real PostgreSQL 15: a request filed on sbx-01 and
# approved on sbx-02 is live on both within 2 s (checks and the NSS group
# table) and not on sbx-clinical-01, whose roles are others; every record
# is in the log once, chained, naming the host that made it; every host
# copies the log into its own journal (fleet_seq, fleet_hash), which
# verifies; host records name the fleet seq they were decided at; a host
# restarted later catches up; one user cannot hold two pending requests
# for one role however many hosts they ask at once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
fleet_init

fleet_policy "$POLICY"
fleet_start_hosts sbx-01 sbx-02 sbx-clinical-01
REASON="fleet test: debugging the shared log"

# --- request on one host, approval on another --------------------------------------
freq sbx-01 --as erin --json sandbox-admin --for 30m --reason "$REASON"
assert_rc "erin asks on sbx-01" 0
ID=$(out_id)
assert_eq "pending" pending "$(json_get .state)"

seen_on() { freq "$1" --as erin --json status "$ID" && [ "$RC" -eq 0 ]; }
wait_until 2 seen_on sbx-02
assert_eq "the request is known on sbx-02 within 2 s" 0 "$RC"
wait_until 2 seen_on sbx-clinical-01
assert_eq "and on sbx-clinical-01" 0 "$RC"

fctl sbx-02 --as frank --json approve "$ID"
assert_rc "frank approves it on sbx-02" 0
t0=$(date +%s%N)
assert_eq "his reply says active" active "$(json_get .state)"

live_everywhere() {
	allowed sbx-01 erin && allowed sbx-02 erin && in_group sbx-01 sbx-admin erin &&
		in_group sbx-02 sbx-admin erin
}
if wait_until 2 live_everywhere; then
	tap_ok "the grant is live on sbx-01 and sbx-02 (check and group table) within 2 s"
else
	tap_fail "the grant is live on sbx-01 and sbx-02 (check and group table) within 2 s"
fi
diag "live on both $((($(date +%s%N) - t0) / 1000000)) ms after the approval's reply"
freq sbx-clinical-01 --as erin --json status "$ID"
assert_eq "sbx-clinical-01 knows the grant" active "$(json_get .state)"
assert_false() { if "$@"; then return 1; else return 0; fi; }
assert_true "but it does not let erin log in there (sandbox-admin is for sbx-0*)" \
	assert_false allowed sbx-clinical-01 erin
assert_true "nor puts her in sbx-admin there" assert_false in_group sbx-clinical-01 sbx-admin erin

# --- and the other way round: a clinical role -----------------------------------------
freq sbx-02 --as alice --json prod-data --reason "$REASON" --ticket INC-1
assert_rc "alice asks for prod-data on sbx-02" 0
PHI=$(out_id)
fctl sbx-clinical-01 --as grace --json approve "$PHI"
assert_rc "grace approves it on sbx-clinical-01" 0
wait_until 2 allowed sbx-clinical-01 alice
assert_true "alice may log in on sbx-clinical-01" allowed sbx-clinical-01 alice
wait_until 2 in_group sbx-clinical-01 sbx-phi alice
assert_true "and is in sbx-phi there" in_group sbx-clinical-01 sbx-phi alice
assert_true "not on sbx-01" assert_false allowed sbx-01 alice

# --- the log ----------------------------------------------------------------------------
wait_until 3 eval '[ "$(fleet_seq sbx-01)" = "$(fleet_seq sbx-02)" ] && [ "$(fleet_seq sbx-02)" = "$(fleet_seq sbx-clinical-01)" ]'
DUMP=$(fleet_dump)
LAST=$(printf '%s\n' "$DUMP" | tail -n 1)
assert_match "the fleet's log is one intact chain" '^chain intact [0-9]+$' "$LAST"
N=${LAST##* }
assert_eq "every host applied all of it" "$N $N $N" \
	"$(fleet_seq sbx-01) $(fleet_seq sbx-02) $(fleet_seq sbx-clinical-01)"
assert_eq "request $ID was created once, on sbx-01" "1 sbx-01" \
	"$(printf '%s\n' "$DUMP" | awk -F'\t' -v id="$ID" '$2 == "request.created" && $3 == id { n++; h = $6 } END { print n, h }')"
assert_eq "approved and activated on sbx-02, once each" "request.approval sbx-02,grant.activated sbx-02" \
	"$(printf '%s\n' "$DUMP" | awk -F'\t' -v id="$ID" '$3 == id && $2 != "request.created" { printf "%s%s %s", sep, $2, $6; sep = "," }')"
assert_eq "each host's policy.loaded is in the log" "sbx-01 sbx-02 sbx-clinical-01" \
	"$(printf '%s\n' "$DUMP" | awk -F'\t' '$2 == "policy.loaded" { print $6 }' | sort -u | tr '\n' ' ' | sed 's/ $//')"

for h in sbx-01 sbx-02 sbx-clinical-01; do
	run "$SBXCTL" audit verify --state-dir "$T/$h/state"
	assert_rc "$h: its journal verifies" 0
	copies=$(fjournal "$h" | jq -s '[.[] | select(.fleet_seq != null and .fleet_hash != null)] | length')
	assert_eq "$h: its journal holds a copy of every fleet record" "$N" "$copies"
	assert_eq "$h: the copies are in the log's order, each with its hash" "ok" \
		"$(fjournal "$h" | jq -s -r '[.[] | select(.fleet_hash != null) | .fleet_seq] as $s |
			if $s == [range(1; ($s | length) + 1)] then "ok" else "out of order" end')"
	assert_true "$h: host records name the fleet seq they were decided at" \
		fjournal_has "$h" '.event == "broker.started" and .fleet_seq != null and .fleet_hash == null'
done
# The copy of a record is the record: same time, event, actor and fields.
a=$(fjournal sbx-clinical-01 | jq -c "select(.event == \"request.created\" and .id == $ID) | del(.seq, .prev, .hash, .fleet_seq, .fleet_hash)")
b=$(fjournal sbx-01 | jq -c "select(.event == \"request.created\" and .id == $ID) | del(.seq, .prev, .hash, .fleet_seq, .fleet_hash)")
assert_eq "two hosts hold the same copy of request $ID" "$a" "$b"

# --- a host that was away catches up -------------------------------------------------
fb_stop sbx-02
freq sbx-01 --as dave --json sandbox-admin --for 1h --reason "$REASON"
assert_rc "dave asks on sbx-01 while sbx-02 is stopped" 0
DAVE=$(out_id)
fctl sbx-clinical-01 --as grace approve "$DAVE"
assert_rc "grace approves it on sbx-clinical-01" 0
fb_start sbx-02
tap_result "sbx-02 starts again"
wait_until 3 allowed sbx-02 dave
assert_true "sbx-02 learnt of dave's grant as it started" allowed sbx-02 dave
freq sbx-02 --as erin --json status "$ID"
assert_eq "and still knows erin's" active "$(json_get .state)"

# --- one user, one role, three hosts at once ----------------------------------------
pids=()
for h in sbx-01 sbx-02 sbx-clinical-01; do
	"$SBXREQ" --socket "$(fsock "$h")" --as erin --json quick --reason "$REASON" \
		>"$T/dup.$h.out" 2>"$T/dup.$h.err" &
	pids+=($!)
done
wait "${pids[@]}"
ok=0
for h in sbx-01 sbx-02 sbx-clinical-01; do
	[ "$(jq -r '.state' "$T/dup.$h.out" 2>/dev/null)" = pending ] && ok=$((ok + 1))
done
# The same role and reason again is a retry: the others answer with the one filed.
assert_eq "erin asked for quick on three hosts at once: each answers with a pending request" 3 "$ok"
assert_eq "one and the same request" 1 "$(jq -r '.id // empty' "$T"/dup.*.out | sort -u | wc -l)"
assert_eq "two of the hosts found it already filed" 2 \
	"$(jq -r 'select(.already_existed == true) | .id' "$T"/dup.*.out | wc -l)"
assert_eq "the log has exactly one request.created for erin's quick" 1 \
	"$(fleet_dump | awk -F'\t' '$2 == "request.created" && $4 == "erin" && $5 == "quick"' | wc -l)"

# --- denial and revocation travel too ------------------------------------------------
QID=$(jq -r '.id // empty' "$T"/dup.*.out | head -n 1)
fctl sbx-02 --as grace deny "$QID" --reason "not today"
assert_rc "grace denies erin's quick on sbx-02" 0
fctl sbx-01 revoke "$ID" --reason "done with it"
assert_rc "root revokes erin's grant on sbx-01" 0
gone_on_02() { ! allowed sbx-02 erin && ! in_group sbx-02 sbx-admin erin; }
wait_until 2 gone_on_02
assert_true "within 2 s sbx-02 refuses erin and drops her from sbx-admin" gone_on_02
freq sbx-clinical-01 --as erin --json status "$QID"
assert_eq "the denial is known everywhere" denied "$(json_get .state)"

# --- a database without the schema, or with one this broker does not know -----------
pg_psql db "create database empty" >/dev/null
sed "s/dbname=postgres/dbname=empty/" "$POLICY" >"$T/empty.yaml"
mkdir -p "$T/lost"
run "$BROKERD" --config "$T/empty.yaml" --foreground --socket "$T/lost/sock" \
	--state-dir "$T/lost/state" --host sbx-03
assert_rc "a broker refuses a database without the fleet's schema" 1
assert_contains "saying so" "$ERR" "has no sbx schema"
pg_psql db "update sbx_schema set version = 99" >/dev/null
fb_stop sbx-clinical-01
run "$BROKERD" --config "$POLICY" --foreground --socket "$T/lost/sock" --state-dir "$T/lost/state" \
	--host sbx-03
assert_rc "and one whose schema is newer than it knows" 1
assert_contains "saying which" "$ERR" "newer than this sbx knows"
pg_psql db "update sbx_schema set version = 1" >/dev/null

fleet_done
