"""test_motor: MotorConnectionManager in forked asyncio processes: records exactly what each one sent, follows reloads, module globals included."""

import json
import os
import select
import subprocess
import time

import pytest

from conftest import PACKAGE, PYTHON, SLOW, env_for_children, run_python, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))

pytest.importorskip("motor")

PROGRAM = r"""
import asyncio, os, sys
import mongosup
from mongosup import MotorConnectionManager

manager = MotorConnectionManager(os.environ["CONF"])   # built in the parent, used only after fork
N = int(os.environ["N"])

async def work(tag):
    db = await manager.get_database("users")
    for i in range(N):
        await db.items.insert_one({"tag": tag, "i": i})
    for i in range(N // 2):
        assert (await db.items.find_one({"tag": tag, "i": i}))["i"] == i
    await manager.run("users", lambda d: d.items.insert_one({"tag": tag, "run": 1}))
    # The same listeners as the sync manager's: the client is Motor's.
    assert type(manager.get_client("users")).__name__ == "AsyncIOMotorClient"
    return manager.worker_slot()

children = []
for k in range(3):
    pid = os.fork()
    if pid == 0:
        slot = asyncio.new_event_loop().run_until_complete(work("p%d" % k))
        manager.close()
        os._exit(0 if slot >= 0 else 3)
    children.append(pid)
codes = [os.waitpid(p, 0)[1] for p in children]
print(codes)
sys.exit(0 if all(c == 0 for c in codes) else 1)
"""


def test_motor_in_forked_processes(make_setup):
    s = make_setup("motor")
    run_python(PROGRAM, env=env_for_children(CONF=s.path, N="20"), timeout=90)
    c = s.cluster()
    assert c["ops"]["write"] == 3 * 21
    assert c["ops"]["read"] == 3 * 10
    assert c["failures"]["total"] == 0
    assert s.workers() == {}  # each process freed its own slot at exit (layout 3)
    assert c["pool"]["in_use"] == 0


def test_motor_reload_rebuilds_once_nothing_holds_the_old_client(make_setup):
    """A reload reaches a Motor manager as a pymongo one; the old AsyncIOMotorClient is closed only
    once no Motor object (here a database, which holds the pymongo client behind it) refers to it."""
    import asyncio
    from mongosup import MotorConnectionManager, unwrap
    s = make_setup("motorreload", "max_pool_size = 5;")
    s.start_daemon()
    m = MotorConnectionManager(s.path)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # Motor 2.3 takes the current loop when a client is made
    try:
        # The driver's AsyncIOMotorDatabase, as a request in progress holds it (a proxy would not).
        held = unwrap(loop.run_until_complete(m.get_database("users")))
        loop.run_until_complete(held.items.insert_one({"a": 1}))
        topology = m.get_client("users").delegate._topology
        s.reload("max_pool_size = 8;")
        new = m.get_client("users")
        assert new.max_pool_size == 8 and new.delegate._topology is not topology
        loop.run_until_complete(held.items.insert_one({"b": 1}))
        assert m.safe_point() == 0 and topology._opened
        del held
        # Motor's executor thread may still hold the operation's frames a moment after its result.
        wait_for(lambda: m.safe_point() == 1, 10, what="the old client closed")
        assert not topology._opened
        loop.run_until_complete(m.run("users", lambda d: d.items.insert_one({"c": 1})))
    finally:
        m.close()
        asyncio.set_event_loop(None)
        loop.close()
    assert s.cluster()["ops"]["write"] == 3


