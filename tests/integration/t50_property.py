#!/usr/bin/env python3
"""Property test against the real haproxy: random sequences of valid and
hostile payloads. Every accepted call's config passes `haproxy -c`; every
rejected call is a 4xx with a JSON error and leaves each table's dump
byte-identical. Random fleet settings too: each accepted one renders a
config that passes `haproxy -c` without warnings.

LR_PROPERTY_CASES (default 3000; 600 under LR_SANITIZED) sets the number of
calls, LR_PROPERTY_SEED the seed (printed, so a failure can be replayed).

haproxy -c takes ~20-30 ms per run, mostly start-up, so configs are checked in
batches: each distinct config gets its proxy names prefixed with "c<n>-" (the
same prefix on frontend, backends and use_backend, so name clashes inside one
config stay clashes) and a batch is one haproxy run. A failing batch is split
and every config in it checked on its own, unmodified, to name the culprit.
"""
import http.client
import atexit
import ipaddress
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from lrtest import BIN, HAPROXY, SANITIZED, Server, check, finish, run_cli, tmpdir

CASES = int(os.environ.get("LR_PROPERTY_CASES") or (600 if SANITIZED else 3000))
SEED = int(os.environ.get("LR_PROPERTY_SEED") or random.randrange(1 << 30))
BATCH = 100


def ok(cond, what):
    check(cond, what)
    return cond


rng = random.Random(SEED)
print("property: %d cases, seed %d" % (CASES, SEED), flush=True)

TABLES = ["astro", "tbl-2.x_y"]
# "http" clashes with the frontend's name; ':' and '.' are legal in names.
SERVICES = ["app1", "web.v2", "api:x", "a-b_c", "http", "Z9", "s" * 128]
IDS = ["a23nj53h3j4", "c1", "c2", "C2", "x.y:z-1_", "0", "i" * 128]
HOST_LABELS = ["a", "example", "com", "x-1", "WWW", "xn--bcher-kva", "9", "l" * 63]
# "%2e%2e%2e" and "a%2E" are names, not dot segments.
PATH_SEGMENTS = ["api", "v1", "a%20b", "x~y", "@:!&()*+,;=", "API", "-", "_", "v1.2",
                 "%2e%2e%2e", "a%2E"]
DOT_SEGMENTS = [".", "..", "%2e", "%2E", "%2e%2e", "%2E%2E", "%2e%2E", ".%2e", "%2E."]
COOKIES = ["JSESSIONID", "SID", "a.b", "x-y!", "c%d", "~*^|", "k" * 128]
HOSTILE = ["\n", "\r", "\r\n", " ", "\t", "#", "\"", "'", "\\", "$", "${HOME}",
           "$HOME", "%[src]", "%", "\u00e9", "\u2028", "\ud800", "\x00", "\x7f", "\x1b",
           "{", "}", "[", "]", "/", ";", "`", ",", "\n    bind :81\n", "#x\n",
           "\"\n  server evil 1.2.3.4:80", "\ufeff"]
WRONG_TYPES = [1, -1, 1.5, True, False, None, [], {}, ["x"], {"a": 1}, 1e308]
PORT_STRINGS = ["80", "080", " 80", "80 ", "+80", "-80", "0x50", "1e2", "65536", "0",
                "", "8 0", "65535", "00001", "99999999999999999999"]
BAD_IPS = ["300.1.1.1", "1.2.3", "fe80::1%eth0", "[::1]", "010.0.0.1", "localhost",
           "1.2.3.4:80", "::1::", "",
           # unspecified, multicast, broadcast, also IPv4-mapped
           "0.0.0.0", "::", "224.0.0.1", "239.255.255.255", "255.255.255.255", "ff02::1",
           "::ffff:0.0.0.0", "::ffff:224.0.0.251", "::ffff:255.255.255.255"]


def usable_ip(text):
    """Whether the registry takes `text` (a valid address) for a container:
    not unspecified, multicast or broadcast, judged on the IPv4 part of an
    IPv4-mapped address."""
    a = ipaddress.ip_address(text)
    if a.version == 6 and a.ipv4_mapped:
        a = a.ipv4_mapped
    return not (a.is_unspecified or a.is_multicast
                or a == ipaddress.IPv4Address("255.255.255.255"))


