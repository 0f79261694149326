#!/usr/bin/env python3
"""Access control end to end: tokens made with `token create`, every route
refused without a valid token or without the scope (401/403, the same answer
whether the table exists or not, nothing stored), --auth auto on loopback and
on 0.0.0.0, revocation seen by a second server on the same store within 5 s,
HTTPS with a CA made here (curl and the agent, with and without the CA), a
certificate reloaded on SIGHUP under an open connection, and Lambda proxy
events checked from their headers while direct invocations need no token."""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time

from lrtest import (BIN, Server, check, free_port, payload, run_cli, run_steps, skip,
                    tmpdir, wait_for)

sys.path.insert(0, os.path.dirname(__file__))
from lambda_emulator import RuntimeAPI, http_event, rest_event  # noqa: E402

d = tmpdir()
STORE = "sqlite:" + os.path.join(d, "auth.db")
servers = []


def token(*args):
    """`token create ARGS` on STORE; the token from the first line."""
    p = run_cli(["token", "create", "--store", STORE] + list(args))
    check(p.returncode == 0, "token create %s: %s" % (args, p.stderr.decode()))
    lines = p.stdout.decode().splitlines()
    check(len(lines) == 1, "token create prints one line: %r" % lines)
    return lines[0] if lines else ""


def token_id(tok):
    return tok.split("_")[1]


def bearer(tok):
    return {"Authorization": "Bearer " + tok} if tok else {}


def body_for(table, with_table=True):
    """A payload that would store one service in `table`."""
    doc = json.loads(payload(table, [{"serviceName": "svc", "id": "c1", "ip": "10.0.0.1"}],
                             [{"serviceName": "svc", "port": 80, "configMode": "host",
                               "predicate": "www.example.com",
                               "containers": [{"id": "c1", "ip": "10.0.0.1"}]}]))
    if not with_table:
        del doc["table"]
    return json.dumps(doc).encode()


def stored(table):
    p = run_cli(["dump", "--store", STORE, table])
    return json.loads(p.stdout)["services"] if p.returncode == 0 else None


def start(extra=None, **kw):
    srv = Server(STORE, extra=extra, **kw)
    servers.append(srv)
    return srv


def cleanup():
    for srv in servers:
        rc = srv.stop()
        if rc != 0:
            with open(srv.logpath, "rb") as f:
                tail = f.read()[-600:].decode(errors="replace")
        check(rc == 0, "server on port %d exited %s (sanitizers report here): %s"
              % (srv.port, rc, tail if rc else ""))


def test_cli():
    p = run_cli(["token", "create", "--store", STORE, "--scope", "table:web:bogus"])
    check(p.returncode == 2 and not p.stdout, "malformed scope: exit 2, nothing printed")
    p = run_cli(["token", "create", "--store", STORE])
    check(p.returncode == 2, "no scope: exit 2")
    p = run_cli(["token", "create", "--store", STORE, "--scope", "admin", "--expires", "1w"])
    check(p.returncode == 2, "bad duration: exit 2")
    tok = token("--scope", "table:web:read", "--scope", "table:edge-*:write",
                "--description", "two scopes")
    check(len(tok) == 59 and tok.startswith("lr_"), "token format: %r" % tok)
    p = run_cli(["token", "list", "--store", STORE])
    docs = [json.loads(line) for line in p.stdout.decode().splitlines()]
    mine = [x for x in docs if x["id"] == token_id(tok)]
    check(len(mine) == 1 and mine[0]["scopes"] == ["table:web:read", "table:edge-*:write"]
          and mine[0]["description"] == "two scopes", "token list: %r" % docs)
    check(tok.split("_", 2)[2] not in p.stdout.decode(), "token list never shows the secret")
    p = run_cli(["token", "revoke", "--store", STORE, token_id(tok)])
    check(p.returncode == 0, "revoke: %s" % p.stderr.decode())
    p = run_cli(["token", "revoke", "--store", STORE, token_id(tok)])
    check(p.returncode == 1, "revoke twice: exit 1")
    for cmd in (["serve", "--auth", "maybe"], ["lambda", "--auth", "maybe"]):
        p = run_cli(cmd + ["--store", STORE])
        check(p.returncode == 2, "%s: exit 2 (got %d)" % (cmd, p.returncode))
    p = run_cli(["token", "--help"])
    check(p.returncode == 0 and b"create" in p.stdout, "token --help")


