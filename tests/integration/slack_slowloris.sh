#!/bin/bash
# The Slack endpoint under a slow-loris attack from a local user: many
# connections from 127.0.0.1 that send one header byte a second (never idle
# long enough for an idle timeout, never finishing a request) and dial
# again as soon as they are closed.  While they run, signed button presses
# from another address (127.0.0.2) are answered 200 within Slack's 3 s;
# every trickling connection is closed within the deadline (timeout, 3 s
# here) and a little slack, whatever it sends; and the broker's log gets a
# few lines about it, not one per connection.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/slack_lib.sh"
sbx_init
SLACK_TIMEOUT=3s
slack_setup

DEADLINE=3      # slack.timeout above
SLACK=1.5       # what the deadline may be late by (the loop, MHD closing)
ATTACK_SECS=14
SOCKETS=80      # more than the endpoint takes at once (64)

broker_start
tap_result "broker starts with a slack: section" || {
	tap_done
	exit
}
PORT=$(slack_port)
if ! curl -sS -o /dev/null --max-time 5 --interface 127.0.0.2 "http://127.0.0.1:$PORT/" \
	2>"$T/probe.err"; then
	tap_skip "presses from 127.0.0.2 during the attack" "cannot use 127.0.0.2: $(cat "$T/probe.err")"
	tap_done
	exit
fi

req --as erin sandbox-admin --reason "debugging the ingest pipeline" --json
A=$(out_id)
slack_wait_delivered "$A" pending/0
tap_result "erin's request is posted"
APPROVE=$(slack_button "$A" approve)

# The attacker: SOCKETS connections from 127.0.0.1, each sending the start
# of a request and then one byte of a header every second; a connection
# the broker closes is dialled again 0.2 s later.  It writes what it saw
# as JSON: dialled (connections made), refused (closed within 0.5 s),
# held (open for 1 s or more, counting those still open at the end),
# longest (the longest any stayed open, the same way, in seconds).
python3 - "$PORT" "$SOCKETS" "$ATTACK_SECS" "$T/attack.json" "$T/attack.ready" <<'EOF' &
import json, os, selectors, socket, sys, time

port, n, secs, out, ready = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
TRICKLE, REDIAL = 1.0, 0.2
HEAD = b"POST /slack/interactive HTTP/1.1\r\nHost: sbx\r\nX-Slow: "
sel = selectors.DefaultSelector()
slots = [{"s": None, "st": "wait", "at": 0.0} for _ in range(n)]
stats = {"dialled": 0, "refused": 0, "held": 0, "longest": 0.0, "still_open": 0}
start = time.monotonic()
said_ready = False


def closed(slot, now):
    life = now - slot["opened"]
    stats["longest"] = max(stats["longest"], life)
    if life < 0.5:
        stats["refused"] += 1
    elif life >= 1.0:
        stats["held"] += 1
    sel.unregister(slot["s"])
    slot["s"].close()
    slot.update(s=None, st="wait", at=now + REDIAL)


while True:
    now = time.monotonic()
    if now - start >= secs:
        break
    for slot in slots:
        if slot["st"] == "wait" and slot["at"] <= now:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.bind(("127.0.0.1", 0))
            s.connect_ex(("127.0.0.1", port))
            slot.update(s=s, st="dialling")
            sel.register(s, selectors.EVENT_WRITE, slot)
        elif slot["st"] == "open" and slot["next"] <= now:
            try:
                slot["s"].send(b"a")
                slot["next"] = now + TRICKLE
            except OSError:
                closed(slot, now)
    if not said_ready and now - start >= 1.0:
        open(ready, "w").close()
        said_ready = True
    for key, ev in sel.select(0.05):
        slot, now = key.data, time.monotonic()
        if slot["st"] == "dialling":
            if slot["s"].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                sel.unregister(slot["s"])
                slot["s"].close()
                slot.update(s=None, st="wait", at=now + REDIAL)
                continue
            stats["dialled"] += 1
            slot.update(st="open", opened=now, next=now + TRICKLE)
            sel.modify(slot["s"], selectors.EVENT_READ, slot)
            try:
                slot["s"].send(HEAD)
            except OSError:
                closed(slot, now)
        elif slot["st"] == "open":
            try:
                data = slot["s"].recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed(slot, now)
now = time.monotonic()
for slot in slots:
    if slot["st"] == "open":
        stats["still_open"] += 1
        stats["held"] += now - slot["opened"] >= 1.0
        stats["longest"] = max(stats["longest"], now - slot["opened"])
stats["longest"] = round(stats["longest"], 2)
with open(out + ".tmp", "w") as f:
    json.dump(stats, f)
os.rename(out + ".tmp", out)
EOF
ATTACKER=$!
track_pid "$ATTACKER"
wait_until 10 test -e "$T/attack.ready"
tap_result "the attack is under way"
LOG_BEFORE=$(grep -c . "$LOG")

# Three presses from 127.0.0.2 while the attack runs: the first approves
# erin's request, the others find it active (still 200: a private answer).
SLACK_FROM=127.0.0.2
for i in 1 2 3; do
	slack_click U0FRANK approve "$APPROVE"
	assert_eq "press $i from 127.0.0.2 during the attack: 200" 200 "$HTTP"
	assert_true "press $i answered within 2 s (${SECS}s)" awk -v s="$SECS" 'BEGIN { exit !(s < 2) }'
	sleep 2
done
SLACK_FROM=
assert_true "the first press approved erin's request" journal_has \
	"(.event == \"request.approval\" and .id == $A and .actor == \"frank\" and .via == \"slack\")"

wait "$ATTACKER"
tap_result "the attacker ran its course"
STATS=$(cat "$T/attack.json" 2>/dev/null)
diag "attacker: $STATS"
LOG_DURING=$(($(grep -c . "$LOG") - LOG_BEFORE))
diag "log lines during the attack: $LOG_DURING"
assert_true "the broker took and held trickling connections (held >= 8)" \
	test "$(printf '%s' "$STATS" | jq -r '.held // 0')" -ge 8
LONGEST=$(printf '%s' "$STATS" | jq -r '.longest // 999')
assert_true "none stayed open longer than ${DEADLINE}s + ${SLACK}s (longest: ${LONGEST}s)" \
	awk -v l="$LONGEST" -v d="$DEADLINE" -v s="$SLACK" 'BEGIN { exit !(l <= d + s) }'
DIALLED=$(printf '%s' "$STATS" | jq -r '.dialled // 0')
assert_true "the attacker made many connections ($DIALLED)" test "$DIALLED" -ge 100
assert_true "the log did not grow by a line per connection ($LOG_DURING lines for $DIALLED)" \
	test "$LOG_DURING" -le 12

alive "$BROKER_PID"
tap_result "the broker is still running"
ctl check erin --json
assert_eq "and answering: erin's grant is live" true "$(json_get .allowed)"
slack_click U0FRANK approve "$APPROVE"
assert_eq "a press from 127.0.0.1 itself after the attack: 200" 200 "$HTTP"

broker_stop
assert_rc "broker stops cleanly" 0 "$BROKER_RC"
assert_match "refusals from 127.0.0.1 were logged with a count" \
	'slack: .*127\.0\.0\.1.*refused [0-9]+ ' "$(cat "$LOG")"
run "$SBXCTL" audit verify --state-dir "$STATE"
assert_rc "the journal verifies" 0
tap_done
