#!/bin/bash
# End to end with a real sshd (root only): a private sshd on 127.0.0.1 (a
# high port, its own host key and config) inside a private mount namespace
# whose /etc/pam.d/sshd uses pam_sbx.so, with throwaway users alice, bob and
# erin (bind-mounted copies of passwd/shadow/group; keys in their homes).
# alice logs in; bob is refused and the message reaches ssh's stderr; erin
# is refused, gets a grant, logs in; her session running `sleep 60` is
# ended within a few seconds of the grant's expiry.  The host's /etc is
# checked to be exactly as it was.
#
# The broker runs outside the namespace, its socket in this test's temp
# dir under /tmp, which the namespace shares (only /run is private there).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pam_lib.sh"
sbx_init
if ! is_root; then
	tap_skip "sshd end to end" "needs root (mount namespace, sshd, throwaway users)"
	tap_done
	exit
fi
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh >/dev/null || ! command -v unshare >/dev/null; then
	tap_skip "sshd end to end" "needs openssh-server, openssh-client and unshare"
	tap_done
	exit
fi
if ! unshare -m true 2>/dev/null; then
	tap_skip "sshd end to end" "cannot make a mount namespace here (unshare -m failed)"
	tap_done
	exit
fi
PAM_SO="$SBX_BUILDDIR/.libs/pam_sbx.so"
if ldd "$PAM_SO" | grep -q libasan; then
	# sshd would need the ASan runtime preloaded into every process it
	# starts; the module's memory safety is covered by pam_valgrind.sh and
	# the pam_wrapper tests.
	tap_skip "sshd end to end" "sanitizer build: sshd cannot load an ASan module"
	tap_done
	exit
fi

