#!/usr/bin/env python3
"""A stand-in for sbx-brokerd that reads whole request frames and never
answers them: what a client sees when the broker dies between reading a
request and replying.

    silent_broker.py close|hang SOCKET LOG

close  read one whole frame, then close the connection
hang   read one whole frame, then hold the connection open, silent

Each frame read is logged to LOG as "op=0x0010 length=N got=N" (the header's
length and the bytes that came), so a test can tell that the client sent all
of it.  Prints "ready" on stdout once it listens.
"""
import socket
import struct
import sys


def read_frame(conn):
    buf = b""
    while len(buf) < 8 or len(buf) < struct.unpack(">I", buf[:4])[0]:
        chunk = conn.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


def main():
    mode, path, log = sys.argv[1:4]
    if mode not in ("close", "hang"):
        sys.exit("usage: silent_broker.py close|hang SOCKET LOG")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(16)
    print("ready", flush=True)
    held = []
    while True:
        conn, _ = srv.accept()
        buf = read_frame(conn)
        if len(buf) >= 8:
            length, _, op = struct.unpack(">IHH", buf[:8])
            with open(log, "a") as f:
                f.write("op=0x%04x length=%d got=%d\n" % (op, length, len(buf)))
        if mode == "close":
            conn.close()
        else:
            held.append(conn)


main()
