#!/usr/bin/env python3
"""What access control costs: wrk POST /generate on unchanged state (the
`bench/run.py` load 1, bench/generate.lua), against one server with --auth
off and one with --auth required, run side by side in alternating rounds;
medians of each. Two tokens: "table:*:write" (checked before the body is
read) and "table:astro:write" (checked again on the body's table), so both
paths of the check are measured. The issue's target: auth on within 10% of
auth off.

Usage: bench/auth.py [--build DIR] [--seconds N] [--rounds N]
                     [--threads N] [--connections N]
"""
import argparse
import http.client
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, free_port, loadavg, log  # noqa: E402

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk(port, path, seconds, threads, connections, script, env):
    """One wrk run; percentiles from its Latency Distribution lines only."""
    import re
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
           "-s", script, f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True,
                         text=True, check=True).stdout
    dist = out.split("Latency Distribution", 1)[-1]

    def pct(p):
        m = re.search(r"^\s*%d%%\s+([\d.]+)(us|ms|s|m)\s*$" % p, dist, re.M)
        return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")

    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": pct(50), "p99": pct(99), "bad": int(bad.group(1)) if bad else 0}


class Serve:
    def __init__(self, binary, store, work, auth):
        import socket
        import time
        self.port = free_port()
        self.log = open(os.path.join(work, "serve-%s.log" % auth), "ab")
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", f"127.0.0.1:{self.port}", "--store", store,
             "--auth", auth], stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.02)
        raise SystemExit(f"bench: serve --auth {auth} did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        self.log.close()


def make_token(binary, store, scope):
    p = subprocess.run([binary, "token", "create", "--store", store, "--scope", scope],
                       capture_output=True, text=True, check=True)
    return p.stdout.splitlines()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    binary = os.path.join(args.build, "lambda-registry")
    sample = os.path.join(ROOT, "sample-data", "data.json")
    lua = os.path.join(ROOT, "bench", "generate.lua")
    work = tempfile.mkdtemp(prefix="lr-bench-auth-")
    store = "sqlite:" + os.path.join(work, "auth.db")
    tokens = {"table:*:write": make_token(binary, store, "table:*:write"),
              "table:astro:write": make_token(binary, store, "table:astro:write")}
    off = Serve(binary, store, work, "off")
    on = Serve(binary, store, work, "required")
    runs = {"off": [], "on, table:*:write": [], "on, table:astro:write": []}
    try:
        conn = http.client.HTTPConnection("127.0.0.1", off.port)
        conn.request("POST", "/generate", body=open(sample, "rb").read())
        if conn.getresponse().status != 200:
            raise SystemExit("bench: the first POST failed")
        conn.close()
        t, c, s = args.threads, args.connections, args.seconds
        for r in range(args.rounds):
            log(f"bench: auth round {r + 1}/{args.rounds} (load {loadavg()})")
            runs["off"].append(wrk(off.port, "/generate", s, t, c, lua, {"LR_BODY": sample}))
            for scope, tok in tokens.items():
                runs["on, " + scope].append(
                    wrk(on.port, "/generate", s, t, c, lua,
                        {"LR_BODY": sample, "LR_TOKEN": tok}))
    finally:
        off.stop()
        on.stop()
    base = statistics.median(x["rps"] for x in runs["off"])
    print(f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s POST /generate "
          f"(unchanged state, sample-data/data.json), median of {args.rounds} rounds:\n")
    print("| auth | req/s | p50 ms | p99 ms | non-2xx | vs off |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rs in runs.items():
        rps = statistics.median(x["rps"] for x in rs)
        print(f"| {name} | {rps:.0f} | {statistics.median(x['p50'] for x in rs):.2f} | "
              f"{statistics.median(x['p99'] for x in rs):.2f} | "
              f"{sum(x['bad'] for x in rs)} | {100 * (rps / base - 1):+.1f}% |")


if __name__ == "__main__":
    main()
