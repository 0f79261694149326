#!/usr/bin/env python3
"""The Lambda runtime on its default store, DynamoDB, as deployed: the
packaged bootstrap with the variables Lambda sets (region, temporary
credentials with a session token) against a private dynalite. Direct, REST
and HTTP API events, two function instances on one table, the cold start
with this store, and an unreachable endpoint (503 in bounded time).

Re-runs itself under tests/dynamodb/with-dynalite.sh (the DynamoDB store's
test launcher)."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import shutil

SRC = os.environ["LR_SOURCE_DIR"]
LAUNCH = os.path.join(SRC, "tests", "dynamodb", "with-dynalite.sh")
if not os.environ.get("DYNALITE_PID"):
    os.execv(LAUNCH, [LAUNCH, sys.executable, os.path.abspath(__file__)])

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lrtest import check, run_steps  # noqa: E402
from lambda_emulator import RuntimeAPI, http_event, rest_event, runtime_command  # noqa: E402

BIN = os.environ["LR_BIN"]
SANITIZED = os.environ.get("LR_SANITIZED") == "1"
DATA = open(os.path.join(SRC, "sample-data", "data.json"), "rb").read()
TMP = tempfile.mkdtemp(prefix="lr-lambda-ddb-")
CMD, PACKAGED = runtime_command(TMP)
PREFIX = "lrlambda%d-" % os.getpid()


def lambda_env(api, **extra):
    """What Lambda sets for a function (the endpoint only for dynalite)."""
    env = {
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "lambda-registry",
        "AWS_REGION": os.environ["AWS_REGION"],
        "AWS_DEFAULT_REGION": os.environ["AWS_REGION"],
        "AWS_ACCESS_KEY_ID": os.environ["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": os.environ["AWS_SECRET_ACCESS_KEY"],
        "AWS_SESSION_TOKEN": "FwoGZXIvYXdzEXAMPLEsessiontoken",
        "AWS_ENDPOINT_URL_DYNAMODB": os.environ["AWS_ENDPOINT_URL_DYNAMODB"],
        "LAMBDA_TASK_ROOT": os.path.dirname(CMD[0]),
        # tokens are t60's subject; these tests are about the events
        "LAMBDA_REGISTRY_AUTH": "off",
        "LAMBDA_REGISTRY_STORE": "dynamodb:" + PREFIX,
    }
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if SANITIZED and k in os.environ:
            env[k] = os.environ[k]
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


class Runtime:
    def __init__(self, **extra):
        self.api = RuntimeAPI()
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(CMD, env=lambda_env(self.api, **extra), cwd=TMP,
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def stop(self):
        self.api.close()
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        self.log.seek(0)
        text = self.log.read().decode(errors="replace")
        check("Sanitizer" not in text, "sanitizer report:\n" + text[-3000:])
        check(not self.api.violations, "protocol violations: %s" % self.api.violations)
        check(rc == 3, "exit status when the Runtime API goes away: %s" % rc)
        return text


def cli_config(payload):
    db = os.path.join(TMP, "cli-%d.db" % time.monotonic_ns())
    return subprocess.run([BIN, "generate", "--store", "sqlite:" + db, "-"], input=payload,
                          capture_output=True, check=True).stdout.decode()


def body_of(ans, code=200):
    check(ans.kind == "response", "proxy answer: %r" % ans)
    doc = ans.json()
    check(doc.get("statusCode") == code, "status %s, want %s: %s" % (
        doc.get("statusCode"), code, str(doc)[:300]))
    return doc.get("body", "")


def test_shapes():
    want = cli_config(DATA)
    rt = Runtime()
    try:
        ans = rt.api.invoke(DATA, timeout=30)
        check(ans.kind == "response" and ans.json() == want,
              "direct call on DynamoDB gives the CLI's config: %r" % ans)
        check(body_of(rt.api.invoke(rest_event(DATA, base64=True))) == want, "rest base64")
        check(body_of(rt.api.invoke(http_event(DATA))) == want, "http api")
        res = json.loads(body_of(rt.api.invoke(rest_event(
            DATA, headers={"Accept": "application/json"}))))
        check(len(res.get("services", [])) == 3, "services stored: %s" % res)
        health = json.loads(body_of(rt.api.invoke(rest_event(
            None, method="GET", path="/healthz", resource="/healthz"))))
        check(health.get("status") == "ok", "healthz: %s" % health)
        ans = rt.api.invoke({"table": "astro", "running": "no"})
        check(ans.kind == "error" and ans.json().get("errorType") == "invalid",
              "invalid direct payload: %r" % ans)
    finally:
        rt.stop()
    # The store survives the process: what it stored is in DynamoDB.
    dump = subprocess.run([BIN, "dump", "--store", "dynamodb:" + PREFIX, "astro"],
                          capture_output=True, text=True)
    check(dump.returncode == 0 and "multiservice" in dump.stdout, "stored in DynamoDB: %s" %
          (dump.stdout + dump.stderr)[:300])


def test_two_instances():
    """Two function instances (processes) take turns on one table."""
    a, b = Runtime(), Runtime()
    n = 12
    running = []
    try:
        for i in range(n):
            c = {"serviceName": "svc%02d" % i, "id": "k%02d" % i, "ip": "10.1.0.%d" % (i + 1)}
            running.append(c)
            cand = [{"serviceName": c["serviceName"], "port": 8080,
                     "predicate": "svc%02d.example.com" % i,
                     "containers": [{"id": c["id"], "ip": c["ip"]}]}]
            payload = json.dumps({"table": "shared", "running": running, "candidates": cand})
            rt = a if i % 2 == 0 else b
            body = body_of(rt.api.invoke(rest_event(payload), timeout=30))
            missing = [s["serviceName"] for s in running
                       if "backend %s\n" % s["serviceName"] not in body]
            check(not missing, "call %d on instance %s misses %s" % (i, "ab"[i % 2], missing))
    finally:
        a.stop()
        b.stop()


def test_cold_start():
    runs = 3 if SANITIZED else 10
    times = []
    for i in range(runs):
        api = RuntimeAPI()
        rid = api.submit(rest_event(None, method="GET", path="/nope", resource="/nope"))
        t0 = time.monotonic()
        proc = subprocess.Popen(CMD, env=lambda_env(api), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            ans = api.wait(rid, timeout=30)
            times.append((ans.received - t0) * 1000)
        finally:
            api.close()
            proc.wait(timeout=30)
    times.sort()
    print("cold start with the DynamoDB store (spawn to first answer, no store round "
          "trip, %d runs): median %.1f ms, max %.1f ms" % (runs, times[len(times) // 2],
                                                            times[-1]))


def test_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends
    rt = Runtime(AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:%d" % port)
    try:
        t0 = time.monotonic()
        doc = rt.api.invoke(rest_event(DATA), timeout=60).json()
        took = time.monotonic() - t0
        check(doc.get("statusCode") == 503 and "error" in json.loads(doc.get("body", "{}")),
              "unreachable DynamoDB: %s" % str(doc)[:300])
        check(took < 15, "503 within the store's time budget (%.1f s)" % took)
        print("unreachable DynamoDB answered 503 in %.2f s" % took)
        ans = rt.api.invoke(DATA, timeout=60)
        check(ans.kind == "error" and ans.json().get("errorType") == "unavailable",
              "direct call, unreachable DynamoDB: %r" % ans)
    finally:
        rt.stop()


def main():
    print("runtime:", " ".join(CMD), "(packaged)" if PACKAGED else "")
    run_steps((test_shapes, test_two_instances, test_cold_start, test_unreachable),
              cleanup=lambda: shutil.rmtree(TMP, ignore_errors=True))


if __name__ == "__main__":
    main()