def rand_ip():
    r = rng.random()
    if r < 0.6:
        return "10.0.%d.%d" % (rng.randrange(3), rng.randrange(1, 4))
    if r < 0.8:
        return rng.choice(["::1", "2001:DB8::1", "2001:db8:0:0:0:0:0:2", "::ffff:1.2.3.4",
                           "fe80::a", "127.0.0.1", "::ffff:127.0.0.1"])
    while True:
        ip = "%d.%d.%d.%d" % tuple(rng.randrange(256) for _ in range(4))
        if usable_ip(ip):
            return ip


def rand_host():
    n = rng.randrange(1, 4)
    h = ".".join(rng.choice(HOST_LABELS) for _ in range(n))
    return h + "." if rng.random() < 0.1 else h


def rand_path(bad=None):
    """A path predicate; with `bad`, that segment somewhere in it."""
    segs = [rng.choice(PATH_SEGMENTS) for _ in range(rng.randrange(1, 4))]
    if bad is not None:
        segs.insert(rng.randrange(len(segs) + 1), bad)
    p = "/".join(segs)
    return "/" + p if rng.random() < 0.3 else p


def rand_port():
    p = rng.choice([80, 8080, 1, 65535, rng.randrange(1, 65536)])
    return str(p) if rng.random() < 0.3 else p


HEALTH_PATHS = ["/", "/healthz", "/health?deep=1&x=%20", "/a/b:c@d!", "/~x"]
DURATIONS = ["1ms", "100ms", "2500ms", "2s", "45s", "2m", "90m", "1h", "24h", "86400000ms"]
BAD_OPTIONS = [  # (key, bad value, field suffix)
    ("balance", "static-rr", "balance"), ("balance", 1, "balance"),
    ("maxconn", 0, "maxconn"), ("maxconn", 1000001, "maxconn"), ("maxconn", "10", "maxconn"),
    ("timeoutServer", "25h", "timeoutServer"), ("timeoutServer", "30", "timeoutServer"),
    ("timeoutTunnel", "1 s", "timeoutTunnel"), ("timeoutTunnel", "0ms", "timeoutTunnel"),
    ("cookieMode", "rewrite", "cookieMode"),
    ("healthCheck", {"path": "x"}, "healthCheck.path"),
    ("healthCheck", {"path": "/a b"}, "healthCheck.path"),
    ("healthCheck", {"path": "/\n    bind :81"}, "healthCheck.path"),
    ("healthCheck", {"path": "/", "expectStatus": 600}, "healthCheck.expectStatus"),
    ("healthCheck", {"path": "/", "interval": "50ms"}, "healthCheck.interval"),
    ("healthCheck", {"path": "/", "rise": 0}, "healthCheck.rise"),
    ("healthCheck", {"path": "/", "typo": 1}, "healthCheck.typo"),
    ("healthCheck", {}, "healthCheck.path"),
]


def rand_options(c):
    """Random valid service settings (issue 12), each often absent."""
    if rng.random() < 0.3:
        c["balance"] = rng.choice(["roundrobin", "leastconn", "first", "source"])
    if rng.random() < 0.3:
        hc = {"path": rng.choice(HEALTH_PATHS)}
        for key, values in (("expectStatus", [100, 200, 204, 599]),
                            ("interval", ["100ms", "2s", "1h", "1500ms"]),
                            ("rise", [1, 2, 100]), ("fall", [1, 3, 100])):
            if rng.random() < 0.5:
                hc[key] = rng.choice(values)
        c["healthCheck"] = hc
    if rng.random() < 0.2:
        c["maxconn"] = rng.choice([1, 100, 1000000])
    if rng.random() < 0.2:
        c["timeoutServer"] = rng.choice(DURATIONS)
    if rng.random() < 0.2:
        c["timeoutTunnel"] = rng.choice(DURATIONS)
    if rng.random() < 0.3:
        c["cookieMode"] = (rng.choice(["insert", "dynamic"]) if isinstance(c.get("cookie"), str)
                           else "prefix")
    for ct in c.get("containers", []):
        if rng.random() < 0.3:
            ct["weight"] = rng.choice([0, 1, 7, 256])


