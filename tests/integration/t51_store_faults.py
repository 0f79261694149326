#!/usr/bin/env python3
"""Store faults: an unwritable database and a full disk give 503 with a JSON
error, /healthz keeps answering and reports the fault, and both recover by
themselves once the fault is gone.

Tests run as root in CI, where chmod does not stop writes, so the read-only
database is made with `chattr +i` on the database and its WAL (never on the
-shm file: SQLite maps it, and an immutable mapping kills the process with
SIGBUS). The full disk is a 2 MB tmpfs filled up by a filler file, and the
size-limited file an RLIMIT_FSIZE set on the running server. A part the
machine does not allow (not root, no chattr) is skipped with its reason; the
others still run, and then the test as a whole exits 77 (skipped: not all of
it ran) unless something failed."""
import json
import os
import shutil
import subprocess
import time

import lrtest
from lrtest import Server, check, finish, payload, sample, skip, tmpdir

skipped = []


def skip_part(why):
    print("SKIP " + why, flush=True)
    skipped.append(why)


def healthz(srv):
    st, h, body = srv.request("GET", "/healthz")
    try:
        doc = json.loads(body)
    except ValueError:
        doc = {}
    return st, doc


def expect_503(st, body, what):
    check(st == 503, "%s: 503 (got %d %r)" % (what, st, body[:200]))
    try:
        doc = json.loads(body)
        check(isinstance(doc.get("error"), str) and doc["error"], "%s: JSON error text" % what)
    except ValueError:
        check(False, "%s: body is not JSON: %r" % (what, body[:200]))


