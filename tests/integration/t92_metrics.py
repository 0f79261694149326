#!/usr/bin/env python3
"""GET /metrics after a scripted mixed load: every family of the issue present,
the output parsed to the format's spec and clean under promtool-style rules,
and the counters right for the script (3 rejections by rule, hits, misses,
renders, routes by pattern and code, per-table gauges, store operations); with
auth on, 401/403 without the scope, counted as auth failures."""
import json
import os
import subprocess
import threading

from lrtest import BIN, SANITIZED, Server, check, payload, run_cli, run_steps, tmpdir, wait_for
from lambda_emulator import RuntimeAPI, rest_event
import promtext

d = tmpdir()
STORE = "sqlite:" + os.path.join(d, "metrics.db")
servers = []

SERVE_FAMILIES = [
    "lambda_registry_http_requests_total",
    "lambda_registry_http_request_duration_seconds",
    "lambda_registry_payload_rejections_total",
    "lambda_registry_store_operations_total",
    "lambda_registry_store_operation_duration_seconds",
    "lambda_registry_cache_hits_total",
    "lambda_registry_cache_misses_total",
    "lambda_registry_renders_total",
    "lambda_registry_watchers",
    "lambda_registry_auth_failures_total",
    "lambda_registry_agent_reports_total",
    "lambda_registry_table_version",
    "lambda_registry_table_services",
    "lambda_registry_table_servers",
    "lambda_registry_table_last_change_timestamp_seconds",
    "lambda_registry_build_info",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
]


def svc(name, cid, ip, port=80):
    return {"serviceName": name, "port": port, "configMode": "host",
            "predicate": name + ".example.com",
            "containers": [{"id": cid, "ip": ip}]}


def scrape(srv, headers=None):
    st, hdr, body = srv.request("GET", "/metrics", headers=headers)
    check(st == 200, "GET /metrics: %d %r" % (st, body[:200]))
    check(hdr.get("content-type", "").startswith("text/plain; version=0.0.4"),
          "content type %r" % hdr.get("content-type"))
    text = body.decode()
    try:
        fams = promtext.parse(text)
    except promtext.ParseError as e:
        check(False, "parse: %s" % e)
        return []
    problems = promtext.lint(fams)
    check(not problems, "lint: %s" % problems)
    return fams


def test_parser_can_fail():
    good = "# HELP a_total x\n# TYPE a_total counter\na_total 1\n"
    check(not promtext.lint(promtext.parse(good)), "a clean family lints clean")
    bad = {
        "unsorted": "# HELP b x\n# TYPE b gauge\nb 1\n# HELP a x\n# TYPE a gauge\na 1\n",
        "no type": "# HELP a x\na 1\n",
        "duplicate": "# HELP a x\n# TYPE a gauge\na{k=\"v\"} 1\na{k=\"v\"} 2\n",
        "address": "# HELP a x\n# TYPE a gauge\na{ip=\"10.0.0.1\"} 1\n",
        "histogram": "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
                     "h_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
    }
    for what, text in bad.items():
        check(promtext.lint(promtext.parse(text)), "lint catches: " + what)
    for text in ("a 1", "a{k=\"v} 1\n", "a one\n", "# TYPE a gauge\n# TYPE a gauge\n"):
        try:
            promtext.parse(text)
            check(False, "parse refuses %r" % text)
        except promtext.ParseError:
            pass


