#!/bin/bash
# Who is asking: the broker trusts SO_PEERCRED only.  Root (and members of
# broker.admin_group) may act for others with --as, and the journal records
# both the person and the account that spoke for them; anyone else acts
# only for themselves.  Names not in the policy get a clear refusal.
. "$(dirname "$0")/lib.sh"
sbx_init

if ! is_root; then
	tap_skip "identity" "needs root: --as and setpriv to uid 65534 (nobody)"
	tap_done
	exit
fi
if ! command -v setpriv >/dev/null || ! getent passwd 65534 >/dev/null; then
	tap_skip "identity" "needs setpriv (util-linux) and a passwd entry for uid 65534"
	tap_done
	exit
fi
NOBODY=$(getent passwd 65534 | cut -d: -f1)
NOGROUP=$(getent group 65534 | cut -d: -f1)

# The reference policy, plus a policy user named like the unix account of
# uid 65534, eligible for sandbox-admin with frank as manager.
sed -e "s/^  erin:  { manager: frank }/  erin:  { manager: frank }\n  $NOBODY: { manager: frank }/" \
	-e "s/^    eligible: { groups: \[sre\], users: \[dave\] }/    eligible: { groups: [sre], users: [dave, $NOBODY] }/" \
	"$REF_POLICY" >"$POLICY"
broker_start
tap_result "broker starts with $NOBODY in the policy" || {
	tap_done
	exit
}

REASON="identity test: who acts for whom"

# --- root may act for others; the journal says through whom ---------------
req --as erin --json sandbox-admin --reason "$REASON"
assert_rc "root acts for erin (--as erin)" 0
E1=$(out_id)
assert_eq "the request is erin's" erin "$(json_get .user)"
assert_eq "the request shows it came through root" root "$(json_get .through)"
rec=$(journal_select ".event == \"request.created\" and .id == ${E1:-0}")
assert_eq "journal: request.created actor is erin" erin "$(jq -r .actor <<<"${rec:-null}")"
assert_eq "journal: request.created through root" root "$(jq -r .through <<<"${rec:-null}")"

ctl --as frank approve "${E1:-0}"
assert_rc "root approves for frank (--as frank)" 0
rec=$(journal_select ".event == \"request.approval\" and .id == ${E1:-0}")
assert_eq "journal: request.approval actor is frank" frank "$(jq -r .actor <<<"${rec:-null}")"
assert_eq "journal: request.approval through root" root "$(jq -r .through <<<"${rec:-null}")"

req --json sandbox-admin --reason "$REASON"
assert_rc "root asking for itself: refused (root is not in the policy)" 1
assert_contains "the refusal says root is not in the policy" "$ERR" "not in the policy"

req --as zed sandbox-admin --reason "$REASON"
assert_rc "a user not in the policy (zed): exit 1" 1
assert_contains "zed is told clearly" "$ERR" "zed is not in the policy"
ctl --json check zed
assert_rc "check zed: denied" 1
assert_contains "check zed says zed is unknown" "$(json_get .reason)" "not known"
req --as 'bad name!' list
assert_rc "--as with a malformed name: exit 2" 2

# --- nobody acts for nobody else ---------------------------------------------------
nobody_run "$SBXREQ" --socket "$SOCK" --as erin sandbox-admin --reason "$REASON"
assert_rc "$NOBODY cannot act for erin (--as): exit 1" 1
assert_contains "the refusal says only root and admins may use --as" "$ERR" \
	"may act for another user"
nobody_run "$SBXCTL" --socket "$SOCK" --as frank approve "${E1:-0}"
assert_rc "$NOBODY cannot approve as frank: exit 1" 1
assert_contains "the same refusal for sbxctl" "$ERR" "may act for another user"
assert_eq "nothing was recorded for those attempts" "" \
	"$(journal_select ".through == \"$NOBODY\"")"

req --as dave --json sandbox-admin --reason "$REASON"
D1=$(out_id)
assert_eq "dave has a pending request" pending "$(json_get .state)"

nobody_run "$SBXREQ" --socket "$SOCK" --json sandbox-admin --reason "$REASON"
assert_rc "$NOBODY asks for a role for itself" 0
N1=$(out_id)
assert_eq "the request is $NOBODY's" "$NOBODY" "$(json_get .user)"
assert_eq "no 'through' when acting for oneself" null "$(json_get .through)"
rec=$(journal_select ".event == \"request.created\" and .id == ${N1:-0}")
assert_eq "journal: actor is $NOBODY, no through" "$NOBODY/null" \
	"$(jq -r '"\(.actor)/\(.through)"' <<<"${rec:-null}")"

