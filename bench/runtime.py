#!/usr/bin/env python3
"""Issue 14: container changes through HAProxy's runtime API against the
reload path, side by side, on one real master-worker HAProxy (loopback).

1. Latency: a container is re-addressed in the services file; the time
   until the first request is answered by the new address (a new
   connection every 5 ms), median and p99 over --changes changes, with the
   agent's --debounce (default 1000 ms, the agent's default).
2. Process count: --pileup changes while long-lived requests are open (a
   slow service whose backend holds every request for 60 s; a new one every
   100 ms), then the HAProxy processes (master and workers) are counted.

Usage: bench/runtime.py [--build DIR] [--changes N] [--pileup N]
       [--debounce MS] [--out FILE]
Prints the figures (Markdown) and writes them to --out when given.
"""
import argparse
import http.client
import json
import os
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from backends import Backend  # noqa: E402
from lrtest import HAPROXY, Server, free_port, wait_for  # noqa: E402

TABLE = "bench-runtime"


class Slow(socketserver.ThreadingMixIn, socketserver.TCPServer):
    """Reads a request and answers nothing for 60 s: a long-lived request
    (a report, a long poll, a download) that an old worker must wait for."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr):
        class H(socketserver.BaseRequestHandler):
            def handle(self):
                try:
                    if self.request.recv(4096):  # not a health check
                        time.sleep(60)
                except OSError:
                    pass
        super().__init__(addr, H)
        threading.Thread(target=self.serve_forever, daemon=True).start()


class Bench:
    def __init__(self, args):
        self.args = args
        self.d = tempfile.mkdtemp(prefix="lr-bench-runtime-")
        self.bport = free_port()
        self.fport = free_port()
        self.live = os.path.join(self.d, "haproxy.cfg")
        self.sock = os.path.join(self.d, "master.sock")
        self.services = os.path.join(self.d, "services.json")
        self.addrs = ["127.0.4.%d" % i for i in range(1, 41)]
        self.backends = [Backend(ip, ip, self.bport) for ip in self.addrs]
        for b in self.backends:
            b.server.handle_error = lambda request, address: None
        self.slow = Slow(("127.0.5.1", self.bport))
        self.containers = {"c1": self.addrs[0], "c2": self.addrs[1]}
        with open(self.live, "w") as f:
            f.write("global\n    maxconn 4096\ndefaults\n    mode http\n"
                    "    timeout connect 5s\n    timeout client 90s\n"
                    "    timeout server 90s\nfrontend http\n    bind 127.0.0.1:%d\n"
                    % self.fport)
        self.write()
        self.haplog = open(os.path.join(self.d, "haproxy.log"), "wb")
        self.hap = subprocess.Popen([HAPROXY, "-W", "-S", self.sock, "-f", self.live],
                                    stdout=self.haplog, stderr=self.haplog)
        wait_for(lambda: os.path.exists(self.sock) and self.master("show proc;quit"), 20)
        self.registry = Server("sqlite:" + os.path.join(self.d, "registry.db"),
                               ["--frontend-bind", "127.0.0.1:%d" % self.fport])
        self.agent = None

    def write(self):
        items = [{"serviceName": "web", "port": self.bport, "configMode": "host",
                  "predicate": "web.example.com",
                  "containers": [{"id": c, "ip": ip} for c, ip in sorted(self.containers.items())]},
                 {"serviceName": "slow", "port": self.bport, "configMode": "host",
                  "predicate": "slow.example.com",
                  "containers": [{"id": "slow1", "ip": "127.0.5.1"}]}]
        tmp = self.services + ".tmp"
        with open(tmp, "w") as f:
            json.dump(items, f)
        os.replace(tmp, self.services)

    def master(self, cmd):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.settimeout(10)
            s.connect(self.sock)
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out.decode()
                out += chunk
        finally:
            s.close()

    def processes(self):
        """The master and its children (current and old workers)."""
        master = self.hap.pid
        n = 1
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % pid) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            n += ppid == master
        return n

    def get(self):
        c = http.client.HTTPConnection("127.0.0.1", self.fport, timeout=10)
        try:
            c.request("GET", "/", headers={"Host": "web.example.com", "Connection": "close"})
            r = c.getresponse()
            body = r.read().decode()
            return body.split(" ")[0] if r.status == 200 else None
        finally:
            c.close()

    def start_agent(self, runtime, debounce):
        if self.agent:
            self.stop_agent()
        self.agentlog = os.path.join(self.d, "agent-%s.log" % runtime)
        self.agent_out = open(self.agentlog, "wb")
        self.agent = subprocess.Popen(
            [os.path.join(self.args.build, "lambda-registry"), "agent",
             "--registry", "http://127.0.0.1:%d" % self.registry.port, "--table", TABLE,
             "--source", "file:" + self.services, "--haproxy-config", self.live,
             "--haproxy-master-socket", self.sock, "--debounce", str(debounce),
             "--runtime", runtime, "--drain-timeout", "1000", "--timeout", "60000"],
            stdout=self.agent_out, stderr=self.agent_out)
        wait_for(lambda: self.applied() >= 1 or "event=unchanged" in self.log(), 60)

    def stop_agent(self):
        self.agent.send_signal(signal.SIGTERM)
        self.agent.wait(30)
        self.agent_out.close()
        self.agent = None

    def log(self):
        with open(self.agentlog, "rb") as f:
            return f.read().decode(errors="replace")

    def applied(self):
        return self.log().count("event=applied ")

    def readdress(self):
        """Move c1 or c2 to a free address; the new address."""
        used = set(self.containers.values())
        cid = "c1" if len(self.applied_changes) % 2 else "c2"
        ip = next(a for a in self.addrs if a not in used and a != self.last_freed)
        self.last_freed = self.containers[cid]
        self.containers[cid] = ip
        self.applied_changes.append(ip)
        self.write()
        return ip

    def latency(self, runtime):
        self.start_agent(runtime, self.args.debounce)
        self.applied_changes = []
        self.last_freed = None
        times = []
        for _ in range(self.args.changes):
            before = self.applied()
            t0 = time.monotonic()
            ip = self.readdress()
            t = wait_for(lambda: self.get() == ip, 60, step=0.005)
            times.append(t if t is not None else float("inf"))
            wait_for(lambda: self.applied() > before, 60)
        times.sort()
        methods = self.log().count("method=%s " % ("runtime" if runtime == "on" else "reload"))
        return times, methods

    def pileup(self, runtime):
        self.start_agent(runtime, 50)
        self.applied_changes = []
        self.last_freed = None
        stop = threading.Event()
        conns = []

        def open_slow():
            while not stop.is_set():
                try:
                    s = socket.create_connection(("127.0.0.1", self.fport), timeout=5)
                    s.sendall(b"GET / HTTP/1.1\r\nHost: slow.example.com\r\n\r\n")
                    conns.append(s)
                except OSError:
                    pass
                time.sleep(0.1)
        t = threading.Thread(target=open_slow, daemon=True)
        t.start()
        time.sleep(2)
        t0 = time.monotonic()
        for _ in range(self.args.pileup):
            before = self.applied()
            self.readdress()
            wait_for(lambda: self.applied() > before, 60)
        elapsed = time.monotonic() - t0
        procs = self.processes()
        stop.set()
        t.join(10)
        for s in conns:
            s.close()
        # Let the old workers of this round go before the next one.
        wait_for(lambda: self.processes() <= 2, 60, step=0.2)
        return procs, elapsed

    def close(self):
        if self.agent:
            self.stop_agent()
        self.registry.stop()
        self.hap.terminate()
        self.hap.wait(30)


def pct(times, p):
    return times[min(len(times) - 1, int(len(times) * p / 100.0))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--changes", type=int, default=50)
    ap.add_argument("--pileup", type=int, default=200)
    ap.add_argument("--debounce", type=int, default=1000)
    ap.add_argument("--out")
    args = ap.parse_args()
    b = Bench(args)
    try:
        lat = {m: b.latency(m) for m in ("on", "off")}
        pile = {m: b.pileup(m) for m in ("on", "off")}
    finally:
        b.close()
    on, off = lat["on"][0], lat["off"][0]
    lines = [
        "## Container change -> first request served by the new address",
        "",
        "%d re-addresses each, agent --debounce %d ms, one HAProxy 2.6 "
        "master-worker on loopback; a new connection every 5 ms." % (args.changes, args.debounce),
        "",
        "| path | applied as | median | p99 | max |",
        "|---|---|---|---|---|",
        "| runtime API | %d runtime | %.0f ms | %.0f ms | %.0f ms |" % (
            lat["on"][1], pct(on, 50) * 1000, pct(on, 99) * 1000, on[-1] * 1000),
        "| reload | %d reloads | %.0f ms | %.0f ms | %.0f ms |" % (
            lat["off"][1], pct(off, 50) * 1000, pct(off, 99) * 1000, off[-1] * 1000),
        "| ratio reload / runtime | | %.2f | %.2f | |" % (
            pct(off, 50) / pct(on, 50), pct(off, 99) / pct(on, 99)),
        "",
        "## HAProxy processes after %d changes with long-lived requests open" % args.pileup,
        "",
        "A new 60 s request every 100 ms to a slow service; hard-stop-after 30s "
        "(the default); agent --debounce 50 ms.",
        "",
        "| path | processes (master + workers) | time for the changes |",
        "|---|---|---|",
        "| runtime API | %d | %.1f s |" % pile["on"],
        "| reload | %d | %.1f s |" % pile["off"],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
