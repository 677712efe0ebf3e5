"""test_manager: ConnectionManager against the test peer: records, settings, fork safety, retries, fail fast, bad input."""

import os
import signal
import subprocess
import time

import pytest
from pymongo.errors import ConfigurationError, ConnectionFailure, OperationFailure, ServerSelectionTimeoutError

from conftest import LIBRARY, PYTHON, env_for_children, run_python, wait_for

import mongosup


def totals(setup, name="users"):
    c = setup.cluster(name)
    assert c is not None, "cluster %s not in the segment" % name
    return c


def test_records_land_in_the_segment(make_setup, managers):
    s = make_setup("records")
    m = managers(s.path)
    db = m.get_database("users")
    assert db.name == "app"
    for i in range(7):
        db.items.insert_one({"i": i})
    for i in range(3):
        assert db.items.find_one({"i": i})["i"] == i
    s.peer.command(cmd="fail", command="find", times=1, code=2, errmsg="bad value")
    with pytest.raises(OperationFailure):
        db.items.find_one({})
    c = totals(s)
    assert c["ops"]["write"] == 7
    assert c["ops"]["read"] == 4
    assert c["failures"]["server_error"] == 1
    assert c["last_error"]["code"] == 2
    assert c["latency_us"]["count"] == 11
    assert c["pool"]["checkouts"] >= 11
    assert c["pool"]["clients_created"] >= 1
    assert c["pool"]["in_use"] == 0
    assert c["pool"]["idle"] == c["pool"]["clients"] >= 1
    assert c["budget"]["in_use"] == c["pool"]["clients"]  # a token per connection
    slots = s.workers()
    assert slots == {os.getpid(): "ACTIVE"}
    assert m.worker_slot() >= 0
    assert m.health() == {"users": {"health": "UNKNOWN", "supervisor": False},
                          "analytics": {"health": "UNKNOWN", "supervisor": False}}
    m.close()
    # The worker folds its counters into the retired totals and frees its own slot (layout 3).
    assert s.workers() == {}
    assert totals(s)["ops"]["read"] == 4
    with pytest.raises(mongosup.ShuttingDown):
        m.get_client("users")


def test_settings_become_client_kwargs(make_setup, managers):
    s = make_setup("kwargs", "max_pool_size = 7; min_pool_size = 2; wait_queue_timeout_ms = 1234; "
                             "retry_writes = false; max_idle_time_ms = 60000;")
    m = managers(s.path)
    kw = m.client_kwargs("users")
    assert kw["maxPoolSize"] == 7 and kw["minPoolSize"] == 2
    assert kw["waitQueueTimeoutMS"] == 1234 and kw["maxIdleTimeMS"] == 60000
    assert kw["retryWrites"] is False and kw["retryReads"] is True
    assert kw["serverSelectionTimeoutMS"] == 1500 and kw["connectTimeoutMS"] == 1000
    assert kw["heartbeatFrequencyMS"] == 500
    client = m.get_client("users")
    assert client.max_pool_size == 7
    assert client.retry_writes is False
    m.close()


def test_budget_caps_the_process_pool(make_setup, managers):
    s = make_setup("budget", "max_pool_size = 50; max_connections = 3;")
    m = managers(s.path)
    assert m.client_kwargs("users")["maxPoolSize"] == 3
    m.close()


def test_secret_goes_to_the_driver_only(make_setup, tmp_path, capfd, managers):
    s = make_setup("secret")
    pw = tmp_path / "pw"
    pw.write_text("s3cretpw\n")
    os.chmod(str(pw), 0o600)
    s.write('password_file = "%s";' % pw)
    with open(s.path) as f:
        text = f.read().replace('mongodb://127.0.0.1', 'mongodb://alice@127.0.0.1')
    with open(s.path, "w") as f:
        f.write(text)
    m = managers(s.path)
    c = m._cluster("users")
    assert "s3cretpw" in c.settings.uri
    assert "s3cretpw" not in c.settings.uri_display
    client = m.get_client("users")
    assert client._MongoClient__options.credentials.password == "s3cretpw"
    assert "s3cretpw" not in repr(m.client_kwargs("users"))
    m.close()
    out, err = capfd.readouterr()
    assert "s3cretpw" not in out + err


