#!/bin/bash
# sbx_sudo.so in real sudo (TESTING.md recipe 10): what it exports and
# links; then, in a private mount namespace with the test's sudoers
# (`%sbx-admin ALL=(ALL) NOPASSWD: ALL`) and sudo.conf, with users whose
# /etc/group entry holds sbx-admin (as a process keeps a group in its
# credentials after its grant ended):
#   - without a live grant the approval plugin refuses, and says why;
#   - with one, `sudo -n id` runs and the journal has command.run with the
#     grant (id, role, reason, approvers) and command.exited with the exit
#     status or signal; sudoers' own refusals are command.refused;
#   - newlines, invalid UTF-8 and a 100 KiB command line are recorded
#     escaped and bounded; an unknown runas user is sudo's refusal;
#   - sbxctl activity --grant ID lists exactly the commands run under it,
#     and sbx-request status ID the latest of them;
#   - the role's sudo: rules: allow covers, approve_each files a
#     one-command request that waits (approved from sbxctl approve and
#     from a signed Slack callback, runs once; the same command waits
#     again; denied, Ctrl-C and no answer within sudo.wait are refused);
#   - after revocation and after expiry the kept group gets nothing;
#   - no broker, and a broker that never answers: refused within the
#     timeout (failmode=secure), or run and spooled (failmode=open), and
#     the spool handed over once the broker is back; a mistyped option
#     stops sudo.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nss_lib.sh"
. "$(dirname "$0")/sudo_lib.sh"
# command.exited is answered once queued, not once durable (docs/protocol.md):
# wait until every run on disk has its end there too (at most 5 s).
settle_exits() {
	local runs

	runs=$(journal_select '.event == "command.run"' | wc -l)
	wait_until 5 eval "[ \$(journal_select '.event == \"command.exited\"' | wc -l) -ge $runs ]" || true
}
. "$(dirname "$0")/slack_lib.sh"
sbx_init

# --- the surface (no root needed) ---------------------------------------------------------------
if [ ! -r "$SUDO_SO" ]; then
	tap_skip "sbx_sudo.so" "not built: sudo_plugin.h is missing (Debian: the sudo package)"
	tap_done
	exit
fi
exported=$(nm -D --defined-only "$SUDO_SO" | awk '{print $3}' | sort | tr '\n' ' ')
assert_eq "sbx_sudo.so exports only its two plugins" "sbx_approval sbx_audit " "$exported"
needed=$(readelf -d "$SUDO_SO" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' |
	grep -vE '^lib(asan|ubsan|stdc\+\+|m|gcc_s|dl|pthread|rt)\.so' | sort | tr '\n' ' ')
assert_eq "sbx_sudo.so needs only libc" "libc.so.6 " "$needed"
calls_exit=$(nm -D --undefined-only "$SUDO_SO" | awk '{print $2}' | sed 's/@.*//' |
	grep -xE 'exit|_exit|_Exit|quick_exit|abort|daemon|fork|vfork|system|popen|sleep' || true)
assert_eq "the plugin never calls exit, abort, fork or sleep" "" "$calls_exit"
dir=$(sed -n 's/^sudoplugindir = //p' "$SBX_BUILDDIR/Makefile")
if [ -f /usr/libexec/sudo/sudoers.so ] && [ "${dir#*\$}" = "$dir" ]; then
	assert_eq "sudoplugindir is where the system's sudoers.so is" "/usr/libexec/sudo" "$dir"
fi

why=$(sudo_skip_reason)
if [ -n "$why" ]; then
	tap_skip "sbx_sudo.so in real sudo" "$why"
	tap_done
	exit
fi
SUDOERS_EXTRA='carol ALL=(ALL) NOPASSWD: /usr/bin/id'
if ! sudo_init "socket=$SOCK timeout=2000" erin:sbx-admin carol: dave: >"$T/init.out"; then
	tap_skip "sbx_sudo.so in real sudo" "$(cat "$T/init.out")"
	tap_done
	exit
fi
# A stand-in Slack (tests/integration/fake_slack.py): one-command
# requests are approved from its signed callback too.
slack_setup
broker_start
tap_result "the broker starts" || { tap_done; exit; }

