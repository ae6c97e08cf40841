#!/bin/bash
# make install and make uninstall (docs/install.md, "Without packages"):
# install puts the man pages, the unit (its paths this build's), bash
# completion, the default policy (never over an existing one) and the
# state dir (0700) in place; uninstall refuses, removing nothing, while a
# PAM file names the pam_sbx.so it would remove or sbx-brokerd runs from
# where it would remove it, and otherwise leaves only an edited policy and
# a journal behind.  Into DESTDIR and a prefix under the test's temp dir.
. "$(dirname "$0")/lib.sh"
sbx_init
R="$T/root"

# The make of `make check` passes its flags (jobserver, variables) down: not to this one.
make_in() { run env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$SBX_BUILDDIR" "$@"; }
files_in() { (cd "$1" && find . -type f -o -type l | sort); }
var() { sed -n "s|^$1 = ||p" "$SBX_BUILDDIR/Makefile"; }
PAMMODDIR=$(var pammoddir)

make_in install DESTDIR="$R"
assert_rc "make install DESTDIR=..." 0
INSTALLED=$(files_in "$R")
for f in man1/sbx-request.1 man5/sbx-policy.5 man8/sbx-brokerd.8 man8/sbxctl.8 \
	man8/pam_sbx.8 man8/libnss_sbx.8; do
	assert_contains "man page $f installed" "$INSTALLED" "/share/man/$f"
done
assert_contains "the unit installed" "$INSTALLED" "/system/sbx-brokerd.service"
assert_contains "bash completion for sbx-request" "$INSTALLED" "/completions/sbx-request"
assert_contains "bash completion for sbxctl" "$INSTALLED" "/completions/sbxctl"
assert_contains "the commented examples" "$INSTALLED" "/examples/ldap.yaml"
assert_contains "docs/install.md" "$INSTALLED" "/doc/sbx/install.md"
POLICY=$(echo "$INSTALLED" | grep '/sbx/policy.yaml$' | sed "s|^\.|$R|")
assert_true "the default policy installed" cmp -s "$POLICY" "$SBX_SRCDIR/packaging/default-policy.yaml"
UNIT=$(echo "$INSTALLED" | grep 'sbx-brokerd.service$' | sed "s|^\.|$R|")
assert_match "the unit runs this build's sbx-brokerd" \
	"^ExecStart=$(var prefix | sed 's/[.]/\\./g')/sbin/sbx-brokerd --foreground --config " "$(cat "$UNIT")"
assert_eq "no @...@ left in the unit" "" "$(grep -o '@[a-z]*@' "$UNIT")"
STATE_DIR=$(find "$R" -path '*/lib/sbx' -type d)
assert_eq "the state dir, mode 0700" 700 "$(stat -c %a "$STATE_DIR" 2>/dev/null)"

echo "# edited" >>"$POLICY"
make_in install DESTDIR="$R"
assert_contains "a second make install keeps an existing policy" "$OUT" "keeping $POLICY"
assert_contains "its edit survives" "$(cat "$POLICY")" "# edited"

# --- refusals ---------------------------------------------------------------------------------
mkdir -p "$R/etc/pam.d"
printf '# account required pam_sbx.so\naccount required /opt/other/pam_sbx.so\n' >"$R/etc/pam.d/sshd"
make_in uninstall DESTDIR="$R"
assert_rc "a comment, or another module's path, does not stop make uninstall (checked by removing the next line)" 0
make_in install DESTDIR="$R"
echo "account required $PAMMODDIR/pam_sbx.so exempt=root" >>"$R/etc/pam.d/sshd"
BEFORE=$(files_in "$R")
make_in -j2 uninstall DESTDIR="$R"
assert_ne "make -j2 uninstall refuses while /etc/pam.d/sshd names this pam_sbx.so" 0 "$RC"
assert_contains "saying which line" "$ERR" "$R/etc/pam.d/sshd:3:account required $PAMMODDIR/pam_sbx.so"
assert_contains "and what to do" "$ERR" "Remove those lines first"
assert_eq "and it removed nothing" "$BEFORE" "$(files_in "$R")"
case $PAMMODDIR in
/lib/*/security | /usr/lib/*/security)
	sed -i '$d' "$R/etc/pam.d/sshd"
	echo "session required pam_sbx.so" >>"$R/etc/pam.d/sshd"
	make_in uninstall DESTDIR="$R"
	assert_ne "a bare pam_sbx.so counts when the module is where libpam looks" 0 "$RC"
	;;
*) tap_skip "a bare pam_sbx.so counts" "this build's module dir ($PAMMODDIR) is not libpam's" ;;
esac

sed -i '/^[a-z]/d' "$R/etc/pam.d/sshd"
mkdir -p "$STATE_DIR/journal" && echo "{}" >"$STATE_DIR/journal/0000000000000001.jsonl"
make_in uninstall DESTDIR="$R"
assert_rc "without the line, make uninstall goes ahead" 0
assert_contains "it keeps an edited policy, saying so" "$OUT" "keeping $POLICY: it is not the default policy"
assert_contains "and the journal" "$OUT" "keeping $STATE_DIR: it holds the journal"
left=$(files_in "$R" | grep -v '^./etc/pam.d/sshd$' | sed "s|^\.|$R|")
assert_eq "nothing else is left" "$(printf '%s\n%s' "$POLICY" "$STATE_DIR/journal/0000000000000001.jsonl" | sort)" "$left"

# --- a running broker -------------------------------------------------------------------------
# A real prefix, no DESTDIR: every directory configure made absolute goes
# under the temp dir too.
P="$T/prefix"
DIRS=(prefix="$P" pammoddir="$P/lib/security" nssdir="$P/lib" systemdsystemunitdir="$P/lib/systemd"
	bashcompletiondir="$P/share/bash-completion")
make_in install "${DIRS[@]}"
assert_rc "make install prefix=... (the temp dir)" 0
# The installed broker, on the test's socket and state dir.
BROKERD="$P/sbin/sbx-brokerd" broker_start
assert_true "the installed sbx-brokerd runs" alive "$BROKER_PID"
make_in uninstall "${DIRS[@]}"
assert_ne "make uninstall refuses while sbx-brokerd runs from $P/sbin" 0 "$RC"
assert_contains "naming its pid" "$ERR" "sbx-brokerd is running from $P/sbin (pid $BROKER_PID"
assert_true "sbx-brokerd is still there" test -x "$P/sbin/sbx-brokerd"
broker_stop
make_in uninstall "${DIRS[@]}"
assert_rc "once it has stopped, make uninstall goes ahead" 0
assert_eq "and removes everything" "" "$(files_in "$P")"

tap_done
