#!/usr/bin/env python3
"""Concurrent calls on one table lose nothing and never fail; a kill -9 under
a write load leaves a sound database holding every call answered 200."""
import json
import os
import signal
import sqlite3
import threading
import time

from lrtest import SANITIZED, Server, check, finish, haproxy_check, payload, tmpdir

d = tmpdir()
db = os.path.join(d, "conc.db")

# Many clients each add their own services at once. Every call lists all
# containers of the test as running (so no call forgets another's service)
# and brings one candidate: a lost update would leave a service missing.
srv = Server("sqlite:" + db)
N_CLIENTS, PER_CLIENT = 8, 15 if not SANITIZED else 6
errors = []
lock = threading.Lock()
running = [{"serviceName": "svc-%d-%d" % (k, j), "id": "c", "ip": "10.%d.%d.1" % (k, j)}
           for k in range(N_CLIENTS) for j in range(PER_CLIENT)]


def client(k):
    for j in range(PER_CLIENT):
        name = "svc-%d-%d" % (k, j)
        ip = "10.%d.%d.1" % (k, j)
        body = payload("conc", running, [{"serviceName": name, "port": 80,
                                          "predicate": name + ".example.com",
                                          "containers": [{"id": "c", "ip": ip}]}])
        try:
            st, h, resp = srv.post(body)
        except Exception as e:  # noqa: BLE001 - any failure is a test failure
            st, resp = 0, str(e).encode()
        if st != 200 or ("\nbackend %s\n" % name).encode() not in resp:
            with lock:
                errors.append((st, resp[:200]))


threads = [threading.Thread(target=client, args=(k,)) for k in range(N_CLIENTS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
check(not errors, "no failed call: %r" % errors[:3])
st, h, body = srv.post(payload("conc", running), {"Accept": "application/json"})
doc = json.loads(body)
names = sorted(s["serviceName"] for s in doc["services"])
check(len(names) == N_CLIENTS * PER_CLIENT, "every service stored (%d of %d)" %
      (len(names), N_CLIENTS * PER_CLIENT))
# The plain answer: a self-contained config (the JSON one names map files).
st, h, cfg = srv.post(payload("conc", running))
ok, out = haproxy_check(cfg)
check(ok, "final config valid: " + out)
check(srv.stop() == 0, "clean stop")

# kill -9 under write load: every call answered 200 is in the database, and
# the database passes integrity_check.
db2 = os.path.join(d, "kill.db")
srv = Server("sqlite:" + db2)
acked = set()
stop = threading.Event()


def writer(k):
    i = 0
    while not stop.is_set():
        name = "k%d-%d" % (k, i)
        # Each call keeps only its own new service alive plus the previous
        # acked ones of this writer: the table keeps changing on every call.
        with lock:
            mine = sorted(x for x in acked if x.startswith("k%d-" % k))
        run = [{"serviceName": x, "id": "c", "ip": "10.0.0.1"} for x in mine + [name]]
        body = payload("kill%d" % k, run, [{"serviceName": name, "port": 80,
                                            "predicate": "h.example.com",
                                            "containers": [{"id": "c", "ip": "10.0.0.1"}]}])
        try:
            st, h, resp = srv.post(body)
        except Exception:  # noqa: BLE001 - the server was killed mid-call
            return
        if st == 200:
            with lock:
                acked.add(name)
        i += 1


threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
for t in threads:
    t.start()
time.sleep(1.5)
srv.proc.send_signal(signal.SIGKILL)
srv.proc.wait()
stop.set()
for t in threads:
    t.join()
check(len(acked) > 20, "load wrote something before the kill (%d calls)" % len(acked))
conn = sqlite3.connect(db2)
check(conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok", "integrity_check ok")
stored = set()
for (tbl, name) in conn.execute("SELECT tbl, name FROM services"):
    stored.add(name)
missing = sorted(acked - stored)
check(not missing, "every acknowledged call is stored; missing %r" % missing[:5])
conn.close()

finish()
