#!/bin/bash
# The Debian packages for real, as docs/install.md describes them: `make
# deb` from a fresh configure of this tree (through the `make dist`
# tarball), lintian, `apt-get install ./...deb`, every file where
# docs/install.md says, pam.d unchanged until `pam-auth-update --enable
# sbx`, the installed broker run as its unit would run it (user,
# capabilities, read-only mounts, NOTIFY_SOCKET, JOURNAL_STREAM), one
# request through the installed CLIs, PAM module (pamtester) and NSS module
# (getent), a removal refused while a PAM file names the module, then
# `apt-get purge`: pam.d and nsswitch.conf back to their bytes, the broker
# stopped, nothing left but the journal.
#
# Root only.  Everything that changes the system happens in a private mount
# namespace whose /etc, /usr and /var are overlays on the host's (and /run
# a tmpfs): apt, dpkg, pam-auth-update and the maintainer scripts run for
# real, but the host's files, dpkg database and PAM stacks are never
# written, whether the test passes, fails or is killed, so it can run
# beside the other tests and twice.
. "$(dirname "$0")/lib.sh"
sbx_init
RUN_TIMEOUT=600

skip_all() {
	tap_skip "the Debian packages build, install, work and purge cleanly" "$1"
	tap_done
	exit
}
is_root || skip_all "needs root (apt-get install in a private mount namespace)"
for tool in dpkg-buildpackage dh dh_installnss lintian apt-get dpkg-deb pam-auth-update \
	pamtester unshare nsenter setpriv flock systemd-analyze python3 getent useradd man; do
	command -v "$tool" >/dev/null || skip_all "$tool is not installed (bash scripts/deps.sh test)"
done
grep -qw overlay /proc/filesystems || skip_all "the kernel has no overlayfs"
[ -e "$SBX_SRCDIR/config.status" ] &&
	skip_all "the source tree is configured in place; this test configures it anew (VPATH)"
# One at a time: each run builds in its own dir, but two would share a CPU
# budget that one already stretches.
exec 8>/tmp/sbx-packaging-test.lock
flock -w 1200 8 || skip_all "another packaging test held the lock for 20 minutes"

ARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
DEB_ARCH=$(dpkg --print-architecture)
INSTALL_MD="$SBX_SRCDIR/docs/install.md"

# --- build and lintian ------------------------------------------------------------------------
mkdir "$T/build"
t0=$(date +%s)
(
	# Not the flags of the `make check` that runs this test.
	unset MAKEFLAGS MFLAGS MAKELEVEL
	cd "$T/build" &&
		"$SBX_SRCDIR/configure" -q >configure.log 2>&1 &&
		DEB_BUILD_OPTIONS=nocheck make deb >deb.log 2>&1
)
rc=$?
diag "configure + make deb (nocheck) took $(($(date +%s) - t0)) s"
if ! assert_eq "make deb builds the packages from a fresh configure (the make dist tarball)" 0 "$rc"; then
	tail -n 30 "$T/build/deb.log" "$T/build/configure.log" 2>/dev/null | sed 's/^/#   /'
	tap_done
	exit
fi
D="$T/build/deb"
DEBS=("$D/sbx_"*"_$DEB_ARCH.deb" "$D/libpam-sbx_"*"_$DEB_ARCH.deb" "$D/libnss-sbx_"*"_$DEB_ARCH.deb")
assert_eq "three packages: sbx, libpam-sbx, libnss-sbx" 3 "$(ls "${DEBS[@]}" 2>/dev/null | wc -l)"
assert_true "a source package too (.dsc, .orig.tar.gz, .debian.tar.xz)" \
	test -s "$D"/sbx_*.dsc -a -s "$D"/sbx_*.orig.tar.gz -a -s "$D"/sbx_*.debian.tar.xz

t0=$(date +%s)
run lintian --fail-on error,warning "$D"/sbx_*.changes
diag "lintian took $(($(date +%s) - t0)) s"
assert_rc "lintian: no errors or warnings (overrides carry their reasons)" 0
[ -n "$OUT" ] && diag "$OUT"

# --- the file table of docs/install.md --------------------------------------------------------
# Rows "| `/path` | package | what |"; ARCH is the multiarch triplet.
TABLE=$(sed -n 's/^| `\(\/[^`]*\)` | \(sbx\|libpam-sbx\|libnss-sbx\) |.*/\2 \1/p' "$INSTALL_MD" |
	sed "s/ARCH/$ARCH/")
assert_int_between "docs/install.md lists the packages' files" 20 200 "$(printf '%s\n' "$TABLE" | wc -l)"

