#!/usr/bin/python3
"""bench_events: GET /v1/events (the dashboard's live feed) under load.

Starts its own sbx-brokerd (the reference policy plus an api: section) in a
temporary directory, as root, and prints, never asserts:
  1. how long a record takes from `sbx-request` filing it to an SSE reader
     (p50/p99 over --samples requests; target <= 200 ms);
  2. `sbxctl check` p99 (bench_check --record, 1 client) with no readers,
     then with --clients SSE readers (an admin's token: every record) and
     one reader that never reads (dropped once 1 MiB behind), so each
     check's access.checked record goes to all of them (target: unchanged),
     the two cases alternated --rounds times, with the medians;
  3. the broker's RSS with --hold idle SSE readers held (target: <= 50 MiB
     more than without).

Usage: bench_events.py [--builddir DIR] [--clients N] [--hold N] [--samples N]
                      [--duration SECS] [--rounds N]
"""
import argparse
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))]


class Bench:
    def __init__(self, a):
        self.a = a
        self.dir = tempfile.mkdtemp(prefix="bench_events.")
        self.sock = os.path.join(self.dir, "sock")
        b = a.builddir
        self.brokerd, self.sbxreq, self.sbxctl = (os.path.join(b, x) for x in
                                                   ("sbx-brokerd", "sbx-request", "sbxctl"))
        self.bench_check = os.path.join(b, "bench", "bench_check")
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
        with open(os.path.join(src, "packaging/examples/policy.yaml")) as f:
            pol = f.read()
        # Caps raised for the measurement (defaults: 1024 in all, 8 a person).
        pol += ("\napi:\n  listen: 127.0.0.1:0\n  events_max: %d\n  events_per_person: %d\n"
                % (a.hold + a.clients + 64, a.hold + a.clients + 64))
        self.policy = os.path.join(self.dir, "policy.yaml")
        with open(self.policy, "w") as f:
            f.write(pol)
        self.log = open(os.path.join(self.dir, "broker.log"), "w+")
        # One fd per reader: make room (the broker inherits the limit).
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = min(hard, 4 * (a.hold + a.clients) + 1024)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
        self.p = subprocess.Popen([self.brokerd, "--foreground", "--config", self.policy,
                                   "--socket", self.sock, "--state-dir",
                                   os.path.join(self.dir, "state")], stderr=self.log)
        for _ in range(200):
            self.log.seek(0)
            m = re.search(r"api: listening on http://127\.0\.0\.1:(\d+)", self.log.read())
            if m and os.path.exists(self.sock):
                break
            time.sleep(0.05)
        else:
            raise SystemExit("the broker did not start: see " + self.log.name)
        self.port = int(m.group(1))
        time.sleep(0.3)
        self.token = self.req("token", "create", "--name", "bench", "--expires", "1d",
                              "--scope", "read").strip()

    def req(self, *args):
        r = subprocess.run([self.sbxreq, "--socket", self.sock, *args], capture_output=True,
                           text=True, timeout=30)
        return r.stdout

    def connect(self, n):
        # Source addresses across 127.0.0.0/8: the API caps connections per address.
        s = socket.socket()
        s.bind(("127.0.%d.%d" % (1 + n // 50 // 250, 2 + (n // 50) % 250), 0))
        s.connect(("127.0.0.1", self.port))
        s.sendall(("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s"
                   "\r\n\r\n" % self.token).encode())
        return s

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


def latency(b):
    s = b.connect(0)
    s.settimeout(10)
    s.recv(65536)
    time.sleep(0.3)
    s.setblocking(False)
    try:
        s.recv(1 << 20)
    except BlockingIOError:
        pass
    s.setblocking(True)
    lat = []
    for i in range(b.a.samples):
        t0 = time.monotonic()
        out = b.req("--as", "erin", "sandbox-admin", "--for", "1h", "--reason",
                    "bench_events latency %d" % i)
        buf = b""
        while b"bench_events latency %d" % i not in buf:
            buf += s.recv(65536)
        lat.append((time.monotonic() - t0) * 1000)
        m = re.search(r"request (\d+):", out)
        if m:
            b.req("--as", "erin", "cancel", m.group(1))
        time.sleep(0.05)
    s.close()
    print("== a record from sbx-request to an SSE reader (includes sbx-request itself) ==")
    print("  samples %d  p50 %.1f ms  p99 %.1f ms  max %.1f ms   (target <= 200 ms)"
          % (len(lat), pct(lat, 50), pct(lat, 99), max(lat)))


def check_p99(b, label):
    r = subprocess.run([b.bench_check, "--socket", b.sock, "--clients", "1", "--duration",
                        str(b.a.duration), "--record"], capture_output=True, text=True)
    m = re.search(r"latency us: (.*)", r.stdout)
    c = re.search(r"cpu: broker ([0-9.]+) cores", r.stdout)
    print("  %-40s %s%s" % (label, m.group(1) if m else r.stdout + r.stderr,
                            "  broker %s cores" % c.group(1) if c else ""))
    v = dict(re.findall(r"(p99|max|mean) (\d+)", m.group(1))) if m else {}
    return int(v.get("p99", 0)), int(v.get("max", 0)), int(v.get("mean", 0))


def med(v):
    v = sorted(v)
    return v[len(v) // 2]


def readers(b, n, first):
    socks = []
    for i in range(n):
        socks.append(b.connect(first + i))
    return socks


def drain(socks, stop):
    import selectors
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    got = 0
    while not stop.is_set():
        for k, _ in sel.select(0.2):
            try:
                d = k.fileobj.recv(1 << 16)
                got += len(d)
            except (BlockingIOError, ConnectionError):
                pass
    drain.got = got


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--builddir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                       ".."))
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--hold", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench_events: run as root (it files requests --as others)")
    b = Bench(a)
    try:
        print("machine: %d cores, %s" % (os.cpu_count(), os.uname().release))
        latency(b)
        # Alternate the two cases, --rounds times: the machine's other load
        # shifts over a run, and it shows in the tails.
        print("== sbxctl check p99 (bench_check --record, 1 client, %.0f s), %d rounds =="
              % (a.duration, a.rounds))
        quiet, busy = [], []
        for rnd in range(a.rounds):
            quiet.append(check_p99(b, "no SSE readers"))
            socks = readers(b, a.clients, 0)
            slow = b.connect(a.clients)
            slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            stop = threading.Event()
            t = threading.Thread(target=drain, args=(socks, stop))
            t.start()
            time.sleep(0.5)
            busy.append(check_p99(b, "%d SSE readers + 1 that never reads" % a.clients))
            stop.set()
            t.join()
            b.log.seek(0)
            dropped = b.log.read().count("dropped a follower")
            print("  the readers got %.1f MiB; the slow reader was %s" %
                  (drain.got / 1048576, "dropped (over 1 MiB behind)" if dropped > rnd
                   else "not dropped yet"))
            for s in socks + [slow]:
                s.close()
            time.sleep(1.5)
        print("  median over the rounds: no readers p99 %d max %d mean %d;  "
              "with readers p99 %d max %d mean %d"
              % (med([q[0] for q in quiet]), med([q[1] for q in quiet]),
                 med([q[2] for q in quiet]), med([q[0] for q in busy]),
                 med([q[1] for q in busy]), med([q[2] for q in busy])))
        print("== RSS with %d SSE readers held ==" % a.hold)
        before = rss_kib(b.p.pid)
        held = readers(b, a.hold, 2000)
        time.sleep(2)
        ok = b.req("--as", "erin", "sandbox-admin", "--for", "1h", "--reason", "rss probe record")
        time.sleep(1)
        after = rss_kib(b.p.pid)
        print("  broker RSS %.1f MiB -> %.1f MiB: %.1f MiB more (%.1f KiB a reader; target <= 50 MiB)"
              % (before / 1024, after / 1024, (after - before) / 1024, (after - before) / a.hold))
        for s in held:
            s.close()
    finally:
        b.stop()


main()
