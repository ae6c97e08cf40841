#!/bin/bash
# sbxctl fleet init / status / verify against a real PostgreSQL 15 server
# (pg_lib.sh) and two real brokers, sbx-01 and sbx-02, sharing its log:
# init creates the schema once; status shows both hosts current, then a
# policy mismatch after one restarts with another policy (exit 1, --json),
# a stale host, and an unreachable database (exit 3, naming it); verify
# finds the log and each broker's copy intact, names the seq of a copy
# that differs, and the seq of a row edited in the database.  The
# password (fleet.password_file) never shows in any output.  Skips (77)
# without PostgreSQL 15.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
sbx_init
pg_require
pg_init

now_ms() { echo $(($(date +%s%N) / 1000000)); }
T0=$(now_ms)

pg_primary_start db
tap_result "a PostgreSQL server starts" || {
	tap_done
	exit
}
DB="127.0.0.1:$(pg_port db)"

# Everything the CLIs print, to look for the password at the end.
ALL_OUT="$T/all.out"
fctl() {
	run "$SBXCTL" "$@"
	printf '%s\n%s\n' "$OUT" "$ERR" >>"$ALL_OUT"
}

# The policy: erin may ask frank (her manager) for sandbox-admin on
# sbx-01 and sbx-02; policy B is the same with one more role.
write_policy() {
	{
		policy_broker 24h
		cat <<EOF
fleet:
  postgres: "$(pg_conninfo db)"
  password_file: $PG_PWFILE
  timeout: 3s
users:
  erin: { manager: frank }
  frank: {}
roles:
  sandbox-admin:
    description: Root via sudo on sandbox hosts
    hosts: ["sbx-0*"]
    eligible: { users: [erin] }
    approvers: { manager: true }
    approvals: 1
    default_duration: 1h
    max_duration: 2h
EOF
	} >"$1"
}
PA="$T/fleet-a.yaml"
PB="$T/fleet-b.yaml"
write_policy "$PA"
write_policy "$PB"
cat >>"$PB" <<'EOF'
  sandbox-readonly:
    description: Read logs on any sandbox
    hosts: ["sbx-0*"]
    eligible: { users: [erin] }
    auto_approve: true
    max_duration: 30m
EOF
SHA_A=$(sha256sum "$PA" | cut -d' ' -f1)
SHA_B=$(sha256sum "$PB" | cut -d' ' -f1)
run "$SBXCTL" policy check "$PA" "$PB"
assert_rc "both fleet policies are valid" 0

# --- before init ------------------------------------------------------------------------
fctl fleet status --config "$POLICY"
assert_rc "fleet status on a policy without fleet: exit 2" 2
assert_contains "... saying the policy has no fleet: section" "$ERR" "no fleet: section"
fctl fleet status --config "$PA"
assert_rc "fleet status before init: exit 1" 1
assert_contains "... naming the database" "$ERR" "$DB"
assert_contains "... and saying what to do" "$ERR" "sbxctl fleet init"

# --- init, twice ------------------------------------------------------------------------
fctl fleet init --config "$PA"
assert_rc "fleet init: exit 0" 0
assert_eq "fleet init says it created the schema" \
	"fleet: schema version 1 in database $DB (created)" "$OUT"
assert_eq "the database holds schema version 1" 1 "$(pg_psql db 'select version from sbx_schema')"
fctl fleet init --config "$PA"
assert_rc "fleet init again: exit 0" 0
assert_eq "... and says the schema was already there" \
	"fleet: schema version 1 in database $DB (already there)" "$OUT"
fctl --json fleet init --config "$PA"
assert_eq "fleet init --json" "$DB 1 present" \
	"$(json_get '"\(.database) \(.schema_version) \(.action)"')"

