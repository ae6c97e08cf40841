#!/bin/bash
# sbxctl audit tail and the TAIL op (docs/protocol.md, "Audit: the live
# record stream"): the backlog (-n), a follower (-f) that gets every
# durable record in journal order, pushed by the broker; filters; what a
# non-admin sees (their own records only); the per-uid cap on followers;
# a reader that stops reading is dropped with a last frame saying so while
# the broker goes on serving others; a broker that stops ends the stream.
# Nothing asserts a time: the latency is printed as a diagnostic (the
# figure is bench/README.md's, "Live records").
. "$(dirname "$0")/lib.sh"
sbx_init

NOBODY=
if is_root && command -v setpriv >/dev/null && getent passwd 65534 >/dev/null; then
	NOBODY=$(getent passwd 65534 | cut -d: -f1)
	# A policy user named like uid 65534's account, so that it can file
	# requests of its own.
	sed -i -e "s/^  erin:  { manager: frank }/  erin:  { manager: frank }\n  $NOBODY: { manager: frank }/" \
		-e "s/^    eligible: { groups: \[sre\], users: \[dave\] }/    eligible: { groups: [sre], users: [dave, $NOBODY] }/" \
		"$POLICY"
fi
broker_start
tap_result "broker starts" || {
	tap_done
	exit
}

# ---- the backlog ----
ctl audit tail -n 2 --json
assert_rc "tail -n 2: exit 0" 0
assert_eq "... the journal's last two records, oldest first" \
	"$(journal | tail -n 2 | jq -c '{seq,event}')" "$(printf '%s\n' "$OUT" | jq -c '{seq,event}')"
ctl audit tail -n 2000
assert_rc "tail -n 2000 is a usage error" 2
ctl audit tail --outcome maybe
assert_rc "an unknown --outcome is a usage error" 2

# ---- a follower sees each record as it becomes durable ----
# follow NAME ARGS...: start `sbxctl audit tail -f -n 1024 --json ARGS` in
# the background, output in $T/NAME.out.  The backlog (every record since
# the broker started: fewer than 1024 here) and the stream after it must
# make up every record, whenever the follower got in: no race to lose.
follow() {
	local name=$1

	shift
	"$SBXCTL" --socket "$SOCK" "$@" audit tail -f -n 1024 --json >"$T/$name.out" 2>"$T/$name.err" &
	track_pid $!
	eval "PID_$name=$!"
}
follow all
follow dave_only --user dave --event request.
follow grants_only --outcome granted
if [ -n "$NOBODY" ]; then
	setpriv --reuid=65534 --regid=65534 --clear-groups "$SBXCTL" --socket "$SOCK" audit tail -f -n 0 \
		-n 1024 --json >"$T/nobody.out" 2>"$T/nobody.err" &
	track_pid $!
	PID_nobody=$!
fi
follow erin --as erin
SEQ0=0

t0=$(date +%s%N)
req --as erin --json sandbox-admin --reason "tail test: erin's request"
ID1=$(out_id)
wait_until 5 eval 'grep -q "\"id\":$ID1," "$T/all.out"'
t1=$(date +%s%N)
tap_result "tail -f prints erin's request once it is recorded"
diag "request acknowledged -> printed by tail -f: $(( (t1 - t0) / 1000000 )) ms (including sbx-request's own run)"
req --as dave --json sandbox-admin --for 90m --reason "tail test: dave's request"
ID2=$(out_id)
ctl --as bob approve "$ID2"
assert_rc "bob approves dave's request" 0
if [ -n "$NOBODY" ]; then
	nobody_run "$SBXREQ" --socket "$SOCK" sandbox-admin --reason "tail test: nobody's own request"
	assert_rc "$NOBODY files a request of its own" 0
