#!/usr/bin/env python3
"""The agent end to end with the file source: a real master-worker HAProxy,
real backends on 127.0.0.x, the real registry, and real requests. Traffic
follows file edits, unchanged input never reloads, a steady load survives
20+ reloads without a failed request, a refused or failing config never
stays live, and a dead registry leaves the live config alone. A throttled
(429) or garbled answer and a missing config folder are retried until the
change lands; a `haproxy -c` that runs out of time is refused once, not
retried forever.

Timing is asserted on what the agent logs (when a round started, how long it
took), not on how fast a loaded machine runs HAProxy; a burst whose writes
the machine spaced out more than intended is run again, not judged."""
import datetime
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
from lrtest import (master_command, master_reloads, BIN, HAPROXY, SANITIZED, Server, check, finish, free_port, tmpdir,
                    wait_for)

DEBOUNCE_MS = 250
TABLE = "agent-file"

# The burst checks need edits closer than half the debounce, for seconds on
# end; on a loaded machine a normal-priority writer (and the agent that
# must see its edits) can be stalled longer than that. Where allowed (CI
# runs as root) this process and what it starts run at a raised priority.
try:
    os.setpriority(os.PRIO_PROCESS, 0, -10)
except PermissionError:
    pass

d = tmpdir()
bport = free_port()
fport = free_port()
# In a folder of its own, which a test takes away for a while.
conf = os.path.join(d, "conf")
os.makedirs(conf)
live = os.path.join(conf, "haproxy.cfg")
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
    return master_command(sock, cmd)


