#!/usr/bin/env python3
"""Map-only changes without a reload. A real master-worker HAProxy routing
through the registry's maps (in this test's folder), the real registry, the
file source, backends on 127.0.3.x (each answers with its own address).

A service's host changed: the new host reaches its backend, the old one gets
the no-match answer, the worker is the same process (no reload), and the
config and maps on disk are the registry's answer. A host moved from one
service to another under steady traffic: never a request without a
backend. A path predicate changed, and a container added together with a
host change: at runtime too. A map entry deleted behind the agent's back:
the check after the apply sees it and the agent reloads. A new service
reloads."""
import http.client
import json
import os
import signal
import subprocess
import threading
import time

import promtext
from backends import Backend
from lrtest import (master_command, BIN, HAPROXY, Server, check, free_port, put_fleet_settings, run_steps,
                    tmpdir, wait_for)

TABLE = "agent-maps"
d = tmpdir()
bport = free_port()
fport = free_port()
mport = free_port()
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

ADDRS = ["127.0.3.%d" % i for i in range(1, 9)]
backends = {ip: Backend(ip, ip, bport) for ip in ADDRS}
for b in backends.values():
    b.server.handle_error = lambda request, address: None

# name -> (mode, predicate, [ip, ...])
services = {
    "a": ["host", "a.example.com", ["127.0.3.1"]],
    "b": ["host", "b.example.com", ["127.0.3.2"]],
    "p": ["path", "pp", ["127.0.3.3"]],
}


def write_services():
    items = []
    for name in sorted(services):
        mode, pred, ips = services[name]
        items.append({"serviceName": name, "port": bport, "configMode": mode,
                      "predicate": pred,
                      "containers": [{"id": "%s-%d" % (name, i), "ip": ip}
                                     for i, ip in enumerate(ips)]})
    tmp = services_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(items, f)
    os.replace(tmp, services_path)


def master(cmd):
    return master_command(sock, cmd)


def procs():
    """(reloads, current worker pids) from `show proc`."""
    reloads, workers = None, []
    for line in master("show proc;quit").splitlines():
        if line.startswith("#") and "old workers" in line:
            break
        parts = line.split()
        if len(parts) > 2 and parts[1] == "master":
            reloads = int(parts[2])
        elif len(parts) > 2 and parts[1] == "worker" and parts[0].isdigit():
            workers.append(int(parts[0]))
    if reloads is None:
        raise RuntimeError("no master in show proc")
    return reloads, sorted(workers)


def get(host, path="/", timeout=10):
    """(status, backend address or None)."""
    c = http.client.HTTPConnection("127.0.0.1", fport, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": host, "Connection": "close"})
        r = c.getresponse()
        body = r.read().decode(errors="replace")
        return r.status, body.split(" ")[0] if r.status == 200 else None
    finally:
        c.close()


class Agent:
    def __init__(self, registry_url):
        self.logpath = os.path.join(d, "agent-%d.log" % time.time_ns())
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [BIN, "agent", "--registry", registry_url, "--table", TABLE,
             "--source", "file:" + services_path, "--haproxy-config", live,
             "--haproxy-master-socket", sock, "--drain-timeout", "2000",
             "--timeout", "30000", "--metrics-listen", "127.0.0.1:%d" % mport],
            stdout=self.log, stderr=self.log)

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def count(self, what):
        return self.text().count(what)

    def last(self, event):
        lines = [l for l in self.text().splitlines() if "event=%s " % event in l]
        return lines[-1] if lines else ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


with open(live, "w") as f:
    f.write(INITIAL)
haplog = open(os.path.join(d, "haproxy.log"), "wb")
hap = subprocess.Popen([HAPROXY, "-W", "-S", sock, "-f", live], stdout=haplog, stderr=haplog)
registry = agent = None
mapdir = None


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


def on_disk_is_answer():
    """The live config and the maps equal the registry's JSON answer."""
    st, _, body = registry.request("GET", "/v1/tables/%s/config" % TABLE,
                                   headers={"Accept": "application/json"})
    check(st == 200, "GET config as JSON: %d" % st)
    ans = json.loads(body)
    check(open(live).read() == ans["config"], "the live config is the registry's")
    check(sorted(ans["files"]) == ["hosts.map", "paths.map"], "files %r" % sorted(ans["files"]))
    for name, text in ans["files"].items():
        with open(os.path.join(mapdir, name)) as f:
            check(f.read() == text, "%s on disk is the registry's:\n%s" % (name, text))
    return ans


def start():
    global registry, agent, mapdir
    check(wait_for(lambda: os.path.exists(sock) and procs()[0] == 0, 20) is not None,
          "haproxy master socket answers")
    mapdir = put_fleet_settings(store, d)
    registry = Server(store, ["--frontend-bind", "127.0.0.1:%d" % fport])
    write_services()
    agent = Agent("http://127.0.0.1:%d" % registry.port)
    check(wait_for(lambda: agent.count("method=reload") == 1, 60) is not None,
          "the first sync reloads (%s)" % agent.text()[-2000:])
    check(wait_for(lambda: get("a.example.com")[1] == "127.0.3.1", 30) is not None,
          "a.example.com routed")
    check(get("x.pp.example.com", "/pp/x")[1] == "127.0.3.3", "/pp/x routed")
    check("map_str(%s/hosts.map)" % mapdir in open(live).read(),
          "the config routes through the test's maps")


