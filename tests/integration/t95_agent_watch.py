#!/usr/bin/env python3
"""The normal agent watches its table after it POSTs: with a file source and
a real master-worker HAProxy, changes stored by others reach its HAProxy
without a source event: `settings put` of the fleet's defaults (the no-match
status, a timeout) and of the table's overrides, and a second writer POSTing
the same table. A source event while the poll is parked still goes out at
once; the registry stopped while a change is stored (the CLI writes the
store itself) is caught up with when it is back. `--watch off` polls
nothing; a bad `--watch` is a usage error."""
import http.client
import json
import os
import signal
import subprocess
import time

from backends import Backend
from lrtest import (master_command, master_reloads, BIN, HAPROXY, Server, check, finish, free_port, payload, put_fleet_settings,
                    run_cli, skip, tmpdir, wait_for)

if not os.path.exists(HAPROXY):
    skip("no haproxy at %s" % HAPROXY)

TABLE = "t-watch"
d = tmpdir()
fport, bport = free_port(), free_port()
live = os.path.join(d, "haproxy.cfg")
sock = os.path.join(d, "master.sock")
services_path = os.path.join(d, "services.json")
store = "sqlite:" + os.path.join(d, "registry.db")
ADDR = {"b1": "127.0.0.2", "b2": "127.0.0.3", "b3": "127.0.0.4"}
with open(live, "w") as f:
    f.write("global\n    maxconn 256\n\ndefaults\n    mode http\n    timeout connect 5s\n"
            "    timeout client 30s\n    timeout server 30s\n\n"
            "frontend http\n    bind 127.0.0.1:%d\n" % fport)


def svc(name, host, ids):
    return {"serviceName": name, "port": bport, "configMode": "host", "predicate": host,
            "containers": [{"id": i, "ip": ADDR[i]} for i in ids]}


def write_services(items):
    with open(services_path + ".tmp", "w") as f:
        json.dump(items, f)
    os.replace(services_path + ".tmp", services_path)


def master(cmd):
    return master_command(sock, cmd)


def reloads():
    return master_reloads(sock)[0]


def get(host):
    """The backend that answers for Host: `host`, or the status."""
    c = http.client.HTTPConnection("127.0.0.1", fport, timeout=10)
    try:
        c.request("GET", "/", headers={"Host": host, "Connection": "close"})
        r = c.getresponse()
        body = r.read().decode()
        return body.split(" ")[0] if r.status == 200 else r.status
    except OSError:
        return "error"
    finally:
        c.close()


def live_text():
    with open(live) as f:
        return f.read()


