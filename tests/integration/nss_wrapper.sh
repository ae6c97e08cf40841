#!/bin/bash
# libnss_sbx under nss_wrapper (no root, /etc untouched) against a live
# broker: a grant makes its holder a member of the role's unix group for
# getent, id and enumeration, and the membership ends at expiry and at
# revocation, also while the broker is stopped; without a table the module
# asks the broker's socket.  sbxctl and the journal name the unix group.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/nss_lib.sh"
sbx_init
nss_init

if ! have_nss_wrapper; then
	tap_skip "libnss_sbx under nss_wrapper" "libnss-wrapper is not installed"
	tap_done
	exit
fi

cat >>"$POLICY" <<'EOF'

  quick-admin:
    description: Short grants for the NSS tests
    hosts: ["sbx-*"]
    unix_group: { name: sbx-quick, gid: 60003 }
    eligible: { users: [erin, dave] }
    approvers: { manager: true }
    approvals: 1
    default_duration: 3s
    max_duration: 6s
EOF

broker_start
tap_result "broker starts" || {
	tap_done
	exit
}

# wait_past RFC3339: sleep until the clock has passed that second.
wait_past() {
	local until_s

	until_s=$(to_s "$1") || return 1
	while [ "$(date +%s)" -le "$until_s" ]; do
		sleep 0.1
	done
}

# --- the table ---------------------------------------------------------------------
assert_true "the broker writes groups.table beside its socket" test -f "$TABLE"
assert_eq "the table is mode 644" 644 "$(stat -c %a "$TABLE" 2>/dev/null)"

# --- before any grant -----------------------------------------------------------------
assert_eq "getent group sbx-admin: the group, no members" "sbx-admin:x:60001:" \
	"$(getent_group sbx-admin)"
assert_eq "getent group 60001: the same by gid" "sbx-admin:x:60001:" "$(getent_group 60001)"
run_nw getent group nosuch-group
assert_rc "an unknown group is not found (exit 2)" 2
run_nw getent group 61234
assert_rc "an unknown gid is not found (exit 2)" 2
assert_eq "a user's own group still comes from files" "erin:x:2005:" "$(getent_group erin)"

req --as erin --json sandbox-admin --reason "testing the nss module"
G1=$(out_id)
assert_eq "erin's request is pending" pending "$(json_get .state)"
assert_eq "a pending request brings no membership" "sbx-admin:x:60001:" \
	"$(getent_group sbx-admin)"

# --- the grant ---------------------------------------------------------------------------
ctl --as frank --json approve "${G1:-0}"
assert_eq "frank approves: active" active "$(json_get .state)"
assert_eq "the approval's reply names the unix group" "sbx-admin 60001" \
	"$(json_get '"\(.unix_group) \(.gid)"')"
assert_eq "getent group sbx-admin lists erin at once" "sbx-admin:x:60001:erin" \
	"$(getent_group sbx-admin)"
assert_eq "getent group 60001 too" "sbx-admin:x:60001:erin" "$(getent_group 60001)"
run_nw id erin
assert_contains "id erin shows the group (initgroups)" "$OUT" "60001(sbx-admin)"
run_nw id dave
assert_not_contains "id dave does not" "$OUT" "sbx-admin"
run_nw getent group
assert_match "enumeration lists sbx-admin with erin" '^sbx-admin:x:60001:erin$' "$OUT"
assert_match "enumeration lists every role's group (sbx-phi)" '^sbx-phi:x:60002:$' "$OUT"
assert_match "enumeration still has the files groups" '^frank:x:2006:$' "$OUT"

ctl --json grants --user erin
assert_eq "sbxctl grants --json names the unix group" "sbx-admin 60001" \
	"$(json_get '.[0] | "\(.unix_group) \(.gid)"')"
ctl grants --user erin
assert_contains "sbxctl grants (text) lists erin's grant" "$OUT" "sandbox-admin"
assert_true "the journal's grant.activated names the unix group and gid" \
	journal_has ".event == \"grant.activated\" and .id == ${G1:-0} and .unix_group == \"sbx-admin\" and .gid == 60001"

