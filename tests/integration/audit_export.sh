#!/bin/bash
# sbxctl audit export / verify-export (docs/audit.md, "Exports") and audit
# query's --host, --outcome and --actor, on the journal of a real broker
# that seals every second: an export in each format passes verify-export
# against the journal and against the verification key; the CSV, read
# back with python3's csv module, holds the same records as the jsonl; a
# changed byte in the export or in the manifest fails, naming what; a
# record rewritten with its chain and manifest recomputed fails with the
# key.  A hand-made journal shows the CSV's formula guard.  Nothing waits
# for a clock: the test waits for records.
. "$(dirname "$0")/lib.sh"
sbx_init

cat >>"$POLICY" <<'EOF'

audit:
  seal_every: 1s
EOF
KEY="$T/verify.key"
mkdir -m 700 "$STATE"
run "$SBXCTL" audit init --state-dir "$STATE" --out "$KEY"
assert_rc "audit init makes a key" 0

broker_start
tap_result "broker starts with sealing on" || {
	tap_done
	exit
}
T0=$(journal | head -n 1 | jq -r .time)
req --as erin --json sandbox-admin --reason 'export test, with "quotes", commas and =1+1'
ID1=$(out_id)
assert_ne "a request is filed" "" "$ID1"
ctl --as frank deny "$ID1" --reason "not today"
assert_rc "frank denies it" 0
req --as dave --json sandbox-admin --for 90m --reason "export test: the second request"
ID2=$(out_id)
ctl --as bob approve "$ID2"
assert_rc "bob approves the second" 0
LAST=$(journal | tail -n 1 | jq .seq)
wait_record 20 '.event == "journal.sealed" and .why == "timer" and .last_seq >= '"$LAST"
tap_result "a timer seal covers the requests"
broker_stop
assert_eq "broker stops cleanly" 0 "$BROKER_RC"
T1=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)

# ---- audit query: --outcome, --actor, --host ----
count_q() { "$SBXCTL" audit query --state-dir "$STATE" --format jsonl "$@" | grep -c .; }
assert_eq "--outcome denied: frank's denial" "1 request.denied" \
	"$(count_q --outcome denied) $("$SBXCTL" audit query --state-dir "$STATE" --format jsonl --outcome denied | jq -r .event)"
assert_eq "--outcome requested: both requests" 2 "$(count_q --outcome requested)"
assert_eq "--outcome granted: dave's grant" "$(journal_select '.event == "grant.activated"' | wc -l)" \
	"$(count_q --outcome granted)"
assert_eq "--actor frank: only what frank did" "$(journal_select '.actor == "frank"' | wc -l)" \
	"$(count_q --actor frank)"
assert_eq "--actor erin: not the records about erin that others made" \
	"$(journal_select '.actor == "erin"' | wc -l)" "$(count_q --actor erin)"
assert_ne "... which --user erin does include" "$(count_q --actor erin)" "$(count_q --user erin)"
# A record's host is the last broker.started's: the start-up seal before
# the first one has none.
assert_eq "--host sbx-01: every record from the first broker.started on" \
	"$(journal | jq -s 'map(.event) | length - index("broker.started")')" \
	"$(count_q --host sbx-01)"
assert_eq "--host sbx-99: nothing" 0 "$(count_q --host sbx-99)"
assert_eq "--outcome with --actor: both must hold" 1 "$(count_q --outcome denied --actor frank)"
run "$SBXCTL" audit query --state-dir "$STATE" --outcome maybe
assert_rc "an unknown --outcome is a usage error" 2
assert_contains "... that lists the outcomes" "$ERR" "refused"

# ---- export and verify-export ----
for fmt in jsonl json csv; do
	run "$SBXCTL" audit export --state-dir "$STATE" --since "$T0" --until "$T1" --format "$fmt" \
		--out "$T/x.$fmt"
	assert_rc "export --format $fmt" 0
	assert_eq "... the export and its manifest have mode 0600" "600 600" \
		"$(stat -c %a "$T/x.$fmt" "$T/x.$fmt.manifest.json" | tr '\n' ' ' | sed 's/ $//')"
	run "$SBXCTL" audit verify-export "$T/x.$fmt" --state-dir "$STATE"
	assert_rc "verify-export $fmt against the journal" 0
	assert_contains "... says intact" "$OUT" "export intact"
	run "$SBXCTL" audit verify-export "$T/x.$fmt" --key "$KEY"
	assert_rc "verify-export $fmt with the key" 0
	assert_contains "... proven by the seals" "$OUT" "proven by the seals"
