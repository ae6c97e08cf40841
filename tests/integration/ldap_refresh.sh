#!/bin/bash
# Changes in the directory reach the broker by themselves: within two
# cache_ttls of an ldapmodify, people added to a group may log in and
# drift.membership records who gained or lost which role through which
# group.  Losing eligibility does not cut a grant short, unless the role
# says revoke_on_ineligible: true.  A name the broker has never seen is
# looked up at once, not at the next refresh.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ldap_lib.sh"
sbx_init
ldap_require

CACHE_TTL=1
PEOPLE_DN=ou=people,dc=example,dc=org
GROUPS_DN=ou=groups,dc=example,dc=org

slapd_setup && slapd_start
tap_result "slapd starts" || {
	tap_done
	exit
}
ldap_policy "$T/ldap.yaml" "timeout: 1s" "cache_ttl: ${CACHE_TTL}s" "max_stale: 1m"
# sandbox-admin ends grants when eligibility ends; sandbox-readonly does not.
sed -i 's/^  sandbox-admin:$/&\n    revoke_on_ineligible: true/' "$T/ldap.yaml"
broker_start "$T/ldap.yaml"
tap_result "broker starts" || {
	tap_done
	exit
}

# drift USER ROLE: "before->after group" of the last drift.membership.
drift() {
	journal_select ".event == \"drift.membership\" and .user == \"$1\" and .role == \"$2\"" |
		tail -n 1 | jq -r '"\(.before)->\(.after) \(.group)"'
}

req --as erin --json sandbox-admin --reason "rotate the sandbox signing keys"
ERIN=$(out_id)
ctl --as frank approve "${ERIN:-0}"
ctl check erin
assert_rc "erin holds a sandbox-admin grant (eligible through sre)" 0
req --as carol --json sandbox-readonly
CAROL=$(out_id)
assert_eq "carol holds a sandbox-readonly grant (eligible through developers)" active \
	"$(json_get .state)"
assert_eq "no drift yet" "" "$(journal_select '.event == "drift.membership"')"

# erin leaves sre (a posixGroup) and joins developers (a groupOfNames);
# carol leaves developers.
t0=$(now_ms)
ldap_modify "dn: cn=sre,$GROUPS_DN
changetype: modify
delete: memberUid
memberUid: erin

dn: cn=developers,$GROUPS_DN
changetype: modify
add: member
member: uid=erin,$PEOPLE_DN
-
delete: member
member: uid=carol,$PEOPLE_DN"
tap_result "ldapmodify: erin from sre to developers, carol out of developers"

wait_until 10 eval 'ctl check erin; [ "$RC" = 0 ] && [[ "$OUT" == *standing* ]]'
t_seen=$(now_ms)
assert_contains "erin may log in as a standing member of sandbox-user" "$OUT" \
	"standing member of sandbox-user via ldap group developers"
# The journal's writer may still be on its way to the file.
wait_until 5 eval '[ "$(journal_select ".event == \"drift.membership\"" | grep -c .)" -ge 5 ]'
# The change took effect when the broker merged it, which is when it
# recorded erin's drift onto sandbox-user: measure to that record's time,
# not to when this shell (slow on a loaded machine) got round to asking.
t1=$(journal_select '.event == "drift.membership" and .user == "erin" and .role == "sandbox-user"' |
	head -n 1 | jq -r '.time // empty')
took=x
[ -n "$t1" ] && took=$(($(to_us "$t1") / 1000 - t0))
diag "the change took effect after ${took} ms (cache_ttl ${CACHE_TTL}s; this shell saw it after $((t_seen - t0)) ms)"
assert_int_between "within two cache_ttls (and a margin for the machine)" 0 \
	$((2 * CACHE_TTL * 1000 + 2000)) "$took"
assert_eq "drift: erin gained sandbox-user through developers" "none->standing developers" \
	"$(drift erin sandbox-user)"
assert_eq "drift: erin may now ask for sandbox-readonly" "none->eligible developers" \
	"$(drift erin sandbox-readonly)"
assert_eq "drift: erin lost sandbox-admin with sre" "eligible->none sre" \
	"$(drift erin sandbox-admin)"
assert_eq "drift: carol lost sandbox-user" "standing->none developers" \
	"$(drift carol sandbox-user)"
assert_eq "drift: carol lost sandbox-readonly" "eligible->none developers" \
	"$(drift carol sandbox-readonly)"
rec=$(journal_select '.event == "drift.membership" and .user == "carol"' | head -n 1)
assert_eq "drift.membership records user, role, group, before, after" \
	"carol sandbox-user developers standing none directory" \
	"$(jq -r '"\(.user) \(.role) \(.group) \(.before) \(.after) \(.source)"' <<<"${rec:-null}")"
