#!/usr/bin/env python3
"""The DynamoDB wire protocol against a scripted fake endpoint: SigV4
signatures recomputed independently, the session token header, kept-alive
connections, retries with backoff on throttling and 5xx inside the budget,
and no retry for errors that another attempt cannot fix."""
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ["LR_BIN"]
KEY, SECRET, TOKEN, REGION = "AKIDLRTEST", "lr/secret+key", "session-token-1", "eu-west-3"
results = {"passed": 0, "failed": 0}


class Fake(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.requests = []  # (op, headers, body, client port)
        self.script = []    # answers to give first: (status, error type or None)
        self.by_op = {}     # per operation, answers to give first: (status, body)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        op = self.headers.get("X-Amz-Target", "").rpartition(".")[2]
        if b'lambda-registry.documents"' in body:
            # Settings and tokens live in the documents table: answered as
            # "none stored" and left out, so what is checked below is the
            # table's own protocol. A generation bump (the sparkline's
            # count after a change) gets a counter, as DynamoDB answers.
            with self.server.lock:
                self.server.doc_gen = getattr(self.server, "doc_gen", 0) + (op == "UpdateItem")
            self.answer(200, {"Attributes": {"generation": {"N": str(self.server.doc_gen)}}}
                        if op == "UpdateItem" else {})
            return
        with self.server.lock:
            self.server.requests.append((op, dict(self.headers), body, self.client_address[1]))
            answer = self.server.script.pop(0) if self.server.script else (200, None)
            scripted = self.server.by_op.get(op)
            if scripted:
                answer = scripted.pop(0)
        status, err = answer
        if isinstance(err, dict):
            out = err
        elif err:
            out = {"__type": f"com.amazonaws.dynamodb.v20120810#{err}",
                   "message": f"scripted {err}"}
        elif status != 200:
            out = {"message": "scripted failure"}
        else:
            out = {"Scan": {"Items": [], "Count": 0}, "ListTables": {"TableNames": []}}.get(op, {})
        self.answer(status, out)

    def answer(self, status, out):
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def sigv4_ok(headers, body):
    """Recompute the request's SigV4 signature from the AWS specification."""
    auth = headers["Authorization"]
    m = re.fullmatch(r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
                     r"SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})", auth)
    assert m, auth
    key, day, region, service, signed, signature = m.groups()
    assert (key, region, service) == (KEY, REGION, "dynamodb"), auth
    names = signed.split(";")
    for must in ("host", "x-amz-date", "x-amz-target", "content-type", "x-amz-security-token"):
        assert must in names, f"{must} not signed: {signed}"
    lower = {k.lower(): v for k, v in headers.items()}
    canon = "".join(f"{n}:{' '.join(lower[n].split())}\n" for n in names)
    request = "\n".join(["POST", "/", "", canon, signed, hashlib.sha256(body).hexdigest()])
    amz_date = lower["x-amz-date"]
    assert amz_date.startswith(day)
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(request.encode()).hexdigest()])
    k = ("AWS4" + SECRET).encode()
    for part in (day, region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest(), signature)


class Server:
    def __init__(self, endpoint, **env):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = tempfile.TemporaryFile()
        full = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        full.update(AWS_ENDPOINT_URL_DYNAMODB=endpoint, AWS_REGION=REGION,
                    AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                    AWS_SESSION_TOKEN=TOKEN)
        full.update(env)
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", f"127.0.0.1:{self.port}", "--store", "dynamodb:p-",
             "--threads", "1"], env=full, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, "no serve"
                time.sleep(0.02)

    def post(self, body):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        start = time.monotonic()
        conn.request("POST", "/generate", json.dumps(body).encode())
        res = conn.getresponse()
        text = res.read().decode()
        conn.close()
        return res.status, text, time.monotonic() - start

    def stop(self):
        self.proc.terminate()
        rc = self.proc.wait(10)
        self.log.seek(0)
        assert rc == 0, f"serve exited with {rc}: {self.log.read().decode()[-2000:]}"


PAYLOAD = {"table": "astro", "running": [{"serviceName": "app1", "id": "c1", "ip": "10.0.0.1"}],
           "candidates": [{"serviceName": "app1", "port": 80, "predicate": "a.example.com",
                           "containers": [{"id": "c1", "ip": "10.0.0.1"}]}]}
UNCHANGED = {"table": "astro", "running": []}


