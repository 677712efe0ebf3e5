"""wsgi_app: the small CRUD application the gunicorn tests serve; it counts the operations it sends, per process."""

import json
import os

from pymongo.errors import ConnectionFailure

from mongosup import CircuitOpen, ConnectionManager, ShuttingDown
from poolstate import open_connections

manager = ConnectionManager()  # $MONGOSUP_CONFIG
COUNTS = os.environ["APP_COUNTS_DIR"]
# Module globals, as the seed's users wrote them: proxies that follow the manager's rebuilds.
DB = manager.get_database("users")
ITEMS = DB.items


def count(kind):
    # One line per operation sent (each attempt of run() is one), appended by this process only.
    with open(os.path.join(COUNTS, "%d.%s" % (os.getpid(), kind)), "a") as f:
        f.write("1\n")


def insert(db):
    count("write")
    return db.items.insert_one({"pid": os.getpid()})


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    try:
        if path == "/insert":
            manager.run("users", insert)
            body = {"ok": 1}
        elif path == "/find":
            db = manager.get_database("users")
            count("read")
            db.items.find_one({})
            body = {"ok": 1}
        elif path == "/global-insert":
            count("write")
            ITEMS.insert_one({"pid": os.getpid()})
            body = {"ok": 1}
        elif path == "/global-find":
            count("read")
            DB.items.find_one({})
            body = {"ok": 1}
        elif path == "/health":
            body = manager.health()
        elif path == "/settings":
            # What this worker's client is built with now, the client the module globals use,
            # the replaced clients still open and the connections of the current one.
            client = manager.get_client("users")
            body = {"pid": os.getpid(), "max_pool_size": client.max_pool_size,
                    "socket_timeout": client._MongoClient__options.pool_options.socket_timeout,
                    "global_max_pool_size": ITEMS.database.client.max_pool_size,
                    "global_is_current": DB.client is client,
                    "retired": len(manager._retired), "connections": open_connections(client)}
        elif path == "/pid":
            body = {"pid": os.getpid(), "slot": manager.worker_slot()}
        else:
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no such page\n"]
    except (CircuitOpen, ShuttingDown) as exc:
        start_response("503 Service Unavailable", [("Content-Type", "application/json"), ("Retry-After", "1")])
        return [json.dumps({"error": type(exc).__name__}).encode()]
    except ConnectionFailure as exc:
        start_response("503 Service Unavailable", [("Content-Type", "application/json")])
        return [json.dumps({"error": type(exc).__name__}).encode()]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]
