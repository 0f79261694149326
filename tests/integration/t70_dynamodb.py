#!/usr/bin/env python3
"""The DynamoDB store end to end: `serve --store dynamodb:PREFIX` against a
private dynalite, items checked with the AWS SDK for JavaScript, first-version
items read back, requests per call (the head item: one GetItem for an
unchanged call), two servers on one table, the transaction path through
tests/dynamodb/standin.py, an unreachable endpoint.

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
sys.path.insert(0, os.path.join(SRC, "tests", "dynamodb"))
import standin  # noqa: E402
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

    def ops(self):
        """{operation: requests} of every store call, from the trace lines."""
        return [dict((op, int(n)) for op, n in re.findall(r"(\w+):(\d+)", m))
                for m in re.findall(r"event=dynamodb_call .* ops=(\S+)", self.text())]

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


def scan(table):
    """The table's service items (the head item left out)."""
    return [i for i in sdk("scan", table) if i["serviceName"]["S"] != "#head"]


def head(table):
    """The version in the table's head item, None when there is none."""
    for i in sdk("scan", table):
        if i["serviceName"]["S"] == "#head":
            return int(i["version"]["N"])
    return None


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
        items = scan("lay-astro")
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
        # The first write created the head at version 1 (the two services
        # written one by one: dynalite has no TransactWriteItems).
        assert head("lay-astro") == 1
        assert srv.ops()[-1].get("TransactWriteItems") == 1, srv.ops()
        # (3 PutItem: the first found no table, created it, and went again.)
        assert srv.ops()[-1]["PutItem"] == 3 and srv.ops()[-1]["UpdateItem"] == 1, srv.ops()
        # The same payload again changes nothing: one GetItem of the head,
        # no Scan, no write; the cache answers.
        for _ in range(3):
            st, text2, _ = srv.post(body)
            assert st == 200 and text2 == text
            assert srv.calls()[-1] == ("commit", 1, 0), srv.calls()
            assert srv.ops()[-1] == {"GetItem": 1}, srv.ops()
        assert [i["version"] for i in scan("lay-astro")] == [{"N": "1"}] * 2
        # One container more: the head, one conditional PutItem, the head's
        # conditional update; no Scan (the cache is at the head's version).
        body["running"].append({"serviceName": "app2", "id": "c3", "ip": "10.0.0.3"})
        st, text3, _ = srv.post(body)
        assert st == 200 and "server c3 10.0.0.3:9000 check" in text3, text3
        assert srv.calls()[-1] == ("commit", 3, 1), srv.calls()
        assert srv.ops()[-1] == {"GetItem": 1, "PutItem": 1, "UpdateItem": 1}, srv.ops()
        items = scan("lay-astro")
        assert items[1]["version"] == {"N": "2"} and items[0]["version"] == {"N": "1"}
        assert head("lay-astro") == 2
        # A service whose containers all stopped: the head, one DeleteItem,
        # the head's update.
        body = payload("astro", [("app1", "c1", "10.0.0.1")])
        st, text4, _ = srv.post(body)
        assert st == 200 and "app2" not in text4, text4
        assert srv.ops()[-1] == {"GetItem": 1, "DeleteItem": 1, "UpdateItem": 1}, srv.ops()
        assert [i["serviceName"]["S"] for i in scan("lay-astro")] == ["app1"]
        assert head("lay-astro") == 3
        # And unchanged again: one GetItem.
        st, text5, _ = srv.post(body)
        assert st == 200 and text5 == text4 and srv.ops()[-1] == {"GetItem": 1}, srv.ops()
        figures.append("requests per call (dynalite, no transactions): unchanged 1 "
                       "(GetItem of the head); one service changed 3 (GetItem + PutItem + "
                       "UpdateItem of the head); one removed 3 (GetItem + DeleteItem + "
                       "UpdateItem)")
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
        # Read-only call: the first-version items stay as they were, and no
        # head is made; without one nothing is cached: the next call scans.
        assert srv.calls()[-1] == ("commit", 2, 0), srv.calls()
        assert srv.ops()[-1] == {"GetItem": 1, "Scan": 1}, srv.ops()
        items = {i["serviceName"]["S"]: i for i in scan("v1-astro")}
        assert items["legacy"] == legacy, items["legacy"]
        assert head("v1-astro") is None
        st, text1, _ = srv.post(payload("astro", running))
        assert st == 200 and text1 == text and srv.ops()[-1] == {"GetItem": 1, "Scan": 1}
        # A change rewrites the item in the new layout, keeping createdAt; a
        # candidate replaces the damaged item.
        running.append(("legacy", "new2", "10.9.0.4"))
        st, text, _ = srv.post(payload("astro", running, [
            cand("broken", "b.example.com", [("bk1", "10.9.0.3")], port=8000)]))
        assert st == 200, text
        assert "server new2 10.9.0.4:8080 check cookie new2" in text, text
        assert "server bk1 10.9.0.3:8000 check" in text, text
        items = {i["serviceName"]["S"]: i for i in scan("v1-astro")}
        assert items["legacy"]["port"] == {"N": "8080"}, items["legacy"]
        assert items["legacy"]["version"] == {"N": "1"}
        assert items["legacy"]["createdAt"] == {"S": "2021-03-04T05:06:07.890Z"}
        assert items["legacy"]["predicate"] == {"S": "legacy.example.com"}
        assert items["broken"]["port"] == {"N": "8000"} and items["broken"]["version"] == {"N": "1"}
        assert "version" not in items["nomode"], items["nomode"]
        # The first write created the head; from there the cache holds.
        assert head("v1-astro") == 1
        st, text2, _ = srv.post(payload("astro", running))
        assert st == 200 and text2 == text and srv.ops()[-1] == {"GetItem": 1}, srv.ops()
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
        assert srv.ops()[-1] == {"GetItem": 1}, srv.ops()
    finally:
        srv.stop()
    # A cold cache (another process) scans every page.
    srv = Server("pg-", LAMBDA_REGISTRY_STORE_SCAN_LIMIT="2")
    try:
        st, text3, _ = srv.post(payload("astro", running))
        assert st == 200 and text3 == text, text3
        assert all(f"backend {n}" in text3 for n in names), text3
        end, requests, writes = srv.calls()[-1]
        assert end == "commit" and writes == 0, srv.calls()
        # 7 services and the head, 2 a page: 4 pages and the empty last one.
        assert srv.ops()[-1] == {"GetItem": 1, "Scan": 5}, srv.ops()
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
        names = [i["serviceName"]["S"] for i in scan("cc-astro")]
        assert names == [f"svc{i:02d}" for i in range(n)], names
        # All POSTs race to create the same service: conditional writes
        # conflict, the losers reload and find nothing left to write.
        statuses.clear()
        run([payload("astro", running + shared,
                     [cand("shared", "shared.example.com", [shared[i][1:]])])
             for i in range(n)])
        assert all(st == 200 for st, _ in statuses), [t for s, t in statuses if s != 200]
        assert len({t for _, t in statuses}) == 1, "answers differ"
        items = {i["serviceName"]["S"]: i for i in scan("cc-astro")}
        assert len(items) == n + 1, sorted(items)
        assert len(items["shared"]["containers"]["L"]) == n
        assert items["shared"]["version"] == {"N": "1"}, items["shared"]
        # Every writing call moved the head: at least n + 1 writes so far.
        assert head("cc-astro") >= n + 1, head("cc-astro")
        conflicts = sum(1 for s in (a, b) for c in s.calls() if c[0] != "commit")
        # No stale cache: each server's answer to the final state equals
        # that of a process with no cache at all.
        final = payload("astro", running + shared)
        cold = Server("cc-")
        try:
            st, want, _ = cold.post(final)
            assert st == 200, want
        finally:
            cold.stop()
        for srv in (a, b):
            st, got, _ = srv.post(final)
            assert st == 200 and got == want, got
        # A few rounds in which every container moves: the POSTs of a round
        # (all carrying the new state) race on both servers; each round's
        # state is then stored whole, and both servers answer it as a
        # process with no cache does.
        for rnd in range(3):
            cur = [(name, cid, f"10.5.{rnd}.{i + 1}") for i, (name, cid, _) in
                   enumerate(running)]
            statuses.clear()
            run([payload("astro", cur + shared)] * n)
            assert all(st == 200 for st, _ in statuses), \
                [t for s, t in statuses if s != 200]
            items = {i["serviceName"]["S"]: i for i in scan("cc-astro")}
            assert len(items) == n + 1, sorted(items)
            for name, cid, ip in cur:
                assert items[name]["containers"]["L"][0]["M"]["ip"] == {"S": ip}, items[name]
            ref = Server("cc-")
            try:
                st, want, _ = ref.post(payload("astro", cur + shared))
                assert st == 200, want
                for srv in (a, b):
                    # A server whose cache is behind the head scans again
                    # (it never answers from the old cache); nothing to write.
                    st, got, _ = srv.post(payload("astro", cur + shared))
                    assert st == 200 and got == want, got
                    assert set(srv.ops()[-1]) <= {"GetItem", "Scan"}, srv.ops()[-1]
                    # And now it is cached at the head: one GetItem.
                    st, got, _ = srv.post(payload("astro", cur + shared))
                    assert st == 200 and got == want, got
                    assert srv.ops()[-1] == {"GetItem": 1}, srv.ops()[-1]
            finally:
                ref.stop()
        figures.append(f"two servers, {n} concurrent POSTs racing on one new service, then "
                       f"3 rounds of {n} concurrent POSTs moving every container: {conflicts} "
                       "conflicts in the race, retried; all answers equal to a cold read's")
    finally:
        a.stop()
        b.stop()


