#!/bin/bash
# sbxctl review report --online: with the people and groups in a private
# slapd instead of the file, the report's rows and sources come from the
# directory ("directory group developers"), as the broker would see them;
# without --online only the journal names anyone.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ldap_lib.sh"
sbx_init
ldap_require

slapd_setup && slapd_start
tap_result "slapd starts with the reference people" || {
	tap_done
	exit
}
ldap_policy "$T/ldap.yaml"
Q="$T/q"
mkdir -p "$Q"
run "$SBX_BUILDDIR/tests/integration/journal_writer" "$Q" <"$SBX_SRCDIR/tests/data/review/quarter.jsonl"
assert_rc "the scripted quarter is written" 0

run "$SBXCTL" review report --config "$T/ldap.yaml" --state-dir "$Q" --quarter 2026Q3 --format json --online
assert_rc "report --online" 0
assert_eq "the same 10 rows as with the file" 10 "$(json_get '.summary.rows')"
assert_eq "alice's standing login comes from the directory's developers" \
	"standing directory group developers" \
	"$(json_get '.rows[] | select(.role=="sandbox-user" and .user=="alice") | "\(.access) \(.source)"')"
assert_eq "dave is eligible for sandbox-admin by name (the file)" "eligible policy file, by name" \
	"$(json_get '.rows[] | select(.role=="sandbox-admin" and .user=="dave") | "\(.access) \(.source)"')"
assert_eq "the same flags as with the file" '{"unused":2,"max-duration":1,"same-approver":1,"auto-approved-sensitive":1,"drift":2,"review-overdue":1,"revoked-still-standing":0}' \
	"$(json_get '.summary.flags | tojson')"

run "$SBXCTL" review report --config "$T/ldap.yaml" --state-dir "$Q" --quarter 2026Q3 --format json
assert_rc "report without --online" 0
assert_eq "only who the journal names in the period (granted, or logged in), access none" \
	"none:alice:sandbox-admin none:alice:sandbox-readonly none:alice:sandbox-user none:dave:sandbox-admin none:dave:sandbox-user none:erin:sandbox-admin" \
	"$(json_get '[.rows[] | "\(.access):\(.user):\(.role)"] | sort | join(" ")')"

run "$SBXCTL" review report --config "$POLICY" --state-dir "$Q" --online
assert_rc "--online without a directory: section is a usage error" 2
assert_contains "saying so" "$ERR" "no directory: section"

slapd_stop
run "$SBXCTL" review report --config "$T/ldap.yaml" --state-dir "$Q" --online
assert_rc "--online with the directory down fails" 1
assert_contains "naming the directory" "$ERR" "--online: the directory:"

tap_done
