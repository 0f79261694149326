#!/usr/bin/env python3
"""A stand-in for the DynamoDB operations dynalite lacks, in front of it.

dynalite (tests/dynamodb/) has no TransactWriteItems, which real DynamoDB
offers; the registry uses it where it exists. This HTTP server (Python
standard library only) forwards every request to the dynalite named by
AWS_ENDPOINT_URL_DYNAMODB and answers TransactWriteItems itself, in the
documented request and response shape
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html):

- the request is {"TransactItems": [{"Put"|"Update"|"Delete": {...}}, ...]},
  1 to 100 actions, at most one per item; each action's fields are those of
  PutItem, UpdateItem or DeleteItem (ConditionCheck is not implemented: it
  answers ValidationException);
- success is 200 {}; a failed condition is 400 TransactionCanceledException
  with "CancellationReasons", one {"Code": ...} per action in order
  ("ConditionalCheckFailed" or "None"), and nothing written.

How it is all-or-nothing here: every request, forwarded or not, goes through
one lock, so no client of the stand-in sees a transaction half done; the
actions are applied in order, each with ReturnValues ALL_OLD, and when one
fails the ones applied are undone (the old item put back, or the new one
deleted) before answering. Conditions are evaluated by dynalite itself. A
client that bypasses the stand-in (the tests' sdk.js reads) could see the
steps; the tests only read that way after the calls.

It also counts, for the tests and bench/dynamodb.py, the requests per
operation and the capacity units DynamoDB would charge: it asks dynalite for
ReturnConsumedCapacity=TOTAL (dynalite computes them from item sizes as
DynamoDB documents: 4 KB per strongly consistent read unit, 1 KB per write
unit); a transaction counts twice the write units of its actions, as
DynamoDB charges transactional writes.

Usage: standin.py [--no-transactions] COMMAND [ARGS...]  runs COMMAND with
AWS_ENDPOINT_URL_DYNAMODB pointing at the stand-in (inside with-dynalite.sh).
With --no-transactions it answers TransactWriteItems as dynalite does
(UnknownOperationException) and only counts.
"""
import http.client
import http.server
import json
import os
import subprocess
import sys
import threading
import urllib.parse

UNKNOWN_OP = {"__type": "com.amazon.coral.service#UnknownOperationException"}
PREFIX = "com.amazonaws.dynamodb.v20120810#"


