#!/usr/bin/env python3
"""The Lambda custom runtime against the Runtime API emulator: direct, REST
proxy (plain and base64 body) and HTTP API 2.0 events, invalid payloads in
each shape, store failures, init errors, and many invocations on one process.

Release build: runs the unpacked package's bootstrap with a clean environment
(no LD_LIBRARY_PATH). Sanitizer build: runs `$LR_BIN lambda` (same code)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lrtest import check, run_steps  # noqa: E402
from lambda_emulator import RuntimeAPI, http_event, rest_event, runtime_command  # noqa: E402

BIN = os.environ["LR_BIN"]
SRC = os.environ["LR_SOURCE_DIR"]
SANITIZED = os.environ.get("LR_SANITIZED") == "1"
DATA = open(os.path.join(SRC, "sample-data", "data.json"), "rb").read()
TMP = tempfile.mkdtemp(prefix="lr-lambda-")


CMD, PACKAGED = runtime_command(TMP)


def lambda_env(api, store, **extra):
    """Only what Lambda itself sets (env -i otherwise)."""
    env = {
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "lambda-registry",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_REGION": "eu-west-1",
        "LAMBDA_TASK_ROOT": os.path.dirname(CMD[0]),
        # tokens are t60's subject; these tests are about the events
        "LAMBDA_REGISTRY_AUTH": "off",
        "TZ": ":UTC",
        "LAMBDA_REGISTRY_STORE": store,
    }
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if SANITIZED and k in os.environ:
            env[k] = os.environ[k]
    env.update(extra)
    return env


class Runtime:
    def __init__(self, store, **extra):
        self.api = RuntimeAPI()
        self.err_path = os.path.join(TMP, "stderr-%d.log" % time.monotonic_ns())
        self.err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(CMD, env=lambda_env(self.api, store, **extra),
                                     stdin=subprocess.DEVNULL, stdout=self.err,
                                     stderr=self.err, cwd=TMP)

    def stop(self):
        """Take the Runtime API away; the runtime must exit on its own."""
        self.api.close()
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        self.err.close()
        log = open(self.err_path, errors="replace").read()
        check("Sanitizer" not in log, "sanitizer report:\n" + log[-3000:])
        check(not self.api.violations, "protocol violations: %s" % self.api.violations)
        return rc, log


def cli_config(payload):
    """What `generate` prints for the same payload on a fresh store."""
    db = os.path.join(TMP, "cli-%d.db" % time.monotonic_ns())
    return subprocess.run([BIN, "generate", "--store", "sqlite:" + db, "-"], input=payload,
                          capture_output=True, check=True).stdout.decode()


def proxy(ans):
    check(ans.kind == "response", "proxy answer posted as %s" % ans.kind)
    doc = ans.json()
    check(set(doc) >= {"statusCode", "headers", "body"}, "proxy shape: %s" % doc)
    check(doc.get("isBase64Encoded") is False, "isBase64Encoded false")
    return doc


def proxy_error(doc, code, field=None):
    check(doc["statusCode"] == code, "status %s, want %s: %s" % (doc["statusCode"], code, doc))
    check(doc["headers"].get("Content-Type") == "application/json", "error content type")
    try:
        err = json.loads(doc["body"])
    except ValueError:
        err = {}
    check(isinstance(err.get("error"), str) and err["error"], "error message: %s" % err)
    if field:
        check(err.get("field") == field, "field %r, want %r" % (err.get("field"), field))
    return err


def test_shapes():
    want = cli_config(DATA)
    rt = Runtime("sqlite:" + os.path.join(TMP, "shapes.db"), LAMBDA_REGISTRY_MAX_BODY="64K")
    api = rt.api
    try:
        # Direct invocation: the payload is the event; the config as a JSON string.
        ans = api.invoke(DATA)
        check(ans.kind == "response", "direct ok: %r" % ans)
        check(ans.json() == want, "direct answer is the CLI's config")

        bad = {"table": "x", "running": []}
        ans = api.invoke(bad)
        check(ans.kind == "error", "direct invalid posts to /error: %r" % ans)
        check(ans.headers.get("Lambda-Runtime-Function-Error-Type") == "invalid",
              "error type header: %s" % ans.headers)
        doc = ans.json()
        check(doc.get("errorType") == "invalid" and "table" in doc.get("errorMessage", ""),
              "direct error document: %s" % doc)
        ans = api.invoke(b"[1, 2")
        check(ans.kind == "error" and ans.json()["errorType"] == "invalid",
              "direct broken JSON: %r" % ans)

        # REST proxy, plain and base64 body, and with the stage in requestContext.
        for b64 in (False, True):
            doc = proxy(api.invoke(rest_event(DATA, base64=b64)))
            check(doc["statusCode"] == 200, "rest b64=%s status: %s" % (b64, doc))
            check(doc["headers"].get("Content-Type") == "text/plain; charset=utf-8",
                  "rest content type: %s" % doc["headers"])
            check(doc["body"] == want, "rest b64=%s body is the config" % b64)
        doc = proxy(api.invoke(rest_event(DATA, headers={"Accept": "application/json"})))
        res = json.loads(doc["body"])
        # The JSON answer routes through maps and carries them.
        check(doc["statusCode"] == 200 and res.get("table") == "astro" and
              "map_str(" in res.get("config", "") and
              sorted(res.get("files", {})) == ["hosts.map", "paths.map"] and
              len(res.get("services", [])) == 3,
              "rest Accept: application/json: %s" % doc["body"][:300])
        err = proxy_error(proxy(api.invoke(rest_event(json.dumps(bad)))), 400, "table")
        proxy_error(proxy(api.invoke(rest_event("{\"table\":"))), 400)
        proxy_error(proxy(api.invoke(rest_event("!!!not base64", base64=True))), 400)
        proxy_error(proxy(api.invoke(rest_event(None))), 400)
        doc = proxy(api.invoke(rest_event(DATA, method="GET")))
        proxy_error(doc, 405)
        check(doc["headers"].get("Allow") == "POST", "Allow header: %s" % doc["headers"])
        proxy_error(proxy(api.invoke(rest_event(DATA, path="/nope", resource="/nope"))), 404)
        doc = proxy(api.invoke(rest_event(None, method="GET", path="/healthz",
                                          resource="/healthz")))
        check(doc["statusCode"] == 200 and json.loads(doc["body"])["status"] == "ok",
              "healthz: %s" % doc)
        big = json.dumps({"table": "astro", "running": [], "pad": "x" * 70000})
        proxy_error(proxy(api.invoke(rest_event(big))), 413)
        proxy_error(proxy(api.invoke(rest_event(big, base64=True))), 413)
        broken = rest_event(DATA)
        broken["body"] = 12
        proxy_error(proxy(api.invoke(broken)), 400)
        # Issue 11 defect 10: a direct event obeys --max-body as proxy events do.
        ans = api.invoke(big)
        check(ans.kind == "error" and ans.json().get("errorType") == "too_large" and
              "larger than" in ans.json().get("errorMessage", ""),
              "direct event over --max-body: %r" % ans)
        check(ans.headers.get("Lambda-Runtime-Function-Error-Type") == "too_large",
              "too_large error type header: %s" % ans.headers)

        # Over Lambda's event cap: still answered, to the id read from the
        # headers of the transfer that was cut off.
        ans = api.invoke(b'{"pad":"' + b"x" * (9 << 20) + b'"}')
        check(ans.kind == "error" and ans.json().get("errorType") == "too_large" and
              "event is larger" in ans.json().get("errorMessage", ""),
              "event over the cap: %r" % ans)

        # The table route, through the resource API Gateway matched (a base
        # path mapping keeps its prefix in `path`).
        ev = rest_event(DATA, path="/registry/v1/tables/astro/generate",
                        resource="/v1/tables/{table}/generate")
        ev["pathParameters"] = {"table": "astro"}
        doc = proxy(api.invoke(ev))
        check(doc["statusCode"] == 200 and doc["body"] == want, "rest table route: %s" % doc)
        ev = rest_event(DATA, path="/v1/tables/other/generate",
                        resource="/v1/tables/{table}/generate")
        ev["pathParameters"] = {"table": "other"}
        proxy_error(proxy(api.invoke(ev)), 400, "table")

        # HTTP API 2.0: $default stage, a named stage in rawPath, base64, errors.
        for ev in (http_event(DATA), http_event(DATA, raw_path="/prod/generate", stage="prod"),
                   http_event(DATA, base64=True)):
            doc = proxy(api.invoke(ev))
            check(doc["statusCode"] == 200 and doc["body"] == want,
                  "http api %s: %s" % (ev["rawPath"], str(doc)[:200]))
        doc = proxy(api.invoke(http_event(DATA, headers={"Accept": "application/json"})))
        res = json.loads(doc["body"])
        check("map_str(" in res.get("config", "") and
              sorted(res.get("files", {})) == ["hosts.map", "paths.map"], "http api json answer")
        proxy_error(proxy(api.invoke(http_event(json.dumps(bad)))), 400, "table")
        proxy_error(proxy(api.invoke(http_event("{}"))), 400)
        proxy_error(proxy(api.invoke(http_event(DATA, method="PUT"))), 405)
        proxy_error(proxy(api.invoke(http_event(DATA, raw_path="/other/generate",
                                                stage="prod"))), 404)
        doc = proxy(api.invoke(http_event(DATA, raw_path="/prod/v1/tables/astro/generate",
                                          stage="prod")))
        check(doc["statusCode"] == 200 and doc["body"] == want,
              "http api table route under a stage: %s" % str(doc)[:200])
        proxy_error(proxy(api.invoke(http_event(big))), 413)

        # A deadline already passed: an error, and no store work.
        ans = api.invoke(DATA, deadline_ms=int(time.time() * 1000) - 1000)
        check(ans.kind == "error" and "deadline" in ans.json()["errorMessage"],
              "passed deadline: %r" % ans)
        # The trace header reaches the log line (and _X_AMZN_TRACE_ID).
        ans = api.invoke(DATA, trace="Root=1-abc-def;Sampled=0")
        check(ans.kind == "response", "traced invocation")
    finally:
        rc, log = rt.stop()
    check(rc == 3, "exit status when the Runtime API goes away: %s" % rc)
    check("trace=Root=1-abc-def;Sampled=0" in log, "trace id logged")
    check(log.count("lambda request_id=") == len(api.answers),
          "one log line per invocation (%d for %d)" % (log.count("lambda request_id="),
                                                      len(api.answers)))
    check(api.connections <= 2, "Runtime API connections kept alive: %d" % api.connections)
    check(api.resets <= 1, "connections dropped (only for the event over the cap): %d" %
          api.resets)


def test_relative_deadline():
    """Issue 11 defect 10: some local emulators send a relative deadline
    ("5000"); it is no deadline at all, and is logged once."""
    rt = Runtime("sqlite:" + os.path.join(TMP, "deadline.db"))
    api = rt.api
    try:
        for deadline in (5000, 5000, "soon"):
            ans = api.invoke(DATA, deadline_ms=deadline)
            check(ans.kind == "response", "deadline %r: %r" % (deadline, ans))
        doc = proxy(api.invoke(rest_event(DATA), deadline_ms=5000))
        check(doc.get("statusCode") == 200, "rest event with deadline 5000: %s" % str(doc)[:200])
        # A real deadline is still honoured after that.
        ans = api.invoke(DATA, deadline_ms=int(time.time() * 1000) - 1000)
        check(ans.kind == "error" and "deadline" in ans.json()["errorMessage"],
              "passed deadline after an ignored one: %r" % ans)
    finally:
        rc, log = rt.stop()
    check(rc == 3, "relative deadline: exit status %s" % rc)
    check(log.count("event=deadline_ignored") == 1,
          "deadline_ignored logged once: %d" % log.count("event=deadline_ignored"))
    check('event=deadline_ignored value="5000"' in log, "the ignored value is logged")


def test_many():
    n = 200 if SANITIZED else 400
    rt = Runtime("sqlite:" + os.path.join(TMP, "many.db"))
    api = rt.api
    t0 = time.monotonic()
    try:
        for i in range(n):
            running = [{"serviceName": "s%d" % (i % 7), "id": "c%d" % i, "ip": "10.0.%d.%d" %
                        (i // 250, i % 250 + 1)}]
            cand = [{"serviceName": "s%d" % (i % 7), "port": 8000 + i % 7,
                     "predicate": "s%d.example.com" % (i % 7),
                     "containers": running}]
            ev = {"table": "many", "running": running, "candidates": cand}
            kind = i % 3
            if kind == 0:
                ans = api.invoke(ev)
                ok = ans.kind == "response" and "server c%d " % i in ans.json()
            else:
                mk = rest_event if kind == 1 else http_event
                doc = proxy(api.invoke(mk(json.dumps(ev), base64=bool(i % 2))))
                ok = doc["statusCode"] == 200 and "server c%d " % i in doc["body"]
            if not ok:
                check(False, "invocation %d" % i)
                break
        elapsed = time.monotonic() - t0
    finally:
        rc, _ = rt.stop()
    check(rc == 3, "many: exit status %s" % rc)
    check(api.connections <= 2, "many: connections %d" % api.connections)
    check(len(set(a for a in api.answers)) == n, "many: %d answers" % len(api.answers))
    print("%d invocations on one process in %.2f s (%.2f ms each), %d connection(s)" %
          (n, elapsed, elapsed * 1000 / n, api.connections))


def test_store_failure():
    # A file where a directory should be: no store, even for root.
    blocker = os.path.join(TMP, "not-a-dir")
    open(blocker, "w").close()
    rt = Runtime("sqlite:" + os.path.join(blocker, "registry.db"))
    api = rt.api
    try:
        ans = api.invoke(DATA)
        check(ans.kind == "error" and ans.json().get("errorType") == "unavailable",
              "direct with a broken store: %r" % ans)
        err = proxy_error(proxy(api.invoke(rest_event(DATA))), 503)
        check("registry.db" in err["error"] or "not-a-dir" in err["error"],
              "503 names the store: %s" % err)
        proxy_error(proxy(api.invoke(http_event(DATA))), 503)
        doc = proxy(api.invoke(rest_event(None, method="GET", path="/healthz",
                                          resource="/healthz")))
        check(doc["statusCode"] == 503, "healthz with a broken store: %s" % doc)
        # Invalid payloads stay 400 only once the store is there; here the
        # store is checked first, as a 503 tells the client to retry later.
        check(not api.init_errors, "a store outage is no init error")
        # The store comes back: the same process recovers.
        os.unlink(blocker)
        os.mkdir(blocker)
        doc = proxy(api.invoke(rest_event(DATA)))
        check(doc["statusCode"] == 200, "recovers once the store is back: %s" % doc)
    finally:
        rc, _ = rt.stop()
    check(rc == 3, "store failure: exit status %s" % rc)


def test_init_errors():
    for store, extra, words in (("bogus:x", {}, "bogus"),
                                ("sqlite:" + os.path.join(TMP, "i.db"),
                                 {"LAMBDA_REGISTRY_MAX_BODY": "lots"}, "max-body"),
                                ("sqlite:" + os.path.join(TMP, "i.db"),
                                 {"LAMBDA_REGISTRY_FRONTEND_BIND": "nope"}, "frontend-bind")):
        rt = Runtime(store, **extra)
        try:
            headers, body = rt.api.wait_init_error()
            doc = json.loads(body)
            check(doc.get("errorType") == "usage" and words in doc.get("errorMessage", ""),
                  "init error for %s: %s" % (words, doc))
            check(headers.get("Lambda-Runtime-Function-Error-Type") == "usage",
                  "init error type header")
            rc = rt.proc.wait(timeout=20)
            check(rc == 2, "init error exit status %s" % rc)
            check(rt.api.nexts == 0, "no invocation fetched after an init error")
        finally:
            rt.stop()


def test_entry_points():
    """`lambda-registry` without arguments on Lambda runs the loop too."""
    api = RuntimeAPI()
    env = lambda_env(api, "sqlite:" + os.path.join(TMP, "entry.db"))
    proc = subprocess.Popen([BIN], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        doc = proxy(api.invoke(rest_event(None, method="GET", path="/healthz",
                                          resource="/healthz")))
        check(doc["statusCode"] == 200, "no-argument start on Lambda: %s" % doc)
    finally:
        api.close()
        check(proc.wait(timeout=20) == 3, "no-argument start exits when the API goes")
    # Off Lambda, no arguments is still a usage error.
    env.pop("AWS_LAMBDA_RUNTIME_API")
    out = subprocess.run([BIN], env=env, capture_output=True, text=True)
    check(out.returncode == 2 and "usage" in out.stderr, "no arguments off Lambda: usage")


def test_cold_start():
    """Process start to first answer, for an event that needs no store round trip."""
    runs = 5 if SANITIZED else 15
    times, inner, init = [], [], []
    for i in range(runs):
        api = RuntimeAPI()
        rid = api.submit(rest_event(None, method="GET", path="/nope", resource="/nope"))
        t0 = time.monotonic()
        proc = subprocess.Popen(CMD, env=lambda_env(api, "sqlite:" + os.path.join(
            TMP, "cold-%d.db" % i)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            ans = api.wait(rid)
            times.append((ans.received - t0) * 1000)
            check(ans.json()["statusCode"] == 404, "cold start answer")
        finally:
            api.close()
            log = proc.communicate(timeout=20)[1].decode(errors="replace")
        for word in log.split():
            if word.startswith("cold_start_us="):
                inner.append(int(word.split("=")[1]) / 1000)
            if word.startswith("init_us="):
                init.append(int(word.split("=")[1]) / 1000)
    times.sort()
    inner.sort()
    init.sort()
    print("cold start (spawn to first answer, %d runs): median %.1f ms, min %.1f ms, "
          "max %.1f ms" % (runs, times[len(times) // 2], times[0], times[-1]))
    check(len(inner) == runs, "cold_start_us logged by every run")
    if inner:
        print("cold start inside the process (runtime entry to first answer posted): "
              "median %.2f ms, of which init (libcurl, store open) %.2f ms" % (
                  inner[len(inner) // 2], init[len(init) // 2] if init else -1))
    # A figure, not a timed test (9 ms median on an idle machine; see the
    # figures in docs/aws.md): only a start that hangs fails here.
    check(times[len(times) // 2] < 10000, "cold start median under 10 s (no hang)")


def main():
    print("runtime:", " ".join(CMD), "(packaged, clean environment)" if PACKAGED else "")
    run_steps((test_shapes, test_relative_deadline, test_many, test_store_failure,
               test_init_errors, test_entry_points, test_cold_start),
              cleanup=lambda: shutil.rmtree(TMP, ignore_errors=True))


if __name__ == "__main__":
    main()
