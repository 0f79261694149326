#!/usr/bin/env python3
"""PostgreSQL store beside SQLite, in one run, on a release build.

1. wrk over keep-alive: POST /generate on unchanged state and POST /generate
   where every call writes, SQLite and PostgreSQL taking turns in each round:
   req/s, p50, p99 and the server's CPU time per request (/proc/PID/stat).
2. The incremental call at 10,000 services x 5 containers: seed once, then
   add one container and remove it again, timing the adding calls, on each
   store.

PostgreSQL is a private cluster (tests/postgres/with-postgres.sh), by default
with durable commits (fsync on, synchronous_commit on), on the same CPUs.
Usage: bench/postgres.py [--build DIR] [--seconds N] [--rounds N]
                         [--scale-calls N] [--sizes N...] [--fast-commit]
                         [--out FILE]
Prints Markdown, and writes it to --out (default bench/postgres.md).
"""
import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
import run as lrbench  # noqa: E402 - Server, post, scale_payload, machine

LAUNCH = os.path.join(ROOT, "tests", "postgres", "with-postgres.sh")


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--scale-calls", type=int, default=10)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000])
    ap.add_argument("--fast-commit", action="store_true",
                    help="the cluster without fsync (as the tests run it)")
    ap.add_argument("--out", default=os.path.join(BENCH, "postgres.md"))
    return ap.parse_args()