def rand_candidate():
    c = {"serviceName": rng.choice(SERVICES), "port": rand_port()}
    mode = rng.choice(["host", "path", None])
    if mode:
        c["configMode"] = mode
    c["predicate"] = rand_path() if mode == "path" else rand_host()
    r = rng.random()
    if r < 0.4:
        c["cookie"] = rng.choice(COOKIES)
    elif r < 0.5:
        c["cookie"] = None
    if rng.random() < 0.9:
        c["containers"] = [{"id": rng.choice(IDS), "ip": rand_ip()}
                           for _ in range(rng.randrange(0, 4))]
    if rng.random() < 0.5:
        rand_options(c)
    return c


def valid_payload():
    d = {"table": rng.choice(TABLES),
         "running": [{"serviceName": rng.choice(SERVICES), "id": rng.choice(IDS),
                      "ip": rand_ip()} for _ in range(rng.randrange(0, 6))]}
    if rng.random() < 0.7:
        d["candidates"] = [rand_candidate() for _ in range(rng.randrange(0, 4))]
    return d


def string_slots(d, path=()):
    """Paths of every value in the document (strings, numbers, null...)."""
    out = []
    if isinstance(d, dict):
        for k, v in d.items():
            out.append(path + (k,))
            out.extend(string_slots(v, path + (k,)))
    elif isinstance(d, list):
        for i, v in enumerate(d):
            out.append(path + (i,))
            out.extend(string_slots(v, path + (i,)))
    return out


def get_at(d, path):
    for k in path:
        d = d[k]
    return d


def set_at(d, path, value):
    get_at(d, path[:-1])[path[-1]] = value


