#!/bin/bash
# End to end as root: sshd and sudo in a private mount namespace with
# `group: files sbx`, libnss_sbx where glibc finds it, a sudoers rule
# `%sbx-admin ALL=(ALL) NOPASSWD: ALL`, and (when it is built) pam_sbx in
# sshd's account stack.  While their grants of sandbox-admin are active,
# erin and alice log in and `sudo -n true` works; once the grants have
# expired, alice (who may log in anyway: standing member of sandbox-user)
# logs in but sudo refuses, and erin (whose only way in was the grant)
# cannot log in with pam_sbx, or cannot sudo without it.  When alice's next
# grant is revoked, her running session (opened under her standing role,
# registered nowhere) ends too: its processes hold sbx-admin.  The host's
# files are unchanged afterwards.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nss_lib.sh"
sbx_init
nss_init

skip_all() {
	tap_skip "ssh login and sudo follow the grant (sshd, sudo, libnss_sbx, pam_sbx)" "$1"
	tap_done
	exit
}
is_root || skip_all "needs root (a private mount namespace, sshd)"
for tool in unshare nsenter sudo ssh ssh-keygen ss; do
	command -v "$tool" >/dev/null || skip_all "$tool is not installed"
done
[ -x /usr/sbin/sshd ] || skip_all "openssh-server is not installed"
# sudo is set-uid: when erin runs it, the loader ignores LD_PRELOAD, so an
# ASan-built module cannot be loaded into it at all.
[ -z "$SAN_PRELOAD" ] || skip_all "the module is built with sanitizers; set-uid sudo cannot load it"
DEF_SOCK=$(sed -n 's/^#define SBX_DEFAULT_SOCKET "\(.*\)"$/\1/p' "$SBX_BUILDDIR/config.h")
case "$DEF_SOCK" in
/run/*) ;;
*) skip_all "the built-in socket ($DEF_SOCK) is not under /run" ;;
esac
LIBDIR=$(readlink -f "$(dirname "$(ldd /bin/sh | awk '/libc\.so\.6/ { print $3 }')")")
PAM_SO="$SBX_BUILDDIR/.libs/pam_sbx.so"

HOST_FILES="/etc/passwd /etc/group /etc/shadow /etc/gshadow /etc/nsswitch.conf /etc/sudoers
	/etc/ssh/sshd_config /etc/pam.d/sshd /etc/pam.d/sudo"
host_state() {
	# shellcheck disable=SC2086 # a list of paths
	sha256sum $HOST_FILES 2>/dev/null
	ls -la "$LIBDIR"/libnss_sbx* 2>/dev/null
	ls -d /run/sbx /run/sshd 2>/dev/null
}
HOST_BEFORE=$(host_state)

# --- fixture: users, keys, config ---------------------------------------------------------------
E="$T/etc"
K="$T/keys"
H="$T/home"
mkdir -p "$E" "$K" "$H" "$T/nsslib" "$T/rsbx"
chmod 755 "$T/rsbx" "$H"
ssh-keygen -q -t ed25519 -N '' -f "$K/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$K/client"
cp /etc/passwd "$E/passwd"
cp /etc/group "$E/group"
cp /etc/shadow "$E/shadow"
for u in alice:2001 erin:2005; do
	n=${u%%:*}
	id=${u##*:}
	echo "$n:x:$id:$id:$n fixture:$H/$n:/bin/sh" >>"$E/passwd"
	echo "$n:x:$id:" >>"$E/group"
	echo "$n:*:19000:0:99999:7:::" >>"$E/shadow" # '*': no password, not locked
	mkdir -p "$H/$n/.ssh"
	cp "$K/client.pub" "$H/$n/.ssh/authorized_keys"
	chmod 755 "$H/$n"
	chmod 700 "$H/$n/.ssh"
	chmod 600 "$H/$n/.ssh/authorized_keys"
	chown -R "$id:$id" "$H/$n"
done
chmod 640 "$E/shadow"
sed 's/^group:.*/group:          files sbx/' /etc/nsswitch.conf >"$E/nsswitch.conf"
cp -p /etc/sudoers "$E/sudoers"
echo '%sbx-admin ALL=(ALL) NOPASSWD: ALL' >>"$E/sudoers"
chmod 0440 "$E/sudoers"
cp "$(readlink -f "$MODULE")" "$T/nsslib/libnss_sbx.so.2"
chmod 755 "$T/nsslib" "$T/nsslib/libnss_sbx.so.2"
if [ -r "$PAM_SO" ]; then
	ACCOUNT="account required $PAM_SO socket=$DEF_SOCK"
	diag "pam_sbx decides logins: $ACCOUNT"
