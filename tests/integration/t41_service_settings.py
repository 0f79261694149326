#!/usr/bin/env python3
"""Service settings (issue 12 part B) with real traffic through a real
HAProxy on loopback: leastconn sends new requests to the idle server, an
inserted cookie is set by HAProxy and sticks, a server whose health path
answers 500 gets no traffic while its sibling does, weight 0 gets none, and
the config of every setting passes `haproxy -c`."""
import http.client
import http.server
import os
import socketserver
import subprocess
import threading
import time

from lrtest import (HAPROXY, check, finish, free_port, haproxy_check, payload, run_cli,
                    tmpdir)


class Handler(http.server.BaseHTTPRequestHandler):
    """Answers "<name> <path>"; /health with the server's health status;
    /slow after holding the connection until the test releases it."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        status = 200
        if self.path.startswith("/health"):
            status = self.server.health
        elif self.path.startswith("/slow"):
            slow_started.set()
            # Held until the quick requests are done, however slow they are.
            slow_release.wait(30)
        body = ("%s %s\n" % (self.server.name, self.path)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


slow_started = threading.Event()
slow_release = threading.Event()


class ThreadedServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # health checks close their connections early: not a failure


class Backend:
    def __init__(self, name, ip, port, health=200):
        self.server = ThreadedServer((ip, port), Handler)
        self.server.name = name
        self.server.health = health
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


d = tmpdir()
store = "sqlite:" + os.path.join(d, "settings.db")
bport = free_port()
fport = free_port()

# service -> (settings, [(id, ip, weight or None, health status)])
layout = {
    "lc": ({"balance": "leastconn"},
           [("l1", "127.0.1.1", None, 200), ("l2", "127.0.1.2", None, 200)]),
    "ins": ({"cookie": "SRV", "cookieMode": "insert"},
            [("i1", "127.0.2.1", None, 200), ("i2", "127.0.2.2", None, 200)]),
    "hc": ({"healthCheck": {"path": "/health?deep=1", "expectStatus": 200,
                            "interval": "100ms", "rise": 1, "fall": 1}},
           [("h1", "127.0.3.1", None, 500), ("h2", "127.0.3.2", None, 200)]),
    "wz": ({"maxconn": 100, "timeoutServer": "10s"},
           [("z1", "127.0.4.1", 0, 200), ("z2", "127.0.4.2", None, 200)]),
    "src": ({"balance": "source", "timeoutTunnel": "1h"},
            [("s1", "127.0.5.1", 3, 200), ("s2", "127.0.5.2", 1, 200)]),
}
backends, running, candidates = [], [], []
for svc, (settings, conts) in sorted(layout.items()):
    c = {"serviceName": svc, "port": bport, "predicate": svc + ".example.com",
         "containers": []}
    c.update(settings)
    for cid, ip, weight, health in conts:
        backends.append(Backend(cid, ip, bport, health))
        running.append({"serviceName": svc, "id": cid, "ip": ip})
        ct = {"id": cid, "ip": ip}
        if weight is not None:
            ct["weight"] = weight
        c["containers"].append(ct)
    candidates.append(c)

r = run_cli(["generate", "--store", store, "--frontend-bind", "127.0.0.1:%d" % fport],
            stdin=payload("settings", running, candidates))
check(r.returncode == 0, "generate: %r" % r.stderr)
cfg = r.stdout.decode()
ok, out = haproxy_check(cfg)
check(ok, "config valid: " + out)
for line in ("    balance leastconn\n", "    cookie SRV insert indirect nocache httponly\n",
             "    option httpchk GET /health?deep=1\n", "    http-check expect status 200\n",
             "    balance source\n    hash-type consistent\n", "    timeout tunnel 1h\n",
             "    timeout server 10s\n",
             " check inter 100ms rise 1 fall 1\n",
             " check maxconn 100 weight 0\n"):
    check(line in cfg, "config has %r" % line)

# The settings are stored: a call with only `running` keeps them.
r2 = run_cli(["generate", "--store", store, "--frontend-bind", "127.0.0.1:%d" % fport],
             stdin=payload("settings", running))
check(r2.returncode == 0 and r2.stdout.decode() == cfg,
      "a running-only call renders the same config")

cfgpath = os.path.join(d, "haproxy.cfg")
with open(cfgpath, "w") as f:
    f.write(cfg)
hap = subprocess.Popen([HAPROXY, "-db", "-f", cfgpath], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)


def get(host, path="/", cookie=None, timeout=10):
    """(status, server name, [Set-Cookie values])"""
    for _ in range(50):
        try:
            c = http.client.HTTPConnection("127.0.0.1", fport, timeout=timeout)
            headers = {"Host": host}
            if cookie:
                headers["Cookie"] = cookie
            c.request("GET", path, headers=headers)
            resp = c.getresponse()
            body = resp.read().decode()
            cookies = resp.msg.get_all("Set-Cookie") or []
            c.close()
            return resp.status, body.split(" ")[0], cookies
        except ConnectionRefusedError:
            time.sleep(0.1)
    raise RuntimeError("haproxy did not come up")


try:
    # leastconn: while one server holds a slow request, new ones go to the
    # other (round robin would alternate). First wait for HAProxy.
    get("lc.example.com")
    slow = {}
    t = threading.Thread(target=lambda: slow.update(r=get("lc.example.com", "/slow")))
    t.start()
    check(slow_started.wait(10), "the slow request reached a server")
    quick = []
    for _ in range(6):
        # HAProxy counts a quick request's connection until it has seen it
        # end, a moment after the answer: asked at once, the next one can
        # find both servers at one and go round robin (seen under ASan).
        time.sleep(0.2)
        quick.append(get("lc.example.com")[1])
    slow_release.set()
    t.join()
    busy = slow.get("r", (0, None, []))[1]
    check(busy in ("l1", "l2"), "slow request answered: %r" % (slow,))
    check(len(set(quick)) == 1 and busy not in quick,
          "leastconn: quick requests all on the idle server: %r (busy %s)" % (quick, busy))

    # insert: HAProxy sets SRV=<server id> itself, httponly, not secure
    # without HTTPS; a request with it sticks to that server.
    st, first, cookies = get("ins.example.com")
    srv = [c for c in cookies if c.startswith("SRV=")]
    check(st == 200 and srv == ["SRV=%s; path=/; HttpOnly" % first],
          "inserted cookie for %s: %r" % (first, cookies))
    for who in ("i1", "i2"):
        same = [get("ins.example.com", cookie="SRV=%s" % who) for _ in range(6)]
        check(all(s[1] == who for s in same), "sticks to %s: %r" % (who, [s[1] for s in same]))
        # indirect: a client that has the cookie is not sent it again
        check(all(not [c for c in s[2] if c.startswith("SRV=")] for s in same),
              "no new cookie once it is set (%s)" % who)
    check({get("ins.example.com")[1] for _ in range(6)} == {"i1", "i2"},
          "without the cookie requests spread")

    # healthCheck: h1's health path answers 500, so HAProxy takes it out
    # (after its first check, 100 ms; give a loaded machine some seconds).
    def only_h2():
        return all(get("hc.example.com")[1] == "h2" for _ in range(4))
    deadline = time.time() + 10
    while time.time() < deadline and not only_h2():
        time.sleep(0.2)
    seen = [get("hc.example.com") for _ in range(10)]
    check(all(s[0] == 200 and s[1] == "h2" for s in seen),
          "health-checked: only h2 gets traffic: %r" % [s[:2] for s in seen])

    # weight 0: no traffic for z1.
    seen = [get("wz.example.com")[1] for _ in range(10)]
    check(seen == ["z2"] * 10, "weight 0 gets nothing: %r" % seen)

    # source: one client address always reaches one server.
    seen = {get("src.example.com")[1] for _ in range(6)}
    check(len(seen) == 1 and seen <= {"s1", "s2"}, "source: one server: %r" % seen)
finally:
    hap.terminate()
    hap.wait()
    for b in backends:
        b.stop()

finish()
