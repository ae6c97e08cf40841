#!/bin/bash
# pam_sbx's account stage under pam_wrapper + pamtester (no root needed,
# /etc/pam.d untouched), against a live broker on the reference policy and
# against fake brokers that misbehave:
# standing user allowed; user with no role refused with the message;
# eligible user refused, allowed with a grant, refused after expiry and
# after revocation; broker stopped: secure refuses within the timeout,
# open allows and says so; exempt user allowed with the broker down; a
# broker that never answers does not hold the module past its timeout;
# garbage replies are refused even with failmode=open; a socket not owned
# by root is not trusted; unknown options are logged and ignored; a user
# name that cannot be framed (5,000 bytes, not UTF-8) is refused with
# failmode=open whether the broker runs or not, and never sent.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pam_lib.sh"
sbx_init
pam_init

pam_service sbx
pam_service sbx_open failmode=open
pam_service sbx_exempt exempt=zed,root exempt=yves
pam_service sbx_fast timeout=500
pam_service sbx_fast_open timeout=500 failmode=open
pam_service sbx_odd frobnicate timeout=soon failmode=maybe debug

broker_start
tap_result "broker starts" || {
	tap_done
	exit
}

# --- decisions -------------------------------------------------------------
PT_OPTS=(-I rhost=192.0.2.10 -I tty=pts/3)
pt sbx alice acct_mgmt
assert_rc "alice (standing member of sandbox-user) is allowed" 0
assert_not_contains "an allowed login prints nothing of sbx" "$OUT" "sbx:"
# access.checked may be answered before its sync (docs/audit.md): poll.
wait_record 3 '.event == "access.checked" and .user == "alice"'
rec=$(last_field '.event == "access.checked" and .user == "alice"' \
	'[.service, .rhost, .tty, .outcome, .role] | join(" ")')
assert_eq "access.checked records service, rhost, tty, outcome and role" \
	"sbx 192.0.2.10 pts/3 allowed sandbox-user" "$rec"
assert_contains "one audit line per decision in syslog" "$LOGS" \
	"account: user=alice service=sbx rhost=192.0.2.10 tty=pts/3: allowed"

pt sbx bob acct_mgmt
assert_rc "bob (no role) is refused" 1
assert_contains "bob is told why" "$OUT" "sbx: bob has no role that allows logging in on sbx-01"
assert_contains "pamtester reports PAM_PERM_DENIED" "$OUT" "Permission denied"
wait_record 3 '.event == "access.checked" and .user == "bob"'
assert_eq "access.checked records bob's denial" denied \
	"$(last_field '.event == "access.checked" and .user == "bob"' .outcome)"

pt sbx erin acct_mgmt
assert_rc "erin (eligible, no grant) is refused" 1
assert_contains "erin is told she has no grant" "$OUT" "sbx: erin has no active grant on sbx-01."
assert_contains "erin is told what she may ask for" "$OUT" \
	"Eligible: sandbox-admin (1 approval: erin's manager (frank) or security-leads (frank, grace))"
assert_contains "erin is told what to run" "$OUT" \
	'Run: sbx-request sandbox-admin --for 1h --reason "..."'

pt sbx zed acct_mgmt
assert_rc "zed (not in the policy) is refused" 1
assert_contains "zed is told sbx does not know him" "$OUT" "zed is not known to sbx on sbx-01"

pt sbx 'no body' acct_mgmt
assert_rc "a user name the broker rejects is refused" 1

