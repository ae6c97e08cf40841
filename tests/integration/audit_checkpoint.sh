#!/bin/bash
# Checkpoints kept off the host (docs/audit.md, "Checkpoints"): the seq and
# hash of seals, as syslog or a collector keeps them, prove that nothing up
# to them was cut or rewritten.  On a real sealed journal: `audit verify
# --checkpoint SEQ:HASH` (repeated) and `--checkpoint FILE` (SEQ:HASH lines
# and a collector's JSON lines) pass; a checkpoint whose record was
# rewritten and re-hashed fails even without --key, naming the checkpoint;
# a journal cut before a checkpoint fails; a malformed checkpoint is a
# usage error (exit 2).
. "$(dirname "$0")/lib.sh"
sbx_init

cat >>"$POLICY" <<'EOF2'

audit:
  seal_every: 1s
EOF2
KEY="$T/verify.key"
mkdir -m 700 "$STATE"
run "$SBXCTL" audit init --state-dir "$STATE" --out "$KEY"
assert_rc "audit init makes a key" 0

broker_start
tap_result "broker starts with sealing on" || {
	tap_done
	exit
}
req --as erin --json sandbox-admin --reason "checkpoint test: a request"
wait_record 20 '.event == "journal.sealed" and .why == "timer" and .last_seq > '"$(journal | jq -s 'map(select(.event == "request.created")) | .[0].seq')"
tap_result "the request is sealed by the timer"
req --as dave --json sandbox-admin --reason "checkpoint test: a second request"
broker_stop
assert_eq "broker stops cleanly" 0 "$BROKER_RC"

# The seals' (seq, hash): what the off-host sinks receive.
SEALS=$(journal_select '.event == "journal.sealed"' | jq -c '{seq, hash, epoch}')
# The first seal after the first request: rewriting that request shows.
RSEQ=$(journal_select '.event == "request.created"' | head -n 1 | jq .seq)
FIRST=$(journal_select ".event == \"journal.sealed\" and .last_seq >= $RSEQ" | head -n 1 |
	jq -c '{seq, hash, epoch}')
LAST=$(printf '%s\n' "$SEALS" | tail -n 1)
CP1="$(printf '%s' "$FIRST" | jq -r '"\(.seq):\(.hash)"')"
CP2="$(printf '%s' "$LAST" | jq -r '"\(.seq):\(.hash)"')"

run "$SBXCTL" audit verify --state-dir "$STATE" --key "$KEY" --checkpoint "$CP1" --checkpoint "$CP2"
assert_rc "two checkpoints given on the command line pass" 0
assert_contains "... and verify says both were found" "$OUT" "checkpoints: 2 of 2 found"
printf '# from the collector\n%s\n' "$SEALS" >"$T/collector.jsonl"
printf '%s\n' "$CP1" >"$T/cps.txt"
run "$SBXCTL" --json audit verify --state-dir "$STATE" --checkpoint "$T/collector.jsonl" \
	--checkpoint "$T/cps.txt"
assert_rc "a collector's JSON lines and a SEQ:HASH file pass" 0
assert_eq "... every one counted" "$(($(printf '%s\n' "$SEALS" | wc -l) + 1))" \
	"$(json_get .checkpoints_ok)"

# rehash DIR: every hash and prev recomputed, as root without the key would.
rehash() {
	python3 - "$1" <<'PY'
import glob, hashlib, re, sys
prev = "0" * 64
for f in sorted(glob.glob(sys.argv[1] + "/journal/*.jsonl")):
    out = []
    for line in open(f).read().splitlines():
        line = re.sub(r',"prev":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"}$', "", line)
        canon = line + ',"prev":"%s"}' % prev
        h = hashlib.sha256(canon.encode()).hexdigest()
        out.append(canon[:-1] + ',"hash":"%s"}' % h)
        prev = h
    open(f, "w").write("\n".join(out) + "\n")
PY
}
rm -rf "$T/c"
cp -a "$STATE" "$T/c"
SEG=$(ls "$T"/c/journal/*.jsonl | head -n 1)
sed -i 's/checkpoint test: a request/checkpoint test: a requesT/' "$SEG"
rehash "$T/c"
run "$SBXCTL" audit verify --state-dir "$T/c"
assert_rc "a rewritten, re-hashed journal passes the chain-only check" 0
run "$SBXCTL" audit verify --state-dir "$T/c" --checkpoint "$T/cps.txt" --checkpoint "$CP2"
assert_rc "... but not its checkpoints" 1
assert_contains "... naming the first that fails" "$OUT" "checkpoint 1 ($(printf '%s' "$FIRST" | jq -r .seq):"
assert_contains "... saying it was rewritten" "$OUT" "rewritten"

rm -rf "$T/c"
cp -a "$STATE" "$T/c"
SEG=$(ls "$T"/c/journal/*.jsonl | tail -n 1)
sed -i '$d' "$SEG"
run "$SBXCTL" audit verify --state-dir "$T/c" --checkpoint "$CP2"
assert_rc "a journal cut before a checkpoint fails" 1
assert_contains "... saying it was cut" "$OUT" "were cut"

run "$SBXCTL" audit verify --state-dir "$STATE" --checkpoint "12:xyz"
assert_rc "a malformed checkpoint is a usage error" 2
assert_contains "... saying what a checkpoint is" "$ERR" "SEQ:HASH"
run "$SBXCTL" audit verify --state-dir "$STATE" --checkpoint "$T/missing"
assert_rc "a missing checkpoint file is a usage error" 2

tap_done
