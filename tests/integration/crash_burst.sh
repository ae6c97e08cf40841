#!/bin/bash
# kill -9 during a burst of 200 concurrent requests loses none that a
# client saw acknowledged: every acknowledged id exists after the restart,
# with the same user and role, and the journal still verifies.
#
# To crash the broker in the middle of the burst rather than before or
# after it, all 200 clients are lined up first (blocked on a FIFO) and
# released at once; the broker is killed as soon as the first
# acknowledgements arrive, while the rest are still connecting, sending
# or waiting for their records to reach the disk.  If an attempt still
# misses the middle (nothing or everything acknowledged), it is repeated
# on a fresh state dir, at most 5 times.
. "$(dirname "$0")/lib.sh"
sbx_init

N=200
KILL_AFTER=10

# One user more than the burst: u201 asks after the restart.
policy_many_users "$POLICY" $((N + 1)) true

# count_files DIR SUFFIX: how many DIR/*SUFFIX exist, into COUNT, without
# forking (this runs in polling loops that must not steal the CPU from the
# burst).
count_files() {
	local f

	shopt -s nullglob
	f=("$1"/*"$2")
	shopt -u nullglob
	COUNT=${#f[@]}
}

# A short pause without forking: read with a timeout from a FIFO nobody
# writes to.
mkfifo "$T/never"
exec 8<>"$T/never"
pause() { read -r -t "${1:-0.01}" -u 8 _; }

# one_client DIR U: wait for the start, file a request as U, record the
# exit status (U.rc) and mark acknowledged ones (U.ok).
one_client() {
	local dir=$1 u=$2 rc

	# Not a writer of the start FIFO ourselves, or its EOF never comes.
	exec 7>&-
	{
		: >"$dir/ready/$u"
		read -r _
	} <"$dir/go"
	timeout -k 2 30 "$SBXREQ" --socket "$SOCK" --timeout-ms 20000 --as "$u" --json burst \
		>"$dir/$u.out" 2>"$dir/$u.err"
	rc=$?
	echo "$rc" >"$dir/$u.rc"
	[ "$rc" -eq 0 ] && : >"$dir/$u.ok"
}

# burst DIR: one attempt on a fresh state dir.  Leaves the broker dead.
burst() {
	local dir=$1 pids=() i

	mkdir -p "$dir/ready"
	mkfifo "$dir/go"
	exec 7<>"$dir/go"
	for i in $(seq -f '%03g' 1 "$N"); do
		one_client "$dir" "u$i" &
		pids+=($!)
	done
	for _ in $(seq 2000); do
		count_files "$dir/ready" ""
		[ "$COUNT" -ge "$N" ] && break
		pause
	done
	if [ "$COUNT" -lt "$N" ]; then
		diag "only $COUNT of $N clients lined up"
	fi
	exec 7>&-
	for _ in $(seq 20000); do
		count_files "$dir" .ok
		[ "$COUNT" -ge "$KILL_AFTER" ] && break
		pause 0.001
	done
	broker_kill9
	diag "acknowledged when kill -9 was sent: $COUNT"
	for i in "${pids[@]}"; do
		wait "$i"
	done
}

attempt=0
acked_n=0
while [ "$attempt" -lt 5 ]; do
	attempt=$((attempt + 1))
	STATE="$T/state$attempt"
	DIR="$T/burst$attempt"
	mkdir -p "$DIR"
	if ! broker_start; then
		tap_fail "broker starts with $N users (attempt $attempt)"
		tap_done
		exit
	fi
	burst "$DIR"
	count_files "$DIR" .ok
	acked_n=$COUNT
	diag "attempt $attempt: $acked_n of $N acknowledged"
	[ "$acked_n" -gt 0 ] && [ "$acked_n" -lt "$N" ] && break
done
tap_ok "broker started with $N users and crashed during the burst ($attempt attempts)"
assert_int_between "the crash came after some and before all acknowledgements" 1 $((N - 1)) \
	"$acked_n"

# The acknowledged answers, as "id user" lines (one jq for all).
for f in "$DIR"/*.ok; do
	[ -e "$f" ] && cat "${f%.ok}.out"
done | jq -r '"\(.id) \(.user) \(.role) \(.state)"' >"$T/acked" 2>"$T/acked.err"
bad=0
while read -r id _ role state; do
	if ! [[ "$id" =~ ^[0-9]+$ ]] || [ "$role" != burst ] || [ "$state" != active ]; then
		bad=$((bad + 1))
	fi
done <"$T/acked"
assert_eq "every acknowledged answer is a JSON request (one per exit 0)" "$acked_n" \
	"$(grep -c . "$T/acked")"
assert_eq "every acknowledged answer is an active burst grant with an id" 0 "$bad"
mism=0
for f in "$DIR"/*.ok; do
	u=$(basename "$f" .ok)
	[ "$(jq -r .user "$DIR/$u.out" 2>/dev/null)" = "$u" ] || mism=$((mism + 1))
done
assert_eq "every acknowledgement names the user who asked" 0 "$mism"
rcs=$(cat "$DIR"/*.rc | sort | uniq -c | awk '{ printf "%s x exit %s; ", $1, $2 }')
diag "exit statuses: $rcs"
assert_eq "every client finished with an exit status" "$N" "$(cat "$DIR"/*.rc | grep -c .)"
assert_eq "clients not acknowledged failed as unreachable (exit 3), refused (1) or outcome unknown (5)" \
	"" "$(cat "$DIR"/*.rc | grep -vxE '[0135]')"

broker_start
tap_result "broker restarts after kill -9 during the burst" || {
	tap_done
	exit
}

run "$SBXCTL" --socket "$SOCK" --json grants --all
assert_rc "sbxctl grants --all answers" 0
printf '%s' "$OUT" | jq -r '.[] | "\(.id) \(.user) \(.role) \(.state)"' | sort >"$T/after"
sort "$T/acked" >"$T/acked.sorted"
lost=$(comm -23 "$T/acked.sorted" "$T/after")
assert_eq "no acknowledged request is lost or changed (of $acked_n)" "" "$lost"
diag "grants after the restart: $(grep -c . "$T/after") (acknowledged: $acked_n)"

# The journal agrees: a request.created for each acknowledged id and user.
journal_select '.event == "request.created"' | jq -r '"\(.id) \(.user)"' | sort >"$T/created"
lost=$(awk '{ print $1, $2 }' "$T/acked" | sort | comm -23 - "$T/created")
assert_eq "every acknowledged id has its request.created in the journal" "" "$lost"
diag "written but not acknowledged (in flight at the crash): $(($(grep -c . "$T/created") - acked_n))"
# The broker read each of those whole, so its client had sent it whole:
# the client must not say "cannot reach the broker".
told=0
while read -r _ u; do
	[ -e "$DIR/$u.ok" ] && continue
	[ "$(cat "$DIR/$u.rc" 2>/dev/null)" = 5 ] || told=$((told + 1))
done <"$T/created"
assert_eq "every request written but not acknowledged was told outcome unknown (exit 5)" 0 "$told"
assert_eq "no id was handed out twice" "" "$(awk '{ print $1 }' "$T/created" | sort | uniq -d)"

# A request after the restart gets an id nobody was acknowledged with
# (ids are not reused after a crash).
req --as "u$((N + 1))" --json burst
assert_rc "a request after the restart is acknowledged" 0
next=$(out_id)
assert_eq "it gets an unused id" "" "$(awk -v id="${next:-0}" '$1 == id' "$T/created")"
broker_stop
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "audit verify passes after the crash and restart" 0

tap_done