RELOAD_PROGRAM = r"""
import asyncio, faulthandler, json, os, sys, time
from mongosup import MotorConnectionManager
from poolstate import open_connections

manager = MotorConnectionManager(os.environ["CONF"])
DB = manager.database("users")  # module globals, made in the parent before fork: proxies
ITEMS = DB.items
RELEASE = os.environ["RELEASE"]
TIMEOUT = float(os.environ["TIMEOUT"])


def say(obj):
    os.write(1, (json.dumps(obj) + "\n").encode())  # one write: the three processes share the pipe


async def until(what, pred):
    deadline = time.monotonic() + TIMEOUT
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for " + what)
        await asyncio.sleep(0.01)


async def serve():
    ops = {"write": 0, "read": 0}
    failures = []
    stop = []

    async def task(i):
        while not stop:
            try:
                if i % 2:
                    ops["write"] += 1
                    await ITEMS.insert_one({"pid": os.getpid()})
                else:
                    ops["read"] += 1
                    await DB.items.find_one({})
            except Exception as exc:
                failures.append(repr(exc))
            await asyncio.sleep(0.002)
    tasks = [asyncio.ensure_future(task(i)) for i in range(4)]
    await until("the first operations", lambda: ops["write"] + ops["read"] >= 20)
    old_topology = DB.client.delegate._topology  # the topology only: holding the client would pin it
    say({"serving": os.getpid(), "size": DB.client.max_pool_size})
    await until("the reload to reach the globals", lambda: ITEMS.database.client.max_pool_size == 8)
    moved = ops["write"] + ops["read"]
    await until("the old client closed", lambda: not old_topology._opened and not manager._retired
                and ops["write"] + ops["read"] >= moved + 20)
    stop.append(1)
    await asyncio.gather(*tasks)
    return {"pid": os.getpid(), "ops": ops, "failures": failures[:3], "retired": len(manager._retired),
            "size": DB.client.max_pool_size, "connections": open_connections(manager.get_client("users"))}

children = []
for k in range(3):
    pid = os.fork()
    if pid == 0:
        code = 0
        faulthandler.dump_traceback_later(TIMEOUT + 5, exit=True)  # a process stuck says where
        try:
            report = asyncio.new_event_loop().run_until_complete(serve())
        except Exception as exc:
            report, code = {"pid": os.getpid(), "error": repr(exc)}, 3
        faulthandler.cancel_dump_traceback_later()
        say(report)
        while not os.path.exists(RELEASE):  # the test reads the segment while the slots are live
            time.sleep(0.02)
        manager.close()
        os._exit(code)
    children.append(pid)
sys.exit(0 if all(os.waitpid(p, 0)[1] == 0 for p in children) else 1)
"""


def test_motor_module_globals_follow_a_reload_under_load(make_setup, tmp_path):
    """Three forked asyncio processes serve through module-global proxies (made before fork) with
    four tasks each while the supervisor reloads a new pool size: every process's globals move to
    the rebuilt AsyncIOMotorClient, its old client is closed while the globals are held, no
    operation fails, and the segment's pool gauge is the new clients' connections only."""
    s = make_setup("motorglobals", "max_pool_size = 5;")
    s.start_daemon()
    release = tmp_path / "release"
    # Unbuffered: a buffered readline could take two lines at once, and select() would not see the second.
    p = subprocess.Popen([PYTHON, "-c", RELOAD_PROGRAM], stdout=subprocess.PIPE, bufsize=0,
                         env=env_for_children(CONF=s.path, RELEASE=str(release), TIMEOUT=str(30 * SLOW),
                                              PYTHONPATH=HERE + os.pathsep + PACKAGE))

    def lines(count, what):
        out = []
        deadline = time.monotonic() + 40 * SLOW
        while len(out) < count:
            ready, _, _ = select.select([p.stdout], [], [], max(0.0, deadline - time.monotonic()))
            line = p.stdout.readline() if ready else b""
            assert line, "the program ended or timed out before %s (%d of %d)" % (what, len(out), count)
            try:
                out.append(json.loads(line))
            except ValueError:
                raise AssertionError("not one JSON line: %r" % line)
        return out
    try:
        serving = lines(3, "three processes serving")
        assert all(r["size"] == 5 for r in serving)
        before = s.cluster()
        s.reload("max_pool_size = 8;")
        reloaded = time.monotonic()
        reports = lines(3, "three reports")
        snap = s.snapshot()
        c = s.cluster(snap=snap)
        print("reports %.2f s after the reload: %s; slots %s" % (time.monotonic() - reloaded, reports,
                                                                   s.workers(snap)))
        assert all("error" not in r for r in reports), reports
        assert all(r["failures"] == [] and r["retired"] == 0 and r["size"] == 8 for r in reports), reports
        assert set(r["pid"] for r in reports) == set(r["serving"] for r in serving)
        assert c["reconnect"]["pool_rebuilds"] - before["reconnect"]["pool_rebuilds"] == 3  # one each
        assert c["pool"]["max"] == 3 * 8
        assert c["pool"]["clients"] == sum(r["connections"] for r in reports)
        assert c["budget"]["in_use"] == c["pool"]["clients"] and c["pool"]["in_use"] == 0
        assert c["ops"]["write"] == sum(r["ops"]["write"] for r in reports)
        assert c["ops"]["read"] == sum(r["ops"]["read"] for r in reports)
        assert c["failures"]["total"] == 0
        release.write_text("go")
        assert p.wait(30 * SLOW) == 0
        assert s.workers() == {}
    finally:
        release.write_text("go")
        if p.poll() is None:
            p.kill()
        p.wait()
