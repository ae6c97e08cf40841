#!/bin/bash
# PostgreSQL's own high availability under the fleet: a primary with a
# synchronous standby (synchronous_commit on, synchronous_standby_names),
# brokers given both in a multi-host conninfo with
# target_session_attrs=read-write.  While clients on two hosts file
# requests, the primary is killed (immediate shutdown, as if the machine
# died) and the standby promoted: the brokers carry on through it, and
# every request they acknowledged, before or after, is in its log, once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
FLEET_NO_DB=1
FLEET_CROWD=300
fleet_init

pg_primary_start p1 s1 && pg_standby_start s1 p1 && pg_wait_sync p1 s1
tap_result "a primary with a synchronous standby" || {
	fleet_done
	exit
}
FLEET_CI=$(pg_conninfo_multi p1 s1)
"$FLEET_TOOL" init "$(pg_conninfo p1)" "$PG_PWFILE" >/dev/null
assert_rc "the schema is made on the primary" 0 "$?"
diag "conninfo: $FLEET_CI"

fleet_policy "$POLICY"
fleet_start_hosts sbx-01 sbx-02
REASON="fleet failover test, on purpose"

# client HOST FIRST COUNT: file COUNT requests, one after another, going on
# past refusals; "user id ms" per acknowledged one (ms: when, since epoch).
client() {
	local host=$1 first=$2 count=$3 n user out

	for n in $(seq "$first" $((first + count - 1))); do
		user=$(printf 'c%04d' "$n")
		if out=$("$SBXREQ" --socket "$(fsock "$host")" --as "$user" burst \
			--reason "$REASON" 2>>"$T/err.$host") && [[ $out =~ ^request\ ([0-9]+): ]]; then
			printf '%s %s %s\n' "$user" "${BASH_REMATCH[1]}" "$(($(date +%s%N) / 1000000))" \
				>>"$T/acked.$host.$first"
		fi
		sleep 0.03
	done
}
pids=()
first=1
for h in sbx-01 sbx-02; do
	for k in 1 2; do
		client "$h" "$first" 70 &
		pids+=($!)
		first=$((first + 70))
	done
done
sleep 1
kill_ms=$(($(date +%s%N) / 1000000))
pg_kill p1
tap_result "the primary is killed (immediate shutdown)"
pg_promote s1
tap_result "the standby is promoted"
wait "${pids[@]}"
cat "$T"/acked.* >"$T/acked"
before=$(awk -v k="$kill_ms" '$3 < k' "$T/acked" | wc -l)
after=$(awk -v k="$kill_ms" '$3 >= k' "$T/acked" | wc -l)
diag "acknowledged: $before before the kill, $after after; refusals meanwhile: $(wc -l <"$T"/err.sbx-01 2>/dev/null) + $(wc -l <"$T"/err.sbx-02 2>/dev/null)"
assert_true "requests were acknowledged before the primary died" test "$before" -gt 0
assert_true "and after, through the promoted standby" test "$after" -gt 0
[ -s "$T/err.sbx-01" ] && diag "e.g. $(head -n 1 "$T/err.sbx-01")"

FLEET_CI=$(pg_conninfo s1)
DUMP=$(fleet_dump)
assert_match "the new primary's log is one intact chain" '^chain intact [0-9]+$' \
	"$(printf '%s\n' "$DUMP" | tail -n 1)"
printf '%s\n' "$DUMP" | awk -F'\t' '$2 == "request.created" { print $4, $3 }' | sort >"$T/created"
awk '{ print $1, $2 }' "$T/acked" | sort >"$T/acked.sorted"
assert_eq "every acknowledged request is in it, once, with the id its client was told" "" \
	"$(comm -23 "$T/acked.sorted" "$T/created")"
assert_eq "no request is in it twice" "" "$(awk '{ print $1 }' "$T/created" | sort | uniq -d | head -n 3)"
writable() { "$SBXCTL" --socket "$(fsock "$1")" status >/dev/null 2>&1; }
for h in sbx-01 sbx-02; do
	wait_until 10 writable "$h"
	assert_true "$h records changes through the new primary" writable "$h"
	assert_contains "$h: status names the server it uses" \
		"$("$SBXCTL" --socket "$(fsock "$h")" status)" "127.0.0.1:$(pg_port s1)"
done
in_step() {
	local last

	last=$(fleet_dump | tail -n 1 | awk '{ print $3 }')
	[ "$(fleet_seq sbx-01)" = "$last" ] && [ "$(fleet_seq sbx-02)" = "$last" ]
}
wait_until 10 in_step
assert_true "both hosts hold the whole log" in_step

fleet_done
