#!/bin/bash
# Smart alerts (docs/policy.md, "alerts"): five refused requests for one
# user within the window raise exactly one alert.raised, not one per
# refusal and not again for more refusals in the same window; another
# user's count is their own; five refused logins (root: recorded checks)
# do the same; a reload raises the policy rule; the windows survive a
# restart (rebuilt from the journal); `sbxctl alerts` lists them (text
# and --json); a rule naming an unknown event or field is an error at
# FILE:LINE:COL for `policy check` and the broker; with Slack configured
# the stand-in receives the alert through the outbox.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slack_lib.sh"
sbx_init

cat >>"$POLICY" <<'EOF'

alerts:
  refused-requests:
    description: 5 refused requests for one user in 10 minutes
    event: request.denied
    count: 5
    within: 10m
    per: user
  refused-logins:
    description: 5 refused logins for one user in 10 minutes
    event: access.checked
    outcome: denied
    count: 5
    within: 10m
    per: user
  policy-reload:
    event: policy.loaded
EOF

# deny_one USER: USER asks for sandbox-admin, frank refuses.
deny_one() {
	req --as "$1" sandbox-admin --reason "debug the ingest pipeline on sbx-01" --json
	local id
	id=$(out_id)
	ctl --as frank deny "${id:-0}" --reason "not now"
	[ "$RC" -eq 0 ] || diag "deny $id: $ERR"
}
alerts_of() { journal_select ".event == \"alert.raised\" and .rule == \"$1\"" | grep -c .; }

broker_start
tap_result "broker starts with an alerts: section" || {
	tap_done
	exit
}

# --- five refusals, one alert --------------------------------------------------------
for i in 1 2 3 4; do deny_one erin; done
assert_eq "four refusals: no alert yet" 0 "$(alerts_of refused-requests)"
for i in 1 2 3 4; do deny_one dave; done
deny_one erin
wait_record 3 '.event == "alert.raised" and .rule == "refused-requests"'
assert_eq "the fifth refusal of erin raises one alert" 1 "$(alerts_of refused-requests)"
rec=$(journal_select '.event == "alert.raised" and .rule == "refused-requests"')
denied=$(journal_select '.event == "request.denied" and .user == "erin"' | jq -s -c 'map(.seq)')
assert_eq "alert.raised names erin, request.denied, count 5 and the five seqs" \
	"erin request.denied 5 600 user $denied" \
	"$(printf '%s' "$rec" | jq -r '[.user, .matched, .count, .within, .per, (.seqs | tostring)] | join(" ")')"
alert_seq=$(printf '%s' "$rec" | jq .seq)
last_denied=$(printf '%s' "$denied" | jq '.[-1]')
assert_eq "it comes right after the refusal that filled the window" $((last_denied + 1)) "$alert_seq"
for i in 1 2 3; do deny_one erin; done
assert_eq "three more refusals in the same window: still one alert" 1 "$(alerts_of refused-requests)"
assert_eq "dave's four refusals are his own count" 0 \
	"$(journal_select '.event == "alert.raised" and .user == "dave"' | grep -c .)"
assert_contains "the broker logs the alert at warning" "$(cat "$LOG")" \
	"warning: alert refused-requests on sbx-01: 5 request.denied (user erin, role sandbox-admin) within 600s"

# --- refused logins (recorded only for root, as pam_sbx's are) ---------------------------
if is_root; then
	for i in 1 2 3 4 5 6 7; do
		run "$FRAME_TOOL" "$SOCK" check bob record
	done
	wait_record 3 '.event == "alert.raised" and .rule == "refused-logins"'
	assert_eq "seven refused logins of bob: one alert" 1 "$(alerts_of refused-logins)"
	assert_eq "it names bob and five access.checked seqs" "bob 5" \
		"$(journal_select '.event == "alert.raised" and .rule == "refused-logins"' |
			jq -r '[.user, (.seqs | length)] | join(" ")')"
