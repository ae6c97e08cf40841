#!/bin/bash
# pam_sbx's session stage under pam_wrapper, with pam_holder as the
# session's leader (what sshd's process is for a real login):
# open/close recorded; refused users get no session; a session resting on
# a grant of an `on_expiry: terminate` role ends (SIGHUP) when the grant
# expires or is revoked, SIGKILL after the grace period for what ignores
# the hangup; a standing session survives; a session moves to another live
# grant instead of ending; the table survives a restart and a kill -9;
# sessions whose process is gone are closed quietly; only root may register.
# Needs root: the broker accepts sessions from uid 0 only (SO_PEERCRED).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pam_lib.sh"
sbx_init
if ! is_root; then
	tap_skip "pam_sbx sessions" "needs root: the broker takes session registrations from uid 0 only"
	tap_done
	exit
fi
pam_init
pam_service sbx
pam_service sbx_open failmode=open
pam_service sbx_exempt exempt=zed

broker_start
tap_result "broker starts" || {
	tap_done
	exit
}

REASON="pam_sbx session test"

# grant USER [APPROVE-FOR]: an approved sandbox-admin grant; sets G.
grant() {
	req --as "$1" --json sandbox-admin --for 1h --reason "$REASON"
	G=$(out_id)
	if [ -n "${2:-}" ]; then
		ctl --as frank --json approve "${G:-0}" --for "$2"
	else
		ctl --as frank --json approve "${G:-0}"
	fi
	[ "$(json_get .state)" = active ]
}

# session_of PID: the id of the open session led by PID.
session_of() {
	wait_record 3 ".event == \"session.opened\" and .pid == $1" || return 1
	last_field ".event == \"session.opened\" and .pid == $1" .session
}

# --- open and close ----------------------------------------------------------
PT_OPTS=(-I rhost=192.0.2.20 -I tty=pts/7)
pt sbx alice acct_mgmt open_session close_session
assert_rc "alice: account, session open and close succeed" 0
rec=$(last_field '.event == "session.opened" and .user == "alice"' \
	'[.user, .tty, .rhost, .service, .via, .role] | join(" ")')
assert_eq "session.opened: user, tty, rhost, service, what it rests on" \
	"alice pts/7 192.0.2.20 sbx standing sandbox-user" "$rec"
S=$(last_field '.event == "session.opened" and .user == "alice"' .session)
assert_eq "session.closed at logout names the session" "logout" \
	"$(last_field ".event == \"session.closed\" and .session == ${S:-0}" .reason)"
PT_OPTS=()

pt sbx bob open_session
assert_rc "bob (may not log in) gets no session" 1
assert_contains "bob is told why" "$OUT" "sbx: bob has no role that allows logging in"
assert_eq "no session.opened for bob" "" "$(journal_select '.event == "session.opened" and .user == "bob"')"

pt sbx_exempt zed open_session close_session
assert_rc "an exempt user's session opens without the broker" 0
assert_eq "... and is not registered" "" "$(journal_select '.event == "session.opened" and .user == "zed"')"

nobody_run "${PAM_ENV[@]}" pamtester sbx alice open_session
assert_rc "a session from a non-root process is refused" 1
assert_contains "... by the broker: only root may register" "$ERR" "only root"

# The leader exits without closing: the broker notices and closes it.
pt sbx alice open_session
assert_rc "a session whose leader exits without closing" 0
P=$(last_field '.event == "session.opened" and .user == "alice"' .pid)
wait_record 5 ".event == \"session.closed\" and .pid == ${P:-0} and .reason == \"its process is gone\""
tap_result "... is closed quietly once its process is gone"

# --- a terminate-grant ends: SIGHUP --------------------------------------
grant erin 4s
tap_result "erin gets a 4s grant of sandbox-admin (on_expiry: terminate)"
exp=$(json_get .expires_at)
holder_start sbx erin --child
assert_contains "erin's session opens" "$(cat "$HOLDER_OUT")" "ready"
assert_contains "the module left no socket open in the process" "$(cat "$HOLDER_OUT")" "sockets 0"
CHILD=$(awk '/^child/{print $2}' "$HOLDER_OUT")
S=$(session_of "$HOLDER_PID")
assert_eq "the session rests on her grant" "${G:-x}" \
	"$(last_field ".event == \"session.opened\" and .session == ${S:-0}" .id)"
holder_wait 15
end_ms=$(date +%s%3N)
assert_eq "when the grant expires the session's leader dies of SIGHUP" 129 "$HOLDER_RC"
# session.terminated is recorded as the SIGHUP goes out, and nobody waits
# for it: it may reach the file a moment later.  Its time is when the
# session was ended; when this shell noticed is only a diagnostic.
wait_record 5 ".event == \"session.terminated\" and .session == ${S:-0}"
t_end=$(last_field ".event == \"session.terminated\" and .session == ${S:-0}" '.time // empty')
late=x
[ -n "$t_end" ] && [ -n "$exp" ] && late=$((($(to_us "$t_end") - $(to_us "$exp")) / 1000))
diag "session ended ${late} ms after expires_at (this shell saw it $((end_ms - $(to_s "$exp") * 1000)) ms after)"
assert_int_between "... within a few seconds of expiry" -1000 3000 "$late"
assert_true "... and the process below it too" wait_until 3 eval "! alive $CHILD"
rec=$(last_field ".event == \"session.terminated\" and .session == ${S:-0}" \
	'[.user, (.id|tostring), .signal, .reason] | join(" ")')
