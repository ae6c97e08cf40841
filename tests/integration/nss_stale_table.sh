#!/bin/bash
# A group table that cannot be rewritten must not outlive a revocation:
# with the socket's directory on a full file system, erin's grant is
# revoked; the broker cannot write the new table, so it removes the old
# one (and says so), and libnss_sbx, asking the broker's socket instead,
# no longer counts erin in sbx-admin.  Before, the module went on reading
# the old table, and sudo with it.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nss_lib.sh"
sbx_init

if ! is_root; then
	tap_skip "a revocation is never outlived by an old group table" "needs root (a tmpfs)"
	tap_done
	exit
fi
if [ -z "${SBX_IN_NS:-}" ]; then
	# A private mount namespace for the tiny file system; the test runs
	# again inside it (its temp dir is the parent's, cleaned up there).
	SBX_IN_NS=1 exec unshare -m --propagation private bash "$0"
fi
mkdir -p "$T/run"
mount -t tmpfs -o size=64k,mode=0755 sbx-full "$T/run" || {
	tap_skip "a revocation is never outlived by an old group table" "cannot mount a tmpfs"
	tap_done
	exit
}
SOCK="$T/run/sock"
nss_init
broker_start
tap_result "the broker starts with its socket and table on a 64 KiB tmpfs" || {
	tap_done
	exit
}
G=$(nss_grant erin sandbox-admin frank --for 1h)
assert_ne "erin holds sandbox-admin" "" "$G"
run_tool getgrnam sbx-admin
assert_contains "the module counts her in sbx-admin (from the table)" "$OUT" "erin"
dd if=/dev/zero of="$T/run/fill" bs=1k count=1024 2>/dev/null
assert_eq "the file system is full" 0 "$(df --output=avail "$T/run" | tail -1 | tr -d ' ')"
ctl --as frank revoke "${G:-0}" --reason "compromised laptop"
assert_rc "frank revokes erin's grant (acknowledged)" 0
assert_true "the old table is gone" test ! -e "$TABLE"
run_tool getgrnam sbx-admin
assert_not_contains "the module no longer counts erin in sbx-admin" "$OUT" "erin"
assert_contains "the log says the old table was removed and NSS asks the socket" "$(cat "$LOG")" \
	"removed the old table; libnss_sbx asks the broker's socket meanwhile"
rm -f "$T/run/fill"
G2=$(nss_grant dave sandbox-admin bob --for 1h)
assert_ne "with room again, a new grant" "" "$G2"
assert_true "... and the table is written again" test -s "$TABLE"
run_tool getgrnam sbx-admin
assert_contains "... with dave in it" "$OUT" "dave"
broker_stop
umount "$T/run"
tap_done
