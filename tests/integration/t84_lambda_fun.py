#!/usr/bin/env python3
"""The Lambda zip under another project's Runtime API: @vercel/fun (npm,
pinned by tests/fun/package-lock.json) runs the package's bootstrap as
runtime "provided", as docs/aws.md shows. A direct event, a REST proxy event
and an HTTP API event each answer what `serve` answers for the same calls
on a store of its own, and a bad payload is the same 400 on both."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lrtest import (SANITIZED, Server, check, finish, npm_ci, sample, skip,  # noqa: E402
                    tmpdir)
from lambda_emulator import http_event, rest_event  # noqa: E402

if SANITIZED:
    skip("the package is built from the release binary")
SRC = os.environ["LR_SOURCE_DIR"]
LAMBDA_BIN = os.path.join(os.path.dirname(os.environ["LR_BIN"]), "lambda-registry-lambda")

deps = npm_ci("fun", "@vercel/fun")
d = tmpdir()
zip_path = os.path.join(d, "package.zip")
subprocess.run([os.path.join(SRC, "scripts", "lambda-package.sh"), LAMBDA_BIN, zip_path],
               check=True, stdout=subprocess.DEVNULL)

first = sample("data.json")
call = json.loads(first)
call["running"] = call["running"][1:]      # a container stopped
second = json.dumps(call).encode()
bad = json.dumps({"table": "astro", "running": [{"serviceName": "x", "id": "1",
                                                 "ip": "300.0.0.1"}]}).encode()
events = [json.loads(first), rest_event(second), http_event(first), rest_event(bad)]
with open(os.path.join(d, "events.json"), "w") as f:
    json.dump(events, f)
env = {"LAMBDA_REGISTRY_STORE": "sqlite:" + os.path.join(d, "lambda.db"),
       "LAMBDA_REGISTRY_AUTH": "off", "HOME": d}
out = subprocess.run(["node", os.path.join(deps, "invoke.js"), zip_path, json.dumps(env),
                      os.path.join(d, "events.json")], cwd=deps, capture_output=True, text=True,
                     timeout=180, env=dict(os.environ, NODE_PATH=os.path.join(deps, "node_modules"),
                                           HOME=d, NODE_NO_WARNINGS="1"))
check(out.returncode == 0, "node invoke.js: %s" % out.stderr[-2000:])
answers = json.loads(out.stdout) if out.returncode == 0 else []
check(len(answers) == len(events), "one answer per event: %r" % answers)

# The same calls through the HTTP server, on a store of its own.
srv = Server(store="sqlite:" + os.path.join(d, "http.db"))
try:
    want = [srv.request("POST", "/generate", body) for body in (first, second, first, bad)]
finally:
    srv.stop()
for i, (ans, (status, _, body)) in enumerate(zip(answers, want)):
    check(ans["StatusCode"] == 200 and not ans["FunctionError"],
          "event %d: invoked without a function error: %r" % (i, ans))
if len(answers) == 4:
    direct = json.loads(answers[0]["Payload"])
    check(want[0][0] == 200 and direct == want[0][2].decode(),
          "direct event: the config as a JSON string, equal to serve's")
    for i in (1, 2, 3):
        doc = json.loads(answers[i]["Payload"])
        check(doc.get("statusCode") == want[i][0],
              "event %d: status %r, serve %d" % (i, doc.get("statusCode"), want[i][0]))
        check(doc.get("body", "").encode() == want[i][2],
              "event %d: body equals serve's: %r vs %r" % (i, doc.get("body", "")[:200],
                                                          want[i][2][:200]))
    check(want[3][0] == 400 and b"running[0].ip" in want[3][2], "the bad payload is a 400 on both")
finish()
