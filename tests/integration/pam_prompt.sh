#!/bin/bash
# pam_sbx's optional prompt mode under pam_wrapper + pamtester (its
# conversation reads the answers from stdin): an eligible user who is
# refused is offered to file the request there and then, sees the request
# id and who was asked in a prompt, and is let in once it is approved
# within wait=; declining, an approval that does not come in time, a
# request the broker refuses, a user with nothing to ask for, and a
# conversation that cannot prompt all leave the refusal standing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/pam_lib.sh"
sbx_init
pam_init
pam_service sbxp prompt wait=8
pam_service sbxp_short prompt wait=1
pam_service sbx_plain

broker_start
tap_result "broker starts" || {
	tap_done
	exit
}

# ptin ANSWERS SERVICE USER: pamtester with the answers on stdin.
ptin() {
	local answers=$1

	shift
	printf '%b' "$answers" >"$T/answers"
	PT_STDIN="$T/answers" pt "$@" acct_mgmt
}

# --- offered, filed, approved while the login waits -------------------------------
# frank approves request 1 a moment after it is filed.
(
	wait_until 10 journal_has '.event == "request.created" and .user == "erin"'
	sleep 0.5
	"$SBXCTL" --socket "$SOCK" --as frank approve 1 >/dev/null 2>&1
) &
track_pid $!
ptin '\n30m\nfixing the disk quota on sbx-01\n\n' sbxp erin
assert_rc "erin files the request at login, frank approves, she is let in" 0
assert_contains "she is offered the role she may ask for" "$OUT" \
	"sbx: request access now? Role (sandbox-admin) [sandbox-admin], or 'no':"
assert_contains "she sees the request id and who was asked, in a prompt" "$OUT" \
	"sbx: request 1 for sandbox-admin is waiting for approval by erin's manager (frank) or security-leads (frank, grace)."
rec=$(last_field '.event == "request.created" and .id == 1' '[.user, .actor, (.duration|tostring), .reason] | join("|")')
assert_eq "the request is erin's, for 30m, with her reason" "erin|erin|1800|fixing the disk quota on sbx-01" "$rec"
assert_contains "the filing is logged" "$(cat "$PAM_SYSLOG")" "prompt: user=erin asked for sandbox-admin"

# --- the refusal stands ------------------------------------------------------------
ctl --as frank revoke 1
ptin 'no\n' sbxp erin
assert_rc "erin declines the offer: refused" 1
assert_contains "... with the broker's message" "$OUT" "sbx: erin has no active grant on sbx-01."
assert_eq "... and nothing was requested" 1 "$(journal_select '.event == "request.created"' | wc -l)"

ptin '\n\nshort\n' sbxp erin
assert_rc "a reason the broker refuses: refused" 1
assert_contains "... saying why" "$OUT" "reason"
assert_eq "... and nothing was requested" 1 "$(journal_select '.event == "request.created"' | wc -l)"

ptin '\n2d\nfixing the disk quota on sbx-01\n' sbxp erin
assert_rc "a duration beyond the role's maximum: refused" 1
assert_contains "... saying so" "$OUT" "at most 2h"

ptin '\n\nfixing the disk quota again\n\n' sbxp_short erin
assert_rc "nobody approves within wait=1: refused" 1
assert_contains "... told the request waits and how to follow it" "$OUT" \
	"is still waiting for approval; log in again once it is approved (sbx-request status"
P=$(last_field '.event == "request.created"' .id)
req --json status "${P:-0}"
assert_eq "the request stays pending for the approver" pending "$(json_get .state)"
req --as erin cancel "${P:-0}"

ptin 'sandbox-root\n' sbxp erin
assert_rc "a role that was not offered: refused" 1
assert_contains "... saying so" "$OUT" "not one of the roles offered"

ptin '' sbxp erin
assert_rc "no answer at all (the conversation cannot prompt): refused" 1
assert_contains "... with the broker's message" "$OUT" "Run: sbx-request sandbox-admin"

ptin '\n' sbxp bob
assert_rc "bob, with nothing to ask for, is refused without an offer" 1
assert_not_contains "... and not offered anything" "$OUT" "request access now?"

ptin '\n' sbx_plain erin
assert_rc "without the prompt option nobody is asked anything" 1
assert_not_contains "... no offer" "$OUT" "request access now?"

tap_done
