#!/usr/bin/env python3
"""The -shm file of a running server's SQLite database made immutable
(`chattr +i`): SQLite maps that file, and a store into a page written back
since then used to kill the server with SIGBUS. Now: 503 with a JSON error,
/healthz unavailable, the server stays up, and it answers 200 again once the
flag is gone. Needs root and a file system with the immutable attribute;
skipped (exit 77) otherwise. And the -shm file truncated under it: the
server stays up and answers 503."""
import json
import os
import subprocess
import tempfile

from lrtest import Server, check, payload, run_steps, skip, tmpdir

WORK = tmpdir()


def healthz(srv):
    st, _, body = srv.request("GET", "/healthz")
    try:
        return st, json.loads(body)
    except ValueError:
        return st, {}


def json_error(body):
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc.get("error") if isinstance(doc, dict) else None


def call(table, n):
    """A call with services s0..s(n-1): each n writes something new."""
    running = [{"serviceName": "s%d" % i, "id": "c%d" % i, "ip": "10.0.0.%d" % (i + 1)}
               for i in range(n)]
    cands = [{"serviceName": "s%d" % i, "port": 8080, "predicate": "s%d.example.com" % i,
              "containers": [{"id": "c%d" % i, "ip": "10.0.0.%d" % (i + 1)}]}
             for i in range(n)]
    return payload(table, running, cands)


def chattr_dir():
    for base in (WORK, os.getcwd()):
        try:
            d = tempfile.mkdtemp(prefix="lr-it-", dir=base)
        except OSError:
            continue
        probe = os.path.join(d, "probe")
        open(probe, "w").close()
        ok = subprocess.run(["chattr", "+i", probe], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["chattr", "-i", probe], capture_output=True)
        os.unlink(probe)
        if ok:
            return d
        os.rmdir(d)
    return None


def test_unwritable_shm():
    d = chattr_dir()
    if not d:
        skip("chattr +i does not work here (needs root and a file system "
             "with the immutable attribute)")
    db = os.path.join(d, "registry.db")
    shm = db + "-shm"
    srv = Server("sqlite:" + db)
    try:
        st, _, _ = srv.post(call("shm", 1))
        check(st == 200, "first call: 200")
        st, _, _ = srv.post(call("other", 1))
        check(st == 200, "a call on another table: 200")
        os.sync()  # written-back pages of the mapping are the ones that fault
        check(subprocess.run(["chattr", "+i", shm], capture_output=True).returncode == 0,
              "chattr +i on the -shm file")
        try:
            # Reads too: the server's memo holds only the last table's
            # version, so these must read the file, and a read stores into
            # the -shm (its read mark). A fault there would leave the
            # server unavailable until a restart, not 200 below.
            for what, (st, _, body) in (
                    ("a read of the first table", srv.request("GET", "/v1/tables/shm")),
                    ("an unchanged call on it", srv.post(call("shm", 1)))):
                check(st == 503 and bool(json_error(body)),
                      "%s with an immutable -shm: 503 with a JSON error (got %d %r)"
                      % (what, st, body[:200]))
            for n in (2, 3):
                st, _, body = srv.post(call("shm", n))
                check(st == 503, "call %d with an immutable -shm: 503 (got %d %r)"
                      % (n, st, body[:200]))
                check(bool(json_error(body)), "call %d: JSON error" % n)
            st, doc = healthz(srv)
            check(st == 503, "healthz with an immutable -shm: unavailable (got %d %r)" % (st, doc))
            check(srv.proc.poll() is None,
                  "the server survived (exit %r)" % srv.proc.poll())
        finally:
            subprocess.run(["chattr", "-i", shm], capture_output=True)
        st, _, body = srv.post(call("shm", 2))
        check(st == 200, "writable again: 200 (got %d %r)" % (st, body[:200]))
        check(healthz(srv)[0] == 200, "writable again: healthz ok")
    finally:
        subprocess.run(["chattr", "-i", shm], capture_output=True)
        srv.stop()


def test_truncated_shm():
    """The -shm file truncated under the server (by hand, or by a process
    that took it for unused): the page past the end faults on reads too.
    The server stays up and says unavailable instead of dying of SIGBUS."""
    db = os.path.join(WORK, "truncated.db")
    srv = Server("sqlite:" + db)
    try:
        st, _, _ = srv.post(call("trunc", 1))
        check(st == 200, "first call: 200")
        os.truncate(db + "-shm", 0)
        answers = [srv.post(call("trunc", n)) for n in (2, 3)]
        check(srv.proc.poll() is None, "the server survived (exit %r)" % srv.proc.poll())
        st, _, body = answers[-1]
        check(st == 503 and bool(json_error(body)),
              "a call after the truncation: 503 with a JSON error (got %d %r)"
              % (st, body[:200]))
        check(healthz(srv)[0] == 503, "healthz after the truncation: unavailable")
    finally:
        srv.stop()


if __name__ == "__main__":
    run_steps([test_truncated_shm, test_unwritable_shm])
