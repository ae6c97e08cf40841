#!/usr/bin/env python3
"""A stand-in for Slack's incoming webhook and response_url endpoints.

Usage: fake_slack.py PORTFILE LOGFILE [SCRIPTFILE]

Listens on 127.0.0.1 (an ephemeral port, written to PORTFILE once ready)
and records every POST as one JSON line in LOGFILE:
  {"t": <unix time>, "path": ..., "status": <what it answered, or "hang">,
   "headers": {...}, "body": <text>, "json": <the body parsed, or null>}

How it answers: each request takes the first line of SCRIPTFILE (if the
file exists and has one) and removes it; no line means 200 "ok", like
Slack.  Lines:
  ok          200 ok
  500         500 rollup_error
  404         404 no_service
  429 N       429 rate_limited with Retry-After: N
  hang N      wait N seconds before answering (the client has given up)
Python's standard library only (Debian's python3).
"""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORTFILE, LOGFILE = sys.argv[1], sys.argv[2]
SCRIPT = sys.argv[3] if len(sys.argv) > 3 else None
LOCK = threading.Lock()


def next_step():
    """Pop the first line of the script (under the lock)."""
    if not SCRIPT:
        return "ok"
    with LOCK:
        try:
            with open(SCRIPT) as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return "ok"
        lines = [l for l in lines if l.strip()]
        if not lines:
            return "ok"
        with open(SCRIPT + ".tmp", "w") as f:
            f.write("".join(l + "\n" for l in lines[1:]))
        os.rename(SCRIPT + ".tmp", SCRIPT)
        return lines[0].strip()


def record(entry):
    with LOCK:
        with open(LOGFILE, "a") as f:
            f.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, text, extra=()):
        data = text.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            for k, v in extra:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (a "hang")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        text = body.decode("utf-8", "replace")
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        step = next_step().split()
        kind = step[0]
        arg = step[1] if len(step) > 1 else "1"
        status = {"ok": 200, "500": 500, "404": 404, "429": 429}.get(kind, "hang")
        record({"t": time.time(), "path": self.path, "status": status,
                "headers": dict(self.headers), "body": text, "json": parsed})
        if kind == "hang":
            time.sleep(float(arg))
            self.answer(200, "ok")
        elif kind == "429":
            self.answer(429, "rate_limited", [("Retry-After", arg)])
        elif kind == "500":
            self.answer(500, "rollup_error")
        elif kind == "404":
            self.answer(404, "no_service")
        else:
            self.answer(200, "ok")

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
with open(PORTFILE + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(PORTFILE + ".tmp", PORTFILE)
srv.serve_forever()
