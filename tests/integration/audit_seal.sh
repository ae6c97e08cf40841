#!/bin/bash
# Forward-secure sealing (docs/audit.md, "Sealing") on a real broker: audit
# init makes the key once; the broker seals every epoch (1s here), at
# start-up and at a clean stop; `audit verify --key` passes on the real
# journal and fails, naming the seq, on copies tampered with in several
# ways: a changed byte, an edit with every hash after it recomputed, a
# seal deleted (and the chain re-hashed), the end cut off before the last
# seal, a record forged with a key stolen later.  A crash leaves an unsealed
# tail that is reported as such and sealed at the next start.  Nothing
# here depends on timing: the test waits for records, never for a clock.
. "$(dirname "$0")/lib.sh"
sbx_init

cat >>"$POLICY" <<'EOF'

audit:
  seal_every: 1s
EOF
KEY="$T/verify.key"

# ---- audit init ----
mkdir -m 700 "$STATE"
run "$SBXCTL" audit init --state-dir "$STATE" --out "$KEY"
assert_rc "audit init makes a key" 0
assert_match "... and prints the verification key" '^sbxseal1:[0-9a-f]{16}:' "$OUT"
assert_eq "... the same as it writes to --out" "$OUT" "$(cat "$KEY")"
assert_eq "... with mode 0600" 600 "$(stat -c %a "$KEY")"
assert_eq "the host's key file has mode 0600" 600 "$(stat -c %a "$STATE/seal.key")"
HOSTKEY=$(cat "$STATE/seal.key")
run "$SBXCTL" audit init --state-dir "$STATE" --out "$T/second.key"
assert_rc "a second audit init is refused" 1
assert_contains "... saying a key exists" "$ERR" "exists"
assert_eq "... and leaves the key alone" "$HOSTKEY" "$(cat "$STATE/seal.key")"

# ---- a broker that seals ----
broker_start
tap_result "broker starts with sealing on" || {
	tap_done
	exit
}
req --as erin --json sandbox-admin --reason "sealing test: the first request"
ID1=$(out_id)
assert_ne "a request is filed" "" "$ID1"
# The first timer seal after the request: the request is in a sealed epoch.
wait_record 20 '.event == "journal.sealed" and .why == "timer" and .last_seq > '"$(journal | jq -s 'map(select(.event == "request.created")) | .[0].seq')"
tap_result "an epoch with the request is sealed by the timer"
# Epochs pass with nothing in them: they are sealed too.
wait_until 20 eval '[ "$(journal_select ".event == \"journal.sealed\" and .first_seq == .last_seq + 1" | wc -l)" -ge 1 ]'
tap_result "an empty epoch is sealed"
req --as dave --json sandbox-admin --for 90m --reason "sealing test: the second request"
ID2=$(out_id)
ctl --as bob approve "$ID2"
broker_stop
assert_eq "broker stops cleanly" 0 "$BROKER_RC"
assert_eq "the journal ends with the stop's seal" "journal.sealed shutdown" \
	"$(journal | tail -n 1 | jq -r '"\(.event) \(.why)"')"
assert_ne "the host's key moved on" "$HOSTKEY" "$(cat "$STATE/seal.key")"

run "$SBXCTL" audit verify --state-dir "$STATE" --key "$KEY"
assert_rc "audit verify --key passes on the real journal" 0
assert_contains "... and says it is sealed" "$OUT" "intact and sealed"
run "$SBXCTL" --json audit verify --state-dir "$STATE" --key "$KEY"
assert_eq "... and --json says so, with nothing unsealed" "true true 0 true" \
	"$(json_get '"\(.intact) \(.sealed) \(.unsealed) \(.host_key_checked)"')"
assert_eq "... naming as many seals as the journal has" \
	"$(journal_select '.event == "journal.sealed"' | wc -l)" "$(json_get .seals)"
assert_true "no key file is left half-written" test ! -e "$STATE/seal.key.tmp"
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "audit verify without --key passes" 0
assert_contains "... and says it checked the chain only" "$OUT" "hash chain only"
run "$SBXCTL" --json audit verify --state-dir "$STATE" --key "$KEY" --standalone
assert_eq "--standalone (never in a fleet) passes too, no record a fleet's copy" "0 true 0" \
	"$RC $(json_get '"\(.intact) \(.fleet_copies_unchecked)"')"
run "$SBXCTL" audit verify --state-dir "$STATE" --standalone
assert_rc "--standalone without --key is a usage error" 2
assert_contains "... saying what it goes with" "$ERR" "--standalone goes with --key"

