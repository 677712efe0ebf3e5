"""wsgi_app: the small CRUD application the gunicorn tests serve; it counts the operations it sends, per process."""

import json
import os

from pymongo.errors import ConnectionFailure

from mongosup import CircuitOpen, ConnectionManager, ShuttingDown

manager = ConnectionManager()  # $MONGOSUP_CONFIG
COUNTS = os.environ["APP_COUNTS_DIR"]


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
        elif path == "/health":
            body = manager.health()
        elif path == "/settings":
            # What this worker's client is built with now, and the replaced clients still open.
            client = manager.get_client("users")
            body = {"pid": os.getpid(), "max_pool_size": client.max_pool_size,
                    "socket_timeout": client._MongoClient__options.pool_options.socket_timeout,
                    "retired": len(manager._retired)}
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
