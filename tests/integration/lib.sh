# shellcheck shell=bash
# Shared helpers for sbx's integration tests.
#
# Each test script sources this file, calls sbx_init, starts its own broker
# on a private socket and state dir (broker_start), runs its assertions and
# ends with tap_done.  Output is TAP for automake's tap-driver: a line per
# test ("ok N - ...", "not ok N - ...", "ok N - ... # SKIP why"), "# ..."
# diagnostics, and a trailing plan "1..N".  If a script dies before
# tap_done, the exit trap reports that as a failed test and still prints
# the plan, so a crash can never pass for success.
#
# Environment (set by `make check`; export by hand to run a script alone):
#   SBX_BUILDDIR  build tree: sbx-brokerd, sbx-request, sbxctl,
#                 tests/integration/frame_tool (libtool wrappers are fine)
#   SBX_SRCDIR    source tree: packaging/examples/policy.yaml, scripts/
#   SBX_KEEP=1    keep the temp dir (and say where) instead of removing it
#
#   SBX_BUILDDIR=/tmp/build SBX_SRCDIR=$PWD bash tests/integration/expiry.sh
#
# Identity: the broker trusts SO_PEERCRED.  The tests speak for policy users
# with --as.  As root that is allowed; otherwise sbx_init makes the caller's
# primary group the policy's broker.admin_group, so the same tests run.
# What needs root itself (setpriv to uid 65534, a tmpfs, the demo) SKIPs.

# Variables set here are used by the scripts that source this file.
# shellcheck disable=SC2034
set -u

LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${SBX_SRCDIR:=$(cd "$LIB_DIR/../.." && pwd)}"
: "${SBX_BUILDDIR:=$SBX_SRCDIR}"
BROKERD="$SBX_BUILDDIR/sbx-brokerd"
SBXREQ="$SBX_BUILDDIR/sbx-request"
SBXCTL="$SBX_BUILDDIR/sbxctl"
FRAME_TOOL="$SBX_BUILDDIR/tests/integration/frame_tool"
REF_POLICY="$SBX_SRCDIR/packaging/examples/policy.yaml"

# Upper bound for any one command a test runs: a hang becomes a failed
# assertion (exit 124 from timeout), never a stuck suite.
RUN_TIMEOUT=${RUN_TIMEOUT:-30}

# ---------------------------------------------------------------------------
# TAP

TAP_N=0
TAP_FAILED=0
TAP_DONE=0

# Test descriptions must not contain '#': TAP reads what follows as a directive.
_tap_desc() { printf '%s' "$*" | tr '#\n' '_ '; }

tap_ok() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $(_tap_desc "$*")"
}

tap_fail() {
	TAP_N=$((TAP_N + 1))
	TAP_FAILED=$((TAP_FAILED + 1))
	echo "not ok $TAP_N - $(_tap_desc "$*")"
}

# tap_skip DESCRIPTION REASON
tap_skip() {
	TAP_N=$((TAP_N + 1))
	echo "ok $TAP_N - $(_tap_desc "$1") # SKIP $(_tap_desc "$2")"
}

# Each argument, and each line in it, as a "# " diagnostic.
diag() {
	printf '%s\n' "$@" | sed 's/^/# /'
}

# tap_result DESCRIPTION: ok when the previous command succeeded.
tap_result() {
	local rc=$?

	if [ "$rc" -eq 0 ]; then tap_ok "$1"; else tap_fail "$1"; fi
	return "$rc"
}

# tap_from_lines: a test driver's "PASS what" / "FAIL what" lines on stdin
# as TAP results, every other line as a diagnostic.
tap_from_lines() {
	local line

	while IFS= read -r line; do
		case $line in
		PASS\ *) tap_ok "${line#PASS }" ;;
		FAIL\ *) tap_fail "${line#FAIL }" ;;
		*) diag "$line" ;;
		esac
	done
}

# assert_eq DESCRIPTION EXPECTED GOT
assert_eq() {
	if [ "$2" = "$3" ]; then
		tap_ok "$1"
		return 0
	fi
	tap_fail "$1"
	diag "expected: $2" "     got: $3"
	return 1
}

# assert_ne DESCRIPTION UNEXPECTED GOT
assert_ne() {
	if [ "$2" != "$3" ]; then
		tap_ok "$1"
		return 0
	fi
	tap_fail "$1"
	diag "expected anything but: $2"
	return 1
}

