#!/bin/bash
# The HTTP API against a live broker: personal tokens made with
# sbx-request, every endpoint called with them, authorised and not (wrong
# scope, another user's request, expired, revoked and orphaned tokens,
# self-approval, conflicts, the body cap, the rate limit, a long poll that
# returns on the approval), every response validated against
# docs/openapi.yaml (tests/integration/api_driver.py does the calls).
. "$(dirname "$0")/lib.sh"
sbx_init

if ! python3 -c 'import jsonschema, yaml' 2>/dev/null; then
	tap_skip "the HTTP API" "python3-jsonschema and python3-yaml are needed (scripts/deps.sh test)"
	tap_done
	exit
fi

# A compliance profile caps tokens; the API listens on a free loopback port.
sed -i 's/^  standard:$/  standard:\n    api_token_max: 45d/' "$POLICY"
printf '\napi:\n  listen: 127.0.0.1:0\n' >>"$POLICY"

broker_start
tap_result "the broker starts with an api: section" || {
	tap_done
	exit
}
API=$(grep -o 'api: listening on http://127\.0\.0\.1:[0-9]*' "$LOG" | sed 's/.*on //')
assert_match "it says where the API listens" '^http://127\.0\.0\.1:[0-9]+$' "$API"

while IFS= read -r line; do
	case $line in
	PASS\ *) tap_ok "${line#PASS }" ;;
	FAIL\ *) tap_fail "${line#FAIL }" ;;
	*) diag "$line" ;;
	esac
done < <(API=$API SBXREQ=$SBXREQ SBXCTL=$SBXCTL SOCK=$SOCK STATE=$STATE POLICY=$POLICY \
	BROKER_PID=$BROKER_PID SPEC="$SBX_SRCDIR/docs/openapi.yaml" \
	timeout 300 python3 "$SBX_SRCDIR/tests/integration/api_driver.py" 2>&1)

# Plain HTTP is for loopback only.
BAD="$T/bad.yaml"
sed 's/^  listen: 127\.0\.0\.1:0$/  listen: 0.0.0.0:8443/' "$POLICY" >"$BAD"
run "$BROKERD" --config "$BAD" --check
assert_rc "plain HTTP on a non-loopback address is refused" 2 "$RC"
assert_contains "it says TLS is needed" "$ERR" "tls_cert_file"

broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"
tap_done
