#!/usr/bin/env python3
"""Hitless container changes: the agent applies server-only changes through
HAProxy's runtime API. A real master-worker HAProxy, the real registry, the
file source, real backends on 127.0.x.y (each answers with its own address).

50 container adds, removes and re-addresses under a steady load (keep-alive
clients and a new connection per request): no reload (`show proc`), every
new address gets traffic within 2 s (median) of the file change (default
debounce),
no removed one gets any once the change is applied, no failed request. A
new service, a settings change and a static-cookie service reload as
before. A refused command and a mismatch after the apply fall back to a
reload, with traffic right afterwards. Drift made behind the agent's back
is repaired by a reload, at start and on the periodic check."""
import http.client
import json
import os
import random
import signal
import subprocess
import threading
import time

from backends import Backend
from lrtest import (master_command, master_reloads, BIN, HAPROXY, SANITIZED, Server, check, free_port, put_fleet_settings,
                    run_cli, run_steps, tmpdir, wait_for)

TABLE = "agent-runtime"
SEED = int(os.environ.get("LR_SEED") or random.randrange(1 << 30))
print("seed %d" % SEED, flush=True)
rnd = random.Random(SEED)

d = tmpdir()
bport = free_port()
fport = free_port()
live = os.path.join(d, "haproxy.cfg")
sock = os.path.join(d, "master.sock")
services_path = os.path.join(d, "services.json")
store = "sqlite:" + os.path.join(d, "registry.db")
# The 2 s of the issue are asserted on the median of the changes; each
# single one gets slack for a loaded machine (a sanitized build more), and
# the figures are printed either way.
SLACK = 6.0 if SANITIZED else 3.0

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

# Every address a container may have; each listener answers with its own.
ADDRS = ["127.0.%d.%d" % (net, host) for net in (1, 2) for host in range(1, 31)]
backends = {}
for ip in ADDRS:
    backends[ip] = Backend(ip, ip, bport)
    backends[ip].server.handle_error = lambda request, address: None

# Service name -> {container id: ip}; settings per service.
state = {"s1": {}, "s2": {}, "s3": {}}
extra = {"s1": {}, "s2": {"balance": "leastconn"}, "s3": {"balance": "first"}}
services_more = []  # services added later by the reload tests
next_id = [0]


def free_addr():
    used = {ip for svc in state.values() for ip in svc.values()}
    return rnd.choice([ip for ip in ADDRS if ip not in used])


def make_id(svc, n):
    # Zero-padded: the ids sort in the order they were made, so that a
    # new server comes last (as `balance first` needs at runtime).
    return "%s-c%03d" % (svc, n)


def new_container(svc):
    next_id[0] += 1
    cid = make_id(svc, next_id[0])
    state[svc][cid] = free_addr()
    return cid


def write_services():
    items = []
    for name in sorted(state):
        s = {"serviceName": name, "port": bport, "configMode": "host",
             "predicate": "%s.example.com" % name,
             "containers": [{"id": c, "ip": ip} for c, ip in sorted(state[name].items())]}
        s.update(extra[name])
        items.append(s)
    items.extend(services_more)
    tmp = services_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(items, f)
    os.replace(tmp, services_path)


def master(cmd):
    return master_command(sock, cmd)


def reloads():
    return master_reloads(sock)[0]


def get(host, cookie=None, timeout=10):
    c = http.client.HTTPConnection("127.0.0.1", fport, timeout=timeout)
    try:
        headers = {"Host": host, "Connection": "close"}
        if cookie:
            headers["Cookie"] = cookie
        c.request("GET", "/", headers=headers)
        r = c.getresponse()
        body = r.read().decode()
        return r.status, body.split(" ")[0] if r.status == 200 else None
    finally:
        c.close()


def seen(svc, n=6):
    return {get("%s.example.com" % svc)[1] for _ in range(n)}