# ---- tampered copies ----
# rehash DIR FROM_SEQ: recompute every hash and prev from FROM_SEQ on, as
# someone with root and no key would after an edit.
rehash() {
	python3 - "$1" <<'PY'
import glob, hashlib, json, re, sys
files = sorted(glob.glob(sys.argv[1] + "/journal/*.jsonl"))
prev = "0" * 64
for f in files:
    out = []
    for line in open(f).read().splitlines():
        line = re.sub(r',"prev":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"}$', "", line)
        rec = json.loads(line + "}")
        canon = line + ',"prev":"%s"}' % prev
        h = hashlib.sha256(canon.encode()).hexdigest()
        out.append(canon[:-1] + ',"hash":"%s"}' % h)
        prev = h
    open(f, "w").write("\n".join(out) + "\n")
PY
}

# renumber DIR: seqs 1, 2, 3, ... again (after a line was deleted).
renumber() {
	python3 - "$1" <<'PY'
import glob, re, sys
n = 0
for f in sorted(glob.glob(sys.argv[1] + "/journal/*.jsonl")):
    out = []
    for line in open(f).read().splitlines():
        n += 1
        out.append(re.sub(r'^\{"seq":\d+,', '{"seq":%d,' % n, line))
    open(f, "w").write("\n".join(out) + "\n")
PY
}

