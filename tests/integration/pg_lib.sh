# shellcheck shell=bash
# Throwaway PostgreSQL 15 servers for the fleet tests (source after lib.sh).
#
# Each server is a cluster of its own under $PG_ROOT/NAME (data dir, log,
# port, start options), listening on 127.0.0.1 only, at a free high port,
# with its Unix socket in $PG_ROOT/run: no system service, no file outside
# the temp dir.  PostgreSQL refuses to run as root, so as root everything
# runs as the `postgres` system user (runuser) and $PG_ROOT belongs to it.
# Superuser `sbx`: trusted over the Unix socket (pg_lib's own psql and
# replication), password over TCP (scram-sha-256; $PG_PASSWORD, also in
# $PG_PWFILE) so that the tests exercise the broker's password path.
#
#   pg_require               SKIP the script (exit 77) if PostgreSQL 15 or
#                            the postgres user is missing; call first
#   pg_init                  make $PG_ROOT (in $T, or a temp dir of its own
#                            when lib.sh's sbx_init was not called) and the
#                            exit trap that stops every server
#   pg_primary_start NAME [SYNC]
#                            initdb + start; SYNC sets synchronous_standby_names
#                            (a commit then waits for that standby)
#   pg_standby_start NAME PRIMARY
#                            pg_basebackup -R from PRIMARY (application_name
#                            NAME, so SYNC=NAME makes it synchronous) + start
#   pg_wait_sync PRIMARY NAME
#                            wait until PRIMARY streams to NAME synchronously
#   pg_start NAME / pg_stop NAME (fast) / pg_kill NAME (immediate) /
#   pg_promote NAME / pg_freeze NAME (SIGSTOP every process) / pg_thaw NAME
#   pg_stop_all              every server down, $PG_ROOT removed (the trap)
#   pg_port NAME             its port
#   pg_conninfo NAME         "host=127.0.0.1 port=P user=sbx dbname=postgres"
#   pg_conninfo_multi NAME... the same over several servers, with
#                            target_session_attrs=read-write
#   pg_psql NAME SQL         psql -XAtq over the socket (as sbx, trusted)
#   pg_hook NAME ACTION      a shell command doing pg_ACTION NAME, for a
#                            C test to run with system()
#
# Run as a command (what pg_hook prints): bash pg_lib.sh ROOT ACTION NAME.
# Every wait has a deadline ($PG_WAIT seconds); a start that fails shows the
# end of the server's log as "# " diagnostics.  $PG_OPTS: more server
# options (-c name=value ...) for every server started after it is set.

# shellcheck disable=SC2034
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
PG_WAIT=${PG_WAIT:-30}
PG_USER=sbx
PG_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")
PG_ROOT=${PG_ROOT:-}
PG_PASSWORD=
PG_PWFILE=
PG_AS=()
_PG_OWN_T=0
_PG_WATCHER=

_pg_diag() {
	if declare -F diag >/dev/null; then
		diag "$@"
	else
		printf '%s\n' "$@" | sed 's/^/# /'
	fi
}

_pg_ms() { echo $(($(date +%s%N) / 1000000)); }

# _pg_wait_until SECONDS CMD...: poll CMD every 50 ms until it succeeds.
_pg_wait_until() {
	local end

	end=$(($(_pg_ms) + $1 * 1000))
	shift
	while :; do
		"$@" && return 0
		[ "$(_pg_ms)" -ge "$end" ] && return 1
		sleep 0.05
	done
}

# How to run a command as the server's user: as root, the postgres system
# user; otherwise ourselves.
_pg_set_user() {
	PG_AS=()
	[ "$(id -u)" -eq 0 ] || return 0
	id postgres >/dev/null 2>&1 || return 1
	if command -v runuser >/dev/null 2>&1 || [ -x /usr/sbin/runuser ]; then
		PG_AS=("$(command -v runuser || echo /usr/sbin/runuser)" -u postgres --)
	elif command -v setpriv >/dev/null 2>&1; then
		PG_AS=(setpriv --reuid=postgres --regid=postgres --init-groups)
	else
		return 1
	fi
}

# _pg_as CMD...: as the server's user, from a directory it may enter (the
# tools complain about an unreadable current directory).
_pg_as() {
	(cd "$PG_ROOT" && "${PG_AS[@]}" "$@")
}

_pg_skip() {
	echo "1..0 # SKIP $*"
	TAP_DONE=1
	trap - EXIT
	if [ -n "${T:-}" ] && [ -d "$T" ] && [ -z "${SBX_KEEP:-}" ]; then
		rm -rf "$T"
	fi
	exit 77
}

pg_require() {
	local b

	for b in initdb pg_ctl pg_basebackup postgres psql; do
		[ -x "$PG_BIN/$b" ] ||
			_pg_skip "PostgreSQL 15 is not installed ($PG_BIN/$b is missing: apt-get install postgresql)"
	done
	_pg_set_user ||
		_pg_skip "running as root needs the postgres user and runuser or setpriv (apt-get install postgresql util-linux)"
	command -v python3 >/dev/null 2>&1 || _pg_skip "python3 is needed to find a free port"
}

