#!/bin/bash
# The broker's side of sbx_sudo.so, spoken to directly (frame_tool): the
# sudo ops are root's; the person is the real uid of the calling process,
# never a field; a command line that is not in sbx_sudo's escaped form
# (control characters, invalid UTF-8) is refused whole, not changed; and
# one person's sudo commands are bounded per minute (10 x
# broker.max_changes_per_minute), with a clear "slow down".
. "$(dirname "$0")/lib.sh"
sbx_init
if ! is_root; then
	tap_skip "the sudo ops" "needs root (the ops are root's; setpriv to other uids)"
	tap_done
	exit
fi
# A small budget so that the bound is reached quickly: 10 x 3 a minute.
sed -i 's/^\(  request_ttl: 24h.*\)$/\1\n  max_changes_per_minute: 3/' "$POLICY"
broker_start
tap_result "the broker starts" || { tap_done; exit; }

run setpriv --reuid=65534 --regid=65534 --clear-groups "$FRAME_TOOL" "$SOCK" sudo-check "/usr/bin/id"
assert_rc "a caller that is not root may not record sudo commands" 1
assert_contains "it is told so" "$OUT" "only root may record sudo commands"

run "$FRAME_TOOL" "$SOCK" sudo-check "/usr/bin/id -u" 1
assert_rc "root's SUDO_CHECK (runas root, no sbx group held) is answered" 0
assert_eq "recorded as command.run of root, via none" "root/0/none//usr/bin/id -u" \
	"$(journal_select '.event == "command.run"' | jq -r '"\(.user)/\(.uid)/\(.via)/\(.command)"' | tail -1)"

run "$FRAME_TOOL" "$SOCK" sudo-check "$(printf 'rm\n-rf /')"
assert_rc "a raw newline in the command is refused" 1
assert_contains "as bad input, saying why" "$OUT" "status=2 message=the command holds control characters"
run "$FRAME_TOOL" "$SOCK" sudo-check "$(printf 'x\377')"
assert_contains "invalid UTF-8 is refused whole" "$OUT" "not valid UTF-8"
run "$FRAME_TOOL" "$SOCK" sudo-check ""
assert_contains "an empty command is refused" "$OUT" "needs its command"
assert_eq "none of them reached the journal" "1" \
	"$(journal_select '.event | startswith("command.")' | wc -l)"

# The person is the real uid: euid 0 (what the socket sees) with the real
# uid of nobody records nobody, whatever the process says.
run setpriv --ruid=65534 --euid=0 --clear-groups "$FRAME_TOOL" "$SOCK" sudo-check "/usr/bin/true"
assert_rc "euid 0 may call (as sudo does)" 0
assert_eq "the record names the real uid's user" "65534" \
	"$(journal_select '.event == "command.run"' | jq -r .uid | tail -1)"
n=1
while [ "$n" -le 40 ]; do
	setpriv --ruid=65534 --euid=0 --clear-groups "$FRAME_TOOL" "$SOCK" sudo-check \
		"/usr/bin/true $n" >"$T/burst.out" 2>&1 || break
	n=$((n + 1))
done
assert_int_between "the real uid's budget ends after 30 commands a minute (10 x 3)" 29 30 "$n"
assert_contains "with a clear slow down" "$(cat "$T/burst.out")" "slow down"
run "$FRAME_TOOL" "$SOCK" sudo-check "/usr/bin/true"
assert_rc "root's own sudo is not bounded by nobody's budget" 0
tap_done
