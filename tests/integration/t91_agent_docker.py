#!/usr/bin/env python3
"""The agent's Docker source against a real engine: podman serving the
Docker Engine API (`podman system service`), containers from a busybox-static
rootfs with their settings in env or labels, a real master-worker HAProxy and
the real registry. Traffic must follow containers as they start and go.
Exits 77 (skipped, with the reason printed) when podman cannot run here."""
import http.client
import os
import shutil
import signal
import socket
import subprocess
import time

from lrtest import BIN, HAPROXY, Server, check, finish, free_port, skip, tmpdir, wait_for

DEBOUNCE_MS = 300
TABLE = "agent-docker"
IMAGE = "lrtest-busybox"


podman_bin = shutil.which("podman")
busybox = shutil.which("busybox") or "/bin/busybox"
if not podman_bin:
    skip("podman is not installed (apt-get install podman runc busybox-static)")
if os.geteuid() != 0:
    skip("needs root for rootful podman")
if not os.path.exists(busybox):
    skip("busybox-static is not installed")

d = tmpdir()
fport = free_port()
live = os.path.join(d, "haproxy.cfg")
sock = os.path.join(d, "master.sock")
api_sock = os.path.join(d, "podman.sock")
store = "sqlite:" + os.path.join(d, "registry.db")

conf = os.path.join(d, "containers.conf")
with open(conf, "w") as f:
    f.write('[containers]\n'
            'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n\n'
            '[engine]\n'
            'runtime = "runc"\n'
            'cgroup_manager = "cgroupfs"\n'
            'events_logger = "file"\n')
env = dict(os.environ, CONTAINERS_CONF=conf)
PODMAN = [podman_bin, "--root", os.path.join(d, "root"), "--runroot", os.path.join(d, "run"),
          "--tmpdir", os.path.join(d, "tmp"), "--storage-driver", "vfs"]


def podman(*args, timeout=120):
    return subprocess.run(PODMAN + list(args), capture_output=True, env=env, timeout=timeout)


def start_service():
    log = open(os.path.join(d, "podman-service.log"), "ab")
    p = subprocess.Popen(PODMAN + ["system", "service", "--time", "0", "unix://" + api_sock],
                         stdout=log, stderr=log, env=env)
    for _ in range(200):
        if os.path.exists(api_sock):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(api_sock)
                s.close()
                return p
            except OSError:
                pass
        time.sleep(0.05)
    return p


def stop_service(p):
    p.terminate()
    try:
        p.wait(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def run_container(name, settings, labels=False):
    """A busybox httpd on port 8080 that answers with the container's name."""
    args = ["run", "-d", "--name", name, "--network", "podman"]
    for k, v in settings.items():
        args += ["--label" if labels else "-e", "%s=%s" % (k, v)]
    args += [IMAGE, "/bin/sh", "-c",
             "mkdir -p /www/api && echo %s > /www/index.html && cp /www/index.html /www/api/ && "
             "exec /bin/httpd -f -p 8080 -h /www" % name]
    r = podman(*args)
    return r.returncode == 0, r.stderr.decode(errors="replace")


def get(host, path="/index.html", timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", fport, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": host, "Connection": "close"})
        r = c.getresponse()
        body = r.read().decode()
        return r.status, body.strip() if r.status == 200 else None
    finally:
        c.close()


def seen(host, path="/index.html", n=6):
    out = set()
    for _ in range(n):
        try:
            out.add(get(host, path)[1])
        except OSError:
            out.add("error")
    return out


# Setup: every step that fails here means podman cannot run on this machine.
rootfs = os.path.join(d, "rootfs")
os.makedirs(os.path.join(rootfs, "bin"))
shutil.copy(busybox, os.path.join(rootfs, "bin", "busybox"))
for applet in ("sh", "httpd", "mkdir", "echo", "cp"):
    os.symlink("busybox", os.path.join(rootfs, "bin", applet))
tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
imp = subprocess.Popen(PODMAN + ["import", "-", IMAGE], stdin=tar.stdout,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
tar.stdout.close()  # only podman reads the pipe: tar sees it close if podman dies
try:
    _, imp_err = imp.communicate(timeout=120)
except subprocess.TimeoutExpired:
    imp.kill()
    _, imp_err = imp.communicate()
tar.wait()
if imp.returncode != 0:
    skip("podman import failed: " + imp_err.decode(errors="replace")[-300:])
probe = podman("run", "--rm", "--network", "podman", IMAGE, "/bin/busybox", "true")
if probe.returncode != 0:
    skip("podman run failed: " + probe.stderr.decode(errors="replace")[-300:])

service = start_service()
if service.poll() is not None or not os.path.exists(api_sock):
    skip("podman system service did not start")

with open(live, "w") as f:
    f.write("global\n    maxconn 1024\n\ndefaults\n    mode http\n    timeout connect 5s\n"
            "    timeout client 30s\n    timeout server 30s\n\nfrontend http\n"
            "    bind 127.0.0.1:%d\n" % fport)
haplog = open(os.path.join(d, "haproxy.log"), "wb")
hap = subprocess.Popen([HAPROXY, "-W", "-S", sock, "-f", live], stdout=haplog, stderr=haplog)
registry = agent = None
agentlog_path = os.path.join(d, "agent.log")
try:
    # The agent's answer routes through maps: kept in the test's folder.
    with open(os.path.join(d, "settings.yaml"), "w") as f:
        f.write("routing:\n  mapDir: %s\n" % os.path.join(d, "maps"))
    r = subprocess.run([BIN, "settings", "put", "--store", store,
                        os.path.join(d, "settings.yaml")], capture_output=True, timeout=60)
    check(r.returncode == 0, "settings put (%r)" % r.stderr)
    registry = Server(store, ["--frontend-bind", "127.0.0.1:%d" % fport])
    web = {"SERVICE_NAME": "web", "PORT": "8080", "PREDICATE": "web.example.com"}
    ok, err = run_container("lrt-web-1", web)
    check(ok, "run lrt-web-1: " + err)
    # Settings as labels work the same way.
    ok, err = run_container("lrt-web-2", web, labels=True)
    check(ok, "run lrt-web-2: " + err)
    # Missing PORT: logged once and skipped, never blocking the others.
    ok, err = run_container("lrt-bad", {"SERVICE_NAME": "bad", "PREDICATE": "bad.example.com"})
    check(ok, "run lrt-bad: " + err)
    # Valid settings but outside --keyword: ignored.
    ok, err = run_container("other-1", {"SERVICE_NAME": "other", "PORT": "8080",
                                         "PREDICATE": "other.example.com"})
    check(ok, "run other-1: " + err)

    agentlog = open(agentlog_path, "wb")
    agent = subprocess.Popen(
        [BIN, "agent", "--registry", "http://127.0.0.1:%d" % registry.port, "--table", TABLE,
         "--source", "docker:" + api_sock, "--keyword", "lrt-", "--network", "podman",
         "--haproxy-config", live, "--haproxy-master-socket", sock,
         "--debounce", str(DEBOUNCE_MS)], stdout=agentlog, stderr=agentlog)

    def agent_text():
        with open(agentlog_path, "rb") as f:
            return f.read().decode(errors="replace")

    t = wait_for(lambda: seen("web.example.com") == {"lrt-web-1", "lrt-web-2"}, 20)
    check(t is not None, "both web containers get traffic: %r\n%s" %
          (seen("web.example.com"), agent_text()[-1500:]))
    check(get("other.example.com")[0] == 503, "container outside --keyword is not routed")
    check(get("bad.example.com")[0] == 503, "container without PORT is not routed")
    check(agent_text().count('name="lrt-bad" reason="no port"') == 1,
          "invalid container logged with its reason")

    # A new container (path mode) is routed after its start event.
    ok, err = run_container("lrt-api-1", {"SERVICE_NAME": "api", "PORT": "8080",
                                          "CONFIG_MODE": "path", "PREDICATE": "api"})
    check(ok, "run lrt-api-1: " + err)
    t = wait_for(lambda: get("localhost", "/api/index.html")[1] == "lrt-api-1", 15)
    check(t is not None, "started container gets traffic")
    print("container start -> traffic in %.2fs" % (t or -1), flush=True)

    # Service settings as labels reach the config and HAProxy: an inserted
    # cookie, a health check on a path the container serves, a weight.
    ok, err = run_container("lrt-opt-1", {
        "SERVICE_NAME": "opt", "PORT": "8080", "PREDICATE": "opt.example.com",
        "BALANCE": "leastconn", "COOKIE": "SRV", "COOKIE_MODE": "insert",
        "HEALTH_CHECK_PATH": "/index.html", "HEALTH_CHECK_STATUS": "200",
        "HEALTH_CHECK_INTERVAL": "500ms", "HEALTH_CHECK_RISE": "1", "HEALTH_CHECK_FALL": "2",
        "MAXCONN": "50", "TIMEOUT_SERVER": "20s", "TIMEOUT_TUNNEL": "1h", "WEIGHT": "5"},
        labels=True)
    check(ok, "run lrt-opt-1: " + err)
    t = wait_for(lambda: get("opt.example.com")[1] == "lrt-opt-1", 15)
    check(t is not None, "container with service settings gets traffic")
    with open(live) as f:
        cfg = f.read()
    for line in ("    balance leastconn\n", "    timeout server 20s\n", "    timeout tunnel 1h\n",
                 "    option httpchk GET /index.html\n", "    http-check expect status 200\n",
                 "    cookie SRV insert indirect nocache httponly\n",
                 " check inter 500ms rise 1 fall 2 maxconn 50 weight 5 cookie "):
        check(line in cfg, "live config has %r" % line)
    c = http.client.HTTPConnection("127.0.0.1", fport, timeout=5)
    c.request("GET", "/index.html", headers={"Host": "opt.example.com"})
    r = c.getresponse()
    r.read()
    c.close()
    check((r.getheader("Set-Cookie") or "").startswith("SRV="),
          "HAProxy inserts the cookie: %r" % r.getheader("Set-Cookie"))

    # A removed container loses its traffic after its die event.
    r = podman("rm", "-f", "-t", "0", "lrt-web-1")
    check(r.returncode == 0, "rm lrt-web-1")
    t = wait_for(lambda: seen("web.example.com") == {"lrt-web-2"}, 15)
    check(t is not None, "removed container loses traffic: %r" % seen("web.example.com"))
    print("container removed -> no traffic in %.2fs" % (t or -1), flush=True)
    check(agent_text().count('name="lrt-bad"') == 1, "invalid container logged once: %d" %
          agent_text().count('name="lrt-bad"'))

    # The engine goes away and comes back: the agent reconnects and resyncs,
    # catching a container that started while it was blind.
    stop_service(service)
    ok, err = run_container("lrt-web-3", web)
    check(ok, "run lrt-web-3: " + err)
    service = start_service()
    t = wait_for(lambda: seen("web.example.com") == {"lrt-web-2", "lrt-web-3"}, 30)
    check(t is not None, "after reconnect the missed container gets traffic: %r" %
          seen("web.example.com"))
    check("event=docker_disconnected" in agent_text(), "disconnect logged")

    agent.send_signal(signal.SIGTERM)
    try:
        rc = agent.wait(timeout=10)
    except subprocess.TimeoutExpired:
        agent.kill()
        rc = agent.wait()
    check(rc == 0, "SIGTERM: clean exit (%r)" % rc)
    agent = None
finally:
    if agent:
        agent.kill()
        agent.wait()
    if registry:
        registry.stop()
    hap.terminate()
    try:
        hap.wait(timeout=10)
    except subprocess.TimeoutExpired:
        hap.kill()
    podman("rm", "-a", "-f", "-t", "0")
    stop_service(service)
    podman("rmi", "-a", "-f")
    # The image store is large; the logs stay for a look after a failure.
    for sub in ("root", "run", "tmp", "rootfs"):
        shutil.rmtree(os.path.join(d, sub), ignore_errors=True)

finish()
