#!/usr/bin/env python3
"""Real HTTP traffic through a real HAProxy running a generated config:
host routing with and without a port, path routing with the boundary and
longest-prefix rules, cookie stickiness, 503 for unmatched requests."""
import http.client
import os
import subprocess
import time

from backends import Backend
from lrtest import (HAPROXY, check, finish, free_port, haproxy_check, payload, run_cli,
                    tmpdir)

d = tmpdir()
store = "sqlite:" + os.path.join(d, "traffic.db")
bport = free_port()
fport = free_port()

layout = {  # service -> (mode, predicate, cookie, [(id, ip)])
    "web": ("host", "www.example.com", "JSESSIONID", [("w1", "127.0.0.2"), ("w2", "127.0.0.3"), ("w3", "127.0.0.4")]),
    "api": ("path", "api", None, [("a1", "127.0.0.5")]),
    "apiv1": ("path", "api/v1", None, [("v1", "127.0.0.6")]),
    "apiv1users": ("path", "/api/v1/users", None, [("u1", "127.0.0.7")]),
    "shop": ("path", "shop", None, [("s1", "127.0.0.8")]),
}
backends = []
running, candidates = [], []
for svc, (mode, pred, cookie, conts) in sorted(layout.items()):
    for cid, ip in conts:
        backends.append(Backend(cid, ip, bport))
        running.append({"serviceName": svc, "id": cid, "ip": ip})
    c = {"serviceName": svc, "port": bport, "configMode": mode, "predicate": pred,
         "containers": [{"id": i, "ip": ip} for i, ip in conts]}
    if cookie:
        c["cookie"] = cookie
    candidates.append(c)

r = run_cli(["generate", "--store", store, "--frontend-bind", "127.0.0.1:%d" % fport],
            stdin=payload("traffic", running, candidates))
check(r.returncode == 0, "generate: %r" % r.stderr)
cfg = r.stdout.decode()
ok, out = haproxy_check(cfg)
check(ok, "config valid: " + out)
cfgpath = os.path.join(d, "haproxy.cfg")
with open(cfgpath, "w") as f:
    f.write(cfg)
hap = subprocess.Popen([HAPROXY, "-db", "-f", cfgpath], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def get(path, host="localhost", cookie=None):
    for attempt in range(50):
        try:
            c = http.client.HTTPConnection("127.0.0.1", fport, timeout=10)
            headers = {"Host": host}
            if cookie:
                headers["Cookie"] = cookie
            c.request("GET", path, headers=headers)
            resp = c.getresponse()
            body = resp.read().decode()
            c.close()
            return resp.status, body.split(" ")[0], resp.getheader("Set-Cookie")
        except ConnectionRefusedError:
            time.sleep(0.1)
    raise RuntimeError("haproxy did not come up")


try:
    # Host routing, any case, with and without a port.
    for host in ("www.example.com", "WWW.Example.COM", "www.example.com:%d" % fport,
                 "www.example.com:80"):
        st, who, _ = get("/", host)
        check(st == 200 and who in ("w1", "w2", "w3"), "host %s -> web (%d %s)" % (host, st, who))
    st, who, _ = get("/", "other.example.com")
    check(st == 503, "unknown host -> 503 (got %d)" % st)
    st, who, _ = get("/", "www.example.com.evil.net")
    check(st == 503, "suffix host -> 503 (got %d)" % st)

    # Path routing: /p and /p/..., not /pfoo; the longest prefix wins.
    cases = [("/shop", "s1"), ("/shop/", "s1"), ("/shop/cart?x=1", "s1"), ("/shopfoo", None),
             ("/api", "a1"), ("/api/x", "a1"), ("/apiv1", None), ("/api/v1", "v1"),
             ("/api/v1/", "v1"), ("/api/v1/items", "v1"), ("/api/v1/users", "u1"),
             ("/api/v1/users/7", "u1"), ("/api/v1/usersx", "v1"), ("/", None)]
    for path, want in cases:
        st, who, _ = get(path)
        if want:
            check(st == 200 and who == want, "path %s -> %s (got %d %s)" % (path, want, st, who))
        else:
            check(st == 503, "path %s -> 503 (got %d %s)" % (path, st, who))

    # Without a cookie, requests spread over the servers.
    seen = set()
    for _ in range(9):
        st, who, _ = get("/", "www.example.com")
        seen.add(who)
    check(seen == {"w1", "w2", "w3"}, "round robin without cookie: %r" % seen)

    # With the cookie the first answer set, every request sticks to one server.
    st, first, setcookie = get("/", "www.example.com")
    check(setcookie is not None and setcookie.startswith("JSESSIONID=%s~" % first),
          "cookie prefixed with the server's own value: %r" % setcookie)
    cookie = setcookie.split(";")[0]
    same = [get("/", "www.example.com", cookie)[1] for _ in range(12)]
    check(all(w == first for w in same), "sticky: %r (want all %s)" % (same, first))
    # Each server has its own value: sticking to another server works too.
    others = {"w1", "w2", "w3"} - {first}
    other = sorted(others)[0]
    same2 = [get("/", "www.example.com", "JSESSIONID=%s~sx" % other)[1] for _ in range(6)]
    check(all(w == other for w in same2), "sticky to %s: %r" % (other, same2))
finally:
    hap.terminate()
    hap.wait()
    for b in backends:
        b.stop()

finish()
