#!/usr/bin/env python3
"""A checkpoint collector for tests (docs/audit.md, "Evidence off the host").

Usage: checkpoint_collector.py PORT CERT KEY LOGFILE

Serves HTTPS on 127.0.0.1:PORT (0: any free port) with CERT and KEY
(PEM) and writes the port to LOGFILE + ".port" once listening.  Every
POST is one JSON line in LOGFILE:
  {"path": ..., "status": <the answer>, "json": <the body parsed, or null>,
   "taken": <true when this seq was new>}
It answers 200 to a body with host, seq, hash, epoch and time (a repeat of
a seq with the same hash is a 200 too, as the contract says, but not
"taken"; another hash for a seq taken is a 409), 400 to anything else.
Python's standard library only.
"""
import json
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, CERT, KEY, LOGFILE = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
LOCK = threading.Lock()
TAKEN = {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n).decode("utf-8", "replace")
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        taken = False
        status = 400
        if isinstance(doc, dict) and all(k in doc for k in ("host", "seq", "hash", "epoch", "time")):
            with LOCK:
                had = TAKEN.get(doc["seq"])
                if had is None:
                    TAKEN[doc["seq"]] = doc["hash"]
                    taken, status = True, 200
                else:
                    status = 200 if had == doc["hash"] else 409
        with LOCK:
            with open(LOGFILE, "a") as f:
                f.write(json.dumps({"path": self.path, "status": status, "json": doc,
                                    "taken": taken}) + "\n")
        data = b"ok\n" if status == 200 else b"no\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


ThreadingHTTPServer.allow_reuse_address = True
server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(CERT, KEY)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
with open(LOGFILE + ".port", "w") as f:
    f.write("%d\n" % server.server_address[1])
server.serve_forever()