def hostile_payload():
    """Returns (bytes, kind)."""
    d = valid_payload()
    if not d["running"]:
        d["running"].append({"serviceName": "app1", "id": "c1", "ip": "10.0.0.1"})
    slots = string_slots(d)
    kind = rng.randrange(13)
    if kind == 0:  # a hostile string in the middle of a value
        p = rng.choice(slots)
        v = get_at(d, p)
        h = rng.choice(HOSTILE)
        if isinstance(v, str):
            i = rng.randrange(len(v) + 1)
            set_at(d, p, v[:i] + h + v[i:])
        else:
            set_at(d, p, h)
    elif kind == 1:  # a whole value replaced by a hostile string
        set_at(d, rng.choice(slots), rng.choice(HOSTILE) * rng.randrange(1, 3))
    elif kind == 2:  # wrong JSON type
        set_at(d, rng.choice(slots), rng.choice(WRONG_TYPES))
    elif kind == 3:  # a required key removed
        p = rng.choice([s for s in slots if isinstance(s[-1], str)])
        del get_at(d, p[:-1])[p[-1]]
    elif kind == 4:  # ports as odd strings or numbers out of range
        d.setdefault("candidates", []).append(rand_candidate())
        d["candidates"][-1]["port"] = rng.choice(PORT_STRINGS + [0, 65536, -1, 80.0, 2 ** 63])
    elif kind == 5:  # bad addresses or dot segments: refused, naming the field
        if rng.random() < 0.6:
            d["running"][0]["ip"] = rng.choice(BAD_IPS)
            field = "running[0].ip"
        else:
            c = rand_candidate()
            c["configMode"] = "path"
            c["predicate"] = rand_path(rng.choice(DOT_SEGMENTS))
            d.setdefault("candidates", []).append(c)
            field = "candidates[%d].predicate" % (len(d["candidates"]) - 1)
        return json.dumps(d).encode(), "refused:" + field
    elif kind == 6:  # very long or empty values
        p = rng.choice([s for s in slots if isinstance(get_at(d, s), str)] or slots)
        set_at(d, p, rng.choice(["", "a" * rng.choice([129, 254, 256, 4096, 100000])]))
    elif kind == 7:  # invalid UTF-8 bytes inside a string
        raw = json.dumps(d).encode()
        i = raw.index(b'"', raw.index(b'"serviceName"') + 14) + 1
        return raw[:i] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf",
                                     b"\xf8\x88\x80\x80\x80", b"\x80"]) + raw[i:], "utf8"
    elif kind == 8:  # a raw NUL or control byte in the text
        raw = json.dumps(d).encode()
        i = rng.randrange(len(raw) + 1)
        return raw[:i] + rng.choice([b"\x00", b"\x01", b"\n", b"\x7f"]) + raw[i:], "rawbyte"
    elif kind == 9:  # duplicate keys
        raw = json.dumps(d)
        return ('{"table":"astro",' + raw[1:]).encode(), "dupkey"
    elif kind == 10:  # deep nesting or a top level that is not an object
        return rng.choice([b"[" * 50 + b"]" * 50, b'"astro"', b"[]", b"null", b"1",
                           b'{"table":"astro","running":' + b"[" * 30 + b"]" * 30 + b"}",
                           b"", b"{", b"\xef\xbb\xbf{}"]), "shape"
    elif kind == 11:  # a bad service setting or weight: refused, naming the field
        c = rand_candidate()
        d.setdefault("candidates", []).append(c)
        n = len(d["candidates"]) - 1
        if rng.random() < 0.2:
            c["containers"] = [{"id": "c1", "ip": "10.0.0.1",
                                "weight": rng.choice([-1, 257, "1", None, 1.5])}]
            field = "candidates[%d].containers[0].weight" % n
        else:
            key, value, suffix = rng.choice(BAD_OPTIONS)
            if key == "cookieMode":
                c["cookie"] = "SID"
            c[key] = value
            field = "candidates[%d].%s" % (n, suffix)
        return json.dumps(d).encode(), "refused:" + field
    else:  # a duplicate container id with another address (valid), or a bad mode
        if rng.random() < 0.5:
            r = dict(d["running"][0])
            r["ip"] = rand_ip()
            d["running"].append(r)
        else:
            d.setdefault("candidates", []).append(rand_candidate())
            d["candidates"][-1]["configMode"] = rng.choice(["HOST", "tcp", "", "path ", 1])
    return json.dumps(d).encode(), "mutate%d" % kind


d = tmpdir()
dbpath = os.path.join(d, "prop.db")
store = "sqlite:" + dbpath
srv = Server(store, extra=["--max-body", "4M", "--frontend-bind", "127.0.0.1:18080"])
atexit.register(lambda: srv.proc.poll() is None and srv.proc.kill())
conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)


def post(body, want_json=False):
    global conn
    headers = {"Content-Type": "application/json"}
    if want_json:
        headers["Accept"] = "application/json"
    for attempt in range(2):
        try:
            conn.request("POST", "/generate", body=body, headers=headers)
            r = conn.getresponse()
            return r.status, r.read()
        except (http.client.HTTPException, OSError):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
            if attempt:
                raise


def dump(table):
    p = run_cli(["dump", "--store", store, table])
    return p.returncode, p.stdout


def tables_named(body):
    """The table a payload names when it is one of ours, else all of them."""
    try:
        t = json.loads(body)["table"]
        if t in TABLES:
            return [t]
    except (ValueError, KeyError, TypeError):
        pass
    return TABLES


def map_line_ok(line):
    parts = line.split(" ")
    return len(parts) == 2 and all(p and all(33 <= ord(c) < 127 for c in p) for p in parts)


