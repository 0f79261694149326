#!/usr/bin/env python3
"""The read and watch API: GET /v1/tables, /v1/tables/{table} and its
/config, HEAD, ETag and If-None-Match, If-Match on /generate, bad parameters,
and long polls woken by a write in this process, by a write of a second
process on the same SQLite file, by the deadline, and by SIGTERM."""
import http.client
import json
import os
import re
import threading
import time

from lrtest import Server, check, finish, payload, run_cli, run_steps, tmpdir

d = tmpdir()
DB = os.path.join(d, "watch.db")
srv = Server("sqlite:" + DB, extra=["--read-timeout", "1"])
other = None


def running(n, svc="app1"):
    return [{"serviceName": svc, "id": "c%d" % i, "ip": "10.0.0.%d" % (i + 1)} for i in range(n)]


def cand(svc="app1", n=1, pred="a.example.com"):
    return [{"serviceName": svc, "port": 80, "predicate": pred,
             "containers": [{"id": "c%d" % i, "ip": "10.0.0.%d" % (i + 1)} for i in range(n)]}]


def get(path, headers=None, method="GET", server=None, timeout=60):
    return (server or srv).request(method, path, headers=headers, timeout=timeout)


def index_of(h):
    return int(h["x-registry-index"])


def expect_400(path, field):
    st, h, body = get(path)
    doc = json.loads(body) if body else {}
    check(st == 400 and doc.get("field") == field and doc.get("error"),
          "%s: 400 naming %s (got %d %r)" % (path, field, st, body[:200]))


def test_open_files():
    m = re.search(r"event=open_files limit=(\d+) hard=(\d+) max_connections=16384 enough=(\w+)", srv.logtext())
    check(m is not None, "the open-files limit is logged with the default --max-connections 16384")
    if m:
        limit, hard = int(m.group(1)), int(m.group(2))
        check(limit == min(hard, 16384 + 256) or limit > 16384 + 256, "raised as far as allowed: %r" % (m.groups(),))
        check((m.group(3) == "yes") == (limit >= 16384 + 256), "enough= says whether it is")


def test_missing_table():
    for path in ("/v1/tables/nothing-here", "/v1/tables/nothing-here/config"):
        st, h, body = get(path)
        check(st == 404 and h.get("content-type") == "application/json"
              and "nothing-here" in json.loads(body)["error"], "%s: 404 JSON (%d %r)" % (path, st, body))
    st, h, body = get("/v1/tables")
    check(st == 200 and json.loads(body) == {"tables": [], "next": None}, "empty list: %r" % body)
    st, h, body = get("/v1/tables/x")
    check(st == 400 and json.loads(body).get("field") == "table", "short table name: 400 (%d)" % st)


def test_read_routes():
    st, h, posted = srv.post(payload("astro", running(2), cand(n=2)))
    check(st == 200 and index_of(h) >= 1 and h["etag"] == '"%d"' % index_of(h),
          "POST gives ETag and X-Registry-Index: %r" % h)
    idx = index_of(h)
    st, h, body = get("/v1/tables/astro/config")
    check(st == 200 and body == posted, "GET config is what /generate rendered")
    check(h.get("content-type") == "text/plain; charset=utf-8", "config is text/plain")
    check(h.get("etag") == '"%d"' % idx and index_of(h) == idx, "GET config ETag = index %d: %r" % (idx, h))
    # HEAD: the same headers, no body
    st, hh, body = get("/v1/tables/astro/config", method="HEAD")
    check(st == 200 and body == b"" and hh.get("etag") == h["etag"]
          and hh.get("content-length") == str(len(posted)), "HEAD config: %d %r" % (st, hh))
    st, hh, body = get("/v1/tables", method="HEAD")
    check(st == 200 and body == b"", "HEAD /v1/tables")
    # If-None-Match, alone, as a weak tag, in a list; another index is a 200
    for inm in ('"%d"' % idx, 'W/"%d"' % idx, '"999999", "%d"' % idx, "*"):
        st, hh, body = get("/v1/tables/astro/config", {"If-None-Match": inm})
        check(st == 304 and body == b"" and hh.get("etag") == '"%d"' % idx, "If-None-Match %s: 304 (%d)" % (inm, st))
    st, hh, body = get("/v1/tables/astro/config", {"If-None-Match": '"%d"' % (idx + 7)})
    check(st == 200 and body == posted, "If-None-Match of another index: 200")
    # JSON: the shape of /generate's JSON answer
    st, hh, body = get("/v1/tables/astro/config", {"Accept": "application/json"})
    doc = json.loads(body)
    gst, _, gen = srv.post(payload("astro", running(2), cand(n=2)), {"Accept": "application/json"})
    check(st == 200 and gst == 200 and doc == json.loads(gen) and doc["table"] == "astro"
          and "hosts.map" in doc["files"] and doc["services"][0]["serviceName"] == "app1",
          "config as JSON, the map form with its files, as /generate answers: %r" % doc.keys())
    # the services
    st, hh, body = get("/v1/tables/astro")
    doc = json.loads(body)
    check(st == 200 and doc["table"] == "astro" and doc["index"] == idx
          and isinstance(doc["updatedAt"], int) and doc["updatedAt"] > 1600000000000
          and [c["id"] for c in doc["services"][0]["containers"]] == ["c0", "c1"]
          and hh.get("etag") == '"%d"' % idx, "GET table: %r" % doc)
    # an unchanged call does not move the index, a change does
    st, h, _ = srv.post(payload("astro", running(2)))
    check(index_of(h) == idx, "unchanged call keeps index %d (got %d)" % (idx, index_of(h)))
    st, h, _ = srv.post(payload("astro", running(1)))
    check(index_of(h) > idx, "a change moves the index (%d -> %d)" % (idx, index_of(h)))
    idx2 = index_of(h)
    # a settings change (another process) moves it too
    yml = os.path.join(d, "s.yaml")
    with open(yml, "w") as f:
        f.write("defaults:\n  dontlognull: true\n")
    p = run_cli(["settings", "put", "--store", "sqlite:" + DB, "--table", "astro", yml])
    check(p.returncode == 0, "settings put: %r" % p.stderr)
    st, h, body = get("/v1/tables/astro/config")
    check(index_of(h) > idx2 and b"dontlognull" in body, "settings moved index %d -> %d" % (idx2, index_of(h)))


