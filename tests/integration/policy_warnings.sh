#!/bin/bash
# The policies sbx ships load, and a valid policy that lets nobody in says
# so: packaging/default-policy.yaml (what /etc/sbx/policy.yaml is on a
# first install) and the commented examples pass `sbxctl policy check`;
# the default one, and one whose roles' hosts miss this host, make
# `policy check`, `sbx-brokerd --check` and the broker's start warn; as
# root, so does a role's unix group that /etc/group already has with
# members (a private mount namespace, the host's file untouched).
. "$(dirname "$0")/lib.sh"
sbx_init
DEFAULT="$SBX_SRCDIR/packaging/default-policy.yaml"
EX="$SBX_SRCDIR/packaging/examples"

for f in "$DEFAULT" "$EX"/yaml-only.yaml "$EX"/ldap.yaml "$EX"/slack.yaml "$REF_POLICY"; do
	run "$SBXCTL" policy check "$f"
	assert_rc "policy check $(basename "$f"): valid" 0
done
run "$SBXCTL" policy check "$REF_POLICY" "$EX"/yaml-only.yaml "$EX"/slack.yaml
assert_eq "the reference policy and the YAML-only and Slack examples (host sbx-01): no warnings" "" "$ERR"

# --- nobody gains access -----------------------------------------------------------------------
run "$SBXCTL" policy check "$DEFAULT"
assert_match "default policy: policy check warns that nobody gains access" \
	"^$DEFAULT: warning: the policy has no roles: nobody can log in or ask for access" "$ERR"
assert_eq "and says ok on stdout" "$DEFAULT: ok" "$OUT"
run "$BROKERD" --check --config "$DEFAULT"
assert_rc "sbx-brokerd --check: valid (exit 0)" 0
assert_contains "sbx-brokerd --check warns the same" "$ERR" "warning: the policy has no roles"

OTHER="$T/other-host.yaml"
sed 's/^  host: sbx-01 .*/  host: build-07/' "$REF_POLICY" >"$OTHER"
run "$SBXCTL" policy check "$OTHER"
assert_rc "a policy for other hosts is valid" 0
assert_contains "policy check warns that no role applies to this host" "$ERR" \
	"warning: no role applies to this host (build-07): the roles' hosts are sbx-*, sbx-clinical-*"
run "$SBXCTL" --json policy check "$OTHER"
assert_eq "--json: the warning is in \"warnings\"" 1 "$(json_get '.[0].warnings | length')"
assert_eq "--json: still ok" true "$(json_get '.[0].ok')"
run "$BROKERD" --check --config "$OTHER"
assert_contains "sbx-brokerd --check warns" "$ERR" "no role applies to this host (build-07)"
run "$BROKERD" --check --config "$REF_POLICY" --host build-07
assert_contains "so does --host naming a host no role applies to" "$ERR" "no role applies to this host (build-07)"

broker_start "$OTHER"
assert_true "the broker starts with it" alive "$BROKER_PID"
assert_match "and says at start that nobody can log in here" \
	'sbx-brokerd: warning: .*other-host.yaml: no role applies to this host \(build-07\)' "$(cat "$LOG")"
ctl check alice
assert_eq "indeed: alice (standing on sbx-*) is denied on build-07" 1 "$RC"
broker_stop

# --- a role's group already in /etc/group ---------------------------------------------------------
if is_root && command -v unshare >/dev/null; then
	cp /etc/group "$T/group"
	echo "sbx-admin:x:60001:mallory" >>"$T/group"
	echo "sbx-phi:x:4242:" >>"$T/group"
	run unshare -m --propagation private -- sh -c \
		"mount --bind '$T/group' /etc/group && exec '$SBXCTL' policy check '$REF_POLICY'"
	assert_rc "a role's group in /etc/group: still valid" 0
	assert_contains "warned: members hold it whatever sbx grants" "$ERR" \
		"role 'sandbox-admin': unix group sbx-admin already exists in /etc/group with members mallory"
	assert_contains "warned: another gid" "$ERR" \
		"role 'prod-data': unix group sbx-phi has gid 4242 in /etc/group, not the role's 60002"
	assert_not_contains "the host's /etc/group was never touched" "$(cat /etc/group)" "mallory"
else
	tap_skip "a role's group in /etc/group is warned about" "needs root (a private mount namespace)"
fi

tap_done