def map_form(case, answer):
    """The JSON answer's config, pointed at a folder of its own holding its
    map files (checked: lines of two printable tokens), or None."""
    try:
        doc = json.loads(answer)
    except ValueError:
        check(False, "case %d: the JSON answer does not parse: %r" % (case, answer[:300]))
        return None
    files = doc.get("files")
    if not ok(sorted(files or {}) == ["hosts.map", "paths.map"] and
              doc.get("mapDir") == "/etc/haproxy/maps",
              "case %d: JSON answer without both map files: %r" % (case, answer[:300])):
        return None
    for name, text in files.items():
        if not ok(text == "" or (text.endswith("\n") and
                                 all(map_line_ok(x) for x in text[:-1].split("\n"))),
                  "case %d: %s is not lines of two tokens: %r" % (case, name, text[:300])):
            return None
    mdir = os.path.join(d, "maps%d" % case)
    os.makedirs(mdir)
    for name, text in files.items():
        with open(os.path.join(mdir, name), "w") as f:
            f.write(text)
    stats["map_form"] += 1
    return doc["config"].replace("/etc/haproxy/maps/", mdir + "/").encode()


known = {t: None for t in TABLES}
configs = {}  # config bytes -> first case that produced it
stats = {"accepted": 0, "rejected": 0, "hostile": 0, "hostile_accepted": 0, "dumps": 0,
         "map_form": 0}
t0 = time.time()
for case in range(CASES):
    hostile = rng.random() < 0.5
    if hostile:
        body, kind = hostile_payload()
        stats["hostile"] += 1
        for t in TABLES:
            if known[t] is None:
                known[t] = dump(t)
                stats["dumps"] += 1
    else:
        body, kind = json.dumps(valid_payload()).encode(), "valid"
    # Some calls ask for the JSON answer: the map form and its files.
    want_json = rng.random() < 0.2
    status, answer = post(body, want_json)
    if status == 200 and want_json:
        answer = map_form(case, answer)
        if answer is None:
            continue
    if kind.startswith("refused:"):
        try:
            field = json.loads(answer).get("field") if status != 200 else None
        except ValueError:
            field = None
        check(field == kind[len("refused:"):],
              "case %d (%s): answer %d %r to %r" % (case, kind, status, answer[:300], body[:500]))
    if status == 200:
        stats["accepted"] += 1
        stats["hostile_accepted"] += hostile
        if not ok(answer.endswith(b"\n") and all(c == 10 or 32 <= c < 127 for c in answer),
                     "case %d: config has a control or non-ASCII byte: %r" % (case, body[:300])):
            continue
        configs.setdefault(answer, (case, body))
        try:
            table = json.loads(body)["table"]
        except ValueError:
            check(False, "case %d (%s): accepted a body that is not JSON: %r"
                  % (case, kind, body[:500]))
            known = {t: None for t in TABLES}
            continue
        # Only the call's own table may have changed; should another one
        # change, the next comparison of that table catches it.
        known[table] = None
        continue
    stats["rejected"] += 1
    if not ok(hostile, "case %d: a valid payload was refused: %d %r\n  %r"
                 % (case, status, answer[:300], body[:500])):
        continue
    check(status in (400, 413), "case %d (%s): status %d" % (case, kind, status))
    try:
        err = json.loads(answer)
        check(isinstance(err.get("error"), str) and err["error"],
              "case %d: error without text: %r" % (case, answer[:200]))
    except ValueError:
        check(False, "case %d: error is not JSON: %r" % (case, answer[:200]))
    for t in tables_named(body):
        after = dump(t)
        stats["dumps"] += 1
        check(after == known[t], "case %d (%s): table %s changed across a rejected call (or "
              "a call on another table):\n%r\nbefore %r\nafter %r"
              % (case, kind, t, body[:500], known[t], after))
        known[t] = after
calls_s = time.time() - t0
conn.close()
check(srv.stop() == 0, "server stops cleanly")


def haproxy_run(path):
    p = subprocess.run([HAPROXY, "-c", "-q", "-f", path], capture_output=True, timeout=120)
    return p.returncode == 0, (p.stdout + p.stderr).decode(errors="replace")


def renamed(cfg, n):
    """The config with every proxy name prefixed by c<n>-."""
    out = []
    for line in cfg.decode().split("\n"):
        for key in ("frontend ", "backend ", "    use_backend "):
            if line.startswith(key):
                line = key + "c%d-" % n + line[len(key):]
        out.append(line)
    return "\n".join(out)


