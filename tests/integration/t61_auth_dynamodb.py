#!/usr/bin/env python3
"""Tokens on the DynamoDB store (a private dynalite): `token create` and
`token list` against it, two `serve --auth required` processes on it, a token
working on both within 5 s, 403 on another table with nothing stored, and a
revoked token refused by both within 5 s.

Re-runs itself under tests/dynamodb/with-dynalite.sh, which starts dynalite
and sets the AWS_* variables."""
import os
import sys

SRC = os.environ.get("LR_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = os.path.join(SRC, "tests", "dynamodb", "with-dynalite.sh")
if not os.environ.get("DYNALITE_PID"):
    os.execv(LAUNCH, [LAUNCH, sys.executable, os.path.abspath(__file__)])

from lrtest import check, check_token_lifecycle, run_steps  # noqa: E402

STORE = "dynamodb:t61-%d-" % os.getpid()
servers = []


def test_tokens_on_dynamodb():
    check_token_lifecycle(STORE, "ddb", servers)


def cleanup():
    for srv in servers:
        rc = srv.stop()
        check(rc == 0, "server exited %s" % rc)


run_steps([test_tokens_on_dynamodb], cleanup=cleanup)