else
	ACCOUNT="account required pam_permit.so"
	diag "pam_sbx is not built: sshd lets every key in; only sudo is checked"
fi
printf 'auth required pam_deny.so\n%s\nsession required pam_permit.so\npassword required pam_deny.so\n' \
	"$ACCOUNT" >"$E/pam.d-sshd"
# A free port (other tests may run an sshd of their own).
PORT=
for _ in $(seq 20); do
	p=$((20000 + RANDOM % 10000))
	if ! ss -ltn "sport = :$p" | grep -q ":$p"; then
		PORT=$p
		break
	fi
done
[ -n "$PORT" ] || skip_all "no free port"
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$K/hostkey.pub")" >"$K/known_hosts"
cat >"$E/sshd_config" <<CFG
Port $PORT
ListenAddress 127.0.0.1
HostKey $K/hostkey
PidFile $T/sshd.pid
UsePAM yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
LogLevel VERBOSE
PrintMotd no
CFG
DEF_DIR=$(dirname "$DEF_SOCK")

unshare -m --propagation private bash -c "
	set -e
	mount --bind '$E/passwd' /etc/passwd
	mount --bind '$E/group' /etc/group
	mount --bind '$E/shadow' /etc/shadow
	mount --bind '$E/nsswitch.conf' /etc/nsswitch.conf
	mount --bind '$E/sudoers' /etc/sudoers
	mount --bind '$E/pam.d-sshd' /etc/pam.d/sshd
	mount -t overlay sbx-nss-lib -o 'lowerdir=$T/nsslib:$LIBDIR' '$LIBDIR'
	mount -t tmpfs -o mode=0755 sbx-nss-run /run
	mkdir -p /run/sshd '$DEF_DIR'
	chmod 755 /run/sshd
	mount --bind '$T/rsbx' '$DEF_DIR'
	echo ready >'$T/ns.ready'
	exec sleep 600
" >"$T/ns.log" 2>&1 &
NS_PID=$!
track_pid "$NS_PID"
if ! wait_until 10 test -s "$T/ns.ready"; then
	diag "$(cat "$T/ns.log")"
	skip_all "cannot set up the namespace"
fi

# --- the broker and sshd, in the namespace ----------------------------------------------------------
SOCK="$T/rsbx/broker.sock"
BROKER_PREFIX=(nsenter -t "$NS_PID" -m --)
broker_start
tap_result "the broker starts (socket at $DEF_SOCK inside)" || {
	tap_done
	exit
}
nsenter -t "$NS_PID" -m -- /usr/sbin/sshd -D -e -f "$E/sshd_config" >"$T/sshd.log" 2>&1 &
SSHD_PID=$!
track_pid "$SSHD_PID"
if ! wait_until 10 eval "ss -ltn 'sport = :$PORT' | grep -q ':$PORT'"; then
	diag "$(cat "$T/sshd.log")"
	tap_fail "sshd listens on 127.0.0.1:$PORT"
	tap_done
	exit
fi
tap_ok "sshd listens on 127.0.0.1:$PORT"

# ssh_as USER CMD: log in by key and run CMD (sets RC OUT ERR).
ssh_as() {
	run ssh -F /dev/null -p "$PORT" -i "$K/client" -o IdentitiesOnly=yes -o BatchMode=yes \
		-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$K/known_hosts" \
		-o ConnectTimeout=10 -o LogLevel=ERROR "$1@127.0.0.1" "$2"
}
PROBE='id; if sudo -n true; then echo SUDO-OK; else echo SUDO-REFUSED; fi'

# --- before any grant --------------------------------------------------------------------------------
ssh_as alice "$PROBE"
assert_rc "alice (standing member of sandbox-user) logs in" 0
assert_contains "without a grant, alice's sudo -n true is refused" "$OUT" "SUDO-REFUSED"