# A tiny buffer: ERANGE, then glibc-style retries until it fits.
run_tool erange sbx-admin
assert_rc "a short buffer gets TRYAGAIN/ERANGE, a larger one succeeds" 0
assert_match "it took several tries, starting from 1 byte" '^tries=[2-9]' "$OUT"
assert_contains "the retried answer is right" "$OUT" "SUCCESS sbx-admin:x:60001:erin"

# --- revocation ---------------------------------------------------------------------------
ctl --as frank revoke "${G1:-0}" --reason "done with the test"
assert_rc "frank revokes the grant" 0
assert_eq "after revocation the group is empty at once" "sbx-admin:x:60001:" \
	"$(getent_group sbx-admin)"
run_nw id erin
assert_not_contains "id erin no longer shows it" "$OUT" "sbx-admin"
assert_true "the journal's grant.revoked names the unix group" \
	journal_has ".event == \"grant.revoked\" and .id == ${G1:-0} and .unix_group == \"sbx-admin\""

# --- expiry -------------------------------------------------------------------------------
req --as erin --json quick-admin --for 3s --reason "testing the nss module"
G2=$(out_id)
ctl --as frank --json approve "${G2:-0}"
EXP2=$(json_get .expires_at)
assert_eq "a 3s grant of quick-admin lists erin in sbx-quick" "sbx-quick:x:60003:erin" \
	"$(getent_group sbx-quick)"
wait_past "$EXP2"
assert_eq "after expires_at she is gone" "sbx-quick:x:60003:" "$(getent_group sbx-quick)"
wait_record 5 ".event == \"grant.expired\" and .id == ${G2:-0}"
assert_true "the journal's grant.expired names the unix group" \
	journal_has ".event == \"grant.expired\" and .id == ${G2:-0} and .unix_group == \"sbx-quick\""

# --- the broker stops while a grant is active --------------------------------------------
# 6s: the broker must be stopped, and the table read, before it ends.
req --as erin --json quick-admin --for 6s --reason "testing the nss module"
G3=$(out_id)
ctl --as frank --json approve "${G3:-0}"
EXP3=$(json_get .expires_at)
broker_stop
assert_rc "the broker stops cleanly" 0 "$BROKER_RC"
SUM=$(sha256sum "$TABLE" | cut -d' ' -f1)
assert_eq "broker stopped: erin is still listed (the table)" "sbx-quick:x:60003:erin" \
	"$(getent_group sbx-quick)"
run_nw id erin
assert_contains "broker stopped: id erin still shows it" "$OUT" "60003(sbx-quick)"
wait_past "$EXP3"
assert_eq "broker stopped: erin vanishes at expires_at" "sbx-quick:x:60003:" \
	"$(getent_group sbx-quick)"
run_nw id erin
assert_not_contains "broker stopped: id erin no longer shows it" "$OUT" "sbx-quick"
assert_eq "nobody rewrote the table meanwhile: the clock alone did it" "$SUM" \
	"$(sha256sum "$TABLE" | cut -d' ' -f1)"

# --- no table: the socket ----------------------------------------------------------------
broker_start
tap_result "the broker starts again" || {
	tap_done
	exit
}
G4=$(nss_grant erin sandbox-admin frank)
assert_ne "erin gets sandbox-admin again" "" "$G4"
rm -f "$TABLE"
assert_eq "table removed, broker up: answered over the socket" "sbx-admin:x:60001:erin" \
	"$(getent_group sbx-admin)"
assert_eq "by gid too" "sbx-admin:x:60001:erin" "$(getent_group 60001)"
run_nw id erin
assert_contains "initgroups over the socket" "$OUT" "60001(sbx-admin)"
run_nw getent group
assert_match "enumeration over the socket" '^sbx-phi:x:60002:$' "$OUT"
run_nw getent group nosuch-group
assert_rc "unknown names over the socket: not found" 2
ctl --as frank revoke "${G4:-0}"
assert_true "the next change writes the table again" test -f "$TABLE"
assert_eq "and it is current" "sbx-admin:x:60001:" "$(getent_group sbx-admin)"

# --- both gone ----------------------------------------------------------------------------
broker_stop
rm -f "$TABLE"
run_nw getent group sbx-admin
assert_rc "no table, no broker: getent finds nothing (exit 2)" 2
assert_eq "files still answer" "frank:x:2006:" "$(getent_group frank)"

tap_done
