#!/usr/bin/env python3
"""bench_api: the HTTP API beside the socket (issue 15).

Starts its own sbx-brokerd (from the build tree: run it from there) in a
temporary directory, on a generated policy of --users people and an `api:`
section on loopback; gives --grants of them a live grant of an auto_approve
role (filed through sbx-request in parallel, root acting for them with
--as), files 2 x --decisions requests that need an approver, then measures
over kept-alive connections with http.client:

  - GET /v1/grants with a person's own token (--calls of them),
  - GET /v1/grants?all=true with an admin's (root's) token (its first page),
  - every page of GET /v1/grants?all=true&limit=1000, walked with the
    next_cursor of each (--walks times): each page, and each whole walk,
  - APPROVE through the API (POST /v1/requests/ID/approve on one kept-alive
    connection, prebuilt request bytes and no client library, so that the
    figure is the broker's and not http.client's, as for the socket)
    against APPROVE through the socket (a raw client kept open, root acting
    for the approver with AS_USER), alternated call by call.

Every token has a rate limit (a bucket of 100 calls refilled at 20 a
second): calls are spread over several people's tokens, and when all of
them are spent the bench waits outside the timed part.

Numbers are printed, never asserted.  Exit 0; 1 when it cannot set up (or
is interrupted); 2 on a usage error.  The broker is stopped and the
temporary directory removed on every path, Ctrl-C included.

Usage: cd _b && python3 ../bench/bench_api.py [--users N] [--grants N]
                                              [--calls N] [--walks N] [--decisions N]
"""
import argparse
import concurrent.futures
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HOST_NAME = "sbx-bench"
USERS_GROUP = "bench-users"
APPROVERS_GROUP = "bench-approvers"
LIVE_ROLE = "bench-live"      # auto_approve: the live grants
ASKED_ROLE = "bench-asked"    # needs one approver: the decisions
APPROVERS = 8                 # people a01.. who decide
FILERS = 8                    # sbx-request processes at once
WARMUP = 20                   # untimed calls before each GET series
# The API's per-token bucket (broker/api/api_http.c), with a margin.
TOKEN_BURST = 90.0
TOKEN_RATE = 20.0
# The broker closes kept-alive connections idle for 10 s.
IDLE_REOPEN_S = 8.0
CALL_TIMEOUT_S = 30

# The socket protocol (common/sbx_proto.h, docs/protocol.md).
PROTO_VERSION = 1
OP_APPROVE = 0x0021
F_STATUS = 0x0001
F_AS_USER = 0x0003
F_ID = 0x0201
F_COMMENT = 0x0206
ST_OK = 0


class SetupError(Exception):
    pass


class Interrupted(Exception):
    pass


def on_signal(signum, frame):
    raise Interrupted()


def log(msg):
    print("bench_api: " + msg, file=sys.stderr, flush=True)


# ---- options ------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench_api.py",
        description="Latency of the broker's HTTP API beside its socket: starts its own "
        "sbx-brokerd (run it from the build tree, as root) on a generated policy and "
        "prints percentiles. Numbers are printed, never asserted.")
    p.add_argument("--users", type=int, default=10000, metavar="N",
                   help="people in the generated policy (default 10000)")
    p.add_argument("--grants", type=int, default=None, metavar="N",
                   help="of them with a live grant (default: all of them)")
    p.add_argument("--calls", type=int, default=1000, metavar="N",
                   help="GET /v1/grants calls with a person's token (default 1000); "
                   "with an admin's: N/25, at least 10")
    p.add_argument("--walks", type=int, default=20, metavar="N",
                   help="walks over every page of ?all=true&limit=1000 (default 20)")
    p.add_argument("--decisions", type=int, default=300, metavar="N",
                   help="approvals through each of the API and the socket (default 300)")
    a = p.parse_args(argv)
    if a.grants is None:
        a.grants = a.users
    if not 1 <= a.users <= 1000000:
        p.error("--users must be 1 .. 1000000")
    if not 1 <= a.grants <= a.users:
        p.error("--grants must be 1 .. --users")
    if not 1 <= a.calls <= 1000000:
        p.error("--calls must be 1 .. 1000000")
    if not 1 <= a.walks <= 10000:
        p.error("--walks must be 1 .. 10000")
    if not 1 <= a.decisions or 2 * a.decisions > a.users:
        p.error("--decisions must be 1 .. --users / 2 (each decision is another person's)")
    return a


