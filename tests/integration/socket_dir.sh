#!/bin/bash
# The socket's directory (which also holds the group table) must be the
# broker's: one owned by another user, or that others may write to without
# the sticky bit, or a symbolic link, is refused at start with a message
# that says what to fix; a directory it creates is 0755, and the socket is
# mode 0666 from the moment it exists (no chmod on a path another user
# could swap).
. "$(dirname "$0")/lib.sh"
sbx_init
if ! is_root; then
	tap_skip "the socket directory's owner and mode are checked" "needs root (chown)"
	tap_done
	exit
fi

# start_in DIR: start a broker with its socket in DIR; sets the result.
start_in() {
	SOCK="$1/sock"
	STATE="$T/state-$(basename "$1")"
	broker_start
}

mkdir "$T/theirs"
chown 65534:65534 "$T/theirs"
start_in "$T/theirs"
assert_ne "a socket directory owned by another user: refused" 0 "${BROKER_RC:-0}"
assert_contains "... saying whose it is" "$(cat "$LOG")" "refusing socket directory $T/theirs: it belongs to uid 65534"
assert_not_contains "... before any feature wrote there" "$(cat "$LOG")" "group table"
assert_eq "... and nothing is created in it" "" "$(ls -A "$T/theirs")"

mkdir -m 0777 "$T/open"
chmod 0777 "$T/open"
start_in "$T/open"
assert_ne "a directory others may write to: refused" 0 "${BROKER_RC:-0}"
assert_contains "... saying how to fix it" "$(cat "$LOG")" "without the sticky bit): chmod go-w $T/open"

mkdir "$T/real"
ln -s "$T/real" "$T/link"
start_in "$T/link"
assert_ne "a symbolic link as the directory: refused" 0 "${BROKER_RC:-0}"
assert_contains "... saying so" "$(cat "$LOG")" "not a directory (a symbolic link?)"

mkdir "$T/sticky"
chmod 1777 "$T/sticky"
start_in "$T/sticky"
tap_result "a world-writable directory with the sticky bit (like /tmp) is fine"
assert_eq "the socket is mode 0666" 666 "$(stat -c %a "$T/sticky/sock")"
broker_stop

start_in "$T/fresh"
tap_result "a missing directory is created"
assert_eq "... mode 0755 whatever the umask" 755 "$(stat -c %a "$T/fresh")"
assert_eq "... the socket in it mode 0666" 666 "$(stat -c %a "$T/fresh/sock")"
assert_eq "... the group table beside it mode 0644" 644 "$(stat -c %a "$T/fresh/groups.table")"
broker_stop
tap_done
