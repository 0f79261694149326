"""Small HTTP backends for traffic tests: each answers with its own name and,
like a Java app, sets a JSESSIONID cookie when the client has none."""
import http.server
import socketserver
import threading


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ("%s %s\n" % (self.server.name, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if "JSESSIONID=" not in (self.headers.get("Cookie") or ""):
            self.send_header("Set-Cookie", "JSESSIONID=s%s; Path=/" % self.server.name)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class Backend:
    def __init__(self, name, ip, port):
        self.name = name
        self.server = _Server((ip, port), _Handler)
        self.server.name = name
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
