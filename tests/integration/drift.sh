#!/bin/bash
# Permission drift (docs/policy.md, "drift"): a fixture host (passwd,
# group, gshadow, sudoers with sudoers.d, homes with authorized_keys) in the
# temp dir, pointed to by the policy's drift: keys, with planted drift:
#   - mallory added to sbx-admin (sandbox-admin's unix group) by hand
#   - a sudoers.d file for trudy, whom the policy does not know
#   - %sbx-admin ALL=(ALL) ALL where sandbox-admin's sudo.allow has one command
#   - a key for svc-backup, an account the policy gives no login
# The scan finds exactly those (each recorded once, kept across a restart),
# a real sudo in a private mount namespace shows the planted rule works,
# the findings resolve when the fixture is fixed, bad input is reported
# without stopping the scan, remediate: remove takes a member out of the
# group file (with a backup) and nothing else, a grant the policy no longer
# supports and a login (utmp) that outlived its grant are findings too.
. "$(dirname "$0")/lib.sh"
sbx_init

H="$T/host"
mkdir -p "$H/etc/sudoers.d" "$H/home/alice/.ssh" "$H/home/svc-backup/.ssh" "$H/home/erin"
chmod 755 "$H" "$H/etc" "$H/etc/sudoers.d"
# uids far from any real account's; only this test's files name them
U0=4242000

# A password field of '*' (no shadow entry to look up) lets sudo's PAM
# account check pass for these made-up accounts.
write_passwd() {
	cat >"$H/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/bash
alice:*:$((U0 + 1)):$((U0 + 1))::$H/home/alice:/bin/bash
erin:*:$((U0 + 2)):$((U0 + 2))::$H/home/erin:/bin/bash
mallory:*:$((U0 + 3)):$((U0 + 3))::$H/home/mallory:/bin/bash
svc-backup:*:$((U0 + 4)):$((U0 + 4))::$H/home/svc-backup:/usr/sbin/nologin
EOF
}

# write_group MEMBERS-OF-SBX-ADMIN
write_group() {
	cat >"$H/etc/group" <<EOF
root:x:0:
sudo:x:27:
sbx-admin:x:60001:$1
alice:x:$((U0 + 1)):
EOF
	printf 'sbx-admin:!::%s\n' "$1" >"$H/etc/gshadow"
	chmod 644 "$H/etc/group"
	chmod 600 "$H/etc/gshadow"
}

# write_sudoers RULE-FOR-SBX-ADMIN
write_sudoers() {
	cat >"$H/etc/sudoers" <<EOF
# the fixture host's sudoers
Defaults env_reset
Defaults listpw=never
root ALL=(ALL:ALL) ALL
%sudo ALL=(ALL:ALL) ALL
$1
@includedir $H/etc/sudoers.d
EOF
	chmod 440 "$H/etc/sudoers"
}

write_passwd
write_group "mallory"
write_sudoers "%sbx-admin ALL=(ALL) ALL"
printf 'trudy ALL=(ALL) NOPASSWD: ALL\n' >"$H/etc/sudoers.d/trudy"
chmod 440 "$H/etc/sudoers.d/trudy"
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAlice alice@laptop" >"$H/home/alice/.ssh/authorized_keys"
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackup backup@vault" \
	>"$H/home/svc-backup/.ssh/authorized_keys"
