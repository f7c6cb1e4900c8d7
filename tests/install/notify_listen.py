#!/usr/bin/python3
"""notify_listen.py SOCKET LOG: what systemd does for Type=notify, for a test: binds an
AF_UNIX datagram socket at SOCKET (mode 0666, so the service's user may send) and appends
each message to LOG as one line. Runs until killed."""
import os
import socket
import sys

path, log = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o666)
with open(log, "a") as f:
    while True:
        m = s.recv(4096)
        f.write(m.decode(errors="replace").replace("\n", " ") + "\n")
        f.flush()
