"""test_proxy: the Database and Collection proxies the manager hands out: driver-like objects that attach nothing until used, and module globals that follow a reload and let the old client close."""

import os
import threading
import time

import pytest
from pymongo import ReadPreference, WriteConcern
from pymongo.collection import Collection
from pymongo.database import Database

import mongosup
from conftest import wait_for
from poolstate import open_connections


def test_proxies_attach_nothing_and_answer_as_the_driver_objects(make_setup, managers):
    s = make_setup("proxy")
    m = managers(s.path)
    db = m.get_database("users")
    items = db.items
    w0 = db.get_collection("items", write_concern=WriteConcern(w=0))
    sub = items["sub"].deeper
    secondary = items.with_options(read_preference=ReadPreference.SECONDARY_PREFERRED)
    # The driver's classes for isinstance; the proxy's own for type().
    assert isinstance(db, Database) and isinstance(items, Collection) and isinstance(sub, Collection)
    assert type(db) is mongosup.DatabaseProxy and type(items) is mongosup.CollectionProxy
    assert isinstance(secondary.database, Database) and isinstance(db.with_options(), Database)
    assert repr(db) == "DatabaseProxy(cluster='users', database='<database_name>')"
    assert repr(sub) == "CollectionProxy(cluster='users', database='<database_name>', collection='items.sub.deeper')"
    with pytest.raises(TypeError):
        iter(db)  # not a walk over collections named 0, 1, 2...
    with pytest.raises(TypeError):
        hash(items)  # unhashable, as pymongo 3.11's
    with pytest.raises(TypeError):
        db[5]
    with pytest.raises(mongosup.ConfigError):
        m.get_database("nosuch")
    assert "command" in dir(db) and "insert_one" in dir(items)
    # None of this touched a client: made at import time in a gunicorn master, it attaches and
    # connects nothing (no slot, not even the segment).
    assert m._pid is None and all(c.client is None for c in m._clusters.values())
    assert not os.path.exists("/dev/shm" + s.segment + ".stats")

    # Used, each one is the driver's object of the cluster's current client.
    client = m.get_client("users")
    assert db.name == "app" and db.client is client
    assert m.get_database("users", "other").name == "other"
    assert sub.full_name == "app.items.sub.deeper" and sub.database.name == "app"
    assert w0.write_concern.document == {"w": 0} and w0.name == "items"
    assert secondary.read_preference == ReadPreference.SECONDARY_PREFERRED
    assert type(mongosup.unwrap(db)) is Database and type(mongosup.unwrap(items)) is Collection
    assert mongosup.unwrap(5) == 5
    # Compared as the driver compares (client and name): with each other and with driver objects.
    assert db == m.get_database("users") == client.app and db != m.get_database("users", "other")
    assert items == db["items"] == w0 == client.app.items and items.database == db
    # Resolved once per client, options that cannot be hashed included.
    assert mongosup.unwrap(items) is mongosup.unwrap(db.items)
    assert mongosup.unwrap(w0) is mongosup.unwrap(w0)
    items.insert_one({"a": 1})
    assert items.find_one({"a": 1})["a"] == 1
    w0.insert_one({"b": 1})
    with pytest.raises(TypeError) as ei:
        items.no_such_method({})  # a sub-collection, called: the driver's own message
    assert "no such method exists" in str(ei.value)
    # run() gives fn the driver's Database of the attempt: one client from start to end.
    assert m.run("users", lambda d: type(d)) is Database
    assert s.cluster()["ops"]["write"] == 2 and s.cluster()["ops"]["read"] == 1


