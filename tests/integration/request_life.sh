#!/bin/bash
# The request life in every branch:
#   pending -> active (approved | auto-approved) -> expired | revoked
#   pending -> denied | cancelled | lapsed
# plus who may approve (self, non-approver, two distinct approvers), an
# approver shortening but never lengthening, drop, extend, list --all,
# --json objects, exit codes and the journal's events per request.
. "$(dirname "$0")/lib.sh"
sbx_init

# The reference policy plus a role needing two approvals and one with
# short durations (roles: is the reference's last section).
cat >>"$POLICY" <<'EOF'

  two-man:
    description: Needs two different approvers
    hosts: ["sbx-*"]
    eligible: { users: [erin] }
    approvers: { manager: true, groups: [security-leads] }
    approvals: 2
    default_duration: 1h
    max_duration: 2h

  quick:
    description: Short grants for the tests
    hosts: ["sbx-*"]
    eligible: { users: [erin] }
    approvers: { manager: true }
    approvals: 1
    default_duration: 2s
    max_duration: 4s
EOF

broker_start
tap_result "broker starts on the reference policy plus test roles" || {
	tap_done
	exit
}

REASON="debug the ingest pipeline on sbx-01"

# state_of ID: the request's state as root sees it.
state_of() {
	"$SBXREQ" --socket "$SOCK" --json status "$1" 2>/dev/null | jq -r .state
}

# --- pending -> active (approved, shortened) -> expired ---------------------
req --as erin --json quick --for 4s --reason "$REASON"
assert_rc "erin asks for quick: exit 0" 0
A1=$(out_id)
assert_eq "a new request is pending" pending "$(json_get .state)"
assert_eq "--json request object has id, user, role, state, expires_at" true \
	"$(json_get 'has("id") and has("user") and has("role") and has("state") and has("expires_at")')"
assert_eq "the request is erin's" "erin/quick" "$(json_get '.user + "/" + .role')"
assert_match "a pending request's expires_at is an RFC 3339 time" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' \
	"$(json_get .expires_at)"

ctl --json check erin
assert_rc "check erin while pending: exit 1 (denied)" 1
assert_eq "check erin while pending: allowed false" false "$(json_get .allowed)"

ctl --as erin approve "$A1"
assert_rc "erin approving her own request: exit 1" 1
assert_contains "self-approval is refused, saying why" "$ERR" "own request"

ctl --as alice approve "$A1"
assert_rc "alice (no approver of quick) approving: exit 2, as for an unknown id" 2
assert_contains "a non-approver is told nothing about it (no request)" "$ERR" "no request $A1"

ctl --as frank approve "$A1" --for 1h
assert_rc "frank approving for longer than asked: exit 2" 2
assert_contains "an approver may not lengthen, and is told so" "$ERR" "never lengthen"
assert_eq "after the refused approvals the request is still pending" pending "$(state_of "$A1")"

ctl --as frank --json approve "$A1" --for 2s --comment "ok, shortened"
assert_rc "frank (erin's manager) approves for a shorter 2s: exit 0" 0
assert_eq "approved request is active" active "$(json_get .state)"
assert_eq "approved_by names frank" '["frank"]' "$(json_get '.approved_by | tostring')"
act=$(json_get .activated_at)
exp=$(json_get .expires_at)
if [ -n "$act" ] && [ "$act" != null ] && [ -n "$exp" ] && [ "$exp" != null ]; then
	assert_eq "shortened grant lasts 2s from activation" 2 $(($(to_s "$exp") - $(to_s "$act")))
else
	tap_fail "shortened grant lasts 2s from activation"
	diag "activated_at=$act expires_at=$exp"
fi

ctl --json check erin
assert_rc "check erin with an active grant: exit 0" 0
assert_eq "check erin with an active grant: allowed true" true "$(json_get .allowed)"
assert_eq "check names the grant" "$A1" "$(json_get .id)"

wait_until 8 eval '[ "$(state_of "$A1")" = expired ]'
assert_eq "the grant ends as expired" expired "$(state_of "$A1")"
ctl --json check erin
assert_rc "check erin after expiry: exit 1" 1
# The broker's memory says expired before grant.expired reaches the file
# (nobody waits for that record: up to ~50 ms plus an fsync later).
wait_record 8 ".event == \"grant.expired\" and .id == ${A1:-0}"
assert_eq "events of an approved, expired grant" \
	"request.created request.approval grant.activated grant.expired" "$(events_of "$A1")"

# --- pending -> active -> revoked ---------------------------------------------
req --as erin --json sandbox-admin --reason "$REASON"
assert_rc "erin asks for sandbox-admin (default duration)" 0
A2=$(out_id)
assert_eq "default duration of sandbox-admin is 1h" 3600 "$(json_get .duration)"
ctl --as grace --json approve "$A2"
assert_rc "grace (security-leads) approves" 0
assert_eq "approved by a security lead: active" active "$(json_get .state)"