# --- a name that cannot be asked about is refused, whatever failmode says --------
# A STR field holds at most 4096 bytes of UTF-8 (sbx_proto.h).  Such a name
# is never "broker unreachable", so failmode=open must not admit it.
LONG_USER=$(head -c 5000 /dev/zero | tr '\0' a)
count_checks() { journal_select '.event == "access.checked"' | wc -l; }
count_alice_checks() { journal_select '.event == "access.checked" and .user == "alice"' | wc -l; }
# The records of the checks above may still be on their way to disk; the
# journal is written in order, so once a fresh check of alice's is there,
# theirs are too and the count below is final.
alice_before=$(count_alice_checks)
pt sbx alice acct_mgmt
wait_until 3 eval '[ "$(count_alice_checks)" -gt "$alice_before" ]'
checks_before=$(count_checks)
pt sbx_open "$LONG_USER" acct_mgmt
assert_rc "broker running, failmode=open: a 5000-byte user name is refused" 1
assert_contains "the user is told the login cannot be checked" "$OUT" \
	"sbx: this login cannot be put to the access broker (the user name is 5000 bytes, more than 4096)"
assert_contains "syslog says why, and that failmode does not apply" "$LOGS" \
	"request not sent to the broker: the user name is 5000 bytes, more than 4096: denied whatever failmode says"
pt sbx_open "$(printf 'al\377ice')" acct_mgmt
assert_rc "broker running, failmode=open: a user name that is not UTF-8 is refused" 1
assert_contains "... and syslog says why" "$LOGS" "the user name is not valid UTF-8"
# The journal is written in order: once alice's later check is there, a
# check of either name would be there too.
alice_before=$(count_alice_checks)
pt sbx alice acct_mgmt
wait_until 3 eval '[ "$(count_alice_checks)" -gt "$alice_before" ]'
assert_eq "neither name reached the broker (only alice's check since is recorded)" \
	$((checks_before + 1)) "$(count_checks)"

PT_OPTS=()
pt sbx alice 'acct_mgmt(PAM_SILENT)'
assert_rc "PAM_SILENT: alice still allowed" 0
pt sbx bob 'acct_mgmt(PAM_SILENT)'
assert_rc "PAM_SILENT: bob still refused" 1
assert_not_contains "PAM_SILENT: no message for the user" "$OUT" "sbx:"

# --- a grant: allowed while it lasts ---------------------------------------
req --as erin --json sandbox-admin --for 1h --reason "pam_sbx account test"
G=$(out_id)
ctl --as frank --json approve "${G:-0}" --for 3s
assert_rc "frank approves erin's request for 3s" 0
pt sbx erin acct_mgmt
assert_rc "erin with an active grant is allowed" 0
wait_record 3 ".event == \"access.checked\" and .user == \"erin\" and .outcome == \"allowed\""
assert_eq "access.checked names the grant it rests on" "${G:-x}" \
	"$(last_field '.event == "access.checked" and .user == "erin"' .id)"
wait_record 8 ".event == \"grant.expired\" and .id == ${G:-0}"
tap_result "erin's grant expires"
pt sbx erin acct_mgmt
assert_rc "erin after expiry is refused" 1
assert_contains "after expiry erin is told again what to run" "$OUT" "Run: sbx-request"

req --as erin --json sandbox-admin --for 1h --reason "pam_sbx revocation test"
G2=$(out_id)
ctl --as frank --json approve "${G2:-0}"
pt sbx erin acct_mgmt
assert_rc "erin with a second grant is allowed" 0
ctl --as grace revoke "${G2:-0}" --reason "pam test"
assert_rc "grace revokes it" 0
pt sbx erin acct_mgmt
assert_rc "erin after revocation is refused" 1

# --- options -----------------------------------------------------------------
pt sbx_odd alice acct_mgmt
assert_rc "unknown and malformed options are ignored (alice still allowed)" 0
assert_contains "an unknown option is logged" "$LOGS" "module argument 'frobnicate': unknown option; ignored"
assert_contains "a bad timeout is logged" "$LOGS" "module argument 'timeout=soon'"
assert_contains "a bad failmode is logged" "$LOGS" "module argument 'failmode=maybe'"
assert_contains "debug logs the broker's answer" "$LOGS" "account: user=alice service=sbx_odd"