def test_module_globals_follow_a_reload_and_the_old_client_closes(make_setup, managers):
    """Proxies kept as module globals (a Database, a Collection, one with options): after the
    supervisor's reload their next operation goes to the new client, and the old one is closed
    while they are still held; its connections are given back in the segment."""
    s = make_setup("proxyreload", "max_pool_size = 5;")
    s.start_daemon()
    m = managers(s.path)
    DB = m.get_database("users")
    ITEMS = DB.items
    ACKED = DB.get_collection("items", write_concern=WriteConcern(w=1))
    writes = []

    def write(coll, doc):
        coll.insert_one(doc)
        writes.append(1)

    # Concurrent operations: the old client opens several pool connections.
    threads = [threading.Thread(target=lambda: [write(ITEMS, {"t": 1}) for _ in range(10)]) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    write(ACKED, {"acked": 1})
    old = m.get_client("users")
    old_topology = old._topology
    old_connections = open_connections(old)
    assert DB.client is old and old.max_pool_size == 5 and old_connections >= 1
    del old
    before = s.cluster()
    assert before["pool"]["clients"] == old_connections  # the segment's gauge: this process's pool

    s.reload("max_pool_size = 9;")
    write(ITEMS, {"after": 1})  # the first operation after the reload: the rebuild, then the write
    new = m.get_client("users")
    assert new.max_pool_size == 9 and DB.client is new and ITEMS.database.client is new
    assert ACKED.write_concern.document == {"w": 1}
    write(ACKED, {"after": 2})
    # Nothing but the manager refers to the old client (the globals are proxies): closed at the
    # next get_client, here the last write's, with no safe_point() called.
    assert not old_topology._opened and m._retired == []
    assert DB.items.find_one({"after": 1})["after"] == 1
    c = s.cluster()
    assert c["reconnect"]["pool_rebuilds"] == before["reconnect"]["pool_rebuilds"] + 1
    assert c["pool"]["max"] == 9
    # The old client's connections are closed and counted so: the gauge is the new client's only.
    assert c["pool"]["clients_destroyed"] - before["pool"]["clients_destroyed"] == old_connections
    assert c["pool"]["clients"] == open_connections(new) and c["budget"]["in_use"] == c["pool"]["clients"]
    assert c["pool"]["in_use"] == 0
    assert c["ops"]["write"] == len(writes) == 33 and c["failures"]["total"] == 0


def test_credentials_change_rebuilds_once_though_the_checker_restarts(make_setup, managers):
    """A reload that changes the principal (here the authSource: the credentials, as mongosupd
    compares them) makes mongosupd restart the cluster's checker (health UNKNOWN, then UP
    again).  The workers rebuild once, for the new URI; the fresh checker's UNKNOWN -> UP is not a
    reconnect, so no second rebuild follows, however long they keep serving."""
    s = make_setup("credentials")
    s.start_daemon()
    m = managers(s.path)
    DB = m.get_database("users")
    DB.items.insert_one({"before": 1})
    before = s.cluster()
    old_topology = DB.client._topology
    s.reload(uri_query="?authSource=other")
    with open(s.daemon_log) as f:
        assert "cluster users changed: now" in f.read()  # a fresh checker, not "settings updated"
    DB.items.insert_one({"after": 1})  # the rebuild, for the new URI
    rebuilt = m.get_client("users")
    assert rebuilt._MongoClient__options.credentials is None  # authSource alone: no principal to log in
    assert "authSource=other" in m._cluster("users").settings.uri
    writes = 2
    # The fresh checker's verdict: UP again, after at least one transition of its own.
    wait_for(lambda: (lambda c: c["state"] == "UP" and c["transitions"] > before["transitions"])(s.cluster()),
             10, what="the new checker's UP")
    up = time.monotonic()
    # Serve for several check intervals (200 ms) and more than the reconnect window (300 ms).
    while time.monotonic() - up < 2.0:
        DB.items.insert_one({"serving": 1})
        writes += 1
        time.sleep(0.01)
    c = s.cluster()
    assert c["reconnect"]["generation"] == before["reconnect"]["generation"]
    assert c["reconnect"]["pool_rebuilds"] == before["reconnect"]["pool_rebuilds"] + 1
    assert m.get_client("users") is rebuilt and DB.client is rebuilt
    assert not old_topology._opened and m._retired == []
    assert c["ops"]["write"] == writes and c["failures"]["total"] == 0
