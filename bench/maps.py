#!/usr/bin/env python3
"""Routing through ACLs against routing through maps, side by side in one run.

For tables of N services (host mode, then path mode), the registry renders
both forms from the same stored services (`generate` plain: the ACL form,
`generate --json`: the map form and its files). For each form:

- `haproxy -c` time on the config (and its maps), wall and CPU, and the CPU
  of the same check with glibc's malloc on transparent huge pages (most of
  a large check is page faults on the memory of its backends);
- reload time: a master-worker HAProxy running the config is told `reload`
  on its master CLI, timed until `show proc` lists a new worker;
- req/s with wrk through that HAProxy for the first, middle and last
  service, to a backend that answers at once (an HAProxy frontend with
  `http-request return` on 127.0.0.2).

The servers' ` check` is taken off the rendered lines, so that N health
checks do not load the machine the figures come from; the routing rules are
untouched. Each request is first made once and must reach the backend.

The ACL form's check time grows with the square of N (minutes at 50,000):
sizes above --acl-max are not run in the ACL form, and the table says so.

Usage: bench/maps.py [--bin build/lambda-registry] [--sizes 100,1000,...]
                     [--acl-max 10000] [--seconds 3] [--rounds 3]
                     [--out bench/maps.md]
"""
import argparse
import datetime
import http.client
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(pred, timeout, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def master(sock, cmd, timeout=30):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        s.sendall(cmd.encode() + b"\n")
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode(errors="replace")
            out += chunk
    except OSError:
        return None
    finally:
        s.close()


def workers(sock):
    """The current workers' pids from `show proc`, or None."""
    text = master(sock, "show proc", timeout=5)
    if not text or "#" not in text:
        return None
    pids = []
    for line in text.splitlines():
        if line.startswith("# ") and "old workers" in line:
            break
        f = line.split()
        if len(f) >= 2 and f[1] == "worker" and f[0].isdigit():
            pids.append(int(f[0]))
    return pids or None


def name(i):
    return "svc%05d" % i


def payload(n, mode, bport):
    cands = []
    for i in range(1, n + 1):
        pred = "%s.example.com" % name(i) if mode == "host" else name(i)
        cands.append({"serviceName": name(i), "port": bport, "configMode": mode,
                      "predicate": pred,
                      "containers": [{"id": "c" + name(i), "ip": "127.0.0.2"}]})
    return json.dumps({"table": "bench", "running": [], "candidates": cands}).encode()


def request_for(i, mode):
    """(Host header, path) that service i answers."""
    if mode == "host":
        return "%s.example.com" % name(i), "/"
    return "localhost", "/%s/x" % name(i)


def get(port, host, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wrk(port, host, path, seconds, threads, conns):
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "-H", "Host: " + host,
           "http://127.0.0.1:%d%s" % (port, path)]
    out = subprocess.run(cmd, capture_output=True, timeout=seconds + 60, text=True).stdout
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if not m:
        raise SystemExit("bench: no Requests/sec in wrk's output:\n" + out)
    if "Non-2xx" in out:
        raise SystemExit("bench: wrk saw non-2xx answers (routing is wrong):\n" + out)
    return float(m.group(1))


def timed(cmd, timeout, env=None):
    """(wall s, CPU s, result) of one command: on a loaded machine the CPU
    time (user + system of the child) is the figure that does not move."""
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, env=env)
    wall = time.monotonic() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return wall, cpu, r