def test_refusals():
    write_web = token("--scope", "table:web:write")
    read_web = token("--scope", "table:web:read")
    write_api = token("--scope", "table:api:write")
    edge = token("--scope", "table:edge-*:write")
    admin = token("--scope", "admin")
    expired = token("--scope", "table:web:write", "--expires", "1s")
    revoked = token("--scope", "table:web:write")
    run_cli(["token", "revoke", "--store", STORE, token_id(revoked)])
    wrong = "lr_%s_%s" % (token_id(write_web), "A" * 43)
    time.sleep(1.2)  # let `expired` expire
    srv = start(["--auth", "required"])

    unauth = {"none": None, "garbage": "not-a-token", "wrong secret": wrong,
              "revoked": revoked, "expired": expired}
    forbidden = {"another table": write_api, "read on a write route": read_web}
    for table in ("web", "never-existed"):
        routes = [("POST", "/generate", body_for(table)),
                  ("POST", "/v1/tables/%s/generate" % table, body_for(table, False))]
        for method, path, body in routes:
            answers = set()
            for what, tok in unauth.items():
                st, h, b = srv.request(method, path, body, bearer(tok))
                check(st == 401, "%s %s, %s: 401 (got %d %r)" % (method, path, what, st, b))
                check(h.get("www-authenticate", "").startswith("Bearer"),
                      "%s %s, %s: WWW-Authenticate: Bearer" % (method, path, what))
                answers.add(b)
            check(len(answers) == 1, "one 401 body for every reason: %r" % answers)
            for what, tok in forbidden.items():
                st, h, b = srv.request(method, path, body, bearer(tok))
                check(st == 403, "%s %s, %s: 403 (got %d %r)" % (method, path, what, st, b))
    check(stored("web") == [] and stored("never-existed") == [],
          "nothing stored by a refused call")
    # The same answers for a table that exists: first store something.
    st, _, b = srv.request("POST", "/v1/tables/web/generate", body_for("web", False),
                           bearer(write_web))
    check(st == 200, "write token on its table: 200 (got %d %r)" % (st, b))
    check(len(stored("web") or []) == 1, "the allowed call stored")
    a = srv.request("POST", "/v1/tables/web/generate", body_for("web", False), bearer(write_api))
    b_ = srv.request("POST", "/v1/tables/nothere/generate", body_for("nothere", False),
                     bearer(write_api))
    check(a[0] == b_[0] == 403 and a[2] == b_[2], "403 the same for a table that exists or not")
    # /generate with a table from the body; the prefix scope.
    st, _, b = srv.request("POST", "/generate", body_for("edge-1"), bearer(edge))
    check(st == 200, "prefix scope: edge-1 allowed (got %d %r)" % (st, b))
    st, _, b = srv.request("POST", "/generate", body_for("web"), bearer(edge))
    check(st == 403, "prefix scope: web refused (got %d)" % st)
    st, _, b = srv.request("POST", "/generate", body_for("edgy"), bearer(edge))
    check(st == 403, "prefix scope: edgy refused (got %d)" % st)
    st, _, b = srv.request("POST", "/generate", body_for("api"), bearer(admin))
    check(st == 200, "admin writes any table (got %d)" % st)
    # An unchanged call by its body token (no body read): the token's table
    # is checked as the body's would be.
    st, h, b = srv.request("POST", "/generate", body_for("api"), bearer(admin))
    body_token, idx = h.get("x-registry-body-token"), h.get("x-registry-index")
    check(st == 200 and body_token, "the same body again: a body token (%d %r)" % (st, h))
    for what, tok, want in (("a prefix token for other tables", edge, "HTTP/1.1 100"),
                            ("no token", None, "HTTP/1.1 401"),
                            ("admin", admin, "HTTP/1.1 304")):
        hdrs = {"If-None-Match": '"%s"' % idx, "X-Registry-Body-Token": body_token}
        hdrs.update(bearer(tok))
        first, st, _ = srv.continue_request("/generate", body_for("api"), hdrs)
        check(first.startswith(want), "the body token with %s: %s (%r, then %d)"
              % (what, want, first, st))
        if tok is edge:
            check(st == 403, "and once the body came, 403 (%d)" % st)
    # Body table differs from the path's: 403 first if the path's is not allowed,
    # else 400.
    st, _, b = srv.request("POST", "/v1/tables/web/generate", body_for("api"), bearer(write_web))
    check(st == 400, "body table mismatch with the scope: 400 (got %d %r)" % (st, b))
    st, _, b = srv.request("POST", "/v1/tables/web/generate", body_for("api"), bearer(write_api))
    check(st == 403, "body table mismatch without the path's scope: 403 (got %d)" % st)
    st, _, b = srv.request("POST", "/generate", b"{not json", bearer(edge))
    check(st == 400, "prefix token, bad JSON: 400 (got %d)" % st)
    st, _, b = srv.request("POST", "/generate", b"{not json")
    check(st == 401, "no token, bad JSON: 401 (got %d)" % st)
    st, _, b = srv.request("GET", "/healthz")
    check(st == 200, "/healthz stays open (got %d)" % st)
    check("event=auth mode=required tokens=yes" in srv.logtext(), "auth logged at start")
    check(stored("edgy") == [] and len(stored("api")) == 1, "refused calls stored nothing")


