# shellcheck shell=bash
# Fleets for the tests (source after lib.sh and pg_lib.sh): a throwaway
# PostgreSQL 15 primary holding the fleet's log, and several brokers, each
# with its own host name, socket, state directory and log, all in $T.
#
#   fleet_init               pg_require, sbx_init, pg_init, root check
#                            (the tests speak for people with --as), the
#                            primary "db" started and its schema made
#   fleet_policy FILE [CONNINFO]
#                            a policy with people, roles and a fleet:
#                            section for CONNINFO (default: db's); more
#                            roles from $FLEET_ROLES_EXTRA
#   fb_start HOST [POLICY]   start a broker for HOST, wait until it answers
#   fb_stop HOST / fb_kill HOST
#   freq HOST ARGS...        sbx-request on HOST's broker (run: RC OUT ERR)
#   fctl HOST ARGS...        sbxctl on HOST's broker
#   fjournal HOST            HOST's journal, one record per line
#   fleet_dump               the log, checked: "seq event id user role host"
#                            and a last "chain intact N" (fleet_tool dump)
#   fleet_done               tap_done with every broker's log checked
#
# Every broker logs to $T/HOST.log; fleet_done gathers them into
# $T/broker.log for lib.sh's sanitizer check.

FLEET_TOOL="$SBX_BUILDDIR/tests/integration/fleet_tool"
declare -A FB_PID=()
FLEET_CI=
FLEET_ROLES_EXTRA=${FLEET_ROLES_EXTRA:-}

# FLEET_NO_DB=1: no server started (the script starts its own).
fleet_init() {
	pg_require
	sbx_init
	if ! is_root; then
		echo "1..0 # SKIP the fleet tests speak for several people (--as) and start PostgreSQL: run as root"
		TAP_DONE=1
		exit 77
	fi
	pg_init
	if [ ! -x "$FLEET_TOOL" ]; then
		echo "Bail out! $FLEET_TOOL is missing (make check builds it)"
		exit 1
	fi
	[ -n "${FLEET_NO_DB:-}" ] && return 0
	pg_primary_start db || {
		echo "Bail out! PostgreSQL did not start"
		exit 1
	}
	FLEET_CI=$(pg_conninfo db)
	"$FLEET_TOOL" init "$FLEET_CI" "$PG_PWFILE" >/dev/null || {
		echo "Bail out! cannot make the fleet's schema"
		exit 1
	}
}

# fleet_policy FILE [CONNINFO]: people and roles for the scenarios:
#   erin, dave in sre (eligible for sandbox-admin and quick), alice in
#   clinicians (prod-data, hosts sbx-clinical-*), frank and grace approve.
#   sandbox-admin and quick apply to sbx-0* hosts only.
fleet_policy() {
	local file=$1 ci=${2:-$FLEET_CI}

	cat >"$file" <<EOF
broker:
  admin_group: $ADMIN_GROUP
  request_ttl: 1h
users:
  erin: { manager: frank }
  dave: { manager: frank }
  alice: { manager: grace }
  frank: {}
  grace: {}
$(_fleet_crowd_users)
groups:
  sre: [erin, dave]
  clinicians: [alice]
  leads: [frank, grace]
$(_fleet_crowd_group)
roles:
  sandbox-admin:
    hosts: ["sbx-0*"]
    unix_group: { name: sbx-admin, gid: 60001 }
    eligible: { groups: [sre] }
    approvers: { groups: [leads] }
    default_duration: 1h
    max_duration: 2h
  quick:
    hosts: ["sbx-0*"]
    unix_group: { name: sbx-quick, gid: 60003 }
    eligible: { groups: [sre] }
    approvers: { groups: [leads] }
    default_duration: 3s
    max_duration: 10s
  prod-data:
    hosts: ["sbx-clinical-*"]
    unix_group: { name: sbx-phi, gid: 60002 }
    eligible: { groups: [clinicians] }
    approvers: { groups: [leads] }
$(_fleet_crowd_role)
$FLEET_ROLES_EXTRA
fleet:
  postgres: "$ci"
  password_file: $PG_PWFILE
  timeout: 2s
  max_stale: 4s
  verify_every: 1s
EOF
}

