#!/usr/bin/env python3
"""Both forms of routing through a real HAProxy, with the same services: the
ACL form (the plain answer under routing.mode auto) and the map form (the
JSON answer, its files written where the config names them). Host with and
without a port, any case; /p against /pfoo; nested prefixes, the longest
wins; host rules before path rules; two services with one predicate; and
what an unmatched request gets (HAProxy's 503, or the settings' 404). Every
request must get the same answer in both forms. routing.mode map and acl
force their form on both answers."""
import http.client
import json
import os
import subprocess
import time

from backends import Backend
from lrtest import (HAPROXY, Server, check, finish, free_port, payload, run_cli,
                    tmpdir, wait_for)

d = tmpdir()
bport = free_port()
fport = free_port()

layout = {  # service -> (mode, predicate, container id, ip)
    "web": ("host", "www.example.com", "w1", "127.0.0.2"),
    "dup1": ("host", "dup.example.com", "d1", "127.0.0.3"),
    "dup2": ("host", "Dup.Example.com", "d2", "127.0.0.4"),
    "api": ("path", "api", "a1", "127.0.0.5"),
    "apiv1": ("path", "api/v1", "v1", "127.0.0.6"),
    "apiv1users": ("path", "/api/v1/users", "u1", "127.0.0.7"),
    "p": ("path", "p", "p1", "127.0.0.8"),
    "a-b": ("path", "a-b", "ab", "127.0.0.9"),
    "xy": ("path", "x/y", "xy", "127.0.0.10"),
    "twin1": ("path", "twin", "t1", "127.0.0.11"),
    "twin2": ("path", "twin", "t2", "127.0.0.12"),
}
backends = [Backend(cid, ip, bport) for _, (_, _, cid, ip) in sorted(layout.items())]
running = [{"serviceName": s, "id": cid, "ip": ip}
           for s, (_, _, cid, ip) in sorted(layout.items())]
candidates = [{"serviceName": s, "port": bport, "configMode": mode, "predicate": pred,
               "containers": [{"id": cid, "ip": ip}]}
              for s, (mode, pred, cid, ip) in sorted(layout.items())]
body = payload("modes", running, candidates)

# (Host, path) -> the container that must answer; None: unmatched.
CASES = [
    (("www.example.com", "/"), "w1"),
    (("WWW.Example.COM", "/"), "w1"),
    (("www.example.com:%d" % fport, "/x"), "w1"),
    (("www.example.com:80", "/"), "w1"),
    (("www.example.com.", "/"), None),
    (("www.example.com.evil.net", "/"), None),
    (("example.com", "/"), None),
    (("dup.example.com", "/"), "d1"),
    # A host rule goes before every path rule.
    (("www.example.com", "/api/v1"), "w1"),
    (("localhost", "/p"), "p1"),
    (("localhost", "/p/"), "p1"),
    (("localhost", "/p/x"), "p1"),
    (("localhost", "/p//x"), "p1"),
    (("localhost", "/pfoo"), None),
    (("localhost", "/P"), None),
    (("localhost", "/api"), "a1"),
    (("localhost", "/api?x=1"), "a1"),
    (("localhost", "/api/x"), "a1"),
    (("localhost", "/apiv1"), None),
    (("localhost", "/api/v1"), "v1"),
    (("localhost", "/api/v1/"), "v1"),
    (("localhost", "/api/v1/items"), "v1"),
    (("localhost", "/api/v1/users"), "u1"),
    (("localhost", "/api/v1/users/7"), "u1"),
    (("localhost", "/api/v1/usersx"), "v1"),
    (("localhost", "/api%2Fv1"), None),
    (("localhost", "/a-b/c"), "ab"),
    (("localhost", "/a"), None),
    (("localhost", "/x"), None),
    (("localhost", "/x/y"), "xy"),
    (("localhost", "/x/yz"), None),
    (("localhost", "/twin/1"), "t1"),
    (("localhost", "/"), None),
    (("localhost:%d" % fport, "/api"), "a1"),
]


def get(host, path):
    c = http.client.HTTPConnection("127.0.0.1", fport, timeout=30)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        return r.status, r.read().decode(errors="replace").split(" ")[0]
    finally:
        c.close()


