#!/bin/bash
# libnss_sbx fails safe and fast: with neither table nor broker, or with a
# broker that hangs, lookups are UNAVAIL within the 50 ms bound; a
# truncated or garbage table never crashes the caller (the broker answers
# instead); 8 threads resolve correctly while the table is replaced; and a
# process marked like sbx-brokerd never connects to the socket.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nss_lib.sh"
sbx_init
nss_init

# The issue's bound; the module's own deadline is 40 ms.  Measured inside
# the calling process (nss_tool), so process start-up is not counted.
BOUND_MS=50

# --- neither table nor broker ----------------------------------------------------------
run_tool getgrnam sbx-admin
assert_rc "no table, no broker: getgrnam is UNAVAIL" 3
us=$(sed -n 's/^elapsed_us=//p' <<<"$ERR")
diag "no table, no broker: ${us:-?} us"
assert_int_between "... within ${BOUND_MS} ms" 0 $((BOUND_MS * 1000)) "${us:-x}"
run_tool getgrgid 60001
assert_rc "getgrgid too" 3
run_tool initgroups erin
assert_rc "initgroups too" 3
run_tool enum
assert_rc "enumeration too" 3
run_tool getgrnam "not a group name"
assert_rc "a name sbx cannot have is NOTFOUND, not UNAVAIL" 2

# --- a broker that hangs -------------------------------------------------------------------
run "$NSS_TOOL" "$MODULE" listen-call sbx-admin "$T/hang.sock"
assert_rc "a broker that never answers: UNAVAIL" 3
ms=$(sed -n 's/.*elapsed_ms=\([0-9]*\).*/\1/p' <<<"$OUT")
diag "hung broker: gave up after ${ms:-?} ms"
# The deadline is 40 ms; on a loaded 2-core machine (or under sanitizers)
# the wake-up can be late: the assertion allows for that, the number above
# is what to watch.
assert_int_between "... after about 40 ms (bound ${BOUND_MS} ms plus scheduling slack)" 30 250 \
	"${ms:-x}"
assert_contains "it did connect (the socket was there)" "$OUT" "connected=1"

# --- the recursion guard ----------------------------------------------------------------------
run "$NSS_GUARDED" "$MODULE" listen-call sbx-admin "$T/guard.sock"
assert_rc "marked like sbx-brokerd: UNAVAIL" 3
assert_contains "marked like sbx-brokerd: never connects to the socket" "$OUT" "connected=0"
ms=$(sed -n 's/.*elapsed_ms=\([0-9]*\).*/\1/p' <<<"$OUT")
assert_int_between "marked like sbx-brokerd: answers at once (no 40 ms wait)" 0 30 "${ms:-x}"
"$NSS_TOOL" mktable "$TABLE" sbx-admin 60001 erin=3600 >/dev/null
run env SBX_SOCKET="$SOCK" "$NSS_GUARDED" "$MODULE" getgrnam sbx-admin
assert_eq "marked like sbx-brokerd: the table still answers" "SUCCESS sbx-admin:x:60001:erin" "$OUT"
rm -f "$TABLE"

# --- truncated and garbage tables, with the broker running --------------------------------------
broker_start
tap_result "broker starts" || {
	tap_done
	exit
}
G=$(nss_grant erin sandbox-admin frank)
assert_ne "erin gets sandbox-admin" "" "$G"
WANT="sbx-admin:x:60001:erin"
assert_eq "the table answers" "$WANT" "$(getent_group sbx-admin)"
cp "$TABLE" "$T/good.table"
size=$(stat -c %s "$T/good.table")
diag "the broker's table is $size bytes"

# install_table FILE: put FILE in place the way the broker does (rename).
install_table() {
	cp "$1" "$T/next.table" && chmod 644 "$T/next.table" && mv -f "$T/next.table" "$TABLE"
}

# lookup_past_bad_table: the broker's answer, asked up to 3 times when
# there is none: the module gives the broker 40 ms, which a loaded
# machine (the sanitizer run beside PostgreSQL) can miss.  A wrong
# answer is never retried away.  Sets got and rc.
lookup_past_bad_table() {
	local try

	for try in 1 2 3; do
		got=$(getent_group sbx-admin)
		rc=$?
		[ -n "$got" ] || [ "$rc" -ge 128 ] && return 0
		[ "$try" -lt 3 ] && diag "no answer (exit $rc) on try $try; asking again"
	done
	return 0
}

bad=0
crashed=0
for cut in $(seq 0 $((size - 1))); do
	head -c "$cut" "$T/good.table" >"$T/cut.table"
	install_table "$T/cut.table"
	lookup_past_bad_table
	[ "$rc" -ge 128 ] && crashed=$((crashed + 1))
	if [ "$got" != "$WANT" ]; then
		[ "$bad" -eq 0 ] && diag "cut at $cut: got '$got' (exit $rc)"
		bad=$((bad + 1))
	fi
done
assert_eq "a table cut at each of its $size offsets never crashes getent" 0 "$crashed"
assert_eq "... and the broker answers instead, right every time" 0 "$bad"

bad=0
crashed=0
for i in $(seq 1 40); do
	head -c $((RANDOM % 600)) /dev/urandom >"$T/garbage.table"
	# Every other one starts like a real table.
	if [ $((i % 2)) -eq 0 ]; then
		{ head -c 64 "$T/good.table"; head -c $((RANDOM % 300)) /dev/urandom; } >"$T/garbage.table"
	fi
	install_table "$T/garbage.table"
	lookup_past_bad_table
	[ "$rc" -ge 128 ] && crashed=$((crashed + 1))
	if [ "$got" != "$WANT" ]; then
		[ "$bad" -eq 0 ] && diag "garbage table $i: got '$got' (exit $rc)"
		bad=$((bad + 1))
	fi
done
assert_eq "garbage tables never crash getent" 0 "$crashed"
assert_eq "... and the broker answers instead" 0 "$bad"
run_tool initgroups erin
assert_eq "initgroups past a garbage table" "SUCCESS 60001" "$OUT"

broker_stop
run_tool getgrnam sbx-admin
assert_rc "garbage table, no broker: UNAVAIL" 3
us=$(sed -n 's/^elapsed_us=//p' <<<"$ERR")
assert_int_between "... within ${BOUND_MS} ms" 0 $((BOUND_MS * 1000)) "${us:-x}"

# --- 8 threads while the table is replaced -------------------------------------------------
"$NSS_TOOL" mktable "$T/a.table" sbx-admin 60001 alice=forever erin=3600 >/dev/null
"$NSS_TOOL" mktable "$T/b.table" sbx-admin 60001 erin=3600 zed=forever >/dev/null
install_table "$T/a.table"
run_tool threads sbx-admin 2 8 "$TABLE" "$T/a.table" "$T/b.table" alice,erin erin,zed
diag "$OUT"
assert_rc "8 threads, table replaced ~every 0.2 ms: every answer is one of the two tables" 0
assert_match "... and the table really was replaced many times" 'swaps=[0-9]{2,}' "$OUT"

tap_done
