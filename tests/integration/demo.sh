#!/bin/bash
# The README's demo (scripts/demo.sh) runs to the end in a temp dir, prints
# each of its steps, and shows what each step is about: erin pending,
# frank approving, check allowing then denying after expiry, a restart
# with state intact, and `audit verify` passing.
. "$(dirname "$0")/lib.sh"
sbx_init

DEMO="$SBX_SRCDIR/scripts/demo.sh"

if [ ! -f "$DEMO" ]; then
	tap_fail "scripts/demo.sh exists"
	tap_done
	exit
fi
if ! is_root; then
	tap_skip "the demo" "scripts/demo.sh needs root (it speaks for erin and frank with --as)"
	tap_done
	exit
fi

# The demo builds nothing when SBX_BUILDDIR is set, and keeps its broker,
# socket and journal in SBX_DEMO_DIR.
SBX_DEMO_DIR="$T/demo" SBX_BUILDDIR="$SBX_BUILDDIR" RUN_TIMEOUT=150 run bash "$DEMO"
# Without the terminal's bold escapes.
out=$(printf '%s\n' "$OUT" | sed 's/\x1b\[[0-9;]*m//g')
assert_rc "scripts/demo.sh succeeds" 0
if [ "$RC" -ne 0 ]; then
	diag "last lines of its output:" "$(tail -n 30 <<<"$out")" "stderr:" "$(tail -n 20 <<<"$ERR")"
fi

for step in 1 2 3 4 5 6 7 8 9; do
	assert_match "the demo prints step $step" "^==> $step\. " "$out"
done
assert_match "the demo prints its end" "^==> Done" "$out"

# section N: the lines step N printed (its header up to the next one).
section() {
	awk -v n="$1" '/^==> / { on = index($0, "==> " n ". ") == 1; next } on' <<<"$out"
}

# What the steps show, each in its own step.
assert_match "1: the reference policy checks ok" "policy.yaml: ok" "$(section 1)"
assert_match "3: alice may log in (standing)" '^allowed: alice' "$(section 3)"
assert_match "3: erin may not log in yet" '^denied: erin' "$(section 3)"
assert_match "4: erin's request is pending" 'erin asks for sandbox-admin .*pending' "$(section 4)"
assert_match "5: erin cannot approve herself" 'own request' "$(section 5)$ERR"
assert_match "5: frank approves and the grant is active" 'approved|active' "$(section 5)"
assert_match "6: check erin allows with the grant" '^allowed: erin' "$(section 6)"
assert_match "7: the grant expires with a grant.expired record" '"event":"grant.expired"' \
	"$(section 7)"
assert_match "7: after expiry check erin denies" '^denied: erin' "$(section 7)"
assert_match "8: after the restart sbxctl pending still lists dave's request" \
	'^[0-9]+ +dave +sandbox-admin ' \
	"$(section 8 | sed -n '/broker started again/,$p')"
assert_match "9: audit verify passes" 'journal intact' "$(section 9)"

# Nothing left behind: the demo's broker is gone.
run "$SBXCTL" --socket "$T/demo/broker.sock" status
assert_rc "the demo stopped its broker" 3
assert_true "the demo's journal is in its own dir" test -d "$T/demo/state/journal"
run "$SBXCTL" audit verify --state-dir "$T/demo/state"
assert_rc "the demo's journal verifies afterwards" 0

tap_done
