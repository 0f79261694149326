#!/usr/bin/env python3
"""The PostgreSQL store end to end: two `serve` processes on one database with
8 writers each, on a shared table and on a table of their own: no lost update,
every call 200, no stale answer from either process's cache. Faults: the
server stopped under load (503 within the budget, recovery without a
restart), the server frozen by SIGSTOP (503 at the budget, new connections
included), the registry's connections terminated (the next call reconnects),
a version row held FOR UPDATE by another session (503 at the budget, other
tables unaffected, readers not blocked). Also: ?schema=, a multi-service call
refused half-way leaves nothing, service settings stored by one process and
rendered by another, concurrent schema creation, NOTIFY, and no password in
messages.

Re-runs itself under tests/postgres/with-postgres.sh, which starts a private
cluster and exports LR_TEST_PG and LR_TEST_PG_CTL."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

SRC = os.environ.get("LR_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAUNCH = os.path.join(SRC, "tests", "postgres", "with-postgres.sh")
if not os.environ.get("LR_TEST_PG_CTL"):
    os.execv(LAUNCH, [LAUNCH, sys.executable, os.path.abspath(__file__)])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from lrtest import SANITIZED, Server, check, payload, run_cli, run_steps  # noqa: E402

PG = os.environ["LR_TEST_PG"]
PG_CTL = os.environ["LR_TEST_PG_CTL"]
PSQL = os.path.join(os.environ.get("LR_TEST_PG_BIN", ""), "psql")
if not os.path.exists(PSQL):
    PSQL = "psql"
STORE = "postgres:" + PG
BUDGET = 2.0  # LAMBDA_REGISTRY_STORE_TIMEOUT of the fault parts
SLACK = 1.5 if not SANITIZED else 3.0
servers = []


def serve(store=STORE, budget=None, threads=8):
    env = {"LAMBDA_REGISTRY_STORE_TIMEOUT": str(budget)} if budget else None
    srv = Server(store, ["--threads", str(threads)], env=env)
    servers.append(srv)
    return srv


def psql(sql):
    out = subprocess.run([PSQL, "-X", "-At", "-v", "ON_ERROR_STOP=1", PG, "-c", sql],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def svc(name, ip):
    return {"serviceName": name, "port": 80, "predicate": name + ".example.com",
            "containers": [{"id": "c", "ip": ip}]}


def timed_post(srv, body):
    t0 = time.monotonic()
    try:
        st, h, resp = srv.post(body)
    except Exception as e:  # noqa: BLE001 - a dropped connection is a failure
        st, resp = 0, str(e).encode()
    return st, resp, time.monotonic() - t0


def backends(resp):
    return set(line[8:] for line in resp.decode(errors="replace").split("\n")
               if line.startswith("backend "))


def two_instances():
    """16 writers on two processes: every call 200, each answer holds every
    service acknowledged before the call started (whichever process did)."""
    a, b = serve(), serve()
    per = 12 if not SANITIZED else 4
    tables = {"pg-shared": [], "pg-own-0": [], "pg-own-1": []}
    for k in range(16):
        for j in range(per):
            own = "pg-own-%d" % (k // 8)
            tables["pg-shared"].append("s%d-%d" % (k, j))
            tables[own].append("o%d-%d" % (k, j))
    ip = {n: "10.%d.%d.%d" % (i // 62500 % 250, i // 250 % 250, i % 250 + 1)
          for i, n in enumerate(sorted(sum(tables.values(), [])))}
    running = {t: [{"serviceName": n, "id": "c", "ip": ip[n]} for n in names]
               for t, names in tables.items()}
    acked = {t: set() for t in tables}
    lock = threading.Lock()
    errors, stale = [], []

    def writer(k):
        srv = a if k < 8 else b
        own = "pg-own-%d" % (k // 8)
        for j in range(per):
            for table, name in (("pg-shared", "s%d-%d" % (k, j)), (own, "o%d-%d" % (k, j))):
                with lock:
                    before = set(acked[table])
                st, resp, _ = timed_post(srv, payload(table, running[table],
                                                      [svc(name, ip[name])]))
                if st != 200:
                    with lock:
                        errors.append((table, name, st, resp[:200]))
                    continue
                seen = backends(resp)
                with lock:
                    acked[table].add(name)
                    if name not in seen or not before <= seen:
                        stale.append((table, name, sorted(before - seen)[:3]))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check(not errors, "every call 200: %d failed, %r" % (len(errors), errors[:3]))
    check(not stale, "no answer missed an acknowledged service: %r" % stale[:3])
    for table, names in tables.items():
        for srv, which in ((a, "A"), (b, "B")):
            st, h, resp = srv.post(payload(table, running[table]))
            got = backends(resp)
            check(st == 200 and got == set(names),
                  "%s on %s: all %d services (got %d, status %d)"
                  % (table, which, len(names), len(got), st))
    versions = dict(line.split("|") for line in psql(
        "SELECT name, version FROM lambda_registry.tables").split("\n"))
    # The shared table was written by all 16 writers; no call was merged
    # into another's, so each added service is one committed version.
    check(int(versions["pg-shared"]) == len(tables["pg-shared"]),
          "one version per acknowledged write on the shared table (%s, %d)"
          % (versions["pg-shared"], len(tables["pg-shared"])))
    for srv in (a, b):
        check(srv.stop() == 0, "clean stop")


def locked_row():
    """Another session holds pg-locked's version row FOR UPDATE: a write there
    is 503 at the budget, an unchanged read is answered, other tables are
    unaffected, and the write works once the lock is gone."""
    srv, reader = serve(budget=BUDGET), serve(budget=BUDGET, threads=2)
    body = payload("pg-locked", [{"serviceName": "x", "id": "c", "ip": "10.9.0.1"}],
                   [svc("x", "10.9.0.1")])
    st, _, _ = timed_post(srv, body)
    check(st == 200, "first write on pg-locked (%d)" % st)
    holder = subprocess.Popen([PSQL, "-X", "-At", PG], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    holder.stdin.write("BEGIN;\nSELECT version FROM lambda_registry.tables "
                       "WHERE name = 'pg-locked' FOR UPDATE;\n\\echo locked\n")
    holder.stdin.flush()
    lines = [holder.stdout.readline().strip() for _ in range(3)]
    check(lines[-1] == "locked", "psql holds the row lock: %r" % lines)
    result = {}

    def blocked_write():
        result["w"] = timed_post(srv, payload(
            "pg-locked", [{"serviceName": "x", "id": "c", "ip": "10.9.0.1"},
                          {"serviceName": "y", "id": "c", "ip": "10.9.0.2"}],
            [svc("y", "10.9.0.2")]))

    t = threading.Thread(target=blocked_write)
    t.start()
    time.sleep(0.2)
    others = [timed_post(srv, payload("pg-free-%d" % i, [{"serviceName": "z", "id": "c",
                                                           "ip": "10.9.1.1"}],
                                      [svc("z", "10.9.1.1")])) for i in range(5)]
    check(all(st == 200 for st, _, _ in others),
          "writes to other tables 200 meanwhile: %r" % [o[0] for o in others])
    slowest = max(d for _, _, d in others)
    check(slowest < BUDGET / 2, "and not delayed by the lock (slowest %.3f s)" % slowest)
    # A second process (this one's next call on the table would queue behind
    # the blocked one, and start as a writer since the table's last call
    # wrote): its read never waits for the row lock.
    st, resp, d = timed_post(reader, payload("pg-locked", [{"serviceName": "x", "id": "c",
                                                            "ip": "10.9.0.1"}]))
    check(st == 200 and backends(resp) == {"x"} and d < BUDGET / 2,
          "an unchanged call on the locked table is answered (%d in %.3f s)" % (st, d))
    t.join()
    st, resp, d = result["w"]
    print("locked write: %d in %.3f s: %s" % (st, d, resp[:160].decode(errors="replace")))
    check(st == 503, "write on the locked table: 503 (got %d)" % st)
    check(BUDGET - 0.3 <= d <= BUDGET + SLACK, "at the %.1f s budget (%.3f s)" % (BUDGET, d))
    try:
        msg = json.loads(resp)["error"]
    except (ValueError, KeyError):
        msg = ""
    check("budget" in msg or "locked" in msg, "the error says why: %r" % msg)
    holder.stdin.write("ROLLBACK;\n\\q\n")
    holder.stdin.flush()
    holder.wait(10)
    st, resp, d = timed_post(srv, payload(
        "pg-locked", [{"serviceName": "x", "id": "c", "ip": "10.9.0.1"},
                      {"serviceName": "y", "id": "c", "ip": "10.9.0.2"}],
        [svc("y", "10.9.0.2")]))
    check(st == 200 and backends(resp) == {"x", "y"},
          "the write works once the lock is gone (%d)" % st)
    st, resp, d = timed_post(reader, payload("pg-locked", [
        {"serviceName": "x", "id": "c", "ip": "10.9.0.1"},
        {"serviceName": "y", "id": "c", "ip": "10.9.0.2"}]))
    check(st == 200 and backends(resp) == {"x", "y"},
          "and the other process sees it at once (%d)" % st)
    check(srv.stop() == 0 and reader.stop() == 0, "clean stop")


def terminated():
    """pg_terminate_backend of every registry connection: idle pooled
    connections are replaced before their next call (no failed call); a call
    in flight at that moment is the one that fails."""
    srv = serve(budget=BUDGET, threads=4)
    run = [{"serviceName": "t", "id": "c", "ip": "10.8.0.1"}]
    body = payload("pg-term", run, [svc("t", "10.8.0.1")])
    # Several handles in the pool: parallel calls open one each.
    threads = [threading.Thread(target=timed_post, args=(srv, body)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = 0
    for round_ in range(3):
        n = int(psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE application_name = 'lambda-registry'"))
        check(n >= 1, "terminated the registry's connections (%d)" % n)
        time.sleep(0.1)
        for i in range(4):
            st, resp, _ = timed_post(srv, payload("pg-term", run) if i % 2 else body)
            if st != 200:
                failed += 1
                print("failed after terminate round %d: %d %r" % (round_, st, resp[:200]))
    check(failed == 0, "no call failed after idle connections were terminated (%d)" % failed)

    # A call waiting for a row lock when its connection is terminated.
    holder = subprocess.Popen([PSQL, "-X", "-At", PG], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    holder.stdin.write("BEGIN;\nSELECT version FROM lambda_registry.tables "
                       "WHERE name = 'pg-term' FOR UPDATE;\n\\echo locked\n")
    holder.stdin.flush()
    lines = [holder.stdout.readline().strip() for _ in range(3)]
    check(lines[-1] == "locked", "psql holds the row lock: %r" % lines)
    result = {}
    run2 = run + [{"serviceName": "u", "id": "c", "ip": "10.8.0.2"}]
    t = threading.Thread(target=lambda: result.update(w=timed_post(
        srv, payload("pg-term", run2, [svc("u", "10.8.0.2")]))))
    t.start()
    time.sleep(0.5)
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
         "WHERE application_name = 'lambda-registry'")
    t.join()
    holder.stdin.write("ROLLBACK;\n\\q\n")
    holder.stdin.flush()
    holder.wait(10)
    st, resp, d = result["w"]
    print("call in flight at the terminate: %d in %.3f s: %s"
          % (st, d, resp[:160].decode(errors="replace")))
    check(st == 503, "the call in flight is the failed one: 503 (%d)" % st)
    st, resp, _ = timed_post(srv, payload("pg-term", run2, [svc("u", "10.8.0.2")]))
    check(st == 200 and backends(resp) == {"t", "u"}, "the next call reconnects (%d)" % st)
    check(srv.stop() == 0, "clean stop")


def stopped():
    """The cluster stopped under load: 503 within the budget, /healthz 503;
    started again: calls and /healthz recover without restarting serve."""
    srv = serve(budget=BUDGET, threads=4)
    stop = threading.Event()
    lock = threading.Lock()
    calls = []

    def writer(k):
        i = 0
        while not stop.is_set():
            name = "p%d-%d" % (k, i)
            st, resp, d = timed_post(srv, payload(
                "pg-stop-%d" % k, [{"serviceName": name, "id": "c", "ip": "10.7.0.1"}],
                [svc(name, "10.7.0.1")]))
            with lock:
                calls.append((time.monotonic(), st, d))
            i += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    t_stop = time.monotonic()
    subprocess.run([PG_CTL, "stop"], check=True, timeout=60)
    t_down = time.monotonic()
    time.sleep(2 * BUDGET)
    st, h, body = srv.request("GET", "/healthz")
    check(st == 503, "healthz 503 while PostgreSQL is down (%d %r)" % (st, body[:160]))
    t_start = time.monotonic()
    subprocess.run([PG_CTL, "start"], check=True, timeout=60)
    t_up = time.monotonic()
    time.sleep(2.0)
    stop.set()
    for t in threads:
        t.join()
    during = [c for c in calls if t_down < c[0] - c[2] and c[0] < t_start]
    after = [c for c in calls if c[0] - c[2] > t_up + 0.5]
    check(len(during) > 0 and all(st == 503 for _, st, _ in during),
          "calls while down are 503: %r" % sorted(set(st for _, st, _ in during)))
    worst = max([d for _, _, d in during] or [0])
    check(worst <= BUDGET + SLACK, "within the budget (slowest %.3f s)" % worst)
    check(len(after) > 0 and all(st == 200 for _, st, _ in after),
          "calls after the restart are 200: %r" % sorted(set(st for _, st, _ in after)))
    print("stopped: %d calls while down (slowest %.3f s), %d after" %
          (len(during), worst, len(after)))
    ok = False
    for _ in range(50):
        if srv.request("GET", "/healthz")[0] == 200:
            ok = True
            break
        time.sleep(0.1)
    check(ok, "healthz recovers by itself")
    check(srv.proc.poll() is None, "the same serve process throughout")
    check(srv.stop() == 0, "clean stop")


def cluster_pids():
    """The postmaster and its children (the cluster of with-postgres.sh)."""
    with open(os.path.join(os.environ["LR_TEST_PG_DIR"], "data", "postmaster.pid")) as f:
        master = int(f.readline())
    pids = [master]
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return pids


def frozen():
    """A server that stops answering (SIGSTOP: sockets open, nothing said):
    calls, new connections included, are 503 at the budget; after SIGCONT
    they work again without a restart."""
    srv = serve(budget=BUDGET, threads=4)
    run = [{"serviceName": "f", "id": "c", "ip": "10.3.0.1"}]
    st, _, _ = timed_post(srv, payload("pg-frozen", run, [svc("f", "10.3.0.1")]))
    check(st == 200, "a call before (%d)" % st)
    pids = cluster_pids()
    results = []

    def call(k):
        name = "g%d" % k
        results.append(timed_post(srv, payload(
            "pg-frozen-%d" % k, [{"serviceName": name, "id": "c", "ip": "10.3.1.1"}],
            [svc(name, "10.3.1.1")])))

    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        # One after the other (the HTTP server may queue a connection
        # behind a busy worker thread): the first on the pooled connection,
        # the others on new ones.
        for k in range(3):
            call(k)
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    codes = sorted(st for st, _, _ in results)
    durations = [d for _, _, d in results]
    check(codes == [503] * 3, "calls while frozen: 503 (%r)" % codes)
    check(all(BUDGET - 0.3 <= d <= BUDGET + SLACK for d in durations),
          "each at the %.1f s budget (%s)" % (BUDGET, ", ".join("%.2f" % d for d in durations)))
    for st, resp, d in sorted(results, key=lambda r: r[2]):
        print("frozen: %d in %.2f s: %s" % (st, d, resp[:160].decode(errors="replace")))
    ok = None
    for _ in range(50):
        st, _, _ = timed_post(srv, payload("pg-frozen", run, [svc("f", "10.3.0.1")]))
        if st == 200:
            ok = True
            break
        time.sleep(0.1)
    check(ok, "calls work again after SIGCONT")
    check(srv.stop() == 0, "clean stop")


def schema_param():
    """?schema= and schema= choose the schema; it is created on first use."""
    uri_store = "postgres:postgresql:///postgres?host=%s&user=lrtest&schema=lr_other" % (
        os.environ["LR_TEST_PG_DIR"])
    srv = serve(store=uri_store, threads=2)
    st, _, _ = timed_post(srv, payload("pg-schema", [{"serviceName": "q", "id": "c",
                                                       "ip": "10.6.0.1"}],
                                       [svc("q", "10.6.0.1")]))
    check(st == 200, "a call through a URI with ?schema= (%d)" % st)
    check(psql("SELECT count(*) FROM lr_other.services WHERE tbl = 'pg-schema'") == "1",
          "the service is in schema lr_other")
    check(psql("SELECT value FROM lr_other.meta WHERE key = 'schema_version'") == "3",
          "with a schema version")
    check(srv.stop() == 0, "clean stop")
    srv = serve(store=STORE + " schema=lr_other", threads=2)
    st, _, resp = srv.request("POST", "/generate", payload("pg-schema", [
        {"serviceName": "q", "id": "c", "ip": "10.6.0.1"}]))
    check(st == 200 and b"backend q" in resp, "key/value schema= reads the same (%d)" % st)
    check(srv.stop() == 0, "clean stop")


def all_or_nothing():
    """A call that removes one service and adds three, the last of which the
    database refuses (a trigger): 503, nothing of it stored, the version as it
    was; without the trigger the same call applies in full."""
    srv = serve(threads=2)
    names = ["aa", "bb", "poison"]
    run = [{"serviceName": n, "id": "c", "ip": "10.4.0.%d" % (i + 1)}
           for i, n in enumerate(names)]
    body = payload("pg-atomic", run, [svc(n, "10.4.0.%d" % (i + 1))
                                      for i, n in enumerate(names)])
    st, _, _ = timed_post(srv, payload("pg-atomic", [], [svc("zz", "10.4.0.9")]))
    version = psql("SELECT version FROM lambda_registry.tables WHERE name = 'pg-atomic'")
    psql("CREATE FUNCTION lambda_registry.t75_poison() RETURNS trigger LANGUAGE plpgsql "
         "AS $$ BEGIN IF NEW.name = 'poison' THEN RAISE EXCEPTION 't75 refuses %', "
         "NEW.name; END IF; RETURN NEW; END $$;"
         "CREATE TRIGGER t75_poison BEFORE INSERT OR UPDATE ON lambda_registry.services "
         "FOR EACH ROW EXECUTE FUNCTION lambda_registry.t75_poison()")
    try:
        st, resp, _ = timed_post(srv, body)
        check(st == 503 and b"t75 refuses" in resp, "refused call: 503 (%d %r)" % (st, resp[:160]))
        # The call also removes zz (not running): that stays undone too.
        check(psql("SELECT string_agg(name, ',') FROM lambda_registry.services "
                   "WHERE tbl = 'pg-atomic'") == "zz",
              "none of its changes stored: only zz, as before")
        check(psql("SELECT version FROM lambda_registry.tables WHERE name = 'pg-atomic'")
              == version, "the version as it was (%s)" % version)
    finally:
        psql("DROP TRIGGER t75_poison ON lambda_registry.services;"
             "DROP FUNCTION lambda_registry.t75_poison()")
    st, resp, _ = timed_post(srv, body)
    check(st == 200 and backends(resp) == set(names), "then all three (%d)" % st)
    check(srv.stop() == 0, "clean stop")


def service_options():
    """Service settings and weights put through one process are stored in the
    options column and rendered by another; a running-only call keeps them,
    and the candidate without them puts the defaults back (NULL)."""
    a, b = serve(threads=2), serve(threads=2)
    cand = {"serviceName": "opt", "port": 80, "predicate": "opt.example.com",
            "balance": "leastconn", "timeoutServer": "10s",
            "healthCheck": {"path": "/health", "expectStatus": 204},
            "containers": [{"id": "c1", "ip": "10.7.0.1", "weight": 3},
                           {"id": "c2", "ip": "10.7.0.2"}]}
    running = [{"serviceName": "opt", "id": c["id"], "ip": c["ip"]}
               for c in cand["containers"]]
    st, resp, _ = timed_post(a, payload("pg-opts", running, [cand]))
    check(st == 200 and b"    balance leastconn\n" in resp, "options put (%d)" % st)
    stored = psql("SELECT options FROM lambda_registry.services WHERE tbl = 'pg-opts'")
    check('"balance":"leastconn"' in stored and '"c1":3' in stored,
          "the options column holds them: %r" % stored)
    st, resp2, _ = timed_post(b, payload("pg-opts", running))
    check(st == 200 and resp2 == resp, "the other process renders the same (%d)" % st)
    for line in (b"    timeout server 10s\n", b"    http-check expect status 204\n",
                 b" weight 3"):
        check(line in resp2, "and has %r" % line)
    plain = dict((k, v) for k, v in cand.items()
                 if k not in ("balance", "timeoutServer", "healthCheck"))
    plain["containers"] = [{"id": c["id"], "ip": c["ip"]} for c in cand["containers"]]
    st, resp3, _ = timed_post(b, payload("pg-opts", running, [plain]))
    check(st == 200 and b"balance leastconn" not in resp3, "defaults again (%d)" % st)
    check(psql("SELECT options IS NULL FROM lambda_registry.services "
               "WHERE tbl = 'pg-opts'") == "t", "options NULL for the defaults")
    check(a.stop() == 0 and b.stop() == 0, "clean stops")


def concurrent_setup():
    """Eight processes opening a fresh schema at once: all succeed, one
    schema version row."""
    spec = STORE + " schema=lr_race"
    procs = [subprocess.Popen([os.environ["LR_BIN"], "dump", "--store", spec, "pg-race"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(8)]
    codes = [(p.wait(60), p.stderr.read().decode(errors="replace")[:200]) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    check(all(c == 0 for c, _ in codes), "all eight opened the store: %r" % codes)
    check(psql("SELECT count(*) FROM lr_race.meta WHERE key = 'schema_version'") == "1",
          "one schema version row")


def notify():
    """A committed write sends NOTIFY lambda_registry with the table's name;
    an unchanged call sends none."""
    srv = serve(threads=2)
    listener = subprocess.Popen([PSQL, "-X", "-At", PG], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    listener.stdin.write("LISTEN lambda_registry;\n\\echo listening\n")
    listener.stdin.flush()
    lines = [listener.stdout.readline().strip() for _ in range(2)]
    check(lines[-1] == "listening", "psql listens: %r" % lines)
    body = payload("pg-notify", [{"serviceName": "n", "id": "c", "ip": "10.5.0.1"}],
                   [svc("n", "10.5.0.1")])
    st1, _, _ = timed_post(srv, body)
    st2, _, _ = timed_post(srv, body)
    time.sleep(0.2)
    out, _ = listener.communicate("SELECT 1;\n\\q\n", timeout=30)
    got = [line for line in out.split("\n") if "notification" in line]
    check(st1 == 200 and st2 == 200, "both calls 200 (%d %d)" % (st1, st2))
    check(len(got) == 1 and '"lambda_registry"' in got[0] and '"pg-notify"' in got[0],
          "one notification, with the table's name: %r" % got)
    check(srv.stop() == 0, "clean stop")


def watch_across_instances():
    """A watcher on instance A is woken by a write on instance B, and A
    heard of it through LISTEN (counted in /healthz as store_hints)."""
    a, b = serve(threads=2), serve(threads=2)
    body = payload("pg-watch", [{"serviceName": "w", "id": "c", "ip": "10.6.0.1"}],
                   [svc("w", "10.6.0.1")])
    st, h, _ = b.post(body)
    idx = int(h["x-registry-index"])
    hints0 = json.loads(a.request("GET", "/healthz")[2])["store_hints"]
    got = {}

    def watch():
        got["r"] = a.request("GET", "/v1/tables/pg-watch/config?index=%d&wait=60s" % idx, timeout=120)
    th = threading.Thread(target=watch)
    th.start()
    t0 = time.time()
    while json.loads(a.request("GET", "/healthz")[2])["watching"] != 1 and time.time() - t0 < 30:
        time.sleep(0.02)
    t0 = time.time()
    st, h, posted = b.post(payload("pg-watch", [{"serviceName": "w", "id": "c", "ip": "10.6.0.1"},
                                                {"serviceName": "w", "id": "d", "ip": "10.6.0.2"}]))
    th.join(90)
    secs = time.time() - t0
    st2, h2, body2 = got.get("r", (0, {}, b""))
    check(st == 200 and st2 == 200 and body2 == posted and int(h2["x-registry-index"]) > idx,
          "watcher on A woken by B's write with B's config (%d, %.3f s)" % (st2, secs))
    print("woken %.3f s after B's write started" % secs, flush=True)
    hints1 = json.loads(a.request("GET", "/healthz")[2])["store_hints"]
    check(hints1 > hints0, "A heard B's commit through LISTEN (%d -> %d)" % (hints0, hints1))
    # a terminated listener reconnects and listens again
    psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'")
    t0 = time.time()
    while time.time() - t0 < 30:
        if json.loads(a.request("GET", "/healthz")[2])["store_hints"] > hints1:
            break
        time.sleep(0.1)
    hints2 = json.loads(a.request("GET", "/healthz")[2])["store_hints"]
    b.post(payload("pg-watch", [{"serviceName": "w", "id": "c", "ip": "10.6.0.1"}]))
    t0 = time.time()
    while time.time() - t0 < 30:
        if json.loads(a.request("GET", "/healthz")[2])["store_hints"] > hints2:
            break
        time.sleep(0.1)
    check(json.loads(a.request("GET", "/healthz")[2])["store_hints"] > hints2,
          "after its connection was terminated, A listens again")
    check(a.stop() == 0 and b.stop() == 0, "clean stops")


def bad_specs():
    """A malformed schema is a usage error; an unreachable server is a store
    error; neither message shows a password."""
    p = run_cli(["dump", "--store", STORE.replace("user=", "password=sekrit user=") +
                 " schema=Bad-Name", "pg-x"])
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 2 and "schema" in err, "bad schema: exit 2 (%d %r)" % (p.returncode, err))
    check("sekrit" not in err, "no password in the message: %r" % err)
    p = run_cli(["dump", "--store", "nosuch:password=sekrit", "pg-x"])
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 2 and "sekrit" not in err, "unknown store: exit 2, no password: %r" % err)
    p = run_cli(["dump", "--store", "postgres:postgresql://lrtest:sekrit@/postgres?host=/nonexistent"
                 "&password=sekrit2", "pg-x"])
    err = p.stderr.decode(errors="replace")
    check(p.returncode == 3 and "postgres: connecting" in err,
          "unreachable: exit 3 (%d %r)" % (p.returncode, err))
    check("sekrit" not in err, "no password in the message: %r" % err)
    p = run_cli(["dump", "--store", STORE, "pg-schema"])
    check(p.returncode == 0 and json.loads(p.stdout)["services"] == [],
          "dump of a table of another schema: empty (%d)" % p.returncode)


def cleanup():
    for srv in servers:
        if srv.proc.poll() is None:
            srv.stop()


run_steps([two_instances, locked_row, terminated, stopped, frozen, schema_param, all_or_nothing,
           service_options, concurrent_setup, notify, watch_across_instances, bad_specs],
          cleanup)