class Agent:
    def __init__(self, registry_url, args=None):
        self.logpath = os.path.join(d, "agent-%d.log" % time.time_ns())
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [BIN, "agent", "--registry", registry_url, "--table", TABLE,
             "--source", "file:" + services_path, "--haproxy-config", live,
             "--haproxy-master-socket", sock, "--drain-timeout", "2000",
             "--timeout", "30000"] + (args or []),
            stdout=self.log, stderr=self.log)

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def count(self, what):
        return self.text().count(what)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class Load:
    """Steady traffic to every service: keep-alive clients and clients with
    a new connection per request. Counts requests and failures."""

    def __init__(self):
        self.stop_ev = threading.Event()
        self.ok = 0
        self.failed = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(ka,), daemon=True)
                        for ka in (True, True, False, False)]
        for t in self.threads:
            t.start()

    def run(self, keepalive):
        conn = None
        i = 0
        while not self.stop_ev.is_set():
            svc = sorted(state)[i % len(state)]
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", fport, timeout=15)
                conn.request("GET", "/", headers={
                    "Host": "%s.example.com" % svc,
                    "Connection": "keep-alive" if keepalive else "close"})
                r = conn.getresponse()
                r.read()
                good = r.status == 200
                if not keepalive or r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
                with self.lock:
                    if good:
                        self.ok += 1
                    else:
                        self.failed.append("%s: status %d" % (svc, r.status))
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.failed.append("%s: %r" % (svc, e))
                if conn:
                    conn.close()
                conn = None
            time.sleep(0.01)
        if conn:
            conn.close()

    def end(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)


with open(live, "w") as f:
    f.write(INITIAL)
haplog = open(os.path.join(d, "haproxy.log"), "wb")
hap = subprocess.Popen([HAPROXY, "-W", "-S", sock, "-f", live], stdout=haplog, stderr=haplog)
registry = agent = None


def cleanup():
    for p in (agent, registry):
        if p:
            p.stop()
    hap.terminate()
    try:
        hap.wait(20)
    except subprocess.TimeoutExpired:
        hap.kill()
    for b in backends.values():
        b.stop()


def start():
    global registry, agent
    check(wait_for(lambda: os.path.exists(sock) and reloads() == 0, 20) is not None,
          "haproxy master socket answers")
    put_fleet_settings(store, d)
    registry = Server(store, ["--frontend-bind", "127.0.0.1:%d" % fport])
    for svc in state:
        for _ in range(2):
            new_container(svc)
    write_services()
    agent = Agent("http://127.0.0.1:%d" % registry.port)
    for svc in state:
        want = set(state[svc].values())
        t = wait_for(lambda: seen(svc) >= want if svc != "s3" else seen(svc) <= want, 60)
        check(t is not None, "first sync routes %s (%s)" % (svc, agent.text()[-2000:]))
    check(wait_for(lambda: agent.count("method=reload") == 1, 30) is not None,
          "the first sync (new services) reloads")


def change_once(kind, svc, timings):
    """One container change; checks traffic follows it."""
    applied = agent.count("method=")
    gone = None
    if kind == "add":
        cid = new_container(svc)
        target = state[svc][cid]
    elif kind == "remove":
        cid = rnd.choice(sorted(state[svc]))
        gone = state[svc].pop(cid)
        target = None
    else:
        cid = rnd.choice(sorted(state[svc]))
        gone = state[svc][cid]
        state[svc][cid] = free_addr()
        target = state[svc][cid]
    t0 = time.time()
    write_services()
    host = "%s.example.com" % svc
    if target:
        # `first` sends everything to the first server: a new one that is
        # not first gets no traffic by design; it is checked by state.
        if svc == "s3":
            t = wait_for(lambda: agent.count("method=") > applied, 30)
        else:
            t = wait_for(lambda: get(host)[1] == target, 30, step=0.01)
        check(t is not None and t < 2.0 + SLACK,
              "%s %s %s: %s gets traffic in %.2fs" % (kind, svc, cid, target, t or -1))
        if t is not None:
            timings.append(t)
    check(wait_for(lambda: agent.count("method=") > applied, 30) is not None,
          "%s %s: applied" % (kind, svc))
    if gone:
        answers = [get(host)[1] for _ in range(10)]
        check(gone not in answers, "%s %s %s: %s gets no more traffic (%r)" %
              (kind, svc, cid, gone, answers))
    got = seen(svc, 10)
    check(got <= set(state[svc].values()),
          "%s %s: only current servers answer (%r vs %r)" % (kind, svc, got, state[svc]))