class Agent:
    def __init__(self, url, extra=None):
        self.logpath = os.path.join(d, "agent-%d.log" % time.time_ns())
        self.log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            [BIN, "agent", "--registry", url, "--table", TABLE, "--source",
             "file:" + services_path, "--haproxy-config", live, "--haproxy-master-socket", sock,
             "--debounce", "100", "--timeout", "30000"] + (extra or []),
            stdout=self.log, stderr=self.log)

    def text(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def settings(doc, table=None):
    path = os.path.join(d, "settings-%d.json" % time.time_ns())
    with open(path, "w") as f:
        json.dump(doc, f)
    r = run_cli(["settings", "put", "--store", store] + (["--table", table] if table else [])
                + [path])
    check(r.returncode == 0, "settings put %r: %r" % (doc, r.stderr))


backends = [Backend(n, ip, bport) for n, ip in sorted(ADDR.items())]
for b in backends:
    b.server.handle_error = lambda request, address: None
hlog = open(os.path.join(d, "haproxy.log"), "wb")
hap = subprocess.Popen([HAPROXY, "-W", "-S", sock, "-f", live], stdout=hlog, stderr=hlog)
registry = agent = None
try:
    reloads()  # the master answers
    maps = put_fleet_settings(store, d)
    registry = Server(store, ["--frontend-bind", "127.0.0.1:%d" % fport])
    url = "http://127.0.0.1:%d" % registry.port
    write_services([svc("web", "www.example.com", ["b1"])])
    agent = Agent(url)
    check(wait_for(lambda: get("www.example.com") == "b1", 90, step=0.1) is not None,
          "the services file reaches traffic: %r" % get("www.example.com"))
    check(wait_for(lambda: b'"watching":1' in registry.request("GET", "/healthz")[2], 60,
                   step=0.1) is not None,
          "the agent parks one watch on the registry: %r" % registry.request("GET", "/healthz")[2])
    text = live_text()
    check("map_str(%s/hosts.map)" % maps in text and os.path.exists(os.path.join(maps, "hosts.map")),
          "the agent's config routes through its maps in %s" % maps)
    check(get("nothing.example.com") == 503, "unmatched: HAProxy's 503 before any settings")
    src_mtime = os.stat(services_path).st_mtime_ns

    # the fleet's defaults change what is rendered: no source event
    r0 = reloads()
    t0 = time.time()
    put_fleet_settings(store, d, {"unmatched": {"status": 404, "body": "no such service"},
                                  "defaults": {"timeouts": {"server": "45s"}}})
    t = wait_for(lambda: get("nothing.example.com") == 404 and "timeout server 45s" in live_text(),
                 60, step=0.05)
    check(t is not None, "fleet settings reach the agent's HAProxy: %r %r"
          % (get("nothing.example.com"), agent.text()[-800:]))
    print("fleet settings put -> traffic after %.2f s" % (time.time() - t0), flush=True)
    check(reloads() > r0, "HAProxy was reloaded (%d -> %d)" % (r0, reloads()))
    # the line is written once the reload is done, after traffic moved
    check(wait_for(lambda: "event=applied method=reload" in agent.text() and
                   "why=watch" in agent.text(), 30, step=0.05) is not None,
          "applied from the watch: %s" % agent.text()[-800:])
    check(get("www.example.com") == "b1", "traffic still served")

    # the table's overrides
    t0 = time.time()
    settings({"defaults": {"timeouts": {"client": "41s"}}}, table=TABLE)
    t = wait_for(lambda: "timeout client 41s" in live_text(), 60, step=0.05)
    check(t is not None, "table settings reach the agent's config")
    print("table settings put -> config after %.2f s" % (time.time() - t0), flush=True)

    # a second writer POSTs the same table
    t0 = time.time()
    st, h, body = registry.post(payload(
        TABLE, [{"serviceName": "web", "id": "b1", "ip": ADDR["b1"]},
                {"serviceName": "api", "id": "b2", "ip": ADDR["b2"]}],
        [svc("web", "www.example.com", ["b1"]), svc("api", "api.example.com", ["b2"])]))
    check(st == 200, "the second writer's POST: %d %r" % (st, body[:300]))
    t = wait_for(lambda: get("api.example.com") == "b2", 60, step=0.05)
    check(t is not None, "the second writer's service reaches the agent's traffic: %r"
          % get("api.example.com"))
    print("second writer POST -> traffic after %.2f s" % (time.time() - t0), flush=True)
    check(os.stat(services_path).st_mtime_ns == src_mtime, "no source event meanwhile")
    index = int(h.get("x-registry-index", "0"))
    check(wait_for(lambda: "index=%d" % index in agent.text(), 30, step=0.05) is not None,
          "the agent logged the second writer's index %d" % index)

    # a source event while the watch is parked goes out at once
    check(wait_for(lambda: b'"watching":1' in registry.request("GET", "/healthz")[2], 30,
                   step=0.05) is not None, "the watch parked again")
    t0 = time.time()
    write_services([svc("web", "www.example.com", ["b1"]), svc("news", "news.example.com", ["b3"])])
    t = wait_for(lambda: get("news.example.com") == "b3", 60, step=0.05)
    check(t is not None, "a source event during a parked poll reaches traffic")
    print("source event during a parked poll -> traffic after %.2f s" % (time.time() - t0),
          flush=True)
    check(t is not None and t < 10, "not held back by the long poll (%r s)" % t)

    # the registry goes away; a change stored meanwhile is applied once it is back
    registry.stop()
    check(wait_for(lambda: "event=watch_failed" in agent.text(), 60, step=0.05) is not None,
          "the agent saw the registry go: %s" % agent.text()[-600:])
    put_fleet_settings(store, d, {"unmatched": {"status": 404, "body": "gone fishing"},
                                  "defaults": {"timeouts": {"server": "46s"}}})
    registry = Server(store, ["--frontend-bind", "127.0.0.1:%d" % fport], port=registry.port)
    t = wait_for(lambda: "timeout server 46s" in live_text(), 90, step=0.1)
    check(t is not None, "the watch resumed after the registry came back: %s"
          % agent.text()[-800:])
    check(get("news.example.com") == "b3" and get("www.example.com") == "b1",
          "traffic kept across the outage")
    check(agent.stop() == 0, "the agent stops cleanly on SIGTERM during a parked poll")
    check("watch_applies=" in agent.text() and "watch_applies=0 " not in agent.text(),
          "the stop line counts the watch's applies: %s" % agent.text()[-400:])

    # --watch off: the agent syncs, but never polls
    agent = Agent(url, ["--watch", "off"])
    check(wait_for(lambda: "event=unchanged" in agent.text() or "event=applied" in agent.text(),
                   90, step=0.1) is not None, "the agent without a watch syncs")
    check(agent.stop() == 0, "stops")
    check("watch=off" in agent.text() and "watch_polls=0 " in agent.text(),
          "--watch off polls nothing: %s" % agent.text()[-400:])
    r = subprocess.run([BIN, "agent", "--registry", url, "--table", TABLE, "--source",
                        "file:" + services_path, "--haproxy-config", live,
                        "--haproxy-master-socket", sock, "--watch", "maybe"],
                       capture_output=True, timeout=60)
    check(r.returncode == 2 and b"--watch" in r.stderr, "--watch maybe: %d %r"
          % (r.returncode, r.stderr))
finally:
    if agent:
        agent.stop()
    if registry:
        registry.stop()
    hap.terminate()
    try:
        hap.wait(timeout=20)
    except subprocess.TimeoutExpired:
        hap.kill()
    for b in backends:
        b.stop()
finish()