# assert_contains DESCRIPTION HAYSTACK NEEDLE (fixed string)
assert_contains() {
	case "$2" in
	*"$3"*)
		tap_ok "$1"
		return 0
		;;
	esac
	tap_fail "$1"
	diag "expected to find: $3" "in: $2"
	return 1
}

# assert_not_contains DESCRIPTION HAYSTACK NEEDLE
assert_not_contains() {
	case "$2" in
	*"$3"*)
		tap_fail "$1"
		diag "did not expect: $3" "in: $2"
		return 1
		;;
	esac
	tap_ok "$1"
	return 0
}

# assert_match DESCRIPTION EXTENDED-REGEX TEXT (some line of TEXT matches)
assert_match() {
	if printf '%s\n' "$3" | grep -qE -- "$2"; then
		tap_ok "$1"
		return 0
	fi
	tap_fail "$1"
	diag "expected a line matching: $2" "in: $3"
	return 1
}

# assert_rc DESCRIPTION EXPECTED-RC [GOT-RC, default $RC of the last run]
# On failure, shows what the last `run` printed.
assert_rc() {
	local got=${3:-$RC}

	if [ "$2" = "$got" ]; then
		tap_ok "$1"
		return 0
	fi
	tap_fail "$1"
	diag "expected exit status $2, got $got" "command: ${RUN_CMD:-?}" \
		"stdout: ${OUT:-}" "stderr: ${ERR:-}"
	return 1
}

# assert_true DESCRIPTION CMD...: ok when CMD succeeds.
assert_true() {
	local desc=$1

	shift
	if "$@"; then
		tap_ok "$desc"
		return 0
	fi
	tap_fail "$desc"
	diag "command failed: $*"
	return 1
}

# assert_int_between DESCRIPTION LO HI VALUE (inclusive)
assert_int_between() {
	if [[ "$4" =~ ^-?[0-9]+$ ]] && [ "$4" -ge "$2" ] && [ "$4" -le "$3" ]; then
		tap_ok "$1"
		return 0
	fi
	tap_fail "$1"
	diag "expected a number from $2 to $3, got '$4'"
	return 1
}

# Call last.  Checks the broker's log for sanitizer reports (builds with
# --enable-sanitizers), prints the plan; the exit status says whether all
# passed.
tap_done() {
	local reports

	if [ -n "${T:-}" ] && [ -s "$T/broker.log" ]; then
		reports=$(grep -E 'Sanitizer|runtime error:' "$T/broker.log" | head -n 5)
		if [ -z "$reports" ]; then
			tap_ok "no sanitizer reports in the broker's log"
		else
			tap_fail "no sanitizer reports in the broker's log"
			diag "$reports"
		fi
	fi
	TAP_DONE=1
	if [ "$TAP_FAILED" -gt 0 ] && [ -n "${T:-}" ] && [ -s "$T/broker.log" ]; then
		diag "last lines of the broker's log ($T/broker.log):"
		tail -n 25 "$T/broker.log" | sed 's/^/#   /'
	fi
	echo "1..$TAP_N"
	[ "$TAP_FAILED" -eq 0 ]
}

# ---------------------------------------------------------------------------
# Processes and the temp dir

T=
ADMIN_GROUP=sbx-admins
SOCK=
STATE=
LOG=
POLICY=
BROKER_PID=
BROKER_RC=
BROKER_PREFIX=()
_TRACKED=()

track_pid() { _TRACKED+=("$@"); }

_cleanup() {
	local rc=$? p

	trap - EXIT INT TERM
	if [ "$TAP_DONE" -eq 0 ]; then
		tap_fail "the script ended before its last test (exit status $rc)"
		echo "1..$TAP_N"
	fi
	{
		for p in "${_TRACKED[@]}" $(jobs -p); do
			kill -9 "$p"
		done
		wait
	} 2>/dev/null
	if [ -n "$T" ] && [ -d "$T" ]; then
		if [ -n "${SBX_KEEP:-}" ]; then
			diag "kept $T"
		else
			# A child killed a moment ago may still be writing: retry.
			rm -rf "$T" 2>/dev/null || { sleep 0.5; rm -rf "$T"; }
		fi
	fi
	[ "$TAP_FAILED" -eq 0 ] && [ "$TAP_DONE" -eq 1 ]
	exit $?
}