def test_fifty_changes_under_load():
    before = reloads()
    runtime_before = agent.count("method=runtime")
    load = Load()
    timings = []
    try:
        for i in range(50):
            svc = rnd.choice(sorted(state))
            kinds = ["add", "readdress"] + (["remove"] if len(state[svc]) > 1 else [])
            if len(state[svc]) > 5:
                kinds = ["remove", "readdress"]
            change_once(rnd.choice(kinds), svc, timings)
    finally:
        load.end()
    check(reloads() == before, "50 changes: no reload (%d -> %d)" % (before, reloads()))
    check(agent.count("method=runtime") - runtime_before == 50,
          "50 changes: 50 runtime applies (%d)\n%s" %
          (agent.count("method=runtime") - runtime_before, agent.text()[-3000:]))
    check(not load.failed and load.ok > 100,
          "under load: %d requests, failed %d: %r" % (load.ok, len(load.failed), load.failed[:5]))
    timings.sort()
    check(timings and timings[len(timings) // 2] < 2.0,
          "median change -> traffic under 2 s: %r" % timings)
    if timings:
        print("change -> traffic on the new address: median %.2fs, max %.2fs over %d; "
              "%d requests under load, %d failed" %
              (timings[len(timings) // 2], timings[-1], len(timings), load.ok,
               len(load.failed)), flush=True)
    # The file is the truth: HAProxy's `-c` accepts it and it lists what
    # runs, so a later reload gives the same servers.
    text = open(live).read()
    for svc in state:
        for cid, ip in state[svc].items():
            check(" %s %s:%d " % (cid, ip, bport) in text, "live file holds %s at %s" % (cid, ip))


def wait_reload(before, what):
    t = wait_for(lambda: reloads() > before, 60)
    check(t is not None, "%s: reloads (%s)" % (what, agent.text()[-1500:]))


def test_reload_cases():
    # A new service.
    before = reloads()
    services_more.append({"serviceName": "new", "port": bport, "configMode": "host",
                          "predicate": "new.example.com",
                          "containers": [{"id": "n1", "ip": "127.0.2.30"}]})
    write_services()
    wait_reload(before, "new service")
    check(wait_for(lambda: get("new.example.com")[1] == "127.0.2.30", 30) is not None,
          "new service gets traffic")

    # A static-cookie service: adds need a reload.
    before = reloads()
    services_more[0]["cookie"] = "SRV"
    services_more[0]["cookieMode"] = "insert"
    write_services()
    wait_reload(before, "cookie service")
    before = reloads()
    services_more[0]["containers"].append({"id": "n2", "ip": "127.0.1.30"})
    write_services()
    wait_reload(before, "container added to a static-cookie service")
    check(wait_for(lambda: "127.0.1.30" in {get("new.example.com")[1] for _ in range(4)},
                   30) is not None, "the added container of a cookie service gets traffic")

    # A settings change (seen by the agent on its next call: SIGHUP).
    before = reloads()
    put_fleet_settings(store, d, {"global": {"hardStopAfter": "10s"}})
    agent.proc.send_signal(signal.SIGHUP)
    wait_reload(before, "settings change")
    check(wait_for(lambda: "hard-stop-after 10s" in open(live).read(), 30) is not None,
          "settings change reaches the live file")


def sticky_get(host, cookie=None):
    c = http.client.HTTPConnection("127.0.0.1", fport, timeout=10)
    try:
        headers = {"Host": host, "Connection": "close"}
        if cookie:
            headers["Cookie"] = cookie
        c.request("GET", "/", headers=headers)
        r = c.getresponse()
        body = r.read().decode()
        cookies = [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
        mine = [v.split(";")[0] for v in cookies if v.startswith("DYN=")]
        return body.split(" ")[0], mine[0] if mine else None
    finally:
        c.close()


def test_dynamic_cookie():
    # Dynamic cookies: HAProxy derives each server's value from the
    # backend's key, so a sticky service changes at runtime too.
    before = reloads()
    dyn = {"serviceName": "dyn", "port": bport, "configMode": "host",
           "predicate": "dyn.example.com", "cookie": "DYN", "cookieMode": "dynamic",
           "containers": [{"id": "d1", "ip": "127.0.1.29"}]}
    services_more.append(dyn)
    write_services()
    wait_reload(before, "new dynamic-cookie service")
    check(wait_for(lambda: sticky_get("dyn.example.com")[0] == "127.0.1.29", 30) is not None,
          "dynamic-cookie service gets traffic")
    before = reloads()
    runtime = agent.count("method=runtime")
    dyn["containers"].append({"id": "d2", "ip": "127.0.2.29"})
    write_services()
    check(wait_for(lambda: agent.count("method=runtime") > runtime, 30) is not None,
          "dynamic-cookie add: applied at runtime (%s)" % agent.text()[-1500:])
    check(reloads() == before, "dynamic-cookie add: no reload")
    got = {}

    def both():
        who, cookie = sticky_get("dyn.example.com")
        if cookie and cookie != "DYN=":
            got[who] = cookie
        return len(got) == 2
    check(wait_for(both, 30) is not None,
          "both servers hand out a non-empty cookie of their own: %r" % got)
    for who, cookie in got.items():
        answers = {sticky_get("dyn.example.com", cookie)[0] for _ in range(6)}
        check(answers == {who}, "cookie %s sticks to %s: %r" % (cookie, who, answers))


def test_forced_failures():
    # A refused command: the server the agent is about to add already
    # exists in HAProxy (added behind its back, at a wrong address).
    failures = agent.count("event=runtime_failed")
    before = reloads()
    cid = make_id("s1", next_id[0] + 1)
    check("New server registered" in master("@1 add server s1/%s 127.0.0.1:9;quit" % cid),
          "a server added behind the agent's back")
    new_container("s1")
    write_services()
    wait_reload(before, "refused add")
    check(agent.count("event=runtime_failed") == failures + 1,
          "refused add: logged as a runtime failure")
    check(wait_for(lambda: get("s1.example.com")[1] == state["s1"][cid], 30) is not None,
          "refused add: traffic reaches the container after the fallback")
    check(seen("s1", 10) <= set(state["s1"].values()), "refused add: no stray server")

    # A mismatch after the apply: a server set to maintenance behind the
    # agent's back is not what the file says.
    failures = agent.count("event=runtime_failed")
    before = reloads()
    victim = sorted(state["s2"])[0]
    master("@1 set server s2/%s state maint;quit" % victim)
    new_container("s2")
    write_services()
    wait_reload(before, "mismatch after apply")
    check(agent.count("event=runtime_failed") == failures + 1 and
          "admin state" in agent.text().split("event=runtime_failed")[-1][:600],
          "mismatch: logged with what differed")
    want = set(state["s2"].values())
    check(wait_for(lambda: seen("s2", 12) == want, 30) is not None,
          "mismatch: every s2 server gets traffic after the fallback (%r vs %r)" %
          (seen("s2", 12), want))


def test_drift():
    global agent
    agent.stop()
    # Behind a stopped agent: a stray server and one in maintenance.
    master("@1 add server s1/stray 127.0.1.1:%d;quit" % bport)
    master("@1 set server s1/stray state ready;quit")
    before = reloads()
    agent = Agent("http://127.0.0.1:%d" % registry.port, ["--drift-check", "1000"])
    wait_reload(before, "drift at start")
    check(wait_for(lambda: agent.count("event=drift ") >= 1, 30) is not None and
          "stray" in agent.text(), "drift at start: logged (%s)" % agent.text()[-1000:])
    check(wait_for(lambda: agent.count("event=unchanged") >= 1, 30) is not None,
          "drift at start: then the file is unchanged")
    # Periodic: a re-address behind the agent's back.
    before = reloads()
    cid = sorted(state["s1"])[0]
    master("@1 set server s1/%s addr 127.0.0.1 port 9;quit" % cid)
    wait_reload(before, "periodic drift check")
    want = set(state["s1"].values())
    check(wait_for(lambda: seen("s1", 10) == want, 30) is not None,
          "periodic drift: traffic right again")


def test_runtime_off():
    global agent
    agent.stop()
    agent = Agent("http://127.0.0.1:%d" % registry.port, ["--runtime", "off"])
    check(wait_for(lambda: agent.count("event=unchanged") >= 1, 30) is not None,
          "runtime off: starts unchanged")
    before = reloads()
    new_container("s1")
    write_services()
    wait_reload(before, "runtime off: a container add")
    check(agent.count("method=runtime") == 0, "runtime off: no runtime apply")


run_steps([start, test_fifty_changes_under_load, test_reload_cases, test_dynamic_cookie,
           test_forced_failures,
           test_drift, test_runtime_off], cleanup)