def wait_healthy(srv, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, doc = healthz(srv)
        if st == 200:
            return True
        time.sleep(0.2)
    return False


def big_payload(table, n=150):
    """Enough services that storing them needs fresh disk space."""
    running = [{"serviceName": "svc%03d" % i, "id": "c%03d-%s" % (i, "x" * 60),
                "ip": "10.1.%d.%d" % (i // 250, i % 250 + 1)} for i in range(n)]
    cands = [{"serviceName": "svc%03d" % i, "port": 8080, "configMode": "host",
              "predicate": "s%03d.%s.example.com" % (i, "y" * 60), "cookie": "SID"}
             for i in range(n)]
    return payload(table, running, cands)


def chattr_dir():
    """A fresh directory where chattr +i works (/tmp may be a tmpfs, which
    has no such attribute; the build directory usually is not), or None."""
    import tempfile
    for base in (None, os.getcwd()):
        try:
            d = tempfile.mkdtemp(prefix="lr-it-", dir=base)
        except OSError:
            continue
        probe = os.path.join(d, "probe")
        open(probe, "w").close()
        if subprocess.run(["chattr", "+i", probe], capture_output=True).returncode == 0:
            subprocess.run(["chattr", "-i", probe], capture_output=True)
            os.unlink(probe)
            return d
        os.unlink(probe)
        os.rmdir(d)
    return None


def read_only_part():
    d = chattr_dir()
    if d is None:
        skip_part("read-only part: chattr +i does not work here (needs root and "
                  "ext2/3/4, xfs or btrfs)")
        return
    db = os.path.join(d, "ro.db")
    files = [db, db + "-wal"]
    srv = Server("sqlite:" + db)
    try:
        st, h, body = srv.post(sample("single-candidate.json"))
        check(st == 200, "before the fault: 200")
        check(subprocess.run(["chattr", "+i"] + files, capture_output=True).returncode == 0,
              "chattr +i on the database and its WAL")
        t0 = time.time()
        st, h, body = srv.post(sample("data.json"))
        expect_503(st, body, "write to an immutable database")
        check(time.time() - t0 < 15, "503 in bounded time (%.1fs)" % (time.time() - t0))
        st, doc = healthz(srv)
        check(st == 503 and doc.get("status") == "unavailable" and doc.get("error"),
              "healthz reports the unwritable store: %d %r" % (st, doc))
        st, doc = healthz(srv)
        check(st == 503, "healthz keeps reporting it (%d %r)" % (st, doc))
        # A call that changes nothing needs no write and is still answered.
        st, h, body = srv.post(sample("single-candidate.json"))
        check(st == 200, "an unchanged call is answered while writes fail (%d %r)"
              % (st, body[:200]))
        st, h, body = srv.post(sample("data.json"))
        expect_503(st, body, "still unwritable")
    finally:
        subprocess.run(["chattr", "-i"] + files, capture_output=True)
    check(wait_healthy(srv), "healthz recovers by itself once the file is writable")
    st, h, body = srv.post(sample("data.json"), {"Accept": "application/json"})
    check(st == 200 and len(json.loads(body)["services"]) == 3,
          "writes work again (%d %r)" % (st, body[:200]))
    check(srv.stop() == 0, "clean stop")
    shutil.rmtree(d, ignore_errors=True)


def full_disk_part():
    d = tmpdir()
    mnt = os.path.join(d, "tiny")
    os.mkdir(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt],
                      capture_output=True).returncode:
        skip_part("full-disk part: cannot mount a tmpfs here (needs root)")
        os.rmdir(mnt)
        os.rmdir(d)
        return
    srv = None
    try:
        srv = Server("sqlite:" + os.path.join(mnt, "full.db"))
        st, h, body = srv.post(sample("single-candidate.json"))
        check(st == 200, "before the fault: 200")
        check(healthz(srv)[0] == 200, "healthz 200 before the fault")
        filler = os.path.join(mnt, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        for chunk in (65536, 4096, 512):
            try:
                while os.write(fd, b"\0" * chunk) == chunk:
                    pass
            except OSError:
                pass
        os.close(fd)
        st, doc = healthz(srv)
        check(st == 503 and "full" in doc.get("error", ""),
              "healthz reports the full disk: %d %r" % (st, doc))
        t0 = time.time()
        st, h, body = srv.post(big_payload("astro"))
        expect_503(st, body, "write to a full disk")
        check(time.time() - t0 < 15, "503 in bounded time (%.1fs)" % (time.time() - t0))
        st, h, body = srv.request("GET", "/healthz")
        check(st == 503, "healthz still answers, 503: %r" % body[:200])
        os.unlink(filler)
        check(wait_healthy(srv), "healthz recovers by itself once there is space")
        st, h, body = srv.post(big_payload("astro"), {"Accept": "application/json"})
        check(st == 200 and len(json.loads(body)["services"]) == 150,
              "writes work again (%d %r)" % (st, body[:200]))
        check(srv.stop() == 0, "clean stop")
        srv = None
    finally:
        if srv:
            srv.stop()
        subprocess.run(["umount", mnt], capture_output=True)


def file_size_limit_part():
    """RLIMIT_FSIZE lowered on the running server below the size its database
    already has: writes past it fail with EFBIG (SIGXFSZ is ignored, so the
    server lives) and /healthz says so; raising the limit lets it recover."""
    import resource
    d = tmpdir()
    srv = Server("sqlite:" + os.path.join(d, "fsize.db"))
    for i in range(3):
        st, h, body = srv.post(big_payload("tbl%d" % i))
        check(st == 200, "before the limit: 200 (%d)" % st)
    resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE, (64 * 1024, resource.RLIM_INFINITY))
    st, doc = healthz(srv)
    check(st == 503 and "file size limit" in doc.get("error", ""),
          "healthz reports the file size limit: %d %r" % (st, doc))
    st, h, body = srv.post(big_payload("tbl9"))
    expect_503(st, body, "a write past the file size limit")
    check(srv.proc.poll() is None, "the server survives SIGXFSZ")
    st, doc = healthz(srv)
    check(st == 503, "healthz still 503: %d %r" % (st, doc))
    resource.prlimit(srv.proc.pid, resource.RLIMIT_FSIZE,
                     (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    check(wait_healthy(srv), "healthz recovers once the limit is raised")
    st, h, body = srv.post(big_payload("tbl9"))
    check(st == 200, "writes work again (%d)" % st)
    check(srv.stop() == 0, "clean stop")


read_only_part()
full_disk_part()
file_size_limit_part()
if skipped and not lrtest._failures:
    print("%d passed, 0 failed" % lrtest._passes, flush=True)
    skip("; ".join(skipped))
finish()