def check_batch(items):
    """items: list of (n, cfg). Returns a list of (n, output) failures."""
    fd, path = tempfile.mkstemp(suffix=".cfg", dir=d)
    with os.fdopen(fd, "w") as f:
        for n, cfg in items:
            f.write(renamed(cfg, n))
    ok, out = haproxy_run(path)
    os.unlink(path)
    if ok:
        return []
    failures = []
    for n, cfg in items:  # name the culprit on the unmodified config
        fd, path = tempfile.mkstemp(suffix=".cfg", dir=d)
        with os.fdopen(fd, "wb") as f:
            f.write(cfg)
        ok1, out1 = haproxy_run(path)
        os.unlink(path)
        if not ok1:
            failures.append((n, out1))
    if not failures:
        failures.append((items[0][0], "batch failed but every config alone passed: " + out))
    return failures


t1 = time.time()
items = list(enumerate(configs))
batches = [items[i:i + BATCH] for i in range(0, len(items), BATCH)]
with ThreadPoolExecutor(max_workers=2) as pool:
    results = list(pool.map(check_batch, batches))
for failures in results:
    for n, out in failures:
        case, body = configs[items[n][1]]
        check(False, "case %d: haproxy -c refused the config:\n%s\npayload %r\nconfig:\n%s"
              % (case, out[-2000:], body[:1000], items[n][1].decode()[:3000]))
# The batching itself is checked: a sample of configs run alone agree.
for n, cfg in rng.sample(items, min(5, len(items))):
    fd, path = tempfile.mkstemp(suffix=".cfg", dir=d)
    with os.fdopen(fd, "wb") as f:
        f.write(cfg)
    ok, out = haproxy_run(path)
    os.unlink(path)
    check(ok, "config %d alone: %s" % (n, out))
haproxy_s = time.time() - t1
# And the batch check can fail: a broken config in a batch is found and named.
if items:
    broken = items[0][1] + b"\nbackend zz-broken\n    server s 1.2.3.4:99999\n"
    found = check_batch([(0, items[0][1]), (1, broken)])
    check([n for n, _ in found] == [1], "a broken config is caught: %r" % found)

# Random valid fleet settings (as JSON, or YAML flow style), stored as the
# fleet's or as a table's overrides, then a valid call: each config alone
# through haproxy -c, without warnings. A setting made invalid by a hostile
# value is refused and changes nothing stored.
SETTINGS_CASES = 10 if SANITIZED else 40
certdir = os.path.join(d, "certs")
os.makedirs(certdir)
subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=prop.test", "-keyout", os.path.join(certdir, "k.pem"),
                "-out", os.path.join(certdir, "c.pem")], check=True, capture_output=True)
with open(os.path.join(certdir, "site.pem"), "w") as f:
    for part in ("c.pem", "k.pem"):
        with open(os.path.join(certdir, part)) as g:
            f.write(g.read())
with open(os.path.join(certdir, "list.txt"), "w") as f:
    f.write("%s prop.test\n" % os.path.join(certdir, "site.pem"))
HASH = ("$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN"
        ".Pq.H91p5hVO1")


def rand_duration():
    return rng.choice(["1ms", "500ms", "5s", "45s", "2m", "1h", "24h", "1000", "1d"])


def rand_bind(loopback=False):
    port = rng.randrange(1024, 65536)
    if loopback:
        return rng.choice(["127.0.0.1:%d", "[::1]:%d"]) % port
    return rng.choice([":%d", "127.0.0.1:%d", "[::]:%d", "0.0.0.0:%d"]) % port


def maybe(doc, key, value, p=0.5):
    if rng.random() < p:
        doc[key] = value