fi
LAST=$(journal | tail -n 1 | jq .seq)
wait_until 5 eval '[ "$(tail -n 1 "$T/all.out" | jq .seq)" = "$LAST" ]'
tap_result "tail -f reaches the journal's last record"
# The stream carries each record's members; prev, hash and continued are
# the journal's bytes (docs/protocol.md).
J='del(.prev, .hash, .continued)'
assert_eq "tail -f -n 1024 printed every record once, in journal order, as journaled" \
	"$(journal | jq -c "select(.seq > $SEQ0) | $J")" "$(jq -c . "$T/all.out")"
assert_eq "--user dave --event request.: dave's request records only" \
	"$(journal | jq -c "select(.seq > $SEQ0 and .user == \"dave\" and (.event | startswith(\"request.\"))) | $J")" \
	"$(jq -c . "$T/dave_only.out")"
assert_eq "--outcome granted: the grant only" "grant.activated $ID2" \
	"$(jq -r '"\(.event) \(.id)"' "$T/grants_only.out")"
assert_eq "--as erin (erin's rights): only the records about or by erin" \
	"$(journal | jq -c "select(.seq > $SEQ0 and (.user == \"erin\" or .actor == \"erin\")) | $J")" \
	"$(jq -c . "$T/erin.out")"
assert_ne "... which leaves dave's out" "" "$(journal_select ".seq > $SEQ0 and .user == \"dave\"")"
if [ -n "$NOBODY" ]; then
	wait_until 5 eval 'grep -q "nobody.s own request" "$T/nobody.out"'
	tap_result "a non-admin (uid 65534) follows, and sees its own request"
	assert_eq "... and nothing of erin's or dave's" "" \
		"$(jq -r "select(.user != \"$NOBODY\" and .actor != \"$NOBODY\") | .seq" "$T/nobody.out")"
	nobody_run "$SBXCTL" --socket "$SOCK" audit tail -n 100 --json
	assert_rc "a non-admin's tail -n: exit 0" 0
	assert_eq "... its own records only" "" \
		"$(printf '%s\n' "$OUT" | jq -r "select(.user != \"$NOBODY\" and .actor != \"$NOBODY\") | .seq")"

	# ---- per-uid cap ----
	# Three more: each is in once its backlog (the request above) is out.
	for i in 1 2 3; do
		setpriv --reuid=65534 --regid=65534 --clear-groups "$SBXCTL" --socket "$SOCK" audit tail \
			-f -n 5 >"$T/nobody$i.out" 2>&1 &
		track_pid $!
	done
	wait_until 10 eval 'grep -q request.created "$T/nobody1.out" && grep -q request.created "$T/nobody2.out" && grep -q request.created "$T/nobody3.out"'
	tap_result "uid 65534 follows on 4 connections"
	nobody_run "$SBXCTL" --socket "$SOCK" audit tail -f -n 0
	assert_rc "a fifth follower of one uid is refused" 1
	assert_contains "... saying how many are allowed" "$ERR" "at most 4 per user"
else
	tap_skip "non-admin followers and the per-uid cap" "needs root, setpriv and uid 65534"
fi

# ---- a reader that does not read ----
# A follower of every record would fall behind too in the burst below on
# a busy machine (and be dropped, rightly): it ends here.
kill "$PID_all"
wait "$PID_all" 2>/dev/null
cat >"$T/slow.py" <<'PY'
import socket, struct, sys, time
path, n = sys.argv[1], int(sys.argv[2])
def frame(op, fields):
    body = b"".join(struct.pack(">HH", t, len(v)) + v for t, v in fields)
    return struct.pack(">IHH", 8 + len(body), 1, op) + body
def read_frame(s):
    hdr = b""
    while len(hdr) < 8:
        c = s.recv(8 - len(hdr))
        if not c:
            return None
        hdr += c
    ln, ver, op = struct.unpack(">IHH", hdr)
    body = b""
    while len(body) < ln - 8:
        c = s.recv(ln - 8 - len(body))
        if not c:
            return None
        body += c
    fields, i = [], 0
    while i < len(body):
        t, l = struct.unpack(">HH", body[i:i + 4])
        fields.append((t, body[i + 4:i + 4 + l]))
        i += 4 + l
    return op, fields