done
run "$SBXCTL" audit export --state-dir "$STATE" --since "$T0" --until "$T1" --out "$T/x.jsonl"
assert_rc "an export never overwrites a file" 1
assert_eq "the jsonl export is the journal, every line" "$(cat "$STATE"/journal/*.jsonl)" \
	"$(cat "$T/x.jsonl")"
assert_eq "the json export is an array of the same records" "$(jq -c . "$T/x.jsonl" | jq -s -c .)" \
	"$(jq -c . "$T/x.json")"
M="$T/x.jsonl.manifest.json"
assert_eq "the manifest names the first and last seq" "1 $(journal | tail -n 1 | jq .seq)" \
	"$(jq -r '"\(.first_seq) \(.last_seq)"' "$M")"
assert_eq "... its SHA-256 is the export's" "$(sha256sum "$T/x.jsonl" | cut -d' ' -f1)" \
	"$(jq -r .sha256 "$M")"
assert_eq "... and it lists every seal of the range" \
	"$(journal_select '.event == "journal.sealed"' | jq -c '{seq,mac}')" \
	"$(jq -c '.seals[] | {seq,mac}' "$M")"

# The CSV, parsed back, holds the same records as the jsonl.
run python3 - "$T/x.csv" "$T/x.jsonl" <<'PY'
import csv, json, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="", encoding="ascii")))
recs = [json.loads(l) for l in open(sys.argv[2])]
assert len(rows) == len(recs), (len(rows), len(recs))
raw = open(sys.argv[2]).read().split("\n")
for row, rec, line in zip(rows, recs, raw):
    for k in ("seq", "id"):
        assert row[k] == ("" if rec.get(k) is None else str(rec[k])), (k, row, rec)
    for k in ("time", "event", "actor", "through", "user", "role", "host"):
        assert row[k] == (rec.get(k) or ""), (k, row[k], rec.get(k))
    assert row["hash"] == rec["hash"]
    assert row["record"] == line
    d = json.loads(row["details"])
    for k, v in d.items():
        assert rec[k] == v, (k, v, rec[k])
print(len(rows))
PY
assert_rc "python3 csv reads the export back: same records as the jsonl" 0
assert_eq "... one row per record" "$(journal | wc -l)" "$OUT"
assert_true "the csv's lines end in CRLF" eval '[ "$(grep -c $'"'"'\r$'"'"' "$T/x.csv")" -eq "$(wc -l <"$T/x.csv")" ]'

# ---- tampering ----
tamper_case() { # NAME FILE-TO-CHANGE PYTHON-EXPR EXPECTED-TEXT [verify args...]
	local name=$1 what=$2 expr=$3 want=$4
	shift 4
	rm -rf "$T/t" && mkdir "$T/t" && cp "$T"/x.* "$T/t/"
	python3 - "$T/t/$what" "$expr" <<'PY'
import sys
p, expr = sys.argv[1], sys.argv[2]
b = bytearray(open(p, "rb").read())
exec(expr)
open(p, "wb").write(bytes(b))
PY
	run "$SBXCTL" audit verify-export "$@"
	assert_rc "$name: verify-export fails" 1
	assert_contains "$name: ... saying $want" "$OUT" "$want"
}
SEQ3_OFF=$(python3 -c 'import sys; d=open(sys.argv[1],"rb").read(); i=d.index(b"{\"seq\":3,"); print(i+40)' "$T/x.jsonl")
tamper_case "a changed byte in the jsonl" x.jsonl "b[$SEQ3_OFF] ^= 1" \
	"in the record with seq 3" "$T/t/x.jsonl" --state-dir "$STATE"
tamper_case "the same with the key" x.jsonl "b[$SEQ3_OFF] ^= 1" \
	"record seq 3" "$T/t/x.jsonl" --key "$KEY"
tamper_case "a changed cell in the csv" x.csv \
	'i = b.index(b"\r\n2,") + 3; b[i:i+4] = b"2099"' "in the record with seq 2" \
	"$T/t/x.csv" --state-dir "$STATE"
tamper_case "the same with the key" x.csv \
	'i = b.index(b"\r\n2,") + 3; b[i:i+4] = b"2099"' "in the record with seq 2" \
	"$T/t/x.csv" --key "$KEY"
