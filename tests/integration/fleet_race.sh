#!/bin/bash
# Races between hosts on one fleet log (real PostgreSQL 15): the last
# approval given on two hosts at the same moment activates the grant
# exactly once; 8 clients on each of 3 hosts file 1,000 requests at once
# and the log is one gapless, verified chain holding each acknowledged
# request exactly once; a host killed (SIGKILL) while it writes comes back
# with a journal that verifies and the same state as the others, and loses
# nothing it acknowledged.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
. "$(dirname "$0")/fleet_lib.sh"
FLEET_CROWD=1200
fleet_init

fleet_policy "$POLICY"
HOSTS=(sbx-01 sbx-02 sbx-clinical-01)
for h in "${HOSTS[@]}"; do
	fb_start "$h"
	tap_result "broker $h starts on the fleet" || {
		fleet_done
		exit
	}
done
REASON="fleet race test, on purpose"

# --- the last approval, on two hosts at once ------------------------------------------
ROUNDS=12
twice=0
onces=0
for i in $(seq 1 $ROUNDS); do
	user=$(printf 'c%04g' "$((1100 + i))")
	freq sbx-clinical-01 --as "$user" --json burst --reason "$REASON"
	id=$(out_id)
	[ -n "$id" ] || continue
	"$SBXCTL" --socket "$(fsock sbx-01)" --as frank approve "$id" >"$T/a1.out" 2>"$T/a1.err" &
	p1=$!
	"$SBXCTL" --socket "$(fsock sbx-02)" --as grace approve "$id" >"$T/a2.out" 2>"$T/a2.err" &
	p2=$!
	wait "$p1"
	r1=$?
	wait "$p2"
	r2=$?
	if [ $((r1 == 0)) -ne $((r2 == 0)) ]; then
		onces=$((onces + 1))
	else
		twice=$((twice + 1))
		diag "round $i: frank exit $r1 ($(cat "$T/a1.err")), grace exit $r2 ($(cat "$T/a2.err"))"
	fi
done
assert_eq "in $ROUNDS rounds exactly one of the two approvals was accepted" "$ROUNDS 0" \
	"$onces $twice"
assert_contains "the other was told the request is already active" \
	"$(cat "$T/a1.err" "$T/a2.err")" "is active, not pending"
DUMP=$(fleet_dump)
acts=$(printf '%s\n' "$DUMP" | awk -F'\t' '$2 == "grant.activated" { n[$3]++ } END { for (k in n) if (n[k] != 1) bad++; print length(n), bad + 0 }')
assert_eq "one grant.activated per request, never two" "$ROUNDS 0" "$acts"
apps=$(printf '%s\n' "$DUMP" | awk -F'\t' '$2 == "request.approval" { n++ } END { print n + 0 }')
assert_eq "and one approval recorded per request" "$ROUNDS" "$apps"

# --- 1,000 requests from 24 clients on 3 hosts ----------------------------------------
# client HOST K FIRST COUNT: file COUNT requests for c(FIRST)..., one at a
# time; "user id" per acknowledged request to $T/acked.HOST.K.
client() {
	local host=$1 k=$2 first=$3 count=$4 n user out

	for n in $(seq "$first" $((first + count - 1))); do
		user=$(printf 'c%04d' "$n")
		# (no jq here: 1,000 of them would cost more than the requests)
		if out=$("$SBXREQ" --socket "$(fsock "$host")" --as "$user" burst \
			--reason "$REASON" 2>>"$T/err.$host.$k") &&
			[[ $out =~ ^request\ ([0-9]+): ]]; then
			printf '%s %s\n' "$user" "${BASH_REMATCH[1]}" >>"$T/acked.$host.$k"
		fi
	done
}
before=$(printf '%s\n' "$DUMP" | tail -n 1 | awk '{ print $3 }')
t0=$(date +%s%N)
pids=()
next=1
c=0
for h in "${HOSTS[@]}"; do
	for k in 1 2 3 4 5 6 7 8; do
		# 1,000 over 24 clients: the first 16 file 42, the others 41
		c=$((c + 1))
		count=$((c <= 16 ? 42 : 41))
		client "$h" "$k" "$next" "$count" &
		pids+=($!)
		next=$((next + count))
	done