# pkg FILE: the row's package for FILE, by pattern; empty when none.
table_pkg() {
	local pkg pat

	while read -r pkg pat; do
		# shellcheck disable=SC2053 # the table's * are patterns
		[[ $1 == $pat ]] && {
			echo "$pkg"
			return
		}
	done <<<"$TABLE"
}
unlisted=""
for deb in "${DEBS[@]}"; do
	pkg=$(dpkg-deb -f "$deb" Package)
	while read -r f; do
		[ "$(table_pkg "$f")" = "$pkg" ] || unlisted+="$pkg: $f"$'\n'
	done < <(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $6 }' | sed 's|^\./|/|')
done
assert_eq "every file of the packages is in docs/install.md's table, under its package" "" "$unlisted"

# --- the namespace ----------------------------------------------------------------------------
HOST_MNT=$(readlink /proc/self/ns/mnt)
mkdir "$T/ov"
unshare -m --propagation private -- bash -c '
	set -e
	for d in etc usr var; do
		mkdir -p "$1/$d/upper" "$1/$d/work"
		mount -t overlay "sbx-test-$d" -o "lowerdir=/$d,upperdir=$1/$d/upper,workdir=$1/$d/work" "/$d"
	done
	mount -t tmpfs -o mode=0755 sbx-test-run /run
	mkdir -p /run/lock
	touch "$1/ready"
	# Dies with the test, even one killed with SIGKILL: nothing keeps the
	# namespace (and the broker in it) alive after it.
	exec setpriv --pdeathsig KILL -- sleep infinity' sh "$T/ov" 2>"$T/ns.log" &
NS_PID=$!
track_pid "$NS_PID"
wait_until 10 test -e "$T/ov/ready"
NS_MNT=$(readlink "/proc/$NS_PID/ns/mnt" 2>/dev/null)
if ! [ -e "$T/ov/ready" ] || [ -z "$NS_MNT" ] || [ "$NS_MNT" = "$HOST_MNT" ]; then
	tap_fail "a private mount namespace with /etc, /usr and /var as overlays"
	diag "$(cat "$T/ns.log")"
	tap_done
	exit
fi
tap_ok "a private mount namespace with /etc, /usr and /var as overlays"

# ns CMD...: CMD inside the namespace, never anywhere else: the namespace
# is checked by its inode each time (a pid the kernel reused would name
# the host's).  A program, so that `run` (timeout) can run it.
mkdir "$T/bin"
cat >"$T/bin/ns" <<EOF
#!/bin/sh
if [ "\$(readlink /proc/$NS_PID/ns/mnt 2>/dev/null)" != "$NS_MNT" ]; then
	echo "packaging.sh: the test's namespace is gone; not running \$*" >&2
	exit 99
fi
exec nsenter -t $NS_PID -m -- "\$@"
EOF
chmod 755 "$T/bin/ns"
PATH="$T/bin:$PATH"
nsx() { ns bash -c "$1"; }

# Users for PAM (pam_unix's account check wants them) and sbx's policy.
for u in alice bob erin frank; do
	ns useradd -M -s /bin/sh "$u" || tap_fail "useradd $u in the namespace"
done
# The state before the packages: what must come back after the purge.
# Files as "SHA256  PATH", anything else that is not a directory (overlay
# whiteouts, links) as "TYPE:TARGET  PATH".
snapshot() {
	(cd "$T/ov" && {
		find etc/upper usr/upper var/upper -type f -print0 | sort -z | xargs -0 -r sha256sum
		find etc/upper usr/upper var/upper -not -type f -not -type d -printf '%y:%l  %p\n' | sort
	})
}
BEFORE=$(snapshot)
# The package adds its own service (sbx-web, the dashboard's sign-in) and
# changes no other stack.
PAMD_BEFORE=$(nsx 'cd /etc/pam.d && sha256sum $(ls | grep -vx sbx-web)')
NSS_BEFORE=$(ns sha256sum /etc/nsswitch.conf)
ns cp /etc/nsswitch.conf "$T/nsswitch.before"

# --- install ----------------------------------------------------------------------------------
t0=$(date +%s)
run ns env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${DEBS[@]}"
diag "apt-get install took $(($(date +%s) - t0)) s"
assert_rc "apt-get install ./sbx ./libpam-sbx ./libnss-sbx" 0

missing=$(nsx "for p in $(printf '%s\n' "$TABLE" | awk '{ print $2 }' | tr '\n' ' '); do
	[ -e \"\$p\" ] || echo \"\$p\"; done")
assert_eq "every file docs/install.md lists is on disk" "" "$missing"
wrong=""
while read -r pkg pat; do
	case $pat in *'*'*) continue ;; esac
	owner=$(ns dpkg-query -S "$pat" 2>/dev/null | sed 's/:.*//; s/:.*//')
	[ "${owner%:*}" = "$pkg" ] || wrong+="$pat: $owner (docs: $pkg)"$'\n'