def test_mixed_load():
    srv = Server(STORE)
    servers.append(srv)
    fams = scrape(srv)
    names = promtext.family_names(fams)
    for name in SERVE_FAMILIES:
        check(name in names, "family %s present before any call" % name)
    check(promtext.value(fams, "lambda_registry_watchers") == 0, "no watchers")

    one = payload("obs-a", [], [svc("web", "c1", "10.0.0.1")])
    two = payload("obs-a", [], [svc("web", "c1", "10.0.0.1"), svc("api", "c2", "10.0.0.2")])
    for body in (one, one, two, two):  # miss, hit, change, hit
        st, _, data = srv.post(body)
        check(st == 200, "post: %d %r" % (st, data[:200]))
    rejected = [
        payload("obs-a", [], [svc("web", "c1", "10.0.0.1", port=70000)]),
        payload("obs-a", [{"serviceName": "web", "id": "c1", "ip": "10.0.0.300"}]),
        b"{not json",
    ]
    for body in rejected:
        st, _, data = srv.post(body)
        check(st == 400, "rejected: %d %r" % (st, data[:200]))
    st, _, _ = srv.request("GET", "/v1/tables/obs-a/nothing")
    check(st == 404, "404 %d" % st)

    # A parked watch is a watcher until a change answers it.
    st, hdr, _ = srv.request("GET", "/v1/tables/obs-a")
    index = int(hdr.get("x-registry-index", "0"))
    check(st == 200 and index > 0, "table index %d (%d)" % (index, st))
    result = []
    watcher = threading.Thread(target=lambda: result.append(srv.request(
        "GET", "/v1/tables/obs-a/config?index=%d&wait=60s" % index, timeout=90)))
    watcher.start()
    check(wait_for(lambda: promtext.value(scrape(srv), "lambda_registry_watchers") == 1,
                   30, 0.1) is not None, "the parked watch counted as a watcher")
    three = payload("obs-a", [], [svc("web", "c1", "10.0.0.1"), svc("api", "c2", "10.0.0.2"),
                                  svc("db", "c3", "10.0.0.3")])
    st, _, _ = srv.post(three)
    check(st == 200, "the change: %d" % st)
    watcher.join(90)
    check(result and result[0][0] == 200, "the watch answered by the change")
    check(wait_for(lambda: promtext.value(scrape(srv), "lambda_registry_watchers") == 0,
                   30, 0.1) is not None, "no watcher once it was answered")
    st, _, data = srv.request("PUT", "/v1/tables/obs-a/agents/edge-1", json.dumps({
        "appliedIndex": index, "method": "reload", "result": "ok",
        "haproxyVersion": "2.6.12", "up": 3, "down": 0}).encode())
    check(st == 200, "agent report: %d %r" % (st, data[:200]))

    # A request is counted once answered, which may come just after the
    # client has its answer: scrape until the last one is in.
    got = []

    def settled():
        got[:] = scrape(srv)
        return promtext.value(got, "lambda_registry_http_requests_total",
                              route="-", code="404") == 1
    check(wait_for(settled, 30, 0.2) is not None, "the 404 is counted")
    fams = got
    v = lambda name, **lb: promtext.value(fams, name, **lb)  # noqa: E731
    check(v("lambda_registry_payload_rejections_total", reason="candidates[].port") == 1,
          "port rejection")
    check(v("lambda_registry_payload_rejections_total", reason="running[].ip") == 1,
          "ip rejection")
    check(v("lambda_registry_payload_rejections_total", reason="json") == 1,
          "json rejection")
    check(v("lambda_registry_http_requests_total", route="/generate", code="200") == 5,
          "5 answered 200: %r" % v("lambda_registry_http_requests_total",
                                   route="/generate", code="200"))
    check(v("lambda_registry_http_requests_total", route="/generate", code="400") == 3,
          "3 answered 400")
    check(v("lambda_registry_http_requests_total", route="-", code="404") == 1,
          "unmatched path counted under route -")
    check((v("lambda_registry_http_requests_total", route="/metrics", code="200") or 0) >= 1,
          "the first scrape counted")
    check(v("lambda_registry_http_request_duration_seconds_count", route="/generate") == 8,
          "every /generate in the histogram")
    names = promtext.family_names(fams)
    for name in SERVE_FAMILIES:
        check(name in names, "family %s present after the load" % name)
    check(v("lambda_registry_agent_reports_total", result="ok") == 1, "1 agent report")
    check(v("lambda_registry_http_requests_total", route="/v1/tables/{table}/config",
            code="200") == 1, "the watch counted under its route pattern")
    check(v("lambda_registry_cache_hits_total") == 2, "2 hits: %r" % v("lambda_registry_cache_hits_total"))
    check(v("lambda_registry_cache_misses_total") == 3, "3 misses: %r" %
          v("lambda_registry_cache_misses_total"))
    check(v("lambda_registry_renders_total") == 3, "3 renders: %r" % v("lambda_registry_renders_total"))
    check(v("lambda_registry_table_services", table="obs-a") == 3, "3 services")
    check(v("lambda_registry_table_servers", table="obs-a") == 3, "3 servers")
    check((v("lambda_registry_table_version", table="obs-a") or 0) > 0, "a version")
    last = v("lambda_registry_table_last_change_timestamp_seconds", table="obs-a") or 0
    start = v("process_start_time_seconds") or 0
    check(start > 1.6e9 and last >= start - 1, "last change %r after start %r" % (last, start))
    commits = v("lambda_registry_store_operations_total", backend="sqlite", op="commit",
                result="ok")
    check(commits == 3, "3 commits: %r" % commits)
    check(v("lambda_registry_store_operation_duration_seconds_count", backend="sqlite",
            op="commit") == 3, "commits timed")
    check((v("process_resident_memory_bytes") or 0) > 1e6, "rss")
    check((v("process_open_fds") or 0) >= 3, "fds")
    check(v("lambda_registry_build_info", version="0.1.0") == 1, "build info")
    srv.stop()


