#!/usr/bin/env python3
"""The status page in a real browser: Debian's chromium, headless, driven over
chromedriver's WebDriver HTTP API. Against a seeded registry with tokens on:
the login form sets the cookie, the page lists the tables with their counts,
the services in rule order, the agents (the stale one marked), the config
with a download link, the changes sparkline and the rejected calls; a
`<script>` sent through every payload field and through an agent report is
shown as text and never runs; a screenshot is saved in the build folder."""
import base64
import http.client
import json
import os
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.request

from lrtest import Server, check, free_port, payload, run_cli, run_steps, skip, tmpdir, wait_for

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
if not CHROMIUM or not DRIVER:
    skip("chromium and chromedriver are needed (scripts/deps.sh test installs them)")

d = tmpdir()
STORE = "sqlite:" + os.path.join(d, "ui.db")
SHOT = os.path.join(os.getcwd(), "status-page.png")
XSS = "<script>window.__pwned=1</script>"
procs = []


def token(*scopes):
    args = ["token", "create", "--store", STORE]
    for s in scopes:
        args += ["--scope", s]
    p = run_cli(args)
    check(p.returncode == 0, "token create: %r" % p.stderr)
    return p.stdout.decode().strip()


def svc(name, mode, pred, ids, **extra):
    s = {"serviceName": name, "port": 8080, "configMode": mode, "predicate": pred,
         "containers": [{"id": i, "ip": "10.1.0.%d" % (n + 1)} for n, i in enumerate(ids)]}
    s.update(extra)
    return s


class WebDriver:
    def __init__(self):
        self.port = free_port()
        self.log = open(os.path.join(d, "chromedriver.log"), "wb")
        self.proc = subprocess.Popen([DRIVER, "--port=%d" % self.port],
                                     stdout=self.log, stderr=self.log)
        procs.append(self.proc)
        check(wait_for(lambda: self.call("GET", "/status")["value"]["ready"], 60) is not None,
              "chromedriver is ready")
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                # Root cannot use chromium's sandbox.
                "--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,1800",
                "--user-data-dir=" + os.path.join(d, "profile")]}}}}
        self.session = self.call("POST", "/session", caps, timeout=180)["value"]["sessionId"]

    def call(self, method, path, body=None, timeout=60):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError("webdriver %s %s: %s" % (method, path, e.read()[:500]))

    def s(self, method, path, body=None, timeout=60):
        return self.call(method, "/session/%s%s" % (self.session, path), body, timeout)["value"]

    def go(self, url):
        self.s("POST", "/url", {"url": url}, timeout=120)

    def js(self, script, *args):
        return self.s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css):
        el = self.s("POST", "/element", {"using": "css selector", "value": css})
        return list(el.values())[0]

    def quit(self):
        try:
            self.s("DELETE", "")
        except Exception:
            pass


def seed(srv, write):
    h = {"Authorization": "Bearer " + write}
    shop1 = [svc("web", "host", "www.shop.example", ["w1", "w2"], cookie="SRV",
                 healthCheck={"path": "/healthz", "expectStatus": 200}),
             svc("api", "path", "api", ["a1"])]
    shop2 = shop1 + [svc("apiv1", "path", "api/v1", ["v1"], balance="leastconn")]
    for body in (payload("shop-eu", [], shop1), payload("shop-eu", [], shop2),
                 payload("blog-1", [], [svc("blog", "host", "blog.example", ["b1"])])):
        st, _, data = srv.post(body, h)
        check(st == 200, "seed: %d %r" % (st, data[:300]))
    # Every field a payload can carry, with a script in it: each refused.
    base = {"serviceName": "evil", "port": 80, "configMode": "host",
            "predicate": "evil.example", "containers": [{"id": "e1", "ip": "10.9.9.9"}]}
    injected = []
    for field in ("serviceName", "port", "configMode", "predicate", "cookie", "cookieMode",
                  "balance", "timeoutServer", "timeoutTunnel", "maxconn"):
        injected.append(("shop-eu", [], [dict(base, **{field: XSS})]))
    for field in ("path", "interval", "expectStatus", "rise", "fall", XSS):
        hc = {"path": "/ok"}
        hc[field] = XSS
        injected.append(("shop-eu", [], [dict(base, healthCheck=hc)]))
    for field in ("id", "ip", "weight"):
        c = {"id": "e1", "ip": "10.9.9.9"}
        c[field] = XSS
        injected.append(("shop-eu", [], [dict(base, containers=[c])]))
    for field in ("serviceName", "id", "ip"):
        r = {"serviceName": "evil", "id": "e1", "ip": "10.9.9.9"}
        r[field] = XSS
        injected.append(("shop-eu", [r], None))
    injected.append((XSS, [], None))
    for table, running, cands in injected:
        st, _, data = srv.post(payload(table, running, cands), h)
        check(st == 400, "injected payload refused: %d %r" % (st, data[:200]))
    # Reports: one current, one stale, one with a script in what it may carry.
    good = {"appliedIndex": 0, "method": "reload", "result": "applied",
            "haproxyVersion": "2.6.12", "up": 4, "down": 0}
    st, hdr, _ = srv.post(payload("shop-eu", [], shop2), h)
    index = int(hdr.get("x-registry-index", "0"))
    check(index > 1, "the answer carries the table's index (%d)" % index)
    for agent, doc in (("edge-1", dict(good, appliedIndex=index)),
                       ("edge-2", dict(good, appliedIndex=1, down=2)),
                       ("edge-3", dict(good, appliedIndex=index, haproxyVersion=XSS))):
        st, _, data = srv.request("PUT", "/v1/tables/shop-eu/agents/" + agent,
                                  json.dumps(doc).encode(), h)
        check(st == 200, "report %s: %d %r" % (agent, st, data[:200]))
    return len(injected)