def test_list_pages():
    names = ["page-%s" % c for c in ("d", "B", "a", "c", "e")]
    for n in names:
        srv.post(payload(n, running(3, "s1"), cand("s1", 3)))
    seen, after, pages = [], "", 0
    while True:
        st, h, body = get("/v1/tables?limit=2" + ("&after=" + after if after else ""))
        doc = json.loads(body)
        check(st == 200 and len(doc["tables"]) <= 2, "page: %r" % doc)
        seen += [t["table"] for t in doc["tables"]]
        pages += 1
        if doc["next"] is None:
            break
        check(doc["next"] == doc["tables"][-1]["table"], "next names the last table")
        after = doc["next"]
        if pages > 10:
            break
    want = sorted(names + ["astro"])
    check(seen == want, "all tables in byte order over pages: %r" % seen)
    st, h, body = get("/v1/tables?after=page-c")
    doc = json.loads(body)
    check([t["table"] for t in doc["tables"]] == ["page-d", "page-e"] and doc["next"] is None,
          "after=page-c: %r" % doc)
    t = doc["tables"][0]
    check(t["services"] == 1 and t["servers"] == 3 and t["index"] >= 1 and t["updatedAt"] > 0,
          "counts: %r" % t)
    for bad in ("0", "10001", "abc", "-1"):
        expect_400("/v1/tables?limit=" + bad, "limit")
    st, h, body = get("/v1/tables?limit=10000")
    check(st == 200, "limit=10000 allowed")


def test_bad_parameters():
    for q, field in (("wait=abc", "wait"), ("index=1&wait=10", "wait"), ("index=1&wait=6m", "wait"),
                     ("index=1&wait=-1s", "wait"), ("index=-1", "index"), ("index=abc", "index"),
                     ("index=", "index"), ("index=1%zz", "index")):
        expect_400("/v1/tables/astro/config?" + q, field)
        expect_400("/v1/tables/astro?" + q, field)
    st, h, body = get("/v1/tables/astro/config?index=1&wait=5m&wait=1s")
    check(st == 200, "wait=5m allowed (and the index moved on: 200 at once): %d" % st)
    st, h, body = srv.request("POST", "/v1/tables/astro/config")
    check(st == 405 and "GET" in h.get("allow", "") and "HEAD" in h.get("allow", ""), "POST config: 405 %r" % h)


def test_if_match():
    st, h, _ = get("/v1/tables/astro/config")
    idx = index_of(h)
    body = payload("astro", running(2), cand(n=2))
    st, h, b = srv.request("POST", "/v1/tables/astro/generate", body, {"If-Match": '"%d"' % (idx - 1)})
    doc = json.loads(b)
    check(st == 412 and "index" in doc["error"], "stale If-Match: 412 (%d %r)" % (st, b))
    st, h, b = get("/v1/tables/astro")
    check(index_of(h) == idx and len(json.loads(b)["services"][0]["containers"]) == 1,
          "412 stored nothing")
    st, h, b = srv.request("POST", "/generate", body, {"If-Match": "nonsense"})
    check(st == 400 and json.loads(b)["field"] == "If-Match", "bad If-Match: 400 (%d)" % st)
    st, h, b = srv.request("POST", "/generate", body, {"If-Match": '"%d"' % idx})
    check(st == 200 and index_of(h) > idx, "current If-Match: 200 and stored (%d)" % st)
    st, h, b = srv.request("POST", "/generate", payload("astro", running(1)), {"If-Match": "*"})
    check(st == 200, "If-Match *: 200")