tamper_case "a record cut from the json" x.json \
	'i = b.index(b"\n{\"seq\":2,"); j = b.index(b"\n", i + 1); del b[i:j]' "seq 2" \
	"$T/t/x.json" --state-dir "$STATE"
tamper_case "a changed sha256 in the manifest" x.jsonl.manifest.json \
	'i = b.index(b"\"sha256\": \"") + 11; b[i] = ord("0") if b[i] != ord("0") else ord("1")' \
	"manifest's sha256" "$T/t/x.jsonl" --state-dir "$STATE"
tamper_case "a changed last_hash in the manifest, with the key" x.jsonl.manifest.json \
	'i = b.index(b"\"last_hash\": \"") + 14; b[i] = ord("0") if b[i] != ord("0") else ord("1")' \
	"manifest's last_hash" "$T/t/x.jsonl" --key "$KEY"
tamper_case "a seal's MAC changed in the manifest" x.csv.manifest.json \
	'i = b.index(b"\"mac\": \"") + 8; b[i] = ord("0") if b[i] != ord("0") else ord("1")' \
	"manifest's seals" "$T/t/x.csv" --state-dir "$STATE"
tamper_case "a space added to the manifest" x.json.manifest.json \
	'i = b.index(b"\"records\""); b[i:i] = b" "' "spacing or order" "$T/t/x.json" --state-dir "$STATE"
# An export that ends inside an epoch: its manifest carries the records up
# to the seal after it, which the key needs.
CUT=$(journal_select '.event == "request.created"' | tail -n 1 | jq -r .time)
run "$SBXCTL" audit export --state-dir "$STATE" --since "$T0" --until "$CUT" --out "$T/x.part"
assert_rc "an export that ends inside an epoch" 0
assert_eq "... names in after the records up to the seal after it" "journal.sealed" \
	"$(jq -r '.after[-1] | fromjson | .event' "$T/x.part.manifest.json")"
run "$SBXCTL" audit verify-export "$T/x.part" --key "$KEY"
assert_rc "... and passes with the key" 0
tamper_case "a record of the manifest's after changed" x.part.manifest.json \
	'i = b.index(b"\"after\""); i = b.index(b"sandbox-admin", i); b[i] = ord("S")' \
	"the manifest's after: record seq" "$T/t/x.part" --key "$KEY"

# Someone with root rewrites a record of the export, recomputes its chain,
# the after records and the manifest: only the seals tell.
rm -rf "$T/r" && mkdir "$T/r" && cp "$T"/x.jsonl* "$T/r/"
REWRITTEN=$(python3 - "$T/r/x.jsonl" <<'PY'
import hashlib, json, re, sys
p = sys.argv[1]; m = p + ".manifest.json"
lines = open(p).read().split("\n")[:-1]
man = json.load(open(m))
allr = lines + man["after"]
prev = man["first_prev"]
out = []
changed = None
for i, l in enumerate(allr):
    if changed is None and '"event":"request.created"' in l:
        l = l.replace("sandbox-admin", "sandbox-user", 1)
        changed = json.loads(l)["seq"]
    l = re.sub(r'"prev":"[0-9a-f]{64}","hash":"[0-9a-f]{64}"}$', '"prev":"%s"}' % prev, l)
    h = hashlib.sha256(l.encode()).hexdigest()
    l = l[:-1] + ',"hash":"%s"}' % h
    prev = h
    out.append(l)
data = "\n".join(out[:len(lines)]) + "\n"
open(p, "w").write(data)
man["first_hash"] = json.loads(out[0])["hash"]
man["last_hash"] = json.loads(out[len(lines) - 1])["hash"]
man["after"] = out[len(lines):]
man["sha256"] = hashlib.sha256(data.encode()).hexdigest()
man["bytes"] = len(data)
open(m, "w").write(json.dumps(man, indent=1) + "\n")
print(changed)
PY
)
run "$SBXCTL" audit verify-export "$T/r/x.jsonl" --key "$KEY"
assert_rc "a rewritten, re-hashed export fails with the key" 1
assert_match "... at the first seal after the change, naming its epoch's records" "records [0-9]+\.\.[0-9]+ were rewritten" "$OUT"
run "$SBXCTL" audit verify-export "$T/r/x.jsonl" --state-dir "$STATE"
assert_rc "... and against the journal" 1
assert_contains "... naming the record" "$OUT" "seq $REWRITTEN"