def test_page():
    admin, write, one = token("admin"), token("table:*:write"), token("table:shop-eu:read")
    srv = Server(STORE, ["--auth", "required"])
    procs.append(srv)
    rejected = seed(srv, write)
    base = "http://127.0.0.1:%d" % srv.port

    st, hdr, body = srv.request("GET", "/")
    check(st == 401 and b"<form" in body and hdr.get("content-type", "").startswith("text/html"),
          "no token: the login form with 401 (%d)" % st)
    st, hdr, body = srv.request("GET", "/ui/", headers={"Authorization": "Bearer " + one})
    check(st == 403, "one table's token cannot see every table (%d)" % st)
    st, hdr, body = srv.request("GET", "/ui/", headers={"Authorization": "Bearer " + admin})
    csp = hdr.get("content-security-policy", "")
    check(st == 200 and "script-src" not in csp and "default-src 'none'" in csp,
          "Bearer works; CSP allows no script: %r" % csp)
    check(XSS.encode() not in body and b"&lt;script&gt;" in body, "escaped on the server")
    st, hdr, body = srv.request("GET", "/ui/tables/shop-eu/config",
                                headers={"Authorization": "Bearer " + admin})
    check(st == 200 and b"use_backend apiv1" in body and
          "attachment" in hdr.get("content-disposition", ""), "config download")
    config = body.decode()

    wd = WebDriver()
    try:
        wd.go(base + "/")
        check(wd.js("return document.querySelector('form') !== null"), "browser: login form")
        field = wd.find("#token")
        wd.s("POST", "/element/%s/value" % field, {"text": admin})
        wd.s("POST", "/element/%s/click" % wd.find("button[type=submit]"), {})
        ok = wait_for(lambda: wd.js("return document.querySelectorAll('tr.table-row').length") == 2,
                      60, 0.2)
        check(ok is not None, "browser: after login the page shows 2 tables (%r)" %
              wd.js("return document.body.innerText.slice(0, 500)"))
        rows = wd.js("""return Array.from(document.querySelectorAll('tr.table-row')).map(
            r => [r.dataset.table, r.querySelector('.services').textContent,
                  r.querySelector('.servers').textContent, r.querySelector('.agents').textContent,
                  r.querySelector('.index').textContent])""")
        check([r[:4] for r in rows] == [["blog-1", "1", "1", "0"], ["shop-eu", "3", "4", "3"]],
              "table rows: %r" % rows)
        check(wd.js("return document.querySelectorAll('section.table').length") == 0,
              "the list page shows no table's details")
        texts = wd.js("return document.body.innerText")
        check(("healthCheck." + XSS) in texts, "the injected key shows as text in the field path")
        nrej = wd.js("return document.querySelectorAll('tr.rejection').length")
        check(nrej == rejected, "%d rejections listed, %d sent" % (nrej, rejected))
        bad_cells = wd.js("""return Array.from(document.querySelectorAll('tr.rejection'))
            .filter(r => r.cells[3].textContent.includes('<')).length""")
        check(bad_cells == 0, "rules never carry a value")
        bars = wd.js("""return Array.from(document.querySelectorAll('#sparkline rect'))
            .map(r => Number(r.getAttribute('data-changes')))""")
        check(len(bars) == 24 and bars[-1] >= 3, "sparkline: 24 hours, this one >= 3: %r" % bars)
        check(wd.js("return document.querySelectorAll('script').length") == 0, "no script element")
        # The table's own page, through the list's link.
        href = wd.js("return document.querySelector('tr[data-table=shop-eu] a').getAttribute('href')")
        check(href == "/ui/tables/shop-eu", "the row links the table's page: %r" % href)
        wd.go(base + href)
        order = wd.js("""return Array.from(document.querySelectorAll('#t-shop-eu tr.service .name'))
            .map(e => e.textContent)""")
        want = [line.split()[1] for line in config.splitlines() if line.startswith("    use_backend ")]
        check(order == want, "services in rule order %r, config %r" % (order, want))
        web = wd.js("""return Array.from(document.querySelectorAll('#t-shop-eu tr.service'))
            .map(r => r.innerText).find(t => t.includes('web'))""") or ""
        check("cookie SRV" in web and "GET /healthz" in web and "10.1.0.1" in web,
              "service details: %r" % web)
        stale = wd.js("""return Array.from(document.querySelectorAll('#t-shop-eu tr.agent.stale'))
            .map(r => r.cells[0].textContent)""")
        check(stale == ["edge-2 stale"], "only edge-2 is stale: %r" % stale)
        check(wd.js("return document.querySelectorAll('script').length") == 0, "no script element")
        check(wd.js("return window.__pwned === undefined"), "the injected script did not run")
        texts = wd.js("return document.body.innerText")
        check(XSS in texts, "the agent's script shows as text")
        href = wd.js("return document.querySelector('#t-shop-eu a.download').getAttribute('href')")
        check(href == "/ui/tables/shop-eu/config", "download link %r" % href)
        pre = wd.js("return document.querySelector('#t-shop-eu pre.config').textContent")
        check(pre == config, "the page shows the config as rendered")
        shot = base64.b64decode(wd.s("GET", "/screenshot"))
        with open(SHOT, "wb") as f:
            f.write(shot)
        check(shot[:8] == b"\x89PNG\r\n\x1a\n" and len(shot) > 10000, "screenshot saved")
        print("screenshot: %s (%d bytes)" % (SHOT, len(shot)), flush=True)
        # A phone: the page fits, the wide tables scroll inside themselves.
        wd.s("POST", "/window/rect", {"width": 390, "height": 844})
        for url in ("/ui/", "/ui/tables/shop-eu"):
            wd.go(base + url)
            wide = wd.js("return document.documentElement.scrollWidth - window.innerWidth")
            check(wide <= 1, "%s fits a phone's width (overflow %r)" % (url, wide))
    finally:
        wd.quit()
    srv.stop()