def rand_settings():
    doc = {}
    g = {}
    maybe(g, "maxconn", rng.randrange(1, 5000))
    maybe(g, "hardStopAfter", rand_duration())
    maybe(g, "nbthread", rng.randrange(1, 5))
    maybe(g, "log", [dict(address=rng.choice(["stdout", "127.0.0.1:514", "[::1]:5514"]),
                          facility=rng.choice(["local0", "daemon", "local7"]),
                          format=rng.choice(["rfc3164", "rfc5424", "raw"]))
                     for _ in range(rng.randrange(0, 3))])
    maybe(doc, "global", g)
    df = {}
    maybe(df, "timeouts", {k: rand_duration() for k in rng.sample(
        ["connect", "client", "server", "httpRequest", "httpKeepAlive", "queue", "tunnel"],
        rng.randrange(0, 8))})
    maybe(df, "retries", rng.randrange(0, 101))
    for k in ("redispatch", "httplog", "dontlognull"):
        maybe(df, k, rng.random() < 0.5)
    maybe(df, "maxconn", rng.randrange(1, 5000))
    maybe(doc, "defaults", df)
    fe = {}
    http_binds = [rand_bind() for _ in range(rng.randrange(1, 3))]
    h = {}
    maybe(h, "binds", http_binds)
    maybe(h, "redirectToHttps", rng.random() < 0.5)
    maybe(fe, "http", h)
    if rng.random() < 0.6:
        t = {"crtList" if rng.random() < 0.5 else "crt":
             os.path.join(certdir, "list.txt") if rng.random() < 0.5 else None}
        if None in t.values():
            t = {"crt": os.path.join(certdir, "site.pem")}
        elif "crt" in t:
            t["crt"] = os.path.join(certdir, "site.pem")
        maybe(t, "binds", [b for b in [rand_bind() for _ in range(2)] if b not in http_binds])
        if not t.get("binds", True):
            del t["binds"]
        maybe(t, "alpn", rng.choice(["h2,http/1.1", "http/1.1", "h2"]))
        maybe(t, "minTlsVersion", rng.choice(["TLSv1.2", "TLSv1.3"]))
        maybe(t, "hsts", {k: v for k, v in (("maxAge", rng.randrange(0, 63072001)),
                                              ("includeSubDomains", rng.random() < 0.5),
                                              ("preload", rng.random() < 0.5))
                          if rng.random() < 0.7})
        fe["https"] = t
    maybe(doc, "frontend", fe)
    if rng.random() < 0.5:
        st = {"bind": rand_bind(loopback=True)}
        if rng.random() < 0.5:
            st = {"bind": rand_bind(), "user": rng.choice(["ops", "a.b-c_d"]),
                  "passwordHash": HASH}
        maybe(st, "uri", rng.choice(["/stats", "/haproxy", "/a/b~c"]))
        maybe(st, "prometheus", rng.random() < 0.5)
        doc["stats"] = st
    if rng.random() < 0.5:
        u = {"status": rng.choice([404, 503])}
        maybe(u, "body", rng.choice(["gone", "No service here.", "x (y) [z] {w} <v> 100%"]))
        doc["unmatched"] = u
    maybe(doc, "routing", {"mode": rng.choice(["auto", "map", "acl"]), "mapDir": smaps})
    return doc