done <<<"$TABLE"
assert_eq "each belongs to the package docs/install.md names" "" "$wrong"
run ns dpkg-query -W -f '${Conffiles}' sbx
assert_contains "/etc/sbx/policy.yaml is a conffile" "$OUT" "/etc/sbx/policy.yaml"
run ns cat /usr/share/pam-configs/sbx
assert_match "the PAM profile is off until enabled (Default: no)" "^Default: no" "$OUT"

assert_eq "pam.d is unchanged by the install (but for its own sbx-web)" "$PAMD_BEFORE" \
	"$(nsx 'cd /etc/pam.d && sha256sum $(ls | grep -vx sbx-web)')"
assert_true "the dashboard's PAM service is installed" nsx 'test -f /etc/pam.d/sbx-web'

changed=$(ns diff "$T/nsswitch.before" /etc/nsswitch.conf | grep '^[<>]')
assert_match "nsswitch.conf: sbx added to the group: line" '^> group:.* sbx$' "$changed"
assert_eq "nsswitch.conf: only that line changed" 2 "$(printf '%s\n' "$changed" | wc -l)"

run ns systemd-analyze security --offline=true /lib/systemd/system/sbx-brokerd.service
score=$(printf '%s\n' "$OUT" | sed -n 's/.*Overall exposure level for sbx-brokerd.service: \([0-9.]*\).*/\1/p')
diag "systemd-analyze security: $score"
assert_true "systemd-analyze security rates the unit 3.0 or better (got ${score:-nothing})" \
	awk -v s="${score:-99}" 'BEGIN { exit !(s <= 3.0) }'
run ns systemd-analyze verify /lib/systemd/system/sbx-brokerd.service
assert_eq "systemd-analyze verify: nothing to say" "0:" "$RC:$ERR"

for page in sbx-brokerd sbx-request sbxctl pam_sbx libnss_sbx sbx-policy; do
	run ns env MANWIDTH=80 man --warnings "$page"
	assert_eq "man $page renders without warnings" "0:" "$RC:$ERR"
done

# --- the broker, as the unit runs it ----------------------------------------------------------
EXEC_START=$(ns sed -n 's/^ExecStart=//p' /lib/systemd/system/sbx-brokerd.service)
NOTIFY="@sbx-test-notify-$$"
# What systemd would hear on NOTIFY_SOCKET, one datagram per line.
setpriv --pdeathsig KILL -- python3 - "$T/notify" "$NOTIFY" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[2][1:])
open(sys.argv[1] + ".bound", "w").close()
s.settimeout(300)
with open(sys.argv[1], "a") as f:
    while True:
        try:
            m = s.recv(4096)
        except socket.timeout:
            break
        f.write(m.decode().replace("\n", " ") + "\n")
        f.flush()
EOF
track_pid $!
wait_until 10 test -e "$T/notify.bound"