def test_auto():
    srv = start()
    st, _, b = srv.request("POST", "/generate", body_for("auto-lo"))
    check(st == 200, "auto on loopback: no token needed (got %d %r)" % (st, b))
    port = free_port()
    srv = start(["--listen", "0.0.0.0:%d" % port], port=port)
    st, _, b = srv.request("POST", "/generate", body_for("auto-any"))
    check(st == 401, "auto on 0.0.0.0: 401 without a token (got %d)" % st)
    check(stored("auto-any") == [], "auto on 0.0.0.0: nothing stored")
    port = free_port()
    srv = start(["--listen", "0.0.0.0:%d" % port, "--auth", "off"], port=port)
    check("event=auth_off level=warning" in srv.logtext(), "off: warning logged")


def test_revocation_across_servers():
    one = start(["--auth", "required"])
    two = start(["--auth", "required"])
    tok = token("--scope", "table:cross:write")

    def works(srv):
        return srv.request("POST", "/generate", body_for("cross"), bearer(tok))[0] == 200

    t = wait_for(lambda: works(one) and works(two), 5, step=0.1)
    check(t is not None, "a new token works on both servers within 5 s")
    run_cli(["token", "revoke", "--store", STORE, token_id(tok)])
    t = wait_for(lambda: two.request("POST", "/generate", body_for("cross"),
                                     bearer(tok))[0] == 401, 5, step=0.1)
    check(t is not None, "revoked token refused by the other server within 5 s")
    print("revocation seen after %.2f s" % (t or -1))


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, cwd=d,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_cert(name, cn):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", name + ".key",
            "-out", name + ".csr", "-subj", "/CN=" + cn)
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", "ext")
    return os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")


def peer_der(port, ca):
    ctx = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return t.getpeercert(binary_form=True)


def file_der(pem):
    with open(pem) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def test_https():
    if not shutil.which("openssl") or not shutil.which("curl"):
        skip("openssl and curl are needed")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=lr-test-ca")
    ca = os.path.join(d, "ca.pem")
    cert, key = make_cert("one", "localhost")
    srv = start(["--tls-cert", cert, "--tls-key", key, "--auth", "required"])
    url = "https://localhost:%d" % srv.port
    resolve = ["--resolve", "localhost:%d:127.0.0.1" % srv.port]
    p = subprocess.run(["curl", "-sS", "--cacert", ca] + resolve + [url + "/healthz"],
                       capture_output=True)
    check(p.returncode == 0 and b'"status":"ok"' in p.stdout,
          "curl with the CA: %s %s" % (p.stdout, p.stderr))
    p = subprocess.run(["curl", "-sS", "--capath", "/nonexistent", "--cacert", "/dev/null"]
                       + resolve + [url + "/healthz"], capture_output=True)
    check(p.returncode != 0, "curl without the CA fails (rc %d)" % p.returncode)
    p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                        "http://127.0.0.1:%d/healthz" % srv.port], capture_output=True)
    check(p.stdout != b"200", "plain HTTP is not served on the TLS listener")

    # SIGHUP: a new certificate for new handshakes; an open connection lives on.
    ctx = ssl.create_default_context(cafile=ca)
    conn = http.client.HTTPSConnection("localhost", srv.port, context=ctx, timeout=10)
    conn._create_connection = lambda *a, **k: socket.create_connection(
        ("127.0.0.1", srv.port), timeout=10)
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    r.read()
    check(r.status == 200, "keep-alive connection before the reload")
    check(peer_der(srv.port, ca) == file_der(cert), "first certificate served")
    cert2, key2 = make_cert("two", "localhost")
    os.replace(cert2, cert)
    os.replace(key2, key)
    srv.proc.send_signal(signal.SIGHUP)
    t = wait_for(lambda: peer_der(srv.port, ca) == file_der(cert), 5, step=0.1)
    check(t is not None, "new certificate after SIGHUP")
    conn.request("GET", "/healthz")
    r = conn.getresponse()
    r.read()
    check(r.status == 200, "the connection opened before the reload still works")
    conn.close()
    check(srv.proc.poll() is None and "event=tls_reloaded" in srv.logtext(),
          "server alive, reload logged")
    test_agent(srv, ca)


def run_agent(srv, extra, table="agent-auth"):
    services = os.path.join(d, "services.json")
    with open(services, "w") as f:
        json.dump([], f)
    args = [BIN, "agent", "--registry", "https://localhost:%d" % srv.port, "--table", table,
            "--source", "file:" + services, "--haproxy-config", os.path.join(d, "h.cfg"),
            "--haproxy-master-socket", os.path.join(d, "none.sock"), "--once",
            "--timeout", "3000"] + extra
    env = dict(os.environ)
    # the agent resolves localhost itself; the certificate names localhost
    return subprocess.run(args, capture_output=True, env=env, timeout=60)


