#!/usr/bin/env python3
"""Issue 11 at full scale: GET /healthz latency from 127.0.0.2 while

1. 1,024 slowloris connections from 127.0.0.1 trickle one header byte per
   second (default limits; the attacker reconnects whatever is refused or
   cut, so the pressure never stops);
2. the same with the per-address limit lifted (--max-connections-per-ip 0,
   --max-connections 2048), so that all 1,024 really are open at once;
3. another process holds the SQLite write lock for 5 s with 8 writers
   queued behind it; unchanged calls on another table are timed too.

Each figure is p50/p99/max over fresh connections; the target is p99 under
100 ms. Usage: bench/hostile.py [--build DIR] [--seconds N] [--out FILE]
Prints the figures (Markdown) and writes them to --out when given.
"""
import argparse
import http.client
import json
import os
import resource
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_MS = 100.0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary, workdir, name, extra):
        self.port = free_port()
        self.db = os.path.join(workdir, name + ".db")
        self.logf = open(os.path.join(workdir, name + ".log"), "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:%d" % self.port,
             "--store", "sqlite:" + self.db] + extra,
            stdout=self.logf, stderr=self.logf)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.logf.close()


def request(port, method, path, body=None, src="127.0.0.1", timeout=30):
    t0 = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                   source_address=(src, 0))
    try:
        c.request(method, path, body=body)
        r = c.getresponse()
        r.read()
        return r.status, time.monotonic() - t0
    except OSError:
        return 0, time.monotonic() - t0
    finally:
        c.close()


def call(table, n):
    c = {"serviceName": "s", "id": "c%d" % n, "ip": "10.0.%d.%d" % (n // 250 % 250, n % 250 + 1)}
    return json.dumps({"table": table, "running": [c],
                       "candidates": [{"serviceName": "s", "port": 80, "predicate": "a.com",
                                       "containers": [c]}]}).encode()


def stats(samples):
    """(n, p50 ms, p99 ms, max ms, failures) of (status, seconds) samples."""
    ok = sorted(t for st, t in samples if st == 200)
    bad = sum(1 for st, _ in samples if st != 200)
    if not ok:
        return len(samples), None, None, None, bad
    pick = lambda q: ok[min(len(ok) - 1, int(len(ok) * q))] * 1e3
    return len(samples), pick(0.5), pick(0.99), ok[-1] * 1e3, bad


class Slowloris:
    """`n` connections from 127.0.0.1, one header byte per second each; a
    connection the server refuses or cuts is opened again at the next tick."""

    def __init__(self, port, n):
        self.port, self.n = port, n
        self.stop = threading.Event()
        self.conns = []
        self.opened = self.lost = 0
        self.line = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000000
        self.thread = threading.Thread(target=self.run)

    def open_one(self):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return
        self.opened += 1
        self.conns.append([s, 0])

    def run(self):
        while not self.stop.is_set():
            while len(self.conns) < self.n:
                self.open_one()
            for entry in list(self.conns):
                s, i = entry
                try:
                    s.send(self.line[i:i + 1])
                    entry[1] = i + 1
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    s.close()
                    self.conns.remove(entry)
                    self.lost += 1
            self.stop.wait(1.0)
        for s, _ in self.conns:
            s.close()

    def open_now(self):
        """Connections the server still holds (a probe, not exact)."""
        return len(self.conns)


def probe_health(port, seconds, src="127.0.0.2"):
    samples = []
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        samples.append(request(port, "GET", "/healthz", src=src))
        time.sleep(0.01)
    return samples


def health_json(port, src="127.0.0.2"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(src, 0))
    try:
        c.request("GET", "/healthz")
        return json.loads(c.getresponse().read())
    except (OSError, ValueError):
        return {}
    finally:
        c.close()


def bench_slowloris(binary, workdir, seconds, extra, name):
    srv = Server(binary, workdir, name, extra)
    loris = Slowloris(srv.port, 1024)
    loris.thread.start()
    time.sleep(2)  # all 1,024 sent their first bytes
    samples = probe_health(srv.port, seconds)
    h = health_json(srv.port)
    loris.stop.set()
    loris.thread.join()
    srv.stop()
    return stats(samples), {"opened": loris.opened, "lost": loris.lost,
                            "server connections": h.get("connections"),
                            "refused": h.get("refused"),
                            "header timeouts": h.get("header_timeouts")}


def bench_lock(binary, workdir, hold):
    srv = Server(binary, workdir, "lock", [])
    for table in ("other", "other", "locked"):  # twice: the second is unchanged
        request(srv.port, "POST", "/generate", call(table, 0))
    locker = sqlite3.connect(srv.db, timeout=1, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    writers_out = []
    writers = [threading.Thread(target=lambda i=i: writers_out.append(
        request(srv.port, "POST", "/generate", call("locked", i + 1))))
        for i in range(8)]
    for w in writers:
        w.start()
    time.sleep(0.2)
    health, other = [], []
    stop = threading.Event()

    def unchanged():
        while not stop.is_set():
            other.append(request(srv.port, "POST", "/generate", call("other", 0)))
            time.sleep(0.01)

    t = threading.Thread(target=unchanged)
    t.start()
    t0 = time.monotonic()
    health = probe_health(srv.port, hold - 0.2)
    stop.set()
    t.join()
    locker.execute("ROLLBACK")
    locker.close()
    held = time.monotonic() - t0 + 0.2  # the writers started 0.2 s before
    for w in writers:
        w.join()
    srv.stop()
    return stats(health), stats(other), stats(writers_out), held


def fmt(st):
    n, p50, p99, mx, bad = st
    if p50 is None:
        return "%d calls, all failed" % n
    return "%d calls, p50 %.1f ms, p99 %.1f ms, max %.1f ms, %d failed" % (n, p50, p99, mx, bad)


def verdict(st):
    return "ok" if st[2] is not None and st[2] < TARGET_MS and not st[4] else "MISSED"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=float, default=15.0,
                    help="probe time under slowloris (covers a 10 s header timeout)")
    ap.add_argument("--out")
    args = ap.parse_args()
    binary = os.path.join(args.build, "lambda-registry")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    workdir = tempfile.mkdtemp(prefix="lr-hostile-")
    lines = ["# Issue 11: the HTTP server stays up for everyone", "",
             "Target: p99 of GET /healthz from 127.0.0.2 under %.0f ms." % TARGET_MS, ""]

    log("slowloris, default limits ...")
    st, info = bench_slowloris(binary, workdir, args.seconds, [], "loris")
    lines.append("1. 1,024 slowloris connections from 127.0.0.1, default limits "
                 "(64 per address, 10 s header timeout): healthz %s [%s]; %s"
                 % (fmt(st), verdict(st), ", ".join("%s %s" % kv for kv in info.items())))
    log("slowloris, per-address limit lifted ...")
    st, info = bench_slowloris(binary, workdir, args.seconds,
                               ["--max-connections-per-ip", "0", "--max-connections", "2048"],
                               "loris-open")
    lines.append("2. 1,024 slowloris connections all open (no per-address limit, "
                 "--max-connections 2048): healthz %s [%s]; %s"
                 % (fmt(st), verdict(st), ", ".join("%s %s" % kv for kv in info.items())))
    log("SQLite write lock held 5 s, 8 writers queued ...")
    health, other, writers, held = bench_lock(binary, workdir, 5.0)
    lines.append("3. another process holds the SQLite write lock for %.1f s, 8 writers "
                 "queued: healthz %s [%s]; unchanged calls on another table %s [%s]; "
                 "the 8 writers %s" % (held, fmt(health), verdict(health), fmt(other),
                                       verdict(other), fmt(writers)))
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
