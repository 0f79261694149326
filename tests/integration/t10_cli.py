#!/usr/bin/env python3
"""The generate/dump subcommands: exit codes, env fallbacks, and every config
of a sequence of calls accepted by haproxy -c."""
import json
import os

from lrtest import (check, finish, haproxy_check, payload, run_cli, sample, tmpdir)

d = tmpdir()
store = "sqlite:" + os.path.join(d, "cli.db")

# The sample payload gives a config haproxy accepts, with all three services.
p = run_cli(["generate", "--store", store, os.path.join(os.environ.get("LR_SOURCE_DIR", "."), "sample-data", "data.json")])
check(p.returncode == 0, "generate data.json exits 0: %r" % p.stderr)
cfg = p.stdout.decode()
ok, out = haproxy_check(cfg)
check(ok, "haproxy -c accepts the sample config: " + out)
for name in ("app1", "app2", "multiservice"):
    check(("\nbackend %s\n" % name) in cfg, "backend %s present" % name)
check(cfg.endswith("\n") and '"' not in cfg and "\\" not in cfg, "clean config")

# Same input from stdin, same bytes (deterministic; state unchanged).
p2 = run_cli(["generate", "--store", store, "-"], stdin=sample("data.json"))
check(p2.returncode == 0 and p2.stdout == p.stdout, "stdin gives the same bytes")

# --json prints the services too.
p3 = run_cli(["generate", "--store", store, "--json"], stdin=sample("data.json"))
doc = json.loads(p3.stdout)
# Its config routes through maps (routing.mode auto), the files next to it.
check(doc["table"] == "astro" and len(doc["services"]) == 3 and
      "map_str(/etc/haproxy/maps/hosts.map)" in doc["config"] and " acl " in cfg and
      sorted(doc["files"]) == ["hosts.map", "paths.map"] and
      doc["mapDir"] == "/etc/haproxy/maps",
      "--json output: %r" % p3.stdout[:200])

# Invalid payload: exit 1, message names the field, nothing stored changes.
before = run_cli(["dump", "--store", store, "astro"]).stdout
bad = payload("astro", [{"serviceName": "app1", "id": "x", "ip": "300.1.1.1"}])
p4 = run_cli(["generate", "--store", store], stdin=bad)
check(p4.returncode == 1, "invalid payload exits 1 (got %d)" % p4.returncode)
check(b"running[0].ip" in p4.stderr, "error names the field: %r" % p4.stderr)
after = run_cli(["dump", "--store", store, "astro"]).stdout
check(before == after and len(before) > 10, "rejected call changed nothing")

# Usage errors exit 2; store failures exit 3.
check(run_cli(["generate", "--bogus"]).returncode == 2, "unknown option exits 2")
check(run_cli(["frobnicate"]).returncode == 2, "unknown command exits 2")
check(run_cli(["generate", "--store", "nosuch:x"], stdin=sample("data.json")).returncode == 2,
      "unknown store kind exits 2")
check(run_cli(["generate", "--frontend-bind", "1.2.3.4"], stdin=sample("data.json")).returncode == 2,
      "bad --frontend-bind exits 2")
p5 = run_cli(["generate", "--store", "sqlite:/nonexistent-dir/x.db"], stdin=sample("data.json"))
check(p5.returncode == 3, "unopenable store exits 3 (got %d)" % p5.returncode)

# --help on every subcommand, --version.
for sub in ("serve", "generate", "dump"):
    h = run_cli([sub, "--help"])
    check(h.returncode == 0 and b"usage: lambda-registry " + sub.encode() in h.stdout,
          "%s --help" % sub)
check(run_cli(["--version"]).stdout.startswith(b"lambda-registry "), "--version")

# Environment fallback; the flag wins over the variable.
envstore = "sqlite:" + os.path.join(d, "env.db")
p6 = run_cli(["generate"], stdin=sample("single-candidate.json"),
             env={"LAMBDA_REGISTRY_STORE": envstore, "LAMBDA_REGISTRY_FRONTEND_BIND": "127.0.0.1:9999"})
check(p6.returncode == 0 and b"bind 127.0.0.1:9999\n" in p6.stdout, "env sets store and bind")
check(os.path.exists(os.path.join(d, "env.db")), "env store file created")
p7 = run_cli(["generate", "--frontend-bind", "[::1]:8081"], stdin=sample("single-candidate.json"),
             env={"LAMBDA_REGISTRY_STORE": envstore, "LAMBDA_REGISTRY_FRONTEND_BIND": "127.0.0.1:9999"})
check(b"bind [::1]:8081\n" in p7.stdout, "flag wins over env")

# A sequence of calls: services come and go, every config passes haproxy -c.
seq_store = "sqlite:" + os.path.join(d, "seq.db")
steps = [
    payload("seq", [], []),
    payload("seq", [{"serviceName": "a", "id": "a1", "ip": "10.0.0.1"}],
            [{"serviceName": "a", "port": 80, "predicate": "a.example.com",
              "containers": [{"id": "a1", "ip": "10.0.0.1"}]}]),
    payload("seq", [{"serviceName": "a", "id": "a1", "ip": "10.0.0.1"},
                    {"serviceName": "b", "id": "b1", "ip": "::1"}],
            [{"serviceName": "b", "port": "8080", "configMode": "path", "predicate": "/api/v1",
              "cookie": "SID", "containers": [{"id": "b1", "ip": "::1"}]}]),
    payload("seq", [{"serviceName": "b", "id": "b1", "ip": "::1"},
                    {"serviceName": "b", "id": "b2", "ip": "10.0.0.3"}]),
    payload("seq", [{"serviceName": "b", "id": "b2", "ip": "10.0.0.4"}]),
    payload("seq", []),
]
expect_backends = [[], ["a"], ["a", "b"], ["b"], ["b"], []]
for i, body in enumerate(steps):
    r = run_cli(["generate", "--store", seq_store], stdin=body)
    check(r.returncode == 0, "step %d exits 0: %r" % (i, r.stderr))
    text = r.stdout.decode()
    ok, out = haproxy_check(text)
    check(ok, "step %d config valid: %s" % (i, out))
    got = [l.split()[1] for l in text.splitlines() if l.startswith("backend ")]
    check(got == expect_backends[i], "step %d backends %r" % (i, got))
    if i == 4:
        check("server b2 10.0.0.4:8080 check cookie b2" in text, "step 4 new address")
        check("server b1 " not in text, "step 4 b1 gone")

finish()