# unit_start LOG: ExecStart= under what the unit sets: RuntimeDirectory and
# StateDirectory (writable), ProtectSystem=strict and ProtectHome=read-only
# (every other mount read-only), PrivateTmp, UMask=0077,
# CapabilityBoundingSet=CAP_KILL, NoNewPrivileges; stderr is the "journal"
# (JOURNAL_STREAM names the log file).  (And, for the test's sake only,
# killed if the test dies.)
unit_start() {
	: >"$1"
	# shellcheck disable=SC2086 # ExecStart= is words
	ns env NOTIFY_SOCKET="$NOTIFY" JOURNAL_STREAM="$(stat -c '%d:%i' "$1")" \
		unshare -m --propagation private -- bash -c '
		set -e
		mkdir -p -m 0755 /run/sbx
		mkdir -p -m 0700 /var/lib/sbx
		mount --bind /run/sbx /run/sbx
		mount --bind /var/lib/sbx /var/lib/sbx
		awk "{ print \$5 }" /proc/self/mountinfo | while read -r m; do
			case $m in
			/proc | /proc/* | /sys | /sys/* | /dev | /dev/* | /run/sbx | /var/lib/sbx) ;;
			*) mount -o remount,bind,ro "$m" ;;
			esac
		done
		mount -t tmpfs -o mode=1777 sbx-private-tmp /tmp
		mount -t tmpfs -o mode=1777 sbx-private-var-tmp /var/tmp
		umask 0077
		exec setpriv --bounding-set=-all,+kill --inh-caps=-all --ambient-caps=-all \
			--no-new-privs --pdeathsig KILL -- "$@"' sh $EXEC_START 2>>"$1" &
	BPID=$!
	track_pid "$BPID"
}
notified() { grep -c "$1" "$T/notify" 2>/dev/null; }
# ready_seen N: READY=1 arrived at least N times.
ready_seen() { [ "$(notified READY=1)" -ge "$1" ] 2>/dev/null; }
# Has our child PID exited (a zombie until we wait for it)?
exited() { ! alive "$1" || [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" = Z ]; }
# broker_exit: wait up to 20 s for the broker to exit; BROKER_RC gets its
# status ("running" when it did not).
broker_exit() {
	BROKER_RC=running
	wait_until 20 exited "$BPID" || return 0
	wait "$BPID"
	BROKER_RC=$?
}
# unit_stop: SIGTERM, as systemctl stop sends it.
unit_stop() {
	kill -TERM "$BPID"
	broker_exit
}

# 1. The policy as installed: nobody gains access, and the broker says so.
unit_start "$T/unit1.log"
wait_until 20 ready_seen 1
assert_eq "Type=notify: READY=1 reaches NOTIFY_SOCKET" 1 "$(notified READY=1)"
run ns sbxctl status
assert_rc "the installed broker answers (sbxctl status)" 0
run grep -E '^Cap(Bnd|Eff)|^NoNewPrivs' "/proc/$BPID/status"
assert_eq "it runs with CAP_KILL alone and NoNewPrivs, as the unit sets" \
	"CapEff: 0000000000000020 CapBnd: 0000000000000020 NoNewPrivs: 1" "$(echo $OUT)"
assert_match "the default policy: it says nobody gains access, at priority <4>" \
	'^<4>warning: /etc/sbx/policy.yaml: the policy has no roles: nobody can log in' "$(cat "$T/unit1.log")"
assert_match "journald priority prefixes: <6> on info lines, without the program's name" \
	'^<6>info: ready: host ' "$(cat "$T/unit1.log")"
run ns sbxctl check alice
assert_eq "with the default policy nobody may log in (sbxctl check alice: denied)" 1 "$RC"
unit_stop
assert_eq "SIGTERM stops it cleanly" 0 "$BROKER_RC"
assert_eq "STOPPING=1 reaches NOTIFY_SOCKET" 1 "$(notified STOPPING=1)"

# 2. A policy with roles: the reference policy, shipped as an example.
ns cp /usr/share/doc/sbx/examples/policy.yaml /etc/sbx/policy.yaml
run ns sbx-brokerd --check --config /etc/sbx/policy.yaml
assert_eq "ExecReload's check: the reference policy is valid, no warnings" "0:" "$RC:$ERR"
unit_start "$T/unit2.log"
wait_until 20 ready_seen 2
assert_eq "READY=1 again on the next start" 2 "$(notified READY=1)"

run ns pamtester login bob acct_mgmt
assert_rc "PAM before pam-auth-update --enable sbx: bob gets in (sbx is not asked)" 0
run ns pam-auth-update --enable sbx
assert_rc "pam-auth-update --enable sbx" 0
account=$(ns grep -n pam_sbx /etc/pam.d/common-account)
session=$(ns grep -n pam_sbx /etc/pam.d/common-session)
assert_match "common-account gains pam_sbx" 'required[[:space:]]+pam_sbx\.so exempt=root' "$account"
assert_match "common-session gains pam_sbx" 'required[[:space:]]+pam_sbx\.so exempt=root' "$session"
assert_eq "common-session-noninteractive (cron, sudo) does not" "" \
	"$(ns grep pam_sbx /etc/pam.d/common-session-noninteractive)"

run ns pamtester login alice acct_mgmt
assert_rc "installed pam_sbx: alice (standing) gets in" 0
run ns pamtester login bob acct_mgmt
assert_ne "installed pam_sbx: bob (no role) does not" 0 "$RC"
assert_contains "bob is told why" "$OUT$ERR" "bob has no role that allows logging in on sbx-01"
run ns pamtester login root acct_mgmt
assert_rc "root still gets in" 0
run ns pamtester login erin acct_mgmt
assert_ne "erin without a grant does not" 0 "$RC"
assert_contains "erin is told what to ask for" "$OUT$ERR" "Run: sbx-request sandbox-admin"

run ns sbx-request --as erin sandbox-admin --for 30m --reason "packaging test of a grant" --json
assert_rc "installed sbx-request: erin asks for sandbox-admin" 0
ID=$(out_id)
run ns sbxctl --as frank approve "$ID" --comment "ok"
assert_rc "installed sbxctl: frank approves request $ID" 0
run ns pamtester login erin acct_mgmt
assert_rc "with the grant, erin gets in through the installed pam_sbx" 0
run ns pamtester su erin open_session close_session
assert_rc "and her session opens and closes (registered with the broker)" 0
run ns getent group sbx-admin
assert_match "installed libnss_sbx: getent group sbx-admin lists erin" '^sbx-admin:[^:]*:60001:.*erin' "$OUT"
run ns id -nG erin
assert_contains "id erin shows sbx-admin" "$OUT" "sbx-admin"
run ns bash -c 'source /usr/share/bash-completion/completions/sbx-request
	COMP_WORDS=(sbx-request sandbox-a); COMP_CWORD=1; _sbx_request; echo "${COMPREPLY[*]}"'
assert_eq "installed bash completion offers the broker's roles" "sandbox-admin" "$OUT"
run ns sbxctl --as frank revoke "$ID" --reason "done"
assert_rc "sbxctl revoke" 0
run ns getent group sbx-admin
assert_match "after the revocation sbx-admin has no members" '^sbx-admin:[^:]*:60001:$' "$OUT"
run ns sbxctl audit query --event session.opened
assert_contains "the journal recorded erin's session" "$OUT" "erin"

# --- removal ----------------------------------------------------------------------------------
nsx 'echo "account required pam_sbx.so" >/etc/pam.d/sbx-test'
run ns env DEBIAN_FRONTEND=noninteractive apt-get remove -y libpam-sbx
assert_ne "removing libpam-sbx is refused while /etc/pam.d/sbx-test names pam_sbx.so" 0 "$RC"
assert_contains "the refusal names the line" "$OUT$ERR" "/etc/pam.d/sbx-test:1:account required pam_sbx.so"
assert_true "the module is still there" ns test -e "/lib/$ARCH/security/pam_sbx.so"
assert_eq "and the enabled profile untouched" "$account" "$(ns grep -n pam_sbx /etc/pam.d/common-account)"
ns rm -f /etc/pam.d/sbx-test

t0=$(date +%s)
run ns env DEBIAN_FRONTEND=noninteractive apt-get purge -y sbx libpam-sbx libnss-sbx
diag "apt-get purge took $(($(date +%s) - t0)) s"
assert_rc "apt-get purge sbx libpam-sbx libnss-sbx" 0
assert_contains "the purge says the journal is kept" "$OUT$ERR" "the journal in /var/lib/sbx is kept"
broker_exit
assert_eq "the purge stopped the broker, cleanly (no systemd: start-stop-daemon)" 0 "$BROKER_RC"
assert_eq "pam.d: every file back to its bytes" "$PAMD_BEFORE" "$(nsx 'cd /etc/pam.d && sha256sum *')"
assert_eq "nsswitch.conf back to its bytes" "$NSS_BEFORE" "$(ns sha256sum /etc/nsswitch.conf)"
run ns dpkg-query -W -f '${db:Status-Abbrev}' sbx libpam-sbx libnss-sbx
assert_contains "dpkg knows none of them any more" "$ERR" "no packages found matching sbx"
assert_true "/run/sbx is gone" ns test ! -e /run/sbx
run ns sh -c 'ls /var/lib/sbx/journal/*.jsonl'
assert_rc "the journal is kept (/var/lib/sbx/journal/*.jsonl)" 0

# Every file that differs from before the install (a file copied up but
# the same as the host's is not a difference): bookkeeping of dpkg, apt and
# man-db, ld.so.cache, and the journal; anything else is left over.
same_as_host() {
	local p=$1 d=${1%%/*}

	[ -f "$T/ov/$p" ] && cmp -s "$T/ov/$p" "/$d/${p#"$d"/upper/}"
}
AFTER=$(snapshot)
left=$(diff <(printf '%s\n' "$BEFORE") <(printf '%s\n' "$AFTER") | sed -n 's/^> [^ ]*  //p' |
	grep -vE '^var/upper/(log/|cache/|lib/dpkg/(lock|lock-frontend|status-old|triggers/Lock)$|lib/sbx/journal/)' |
	grep -vE '^etc/upper/ld\.so\.cache$' | while read -r p; do same_as_host "$p" || echo "$p"; done)
assert_eq "nothing else is left (overlay upper dirs against before the install)" "" "$left"
gone=$(printf '%s\n' "$BEFORE" | sed 's/^[^ ]*  //' | sort -u |
	comm -23 - <(printf '%s\n' "$AFTER" | sed 's/^[^ ]*  //' | sort -u))
assert_eq "and nothing that was there before is missing" "" "$gone"

diag "packaging.sh took $SECONDS s"
tap_done