def wrk(port, path, seconds, threads, connections, script, env):
    """One wrk run. The percentiles are read from the "Latency Distribution"
    lines only (a "+/- Stdev" column such as 81.50% also ends in "50%")."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency",
           "-s", script, f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, env=dict(os.environ, **env), capture_output=True,
                         text=True, check=True).stdout

    def pct(p):
        return lrbench.ms(re.search(rf"^\s+{p}%\s+(\S+)$", out, re.M).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": pct(50),
        "p99": pct(99),
        "bad": int(bad.group(1)) if bad else 0,
    }


def pg_tables_written(prefix):
    """Commits that wrote tables named prefix*: the sum of their versions."""
    out = subprocess.run(
        ["psql", "-X", "-At", os.environ["LR_TEST_PG"], "-c",
         "SELECT coalesce(sum(version), 0) FROM lambda_registry.tables "
         f"WHERE name LIKE '{prefix}%'"], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def bench_wrk(args, work, stores):
    """Both loads on every store, the stores taking turns in each round."""
    sample = os.path.join(ROOT, "sample-data", "data.json")
    doc = json.load(open(sample))
    doc["table"] = "bench-write"
    body_a = os.path.join(work, "write-a.json")
    json.dump(doc, open(body_a, "w"))
    doc["running"][0]["ip"] = "192.168.1.250"
    body_b = os.path.join(work, "write-b.json")
    json.dump(doc, open(body_b, "w"))
    servers = {name: lrbench.Server(args.bin, spec, work) for name, spec in stores}
    runs = {(name, kind): [] for name, _ in stores for kind in ("unchanged", "write")}
    writes = {}
    try:
        for srv in servers.values():
            conn = http.client.HTTPConnection("127.0.0.1", srv.port)
            lrbench.post(conn, open(sample, "rb").read())
            conn.close()
        t, c = args.threads, args.connections
        for r in range(args.rounds):
            for name, _ in stores:
                srv = servers[name]
                lrbench.log(f"bench: round {r + 1}/{args.rounds}, {name} "
                            f"(load {lrbench.loadavg()})")
                runs[(name, "unchanged")].append(srv.measure(
                    wrk, srv.port, "/generate", args.seconds, t, c,
                    os.path.join(BENCH, "generate.lua"), {"LR_BODY": sample}))
                before = pg_tables_written("bench-write") if name == "PostgreSQL" else 0
                res = srv.measure(wrk, srv.port, "/generate", args.seconds, t, c,
                                  os.path.join(BENCH, "write.lua"),
                                  {"LR_BODY_A": body_a, "LR_BODY_B": body_b})
                runs[(name, "write")].append(res)
                if name == "PostgreSQL":
                    writes.setdefault(name, []).append(
                        (pg_tables_written("bench-write") - before) / max(res["requests"], 1))
    finally:
        for srv in servers.values():
            srv.stop()
    return runs, writes


def bench_scale(args, work, stores):
    """A fresh server per store and size: seed, then add one container and
    remove it again, timing the adding calls."""
    out = {}
    for nr in args.sizes:
        table = f"scale-{nr}"
        seed = lrbench.scale_payload(table, nr)
        add = lrbench.scale_payload(table, nr, extra=True)
        remove = lrbench.scale_payload(table, nr, with_candidates=False)
        for name, spec in stores:
            env = dict(os.environ, LAMBDA_REGISTRY_STORE_TIMEOUT="120")
            srv = lrbench.Server(args.bin, spec, work, env=env)
            try:
                conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=600)
                t0 = time.monotonic()
                lrbench.post(conn, seed)
                seed_ms = (time.monotonic() - t0) * 1000
                times = []
                cpu0 = srv.cpu_ticks()
                for i in range(args.scale_calls * 2):
                    t0 = time.monotonic()
                    lrbench.post(conn, add if i % 2 == 0 else remove)
                    if i % 2 == 0:
                        times.append((time.monotonic() - t0) * 1000)
                cpu_ms = ((srv.cpu_ticks() - cpu0) * 1000 / os.sysconf("SC_CLK_TCK")
                          / (args.scale_calls * 2))
                conn.close()
                rss = srv.rss_peak_kib()
            finally:
                srv.stop()
            out[(name, nr)] = {"seed_ms": seed_ms, "median": statistics.median(times),
                               "max": max(times), "cpu_ms": cpu_ms, "rss_mib": rss / 1024}
            lrbench.log(f"bench: {name} {nr} services: add {out[(name, nr)]['median']:.1f} ms")
    return out


def report(args, stores, runs, writes, scale, m):
    durability = ("fsync off, synchronous_commit off (as in the tests)" if args.fast_commit
                  else "durable commits: fsync on, synchronous_commit on")
    lines = [
        "# PostgreSQL store beside SQLite",
        "",
        f"{m['date']}, commit {m['commit']}, {m['nproc']} CPUs ({m['cpu']}), load average "
        f"at the start {m['load_start']}, at the end {lrbench.loadavg()}. Release build; "
        "wrk, both servers, PostgreSQL 15 (a private cluster on a Unix socket, "
        f"{durability}) and other work share the same CPUs, so req/s moves between "
        "runs; CPU per request is the server process's own (user + system).",
        "",
        f"## POST /generate, wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, "
        f"median of {args.rounds} rounds (the stores take turns in each round)",
        "",
        "| store | load | req/s | p50 | p99 | server CPU per request | non-2xx |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, label in (("unchanged", "unchanged state"), ("write", "every call writes")):
        for name, _ in stores:
            rs = runs[(name, kind)]

            def med(key, rs=rs):
                return statistics.median(r[key] for r in rs)
            lines.append(
                f"| {name} | {label} | {med('rps'):,.0f} | {med('p50'):.2f} ms "
                f"| {med('p99'):.2f} ms | {med('cpu_us'):.0f} µs "
                f"| {sum(r['bad'] for r in rs)} |")
    lines += [""]
    if writes.get("PostgreSQL"):
        lines.append(f"PostgreSQL: {100 * statistics.median(writes['PostgreSQL']):.0f}% of the "
                     "writing calls wrote (from the table versions).")
    lines += ["Rounds (req/s, unchanged / writes): " + "; ".join(
        f"{name} " + ", ".join(f"{u['rps']:.0f} / {w['rps']:.0f}" for u, w in
                               zip(runs[(name, 'unchanged')], runs[(name, 'write')]))
        for name, _ in stores) + ".", ""]
    lines += [
        "## The incremental call: N services x 5 containers",
        "",
        "A fresh server per store and size, seeded with one call; then calls that add "
        "one container alternate with calls that remove it; the median of "
        f"{args.scale_calls} adding calls end to end (Python client over keep-alive).",
        "",
        "| store | services | seeding call | add one container: median (max) "
        "| server CPU per call | server peak RSS |",
        "|---|---|---|---|---|---|",
    ]
    for (name, nr), s in scale.items():
        lines.append(f"| {name} | {nr:,} | {s['seed_ms']:.0f} ms | {s['median']:.1f} ms "
                     f"({s['max']:.1f}) | {s['cpu_ms']:.1f} ms | {s['rss_mib']:.1f} MiB |")
    return "\n".join(lines) + "\n"


def main():
    args = parse_args()
    if not os.environ.get("LR_TEST_PG"):
        env = dict(os.environ)
        if not args.fast_commit:
            env["LR_TEST_PG_SERVER_OPTIONS"] = "-c fsync=on -c synchronous_commit=on"
        os.execve(LAUNCH, [LAUNCH, sys.executable, os.path.abspath(__file__)] + sys.argv[1:],
                  env)
    args.bin = os.path.join(args.build, "lambda-registry")
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is missing (scripts/deps.sh bench)")
    m = lrbench.machine()
    m["load_start"] = lrbench.loadavg()
    work = tempfile.mkdtemp(prefix="lr-bench-pg-")
    stores = [("SQLite", f"sqlite:{os.path.join(work, 'bench.db')}"),
              ("PostgreSQL", "postgres:" + os.environ["LR_TEST_PG"])]
    try:
        runs, writes = bench_wrk(args, work, stores)
        scale_stores = [("SQLite", f"sqlite:{os.path.join(work, 'scale.db')}"),
                        ("PostgreSQL", "postgres:" + os.environ["LR_TEST_PG"])]
        scale = bench_scale(args, work, scale_stores)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = report(args, stores, runs, writes, scale, m)
    print(text)
    with open(args.out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