# --- the password file ------------------------------------------------------------------
WRONG_PW="wrong-$$-secret"
(umask 077 && echo "$WRONG_PW" >"$T/wrong.pw")
sed "s|password_file: .*|password_file: $T/wrong.pw|" "$PA" >"$T/fleet-wrong.yaml"
fctl fleet status --config "$T/fleet-wrong.yaml"
assert_rc "a wrong password: exit 3" 3
assert_contains "... the database's refusal, naming it" "$ERR" "$DB"
assert_not_contains "... without the password" "$ERR" "$WRONG_PW"
chmod 644 "$T/wrong.pw"
fctl fleet status --config "$T/fleet-wrong.yaml"
assert_rc "a password file others may read: exit 2" 2
assert_contains "... naming the setting" "$ERR" "fleet.password_file"
no_password_in() { ! grep -qF -- "$1" "$2"; }
assert_true "the wrong password never shows in any output" no_password_in "$WRONG_PW" "$ALL_OUT"

# --- status and verify with nobody there ------------------------------------------------
fctl fleet status --config "$PA"
assert_rc "fleet status with no hosts: exit 0" 0
assert_contains "... names the database" "$OUT" "$DB"
assert_match "... the log's last seq is 0" '^log: +last seq 0$' "$OUT"
assert_contains "... no host has reported" "$OUT" "none has reported yet"
fctl --json fleet status --config "$PA"
assert_eq "fleet status --json with no hosts" "0 0 true" \
	"$(json_get '"\(.last_seq) \(.hosts | length) \(.healthy)"')"
fctl fleet verify --config "$PA"
assert_rc "fleet verify on an empty log: exit 0" 0
assert_contains "... says it is empty" "$OUT" "fleet log intact: empty"

# --- two brokers ---------------------------------------------------------------------
declare -A PIDS
# fleet_broker_start N POLICY: sbx-0N on $T/sockN with state dir $T/sN.
fleet_broker_start() {
	SOCK="$T/sock$1"
	STATE="$T/s$1"
	echo "--- fleet broker sbx-0$1 $(date -u +%T.%N) policy=$2" >>"$LOG"
	"$BROKERD" --config "$2" --foreground --socket "$SOCK" --state-dir "$STATE" \
		--host "sbx-0$1" 2>>"$LOG" &
	BROKER_PID=$!
	track_pid "$BROKER_PID"
	PIDS[$1]=$BROKER_PID
	broker_wait_ready
}
fleet_broker_stop() {
	BROKER_PID=${PIDS[$1]}
	broker_stop
}

fleet_broker_start 1 "$PA"
tap_result "broker sbx-01 starts in the fleet" || {
	tap_done
	exit
}
fleet_broker_start 2 "$PA"
tap_result "broker sbx-02 starts in the fleet" || {
	tap_done
	exit
}

run "$SBXREQ" --socket "$T/sock1" --as erin --json sandbox-admin --for 30m \
	--reason "fleet cli test on sbx-01"
assert_rc "erin asks on sbx-01" 0
ID=$(out_id)
run "$SBXCTL" --socket "$T/sock2" --as frank approve "${ID:-0}"
assert_rc "frank approves on sbx-02" 0
grant_on_1() {
	[ "$("$SBXREQ" --socket "$T/sock1" --json status "$ID" 2>/dev/null | jq -r .state)" = active ]
}
assert_true "sbx-01 sees the grant active" wait_until 10 grant_on_1

LAST=$(pg_psql db 'select max(seq) from sbx_log')
# Both hosts report every 5 s; wait until both have reported the end.
both_current() {
	"$SBXCTL" --json fleet status --config "$PA" 2>/dev/null |
		jq -e --argjson last "$LAST" \
			'(.hosts | length) == 2 and all(.hosts[]; .applied_seq == $last)' >/dev/null
}
assert_true "both hosts report having applied the whole log" wait_until 20 both_current
fctl fleet status --config "$PA"
assert_rc "fleet status with both current: exit 0" 0
assert_match "... the log's last seq" "^log: +last seq $LAST\$" "$OUT"
assert_match "... the policy both run" "^policy: +sha256 $SHA_A on 2 of 2 hosts\$" "$OUT"
assert_match "... a table with a line per host" '^HOST +APPLIED +LAG +POLICY +VERSION +CONTACT +FLAGS$' "$OUT"
assert_match "... sbx-01 current, policy A" "^sbx-01 +$LAST +0 +${SHA_A:0:12} +[^ ]+ +[0-9]+s ago +-\$" "$OUT"
assert_match "... sbx-02 current, policy A" "^sbx-02 +$LAST +0 +${SHA_A:0:12} +[^ ]+ +[0-9]+s ago +-\$" "$OUT"
fctl --json fleet status --config "$PA"
assert_eq "fleet status --json: both hosts, lag 0, one policy, no flags" \
	"sbx-01:0:$SHA_A:false:false sbx-02:0:$SHA_A:false:false 0 true" \
	"$(json_get '([.hosts[] | "\(.host):\(.lag):\(.policy_sha256):\(.stale):\(.policy_mismatch)"] | join(" ")) + " \(.policy_mismatch | length) \(.healthy)"')"
