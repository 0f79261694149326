#!/usr/bin/env python3
"""The agent's --metrics-listen and its reports, against a real master-worker
HAProxy. A scripted registry answers a 429, two good configs, one that
`haproxy -c` refuses and one that passes the check but cannot load (its port
is taken): the agent's metrics must then say 2 reloads, 1 rollback, 1
rejection, 1 registry error, with the output parsed to the 0.0.4 format and
clean under promtool-style rules; each apply is reported with the registry's
index, HAProxy's version and server counts. Then the real registry keeps a
real agent's report and lists it."""
import http.client
import http.server
import json
import os
import socket
import subprocess
import threading
import time

from lrtest import (master_command, BIN, HAPROXY, Server, check, free_port, put_fleet_settings, run_steps, skip,
                    tmpdir, wait_for)
import promtext

if not os.path.exists(HAPROXY):
    skip("no haproxy at %s" % HAPROXY)

d = tmpdir()
fport, mport, live_port = free_port(), free_port(), free_port()
live = os.path.join(d, "haproxy.cfg")
sock = os.path.join(d, "master.sock")
services_path = os.path.join(d, "services.json")
procs = []

BASE = """global
    maxconn 256

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend http
    bind 127.0.0.1:%d
    default_backend b
""" % fport


def config(n):
    """A config with n servers in backend b: the first one listens."""
    lines = [BASE, "backend b\n"]
    for i in range(n):
        port = live_port if i == 0 else free_port()
        lines.append("    server s%d 127.0.0.1:%d check\n" % (i, port))
    return "".join(lines).encode()