# ---- the range ----
MID=$(journal | sed -n '4p' | jq -r .time)
run "$SBXCTL" audit export --state-dir "$STATE" --since "$MID" --until "$T1" --format csv \
	--out "$T/mid.csv"
assert_rc "an export from the 4th record's time" 0
assert_eq "... starts at seq 4" 4 "$(jq .first_seq "$T/mid.csv.manifest.json")"
run "$SBXCTL" audit verify-export "$T/mid.csv" --key "$KEY"
assert_rc "... and passes with the key (its first seal began before it)" 0
run "$SBXCTL" audit export --state-dir "$STATE" --since 2001-01-01 --until 2001-01-02 \
	--out "$T/empty.jsonl"
assert_rc "an export of a range without records" 0
assert_eq "... is empty, and its manifest says so" "0 0" \
	"$(stat -c %s "$T/empty.jsonl") $(jq .records "$T/empty.jsonl.manifest.json")"
run "$SBXCTL" audit verify-export "$T/empty.jsonl" --state-dir "$STATE"
assert_rc "... and verifies" 0
run "$SBXCTL" audit export --state-dir "$STATE" --since 1h --out "$T/nope.jsonl"
assert_rc "export without --until is a usage error" 2

# ---- records not sealed yet ----
# A broker killed (no shutdown seal) leaves its last records unsealed until
# it starts again: an export of them cannot be proven with the key yet, and
# still verifies against the journal after the start-up seal covered them.
broker_start
tap_result "the broker starts again" || {
	tap_done
	exit
}
req --as erin --json sandbox-admin --reason "export test: the unsealed request"
ID3=$(out_id)
assert_ne "a request after the last seal" "" "$ID3"
broker_kill9
T2=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
run "$SBXCTL" audit export --state-dir "$STATE" --since "$T1" --until "$T2" --out "$T/unsealed.jsonl"
assert_rc "an export of the unsealed tail" 0
assert_contains "... warns that they are not sealed yet" "$ERR" "not sealed yet"
assert_eq "... its manifest says so: the records after the start-up seal are unsealed" \
	"true []" "$(jq -r '"\(.unsealed > 0 and .sealed_through < .last_seq) \(.after)"' \
	"$T/unsealed.jsonl.manifest.json")"
run "$SBXCTL" audit verify-export "$T/unsealed.jsonl" --key "$KEY"
assert_rc "verify-export --key fails on records no seal covers" 1
assert_contains "... saying so" "$OUT" "not covered by any seal"
run "$SBXCTL" audit verify-export "$T/unsealed.jsonl" --state-dir "$STATE"
assert_rc "... and passes against the journal" 0
broker_start
tap_result "the broker starts and seals what it left" || {
	tap_done
	exit
}
broker_stop
run "$SBXCTL" audit verify-export "$T/unsealed.jsonl" --state-dir "$STATE"
assert_rc "the export made before that seal still passes against the journal" 0

# ---- the CSV's formula guard, on a hand-made journal ----
H="$T/hand"
mkdir -p "$H/journal"
python3 - "$H/journal/000000000001.jsonl" <<'PY'
import hashlib, json, sys
prev = "0" * 64
out = []
for seq, (actor, user, role) in enumerate([("=cmd|' /C calc'!A0", "+1", "-2"),
                                            ("@SUM(A1)", "plain", "x,y")], 1):
    l = json.dumps({"seq": seq, "time": "2026-01-01T00:00:0%d.000000Z" % seq,
                    "event": "request.created", "actor": actor, "user": user,
                    "role": role, "prev": prev}, separators=(",", ":"))
    h = hashlib.sha256(l.encode()).hexdigest()
    out.append(l[:-1] + ',"hash":"%s"}' % h)
    prev = h
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
run "$SBXCTL" audit export --state-dir "$H" --since 2026-01-01 --until 2026-01-02 --format csv \
	--out "$T/guard.csv"
assert_rc "export of the hand-made journal" 0
run python3 - "$T/guard.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1], newline="")))
print(" | ".join("%s %s %s" % (r["actor"], r["user"], r["role"]) for r in rows))
PY
assert_eq "cells starting with = + - @ get a leading ', others do not" \
	"'=cmd|' /C calc'!A0 '+1 '-2 | '@SUM(A1) plain x,y" "$OUT"
run "$SBXCTL" audit verify-export "$T/guard.csv" --state-dir "$H"
assert_rc "... and the guarded export verifies" 0

tap_done