def cpu_s(pid):
    """User + system seconds of one process so far (0 when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(args, work, label, cfg, files, mapdir, mode, n, fport):
    """(check wall, CPU, CPU with huge-page malloc), (reload wall, CPU),
    {first, middle, last: req/s} for one config."""
    for fname, text in files.items():
        with open(os.path.join(mapdir, fname), "w") as f:
            f.write(text)
    path = os.path.join(work, label + ".cfg")
    with open(path, "w") as f:
        f.write(cfg)
    check_s, check_cpu, r = timed([args.haproxy, "-c", "-f", path], args.check_timeout)
    if r.returncode:
        raise SystemExit("bench: haproxy -c refused %s: %s" % (label, r.stderr[-800:]))
    # Most of a large check is page faults on ~12 KB per backend: glibc's
    # malloc on transparent huge pages shows how much.
    env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.hugetlb=1")
    _, check_thp, r = timed([args.haproxy, "-c", "-f", path], args.check_timeout, env)
    if r.returncode:
        raise SystemExit("bench: haproxy -c refused %s: %s" % (label, r.stderr[-800:]))
    sock = os.path.join(work, label + ".sock")
    hlog = open(os.path.join(work, label + ".log"), "wb")
    hap = subprocess.Popen([args.haproxy, "-W", "-S", sock, "-f", path],
                           stdout=hlog, stderr=hlog)
    try:
        before = wait_for(lambda: workers(sock), args.check_timeout)
        if not before:
            raise SystemExit("bench: haproxy did not start for %s" % label)
        wait_for(lambda: _up(fport), 60)
        # The master re-executes itself (same pid) and forks the worker.
        cpu0 = cpu_s(hap.pid)
        t0 = time.monotonic()
        master(sock, "reload")
        after = wait_for(lambda: (lambda w: w if w and not set(w) & set(before) else None)(
            workers(sock)), args.check_timeout, step=0.01)
        reload_s = time.monotonic() - t0
        if not after:
            raise SystemExit("bench: no new worker after the reload of %s" % label)
        reload_cpu = cpu_s(hap.pid) - cpu0 + sum(cpu_s(w) for w in after)
        wait_for(lambda: _up(fport), 60)
        targets = (("first", 1), ("middle", (n + 1) // 2), ("last", n))
        for which, i in targets:
            host, p = request_for(i, mode)
            st, body = get(fport, host, p)
            if st != 200 or body != b"ok":
                raise SystemExit("bench: %s %s%s answered %d %r" % (label, host, p, st, body))
        # Rounds of first, middle, last: the machine's load moves, the
        # median of each is compared.
        runs = {which: [] for which, _ in targets}
        for _ in range(args.rounds):
            for which, i in targets:
                host, p = request_for(i, mode)
                runs[which].append(wrk(fport, host, p, args.seconds, args.threads,
                                       args.connections))
        rps = {which: statistics.median(v) for which, v in runs.items()}
        return (check_s, check_cpu, check_thp), (reload_s, reload_cpu), rps
    finally:
        hap.terminate()
        try:
            hap.wait(timeout=60)
        except subprocess.TimeoutExpired:
            hap.kill()
            hap.wait()
        hlog.close()


def _up(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def backend(args, work, bport):
    path = os.path.join(work, "backend.cfg")
    with open(path, "w") as f:
        f.write("global\n    maxconn 4000\n\ndefaults\n    mode http\n"
                "    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n\n"
                "frontend answer\n    bind 127.0.0.2:%d\n"
                "    http-request return status 200 content-type text/plain string ok\n"
                % bport)
    return subprocess.Popen([args.haproxy, "-db", "-f", path], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def fmt(v, digits=0):
    return "{:,.{}f}".format(v, digits)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "lambda-registry"))
    ap.add_argument("--haproxy", default="haproxy")
    ap.add_argument("--sizes", default="100,1000,10000,50000")
    ap.add_argument("--modes", default="host,path")
    ap.add_argument("--acl-max", type=int, default=10000)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--connections", type=int, default=10)
    ap.add_argument("--check-timeout", type=int, default=900)
    ap.add_argument("--out", default=None, help="also write the report here")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is not installed (scripts/deps.sh bench)")
    work = tempfile.mkdtemp(prefix="lr-bench-maps-")
    bport, fport = free_port(), free_port()
    mapdir = os.path.join(work, "maps")
    os.makedirs(mapdir)
    start = datetime.datetime.now(datetime.timezone.utc)
    load0 = open("/proc/loadavg").read().split()[:3]
    be = backend(args, work, bport)
    rows = []
    try:
        if not wait_for(lambda: get_ok(bport), 30):
            raise SystemExit("bench: the backend HAProxy does not answer")
        for mode in args.modes.split(","):
            for n in [int(x) for x in args.sizes.split(",")]:
                store = "sqlite:" + os.path.join(work, "%s-%d.db" % (mode, n))
                sfile = os.path.join(work, "settings.yaml")
                with open(sfile, "w") as f:
                    f.write("routing: {mapDir: %s}\n" % mapdir)
                r = subprocess.run([args.bin, "settings", "put", "--store", store, sfile],
                                   capture_output=True)
                if r.returncode:
                    raise SystemExit("bench: settings put: %r" % r.stderr)
                body = payload(n, mode, bport)
                gen = [args.bin, "generate", "--store", store,
                       "--frontend-bind", "127.0.0.1:%d" % fport]
                r = subprocess.run(gen, input=body, capture_output=True)
                if r.returncode:
                    raise SystemExit("bench: generate: %r" % r.stderr[-500:])
                acl_cfg = r.stdout.decode()
                r = subprocess.run(gen + ["--json"], input=body, capture_output=True)
                if r.returncode:
                    raise SystemExit("bench: generate --json: %r" % r.stderr[-500:])
                ans = json.loads(r.stdout)
                map_cfg, files = ans["config"], ans["files"]
                if " acl " not in acl_cfg or " acl " in map_cfg or not files:
                    raise SystemExit("bench: the two forms are not what they should be")
                acl_cfg = acl_cfg.replace(" check\n", "\n")
                map_cfg = map_cfg.replace(" check\n", "\n")
                row = {"mode": mode, "n": n, "acl_bytes": len(acl_cfg),
                       "map_bytes": len(map_cfg) + sum(len(v) for v in files.values())}
                log("bench: %s mode, %d services: map form (load %s)" %
                    (mode, n, open("/proc/loadavg").read().split()[0]))
                row["map"] = measure(args, work, "map-%s-%d" % (mode, n), map_cfg, files,
                                     mapdir, mode, n, fport)
                if n <= args.acl_max:
                    log("bench: %s mode, %d services: ACL form" % (mode, n))
                    row["acl"] = measure(args, work, "acl-%s-%d" % (mode, n), acl_cfg, {},
                                         mapdir, mode, n, fport)
                rows.append(row)
                log("bench: %r" % row)
    finally:
        be.terminate()
        be.wait()
    end = datetime.datetime.now(datetime.timezone.utc)
    load1 = open("/proc/loadavg").read().split()[:3]
    commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    hv = subprocess.run([args.haproxy, "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    lines = [
        "# Routing: ACLs against maps",
        "",
        "%s to %s UTC, commit %s, %d CPUs, load average at the start %s, at the end %s. %s."
        % (start.strftime("%Y-%m-%d %H:%M"), end.strftime("%H:%M"), commit, os.cpu_count(),
           " ".join(load0), " ".join(load1), hv),
        "`bench/maps.py`: wrk -t%d -c%d -d%ds (median of %d rounds) through one HAProxy to a backend that answers "
        "at once; the ACL form (one acl + use_backend per service, as the plain answer) and "
        "the map form (the JSON answer: hosts.map / paths.map) rendered by the registry from "
        "the same services, measured one after the other in this run. Server checks off "
        "(see the script). `reload`: master CLI `reload` until a new worker is listed; its CPU "
        "is the master's (it parses the config again) plus the new worker's. CPU is user + "
        "system time. `huge-page malloc`: the same check with "
        "`GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (transparent huge pages for HAProxy's heap)."
        % (args.threads, args.connections, args.seconds, args.rounds),
        "",
        "| mode | services | form | req/s first | middle | last | last/first | haproxy -c: wall (CPU) | -c CPU, huge-page malloc | reload: wall (CPU) | config (+maps) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        for form in ("acl", "map"):
            if form not in row:
                lines.append("| %s | %s | ACL | not run: over --acl-max %s (check time grows "
                             "with the square of N) | | | | | | | %s B |"
                             % (row["mode"], fmt(row["n"]), fmt(args.acl_max),
                                fmt(row["acl_bytes"])))
                continue
            (check_s, check_cpu, check_thp), (reload_s, reload_cpu), rps = row[form]
            lines.append("| %s | %s | %s | %s | %s | %s | %.2f | %.2f s (%.2f s) | %.2f s "
                         "| %.2f s (%.2f s) | %s B |" % (
                row["mode"], fmt(row["n"]), "map" if form == "map" else "ACL",
                fmt(rps["first"]), fmt(rps["middle"]), fmt(rps["last"]),
                rps["last"] / rps["first"], check_s, check_cpu, check_thp, reload_s, reload_cpu,
                fmt(row[form + "_bytes"])))
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        with open(args.out, "w") as f:
            f.write(report)


def get_ok(port):
    try:
        c = http.client.HTTPConnection("127.0.0.2", port, timeout=5)
        c.request("GET", "/")
        return c.getresponse().status == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