# --- a kept group without a grant -------------------------------------------------------------------
sudo_as erin id -u
assert_rc "erin (sbx-admin in her credentials, no grant): sudo is refused" 1
assert_contains "the refusal says why, and what to ask for" "$ERR" "holds no live grant or standing role of it on sbx-01 now; ask again: sbx-request sandbox-admin"
assert_eq "journal: command.refused by sbx_approval, via none" "erin/refused/sbx_approval/none" \
	"$(journal_select '.event == "command.refused"' |
		jq -r '"\(.user)/\(.verdict)/\(.plugin)/\(.via)"' | tail -1)"

# --- with a grant ------------------------------------------------------------------------------------
GE=$(nss_grant erin sandbox-admin frank --for 1h)
assert_ne "erin gets sandbox-admin" "" "$GE"
sudo_as erin id -u
assert_rc "with the grant, sudo -n id runs" 0
assert_eq "as root" "0" "$OUT"
run_rec=$(journal_select '.event == "command.run"' | tail -1)
assert_eq "command.run: user, runas, command, grant, role, reason, approvers, via, verdict" \
	"erin/root//usr/bin/id -u/$GE/sandbox-admin/testing the nss module/frank/grant/accepted" \
	"$(printf '%s' "$run_rec" | jq -r '"\(.user)/\(.runas)/\(.command)/\(.id)/\(.role)/\(.reason)/\(.approvers | join(","))/\(.via)/\(.verdict)"')"
assert_match "command.run has the cwd" '^/' "$(printf '%s' "$run_rec" | jq -r .cwd)"
run_seq=$(printf '%s' "$run_rec" | jq -r .seq)
settle_exits
assert_eq "command.exited follows, exit status 0, under the grant" "$run_seq/0/$GE" \
	"$(journal_select '.event == "command.exited"' | jq -r '"\(.run)/\(.exit_status)/\(.id)"' | tail -1)"
sudo_as erin sh -c 'exit 3'
assert_rc "a failing command's status comes through" 3
settle_exits
assert_eq "command.exited records exit status 3" "3" \
	"$(journal_select '.event == "command.exited"' | jq -r .exit_status | tail -1)"
sudo_as erin sh -c 'kill -TERM $$'
settle_exits
assert_eq "command.exited records the signal" "15" \
	"$(journal_select '.event == "command.exited"' | jq -r .signal | tail -1)"

# --- bad input ---------------------------------------------------------------------------------------
sudo_as erin printf '%s' "$(printf 'a\nb\033[31m')" "$(printf 'x\377y')"
assert_rc "newlines, escapes and invalid UTF-8 in args: the command runs" 0
assert_eq "they are recorded escaped" '/usr/bin/printf %s "a\nb\x1b[31m" "x\xffy"' \
	"$(journal_select '.event == "command.run"' | jq -r .command | tail -1)"
assert_eq "no journal line holds a raw control character or invalid UTF-8" "0" \
	"$(LC_ALL=C grep -c -P '[\x00-\x08\x0b-\x1f\x7f]' "$STATE"/journal/* 2>/dev/null | awk -F: '{s+=$NF} END {print s+0}')"
big=$(head -c 102400 /dev/zero | tr '\0' 'x')
sudo_as erin true "$big"
assert_rc "a 100 KiB command line runs" 0
cmd=$(journal_select '.event == "command.run"' | jq -r .command | tail -1)
assert_int_between "it is recorded cut to at most 2 KiB" 100 2100 "${#cmd}"
assert_match "with a marker saying how much is left out" 'more bytes\]$' "$cmd"
sudo_as erin -u nosuchuser-sbx id
assert_rc "an unknown runas user: sudo refuses" 1
assert_contains "it says the user is unknown" "$ERR" "unknown user"
assert_eq "nothing ran: no command.run for it" "" \
	"$(journal_select '.event == "command.run" and (.command | contains("nosuchuser"))')"

# --- outside sbx -----------------------------------------------------------------------------------------
sudo_as carol id -u
assert_rc "carol (a sudoers rule of her own, no sbx group) runs id as root" 0
assert_eq "recorded via none" "carol/none" \
	"$(journal_select '.event == "command.run"' | jq -r '"\(.user)/\(.via)"' | tail -1)"