class Watch(threading.Thread):
    """One long poll in a thread: status, headers, body and seconds taken."""

    def __init__(self, path, server=None):
        super().__init__(daemon=True)
        self.path, self.server = path, server or srv
        self.result = None
        self.start()

    def run(self):
        t0 = time.monotonic()
        try:
            st, h, body = self.server.request("GET", self.path, timeout=120)
            self.result = (st, h, body, time.monotonic() - t0)
        except OSError as e:
            self.result = (0, {}, repr(e).encode(), time.monotonic() - t0)


def parked(n, server=None):
    """Wait (polling /healthz) until n watches are parked."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:
        st, h, body = (server or srv).request("GET", "/healthz")
        if json.loads(body).get("watching") == n:
            return True
        time.sleep(0.02)
    return False


def current():
    st, h, _ = get("/v1/tables/astro/config")
    return index_of(h)


def test_watch_answers_at_once():
    idx = current()
    for old in (idx - 1, idx + 1000):  # moved on, or the store was reset
        t0 = time.monotonic()
        st, h, body = get("/v1/tables/astro/config?index=%d&wait=30s" % old)
        check(st == 200 and index_of(h) == idx and time.monotonic() - t0 < 10,
              "index=%d answered at once with %d" % (old, idx))


def test_watch_deadline():
    idx = current()
    # --read-timeout is 1 s: a parked request outlives it
    w = Watch("/v1/tables/astro/config?index=%d&wait=2500ms" % idx)
    w.join(60)
    st, h, body, secs = w.result
    check(st == 304 and index_of(h) == idx and body == b"", "no change: 304 at index (%d %r)" % (st, body))
    check(2.4 <= secs <= 2.5 * 17 / 16 + 5, "304 after the wait and its jitter (%.2f s)" % secs)
    w = Watch("/v1/tables/astro?index=%d&wait=300ms" % idx)
    w.join(60)
    check(w.result[0] == 304, "table route watches too (%d)" % w.result[0])


def test_watch_woken_here():
    idx = current()
    ws = [Watch("/v1/tables/astro/config?index=%d&wait=60s" % idx) for _ in range(3)]
    check(parked(3), "three watches parked")
    t0 = time.monotonic()
    st, h, posted = srv.post(payload("astro", running(3), cand(n=3)))
    for w in ws:
        w.join(60)
    st, h, body, secs = ws[0].result
    check(all(w.result[0] == 200 and w.result[2] == posted for w in ws),
          "every watch woken with the new config: %r" % [w.result[0] for w in ws])
    check(index_of(h) > idx and time.monotonic() - t0 < 10, "woken at once (%.3f s)" % (time.monotonic() - t0))
    check(parked(0), "none parked after")


def test_watch_woken_by_other_process():
    global other
    other = Server("sqlite:" + DB)
    idx = current()
    w = Watch("/v1/tables/astro/config?index=%d&wait=60s" % idx)
    check(parked(1), "watch parked on the first server")
    t0 = time.monotonic()
    st, h, posted = other.post(payload("astro", running(2), cand(n=2)))
    check(st == 200, "write through the second server")
    w.join(60)
    st, h, body, secs = w.result
    check(st == 200 and body == posted and index_of(h) > idx,
          "woken by the other process's write (%d, %.3f s after it)" % (st, time.monotonic() - t0))
    # and the other way round
    idx = index_of(h)
    w = Watch("/v1/tables/astro?index=%d&wait=60s" % idx, server=other)
    check(parked(1, other), "watch parked on the second server")
    srv.post(payload("astro", running(1)))
    w.join(60)
    check(w.result[0] == 200 and json.loads(w.result[2])["index"] > idx, "and back (%d)" % w.result[0])


def test_sigterm_answers_parked():
    idx = current()
    ws = [Watch("/v1/tables/astro/config?index=%d&wait=120s" % idx) for _ in range(2)]
    check(parked(2), "two watches parked before SIGTERM")
    t0 = time.monotonic()
    rc = srv.stop()
    for w in ws:
        w.join(60)
    check(rc == 0, "clean exit (%r)" % rc)
    check(all(w.result[0] == 304 and index_of(w.result[1]) == idx for w in ws),
          "SIGTERM: 304 at the current index: %r" % [w.result[:2] for w in ws])
    check(all(w.result[1].get("connection") == "close" for w in ws),
          "and the connection closed, so that no poll comes back on it")
    check(time.monotonic() - t0 < 20, "answered at once, not at the deadline (%.1f s)" % (time.monotonic() - t0))


def cleanup():
    srv.stop()
    if other:
        other.stop()


run_steps([test_open_files, test_missing_table, test_read_routes, test_list_pages, test_bad_parameters, test_if_match,
           test_watch_answers_at_once, test_watch_deadline, test_watch_woken_here,
           test_watch_woken_by_other_process, test_sigterm_answers_parked], cleanup)
