#!/bin/bash
# The dashboard in a real browser (headless Chromium through Selenium,
# tests/integration/dashboard_driver.py): a person made for this test
# signs in with their unix password through PAM (service sbx-web, given
# to the broker in a private mount namespace), sees a request appear live
# when sbx-request files it, approves it, sees the grant count down and go
# at its expiry; screenshots land in the build dir (dashboard-*.png).
# The person is an auditor: the chart (GET /v1/stats) shows a grant made
# before the page was opened and the alerts panel an alert raised before
# it (GET /v1/alerts), then both follow the stream.
# Before that, with curl: the pages' types and CSP, and forged changes
# (no CSRF token, a foreign Origin) refused.
. "$(dirname "$0")/lib.sh"
sbx_init

if ! is_root; then
	tap_skip "the dashboard in a browser" "root is needed (a PAM account and a mount namespace)"
	tap_done
	exit
fi
PY=/usr/bin/python3
if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ] ||
	! "$PY" -c 'import selenium' 2>/dev/null; then
	tap_skip "the dashboard in a browser" "chromium, chromium-driver and python3-selenium are needed (scripts/deps.sh test)"
	tap_done
	exit
fi

# A fresh account with a password, an approver of erin's requests.
WEBUSER=sbxw$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
PASSWORD=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
useradd -M -N -s /usr/sbin/nologin "$WEBUSER" || {
	tap_fail "useradd $WEBUSER"
	tap_done
	exit
}
trap 'userdel "$WEBUSER" 2>/dev/null; _cleanup' EXIT
printf '%s:%s\n' "$WEBUSER" "$PASSWORD" | chpasswd
sed -i -e "s/^  security-leads: \[frank, grace\]/  security-leads: [frank, grace, $WEBUSER]\n  auditors: [$WEBUSER]/" \
	-e "s/^  developers: \[alice, carol, dave\]/  developers: [alice, carol, dave, $WEBUSER]/" \
	-e "s/^  grace: { slack_id: U0GRACE }/&\n  $WEBUSER: {}/" "$POLICY"
printf '\nalerts:\n  request-denied:\n    event: request.denied\n' >>"$POLICY"
printf '\napi:\n  listen: 127.0.0.1:0\n  web_dir: %s/web\n' "$SBX_SRCDIR" >>"$POLICY"

# The broker sees /etc/pam.d with an sbx-web service (the one shipped in
# packaging/pam.d) in its own mount namespace; the host's is untouched.
cp -a /etc/pam.d "$T/pam.d"
cp "$SBX_SRCDIR/packaging/pam.d/sbx-web" "$T/pam.d/sbx-web"
cat >"$T/ns.sh" <<'NS'
mount --bind "$1/pam.d" /etc/pam.d && shift && exec "$@"
NS
BROKER_PREFIX=(unshare -m --propagation private bash "$T/ns.sh" "$T")
# A sanitizer build: ASan's crypt_r interceptor finds no crypt_r when
# libcrypt arrives later with pam_unix (a NULL call); have it from the start.
ASAN_LIB=$(ldd "$BROKERD" | awk '/libasan/ { print $3; exit }')
CRYPT_LIB=$(ldconfig -p | awk '/libcrypt\.so\.1 / { print $NF; exit }')
if [ -n "$ASAN_LIB" ] && [ -n "$CRYPT_LIB" ]; then
	BROKER_PREFIX+=(env LD_PRELOAD="$ASAN_LIB $CRYPT_LIB")
fi
broker_start
tap_result "the broker starts with an api: section" || {
	tap_done
	exit
}
API=$(grep -o 'api: listening on http://127\.0\.0\.1:[0-9]*' "$LOG" | sed 's/.*on //')

run curl -sS -D - -o /dev/null --max-time 5 "$API/"
assert_contains "the page is HTML" "$OUT" "Content-Type: text/html"
assert_contains "with a CSP that allows only the broker itself" "$OUT" \
	"Content-Security-Policy: default-src 'self'"
run curl -sS -D - -o /dev/null --max-time 5 "$API/app.js"
assert_contains "the script is JavaScript" "$OUT" "Content-Type: text/javascript"
run curl -sS -o /dev/null -w '%{http_code}' --max-time 5 "$API/..%2fpolicy.yaml"
assert_eq "nothing but the dashboard's files is served" "404" "$OUT"
assert_not_contains "the page has no inline script" "$(cat "$SBX_SRCDIR/web/index.html")" "<script>"

# Forged changes, with a real session's cookie.
run curl -sS -c "$T/jar" -H "Origin: $API" -d "{\"user\":\"$WEBUSER\",\"password\":\"$PASSWORD\"}" \
	"$API/web/signin"
CSRF=$(json_get .csrf)
assert_match "a PAM sign-in gives a session and its CSRF token" '^[0-9a-f]{64}$' "$CSRF"
assert_contains "the cookie is HttpOnly" "$(cat "$T/jar")" "#HttpOnly_"
req --as erin sandbox-admin --for 1h --reason "forgery target request"
ID=$(printf '%s' "$OUT" | sed -n 's/^request \([0-9]*\):.*/\1/p')
run curl -sS -b "$T/jar" -H "Origin: $API" -d '{}' "$API/v1/requests/$ID/approve"
assert_eq "a change without the CSRF token is refused" "csrf" "$(json_get .code)"
run curl -sS -b "$T/jar" -H "Origin: http://attacker.example" -H "X-CSRF-Token: $CSRF" -d '{}' \
	"$API/v1/requests/$ID/approve"