def test_unknown_cluster_and_bad_config(make_setup, tmp_path, managers):
    s = make_setup("unknown")
    m = managers(s.path)
    with pytest.raises(mongosup.ConfigError) as ei:
        m.get_client("nosuch")
    assert isinstance(ei.value, ConfigurationError)
    assert "nosuch" in str(ei.value)
    m.close()
    bad = tmp_path / "bad.conf"
    bad.write_text('segment = { name = "/x"; };\nenvironments = { test = { clusters = { a = { mongo_uri = 5; }; }; }; };\n')
    with pytest.raises(mongosup.ConfigError) as ei:
        mongosup.ConnectionManager(str(bad))
    assert "bad.conf:2" in str(ei.value)
    with pytest.raises(mongosup.ConfigError):
        mongosup.ConnectionManager(str(tmp_path / "missing.conf"))


def test_missing_segment_fails_open(make_setup, managers):
    """No supervisor and no segment: the worker creates the segment, the gate fails open, records
    land (the C side's rule)."""
    s = make_setup("nosegment")
    assert not os.path.exists("/dev/shm" + s.segment + ".stats")
    m = managers(s.path)
    m.get_database("users").items.insert_one({"a": 1})
    # Workers create the stats segment; the control segment is the supervisor's alone.
    assert os.path.exists("/dev/shm" + s.segment + ".stats")
    assert not os.path.exists("/dev/shm" + s.segment)
    assert totals(s)["ops"]["write"] == 1
    m.close()


def test_unusable_segment_serves_without_it(make_setup, capfd, managers):
    """A segment that cannot be attached (here: a foreign object under its name): a warning, and
    the application is still served."""
    s = make_setup("foreign")
    with open("/dev/shm" + s.segment + ".stats", "wb") as f:
        f.write(b"not a mongosup segment" * 100)
    m = managers(s.path)
    m.get_database("users").items.insert_one({"a": 1})
    assert m.worker_slot() == -1
    assert m.health()["users"] == {"health": "UNKNOWN", "supervisor": False}
    m.close()
    assert "serving without it (fail open)" in capfd.readouterr().err


def test_unloadable_library_is_a_clear_import_error(tmp_path):
    missing = str(tmp_path / "no" / "libmongosup.so.0")
    r = run_python("import mongosup", env=env_for_children(MONGOSUP_LIBRARY=missing), check=False)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "ImportError: mongosup: cannot load the shared library %s" % missing in err
    notlib = tmp_path / "libfake.so"
    notlib.write_bytes(b"\x7fELF garbage")
    r = run_python("import mongosup", env=env_for_children(MONGOSUP_LIBRARY=str(notlib)), check=False)
    assert r.returncode != 0 and str(notlib) in r.stderr.decode()


FORK_CHILD = r"""
import os, sys, mongosup
m = mongosup.ConnectionManager(sys.argv[1] if len(sys.argv) > 1 else os.environ["CONF"])
parent_client = m.get_client("users")
parent_client.app.items.insert_one({"who": "parent"})
parent_slot = m.worker_slot()
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    client = m.get_client("users")
    ok = client is not parent_client and m.worker_slot() not in (-1, parent_slot)
    for _ in range(5):
        m.get_database("users").items.insert_one({"who": "child"})
    m.close()
    os.write(w, b"ok" if ok else b"no")
    os._exit(0)
os.waitpid(pid, 0)
print(os.read(r, 2).decode(), parent_slot, flush=True)
assert m.get_client("users") is parent_client
parent_client.app.items.insert_one({"who": "parent"})
m.close()
"""


def test_fork_safety(make_setup):
    s = make_setup("fork")
    r = run_python(FORK_CHILD, env=env_for_children(CONF=s.path))
    assert r.stdout.decode().split()[0] == "ok"
    assert totals(s)["ops"]["write"] == 7
    assert s.workers() == {}  # parent and child each freed the slot of their own