def traffic(label, cfg, files, mapdir):
    """Serve `cfg` (and its map files) with HAProxy; the answer to every case."""
    for name, text in files.items():
        with open(os.path.join(mapdir, name), "w") as f:
            f.write(text)
    path = os.path.join(d, label + ".cfg")
    with open(path, "w") as f:
        f.write(cfg)
    r = subprocess.run([HAPROXY, "-c", "-f", path], capture_output=True, timeout=120)
    check(r.returncode == 0, "%s: haproxy -c: %r" % (label, r.stderr[-500:]))
    hap = subprocess.Popen([HAPROXY, "-db", "-f", path], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        def up():
            try:
                return get("localhost", "/")
            except OSError:
                return None
        check(wait_for(up, 30) is not None, "%s: haproxy serves" % label)
        return {case: get(*case) for case, _ in CASES}
    finally:
        hap.terminate()
        hap.wait(timeout=30)


def settings(store, text):
    path = os.path.join(d, "settings.yaml")
    with open(path, "w") as f:
        f.write(text)
    r = run_cli(["settings", "put", "--store", store, path])
    check(r.returncode == 0, "settings put: %r" % r.stderr)


def answers(store, mapdir):
    """(plain config, JSON answer) from the CLI."""
    args = ["generate", "--store", store, "--frontend-bind", "127.0.0.1:%d" % fport]
    r = run_cli(args, stdin=body)
    check(r.returncode == 0, "generate: %r" % r.stderr)
    plain = r.stdout.decode()
    r = run_cli(args + ["--json"], stdin=body)
    check(r.returncode == 0, "generate --json: %r" % r.stderr)
    return plain, json.loads(r.stdout)


def judge(label, got, unmatched):
    for case, want in CASES:
        exp = (200, want) if want else unmatched
        check(got[case] == exp, "%s: %s %s -> %r (got %r)" % (label, case[0], case[1],
                                                             exp, got[case]))


try:
    for unmatched_yaml, unmatched in [("", (503, "<html><body><h1>503")),
                                      ("unmatched: {status: 404, body: nothing here}\n",
                                       (404, "nothing"))]:
        tag = "404" if unmatched_yaml else "503"
        mapdir = os.path.join(d, "maps-" + tag)
        os.makedirs(mapdir)
        store = "sqlite:" + os.path.join(d, "auto-%s.db" % tag)
        settings(store, "routing: {mapDir: %s}\n%s" % (mapdir, unmatched_yaml))
        plain, ans = answers(store, mapdir)
        check(" acl " in plain and "map_" not in plain, "auto: the plain answer routes by ACLs")
        check("map_str(%s/hosts.map)" % mapdir in ans["config"] and " acl " not in ans["config"],
              "auto: the JSON answer routes by maps")
        check(sorted(ans["files"]) == ["hosts.map", "paths.map"] and ans["mapDir"] == mapdir,
              "auto: the JSON answer carries both map files and their folder")
        check(ans["files"]["hosts.map"] ==
              "dup.example.com dup1\nwww.example.com web\n", "hosts.map: %r" % ans["files"])
        acl = traffic("acl-" + tag, plain, {}, mapdir)
        judge("acl form, unmatched %s" % tag, acl, unmatched)
        maps = traffic("map-" + tag, ans["config"], ans["files"], mapdir)
        judge("map form, unmatched %s" % tag, maps, unmatched)
        check(acl == maps, "both forms answer alike (unmatched %s)" % tag)

    # routing.mode forces a form on both answers.
    store = "sqlite:" + os.path.join(d, "forced.db")
    mapdir = os.path.join(d, "maps-forced")
    os.makedirs(mapdir)
    settings(store, "routing: {mode: map, mapDir: %s}\n" % mapdir)
    plain, ans = answers(store, mapdir)
    check(plain == ans["config"] and "map_beg(%s/paths.map)" % mapdir in plain,
          "mode map: the plain answer is the map form too")
    judge("mode map", traffic("forced-map", plain, ans["files"], mapdir),
          (503, "<html><body><h1>503"))
    settings(store, "routing: {mode: acl}\n")
    plain, ans = answers(store, mapdir)
    check(plain == ans["config"] and " acl " in plain and ans["files"] == {} and
          "mapDir" not in ans, "mode acl: the JSON answer is the ACL form, without files")

    # The HTTP API's JSON answer carries the files too; the plain one not.
    server = Server(store)
    try:
        settings(store, "routing: {mapDir: %s}\n" % mapdir)
        st, hdrs, data = server.post(body, {"Accept": "application/json"})
        doc = json.loads(data)
        check(st == 200 and sorted(doc["files"]) == ["hosts.map", "paths.map"] and
              doc["files"]["paths.map"].startswith("/a-b/ a-b\n/api/ api\n"),
              "HTTP JSON answer with files (%d %r)" % (st, data[:300]))
        st, hdrs, data = server.post(body)
        check(st == 200 and b" acl " in data and b"map_" not in data,
              "HTTP plain answer: the ACL form")
    finally:
        server.stop()
finally:
    for b in backends:
        b.stop()

finish()
