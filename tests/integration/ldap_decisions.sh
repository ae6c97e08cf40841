#!/bin/bash
# The reference policy with its groups: and users: taken out of the file and
# served by a private slapd instead gives the same decisions as the file
# alone; managers come from the directory's manager DNs and approve;
# `sbxctl policy explain` says which directory group gave which role.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ldap_lib.sh"
sbx_init
ldap_require

PEOPLE="alice bob carol dave erin frank grace zed"

# decisions: one line per person: allowed, role and the reason, with the
# intended differences taken out: the group's origin, and that a name
# nobody knows is looked up in the directory.
decisions() {
	local u

	for u in $PEOPLE; do
		ctl --json check "$u"
		printf '%s %s %s | %s\n' "$u" "$(json_get .allowed)" "$(json_get '.role // "-"')" \
			"$(json_get .reason | sed -e 's/ via ldap group / via group /' \
				-e 's/ yet: looking them up in the directory now.*$//')"
	done
}

# memberships USER: "role how" per line, from the broker's explain.
memberships() {
	ctl --json policy explain "$1"
	json_get '.roles[] | "\(.role) \(.how)"'
}

# 1. The file alone.
STATE="$T/state-file"
broker_start "$POLICY"
tap_result "broker starts on the reference policy" || {
	tap_done
	exit
}
want=$(decisions)
want_roles=""
for u in $PEOPLE; do
	want_roles+="$u: $(memberships "$u" | tr '\n' ';')"$'\n'
done
req --as erin roles
want_erin_roles=$OUT
broker_stop

# 2. The same people from the directory.
slapd_setup && slapd_start
tap_result "slapd starts on 127.0.0.1:$LDAP_PORT with the reference people" || {
	tap_done
	exit
}
ldap_policy "$T/ldap.yaml"
run grep -cE '^(groups|users):' "$T/ldap.yaml"
assert_eq "the policy file defines no groups or users" 0 "$OUT"
run "$SBXCTL" policy check "$T/ldap.yaml"
assert_rc "sbxctl policy check accepts names only the directory defines" 0

STATE="$T/state-ldap"
broker_start "$T/ldap.yaml"
tap_result "broker starts on the directory policy" || {
	tap_done
	exit
}
rec=$(journal_select '.event == "directory.loaded"' | head -n 1)
assert_eq "directory.loaded: 7 users, 3 groups" "7 3" \
	"$(jq -r '"\(.users) \(.groups)"' <<<"${rec:-null}")"
assert_eq "directory.loaded names the server" "$LDAP_URI" "$(jq -r .uri <<<"${rec:-null}")"

got=$(decisions)
assert_eq "every check decides as with the file alone" "$want" "$got"
assert_contains "a name nobody knows is looked up in the directory at once" "$got" \
	"zed false - | zed is not known to sbx on sbx-01"
wait_until 5 eval 'ctl check zed; [[ "$OUT$ERR" == *"nor in the directory"* ]]'
assert_contains "once looked up, zed is known to be in neither the file nor the directory" \
	"$OUT$ERR" "zed is not known to sbx on sbx-01 (not in the policy file nor in the directory)"
got_roles=""
for u in $PEOPLE; do
	got_roles+="$u: $(memberships "$u" | tr '\n' ';')"$'\n'
done
assert_eq "every explain lists the same roles, standing or eligible" "$want_roles" "$got_roles"
req --as erin roles
assert_eq "sbx-request roles: erin's roles, limits and approvers are the same" \
	"$want_erin_roles" "$OUT"

# 3. Explanations name the directory group.
ctl --json policy explain alice
assert_eq "explain alice: sandbox-user via ldap group developers" "ldap group developers" \
	"$(json_get '.roles[] | select(.role == "sandbox-user") | .via')"
assert_eq "explain alice: sandbox-admin via ldap group sre (a posixGroup)" "ldap group sre" \
	"$(json_get '.roles[] | select(.role == "sandbox-admin") | .via')"
assert_eq "explain alice: prod-data is listed by name in the file" "listed by name" \
	"$(json_get '.roles[] | select(.role == "prod-data") | .via')"
assert_contains "check alice says which directory group lets her in" \
	"$(json_get .reason)" "standing member of sandbox-user via ldap group developers"
ctl policy explain erin
assert_match "explain erin (text): sandbox-admin, eligible, ldap group sre" \
	'^sandbox-admin +eligible +ldap group sre ' "$OUT"

# 4. Managers from manager DNs approve.
req --as erin --json sandbox-admin --reason "rotate the sandbox signing keys"
ERIN=$(out_id)
assert_eq "erin's request is pending" pending "$(json_get .state)"
assert_contains "erin's approvers: her manager from the directory, and security-leads" \
	"$(json_get '.approvers // empty')" "erin's manager (frank) or security-leads (frank, grace)"
ctl --as carol approve "${ERIN:-0}"
assert_rc "carol (not erin's manager, not a security lead) may not approve" 2
assert_contains "for carol the request does not exist" "$ERR" "no request ${ERIN:-0}"
ctl --as frank --json approve "${ERIN:-0}"
assert_rc "frank, erin's manager in the directory, approves" 0
assert_eq "erin's grant is active" active "$(json_get .state)"
assert_eq "the approval is recorded as a manager's" "manager of erin" \
	"$(journal_select ".event == \"request.approval\" and .id == ${ERIN:-0}" | jq -r .ground)"
ctl check erin
assert_rc "erin may log in with her grant" 0

req --as dave --json sandbox-admin --reason "debug the sandbox image build"
DAVE=$(out_id)
ctl --as bob approve "${DAVE:-0}"
assert_rc "bob approves dave: eligible by name in the file, managed in the directory" 0
assert_eq "bob approved as dave's manager" "manager of dave" \
	"$(journal_select ".event == \"request.approval\" and .id == ${DAVE:-0}" | jq -r .ground)"
req --as alice --json sandbox-admin --reason "look at the sandbox host's logs"
ALICE=$(out_id)
ctl --as grace approve "${ALICE:-0}"
assert_rc "grace approves alice as a member of the directory's security-leads" 0

broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"
slapd_stop
tap_done