def reloads():
    """(reloads, failed) as the master counts them."""
    return master_reloads(sock)


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
             "--keep", "3", "--runtime", "off"] + (extra or []),
            stdout=self.log, stderr=self.log)

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def count(self, event):
        return self.text().count("event=%s " % event) + self.text().count("event=%s\n" % event)

    def rounds(self):
        """(start, end) wall-clock seconds of every round that reached
        HAProxy (event=applied or unchanged), from the log: the line's ts
        is the end, its ms the duration."""
        out = []
        for line in self.text().splitlines():
            f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
            if f.get("event") not in ("applied", "unchanged") or "ms" not in f:
                continue
            end = datetime.datetime.strptime(f["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                tzinfo=datetime.timezone.utc).timestamp()
            out.append((end - int(f["ms"]) / 1000.0, end))
        return out

    def round_after(self, since, timeout=30):
        """The first round that started at or after `since` (waited for),
        or None."""
        found = []

        def look():
            found[:] = [r for r in self.rounds() if r[0] >= since - 0.005][:1]
            return found
        wait_for(look, timeout)
        return found[0] if found else None

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
    # A reload that fails takes HAProxy a while on a loaded machine: with
    # too short a limit the agent sees a timeout instead of the failure.
    return subprocess.run(
        [BIN, "agent", "--once", "--registry", registry_url, "--table", TABLE,
         "--source", "file:" + services_path, "--haproxy-config", live,
         "--haproxy-master-socket", sock, "--timeout", "30000", "--runtime", "off"],
        capture_output=True, timeout=180)


class FakeRegistry:
    """Answers every POST /generate with fixed bytes (a config of our choice),
    after the (status, body) answers queued in `script`, one per request."""

    def __init__(self, answer):
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.requests += 1
                    code, body = outer.script.pop(0) if outer.script else (200, outer.answer)
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.answer = answer
        self.script = []
        self.requests = 0
        self.lock = threading.Lock()
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
    # The agent's answer routes through maps (routing.mode auto), here.
    maps = os.path.join(d, "maps")
    with open(os.path.join(d, "settings.yaml"), "w") as f:
        f.write("routing:\n  mapDir: %s\n" % maps)
    r = subprocess.run([BIN, "settings", "put", "--store", store,
                        os.path.join(d, "settings.yaml")], capture_output=True, timeout=60)
    check(r.returncode == 0, "settings put (%r)" % r.stderr)
    registry = Server(store, ["--frontend-bind", "127.0.0.1:%d" % fport])
    url = "http://127.0.0.1:%d" % registry.port

    web = svc("web", "host", "www.example.com", ["w1", "w2"], cookie="JSESSIONID")
    api = svc("api", "path", "api", ["a1"])
    apiv1 = svc("apiv1", "path", "api/v1", ["v1"])
    p = svc("p", "path", "p", ["p1"])
    write_services([web, api, apiv1, p])
    agent = Agent(url)
    t = wait_for(lambda: get("www.example.com")[0] == 200, 30)
    check(t is not None, "first sync routes traffic (%s)" % agent.text()[-2000:])
    print("first sync after %.2fs" % (t or -1), flush=True)
    check(read(live) != INITIAL.encode(), "live config replaced")
    check(b"map_str(%s/hosts.map)" % maps.encode() in read(live) and
          b" acl " not in read(live), "the agent's config routes by maps")
    check(read(os.path.join(maps, "hosts.map")) == b"www.example.com web\n" and
          read(os.path.join(maps, "paths.map")) == b"/api/ api\n/api/v1/ apiv1\n/p/ p\n",
          "the map files are written with it")
    check(wait_for(lambda: read(live + ".1") == read(live), 30) is not None,
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

    # Traffic follows the file: the round starts within the debounce time
    # (plus the loop's tick), and traffic follows once its reload is done.
    slack = 2.0 if SANITIZED else 0.5

    def follows(what, change, pred):
        t0 = time.time()
        change()
        t = wait_for(pred, 30)
        r = agent.round_after(t0)
        check(r is not None and r[0] - t0 < DEBOUNCE_MS / 1000.0 + slack,
              "%s: round starts within the debounce (%.2fs)" % (what, r[0] - t0 if r else -1))
        check(t is not None and r is not None and t < r[1] - t0 + 1.0 + slack,
              "%s: traffic follows the reload (%.2fs, reload done after %.2fs)" %
              (what, t or -1, r[1] - t0 if r else -1))
        print("%s -> traffic in %.2fs" % (what, t or -1), flush=True)

    web["containers"].append({"id": "w3", "ip": ADDR["w3"]})
    follows("container added", lambda: write_services([web, api, apiv1, p]),
            lambda: "w3" in {get("www.example.com")[1] for _ in range(3)})

    web["containers"] = [c for c in web["containers"] if c["id"] != "w1"]
    follows("container removed", lambda: write_services([web, api, apiv1, p]),
            lambda: "w1" not in {get("www.example.com")[1] for _ in range(6)})

    pfoo = svc("pfoo", "path", "pfoo", ["f1"])
    follows("service added", lambda: write_services([web, api, apiv1, p, pfoo]),
            lambda: get("localhost", "/pfoo")[1] == "f1")
    check(get("localhost", "/p")[1] == "p1", "/p still -> p1 next to /pfoo")

    follows("service removed", lambda: write_services([web, api, apiv1, pfoo]),
            lambda: get("localhost", "/p")[0] == 503)
    check(get("localhost", "/pfoo")[1] == "f1", "/pfoo unaffected by removing /p")

    # Unchanged input: the same bytes rewritten, then the same services
    # reformatted. Neither reloads. (Every round so far has ended: each
    # follows() waited for its own.)
    before, before_log = reloads(), agent.count("applied")
    unchanged_log = agent.count("unchanged")
    write_services([web, api, apiv1, pfoo])
    # Nothing is to happen: give the agent many ticks to get it wrong.
    time.sleep(DEBOUNCE_MS / 1000.0 + 0.7)
    check(reloads() == before, "same bytes: no reload (%r -> %r)" % (before, reloads()))
    check(agent.count("unchanged") == unchanged_log, "same bytes: not even a registry call")
    write_services([web, api, apiv1, pfoo], indent=2)
    check(wait_for(lambda: agent.count("unchanged") > unchanged_log, 30) is not None,
          "reformatted file: one call answered unchanged")
    check(reloads() == before and agent.count("applied") == before_log,
          "reformatted file: no reload")

    def burst(states, pause):
        """Write `states` in a row, `pause` apart; the largest gap between
        two writes and the time of the last one."""
        last = gap = None
        for st in states:
            write_services(st)
            now = time.time()
            gap = max(gap or 0, now - last) if last else 0
            last = now
            time.sleep(pause)
        return gap, last

    # A burst of edits, each within the debounce time of the last: one
    # reload. Writes half a debounce apart or closer count; when the machine
    # spaced them out more, the burst proves nothing and is run again.
    for attempt in range(5):
        before = reloads()[0]
        states = []
        for i in range(8):
            web["containers"] = [{"id": c, "ip": ADDR[c]} for c in ["w2", "w3", "x1"][: 2 + i % 2]]
            states.append([web, api, apiv1, pfoo, svc("burst", "host", "b%d.example.com" % attempt, ["x1"])])
        gap, last = burst(states, DEBOUNCE_MS / 1000.0 / 6)
        r = agent.round_after(last)
        check(r is not None, "burst: the last edit lands")
        if gap < DEBOUNCE_MS / 1000.0 / 2:
            break
        print("burst: writes %.2fs apart under load, again" % gap, flush=True)
    check(gap < DEBOUNCE_MS / 1000.0 / 2, "burst: writes close enough in one of 5 tries")
    check(reloads()[0] - before == 1, "a burst of 8 edits: one reload (%d)" %
          (reloads()[0] - before))

    # Edits that never pause still land: a burst waits at most 5 s, counted
    # from the first edit to the start of the round (the round's own time
    # depends on the machine).
    for attempt in range(5):
        n = len(agent.rounds())
        t0 = time.time()
        last = t0
        gap = i = 0
        while time.time() - t0 < 15 and len(agent.rounds()) == n:
            # Every edit a new state, so that any round reloads.
            write_services([web, api, apiv1, pfoo,
                            svc("tick", "host", "t%d-%d.example.com" % (attempt, i), ["x1"])])
            now = time.time()
            gap, last = max(gap, now - last), now
            i += 1
            time.sleep(DEBOUNCE_MS / 1000.0 / 6)
        rounds = agent.rounds()
        started = rounds[n][0] - t0 if len(rounds) > n else None
        if gap < DEBOUNCE_MS / 1000.0 / 2:
            break
        print("never-quiet edits: writes %.2fs apart under load, again" % gap, flush=True)
        agent.round_after(last)
    check(gap < DEBOUNCE_MS / 1000.0 / 2, "never-quiet edits: close enough in one of 5 tries")
    check(started is not None and 4.9 <= started <= 5.0 + 2 * slack,
          "never-quiet edits: first round starts after ~5 s (%r)" % started)
    print("never-quiet edits -> first round after %.2fs" % (started or -1), flush=True)
    web["containers"] = [{"id": c, "ip": ADDR[c]} for c in ["w2", "w3"]]
    t0 = time.time()
    write_services([web, api, apiv1, pfoo])
    check(agent.round_after(t0) is not None, "back to w2 w3")

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
        if wait_for(lambda: reloads()[0] >= want, 30) is None:
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
    check(wait_for(lambda: read(live + ".1") == read(live), 30) is not None and
          os.path.exists(live + ".3") and not os.path.exists(live + ".4"),
          "history rotates at --keep 3")

    # SIGHUP: a full resync that finds nothing to change.
    n = agent.count("unchanged")
    nm = agent.text().count("not_modified=1")
    agent.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: agent.count("unchanged") > n, 30) is not None and
          "why=sighup" in agent.text(), "SIGHUP resyncs")
    # Again: the same payload as the last sync, which left the table as it
    # was, so the agent names the index it applied and gets a 304.
    n = agent.count("unchanged")
    agent.proc.send_signal(signal.SIGHUP)
    check(wait_for(lambda: agent.count("unchanged") > n, 30) is not None and
          agent.text().count("not_modified=1") > nm,
          "a second SIGHUP: a 304, nothing downloaded or applied (%s)" % agent.text()[-600:])
    # The first resync's answer gave the body a token: the second sent the
    # token alone, and the registry answered before the body was sent.
    last = [l for l in agent.text().splitlines() if "event=unchanged" in l][-1]
    check("body_sent=0" in last, "a second SIGHUP: the body token, no body sent (%s)" % last)

    # A dead registry: the agent keeps the live config, retries with
    # backoff, and catches up once the registry is back.
    good = read(live)
    before = reloads()
    registry.stop()
    x = svc("xtra", "host", "x.example.com", ["x1"])
    write_services([web, api, apiv1, pfoo, x])
    check(wait_for(lambda: agent.count("retry") >= 2, 30) is not None,
          "registry down: agent retries")
    check(read(live) == good and reloads() == before, "registry down: live config kept")
    check(get("www.example.com")[0] == 200, "registry down: traffic still served")
    registry = Server(store, ["--frontend-bind", "127.0.0.1:%d" % fport], port=registry.port)
    t = wait_for(lambda: get("x.example.com")[1] == "x1", 60)
    check(t is not None, "registry back: the pending change lands")
    print("registry back -> change applied after %.2fs" % (t or -1), flush=True)

    # SIGTERM: a clean exit.
    rc = agent.stop()
    check(rc == 0 and "event=stop" in agent.text(), "SIGTERM: clean exit (%r)" % rc)
    agent = None

    # A registry behind API Gateway: throttled (429), then a 200 whose body
    # is a gateway's page, not a config. Neither is the last word: the
    # agent retries with backoff until the config lands.
    good = read(live)
    before = reloads()
    fake = FakeRegistry(good + b"# after throttling\n")
    fake.script = [(429, b'{"message":"Too Many Requests"}\n')] * 2 + \
        [(200, b"<html><body>Service busy</body></html>\n")] * 2
    agent = Agent(fake.url)
    # The live file is renamed before the reload: wait for the reload.
    t = wait_for(lambda: agent.count("applied") == 1, 60)
    check(t is not None and read(live) == fake.answer,
          "429 and a page instead of a config: retried until applied (%s)" %
          agent.text()[-1500:])
    print("throttled, then garbled -> applied after %.2fs" % (t or -1), flush=True)
    check(fake.requests >= 5 and agent.count("registry_failed") >= 2 and
          agent.count("config_rejected") >= 2 and agent.count("retry") >= 4,
          "each failure logged and retried (%d requests)" % fake.requests)
    check(reloads()[0] == before[0] + 1 and reloads()[1] == 0,
          "one reload for the change (%r -> %r)" % (before, reloads()))

    # The config folder goes away (a full or read-only disk acts the same):
    # nothing can be written, HAProxy is not touched, and the change lands
    # once the folder is back.
    good = read(live)
    before = reloads()
    retries = agent.count("retry")
    os.rename(conf, conf + ".away")
    try:
        fake.answer = good + b"# after the folder came back\n"
        write_services([web, api, apiv1, pfoo, x, svc("disk", "host", "d.example.com", ["x1"])])
        check(wait_for(lambda: agent.count("retry") >= retries + 2, 60) is not None,
              "folder gone: retried (%s)" % agent.text()[-1000:])
        text = agent.text()
        check("HAProxy not touched" in text and "event=local_error" in text,
              "folder gone: logged as HAProxy not touched")
        check("event=reload_failed" not in text and "outcome=broken" not in text,
              "folder gone: not a failed reload")
        check(reloads() == before, "folder gone: no reload")
        check(get("www.example.com")[0] == 200, "folder gone: traffic still served")
    finally:
        os.rename(conf + ".away", conf)
    t = wait_for(lambda: agent.count("applied") == 2, 60)
    check(t is not None and read(live) == fake.answer, "folder back: the change lands")
    check(reloads()[0] == before[0] + 1 and reloads()[1] == 0,
          "folder back: one reload (%r -> %r)" % (before, reloads()))
    rc = agent.stop()
    check(rc == 0, "clean exit after the retries (%r)" % rc)
    agent = None

    # A `haproxy -c` that outlives its limit is refused as such, once: the
    # same config would time out again, so only new input is tried.
    slow = os.path.join(d, "slow-haproxy")
    with open(slow, "w") as f:
        f.write("#!/bin/sh\nexec sleep 5\n")
    os.chmod(slow, 0o755)
    good = read(live)
    before = reloads()
    fake.answer = good + b"# never checked in time\n"
    agent = Agent(fake.url, ["--haproxy-bin", slow, "--check-timeout", "300",
                             "--check-timeout-per-mb", "0"])
    check(wait_for(lambda: agent.count("check_timeout") >= 1, 30) is not None,
          "slow check: logged as check_timeout (%s)" % agent.text()[-1000:])
    check("took longer than 300 ms" in agent.text() and "limit_ms=300" in agent.text(),
          "slow check: the limit is said")
    time.sleep(3)
    check(agent.count("check_timeout") == 1 and agent.count("retry") == 0 and
          agent.count("config_rejected") == 0, "slow check: not retried (%d timeouts)" %
          agent.count("check_timeout"))
    check(read(live) == good and reloads() == before, "slow check: live config kept")
    write_services([web, api, apiv1, pfoo, x])
    check(wait_for(lambda: agent.count("check_timeout") >= 2, 30) is not None,
          "slow check: new input is tried again")
    rc = agent.stop()
    check(rc == 0 and "check_timeouts=2" in agent.text(), "slow check: counted (%r)" % rc)
    agent = None
    r = subprocess.run([BIN, "agent", "--once", "--registry", fake.url, "--table", TABLE,
                        "--source", "file:" + services_path, "--haproxy-config", live,
                        "--haproxy-master-socket", sock, "--haproxy-bin", slow,
                        "--check-timeout", "300", "--check-timeout-per-mb", "0",
                        "--runtime", "off"],
                       capture_output=True, timeout=60)
    check(r.returncode == 1 and b"event=check_timeout" in r.stderr,
          "slow check with --once: exit 1 (%d)" % r.returncode)
    check(not [n for n in os.listdir(conf) if ".tmp." in n], "slow check: no temp file left")
    fake.stop()

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
    check(not [n for n in os.listdir(conf) if ".tmp." in n], "no temp file left behind")

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