def test_pages():
    """`/` lists one page of the stored tables (after/limit as GET /v1/tables)
    with a link to the next; following the links shows each table once, in
    order, including tables this process never rendered."""
    store = "sqlite:" + os.path.join(d, "pages.db")
    names = ["pg-%02d" % i for i in range(7)]
    for name in names:
        p = run_cli(["generate", "--store", store, "-"],
                    stdin=payload(name, [], [svc("s", "host", name + ".example", ["c1"])]))
        check(p.returncode == 0, "generate %s: %r" % (name, p.stderr[-300:]))
    srv = Server(store, ["--auth", "off"])
    procs.append(srv)
    seen, url, pages = [], "/?limit=3", 0
    while url and pages < 10:
        st, hdr, body = srv.request("GET", url)
        check(st == 200, "GET %s: %d" % (url, st))
        html = body.decode()
        rows = [part.split('"', 1)[0] for part in html.split('data-table="')[1:]]
        check(len(rows) <= 3, "at most limit rows: %r" % rows)
        seen += rows
        pages += 1
        nxt = html.split('id="next" href="', 1)
        url = nxt[1].split('"', 1)[0].replace("&amp;", "&") if len(nxt) > 1 else None
        check("section class=\"table\"" not in html, "no table details on the list")
    check(seen == names, "every table once, in order, over the pages: %r" % seen)
    check(pages == 3, "7 tables at 3 a page: 3 pages (%d)" % pages)
    st, _, body = srv.request("GET", "/?limit=0")
    err = json.loads(body or b"{}")
    check(st == 400 and err.get("field") == "limit", "limit=0 refused: %d %r" % (st, body[:200]))
    st, _, body = srv.request("GET", "/?limit=1001")
    check(st == 400, "limit over the page cap refused: %d" % st)
    st, _, body = srv.request("GET", "/ui/tables/pg-03")
    check(st == 200 and b'id="t-pg-03"' in body and b"pg-03.example" in body,
          "the table's page: %d" % st)
    st, _, body = srv.request("GET", "/ui/tables/never")
    check(st == 404 and json.loads(body).get("error"), "a table never written: %d" % st)
    srv.stop()