# Make the temp dir, check the binaries, set SOCK STATE LOG POLICY.
sbx_init() {
	local b

	trap _cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	# Short: a Unix socket path holds at most 107 bytes.
	T=$(mktemp -d /tmp/sbxit.XXXXXX) || {
		echo "Bail out! cannot make a temp dir"
		exit 1
	}
	# Other uids (setpriv tests) must reach the socket inside.
	chmod 755 "$T"
	SOCK="$T/sock"
	STATE="$T/state"
	LOG="$T/broker.log"
	POLICY="$T/policy.yaml"
	if [ ! -r "$REF_POLICY" ]; then
		echo "Bail out! no reference policy at $REF_POLICY"
		exit 1
	fi
	# The tests speak for erin, frank, ... with --as, which root and
	# members of broker.admin_group may do.  Not root: make our own
	# primary group the admin group (the broker counts the caller's
	# primary gid), so the tests run the same way.
	if is_root; then
		ADMIN_GROUP=sbx-admins
	else
		ADMIN_GROUP=$(id -gn)
		diag "not root: using admin_group $ADMIN_GROUP so that --as works"
	fi
	sed "s/^\(  admin_group:\) sbx-admins/\1 $ADMIN_GROUP/" "$REF_POLICY" >"$POLICY"
	for b in "$BROKERD" "$SBXREQ" "$SBXCTL"; do
		if [ ! -x "$b" ]; then
			echo "Bail out! $b is missing: build it first (make sbx-brokerd sbx-request sbxctl)"
			exit 1
		fi
	done
	if ! command -v jq >/dev/null; then
		echo "Bail out! jq is needed (apt-get install jq)"
		exit 1
	fi
}