else
	tap_skip "refused logins raise one alert" "only root's checks are recorded (pam_sbx runs as root)"
	tap_skip "it names bob and five access.checked seqs" "not root"
fi

# --- a reload ------------------------------------------------------------------------------
before=$(alerts_of policy-reload)
kill -HUP "$BROKER_PID"
wait_until 5 eval '[ "$(alerts_of policy-reload)" -gt "$before" ]'
assert_eq "SIGHUP: policy.loaded raises policy-reload once" $((before + 1)) "$(alerts_of policy-reload)"

# --- across a restart ---------------------------------------------------------------------
for i in 1 2 3 4; do deny_one dave; done
assert_eq "dave: 8 refusals in the window, one alert" 1 \
	"$(journal_select '.event == "alert.raised" and .rule == "refused-requests" and .user == "dave"' | grep -c .)"
broker_stop
broker_start
tap_result "the broker restarts"
assert_eq "a restart raises nothing again" 1 \
	"$(journal_select '.event == "alert.raised" and .rule == "refused-requests" and .user == "dave"' | grep -c .)"
for i in 1 2 3 4; do deny_one alice; done
broker_stop
broker_start
deny_one alice
wait_record 3 '.event == "alert.raised" and .user == "alice"'
assert_eq "four refusals before a restart and one after: the window was rebuilt" 1 \
	"$(journal_select '.event == "alert.raised" and .user == "alice"' | grep -c .)"

# --- sbxctl alerts -----------------------------------------------------------------------------
run "$SBXCTL" alerts --state-dir "$STATE"
assert_rc "sbxctl alerts: exit 0" 0
assert_contains "it lists the refused-requests alert" "$OUT" "rule=refused-requests"
assert_contains "with what it matched" "$OUT" "matched=request.denied"
assert_not_contains "and nothing but alerts" "$OUT" "request.created"
run "$SBXCTL" --json alerts --state-dir "$STATE" --since 1h
assert_eq "--json: an array of alert.raised records, erin's among them" "true 1" \
	"$(json_get '(all(.[]; .event == "alert.raised")|tostring) + " " +
		([.[] | select(.rule == "refused-requests" and .user == "erin")] | length | tostring)')"
run "$SBXCTL" alerts --state-dir "$STATE" --since 2000-01-01T00:00:00Z
assert_contains "--since takes a time" "$OUT" "rule=refused-requests"
run "$SBXCTL" alerts --state-dir "$STATE" --since yesterdayish
assert_rc "--since with a bad time: usage error" 2
broker_stop

# --- a bad rule: FILE:LINE:COL ------------------------------------------------------------------
cp "$POLICY" "$T/bad.yaml"
cat >>"$T/bad.yaml" <<'EOF'
  typo:
    event: request.deniedd
  typo-field:
    event: access.checked
    fields: { sevrice: sshd }
EOF
line=$(grep -n 'event: request.deniedd' "$T/bad.yaml" | cut -d: -f1)
fline=$(grep -n 'sevrice' "$T/bad.yaml" | cut -d: -f1)
run "$SBXCTL" policy check "$T/bad.yaml"
assert_rc "policy check: a bad rule fails (exit 2: invalid policy)" 2
assert_contains "unknown event at FILE:LINE:COL" "$ERR$OUT" \
	"$T/bad.yaml:$line:12: unknown event 'request.deniedd'"
assert_contains "unknown field at FILE:LINE:COL" "$ERR$OUT" "$T/bad.yaml:$fline:15: unknown field 'sevrice'"
run "$BROKERD" --config "$T/bad.yaml" --foreground --socket "$T/bad.sock" --state-dir "$T/bad-state"
assert_rc "the broker does not start on it" 2
assert_contains "and says where" "$ERR" "$T/bad.yaml:$line:12: unknown event"

# --- syslog: authpriv.warning (root: a private /dev with our own /dev/log) ------------------
if is_root && command -v unshare >/dev/null && unshare -m --propagation private true 2>/dev/null; then
	cat >"$T/syslogd.py" <<'PY'
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/dev/log")
with open(sys.argv[1] + ".pid", "w") as f:
    f.write(str(os.getpid()))
