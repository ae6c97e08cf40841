#!/bin/bash
# Retention (docs/audit.md, "Retention"; docs/policy.md, profiles'
# retention): records written five days ago (the broker under faketime),
# profiles that keep records 2d and 3d and a default of 1d; a broker of
# today removes the old segment once it is sealed and wholly before the
# seal its snapshot names, recording journal.pruned (sealed) first.  Then
# `audit verify` passes with and without --key, saying it started from an
# anchor; the broker starts again on the pruned journal; a forged anchor
# (more cut off, the pruned record rewritten and the chain re-hashed)
# passes the chain-only check and fails with --key.
. "$(dirname "$0")/lib.sh"
sbx_init

FAKETIME_LIB=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
if [ ! -r "$FAKETIME_LIB" ]; then
	tap_skip "retention on a real broker" "faketime is not installed (apt-get install faketime)"
	tap_done
	exit
fi

# Profiles keep records 2d and 3d; roles without a profile retention 1d.
sed -i 's/^    max_duration: 8h$/    max_duration: 8h\n    retention: 2d/; s/^    review_every: 90d$/    review_every: 90d\n    retention: 3d/' "$POLICY"
cat >>"$POLICY" <<'EOF2'

audit:
  seal_every: 1s
  retention: 1d
EOF2
KEY="$T/verify.key"
mkdir -m 700 "$STATE"
run "$SBXCTL" audit init --state-dir "$STATE" --out "$KEY"
assert_rc "audit init makes a key" 0