# $FLEET_CROWD people c0001... in group crowd, eligible for role burst
# (hosts sbx-*, one approval from leads, pending an hour).
FLEET_CROWD=${FLEET_CROWD:-0}
_fleet_crowd_users() {
	local i

	for i in $(seq -f '%04g' 1 "$FLEET_CROWD"); do
		echo "  c$i: {}"
	done
}
_fleet_crowd_group() {
	[ "$FLEET_CROWD" -gt 0 ] || return 0
	printf '  crowd: ['
	seq -f 'c%04g' 1 "$FLEET_CROWD" | paste -sd, - | sed 's/,/, /g' | tr -d '\n'
	printf ']\n'
}
_fleet_crowd_role() {
	[ "$FLEET_CROWD" -gt 0 ] || return 0
	cat <<EOF
  burst:
    hosts: ["sbx-*"]
    eligible: { groups: [crowd] }
    approvers: { groups: [leads] }
    default_duration: 1h
EOF
}

_fb_dir() { echo "$T/$1"; }

fb_start() {
	local host=$1 policy=${2:-$POLICY} dir i

	dir=$(_fb_dir "$host")
	mkdir -p "$dir"
	echo "--- fb_start $(date -u +%T.%N) policy=$policy" >>"$T/$host.log"
	"$BROKERD" --config "$policy" --foreground --socket "$dir/sock" --state-dir "$dir/state" \
		--host "$host" 2>>"$T/$host.log" &
	FB_PID[$host]=$!
	track_pid "${FB_PID[$host]}"
	for i in $(seq 200); do
		alive "${FB_PID[$host]}" || return 1
		[ -S "$dir/sock" ] &&
			timeout -k 2 5 "$SBXCTL" --socket "$dir/sock" status >/dev/null 2>&1 && return 0
		# status says 1 while the fleet cannot be written yet: answering is enough
		[ -S "$dir/sock" ] && timeout -k 2 5 "$SBXCTL" --socket "$dir/sock" status 2>/dev/null |
			grep -q '^broker:' && return 0
		sleep 0.05
	done
	return 1
}

fb_stop() {
	local pid=${FB_PID[$1]:-}

	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null
	if ! wait_until 15 eval "! alive $pid"; then
		kill -9 "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	FB_PID[$1]=
}

fb_kill() {
	local pid=${FB_PID[$1]:-}

	[ -n "$pid" ] || return 0
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	FB_PID[$1]=
}

fsock() { echo "$(_fb_dir "$1")/sock"; }
freq() {
	local host=$1

	shift
	run "$SBXREQ" --socket "$(fsock "$host")" "$@"
}
fctl() {
	local host=$1

	shift
	run "$SBXCTL" --socket "$(fsock "$host")" "$@"
}

fjournal() {
	cat "$(_fb_dir "$1")"/state/journal/*.jsonl 2>/dev/null | jq -c -R 'fromjson? // empty'
}

# fjournal_has HOST JQ-CONDITION
fjournal_has() {
	[ -n "$(fjournal "$1" | jq -c "select($2)" | head -n 1)" ]
}

# allowed HOST USER: does HOST's broker let USER log in now?
allowed() {
	"$SBXCTL" --socket "$(fsock "$1")" check "$2" >/dev/null 2>&1
}

# in_group HOST GROUP USER: does libnss_sbx on HOST (its group table,
# beside HOST's socket) list USER as a member of GROUP now?
in_group() {
	env SBX_SOCKET="$(fsock "$1")" "$SBX_BUILDDIR/tests/integration/nss_tool" \
		"$SBX_BUILDDIR/.libs/libnss_sbx.so.2" getgrnam "$2" 2>/dev/null |
		grep -q "^SUCCESS $2:x:[0-9]*:\(.*,\)\?$3\(,.*\)\?\$"
}

fleet_dump() {
	"$FLEET_TOOL" dump "$FLEET_CI" "$PG_PWFILE"
}

# fleet_seq HOST: the fleet seq HOST's broker has applied.
fleet_seq() {
	"$SBXCTL" --socket "$(fsock "$1")" --json status 2>/dev/null | jq -r '.fleet_seq // 0'
}

fleet_done() {
	local h

	for h in "${!FB_PID[@]}"; do
		fb_stop "$h"
	done
	cat "$T"/*.log >"$T/broker.log" 2>/dev/null
	tap_done
}