# ---- statistics ---------------------------------------------------------------

def stats(samples):
    """Percentiles by nearest rank, in ms (as bench/benchlib.c)."""
    s = sorted(samples)
    n = len(s)

    def rank(p):
        return s[max(0, min(n - 1, math.ceil(p / 100.0 * n) - 1))] * 1000.0

    return {"n": n, "p50": rank(50), "p90": rank(90), "p99": rank(99), "max": s[-1] * 1000.0}


def print_line(label, st):
    head = ("%-44s n=%d" % (label, st["n"])).ljust(51)
    print("%s  p50 %7.2f ms  p90 %7.2f ms  p99 %7.2f ms  max %7.2f ms" %
          (head, st["p50"], st["p90"], st["p99"], st["max"]), flush=True)


# ---- the broker ---------------------------------------------------------------

def find_build_tree():
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (os.getcwd(), os.path.join(here, "..", "_b")):
        if all(os.access(os.path.join(d, t), os.X_OK)
               for t in ("sbx-brokerd", "sbx-request")):
            return os.path.abspath(d)
    raise SetupError("no sbx-brokerd and sbx-request here: run it from the build tree "
                     "(cd _b && python3 ../bench/bench_api.py)")


def person(i):
    return "u%05d" % i


def approver(i):
    return "a%02d" % i


def write_policy(path, users):
    people = [person(i) for i in range(1, users + 1)]
    deciders = [approver(i) for i in range(1, APPROVERS + 1)]
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
        f.write("# generated by bench_api: %d people, %d approvers\n" % (users, APPROVERS))
        f.write("broker:\n  host: %s\n  request_ttl: 24h\n"
                "  max_changes_per_minute: 1000000\n\n" % HOST_NAME)
        f.write("groups:\n  %s: [" % USERS_GROUP)
        for i, u in enumerate(people):
            f.write(("" if i == 0 else ",\n    " if i % 16 == 0 else ", ") + u)
        f.write("]\n  %s: [%s]\n\nusers:\n" % (APPROVERS_GROUP, ", ".join(deciders)))
        for u in people + deciders:
            f.write("  %s: {}\n" % u)
        f.write("\nroles:\n"
                "  %s:\n"
                "    description: bench_api live grants\n"
                "    hosts: [\"sbx-*\"]\n"
                "    eligible: { groups: [%s] }\n"
                "    auto_approve: true\n"
                "    default_duration: 30d\n"
                "    max_duration: 30d\n"
                "  %s:\n"
                "    description: bench_api decisions\n"
                "    hosts: [\"sbx-*\"]\n"
                "    eligible: { groups: [%s] }\n"
                "    approvers: { groups: [%s] }\n"
                "    approvals: 1\n"
                "    default_duration: 1h\n"
                "    max_duration: 8h\n"
                % (LIVE_ROLE, USERS_GROUP, ASKED_ROLE, USERS_GROUP, APPROVERS_GROUP))
        f.write("\napi:\n  listen: 127.0.0.1:0\n")


