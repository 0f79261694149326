#!/usr/bin/env python3
"""The benchmarks of issue 7, end to end, on a release build.

1-4. wrk over keep-alive against one `serve` (SQLite): POST /generate on
     unchanged state, POST /generate where every call writes, GET /healthz;
     the three run side by side in rounds and the medians are reported,
     with the ratios 1/3 and 2/3.
5.   Scale: tables of 1,000 and 10,000 services x 5 containers: end-to-end
     latency of a call that adds one container (a fresh server per size),
     config bytes, the renderer's MB/s (bench_core, in process) and the
     server's peak RSS (VmHWM).
6.   The scale figures again with the DynamoDB store (a local dynalite).
7.   The agent's real call (issue 18): every container in `running` and every
     service in `candidates`, at 1,000 to 100,000 services: an unchanged
     call, a call that adds one container, the server's peak RSS.
8.   Server CPU per unchanged small call next to an nginx from Debian's
     package answering `return 200` on loopback, rounds side by side: one
     event loop each, then one per CPU each.
9.   With --compare DIR: (1) and (3) against the build in DIR (another
     commit) and this one, rounds side by side.

Usage: bench/run.py [--build DIR] [--seconds N] [--rounds N] [--out FILE]
                    [--only wrk|scale|dynamodb|agent|nginx|compare]...
                    [--compare BUILD_DIR] [--agent-sizes N...]
       bench/run.py --self-test   (the wrk output parser; in make test)
Prints Markdown and writes it to --out (default bench/RESULTS.md); the
README's Performance figures are rewritten only with that default, so a
trial run with --out elsewhere leaves the README as it is.
"""
import argparse
import datetime
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
DYNALITE = os.path.join(ROOT, "tests", "dynamodb", "with-dynalite.sh")

# The first version (a Lambda function on a local DynamoDB), from issue 7.
FIRST = {
    "serial": "65 calls/s, p50 14.5 ms, p99 30 ms",
    "parallel": "140 calls/s at 10 in flight",
    "rss": "115 MiB",
    "add1k": "126 ms",
}

TARGETS = [
    ("ratio 1/3 (unchanged / healthz)", "ratio13", ">=", 0.5, ""),
    ("ratio 2/3 (writes / healthz)", "ratio23", ">=", 0.25, ""),
    ("POST /generate, unchanged state", "rps1", ">=", 20000, " req/s"),
    ("add one container at 10,000 services", "add_ms_10000", "<=", 20, " ms"),
    ("renderer at 10,000 services", "render_mbs_10000", ">=", 500, " MB/s"),
    ("server peak RSS at 10,000 services", "rss_mib_10000", "<=", 32, " MiB"),
    ("agent's call, unchanged, by its body token, 10,000 services", "agent_token_ms_10000",
     "<=", 5, " ms"),
    ("agent's call, unchanged, by its body token, 100,000 services", "agent_token_ms_100000",
     "<=", 50, " ms"),
    ("agent's call, unchanged, 10,000 services", "agent_same_ms_10000", "<=", 5, " ms"),
    ("agent's call, unchanged, 100,000 services", "agent_same_ms_100000", "<=", 50, " ms"),
    ("agent's call, unchanged, conditional (304), 10,000 services", "agent_cond_ms_10000", "<=",
     5, " ms"),
    ("agent's call, unchanged, conditional (304), 100,000 services", "agent_cond_ms_100000",
     "<=", 50, " ms"),
    ("agent's call, one container added, 10,000 services", "agent_add_ms_10000", "<=", 30,
     " ms"),
    ("agent's calls, peak RSS, 10,000 services", "agent_rss_mib_10000", "<=", 32, " MiB"),
    ("agent's calls, peak RSS, 100,000 services", "agent_rss_mib_100000", "<=", 200, " MiB"),
    ("server CPU per unchanged small call / nginx return 200, one event loop each",
     "nginx_ratio", "<=", 1.5, ""),
    ("server CPU per unchanged small call / nginx return 200, one event loop per CPU each",
     "nginx_all_ratio", "<=", 1.5, ""),
]

README = os.path.join(ROOT, "README.md")
RESULTS = os.path.join(BENCH, "RESULTS.md")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


class Server:
    """One `serve` process on loopback. It binds port 0 and the port comes
    from its log: a port found free here could be taken before it binds."""

    started = 0

    def __init__(self, binary, store, work, max_body="256M", env=None):
        Server.started += 1
        self.logpath = os.path.join(work, f"serve-{os.getpid()}-{Server.started}.log")
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", "127.0.0.1:0", "--store", store,
             "--max-body", max_body],
            stdout=subprocess.DEVNULL, stderr=self.log, env=env)
        self.port = None
        for _ in range(1000):
            if self.proc.poll() is not None:
                break
            if self.port is None:
                with open(self.logpath, "rb") as f:
                    m = re.search(rb"event=listening listen=127\.0\.0\.1:(\d+) ", f.read())
                if m:
                    self.port = int(m.group(1))
            if self.port is not None:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                    return
                except OSError:
                    pass
            time.sleep(0.02)
        raise SystemExit(f"bench: serve --store {store} did not start (log {self.logpath})")

    def cpu_ticks(self):
        return cpu_ticks(self.proc.pid)

    def measure(self, fn, *a):
        """fn(*a) (a wrk run), plus the server's CPU time per request."""
        t0 = self.cpu_ticks()
        res = fn(*a)
        ticks = self.cpu_ticks() - t0
        res["cpu_us"] = ticks * 1e6 / os.sysconf("SC_CLK_TCK") / max(res["requests"], 1)
        return res

    def rss_peak_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def post(conn, body, path="/generate", have=None):
    """POST and read the whole answer; with `have` (an index), as the agent
    asks: If-None-Match, and a 304 answers b"" with nothing to read."""
    headers = {"Content-Type": "application/json"}
    if have is not None:
        headers["If-None-Match"] = f'"{have}"'
    conn.request("POST", path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200 and not (have is not None and resp.status == 304):
        raise SystemExit(f"bench: POST {path}: HTTP {resp.status}: {data[:300]!r}")
    post.index = int(resp.getheader("X-Registry-Index", "0"))
    return data


def ms(text):
    """wrk's durations (850.00us, 1.21ms, 2.00s, 1.50m) in milliseconds."""
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    if not m:
        raise SystemExit(f"bench: cannot read wrk's duration {text!r}")
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]


