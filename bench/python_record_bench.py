#!/usr/bin/python3
"""python_record_bench: what mongosup's pymongo listeners cost per operation, against pymongo without listeners, in the same run.

Usage: python_record_bench.py [BUILDDIR]   (default: ./build next to the source tree)

It starts the test peer (tests/peer/mongopeer.py), then measures:
  1. the record path alone: the listener calls one find_one makes (checkout
     started, checked out, command succeeded, checked in), with prepared
     events, ns per operation;
  2. find_one against the peer: a MongoClient without listeners (baseline),
     one with no-op listeners (pymongo's own event dispatch), the manager's
     client through a Database held as it is (mongosup's listeners: the
     plain path) and through the DatabaseProxy that get_database hands out
     (the gate and a cached lookup at each operation), interleaved rounds,
     median;
  3. the proxy's resolution alone: `db.c.find_one` looked up (not called)
     on the held Database, on the proxy, and as a request that takes
     get_client() first, interleaved rounds, median;
  4. one server selection of the manager's client with the wrapper that
     counts selection failures and through pymongo's own loop, same run.
"""

import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(SRC, "build"))
os.environ.setdefault("MONGOSUP_LIBRARY", os.path.join(BUILD, "lib", ".libs", "libmongosup.so.0"))
os.environ.setdefault("MONGOC_DISABLE_SHM", "1")
sys.path.insert(0, os.path.join(SRC, "python"))

import pymongo  # noqa: E402
from pymongo import monitoring  # noqa: E402
from pymongo.server_selectors import writable_server_selector  # noqa: E402

import mongosup  # noqa: E402
from mongosup.listeners import CommandRecorder, PoolRecorder  # noqa: E402

OPS = 3000
ROUNDS = 5
EVENTS = 200000


class Quiet(monitoring.CommandListener, monitoring.ConnectionPoolListener):
    """No-op listeners: what pymongo's dispatch costs by itself."""

    def started(self, e): pass
    def succeeded(self, e): pass
    def failed(self, e): pass
    def pool_created(self, e): pass
    def pool_cleared(self, e): pass
    def pool_closed(self, e): pass
    def connection_created(self, e): pass
    def connection_ready(self, e): pass
    def connection_closed(self, e): pass
    def connection_check_out_started(self, e): pass
    def connection_check_out_failed(self, e): pass
    def connection_checked_out(self, e): pass
    def connection_checked_in(self, e): pass


def start_peer():
    p = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "tests", "peer", "mongopeer.py"), "--mode",
                          "standalone"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = p.stdout.readline().decode()
    if not line.startswith("READY"):
        sys.exit("python_record_bench: the test peer did not start")
    return p, json.loads(line.split(" ", 1)[1])["ports"][0]


def per_op_us(db):
    t0 = time.perf_counter()
    for _ in range(OPS):
        db.c.find_one({"_id": 1})
    return (time.perf_counter() - t0) / OPS * 1e6


def record_path_ns(manager):
    """The four listener calls of one pooled find_one, with events prepared once."""
    client = manager.get_client("bench")
    recorder = manager._cluster("bench").recorder
    cmd, pool = CommandRecorder(recorder), PoolRecorder(recorder)
    addr = ("127.0.0.1", 1)
    started = monitoring.ConnectionCheckOutStartedEvent(addr)
    out = monitoring.ConnectionCheckedOutEvent(addr, 1)
    back = monitoring.ConnectionCheckedInEvent(addr, 1)
    done = monitoring.CommandSucceededEvent(datetime.timedelta(microseconds=250), {"ok": 1}, "find", 1, addr, 1)
    t0 = time.perf_counter()
    for _ in range(EVENTS):
        pool.connection_check_out_started(started)
        pool.connection_checked_out(out)
        cmd.succeeded(done)
        pool.connection_checked_in(back)
    took = (time.perf_counter() - t0) / EVENTS * 1e9
    del client
    return took


def lookup_ns(manager, db, proxy):
    """`db.c.find_one` looked up, not called: what a proxy adds to an operation by itself (a
    CollectionProxy, the gate, the cache), against pymongo's own Database, whose attribute access
    makes a Collection each time, and against taking get_client() per request."""
    def held():
        for _ in range(n):
            db.c.find_one

    def proxied():
        for _ in range(n):
            proxy.c.find_one

    def per_request():
        for _ in range(n):
            manager.get_client("bench").b.c.find_one
    n = EVENTS // 4
    times = {"held": [], "proxy": [], "per_request": []}
    for _ in range(3):
        for kind, fn in (("held", held), ("proxy", proxied), ("per_request", per_request)):
            t0 = time.perf_counter()
            fn()
            times[kind].append((time.perf_counter() - t0) / n * 1e9)
    return {k: statistics.median(v) for k, v in times.items()}