def test_signing_and_keepalive():
    fake = Fake()
    srv = Server(fake.url)
    try:
        for _ in range(4):
            st, text, _ = srv.post(PAYLOAD)
            assert st == 200, text
        # The fake keeps no head item: every call reads it, scans, and
        # writes the service with the head's creation in one transaction.
        assert [r[0] for r in fake.requests] == ["GetItem", "Scan",
                                                 "TransactWriteItems"] * 4, fake.requests
        for op, headers, body, _ in fake.requests:
            assert headers["Content-Type"] == "application/x-amz-json-1.0"
            assert headers["X-Amz-Target"] == f"DynamoDB_20120810.{op}"
            assert headers["X-Amz-Security-Token"] == TOKEN
            assert sigv4_ok(headers, body), headers
        head = json.loads(fake.requests[0][2])
        assert head == {"TableName": "p-astro", "Key": {"serviceName": {"S": "#head"}},
                        "ConsistentRead": True}, head
        scan = json.loads(fake.requests[1][2])
        assert scan == {"TableName": "p-astro", "ConsistentRead": True, "Limit": 1000}, scan
        # One store handle, one connection for all twelve requests.
        assert len({r[3] for r in fake.requests}) == 1, [r[3] for r in fake.requests]
    finally:
        srv.stop()
        fake.shutdown()


def test_retries_throttling_and_5xx():
    fake = Fake()
    fake.script = [(400, "ThrottlingException"), (400, "ProvisionedThroughputExceededException"),
                   (500, None), (400, "RequestLimitExceeded"), (503, None)]
    srv = Server(fake.url)
    try:
        st, text, took = srv.post(UNCHANGED)
        assert st == 200, text
        assert [r[0] for r in fake.requests] == ["GetItem"] * 6 + ["Scan"], fake.requests
        assert took < 5, took
    finally:
        srv.stop()
        fake.shutdown()


def test_retries_stop_at_the_budget():
    fake = Fake()
    fake.script = [(500, None)] * 1000
    srv = Server(fake.url, LAMBDA_REGISTRY_STORE_TIMEOUT="0.8")
    try:
        st, text, took = srv.post(UNCHANGED)
        assert st == 503, text
        err = json.loads(text)["error"]
        # The last attempt may also be cut off by the budget mid-request
        # (slow under sanitizers); either way the retries stopped in time.
        assert ("dynamodb GetItem failed: HTTP 500" in err or "no answer within" in err) \
            and "attempts in" in err, err
        assert took < 1.5, took
        assert 2 <= len(fake.requests) <= 10, len(fake.requests)
    finally:
        srv.stop()
        fake.shutdown()


def test_no_retry_for_permanent_errors():
    fake = Fake()
    fake.script = [(400, "UnrecognizedClientException")]
    srv = Server(fake.url)
    try:
        st, text, _ = srv.post(UNCHANGED)
        assert st == 503, text
        err = json.loads(text)["error"]
        assert "UnrecognizedClientException: scripted UnrecognizedClientException" in err, err
        assert len(fake.requests) == 1, fake.requests
    finally:
        srv.stop()
        fake.shutdown()


def test_table_creation():
    fake = Fake()
    creating = (200, {"Table": {"TableStatus": "CREATING"}})
    fake.by_op = {"PutItem": [(400, "ResourceNotFoundException")] * 2,
                  "CreateTable": [(200, {}), (400, "ResourceInUseException")],
                  "DescribeTable": [(400, "ResourceNotFoundException")] + [creating] * 100}
    # Writes one by one (no transaction), as against dynalite.
    srv = Server(fake.url, LAMBDA_REGISTRY_STORE_TIMEOUT="1", LAMBDA_REGISTRY_STORE_TRANSACT="0")
    try:
        # The table never becomes ACTIVE within the budget: 503, in time.
        st, text, took = srv.post(PAYLOAD)
        assert st == 503, text
        assert "table 'p-astro' is still being created (CREATING)" in text, text
        assert took < 1.5, took
        ops = [r[0] for r in fake.requests]
        assert ops[:5] == ["GetItem", "Scan", "PutItem", "CreateTable", "DescribeTable"], ops
        assert set(ops[5:]) == {"DescribeTable"} and len(ops) < 20, ops
        # Next call: another instance is creating it (ResourceInUse), it
        # becomes ACTIVE, the write goes through. This instance gets a
        # budget that the waits between DescribeTable polls fit in under
        # the sanitizers (1 s ran out there once).
        srv.stop()
        srv = Server(fake.url, LAMBDA_REGISTRY_STORE_TIMEOUT="5", LAMBDA_REGISTRY_STORE_TRANSACT="0")
        fake.by_op["DescribeTable"] = [creating, (200, {"Table": {"TableStatus": "ACTIVE"}})]
        del fake.requests[:]
        st, text, _ = srv.post(PAYLOAD)
        assert st == 200, text
        ops = [r[0] for r in fake.requests]
        assert ops == ["GetItem", "Scan", "PutItem", "CreateTable", "DescribeTable",
                       "DescribeTable", "PutItem", "UpdateItem"], ops
        create = json.loads([r[2] for r in fake.requests if r[0] == "CreateTable"][0])
        assert create == {"TableName": "p-astro", "BillingMode": "PAY_PER_REQUEST",
                          "AttributeDefinitions": [{"AttributeName": "serviceName",
                                                    "AttributeType": "S"}],
                          "KeySchema": [{"AttributeName": "serviceName",
                                         "KeyType": "HASH"}]}, create
    finally:
        srv.stop()
        fake.shutdown()