assert_eq "nobody else drifted" 5 "$(journal_select '.event == "drift.membership"' | grep -c .)"

# revoke_on_ineligible: erin's sandbox-admin grant ends, with the reason.
wait_record 5 ".event == \"grant.revoked\" and .id == ${ERIN:-0}"
rec=$(journal_select ".event == \"grant.revoked\" and .id == ${ERIN:-0}")
assert_eq "erin's sandbox-admin grant is revoked (revoke_on_ineligible)" \
	"sbx revoke_on_ineligible sre" "$(jq -r '"\(.actor) \(.cause) \(.group)"' <<<"${rec:-null}")"
assert_eq "the revocation says why" \
	"erin is no longer eligible for sandbox-admin: removed from directory group sre (revoke_on_ineligible)" \
	"$(jq -r .reason <<<"${rec:-null}")"
ctl --json grants --user erin
assert_eq "erin holds no grant any more" "" "$(json_get '.[]? | .id')"
# sandbox-readonly has no revoke_on_ineligible: carol keeps her grant.
assert_eq "carol's sandbox-readonly grant runs on" "active" \
	"$(events_of "${CAROL:-0}" | awk '{ print $NF }' | sed 's/grant.activated/active/')"
ctl --json check carol
assert_eq "carol may still log in with that grant" "true grant" \
	"$(json_get '"\(.allowed) \(.via)"')"

# A new person and a new member: no restart, no SIGHUP.
ldap_add "dn: uid=heidi,$PEOPLE_DN
objectClass: inetOrgPerson
uid: heidi
cn: Heidi Helper
sn: Helper
manager: uid=frank,$PEOPLE_DN"
ldap_modify "dn: cn=developers,$GROUPS_DN
changetype: modify
add: member
member: uid=heidi,$PEOPLE_DN"
wait_until 10 eval 'ctl check heidi; [ "$RC" = 0 ]'
assert_rc "heidi, new in the directory, may log in" 0
# heidi may have been found by the on-demand lookup of a never-seen name;
# the next full refresh (within a cache_ttl) counts her too.
wait_record 10 '.event == "directory.loaded" and .users == 8'
tap_result "directory.loaded counts 8 users now"
ctl --json policy explain heidi
assert_eq "heidi: standing on sandbox-user via ldap group developers" \
	"standing ldap group developers" \
	"$(json_get '.roles[] | select(.role == "sandbox-user") | "\(.how) \(.via)"')"

# A never-seen name is looked up at once: with cache_ttl 10m, only that
# lookup can bring ivan in.
sed -i -e 's/^  cache_ttl: .*/  cache_ttl: 10m/' -e 's/^  max_stale: .*/  max_stale: 1h/' \
	"$T/ldap.yaml"
loads=$(journal_select '.event == "policy.loaded"' | grep -c .)
kill -HUP "$BROKER_PID"
wait_until 5 eval '[ "$(journal_select ".event == \"policy.loaded\"" | grep -c .)" -gt "$loads" ]'
tap_result "SIGHUP loads the policy with cache_ttl 10m"
ctl check alice
assert_rc "right after the reload, directory users still log in" 0
# The changed directory: section makes the worker read the directory
# again, and ivan must be added only after that read has landed, or the
# read brings him in.  The worker reads before it looks up a name asked
# about after the reload: once a name nobody has is known to be in
# neither place, the read has landed.
wait_until 10 eval 'ctl check nemo; [[ "$OUT$ERR" == *"nor in the directory"* ]]' ||
	diag "the lookup of nemo did not come back within 10 s: $OUT$ERR"
ldap_add "dn: uid=ivan,$PEOPLE_DN
objectClass: inetOrgPerson
uid: ivan
cn: Ivan Intern
sn: Intern"
ldap_modify "dn: cn=developers,$GROUPS_DN
changetype: modify
add: member
member: uid=ivan,$PEOPLE_DN"
ctl check ivan
assert_rc "ivan is refused the first time" 1
assert_contains "... while sbx looks him up" "$OUT$ERR" \
	"ivan is not known to sbx on sbx-01 yet: looking them up in the directory now"
t0=$(now_ms)
wait_until 5 eval 'ctl check ivan; [ "$RC" = 0 ]'
assert_rc "a moment later ivan may log in, long before the next refresh" 0
diag "ivan was found after $(($(now_ms) - t0)) ms"

broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"
slapd_stop
tap_done
