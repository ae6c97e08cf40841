#!/bin/bash
# fleet/pgstore.c against real PostgreSQL 15 servers (pg_lib.sh): schema
# init and versions, exact round trips, the append race and its retry
# loop, atomic batches, LISTEN/NOTIFY latency, a stopped and a silent
# (SIGSTOPped) server with every call bounded by its timeout, and a
# failover from a primary to its synchronous standby with a writer going
# on through it.  The C side is tests/integration/fleet_store_test.c (one
# criterion run per suite, its results re-told here as TAP); this script
# starts the servers, hands the test their conninfo and the shell commands
# that stop, freeze or fail them over, and checks the fixture itself.
# Skips (77) without PostgreSQL 15.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pg_lib.sh"
pg_require
pg_init

now_ms() { echo $(($(date +%s%N) / 1000000)); }

FLEET_TEST="$SBX_BUILDDIR/tests/integration/fleet_store_test"
if [ ! -x "$FLEET_TEST" ]; then
	echo "Bail out! $FLEET_TEST is missing (make check builds it)"
	exit 1
fi

# crit SUITE: run that criterion suite alone, one test at a time, and
# report each test as a TAP line here; its "fleet-note:" lines become
# diagnostics, and a failed test shows what criterion said.
crit() {
	local suite=$1 tap="$T/$1.tap" out="$T/$1.out" rc line name in_fail=0 seen=0 failed=0 t0

	t0=$(now_ms)
	env -u CRITERION_OUTPUTS timeout -k 5 150 "$FLEET_TEST" --jobs=1 --filter="$suite/*" \
		--tap="$tap" >"$out" 2>&1
	rc=$?
	while IFS= read -r line; do
		case $line in
		"ok - "*"# SKIP test was skipped") ;; # another suite's test, filtered out
		"ok - "*"# SKIP "*)
			name=${line#ok - }
			tap_skip "${name%%  # SKIP*}" "${name#*# SKIP }"
			seen=$((seen + 1))
			in_fail=0
			;;
		"ok - "*)
			name=${line#ok - }
			tap_ok "${name%%  (*}"
			seen=$((seen + 1))
			in_fail=0
			;;
		"not ok - "*)
			name=${line#not ok - }
			tap_fail "${name%%  (*}"
			seen=$((seen + 1))
			failed=$((failed + 1))
			in_fail=1
			;;
		"  "*) [ "$in_fail" -eq 0 ] || diag "$line" ;;
		*) in_fail=0 ;;
		esac
	done <"$tap"
	grep '^fleet-note: ' "$out" | sed 's/^fleet-note: //' | while IFS= read -r line; do
		diag "$suite: $line"
	done
	diag "suite $suite: $seen tests in $(($(now_ms) - t0)) ms"
	# Criterion does not fail a test for a sanitizer's report (a leak is
	# reported as the test's process exits): look for them here.
	line=$(grep -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$out" | head -n 5)
	if [ -z "$line" ]; then
		tap_ok "suite $suite: no sanitizer reports"
	else
		tap_fail "suite $suite: no sanitizer reports"
		diag "$line"
		failed=$((failed + 1))
	fi
	if [ "$seen" -eq 0 ] || { [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; }; then
		tap_fail "criterion suite $suite ran (exit status $rc, $seen tests)"
	fi
	if [ "$rc" -ne 0 ] || [ "$failed" -ne 0 ]; then
		diag "last lines of $suite's output:"
		tail -n 30 "$out" | sed 's/^/  /' | while IFS= read -r line; do diag "$line"; done
	fi
}

T0=$(now_ms)
export SBX_PG_PWFILE="$PG_PWFILE"

# 1. One primary: schema, log, notify, outage.
pg_primary_start p1
tap_result "a primary starts" || {
	tap_done
	exit
}
diag "primary p1 on 127.0.0.1:$(pg_port p1) after $(($(now_ms) - T0)) ms"
assert_eq "it listens on 127.0.0.1 only" 127.0.0.1 "$(pg_psql p1 'show listen_addresses')"
assert_eq "its socket is in the temp dir" "$PG_ROOT/run" \
	"$(pg_psql p1 'show unix_socket_directories')"
assert_eq "its database is UTF8" UTF8 "$(pg_psql p1 'show server_encoding')"

export SBX_PG_CONNINFO SBX_PG_PORT
SBX_PG_CONNINFO=$(pg_conninfo p1)
SBX_PG_PORT=$(pg_port p1)
export SBX_PG_STOP SBX_PG_START SBX_PG_FREEZE SBX_PG_THAW
SBX_PG_STOP=$(pg_hook p1 stop)
SBX_PG_START=$(pg_hook p1 start)
SBX_PG_FREEZE=$(pg_hook p1 freeze)
SBX_PG_THAW=$(pg_hook p1 thaw)
crit schema
crit log
crit notify
crit outage
# Whatever outage left behind, p1 is no longer needed.
pg_thaw p1
pg_stop p1
assert_true "the primary stops" eval '! _pg_running p1'

# 2. A primary with a synchronous standby; failover.
T1=$(now_ms)
pg_primary_start p2 s2 && pg_standby_start s2 p2 && pg_wait_sync p2 s2
tap_result "a primary and its synchronous standby start" || {
	tap_done
	exit
}
diag "primary p2 (127.0.0.1:$(pg_port p2)) and synchronous standby s2 (127.0.0.1:$(pg_port s2)) after $(($(now_ms) - T1)) ms"
assert_eq "the primary waits for s2" s2 "$(pg_psql p2 'show synchronous_standby_names')"
assert_eq "s2 is in recovery" t "$(pg_psql s2 'select pg_is_in_recovery()')"
assert_contains "s2 streams with application_name=s2" \
	"$(pg_psql s2 'show primary_conninfo')" "application_name=s2"
assert_eq "s2 itself waits for no standby" "" "$(pg_psql s2 'show synchronous_standby_names')"

export SBX_PG_FAILOVER_CONNINFO SBX_PG_STANDBY_CONNINFO SBX_PG_FAILOVER
SBX_PG_FAILOVER_CONNINFO=$(pg_conninfo_multi s2 p2)
SBX_PG_STANDBY_CONNINFO=$(pg_conninfo s2)
SBX_PG_FAILOVER="$(pg_hook p2 kill) && $(pg_hook s2 promote)"
crit failover
assert_true "the old primary is gone" eval '! _pg_running p2'
assert_eq "s2 is a primary now" f "$(pg_psql s2 'select pg_is_in_recovery()')"

# 3. Nothing outlives the fixture.
pids=$(for n in p1 p2 s2; do _pg_pids "$n"; done)
pg_stop_all
left=
for p in $pids; do
	st=$(ps -o stat= -p "$p" 2>/dev/null)
	case $st in "" | Z*) ;; *) left="$left $p" ;; esac
done
assert_eq "pg_stop_all leaves no server process" "" "$left"
assert_true "... and removes the servers' dirs" eval '[ ! -e "$PG_ROOT" ]'
diag "all of fleet_store.sh: $(($(now_ms) - T0)) ms"
tap_done