class Registry:
    """POST /generate: the scripted (status, body, index) answers, then the
    default one; PUT .../agents/ID: recorded."""

    def __init__(self):
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    code, body, index = outer.script.pop(0) if outer.script else outer.answer
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("X-Registry-Index", str(index))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_PUT(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with outer.lock:
                    outer.reports.append((self.path, json.loads(data)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass

        self.lock = threading.Lock()
        self.script, self.reports, self.answer = [], [], None
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def master(cmd):
    return master_command(sock, cmd)


def scrape():
    c = http.client.HTTPConnection("127.0.0.1", mport, timeout=10)
    try:
        c.request("GET", "/metrics")
        r = c.getresponse()
        text = r.read().decode()
        if r.status != 200:
            return None
    finally:
        c.close()
    fams = promtext.parse(text)
    problems = promtext.lint(fams)
    check(not problems, "agent metrics lint: %s" % problems)
    return fams


def metric(name, **labels):
    fams = scrape()
    return promtext.value(fams, name, **labels) if fams else None


def write_services(n):
    with open(services_path + ".tmp", "w") as f:
        json.dump([{"serviceName": "svc", "port": 80, "configMode": "host",
                    "predicate": "x%d.example.com" % n,
                    "containers": [{"id": "c1", "ip": "127.0.0.9"}]}], f)
    os.replace(services_path + ".tmp", services_path)


def start_haproxy():
    with open(live, "wb") as f:
        f.write(BASE.encode() + b"backend b\n")
    log = open(os.path.join(d, "haproxy.log"), "wb")
    hap = subprocess.Popen([HAPROXY, "-W", "-S", sock, "-f", live], stdout=log, stderr=log)
    procs.append(hap)
    check(wait_for(lambda: os.path.exists(sock) and "master" in master("show proc;quit"), 20)
          is not None, "haproxy master answers")


def agent_args(url, table="t-agent"):
    return [BIN, "agent", "--registry", url, "--table", table, "--source",
            "file:" + services_path, "--haproxy-config", live,
            "--haproxy-master-socket", sock, "--debounce", "100", "--timeout", "30000"]


def test_scripted_agent():
    start_haproxy()
    reg = Registry()
    listener = socket.socket()
    listener.bind(("127.0.0.1", live_port))
    listener.listen(8)
    procs.append(listener)
    a, b = config(2), config(3)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    procs.append(busy)
    unloadable = b.replace(b"bind 127.0.0.1:%d" % fport, b"bind 127.0.0.1:%d\n    bind 127.0.0.1:%d"
                           % (fport, busy.getsockname()[1]))
    reg.script = [(429, b"slow down", 0), (200, a, 7)]
    reg.answer = (200, b, 8)
    write_services(1)
    log = open(os.path.join(d, "agent.log"), "wb")
    agent = subprocess.Popen(agent_args(reg.url) + ["--metrics-listen", "127.0.0.1:%d" % mport,
                                                    "--agent-id", "host-1"],
                             stdout=log, stderr=log)
    procs.append(agent)
    agent_log = lambda: open(os.path.join(d, "agent.log"), "rb").read().decode(errors="replace")  # noqa: E731

    check(wait_for(lambda: metric("lambda_registry_agent_reloads_total") == 1, 60) is not None,
          "first reload counted (%s)" % agent_log()[-1500:])
    check(metric("lambda_registry_agent_registry_errors_total", code="429") == 1, "the 429 counted")
    check(metric("lambda_registry_agent_applied_index") == 7, "applied index from the answer")
    check(metric("lambda_registry_agent_last_apply_success") == 1, "last apply ok")

    write_services(2)
    check(wait_for(lambda: metric("lambda_registry_agent_reloads_total") == 2, 60) is not None,
          "second reload counted")
    with reg.lock:
        reg.script = [(200, b"global\n    no-such-keyword here\n", 9), (200, unloadable, 10)]
    write_services(3)
    check(wait_for(lambda: metric("lambda_registry_agent_applies_total",
                                  method="noop", result="ok") == 1, 120) is not None,
          "rejected, rolled back, then unchanged (%s)" % agent_log()[-3000:])
    fams = scrape() or []
    v = lambda name, **lb: promtext.value(fams, name, **lb)  # noqa: E731
    check(v("lambda_registry_agent_reloads_total") == 2, "2 reloads")
    check(v("lambda_registry_agent_rollbacks_total") == 1, "1 rollback")
    check(v("lambda_registry_agent_config_rejections_total") == 1, "1 config rejection")
    check(v("lambda_registry_agent_applies_total", method="reload", result="ok") == 2, "2 ok applies")
    check(v("lambda_registry_agent_applies_total", method="reload", result="rejected") == 1,
          "1 rejected apply")
    check(v("lambda_registry_agent_applies_total", method="reload", result="rolled_back") == 1,
          "1 rolled back apply")
    check(v("lambda_registry_agent_registry_errors_total", code="429") == 1, "still 1 registry error")
    check(v("lambda_registry_agent_applied_index") == 8, "applied index of the live config")
    check(v("lambda_registry_agent_last_apply_success") == 1, "last apply ok again")
    check((v("lambda_registry_agent_last_apply_timestamp_seconds") or 0) > time.time() - 300,
          "last apply time")
    check((v("lambda_registry_agent_runtime_command_duration_seconds_count") or 0) >= 4,
          "master CLI commands timed")
    check(v("lambda_registry_build_info", version="0.1.0") == 1, "build info")
    check((v("process_resident_memory_bytes") or 0) > 0, "process metrics")
    check((v("process_open_fds") or 0) >= 3 and (v("process_cpu_seconds_total") or 0) > 0 and
          (v("process_start_time_seconds") or 0) > 1.6e9, "the agent's open fds, cpu, start")
    check("lambda_registry_http_requests_total" not in promtext.family_names(fams),
          "no serve families in the agent")

    version = subprocess.run([HAPROXY, "-v"], capture_output=True).stdout.decode().split()[2]
    with reg.lock:
        reports = list(reg.reports)
    results = [r["result"] for _, r in reports]
    check(results == ["applied", "applied", "rejected", "rolled_back", "unchanged"],
          "one report per apply: %r" % results)
    check(all(p == "/v1/tables/t-agent/agents/host-1" for p, _ in reports), "report path")
    if len(reports) == 5:
        first, last = reports[0][1], reports[4][1]
        check(first["appliedIndex"] == 7 and first["method"] == "reload", "first report %r" % first)
        check(first["haproxyVersion"] == version, "haproxy version %r" % first["haproxyVersion"])
        check(first["up"] + first["down"] == 2, "2 servers in the first config: %r" % first)
        check(last["method"] == "noop" and last["up"] + last["down"] == 3,
              "last report %r" % last)
    agent.terminate()
    agent.wait(timeout=30)
    st = subprocess.run(agent_args(reg.url) + ["--metrics-listen", "127.0.0.1:bad", "--once"],
                        capture_output=True, timeout=60)
    check(st.returncode == 2 and b"--metrics-listen" in st.stderr, "bad --metrics-listen: %r" % st.stderr)


def test_real_registry_keeps_reports():
    store = "sqlite:" + os.path.join(d, "registry.db")
    put_fleet_settings(store, d)
    srv = Server(store, ["--frontend-bind", "127.0.0.1:%d" % fport])
    procs.append(srv)
    write_services(4)
    r = subprocess.run(agent_args("http://127.0.0.1:%d" % srv.port, "t-real") +
                       ["--once", "--agent-id", "edge-1"], capture_output=True, timeout=120)
    check(r.returncode == 0, "agent --once against the registry: %r" % r.stderr[-1500:])
    st, _, body = srv.request("GET", "/v1/agents")
    check(st == 200, "GET /v1/agents %d" % st)
    agents = json.loads(body)["agents"] if st == 200 else []
    check([(x["table"], x["agent"]) for x in agents] == [("t-real", "edge-1")], "listed: %r" % agents)
    st, _, body = srv.request("GET", "/metrics")
    version = promtext.value(promtext.parse(body.decode()), "lambda_registry_table_version",
                             table="t-real")
    # The applied index is the table's index (its version plus the
    # settings generation: one settings put here), as GET /v1/tables/t-real says.
    st, _, body = srv.request("GET", "/v1/tables/t-real")
    index = json.loads(body)["index"] if st == 200 else None
    if agents:
        check(agents[0]["report"]["appliedIndex"] == index and version and index == version + 1,
              "applied index %r is the table's index %r (version %r)"
              % (agents[0]["report"], index, version))
        check(agents[0]["report"]["receivedAt"] > (time.time() - 300) * 1000, "stamped")
    bad = [({"appliedIndex": -1}, "appliedIndex"), ({"method": "ssh"}, "method"),
           ({"haproxyVersion": "2.6 beta"}, "haproxyVersion"), ({"up": "3"}, "up")]
    good = {"appliedIndex": 1, "method": "reload", "result": "applied",
            "haproxyVersion": "2.6", "up": 1, "down": 0}
    for change, field in bad:
        doc = dict(good, **change)
        st, _, body = srv.request("PUT", "/v1/tables/t-real/agents/edge-2", json.dumps(doc))
        check(st == 400 and json.loads(body).get("field") == field,
              "refused %s: %d %r" % (field, st, body))
    st, _, body = srv.request("PUT", "/v1/tables/t-real/agents/bad%20id", json.dumps(good))
    check(st == 400 and json.loads(body).get("field") == "agent", "bad agent id %d" % st)
    st, _, body = srv.request("GET", "/v1/agents")
    check(len(json.loads(body)["agents"]) == 1, "nothing refused was stored")
    srv.stop()


def cleanup():
    for p in procs:
        if isinstance(p, socket.socket):
            p.close()
        elif isinstance(p, Server):
            p.stop()
        elif p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


run_steps([test_scripted_agent, test_real_registry_keeps_reports], cleanup=cleanup)
