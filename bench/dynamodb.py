#!/usr/bin/env python3
"""POST /generate throughput with the DynamoDB store (a local dynalite) and
with SQLite, side by side in one run on this machine, and the number of
DynamoDB requests per call for unchanged and for changed state.

Usage: bench/dynamodb.py [--seconds N] [--connections N] [--out FILE]
Needs wrk and a release build (make build); starts its own dynalite through
tests/dynamodb/with-dynalite.sh. Prints a Markdown table (and writes it to
--out when given)."""
import argparse
import json
import os
import re
import shutil
import socket
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--out")
    ap.add_argument("--bin", default=os.path.join(ROOT, "build", "lambda-registry"))
    args = ap.parse_args()
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
