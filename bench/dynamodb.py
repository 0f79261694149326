#!/usr/bin/env python3
"""POST /generate throughput with the DynamoDB store (a local dynalite) and
with SQLite, side by side in one run on this machine, and the number of
DynamoDB requests per call for unchanged and for changed state.

Usage: bench/dynamodb.py [--seconds N] [--connections N] [--out FILE]
Needs wrk and a release build (make build); starts its own dynalite through
tests/dynamodb/with-dynalite.sh. Prints a Markdown table (and writes it to
--out when given).

       bench/dynamodb.py --scale 50,1000,10000 [--before BIN] [--calls N] [--out FILE]
Per call at each table size, through the counting stand-in
(tests/dynamodb/standin.py) in front of dynalite: requests by operation,
read and write units (as DynamoDB charges them, computed by dynalite from
item sizes: 4 KB per strongly consistent read unit, 1 KB per write unit,
twice for a transaction's writes) and latency, for a cold cache, unchanged
calls and calls that change one container; the server's peak RSS. With
--before (a build of an earlier commit), the same for it, in the same run
and on the same tables. The rows "after, transactions" go through the
stand-in's TransactWriteItems (as on real DynamoDB); the other rows see
dynalite's own answer to it (UnknownOperationException)."""
import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "tests", "dynamodb", "with-dynalite.sh")
if not os.environ.get("DYNALITE_PID"):
    os.execv(LAUNCH, [LAUNCH, sys.executable, os.path.abspath(__file__), *sys.argv[1:]])

WRK_SCRIPT = """
wrk.method = "POST"
local a = io.open(os.getenv("LR_BODY_A")):read("*a")
local b = io.open(os.getenv("LR_BODY_B")):read("*a")
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/generate", nil, (n % 2 == 0) and a or b)
end
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(binary, store, log, trace):
    port = free_port()
    env = dict(os.environ)
    if trace:
        env["LAMBDA_REGISTRY_STORE_TRACE"] = "1"
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}",
                             "--store", store], env=env, stdout=subprocess.DEVNULL,
                            stderr=log)
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"serve --store {store} did not start")


def post(port, body):
    out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                          "--data-binary", f"@{body}", f"http://127.0.0.1:{port}/generate"],
                         capture_output=True, text=True, check=True)
    if out.stdout != "200":
        raise SystemExit(f"POST {body}: HTTP {out.stdout}")


def wrk(port, body_a, body_b, seconds, connections, script):
    env = dict(os.environ, LR_BODY_A=body_a, LR_BODY_B=body_b)
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", script,
                          f"http://127.0.0.1:{port}/generate"], env=env,
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = re.search(r"Latency\s+(\S+)", out).group(1)
    return rps, int(bad.group(1)) if bad else 0, lat


def per_call(binary, store, work, a, b, calls):
    """Average DynamoDB requests of `calls` calls alternating a and b."""
    log = open(os.path.join(work, "trace.log"), "w+")
    proc, port = start(binary, store, log, trace=True)
    try:
        post(port, a)  # creates the table and the first state
        log.seek(0, 2)
        mark = log.tell()
        for i in range(calls):
            post(port, a if i % 2 else b)
    finally:
        proc.terminate()
        proc.wait()
    log.seek(mark)
    counts = [int(m) for m in re.findall(r"event=dynamodb_call end=commit \S+ requests=(\d+)",
                                         log.read())]
    return sum(counts) / len(counts)


def scale_payload(table, nr, per=5, extra=False, with_candidates=True):
    """`nr` services x `per` containers (as bench/run.py's): every 4th in
    path mode, every other one sticky. With `extra`, service 0 has one more
    container, announced as a candidate; without `with_candidates`, only
    `running` (unchanged once seeded)."""
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
        if with_candidates and (not extra or i == 0):
            candidates.append(cand)
    return json.dumps({"table": table, "running": running, "candidates": candidates},
                      separators=(",", ":")).encode()


def vm_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Measured:
    """One server behind a counting stand-in; each call's counts and time."""

    def __init__(self, binary, prefix, work, transactions, direct=False):
        import standin
        self.tx = standin.StandIn(os.environ["AWS_ENDPOINT_URL_DYNAMODB"], transactions)
        port = free_port()
        env = dict(os.environ, LAMBDA_REGISTRY_STORE_TIMEOUT="600")
        if not direct:
            env["AWS_ENDPOINT_URL_DYNAMODB"] = self.tx.url
        self.log = open(os.path.join(work, "scale.log"), "a")
        self.proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}",
                                      "--store", f"dynamodb:{prefix}", "--max-body", str(64 << 20)],
                                     env=env,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        for _ in range(500):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        import http.client
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def call(self, body):
        self.tx.reset()
        t0 = time.monotonic()
        self.conn.request("POST", "/generate", body)
        res = self.conn.getresponse()
        res.read()
        ms = (time.monotonic() - t0) * 1000
        if res.status != 200:
            raise SystemExit(f"bench: HTTP {res.status}")
        requests, ru, wu = self.tx.counts()
        return {"requests": requests, "ru": ru, "wu": wu, "ms": ms}

    def stop(self):
        rss = vm_kib(self.proc.pid, "VmHWM")
        self.conn.close()
        self.proc.terminate()
        self.proc.wait()
        self.tx.shutdown()
        return rss