def yaml_flow(v):
    """YAML flow style: strings always quoted (JSON strings are YAML too)."""
    if isinstance(v, dict):
        return "{" + ", ".join("%s: %s" % (k, yaml_flow(x)) for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(yaml_flow(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v)


sfile = os.path.join(d, "settings.in")
# The folder random settings name as routing.mapDir; the map files of each
# JSON answer are written there before its config is checked.
smaps = os.path.join(d, "smaps")
os.makedirs(smaps)
settings_ok = 0
for case in range(SETTINGS_CASES):
    doc = rand_settings()
    table = rng.choice([None, "astro"])
    where = ["--table", table] if table else []
    before = run_cli(["settings", "get", "--store", store] + where).stdout
    hostile = rng.random() < 0.3
    text = yaml_flow(doc) if rng.random() < 0.5 else json.dumps(doc)
    if hostile:
        slots = [p for p in string_slots(doc) if isinstance(get_at(doc, p), (str, int))]
        if slots:
            p = rng.choice(slots)
            v = get_at(doc, p)
            set_at(doc, p, (v + rng.choice(HOSTILE[:12]) if isinstance(v, str)
                            else rng.choice(["x", -5, 10 ** 9, None, [1]])))
            text = json.dumps(doc)
        else:
            text = json.dumps(dict(doc, bogusKey=1))
    with open(sfile, "w") as f:
        f.write(text)
    r = run_cli(["settings", "put", "--store", store] + where + [sfile])
    if r.returncode != 0:
        after = run_cli(["settings", "get", "--store", store] + where).stdout
        check(after == before, "settings case %d: refused but changed what is stored" % case)
        check(hostile or b"exclude" in r.stderr,
              "settings case %d: valid settings refused: %r\n%s" % (case, r.stderr, text))
        continue
    g = run_cli(["generate", "--store", store],
                stdin=json.dumps({"table": table or "astro", "running": []}).encode())
    check(g.returncode == 0, "settings case %d: generate: %r\n%s" % (case, g.stderr, text))
    if g.returncode != 0:
        continue
    # The JSON answer (the map form unless routing.mode says acl) with its
    # files where the config names them, then the plain one (which names
    # the same files under routing.mode map).
    j = run_cli(["generate", "--store", store, "--json"],
                stdin=json.dumps({"table": table or "astro", "running": []}).encode())
    check(j.returncode == 0, "settings case %d: generate --json: %r" % (case, j.stderr))
    if j.returncode != 0:
        continue
    ans = json.loads(j.stdout)
    eff = json.loads(run_cli(["settings", "get", "--store", store, "--effective",
                              "--table", table or "astro"]).stdout).get("routing", {})
    mode = eff.get("mode", "auto")
    check((ans["files"] == {}) == (mode == "acl"),
          "settings case %d: mode %s, files %r" % (case, mode, ans["files"]))
    check((g.stdout == ans["config"].encode()) == (mode != "auto"),
          "settings case %d: mode %s: the plain and the JSON config" % (case, mode))
    if ans["files"]:
        check(ans["mapDir"] == eff.get("mapDir", "/etc/haproxy/maps"),
              "settings case %d: mapDir %r" % (case, ans["mapDir"]))
        ans["config"] = ans["config"].replace("/etc/haproxy/maps/", smaps + "/")
        for name, body in ans["files"].items():
            with open(os.path.join(smaps, name), "w") as f:
                f.write(body)
    good = True
    for cfg in (ans["config"].encode(), g.stdout.replace(b"/etc/haproxy/maps/",
                                                          smaps.encode() + b"/")):
        fd, path = tempfile.mkstemp(suffix=".cfg", dir=d)
        with os.fdopen(fd, "wb") as f:
            f.write(cfg)
        p = subprocess.run([HAPROXY, "-c", "-f", path], capture_output=True, timeout=120)
        os.unlink(path)
        out = (p.stdout + p.stderr).decode(errors="replace")
        good = good and p.returncode == 0 and "WARNING" not in out
        check(p.returncode == 0 and "WARNING" not in out,
              "settings case %d: haproxy -c: %s\nsettings %s\nconfig:\n%s"
              % (case, out[-1500:], text, cfg.decode()[:3000]))
    settings_ok += good
print("property: %d random settings, %d configs through haproxy -c" % (SETTINGS_CASES, settings_ok))
check(settings_ok > SETTINGS_CASES // 3, "enough accepted settings")

check(stats["accepted"] > CASES // 4, "enough accepted calls: %r" % stats)
check(stats["map_form"] > CASES // 20, "enough map-form answers: %r" % stats)
check(stats["rejected"] > CASES // 10, "enough rejected calls: %r" % stats)
print("property: seed %d, %d calls in %.1fs (%d accepted, %d rejected; %d hostile, %d of them "
      "accepted), %d store dumps; %d distinct configs through haproxy -c in %d runs, %.1fs"
      % (SEED, CASES, calls_s, stats["accepted"], stats["rejected"], stats["hostile"],
         stats["hostile_accepted"], stats["dumps"], len(configs), len(batches), haproxy_s),
      flush=True)
finish()