def test_run_retries_transient_failures(make_setup, managers):
    s = make_setup("retry", "retry_writes = false; retry_max_attempts = 3;")
    m = managers(s.path)
    attempts = []

    def insert(db):
        attempts.append(1)
        return db.items.insert_one({"a": 1})
    s.peer.command(cmd="fail", command="insert", times=2, code=91, errmsg="shutting down")
    m.run("users", insert)
    assert len(attempts) == 3
    c = totals(s)
    assert c["retries"] == 2 and c["ops"]["write"] == 3 and c["failures"]["server_error"] == 2
    attempts.clear()
    s.peer.command(cmd="fail", command="insert", times=1, code=2, errmsg="bad value")
    with pytest.raises(OperationFailure):
        m.run("users", insert)
    assert len(attempts) == 1 and totals(s)["retries"] == 2
    m.close()


def test_circuit_open_fails_fast_and_recovers(make_setup, managers):
    s = make_setup("circuit")
    s.start_daemon()
    m = managers(s.path)
    db = m.get_database("users")
    db.items.insert_one({"a": 1})
    assert m.health()["users"] == {"health": "UP", "supervisor": True}
    s.peer.kill()
    killed = time.monotonic()

    def refused():
        try:
            m.get_client("users")
        except mongosup.CircuitOpen:
            return time.monotonic()
        return None
    opened = wait_for(refused, 10, what="CircuitOpen")
    # check_interval + fall x (check_timeout + check_fastinter) = 700 ms, plus one heartbeat.
    assert opened - killed < 3.0, opened - killed
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailure):  # existing `except ConnectionFailure` code handles it
        m.run("users", lambda d: d.items.insert_one({"a": 2}))
    assert time.monotonic() - t0 < 0.2  # no server selection wait (1.5 s), no retry
    assert m.health()["users"]["health"] == "DOWN"
    assert totals(s)["failures"]["circuit_open"] >= 2
    s.peer.start()
    wait_for(lambda: s.cluster_health() == "UP", 15, what="users UP again")
    # The supervisor bumps the generation right after the UP verdict (DOWN -> UP is a reconnect).
    gen = wait_for(lambda: s.cluster()["reconnect"]["generation"], 10, what="a reconnect generation")

    def served():
        try:
            m.get_database("users").items.insert_one({"a": 3})
            return m._cluster("users").generation == gen
        except ConnectionFailure:
            return False
    wait_for(served, 10, what="served again on the new generation")
    r = s.cluster()["reconnect"]
    assert r["workers_acked"] == r["workers_live"] == 1
    assert s.cluster()["pool"]["clients_destroyed"] >= 1  # the old client's connections
    m.close()


def test_drain_refuses_with_shutting_down(make_setup, managers):
    s = make_setup("drain")
    s.start_daemon()
    m = managers(s.path)
    m.get_database("users").items.insert_one({"a": 1})
    s.daemon.send_signal(signal.SIGTERM)
    wait_for(m.draining, 10, what="the drain")
    with pytest.raises(mongosup.ShuttingDown) as ei:
        m.get_client("users")
    assert isinstance(ei.value, ConnectionFailure)
    m.close()
    s.daemon.wait(15)
    assert s.daemon.returncode == 0


