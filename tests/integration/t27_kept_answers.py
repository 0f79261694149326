#!/usr/bin/env python3
"""Kept answers (--kept-answers): a polling thread queues the response it
built for a small shared config again when an answer repeats it. The same
random calls go to a server that keeps two answers (one polling thread, so
they are reused and evicted) and to one that keeps none, each on a store of
its own, over keep-alive connections: every answer must be the same, byte
for byte, except the Date and the body token's random value."""
import http.client
import json
import os
import random

from lrtest import Server, check, run_steps, tmpdir

d = tmpdir()
SEED = int(os.environ.get("LR_SEED") or random.randrange(1 << 30))
print("seed %d (LR_SEED to repeat)" % SEED, flush=True)
rnd = random.Random(SEED)

kept = Server("sqlite:" + os.path.join(d, "kept.db"), ["--threads", "1", "--kept-answers", "2"])
plain = Server("sqlite:" + os.path.join(d, "plain.db"), ["--threads", "1", "--kept-answers", "0"])
servers = [kept, plain]


def body_of(table, variant):
    """A small universe of payloads per table, so that calls repeat, in two
    spellings; the table "big" has a config over the 64 KiB ever kept."""
    n = 600 if table == "big" else 1 + variant % 3
    svcs = n if table == "big" else 7
    running = [{"serviceName": "svc%d" % (i % svcs), "id": "c%d" % i,
                "ip": "10.%d.%d.%d" % (variant, i // 250, i % 250 + 1)} for i in range(n)]
    cands = [{"serviceName": "svc%d" % s, "port": 8080, "predicate": "s%d.example.com" % s}
             for s in range(min(n, svcs))]
    if variant == 2:
        cands[0]["cookie"] = "SRV"
    doc = {"table": table, "running": running, "candidates": cands}
    # The same state in other bytes: a new digest (and body token) for
    # the same config.
    return json.dumps(doc, indent=rnd.choice([None, 1])).encode()


class Conn:
    def __init__(self, srv):
        self.srv, self.c = srv, None

    def call(self, method, path, body, headers):
        if self.c is None:
            self.c = http.client.HTTPConnection("127.0.0.1", self.srv.port, timeout=30)
        self.c.request(method, path, body=body, headers=headers)
        r = self.c.getresponse()
        data = r.read()
        hdrs = [(k.lower(), v) for k, v in r.getheaders()]
        if r.will_close:
            self.c.close()
            self.c = None
        return r.status, hdrs, data


def comparable(hdrs):
    out = []
    for k, v in hdrs:
        if k == "date":
            continue
        out.append((k, "(token)" if k == "x-registry-body-token" and v else v))
    return out


def test_same_answers():
    conns = [Conn(s) for s in servers]
    last_index = {}
    tables = ["alpha", "beta", "gamma", "big"]
    counts = {"kept-sized": 0, "304": 0, "large": 0}
    for step in range(700):
        table = rnd.choice(tables)
        variant = rnd.randrange(3) if rnd.random() < 0.3 else 0
        headers = {"Content-Type": "application/json"}
        if table in last_index and rnd.random() < 0.25:
            idx = last_index[table] + (0 if rnd.random() < 0.8 else 1)
            headers["If-None-Match"] = '"%d"' % idx
        if rnd.random() < 0.2:
            headers["Accept"] = "application/json"
        if rnd.random() < 0.05:
            headers["Connection"] = "close"
        if rnd.random() < 0.1:
            method, path, body = "GET", "/v1/tables/%s/config" % table, None
        else:
            method, path, body = "POST", "/generate", body_of(table, variant)
        got = [c.call(method, path, body, headers) for c in conns]
        (sa, ha, ba), (sb, hb, bb) = got
        what = "step %d: %s %s %s %r" % (step, method, path, table, sorted(headers))
        check(sa == sb, "%s: the same status (%d, %d)" % (what, sa, sb))
        check(ba == bb, "%s: the same body (%d and %d bytes)" % (what, len(ba), len(bb)))
        check(comparable(ha) == comparable(hb),
              "%s: the same headers (%r against %r)" % (what, comparable(ha), comparable(hb)))
        if sa != 200 and sa != 304:
            continue
        idx = dict(ha).get("x-registry-index")
        if idx:
            last_index[table] = int(idx)
        counts["304" if sa == 304 else "large" if len(ba) > 65536 else "kept-sized"] += 1
    print("answers: %r" % counts, flush=True)
    check(counts["kept-sized"] > 300 and counts["304"] > 10 and counts["large"] > 50,
          "the calls covered small, large and 304 answers (%r)" % counts)


def cleanup():
    for s in servers:
        s.stop()


run_steps([test_same_answers], cleanup)
