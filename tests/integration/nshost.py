#!/usr/bin/env python3
"""One HAProxy host in a network namespace of its own (run under
`unshare -n`): brings its loopback up, serves the test's backends on their
127.0.0.x addresses, and runs HAProxy in master-worker mode until SIGTERM.

usage: nshost.py HAPROXY CONFIG MASTER_SOCKET PORT NAME=IP..."""
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys

from backends import Backend

SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    req = struct.pack("16sH", b"lo", 0)
    flags = struct.unpack("16sH", fcntl.ioctl(s, SIOCGIFFLAGS, req))[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH", b"lo", flags | IFF_UP))
    s.close()


haproxy, config, sock, port = sys.argv[1:5]
loopback_up()
backends = []
for arg in sys.argv[5:]:
    name, ip = arg.split("=")
    b = Backend(name, ip, int(port))
    b.server.handle_error = lambda request, address: None
    backends.append(b)
hap = subprocess.Popen([haproxy, "-W", "-S", sock, "-f", config])
signal.signal(signal.SIGTERM, lambda *a: hap.terminate())
print("ready", flush=True)
sys.exit(hap.wait())