class Broker:
    def __init__(self, build, users):
        self.build = build
        self.dir = tempfile.mkdtemp(prefix="bench_api.")
        self.policy = os.path.join(self.dir, "policy.yaml")
        self.sock = os.path.join(self.dir, "sock")
        self.state = os.path.join(self.dir, "state")
        self.log = os.path.join(self.dir, "broker.log")
        self.proc = None
        self.api = None
        write_policy(self.policy, users)

    def start(self):
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen(
                [os.path.join(self.build, "sbx-brokerd"), "--foreground", "--config",
                 self.policy, "--socket", self.sock, "--state-dir", self.state],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SetupError("sbx-brokerd exited with %d: %s" %
                                 (self.proc.returncode, self.tail()))
            m = re.search(r"api: listening on (http://127\.0\.0\.1:[0-9]+)",
                          open(self.log).read())
            if m and os.path.exists(self.sock):
                self.api = m.group(1)
                return
            time.sleep(0.05)
        raise SetupError("sbx-brokerd did not start within 120 s: " + self.tail())

    def tail(self):
        try:
            return " | ".join(open(self.log).read().strip().splitlines()[-5:])
        except OSError:
            return "(no log)"

    def cleanup(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- setting up through sbx-request --------------------------------------------

def sbx_request(b, *args):
    p = subprocess.run([os.path.join(b.build, "sbx-request"), "--socket", b.sock,
                        "--timeout-ms", "30000"] + list(args),
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise SetupError("sbx-request %s: rc %d: %s" %
                         (" ".join(args), p.returncode, p.stderr.strip()))
    return p.stdout.strip()


def file_request(b, who, role, reason):
    out = sbx_request(b, "--as", who, "--json", role, "--reason", reason)
    try:
        o = json.loads(out)
        return int(o["id"] if "id" in o else o["request"]["id"])
    except (ValueError, KeyError, TypeError):
        raise SetupError("sbx-request --json %s for %s: no id in %r" % (role, who, out[:200]))


def in_parallel(fn, items, what):
    t0 = time.time()
    out = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=FILERS) as ex:
        futs = [ex.submit(fn, it) for it in items]
        try:
            for f in futs:
                out.append(f.result())
        except BaseException:
            for f in futs:
                f.cancel()
            raise
    log("%d %s in %.1f s" % (len(items), what, time.time() - t0))
    return out


def make_token(b, who, name, scope):
    args = (["--as", who] if who else []) + ["token", "create", "--name", name,
                                             "--expires", "1d", "--scope", scope]
    tok = sbx_request(b, *args)
    if not tok.startswith("sbxt_"):
        raise SetupError("token create for %s: %r" % (who or "root", tok[:80]))
    return tok


# ---- the API ------------------------------------------------------------------

class Tokens:
    """Tokens used in turn, each within its rate limit: a client-side
    copy of the broker's bucket; when every one is spent, wait (untimed)."""

    def __init__(self, tokens):
        now = time.monotonic()
        self.t = [[tok, TOKEN_BURST, now] for tok in tokens]
        self.i = 0

    def take(self):
        while True:
            now = time.monotonic()
            for k in range(len(self.t)):
                e = self.t[(self.i + k) % len(self.t)]
                e[1] = min(TOKEN_BURST, e[1] + (now - e[2]) * TOKEN_RATE)
                e[2] = now
                if e[1] >= 1.0:
                    e[1] -= 1.0
                    self.i = (self.i + k + 1) % len(self.t)
                    return e[0]
            time.sleep(1.0 / TOKEN_RATE)


class Api:
    def __init__(self, url):
        m = re.match(r"http://([^:/]+):([0-9]+)$", url)
        self.host, self.port = m.group(1), int(m.group(2))
        self.conn = None
        self.last = 0.0

    def call(self, method, path, token, body=None):
        """(seconds, status, body bytes); only the HTTP exchange is timed."""
        h = {"Authorization": "Bearer " + token}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        if self.conn is None or time.monotonic() - self.last > IDLE_REOPEN_S:
            if self.conn:
                self.conn.close()
            self.conn = http.client.HTTPConnection(self.host, self.port,
                                                   timeout=CALL_TIMEOUT_S)
            self.conn.connect()
        t0 = time.perf_counter()
        self.conn.request(method, path, body=data, headers=h)
        r = self.conn.getresponse()
        text = r.read()
        dt = time.perf_counter() - t0
        self.last = time.monotonic()
        if r.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return dt, r.status, text

    def close(self):
        if self.conn:
            self.conn.close()


class RawApi:
    """The API over one kept-alive TCP connection with no client library:
    the request is prebuilt bytes, the reply read to its Content-Length,
    so the figure is the broker's, as the socket's Sock is."""

    def __init__(self, url):
        m = re.match(r"http://([^:/]+):([0-9]+)$", url)
        self.addr = (m.group(1), int(m.group(2)))
        self.s = None
        self.last = 0.0

    def _connect(self):
        if self.s:
            self.s.close()
        self.s = socket.create_connection(self.addr, timeout=CALL_TIMEOUT_S)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self, method, path, token, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        req = ("%s %s HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
               "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" %
               (method, path, self.addr[0], self.addr[1], token, len(data))).encode() + data
        if self.s is None or time.monotonic() - self.last > IDLE_REOPEN_S:
            self._connect()
        t0 = time.perf_counter()
        self.s.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise SetupError("the API closed the connection")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        m = re.search(rb"(?i)\r\ncontent-length: *([0-9]+)", head)
        need = int(m.group(1)) if m else 0
        while len(rest) < need:
            chunk = self.s.recv(65536)
            if not chunk:
                raise SetupError("the API closed the connection")
            rest += chunk
        dt = time.perf_counter() - t0
        self.last = time.monotonic()
        status = int(head.split(b" ", 2)[1])
        if re.search(rb"(?i)\r\nconnection: *close", head):
            self.s.close()
            self.s = None
        return dt, status, rest

    def close(self):
        if self.s:
            self.s.close()


def timed_gets(api, tokens, path, n, what):
    """n timed GETs after WARMUP untimed ones; (samples, last body)."""
    samples, body, errors = [], b"", 0
    for i in range(WARMUP + n):
        dt, st, body = api.call("GET", path, tokens.take())
        if st != 200:
            errors += 1
            if errors == 1:
                log("%s: %d %s" % (what, st, body[:200]))
            continue
        if i >= WARMUP:
            samples.append(dt)
    if errors:
        log("%s: %d of %d calls did not answer 200 (left out)" % (what, errors, WARMUP + n))
    if not samples:
        raise SetupError("%s: no call answered 200" % what)
    try:
        held = len(json.loads(body).get("requests", []))
    except (ValueError, AttributeError):
        held = "?"
    log("%s: %s grants in the last reply, %d bytes" % (what, held, len(body)))
    return samples, body


# ---- the socket ---------------------------------------------------------------

def field(tag, value):
    if isinstance(value, int):
        value = struct.pack(">I", value)
    elif isinstance(value, str):
        value = value.encode()
    return struct.pack(">HH", tag, len(value)) + value


def frame(op, fields):
    body = b"".join(fields)
    return struct.pack(">IHH", 8 + len(body), PROTO_VERSION, op) + body


class Sock:
    """One connection to the broker kept open, one frame at a time."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(CALL_TIMEOUT_S)
        self.s.connect(path)

    def recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.s.recv(n - len(buf))
            if not chunk:
                raise SetupError("the broker closed the socket")
            buf += chunk
        return buf

    def call(self, data):
        """(seconds, status); send to the whole reply read is timed."""
        t0 = time.perf_counter()
        self.s.sendall(data)
        hdr = self.recv_exact(8)
        length, _, _ = struct.unpack(">IHH", hdr)
        rest = self.recv_exact(length - 8)
        dt = time.perf_counter() - t0
        status = None
        if len(rest) >= 8:
            tag, ln = struct.unpack(">HH", rest[:4])
            if tag == F_STATUS and ln == 4:
                status = struct.unpack(">I", rest[4:8])[0]
        return dt, status

    def close(self):
        self.s.close()


# ---- the runs -----------------------------------------------------------------

def walk_pages(api, tokens, path, walks, expect):
    """walks timed walks of every page of path (after one untimed); (page samples,
    walk samples).  A walk is the sum of its pages' times: the wait for the
    rate limit between pages is not in it."""
    pages, whole = [], []
    for w in range(walks + 1):
        cursor, seen, total, n = None, set(), 0.0, 0
        while True:
            dt, st, body = api.call("GET", path + ("&cursor=" + cursor if cursor else ""),
                                    tokens.take())
            if st == 429:
                # the broker's bucket is emptier than our copy: wait, ask again
                time.sleep(1.0)
                continue
            if st != 200:
                raise SetupError("%s: %d %s" % (path, st, body[:200]))
            obj = json.loads(body)
            seen.update(r["id"] for r in obj["requests"])
            n += len(obj["requests"])
            total += dt
            if w:
                pages.append(dt)
            cursor = obj.get("next_cursor")
            if not cursor:
                break
        if n != len(seen) or len(seen) < expect:
            raise SetupError("%s: a walk saw %d grants, %d distinct, expected %d" %
                             (path, n, len(seen), expect))
        if w:
            whole.append(total)
    log("%s: %d grants in %d pages a walk" % (path, len(seen), len(pages) // max(1, walks)))
    return pages, whole


def run(a):
    if os.geteuid() != 0:
        raise SetupError("run it as root: it files requests for the generated people "
                         "with --as")
    build = find_build_tree()
    b = Broker(build, a.users)
    api = rapi = sock = None
    try:
        b.start()
        log("broker on %s, policy of %d people (+%d approvers), state in %s" %
            (b.api, a.users, APPROVERS, b.dir))
        in_parallel(lambda i: file_request(b, person(i), LIVE_ROLE, "bench_api live grant"),
                    range(1, a.grants + 1), "live grants filed (auto_approve)")
        # the requests to decide: half through the API, half through the socket
        asked = in_parallel(lambda i: file_request(b, person(a.users - i), ASKED_ROLE,
                                                   "bench_api decision"),
                            range(2 * a.decisions), "requests filed for approval")
        n_own = min(a.grants, max(1, math.ceil((a.calls + WARMUP) / TOKEN_BURST)))
        own = in_parallel(lambda i: make_token(b, person(i), "bench-read", "read"),
                          range(1, n_own + 1), "read tokens made (grant holders)")
        deciders = in_parallel(lambda i: make_token(b, approver(i), "bench-approve",
                                                    "read,approve"),
                               range(1, APPROVERS + 1), "approve tokens made")
        admin = make_token(b, None, "bench-admin", "read")

        api = Api(b.api)
        s, _ = timed_gets(api, Tokens(own), "/v1/grants", a.calls, "GET /v1/grants")
        print_line("GET /v1/grants (one person's, %d live)" % a.grants, stats(s))

        n_all = max(10, a.calls // 25)
        # one bucket per token: the walks below spend the same one
        admin_tokens = Tokens([admin])
        s, body = timed_gets(api, admin_tokens, "/v1/grants?all=true", n_all,
                             "GET /v1/grants?all=true")
        print_line("GET /v1/grants?all=true (first page, %.2f MB)" % (len(body) / 1e6),
                   stats(s))

        pages, walks = walk_pages(api, admin_tokens, "/v1/grants?all=true&limit=1000",
                                  a.walks, a.grants)
        print_line("GET /v1/grants?all=true&limit=1000 (a page)", stats(pages))
        print_line("  every page of %d grants (a walk)" % a.grants, stats(walks))

        sock = Sock(b.sock)
        rapi = RawApi(b.api)
        dtok = Tokens(deciders)
        via_api, via_sock, errors = [], [], 0
        for k in range(a.decisions):
            rid = asked[2 * k]
            dt, st, text = rapi.call("POST", "/v1/requests/%d/approve" % rid, dtok.take(),
                                    {"comment": "bench_api"})
            if st == 200:
                via_api.append(dt)
            else:
                errors += 1
                log("APPROVE %d through the API: %d %s" % (rid, st, text[:200]))
            rid = asked[2 * k + 1]
            dt, st = sock.call(frame(OP_APPROVE, [
                field(F_AS_USER, approver(k % APPROVERS + 1)), field(F_ID, rid),
                field(F_COMMENT, "bench_api")]))
            if st == ST_OK:
                via_sock.append(dt)
            else:
                errors += 1
                log("APPROVE %d through the socket: status %s" % (rid, st))
        if not via_api or not via_sock:
            raise SetupError("no approval succeeded through the %s" %
                             ("API" if not via_api else "socket"))
        sa, ss = stats(via_api), stats(via_sock)
        print_line("APPROVE through the API (kept alive)", sa)
        print_line("APPROVE through the socket (kept open)", ss)
        print("# API / socket, p50: %.2fx, p99: %.2fx" %
              (sa["p50"] / ss["p50"], sa["p99"] / ss["p99"]), flush=True)
        if errors:
            log("%d approvals failed (left out of the figures)" % errors)
    finally:
        # a second Ctrl-C must not cut the cleanup short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if api:
            api.close()
        if rapi:
            rapi.close()
        if sock:
            sock.close()
        b.cleanup()


def main(argv):
    a = parse_args(argv)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        run(a)
    except Interrupted:
        log("interrupted: the broker is stopped and its directory removed")
        return 1
    except (SetupError, OSError, subprocess.SubprocessError, http.client.HTTPException) as e:
        log("cannot set up: %s" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
