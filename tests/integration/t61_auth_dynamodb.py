#!/usr/bin/env python3
"""Tokens on the DynamoDB store (a private dynalite): `token create` and
`token list` against it, two `serve --auth required` processes on it, a token
working on both within 5 s, 403 on another table with nothing stored, and a
revoked token refused by both within 5 s.

Re-runs itself under tests/dynamodb/with-dynalite.sh, which starts dynalite
and sets the AWS_* variables."""
import json
import os
import sys
import time

SRC = os.environ.get("LR_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = os.path.join(SRC, "tests", "dynamodb", "with-dynalite.sh")
if not os.environ.get("DYNALITE_PID"):
    os.execv(LAUNCH, [LAUNCH, sys.executable, os.path.abspath(__file__)])

from lrtest import Server, check, payload, run_cli, run_steps, wait_for  # noqa: E402

STORE = "dynamodb:t61-%d-" % os.getpid()
servers = []


def body(table):
    return payload(table, [{"serviceName": "svc", "id": "c1", "ip": "10.0.0.1"}],
                   [{"serviceName": "svc", "port": 80, "configMode": "host",
                     "predicate": "www.example.com",
                     "containers": [{"id": "c1", "ip": "10.0.0.1"}]}])


def stored(table):
    p = run_cli(["dump", "--store", STORE, table])
    return json.loads(p.stdout)["services"] if p.returncode == 0 else None


def test_tokens_on_dynamodb():
    p = run_cli(["token", "create", "--store", STORE, "--scope", "table:ddb-web:write",
                 "--description", "t61"])
    check(p.returncode == 0, "token create on DynamoDB: %s" % p.stderr.decode())
    tok = p.stdout.decode().strip()
    # The secret is base64url and may itself hold "_": split off two fields only.
    tid = tok.split("_", 2)[1] if tok.startswith("lr_") else ""
    p = run_cli(["token", "list", "--store", STORE])
    ids = [json.loads(line)["id"] for line in p.stdout.decode().splitlines()]
    check(ids == [tid], "token list on DynamoDB: %r" % ids)
    one = Server(STORE, extra=["--auth", "required"])
    servers.append(one)
    two = Server(STORE, extra=["--auth", "required"])
    servers.append(two)
    auth = {"Authorization": "Bearer " + tok}

    def status(srv, table, hdrs=auth):
        return srv.request("POST", "/v1/tables/%s/generate" % table, body(table), hdrs)[0]

    t = wait_for(lambda: status(one, "ddb-web") == 200 and status(two, "ddb-web") == 200, 5,
                 step=0.1)
    check(t is not None, "the token works on both servers within 5 s")
    check(status(one, "ddb-web", {}) == 401, "no token: 401")
    check(status(two, "ddb-api") == 403, "another table: 403")
    check(stored("ddb-api") == [], "nothing stored on the refused call")
    check(len(stored("ddb-web") or []) == 1, "the allowed call stored")
    p = run_cli(["token", "revoke", "--store", STORE, tid])
    check(p.returncode == 0, "token revoke on DynamoDB: %s" % p.stderr.decode())
    t0 = time.time()
    t = wait_for(lambda: status(one, "ddb-web") == 401 and status(two, "ddb-web") == 401, 5,
                 step=0.1)
    check(t is not None, "the revoked token is refused by both within 5 s")
    print("revocation seen after %.2f s" % (time.time() - t0))


def cleanup():
    for srv in servers:
        rc = srv.stop()
        check(rc == 0, "server exited %s" % rc)


run_steps([test_tokens_on_dynamodb], cleanup=cleanup)