is_root() { [ "$(id -u)" -eq 0 ]; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# wait_until SECONDS CMD...: poll CMD every 50 ms until it succeeds.
wait_until() {
	local secs=$1 end

	shift
	end=$(($(date +%s%N) / 1000000 + secs * 1000))
	while :; do
		"$@" && return 0
		[ $(($(date +%s%N) / 1000000)) -ge "$end" ] && return 1
		sleep 0.05
	done
}

# ---------------------------------------------------------------------------
# Running commands

# run CMD...: sets RC, OUT (stdout) and ERR (stderr), bounded by RUN_TIMEOUT.
run() {
	RUN_CMD="$*"
	timeout -k 5 "$RUN_TIMEOUT" "$@" >"$T/run.out" 2>"$T/run.err"
	RC=$?
	OUT=$(cat "$T/run.out")
	ERR=$(cat "$T/run.err")
	return 0
}

# The CLIs on this test's broker.  `req --as erin sandbox-admin ...`.
req() { run "$SBXREQ" --socket "$SOCK" "$@"; }
ctl() { run "$SBXCTL" --socket "$SOCK" "$@"; }

# As uid/gid 65534 with no groups (root only): nobody_run CMD...
nobody_run() { run setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# json_get FILTER: apply a jq filter to $OUT; empty on bad JSON.
json_get() { printf '%s' "$OUT" | jq -r "$1" 2>/dev/null; }

# The id of the request or grant in $OUT (a --json object).
out_id() { json_get '.id // empty'; }

# ---------------------------------------------------------------------------
# The broker

# broker_start [POLICY]: start sbx-brokerd in the foreground, in the
# background, on $SOCK and $STATE, logging to $LOG, and wait until it
# answers.  Prefix the command with BROKER_PREFIX (an array), e.g.
# BROKER_PREFIX=(bash -c 'ulimit -f 8; exec "$@"' sh).  Returns 1 (with
# BROKER_RC set when it exited) if it does not come up within ~10 s.
broker_start() {
	local policy=${1:-$POLICY}

	BROKER_RC=
	echo "--- broker_start $(date -u +%T.%N) policy=$policy state=$STATE" >>"$LOG"
	"${BROKER_PREFIX[@]}" "$BROKERD" --config "$policy" --foreground --socket "$SOCK" \
		--state-dir "$STATE" 2>>"$LOG" &
	BROKER_PID=$!
	track_pid "$BROKER_PID"
	broker_wait_ready
}

_broker_answers() {
	if ! alive "$BROKER_PID"; then
		return 2
	fi
	timeout -k 2 5 "$SBXCTL" --socket "$SOCK" status >/dev/null 2>&1
}

broker_wait_ready() {
	local i rc

	for i in $(seq 200); do
		_broker_answers
		rc=$?
		[ "$rc" -eq 0 ] && return 0
		if [ "$rc" -eq 2 ]; then
			wait "$BROKER_PID" 2>/dev/null
			BROKER_RC=$?
			BROKER_PID=
			return 1
		fi
		sleep 0.05
	done
	return 1
}

# broker_exit_wait SECS: wait up to SECS for the broker to exit on its own;
# sets BROKER_RC.  Returns 1 if it is still running.
broker_exit_wait() {
	local secs=$1

	if ! wait_until "$secs" eval '! alive "$BROKER_PID"'; then
		return 1
	fi
	wait "$BROKER_PID" 2>/dev/null
	BROKER_RC=$?
	BROKER_PID=
	return 0
}

# broker_stop: SIGTERM, then wait (at most 15 s, then SIGKILL).  Returns the
# broker's exit status (also in BROKER_RC).
broker_stop() {
	[ -n "$BROKER_PID" ] || return 0
	kill -TERM "$BROKER_PID" 2>/dev/null
	if ! broker_exit_wait 15; then
		diag "broker did not stop within 15 s of SIGTERM; killing it"
		kill -9 "$BROKER_PID" 2>/dev/null
		wait "$BROKER_PID" 2>/dev/null
		BROKER_PID=
		BROKER_RC=137
	fi
	return "$BROKER_RC"
}

broker_kill9() {
	[ -n "$BROKER_PID" ] || return 0
	kill -9 "$BROKER_PID" 2>/dev/null
	wait "$BROKER_PID" 2>/dev/null
	BROKER_PID=
}

# ---------------------------------------------------------------------------
# The journal

# Every record, in order, whole lines only (a line being written is skipped).
journal() {
	cat "$STATE"/journal/*.jsonl 2>/dev/null | jq -c -R 'fromjson? // empty'
}

# journal_select JQ-CONDITION: matching records, one per line.
journal_select() {
	journal | jq -c "select($1)"
}

# journal_has JQ-CONDITION: is there such a record?
journal_has() {
	[ -n "$(journal_select "$1" | head -n 1)" ]
}

# wait_record SECS JQ-CONDITION: poll the journal files for such a record.
wait_record() {
	wait_until "$1" journal_has "$2"
}

# The events of request ID, space-separated, in journal order.
events_of() {
	journal | jq -r --argjson id "$1" 'select(.id == $id) | .event' | tr '\n' ' ' |
		sed 's/ $//'
}

# RFC 3339 to Unix microseconds / seconds.
to_us() { date -u -d "$1" +%s%6N; }
to_s() { date -u -d "$1" +%s; }

# ---------------------------------------------------------------------------
# Policies

# A policy header for tests: the reference's broker section (socket and
# state dir are overridden on the command line).  $1: request_ttl.
policy_broker() {
	cat <<EOF
broker:
  host: sbx-01
  socket: /run/sbx/broker.sock
  state_dir: /var/lib/sbx
  admin_group: $ADMIN_GROUP
  request_ttl: ${1:-24h}
EOF
}

# policy_crowd COUNT DIGITS: the groups: and users: sections of people
# u001..uCOUNT (names of DIGITS digits, default 3) in group "crowd", each
# managed by "boss".
policy_crowd() {
	local count=$1 fmt="%0${2:-3}g" i

	echo "groups:"
	printf '  crowd: ['
	for i in $(seq -f "$fmt" 1 "$count"); do
		[ "$i" = "$(printf "$fmt" 1)" ] || printf ', '
		printf 'u%s' "$i"
	done
	printf ']\n'
	echo "users:"
	echo "  boss: {}"
	for i in $(seq -f "$fmt" 1 "$count"); do
		echo "  u$i: { manager: boss }"
	done
}

# policy_many_users FILE COUNT AUTO: users u001..uCOUNT eligible for role
# "burst" (hosts sbx-*, auto_approve AUTO, else one approval from boss).
policy_many_users() {
	local file=$1 count=$2 auto=$3

	{
		policy_broker 24h
		policy_crowd "$count"
		cat <<EOF
roles:
  burst:
    description: Many users asking at once
    hosts: ["sbx-*"]
    eligible: { groups: [crowd] }
    approvers: { manager: true }
    auto_approve: $auto
    default_duration: 1h
    max_duration: 2h
EOF
	} >"$file"
}
