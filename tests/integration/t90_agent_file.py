#!/usr/bin/env python3
"""The agent end to end with the file source: a real master-worker HAProxy,
real backends on 127.0.0.x, the real registry, and real requests. Traffic
follows file edits, unchanged input never reloads, a steady load survives
20+ reloads without a failed request, a refused or failing config never
stays live, and a dead registry leaves the live config alone."""
import http.client
import http.server
import json
import os
import signal
import socket
import subprocess
import threading
import time

from backends import Backend
from lrtest import (BIN, HAPROXY, SANITIZED, Server, check, finish, free_port, tmpdir,
                    wait_for)

DEBOUNCE_MS = 250
TABLE = "agent-file"

d = tmpdir()
bport = free_port()
fport = free_port()
live = os.path.join(d, "haproxy.cfg")
sock = os.path.join(d, "master.sock")
services_path = os.path.join(d, "services.json")
store = "sqlite:" + os.path.join(d, "registry.db")

INITIAL = """global
    maxconn 1024

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend http
    bind 127.0.0.1:%d
""" % fport

ADDR = {"w1": "127.0.0.2", "w2": "127.0.0.3", "w3": "127.0.0.4", "a1": "127.0.0.5",
        "v1": "127.0.0.6", "p1": "127.0.0.7", "f1": "127.0.0.8", "x1": "127.0.0.9"}


def svc(name, mode, pred, ids, cookie=None):
    s = {"serviceName": name, "port": bport, "configMode": mode, "predicate": pred,
         "containers": [{"id": i, "ip": ADDR[i]} for i in ids]}
    if cookie:
        s["cookie"] = cookie
    return s


def write_services(items, indent=None):
    tmp = services_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(items, f, indent=indent)
    os.replace(tmp, services_path)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def master(cmd):
    """One master CLI command; retried while the master re-executes."""
    for _ in range(250):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(5)
            s.connect(sock)
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            s.close()
            if out:
                return out.decode()
        except OSError:
            s.close()
        time.sleep(0.02)
    raise RuntimeError("master CLI does not answer")


def reloads():
    """(reloads, failed) as the master counts them."""
    for line in master("show proc;quit").splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1] == "master":
            failed = int(line.split("[failed:")[1].split("]")[0]) if "[failed:" in line else 0
            return int(parts[2]), failed
    raise RuntimeError("no master in show proc")


def get(host, path="/", cookie=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", fport, timeout=timeout)
    try:
        headers = {"Host": host, "Connection": "close"}
        if cookie:
            headers["Cookie"] = cookie
        c.request("GET", path, headers=headers)
        r = c.getresponse()
        body = r.read().decode()
        return r.status, body.split(" ")[0] if r.status == 200 else None, r.getheader("Set-Cookie")
    finally:
        c.close()


class Agent:
    def __init__(self, registry_url, extra=None):
        self.logpath = os.path.join(d, "agent-%d.log" % time.time_ns())
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [BIN, "agent", "--registry", registry_url, "--table", TABLE,
             "--source", "file:" + services_path, "--haproxy-config", live,
             "--haproxy-master-socket", sock, "--debounce", str(DEBOUNCE_MS),
             "--keep", "3"] + (extra or []),
            stdout=self.log, stderr=self.log)

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def count(self, event):
        return self.text().count("event=%s " % event) + self.text().count("event=%s\n" % event)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def agent_once(registry_url):
    return subprocess.run(
        [BIN, "agent", "--once", "--registry", registry_url, "--table", TABLE,
         "--source", "file:" + services_path, "--haproxy-config", live,
         "--haproxy-master-socket", sock, "--timeout", "3000"],
        capture_output=True, timeout=60)


class FakeRegistry:
    """Answers every POST /generate with fixed bytes (a config of our choice)."""

    def __init__(self, answer):
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(outer.answer)))
                self.end_headers()
                self.wfile.write(outer.answer)

            def log_message(self, *a):
                pass

        self.answer = answer
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


backends = [Backend(name, ip, bport) for name, ip in sorted(ADDR.items())]
for b in backends:
    # HAProxy's TCP health checks connect and close: not worth a traceback.
    b.server.handle_error = lambda request, address: None
stop = threading.Event()
with open(live, "w") as f:
    f.write(INITIAL)
