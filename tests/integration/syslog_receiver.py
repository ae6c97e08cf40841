#!/usr/bin/env python3
"""A stand-in for the syslog daemon's /dev/log: a Unix datagram socket.

Usage: syslog_receiver.py SOCKET OUTFILE

Binds SOCKET (mode 0666), then appends every datagram it receives to
OUTFILE as one line (a datagram holding a newline would show as two: the
test checks there are none), flushed at once.  Writes SOCKET + ".ready"
once bound.  Python's standard library only.
"""
import os
import socket
import sys

PATH, OUT = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(PATH)
os.chmod(PATH, 0o666)
with open(PATH + ".ready", "w") as f:
    f.write("ready\n")
with open(OUT, "ab", buffering=0) as f:
    while True:
        data = s.recv(65536)
        f.write(data + b"\n")
