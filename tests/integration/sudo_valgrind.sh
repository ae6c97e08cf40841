#!/bin/bash
# sbx_sudo.so under valgrind, inside real sudo: every path of the plugin
# (recorded run and exit, a refusal by sbx_approval, a refusal by sudoers,
# no broker with failmode=secure and =open) with no invalid access, no
# use of uninitialised memory, and no leak with a frame of the plugin.
# valgrind will not run a set-uid program, so a plain copy of sudo runs
# as root in the test's mount namespace (sudo needs no set-uid bit when
# root runs it).  sudo's own leaks (it frees little before exit) are
# shown, not counted.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nss_lib.sh"
. "$(dirname "$0")/sudo_lib.sh"
sbx_init

why=$(sudo_skip_reason)
[ -z "$why" ] && ! command -v valgrind >/dev/null && why="valgrind is not installed"
if [ -n "$why" ]; then
	tap_skip "sbx_sudo.so under valgrind" "$why"
	tap_done
	exit
fi
if ! sudo_init "socket=$SOCK timeout=2000" >"$T/init.out"; then
	tap_skip "sbx_sudo.so under valgrind" "$(cat "$T/init.out")"
	tap_done
	exit
fi
cp /usr/bin/sudo "$T/sudo"
chmod 0755 "$T/sudo"
broker_start
tap_result "the broker starts" || { tap_done; exit; }

# vg DESC WANT_RC [setpriv options --] ARGS...: run the copy of sudo under
# valgrind as root in the namespace; check its exit status and the logs.
vg() {
	local desc=$1 want=$2 logs bad
	shift 2
	rm -f "$T"/vg.*.log
	run nsenter -t "$NS_PID" -m -- setpriv "${PRIV[@]}" -- valgrind --quiet \
		--leak-check=full --show-leak-kinds=definite,indirect --num-callers=40 \
		--log-file="$T/vg.%p.log" "$T/sudo" "$@"
	assert_rc "$desc: sudo's outcome" "$want"
	logs=$(cat "$T"/vg.*.log 2>/dev/null)
	bad=$(printf '%s\n' "$logs" | grep -cE 'Invalid (read|write|free)|uninitialised|Syscall param|Mismatched free' || true)
	assert_eq "$desc: no invalid access or uninitialised use" "0" "$bad"
	# one loss record per blank-line-separated block: count those with
	# a frame of ours
	bad=$(printf '%s\n' "$logs" | sed 's/^==[0-9]*== \{0,1\}//' |
		awk 'BEGIN { RS = "" } /lost/ && /sbx_sudo|ssudo_|cmdline\.c|sbxio\.c|frame\.c|text\.c/ { n++ } END { print n + 0 }')
	assert_eq "$desc: no leak with a frame of the plugin" "0" "$bad"
	[ "$bad" = 0 ] || diag "$logs"
}

PRIV=(--clear-groups)
vg "a recorded command and its end" 0 -n true
# command.exited is answered once queued: wait for it on disk.
wait_until 5 journal_has '.event == "command.exited"' || true
assert_eq "(it was recorded)" "root/true" \
	"$(journal_select '.event == "command.exited"' | jq -r '"\(.user)/\(.exit_status == 0)"' | tail -1)"
vg "refused by sudoers (unknown runas user)" 1 -n -u nosuchuser-sbx true
PRIV=(--groups 60001)
vg "refused by sbx_approval (sbx-admin held, no grant)" 1 -n true
assert_eq "(recorded as refused by sbx_approval)" "root/sbx_approval" \
	"$(journal_select '.event == "command.refused"' | jq -r '"\(.user)/\(.plugin)"' | tail -1)"
broker_stop
PRIV=(--clear-groups)
vg "no broker, failmode=secure" 1 -n true
sudo_conf "socket=$SOCK timeout=2000 failmode=open spool=$T/spool"
vg "no broker, failmode=open (spooled)" 0 -n true
broker_start
vg "the spool handed over" 0 -n true
assert_eq "(the spool is empty)" "0" "$(ls "$T/spool" | wc -l)"
tap_done
