#!/usr/bin/env python3
"""The conditional /generate: If-None-Match with the index of the config the
caller has. 304 with no body only when the body is byte for byte the last
one that left the table unchanged and the table is still at that index;
any other body, index, table or a write of another process gets the whole
answer, the same as without the header. A client that waits for
"100 Continue" may send the body token of an earlier answer instead of the
body: a 304 before any of the body is read, else the body as ever."""
import json
import os
import re

from lrtest import Server, check, payload, run_steps, tmpdir

d = tmpdir()
DB = os.path.join(d, "cond.db")
srv = Server("sqlite:" + DB)
other = None


def running(n, svc="app1"):
    return [{"serviceName": svc, "id": "c%d" % i, "ip": "10.0.0.%d" % (i + 1)} for i in range(n)]


def cand(svc="app1", n=1, pred="a.example.com"):
    return [{"serviceName": svc, "port": 80, "predicate": pred,
             "containers": [{"id": "c%d" % i, "ip": "10.0.0.%d" % (i + 1)} for i in range(n)]}]


BODY = payload("cond-a", running(2), cand(n=2))


def post(body, inm=None, path="/generate", server=None, accept=None):
    h = {"Content-Type": "application/json"}
    if inm is not None:
        h["If-None-Match"] = inm
    if accept:
        h["Accept"] = accept
    return (server or srv).request("POST", path, body, h)


def seed():
    """The table written, then the same body again (it is remembered);
    returns the index and the config."""
    st, h, config = post(BODY)
    check(st == 200, "first call: 200 (%d)" % st)
    st, h, again = post(BODY)
    check(st == 200 and again == config, "same body again: 200, same config")
    return int(h["x-registry-index"]), config


def test_not_modified():
    idx, config = seed()
    st, h, b = post(BODY, '"%d"' % idx)
    check(st == 304 and b == b"", "same body, same index: 304 with no body (%d %r)" % (st, b[:100]))
    check(h.get("etag") == '"%d"' % idx and h.get("x-registry-index") == str(idx),
          "the 304 names the index (%r)" % h)
    check("content-type" not in h, "a 304 sends no representation, so no Content-Type (%r)" % h)
    st, h, b = post(BODY, '"%d"' % idx, accept="application/json")
    check(st == 304 and b == b"", "the JSON answer: 304 too (%d)" % st)
    st, h, b = srv.request("GET", "/v1/tables/cond-a/config")
    check(st == 200 and b == config and int(h["x-registry-index"]) == idx,
          "after the 304s the table is as it was")


def test_other_index():
    idx, config = seed()
    for tag in ('"%d"' % (idx - 1), '"%d"' % (idx + 1), "*"):
        st, h, b = post(BODY, tag)
        check(st == 200 and b == config and int(h["x-registry-index"]) == idx,
              "If-None-Match %s, not the index: the whole answer (%d)" % (tag, st))
    st, h, b = post(BODY, "nonsense")
    check(st == 400 and json.loads(b)["field"] == "If-None-Match",
          "a malformed If-None-Match: 400 naming it (%d %r)" % (st, b[:200]))


def test_other_body():
    idx, config = seed()
    # The same meaning in other bytes: not the remembered body.
    spaced = BODY.replace(b",", b", ")
    st, h, b = post(spaced, '"%d"' % idx)
    check(st == 200 and b == config and int(h["x-registry-index"]) == idx,
          "other bytes, same meaning: the whole answer (%d)" % st)
    changed = payload("cond-a", running(3), cand(n=3))
    st, h, b = post(changed, '"%d"' % idx)
    check(st == 200 and int(h["x-registry-index"]) > idx and b != config and b"10.0.0.3" in b,
          "a changing body: stored, the whole new answer (%d)" % st)
    # The remembered body again, with the old index: it changes the table
    # back, so the whole answer.
    st, h, b = post(BODY, '"%d"' % idx)
    check(st == 200 and b == config and int(h["x-registry-index"]) > idx,
          "the old body with the old index after a change: 200 and written (%d)" % st)


