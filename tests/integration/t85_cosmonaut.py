#!/usr/bin/env python3
"""The first version's answer shape for its agent, cosmonaut: with
`--answer-format json-string` (serve and lambda) or `?format=json-string`
the config comes as one JSON string, and cosmonaut's exact shell pipeline,
`echo -e $(tr -d '"' < answer)`, turns it into a config that passes
`haproxy -c` and equals ours up to leading whitespace. `?format=text` and
`Accept: application/json` still choose per request; a bad format is a 400
naming `format`."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lrtest import BIN, Server, check, finish, haproxy_check, sample, tmpdir  # noqa: E402
from lambda_emulator import RuntimeAPI, http_event, rest_event  # noqa: E402

d = tmpdir()
DATA = sample("data.json")


def cosmonaut(body):
    """What cosmonaut writes to haproxy.cfg from an answer body."""
    path = os.path.join(d, "answer")
    with open(path, "wb") as f:
        f.write(body)
    return subprocess.run(["bash", "-c", 'echo -e $(tr -d \'"\' < "$1")', "cosmonaut", path],
                          capture_output=True, check=True).stdout.decode()


def same_up_to_indent(a, b):
    strip = lambda t: [l.strip() for l in t.strip("\n").split("\n")]  # noqa: E731
    return strip(a) == strip(b)


text_srv = Server(store="sqlite:" + os.path.join(d, "text.db"))
json_srv = Server(store="sqlite:" + os.path.join(d, "json.db"),
                  extra=["--answer-format", "json-string"])
try:
    st, hdrs, want = text_srv.post(DATA)
    check(st == 200 and hdrs["content-type"].startswith("text/plain"), "text answer: %d" % st)
    want = want.decode()

    st, hdrs, body = json_srv.post(DATA)
    check(st == 200 and hdrs["content-type"] == "application/json",
          "json-string answer: %d %s" % (st, hdrs.get("content-type")))
    check(json.loads(body) == want, "the JSON string is the config")
    flat = cosmonaut(body)
    check(same_up_to_indent(flat, want), "cosmonaut's pipeline gives our config up to leading "
          "whitespace:\n%s" % flat[:600])
    ok, out = haproxy_check(flat)
    check(ok, "haproxy -c accepts what cosmonaut writes: " + out)
    # Our text answer through the same pipeline is what broke cosmonaut.
    ok, _ = haproxy_check(cosmonaut(want.encode()))
    check(not ok, "the text answer flattened by cosmonaut is refused by haproxy")

    # Per request: ?format= wins over the server's default and over Accept.
    st, hdrs, body = text_srv.request("POST", "/generate?format=json-string", DATA)
    check(st == 200 and json.loads(body) == want, "?format=json-string on a text server")
    st, hdrs, body = json_srv.request("POST", "/generate?format=text", DATA)
    check(st == 200 and body.decode() == want, "?format=text on a json-string server")
    st, hdrs, body = json_srv.request("POST", "/v1/tables/astro/generate?format=json-string", DATA)
    check(st == 200 and json.loads(body) == want, "the table route takes ?format= too")
    st, hdrs, body = json_srv.post(DATA, {"Accept": "application/json"})
    doc = json.loads(body) if st == 200 else {}
    check(isinstance(doc, dict) and "files" in doc and "backend app1" in doc.get("config", ""),
          "Accept: application/json still gets the JSON document on a json-string server")
    st, hdrs, body = json_srv.request("POST", "/generate?format=yaml", DATA)
    err = json.loads(body) if st == 400 else {}
    check(st == 400 and err.get("field") == "format", "a bad format: %d %r" % (st, body))
    bad = json.dumps({"table": "astro", "running": [{"serviceName": "a", "id": "1",
                                                     "ip": "300.0.0.1"}]}).encode()
    st, hdrs, body = json_srv.post(bad)
    check(st == 400 and json.loads(body).get("field") == "running[0].ip",
          "errors stay JSON objects: %r" % body)
finally:
    text_srv.stop()
    json_srv.stop()

r = subprocess.run([BIN, "serve", "--answer-format", "xml"], capture_output=True)
check(r.returncode == 2 and b"--answer-format" in r.stderr, "serve refuses a bad --answer-format")

# The Lambda runtime: API Gateway events get the JSON string too.
api = RuntimeAPI()
env = {"AWS_LAMBDA_RUNTIME_API": api.address, "LAMBDA_REGISTRY_AUTH": "off",
       "LAMBDA_REGISTRY_STORE": "sqlite:" + os.path.join(d, "lambda.db"),
       "LAMBDA_REGISTRY_ANSWER_FORMAT": "json-string", "PATH": os.environ["PATH"]}
for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
    if k in os.environ:
        env[k] = os.environ[k]
proc = subprocess.Popen([BIN, "lambda"], env=env, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL)
try:
    for shape, ev in (("REST", rest_event(DATA)), ("HTTP API", http_event(DATA))):
        ans = api.invoke(ev)
        doc = ans.json() if ans.kind == "response" else {}
        check(doc.get("statusCode") == 200 and json.loads(doc.get("body", "null")) == want,
              "%s event: the config as a JSON string: %r" % (shape, doc))
        check(same_up_to_indent(cosmonaut(doc.get("body", "").encode()), want),
              "%s event through cosmonaut's pipeline" % shape)
    ans = api.invoke(json.loads(DATA))
    check(ans.kind == "response" and ans.json() == want, "a direct event is the JSON string as before")
finally:
    api.close()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        check(False, "the runtime did not exit when the API went away")
finish()