chmod 600 "$H"/home/*/.ssh/authorized_keys

# write_policy REMEDIATE
write_policy() {
	sed 's|^    on_expiry: terminate |    sudo: { allow: ["/usr/bin/systemctl restart nginx"] }\n&|' \
		"$REF_POLICY" | sed "s/^\(  admin_group:\) sbx-admins/\1 $ADMIN_GROUP/" >"$POLICY"
	cat >>"$POLICY" <<EOF
drift:
  interval: 1h
  group_file: $H/etc/group
  passwd_file: $H/etc/passwd
  sudoers: [$H/etc/sudoers]
  authorized_keys: ["%h/.ssh/authorized_keys"]
  utmp_file: $H/utmp
  remediate: $1
EOF
}
write_policy report
grep -q 'sudo: { allow' "$POLICY"
tap_result "the policy gives sandbox-admin a sudo.allow list" || diag "$(cat "$POLICY")"

# Before anything is reported: a real sudo, with the fixture's files in a
# private mount namespace, shows that the planted rule really works.
if ! is_root; then
	tap_skip "the planted %sbx-admin rule really lets a member run any command" "needs root"
	tap_skip "sudo names the command it would run" "needs root"
	tap_skip "and a user outside sbx-admin gets nothing" "needs root"
elif ! command -v sudo >/dev/null || ! command -v unshare >/dev/null; then
	tap_skip "the planted %sbx-admin rule really lets a member run any command" "no sudo/unshare"
	tap_skip "sudo names the command it would run" "no sudo/unshare"
	tap_skip "and a user outside sbx-admin gets nothing" "no sudo/unshare"
else
	sudo_as() {
		local uid=$1 gids=$2

		shift 2
		run unshare -m --propagation private sh -c '
			mount --bind "$1/passwd" /etc/passwd &&
			mount --bind "$1/group" /etc/group &&
			mount --bind "$1/sudoers" /etc/sudoers &&
			shift && exec "$@"' sh "$H/etc" \
			setpriv --reuid="$uid" --regid="$uid" --groups="$gids" \
			sudo -n -l "$@"
	}
	# sudo -l CMD: allowed prints the command and exits 0 (listpw=never:
	# no password asked), refused exits 1
	sudo_as $((U0 + 3)) 60001 /usr/bin/id -u
	assert_rc "the planted %sbx-admin rule really lets a member run any command" 0
	assert_eq "sudo names the command it would run" "/usr/bin/id -u" "$OUT"
	sudo_as $((U0 + 1)) $((U0 + 1)) /usr/bin/id -u
	assert_rc "and a user outside sbx-admin gets nothing" 1
fi

broker_start
tap_result "broker starts with a drift: section" || {
	diag "$(cat "$LOG")"
	tap_done
	exit
}

scans() {
	local n

	n=$("$SBXCTL" --socket "$SOCK" --json drift 2>/dev/null | jq -r '.scans // 0' 2>/dev/null)
	echo "${n:-0}"
}
# scan_now: ask for a scan and wait until it has finished.
scan_now() {
	local before

	before=$(scans)
	ctl drift scan
	wait_until 10 eval '[ "$(scans)" -gt "$before" ]'
}
# The open findings as sorted "kind subject" lines.
open_set() {
	local out

	out=$("$SBXCTL" --socket "$SOCK" --json drift 2>&1)
	if ! jq -e .findings >/dev/null 2>&1 <<<"$out"; then
		echo "(no answer: $out)"
		return
	fi
	jq -r '.findings[] | "\(.kind) \(.subject)"' <<<"$out" | sort | tr '\n' ';'
}
count() { journal_select "$1" | grep -c .; }

wait_until 10 eval '[ "$(scans)" -ge 1 ]'
tap_result "the start-up scan finishes"

PLANTED="authorized_keys svc-backup;group mallory;group mallory;sudoers %sbx-admin;sudoers trudy;"
assert_eq "exactly the planted drift is found (mallory in group and gshadow)" "$PLANTED" \
	"$(open_set)"
ctl --json drift
assert_rc "sbxctl drift exits 1 while findings are open" 1
F=$(json_get '.findings[] | select(.kind == "sudoers" and .subject == "%sbx-admin")')
assert_eq "the sudoers finding names its file and line" "$H/etc/sudoers:6" \
	"$(jq -r '"\(.file):\(.line)"' <<<"${F:-null}")"
assert_contains "and what the policy says" "$(jq -r .policy <<<"${F:-null}")" \
	"/usr/bin/systemctl restart nginx"
F=$(json_get '.findings[] | select(.kind == "group" and (.file | endswith("/group")))')
assert_eq "the group finding names its file and line" "$H/etc/group:3" \
	"$(jq -r '"\(.file):\(.line)"' <<<"${F:-null}")"
assert_eq "drift.detected recorded once per finding" 5 "$(count '.event == "drift.detected"')"
R=$(journal_select '.event == "drift.detected" and .subject == "trudy"')
assert_eq "drift.detected has kind, subject, file, line, found, policy" \
	"sudoers trudy $H/etc/sudoers.d/trudy 1" \
	"$(jq -r '"\(.kind) \(.subject) \(.file) \(.line)"' <<<"${R:-null}")"
assert_contains "found is the rule" "$(jq -r .found <<<"${R:-null}")" "trudy ALL=(ALL) NOPASSWD: ALL"
ctl drift
assert_contains "text output lists where" "$OUT" "where:   $H/etc/sudoers.d/trudy:1"

# Only admins see drift.
if is_root; then
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$SBXCTL" --socket "$SOCK" drift
	assert_rc "a user who is not an admin may not list drift" 1
	assert_contains "and is told why" "$ERR" "only"
else
	tap_skip "a user who is not an admin may not list drift" "needs root for setpriv"
	tap_skip "and is told why" "needs root for setpriv"
fi

# A grant justifies membership: erin gets one and is then added to the file.
req --as erin --json sandbox-admin --reason "restart the importer after the fix"
G=$(out_id)
ctl --as frank approve "${G:-0}"
assert_rc "erin's grant is approved" 0
write_group "mallory,erin"
scan_now
tap_result "a scan on demand finishes"
assert_eq "a member with a live grant is no drift" "$PLANTED" "$(open_set)"
assert_eq "a finding that lasts is not recorded again" 5 "$(count '.event == "drift.detected"')"

# The open findings survive a restart (journal, then snapshot).
IDS=$("$SBXCTL" --socket "$SOCK" --json drift | jq -r '[.findings[].finding] | sort | join(",")')
broker_stop
broker_start
tap_result "broker restarts"
wait_until 10 eval '[ "$(scans)" -ge 1 ]'
assert_eq "the same findings are open after a restart" "$IDS" \
	"$("$SBXCTL" --socket "$SOCK" --json drift | jq -r '[.findings[].finding] | sort | join(",")')"
assert_eq "and none is recorded again" 5 "$(count '.event == "drift.detected"')"

# Fix the fixture: every finding resolves.
write_group "erin"
write_sudoers "%sbx-admin ALL=(ALL) /usr/bin/systemctl restart nginx"
rm -f "$H/etc/sudoers.d/trudy" "$H/home/svc-backup/.ssh/authorized_keys"
scan_now
assert_eq "a fixed host has no open findings" "" "$(open_set)"
ctl drift
assert_rc "sbxctl drift exits 0 with nothing open" 0
assert_eq "each finding is recorded resolved" 5 \
	"$(count '.event == "drift.resolved" and .how == "gone"')"

# Bad input: each is a finding with its path and reason; the scan goes on.
printf 'bad ALL=ALL\n\0\1\2' >"$H/etc/sudoers.d/binary"
chmod 440 "$H/etc/sudoers.d/binary"
ln -s /etc/sudoers "$H/etc/sudoers.d/link"
printf 'this is no sudoers line\n' >"$H/etc/sudoers.d/garbage"
chmod 440 "$H/etc/sudoers.d/garbage"
head -c $((2 * 1024 * 1024)) /dev/zero | tr '\0' '#' >"$H/etc/sudoers.d/huge"
chmod 440 "$H/etc/sudoers.d/huge"
write_group "erin,mallory"
scan_now
ctl --json drift
for f in binary link huge; do
	assert_eq "sudoers.d/$f is a finding" "file" \
		"$(json_get ".findings[] | select(.subject == \"$H/etc/sudoers.d/$f\") | .kind")"
done
assert_contains "binary: the reason" "$(json_get '.findings[].found')" "binary (a NUL byte"
assert_contains "link: not followed" "$(json_get '.findings[].found')" \
	"is a symbolic link (to /etc/sudoers): not followed"
assert_contains "huge: capped" "$(json_get '.findings[].found')" "too large (2097152 bytes"
assert_eq "a line that does not parse is a sudoers finding with its line" \
	"sudoers $H/etc/sudoers.d/garbage:1" \
	"$(json_get ".findings[] | select(.subject == \"$H/etc/sudoers.d/garbage\") | \"\(.kind) \(.file):\(.line)\"")"
assert_eq "the rest was still scanned (mallory in group and gshadow)" 2 \
	"$(json_get '[.findings[] | select(.kind == "group" and .subject == "mallory")] | length')"
if is_root; then
	chown 65534 "$H/etc/group"
	scan_now
	ctl --json drift
	assert_contains "a group file not owned by root is a finding" \
		"$(json_get '.findings[].found')" "$H/etc/group: owned by uid 65534, not root: not read"
	assert_eq "its findings stay open meanwhile (not called resolved)" 2 \
		"$(json_get '[.findings[] | select(.kind == "group" and .subject == "mallory")] | length')"
	chown 0 "$H/etc/group"
else
	tap_skip "a group file not owned by root is a finding" "needs root for chown"
	tap_skip "its findings stay open meanwhile (not called resolved)" "needs root for chown"
fi
rm -f "$H/etc/sudoers.d/binary" "$H/etc/sudoers.d/link" "$H/etc/sudoers.d/huge" \
	"$H/etc/sudoers.d/garbage"

# remediate: remove, after a reload (which scans again by itself).
before=$(scans)
write_policy remove
kill -HUP "$BROKER_PID"
wait_until 10 eval '[ "$(scans)" -gt "$before" ]'
tap_result "a policy reload scans again"
wait_until 5 journal_has '.event == "drift.remediated"'
assert_eq "mallory is taken out of sbx-admin in group and gshadow" 2 \
	"$(count '.event == "drift.remediated" and .user == "mallory" and .ok == true')"
assert_eq "the group file keeps everyone else" "sbx-admin:x:60001:erin" \
	"$(grep '^sbx-admin:' "$H/etc/group")"
assert_eq "and gshadow too" "sbx-admin:!::erin" "$(grep '^sbx-admin:' "$H/etc/gshadow")"
B=$(journal_select '.event == "drift.remediated" and (.file | endswith("/group"))' | jq -r .backup)
assert_contains "a backup of the old file is kept and recorded" "$(grep sbx-admin "${B:-/nonexistent}" 2>&1)" \
	"sbx-admin:x:60001:erin,mallory"
assert_eq "the new file keeps its mode" 644 "$(stat -c %a "$H/etc/group")"
assert_eq "the findings are resolved as removed" 2 \
	"$(count '.event == "drift.resolved" and .how == "removed"')"
write_sudoers "%sbx-admin ALL=(ALL) ALL"
echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackup backup@vault" \
	>"$H/home/svc-backup/.ssh/authorized_keys"
chmod 600 "$H/home/svc-backup/.ssh/authorized_keys"
cp "$H/etc/sudoers" "$T/sudoers.before"
scan_now
assert_eq "remove never touches sudoers or keys: they are reported" \
	"authorized_keys svc-backup;sudoers %sbx-admin;" "$(open_set)"
cmp -s "$H/etc/sudoers" "$T/sudoers.before"
tap_result "the sudoers file is unchanged"

# A grant the policy no longer supports: erin leaves sre (and so the
# eligible of sandbox-admin) while she holds one.
before=$(scans)
sed -i 's/^  sre: \[alice, erin\]/  sre: [alice]/' "$POLICY"
kill -HUP "$BROKER_PID"
wait_until 10 eval '[ "$(scans)" -gt "$before" ]'
ctl --json drift
F=$(json_get '.findings[] | select(.kind == "grant")')
assert_eq "a live grant of someone no longer eligible is a grant finding" "erin" \
	"$(jq -r .subject <<<"${F:-null}")"
assert_contains "saying what changed" "$(jq -r .policy <<<"${F:-null}")" \
	"erin is no longer eligible for sandbox-admin"

# A login that outlives its grant: erin's grant is revoked while a login
# record (utmp) of hers has a live process; erin has no standing login.
ctl --as frank revoke "${G:-0}" --reason "the importer is fixed"
assert_rc "erin's grant is revoked" 0
sleep 300 &
LOGIN_PID=$!
track_pid "$LOGIN_PID"
# glibc's struct utmp on Linux (384 bytes): type USER_PROCESS (7), pid, line,
# id, user, host, exit, session, tv, addr_v6, reserved
python3 - "$H/utmp" "$LOGIN_PID" <<'PY'
import struct, sys, time
rec = struct.pack('<hhi32s4s32s256shhiii4i20s', 7, 0, int(sys.argv[2]), b'pts/9', b'ts/9',
                  b'erin', b'10.0.0.7', 0, 0, 0, int(time.time()), 0, 0, 0, 0, 0, b'')
assert len(rec) == 384
open(sys.argv[1], 'wb').write(rec)
PY
chmod 664 "$H/utmp"
scan_now
ctl --json drift
F=$(json_get '.findings[] | select(.kind == "session" and .subject == "erin")')
assert_contains "a live login of erin after her grant ended is a session finding" \
	"$(jq -r .found <<<"${F:-null}")" "erin is logged in on pts/9 (pid $LOGIN_PID"
assert_contains "and says which grant ended" "$(jq -r .policy <<<"${F:-null}")" \
	"grant ${G:-?} of sandbox-admin has ended"
assert_true "the grant finding is resolved once the grant ended" wait_until 5 journal_has \
	'.event == "drift.resolved" and .kind == "grant" and .subject == "erin"'
kill "$LOGIN_PID"
wait "$LOGIN_PID" 2>/dev/null
scan_now
ctl --json drift
assert_eq "it resolves when the login's process is gone" "0" \
	"$(json_get '[.findings[] | select(.kind == "session")] | length')"
assert_true "recorded as drift.resolved" wait_until 5 journal_has \
	'.event == "drift.resolved" and .kind == "session" and .subject == "erin"'

broker_stop
assert_rc "broker stops cleanly" 0 "$BROKER_RC"
tap_done