def latency_percentiles(out):
    """{50: ms, 75: ms, ...} from the lines under wrk's "Latency Distribution"
    (--latency), and only those: the Thread Stats table above it has a
    "+/- Stdev" column of percentages too (e.g. "86.50%")."""
    block = re.search(r"^\s*Latency Distribution\s*\n((?:[ \t]+[\d.]+%[ \t]+\S+[ \t]*\n)+)",
                      out, re.M)
    if not block:
        raise SystemExit("bench: no Latency Distribution in wrk's output:\n" + out)
    return {float(p): ms(v) for p, v in re.findall(r"([\d.]+)%\s+(\S+)", block.group(1))}


# wrk --latency output whose Thread Stats "+/- Stdev" column ends in 50% and
# 99% (the old parser took "Req/Sec" and "Latency" for percentiles there).
WRK_SAMPLE = """Running 5s test @ http://127.0.0.1:8080/generate
  2 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   635.91us    1.21ms  32.92ms   99.50%
    Req/Sec    21.20k     2.07k   24.00k    86.50%
  Latency Distribution
     50%  250.00us
     75%  491.00us
     90%  700.00us
     99%    5.12ms
  212000 requests in 5.00s, 160.00MB read
Requests/sec:  42400.00
Transfer/sec:     32.00MB
"""


def self_test():
    """--self-test: the wrk output parser on WRK_SAMPLE (make test runs it)."""
    pct = latency_percentiles(WRK_SAMPLE)
    want = {50.0: 0.25, 75.0: 0.491, 90.0: 0.7, 99.0: 5.12}
    bad = [p for p in want if abs(pct.get(p, -1) - want[p]) > 1e-9]
    conv = [(t, ms(t)) for t in ("850.00us", "1.21ms", "2.00s", "1.50m")]
    if bad or [v for _, v in conv] != [0.85, 1.21, 2000.0, 90000.0]:
        raise SystemExit(f"bench: self-test: percentiles {pct}, durations {conv}")
    print(f"bench: wrk output parsed: {pct}")


