#!/usr/bin/env python3
"""Tokens on the PostgreSQL store (its documents): `token create` and `token
list` against it, two `serve --auth required` processes on it, a token
working on both within 5 s, 403 on another table with nothing stored, and a
revoked token refused by both within 5 s. Also: with the token kind's
generation row held FOR UPDATE by another session, `token create` fails at
the store budget while `token list` is answered at once, and works once the
lock is gone.

Re-runs itself under tests/postgres/with-postgres.sh, which starts a private
cluster and exports LR_TEST_PG."""
import json
import os
import subprocess
import sys
import time

SRC = os.environ.get("LR_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = os.path.join(SRC, "tests", "postgres", "with-postgres.sh")
if not os.environ.get("LR_TEST_PG_CTL"):
    os.execv(LAUNCH, [LAUNCH, sys.executable, os.path.abspath(__file__)])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lrtest import Server, check, payload, run_cli, run_steps, wait_for  # noqa: E402

PG = os.environ["LR_TEST_PG"]
STORE = "postgres:" + PG
PSQL = os.path.join(os.environ.get("LR_TEST_PG_BIN", ""), "psql")
if not os.path.exists(PSQL):
    PSQL = "psql"
BUDGET = 2.0
servers = []


def body(table):
    return payload(table, [{"serviceName": "svc", "id": "c1", "ip": "10.0.0.1"}],
                   [{"serviceName": "svc", "port": 80, "configMode": "host",
                     "predicate": "www.example.com",
                     "containers": [{"id": "c1", "ip": "10.0.0.1"}]}])


def stored(table):
    p = run_cli(["dump", "--store", STORE, table])
    return json.loads(p.stdout)["services"] if p.returncode == 0 else None


def test_tokens_on_postgres():
    p = run_cli(["token", "create", "--store", STORE, "--scope", "table:pg-web:write",
                 "--description", "t76"])
    check(p.returncode == 0, "token create on PostgreSQL: %s" % p.stderr.decode())
    tok = p.stdout.decode().strip()
    # The secret is base64url and may itself hold "_": split off two fields only.
    tid = tok.split("_", 2)[1] if tok.startswith("lr_") else ""
    p = run_cli(["token", "list", "--store", STORE])
    ids = [json.loads(line)["id"] for line in p.stdout.decode().splitlines()]
    check(ids == [tid], "token list on PostgreSQL: %r" % ids)
    one = Server(STORE, extra=["--auth", "required"])
    servers.append(one)
    two = Server(STORE, extra=["--auth", "required"])
    servers.append(two)
    auth = {"Authorization": "Bearer " + tok}

    def status(srv, table, hdrs=auth):
        return srv.request("POST", "/v1/tables/%s/generate" % table, body(table), hdrs)[0]

    t = wait_for(lambda: status(one, "pg-web") == 200 and status(two, "pg-web") == 200, 5,
                 step=0.1)
    check(t is not None, "the token works on both servers within 5 s")
    check(status(one, "pg-web", {}) == 401, "no token: 401")
    check(status(two, "pg-api") == 403, "another table: 403")
    check(stored("pg-api") == [], "nothing stored on the refused call")
    check(len(stored("pg-web") or []) == 1, "the allowed call stored")
    p = run_cli(["token", "revoke", "--store", STORE, tid])
    check(p.returncode == 0, "token revoke on PostgreSQL: %s" % p.stderr.decode())
    p = run_cli(["token", "revoke", "--store", STORE, tid])
    check(p.returncode == 1, "revoke twice: exit 1 (%d)" % p.returncode)
    t0 = time.time()
    t = wait_for(lambda: status(one, "pg-web") == 401 and status(two, "pg-web") == 401, 5,
                 step=0.1)
    check(t is not None, "the revoked token is refused by both within 5 s")
    print("revocation seen after %.2f s" % (time.time() - t0))


def test_locked_kind():
    env = {"LAMBDA_REGISTRY_STORE_TIMEOUT": str(BUDGET)}
    holder = subprocess.Popen([PSQL, "-X", "-At", PG], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    holder.stdin.write("BEGIN;\nSELECT generation FROM lambda_registry.doc_generations "
                       "WHERE kind = 'token' FOR UPDATE;\n\\echo locked\n")
    holder.stdin.flush()
    lines = [holder.stdout.readline().strip() for _ in range(3)]
    check(lines[-1] == "locked", "psql holds the kind's row: %r" % lines)
    t0 = time.time()
    p = run_cli(["token", "list", "--store", STORE], env=env)
    d = time.time() - t0
    check(p.returncode == 0 and d < BUDGET / 2,
          "token list is answered meanwhile (%d in %.3f s)" % (p.returncode, d))
    t0 = time.time()
    p = run_cli(["token", "create", "--store", STORE, "--scope", "admin"], env=env)
    d = time.time() - t0
    print("locked create: exit %d in %.3f s: %s" % (p.returncode, d, p.stderr.decode()[:160]))
    check(p.returncode != 0, "token create on the held kind fails")
    check(BUDGET - 0.3 <= d <= BUDGET + 2.5, "at the %.1f s budget (%.3f s)" % (BUDGET, d))
    check(b"budget" in p.stderr, "the error names the budget: %r" % p.stderr)
    holder.stdin.write("ROLLBACK;\n\\q\n")
    holder.stdin.flush()
    holder.wait(10)
    p = run_cli(["token", "create", "--store", STORE, "--scope", "admin"], env=env)
    check(p.returncode == 0, "token create works once the lock is gone: %s" % p.stderr.decode())


def cleanup():
    for srv in servers:
        rc = srv.stop()
        check(rc == 0, "server exited %s" % rc)


run_steps([test_tokens_on_postgres, test_locked_kind], cleanup=cleanup)
