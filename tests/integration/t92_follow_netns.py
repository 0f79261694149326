#!/usr/bin/env python3
"""Agents that follow: one source agent (services file) and two followers
(`agent --follow`), each with a real master-worker HAProxy in a network
namespace of its own (`unshare -n`: the three share one config, so each needs
its own loopback). A services-file edit reaches traffic through all three; a
follower stopped while a change is stored catches up when it is back; the
registry stopped and started again loses nothing and the followers resume."""
import http.client
import json
import os
import signal
import subprocess
import sys
import time

from lrtest import (BIN, HAPROXY, Server, check, finish, free_port, put_fleet_settings, skip,
                    tmpdir, wait_for)

if os.geteuid() != 0:
    skip("network namespaces (unshare -n) need root")
if subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode != 0:
    skip("unshare -n is not permitted here")

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = "edge-fleet"
ADDR = {"w1": "127.0.0.2", "w2": "127.0.0.3", "a1": "127.0.0.4", "n1": "127.0.0.5"}
d = tmpdir()
bport, fport = 18700 + os.getpid() % 500, 19300 + os.getpid() % 500
services_path = os.path.join(d, "services.json")
DB = "sqlite:" + os.path.join(d, "registry.db")
INITIAL = """global
    maxconn 256

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s

frontend http
    bind 127.0.0.1:%d
""" % fport


def svc(name, pred, ids):
    return {"serviceName": name, "port": bport, "configMode": "host", "predicate": pred,
            "containers": [{"id": i, "ip": ADDR[i]} for i in ids]}


def write_services(items):
    tmp = services_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(items, f)
    os.replace(tmp, services_path)


class Host:
    """A namespace with backends and HAProxy; `get` runs inside it."""

    def __init__(self, i):
        self.live = os.path.join(d, "haproxy-%d.cfg" % i)
        self.sock = os.path.join(d, "master-%d.sock" % i)
        with open(self.live, "w") as f:
            f.write(INITIAL)
        self.log = open(os.path.join(d, "host-%d.log" % i), "wb")
        self.proc = subprocess.Popen(
            ["unshare", "-n", sys.executable, os.path.join(HERE, "nshost.py"), HAPROXY,
             self.live, self.sock, str(bport)] + ["%s=%s" % kv for kv in sorted(ADDR.items())],
            stdout=subprocess.PIPE, stderr=self.log, cwd=HERE)
        check(self.proc.stdout.readline().strip() == b"ready", "host %d ready" % i)

    def get(self, host):
        """The backend that answers for Host: `host` here, or the status."""
        code = ("import http.client as h\n"
                "c = h.HTTPConnection('127.0.0.1', %d, timeout=10)\n"
                "c.request('GET', '/', headers={'Host': %r, 'Connection': 'close'})\n"
                "r = c.getresponse(); b = r.read().decode()\n"
                "print(b.split(' ')[0] if r.status == 200 else r.status)\n" % (fport, host))
        p = subprocess.run(["nsenter", "--net=/proc/%d/ns/net" % self.proc.pid, sys.executable,
                            "-c", code], capture_output=True, timeout=30)
        return p.stdout.decode().strip() if p.returncode == 0 else "error"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Agent:
    def __init__(self, host, url, follow, name):
        self.logpath = os.path.join(d, "agent-%s-%d.log" % (name, time.time_ns()))
        self.log = open(self.logpath, "wb")
        args = [BIN, "agent", "--registry", url, "--table", TABLE, "--haproxy-config", host.live,
                "--haproxy-master-socket", host.sock, "--debounce", "200", "--timeout", "30000"]
        args += ["--follow"] if follow else ["--source", "file:" + services_path]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log)

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def everywhere(host, want, hosts, timeout=90):
    """Seconds until every HAProxy answers `host` from a backend in `want`."""
    return wait_for(lambda: all(h.get(host) in want for h in hosts), timeout, step=0.2)