_pg_exit_trap() {
	local rc=$?

	pg_stop_all
	[ -z "${_PG_WATCHER:-}" ] || kill "$_PG_WATCHER" 2>/dev/null
	if declare -F _cleanup >/dev/null; then
		(exit "$rc")
		_cleanup
	fi
	if [ "$_PG_OWN_T" -eq 1 ] && [ -n "$T" ] && [ -z "${SBX_KEEP:-}" ]; then
		rm -rf "$T"
	fi
	exit "$rc"
}

pg_init() {
	if [ -z "${T:-}" ]; then
		T=$(mktemp -d /tmp/sbxpg.XXXXXX) || {
			echo "Bail out! cannot make a temp dir"
			exit 1
		}
		chmod 755 "$T"
		_PG_OWN_T=1
	fi
	trap _pg_exit_trap EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	PG_ROOT="$T/pg"
	mkdir -p "$PG_ROOT/run"
	PG_PASSWORD="pw-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
	PG_PWFILE="$T/pg.password"
	(umask 077 && printf '%s\n' "$PG_PASSWORD" >"$PG_PWFILE")
	[ "$(id -u)" -ne 0 ] || chown -R postgres: "$PG_ROOT"
	# A server must not outlive a script killed with SIGKILL: this watcher
	# stops them once the script is gone (its own output goes nowhere, so
	# it does not hold the test harness's pipe open).
	(
		trap '' INT TERM
		while kill -0 $$ 2>/dev/null; do sleep 1; done
		pg_stop_all
		[ "$_PG_OWN_T" -eq 0 ] || rm -rf "$T"
	) </dev/null >/dev/null 2>&1 &
	_PG_WATCHER=$!
}

pg_port() { cat "$PG_ROOT/$1/port" 2>/dev/null; }

# A port nothing listens on now (the kernel's choice; it could be taken
# before the server binds it: _pg_ctl_start then tries another).
_pg_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_pg_pid() {
	local f="$PG_ROOT/$1/data/postmaster.pid"

	[ -r "$f" ] && head -n 1 "$f"
}