def selection_ns(manager):
    """One server selection of the manager's client (the peer is known: no wait), through the
    wrapper that counts selection failures and through pymongo's own loop, interleaved rounds."""
    topology = manager.get_client("bench")._topology
    wrapped = topology.__dict__["_select_servers_loop"]
    times = {"wrapped": [], "pymongo": []}
    for _ in range(3):
        for kind in ("wrapped", "pymongo"):
            if kind == "pymongo":
                del topology._select_servers_loop  # the class's method again
            t0 = time.perf_counter()
            for _ in range(EVENTS // 4):
                topology.select_server(writable_server_selector)
            times[kind].append((time.perf_counter() - t0) / (EVENTS // 4) * 1e9)
            topology._select_servers_loop = wrapped
    return {k: statistics.median(v) for k, v in times.items()}


def main():
    peer, port = start_peer()
    tmp = tempfile.mkdtemp()
    seg = "/msup-bench-py-%d" % os.getpid()
    conf = os.path.join(tmp, "bench.conf")
    with open(conf, "w") as f:
        f.write('segment = { name = "%s"; max_workers = 4; max_clusters = 2; };\n'
                'default_environment = "bench";\n'
                'environments = { bench = { clusters = { bench = { mongo_uri = "mongodb://127.0.0.1:%d/"; '
                'database_name = "b"; }; }; }; };\n' % (seg, port))
    try:
        manager = mongosup.ConnectionManager(conf)
        uri = "mongodb://127.0.0.1:%d/" % port
        plain = pymongo.MongoClient(uri)
        quiet = pymongo.MongoClient(uri, event_listeners=[Quiet()])
        proxy = manager.get_database("bench")
        with_listeners = mongosup.unwrap(proxy)  # the driver's Database, held: no gate per operation
        plain.b.c.insert_one({"_id": 1})
        for db in (plain.b, quiet.b, with_listeners, proxy):
            per_op_us(db)  # warm up: connections, server selection
        runs = {"plain": [], "quiet": [], "mongosup": [], "proxy": []}
        for _ in range(ROUNDS):
            runs["plain"].append(per_op_us(plain.b))
            runs["quiet"].append(per_op_us(quiet.b))
            runs["mongosup"].append(per_op_us(with_listeners))
            runs["proxy"].append(per_op_us(proxy))
        med = {k: statistics.median(v) for k, v in runs.items()}
        path_ns = statistics.median(record_path_ns(manager) for _ in range(3))
        look = lookup_ns(manager, with_listeners, proxy)
        del with_listeners
        sel = selection_ns(manager)
        print("## pymongo %s: find_one against the test peer (%d ops x %d interleaved rounds, median; "
              "load average %.1f on %d cores)" % (pymongo.version, OPS, ROUNDS, os.getloadavg()[0], os.cpu_count()))
        print()
        print("| client | us/op | vs baseline |")
        print("|---|---:|---:|")
        print("| baseline: MongoClient without listeners | %.1f | |" % med["plain"])
        print("| MongoClient with no-op listeners (pymongo's dispatch) | %.1f | %+.1f us |"
              % (med["quiet"], med["quiet"] - med["plain"]))
        print("| mongosup ConnectionManager client (its listeners) | %.1f | %+.1f us (%+.1f%%) |"
              % (med["mongosup"], med["mongosup"] - med["plain"], 100.0 * (med["mongosup"] / med["plain"] - 1)))
        print("| mongosup DatabaseProxy (get_database: gate + cached lookup per operation) | %.1f | %+.1f us "
              "(%+.1f us vs the held Database) |"
              % (med["proxy"], med["proxy"] - med["plain"], med["proxy"] - med["mongosup"]))
        print()
        print("proxy resolution alone (`db.c.find_one` looked up, not called; %d per round, median of 3 interleaved "
              "rounds): %.0f ns on the held Database (pymongo makes a Collection), %.0f ns on the proxy (%+.0f ns), "
              "%.0f ns taking get_client() first as a request would"
              % (EVENTS // 4, look["held"], look["proxy"], look["proxy"] - look["held"], look["per_request"]))
        print("record path alone (4 listener calls of one pooled find_one, %d ops, median of 3): %.0f ns/op"
              % (EVENTS, path_ns))
        print("server selection (%d per round, median of 3 interleaved rounds): %.0f ns with the wrapper that "
              "counts selection failures, %.0f ns through pymongo's loop alone (%+.0f ns)"
              % (EVENTS // 4, sel["wrapped"], sel["pymongo"], sel["wrapped"] - sel["pymongo"]))
        plain.close()
        quiet.close()
        manager.close()
    finally:
        peer.stdin.close()
        peer.wait(5)
        for name in (seg, seg + ".stats"):  # the control object and the stats object (layout 3 and later)
            try:
                os.unlink("/dev/shm" + name)
            except OSError:
                pass


if __name__ == "__main__":
    main()