def test_reload_rebuilds_the_client_when_nothing_holds_the_old_one(make_setup, managers):
    """The supervisor's reload reaches the manager at its next get_client: new pool size, timeouts and
    retries; a cluster added is served, a removed one refused; the replaced client keeps serving
    what still refers to it and is closed once nothing does."""
    s = make_setup("reload", "max_pool_size = 5; socket_timeout_ms = 5000; retry_max_attempts = 1; "
                             "retry_writes = false;")
    s.start_daemon()
    m = managers(s.path)
    old = m.get_client("users")
    held = mongosup.unwrap(m.get_database("users"))  # the driver's Database, as a request in progress holds it
    held.items.insert_one({"before": 1})
    assert old.max_pool_size == 5
    s.peer.command(cmd="fail", command="insert", times=1, code=91, errmsg="shutting down")
    with pytest.raises(ConnectionFailure):  # NotWritablePrimary: one attempt only
        m.run("users", lambda db: db.items.insert_one({"a": 1}))

    s.reload("max_pool_size = 9; socket_timeout_ms = 7000; retry_max_attempts = 3; retry_writes = false;",
             clusters=("users", "extra"))
    new = m.get_client("users")
    assert new is not old and new.max_pool_size == 9
    assert new._MongoClient__options.pool_options.socket_timeout == 7.0
    assert m.get_client("users") is new    # rebuilt once
    # Only the database taken from it refers to the old client now (the topology does not).
    topology = old._topology
    del old
    # The old client still serves the database taken from it, and is not closed under it.
    held.items.insert_one({"held": 1})
    assert m.safe_point() == 0 and topology._opened
    del held
    assert m.safe_point() == 1 and not topology._opened
    # Retries follow the reload at once (3 attempts now).
    s.peer.command(cmd="fail", command="insert", times=2, code=91, errmsg="shutting down")
    m.run("users", lambda db: db.items.insert_one({"b": 1}))
    m.get_database("extra").items.insert_one({"c": 1})
    with pytest.raises(mongosup.ConfigError) as ei:
        m.get_client("analytics")
    assert "analytics" in str(ei.value)
    c = totals(s)
    assert c["ops"]["write"] == 2 + 1 + 3        # every attempt, through the old client and the new
    assert c["reconnect"]["pool_rebuilds"] == 1  # the rebuild, counted as the C pool's
    assert c["pool"]["max"] == 9                 # this worker's max_pool_size, as reloaded
    assert totals(s, "extra")["ops"]["write"] == 1
    m.close()


FORK_AFTER_RELOAD = r"""
import os, sys, mongosup
m = mongosup.ConnectionManager(os.environ["CONF"])   # read before the reload, as in a gunicorn master
print("built", m.client_kwargs("users")["maxPoolSize"], flush=True)
sys.stdin.readline()                                 # the test reloads meanwhile
pid = os.fork()
if pid == 0:
    size = m.get_client("users").max_pool_size
    m.close()
    os._exit(size)
print("child", os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


def test_worker_forked_after_a_reload_reads_the_reloaded_file(make_setup):
    s = make_setup("forkreload", "max_pool_size = 5;")
    s.start_daemon()
    p = subprocess.Popen([PYTHON, "-c", FORK_AFTER_RELOAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=env_for_children(CONF=s.path))
    try:
        assert p.stdout.readline().split() == [b"built", b"5"]
        s.reload("max_pool_size = 11;")
        p.stdin.write(b"go\n")
        p.stdin.flush()
        assert p.stdout.readline().split() == [b"child", b"11"]
    finally:
        p.kill()
        p.wait()


def test_selection_failures_are_counted_outside_run(make_setup, managers):
    """pymongo reports no event for a server-selection timeout: the manager's clients count it at
    their topology, for operations outside run() too, and run() does not count it twice."""
    s = make_setup("selection", "retry_max_attempts = 1;")
    # No supervisor: the gate fails open and the operations meet the dead server.  No retried
    # reads: a retry's selection failure is counted too, though pymongo raises the first error.
    m = managers(s.path, client_kwargs={"serverSelectionTimeoutMS": 300, "retryReads": False})
    db = m.get_database("users")
    db.items.insert_one({"a": 1})
    assert m._cluster("users").recorder.selection_watched
    s.peer.kill()
    seen = 0
    for _ in range(5):  # the first operation may fail on its pooled socket (network) instead
        try:
            db.items.find_one({})
        except ServerSelectionTimeoutError:
            seen += 1
        except ConnectionFailure:
            pass
    assert seen >= 3
    assert totals(s)["failures"]["server_selection"] == seen
    with pytest.raises(ServerSelectionTimeoutError):
        m.run("users", lambda d: d.items.find_one({}))
    assert totals(s)["failures"]["server_selection"] == seen + 1
    m.close()