def test_transactions():
    """The transaction path, through the stand-in that adds TransactWriteItems
    to dynalite: a multi-service call is one request with the head's move;
    a failed condition writes nothing (the stand-in counts it canceled), and
    the call's retry, from a fresh read, succeeds."""
    tx = standin.StandIn(os.environ["AWS_ENDPOINT_URL_DYNAMODB"])
    srv = Server("tx-", AWS_ENDPOINT_URL_DYNAMODB=tx.url)
    try:
        names = ["alpha", "beta", "gamma"]
        running = [(nm, f"{nm}-1", f"10.6.0.{i + 1}") for i, nm in enumerate(names)]
        body = payload("astro", running, [cand(nm, f"{nm}.example.com", [running[i][1:]])
                                          for i, nm in enumerate(names)])
        st, text, _ = srv.post(body)
        assert st == 200, text
        assert [i["serviceName"]["S"] for i in scan("tx-astro")] == names
        assert head("tx-astro") == 1
        ops = srv.ops()[-1]
        assert "PutItem" not in ops and "UpdateItem" not in ops, ops
        assert ops["TransactWriteItems"] >= 1, ops  # 2 when it created the table
        # Unchanged: one GetItem.
        tx.reset()
        st, text2, _ = srv.post(body)
        assert st == 200 and text2 == text and srv.ops()[-1] == {"GetItem": 1}, srv.ops()
        assert tx.counts()[0] == {"GetItem": 1}, tx.counts()
        # One container more: the head and one transaction.
        tx.reset()
        body["running"].append({"serviceName": "beta", "id": "beta-2", "ip": "10.6.1.2"})
        st, text3, _ = srv.post(body)
        assert st == 200 and "server beta-2 10.6.1.2:80 check" in text3, text3
        assert srv.ops()[-1] == {"GetItem": 1, "TransactWriteItems": 1}, srv.ops()
        requests, read_units, write_units = tx.counts()
        figures.append(f"transaction path, one container changed: {requests}, "
                       f"{read_units:g} read units, {write_units:g} write units")
        # Two services change, and another writer (bypassing the registry)
        # already changed one of them: the condition fails, the transaction
        # writes nothing, the retry reads again and writes both.
        sdk("put", "tx-astro", json.dumps({
            "serviceName": {"S": "gamma"}, "port": {"N": "81"}, "configMode": {"S": "host"},
            "predicate": {"S": "gamma.example.com"}, "version": {"N": "5"},
            "containers": {"L": [{"M": {"id": {"S": "gamma-9"}, "ip": {"S": "10.6.9.9"}}}]},
            "createdAt": {"S": "2026-01-01T00:00:00.000Z"},
            "updatedAt": {"S": "2026-01-01T00:00:00.000Z"}}))
        tx.reset()
        body["running"] = [r for r in body["running"] if r["serviceName"] != "alpha"]
        body["candidates"] = [cand("gamma", "gamma.example.com", [running[2][1:]], port=82)]
        st, text4, _ = srv.post(body)
        assert st == 200, text4
        assert tx.canceled == 1, tx.canceled
        assert [c[0] for c in srv.calls()[-2:]] == ["failed", "commit"], srv.calls()
        assert srv.ops()[-2] == {"GetItem": 1, "TransactWriteItems": 1}, srv.ops()
        items = {i["serviceName"]["S"]: i for i in scan("tx-astro")}
        assert sorted(items) == ["beta", "gamma"], sorted(items)
        assert items["gamma"]["port"] == {"N": "82"}, items["gamma"]
        assert "gamma-9" not in text4 and "alpha" not in text4, text4
    finally:
        srv.stop()
        tx.shutdown()


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
                 ("transactions through the stand-in", test_transactions),
                 ("unreachable endpoint", test_unreachable),
                 ("healthz", test_healthz),
                 ("fleet settings", test_settings)]:
    check(name, fn)
for f in figures:
    print("figure:", f)
print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