assert_eq "session.terminated recorded" "erin ${G:-x} SIGHUP grant ${G:-x} (sandbox-admin) expired" "$rec"

# --- revocation, and SIGKILL for what ignores SIGHUP -------------------------
grant erin
holder_start sbx erin --ignore-hup
S=$(session_of "$HOLDER_PID")
ctl --as grace revoke "${G:-0}" --reason "session test"
t0=$(date +%s%3N)
# The broker dies during the grace period: the SIGKILL is still due.
wait_record 3 ".event == \"session.terminated\" and .session == ${S:-0}"
broker_kill9
broker_start
holder_wait 15
seen=$(($(date +%s%3N) - t0))
assert_eq "a leader that ignores SIGHUP is killed (SIGKILL) after the grace period, across a broker crash" \
	137 "$HOLDER_RC"
# Measured between the journal's records (grant.revoked, and session.killed
# as the SIGKILL goes out), not to when this shell saw the leader gone.
wait_record 5 ".event == \"session.killed\" and .session == ${S:-0}"
tap_result "session.killed recorded"
t_rev=$(last_field ".event == \"grant.revoked\" and .id == ${G:-0}" '.time // empty')
t_kill=$(last_field ".event == \"session.killed\" and .session == ${S:-0}" '.time // empty')
took=x
[ -n "$t_rev" ] && [ -n "$t_kill" ] && took=$((($(to_us "$t_kill") - $(to_us "$t_rev")) / 1000))
diag "SIGKILL came ${took} ms after the revocation (this shell saw it after ${seen} ms)"
assert_int_between "... about 5 s after the revocation" 4000 9000 "$took"
assert_eq "session.terminated says revoked" "grant ${G:-x} (sandbox-admin) revoked by grace: session test" \
	"$(last_field ".event == \"session.terminated\" and .session == ${S:-0}" .reason)"

# --- what does not end ---------------------------------------------------------
# dave is standing (developers) and eligible for sandbox-admin: his login
# rests on the standing role, so the grant's end leaves it alone.
grant dave
holder_start sbx dave
DAVE=$HOLDER_PID
S=$(session_of "$DAVE")
assert_eq "dave's session rests on his standing role" standing \
	"$(last_field ".event == \"session.opened\" and .session == ${S:-0}" .via)"
ctl --as frank revoke "${G:-0}"
sleep 1.5
assert_true "revoking dave's grant leaves his standing session alone" alive "$DAVE"
kill "$DAVE" 2>/dev/null

# erin with a grant and its extension: when the first ends, the session
# moves to the extension instead of ending.
# 6s: the session must open and the extension be approved before it ends.
grant erin 6s
G1=$G
holder_start sbx erin
ERIN=$HOLDER_PID
S=$(session_of "$ERIN")
req --as erin --json extend "${G1:-0}" --for 1h --reason "$REASON"
G2=$(out_id)
ctl --as frank --json approve "${G2:-0}"
wait_record 15 ".event == \"grant.expired\" and .id == ${G1:-0}"
wait_record 3 ".event == \"session.rebased\" and .session == ${S:-0}"
tap_result "when the first grant expires the session moves to the extension"
assert_eq "session.rebased names the new grant" "${G2:-x}" \
	"$(last_field ".event == \"session.rebased\" and .session == ${S:-0}" .id)"
assert_true "... and the session goes on" alive "$ERIN"

# --- the table survives restarts ------------------------------------------------
broker_stop
broker_start
tap_result "the broker restarts (SIGTERM, snapshot)"
assert_true "erin's session survived the restart" alive "$ERIN"
broker_kill9
broker_start
tap_result "the broker restarts after kill -9 (journal replay)"
ctl --as frank revoke "${G2:-0}"
HOLDER_PID=$ERIN
holder_wait 10
assert_eq "after both restarts, revoking the grant still ends the session" 129 "$HOLDER_RC"

# A grant that expires while the broker is down ends its sessions when
# the broker is back.
# 6s: long enough for the session to open and the broker to stop first.
grant erin 6s
exp=$(json_get .expires_at)
holder_start sbx erin
ERIN=$HOLDER_PID
S=$(session_of "$ERIN")
broker_stop
# Stay down until the grant's expires_at has passed.
wait_until 15 eval '[ "$(date +%s)" -gt "$(to_s "$exp")" ]'
assert_true "with the broker down, erin's session outlives her grant" alive "$ERIN"
broker_start
holder_wait 10
assert_eq "the broker, back after the expiry, ends the session at start-up" 129 "$HOLDER_RC"
wait_record 5 ".event == \"session.terminated\" and .session == ${S:-0}"
assert_eq "... recording why" "grant ${G:-x} (sandbox-admin) expired" \
	"$(last_field ".event == \"session.terminated\" and .session == ${S:-0}" .reason)"

# --- broker down at session open ----------------------------------------------
broker_stop
pt sbx alice open_session
assert_rc "broker down, failmode=secure: the session is refused" 1
pt sbx_open alice open_session close_session
assert_rc "broker down, failmode=open: the session opens (and closes)" 0
assert_contains "... and that is logged" "$LOGS" "ALLOWED because failmode=open"

tap_done