# --- the host's files, before ----------------------------------------------------
BASELINE="$T/host.sums"
host_files() {
	printf '%s\n' /etc/passwd /etc/shadow /etc/group /etc/gshadow /etc/nsswitch.conf \
		/etc/ssh/sshd_config /etc/pam.d/*
}
host_files | xargs sha256sum >"$BASELINE" 2>/dev/null
run_dir_before=$([ -e /run/sshd ] && echo present || echo absent)

# --- fixture -------------------------------------------------------------------
D="$T/sshd"
mkdir -p "$D/etc" "$D/home" "$D/keys"
chmod 755 "$D" "$D/home"
ssh-keygen -q -t ed25519 -N '' -f "$D/keys/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$D/keys/client"
PORT=
# Below the kernel's ephemeral range (32768 on), and used by no socket in
# any state: an outgoing connection of another test holds its local port
# as surely as a listener does.
for _ in $(seq 50); do
	p=$((20000 + RANDOM % 12000))
	if ! ss -tanH "sport = :$p" | grep -q .; then
		PORT=$p
		break
	fi
done
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$D/keys/hostkey.pub")" >"$D/keys/known_hosts"
cp /etc/passwd "$D/etc/passwd"
cp /etc/shadow "$D/etc/shadow"
cp /etc/group "$D/etc/group"
for u in alice:52001 bob:52002 erin:52003; do
	n=${u%%:*}
	id=${u##*:}
	# A host user of the same name is replaced, in the copies only.
	for f in passwd shadow group; do
		grep -v "^$n:" "$D/etc/$f" >"$D/etc/$f.new" || true
		cat "$D/etc/$f.new" >"$D/etc/$f"
		rm -f "$D/etc/$f.new"
	done
	home="$D/home/$n"
	echo "$n:x:$id:$id:$n (sbx test):$home:/bin/sh" >>"$D/etc/passwd"
	echo "$n:*:19000:0:99999:7:::" >>"$D/etc/shadow"
	echo "$n:x:$id:" >>"$D/etc/group"
	mkdir -p "$home/.ssh"
	cp "$D/keys/client.pub" "$home/.ssh/authorized_keys"
	chmod 755 "$home"
	chmod 700 "$home/.ssh"
	chmod 600 "$home/.ssh/authorized_keys"
	chown -R "$id:$id" "$home"
done
chmod 640 "$D/etc/shadow"
cat >"$D/etc/pam.d-sshd" <<EOF
auth     required pam_deny.so
account  required $PAM_SO socket=$SOCK
session  required $PAM_SO socket=$SOCK
password required pam_deny.so
EOF
cat >"$D/etc/sshd_config" <<EOF
Port $PORT
ListenAddress 127.0.0.1
HostKey $D/keys/hostkey
PidFile $D/sshd.pid
UsePAM yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
LogLevel VERBOSE
PrintMotd no
PrintLastLog no
EOF

# --- start: broker outside, sshd inside its own mount namespace -------------
broker_start
tap_result "broker starts (socket $SOCK)" || {
	tap_done
	exit
}

unshare -m --propagation private sh -ec "
	mount --bind '$D/etc/passwd' /etc/passwd
	mount --bind '$D/etc/shadow' /etc/shadow
	mount --bind '$D/etc/group' /etc/group
	mount --bind '$D/etc/pam.d-sshd' /etc/pam.d/sshd
	mount -t tmpfs -o mode=0755 sbx-e2e-run /run
	mkdir -m 0755 /run/sshd
	/usr/sbin/sshd -t -f '$D/etc/sshd_config'
	exec /usr/sbin/sshd -D -e -f '$D/etc/sshd_config'
" >"$D/sshd.log" 2>&1 &
SSHD_PID=$!
track_pid "$SSHD_PID"
wait_until 10 eval "ss -ltnH 'sport = :$PORT' | grep -q ."
tap_result "sshd listens on 127.0.0.1:$PORT in its own mount namespace" || {
	diag "$(cat "$D/sshd.log")"
	tap_done
	exit
}
assert_eq "on the host, /etc/pam.d/sshd is not the test's" \
	"$(grep ' /etc/pam.d/sshd$' "$BASELINE" | cut -d' ' -f1)" \
	"$(sha256sum /etc/pam.d/sshd 2>/dev/null | cut -d' ' -f1)"

SSH=(ssh -F /dev/null -p "$PORT" -i "$D/keys/client" -o IdentitiesOnly=yes -o BatchMode=yes
	-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$D/keys/known_hosts"
	-o ConnectTimeout=5 -o LogLevel=INFO)

# --- alice, bob, erin ------------------------------------------------------------
run "${SSH[@]}" alice@127.0.0.1 'echo hello from $(id -un)'
assert_rc "alice logs in" 0
assert_eq "alice's command runs" "hello from alice" "$OUT"
wait_record 5 '.event == "session.closed" and .user == "alice"'
tap_result "alice's session was registered and closed at logout"
diag "alice's session leader: $(last_field '.event == "session.opened" and .user == "alice"' .pid)"

run "${SSH[@]}" bob@127.0.0.1 true
assert_rc "bob is refused" 255
assert_contains "the refusal reaches ssh's stderr" "$ERR" \
	"sbx: bob has no role that allows logging in on sbx-01"

run "${SSH[@]}" erin@127.0.0.1 true
assert_rc "erin without a grant is refused" 255
assert_contains "erin is told what to run" "$ERR" 'Run: sbx-request sandbox-admin --for 1h'

req --as erin --json sandbox-admin --for 1h --reason "sshd end-to-end test"
G=$(out_id)
ctl --as frank --json approve "${G:-0}" --for 12s
assert_rc "frank approves a 12s grant" 0
exp=$(json_get .expires_at)
run "${SSH[@]}" erin@127.0.0.1 'echo in as $(id -un)'
assert_rc "erin with the grant logs in" 0
assert_eq "erin's command runs" "in as erin" "$OUT"

# Her session running `sleep 60` ends when the grant expires.
erin_sessions() { journal_select '.event == "session.opened" and .user == "erin"' | wc -l; }
wait_record 3 '.event == "session.closed" and .user == "erin"'
# shellcheck disable=SC2034 # used in the eval below
before=$(erin_sessions)
t0=$(date +%s%3N)
timeout -k 5 40 "${SSH[@]}" erin@127.0.0.1 'sleep 60' >"$T/erin.out" 2>"$T/erin.err" &
ERIN_SSH=$!
track_pid "$ERIN_SSH"
wait_until 10 eval '[ "$(erin_sessions)" -gt "$before" ]'
assert_eq "erin's session is registered, resting on her grant" "${G:-x}" \
	"$(last_field '.event == "session.opened" and .user == "erin"' .id)"
LEADER=$(last_field '.event == "session.opened" and .user == "erin"' .pid)
diag "erin's session leader: pid $LEADER: $(tr '\0' ' ' <"/proc/$LEADER/cmdline" 2>/dev/null)"
wait "$ERIN_SSH"
rc=$?
t1=$(date +%s%3N)
late=$((t1 - $(to_s "$exp") * 1000))
diag "ssh exited with $rc, ${late} ms after the grant's expires_at ($((t1 - t0)) ms after it started)"
assert_ne "erin's 'sleep 60' did not run to its end" 0 "$rc"
assert_int_between "her session ended within a few seconds of the expiry" -1000 5000 "$late"
wait_record 3 ".event == \"session.terminated\" and .id == ${G:-0}"
tap_result "session.terminated recorded for her grant"
# Killed processes may linger as zombies until PID 1 reaps them: only
# live ones count.
erin_alive() { ps -u 52003 -o stat=,pid=,args= 2>/dev/null | grep -v '^Z' || true; }
wait_until 3 eval '[ -z "$(erin_alive)" ]'
assert_eq "no process of erin is left (her sleep 60 ended too)" "" "$(erin_alive)"

# --- stop, and the host is as it was -------------------------------------------------
kill "$SSHD_PID" 2>/dev/null
wait "$SSHD_PID" 2>/dev/null
broker_stop
if sha256sum --quiet -c "$BASELINE" >/dev/null 2>&1; then
	tap_ok "the host's /etc (passwd, shadow, group, gshadow, nsswitch.conf, sshd_config, pam.d) is unchanged"
else
	tap_fail "the host's /etc is unchanged"
	diag "$(sha256sum -c "$BASELINE" 2>&1 | grep -v ': OK$')"
fi
assert_eq "the host's /run/sshd is as it was" "$run_dir_before" \
	"$([ -e /run/sshd ] && echo present || echo absent)"
assert_eq "no test user exists on the host" "" "$(grep -E '^(alice|bob|erin):x:5200' /etc/passwd || true)"
[ "$TAP_FAILED" -gt 0 ] && diag "sshd log:" "$(tail -n 30 "$D/sshd.log")"

tap_done