# ---- five days ago ----
BROKER_PREFIX=(env FAKETIME="-5d" FAKETIME_DONT_FAKE_MONOTONIC=1 LD_PRELOAD="$FAKETIME_LIB"
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
broker_start
tap_result "a broker whose clock is five days behind starts" || {
	tap_done
	exit
}
req --as erin --json sandbox-admin --reason "retention test: an old request"
ID=$(out_id)
wait_record 20 '.event == "journal.sealed" and .why == "timer" and .last_seq > '"$(journal | jq -s 'map(select(.event == "request.created")) | .[0].seq')"
tap_result "the old request is sealed"
req --as erin cancel "$ID" --reason "retention test: cancelled"
broker_stop
assert_eq "it stops cleanly" 0 "$BROKER_RC"
BROKER_PREFIX=()
OLD_TIME=$(journal | head -n 1 | jq -r .time)
assert_true "its records are five days old" test "$(to_s "$OLD_TIME")" -lt "$(($(date +%s) - 4 * 86400))"

# Split the one segment after its first seal, as rotation would have at
# 64 MiB: the old records get a segment of their own.
SEG="$STATE/journal/000000000001.jsonl"
S=$(journal_select '.event == "journal.sealed"' | head -n 1 | jq .seq)
NEXT=$(printf '%012d.jsonl' $((S + 1)))
tail -n +$((S + 1)) "$SEG" >"$STATE/journal/$NEXT"
head -n "$S" "$SEG" >"$SEG.tmp" && mv "$SEG.tmp" "$SEG"
LAST_OLD_HASH=$(tail -n 1 "$SEG" | jq -r .hash)
run "$SBXCTL" audit verify --state-dir "$STATE" --key "$KEY"
assert_rc "the split journal verifies" 0

# ---- today ----
broker_start
tap_result "a broker of today starts" || {
	tap_done
	exit
}
# Its snapshot names a seal in the second segment: the first may go.
kill -USR1 "$BROKER_PID"
wait_record 30 '.event == "journal.pruned"'
tap_result "the old segment is pruned, and recorded as journal.pruned"
PRUNED=$(journal_select '.event == "journal.pruned"' | head -n 1)
assert_eq "... naming the range and the file" "1 $S 000000000001.jsonl" \
	"$(printf '%s' "$PRUNED" | jq -r '"\(.first_seq) \(.last_seq) \(.files | join(","))"')"
assert_eq "... and the last pruned record's hash" "$LAST_OLD_HASH" \
	"$(printf '%s' "$PRUNED" | jq -r .last_hash)"
P=$(printf '%s' "$PRUNED" | jq .seq)
wait_record 20 '.event == "journal.sealed" and .why == "retention" and .last_seq >= '"$P"
tap_result "... and sealed"
wait_until 10 eval '[ ! -e "$SEG" ]'
tap_result "the segment file is gone"
broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"

run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "verify passes on the pruned journal" 0
assert_contains "... saying it started from an anchor" "$OUT" "started from an anchor: seqs 1..$S were pruned"
run "$SBXCTL" audit verify --state-dir "$STATE" --key "$KEY"
assert_rc "verify --key passes on the pruned journal" 0
assert_contains "... sealed" "$OUT" "intact and sealed"
assert_contains "... from the anchor" "$OUT" "journal.pruned record at seq $P"

broker_start
tap_result "the broker starts again on the pruned journal"
STARTED=$(journal_select '.event == "broker.started"' | tail -n 1)
assert_true "... checking the chain from the seal its snapshot names, not from seq 1" \
	test "$(printf '%s' "$STARTED" | jq '.chain_from // 0')" -gt "$S"
req --as dave --json sandbox-admin --reason "retention test: after pruning"
assert_ne "... and records a new request" "" "$(out_id)"
broker_stop
run "$SBXCTL" audit verify --state-dir "$STATE" --key "$KEY"
assert_rc "verify --key passes after that start" 0

# ---- a forged anchor: two more records cut, the pruned record rewritten
# to cover them, and every hash after it recomputed ----
rm -rf "$T/c"
cp -a "$STATE" "$T/c"
python3 - "$T/c" <<'PY'
import glob, hashlib, json, os, re, sys
d = sys.argv[1] + "/journal/"
files = sorted(glob.glob(d + "*.jsonl"))
first = files[0]
lines = open(first).read().splitlines()
cut, rest = lines[:2], lines[2:]
last_cut = json.loads(cut[-1])
os.unlink(first)
newname = d + "%012d.jsonl" % (last_cut["seq"] + 1)
files = [newname] + files[1:]
allf = {newname: rest}
for f in files[1:]:
    allf[f] = open(f).read().splitlines()
prev = None
rewriting = False
for f in files:
    out = []
    for line in allf[f]:
        if '"event":"journal.pruned"' in line:
            line = re.sub(r'"last_seq":\d+', '"last_seq":%d' % last_cut["seq"], line)
            line = re.sub(r'"last_hash":"[0-9a-f]{64}"', '"last_hash":"%s"' % last_cut["hash"], line)
            rewriting = True
        if rewriting:
            body = re.sub(r',"prev":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"}$', "", line)
            canon = body + ',"prev":"%s"}' % prev
            h = hashlib.sha256(canon.encode()).hexdigest()
            line = canon[:-1] + ',"hash":"%s"}' % h
        prev = json.loads(line)["hash"]
        out.append(line)
    open(f, "w").write("\n".join(out) + "\n")
PY
run "$SBXCTL" audit verify --state-dir "$T/c"
assert_rc "a forged anchor, re-hashed, passes the chain-only check" 0
run "$SBXCTL" audit verify --state-dir "$T/c" --key "$KEY"
assert_rc "... but fails verify --key" 1
assert_contains "... saying records were rewritten" "$OUT" "rewritten"

# A segment removed without any record of it: missing, even without --key.
rm -rf "$T/c"
cp -a "$STATE" "$T/c"
python3 - "$T/c" <<'PY'
import glob, sys
f = sorted(glob.glob(sys.argv[1] + "/journal/*.jsonl"))[-1]
lines = open(f).read().splitlines()
open(f, "w").write("\n".join(l for l in lines if '"event":"journal.pruned"' not in l) + "\n")
PY
run "$SBXCTL" audit verify --state-dir "$T/c"
assert_rc "a pruned journal without its journal.pruned record fails" 1

tap_done
