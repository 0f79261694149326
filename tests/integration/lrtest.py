"""Helpers for the integration tests: run the real binary, talk HTTP over
loopback, check configs with the real haproxy. Python standard library only."""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("LR_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "lambda-registry")
SRC = os.environ.get("LR_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
SANITIZED = os.environ.get("LR_SANITIZED") == "1"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

_failures = 0
_passes = 0


def check(cond, what):
    """Record one assertion; the script fails at the end if any failed."""
    global _failures, _passes
    if cond:
        _passes += 1
    else:
        _failures += 1
        print("FAIL: " + what, flush=True)


def finish():
    print("%d passed, %d failed" % (_passes, _failures), flush=True)
    sys.exit(1 if _failures else 0)


def skip(why):
    """End the script as skipped (ctest counts exit 77 as a skip)."""
    print("SKIP: " + why, flush=True)
    sys.exit(77)


def npm_ci(folder, module):
    """Install the npm packages of tests/FOLDER from its lock file into its
    gitignored node_modules, once: the release and ASan runs share it, a
    concurrent test waits for the one that installs, and a failed install
    leaves no half-filled node_modules behind. `module` is a package whose
    package.json shows the install is done. Fails the test without npm."""
    import fcntl
    deps = os.path.join(SRC, "tests", folder)
    marker = os.path.join(deps, "node_modules", module, "package.json")
    if os.path.exists(marker):
        return deps
    npm = shutil.which("npm")
    if not npm:
        print("FAIL: npm is not installed (scripts/deps.sh test installs it)", flush=True)
        sys.exit(1)
    with open(os.path.join(deps, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(marker):
            return deps
        print("installing %s into %s/node_modules (npm ci)" % (module, deps), flush=True)
        try:
            out = subprocess.run([npm, "ci", "--prefix", deps, "--no-audit", "--no-fund",
                                  "--loglevel=error"], capture_output=True, text=True,
                                 timeout=240)
            rc, err = out.returncode, out.stdout + out.stderr
        except subprocess.TimeoutExpired:
            rc, err = -1, "timed out after 240 s"
        if rc != 0 or not os.path.exists(marker):
            shutil.rmtree(os.path.join(deps, "node_modules"), ignore_errors=True)
            print("FAIL: npm ci in %s (exit %d; needs the npm registry):\n%s"
                  % (deps, rc, err.strip()[-2000:]), flush=True)
            sys.exit(1)
    return deps


def wait_for(pred, timeout, step=0.02):
    """Seconds until pred() held (OSError counts as not yet), or None."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            if pred():
                return time.time() - t0
        except OSError:
            pass
        time.sleep(step)
    return None


def run_steps(steps, cleanup=None):
    """Run test functions in order, print each one's time, then finish()."""
    try:
        for step in steps:
            t0 = time.monotonic()
            step()
            print("%s: %.1f s" % (step.__name__, time.monotonic() - t0), flush=True)
    finally:
        if cleanup:
            cleanup()
    finish()


def sample(name):
    with open(os.path.join(SRC, "sample-data", name), "rb") as f:
        return f.read()


def tmpdir():
    d = tempfile.mkdtemp(prefix="lr-it-")
    return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def haproxy_check(config, workdir=None):
    """Run `haproxy -c` on config text; return (ok, output)."""
    fd, path = tempfile.mkstemp(suffix=".cfg", dir=workdir)
    with os.fdopen(fd, "wb") as f:
        f.write(config if isinstance(config, bytes) else config.encode())
    p = subprocess.run([HAPROXY, "-c", "-f", path], capture_output=True, timeout=60)
    os.unlink(path)
    out = (p.stdout + p.stderr).decode(errors="replace")
    return p.returncode == 0, out


def master_command(sock, cmd, timeout=10):
    """One command on HAProxy's master CLI at `sock`, its answer as text;
    retried for 5 s while the master re-executes (it then refuses, resets
    or closes without a word)."""
    for _ in range(250):
        s = socket.socket(socket.AF_UNIX)
        try:
            s.settimeout(timeout)
            s.connect(sock)
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            if out:
                return out.decode()
        except OSError:
            pass
        finally:
            s.close()
        time.sleep(0.02)
    raise RuntimeError("master CLI does not answer")


def master_reloads(sock):
    """(reloads, failed reloads) as the master at `sock` counts them."""
    for line in master_command(sock, "show proc;quit").splitlines():
        parts = line.split()
        if len(parts) > 2 and parts[1] == "master":
            failed = int(line.split("[failed:")[1].split("]")[0]) if "[failed:" in line else 0
            return int(parts[2]), failed
    raise RuntimeError("no master in show proc")


def run_cli(args, stdin=None, env=None, timeout=60):
    e = dict(os.environ)
    if env:
        e.update(env)
    return subprocess.run([BIN] + args, input=stdin, capture_output=True,
                          env=e, timeout=timeout)


class Server:
    """A `lambda-registry serve` process on a free loopback port."""

    def __init__(self, store, extra=None, env=None, port=None):
        # Without a port the server binds port 0 and logs the one it got: a
        # port found free here could be taken by the time the server binds
        # it (by a test running beside this one, under ctest -j).
        self.port = port
        self.store = store
        self.logpath = tempfile.mktemp(prefix="lr-serve-", suffix=".log")
        self.log = open(self.logpath, "wb")
        e = dict(os.environ)
        if env:
            e.update(env)
        args = [BIN, "serve", "--listen", "127.0.0.1:%d" % (port or 0),
                "--store", store] + (extra or [])
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log, env=e)
        self.wait_ready()

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.logtext())
            if not self.port:
                m = re.search(r"event=listening listen=127\.0\.0\.1:(\d+) ", self.logtext())
                if not m:
                    time.sleep(0.02)
                    continue
                self.port = int(m.group(1))
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start: " + self.logtext())

    def logtext(self):
        self.log.flush()
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, pattern, timeout=5):
        """The log once the regex `pattern` is in it (access lines are
        batched: written within a second, sooner when calls stop), else the
        log as it is after `timeout`."""
        deadline = time.time() + timeout
        while True:
            log = self.logtext()
            if re.search(pattern, log) or time.time() > deadline:
                return log
            time.sleep(0.05)

    def request(self, method, path, body=None, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            data = r.read()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
        finally:
            c.close()

    def post(self, body, headers=None):
        return self.request("POST", "/generate", body, headers)

    def continue_request(self, path, body, headers, send=True, timeout=10):
        """POST with Expect: 100-continue, the body sent only after a
        "100 Continue" (and `send`): the first status line the server
        answered, then the final answer's status and headers (lower-case
        names; status 0 when none came)."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

        def head(data):
            while b"\r\n\r\n" not in data:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            return data
        try:
            lines = ["POST %s HTTP/1.1" % path, "Host: x", "Expect: 100-continue",
                     "Content-Length: %d" % len(body)]
            lines += ["%s: %s" % kv for kv in headers.items()]
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            data = head(b"")
            first = data.split(b"\r\n", 1)[0].decode()
            if first.startswith("HTTP/1.1 100") and send:
                s.sendall(body)
                data = head(data.split(b"\r\n\r\n", 1)[1])
            text = data.split(b"\r\n\r\n", 1)[0].decode()
            status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/") else 0
            hdrs = {}
            for line in text.split("\r\n")[1:]:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
            return first, status, hdrs
        finally:
            s.close()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def payload(table, running, candidates=None):
    d = {"table": table, "running": running}
    if candidates is not None:
        d["candidates"] = candidates
    return json.dumps(d).encode()


def check_token_lifecycle(store, prefix, servers):
    """Tokens on a shared store, as every backend must keep them: `token
    create` and `token list`, two `serve --auth required` processes (added
    to `servers`, for the caller to stop), the token working on both within
    5 s, 401 without it, 403 on another table with nothing stored, and once
    revoked (twice: the second is exit 1) refused by both within 5 s. The
    tables are PREFIX-web (allowed) and PREFIX-api."""
    web, api = prefix + "-web", prefix + "-api"

    def body(table):
        return payload(table, [{"serviceName": "svc", "id": "c1", "ip": "10.0.0.1"}],
                       [{"serviceName": "svc", "port": 80, "configMode": "host",
                         "predicate": "www.example.com",
                         "containers": [{"id": "c1", "ip": "10.0.0.1"}]}])

    def stored(table):
        p = run_cli(["dump", "--store", store, table])
        return json.loads(p.stdout)["services"] if p.returncode == 0 else None

    p = run_cli(["token", "create", "--store", store, "--scope", "table:%s:write" % web,
                 "--description", prefix])
    check(p.returncode == 0, "token create on %s: %s" % (store, p.stderr.decode()))
    tok = p.stdout.decode().strip()
    # The secret is base64url and may itself hold "_": split off two fields only.
    tid = tok.split("_", 2)[1] if tok.startswith("lr_") else ""
    p = run_cli(["token", "list", "--store", store])
    ids = [json.loads(line)["id"] for line in p.stdout.decode().splitlines()]
    check(ids == [tid], "token list: %r" % ids)
    one = Server(store, extra=["--auth", "required"])
    servers.append(one)
    two = Server(store, extra=["--auth", "required"])
    servers.append(two)
    auth = {"Authorization": "Bearer " + tok}

    def status(srv, table, hdrs=auth):
        return srv.request("POST", "/v1/tables/%s/generate" % table, body(table), hdrs)[0]

    t = wait_for(lambda: status(one, web) == 200 and status(two, web) == 200, 5, step=0.1)
    check(t is not None, "the token works on both servers within 5 s")
    check(status(one, web, {}) == 401, "no token: 401")
    check(status(two, api) == 403, "another table: 403")
    check(stored(api) == [], "nothing stored on the refused call")
    check(len(stored(web) or []) == 1, "the allowed call stored")
    p = run_cli(["token", "revoke", "--store", store, tid])
    check(p.returncode == 0, "token revoke: %s" % p.stderr.decode())
    p = run_cli(["token", "revoke", "--store", store, tid])
    check(p.returncode == 1, "revoke twice: exit 1 (%d)" % p.returncode)
    t0 = time.time()
    t = wait_for(lambda: status(one, web) == 401 and status(two, web) == 401, 5, step=0.1)
    check(t is not None, "the revoked token is refused by both within 5 s")
    print("revocation seen after %.2f s" % (time.time() - t0))


def put_fleet_settings(store, folder, settings=None):
    """Store fleet settings whose map files go to `folder`/maps (never the
    machine's /etc/haproxy/maps, which tests running at once would share);
    `settings` (a dict) adds to them. Returns that maps folder."""
    maps = os.path.join(folder, "maps")
    doc = dict(settings or {})
    doc["routing"] = dict(doc.get("routing", {}), mapDir=maps)
    path = os.path.join(folder, "fleet-settings.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    r = run_cli(["settings", "put", "--store", store, path])
    check(r.returncode == 0, "settings put %r: %r" % (doc, r.stderr))
    return maps