assert_eq "... with every key" true \
	"$(json_get '.hosts | all(has("host") and has("applied_seq") and has("lag") and has("policy_sha256") and has("version") and has("last_contact_age_s") and has("stale") and has("policy_mismatch"))')"

# --- verify: the log and both copies --------------------------------------------------
LAST_HASH=$(pg_psql db "select hash from sbx_log where seq = $LAST")
fctl fleet verify --config "$PA"
assert_rc "fleet verify: exit 0" 0
assert_eq "fleet verify: intact, with the count and the last hash" \
	"fleet log intact: $LAST records, last seq $LAST (hash ${LAST_HASH:0:16}...)" "$OUT"
for n in 1 2; do
	fctl fleet verify --config "$PA" --state-dir "$T/s$n"
	assert_rc "fleet verify --state-dir of sbx-0$n: exit 0" 0
	assert_contains "... every copy the same" "$OUT" \
		"local copy in $T/s$n: $LAST records compared with the log, all the same"
	assert_match "... and its journal intact" "^journal in $T/s$n intact: " "$OUT"
done
fctl --json fleet verify --config "$PA" --state-dir "$T/s2"
assert_eq "fleet verify --json --state-dir" "true $LAST $LAST_HASH $LAST 0 0 true" \
	"$(json_get '"\(.intact) \(.last_seq) \(.last_hash) \(.local.compared) \(.local.differ) \(.local.unchecked) \(.local.journal_intact)"')"