def bars(html):
    """The sparkline's counts, oldest hour first."""
    svg = html.split('id="sparkline"', 1)[1].split("</svg>", 1)[0]
    return [int(part.split('"', 1)[0]) for part in svg.split('data-changes="')[1:]]


def test_sparkline_restart():
    """The changes per hour come from the store: they survive a restart of
    serve and include another process's changes."""
    store = "sqlite:" + os.path.join(d, "spark.db")
    srv = Server(store, ["--auth", "off"])
    procs.append(srv)
    one = [svc("s", "host", "s.example", ["c1"])]
    two = one + [svc("t", "host", "t.example", ["c2"])]
    for body in (payload("sp-a", [], one), payload("sp-a", [], two), payload("sp-a", [], two),
                 payload("sp-b", [], one)):
        st, _, data = srv.post(body)
        check(st == 200, "post: %d %r" % (st, data[:200]))
    srv.stop()
    srv = Server(store, ["--auth", "off"])
    procs.append(srv)
    st, _, body = srv.request("GET", "/")
    got = bars(body.decode())
    check(st == 200 and len(got) == 24 and sum(got) == 3,
          "after a restart the page still shows the 3 changes: %r" % got)
    st, _, body = srv.request("GET", "/ui/tables/sp-a")
    got = bars(body.decode())
    check(st == 200 and sum(got) == 2, "the table's page shows its 2 changes: %r" % got)
    p = run_cli(["generate", "--store", store, "-"], stdin=payload("sp-c", [], one))
    check(p.returncode == 0, "generate: %r" % p.stderr[-300:])
    st, _, body = srv.request("GET", "/")
    got = bars(body.decode())
    check(sum(got) == 4, "another process's change shows too: %r" % got)
    srv.stop()


def login_cookie(port, tls):
    """The Set-Cookie of a login form's POST, over TLS or plain HTTP."""
    if tls:
        ctx = ssl.create_default_context(cafile=os.path.join(d, "ui.pem"))
        ctx.check_hostname = False
        c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=30)
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("POST", "/ui/login", body=b"token=lr_abc-1",
                  headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = c.getresponse()
        r.read()
        return r.status, r.getheader("Set-Cookie") or ""
    finally:
        c.close()


def test_cookie():
    """HttpOnly and SameSite=Strict always; Secure when the request came
    over TLS to serve (--tls-cert), never over plain HTTP."""
    p = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", os.path.join(d, "ui.key"), "-out", os.path.join(d, "ui.pem"),
                        "-days", "2", "-subj", "/CN=localhost"], capture_output=True)
    check(p.returncode == 0, "openssl: %r" % p.stderr[-300:])
    plain = Server(STORE, ["--auth", "required"])
    procs.append(plain)
    tls = Server(STORE, ["--auth", "required", "--tls-cert", os.path.join(d, "ui.pem"),
                         "--tls-key", os.path.join(d, "ui.key")])
    procs.append(tls)
    for srv, secure in ((plain, False), (tls, True)):
        st, cookie = login_cookie(srv.port, secure)
        attrs = [a.strip() for a in cookie.split(";")]
        check(st == 303 and attrs[0] == "lr_token=lr_abc-1", "login %d %r" % (st, cookie))
        check("HttpOnly" in attrs and "SameSite=Strict" in attrs and "Path=/" in attrs,
              "HttpOnly, SameSite=Strict, Path=/: %r" % cookie)
        check(("Secure" in attrs) == secure, "Secure %s over %s: %r" % (
            secure, "TLS" if secure else "plain HTTP", cookie))
    plain.stop()
    tls.stop()


def cleanup():
    for p in procs:
        if isinstance(p, Server):
            p.stop()
        elif p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


run_steps([test_page, test_pages, test_sparkline_restart, test_cookie],
          cleanup=cleanup)