copy() {
	rm -rf "$T/c"
	cp -a "$STATE" "$T/c"
	SEG=$(ls "$T"/c/journal/*.jsonl | head -n 1)
}

verify_copy() { run "$SBXCTL" audit verify --state-dir "$T/c" "$@"; }

# The seq "BROKEN at seq N" names.
bad_seq() { printf '%s\n' "$OUT" | sed -n 's/^journal BROKEN at seq \([0-9]*\):.*/\1/p'; }

# The first seq of the epoch holding record $1 (its seal's first_seq).
epoch_first() {
	journal | jq -s --argjson s "$1" \
		'map(select(.event == "journal.sealed" and .first_seq <= $s and .last_seq >= $s)) | .[0].first_seq'
}

S1=$(journal_select ".event == \"request.created\" and .id == $ID1" | jq .seq)

# A changed byte: the chain names the record.
copy
sed -i "${S1}s/the first request/the first requesT/" "$SEG"
verify_copy --key "$KEY"
assert_rc "a changed byte fails verify --key" 1
assert_eq "... naming the record" "$S1" "$(bad_seq)"

# An edit with every hash after it recomputed: the chain alone passes, the
# seal of the record's epoch does not.
copy
sed -i "${S1}s/the first request/the first requesT/" "$SEG"
rehash "$T/c"
verify_copy
assert_rc "a re-hashed edit passes the chain-only check" 0
verify_copy --key "$KEY"
assert_rc "... but fails verify --key" 1
assert_eq "... naming the first seq of the record's epoch" "$(epoch_first "$S1")" "$(bad_seq)"
assert_contains "... saying the records were rewritten" "$OUT" "rewritten"

# A seal deleted, the rest renumbered and re-hashed.
SEAL=$(journal_select '.event == "journal.sealed" and .why == "timer"' | head -n 1)
SEAL_SEQ=$(printf '%s' "$SEAL" | jq .seq)
copy
sed -i "${SEAL_SEQ}d" "$SEG"
renumber "$T/c"
rehash "$T/c"
verify_copy
assert_rc "a deleted seal, re-hashed, passes the chain-only check" 0
verify_copy --key "$KEY"
assert_rc "... but fails verify --key" 1
assert_eq "... naming the first record its epoch held" "$(printf '%s' "$SEAL" | jq .first_seq)" \
	"$(bad_seq)"
assert_contains "... saying the seal is missing" "$OUT" "is missing"

# Cut before the last seal: the chain is whole, the host's key says more
# epochs were sealed.
LAST=$(journal | tail -n 1)
copy
sed -i '$d' "$SEG"
verify_copy
assert_rc "a journal cut before its last seal passes the chain-only check" 0
verify_copy --key "$KEY"
assert_rc "... but fails verify --key" 1
assert_eq "... naming the first record cut from proof" "$(printf '%s' "$LAST" | jq .first_seq)" \
	"$(bad_seq)"
assert_contains "... saying it was cut" "$OUT" "cut"

# Forged with the host's current key (stolen now) as if it were an earlier
# epoch's: edit, re-hash, re-seal the record's epoch and every later one
# with the stolen key (the seals before it still hold).
copy
sed -i "${S1}s/the first request/the first requesT/" "$SEG"
python3 - "$T/c" "$S1" <<'PY'
import glob, hashlib, hmac, json, re, sys
d = sys.argv[1]
edited = int(sys.argv[2])
key = bytes.fromhex(open(d + "/seal.key").read().split()[5])
f = sorted(glob.glob(d + "/journal/*.jsonl"))[0]
prev = "0" * 64
out = []
for line in open(f).read().splitlines():
    body = re.sub(r',"prev":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"}$', "", line)
    rec = json.loads(body + "}")
    if rec["event"] == "journal.sealed" and rec["last_seq"] >= edited:
        msg = ("sbx-seal-v1\nkey_id=%s\nepoch=%d\nfirst_seq=%d\nlast_seq=%d\nfrom=%s\n"
               "until=%s\nhead=%s\nwhy=%s\n") % (rec["key_id"], rec["epoch"], rec["first_seq"],
                                              rec["last_seq"], rec["from"], rec["time"], prev,
                                              rec["why"])
        mac = hmac.new(key, msg.encode(), hashlib.sha256).hexdigest()
        body = re.sub(r'"head":"[0-9a-f]{64}"', '"head":"%s"' % prev, body)
        body = re.sub(r'"mac":"[0-9a-f]{64}"', '"mac":"%s"' % mac, body)
    canon = body + ',"prev":"%s"}' % prev
    h = hashlib.sha256(canon.encode()).hexdigest()
    out.append(canon[:-1] + ',"hash":"%s"}' % h)
    prev = h
open(f, "w").write("\n".join(out) + "\n")
PY
verify_copy --key "$KEY"
assert_rc "records re-sealed with a key stolen later fail verify --key" 1
assert_eq "... naming the first seq of the forged epoch" "$(epoch_first "$S1")" "$(bad_seq)"
assert_contains "... saying a later key made the seal" "$OUT" "a later one"

# ---- a crash between a record and its seal ----
sed -i 's/^  seal_every: 1s$/  seal_every: 1h/' "$POLICY"
broker_start
tap_result "broker starts again (epochs of an hour now)"
ctl --as bob revoke "$ID2" --reason "sealing test: before the crash"
assert_rc "a grant is revoked" 0
broker_kill9
CRASH_SEQ=$(journal_select ".event == \"grant.revoked\" and .id == $ID2" | jq .seq)
assert_ne "... and its grant recorded" "" "$CRASH_SEQ"
run "$SBXCTL" audit verify --state-dir "$STATE" --key "$KEY"
assert_rc "after a crash verify --key passes" 0
assert_contains "... reporting the unsealed tail as such" "$OUT" "not sealed yet"
broker_start
tap_result "broker starts after the crash"
assert_true "... and its start-up seal covers the crashed epoch" \
	journal_has ".event == \"journal.sealed\" and .why == \"startup\" and .last_seq >= $CRASH_SEQ and .first_seq <= $CRASH_SEQ"
broker_stop
run "$SBXCTL" audit verify --state-dir "$STATE" --key "$KEY"
assert_rc "verify --key passes after the restart" 0
assert_not_contains "... with nothing unsealed" "$OUT" "not sealed yet"

# ---- a crash after a seal reached the disk, before the key moved on ----
# The key file as it was during the run, put back after the stop's seal,
# and no snapshot after that seal: as if the broker died between the two.
broker_start
tap_result "broker starts for the crash-window case"
cp -p "$STATE/seal.key" "$T/key.during"
broker_stop
cp -p "$T/key.during" "$STATE/seal.key"
rm -f "$STATE/snapshot.json"
broker_start
tap_result "broker starts with the key one epoch behind its last seal"
broker_stop
run "$SBXCTL" audit verify --state-dir "$STATE" --key "$KEY"
assert_rc "... moved the key on instead of sealing that epoch twice" 0

# ---- audit init --force is recorded ----
run "$SBXCTL" audit init --state-dir "$STATE" --out "$T/new.key" --force
assert_rc "audit init --force replaces the key" 0
broker_start
tap_result "broker starts with the new key"
broker_stop
assert_true "the replacement is in the journal" \
	journal_has '.event == "journal.seal_key_replaced"'
run "$SBXCTL" audit verify --state-dir "$STATE" --key "$T/new.key"
assert_rc "verify with the new key passes" 0
run "$SBXCTL" audit verify --state-dir "$STATE" --key "$KEY"
assert_rc "verify with the old key fails" 1
assert_contains "... saying the key was replaced" "$OUT" "replaced"

tap_done
