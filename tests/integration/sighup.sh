#!/bin/bash
# SIGHUP reloads the policy.  A broken file keeps the old policy in force
# (decisions unchanged) and records policy.rejected with the reasons; a
# fixed file is loaded (policy.loaded with its sha256) and its new rule
# takes effect at once.  Grants survive reloads.
. "$(dirname "$0")/lib.sh"
sbx_init

broker_start
tap_result "broker starts" || {
	tap_done
	exit
}

sha_of() { sha256sum "$1" | awk '{ print $1 }'; }
count_events() { journal_select ".event == \"$1\"" | grep -c .; }
policy_sha() {
	"$SBXCTL" --socket "$SOCK" --json status 2>/dev/null | jq -r .policy_sha256
}

sha0=$(sha_of "$POLICY")
assert_eq "policy.loaded at start-up names the file's sha256" "$sha0" \
	"$(journal_select '.event == "policy.loaded"' | tail -n 1 | jq -r .sha256)"
assert_eq "status reports the policy's sha256" "$sha0" "$(policy_sha)"

ctl check alice
assert_rc "before: alice may log in" 0
ctl check bob
assert_rc "before: bob may not" 1

req --as erin --json sandbox-admin --reason "hold a grant across policy reloads"
GRANT=$(out_id)
ctl --as frank approve "${GRANT:-0}"
ctl check erin
assert_rc "erin holds a grant before the reloads" 0

# reject_case NAME: the policy file is now broken in some way; SIGHUP must
# keep the old policy and record why.
reject_case() {
	local name=$1 before rec

	before=$(count_events policy.rejected)
	kill -HUP "$BROKER_PID"
	wait_until 5 eval '[ "$(count_events policy.rejected)" -gt "$before" ]'
	rec=$(journal_select '.event == "policy.rejected"' | tail -n 1)
	assert_eq "$name: SIGHUP records policy.rejected" $((before + 1)) \
		"$(count_events policy.rejected)"
	assert_eq "$name: policy.rejected names the policy kept" "$sha0" \
		"$(jq -r .kept_sha256 <<<"${rec:-null}")"
	assert_match "$name: policy.rejected says where and why (LINE:COL: message)" \
		'^[0-9]+:[0-9]+: .' "$(jq -r '.errors[]?' <<<"${rec:-null}")"
	diag "$(jq -r '.errors[]?' <<<"${rec:-null}")"
	assert_true "$name: the broker is still running" alive "$BROKER_PID"
	assert_eq "$name: the old policy stays in force" "$sha0" "$(policy_sha)"
	ctl check alice
	assert_rc "$name: alice may still log in" 0
	ctl check bob
	assert_rc "$name: bob still may not" 1
	ctl check erin
	assert_rc "$name: erin's grant still counts" 0
}

cp "$POLICY" "$T/good.yaml"

# 1. Not YAML at all.
printf 'roles:\n  sandbox-user: [unclosed\n' >"$POLICY"
reject_case "invalid YAML"

# 2. Valid YAML, invalid policy: an unknown key and a bad duration, with
#    the new rule that must NOT take effect.
sed -e 's/^  developers: \[alice, carol, dave\]/  developers: [alice, carol, dave, bob]/' \
	-e 's/^    max_duration: 2h$/    max_duration: 2 hours/' \
	-e 's/^  request_ttl: 24h.*/  request_ttl: 24h\n  colour: blue/' "$T/good.yaml" >"$POLICY"
assert_ne "the broken file differs from the good one" "$(sha_of "$T/good.yaml")" "$(sha_of "$POLICY")"
reject_case "unknown key and bad duration"
run "$SBXCTL" policy check "$POLICY"
assert_ne "sbxctl policy check agrees the file is broken" 0 "$RC"

# 3. Fixed, with the new rule: bob joins developers.
sed -e 's/^  developers: \[alice, carol, dave\]/  developers: [alice, carol, dave, bob]/' \
	"$T/good.yaml" >"$POLICY"
sha1=$(sha_of "$POLICY")
assert_ne "the fixed file is a new policy" "$sha0" "$sha1"
loaded_before=$(count_events policy.loaded)
kill -HUP "$BROKER_PID"
wait_until 5 eval '[ "$(count_events policy.loaded)" -gt "$loaded_before" ]'
rec=$(journal_select '.event == "policy.loaded"' | tail -n 1)
assert_eq "SIGHUP with a good file records policy.loaded" $((loaded_before + 1)) \
	"$(count_events policy.loaded)"
assert_eq "policy.loaded names the new file's sha256" "$sha1" "$(jq -r .sha256 <<<"${rec:-null}")"
assert_eq "status reports the new sha256" "$sha1" "$(policy_sha)"
ctl --json check bob
assert_rc "the new rule is in effect: bob may log in" 0
assert_contains "bob may log in as a developer" "$(json_get .reason)" "developers"
ctl check alice
assert_rc "alice still may" 0
ctl check erin
assert_rc "erin's grant survives the reload" 0
req --json status "${GRANT:-0}"
assert_eq "erin's grant is still active" active "$(json_get .state)"

# 4. Back to the reference: bob loses it again.
cp "$T/good.yaml" "$POLICY"
loaded_before=$(count_events policy.loaded)
kill -HUP "$BROKER_PID"
wait_until 5 eval '[ "$(count_events policy.loaded)" -gt "$loaded_before" ]'
assert_eq "reloading the reference policy: its sha256 again" "$sha0" "$(policy_sha)"
ctl check bob
assert_rc "bob may no longer log in" 1

broker_stop
assert_rc "the broker stops cleanly" 0 "$BROKER_RC"
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "the journal with reload records verifies" 0

tap_done
