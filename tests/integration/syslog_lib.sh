# The syslog socket in a private mount namespace (root only), for tests
# of what the broker sends to /dev/log: a holder process keeps a mount
# namespace in which /dev is a tmpfs of links to the real device nodes
# (a bind of the real /dev kept under $T/hostdev), plus /dev/log linking
# to a receiver's socket in $T.  The host's /dev is never touched (there
# may be no /dev/log to bind over); the broker runs in the namespace
# through BROKER_PREFIX.  The bind lives in the namespace only: outside,
# $T/hostdev is an empty directory, so removing $T is safe.
#
# syslog_ns_start: sets NS_PID, SYSLOG_RECEIVER_PID, SYSLOG_OUT (the received datagrams, one a
# line) and BROKER_PREFIX; returns 1 (with a reason in NS_WHY) when the
# namespace or the receiver cannot be set up.

SYSLOG_RECEIVER="$(dirname "${BASH_SOURCE[0]}")/syslog_receiver.py"

syslog_ns_start() {
	NS_WHY=
	if ! is_root; then
		NS_WHY="needs root (a private mount namespace over /dev)"
		return 1
	fi
	for tool in unshare nsenter python3; do
		command -v "$tool" >/dev/null || {
			NS_WHY="$tool is not installed"
			return 1
		}
	done
	SYSLOG_OUT="$T/syslog.out"
	: >"$SYSLOG_OUT"
	python3 "$SYSLOG_RECEIVER" "$T/log.sock" "$SYSLOG_OUT" 2>>"$T/receiver.log" &
	SYSLOG_RECEIVER_PID=$!
	track_pid "$SYSLOG_RECEIVER_PID"
	if ! wait_until 10 test -e "$T/log.sock.ready"; then
		NS_WHY="the syslog receiver did not start: $(cat "$T/receiver.log")"
		return 1
	fi
	mkdir "$T/hostdev"
	unshare -m --propagation private bash -c "
		set -e
		mount --rbind /dev '$T/hostdev'
		mount -t tmpfs -o mode=0755 sbx-test-dev /dev
		for f in '$T'/hostdev/* '$T'/hostdev/.[!.]*; do
			[ -e \"\$f\" ] || [ -L \"\$f\" ] || continue
			ln -s \"\$f\" /dev/\"\${f##*/}\"
		done
		rm -f /dev/log
		ln -s '$T/log.sock' /dev/log
		echo ready >'$T/ns.ready'
		exec sleep 600
	" >"$T/ns.log" 2>&1 &
	NS_PID=$!
	track_pid "$NS_PID"
	if ! wait_until 10 test -s "$T/ns.ready"; then
		NS_WHY="cannot set up the namespace: $(cat "$T/ns.log")"
		return 1
	fi
	BROKER_PREFIX=(nsenter -t "$NS_PID" -m --)
	return 0
}

# syslog_lines [GREP-PATTERN]: the received lines (matching the pattern).
syslog_lines() {
	grep -a -- "${1:-.}" "$SYSLOG_OUT" || true
}