sudo_as dave id
assert_rc "dave (no sudoers rule) is refused by sudo" 1
assert_eq "journal: command.refused by sudoers, with sudo's words" \
	"dave/error/sudoers_policy/authentication failure/id" \
	"$(journal_select '.event == "command.refused"' | jq -r '"\(.user)/\(.verdict)/\(.plugin)/\(.message)/\(.command)"' | tail -1)"

# --- activity ------------------------------------------------------------------------------------------------
settle_exits
ctl --json activity --grant "$GE" --state-dir "$STATE"
assert_rc "sbxctl activity --grant runs" 0
assert_eq "it lists exactly the commands run under the grant" \
	"command.run command.exited command.run command.exited command.run command.exited command.run command.exited command.run command.exited " \
	"$(json_get '.[].event' | tr '\n' ' ')"

req --as erin --json status "$GE"
assert_eq "sbx-request status lists the grant's commands, with how they ended" \
	'/usr/bin/id -u:0 sh -c "exit 3":3' \
	"$(json_get '.commands[0:2][] | "\(.command | sub("^/[a-z/]*/"; "")):\(.exit_status)"' |
		tr '\n' ' ' | sed 's/ $//; s/^id /\/usr\/bin\/id /')"
assert_eq "all five of them" "5" "$(json_get '.commands | length')"
req --as erin status "$GE"
assert_contains "and in words" "$OUT" "as root, exit 0: /usr/bin/id -u"

# --- the role's sudo: rules ------------------------------------------------------------------------
# sandbox-admin's grants now cover id, true and rm only, and rm needs a
# one-off approval each time (sudo.wait 10s, to keep the test short).
awk '{ print } /^  sandbox-admin:$/ { print "    sudo:"; print "      allow: [\"/usr/bin/id*\", \"/usr/bin/true*\"]"; print "      approve_each: [\"/usr/bin/rm *\"]" }' \
	"$POLICY" >"$T/policy.new" && printf 'sudo:\n  wait: 10s\n' >>"$T/policy.new" &&
	cat "$T/policy.new" >"$POLICY"
loaded=$(journal_select '.event == "policy.loaded"' | wc -l)
kill -HUP "$BROKER_PID"
wait_until 10 eval '[ "$(journal_select '"'"'.event == "policy.loaded"'"'"' | wc -l)" -gt "$loaded" ]'
tap_result "the broker takes the policy with sudo: rules"
sudo_as erin id -u
assert_rc "a command the role's sudo.allow covers runs" 0
assert_eq "recorded with the rule it ran under" "/usr/bin/id*" \
	"$(journal_select '.event == "command.run"' | jq -r .rule | tail -1)"
sudo_as erin cat /etc/hostname
assert_rc "a command outside sudo.allow is refused" 1
assert_contains "saying so" "$ERR" "is not among the commands sandbox-admin covers"
assert_eq "the refusal is recorded under the grant" "$GE/refused" \
	"$(journal_select '.event == "command.refused"' | jq -r '"\(.id)/\(.verdict)"' | tail -1)"

# approve_each: sudo_bg USER CMD... runs sudo in the background (pid in
# BG, output in $T/bg.out, $T/bg.err, status in $T/bg.rc).
sudo_bg() {
	local user=$1
	shift
	rm -f "$T/bg.rc"
	( nsenter -t "$NS_PID" -m -- setpriv --reuid="$user" --regid="$user" --init-groups \
		--reset-env -- sudo -n "$@" >"$T/bg.out" 2>"$T/bg.err"; echo $? >"$T/bg.rc" ) &
	BG=$!
	track_pid "$BG"
}
# one_command_request N: the id of the Nth one-command request.
one_command_request() {
	journal_select '.event == "request.created" and .command != null' | jq -r .id | sed -n "${1}p"
}
sudo_bg erin rm -f /tmp/sbx-approve-each
wait_until 10 eval 'test -n "$(one_command_request 1)"'
R1=$(one_command_request 1)
assert_ne "an approve_each command files a one-command request" "" "$R1"
assert_eq "request.created carries the exact command, cwd, runas and the rule" \
	"erin/sandbox-admin/rm -f /tmp/sbx-approve-each/root//usr/bin/rm *" \
	"$(journal_select ".event == \"request.created\" and .id == ${R1:-0}" |
		jq -r '"\(.user)/\(.role)/\(.command | sub("^/[a-z/]*/"; ""))/\(.runas)/\(.rule)"')"
