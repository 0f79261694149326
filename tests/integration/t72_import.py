#!/usr/bin/env python3
"""`lambda-registry import`: the first version's one DynamoDB table
("services", every host's services, the first version's item layout) copied
into a table of a SQLite store: a dry run stores nothing, --only-services
picks, --apply writes and a second run finds everything the same, the
target's own services are kept, the source is never written, bad options
are refused. Runs under tests/dynamodb/with-dynalite.sh."""
import json
import os
import subprocess
import sys

SRC = os.environ.get("LR_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = os.path.join(SRC, "tests", "dynamodb", "with-dynalite.sh")
SDK = os.path.join(SRC, "tests", "dynamodb", "sdk.js")
if not os.environ.get("DYNALITE_PID"):
    os.execv(LAUNCH, [LAUNCH, sys.executable, os.path.abspath(__file__)])

from lrtest import check, finish, run_cli, tmpdir  # noqa: E402


def sdk(*args):
    out = subprocess.run(["node", SDK, *args], env=dict(os.environ, NODE_NO_WARNINGS="1"),
                         capture_output=True, text=True, timeout=60)
    check(out.returncode == 0, "sdk.js %s: %s" % (args[0], out.stderr))
    return json.loads(out.stdout) if args[0] == "scan" else None


def item(name, port, predicate, containers, mode="host", cookie=None):
    it = {"serviceName": {"S": name}, "port": {"S": str(port)},
          "configMode": {"S": mode}, "predicate": {"S": predicate},
          "containers": {"L": [{"M": {"id": {"S": i}, "ip": {"S": ip}}}
                               for i, ip in containers]},
          "createdAt": {"S": "2021-03-04T05:06:07.890Z"},
          "updatedAt": {"S": "2021-03-04T05:06:07.890Z"}}
    if cookie:
        it["cookie"] = {"S": cookie}
    return it


# Two hosts' services in the first version's single table.
for it in (item("shop", 8080, "Shop.Example.com", [("s1", "10.1.0.1"), ("s2", "10.1.0.2")],
                cookie="SID"),
           item("api", 9000, "api", [("a1", "10.1.0.3")], mode="path"),
           item("blog", 80, "blog.example.com", [("b1", "10.2.0.1")])):
    sdk("put", "services", json.dumps(it))
source_before = sorted(json.dumps(i, sort_keys=True) for i in sdk("scan", "services"))

d = tmpdir()
store = "sqlite:" + os.path.join(d, "import.db")
# The target table has a service of its own, which the import keeps.
own = {"table": "web", "running": [{"serviceName": "own", "id": "o1", "ip": "10.3.0.1"}],
       "candidates": [{"serviceName": "own", "port": 80, "configMode": "host",
                       "predicate": "own.example.com",
                       "containers": [{"id": "o1", "ip": "10.3.0.1"}]}]}
r = run_cli(["generate", "--store", store], stdin=json.dumps(own).encode())
check(r.returncode == 0, "seed the target: %r" % r.stderr)


def dump():
    r = run_cli(["dump", "--store", store, "web"])
    check(r.returncode == 0, "dump: %r" % r.stderr)
    return {s["serviceName"]: s for s in json.loads(r.stdout)["services"]}


# A dry run prints the plan and stores nothing.
before = dump()
r = run_cli(["import", "--table", "web", "--store", store])
out = r.stdout.decode()
check(r.returncode == 0, "dry run exits 0: %r" % r.stderr)
check("new shop (host shop.example.com, port 8080, 2 containers)" in out
      and "new api (path /api, port 9000, 1 container)" in out and "new blog" in out,
      "the dry run lists every source service: %r" % out)
check("dry run: 3 of 3 services would be written into table 'web'" in out, "summary: %r" % out)
check(dump() == before, "the dry run stored nothing")

# --only-services picks; --apply writes them next to the target's own.
r = run_cli(["import", "--table", "web", "--store", store, "--only-services", "shop,api", "--apply"])
out = r.stdout.decode()
check(r.returncode == 0, "--apply exits 0: %r" % r.stderr)
check("imported 2 of 2 services into table 'web'" in out and "blog" not in out, "report: %r" % out)
after = dump()
check(sorted(after) == ["api", "own", "shop"], "the target holds own, shop, api: %r" % sorted(after))
shop = after["shop"]
check(shop["predicate"] == "shop.example.com" and shop["port"] == 8080 and shop["cookie"] == "SID"
      and [c["id"] for c in shop["containers"]] == ["s1", "s2"],
      "shop imported as stored: %r" % shop)
check(after["own"] == before["own"], "the target's own service is untouched")

# The imported table renders: an agent's next call with the same containers.
call = {"table": "web", "running": [
    {"serviceName": "shop", "id": "s1", "ip": "10.1.0.1"},
    {"serviceName": "shop", "id": "s2", "ip": "10.1.0.2"},
    {"serviceName": "api", "id": "a1", "ip": "10.1.0.3"},
    {"serviceName": "own", "id": "o1", "ip": "10.3.0.1"}]}
r = run_cli(["generate", "--store", store], stdin=json.dumps(call).encode())
cfg = r.stdout.decode()
check(r.returncode == 0 and "server s1 10.1.0.1:8080 check cookie s1" in cfg
      and "server a1 10.1.0.3:9000" in cfg and "backend own" in cfg,
      "the imported services render: %r" % cfg[-600:])

# Again: the same services are the same; only blog would be new.
r = run_cli(["import", "--table", "web", "--store", store])
out = r.stdout.decode()
check(r.returncode == 0 and "same shop" in out and "same api" in out and "new blog" in out
      and "1 of 3 services would be written" in out, "a second dry run: %r" % out)

# Bad options: refused, nothing stored.
before = dump()
r = run_cli(["import", "--table", "web", "--store", store, "--only-services", "shop,nope", "--apply"])
check(r.returncode == 1 and b"'nope' is not a service of the source table" in r.stderr,
      "a missing --only-services name: %r" % r.stderr)
r = run_cli(["import", "--table", "web", "--store", store, "--from", "s3:bucket"])
check(r.returncode == 2 and b"--from" in r.stderr, "a bad --from: %r" % r.stderr)
r = run_cli(["import", "--store", store])
check(r.returncode == 2 and b"--table" in r.stderr, "--table is required: %r" % r.stderr)
r = run_cli(["import", "--table", "bad name", "--store", store])
check(r.returncode == 2, "a bad --table name: %r" % r.stderr)
check(dump() == before, "refused imports stored nothing")
check(sorted(json.dumps(i, sort_keys=True) for i in sdk("scan", "services")) == source_before,
      "the source table was only read")
finish()