# A copy of sbx-01's state dir whose copy of seq 3 carries another hash.
H3=$(pg_psql db 'select hash from sbx_log where seq = 3')
BAD=$(printf 'f%.0s' $(seq 64))
cp -a "$T/s1" "$T/s3"
sed -i "s/\"fleet_hash\":\"$H3\"/\"fleet_hash\":\"$BAD\"/" "$T"/s3/journal/*.jsonl
assert_true "the doctored copy holds the other hash" grep -q "\"fleet_hash\":\"$BAD\"" "$T"/s3/journal/*.jsonl
fctl fleet verify --config "$PA" --state-dir "$T/s3"
assert_rc "fleet verify of a copy that differs: exit 1" 1
assert_contains "... names the seq, both hashes and the count" "$OUT" \
	"local copy in $T/s3 DIFFERS from the log: 1 of $LAST records; the first: local copy of seq 3 in $T/s3 has hash $BAD, the log $H3"
assert_match "... and that journal's broken chain" "^journal in $T/s3 BROKEN at seq " "$OUT"
fctl --json fleet verify --config "$PA" --state-dir "$T/s3"
assert_eq "... --json: first_difference_seq 3, 1 differs" "3 1 true" \
	"$(json_get '"\(.local.first_difference_seq) \(.local.differ) \(.intact)"')"

# --- one host on another policy ------------------------------------------------------
fleet_broker_stop 2
assert_rc "sbx-02 stops" 0 "$BROKER_RC"
fleet_broker_start 2 "$PB"
tap_result "sbx-02 starts again with policy B" || {
	tap_done
	exit
}
b_reported() {
	"$SBXCTL" --json fleet status --config "$PA" 2>/dev/null |
		jq -e --arg sha "$SHA_B" '.hosts[] | select(.host == "sbx-02") | .policy_sha256 == $sha' >/dev/null
}
assert_true "sbx-02 reports policy B" wait_until 15 b_reported
fctl fleet status --config "$PA"
assert_rc "fleet status with two policies: exit 1" 1
assert_eq "... one host (of two: a tie) is flagged" 1 "$(grep -c 'POLICY MISMATCH$' <<<"$OUT")"
assert_match "... with a summary line" '^fleet\.policy_mismatch: sbx-0[12] \(sha256 [0-9a-f]{64}\) differs from the other hosts \(sha256 [0-9a-f]{64}\)$' "$OUT"
fctl --json fleet status --config "$PA"
assert_rc "fleet status --json with two policies: exit 1" 1
assert_eq "... --json names one host in policy_mismatch" "1 false" \
	"$(json_get '"\(.policy_mismatch | length) \(.healthy)"')"

# A third host on policy A makes A the majority: sbx-02 is the odd one.
pg_psql db "insert into sbx_hosts (host, applied_seq, policy_sha256, version) values ('sbx-03', $LAST, '$SHA_A', 'test')"
fctl fleet status --config "$PA"
assert_rc "fleet status, two hosts on A and one on B: exit 1" 1
assert_match "... sbx-02 is flagged" "^sbx-02 .* POLICY MISMATCH\$" "$OUT"
assert_contains "... and named in the summary" "$OUT" \
	"fleet.policy_mismatch: sbx-02 (sha256 $SHA_B) differs from the other hosts (sha256 $SHA_A)"
assert_not_contains "... and no other host is" "$OUT" "fleet.policy_mismatch: sbx-01"
fctl --json fleet status --config "$PA"
assert_eq "... --json: policy_mismatch [sbx-02], the fleet's policy A" "sbx-02 $SHA_A" \
	"$(json_get '"\(.policy_mismatch | join(",")) \(.policy_sha256)"')"

# sbx-03 falls silent for longer than max_stale (60 s by default).
pg_psql db "update sbx_hosts set last_contact = now() - interval '2 minutes' where host = 'sbx-03'"
fctl fleet status --config "$PA"
assert_rc "fleet status with a stale host: exit 1" 1
assert_match "... sbx-03 is STALE" '^sbx-03 .* 1[0-9][0-9]s ago +STALE$' "$OUT"
assert_match "... with a summary line" '^fleet\.stale: sbx-03 last reported 1[0-9][0-9]s ago \(fleet\.max_stale is 60s\)$' "$OUT"
pg_psql db "delete from sbx_hosts where host = 'sbx-03'"

# --- a row edited in the database ------------------------------------------------------
LINE3=$(pg_psql db 'select line from sbx_log where seq = 3')
pg_psql db "update sbx_log set line = replace(line, 'sbx-0', 'sbx-9') where seq = 3"
assert_ne "the row of seq 3 was edited" "$LINE3" "$(pg_psql db 'select line from sbx_log where seq = 3')"
fctl fleet verify --config "$PA"
assert_rc "fleet verify of an edited log: exit 1" 1
assert_match "... names seq 3 and what is wrong" '^fleet log BROKEN at seq 3: hash mismatch: .*\(the 2 records before it are intact\)$' "$OUT"
fctl --json fleet verify --config "$PA"
assert_eq "... --json: bad_seq 3, 2 good records" "false 3 2" \
	"$(json_get '"\(.intact) \(.bad_seq) \(.records)"')"
fctl fleet verify --config "$PA" --state-dir "$T/s1"
assert_rc "fleet verify --state-dir against an edited log: exit 1" 1
assert_contains "... compares the copies before seq 3" "$OUT" \
	"local copy in $T/s1: 2 records compared with the log, all the same"
assert_contains "... and not those after it" "$OUT" \
	"records past seq 2 not compared (the log is broken there)"

# --- the database away -------------------------------------------------------------
pg_stop db
fctl fleet status --config "$PA"
assert_rc "fleet status with the database stopped: exit 3" 3
assert_contains "... naming the database" "$ERR" "$DB"
assert_eq "... and printing nothing on stdout" "" "$OUT"
fctl fleet verify --config "$PA"
assert_rc "fleet verify with the database stopped: exit 3" 3

assert_true "the password never shows in any output" no_password_in "$PG_PASSWORD" "$ALL_OUT"
for n in 1 2; do
	fleet_broker_stop "$n"
	assert_rc "sbx-0$n stops cleanly with the database away" 0 "$BROKER_RC"
done
assert_true "the password never shows in the brokers' log" no_password_in "$PG_PASSWORD" "$LOG"
diag "fleet_cli.sh: $(($(now_ms) - T0)) ms"
tap_done