def average(calls):
    ops = {}
    for c in calls:
        for op, n in c["requests"].items():
            ops[op] = ops.get(op, 0) + n / len(calls)
    return {"requests": ops, "ru": sum(c["ru"] for c in calls) / len(calls),
            "wu": sum(c["wu"] for c in calls) / len(calls),
            "ms": statistics.median(c["ms"] for c in calls)}


def fmt(m):
    ops = " + ".join(f"{n:g} {op}" for op, n in sorted(m["requests"].items()))
    return f"{ops} | {m['ru']:g} | {m['wu']:g} | {m['ms']:.0f}"


def bench_scale(args):
    sys.path.insert(0, os.path.join(ROOT, "tests", "dynamodb"))
    work = tempfile.mkdtemp(prefix="lr-bench-ddbscale-")
    builds = []
    if args.before:
        builds.append(("before", args.before, False))
    builds += [("after", args.bin, False), ("after, transactions", args.bin, True)]
    lines = ["| services | build | call | requests | read units | write units | "
             "latency ms (median) |", "|---|---|---|---|---|---|---|"]
    rss_lines = []
    for nr in [int(x) for x in args.scale.split(",")]:
        table = "scale"
        prefix = f"b{nr}-"
        seed = scale_payload(table, nr)
        add = scale_payload(table, nr, extra=True)
        same = scale_payload(table, nr, with_candidates=False)
        # Seed with the first build, straight to dynalite (not counted).
        seeder = Measured(builds[0][1], prefix, work, False, direct=True)
        seeder.call(seed)
        seeder.stop()
        for label, binary, transactions in builds:
            srv = Measured(binary, prefix, work, transactions)
            cold = srv.call(same)
            # Not counted: the first write (it makes the head when the table
            # has none yet, and finds out whether TransactWriteItems exists).
            srv.call(add)
            srv.call(same)
            changed = []
            for i in range(args.calls):
                changed.append(srv.call(add))
                changed.append(srv.call(same))
            unchanged = [srv.call(same) for _ in range(args.calls)]
            rss = srv.stop()
            lines.append(f"| {nr} | {label} | cold cache | {fmt(cold)} |")
            lines.append(f"| {nr} | {label} | unchanged | {fmt(average(unchanged))} |")
            lines.append(f"| {nr} | {label} | one container changed | "
                         f"{fmt(average(changed))} |")
            rss_lines.append(f"- {nr} services, {label}: server peak RSS (VmHWM) "
                             f"{rss / 1024:.1f} MiB")
            print(lines[-3], lines[-2], lines[-1], rss_lines[-1], sep="\n", flush=True)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    text = "\n".join([
        f"Per call, {args.calls} calls of each kind (changed: one container added, then "
        "removed again, both counted, after one such pair not counted: the first write "
        "makes the head), 5 containers per service, dynalite and the "
        f"stand-in on the same machine ({os.cpu_count()} CPUs, {cpu}).", ""] + lines +
        [""] + rss_lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--out")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "lambda-registry"))
    ap.add_argument("--scale", help="table sizes, e.g. 1000,10000: the per-call figures")
    ap.add_argument("--before", help="an earlier build to measure beside --bin")
    ap.add_argument("--calls", type=int, default=5)
    args = ap.parse_args()
    if args.scale:
        return bench_scale(args)
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is missing (scripts/deps.sh bench)")

    work = tempfile.mkdtemp(prefix="lr-bench-ddb-")
    script = os.path.join(work, "alternate.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    # The sample payload; and a variant where one container moved, so that
    # alternating the two changes one service on every call.
    same = os.path.join(ROOT, "sample-data", "data.json")
    doc = json.load(open(same))
    doc["running"][0]["ip"] = "192.168.1.250"
    moved = os.path.join(work, "moved.json")
    json.dump(doc, open(moved, "w"))

    stores = [("SQLite", f"sqlite:{work}/bench.db"), ("DynamoDB (dynalite)", "dynamodb:bench-")]
    rows = []
    for label, store in stores:
        log = open(os.path.join(work, "serve.log"), "a")
        proc, port = start(args.bin, store, log, trace=False)
        try:
            post(port, same)
            unchanged = wrk(port, same, same, args.seconds, args.connections, script)
            changed = wrk(port, same, moved, args.seconds, args.connections, script)
        finally:
            proc.terminate()
            proc.wait()
        rows.append((label, unchanged, changed))
    req_same = per_call(args.bin, "dynamodb:count-", work, same, same, 20)
    req_changed = per_call(args.bin, "dynamodb:count-", work, same, moved, 20)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    lines = [
        f"POST /generate, sample-data/data.json (2 services), wrk -t2 -c{args.connections} "
        f"-d{args.seconds}s, {os.cpu_count()} CPUs ({cpu}); dynalite runs on the same "
        "machine (one node process).",
        "",
        "| store | unchanged state: req/s (latency avg) | changed state: req/s (latency avg) "
        "| non-2xx |",
        "|---|---|---|---|",
    ]
    for label, (r1, bad1, l1), (r2, bad2, l2) in rows:
        lines.append(f"| {label} | {r1:.0f} ({l1}) | {r2:.0f} ({l2}) | {bad1 + bad2} |")
    lines += [
        "",
        "DynamoDB requests per call (trace lines, 20 calls each): "
        f"unchanged {req_same:.1f} (one Scan), changed {req_changed:.1f} "
        "(one Scan + one conditional PutItem for the one changed service).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    shutil.rmtree(work, ignore_errors=True)


main()
