#!/bin/bash
# What one local account can make the broker do (docs/security.md, the
# budget table), tried as an attacker would, with real unprivileged uids:
#
# - journal flood: CHECKs asking to be recorded are recorded only from
#   root (pam_sbx); a flood of them from another uid writes nothing;
# - changes: past broker.max_changes_per_minute a uid is told to slow
#   down, and its changes stop reaching the journal;
# - connection slots: one uid holds at most broker.max_connections_per_user
#   connections, the uids together never take root's reserve, and root's
#   CHECK is answered at once while they hold every slot they can;
# - out of fds: with the broker's fd limit pulled below what it has open,
#   the loop neither spins nor floods the log, and serves again after.
. "$(dirname "$0")/lib.sh"
sbx_init

skip_all() {
	tap_skip "local users' limits" "$1"
	tap_done
	exit
}
is_root || skip_all "needs root (clients of several uids with setpriv)"
PY=/usr/bin/python3
[ -x "$PY" ] || skip_all "Debian's python3 is not installed"
command -v prlimit >/dev/null || skip_all "prlimit is not installed (util-linux)"

PER_USER=16
MAX=256
BUDGET=10
# Three uids of no importance, free on this host or not: the broker only
# counts uids, it needs no accounts for them.
U1=65534
U2=65533
U3=65532
sed "s/^  request_ttl: 24h/  request_ttl: 24h\n  max_connections: $MAX\n  max_connections_per_user: $PER_USER\n  max_changes_per_minute: $BUDGET/" \
	"$POLICY" >"$T/limits.yaml"
POLICY="$T/limits.yaml"
grep -q "max_connections: $MAX" "$POLICY" || skip_all "could not write the test policy"
broker_start
tap_result "the broker starts with max_connections $MAX, $PER_USER per user, $BUDGET changes a minute" || {
	tap_done
	exit
}

# as UID CMD...: run CMD as that uid (no supplementary groups).
as() {
	local uid=$1

	shift
	run setpriv --reuid="$uid" --regid="$uid" --clear-groups "$@"
}

# A client that speaks the protocol with python3's standard library:
# hold N connections open (hold N SECS), or send one frame many times.
cat >"$T/client.py" <<'PY'
import socket, struct, sys, time

def frame(op, fields):
    body = b"".join(struct.pack(">HH", t, len(v)) + v for t, v in fields)
    return struct.pack(">IHH", 8 + len(body), 1, op) + body

def u32(v):
    return struct.pack(">I", v)

TIMEOUT = 5.0

def connect(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(TIMEOUT)
    s.connect(path)
    return s

def answered(s):
    """True when the broker answers a PING on s (it did not close it)."""
    try:
        s.sendall(frame(0x0003, []))
        hdr = s.recv(8)
        return len(hdr) == 8
    except OSError:
        return False

cmd, path = sys.argv[1], sys.argv[2]
if cmd == "hold":
    n, secs = int(sys.argv[3]), float(sys.argv[4])
    if len(sys.argv) > 5:
        TIMEOUT = float(sys.argv[5])
    socks, ok = [], 0
    for _ in range(n):
        try:
            s = connect(path)
        except OSError:
            continue
        if answered(s):
            ok += 1
            socks.append(s)
    print(ok, flush=True)
    time.sleep(secs)
elif cmd == "flood-check":
    # CHECK for oneself with SBX_CHECK_RECORD, n times on one connection
    user, n = sys.argv[3].encode(), int(sys.argv[4])
    s = connect(path)
    req = frame(0x0001, [(0x0101, user), (0x0102, b"sshd"), (0x0004, u32(1))])
    for _ in range(n):
        s.sendall(req)
        hdr = s.recv(8)
        length = struct.unpack(">I", hdr[:4])[0]
        left = length - 8
        while left:
            left -= len(s.recv(left))
    print(n)
PY

# --- journal flood --------------------------------------------------------------------------
# The last seq the broker assigned (not yet durable counts too).
last_seq() { ctl --json status && json_get .seq; }
before=$(last_seq)
as "$U1" "$PY" "$T/client.py" flood-check "$SOCK" nobody 2000
assert_rc "uid $U1 sends 2000 CHECKs asking to be recorded" 0
after=$(last_seq)
assert_eq "none of them reaches the journal (only root's checks are recorded)" "$before" "$after"
run "$SBXCTL" --socket "$SOCK" check alice
assert_rc "root's check still answers" 0

# --- changes ----------------------------------------------------------------------------------
slowed=0
done_ok=0
for i in $(seq $((BUDGET + 5))); do
	as "$U2" "$SBXREQ" --socket "$SOCK" cancel 999
	case "$ERR" in
	*"slow down"*) slowed=$((slowed + 1)) ;;
	*) done_ok=$((done_ok + 1)) ;;
	esac
