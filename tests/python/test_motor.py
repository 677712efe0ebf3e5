"""test_motor: MotorConnectionManager in several forked asyncio processes records exactly what each one sent."""

import pytest

from conftest import env_for_children, run_python, wait_for

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