def change(what, edit, want_runtime=True):
    """Apply `edit` to the services file; wait until it is applied; check
    it was at runtime (no new worker) or by a reload."""
    applied = agent.count("event=applied ")
    before = procs()
    edit()
    write_services()
    check(wait_for(lambda: agent.count("event=applied ") > applied, 60) is not None,
          "%s: applied (%s)" % (what, agent.text()[-1500:]))
    line = agent.last("applied")
    if want_runtime:
        check("method=runtime" in line, "%s: at runtime: %s\n%s" %
              (what, line, agent.text()[-1500:]))
        check(procs() == before, "%s: the same worker, no reload (%r -> %r)" %
              (what, before, procs()))
    else:
        check("method=reload" in line, "%s: by a reload: %s" % (what, line))
        check(procs()[0] > before[0], "%s: a reload (%r -> %r)" % (what, before, procs()))
    return line


def test_host_changed():
    def edit():
        services["a"][1] = "a2.example.com"
    line = change("host of a changed", edit)
    check("map_added=1 map_removed=1" in line, "one key added, one removed: %s" % line)
    check(get("a2.example.com")[1] == "127.0.3.1", "the new host reaches a's backend")
    check(get("A2.Example.COM:%d" % fport)[1] == "127.0.3.1", "any case, with a port")
    st, who = get("a.example.com")
    check(st == 503 and who is None, "the old host gets the no-match answer: %d %r" % (st, who))
    check(get("b.example.com")[1] == "127.0.3.2", "b untouched")
    on_disk_is_answer()


def test_host_moved_under_traffic():
    # a2.example.com moves from a to b while requests for it keep coming:
    # `set map` changes the value in place, it is never missing.
    stop = threading.Event()
    seen = {"ok": 0, "bad": []}

    def hammer():
        while not stop.is_set():
            try:
                st, who = get("a2.example.com")
                if st == 200 and who in ("127.0.3.1", "127.0.3.2"):
                    seen["ok"] += 1
                else:
                    seen["bad"].append((st, who))
            except (OSError, http.client.HTTPException) as e:
                seen["bad"].append(repr(e))
            time.sleep(0.005)
    t = threading.Thread(target=hammer, daemon=True)
    t.start()
    try:
        def edit():
            services["a"][1] = "a3.example.com"
            services["b"][1] = "a2.example.com"
        line = change("a2 moved from a to b", edit)
        check(wait_for(lambda: seen["ok"] > 20, 30) is not None, "traffic went on")
    finally:
        stop.set()
        t.join(30)
    check("map_set=1 map_added=1 map_removed=1" in line,
          "one set (a2), one add (a3), one delete (b): %s" % line)
    check(not seen["bad"], "no request without a backend during the move: %r" % seen["bad"][:5])
    check(get("a2.example.com")[1] == "127.0.3.2", "a2 reaches b")
    check(get("a3.example.com")[1] == "127.0.3.1", "a3 reaches a")
    check(get("b.example.com")[0] == 503, "b.example.com is gone")
    on_disk_is_answer()


def test_path_changed():
    def edit():
        services["p"][1] = "pq"
    change("path of p changed", edit)
    check(get("localhost", "/pq/x")[1] == "127.0.3.3", "/pq/x reaches p")
    check(get("localhost", "/pq")[1] == "127.0.3.3", "/pq reaches p")
    check(get("localhost", "/pp/x")[0] == 503, "/pp/x gets the no-match answer")
    check(get("localhost", "/pqx")[0] == 503, "/pqx is not /pq")
    on_disk_is_answer()


def test_servers_and_maps_together():
    def edit():
        services["a"][2].append("127.0.3.4")
        services["b"][1] = "b2.example.com"
    line = change("a container added and a host changed", edit)
    check("servers_added=1" in line and "map_added=1 map_removed=1" in line,
          "both kinds counted: %s" % line)
    check(wait_for(lambda: {get("a3.example.com")[1] for _ in range(6)} ==
                   {"127.0.3.1", "127.0.3.4"}, 30) is not None,
          "both of a's servers answer")
    check(get("b2.example.com")[1] == "127.0.3.2", "b2 reaches b")
    on_disk_is_answer()


def test_mismatch_reloads():
    # An entry deleted behind the agent's back: `show map` after the
    # apply does not match the file, and the reload path repairs it.
    failures = agent.count("event=runtime_failed")
    hosts = os.path.join(mapdir, "hosts.map")
    check(master("@1 del map %s a3.example.com;quit" % hosts).strip() == "",
          "an entry deleted behind the agent's back")

    def edit():
        services["b"][1] = "b3.example.com"
    change("a change after a stray delete", edit, want_runtime=False)
    check(agent.count("event=runtime_failed") == failures + 1 and
          "a3.example.com" in agent.last("runtime_failed"),
          "logged with what differed: %s" % agent.last("runtime_failed"))
    check(get("a3.example.com")[1] in ("127.0.3.1", "127.0.3.4"), "a3 routed again")
    check(get("b3.example.com")[1] == "127.0.3.2", "b3 reaches b")
    on_disk_is_answer()


def test_new_service_reloads():
    def edit():
        services["n"] = ["host", "n.example.com", ["127.0.3.5"]]
    change("a new service", edit, want_runtime=False)
    check(wait_for(lambda: get("n.example.com")[1] == "127.0.3.5", 30) is not None,
          "the new service gets traffic")
    on_disk_is_answer()


def test_metrics_count_runtime():
    # Four runtime applies above: host, move, path, servers with a host.
    c = http.client.HTTPConnection("127.0.0.1", mport, timeout=10)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode()
    finally:
        c.close()
    fams = promtext.parse(text)
    runtime = promtext.value(fams, "lambda_registry_agent_applies_total",
                             method="runtime", result="ok")
    check(runtime == 4 and agent.count("method=runtime") == 4,
          "the map changes counted as runtime applies: %r" % runtime)


run_steps([start, test_host_changed, test_host_moved_under_traffic, test_path_changed,
           test_servers_and_maps_together, test_mismatch_reloads, test_new_service_reloads,
           test_metrics_count_runtime], cleanup)