def test_auth():
    def token(*scopes):
        args = ["token", "create", "--store", STORE]
        for s in scopes:
            args += ["--scope", s]
        p = run_cli(args)
        check(p.returncode == 0, "token create: %r" % p.stderr)
        return p.stdout.decode().strip()
    fleet, one = token("table:*:read"), token("table:obs-a:read")
    srv = Server(STORE, ["--auth", "required"])
    servers.append(srv)
    st, hdr, _ = srv.request("GET", "/metrics")
    check(st == 401 and "www-authenticate" in hdr, "no token: %d" % st)
    st, _, _ = srv.request("GET", "/metrics", headers={"Authorization": "Bearer " + one})
    check(st == 403, "one table's token: %d" % st)
    fams = scrape(srv, {"Authorization": "Bearer " + fleet})
    check(promtext.value(fams, "lambda_registry_auth_failures_total", code="401") == 1 and
          promtext.value(fams, "lambda_registry_auth_failures_total", code="403") == 1,
          "auth failures: %r" % [s for f in fams for s in f["samples"]
                                 if "auth" in s[0]])
    check(promtext.value(fams, "lambda_registry_auth_failures_total", code="401") == 1, "401 counted")
    check(promtext.value(fams, "lambda_registry_auth_failures_total", code="403") == 1, "403 counted")
    srv.stop()