class StandIn(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream, transactions=True):
        super().__init__(("127.0.0.1", 0), Handler)
        url = urllib.parse.urlparse(upstream)
        self.upstream = (url.hostname, url.port)
        self.transactions = transactions
        self.lock = threading.Lock()
        self.local = threading.local()
        self.keys = {}  # table -> key attribute names
        self.reset()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def reset(self):
        """Forget the counts: requests per operation, units read and written."""
        with self.lock:
            self.requests, self.read_units, self.write_units = {}, 0.0, 0.0
            self.canceled = 0  # transactions canceled (their writes undone)

    def counts(self):
        with self.lock:
            return dict(self.requests), self.read_units, self.write_units

    # ---- forwarding ------------------------------------------------------

    def call(self, op, data, headers):
        """One request to dynalite: (status, answer as JSON)."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        body = json.dumps(data).encode()
        hdrs = {"Content-Type": "application/x-amz-json-1.0",
                "X-Amz-Target": f"DynamoDB_20120810.{op}",
                "Authorization": headers.get("Authorization", ""),
                "X-Amz-Date": headers.get("X-Amz-Date", "")}
        try:
            conn.request("POST", "/", body, hdrs)
            res = conn.getresponse()
            raw = res.read()
        except (OSError, http.client.HTTPException):
            conn.close()
            self.local.conn = None
            raise
        return res.status, json.loads(raw or b"{}")

    def counted(self, op, data, headers, factor=1):
        """Forward with ReturnConsumedCapacity and count what it consumed."""
        if op in ("GetItem", "Scan", "Query", "PutItem", "UpdateItem", "DeleteItem"):
            data = dict(data, ReturnConsumedCapacity="TOTAL")
        status, out = self.call(op, data, headers)
        units = out.pop("ConsumedCapacity", {}).get("CapacityUnits", 0) if status == 200 else 0
        if op in ("GetItem", "Scan", "Query"):
            self.read_units += units
        else:
            self.write_units += units * factor
        return status, out

    def key_of(self, table, item, headers):
        if table not in self.keys:
            status, out = self.call("DescribeTable", {"TableName": table}, headers)
            if status != 200:
                return None
            self.keys[table] = [k["AttributeName"] for k in out["Table"]["KeySchema"]]
        return {k: item[k] for k in self.keys[table] if k in item}

    # ---- TransactWriteItems ---------------------------------------------

    def transact(self, data, headers):
        actions = data.get("TransactItems")
        if not isinstance(actions, list) or not 1 <= len(actions) <= 100:
            return 400, {"__type": PREFIX + "ValidationException",
                         "message": "TransactItems must have 1 to 100 actions"}
        plan, seen = [], set()
        for action in actions:
            if len(action) != 1 or next(iter(action)) not in ("Put", "Update", "Delete"):
                return 400, {"__type": PREFIX + "ValidationException",
                             "message": f"unsupported action by this stand-in: {sorted(action)}"}
            kind, params = next(iter(action.items()))
            table = params.get("TableName")
            key = self.key_of(table, params["Item"], headers) if kind == "Put" \
                else params.get("Key")
            if key is None:
                return 400, {"__type": PREFIX + "ResourceNotFoundException",
                             "message": "Requested resource not found"}
            ident = (table, json.dumps(key, sort_keys=True))
            if ident in seen:
                return 400, {"__type": PREFIX + "ValidationException",
                             "message": "Transaction request cannot include multiple "
                                        "operations on one item"}
            seen.add(ident)
            plan.append((kind, table, key, params))
        done, reasons, failure = [], [], None
        for kind, table, key, params in plan:
            op = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem"}[kind]
            status, out = self.counted(op, dict(params, ReturnValues="ALL_OLD"), headers,
                                       factor=2)
            if status == 200:
                done.append((table, key, out.get("Attributes")))
                reasons.append({"Code": "None"})
                continue
            if out.get("__type", "").endswith("#ConditionalCheckFailedException"):
                reasons.append({"Code": "ConditionalCheckFailed",
                                "Message": "The conditional request failed"})
                reasons += [{"Code": "None"}] * (len(plan) - len(reasons))
                failure = (400, {"__type": PREFIX + "TransactionCanceledException",
                                 "message": "Transaction cancelled, please refer cancellation "
                                            "reasons for specific reasons",
                                 "CancellationReasons": reasons})
            else:
                failure = (status, out)
            break
        if failure:
            self.canceled += 1
            for table, key, old in reversed(done):
                if old:
                    self.call("PutItem", {"TableName": table, "Item": old}, headers)
                else:
                    self.call("DeleteItem", {"TableName": table, "Key": key}, headers)
            return failure
        return 200, {}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        srv = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        op = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        headers = dict(self.headers)
        with srv.lock:
            srv.requests[op] = srv.requests.get(op, 0) + 1
            try:
                data = json.loads(body or b"{}")
                if op == "TransactWriteItems":
                    status, out = srv.transact(data, headers) if srv.transactions \
                        else (400, UNKNOWN_OP)
                else:
                    status, out = srv.counted(op, data, headers)
            except (OSError, http.client.HTTPException, ValueError) as e:
                status, out = 500, {"message": f"stand-in: {e}"}
        raw = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


def main():
    args = sys.argv[1:]
    transactions = True
    if args and args[0] == "--no-transactions":
        transactions, args = False, args[1:]
    if not args:
        raise SystemExit(__doc__)
    srv = StandIn(os.environ["AWS_ENDPOINT_URL_DYNAMODB"], transactions)
    env = dict(os.environ, AWS_ENDPOINT_URL_DYNAMODB=srv.url)
    rc = subprocess.call(args, env=env)
    srv.shutdown()
    sys.exit(rc)


if __name__ == "__main__":
    main()
