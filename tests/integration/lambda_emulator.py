"""A Lambda Runtime API emulator for the tests, written from AWS's documented
endpoints (2018-06-01): invocation/next, invocation/{id}/response,
invocation/{id}/error and init/error. It queues events, hands them to the
runtime one at a time with the documented headers, and records the answers
and every breach of the protocol it sees."""

import json
import os
import queue
import socket
import subprocess
import threading
import time
import uuid
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BASE = "/2018-06-01/runtime"
MAX_RESPONSE = 6 * 1024 * 1024  # Lambda's synchronous response limit
FUNCTION_ARN = "arn:aws:lambda:eu-west-1:123456789012:function:lambda-registry"


class Answer:
    """What the runtime posted for one invocation."""

    def __init__(self, kind, body, headers):
        self.kind = kind  # "response" or "error"
        self.body = body
        self.headers = headers
        self.received = time.monotonic()

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "Answer(%s, %r)" % (self.kind, self.body[:300])


class RuntimeAPI:
    def __init__(self):
        self.pending = queue.Queue()
        self.lock = threading.Condition()
        self.answers = {}  # request id -> Answer
        self.issued = {}  # request id -> headers sent with the event
        self.in_flight = None
        self.init_errors = []  # (headers, body)
        self.violations = []
        self.connections = 0
        self.resets = 0  # connections the runtime dropped mid-exchange
        self.nexts = 0
        self.closing = False
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # Headers and body go out in separate writes: without this,
                # Nagle and delayed ACKs add 40 ms to every exchange.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with api.lock:
                    api.connections += 1

            def handle(self):
                # A runtime that refuses an event over its cap drops the
                # connection mid-body; that is its answer, not a crash.
                try:
                    super().handle()
                except ConnectionResetError:
                    with api.lock:
                        api.resets += 1

            def log_message(self, *args):
                pass

            def send_json(self, code, doc):
                data = json.dumps(doc).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def read_body(self):
                n = int(self.headers.get("Content-Length", "0"))
                if self.headers.get("Transfer-Encoding"):
                    api.violation("chunked request body to %s" % self.path)
                return self.rfile.read(n)

            def do_GET(self):
                if self.path != BASE + "/invocation/next":
                    self.send_json(404, {"errorMessage": "no such endpoint",
                                         "errorType": "NotFound"})
                    return
                with api.lock:
                    api.nexts += 1
                    if api.in_flight is not None:
                        api.violation("next while %s is unanswered" % api.in_flight)
                while True:
                    if api.closing:
                        # The sandbox goes away: drop the connection unanswered.
                        self.close_connection = True
                        return
                    try:
                        item = api.pending.get(timeout=0.05)
                        break
                    except queue.Empty:
                        continue
                rid, event, headers = item
                with api.lock:
                    api.in_flight = rid
                    api.issued[rid] = headers
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(event)))
                self.end_headers()
                self.wfile.write(event)

            def do_POST(self):
                body = self.read_body()
                if self.path == BASE + "/init/error":
                    with api.lock:
                        api.init_errors.append((dict(self.headers), body))
                        api.lock.notify_all()
                    self.send_json(202, {"status": "OK"})
                    return
                parts = self.path[len(BASE):].split("/")
                # ["", "invocation", id, "response"|"error"]
                if (not self.path.startswith(BASE + "/invocation/") or len(parts) != 4
                        or parts[3] not in ("response", "error")):
                    self.send_json(404, {"errorMessage": "no such endpoint",
                                         "errorType": "NotFound"})
                    return
                rid, kind = parts[2], parts[3]
                with api.lock:
                    if rid not in api.issued:
                        api.violation("answer for unknown request id %r" % rid)
                        self.send_json(400, {"errorMessage": "unknown request id",
                                             "errorType": "InvalidRequestID"})
                        return
                    if rid in api.answers:
                        api.violation("second answer for %s" % rid)
                        self.send_json(400, {"errorMessage": "already answered",
                                             "errorType": "InvalidStateTransition"})
                        return
                    if kind == "response" and len(body) > MAX_RESPONSE:
                        self.send_json(413, {"errorMessage": "response too large",
                                             "errorType": "RequestEntityTooLarge"})
                        return
                    api.answers[rid] = Answer(kind, body, dict(self.headers))
                    if api.in_flight == rid:
                        api.in_flight = None
                    api.lock.notify_all()
                self.send_json(202, {"status": "OK"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return "127.0.0.1:%d" % self.server.server_address[1]

    def violation(self, what):
        self.violations.append(what)

    def submit(self, event, deadline_ms=None, trace=None):
        """Queue an event (bytes, str or JSON-able); return its request id."""
        if isinstance(event, (dict, list)):
            event = json.dumps(event)
        if isinstance(event, str):
            event = event.encode()
        rid = str(uuid.uuid4())
        if deadline_ms is None:
            deadline_ms = int(time.time() * 1000) + 30000
        headers = {
            "Lambda-Runtime-Aws-Request-Id": rid,
            "Lambda-Runtime-Deadline-Ms": str(deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": FUNCTION_ARN,
            "Lambda-Runtime-Trace-Id": trace or
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        }
        self.pending.put((rid, event, headers))
        return rid

    def wait(self, rid, timeout=20):
        end = time.monotonic() + timeout
        with self.lock:
            while rid not in self.answers:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no answer for %s" % rid)
                self.lock.wait(left)
            return self.answers[rid]

    def invoke(self, event, timeout=20, **kw):
        return self.wait(self.submit(event, **kw), timeout)

    def wait_init_error(self, timeout=20):
        end = time.monotonic() + timeout
        with self.lock:
            while not self.init_errors:
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no init error")
                self.lock.wait(left)
            return self.init_errors[0]

    def close(self):
        self.closing = True
        self.server.shutdown()
        self.server.server_close()


def rest_event(body, method="POST", path="/generate", resource="/generate",
               stage="prod", headers=None, base64=False):
    """An API Gateway REST API Lambda proxy integration event."""
    import base64 as b64
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"Content-Type": "application/json", "Host": "abc123.execute-api.eu-west-1.amazonaws.com"}
    hdrs.update(headers or {})
    return {
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": hdrs,
        "multiValueHeaders": {k: [v] for k, v in hdrs.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource,
            "httpMethod": method,
            "path": "/%s%s" % (stage, path),
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "identity": {"sourceIp": "192.0.2.1"},
        },
        "body": None if body is None else
        (b64.b64encode(body).decode() if base64 else body.decode()),
        "isBase64Encoded": base64,
    }


def http_event(body, method="POST", raw_path="/generate", stage="$default",
               headers=None, base64=False):
    """An API Gateway HTTP API event, payload format version 2.0."""
    import base64 as b64
    if isinstance(body, str):
        body = body.encode()
    hdrs = {"content-type": "application/json", "host": "abc123.execute-api.eu-west-1.amazonaws.com"}
    hdrs.update({k.lower(): v for k, v in (headers or {}).items()})
    ev = {
        "version": "2.0",
        "routeKey": "%s %s" % (method, raw_path),
        "rawPath": raw_path,
        "rawQueryString": "",
        "headers": hdrs,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1",
                     "sourceIp": "192.0.2.1", "userAgent": "curl/7.88.1"},
            "requestId": str(uuid.uuid4()),
            "stage": stage,
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": base64,
    }
    if body is not None:
        ev["body"] = b64.b64encode(body).decode() if base64 else body.decode()
    return ev


def runtime_command(tmp):
    """The command Lambda would run: the unpacked package's bootstrap, built
    from the release binary; under the sanitizers `$LR_BIN lambda` (the same
    code, with ASan). Returns (argv, packaged)."""
    bin_ = os.environ["LR_BIN"]
    if os.environ.get("LR_SANITIZED") == "1":
        return [bin_, "lambda"], False
    src = os.environ["LR_SOURCE_DIR"]
    lambda_bin = os.path.join(os.path.dirname(bin_), "lambda-registry-lambda")
    zip_path = os.path.join(tmp, "package.zip")
    subprocess.run([os.path.join(src, "scripts", "lambda-package.sh"), lambda_bin, zip_path],
                   check=True, stdout=subprocess.DEVNULL)
    pkg = os.path.join(tmp, "task")
    with zipfile.ZipFile(zip_path) as z:
        for info in z.infolist():
            z.extract(info, pkg)
            os.chmod(os.path.join(pkg, info.filename), info.external_attr >> 16 & 0o777)
    return [os.path.join(pkg, "bootstrap")], True
