#!/usr/bin/env python3
"""HTTP limits: headers over --max-header get 431, idle and slow clients are
cut off after --read-timeout, connections over --max-connections are refused
and counted, hostile JSON gets 400, and 200 idle connections do not delay a
normal request."""
import atexit
import json
import os
import socket
import time

from lrtest import SANITIZED, Server, check, finish, sample, tmpdir

d = tmpdir()
srv = Server("sqlite:" + os.path.join(d, "limits.db"),
             extra=["--read-timeout", "2", "--max-connections", "8",
                    "--max-header", "4096", "--threads", "2"])
servers = [srv]
# A crash of this script must not leave a server behind.
atexit.register(lambda: [s.proc.kill() for s in servers if s.proc.poll() is None])


def connect():
    return socket.create_connection(("127.0.0.1", srv.port), timeout=15)


def read_all(s, timeout=15):
    """Everything until the server closes; (bytes, how) where how is 'eof',
    'reset' or 'timeout'."""
    s.settimeout(timeout)
    out = b""
    while True:
        try:
            b = s.recv(65536)
        except socket.timeout:
            return out, "timeout"
        except ConnectionResetError:
            return out, "reset"
        if not b:
            return out, "eof"
        out += b


def raw(req, timeout=15):
    s = connect()
    s.sendall(req)
    out, how = read_all(s, timeout)
    s.close()
    return out


def status_of(resp):
    try:
        return int(resp.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def json_body(resp):
    try:
        return json.loads(resp.split(b"\r\n\r\n", 1)[1])
    except (IndexError, ValueError):
        return None


def get_with_headers(headers):
    return raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers +
               b"Connection: close\r\n\r\n")


# --- Headers: under the limit fine, over it 431 with a JSON error.
r = get_with_headers(b"X-Pad: " + b"a" * 3000 + b"\r\n")
check(status_of(r) == 200, "3000 bytes of headers: 200 (%r)" % r[:60])
for n in (4100, 6000, 12000):
    r = get_with_headers(b"X-Pad: " + b"a" * n + b"\r\n")
    doc = json_body(r)
    check(status_of(r) == 431 and doc and "headers" in doc.get("error", ""),
          "%d bytes of one header: 431 with JSON (%r)" % (n, r[:200]))