with open(sys.argv[1], "ab", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b"\n")
PY
	# /dev becomes a tmpfs in the broker's own mount namespace, with the
	# host's null, zero and urandom bound in and a datagram socket at
	# /dev/log; the host's /dev is untouched.
	cat >"$T/ns.sh" <<'SH'
set -e
d=$1
shift
mkdir -p "$d/olddev"
mount --rbind /dev "$d/olddev"
mount -t tmpfs -o mode=755 sbx-test-dev /dev
for n in null zero urandom random; do
	touch "/dev/$n"
	mount --bind "$d/olddev/$n" "/dev/$n"
done
python3 "$d/syslogd.py" "$d/syslog.out" &
for i in $(seq 100); do
	[ -S /dev/log ] && break
	sleep 0.05
done
exec "$@"
SH
	STATE="$T/state-syslog"
	BROKER_PREFIX=(unshare -m --propagation private bash "$T/ns.sh" "$T")
	broker_start
	tap_result "broker starts with its own /dev/log"
	BROKER_PREFIX=()
	[ -s "$T/syslog.out.pid" ] && track_pid "$(cat "$T/syslog.out.pid")"
	for i in 1 2 3 4 5; do deny_one erin; done
	wait_until 5 grep -q "alert refused-requests" "$T/syslog.out"
	# <84>: facility authpriv (10) * 8 + warning (4).
	assert_match "the alert reaches syslog as authpriv.warning" \
		'^<84>.*alert refused-requests on sbx-01: 5 request.denied \(user erin' \
		"$(grep "alert refused-requests" "$T/syslog.out")"
	assert_eq "syslog has it once" 1 "$(grep -c "alert refused-requests" "$T/syslog.out")"
	broker_stop
	[ -s "$T/syslog.out.pid" ] && kill "$(cat "$T/syslog.out.pid")" 2>/dev/null
else
	tap_skip "broker starts with its own /dev/log" "needs root and unshare -m (a private /dev/log)"
	tap_skip "the alert reaches syslog as authpriv.warning" "needs root and unshare -m"
	tap_skip "syslog has it once" "needs root and unshare -m"
fi

# --- Slack ---------------------------------------------------------------------------------------
STATE="$T/state-slack"
slack_setup
broker_start
tap_result "broker starts with alerts: and slack:"
for i in 1 2 3 4 5; do deny_one erin; done
wait_record 3 '.event == "alert.raised" and .rule == "refused-requests"'
wait_record 10 '.event == "notify.delivered" and .state == "alert"'
tap_result "the alert's Slack message is queued and delivered (notify.queued -> notify.delivered)"
assert_eq "one notify.queued carries the rule" 1 \
	"$(journal_select '.event == "notify.queued" and .state == "alert" and .alert == "refused-requests"' | grep -c .)"
posts=$(jq -r 'select(.status == 200 and (.path | startswith("/services/"))) | .json.text // empty' \
	"$FAKE_LOG" | grep -c "alert refused-requests on sbx-01: 5 request.denied (user erin")
assert_eq "the stand-in received the alert once" 1 "$posts"
reload_text=$(jq -r 'select(.status == 200) | .json.text // empty' "$FAKE_LOG" |
	grep -c "alert policy-reload on sbx-01: 1 policy.loaded")
assert_eq "the policy-reload alert raised at start-up, before Slack started, went out too" 1 \
	"$reload_text"
broker_stop
broker_start
wait_until 5 eval '[ "$(journal_select '"'"'.event == "notify.delivered" and .state == "alert"'"'"' | grep -c .)" -ge 3 ]'
posts=$(jq -r 'select(.status == 200 and (.path | startswith("/services/"))) | .json.text // empty' \
	"$FAKE_LOG" | grep -c "alert refused-requests")
assert_eq "a restart does not send the refusal alert again" 1 "$posts"
broker_stop

tap_done