# (The same reason again would be a retry, answered with the grant:
# request_retry.sh.)
req --as erin sandbox-admin --reason "$REASON, once more"
assert_rc "asking again for a role already held: exit 1" 1
assert_contains "the refusal points to extend" "$ERR" "extend"

ctl --as frank --json revoke "$A2" --reason "incident closed"
assert_rc "frank revokes the grant" 0
assert_eq "revoked grant is revoked" revoked "$(json_get .state)"
ctl check erin
assert_rc "check erin after the revoke: exit 1" 1
assert_eq "events of a revoked grant" \
	"request.created request.approval grant.activated grant.revoked" "$(events_of "$A2")"
ctl --as frank revoke "$A2"
assert_rc "revoking an ended grant again: exit 1" 1

# --- pending -> denied ----------------------------------------------------------
req --as erin --json sandbox-admin --reason "$REASON"
A3=$(out_id)
ctl --as frank --json deny "$A3" --reason "not during the freeze"
assert_rc "frank denies" 0
assert_eq "denied request is denied" denied "$(json_get .state)"
ctl --as frank approve "$A3"
assert_rc "approving a denied request: exit 1" 1
assert_eq "events of a denied request" "request.created request.denied" "$(events_of "$A3")"

# --- pending -> cancelled -------------------------------------------------------
req --as erin --json sandbox-admin --reason "$REASON"
A4=$(out_id)
req --as erin sandbox-admin --reason "$REASON, once more"
assert_rc "a second pending request for the same role: exit 1" 1
assert_contains "the refusal names the pending request" "$ERR" "$A4"
req --as erin --json cancel "$A4"
assert_rc "erin cancels her pending request" 0
assert_eq "cancelled request is cancelled" cancelled "$(json_get .state)"
req --as erin cancel "$A4"
assert_rc "cancelling it again: exit 1" 1
assert_eq "events of a cancelled request" "request.created request.cancelled" "$(events_of "$A4")"

# --- auto_approve: active at once ----------------------------------------------
req --as alice --json sandbox-readonly
assert_rc "alice asks for sandbox-readonly (auto_approve)" 0
A5=$(out_id)
assert_eq "an auto-approved request is active at once" active "$(json_get .state)"
assert_eq "events of an auto-approved grant" "request.created grant.activated" "$(events_of "$A5")"

# --- two approvals from two different people ----------------------------------
req --as erin --json two-man --reason "$REASON"
A6=$(out_id)
assert_eq "two-man request needs 2 approvals" 2 "$(json_get .approvals_needed)"
ctl --as frank --json approve "$A6"
assert_rc "first approval (frank) is recorded" 0
assert_eq "after one of two approvals: still pending" pending "$(json_get .state)"
ctl --as frank approve "$A6"
assert_rc "frank approving a second time: exit 1" 1
assert_contains "the same approver twice is refused, saying so" "$ERR" "already approved"
ctl --as erin approve "$A6"
assert_rc "erin's own approval never counts: exit 1" 1
ctl --as grace --json approve "$A6"
assert_rc "second approval (grace) is recorded" 0
assert_eq "after two different approvers: active" active "$(json_get .state)"
assert_eq "approved_by lists both" '["frank","grace"]' "$(json_get '.approved_by | tostring')"
assert_eq "events of a two-approval grant" \
	"request.created request.approval request.approval grant.activated" "$(events_of "$A6")"

# --- drop ------------------------------------------------------------------------
req --as erin --json drop "$A6" --reason "done early"
assert_rc "erin gives her grant back (drop)" 0
assert_eq "a dropped grant is revoked" revoked "$(json_get .state)"
ctl check erin
assert_rc "check erin after the drop: exit 1" 1
assert_eq "drop ends with grant.revoked" \
	"request.created request.approval request.approval grant.activated grant.revoked" \
	"$(events_of "$A6")"
req --as erin drop "$A6"
assert_rc "dropping it again: exit 1" 1