wait_until 5 grep -qs "waiting up to" "$T/bg.out" "$T/bg.err"
assert_contains "the terminal says who was asked and how long it waits" "$(cat "$T/bg.out" "$T/bg.err")" \
	"asked: erin's manager (frank)"
assert_eq "the command waits" "" "$(cat "$T/bg.rc" 2>/dev/null)"
ctl --as frank approve "${R1:-0}"
assert_rc "frank approves it with sbxctl approve" 0
wait_until 10 test -s "$T/bg.rc"
assert_eq "then it runs" "0" "$(cat "$T/bg.rc" 2>/dev/null)"
assert_eq "command.run names the approval and who gave it" "$R1/frank" \
	"$(journal_select '.event == "command.run" and .approved_request != null' | jq -r '"\(.approved_request)/\(.approved_by | join(","))"' | tail -1)"
assert_eq "the approval ends with its one run" "revoked" \
	"$(journal_select ".event == \"grant.revoked\" and .id == ${R1:-0}" | jq -r '"revoked"' | tail -1)"
sudo_bg erin rm -f /tmp/sbx-approve-each
wait_until 10 eval 'test -n "$(one_command_request 2)"'
R2=$(one_command_request 2)
assert_ne "the same command again waits again: a new request" "$R1" "${R2:-$R1}"
ctl --as frank deny "${R2:-0}" --reason "not now"
wait_until 10 test -s "$T/bg.rc"
assert_eq "a denied one is refused" "1" "$(cat "$T/bg.rc" 2>/dev/null)"
assert_contains "saying who denied it and why" "$(cat "$T/bg.err")" "was denied by frank: not now"
sudo_bg erin rm -f /tmp/sbx-approve-each
wait_until 10 eval 'test -n "$(one_command_request 3)"'
R3=$(one_command_request 3)
wait_until 5 grep -qs "waiting up to" "$T/bg.out" "$T/bg.err"
# Ctrl-C: SIGINT to sudo itself (the subshell's one child: nsenter, then
# setpriv, then sudo, by exec).
pid=$(pgrep -P "$BG")
[ -n "$pid" ] && kill -INT "$pid"
wait_until 10 test -s "$T/bg.rc"
assert_eq "Ctrl-C refuses it" "1" "$(cat "$T/bg.rc" 2>/dev/null)"
assert_eq "and cancels the request" "request.cancelled" \
	"$(journal_select ".id == ${R3:-0} and .event == \"request.cancelled\"" | jq -r .event)"
sudo_bg erin rm -f /tmp/sbx-approve-each
wait_until 10 eval 'test -n "$(one_command_request 4)"'
R4=$(one_command_request 4)
slack_wait_delivered "${R4:-0}" pending/0
assert_contains "the Slack message shows the exact command" \
	"$(slack_messages "${R4:-0}" | jq -r '.json | tostring')" "rm -f /tmp/sbx-approve-each"
slack_click U0FRANK approve "$(slack_button "${R4:-0}" approve)"
assert_eq "frank approves it from Slack (signed callback)" "200" "$HTTP"
wait_until 10 test -s "$T/bg.rc"
assert_eq "and it runs once" "0" "$(cat "$T/bg.rc" 2>/dev/null)"
assert_eq "command.run names that approval" "$R4" \
	"$(journal_select '.event == "command.run" and .approved_request != null' | jq -r .approved_request | tail -1)"
t0=$(date +%s)
sudo_as erin rm -f /tmp/sbx-approve-each
t1=$(date +%s)
assert_rc "nobody answers within sudo.wait: refused" 1
assert_contains "saying so" "$ERR" "got no approval in time"
assert_int_between "after the wait (10 s), not much later" 9 13 $((t1 - t0))