# --- the broker is down --------------------------------------------------------
broker_stop
assert_rc "broker stops" 0 "$BROKER_RC"
pt sbx alice acct_mgmt
assert_rc "broker down, failmode=secure (default): alice is refused" 1
assert_contains "the user is told the broker is unreachable" "$OUT" \
	"sbx: the access broker is unreachable, so logins are refused"
assert_contains "syslog says why" "$LOGS" "denied because failmode=secure"
assert_int_between "refused at once (no broker: no waiting)" 0 1500 "$MS"

pt sbx_open alice acct_mgmt
assert_rc "broker down, failmode=open: alice is allowed" 0
assert_contains "failmode=open says so to the user" "$OUT" \
	"sbx: the access broker is unreachable; letting you in (failmode=open)"
assert_contains "failmode=open is logged" "$LOGS" "ALLOWED because failmode=open"

pt sbx_open "$LONG_USER" acct_mgmt
assert_rc "broker down, failmode=open: a 5000-byte user name is still refused" 1
assert_contains "... and syslog says why (not 'unreachable')" "$LOGS" \
	"request not sent to the broker: the user name is 5000 bytes, more than 4096: denied whatever failmode says"
assert_not_contains "... and it is not let in as 'unreachable'" "$LOGS" "ALLOWED because failmode=open"
pt sbx_open "$LONG_USER" open_session
assert_rc "broker down, failmode=open: its session is refused too" 1
pt sbx_open alice acct_mgmt
assert_rc "broker down, failmode=open: a normal name is still let in" 0

pt sbx_exempt zed acct_mgmt
assert_rc "broker down: exempt user zed is allowed" 0
assert_contains "the exemption is logged" "$LOGS" "allowed without asking the broker (exempt=)"
pt sbx_exempt yves acct_mgmt
assert_rc "a second exempt= list counts too" 0
pt sbx_exempt alice acct_mgmt
assert_rc "broker down: a user who is not exempt is refused" 1

# --- brokers that misbehave ---------------------------------------------------
# fake MODE: start the fake broker on $SOCK.
FAKE_PID=
fake() {
	[ -n "$FAKE_PID" ] && kill "$FAKE_PID" 2>/dev/null && wait "$FAKE_PID" 2>/dev/null
	rm -f "$SOCK"
	"$FAKE_BROKER" "$SOCK" "$1" >"$T/fake.out" 2>&1 &
	FAKE_PID=$!
	track_pid "$FAKE_PID"
	wait_until 5 grep -q ready "$T/fake.out"
}

fake allow
pt sbx alice acct_mgmt
assert_rc "the fake broker's proper answer is taken (control case)" 0

fake silent
pt sbx_fast alice acct_mgmt
assert_rc "a broker that never answers: refused (failmode=secure)" 1
diag "silent broker, timeout=500: module returned after $MS ms"
assert_int_between "... and the module gave up on its timeout (500 ms)" 450 2500 "$MS"
pt sbx_fast_open alice acct_mgmt
assert_rc "a broker that never answers, failmode=open: allowed" 0
assert_int_between "... also within the timeout" 450 2500 "$MS"

fake close
pt sbx_open alice acct_mgmt
assert_rc "a broker that hangs up at once counts as unreachable (failmode=open allows)" 0

fake short
pt sbx_open alice acct_mgmt
assert_rc "a reply cut short counts as no answer (failmode=open allows)" 0

for mode in garbage wrongop noallowed badallowed error; do
	fake "$mode"
	pt sbx_open alice acct_mgmt
	assert_rc "reply '$mode' is refused, even with failmode=open" 1
	assert_contains "reply '$mode': the user is told the answer was unusable" "$OUT" \
		"sbx: the access broker gave an answer that cannot be used"
done

if is_root; then
	fake allow
	chown 65534 "$SOCK"
	pt sbx_open alice acct_mgmt
	assert_rc "a socket not owned by root is not trusted, even with failmode=open" 1
	assert_contains "syslog says why" "$LOGS" "unusable answer"
else
	tap_skip "a socket not owned by root is not trusted" "needs root (chown)"
fi

tap_done
