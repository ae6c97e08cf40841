#!/bin/bash
# valgrind memcheck over pamtester runs of pam_sbx under pam_wrapper: every
# path of the module (allowed, denied with a message, sessions, broker
# down in both fail modes, exempt, a silent broker, garbage, odd options,
# prompt mode)
# without a leak or an invalid access.  Skipped in a sanitizer build (ASan
# and valgrind do not mix; ASan runs the other PAM tests there).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pam_lib.sh"
sbx_init
pam_init
if ldd "$PAM_SO" | grep -q libasan; then
	tap_skip "valgrind over pamtester" "sanitizer build: valgrind cannot run ASan code"
	tap_done
	exit
fi
if ! command -v valgrind >/dev/null; then
	tap_skip "valgrind over pamtester" "valgrind is not installed (apt-get install valgrind)"
	tap_done
	exit
fi

pam_service sbx debug
pam_service sbx_open failmode=open timeout=400 frobnicate exempt=zed
pam_service sbx_prompt prompt wait=1

# A leak counts when memory allocated by pam_sbx.so is lost; pamtester's
# and libpam's own habits are not ours to judge (and are suppressed only
# by where the allocation happened, see below).
# shellcheck disable=SC2054 # the commas are inside option values
VG=(valgrind --quiet --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect
	--errors-for-leak-kinds=definite,indirect --track-origins=yes --num-callers=30
	--log-file="$T/vg.%p.log")

# vg DESCRIPTION EXPECTED-RC SERVICE USER OPS...: pamtester under valgrind.
vg() {
	local desc=$1 want=$2 logs bad

	shift 2
	rm -f "$T"/vg.*.log
	run "${PAM_ENV[@]}" "${VG[@]}" pamtester "$@" <"${PT_STDIN:-/dev/null}"
	assert_rc "$desc: pamtester exit status" "$want"
	logs=$(cat "$T"/vg.*.log 2>/dev/null)
	# Errors in our code: a frame of pam_sbx.so anywhere in the report.
	bad=$(printf '%s\n' "$logs" | grep -E 'Invalid (read|write|free)|uninitialised|definitely lost|indirectly lost|Mismatched|overlap' || true)
	if [ -z "$bad" ] && [ "$RC" != 99 ]; then
		tap_ok "$desc: no memcheck errors, no leaks"
	else
		tap_fail "$desc: no memcheck errors, no leaks"
		diag "$(printf '%s\n' "$logs" | head -n 60)"
	fi
}

broker_start
tap_result "broker starts" || {
	tap_done
	exit
}

vg "alice allowed" 0 sbx alice acct_mgmt
vg "bob refused with a message" 1 sbx bob acct_mgmt
vg "erin refused with the hint" 1 sbx erin acct_mgmt
if is_root; then
	vg "alice: account, session open and close" 0 sbx alice acct_mgmt open_session close_session
else
	tap_skip "sessions under valgrind" "the broker takes sessions from root only"
fi
vg "odd options, exempt user" 0 sbx_open zed acct_mgmt open_session close_session
# prompt mode: pamtester's conversation reads the answers from stdin
printf 'no\n' >"$T/answers"
PT_STDIN="$T/answers" vg "prompt mode, offer declined" 1 sbx_prompt erin acct_mgmt
printf '\n\nfixing the disk quota on sbx-01\n\n' >"$T/answers"
PT_STDIN="$T/answers" vg "prompt mode, request filed, not approved in time" 1 sbx_prompt erin acct_mgmt

broker_stop
vg "broker down, failmode=secure" 1 sbx alice acct_mgmt
vg "broker down, failmode=open" 0 sbx_open alice acct_mgmt open_session close_session

"$FAKE_BROKER" "$SOCK" silent >"$T/fake.out" 2>&1 &
track_pid $!
wait_until 5 grep -q ready "$T/fake.out"
vg "a broker that never answers (timeout)" 0 sbx_open alice acct_mgmt
kill %- 2>/dev/null
rm -f "$SOCK"
"$FAKE_BROKER" "$SOCK" garbage >"$T/fake2.out" 2>&1 &
track_pid $!
wait_until 5 grep -q ready "$T/fake2.out"
vg "a garbage reply" 1 sbx_open alice acct_mgmt

tap_done
