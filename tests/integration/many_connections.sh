#!/bin/bash
# The broker with 4,000 connections open at once (docs/security.md, the
# budget table): every one is answered, the broker's memory grows by at
# most 2 KiB per connection, and a login check made meanwhile is answered
# at once.
. "$(dirname "$0")/lib.sh"
sbx_init
N=4000
if ! is_root; then
	tap_skip "4,000 connections at once" "needs root (ulimit -n above $N for the client)"
	tap_done
	exit
fi
PY=/usr/bin/python3
if [ ! -x "$PY" ]; then
	tap_skip "4,000 connections at once" "Debian's python3 is not installed"
	tap_done
	exit
fi
broker_start
tap_result "the broker starts" || {
	tap_done
	exit
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$BROKER_PID/status"; }

cat >"$T/hold.py" <<'PY'
import socket, struct, sys, time
path, n, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ping = struct.pack(">IHH", 8, 1, 0x0003)
socks, ok = [], 0
for _ in range(n):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    for _ in range(1000):
        try:
            s.connect(path)
            break
        except BlockingIOError:
            # the listen queue is full (AF_UNIX says EAGAIN): let the
            # broker take what is queued
            time.sleep(0.001)
    socks.append(s)
for s in socks:
    s.sendall(ping)
for s in socks:
    hdr = s.recv(8)
    if len(hdr) == 8:
        length = struct.unpack(">I", hdr[:4])[0]
        left = length - 8
        while left:
            left -= len(s.recv(left))
        ok += 1
print(ok, flush=True)
open(sys.argv[4], "w").close()
time.sleep(secs)
PY
before=$(rss_kib)
(ulimit -n $((N + 100)) && exec "$PY" "$T/hold.py" "$SOCK" "$N" 4 "$T/held") >"$T/hold.out" 2>&1 &
HOLD=$!
track_pid "$HOLD"
wait_until 30 test -e "$T/held"
assert_eq "$N connections at once, each answered" "$N" "$(head -1 "$T/hold.out")"
during=$(rss_kib)
diag "broker RSS: $before KiB before, $during KiB with $N connections open"
assert_int_between "the broker's memory grows by at most 2 KiB per connection (KiB)" \
	-100000 $((N * 2)) $((during - before))
t0=$(date +%s%N)
ctl --timeout-ms 2000 check alice
t1=$(date +%s%N)
assert_rc "a login check meanwhile is answered" 0
assert_int_between "... at once (ms)" 0 500 $(((t1 - t0) / 1000000))
wait "$HOLD" 2>/dev/null
broker_stop
assert_eq "the broker stops cleanly" 0 "$BROKER_RC"
tap_done
