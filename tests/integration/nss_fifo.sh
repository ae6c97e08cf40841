#!/bin/bash
# libnss_sbx never waits on what stands at the table path.  A FIFO nobody
# writes to, a socket, a directory, a symlink (to a FIFO, to a good table)
# or a character device of /dev/zero's kind is "no table": `getent group
# sbx-admin` through the module (nss_wrapper) returns at once with the
# broker's answer from its socket, and with the broker stopped it is
# UNAVAIL within the module's bound.  Before the fix an open() without
# O_NONBLOCK waited for a writer on the FIFO: getgrnam hung.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nss_lib.sh"
sbx_init
nss_init

if ! have_nss_wrapper; then
	tap_skip "libnss_sbx with odd files at the table path" "libnss-wrapper is not installed"
	tap_done
	exit
fi

# The whole getent command, process start and nss_wrapper included; the
# module's own deadline is 40 ms and nss_failsafe.sh holds it to 50 ms.
# A hang is cut at 5 s (exit 124), so a regression fails instead of
# stalling the suite.
WALL_MS=500
# Measured inside the calling process by nss_tool.
BOUND_MS=50

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

# at_table KIND: put KIND where the table is (the broker writes it only
# at its next change, so it stays there meanwhile).
at_table() {
	rm -rf "$TABLE" "$T/elsewhere"
	case $1 in
	fifo) mkfifo -m 644 "$TABLE" ;;
	socket) python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
		"$TABLE" ;;
	directory) mkdir -m 755 "$TABLE" ;;
	chardev) mknod -m 644 "$TABLE" c 1 5 ;; # what /dev/zero is
	symlink-to-fifo) mkfifo -m 644 "$T/elsewhere" && ln -s "$T/elsewhere" "$TABLE" ;;
	symlink-to-table) cp "$T/good.table" "$T/elsewhere" && ln -s "$T/elsewhere" "$TABLE" ;;
	esac
}

# timed_getent KEY: getent group KEY under nss_wrapper, cut at 5 s; sets
# RC, OUT and MS (wall-clock milliseconds of the whole command).
timed_getent() {
	local t0 t1

	t0=$(date +%s%N)
	run_nw timeout 5 getent group "$1"
	t1=$(date +%s%N)
	MS=$(((t1 - t0) / 1000000))
}

KINDS="fifo socket directory chardev symlink-to-fifo symlink-to-table"
for kind in $KINDS; do
	if [ "$kind" = chardev ] && ! is_root; then
		tap_skip "a character device at the table path" "mknod needs root"
		continue
	fi
	at_table "$kind"
	[ -e "$TABLE" ] || [ -L "$TABLE" ]
	tap_result "a $kind stands at the table path" || continue
	timed_getent sbx-admin
	diag "$kind: getent took $MS ms (exit $RC)"
	assert_rc "$kind at the table path: getent group sbx-admin does not hang" 0
	assert_eq "... and answers from the broker's socket" "$WANT" "$OUT"
	assert_int_between "... within ${WALL_MS} ms for the whole command" 0 "$WALL_MS" "$MS"
	run_tool getgrgid 60001
	assert_eq "$kind: getgrgid from the socket too" "SUCCESS $WANT" "$OUT"
	us=$(sed -n 's/^elapsed_us=//p' <<<"$ERR")
	assert_int_between "... within ${BOUND_MS} ms inside the caller" 0 $((BOUND_MS * 1000)) \
		"${us:-x}"
done

# --- the broker stopped: nothing to fall back to ------------------------------------
broker_stop
assert_rc "broker stops" 0 "$BROKER_RC"
for kind in fifo symlink-to-fifo directory; do
	at_table "$kind"
	run env SBX_SOCKET="$SOCK" timeout 5 "$NSS_TOOL" "$MODULE" getgrnam sbx-admin
	assert_rc "broker stopped, a $kind at the table path: UNAVAIL, not a hang" 3
	us=$(sed -n 's/^elapsed_us=//p' <<<"$ERR")
	assert_int_between "... within ${BOUND_MS} ms" 0 $((BOUND_MS * 1000)) "${us:-x}"
	timed_getent sbx-admin
	assert_rc "... getent finds no such group (files answers for the rest)" 2
	assert_int_between "... within ${WALL_MS} ms for the whole command" 0 "$WALL_MS" "$MS"
done

# A FIFO with a writer on the other end (and bytes waiting in it) is no
# table either.
at_table fifo
exec 9<>"$TABLE"
printf 'SBXGRPS\n' >&9
run env SBX_SOCKET="$SOCK" timeout 5 "$NSS_TOOL" "$MODULE" getgrnam sbx-admin
assert_rc "a FIFO somebody writes to: still UNAVAIL" 3
exec 9>&-

# And the real table back in place is used again at once.
rm -rf "$TABLE"
cp "$T/good.table" "$T/next.table" && chmod 644 "$T/next.table" && mv -f "$T/next.table" "$TABLE"
assert_eq "a good table in its place answers again (broker stopped)" "$WANT" \
	"$(getent_group sbx-admin)"

tap_done