hosts, agents = [], []
registry = None
try:
    hosts = [Host(i) for i in range(3)]
    maps = put_fleet_settings(DB, d)
    registry = Server(DB, ["--frontend-bind", "127.0.0.1:%d" % fport])
    url = "http://127.0.0.1:%d" % registry.port
    # the followers start first: the table is not there yet (404), they retry
    agents = [None, Agent(hosts[1], url, True, "f1"), Agent(hosts[2], url, True, "f2")]
    write_services([svc("web", "www.example.com", ["w1", "w2"])])
    agents[0] = Agent(hosts[0], url, False, "source")
    t = everywhere("www.example.com", ("w1", "w2"), hosts)
    check(t is not None, "the first services file reaches all three HAProxy: %r"
          % [h.get("www.example.com") for h in hosts])
    print("first config everywhere after %.2f s" % (t or -1), flush=True)
    # the followers route flat too: the JSON answer's config and its maps
    for h in hosts:
        with open(h.live) as f:
            text = f.read()
        check("map_str(%s/hosts.map)" % maps in text and "map_beg(%s/paths.map)" % maps in text,
              "%s routes through the maps" % h.live)
    with open(os.path.join(maps, "hosts.map")) as f:
        check("www.example.com" in f.read(), "hosts.map names the service")
    for a in agents[1:]:
        check(wait_for(lambda: "files=2" in a.text(), 30, step=0.1) is not None,
              "the follower applied config and maps as one set: %s" % a.text()[-600:])
    # the ETag of the JSON answer: the follower's If-None-Match gets a 304
    st, h, body = registry.request("GET", "/v1/tables/%s/config" % TABLE,
                                   headers={"Accept": "application/json"})
    check(st == 200 and h.get("etag") == '"%s"' % h.get("x-registry-index"), "ETag %r" % h)
    st, h2, _ = registry.request("GET", "/v1/tables/%s/config" % TABLE,
                                 headers={"Accept": "application/json",
                                          "If-None-Match": h.get("etag", "")})
    check(st == 304 and h2.get("x-registry-index") == h.get("x-registry-index"),
          "If-None-Match on the JSON answer: %d" % st)

    # an edit reaches traffic through all three
    write_services([svc("web", "www.example.com", ["w1", "w2"]), svc("api", "api.example.com", ["a1"])])
    t = everywhere("api.example.com", ("a1",), hosts)
    check(t is not None, "an edit reaches all three: %r" % [h.get("api.example.com") for h in hosts])
    print("edit everywhere after %.2f s" % (t or -1), flush=True)

    # a follower stopped mid-way catches up when it is back
    check(agents[2].stop() == 0, "follower stops cleanly on SIGTERM, even in a long poll")
    write_services([svc("web", "www.example.com", ["w2"]), svc("api", "api.example.com", ["a1"]),
                    svc("news", "news.example.com", ["n1"])])
    check(everywhere("news.example.com", ("n1",), hosts[:2]) is not None, "the others get the change")
    check(hosts[2].get("news.example.com") != "n1", "the stopped follower's HAProxy does not")
    agents[2] = Agent(hosts[2], url, True, "f2b")
    check(everywhere("news.example.com", ("n1",), hosts) is not None, "the restarted follower caught up")
    check(all(h.get("www.example.com") == "w2" for h in hosts), "w1 gone everywhere")

    # the registry restarted mid-way loses nothing; the followers resume
    registry.stop()
    write_services([svc("web", "www.example.com", ["w1", "w2"]), svc("api", "api.example.com", ["a1"]),
                    svc("news", "news.example.com", ["n1"])])
    time.sleep(0.5)  # the source agent fails against no registry and backs off
    registry = Server(DB, ["--frontend-bind", "127.0.0.1:%d" % fport], port=registry.port)
    check(everywhere("www.example.com", ("w1",), hosts, timeout=120) is not None or
          all(h.get("www.example.com") in ("w1", "w2") for h in hosts),
          "after the restart, traffic is served everywhere")
    t = wait_for(lambda: all(h.get("news.example.com") == "n1" and h.get("api.example.com") == "a1"
                             for h in hosts), 120, step=0.2)
    check(t is not None, "nothing lost across the registry restart")
    st, h, body = registry.request("GET", "/v1/tables/%s" % TABLE)
    doc = json.loads(body)
    names = sorted(s["serviceName"] for s in doc["services"])
    ids = sorted(c["id"] for s in doc["services"] for c in s["containers"])
    check(names == ["api", "news", "web"] and ids == ["a1", "n1", "w1", "w2"],
          "the stored table after the restart: %r %r" % (names, ids))
    # the followers saw the registry go and come back
    for a in agents[1:]:
        check("event=registry_failed" in a.text() and "event=applied method=reload" in a.text(),
              "follower retried and reloaded: %s" % a.text()[-600:])
    for a in agents:
        check("event=applied method=reload" in a.text(), "agent reloaded its HAProxy")
finally:
    for a in agents:
        if a:
            a.stop()
    if registry:
        registry.stop()
    for h in hosts:
        h.stop()
finish()
