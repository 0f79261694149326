#!/usr/bin/env python3
"""What the metrics cost on the hot path: wrk POST /generate on unchanged
state (bench/run.py's load 1, bench/generate.lua) against a server built
without the metrics (--baseline, a build of the tree before them) and one
with them, side by side in alternating rounds; medians of req/s, latency and
the server's CPU time per request, and the ratio. Then the cost of one
GET /metrics scrape after the load.

Usage: bench/metrics.py --baseline DIR [--build DIR] [--seconds N]
                        [--rounds N] [--threads N] [--connections N]
"""
import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import BENCH, ROOT, Server, loadavg, log, post, wrk  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--baseline", required=True,
                    help="build folder of the tree without the metrics")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--scrapes", type=int, default=50)
    args = ap.parse_args()
    sample = os.path.join(ROOT, "sample-data", "data.json")
    work = tempfile.mkdtemp(prefix="lr-bench-metrics-")
    servers = {
        "without metrics": Server(os.path.join(args.baseline, "lambda-registry"),
                                  "sqlite:" + os.path.join(work, "base.db"), work),
        "with metrics": Server(os.path.join(args.build, "lambda-registry"),
                               "sqlite:" + os.path.join(work, "metrics.db"), work),
    }
    runs = {name: [] for name in servers}
    try:
        for srv in servers.values():
            conn = http.client.HTTPConnection("127.0.0.1", srv.port)
            post(conn, open(sample, "rb").read())
            conn.close()
        for r in range(args.rounds):
            log(f"bench: round {r + 1}/{args.rounds} (load {loadavg()})")
            order = list(servers) if r % 2 == 0 else list(reversed(servers))
            for name in order:
                srv = servers[name]
                runs[name].append(srv.measure(
                    wrk, srv.port, "/generate", args.seconds, args.threads,
                    args.connections, os.path.join(BENCH, "generate.lua"),
                    {"LR_BODY": sample}))
        srv = servers["with metrics"]
        times, size = [], 0
        conn = http.client.HTTPConnection("127.0.0.1", srv.port)
        for _ in range(args.scrapes):
            t0 = time.perf_counter()
            conn.request("GET", "/metrics")
            body = conn.getresponse().read()
            times.append((time.perf_counter() - t0) * 1000)
            size = len(body)
        conn.close()
    finally:
        for srv in servers.values():
            srv.stop()

    def med(name, key):
        return statistics.median(x[key] for x in runs[name])

    base = med("without metrics", "rps")
    lines = [
        "wrk -t%d -c%d -d%ds POST /generate (unchanged state, sample-data/data.json), "
        "median of %d alternating rounds, load average %s at the end:" %
        (args.threads, args.connections, args.seconds, args.rounds, loadavg()),
        "",
        "| server | req/s | p50 ms | p99 ms | server CPU us/req | non-2xx | vs without |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in servers:
        rps = med(name, "rps")
        lines.append("| %s | %.0f | %.2f | %.2f | %.1f | %d | %+.1f%% |" % (
            name, rps, med(name, "p50"), med(name, "p99"), med(name, "cpu_us"),
            sum(x["bad"] for x in runs[name]), (rps / base - 1) * 100))
    lines += ["", "GET /metrics after the load: median %.2f ms over %d scrapes, %d bytes." %
              (statistics.median(times), args.scrapes, size)]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