nobody_run "$SBXREQ" --socket "$SOCK" --json list --all
assert_rc "$NOBODY lists its requests" 0
assert_eq "the list holds only $NOBODY's own" "$N1" "$(json_get '[.[].id] | map(tostring) | join(" ")')"
nobody_run "$SBXREQ" --socket "$SOCK" status "${D1:-0}"
assert_rc "$NOBODY cannot see dave's request: exit 2, as for an unknown id" 2
nobody_run "$SBXREQ" --socket "$SOCK" cancel "${D1:-0}"
assert_rc "$NOBODY cannot cancel dave's request: exit 2" 2
assert_contains "for $NOBODY it does not exist" "$ERR" "no request ${D1:-0}"
assert_not_contains "the refusal does not say whose it is" "$ERR" "dave"
nobody_run "$SBXCTL" --socket "$SOCK" approve "${D1:-0}"
assert_rc "$NOBODY cannot approve dave's request: exit 2" 2
nobody_run "$SBXCTL" --socket "$SOCK" deny "${D1:-0}"
assert_rc "$NOBODY cannot deny dave's request: exit 2" 2
nobody_run "$SBXCTL" --socket "$SOCK" revoke "${E1:-0}"
assert_rc "$NOBODY cannot revoke erin's grant: exit 2" 2
nobody_run "$SBXCTL" --socket "$SOCK" check erin
assert_rc "$NOBODY cannot check erin: exit 1" 1
assert_contains "the refusal says one may only check oneself" "$ERR$OUT" "only check yourself"
nobody_run "$SBXCTL" --socket "$SOCK" --json check "$NOBODY"
assert_eq "$NOBODY may check itself (not allowed: no grant)" false "$(json_get .allowed)"
nobody_run "$SBXCTL" --socket "$SOCK" grants --user erin
assert_rc "$NOBODY cannot list erin's grants: exit 1" 1
nobody_run "$SBXCTL" --socket "$SOCK" --json pending
assert_eq "$NOBODY has nothing to decide" "[]" "$(json_get 'tostring')"
nobody_run "$SBXREQ" --socket "$SOCK" cancel "${N1:-0}"
assert_rc "$NOBODY cancels its own request" 0
req --json status "${D1:-0}"
assert_eq "dave's request is untouched" pending "$(json_get .state)"
req --json status "${E1:-0}"
assert_eq "erin's grant is untouched" active "$(json_get .state)"

ctl --as frank --json revoke "${E1:-0}" --reason "identity test over"
assert_rc "root --as frank (erin's manager) revokes erin's grant" 0
rec=$(journal_select ".event == \"grant.revoked\" and .id == ${E1:-0}")
assert_eq "journal: grant.revoked by frank through root" "frank/root" \
	"$(jq -r '"\(.actor)/\(.through)"' <<<"${rec:-null}")"

# --- --as carries the person's rights, not root's ---------------------------------
# Acting for alice, root may do what alice may do, and the journal would
# otherwise record alice doing what she has no right to.
# Fresh targets, one per attempt, so that one wrongly allowed action does
# not make the next test vacuous.
req --as erin --json sandbox-admin --reason "$REASON"
E2=$(out_id)
ctl --as frank approve "${E2:-0}"
req --as "$NOBODY" --json sandbox-admin --reason "$REASON"
N2=$(out_id)
req --json status "${D1:-0}"
assert_eq "targets: dave's request pending" pending "$(json_get .state)"
req --json status "${N2:-0}"
assert_eq "targets: $NOBODY's request pending" pending "$(json_get .state)"
req --json status "${E2:-0}"
assert_eq "targets: erin's grant active" active "$(json_get .state)"

ctl --as dave deny "${D1:-0}"
assert_rc "root --as dave cannot deny dave's own request: exit 1" 1
req --as alice cancel "${N2:-0}"
assert_rc "root --as alice cannot cancel $NOBODY's request: exit 2 (not hers to see)" 2
ctl --as alice revoke "${E2:-0}"
assert_rc "root --as alice cannot revoke erin's grant (alice approves nothing): exit 2" 2
req --json status "${D1:-0}"
assert_eq "dave's request is still pending" pending "$(json_get .state)"
req --json status "${N2:-0}"
assert_eq "$NOBODY's request is still pending" pending "$(json_get .state)"
req --json status "${E2:-0}"
assert_eq "erin's grant is still active" active "$(json_get .state)"
assert_eq "the journal never records anyone ending what they may not" "" \
	"$(journal_select '(.actor == "alice" and (.event == "grant.revoked" or .event == "request.cancelled")) or (.actor == "dave" and .event == "request.denied")')"
broker_stop

# --- a member of broker.admin_group may act for others ---------------------------
if [ -n "$NOGROUP" ]; then
	sed -e "s/^  admin_group: sbx-admins/  admin_group: $NOGROUP/" "$POLICY" >"$T/admins.yaml"
	STATE="$T/state-admins"
	broker_start "$T/admins.yaml"
	tap_result "broker starts with admin_group $NOGROUP" || {
		tap_done
		exit
	}
	nobody_run "$SBXREQ" --socket "$SOCK" --as erin --json sandbox-admin --reason "$REASON"
	assert_rc "a member of admin_group ($NOBODY via $NOGROUP) acts for erin" 0
	A1=$(out_id)
	rec=$(journal_select ".event == \"request.created\" and .id == ${A1:-0}")
	assert_eq "journal: erin through $NOBODY" "erin/$NOBODY" \
		"$(jq -r '"\(.actor)/\(.through)"' <<<"${rec:-null}")"
	nobody_run "$SBXCTL" --socket "$SOCK" check erin
	assert_rc "an admin may check anyone (erin: denied, exit 1, but answered)" 1
	assert_not_contains "the answer is a decision, not a refusal to check" "$ERR$OUT" \
		"only check yourself"
	broker_stop
else
	tap_skip "a member of admin_group may act for others" "no group with gid 65534"
fi

tap_done