_pg_running() {
	local pid

	pid=$(_pg_pid "$1") && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

# The postmaster and all its children.
_pg_pids() {
	local pid

	pid=$(_pg_pid "$1") || return 0
	[ -n "$pid" ] || return 0
	echo "$pid"
	pgrep -P "$pid" 2>/dev/null
}

_pg_show_log() {
	_pg_diag "$1: server log ($PG_ROOT/$1/log), last lines:"
	tail -n 15 "$PG_ROOT/$1/log" 2>/dev/null | sed 's/^/  /' | while IFS= read -r l; do
		_pg_diag "$l"
	done
}

# _pg_ctl_start NAME: start with the options in NAME/opts at NAME/port.
# When the port was taken meanwhile, pick another (up to 3 times).
_pg_ctl_start() {
	local name=$1 dir="$PG_ROOT/$1" try port

	for try in 1 2 3; do
		port=$(pg_port "$name")
		if _pg_as "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t "$PG_WAIT" start \
			-o "-p $port -k $PG_ROOT/run -c listen_addresses=127.0.0.1 $(cat "$dir/opts")" \
			>>"$dir/pg_ctl.out" 2>&1; then
			return 0
		fi
		_pg_running "$name" && break
		grep -q 'could not bind\|Address already in use' "$dir/log" 2>/dev/null || break
		_pg_free_port >"$dir/port"
	done
	_pg_diag "$name: the server did not start (pg_ctl: $(tail -n 1 "$dir/pg_ctl.out"))"
	_pg_show_log "$name"
	return 1
}

# _pg_new NAME OPTS: the server's dir with a port and its start options.
_pg_new() {
	local dir="$PG_ROOT/$1"

	mkdir -p "$dir"
	_pg_free_port >"$dir/port"
	# Small and quick: a test server, not a tuned one.  fsync stays on
	# (the failover test relies on what a commit promises).
	printf '%s' "-c max_connections=40 -c shared_buffers=16MB -c max_wal_senders=4 -c wal_level=replica -c hot_standby=on $2 ${PG_OPTS:-}" \
		>"$dir/opts"
	[ "$(id -u)" -ne 0 ] || chown -R postgres: "$dir"
}

pg_primary_start() {
	local name=$1 sync=${2:-} dir="$PG_ROOT/$1" opts=

	[ -n "$sync" ] && opts="-c synchronous_standby_names=$sync"
	_pg_new "$name" "$opts"
	cp "$PG_PWFILE" "$dir/pw" && { [ "$(id -u)" -ne 0 ] || chown postgres: "$dir/pw"; }
	if ! _pg_as "$PG_BIN/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$dir/pw" \
		--auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync \
		>"$dir/initdb.out" 2>&1; then
		_pg_diag "$name: initdb failed:" "$(tail -n 10 "$dir/initdb.out")"
		return 1
	fi
	rm -f "$dir/pw"
	_pg_ctl_start "$name"
}

pg_standby_start() {
	local name=$1 primary=$2 dir="$PG_ROOT/$1"

	_pg_new "$name" "$(cat "$PG_ROOT/$primary/opts")"
	# A standby must not wait for a standby of its own once promoted.
	sed -i 's/-c synchronous_standby_names=[^ ]*//' "$dir/opts"
	# -R writes primary_conninfo (with application_name: that is the
	# name synchronous_standby_names matches) and standby.signal.
	if ! _pg_as "$PG_BIN/pg_basebackup" -D "$dir/data" -R -X stream -c fast --no-sync \
		-d "host=$PG_ROOT/run port=$(pg_port "$primary") user=$PG_USER application_name=$name" \
		>"$dir/basebackup.out" 2>&1; then
		_pg_diag "$name: pg_basebackup from $primary failed:" "$(tail -n 10 "$dir/basebackup.out")"
		return 1
	fi
	_pg_ctl_start "$name"
}

pg_psql() {
	local name=$1

	shift
	timeout -k 2 "$PG_WAIT" "$PG_BIN/psql" -XAtq -v ON_ERROR_STOP=1 \
		-h "$PG_ROOT/run" -p "$(pg_port "$name")" -U "$PG_USER" -d postgres -c "$*"
}

_pg_is_sync() {
	[ "$(pg_psql "$1" "select sync_state from pg_stat_replication where application_name = '$2' and state = 'streaming'" 2>/dev/null)" = sync ]
}

pg_wait_sync() {
	_pg_wait_until "$PG_WAIT" _pg_is_sync "$1" "$2" && return 0
	_pg_diag "$2 is not a synchronous standby of $1 after ${PG_WAIT}s:" \
		"$(pg_psql "$1" 'select application_name, state, sync_state from pg_stat_replication' 2>&1)"
	_pg_show_log "$2"
	return 1
}

pg_start() { _pg_ctl_start "$1"; }

pg_stop() {
	_pg_running "$1" || return 0
	_pg_as "$PG_BIN/pg_ctl" -D "$PG_ROOT/$1/data" -m fast -w -t "$PG_WAIT" stop >/dev/null
}

# Hard: no checkpoint, no goodbye to clients, as if the machine died.
pg_kill() {
	_pg_running "$1" || return 0
	_pg_as "$PG_BIN/pg_ctl" -D "$PG_ROOT/$1/data" -m immediate -w -t "$PG_WAIT" stop >/dev/null
}

pg_promote() {
	_pg_as "$PG_BIN/pg_ctl" -D "$PG_ROOT/$1/data" -w -t "$PG_WAIT" promote >/dev/null
}

# A silent peer: the kernel still completes TCP handshakes, nobody answers.
pg_freeze() {
	local p

	for p in $(_pg_pids "$1"); do kill -STOP "$p" 2>/dev/null; done
	return 0
}

pg_thaw() {
	local p

	for p in $(_pg_pids "$1"); do kill -CONT "$p" 2>/dev/null; done
	return 0
}

# Stop every server under $PG_ROOT (thawed first: a stopped process cannot
# act on SIGQUIT), the hard way; SIGKILL what is left after $PG_WAIT.
pg_stop_all() {
	local d name p

	[ -n "$PG_ROOT" ] && [ -d "$PG_ROOT" ] || return 0
	for d in "$PG_ROOT"/*/data; do
		[ -d "$d" ] || continue
		name=$(basename "$(dirname "$d")")
		_pg_running "$name" || continue
		pg_thaw "$name"
		if ! _pg_as "$PG_BIN/pg_ctl" -D "$d" -m immediate -w -t "$PG_WAIT" stop >/dev/null 2>&1; then
			for p in $(_pg_pids "$name"); do kill -9 "$p" 2>/dev/null; done
		fi
	done
	[ -n "${SBX_KEEP:-}" ] || rm -rf "$PG_ROOT"
}

pg_conninfo() {
	echo "host=127.0.0.1 port=$(pg_port "$1") user=$PG_USER dbname=postgres"
}

pg_conninfo_multi() {
	local hosts='' ports='' name

	for name in "$@"; do
		hosts="$hosts${hosts:+,}127.0.0.1"
		ports="$ports${ports:+,}$(pg_port "$name")"
	done
	echo "host=$hosts port=$ports user=$PG_USER dbname=postgres target_session_attrs=read-write"
}

pg_hook() {
	printf 'bash %q %q %q %q' "$PG_LIB" "$PG_ROOT" "$2" "$1"
}

# As a command: bash pg_lib.sh ROOT ACTION NAME (what pg_hook prints).
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -u
	PG_ROOT=$1
	_pg_set_user || exit 1
	case $2 in
	start | stop | kill | promote | freeze | thaw) "pg_$2" "$3" ;;
	*)
		echo "pg_lib.sh: unknown action $2" >&2
		exit 2
		;;
	esac
	exit $?
fi