# --- extend: a new request linked to the grant ---------------------------------
req --as erin --json sandbox-admin --for 30m --reason "$REASON"
A7=$(out_id)
ctl --as frank --json approve "$A7"
exp7=$(json_get .expires_at)
req --as erin --json extend "$A7" --for 20m --reason "the migration is still running"
assert_rc "erin asks to extend her grant" 0
A8=$(out_id)
assert_ne "extend makes a new request" "$A7" "$A8"
assert_eq "the extension is pending" pending "$(json_get .state)"
assert_eq "the extension names the grant it extends" "$A7" "$(json_get .extends)"
assert_eq "the extension is for the same role" sandbox-admin "$(json_get .role)"
req --as erin extend "$A7" --for 5h --reason "the migration is still running"
assert_rc "an extension beyond max_duration: exit 1" 1
assert_contains "the refusal names the limit" "$ERR" "at most 2h"
ctl --as frank --json approve "$A8"
assert_rc "frank approves the extension" 0
exp8=$(json_get .expires_at)
if [ -n "$exp7" ] && [ "$exp7" != null ] && [ -n "$exp8" ] && [ "$exp8" != null ]; then
	assert_eq "the extension runs on from the end of the grant (+20m)" 1200 \
		$(($(to_s "$exp8") - $(to_s "$exp7")))
else
	tap_fail "the extension runs on from the end of the grant (+20m)"
	diag "expires_at: grant=$exp7 extension=$exp8"
fi
req --as erin extend 424242 --for 5m --reason "the migration is still running"
assert_rc "extending a grant that does not exist: exit 2" 2

# --- refusals and their exit codes --------------------------------------------
req --as erin sandbox-readonly
assert_rc "erin (not a developer) asks for sandbox-readonly: exit 1" 1
req --as bob sandbox-admin --reason "$REASON"
assert_rc "bob (eligible for nothing): exit 1" 1
assert_contains "bob is told he is not eligible" "$ERR" "not eligible"
req --as dave sandbox-admin --for 3h --reason "$REASON"
assert_rc "longer than max_duration: exit 1" 1
assert_contains "the issue's example message" "$ERR" "sandbox-admin allows at most 2h (asked 3h)"
req --as dave sandbox-admin --reason "."
assert_rc "a reason that says nothing: exit 1" 1
assert_contains "the refusal asks for a reason" "$ERR" "reason"
req --as alice prod-data --reason "$REASON" --ticket INC-1
assert_rc "a role whose hosts do not match this host: exit 1" 1
assert_contains "the refusal says the role does not apply here" "$ERR" "does not apply to this host"
req --as erin no-such-role
assert_rc "an unknown role: exit 2" 2
req --as erin sandbox-admin --for banana --reason "$REASON"
assert_rc "a bad duration: exit 2" 2
req --as erin status 99999
assert_rc "status of a request that does not exist: exit 2" 2

# --- lists: ended ones stay listed (the latest broker.keep_ended) ------------------------------------------
req --as erin --json list
assert_rc "erin lists her open requests" 0
assert_eq "list shows only pending and active ones" "$A8 $A7" \
	"$(json_get '[.[].id] | sort | reverse | map(tostring) | join(" ")')"
assert_eq "list --json is an array of request objects" true \
	"$(json_get 'type == "array" and all(.[]; has("id") and has("user") and has("role") and has("state") and has("expires_at"))')"
req --as erin --json list --all
assert_rc "erin lists all her requests" 0
for pair in "$A1:expired" "$A2:revoked" "$A3:denied" "$A4:cancelled" "$A6:revoked"; do
	id=${pair%%:*}
	st=${pair#*:}
	assert_eq "list --all shows request $id as $st" "$st" \
		"$(json_get ".[] | select(.id == $id) | .state")"
done

# --- journal order: seq grows, times never go back ----------------------------
assert_eq "journal seqs run 1..N without gaps" true \
	"$(journal | jq -s '[.[].seq] == [range(1; length + 1)]')"

broker_stop
assert_rc "broker stops cleanly on SIGTERM" 0 "$BROKER_RC"

# --- pending -> lapsed (a second broker with a 2s request_ttl) ----------------
STATE="$T/state-lapse"
{
	policy_broker 2s
	sed -n '/^profiles:/,$p' "$POLICY"
} >"$T/lapse.yaml"
broker_start "$T/lapse.yaml"
tap_result "a broker with request_ttl 2s starts" || {
	tap_done
	exit
}
req --as erin --json sandbox-admin --reason "$REASON"
A9=$(out_id)
lapses=$(json_get .expires_at)
created=$(json_get .created_at)
if [ -n "$lapses" ] && [ "$lapses" != null ]; then
	assert_eq "a pending request lapses request_ttl after it was made" 2 \
		$(($(to_s "$lapses") - $(to_s "$created")))
else
	tap_fail "a pending request lapses request_ttl after it was made"
fi
wait_record 8 ".event == \"request.lapsed\" and .id == ${A9:-0}"
assert_eq "nobody decides: the request lapses" "request.created request.lapsed" \
	"$(events_of "${A9:-0}")"
assert_eq "status says lapsed" lapsed "$(state_of "${A9:-0}")"
ctl --as frank approve "${A9:-0}"
assert_rc "approving a lapsed request: exit 1" 1

tap_done
