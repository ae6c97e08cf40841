#!/bin/bash
# libnss_sbx through real glibc (root): in a private mount namespace,
# nsswitch.conf says `group: files sbx`, the module sits where glibc looks
# for it (an overlay on the system library directory), and sudoers has
# `%sbx-admin ALL=(ALL) ALL`.  `sudo -l -U erin` lists the rule only while
# her grant is active.  The broker runs in the same namespace with
# admin_group set to an sbx group, so its own admin checks go through the
# module inside the broker: they must be answered from the table, and
# never by asking the broker itself.  The host's files are unchanged.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nss_lib.sh"
sbx_init
nss_init

skip_all() {
	tap_skip "libnss_sbx through real glibc, sudo and the broker in a namespace" "$1"
	tap_done
	exit
}
is_root || skip_all "needs root (a private mount namespace)"
for tool in unshare nsenter sudo setpriv getent; do
	command -v "$tool" >/dev/null || skip_all "$tool is not installed"
done
DEF_SOCK=$(sed -n 's/^#define SBX_DEFAULT_SOCKET "\(.*\)"$/\1/p' "$SBX_BUILDDIR/config.h")
case "$DEF_SOCK" in
/run/*) ;;
*) skip_all "the built-in socket ($DEF_SOCK) is not under /run" ;;
esac
LIBDIR=$(readlink -f "$(dirname "$(ldd /bin/sh | awk '/libc\.so\.6/ { print $3 }')")")
[ -d "$LIBDIR" ] || skip_all "cannot find the system library directory"

# --- the host, before ------------------------------------------------------------------
HOST_FILES="/etc/passwd /etc/group /etc/shadow /etc/gshadow /etc/nsswitch.conf /etc/sudoers"
host_state() {
	# shellcheck disable=SC2086 # a list of paths
	sha256sum $HOST_FILES 2>/dev/null
	ls -la "$LIBDIR"/libnss_sbx* 2>/dev/null
	ls -d /run/sbx 2>/dev/null
	getent group sbx-admin
}
HOST_BEFORE=$(host_state)

# --- the namespace's files ------------------------------------------------------------------
E="$T/etc"
mkdir -p "$E" "$T/nsslib" "$T/rsbx"
chmod 755 "$T/rsbx"
sed 's/^group:.*/group:          files sbx/' /etc/nsswitch.conf >"$E/nsswitch.conf"
grep -q '^group:' "$E/nsswitch.conf" || echo 'group:          files sbx' >>"$E/nsswitch.conf"
cp /etc/passwd "$E/passwd"
cp /etc/group "$E/group"
cat "$T/passwd" >>"$E/passwd"
cat "$T/group" >>"$E/group"
# Users who are nobody in sbx: each asks the broker once (its identity
# cache keeps an answer per uid for a few seconds).
for i in $(seq 1 10); do
	echo "nobody$i:x:$((3000 + i)):$((3000 + i))::/nonexistent:/bin/sh" >>"$E/passwd"
	echo "nobody$i:x:$((3000 + i)):" >>"$E/group"
done
cp -p /etc/sudoers "$E/sudoers"
echo '%sbx-admin ALL=(ALL) ALL' >>"$E/sudoers"
chmod 0440 "$E/sudoers"
cp "$(readlink -f "$MODULE")" "$T/nsslib/libnss_sbx.so.2"
chmod 755 "$T/nsslib" "$T/nsslib/libnss_sbx.so.2"
DEF_DIR=$(dirname "$DEF_SOCK")

unshare -m --propagation private bash -c "
	set -e
	mount --bind '$E/nsswitch.conf' /etc/nsswitch.conf
	mount --bind '$E/passwd' /etc/passwd
	mount --bind '$E/group' /etc/group
	mount --bind '$E/sudoers' /etc/sudoers
	mount -t overlay sbx-nss-lib -o 'lowerdir=$T/nsslib:$LIBDIR' '$LIBDIR'
	mount -t tmpfs -o mode=0755 sbx-nss-run /run
	mkdir -p '$DEF_DIR'
	mount --bind '$T/rsbx' '$DEF_DIR'
	echo ready >'$T/ns.ready'
	exec sleep 600
" >"$T/ns.log" 2>&1 &
NS_PID=$!
track_pid "$NS_PID"
if ! wait_until 10 test -s "$T/ns.ready"; then
	diag "$(cat "$T/ns.log")"
	skip_all "cannot set up the namespace (overlay or bind mounts refused)"
fi
tap_ok "a private mount namespace with group: files sbx, the module in $LIBDIR, sudoers"

# nsx CMD...: CMD inside the namespace (the ASan runtime first when the
# module was built with sanitizers).
nsx() {
	nsenter -t "$NS_PID" -m -- env ${SAN_PRELOAD:+LD_PRELOAD=$SAN_PRELOAD} \
		ASAN_OPTIONS=detect_leaks=0 "$@"
}
run_nsx() { run nsenter -t "$NS_PID" -m -- env ${SAN_PRELOAD:+LD_PRELOAD=$SAN_PRELOAD} \
	ASAN_OPTIONS=detect_leaks=0 "$@"; }