def wrk(port, path, seconds, threads, connections, script=None, env=None):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(cmd, env=dict(os.environ, **(env or {})), capture_output=True,
                         text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    pct = latency_percentiles(out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": pct[50],
        "p99": pct[99],
        "bad": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(1) if errors else "",
    }


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def bench_wrk(args, work, results, store=None, prefix="", rounds=None):
    """(1)-(4): the three loads side by side, `rounds` times; medians. With
    `store` (DynamoDB), the figures go to keys starting with `prefix`."""
    rounds = rounds or args.rounds
    sample = os.path.join(ROOT, "sample-data", "data.json")
    doc = json.load(open(sample))
    doc["table"] = "bench-write"
    body_a = os.path.join(work, "write-a.json")
    json.dump(doc, open(body_a, "w"))
    doc["running"][0]["ip"] = "192.168.1.250"
    body_b = os.path.join(work, "write-b.json")
    json.dump(doc, open(body_b, "w"))

    db = os.path.join(work, "wrk.db")
    srv = Server(args.bin, store or f"sqlite:{db}", work)
    runs = {"unchanged": [], "write": [], "healthz": []}
    write_share = []
    try:
        conn = http.client.HTTPConnection("127.0.0.1", srv.port)
        post(conn, open(sample, "rb").read())  # the state that stays
        conn.close()
        t, c = args.threads, args.connections
        for r in range(rounds):
            log(f"bench: wrk round {r + 1}/{rounds} (load {loadavg()})")
            runs["healthz"].append(srv.measure(wrk, srv.port, "/healthz", args.seconds, t, c))
            runs["unchanged"].append(
                srv.measure(wrk, srv.port, "/generate", args.seconds, t, c,
                            os.path.join(BENCH, "generate.lua"), {"LR_BODY": sample}))
            before = 0 if store else table_writes(db)
            res = srv.measure(wrk, srv.port, "/generate", args.seconds, t, c,
                              os.path.join(BENCH, "write.lua"),
                              {"LR_BODY_A": body_a, "LR_BODY_B": body_b})
            runs["write"].append(res)
            if not store:
                write_share.append((table_writes(db) - before) / max(res["requests"], 1))
        results[prefix + "rss_kib_wrk"] = srv.rss_peak_kib()
    finally:
        srv.stop()

    def med(kind, key):
        return statistics.median(r[key] for r in runs[kind])

    for i, kind in ((1, "unchanged"), (2, "write"), (3, "healthz")):
        results[f"{prefix}cpu{i}"] = med(kind, "cpu_us")
        results[f"{prefix}rps{i}"] = med(kind, "rps")
        results[f"{prefix}p50_{i}"] = med(kind, "p50")
        results[f"{prefix}p99_{i}"] = med(kind, "p99")
        results[f"{prefix}bad{i}"] = sum(r["bad"] for r in runs[kind])
    results[prefix + "runs"] = runs
    results[prefix + "ratio13"] = statistics.median(
        u["rps"] / h["rps"] for u, h in zip(runs["unchanged"], runs["healthz"]))
    results[prefix + "ratio23"] = statistics.median(
        w["rps"] / h["rps"] for w, h in zip(runs["write"], runs["healthz"]))
    if write_share:
        results["write_share"] = statistics.median(write_share)



def table_writes(db):
    """Commits that wrote a bench-write table: the sum of their versions."""
    con = sqlite3.connect(db, timeout=30)
    try:
        row = con.execute("SELECT coalesce(sum(version), 0) FROM tables "
                          "WHERE name LIKE 'bench-write%'").fetchone()
    finally:
        con.close()
    return row[0]


def scale_payload(table, nr, per=5, extra=False, with_candidates=True):
    """`nr` services x `per` containers, in the shape bench_core renders:
    every 4th service in path mode, every other one sticky. With `extra`,
    service 0 has one more container, announced as a candidate. Without
    `candidates`, only `running` (a "container stopped" call)."""
    running, candidates = [], []
    for i in range(nr):
        name = f"svc-{i:05d}"
        n = per + (1 if extra and i == 0 else 0)
        conts = []
        for j in range(n):
            k = i * per + j if j < per else nr * per + 1
            conts.append({"id": f"c{i:05d}{j:02d}",
                          "ip": f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}"})
        running += [{"serviceName": name, **c} for c in conts]
        cand = {"serviceName": name, "port": 8080,
                "configMode": "path" if i % 4 == 3 else "host",
                "predicate": f"api/v{i}" if i % 4 == 3 else f"{name}.example.com",
                "containers": conts}
        if i % 2:
            cand["cookie"] = "SRVID"
        if not extra or i == 0:
            candidates.append(cand)
    if extra:
        candidates[0]["containers"] = candidates[0]["containers"][-1:]
    if not with_candidates:
        candidates = []
    return json.dumps({"table": table, "running": running, "candidates": candidates},
                      separators=(",", ":")).encode()


def bench_scale(args, work, results, store_kind, sizes):
    """(5)/(6): one fresh server per size; seed, then alternately add and
    remove one container (every call writes), timing each call."""
    for nr in sizes:
        table = f"scale-{nr}"
        seed = scale_payload(table, nr)
        add = scale_payload(table, nr, extra=True)
        # Removing the extra container again: `running` without it.
        remove = scale_payload(table, nr, with_candidates=False)
        if store_kind == "sqlite":
            store, env = f"sqlite:{os.path.join(work, f'scale-{nr}.db')}", None
        else:
            # Seeding 10,000 services is 10,000 PutItems in one call: more
            # than the default budget of a store call allows.
            store = f"dynamodb:bench{nr}-"
            env = dict(os.environ, LAMBDA_REGISTRY_STORE_TIMEOUT="300")
        srv = Server(args.bin, store, work, env=env)
        try:
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=600)
            t0 = time.monotonic()
            config = post(conn, seed)
            seed_ms = (time.monotonic() - t0) * 1000
            times = []
            for i in range(args.scale_calls * 2):
                body = add if i % 2 == 0 else remove
                t0 = time.monotonic()
                out = post(conn, body)
                if i % 2 == 0:
                    times.append((time.monotonic() - t0) * 1000)
                    config = out
            conn.close()
            rss = srv.rss_peak_kib()
        finally:
            srv.stop()
        key = f"{store_kind}_{nr}" if store_kind != "sqlite" else f"{nr}"
        results[f"add_ms_{key}"] = statistics.median(times)
        results[f"add_ms_max_{key}"] = max(times)
        results[f"seed_ms_{key}"] = seed_ms
        results[f"config_bytes_{key}"] = len(config)
        results[f"payload_bytes_{key}"] = len(add)
        results[f"rss_mib_{key}"] = rss / 1024
        log(f"bench: {store_kind} {nr} services: add {results[f'add_ms_{key}']:.1f} ms, "
            f"rss {rss / 1024:.1f} MiB")
        if store_kind == "sqlite":
            out = subprocess.run([args.core, "render", str(nr)], capture_output=True,
                                 text=True, check=True).stdout
            results[f"render_mbs_{nr}"] = json.loads(out)["mb_per_s"]
            path = os.path.join(work, f"add-{nr}.json")
            open(path, "wb").write(add)
            out = subprocess.run([args.core, "parse", path], capture_output=True,
                                 text=True, check=True).stdout
            results[f"parse_mbs_{nr}"] = json.loads(out)["mb_per_s"]
            results[f"parse_ms_{nr}"] = json.loads(out)["ms_per_parse"]


def agent_payload(table, nr, per=5, extra=False):
    """What the agent posts on every sync (src/agent/agent.c): every
    container in `running`, every service with containers in `candidates`
    with its settings and all its containers. With `extra`, service 0 runs
    one more container."""
    running, candidates = [], []
    for i in range(nr):
        name = f"svc-{i:05d}"
        conts = []
        for j in range(per + (1 if extra and i == 0 else 0)):
            k = i * per + j if j < per else nr * per + 1
            conts.append({"id": f"c{i:05d}{j:02d}",
                          "ip": f"10.{k >> 16 & 255}.{k >> 8 & 255}.{k & 255}"})
        running += [{"serviceName": name, **c} for c in conts]
        cand = {"serviceName": name, "port": 8080,
                "configMode": "path" if i % 4 == 3 else "host",
                "predicate": f"api/v{i}" if i % 4 == 3 else f"{name}.example.com"}
        if i % 2:
            cand["cookie"] = "SRVID"
        cand["containers"] = conts
        candidates.append(cand)
    return json.dumps({"table": table, "running": running, "candidates": candidates},
                      separators=(",", ":")).encode()


class AgentConn:
    """The agent's side of its calls, over one keep-alive connection (opened
    again after an answer that closes it), as libcurl makes them: the body
    sent at once, or held back for "100 Continue" (Expect) when the call
    carries a body token, and the answer read into one buffer. Lighter than
    http.client, whose reading of a 45 MB answer took longer than the
    server's whole call at 100,000 services."""

    def __init__(self, port):
        self.port, self.sock = port, None
        self.buf = bytearray(1 << 20)

    def _room(self, size):
        if len(self.buf) < size:
            self.buf.extend(bytes(max(size, 2 * len(self.buf)) - len(self.buf)))

    def _recv(self, n):
        self._room(n + 65536)
        k = self.sock.recv_into(memoryview(self.buf)[n:])
        if not k:
            raise SystemExit("bench: the server closed the connection mid-answer")
        return n + k

    def _head(self, n):
        """Read until a whole status line and headers are in; their end."""
        while True:
            end = self.buf.find(b"\r\n\r\n", 0, n)
            if end >= 0:
                return end + 4, n
            n = self._recv(n)

    def post(self, body, have=None, token=None):
        """(status, headers, answer, body_sent); the answer is a view of
        the connection's buffer, valid until the next call."""
        if self.sock is None:
            self.sock = socket.create_connection(("127.0.0.1", self.port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = ["POST /generate HTTP/1.1", "Host: 127.0.0.1",
                "Content-Type: application/json", f"Content-Length: {len(body)}"]
        if have is not None:
            head.append(f'If-None-Match: "{have}"')
        if token:
            head += [f"X-Registry-Body-Token: {token}", "Expect: 100-continue"]
        self.sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sent = not token
        if sent:
            self.sock.sendall(body)
        n = 0
        while True:
            end, n = self._head(n)
            lines = bytes(self.buf[:end - 4]).decode().split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            if status != 100:
                break
            self.buf[:n - end] = self.buf[end:n]
            n -= end
            self.sock.sendall(body)
            sent = True
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers.get("content-length", "0"))
        self._room(end + length + 65536)
        while n < end + length:
            n = self._recv(n)
        # A view, not a copy: fresh pages for a 45 MB copy cost more than
        # the server's call on this kind of machine.
        data = memoryview(self.buf)[end:end + length]
        if headers.get("connection", "").lower() == "close":
            self.sock.close()
            self.sock = None
        ok = status == 200 or (have is not None and status == 304)
        if not ok:
            raise SystemExit(f"bench: POST /generate: HTTP {status}: {data[:300]!r}")
        return status, headers, data, sent

    def close(self):
        if self.sock:
            self.sock.close()


def bench_agent(args, work, results):
    """(7): one fresh server per size, seeded with the agent's payload; then
    `agent_calls` unchanged calls (the same bytes again), as many
    conditional ones (If-None-Match), as many by the body token alone (the
    agent's), then as many calls that add one container, each followed by
    one that removes it."""
    for nr in args.agent_sizes:
        table = f"agent-{nr}"
        same = agent_payload(table, nr)
        add = agent_payload(table, nr, extra=True)
        srv = Server(args.bin, f"sqlite:{os.path.join(work, f'agent-{nr}.db')}", work)
        try:
            conn = AgentConn(srv.port)
            config = bytes(conn.post(same)[2])
            same_ms, cond_ms, token_ms, add_ms = [], [], [], []
            cpu0 = srv.cpu_ticks()
            for _ in range(args.agent_calls):
                t0 = time.monotonic()
                _, h, out, _ = conn.post(same)
                same_ms.append((time.monotonic() - t0) * 1000)
                if out != config:
                    raise SystemExit(f"bench: an unchanged call at {nr} changed the config")
                del out
            cpu1 = srv.cpu_ticks()
            index, token = int(h["x-registry-index"]), h.get("x-registry-body-token")
            if not token:
                raise SystemExit(f"bench: the unchanged calls at {nr} got no body token")
            for _ in range(args.agent_calls):
                t0 = time.monotonic()
                st, _, out, _ = conn.post(same, have=index)
                cond_ms.append((time.monotonic() - t0) * 1000)
                if st != 304 or len(out):
                    raise SystemExit(f"bench: a conditional unchanged call at {nr} was not a 304")
            cpu2 = srv.cpu_ticks()
            for _ in range(args.agent_calls):
                t0 = time.monotonic()
                st, _, _, sent = conn.post(same, have=index, token=token)
                token_ms.append((time.monotonic() - t0) * 1000)
                if st != 304 or sent:
                    raise SystemExit(f"bench: a call by body token at {nr} was not a 304 "
                                     f"before the body (status {st}, body sent {sent})")
            cpu3 = srv.cpu_ticks()
            for _ in range(args.agent_calls):
                t0 = time.monotonic()
                conn.post(add)
                add_ms.append((time.monotonic() - t0) * 1000)
                conn.post(same)
            conn.close()
            rss = srv.rss_peak_kib()
        finally:
            srv.stop()
        floor_ms = agent_floor(args, work, same, config)
        tick_ms = 1000 / os.sysconf("SC_CLK_TCK") / args.agent_calls
        results[f"agent_same_ms_{nr}"] = statistics.median(same_ms)
        results[f"agent_same_cpu_ms_{nr}"] = (cpu1 - cpu0) * tick_ms
        results[f"agent_cond_ms_{nr}"] = statistics.median(cond_ms)
        results[f"agent_cond_cpu_ms_{nr}"] = (cpu2 - cpu1) * tick_ms
        results[f"agent_token_ms_{nr}"] = statistics.median(token_ms)
        results[f"agent_token_cpu_ms_{nr}"] = (cpu3 - cpu2) * tick_ms
        results[f"agent_add_ms_{nr}"] = statistics.median(add_ms)
        results[f"agent_floor_ms_{nr}"] = floor_ms
        results[f"agent_rss_mib_{nr}"] = rss / 1024
        results[f"agent_payload_bytes_{nr}"] = len(same)
        results[f"agent_config_bytes_{nr}"] = len(config)
        log(f"bench: agent {nr}: unchanged {statistics.median(same_ms):.1f} ms, "
            f"conditional {statistics.median(cond_ms):.1f} ms, "
            f"by token {statistics.median(token_ms):.2f} ms, "
            f"add {statistics.median(add_ms):.1f} ms, rss {rss / 1024:.1f} MiB")


def agent_floor(args, work, body, config):
    """The median time of nginx taking `body` and sending a file of the
    config's bytes, with the same client: what the unchanged call's transfer
    alone costs on this machine."""
    floor = os.path.join(work, "floor")
    os.makedirs(floor, exist_ok=True)
    with open(os.path.join(floor, "generate"), "wb") as f:
        f.write(config)
    proc, port = start_nginx(work, floor)
    try:
        conn = AgentConn(port)
        times = []
        for _ in range(args.agent_calls):
            t0 = time.monotonic()
            st, _, out, _ = conn.post(body)
            times.append((time.monotonic() - t0) * 1000)
            if st != 200 or len(out) != len(config):
                raise SystemExit(f"bench: the nginx floor answered {st} with {len(out)} bytes")
            del out
        conn.close()
    finally:
        proc.terminate()
        proc.wait()
    return statistics.median(times)


def start_nginx(work, floor=None, workers=1):
    """An nginx from Debian's package on a free loopback port answering every
    request with `return 200`: one process (no master), or a master and
    `workers` workers; with `floor` (a folder), POST /generate reads the
    whole body and answers with the file `floor`/generate (sendfile), the
    transfer of a call without the call."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(binary):
        raise SystemExit("bench: nginx is missing (scripts/deps.sh bench)")
    port = free_port()
    root = os.path.join(work, "nginx-floor" if floor else f"nginx-{workers}")
    # A static file refuses POST with 405; error_page turns that into the
    # file, once the body has been read (and dropped).
    floor_location = f"""
        location = /generate {{
            root {floor};
            client_max_body_size 0;
            error_page 405 =200 $uri;
        }}""" if floor else ""
    os.makedirs(os.path.join(root, "logs"), exist_ok=True)
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
master_process {"off" if workers == 1 else "on"};
worker_processes {workers};
pid {root}/nginx.pid;
error_log {root}/logs/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log {root}/logs/access.log;
    server {{
        listen 127.0.0.1:{port};
        sendfile on;
        location / {{ return 200; }}{floor_location}
    }}
}}
""")
    proc = subprocess.Popen([binary, "-p", root, "-e", f"{root}/logs/error.log", "-c", conf],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.02)
    raise SystemExit("bench: nginx did not start")


def tree_cpu_ticks(pid):
    """CPU ticks of a process and its children (nginx's workers)."""
    total = cpu_ticks(pid)
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        for child in f.read().split():
            try:
                total += cpu_ticks(int(child))
            except FileNotFoundError:
                pass
    return total


def settle(limit=1.0, wait=60):
    """Wait (at most `wait` s) for the 1-minute load average to fall under
    `limit`: CPU per request is dearer on a machine that is busy."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < wait and os.getloadavg()[0] >= limit:
        time.sleep(2)
    return loadavg()


def bench_nginx(args, work, results):
    """(8): CPU per request of the server on (1) and of nginx on `return
    200`, wrk with the same options, rounds side by side: one event loop
    each (one polling thread; nginx's one process), then each with as
    many as the machine has CPUs (the server's default; nginx's
    `worker_processes auto`)."""
    sample = os.path.join(ROOT, "sample-data", "data.json")
    ncpu = os.cpu_count() or 2
    pairs = {1: {}, ncpu: {}}
    runs = {n: {"reg": [], "ngx": []} for n in pairs}
    try:
        for n in pairs:
            env = dict(os.environ, LAMBDA_REGISTRY_THREADS=str(n))
            pairs[n]["srv"] = Server(args.bin, f"sqlite:{os.path.join(work, f'nginx-cmp-{n}.db')}",
                                     work, env=env)
            pairs[n]["ngx"] = start_nginx(work, workers=n)
            conn = http.client.HTTPConnection("127.0.0.1", pairs[n]["srv"].port)
            post(conn, open(sample, "rb").read())
            conn.close()
        t, c = args.threads, args.connections
        log(f"bench: nginx: waiting for the load to settle ({settle()})")
        for r in range(args.nginx_rounds):
            for n, pair in pairs.items():
                log(f"bench: nginx round {r + 1}/{args.nginx_rounds}, {n} event loop(s) each "
                    f"(load {loadavg()})")
                proc, port = pair["ngx"]
                t0 = tree_cpu_ticks(proc.pid)
                res = wrk(port, "/", args.seconds, t, c)
                res["cpu_us"] = ((tree_cpu_ticks(proc.pid) - t0) * 1e6
                                 / os.sysconf("SC_CLK_TCK") / max(res["requests"], 1))
                runs[n]["ngx"].append(res)
                srv = pair["srv"]
                runs[n]["reg"].append(srv.measure(wrk, srv.port, "/generate", args.seconds, t, c,
                                                  os.path.join(BENCH, "generate.lua"),
                                                  {"LR_BODY": sample}))
    finally:
        for pair in pairs.values():
            if "ngx" in pair:
                pair["ngx"][0].terminate()
                pair["ngx"][0].wait()
            if "srv" in pair:
                pair["srv"].stop()
    for n, key in ((1, "nginx"), (ncpu, "nginx_all")):
        reg, ngx = runs[n]["reg"], runs[n]["ngx"]
        results[f"{key}_cpu"] = statistics.median(x["cpu_us"] for x in ngx)
        results[f"{key}_rps"] = statistics.median(x["rps"] for x in ngx)
        results[f"{key}_reg_cpu"] = statistics.median(x["cpu_us"] for x in reg)
        results[f"{key}_reg_rps"] = statistics.median(x["rps"] for x in reg)
        results[f"{key}_ratio"] = statistics.median(
            g["cpu_us"] / x["cpu_us"] for g, x in zip(reg, ngx) if x["cpu_us"] > 0)
    results["nginx_loops"] = ncpu


def commit_of(path):
    out = subprocess.run(["git", "-C", path, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True)
    return out.stdout.strip() or "?"


def bench_compare(args, work, results):
    """(9): (1) and (3) against two builds, one server each, alternating in
    every round; medians per build."""
    sample = os.path.join(ROOT, "sample-data", "data.json")
    builds = [("other", os.path.join(args.compare, "lambda-registry")), ("this", args.bin)]
    servers = {}
    runs = {name: {"unchanged": [], "healthz": []} for name, _ in builds}
    try:
        for name, binary in builds:
            servers[name] = Server(binary, f"sqlite:{os.path.join(work, f'cmp-{name}.db')}",
                                   work)
            conn = http.client.HTTPConnection("127.0.0.1", servers[name].port)
            post(conn, open(sample, "rb").read())
            conn.close()
        t, c = args.threads, args.connections
        for r in range(args.rounds):
            log(f"bench: compare round {r + 1}/{args.rounds} (load {loadavg()})")
            for name, _ in builds:
                srv = servers[name]
                runs[name]["healthz"].append(
                    srv.measure(wrk, srv.port, "/healthz", args.seconds, t, c))
                runs[name]["unchanged"].append(
                    srv.measure(wrk, srv.port, "/generate", args.seconds, t, c,
                                os.path.join(BENCH, "generate.lua"), {"LR_BODY": sample}))
    finally:
        for srv in servers.values():
            srv.stop()
    results["cmp_commits"] = {"other": commit_of(args.compare), "this": commit_of(ROOT)}
    for name, _ in builds:
        u, h = runs[name]["unchanged"], runs[name]["healthz"]
        results[f"cmp_{name}"] = {
            "rps1": statistics.median(x["rps"] for x in u),
            "cpu1": statistics.median(x["cpu_us"] for x in u),
            "rps3": statistics.median(x["rps"] for x in h),
            "cpu3": statistics.median(x["cpu_us"] for x in h),
            "ratio13": statistics.median(a["rps"] / b["rps"] for a, b in zip(u, h)),
            "rounds": [(a["rps"], b["rps"]) for a, b in zip(u, h)],
        }


def agent_rows(args, results):
    """The table of issue 18, Markdown; empty when (7) did not run."""
    r = results.get
    sizes = [n for n in args.agent_sizes if f"agent_same_ms_{n}" in results]
    if not sizes:
        return []
    lines = [
        "| services | " + " | ".join(f"{n:,}" for n in sizes) + " |",
        "|---|" + "---|" * len(sizes),
        "| payload | " + " | ".join(f"{r(f'agent_payload_bytes_{n}') / 1e6:.1f} MB"
                                   for n in sizes) + " |",
        "| unchanged call | " + " | ".join(f"{r(f'agent_same_ms_{n}'):.1f} ms"
                                          for n in sizes) + " |",
        "| (server CPU per call) | " + " | ".join(
            f"{r(f'agent_same_cpu_ms_{n}'):.1f} ms" for n in sizes) + " |",
        "| (the same bytes in and out through nginx: its body read, a file sent) | "
        + " | ".join(f"{r(f'agent_floor_ms_{n}'):.1f} ms" for n in sizes) + " |",
        "| unchanged call, conditional (304) | " + " | ".join(
            f"{r(f'agent_cond_ms_{n}'):.1f} ms" for n in sizes) + " |",
        "| (server CPU per call) | " + " | ".join(
            f"{r(f'agent_cond_cpu_ms_{n}'):.1f} ms" for n in sizes) + " |",
        "| unchanged call, by its body token (the agent's: 304 before the body) | "
        + " | ".join(f"{r(f'agent_token_ms_{n}'):.2f} ms" for n in sizes) + " |",
        "| (server CPU per call) | " + " | ".join(
            f"{r(f'agent_token_cpu_ms_{n}'):.2f} ms" for n in sizes) + " |",
        "| add one container | " + " | ".join(f"{r(f'agent_add_ms_{n}'):.1f} ms"
                                             for n in sizes) + " |",
        "| peak RSS | " + " | ".join(f"{r(f'agent_rss_mib_{n}'):.1f} MiB"
                                    for n in sizes) + " |",
    ]
    return lines


def readme_block(name, lines):
    """Replace the README's lines between its markers for `name`."""
    begin, end = f"<!-- bench/run.py: {name} -->", f"<!-- /bench/run.py: {name} -->"
    text = open(README).read()
    if begin not in text or end not in text:
        log(f"bench: the README has no markers for {name}; left as it is")
        return
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(README, "w") as f:
        f.write(head + "\n".join([begin, *lines, end]) + tail)


def update_readme(args, results, m):
    """The README's Performance figures of (7)-(9), between their markers."""
    r = results.get
    rows = agent_rows(args, results)
    if rows and "nginx_ratio" in results:
        readme_block("agent", [
            f"Measured {m['date']}, commit {m['commit']}, {m['nproc']} CPUs, load average "
            f"{r('load_start')} at the start, {r('load_end')} at the end (`make bench`; "
            f"median of {args.agent_calls} calls, end to end over HTTP keep-alive):",
            "",
            *rows,
            "",
            f"Server CPU per unchanged small call, one event loop each: "
            f"{r('nginx_reg_cpu'):.0f} µs; nginx `return 200` in the same run: "
            f"{r('nginx_cpu'):.0f} µs (ratio {r('nginx_ratio'):.2f}). One per CPU each: "
            f"{r('nginx_all_reg_cpu'):.0f} and {r('nginx_all_cpu'):.0f} µs "
            f"(ratio {r('nginx_all_ratio'):.2f}).",
        ])
    if "cmp_this" in results:
        cm = r("cmp_commits")
        o, t = r("cmp_other"), r("cmp_this")
        readme_block("compare", [
            f"Side by side ({m['date']}, median of {args.rounds} rounds, load average "
            f"{r('load_start')}): (1) {o['rps1']:,.0f} req/s at {cm['other']}, "
            f"{t['rps1']:,.0f} at {cm['this']}; server CPU per request {o['cpu1']:.0f} "
            f"and {t['cpu1']:.0f} µs; (3) {o['rps3']:,.0f} and {t['rps3']:,.0f} req/s "
            f"({o['cpu3']:.0f} and {t['cpu3']:.0f} µs); ratio 1/3 {o['ratio13']:.2f} "
            f"and {t['ratio13']:.2f}.",
        ])


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    try:
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src"],
                               capture_output=True, text=True).stdout.strip()
    except OSError:
        commit, dirty = "?", ""
    return {"nproc": os.cpu_count(), "cpu": cpu, "commit": commit + ("+dirty" if dirty else ""),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def fmt(value, digits=0):
    return "n/a" if value is None else f"{value:,.{digits}f}"


def report(args, results, m):
    r = results.get
    lines = [
        "# Benchmark results",
        "",
        f"{m['date']}, commit {m['commit']}, {m['nproc']} CPUs ({m['cpu']}), "
        f"load average at the start {r('load_start')}, at the end {r('load_end')}.",
        "Release build (RelWithDebInfo). wrk, the server and other work share the "
        "same CPUs, so figures move between runs; the ratios come from runs side by side.",
        "",
    ]
    if "rps1" in results:
        lines += [
            f"## HTTP (SQLite store), wrk -t{args.threads} -c{args.connections} "
            f"-d{args.seconds}s, median of {args.rounds} rounds",
            "",
            "| load | req/s | p50 | p99 | server CPU per request | non-2xx | first version |",
            "|---|---|---|---|---|---|---|",
            f"| (1) POST /generate, unchanged state | {fmt(r('rps1'))} | {r('p50_1'):.2f} ms "
            f"| {r('p99_1'):.2f} ms | {r('cpu1'):.0f} µs | {r('bad1')} "
            f"| {FIRST['serial']}; {FIRST['parallel']} |",
            f"| (2) POST /generate, every call writes | {fmt(r('rps2'))} | {r('p50_2'):.2f} ms "
            f"| {r('p99_2'):.2f} ms | {r('cpu2'):.0f} µs | {r('bad2')} | |",
            f"| (3) GET /healthz | {fmt(r('rps3'))} | {r('p50_3'):.2f} ms "
            f"| {r('p99_3'):.2f} ms | {r('cpu3'):.0f} µs | {r('bad3')} | |",
            "",
            f"(4) ratio 1/3 = {r('ratio13'):.2f}, ratio 2/3 = {r('ratio23'):.2f} "
            "(median of the per-round ratios). GET /healthz is not free either: it runs "
            "the store's ping (a SQLite query). Server CPU per request (user + system "
            "time of the server process over the run, divided by the requests) does not "
            "depend on how busy the machine is, unlike req/s.",
            f"In (2) {100 * r('write_share'):.0f}% of the calls wrote (counted from the "
            "store's table versions); each wrk thread has a table of its own, and "
            "each request moves one container of sample-data/data.json to a new address.",
            f"Server peak RSS after these runs: {r('rss_kib_wrk', 0) / 1024:.1f} MiB.",
            "",
            "Rounds (req/s: unchanged / writes / healthz): " + "; ".join(
                f"{u['rps']:.0f} / {w['rps']:.0f} / {h['rps']:.0f}"
                for u, w, h in zip(r("runs")["unchanged"], r("runs")["write"],
                                   r("runs")["healthz"])) + ".",
            "",
        ]
    if "add_ms_1000" in results:
        lines += [
            "## Scale (SQLite store): N services x 5 containers",
            "",
            "A fresh server per size, seeded with one call; then calls that add one "
            f"container (with its candidate) alternate with calls that remove it "
            f"again; the median of {args.scale_calls} adding calls, end to end over "
            "HTTP keep-alive (Python client: send the payload, read the whole config).",
            "",
            "| services | payload | add one container: median (max) | config | "
            "renderer (in process) | parse (in process) | server peak RSS | first version |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for nr in args.sizes:
            lines.append(
                f"| {nr:,} | {fmt(r(f'payload_bytes_{nr}'))} B | {r(f'add_ms_{nr}'):.1f} ms "
                f"({r(f'add_ms_max_{nr}'):.1f}) | {fmt(r(f'config_bytes_{nr}'))} B "
                f"| {fmt(r(f'render_mbs_{nr}'))} MB/s | {r(f'parse_ms_{nr}'):.1f} ms "
                f"({fmt(r(f'parse_mbs_{nr}'))} MB/s) | {r(f'rss_mib_{nr}'):.1f} MiB "
                f"| {(FIRST['add1k'] + ', ' + FIRST['rss']) if nr == 1000 else ''} |")
        lines.append("")
    if agent_rows(args, results):
        lines += [
            "## The agent's call (SQLite store): N services x 5 containers",
            "",
            "Every container in `running` and every service in `candidates`, as the "
            "agent posts it; a fresh server per size, seeded with one call; the median "
            f"of {args.agent_calls} unchanged calls (the same bytes again), of as many "
            "conditional ones (the same bytes with `If-None-Match` naming the index: a 304 "
            "with no body), of as many by the body token (`If-None-Match`, the "
            "`X-Registry-Body-Token` of the earlier answers and `Expect: 100-continue`, as "
            "the agent sends them: a 304 before any of the body is sent), then of "
            f"{args.agent_calls} calls that add one container (each followed by one "
            "that removes it again), end to end over HTTP keep-alive (a Python client on "
            "a socket: send the payload, read the whole answer into one buffer). Server "
            "CPU per call: the server's user + system time over those calls, divided by "
            "their number (a tick is 10 ms, so small figures are coarse). The nginx "
            "row is the floor of the unchanged call's transfer: the same client sends "
            "the same body to an nginx from Debian's package, which reads it and answers "
            "with a file of the config's size (sendfile), right after the server's run.",
            "",
            *agent_rows(args, results),
            "",
        ]
    if "nginx_ratio" in results:
        lines += [
            f"## Server CPU per request next to nginx (wrk -t{args.threads} "
            f"-c{args.connections} -d{args.seconds}s, median of {args.nginx_rounds} rounds)",
            "",
            "Each round runs nginx and the server with one event loop each (nginx's one "
            "process, `--threads 1`), then with one per CPU each (nginx's master and "
            f"{r('nginx_loops')} workers, the server's default), after waiting for the load "
            "average to settle. nginx's access log is on (its default, one write per "
            "request); the CPU time is of all of nginx's processes.",
            "",
            "| load | event loops | req/s | CPU per request |",
            "|---|---|---|---|",
            f"| (1) POST /generate, unchanged state | 1 | {fmt(r('nginx_reg_rps'))} "
            f"| {r('nginx_reg_cpu'):.1f} µs |",
            f"| nginx `return 200` (Debian's package) | 1 "
            f"| {fmt(r('nginx_rps'))} | {r('nginx_cpu'):.1f} µs |",
            f"| (1) POST /generate, unchanged state | {r('nginx_loops')} "
            f"| {fmt(r('nginx_all_reg_rps'))} | {r('nginx_all_reg_cpu'):.1f} µs |",
            f"| nginx `return 200` (Debian's package) | {r('nginx_loops')} "
            f"| {fmt(r('nginx_all_rps'))} | {r('nginx_all_cpu'):.1f} µs |",
            "",
            f"Ratio (median of the per-round ratios): {r('nginx_ratio'):.2f} with one event "
            f"loop each, {r('nginx_all_ratio'):.2f} with one per CPU each.",
            "",
        ]
    if "cmp_this" in results:
        cm = r("cmp_commits")
        lines += [
            f"## Side by side: commit {cm['other']} against {cm['this']} (wrk -t{args.threads} "
            f"-c{args.connections} -d{args.seconds}s, median of {args.rounds} rounds)",
            "",
            "| commit | (1) req/s | (1) CPU per request | (3) req/s | (3) CPU per request "
            "| ratio 1/3 |",
            "|---|---|---|---|---|---|",
        ]
        for name in ("other", "this"):
            x = r(f"cmp_{name}")
            lines.append(f"| {cm[name]} | {fmt(x['rps1'])} | {x['cpu1']:.0f} µs "
                         f"| {fmt(x['rps3'])} | {x['cpu3']:.0f} µs | {x['ratio13']:.2f} |")
        lines += ["", "Rounds (req/s (1) / (3)): " + "; ".join(
            f"{cm[n]}: " + ", ".join(f"{a:.0f} / {b:.0f}" for a, b in r(f"cmp_{n}")["rounds"])
            for n in ("other", "this")) + ".", ""]
    if "ddb_status" in results:
        lines += ["## DynamoDB store (dynalite on the same machine)", "", r("ddb_status"), ""]
    if "dynamodb_rps1" in results:
        d = "dynamodb_"
        lines += [
            f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, one round:",
            "",
            "| load | req/s | p50 | p99 | non-2xx |",
            "|---|---|---|---|---|",
            f"| (1) POST /generate, unchanged state | {fmt(r(d + 'rps1'))} "
            f"| {r(d + 'p50_1'):.2f} ms | {r(d + 'p99_1'):.2f} ms | {r(d + 'bad1')} |",
            f"| (2) POST /generate, every call writes | {fmt(r(d + 'rps2'))} "
            f"| {r(d + 'p50_2'):.2f} ms | {r(d + 'p99_2'):.2f} ms | {r(d + 'bad2')} |",
            f"| (3) GET /healthz | {fmt(r(d + 'rps3'))} | {r(d + 'p50_3'):.2f} ms "
            f"| {r(d + 'p99_3'):.2f} ms | {r(d + 'bad3')} |",
            "",
            f"(4) ratio 1/3 = {r(d + 'ratio13'):.2f}, ratio 2/3 = {r(d + 'ratio23'):.2f}.",
            "",
        ]
    if any(k.startswith("add_ms_dynamodb_") for k in results):
        lines += [
            f"Scale, as above (median of {args.ddb_calls} adding calls):",
            "",
            "| services | seeding call | add one container: median (max) | config "
            "| server peak RSS |",
            "|---|---|---|---|---|",
        ]
        for nr in args.sizes:
            k = f"dynamodb_{nr}"
            if f"add_ms_{k}" in results:
                lines.append(f"| {nr:,} | {r(f'seed_ms_{k}'):.0f} ms "
                             f"| {r(f'add_ms_{k}'):.1f} ms ({r(f'add_ms_max_{k}'):.1f}) "
                             f"| {fmt(r(f'config_bytes_{k}'))} B | {r(f'rss_mib_{k}'):.1f} MiB |")
        lines.append("")
    lines += ["## Targets", "", "| target | measured | met |", "|---|---|---|"]
    for label, key, op, goal, unit in TARGETS:
        value = r(key)
        if value is None:
            lines.append(f"| {label} {op} {goal:,}{unit} | not measured | |")
            continue
        ok = value >= goal if op == ">=" else value <= goal
        digits = 2 if goal < 1 else 1 if goal < 1000 else 0
        lines.append(f"| {label} {op} {goal:,}{unit} | {fmt(value, digits)}{unit} "
                     f"| {'yes' if ok else 'no'} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--scale-calls", type=int, default=15)
    ap.add_argument("--ddb-calls", type=int, default=5)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--agent-sizes", type=int, nargs="+",
                    default=[1000, 10000, 50000, 100000])
    ap.add_argument("--agent-calls", type=int, default=20)
    ap.add_argument("--nginx-rounds", type=int, default=6)
    ap.add_argument("--compare", help="a build directory of another commit, for (9)")
    ap.add_argument("--only", action="append",
                    choices=["wrk", "scale", "dynamodb", "agent", "nginx", "compare"])
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--json", help="also write the raw figures here")
    ap.add_argument("--self-test", action="store_true",
                    help="check the wrk output parser and exit")
    args = ap.parse_args()
    if args.self_test:
        self_test()
        return
    args.bin = os.path.join(args.build, "lambda-registry")
    args.core = os.path.join(args.build, "bench", "bench_core")
    only = set(args.only or ["wrk", "scale", "dynamodb", "agent", "nginx"] +
               (["compare"] if args.compare else []))
    if "compare" in only and not args.compare:
        raise SystemExit("bench: --only compare needs --compare BUILD_DIR")
    for tool in ("wrk",):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is missing (scripts/deps.sh bench)")

    results = {"load_start": loadavg()}
    work = tempfile.mkdtemp(prefix="lr-bench-")
    try:
        if "wrk" in only:
            bench_wrk(args, work, results)
        if "scale" in only:
            bench_scale(args, work, results, "sqlite", args.sizes)
        if "dynamodb" in only:
            bench_dynamodb(args, work, results)
        if "agent" in only:
            bench_agent(args, work, results)
        if "nginx" in only:
            bench_nginx(args, work, results)
        if "compare" in only:
            bench_compare(args, work, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_end"] = loadavg()
    m = machine()
    text = report(args, results, m)
    if os.path.abspath(args.out) == RESULTS:
        update_readme(args, results, m)
    else:
        log(f"bench: --out {args.out}: the README is left as it is")
    print(text)
    with open(args.out, "w") as f:
        f.write(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


def bench_dynamodb(args, work, results):
    """Runs this script's scale part again next to a private dynalite."""
    if not os.path.exists(os.path.join(ROOT, "src", "store", "dynamodb.c")):
        results["ddb_status"] = "Pending: the DynamoDB store has not landed."
        return
    if os.environ.get("DYNALITE_PID"):
        bench_wrk(args, work, results, store="dynamodb:benchw-", prefix="dynamodb_", rounds=1)
        bench_scale(args, work, results, "dynamodb", args.sizes)
        return
    out = os.path.join(work, "ddb.json")
    cmd = [DYNALITE, sys.executable, os.path.abspath(__file__), "--build", args.build,
           "--only", "dynamodb", "--scale-calls", str(args.ddb_calls),
           "--seconds", str(args.seconds),
           "--out", os.path.join(work, "ddb.md"), "--json", out, "--sizes",
           *map(str, args.sizes)]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    if proc.returncode:
        results["ddb_status"] = f"The dynalite run failed (exit {proc.returncode})."
        return
    ddb = json.load(open(out))
    results.update({k: v for k, v in ddb.items() if "dynamodb" in k})
    results["ddb_status"] = (
        "Same scale calls as above, one fresh server per size, dynalite (Node, in "
        "memory) on the same CPUs. DynamoDB has no exact table version, so the "
        "registry does not cache its tables: each call scans the table.")


if __name__ == "__main__":
    main()