# --- after revocation ------------------------------------------------------------------------------------
ctl --as frank revoke "$GE" --reason "done"
sudo_as erin id -u
assert_rc "after revocation, the kept group no longer gets erin root" 1
GX=$(nss_grant erin sandbox-admin frank --for 5s)
sudo_as erin id -u
assert_rc "a short grant: sudo works during it" 0
req --json status "${GX:-0}"
exp=$(to_s "$(json_get .expires_at)") || exp=$(($(date +%s) + 6))
while [ "$(date +%s)" -le "$exp" ]; do sleep 0.2; done
wait_record 5 "(.event == \"grant.expired\" and .id == ${GX:-0})"
sudo_as erin id -u
assert_rc "after expiry, the process that kept the group is refused" 1
assert_contains "by sbx_approval, saying why" "$ERR" "holds no live grant"

# --- no broker, and a broker that never answers -------------------------------------------------------------
GE2=$(nss_grant erin sandbox-admin frank --for 1h)
broker_stop
t0=$(date +%s%N)
sudo_as erin id -u
t1=$(date +%s%N)
assert_rc "no broker (failmode=secure): refused" 1
assert_contains "with a clear message" "$ERR" "unreachable"
assert_int_between "at once" 0 1000 $(((t1 - t0) / 1000000))
python3 "$(dirname "$0")/silent_broker.py" hang "$SOCK" "$T/silent.log" >"$T/silent.out" 2>&1 &
SILENT=$!
track_pid "$SILENT"
wait_until 5 grep -qs ready "$T/silent.out"
t0=$(date +%s%N)
sudo_as erin id -u
t1=$(date +%s%N)
assert_rc "a broker that never answers: refused" 1
assert_int_between "after the 2 s timeout, not later" 1900 3000 $(((t1 - t0) / 1000000))
kill "$SILENT" 2>/dev/null
wait "$SILENT" 2>/dev/null
rm -f "$SOCK"
sudo_conf "socket=$SOCK timeout=2000 failmode=open spool=$T/spool"
sudo_as erin id -u
assert_rc "failmode=open: no broker, the command runs" 0
assert_eq "and is spooled before it runs, with its end" "2" "$(ls "$T/spool" 2>/dev/null | wc -l)"
assert_contains "the spool has the command" "$(cat "$T"/spool/*.run 2>/dev/null)" 'command=/usr/bin/id -u'
# One user cannot fill the spool (and the disk) while the broker is away:
# with 256 of erin's files there, her next command is refused, saying why.
ERIN_UID=$(nsenter -t "$NS_PID" -m -- id -u erin)
for i in $(seq 1000 1255); do
	: >"$T/spool/1.$i.1.u$ERIN_UID.run"
done
sudo_as erin id -u
assert_rc "failmode=open: a user with 256 commands spooled is refused" 1
assert_contains "saying the spool is full for now" "$ERR" "holds as many commands as it may"
assert_eq "and nothing more was written" "258" "$(ls "$T/spool" | wc -l)"
rm -f "$T/spool/1."*".1.u$ERIN_UID.run"
broker_start
tap_result "the broker is back"
sudo_as erin true
assert_rc "the next sudo runs" 0
assert_eq "and hands the spool to the broker: the spooled run and its end are recorded" \
	"command.run/erin//usr/bin/id -u/unknown/-/true command.exited/erin//usr/bin/id -u/unknown/0/true" \
	"$(journal_select '.spooled == true' |
		jq -r '"\(.event)/\(.user)/\(.command)/\(.via)/\(.exit_status // "-")/\(.spooled)"' |
		tr '\n' ' ' | sed 's/ $//')"
assert_eq "the spool is empty afterwards" "0" "$(ls "$T/spool" | wc -l)"
assert_eq "the spooled run says when it ran" "1" \
	"$(journal_select '.spooled == true and .event == "command.run" and (.ran_at | test("^20"))' | wc -l)"
sudo_conf "socket=$SOCK timout=2000"
sudo_as erin true
assert_rc "a mistyped option in sudo.conf: sudo refuses to run" 1
assert_contains "and says which option" "$ERR" 'bad option "timout=2000"'
: "$GE2"
tap_done