assert_eq "inside: the module is where glibc looks" "libnss_sbx.so.2" \
	"$(nsx ls "$LIBDIR/libnss_sbx.so.2" 2>/dev/null | xargs -r basename)"
assert_eq "outside: it is not" "" "$(ls "$LIBDIR"/libnss_sbx.so.2 2>/dev/null)"

# --- the broker, in the namespace, admin_group = an sbx group --------------------------------
SOCK="$T/rsbx/broker.sock" # the same socket as $DEF_SOCK inside
sed -i 's/^\(  admin_group:\).*/\1 sbx-admin/' "$POLICY"
BROKER_PREFIX=(nsenter -t "$NS_PID" -m --)
broker_start
tap_result "the broker starts inside the namespace" || {
	tap_done
	exit
}
assert_true "the table is at the built-in path inside ($DEF_DIR/groups.table)" \
	nsx test -f "$DEF_DIR/groups.table"

# --- real glibc: getent, id, sudo -------------------------------------------------------------
assert_eq "getent group sbx-admin: the group, nobody in it" "sbx-admin:x:60001:" \
	"$(nsx getent group sbx-admin)"
assert_eq "getent group 60002" "sbx-phi:x:60002:" "$(nsx getent group 60002)"
run_nsx getent group nosuch-group
assert_rc "an unknown group: exit 2" 2
run_nsx sudo -l -U erin
assert_not_contains "before her grant, sudo -l -U erin does not list the rule" "$OUT" "(ALL) ALL"
diag "sudo -l -U erin: $(head -n 1 <<<"$OUT")"

G=$(nss_grant erin sandbox-admin frank)
assert_ne "erin's grant of sandbox-admin is approved" "" "$G"
assert_eq "getent group sbx-admin lists erin" "sbx-admin:x:60001:erin" \
	"$(nsx getent group sbx-admin)"
run_nsx id erin
assert_contains "id erin shows 60001(sbx-admin) (initgroups_dyn)" "$OUT" "60001(sbx-admin)"
run_nsx sudo -l -U erin
assert_contains "during the grant, sudo -l -U erin lists (ALL) ALL" "$OUT" "(ALL) ALL"

# --- the broker's own lookups go through the module inside the broker -----------------------
# erin is a member of sbx-admin (the admin_group) only through the table:
# the broker, resolving her, reads the table through libnss_sbx.
run_nsx setpriv --reuid=2005 --regid=2005 --clear-groups "$SBXCTL" --socket "$SOCK" \
	--as frank pending
assert_rc "erin (admin through her grant) may act for frank" 0
run_nsx setpriv --reuid=2004 --regid=2004 --clear-groups "$SBXCTL" --socket "$SOCK" \
	--as frank pending
assert_rc "dave (no grant) may not" 1

# Break the table: the module inside the broker must now answer UNAVAIL
# at once instead of asking the broker's socket (which the broker, busy
# with this very lookup, could not answer).
head -c 300 /dev/urandom >"$T/rsbx/garbage"
chmod 644 "$T/rsbx/garbage"
mv -f "$T/rsbx/garbage" "$T/rsbx/groups.table"
slowest=0
total0=$(date +%s%N)
for i in $(seq 1 10); do
	t0=$(date +%s%N)
	run_nsx setpriv --reuid=$((3000 + i)) --regid=$((3000 + i)) --clear-groups "$SBXCTL" \
		--socket "$SOCK" --as frank pending
	ms=$((($(date +%s%N) - t0) / 1000000))
	[ "$ms" -gt "$slowest" ] && slowest=$ms
	[ "$RC" = 1 ] || diag "nobody$i: exit $RC: $ERR"
done
total=$((($(date +%s%N) - total0) / 1000000))
diag "10 admin checks with a broken table: ${total} ms in all, slowest ${slowest} ms"
assert_eq "with a broken table, admin checks still answer (refused)" 1 "$RC"
assert_int_between "... each within a generous bound" 0 3000 "$slowest"
sleep 0.3
assert_eq "the broker never asked itself (no 'NSS recursion' in its log)" "" \
	"$(grep 'NSS recursion' "$LOG")"
run "$SBXCTL" --socket "$SOCK" status
assert_rc "the broker is still serving" 0

# From outside the broker the module, finding the broken table, asks
# the broker's socket: the broker's answer is right.
assert_eq "other programs get the broker's answer over the socket" "sbx-admin:x:60001:erin" \
	"$(nsx getent group sbx-admin)"

ctl --as frank revoke "${G:-0}"
assert_rc "frank revokes erin's grant" 0
assert_eq "the revocation writes a good table again" "sbx-admin:x:60001:" \
	"$(nsx getent group sbx-admin)"
run_nsx sudo -l -U erin
assert_not_contains "after revocation, sudo -l -U erin no longer lists the rule" "$OUT" \
	"(ALL) ALL"
run_nsx id erin
assert_not_contains "id erin no longer shows sbx-admin" "$OUT" "sbx-admin"

# --- the host, after --------------------------------------------------------------------------
broker_stop
kill "$NS_PID" 2>/dev/null
wait "$NS_PID" 2>/dev/null
assert_eq "the host's files, library dir and /run are exactly as before" "$HOST_BEFORE" \
	"$(host_state)"

tap_done