def posts(srv, at_least=None):
    """Access lines for /generate so far. Access lines are batched (out
    within 150 ms once calls stop): wait for `at_least` of them, or, to
    show that none came, long enough for one to have been written."""
    if at_least is None:
        time.sleep(0.4)
        return srv.logtext().count('path="/generate"')
    deadline = time.time() + 5
    while True:
        n = srv.logtext().count('path="/generate"')
        if n >= at_least or time.time() > deadline:
            return n
        time.sleep(0.05)


def test_agent(srv, ca):
    tok = token("--scope", "table:agent-auth:write")
    tf = os.path.join(d, "token")
    with open(tf, "w") as f:
        f.write(tok + "\n")
    os.chmod(tf, 0o644)
    before = posts(srv)
    p = run_agent(srv, ["--token-file", tf, "--ca-file", ca])
    check(p.returncode == 2 and b"readable by group or others" in p.stderr,
          "agent: token file 0644 refused, exit 2 (got %d %s)" % (p.returncode, p.stderr))
    check(posts(srv) == before, "agent: nothing sent with a readable token file")
    os.chmod(tf, 0o600)
    time.sleep(1.2)  # the server sees the new token
    before = posts(srv)
    p = run_agent(srv, ["--token-file", tf, "--ca-file", ca])
    check(posts(srv, before + 1) == before + 1, "agent with --ca-file reached the registry: %s"
          % p.stderr.decode()[-400:])
    check("status=200" in srv.logtext().splitlines()[-1] or
          any('path="/generate"' in ln and "status=200" in ln
              for ln in srv.logtext().splitlines()[-3:]),
          "agent's token accepted: %s" % srv.logtext()[-400:])
    before = posts(srv)
    p = run_agent(srv, ["--token-file", tf])
    check(posts(srv) == before, "agent without --ca-file: no request (certificate refused)")
    check(b"certificate" in p.stderr.lower() or b"ssl" in p.stderr.lower(),
          "agent without --ca-file says why: %s" % p.stderr.decode()[-300:])
    p = subprocess.run([BIN, "agent", "--registry", "http://192.0.2.1:9", "--table", "agent-auth",
                        "--source", "file:" + os.path.join(d, "services.json"),
                        "--haproxy-config", os.path.join(d, "h.cfg"),
                        "--haproxy-master-socket", os.path.join(d, "none.sock"), "--once",
                        "--timeout", "200"], capture_output=True, timeout=60)
    check(b"event=plain_http" in p.stderr, "agent warns about http:// off loopback")


def test_lambda():
    tok = token("--scope", "table:lam:write")
    time.sleep(0.1)
    api = RuntimeAPI()
    env = {"AWS_LAMBDA_RUNTIME_API": api.address, "LAMBDA_REGISTRY_STORE": STORE,
           "PATH": os.environ.get("PATH", "")}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    proc = subprocess.Popen([BIN, "lambda"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        body = body_for("lam")
        for make in (rest_event, http_event):
            doc = api.invoke(make(body)).json()
            check(doc["statusCode"] == 401 and "Bearer" in json.dumps(doc["headers"]),
                  "%s without a token: 401 (%s)" % (make.__name__, doc))
            doc = api.invoke(make(body, headers={"Authorization": "Bearer " + tok})).json()
            check(doc["statusCode"] == 200, "%s with the token: 200 (%s)" % (make.__name__, doc))
            doc = api.invoke(make(body_for("other"),
                                  headers={"Authorization": "Bearer " + tok})).json()
            check(doc["statusCode"] == 403, "%s on another table: 403" % make.__name__)
            doc = api.invoke(make(None, method="GET", **(
                {"path": "/healthz", "resource": "/healthz"} if make is rest_event
                else {"raw_path": "/healthz"}))).json()
            check(doc["statusCode"] == 200, "%s /healthz open" % make.__name__)
        ans = api.invoke(json.loads(body_for("lam-direct")))
        check(ans.kind == "response", "direct invocation needs no token: %s" % ans)
        check(stored("other") == [], "lambda: nothing stored on a refused call")
    finally:
        # The runtime API goes last: gone first, the loop's next poll fails
        # and the process exits 3 before the signal comes.
        proc.terminate()
        rc = proc.wait(timeout=10)
        api.close()
        check(rc in (0, -signal.SIGTERM), "lambda exited %s" % rc)


run_steps([test_cli, test_refusals, test_auto, test_revocation_across_servers, test_https,
           test_lambda], cleanup=cleanup)
