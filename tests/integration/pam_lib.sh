# shellcheck shell=bash
# Helpers for pam_sbx's tests, on top of lib.sh: PAM service files in the
# test's temp dir, pamtester under pam_wrapper (no root, /etc/pam.d never
# touched), and the pam_wrapper log where the module's pam_syslog lines go.
#
#   . "$(dirname "$0")/lib.sh"; . "$(dirname "$0")/pam_lib.sh"
#   sbx_init; pam_init
#   pam_service sbx "failmode=open"   # $T/pam.d/sbx: account+session pam_sbx
#   pt sbx alice acct_mgmt            # RC, OUT, ERR (stdout+stderr in OUT too)

# shellcheck disable=SC2034
PAM_SO="$SBX_BUILDDIR/.libs/pam_sbx.so"
FAKE_BROKER="$SBX_BUILDDIR/tests/integration/pam_fake_broker"
PAM_HOLDER="$SBX_BUILDDIR/tests/integration/pam_holder"
PAM_DIR=
PAM_PRELOAD=
PAM_SYSLOG=

# Check the tools, make $T/pam.d.  Ends the script with a SKIP (exit 0) when
# pam_wrapper or pamtester is missing: they are test packages (deps.sh test).
pam_init() {
	local wrapper

	PAM_DIR="$T/pam.d"
	mkdir -p "$PAM_DIR"
	chmod 755 "$PAM_DIR"
	printf 'account required pam_deny.so\nsession required pam_deny.so\n' >"$PAM_DIR/other"
	if [ ! -r "$PAM_SO" ]; then
		echo "Bail out! $PAM_SO is missing: build it first (make pam_sbx.la)"
		exit 1
	fi
	wrapper=$(ldconfig -p 2>/dev/null | awk '/libpam_wrapper\.so /{print $NF; exit}')
	if [ -z "$wrapper" ] || ! command -v pamtester >/dev/null; then
		tap_skip "pam_sbx under pam_wrapper" \
			"needs libpam-wrapper and pamtester (apt-get install libpam-wrapper pamtester)"
		tap_done
		exit 0
	fi
	PAM_PRELOAD=libpam_wrapper.so
	# A sanitizer build of the module needs the ASan runtime loaded
	# before anything else, and pam_wrapper without RTLD_DEEPBIND.
	if ldd "$PAM_SO" | grep -q libasan; then
		PAM_PRELOAD="$(gcc -print-file-name=libasan.so) libpam_wrapper.so"
	fi
	PAM_SYSLOG="$T/pam_syslog.log"
	: >"$PAM_SYSLOG"
	# Not root: the broker's socket is ours, not root's.  The module
	# accepts that only with its test-only option.
	PAM_TEST_OPTS=
	is_root || PAM_TEST_OPTS=insecure_test_socket
	pam_env_set
	# shellcheck disable=SC2154 # _pam_rc is set inside the trap itself
	trap '_pam_rc=$?; pam_tidy; (exit $_pam_rc); _cleanup' EXIT
}

# pam_wrapper copies the service dir to /tmp/pam.X and removes the copy
# when the process exits normally; processes killed by a signal (and the
# valgrind launcher) leave theirs.  Remove the copies of this test's
# service files whose process is gone.
pam_tidy() {
	local d pid

	[ -n "$PAM_DIR" ] || return 0
	for d in /tmp/pam.?; do
		if [ ! -d "$d" ] || ! grep -qs "socket=$SOCK " "$d"/*; then
			continue
		fi
		pid=$(cat "$d/pid" 2>/dev/null)
		[ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && continue
		rm -rf "$d"
	done
}

# pam_service NAME [OPTIONS...]: account and session lines for pam_sbx on
# this test's socket, plus the given options.
pam_service() {
	local name=$1

	shift
	{
		echo "account required $PAM_SO socket=$SOCK $PAM_TEST_OPTS $*"
		echo "session required $PAM_SO socket=$SOCK $PAM_TEST_OPTS $*"
	} >"$PAM_DIR/$name"
}

# The environment pamtester (or pam_holder) runs in, as a command prefix:
# "${PAM_ENV[@]}" CMD...  The module's pam_syslog lines go to stderr
# through pam_wrapper's debug log.  Leak checking is valgrind's job
# (pam_valgrind.sh): pamtester and libpam are not built with ASan.
PAM_ENV=()
pam_env_set() {
	PAM_ENV=(env LD_PRELOAD="$PAM_PRELOAD" PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$PAM_DIR"
		PAM_WRAPPER_DEBUGLEVEL=2 PAM_WRAPPER_DISABLE_DEEPBIND=1
		ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0")
}

# pt SERVICE USER OP...: pamtester under pam_wrapper, with the options in
# the PT_OPTS array first and stdin from $PT_STDIN (default /dev/null: a
# conversation that cannot prompt).  Sets RC, OUT (what the user sees: the
# module's messages and pamtester's verdict), LOGS (the module's syslog
# lines) and MS (wall-clock milliseconds).
PT_OPTS=()
pt() {
	local t0 t1 svc=$1 user=$2

	shift 2
	t0=$(date +%s%N)
	run "${PAM_ENV[@]}" pamtester -v "${PT_OPTS[@]}" "$svc" "$user" "$@" <"${PT_STDIN:-/dev/null}"
	t1=$(date +%s%N)
	MS=$(((t1 - t0) / 1000000))
	# pam_wrapper prints syslog lines as "PWRAP_...SYSLOG(prio): msg".
	LOGS=$(printf '%s\n' "$ERR" | grep 'SYSLOG(' || true)
	printf '%s\n' "$LOGS" >>"$PAM_SYSLOG"
	# A prompt and a pam_wrapper line can share a line: cut the latter.
	OUT=$(printf '%s\n%s\n' "$OUT" "$ERR" | sed 's/PWRAP_[A-Z]*\[.*$//' | grep -v '^$' || true)
}

# holder_start SERVICE USER [pam_holder options]: a session that stays
# open; sets HOLDER_PID, HOLDER_OUT (its output file) and HOLDER_IN (fd 8
# writes to its stdin: `echo close >&8` closes the session).
HOLDER_PID=
HOLDER_OUT=
holder_start() {
	local fifo="$T/holder.in.$RANDOM"

	HOLDER_OUT="$T/holder.out.$RANDOM"
	mkfifo "$fifo"
	"${PAM_ENV[@]}" "$PAM_HOLDER" "$@" <"$fifo" >"$HOLDER_OUT" 2>&1 &
	HOLDER_PID=$!
	track_pid "$HOLDER_PID"
	exec 8>"$fifo"
	rm -f "$fifo"
	wait_until 10 grep -qE '^(ready|account [1-9]|open [1-9])' "$HOLDER_OUT"
}

# holder_close: end the holder's stdin, so it closes its session and exits.
holder_close() {
	exec 8>&- 2>/dev/null
}

# holder_wait SECS: wait for the holder to exit; HOLDER_RC is its status
# (129 = killed by SIGHUP, 137 = SIGKILL), or "running".
holder_wait() {
	if wait_until "$1" eval '! alive "$HOLDER_PID"'; then
		wait "$HOLDER_PID" 2>/dev/null
		HOLDER_RC=$?
	else
		HOLDER_RC=running
	fi
}

# The value of a field of the newest journal record matching a jq condition.
last_field() {
	journal_select "$1" | tail -n 1 | jq -r "$2"
}
