#!/usr/bin/env python3
"""Watches: wake-up latency after a change, in the same process and from a
second `serve` process on the same SQLite file, side by side in one run; then
N concurrent watchers (default 10,000) on one server woken by one change:
how many were woken and how fast, the server's RSS growth while they are
parked, and /healthz latency (p50, p99) meanwhile.

Usage: bench/watch.py [--bin build/lambda-registry] [--watchers N]
                      [--rounds N] [--out FILE]
Python standard library only; prints a Markdown table (and writes it to
--out when given). Goals (issue 15): median wake-up <= 20 ms in the same
process, <= 250 ms from another process; all watchers woken, RSS growth
<= 64 MiB, /healthz p99 <= 50 ms. The watchers are parked a second time on
a server with a smaller --max-header (--small-header), side by side: the RSS
per watcher is mostly libmicrohttpd's connection pool (--max-header +
16 KiB, 32 KiB at the default), which it mallocs up to 32 KiB and mmaps
above (with pools of 2 x --max-header + 8 KiB, 40 KiB, the growth was 91 MiB
against 59 now)."""
import argparse
import http.client
import json
import os
import resource
import selectors
import socket
import statistics
import subprocess
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE = "bench-watch"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serve:
    def __init__(self, binary, db, log, extra=()):
        self.port = free_port()
        self.proc = subprocess.Popen(
            # every watcher comes from 127.0.0.1: no per-address limit
            [binary, "serve", "--listen", "127.0.0.1:%d" % self.port, "--store", "sqlite:" + db,
             "--max-connections-per-ip", "0"] + list(extra),
            stdout=log, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def request(self, method, path, body=None, timeout=300):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body)
            r = c.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        finally:
            c.close()

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def rss_parts_kib(self):
        """Resident KiB by kind of mapping: the malloc heap, anonymous
        mappings (thread arenas and stacks, and libmicrohttpd's connection
        pools, which it mmaps when over 32 KiB), the rest."""
        parts = {"heap": 0, "anon": 0, "other": 0}
        kind = "other"
        with open("/proc/%d/smaps" % self.proc.pid) as f:
            for line in f:
                fields = line.split()
                if "-" in fields[0] and not fields[0].endswith(":"):
                    name = fields[5] if len(fields) > 5 else ""
                    kind = "heap" if name == "[heap]" else "anon" if not name else "other"
                elif fields[0] == "Rss:":
                    parts[kind] += int(fields[1])
        return parts

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def payload(n):
    """The table with containers c0..c(n-1): each n a different state."""
    running = [{"serviceName": "web", "id": "c%d" % i, "ip": "10.0.%d.%d" % (i // 250, i % 250 + 1)}
               for i in range(n)]
    cand = [{"serviceName": "web", "port": 80, "predicate": "w.example.com",
             "containers": running and [{"id": "c0", "ip": "10.0.0.1"}]}]
    return json.dumps({"table": TABLE, "running": running, "candidates": cand}).encode()


def index_of(srv):
    st, h, _ = srv.request("GET", "/v1/tables/%s/config" % TABLE)
    return int(h["x-registry-index"])


def wake_latencies(watched, writer, rounds):
    """ms from sending the write to the watcher's answer, per round (the
    write's own time included: the watcher may be answered before the
    writer)."""
    out = []
    size = 2
    for _ in range(rounds):
        idx = index_of(watched)
        got = {}

        def watch():
            got["st"] = watched.request("GET", "/v1/tables/%s/config?index=%d&wait=60s" % (TABLE, idx))[0]
            got["t"] = time.monotonic()
        th = threading.Thread(target=watch)
        th.start()
        # parked before the write (the server counts it in /healthz)
        while json.loads(watched.request("GET", "/healthz")[2]).get("watching", 0) < 1:
            time.sleep(0.005)
        size = 3 - size + 2 if size != 2 else 3
        t_written = time.monotonic()
        writer.request("POST", "/generate", payload(size))
        th.join(120)
        if got.get("st") == 200:
            out.append((got["t"] - t_written) * 1000)
    return out


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] if values else float("nan")


def many_watchers(srv, n, size):
    """Park n watchers over raw sockets, wake them with one change (to the
    table of `size` containers)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 1024)), hard))
    idx = index_of(srv)
    rss0, parts0 = srv.rss_kib(), srv.rss_parts_kib()
    req = ("GET /v1/tables/%s/config?index=%d&wait=240s HTTP/1.1\r\nHost: b\r\n\r\n"
           % (TABLE, idx)).encode()
    socks, sel = [], selectors.DefaultSelector()
    refused = 0
    batch = 50
    t0 = time.monotonic()
    while len(socks) < n:
        for _ in range(min(batch, n - len(socks))):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(req)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ, {"buf": b"", "t": None})
            socks.append(s)
        # let the server check each one before more come (its queue of
        # store calls is bounded)
        while json.loads(srv.request("GET", "/healthz")[2]).get("watching", 0) < len(socks) - refused:
            done = False
            for key, _ in sel.select(timeout=0):
                data = key.fileobj.recv(65536)
                if data:
                    key.data["buf"] += data
                    if b" 503 " in key.data["buf"][:20]:
                        refused += 1
                        sel.unregister(key.fileobj)
                        done = True
            if not done:
                time.sleep(0.01)
    park_s = time.monotonic() - t0
    time.sleep(1)
    rss1, parts1 = srv.rss_kib(), srv.rss_parts_kib()
    growth = dict((k, (parts1[k] - parts0[k]) / 1024.0) for k in parts0)
    health = []
    stop = threading.Event()

    def probe():
        while not stop.is_set():
            t = time.monotonic()
            srv.request("GET", "/healthz")
            health.append((time.monotonic() - t) * 1000)
            time.sleep(0.01)
    th = threading.Thread(target=probe)
    th.start()
    time.sleep(2)
    t_write = time.monotonic()
    srv.request("POST", "/generate", payload(size))
    t_written = time.monotonic()
    woken, last = 0, t_written
    pending = len(sel.get_map())
    while pending and time.monotonic() - t_written < 120:
        for key, _ in sel.select(timeout=1):
            data = key.fileobj.recv(65536)
            key.data["buf"] += data
            if b"\r\n\r\n" in key.data["buf"] or not data:
                if key.data["buf"].startswith(b"HTTP/1.1 200"):
                    woken += 1
                last = time.monotonic()
                sel.unregister(key.fileobj)
                pending -= 1
    time.sleep(1)
    stop.set()
    th.join()
    for s in socks:
        s.close()
    return {"parked": len(socks) - refused, "refused": refused, "park_s": park_s,
            "rss_growth_mib": (rss1 - rss0) / 1024.0, "growth": growth, "woken": woken,
            "all_woken_ms": (last - t_written) * 1000, "write_ms": (t_written - t_write) * 1000,
            "health_p50": pct(health, 0.5), "health_p99": pct(health, 0.99),
            "health_n": len(health)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "lambda-registry"))
    ap.add_argument("--watchers", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--out")
    ap.add_argument("--small-header", default="8K",
                    help="--max-header of a second run, side by side (smaller pools)")
    a = ap.parse_args()
    d = tempfile.mkdtemp(prefix="lr-bench-watch-")
    db = os.path.join(d, "r.db")
    log = open(os.path.join(d, "serve.log"), "wb")
    one, two = Serve(a.bin, db, log), Serve(a.bin, db, log)
    try:
        one.request("POST", "/generate", payload(2))
        same = wake_latencies(one, one, a.rounds)
        other = wake_latencies(one, two, a.rounds)
        two.stop()
        many = many_watchers(one, a.watchers, 7)
        one.stop()
        one = Serve(a.bin, db, log, ["--max-header", a.small_header])
        small = many_watchers(one, a.watchers, 9)
    finally:
        if two.proc.poll() is None:
            two.stop()
        if one.proc.poll() is None:
            one.stop()
    lines = [
        "| wake-up after a change (SQLite, %d rounds) | median ms | p90 ms | max ms | goal |" % a.rounds,
        "|---|---|---|---|---|",
        "| same process | %.1f | %.1f | %.1f | median <= 20 |" % (statistics.median(same), pct(same, 0.9), max(same)),
        "| another process, same file | %.1f | %.1f | %.1f | median <= 250 |"
        % (statistics.median(other), pct(other, 0.9), max(other)),
        "| ratio other / same | %.1fx | | | |" % (statistics.median(other) / statistics.median(same)),
        "",
        "| %d watchers on one server | value | goal |" % a.watchers,
        "|---|---|---|",
        "| parked (refused with 503 while parking) | %d (%d) in %.1f s | all |" % (many["parked"], many["refused"], many["park_s"]),
        "| woken by one change (200) | %d | all |" % many["woken"],
        "| the write's own answer | %.1f ms | |" % many["write_ms"],
        "| last watcher answered after the write | %.0f ms | |" % many["all_woken_ms"],
        "| server RSS growth while parked | %.1f MiB (%.2f KiB each) | <= 64 MiB |"
        % (many["rss_growth_mib"], many["rss_growth_mib"] * 1024 / max(1, many["parked"])),
        "| of it: anonymous mappings / malloc heap / other | %.1f / %.1f / %.1f MiB | |"
        % (many["growth"]["anon"], many["growth"]["heap"], many["growth"]["other"]),
        "| the same with --max-header %s (smaller pools): RSS growth | %.1f MiB "
        "(anon %.1f, heap %.1f); ratio %.2fx | <= 64 MiB |"
        % (a.small_header, small["rss_growth_mib"], small["growth"]["anon"],
           small["growth"]["heap"], small["rss_growth_mib"] / max(0.1, many["rss_growth_mib"])),
        "| /healthz p50 / p99 meanwhile (%d probes) | %.1f / %.1f ms | p99 <= 50 ms |"
        % (many["health_n"], many["health_p50"], many["health_p99"]),
        "| the same with --max-header %s: woken, last answered, /healthz p50 / p99 | "
        "%d, %.0f ms, %.1f / %.1f ms | |"
        % (a.small_header, small["woken"], small["all_woken_ms"], small["health_p50"],
           small["health_p99"]),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


main()