def test_other_table():
    body = json.dumps({"running": running(1), "candidates": cand(n=1)}).encode()
    st, h, config = post(body, path="/v1/tables/cond-b/generate")
    st, h, config = post(body, path="/v1/tables/cond-b/generate")
    idx = int(h["x-registry-index"])
    st, h, b = post(body, '"%d"' % idx, path="/v1/tables/cond-b/generate")
    check(st == 304, "path table, same body and index: 304 (%d)" % st)
    st, h, b = post(body, '"%d"' % idx, path="/v1/tables/cond-c/generate")
    check(st == 200 and b == config, "the same bytes for another table: the whole answer (%d)" % st)
    st, h, b = srv.request("GET", "/v1/tables/cond-c")
    check(st == 200 and json.loads(b)["services"], "and that table was written (%d)" % st)


def expect_continue(token, idx, body=BODY, path="/generate", send=True):
    """The body token instead of the body (lrtest's continue_request)."""
    return srv.continue_request(path, body, {"Content-Type": "application/json",
                                             "If-None-Match": '"%d"' % idx,
                                             "X-Registry-Body-Token": token}, send)


def test_body_token():
    idx, config = seed()
    st, h, b = post(BODY, '"%d"' % idx)
    token = h.get("x-registry-body-token", "")
    check(st == 304 and re.fullmatch("[0-9a-f]{32}", token),
          "a remembered body's answer carries its token (%d %r)" % (st, token))
    first, st, h = expect_continue(token, idx)
    check(first.startswith("HTTP/1.1 304") and st == 304 and
          h.get("x-registry-body-token") == token and h.get("x-registry-index") == str(idx),
          "the token with the index: 304 before the body is sent (%r %r)" % (first, h))
    check(h.get("connection", "").lower() == "close", "and the connection closes (%r)" % h)
    check("content-type" not in h, "and it has no Content-Type (%r)" % h)
    for what, tok, tag in (("another token", "0" * 32, idx), ("a malformed token", "xyz", idx),
                           ("another index", token, idx + 1)):
        first, st, h = expect_continue(tok, tag)
        check(first.startswith("HTTP/1.1 100") and st in (200, 304),
              "%s: 100 Continue, the body read and answered (%r %d)" % (what, first, st))
    first, st, h = expect_continue(token, idx, path="/v1/tables/cond-a/generate")
    check(first.startswith("HTTP/1.1 100"),
          "the token of a /generate body on the table's path: the body is asked for (%r)" % first)
    # A change: the token stood for a body that no longer leaves the table
    # as it is.
    changed = payload("cond-a", running(3), cand(n=3))
    st, h, b = post(changed)
    check(st == 200 and "x-registry-body-token" not in h, "a changing call: no token (%r)" % h)
    new = int(h["x-registry-index"])
    first, st, h = expect_continue(token, new, send=False)
    check(first.startswith("HTTP/1.1 100"), "after a change the old token asks for the body (%r)" % first)
    st, h, b = post(changed, '"%d"' % new)
    token2 = h.get("x-registry-body-token", "")
    check(st == 200 and token2 and token2 != token,
          "the new body again, now remembered: a new token (%d %r)" % (st, token2))
    first, st, h = expect_continue(token2, new, body=changed)
    check(first.startswith("HTTP/1.1 304"), "and that token does (%r)" % first)
    # Back to the first state for the next steps.
    post(BODY)


def test_other_process():
    global other
    idx, config = seed()
    other = Server("sqlite:" + DB)
    st, h, b = post(payload("cond-a", running(1), cand(n=1)), server=other)
    check(st == 200 and int(h["x-registry-index"]) > idx, "the other process wrote (%d)" % st)
    st, h, b = post(BODY, '"%d"' % idx)
    check(st == 200 and b == config and int(h["x-registry-index"]) > idx,
          "after another process's write: the whole answer, written back (%d)" % st)


def cleanup():
    srv.stop()
    if other:
        other.stop()


run_steps([test_not_modified, test_other_index, test_other_body, test_other_table, test_body_token,
           test_other_process],
          cleanup)