assert_eq "a change from another origin is refused" "csrf" "$(json_get .code)"
run curl -sS -b "$T/jar" -H "X-CSRF-Token: $CSRF" -d '{}' "$API/v1/requests/$ID/approve"
assert_eq "a change without an Origin is refused" "csrf" "$(json_get .code)"
run curl -sS -b "$T/jar" -H "Origin: $API" -H "X-CSRF-Token: $(printf '%s' "$CSRF" | tr '0-9a-f' '1-9a-f0')" -d '{}' \
	"$API/v1/requests/$ID/approve"
assert_eq "a wrong CSRF token is refused" "csrf" "$(json_get .code)"
run curl -sS -H "Origin: http://attacker.example" -d "{\"user\":\"$WEBUSER\",\"password\":\"$PASSWORD\"}" \
	"$API/web/signin"
assert_eq "a sign-in posted from another site is refused" "csrf" "$(json_get .code)"
req --as erin status "$ID"
assert_contains "the forged approvals changed nothing" "$OUT" "pending"
req --as erin cancel "$ID"

# Sign-in failures: recorded, and limited per user.
for i in 1 2 3 4 5; do
	run curl -sS -H "Origin: $API" -d "{\"user\":\"$WEBUSER\",\"password\":\"wrong\"}" "$API/web/signin"
done
run curl -sS -H "Origin: $API" -d "{\"user\":\"$WEBUSER\",\"password\":\"$PASSWORD\"}" "$API/web/signin"
assert_eq "after 5 failures even the right password waits" "rate_limited" "$(json_get .code)"
run "$SBXCTL" audit query --state-dir "$STATE" --event web.signin_failed
assert_contains "failures are journaled as web.signin_failed" "$OUT" "$WEBUSER"
# ... and per address: 20 in all (a bad token names nobody).
for i in $(seq 15); do
	run curl -sS -H "Origin: $API" -d '{"token":"sbxt_nope"}' "$API/web/signin"
done
assert_eq "the 20th failure from an address is still answered" "signin_failed" "$(json_get .code)"
run curl -sS -H "Origin: $API" -d '{"token":"sbxt_nope"}' "$API/web/signin"
assert_eq "after 20 from one address, sign-in waits" "rate_limited" "$(json_get .code)"

# A token signs in too; its session files a request with the CSRF token.
broker_stop
broker_start
API=$(grep -o 'api: listening on http://127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*on //')
req --as erin token create --name web --expires 1d --scope read,request
run curl -sS -c "$T/jar2" -H "Origin: $API" -d "{\"token\":\"$OUT\"}" "$API/web/signin"
assert_eq "an API token signs in as its owner" "erin" "$(json_get .person)"
CSRF=$(json_get .csrf)
run curl -sS -b "$T/jar2" -H "Origin: $API" -H "X-CSRF-Token: $CSRF" \
	-d '{"role":"sandbox-admin","duration":"30m","reason":"asked from the dashboard"}' "$API/v1/requests"
assert_eq "the session files a request (the Request access form's call)" "pending" \
	"$(json_get .request.state)"
ASKED=$(json_get .request.id)
run curl -sS -b "$T/jar2" -H "Origin: $API" -H "X-CSRF-Token: $CSRF" -d '{}' \
	"$API/v1/requests/$ASKED/approve"
assert_eq "and cannot approve it: the token has no approve scope" "scope" "$(json_get .code)"
req --as erin cancel "$ASKED"
assert_rc "(erin's request cancelled again)" 0 "$RC"

# The failure window is per user: the browser signs in as another
# account would have to; start a broker afresh to clear the counts.
broker_stop
broker_start
API=$(grep -o 'api: listening on http://127\.0\.0\.1:[0-9]*' "$LOG" | tail -n 1 | sed 's/.*on //')

# Before the page opens: a grant of dave's (given back at once) and an
# alert (a denied request of dave's).
req --as dave --json sandbox-admin --for 10m --reason "before the page opened"
BEFORE=$(out_id)
ctl --as bob --json approve "$BEFORE"
assert_eq "dave's grant made before the page opens" active "$(json_get .state)"
req --as dave drop "$BEFORE"
assert_rc "(and given back)" 0 "$RC"
req --as dave --json sandbox-admin --for 10m --reason "this one will be denied"
ctl --as bob deny "$(out_id)" --reason "not today"
wait_record 5 '.event == "alert.raised" and .rule == "request-denied"'
assert_eq "the denial raises an alert before the page opens" 1 \
	"$(journal_select '.event == "alert.raised" and .rule == "request-denied"' | grep -c .)"
GRANTS_TODAY=$(journal_select ".event == \"grant.activated\" and (.time | startswith(\"$(date -u +%F)\"))" |
	grep -c .)

SHOTS="$SBX_BUILDDIR/dashboard-shots"
mkdir -p "$SHOTS"
tap_from_lines < <(API=$API SBXREQ=$SBXREQ SOCK=$SOCK WEBUSER=$WEBUSER PASSWORD=$PASSWORD SHOTS=$SHOTS \
	GRANTS_TODAY=$GRANTS_TODAY \
	timeout 240 "$PY" "$SBX_SRCDIR/tests/integration/dashboard_driver.py" 2>&1)

broker_stop
tap_done