def test_lambda():
    """Invocations through the Lambda front end count like HTTP requests:
    direct and proxy, refusals before any route, auth failures; /metrics
    read through Lambda itself shows them."""
    p = run_cli(["token", "create", "--store", STORE, "--scope", "table:*:read"])
    check(p.returncode == 0, "token create: %r" % p.stderr)
    fleet = p.stdout.decode().strip()
    api = RuntimeAPI()
    env = {"AWS_LAMBDA_RUNTIME_API": api.address, "AWS_LAMBDA_FUNCTION_NAME": "lr",
           "AWS_REGION": "eu-west-1", "LAMBDA_REGISTRY_STORE": STORE,
           "LAMBDA_REGISTRY_AUTH": "required", "TZ": ":UTC",
           "PATH": os.environ.get("PATH", "")}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if SANITIZED and k in os.environ:
            env[k] = os.environ[k]
    log = open(os.path.join(d, "lambda.log"), "wb")
    proc = subprocess.Popen([BIN, "lambda"], env=env, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=log)
    try:
        good = payload("obs-l", [], [svc("web", "c1", "10.0.0.1")])
        bad = payload("obs-l", [], [svc("web", "c1", "10.0.0.1", port=70000)])
        # direct invocations are trusted (IAM let them in): 200, then 400
        check(api.invoke(json.loads(good)).kind == "response", "direct ok")
        check(api.invoke(json.loads(bad)).kind == "error", "direct rejected")
        # a proxy event without a token: 401; an unknown path: 404
        ans = api.invoke(rest_event(good)).json()
        check(ans["statusCode"] == 401, "no token: %s" % ans)
        ans = api.invoke(rest_event(None, method="GET", path="/nothing",
                                    resource="/{proxy+}")).json()
        check(ans["statusCode"] == 404, "unknown path: %s" % ans)
        auth = {"Authorization": "Bearer " + fleet}
        ans = api.invoke(rest_event(None, method="GET", path="/metrics",
                                    resource="/metrics", headers=auth)).json()
        check(ans["statusCode"] == 200, "metrics through Lambda: %s" % ans)
        fams = promtext.parse(ans["body"])
        check(not promtext.lint(fams), "lint: %s" % promtext.lint(fams))
        v = lambda name, **lb: promtext.value(fams, name, **lb)  # noqa: E731
        req = "lambda_registry_http_requests_total"
        check(v(req, route="/generate", code="200") == 1, "direct 200 counted: %r" %
              v(req, route="/generate", code="200"))
        check(v(req, route="/generate", code="400") == 1, "direct 400 counted")
        check(v(req, route="/generate", code="401") == 1, "proxy 401 counted")
        check(v(req, route="-", code="404") == 1, "unmatched proxy path counted")
        check(v("lambda_registry_http_request_duration_seconds_count", route="/generate") == 3,
              "every /generate invocation in the histogram")
        check(v("lambda_registry_auth_failures_total", code="401") == 1, "auth failure counted")
        check(v("lambda_registry_payload_rejections_total", reason="candidates[].port") == 1,
              "rejection counted")
        # the scrape itself is counted once answered: the next one shows it
        ans = api.invoke(rest_event(None, method="GET", path="/metrics",
                                    resource="/metrics", headers=auth)).json()
        fams = promtext.parse(ans["body"])
        check(promtext.value(fams, req, route="/metrics", code="200") == 1,
              "the first scrape counted")
    finally:
        api.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    text = open(os.path.join(d, "lambda.log"), errors="replace").read()
    check("Sanitizer" not in text, "sanitizer report:\n" + text[-3000:])


def test_unparsed_calls():
    """Calls answered before the body is parsed, by how they were known."""
    srv = Server(STORE)
    servers.append(srv)
    body = payload("obs-u", [], [svc("web", "c1", "10.0.0.1")])
    for _ in range(3):  # a change, unchanged (remembered), by its digest
        st, hdr, _ = srv.post(body)
        check(st == 200, "post: %d" % st)
    token = hdr.get("x-registry-body-token", "")
    check(len(token) == 32, "a body token: %r" % token)
    first, st, _ = srv.continue_request("/generate", body, {
        "Content-Type": "application/json",
        "If-None-Match": '"%s"' % hdr.get("x-registry-index"),
        "X-Registry-Body-Token": token})
    check(st == 304 and not first.startswith("HTTP/1.1 100"),
          "the token call answered 304 at once: %r %d" % (first, st))
    fams = scrape(srv)
    v = lambda **lb: promtext.value(fams, "lambda_registry_unparsed_calls_total", **lb)  # noqa: E731
    check(v(by="body") == 1, "one by digest: %r" % v(by="body"))
    check(v(by="token") == 1, "one by token: %r" % v(by="token"))


run_steps([test_parser_can_fail, test_mixed_load, test_unparsed_calls, test_auth, test_lambda],
          cleanup=lambda: [s.stop() for s in servers])
