#!/bin/bash
# The HTTP API against a live broker: personal tokens made with
# sbx-request, every endpoint called with them, authorised and not (wrong
# scope, another user's request, expired, revoked and orphaned tokens,
# self-approval and self-certification, a non-admin's drift, conflicts,
# the body cap, the rate limit, a long poll that returns on the approval),
# every response validated against docs/openapi.yaml
# (tests/integration/api_driver.py does the calls).
. "$(dirname "$0")/lib.sh"
sbx_init

if ! python3 -c 'import jsonschema, yaml' 2>/dev/null; then
	tap_skip "the HTTP API" "python3-jsonschema and python3-yaml are needed (scripts/deps.sh test)"
	tap_done
	exit
fi

# A compliance profile caps tokens; the API listens on a free loopback port.
sed -i 's/^  standard:$/  standard:\n    api_token_max: 45d/' "$POLICY"
# A drift scan of this test's own files (one finding: mallory in the
# watched group sudo) and an alert on every denial, for /v1/drift and
# /v1/alerts.  The api: section stays last (TLS keys are added to it).
H="$T/host"
mkdir -p "$H"
printf 'root:x:0:0:root:/root:/bin/bash\nmallory:*:4242003:4242003::%s/mallory:/bin/bash\n' \
	"$H" >"$H/passwd"
printf 'root:x:0:\nsudo:x:27:mallory\n' >"$H/group"
printf 'root ALL=(ALL:ALL) ALL\n' >"$H/sudoers"
: >"$H/utmp"
chmod 644 "$H/passwd" "$H/group" "$H/utmp"
chmod 440 "$H/sudoers"
cat >>"$POLICY" <<EOF

drift:
  interval: 1h
  group_file: $H/group
  passwd_file: $H/passwd
  sudoers: [$H/sudoers]
  authorized_keys: ["%h/.ssh/authorized_keys"]
  utmp_file: $H/utmp

alerts:
  request-denied:
    event: request.denied
EOF
printf '\napi:\n  listen: 127.0.0.1:0\n' >>"$POLICY"

broker_start
tap_result "the broker starts with an api: section" || {
	tap_done
	exit
}
API=$(grep -o 'api: listening on http://127\.0\.0\.1:[0-9]*' "$LOG" | sed 's/.*on //')
assert_match "it says where the API listens" '^http://127\.0\.0\.1:[0-9]+$' "$API"

API=$API SBXREQ=$SBXREQ SBXCTL=$SBXCTL SOCK=$SOCK STATE=$STATE POLICY=$POLICY \
	BROKER_PID=$BROKER_PID SPEC="$SBX_SRCDIR/docs/openapi.yaml" \
	timeout 300 python3 "$SBX_SRCDIR/tests/integration/api_driver.py" >"$T/driver.out" 2>&1
DRIVER_RC=$?
tap_from_lines <"$T/driver.out"
# A driver that died halfway (an exception, the timeout) has not run the rest.
assert_eq "the driver ran to its end" 0 "$DRIVER_RC"

# Tokens outlive a restart (from the snapshot, then from the journal), and
# the API speaks TLS (libmicrohttpd with GnuTLS) when given a certificate.
req --as erin token create --name after-restart --expires 1d --scope read
TOK=$OUT
assert_match "a token to use after the restart" '^sbxt_' "$TOK"
kill -USR1 "$BROKER_PID"
wait_until 10 grep -q "snapshot at seq" "$LOG"
tap_result "a snapshot is written"
broker_stop
if ! command -v openssl >/dev/null; then
	tap_skip "the API over TLS" "openssl is needed to make a test certificate"
else
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 \
		-addext "subjectAltName=IP:127.0.0.1" -keyout "$T/api.key" -out "$T/api.crt" \
		2>/dev/null
	chmod 600 "$T/api.key"
	printf '  tls_cert_file: %s\n  tls_key_file: %s\n' "$T/api.crt" "$T/api.key" >>"$POLICY"
	broker_start
	tap_result "the broker starts with tls_cert_file and tls_key_file" || {
		tap_done
		exit
	}
	URL=$(grep -o 'api: listening on https://127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 |
		sed 's/.*on //')
	assert_match "it says it listens for HTTPS" '^https://127\.0\.0\.1:[0-9]+$' "$URL"
	run curl -sS --max-time 10 --cacert "$T/api.crt" -H "Authorization: Bearer $TOK" \
		"$URL/v1/token"
	assert_eq "over TLS, the token made before the restart works" "after-restart" \
		"$(printf '%s' "$OUT" | jq -r .name 2>/dev/null)"
	run curl -sS --max-time 10 "http${URL#https}/v1/token"
	assert_ne "plain HTTP is not answered on the TLS port" 0 "$RC"
	chmod 644 "$T/api.key"
	run "$BROKERD" --config "$POLICY" --foreground --socket "$T/sock2" --state-dir "$T/state2"
	assert_ne "a key file others may read stops the broker" 0 "$RC"
	assert_contains "it says why" "$ERR" "chmod 600"
fi

# Plain HTTP is for loopback only.
BAD="$T/bad.yaml"
sed -e 's/^  listen: 127\.0\.0\.1:0$/  listen: 0.0.0.0:8443/' -e '/^  tls_/d' "$POLICY" >"$BAD"
run "$BROKERD" --config "$BAD" --check
assert_rc "plain HTTP on a non-loopback address is refused" 2 "$RC"
assert_contains "it says TLS is needed" "$ERR" "tls_cert_file"

broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"
tap_done