slow = socket.socket(socket.AF_UNIX)
slow.connect(path)
slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
slow.sendall(frame(0x0090, [(0x0004, struct.pack(">I", 1)), (0x0904, struct.pack(">I", 0))]))
op, f = read_frame(slow)
assert op == 0x8090 and struct.unpack(">I", dict(f)[1])[0] == 0, (op, f)
# Meanwhile someone else makes records, and is served all along.
fast = socket.socket(socket.AF_UNIX)
fast.connect(path)
for i in range(n):
    fast.sendall(frame(0x0001, [(0x0101, b"alice"), (0x0004, struct.pack(">I", 1))]))
    op, f = read_frame(fast)
    assert op == 0x8001, op
print("served", n)
sys.stdout.flush()
time.sleep(1.0)
# Now read what the broker kept for the slow reader: frames, the last one
# saying it was dropped, then the end.
records, last = 0, None
while True:
    r = read_frame(slow)
    if r is None:
        break
    op, f = r
    d = dict(f)
    records += sum(1 for t, v in f if t == 0x0901)
    last = (struct.unpack(">I", d[1])[0], d.get(2, b"").decode())
print("records", records)
print("last", last[0], last[1])
PY
run python3 "$T/slow.py" "$SOCK" 12000
assert_rc "the slow-reader script ran" 0
assert_contains "the broker served 12000 checks while a follower did not read" "$OUT" "served 12000"
assert_contains "the follower that did not read got a last frame: refused, dropped" "$OUT" "last 1 dropped:"
assert_contains "... naming the seq to read from again" "$OUT" "records from seq"
assert_contains "... and the broker logged it" "$(cat "$LOG")" "tail: dropped a follower"
kill -0 "$PID_dave_only" 2>/dev/null
tap_result "a follower whose filter leaves the burst out stays connected"

# ---- --json is ASCII: a requester's text cannot steer the reader's terminal ----
# A C1 control (U+009B, CSI in some terminals) and a bidi override
# (U+202E) in a reason come out as \u escapes, the same string to a JSON
# reader.
R=$(printf 'tail test: \xc2\x9b2J \xe2\x80\xaeevil')
# The burst above leaves the broker busy for a while under the sanitizers:
# give the cancel the time, and make sure it happened before asking again.
req --timeout-ms 30000 --as erin cancel "$ID1"
assert_rc "erin's first request is cancelled" 0
req --as erin --json status "$ID1"
assert_eq "... and says so" cancelled "$(json_get .state)"
req --as erin --json sandbox-admin --reason "$R"
assert_rc "a request whose reason holds U+009B and U+202E" 0
ctl audit tail -n 5 --json --user erin
assert_rc "tail --json of it" 0
assert_eq "... no raw byte above ASCII on the terminal" 0 "$(printf '%s' "$OUT" | LC_ALL=C grep -c '[^ -~]')"
assert_eq "... the same reason to a JSON reader" "$R" \
	"$(printf '%s\n' "$OUT" | jq -r 'select(.event == "request.created") | .reason' | tail -n 1)"
run "$SBXCTL" audit query --state-dir "$STATE" --user erin --json
assert_rc "audit query --json" 0
assert_eq "... no raw byte above ASCII either" 0 "$(printf '%s' "$OUT" | LC_ALL=C grep -c '[^ -~]')"

# ---- the broker stops: the stream ends ----
broker_stop
wait_until 5 eval '! kill -0 "$PID_dave_only" 2>/dev/null'
tap_result "tail -f ends when the broker stops"
wait "$PID_dave_only"
assert_eq "... with exit 3" 3 "$?"
assert_contains "... saying the stream was closed" "$(cat "$T/dave_only.err")" "closed the stream"

tap_done
