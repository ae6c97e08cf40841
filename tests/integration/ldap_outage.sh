#!/bin/bash
# The directory goes away.  A hung slapd (SIGSTOP: it accepts connections
# and never answers) never makes the broker wait: checks keep answering in
# well under 100 ms.  Decisions use the last good answers until max_stale
# (directory.unavailable once, then directory.stale); a name never seen is
# refused with a message that says the directory is unreachable; when slapd
# answers again, directory.recovered.  The same with slapd killed outright
# (connections refused) and started again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ldap_lib.sh"
sbx_init
ldap_require

MAX_STALE=5

slapd_setup && slapd_start
tap_result "slapd starts" || {
	tap_done
	exit
}
ldap_policy "$T/ldap.yaml" "timeout: 1s" "cache_ttl: 1s" "max_stale: ${MAX_STALE}s"
broker_start "$T/ldap.yaml"
tap_result "broker starts" || {
	tap_done
	exit
}
ctl check alice
assert_rc "alice (from the directory) may log in" 0

count() { journal_select ".event == \"$1\"" | grep -c .; }

# check_ms USER: run `sbxctl check USER` 5 times; CHECK_BEST and CHECK_WORST
# in ms (the CLI's start-up included), RC of the last.
check_ms() {
	local i t0 t1 ms

	CHECK_BEST=999999
	CHECK_WORST=0
	for i in 1 2 3 4 5; do
		t0=$(date +%s%N)
		ctl check "$1"
		t1=$(date +%s%N)
		ms=$(((t1 - t0) / 1000000))
		[ "$ms" -lt "$CHECK_BEST" ] && CHECK_BEST=$ms
		[ "$ms" -gt "$CHECK_WORST" ] && CHECK_WORST=$ms
	done
}

# 1. A hung directory.
t_stop=$(now_ms)
kill -STOP "$LDAP_PID"
wait_record 10 '.event == "directory.unavailable"'
tap_result "SIGSTOP: directory.unavailable is recorded"
rec=$(journal_select '.event == "directory.unavailable"' | head -n 1)
diag "directory.unavailable after $(($(now_ms) - t_stop)) ms: $(jq -r .error <<<"${rec:-null}")"
assert_contains "it names the server" "$(jq -r .uri <<<"${rec:-null}")" "$LDAP_URI"
assert_ne "it says until when cached answers are used" null \
	"$(jq -r .cached_until <<<"${rec:-null}")"

check_ms alice
assert_rc "while slapd hangs, alice may still log in (cached)" 0
diag "check alice while slapd hangs: best $CHECK_BEST ms, worst $CHECK_WORST ms (5 runs of sbxctl)"
assert_int_between "a check answers in under 100 ms while slapd hangs" 0 99 "$CHECK_BEST"
assert_int_between "... and no check waits for the directory (all under 1 s)" 0 999 "$CHECK_WORST"
ctl check bob
assert_rc "bob is still refused (cached: no role)" 1
ctl check judy
assert_rc "judy, never seen, is refused" 1
assert_contains "... with a message that the directory is unreachable" "$OUT$ERR" \
	"judy is not known to sbx on sbx-01, and the directory is unreachable"
req --as judy sandbox-readonly
assert_rc "judy's request is refused too" 1
assert_contains "... saying the directory is unreachable, not 'not in the policy'" "$OUT$ERR" \
	"judy is not known to sbx on sbx-01, and the directory is unreachable"

req --as erin --json sandbox-admin --reason "fix the sandbox while LDAP is down"
ERIN=$(out_id)
ctl --as frank approve "${ERIN:-0}"
assert_rc "erin's cached manager approves her request meanwhile" 0
ctl check erin
assert_rc "erin may log in with that grant" 0
assert_eq "directory.unavailable is recorded once" 1 "$(count directory.unavailable)"

# 2. Past max_stale the cached answers go.
wait_record $((MAX_STALE + 5)) '.event == "directory.stale"'
tap_result "after max_stale (${MAX_STALE}s): directory.stale"
diag "directory.stale after $(($(now_ms) - t_stop)) ms"
ctl check alice
assert_rc "alice is refused now" 1
assert_contains "... because the directory is unreachable" "$OUT$ERR" \
	"alice is not known to sbx on sbx-01, and the directory is unreachable"
check_ms carol
assert_int_between "checks still answer at once (best of 5 under 100 ms)" 0 99 "$CHECK_BEST"
ctl check erin
assert_rc "erin's grant still lets her in: grants do not depend on the directory" 0
run "$SBXCTL" --socket "$SOCK" status
assert_rc "sbxctl status answers" 0

# 3. slapd answers again.
kill -CONT "$LDAP_PID"
wait_record 10 '.event == "directory.recovered"'
tap_result "SIGCONT: directory.recovered"
rec=$(journal_select '.event == "directory.recovered"' | head -n 1)
assert_ne "it says for how long the directory was gone" null \
	"$(jq -r .down_for_s <<<"${rec:-null}")"
wait_until 5 eval 'ctl check alice; [ "$RC" = 0 ]'
assert_rc "alice may log in again" 0
assert_eq "coming back with the same data is no drift" 0 "$(count drift.membership)"

# 4. slapd killed: connections refused.
kill -9 "$LDAP_PID"
LDAP_PID=
rm -f "$LDAP_DIR/slapd.pid"
wait_until 10 eval '[ "$(count directory.unavailable)" -ge 2 ]'
assert_eq "slapd killed: a second directory.unavailable" 2 "$(count directory.unavailable)"
ctl check alice
assert_rc "alice may still log in (cached)" 0
slapd_start
tap_result "slapd starts again on the same port"
wait_until 10 eval '[ "$(count directory.recovered)" -ge 2 ]'
assert_eq "... and the broker records directory.recovered" 2 "$(count directory.recovered)"
ctl check judy
assert_contains "a never-seen name is now looked up, not refused as unreachable" "$OUT$ERR" \
	"looking them up in the directory"

assert_true "the broker is still running" alive "$BROKER_PID"
broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"
slapd_stop
tap_done