def canceled(*codes):
    return (400, {"__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                  "message": "Transaction cancelled, please refer cancellation reasons",
                  "CancellationReasons": [{"Code": c} for c in codes]})


def test_transactions():
    """The documented TransactWriteItems shape: the service's Put and the
    head's Update in one request; a canceled transaction (a condition
    failed: nothing written) is retried from a fresh read; an endpoint
    without the operation (dynalite) gets the writes one by one, and is not
    asked again by this process."""
    fake = Fake()
    fake.by_op = {"TransactWriteItems": [canceled("ConditionalCheckFailed", "None")]}
    srv = Server(fake.url)
    try:
        st, text, _ = srv.post(PAYLOAD)
        assert st == 200, text
        ops = [r[0] for r in fake.requests]
        assert ops == ["GetItem", "Scan", "TransactWriteItems"] * 2, ops
        tx = json.loads(fake.requests[-1][2])
        put, update = tx["TransactItems"]
        assert put["Put"]["TableName"] == "p-astro", put
        assert put["Put"]["Item"]["serviceName"] == {"S": "app1"}, put
        assert put["Put"]["ConditionExpression"] == "attribute_not_exists(serviceName)", put
        assert update == {"Update": {
            "TableName": "p-astro", "Key": {"serviceName": {"S": "#head"}},
            "UpdateExpression": "SET #v = :next",
            "ConditionExpression": "attribute_not_exists(serviceName)",
            "ExpressionAttributeNames": {"#v": "version"},
            "ExpressionAttributeValues": {":next": {"N": "1"}}}}, update
    finally:
        srv.stop()
        fake.shutdown()
    fake = Fake()
    fake.by_op = {"TransactWriteItems": [(400, {"__type": "com.amazon.coral.service#"
                                                "UnknownOperationException"})],
                  "GetItem": [(200, {"Item": {"serviceName": {"S": "#head"},
                                              "version": {"N": "7"}}})] * 2}
    srv = Server(fake.url)
    try:
        for _ in range(2):
            st, text, _ = srv.post(PAYLOAD)
            assert st == 200, text
        ops = [r[0] for r in fake.requests]
        assert ops == ["GetItem", "Scan", "TransactWriteItems", "PutItem", "UpdateItem",
                       "GetItem", "Scan", "PutItem", "UpdateItem"], ops
        update = json.loads(fake.requests[4][2])
        assert update["ConditionExpression"] == "#v = :v", update
        assert update["ExpressionAttributeValues"] == {":next": {"N": "8"}, ":v": {"N": "7"}}
    finally:
        srv.stop()
        fake.shutdown()


def test_table_name_too_long():
    fake = Fake()
    srv = Server(fake.url)
    try:
        st, text, _ = srv.post(dict(PAYLOAD, table="t" * 255))
        assert st == 400, text
        assert "is longer than 255 characters" in json.loads(text)["error"], text
        assert not fake.requests, fake.requests
    finally:
        srv.stop()
        fake.shutdown()


def test_missing_settings():
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    out = subprocess.run([BIN, "generate", "--store", "dynamodb"], input=b"{}", env=env,
                         capture_output=True, timeout=10)
    assert out.returncode != 0 and b"no AWS region" in out.stderr, out.stderr
    env.update(AWS_REGION="us-east-1")
    out = subprocess.run([BIN, "generate", "--store", "dynamodb"], input=b"{}", env=env,
                         capture_output=True, timeout=10)
    assert out.returncode != 0 and b"no AWS credentials" in out.stderr, out.stderr
    out = subprocess.run([BIN, "generate", "--store", "dynamodb:bad prefix"], input=b"{}",
                         env=env, capture_output=True, timeout=10)
    assert out.returncode == 2 and b"table prefix 'bad prefix'" in out.stderr, out.stderr
    env.update(AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s",
               LAMBDA_REGISTRY_STORE_TIMEOUT="soon")
    out = subprocess.run([BIN, "generate", "--store", "dynamodb"], input=b"{}", env=env,
                         capture_output=True, timeout=10)
    assert out.returncode != 0 and b"timeout 'soon'" in out.stderr, out.stderr


for name, fn in [("sigv4 signature, session token, keep-alive", test_signing_and_keepalive),
                 ("throttling and 5xx are retried", test_retries_throttling_and_5xx),
                 ("retries stop at the budget", test_retries_stop_at_the_budget),
                 ("permanent errors are not retried", test_no_retry_for_permanent_errors),
                 ("table creation waits within the budget", test_table_creation),
                 ("transactions, canceled and unsupported", test_transactions),
                 ("prefix + table over 255 characters", test_table_name_too_long),
                 ("missing or malformed settings", test_missing_settings)]:
    try:
        fn()
        results["passed"] += 1
        print(f"ok {name}")
    except Exception as e:
        results["failed"] += 1
        print(f"FAILED {name}: {type(e).__name__}: {e}")
print(f"{results['passed']} passed, {results['failed']} failed")
sys.exit(1 if results["failed"] else 0)
