#!/usr/bin/env python3
"""The DynamoDB store end to end: `serve --store dynamodb:PREFIX` against a
private dynalite, items checked with the AWS SDK for JavaScript, first-version
items read back, two servers on one table, an unreachable endpoint.

Re-runs itself under tests/dynamodb/with-dynalite.sh, which starts dynalite
and sets AWS_ENDPOINT_URL_DYNAMODB and the credentials."""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

SRC = os.environ.get("LR_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = os.path.join(SRC, "tests", "dynamodb", "with-dynalite.sh")
SDK = os.path.join(SRC, "tests", "dynamodb", "sdk.js")
if not os.environ.get("DYNALITE_PID"):
    os.execv(LAUNCH, [LAUNCH, sys.executable, os.path.abspath(__file__)])

BIN = os.environ["LR_BIN"]
SANITIZED = os.environ.get("LR_SANITIZED") == "1"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
results = {"passed": 0, "failed": 0}
figures = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One `lambda-registry serve` with the DynamoDB store and its log."""

    def __init__(self, prefix, **env):
        self.port = free_port()
        self.log = tempfile.TemporaryFile()
        full = dict(os.environ, LAMBDA_REGISTRY_STORE_TRACE="1")
        full.update(env)
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--store", f"dynamodb:{prefix}", "--threads", "4"],
            env=full, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("serve did not start:\n" + self.text())
                time.sleep(0.02)

    def request(self, method, path, body=None, timeout=30):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        start = time.monotonic()
        try:
            conn.request(method, path, body=body)
            res = conn.getresponse()
            data = res.read().decode()
            return res.status, data, time.monotonic() - start
        finally:
            conn.close()

    def post(self, payload):
        return self.request("POST", "/generate", json.dumps(payload).encode())

    def text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def calls(self):
        """(end, requests, writes) of every store call, from the trace lines."""
        return [(m[0], int(m[1]), int(m[2])) for m in re.findall(
            r"event=dynamodb_call end=(\w+) table=\S+ requests=(\d+) writes=(\d+)",
            self.text())]

    def stop(self):
        """Stop it; a clean exit also means no leak under the sanitizers."""
        self.proc.terminate()
        rc = self.proc.wait(10)
        assert rc == 0, f"serve exited with {rc}:\n" + self.text()[-3000:]


def sdk(*args):
    env = dict(os.environ, NODE_NO_WARNINGS="1")
    out = subprocess.run(["node", SDK, *args], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, f"sdk.js {args[0]}: {out.stderr}"
    return json.loads(out.stdout) if args[0] == "scan" else None


def payload(table, running, candidates=()):
    return {"table": table,
            "running": [{"serviceName": s, "id": i, "ip": ip} for s, i, ip in running],
            "candidates": list(candidates)}


def cand(name, predicate, containers, port=80, mode="host", cookie=None):
    c = {"serviceName": name, "port": port, "configMode": mode, "predicate": predicate,
         "containers": [{"id": i, "ip": ip} for i, ip in containers]}
    if cookie:
        c["cookie"] = cookie
    return c


def check(name, fn):
    try:
        fn()
        results["passed"] += 1
        print(f"ok {name}")
    except Exception as e:  # report every failure, then fail the run
        results["failed"] += 1
        print(f"FAILED {name}: {type(e).__name__}: {e}")


def test_item_layout():
    srv = Server("lay-")
    try:
        body = payload("astro", [("app1", "c1", "10.0.0.1"), ("app2", "c2", "10.0.0.2")],
                       [cand("app1", "First.Example.com", [("c1", "10.0.0.1")],
                             port="8080", cookie="JSESSIONID"),
                        cand("app2", "api", [("c2", "10.0.0.2")], port=9000, mode="path")])
        st, text, _ = srv.post(body)
        assert st == 200, text
        assert "server c1 10.0.0.1:8080 check cookie c1" in text, text
        items = sdk("scan", "lay-astro")
        assert [i["serviceName"]["S"] for i in items] == ["app1", "app2"], items
        a, b = items
        assert set(a) == {"serviceName", "configMode", "port", "predicate", "cookie",
                          "containers", "createdAt", "updatedAt", "version"}, a
        assert set(b) == set(a) - {"cookie"}, b
        assert a["configMode"] == {"S": "host"} and b["configMode"] == {"S": "path"}
        assert a["port"] == {"N": "8080"} and b["port"] == {"N": "9000"}
        assert a["predicate"] == {"S": "first.example.com"}, a["predicate"]
        assert a["cookie"] == {"S": "JSESSIONID"}
        assert a["containers"] == {"L": [{"M": {"id": {"S": "c1"}, "ip": {"S": "10.0.0.1"}}}]}
        for item in items:
            assert ISO.match(item["createdAt"]["S"]) and ISO.match(item["updatedAt"]["S"]), item
            assert item["version"] == {"N": "1"}, item
        # The same payload again changes nothing: one Scan, no write.
        st, text2, _ = srv.post(body)
        assert st == 200 and text2 == text
        assert srv.calls()[-1] == ("commit", 1, 0), srv.calls()
        assert [i["version"] for i in sdk("scan", "lay-astro")] == [{"N": "1"}] * 2
        # One container more: one Scan and one conditional PutItem.
        body["running"].append({"serviceName": "app2", "id": "c3", "ip": "10.0.0.3"})
        st, text3, _ = srv.post(body)
        assert st == 200 and "server c3 10.0.0.3:9000 check" in text3, text3
        assert srv.calls()[-1] == ("commit", 2, 1), srv.calls()
        items = sdk("scan", "lay-astro")
        assert items[1]["version"] == {"N": "2"} and items[0]["version"] == {"N": "1"}
        # A service whose containers all stopped: one Scan, one DeleteItem.
        body = payload("astro", [("app1", "c1", "10.0.0.1")])
        st, text4, _ = srv.post(body)
        assert st == 200 and "app2" not in text4, text4
        assert srv.calls()[-1] == ("commit", 2, 1), srv.calls()
        assert [i["serviceName"]["S"] for i in sdk("scan", "lay-astro")] == ["app1"]
        figures.append("requests per call: unchanged 1 (Scan); one service changed 2 "
                       "(Scan + PutItem); one removed 2 (Scan + DeleteItem)")
    finally:
        srv.stop()


def test_first_version_items():
    legacy = {"serviceName": {"S": "legacy"}, "port": {"S": "8080"},
              "configMode": {"S": "host"}, "predicate": {"S": "Legacy.Example.com"},
              "cookie": {"S": "SID"},
              "containers": {"L": [{"M": {"id": {"S": "old1"}, "ip": {"S": "10.9.0.1"}}}]},
              "createdAt": {"S": "2021-03-04T05:06:07.890Z"},
              "updatedAt": {"S": "2021-03-04T05:06:07.890Z"}}
    nomode = {"serviceName": {"S": "nomode"}, "port": {"N": "81"},
              "predicate": {"S": "nomode.example.com"},
              "containers": {"L": [{"M": {"id": {"S": "nm1"}, "ip": {"S": "10.9.0.2"}}}]},
              "createdAt": {"S": "2021-03-04T05:06:07.890Z"}}
    broken = {"serviceName": {"S": "broken"}, "port": {"S": "http"},
              "configMode": {"S": "host"}, "predicate": {"S": "b.example.com\n  bind :1"},
              "containers": {"L": []}}
    for item in (legacy, nomode, broken):
        sdk("put", "v1-astro", json.dumps(item))
    srv = Server("v1-")
    try:
        running = [("legacy", "old1", "10.9.0.1"), ("nomode", "nm1", "10.9.0.2"),
                   ("broken", "bk1", "10.9.0.3")]
        st, text, _ = srv.post(payload("astro", running))
        assert st == 200, text
        assert "-i legacy.example.com" in text, text
        assert "server old1 10.9.0.1:8080 check cookie old1" in text, text
        assert "server nm1 10.9.0.2:81 check" in text, text
        assert "broken" not in text and "bind :1" not in text, text
        assert "event=dynamodb_item_skipped table=v1-astro service=\"broken\"" in srv.text()
        # Read-only call: the first-version items stay as they were.
        assert srv.calls()[-1] == ("commit", 1, 0), srv.calls()
        items = {i["serviceName"]["S"]: i for i in sdk("scan", "v1-astro")}
        assert items["legacy"] == legacy, items["legacy"]
        # A change rewrites the item in the new layout, keeping createdAt; a
        # candidate replaces the damaged item.
        running.append(("legacy", "new2", "10.9.0.4"))
        st, text, _ = srv.post(payload("astro", running, [
            cand("broken", "b.example.com", [("bk1", "10.9.0.3")], port=8000)]))
        assert st == 200, text
        assert "server new2 10.9.0.4:8080 check cookie new2" in text, text
        assert "server bk1 10.9.0.3:8000 check" in text, text
        items = {i["serviceName"]["S"]: i for i in sdk("scan", "v1-astro")}
        assert items["legacy"]["port"] == {"N": "8080"}, items["legacy"]
        assert items["legacy"]["version"] == {"N": "1"}
        assert items["legacy"]["createdAt"] == {"S": "2021-03-04T05:06:07.890Z"}
        assert items["legacy"]["predicate"] == {"S": "legacy.example.com"}
        assert items["broken"]["port"] == {"N": "8000"} and items["broken"]["version"] == {"N": "1"}
        assert "version" not in items["nomode"], items["nomode"]
    finally:
        srv.stop()


def test_pagination():
    srv = Server("pg-", LAMBDA_REGISTRY_STORE_SCAN_LIMIT="2")
    try:
        names = [f"svc{i}" for i in range(7)]
        running = [(n, f"{n}-c", f"10.2.0.{i + 1}") for i, n in enumerate(names)]
        st, text, _ = srv.post(payload("astro", running, [
            cand(n, f"{n}.example.com", [(f"{n}-c", f"10.2.0.{i + 1}")])
            for i, n in enumerate(names)]))
        assert st == 200, text
        st, text2, _ = srv.post(payload("astro", running))
        assert st == 200 and text2 == text, text2
        assert all(f"backend {n}" in text2 for n in names), text2
        end, requests, writes = srv.calls()[-1]
        assert end == "commit" and requests >= 4 and writes == 0, srv.calls()
    finally:
        srv.stop()


def test_two_servers_concurrent():
    a, b = Server("cc-"), Server("cc-")
    try:
        n = 24 if not SANITIZED else 12
        running = [(f"svc{i:02d}", f"u{i:02d}", f"10.3.0.{i + 1}") for i in range(n)]
        shared = [("shared", f"s{i:02d}", f"10.4.0.{i + 1}") for i in range(n)]
        statuses, lock = [], threading.Lock()

        def post(i, body):
            st, text, _ = (a if i % 2 else b).post(body)
            with lock:
                statuses.append((st, text))

        def run(bodies):
            threads = [threading.Thread(target=post, args=(i, body))
                       for i, body in enumerate(bodies)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        # Each POST adds its own service; both servers write the one table.
        run([payload("astro", running, [cand(f"svc{i:02d}", f"s{i}.example.com",
                                             [running[i][1:]])]) for i in range(n)])
        assert all(st == 200 for st, _ in statuses), [t for s, t in statuses if s != 200]
        names = [i["serviceName"]["S"] for i in sdk("scan", "cc-astro")]
        assert names == [f"svc{i:02d}" for i in range(n)], names
        # All POSTs race to create the same service: conditional writes
        # conflict, the losers reload and find nothing left to write.
        statuses.clear()
        run([payload("astro", running + shared,
                     [cand("shared", "shared.example.com", [shared[i][1:]])])
             for i in range(n)])
        assert all(st == 200 for st, _ in statuses), [t for s, t in statuses if s != 200]
        assert len({t for _, t in statuses}) == 1, "answers differ"
        items = {i["serviceName"]["S"]: i for i in sdk("scan", "cc-astro")}
        assert len(items) == n + 1, sorted(items)
        assert len(items["shared"]["containers"]["L"]) == n
        assert items["shared"]["version"] == {"N": "1"}, items["shared"]
        conflicts = sum(1 for s in (a, b) for c in s.calls() if c[0] == "rollback")
        figures.append(f"two servers, {n} concurrent POSTs racing on one new service: "
                       f"{conflicts} conditional-write conflicts, retried, all answers equal")
    finally:
        a.stop()
        b.stop()


def test_unreachable():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}"
    # A peer that accepts connections and never answers.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    mute = f"http://127.0.0.1:{silent.getsockname()[1]}"
    body = payload("astro", [("app1", "c1", "10.0.0.1")],
                   [cand("app1", "a.example.com", [("c1", "10.0.0.1")])])
    try:
        srv = Server("un-", AWS_ENDPOINT_URL_DYNAMODB=refused)
        try:
            st, text, took = srv.post(body)
            assert st == 503, (st, text)
            err = json.loads(text)["error"]
            assert f"dynamodb unreachable at {refused}: connection refused" in err, err
            assert took < 5, took
            st, text, _ = srv.request("GET", "/healthz")
            assert st == 503 and "connection refused" in text, text
            figures.append(f"connection refused: 503 after {took * 1000:.0f} ms")
        finally:
            srv.stop()
        srv = Server("un-", AWS_ENDPOINT_URL_DYNAMODB=mute,
                     LAMBDA_REGISTRY_STORE_TIMEOUT="1")
        try:
            st, text, took = srv.post(body)
            assert st == 503, (st, text)
            assert "no answer within" in json.loads(text)["error"], text
            assert 0.9 < took < 2, took
            figures.append(f"silent endpoint, timeout 1 s: 503 after {took * 1000:.0f} ms")
        finally:
            srv.stop()
        if not SANITIZED:
            srv = Server("un-", AWS_ENDPOINT_URL_DYNAMODB=mute)
            try:
                st, text, took = srv.post(body)
                assert st == 503 and 4.9 < took < 6, (st, took, text)
                figures.append(f"silent endpoint, default 5 s budget: 503 after "
                               f"{took * 1000:.0f} ms")
            finally:
                srv.stop()
    finally:
        silent.close()


def test_healthz():
    srv = Server("hz-")
    try:
        st, text, _ = srv.request("GET", "/healthz")
        assert st == 200, text
    finally:
        srv.stop()


def test_settings():
    """Fleet settings in DynamoDB: settings put by the CLI reaches a running
    server's calls within a second; get and delete round trip."""
    store = "dynamodb:st-"
    path = os.path.join(tempfile.mkdtemp(prefix="lr-ddb-"), "s.yaml")
    srv = Server("st-")
    try:
        body = payload("astro", [("web", "w1", "10.0.0.1")],
                       [cand("web", "web.example.com", [("w1", "10.0.0.1")])])
        st, before, _ = srv.post(body)
        assert st == 200 and "nbthread" not in before, before
        with open(path, "w") as f:
            f.write("global: {nbthread: 2}\nunmatched: {status: 404}\n")
        r = subprocess.run([BIN, "settings", "put", "--store", store, path],
                           capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr
        time.sleep(1.1)  # DynamoDB: the generation is read once a second
        st, after, _ = srv.post(body)
        assert st == 200 and "    nbthread 2\n" in after, after
        assert "http-request return status 404" in after, after
        r = subprocess.run([BIN, "settings", "get", "--store", store, "--table", "astro",
                            "--effective"], capture_output=True, timeout=60)
        assert r.stdout == b'{"global":{"nbthread":2},"unmatched":{"status":404}}\n', r.stdout
        r = subprocess.run([BIN, "settings", "delete", "--store", store, "--table", "astro"],
                           capture_output=True, timeout=60)
        assert r.returncode == 1 and b"no settings are stored" in r.stderr, r.stderr
    finally:
        srv.stop()


for name, fn in [("item layout and request counts", test_item_layout),
                 ("first-version items", test_first_version_items),
                 ("scan pagination", test_pagination),
                 ("two servers, concurrent POSTs", test_two_servers_concurrent),
                 ("unreachable endpoint", test_unreachable),
                 ("healthz", test_healthz),
                 ("fleet settings", test_settings)]:
    check(name, fn)
for f in figures:
    print("figure:", f)
print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