# --- during the grants -------------------------------------------------------------------------------
GE=$(nss_grant erin sandbox-admin frank --for 6s)
assert_ne "erin gets sandbox-admin for 6s" "" "$GE"
GA=$(nss_grant alice sandbox-admin bob --for 6s)
assert_ne "alice gets sandbox-admin for 6s" "" "$GA"
req --json status "${GE:-0}"
EXP_E=$(json_get .expires_at)
req --json status "${GA:-0}"
EXP_A=$(json_get .expires_at)

ssh_as erin "$PROBE"
assert_rc "erin logs in during her grant" 0
assert_contains "her session has the group (sshd's initgroups)" "$OUT" "60001(sbx-admin)"
assert_contains "erin's sudo -n true works" "$OUT" "SUDO-OK"
ssh_as alice "$PROBE"
assert_contains "alice's sudo -n true works" "$OUT" "SUDO-OK"

# --- after expiry ------------------------------------------------------------------------------------
for e in "$EXP_E" "$EXP_A"; do
	s=$(to_s "$e") || s=$(($(date +%s) + 7))
	while [ "$(date +%s)" -le "$s" ]; do sleep 0.1; done
done
ssh_as alice "$PROBE"
assert_rc "after expiry alice still logs in (standing)" 0
assert_not_contains "her new session lacks the group" "$OUT" "sbx-admin"
assert_contains "alice's sudo -n true stops working at expiry" "$OUT" "SUDO-REFUSED"
ssh_as erin "$PROBE"
if [ -r "$PAM_SO" ]; then
	assert_rc "after expiry erin cannot log in at all (pam_sbx)" 255
else
	assert_contains "after expiry erin's sudo -n true stops working" "$OUT" "SUDO-REFUSED"
fi

# --- revocation reaches a standing member's running session ------------------------------------------
# alice may log in anyway (standing member of sandbox-user), so no session
# rests on her grant: her shell, opened during the grant, holds sbx-admin in
# its credentials.  When frank revokes the grant, every process of hers that
# holds the group must end (sandbox-admin says on_expiry: terminate).
GA2=$(nss_grant alice sandbox-admin bob --for 60s)
assert_ne "alice gets sandbox-admin again, for 60s" "" "$GA2"
LOOP='while :; do if sudo -n true 2>/dev/null; then echo SUDO-OK; else echo SUDO-REFUSED; fi; sleep 0.2; done'
ssh -F /dev/null -p "$PORT" -i "$K/client" -o IdentitiesOnly=yes -o BatchMode=yes \
	-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$K/known_hosts" -o ConnectTimeout=10 \
	-o LogLevel=ERROR alice@127.0.0.1 "$LOOP" >"$T/long.out" 2>&1 &
LONG=$!
track_pid "$LONG"
wait_until 10 grep -q SUDO-OK "$T/long.out"
tap_result "alice's long session, opened during the grant, can sudo"
ctl --as frank revoke "${GA2:-0}" --reason "compromised laptop"
assert_rc "frank revokes alice's grant" 0
REVOKED_AT=$(wc -l <"$T/long.out")
wait_until 12 eval '! kill -0 $LONG 2>/dev/null'
tap_result "her running session is ended (SIGHUP, then SIGKILL after the grace)"
assert_eq "after the revocation her session never got root again" "" \
	"$(tail -n +$((REVOKED_AT + 2)) "$T/long.out" | grep SUDO-OK || true)"
assert_eq "journal: the processes holding sbx-admin were ended, though no session was registered" \
	"alice/sbx-admin/true" \
	"$(journal_select '.event == "session.terminated" and .user == "alice"' |
		jq -r '"\(.user)/\(.unix_group)/\(.unregistered)"' | tail -1)"
ssh_as alice "$PROBE"
assert_contains "a new login of alice has no sbx-admin and no sudo" "$OUT" "SUDO-REFUSED"

# --- the host, after ------------------------------------------------------------------------------------
kill "$SSHD_PID" 2>/dev/null
broker_stop
kill "$NS_PID" 2>/dev/null
wait "$SSHD_PID" "$NS_PID" 2>/dev/null
assert_eq "the host's files, library dir and /run are exactly as before" "$HOST_BEFORE" \
	"$(host_state)"

tap_done