done
wait "${pids[@]}"
ms=$((($(date +%s%N) - t0) / 1000000))
cat "$T"/acked.* >"$T/acked"
ACKED=$(wc -l <"$T/acked")
diag "$((next - 1)) requests asked for, $ACKED acknowledged, in $ms ms"
assert_eq "the clients asked for 1,000 requests" 1000 $((next - 1))
assert_eq "every one of them was acknowledged" 1000 "$ACKED"
errs=$(cat "$T"/err.* 2>/dev/null | sort | uniq -c | head -n 5)
[ -z "$errs" ] || diag "errors: $errs"

DUMP=$(fleet_dump)
LAST=$(printf '%s\n' "$DUMP" | tail -n 1)
assert_match "the log is one intact chain" '^chain intact [0-9]+$' "$LAST"
assert_eq "with no gap: its seqs are 1..N in order" "ok" \
	"$(printf '%s\n' "$DUMP" | sed '$d' | awk -F'\t' '$1 != NR { bad = 1 } END { print bad ? "gap" : "ok" }')"
printf '%s\n' "$DUMP" | awk -F'\t' '$2 == "request.created" && $5 == "burst" { print $4, $3 }' |
	sort >"$T/created"
sort "$T/acked" >"$T/acked.sorted"
assert_eq "each acknowledged request is in the log exactly once, with the id its client was told" \
	"" "$(comm -3 "$T/acked.sorted" <(grep -vE '^c1(1[0-9][0-9]|200) ' "$T/created"))"
assert_eq "no request id is in the log twice" "" \
	"$(awk '{ print $2 }' "$T/created" | sort | uniq -d | head -n 3)"
hosts_used=$(printf '%s\n' "$DUMP" | awk -F'\t' '$2 == "request.created" && $5 == "burst" { print $6 }' | sort | uniq -c | awk '{ printf "%s=%s ", $2, $1 }')
diag "request.created per host: $hosts_used"

in_step() {
	local last

	last=$(fleet_dump | tail -n 1 | awk '{ print $3 }')
	[ "$(fleet_seq sbx-01)" = "$last" ] && [ "$(fleet_seq sbx-02)" = "$last" ] &&
		[ "$(fleet_seq sbx-clinical-01)" = "$last" ]
}
wait_until 10 in_step
assert_true "all three hosts applied the whole log" in_step
for h in "${HOSTS[@]}"; do
	n=$(fjournal "$h" | jq -s '[.[] | select(.event == "request.created")] | length')
	assert_eq "$h holds every request" "$(printf '%s\n' "$DUMP" | awk -F'\t' '$2 == "request.created"' | wc -l)" "$n"
done

# --- a host killed while it writes -------------------------------------------------
pids=()
: >"$T/acked2"
for k in 1 2 3 4; do
	(
		for n in 1 2 3; do
			user=$(printf 'c%04d' $((1150 + (k - 1) * 3 + n)))
			out=$("$SBXREQ" --socket "$(fsock sbx-02)" --as "$user" --json burst \
				--reason "$REASON" 2>/dev/null) || continue
			printf '%s %s\n' "$user" "$(jq -r .id <<<"$out")" >>"$T/acked2"
		done
	) &
	pids+=($!)
done
sleep 0.05
fb_kill sbx-02
wait "${pids[@]}"
fb_start sbx-02
tap_result "sbx-02 starts again after SIGKILL"
run "$SBXCTL" audit verify --state-dir "$T/sbx-02/state"
assert_rc "its journal verifies" 0
wait_until 10 in_step
assert_true "it caught up with the log" in_step
missing=""
while read -r user id; do
	[ -n "$id" ] || continue
	fleet_dump | awk -F'\t' -v id="$id" -v u="$user" '$2 == "request.created" && $3 == id && $4 == u { f = 1 } END { exit !f }' ||
		missing="$missing $user:$id"
done <"$T/acked2"
assert_eq "every request sbx-02 acknowledged before it died is in the log" "" "$missing"
diag "$(wc -l <"$T/acked2") requests were acknowledged by sbx-02 before SIGKILL"
s1=$(fjournal sbx-01 | jq -s -c '[.[] | select(.fleet_seq != null and .fleet_hash != null) | [.fleet_seq, .fleet_hash]]')
s2=$(fjournal sbx-02 | jq -s -c '[.[] | select(.fleet_seq != null and .fleet_hash != null) | [.fleet_seq, .fleet_hash]]')
assert_eq "sbx-02 holds the very same copy of the log as sbx-01" "$s1" "$s2"

fleet_done