r = get_with_headers(b"".join(b"X-H%04d: v\r\n" % i for i in range(500)))
check(status_of(r) == 431, "500 small headers: 431 (%r)" % r[:80])
r = get_with_headers(b"X-Pad: " + b"a" * 100000 + b"\r\n")
check(status_of(r) == 431, "100 KB of headers: 431 (libmicrohttpd's own) (%r)" % r[:80])
body = sample("single-candidate.json")
r = raw(b"POST /generate HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 5000 +
        b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
check(status_of(r) == 431 and json_body(r) is not None,
      "a call with headers over the limit: 431 before its body (%r)" % r[:80])
r = raw(b"POST /generate HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 3500 +
        b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
check(status_of(r) == 200 and b"backend app1" in r,
      "a call with headers just under the limit is answered in full (%r)" % r[:80])

# --- Idle and slow clients are cut off after --read-timeout (2 s).
for what, first in (("idle client", b""),
                    ("client stuck in the headers", b"POST /generate HTTP/1.1\r\nHost: x\r\n"),
                    ("client stuck in the body",
                     b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")):
    s = connect()
    t0 = time.time()
    if first:
        s.sendall(first)
    out, how = read_all(s, timeout=15)
    took = time.time() - t0
    s.close()
    check(how in ("eof", "reset") and 1.5 <= took <= 8,
          "%s cut off after the read timeout (%s after %.1fs)" % (what, how, took))

# A body trickled a byte at a time never goes idle, but must still arrive in
# time. libmicrohttpd cannot queue an answer in mid-body, so it is cut off.
s = connect()
t0 = time.time()
s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
sent = 0
for i in range(60):
    try:
        s.sendall(b" ")
        sent += 1
    except OSError:
        break
    time.sleep(0.2)
    s.setblocking(False)
    try:
        if s.recv(65536) == b"":
            break
    except BlockingIOError:
        pass
    except OSError:
        break
    finally:
        s.setblocking(True)
took = time.time() - t0
s.close()
check(2 <= took < 6 and sent < 60, "trickled body cut off after the read timeout "
      "(%.1fs, %d bytes sent)" % (took, sent))
check("event=read_timeout" in srv.logtext(), "the cut is logged")

# --- Connection cap: 8 held open, the 9th is refused at once and counted.
held = [connect() for _ in range(8)]
for s in held:  # a partial request keeps each one busy but not idle for long
    s.sendall(b"GET /healthz HTTP/1.1\r\n")
time.sleep(0.3)
t0 = time.time()
s = connect()
try:
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
except OSError:
    pass
out, how = read_all(s, timeout=5)
s.close()
check(out == b"" and how in ("eof", "reset") and time.time() - t0 < 2,
      "9th connection refused at once (%r, %s, %.1fs)" % (out[:60], how, time.time() - t0))
for s in held:
    s.close()
time.sleep(0.3)
r = raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
doc = json_body(r) or {}
check(status_of(r) == 200 and doc.get("refused", 0) >= 1,
      "healthz counts the refusal: %r" % doc)
check(doc.get("connections") == 1, "held connections are gone: %r" % doc)
check("event=connection_refused" in srv.logtext(), "the refusal is logged")

# --- Hostile JSON at the HTTP level: 400 with a JSON error, never a crash.
hostile = {
    "deep arrays": b"[" * 100000 + b"]" * 100000,
    "deep objects": b'{"a":' * 5000 + b"1" + b"}" * 5000,
    "deep inside": b'{"table":"astro","running":' + b"[" * 1000 + b"]" * 1000 + b"}",
    "invalid UTF-8": b'{"table":"astro","running":[{"serviceName":"a\xff","id":"i","ip":"10.0.0.1"}]}',
    "overlong UTF-8": b'{"table":"ast\xc0\xafro","running":[]}',
    "lone surrogate": b'{"table":"astro","running":[{"serviceName":"\\ud800","id":"i","ip":"10.0.0.1"}]}',
    "NUL escape": b'{"table":"astro","running":[{"serviceName":"a\\u0000b","id":"i","ip":"10.0.0.1"}]}',
    "raw NUL": b'{"table":"astro","running":[]}\x00',
    # jansson skips a NUL right after a number or literal; payload.c refuses it
    "NUL after a number": b'{"table":"astro","running":[],"x":1\x00}',
    "NUL after a literal": b'{"table":"astro","running":[],"x":true\x00}',
    # the fast parser once cut a string at a raw NUL and checked the rest
    "NUL inside a string": b'{"table":"astro","running":[],"candidates":[{"serviceName":"a",'
                           b'"port":80,"predicate":"a.com","cookie":"JSESS\x00ID"}]}',
    "top-level array": b'[{"table":"astro","running":[]}]',
    "top-level string": b'"astro"',
    "top-level number": b"42",
    "top-level null": b"null",
    "byte order mark": b'\xef\xbb\xbf{"table":"astro","running":[]}',
    "two documents": b'{"table":"astro","running":[]}{"table":"astro","running":[]}',
}
for what, payload in hostile.items():
    r = raw(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(payload) + payload)
    doc = json_body(r)
    check(status_of(r) == 400 and doc and doc.get("error"),
          "%s: 400 with a JSON error (%r)" % (what, r[:200]))
    check(b"backend" not in r, "%s: no config" % what)
check(srv.stop() == 0, "clean stop after all that")

# --- 200 idle connections do not delay a normal request (all from one
# address here, so without the per-address limit).
srv = Server("sqlite:" + os.path.join(d, "idle.db"), extra=["--max-connections-per-ip", "0"])
servers.append(srv)
idle = []
for i in range(200):
    s = connect()
    if i % 2:
        s.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\n")  # half-sent headers
    idle.append(s)
time.sleep(0.5)
times = []
for i in range(5):
    t0 = time.time()
    st, h, body = srv.post(sample("data.json"))
    times.append(time.time() - t0)
    check(st == 200, "request %d with 200 idle connections: 200 (%d)" % (i, st))
st, h, body = srv.request("GET", "/healthz")
doc = json.loads(body)
check(doc.get("connections", 0) >= 200, "healthz sees the idle connections: %r" % doc)
limit = 2.0 if SANITIZED else 1.0
check(max(times) < limit, "no delay from idle connections: %s (limit %.1fs)"
      % (", ".join("%.3f" % t for t in times), limit))
for s in idle:
    s.close()
check(srv.stop() == 0, "clean stop")
print("idle test: request times %s" % ", ".join("%.4f" % t for t in times))
finish()
