#!/usr/bin/env python3
"""Fleet settings end to end through `serve` and a real HAProxy on loopback:
the example file from docs/ stored with `settings put` (its paths and ports
pointed at this test's), HTTPS with SNI from a crt-list picking the right
certificate and backend, plain HTTP answered 308 to HTTPS, HSTS on HTTPS
answers only, X-Forwarded-Proto, the unmatched answer, the Prometheus
exporter on the stats bind (with and without credentials), log lines at a
UDP listener, and `settings put` changing the next call's config."""
import base64
import http.client
import http.server
import os
import socket
import socketserver
import ssl
import subprocess
import threading
import time

from lrtest import (HAPROXY, SRC, Server, check, free_port, haproxy_check, payload,
                    run_cli, run_steps, tmpdir)

d = tmpdir()
store = "sqlite:" + os.path.join(d, "settings.db")
ports = {name: free_port() for name in ("http", "https", "stats", "backend")}
logsock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
logsock.bind(("127.0.0.1", 0))
logport = logsock.getsockname()[1]
state = {"hap": None, "server": None, "backends": []}


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, capture_output=True, cwd=d)


def make_certs():
    """A test CA and one certificate per host name, signed by it."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=lr test CA", "-keyout", "ca.key", "-out", "ca.pem")
    lines = []
    for host in ("a.test", "b.test"):
        with open(os.path.join(d, host + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s\n" % host)
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + host,
                "-keyout", host + ".key", "-out", host + ".csr")
        openssl("x509", "-req", "-in", host + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", host + ".ext",
                "-out", host + ".crt")
        pem = os.path.join(d, host + ".pem")
        with open(pem, "w") as out:
            for part in (".crt", ".key"):
                with open(os.path.join(d, host + part)) as f:
                    out.write(f.read())
        lines.append("%s %s\n" % (pem, host))
    with open(os.path.join(d, "crt-list.txt"), "w") as f:
        f.writelines(lines)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ("%s %s %s\n" % (self.server.name, self.path,
                                self.headers.get("X-Forwarded-Proto", "-"))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class _Backend(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        pass  # HAProxy's TCP checks connect and reset


def start_backend(name, ip):
    srv = _Backend((ip, ports["backend"]), _Handler)
    srv.name = name
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    state["backends"].append(srv)


def example_settings():
    """docs/settings-example.yaml, pointed at this test's files and ports."""
    with open(os.path.join(SRC, "docs", "settings-example.yaml")) as f:
        text = f.read()
    # (maxconn: the test's file limit is lower than a production host's)
    for old, new in (("maxconn: 20000", "maxconn: 2000"),
                     ('"127.0.0.1:514"', '"127.0.0.1:%d"' % logport),
                     ('[":80"]', '["127.0.0.1:%d"]' % ports["http"]),
                     ('[":443"]', '["127.0.0.1:%d"]' % ports["https"]),
                     ('"127.0.0.1:8404"', '"127.0.0.1:%d"' % ports["stats"]),
                     ("/etc/haproxy/crt-list.txt", os.path.join(d, "crt-list.txt"))):
        check(old in text, "the example has %s" % old)
        text = text.replace(old, new)
    path = os.path.join(d, "settings.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


CALL = payload("shop", [
    {"serviceName": "a", "id": "a1", "ip": "127.0.0.2"},
    {"serviceName": "b", "id": "b1", "ip": "127.0.0.3"},
], [
    {"serviceName": "a", "port": ports["backend"], "configMode": "host",
     "predicate": "a.test", "containers": [{"id": "a1", "ip": "127.0.0.2"}]},
    {"serviceName": "b", "port": ports["backend"], "configMode": "host",
     "predicate": "b.test", "containers": [{"id": "b1", "ip": "127.0.0.3"}]},
])


def call():
    st, _, body = state["server"].request("POST", "/generate", CALL)
    check(st == 200, "POST /generate: %d %r" % (st, body[:200]))
    return body.decode()


def step_settings_put():
    make_certs()
    path = example_settings()
    r = run_cli(["settings", "put", "--store", store, path])
    check(r.returncode == 0, "settings put the example: %r" % r.stderr)
    r = run_cli(["settings", "get", "--store", store])
    check(r.returncode == 0 and b'"redirectToHttps":true' in r.stdout,
          "settings get: %r" % r.stdout[:200])
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write("frontend:\n  https:\n    crtList: relative/list.txt\n")
    r = run_cli(["settings", "put", "--store", store, "--table", "shop", bad])
    check(r.returncode == 1 and b"frontend.https.crtList: must be an absolute path" in r.stderr,
          "a bad file is refused by path: %r" % r.stderr)
    r = run_cli(["settings", "get", "--store", store, "--table", "shop"])
    check(r.stdout == b"{}\n", "nothing stored for the table: %r" % r.stdout)
    # An override that holds only with the fleet's HTTPS section: new fleet
    # settings without it would break the table, so they are refused.
    over = os.path.join(d, "over.json")
    with open(over, "w") as f:
        f.write('{"frontend": {"https": {"hsts": {"maxAge": 5}}}}')
    r = run_cli(["settings", "put", "--store", store, "--table", "other", over])
    check(r.returncode == 0, "an override that holds with the fleet's: %r" % r.stderr)
    fleet = run_cli(["settings", "get", "--store", store]).stdout
    plain = os.path.join(d, "plain.yaml")
    with open(plain, "w") as f:
        f.write("defaults:\n  retries: 2\n")
    r = run_cli(["settings", "put", "--store", store, plain])
    check(r.returncode == 1 and b"break the overrides of table 'other'" in r.stderr
          and b"frontend.https" in r.stderr,
          "fleet settings that break a table's overrides are refused: %r" % r.stderr)
    check(run_cli(["settings", "get", "--store", store]).stdout == fleet,
          "the refused fleet settings changed nothing")
    r = run_cli(["settings", "delete", "--store", store, "--table", "other"])
    check(r.returncode == 0, "settings delete --table other: %r" % r.stderr)
    r = run_cli(["settings", "put", "--help"])
    check(r.returncode == 0 and b"--table NAME" in r.stdout, "settings put --help")
    r = run_cli(["settings", "frobnicate"])
    check(r.returncode == 2, "an unknown settings subcommand is a usage error")
    r = run_cli(["settings", "delete", "--store", store])
    check(r.returncode == 2, "settings delete needs --table")
    r = run_cli(["settings", "put", "--store", store, os.path.join(d, "missing.yaml")])
    check(r.returncode == 2, "settings put of a missing file is a usage error")


def step_serve_and_haproxy():
    state["server"] = Server(store)
    start_backend("A", "127.0.0.2")
    start_backend("B", "127.0.0.3")
    cfg = call()
    check("ssl crt-list" in cfg and "redirect scheme https code 308" in cfg,
          "the config has TLS and the redirect")
    ok, out = haproxy_check(cfg)
    check(ok, "haproxy -c: " + out)
    cfgpath = os.path.join(d, "haproxy.cfg")
    with open(cfgpath, "w") as f:
        f.write(cfg)
    state["hap"] = subprocess.Popen([HAPROXY, "-db", "-f", cfgpath],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", ports["https"]), timeout=1).close()
            socket.create_connection(("127.0.0.1", ports["stats"]), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    check(False, "haproxy came up")


def https_get(host, path="/"):
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    c = http.client.HTTPConnection("127.0.0.1", ports["https"], timeout=10)
    # SNI and the certificate check follow the host name, not the address.
    sock = socket.create_connection(("127.0.0.1", ports["https"]), timeout=10)
    c.sock = ctx.wrap_socket(sock, server_hostname=host)
    cert = c.sock.getpeercert()
    c.request("GET", path, headers={"Host": host})
    r = c.getresponse()
    body = r.read().decode()
    hdrs = dict((k.lower(), v) for k, v in r.getheaders())
    c.close()
    subject = dict(x[0] for x in cert["subject"])
    return r.status, body, hdrs, subject.get("commonName")


def http_get(port, host, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = {"Host": host}
    h.update(headers or {})
    c.request("GET", path, headers=h)
    r = c.getresponse()
    body = r.read()
    hdrs = dict((k.lower(), v) for k, v in r.getheaders())
    c.close()
    return r.status, body, hdrs


def step_sni():
    for host, name in (("a.test", "A"), ("b.test", "B")):
        st, body, hdrs, cn = https_get(host, "/x?y=1")
        check(cn == host, "SNI %s: served the certificate of %s" % (host, cn))
        check(st == 200 and body.startswith(name + " /x?y=1 https"),
              "SNI %s: backend %s saw https (%d %r)" % (host, name, st, body))
        check(hdrs.get("strict-transport-security") == "max-age=31536000;includeSubDomains",
              "HSTS on HTTPS: %r" % hdrs.get("strict-transport-security"))
    st, body, hdrs, _ = https_get("a.test", "/")
    st, body, _, cn = https_get("a.test", "/")
    check(cn == "a.test", "again a.test")


def step_redirect_and_unmatched():
    st, _, hdrs = http_get(ports["http"], "a.test", "/p/q?r=1",
                           {"X-Forwarded-Proto": "https"})
    check(st == 308 and hdrs.get("location") == "https://a.test/p/q?r=1",
          "plain HTTP: 308 to HTTPS (%d %r)" % (st, hdrs.get("location")))
    check("strict-transport-security" not in hdrs, "no HSTS on plain HTTP")
    st, body, _, _ = https_get("a.test", "/")
    ctx = ssl.create_default_context(cafile=os.path.join(d, "ca.pem"))
    sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", ports["https"]), timeout=10),
                           server_hostname="a.test")
    sock.sendall(b"GET / HTTP/1.1\r\nHost: nobody.test\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.close()
    check(data.startswith(b"HTTP/1.1 404") and data.endswith(b"No service matches this request."),
          "unmatched host: the 404 and its body: %r" % data[:300])


def step_metrics():
    st, body, _ = http_get(ports["stats"], "localhost", "/metrics")
    check(st == 200 and b"haproxy_backend_" in body,
          "Prometheus exporter on the stats bind (%d, %d bytes)" % (st, len(body)))
    check(b'proxy="a"' in body, "metrics name the services' backends")
    st, body, _ = http_get(ports["stats"], "localhost", "/stats")
    check(st == 200 and b"Statistics Report" in body, "stats page at /stats (%d)" % st)


def step_logs():
    logsock.settimeout(5)
    got = []
    try:
        while len(got) < 50:
            got.append(logsock.recv(65536))
            logsock.settimeout(0.5)
    except socket.timeout:
        pass
    check(got, "log lines at the UDP listener")
    check(any(b"https" in g and b"a/a1" in g for g in got),
          "an httplog line for an HTTPS request to a/a1: %r" % got[:2])
    check(all(g.startswith(b"<134>1 ") for g in got),
          "rfc5424 lines of facility local0: %r" % got[:1])


def step_put_changes_next_call():
    before = call()
    with open(os.path.join(d, "table.yaml"), "w") as f:
        f.write('{"unmatched": {"status": 503, "body": "closed"}, '
                '"stats": {"user": "ops", "bind": ":%d", "passwordHash": '
                '"$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8w'
                'iOQSpT0Y77vwPZN.Pq.H91p5hVO1"}}' % ports["stats"])
    r = run_cli(["settings", "put", "--store", store, "--table", "shop",
                 os.path.join(d, "table.yaml")])
    check(r.returncode == 0, "settings put --table shop: %r" % r.stderr)
    after = call()
    check(after != before and 'string "closed"' in after and "user ops password $6$" in after,
          "the next call renders the new settings")
    ok, out = haproxy_check(after)
    check(ok, "haproxy -c after the put: " + out)
    check(call() == after, "an unchanged call answers the same")
    # With credentials the exporter asks for them; reload haproxy on the new config.
    cfgpath = os.path.join(d, "haproxy.cfg")
    with open(cfgpath, "w") as f:
        f.write(after)
    state["hap"].terminate()
    state["hap"].wait()
    state["hap"] = subprocess.Popen([HAPROXY, "-db", "-f", cfgpath],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    st = None
    while time.time() < deadline:
        try:
            st, _, _ = http_get(ports["stats"], "localhost", "/metrics")
            break
        except OSError:
            time.sleep(0.1)
    check(st == 401, "metrics without credentials: 401 (%r)" % st)
    auth = "Basic " + base64.b64encode(b"ops:secret").decode()
    st, body, _ = http_get(ports["stats"], "localhost", "/metrics", {"Authorization": auth})
    check(st == 200 and b"haproxy_backend_" in body, "metrics with credentials (%d)" % st)
    auth = "Basic " + base64.b64encode(b"ops:wrong").decode()
    st, _, _ = http_get(ports["stats"], "localhost", "/metrics", {"Authorization": auth})
    check(st == 401, "metrics with a wrong password: 401 (%d)" % st)
    r = run_cli(["settings", "delete", "--store", store, "--table", "shop"])
    check(r.returncode == 0, "settings delete --table shop: %r" % r.stderr)
    check(call() == before, "after the delete the config is the fleet's again")


def cleanup():
    if state["hap"]:
        state["hap"].terminate()
        state["hap"].wait()
    if state["server"]:
        state["server"].stop()
    for b in state["backends"]:
        b.shutdown()
        b.server_close()
    logsock.close()


run_steps([step_settings_put, step_serve_and_haproxy, step_sni, step_redirect_and_unmatched,
           step_metrics, step_logs, step_put_changes_next_call], cleanup)