haplog = open(os.path.join(d, "haproxy.log"), "wb")
hap = subprocess.Popen([HAPROXY, "-W", "-S", sock, "-f", live], stdout=haplog, stderr=haplog)
registry = agent = None
try:
    check(wait_for(lambda: os.path.exists(sock) and reloads(), 10) is not None,
          "haproxy master socket answers")
    registry = Server(store, ["--frontend-bind", "127.0.0.1:%d" % fport])
    url = "http://127.0.0.1:%d" % registry.port

    web = svc("web", "host", "www.example.com", ["w1", "w2"], cookie="JSESSIONID")
    api = svc("api", "path", "api", ["a1"])
    apiv1 = svc("apiv1", "path", "api/v1", ["v1"])
    p = svc("p", "path", "p", ["p1"])
    write_services([web, api, apiv1, p])
    agent = Agent(url)
    t = wait_for(lambda: get("www.example.com")[0] == 200, 15)
    check(t is not None, "first sync routes traffic (%s)" % agent.text()[-2000:])
    print("first sync after %.2fs" % (t or -1), flush=True)
    check(read(live) != INITIAL.encode(), "live config replaced")
    check(wait_for(lambda: read(live + ".1") == read(live), 5) is not None,
          "history keeps the live config as .1")

    # Host routing, with and without a port.
    for host in ("www.example.com", "WWW.Example.com", "www.example.com:%d" % fport):
        st, who, _ = get(host)
        check(st == 200 and who in ("w1", "w2"), "host %s -> web (%s %s)" % (host, st, who))
    check(get("other.example.com")[0] == 503, "unknown host -> 503")

    # Path routing: boundaries and nested prefixes.
    for path, want in [("/p", "p1"), ("/p/", "p1"), ("/p/x", "p1"), ("/pfoo", None),
                       ("/api", "a1"), ("/api/x", "a1"), ("/api/v1", "v1"),
                       ("/api/v1/x", "v1"), ("/api/v2", "a1"), ("/apiv1", None)]:
        st, who, _ = get("localhost", path)
        check((st, who) == ((200, want) if want else (503, None)),
              "path %s -> %s (got %s %s)" % (path, want, st, who))

    # Cookie stickiness.
    st, first, setcookie = get("www.example.com")
    check(setcookie is not None and setcookie.startswith("JSESSIONID=%s~" % first),
          "sticky cookie set: %r" % setcookie)
    if setcookie:
        cookie = setcookie.split(";")[0]
        same = [get("www.example.com", cookie=cookie)[1] for _ in range(10)]
        check(all(w == first for w in same), "sticky: %r (want %s)" % (same, first))
    seen = {get("www.example.com")[1] for _ in range(6)}
    check(seen == {"w1", "w2"}, "round robin without cookie: %r" % seen)

    # Traffic follows the file within the debounce window (plus a reload).
    limit = DEBOUNCE_MS / 1000.0 + (4.0 if SANITIZED else 1.5)
    web["containers"].append({"id": "w3", "ip": ADDR["w3"]})
    write_services([web, api, apiv1, p])
    t = wait_for(lambda: "w3" in {get("www.example.com")[1] for _ in range(3)}, 10)
    check(t is not None and t < limit, "added container gets traffic (%.2fs)" % (t or -1))
    print("container added -> traffic in %.2fs" % (t or -1), flush=True)

    web["containers"] = [c for c in web["containers"] if c["id"] != "w1"]
    write_services([web, api, apiv1, p])
    t = wait_for(lambda: "w1" not in {get("www.example.com")[1] for _ in range(6)}, 10)
    check(t is not None and t < limit, "removed container loses traffic (%.2fs)" % (t or -1))
    print("container removed -> no traffic in %.2fs" % (t or -1), flush=True)

    pfoo = svc("pfoo", "path", "pfoo", ["f1"])
    write_services([web, api, apiv1, p, pfoo])
    t = wait_for(lambda: get("localhost", "/pfoo")[1] == "f1", 10)
    check(t is not None and t < limit, "added service gets traffic (%.2fs)" % (t or -1))
    check(get("localhost", "/p")[1] == "p1", "/p still -> p1 next to /pfoo")

    write_services([web, api, apiv1, pfoo])
    t = wait_for(lambda: get("localhost", "/p")[0] == 503, 10)
    check(t is not None and t < limit, "removed service gets no traffic (%.2fs)" % (t or -1))
    check(get("localhost", "/pfoo")[1] == "f1", "/pfoo unaffected by removing /p")

    # Unchanged input: the same bytes rewritten, then the same services
    # reformatted. Neither reloads.
    time.sleep(DEBOUNCE_MS / 1000.0 + 0.5)
    before, before_log = reloads(), agent.count("reloaded")
    unchanged_log = agent.count("unchanged")
    write_services([web, api, apiv1, pfoo])
    time.sleep(DEBOUNCE_MS / 1000.0 + 0.7)
    check(reloads() == before, "same bytes: no reload (%r -> %r)" % (before, reloads()))
    check(agent.count("unchanged") == unchanged_log, "same bytes: not even a registry call")
    write_services([web, api, apiv1, pfoo], indent=2)
    check(wait_for(lambda: agent.count("unchanged") > unchanged_log, 5) is not None,
          "reformatted file: one call answered unchanged")
    check(reloads() == before and agent.count("reloaded") == before_log,
          "reformatted file: no reload")

    # A burst of edits, each within the debounce time of the last: one reload.
    time.sleep(DEBOUNCE_MS / 1000.0 + 0.3)
    before = reloads()[0]
    for i in range(8):
        web["containers"] = [{"id": c, "ip": ADDR[c]} for c in ["w2", "w3", "x1"][: 2 + i % 2]]
        write_services([web, api, apiv1, pfoo])
        time.sleep(DEBOUNCE_MS / 1000.0 / 3)
    time.sleep(DEBOUNCE_MS / 1000.0 + 0.7)
    check(reloads()[0] - before == 1, "a burst of 8 edits: one reload (%d)" %
          (reloads()[0] - before))

    # Edits that never pause still land: a burst waits at most 5 s.
    before = reloads()[0]
    t0 = time.time()
    landed = None
    i = 0
    while time.time() - t0 < 6.5:
        # Every edit a new state, so that any round reloads.
        write_services([web, api, apiv1, pfoo, svc("tick", "host", "t%d.example.com" % i, ["x1"])])
        i += 1
        time.sleep(DEBOUNCE_MS / 1000.0 / 3)
        if landed is None and reloads()[0] > before:
            landed = time.time() - t0
    check(landed is not None and 4.5 <= landed <= 6.4,
          "never-quiet edits: first reload after ~5 s (%r)" % landed)
    print("never-quiet edits -> first reload after %.2fs" % (landed or -1), flush=True)
    web["containers"] = [{"id": c, "ip": ADDR[c]} for c in ["w2", "w3"]]
    write_services([web, api, apiv1, pfoo])
    time.sleep(DEBOUNCE_MS / 1000.0 + 0.7)

    # A steady load across 20+ reloads: not one failed request.
    results = {"ok": 0, "fail": 0, "errors": []}
    lock = threading.Lock()

    def load():
        while not stop.is_set():
            try:
                st, who, _ = get("www.example.com", timeout=5)
                good = st == 200 and who in ("w2", "w3", "x1")
                err = None if good else "status %s from %s" % (st, who)
            except Exception as e:  # any failure counts
                good, err = False, repr(e)
            with lock:
                results["ok" if good else "fail"] += 1
                if err and len(results["errors"]) < 5:
                    results["errors"].append(err)

    threads = [threading.Thread(target=load) for _ in range(3)]
    for th in threads:
        th.start()
    start_reloads = reloads()[0]
    nr_reloads = 22
    for i in range(nr_reloads):
        ids = ["w2", "w3"] + (["x1"] if i % 2 == 0 else [])
        web["containers"] = [{"id": c, "ip": ADDR[c]} for c in ids]
        want = reloads()[0] + 1
        write_services([web, api, apiv1, pfoo])
        if wait_for(lambda: reloads()[0] >= want, 10) is None:
            break
    stop.set()
    for th in threads:
        th.join()
    done = reloads()[0] - start_reloads
    print("load: %d requests ok, %d failed across %d reloads" %
          (results["ok"], results["fail"], done), flush=True)
    check(done >= 20, "20+ reloads under load (%d)" % done)
    check(results["fail"] == 0 and results["ok"] > 100,
          "no failed request under reloads: %r" % results)
    check(reloads()[1] == 0, "no failed reload in the master")

    # History: only --keep 3 configs, the newest equal to the live one.
    check(wait_for(lambda: read(live + ".1") == read(live), 5) is not None and
          os.path.exists(live + ".3") and not os.path.exists(live + ".4"),
          "history rotates at --keep 3")

    # SIGHUP: a full resync that finds nothing to change.
    n = agent.count("unchanged")
    agent.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: agent.count("unchanged") > n, 5) is not None and
          "why=sighup" in agent.text(), "SIGHUP resyncs")

    # A dead registry: the agent keeps the live config, retries with
    # backoff, and catches up once the registry is back.
    good = read(live)
    before = reloads()
    registry.stop()
    x = svc("xtra", "host", "x.example.com", ["x1"])
    write_services([web, api, apiv1, pfoo, x])
    check(wait_for(lambda: agent.count("retry") >= 2, 10) is not None,
          "registry down: agent retries")
    check(read(live) == good and reloads() == before, "registry down: live config kept")
    check(get("www.example.com")[0] == 200, "registry down: traffic still served")
    registry = Server(store, ["--frontend-bind", "127.0.0.1:%d" % fport], port=registry.port)
    t = wait_for(lambda: get("x.example.com")[1] == "x1", 15)
    check(t is not None, "registry back: the pending change lands")
    print("registry back -> change applied after %.2fs" % (t or -1), flush=True)

    # SIGTERM: a clean exit.
    rc = agent.stop()
    check(rc == 0 and "event=stop" in agent.text(), "SIGTERM: clean exit (%r)" % rc)
    agent = None

    # A config that fails `haproxy -c` never reaches the live file.
    good = read(live)
    before = reloads()
    fake = FakeRegistry(b"global\n    no-such-keyword here\n")
    r = agent_once(fake.url)
    check(r.returncode == 1, "refused config: exit 1 (%d %r)" % (r.returncode, r.stderr[-500:]))
    check(b"event=config_rejected" in r.stderr, "refused config logged")
    check(read(live) == good and reloads() == before, "refused config: live file and haproxy untouched")
    check(os.path.exists(live + ".rejected") and b"no-such-keyword" in read(live + ".rejected"),
          "refused config kept as .rejected")
    check(not [n for n in os.listdir(d) if ".tmp." in n], "no temp file left behind")

    # A config HAProxy accepts with -c but cannot load (its port is taken):
    # the agent puts the last good config back and reloads again.
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    fake.answer = good.replace(b"bind 127.0.0.1:%d" % fport,
                               b"bind 127.0.0.1:%d\n    bind 127.0.0.1:%d" %
                               (fport, busy.getsockname()[1]))
    check(fake.answer != good, "test config differs")
    r = agent_once(fake.url)
    busy.close()
    check(r.returncode == 1 and b"outcome=rolled_back" in r.stderr,
          "failed reload rolled back (%d %r)" % (r.returncode, r.stderr[-800:]))
    check(read(live) == good, "rollback: live file holds the last good config")
    check(os.path.exists(live + ".failed"), "failed config kept as .failed")
    check(b"could not load the new config" in r.stderr, "the master's failed reload was seen")
    print(r.stderr.decode(errors="replace").strip().splitlines()[-1][:300], flush=True)
    check(get("www.example.com")[0] == 200 and get("x.example.com")[1] == "x1",
          "rollback: traffic still served")
    fake.stop()

    # A dead registry with --once: exit 3, nothing touched.
    good = read(live)
    before = reloads()
    r = agent_once("http://127.0.0.1:%d" % free_port())
    check(r.returncode == 3 and b"event=registry_failed" in r.stderr,
          "dead registry: exit 3 (%d)" % r.returncode)
    check(read(live) == good and reloads() == before, "dead registry: live config kept")
finally:
    stop.set()
    if agent:
        agent.stop()
    if registry:
        registry.stop()
    hap.terminate()
    try:
        hap.wait(timeout=10)
    except subprocess.TimeoutExpired:
        hap.kill()
    for b in backends:
        b.stop()

finish()
