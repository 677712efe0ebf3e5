"""gunicorn: server hooks for a gunicorn configuration file: post_fork, post_request (drain) and worker_exit."""

from .manager import ConnectionManager


def post_fork(server, worker):
    """The worker forgets the master's clients and slot (os.register_at_fork does it too; this
    hook makes it explicit); it attaches its own slot at its first request."""
    for manager in list(ConnectionManager._instances):
        manager.after_fork()


def post_request(worker, req, environ, resp):
    """Once the supervisor drains, the worker finishes the request in hand and exits."""
    for manager in list(ConnectionManager._instances):
        if manager.draining():
            worker.alive = False
            return


def worker_exit(server, worker):
    """Detaches the worker's slot: its counters go to the segment's totals."""
    ConnectionManager.close_all()
