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

from lrtest import check, check_token_lifecycle, run_cli, run_steps  # noqa: E402

PG = os.environ["LR_TEST_PG"]
STORE = "postgres:" + PG
PSQL = os.path.join(os.environ.get("LR_TEST_PG_BIN", ""), "psql")
if not os.path.exists(PSQL):
    PSQL = "psql"
BUDGET = 2.0
servers = []


def test_tokens_on_postgres():
    check_token_lifecycle(STORE, "pg", servers)


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