done
assert_eq "uid $U2: the first $BUDGET changes are taken, the rest told to slow down" \
	"$BUDGET/5" "$done_ok/$slowed"
assert_contains "the refusal names the setting and when to retry" "$ERR" \
	"max_changes_per_minute); try again in"
as "$U3" "$SBXREQ" --socket "$SOCK" cancel 999
assert_not_contains "another uid still has its own budget" "$ERR" "slow down"
for i in $(seq 20); do req --as erin cancel 999; done
assert_not_contains "root (pam_sbx, --as) is never slowed down" "$ERR" "slow down"

# --- connection slots ----------------------------------------------------------------------------
held=$(as "$U1" "$PY" "$T/client.py" hold "$SOCK" $((PER_USER * 3)) 0 && echo "$OUT")
assert_eq "uid $U1 opening $((PER_USER * 3)) connections gets $PER_USER" "$PER_USER" "$held"

# Every uid but root together: the broker keeps root's reserve.
pids=()
for u in $(seq 60000 60030); do
	setpriv --reuid="$u" --regid="$u" --clear-groups \
		"$PY" "$T/client.py" hold "$SOCK" "$PER_USER" 8 >"$T/hold.$u" 2>/dev/null &
	pids+=($!)
	track_pid $!
done
wait_until 15 eval '[ "$(cat "$T"/hold.* 2>/dev/null | wc -l)" -ge 31 ]'
total=$(cat "$T"/hold.* | awk '{ s += $1 } END { print s }')
diag "31 uids asked for $((31 * PER_USER)) connections, got $total"
assert_int_between "they get at most the slots that are not root's" 1 $((MAX - 16)) "$total"
t0=$(date +%s%N)
run "$SBXCTL" --socket "$SOCK" --timeout-ms 2000 check alice
t1=$(date +%s%N)
assert_rc "while they hold every slot they may, root's check is answered" 0
assert_int_between "... at once (ms)" 0 500 $(((t1 - t0) / 1000000))
for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
wait "${pids[@]}" 2>/dev/null
lines=$(grep -c "accept: refused a connection" "$LOG")
assert_int_between "refused connections are logged, rate-limited (lines)" 1 40 "$lines"

# --- out of file descriptors -----------------------------------------------------------------------
cpu() { awk '{ print $14 + $15 }' "/proc/$BROKER_PID/stat"; }
open_fds=$(ls "/proc/$BROKER_PID/fd" | wc -l)
lines0=$(wc -l <"$LOG")
assert_true "the broker's fd limit is pulled below what it has open ($open_fds)" \
	prlimit --pid "$BROKER_PID" --nofile=$((open_fds - 2)):
c0=$(cpu)
as "$U3" "$PY" "$T/client.py" hold "$SOCK" 20 0 0.15
sleep 3
c1=$(cpu)
diag "broker CPU ticks over 3 s while out of fds: $((c1 - c0))"
assert_int_between "the loop does not spin while out of fds (CPU ticks in 3 s)" 0 60 $((c1 - c0))
assert_int_between "nor does it flood the log (lines)" 0 30 $(($(wc -l <"$LOG") - lines0))
prlimit --pid "$BROKER_PID" --nofile=1024:
wait_until 5 "$SBXCTL" --socket "$SOCK" check alice
tap_result "with fds again, the broker serves"

broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"
tap_done
