"""gunicorn: server hooks for a gunicorn configuration file: post_fork, post_request (safe point, drain) and worker_exit."""

import os
import signal

from .manager import ConnectionManager


def post_fork(server, worker):
    """The worker forgets the master's clients and slot (os.register_at_fork does it too; this
    hook makes it explicit); it attaches its own slot at its first request."""
    for manager in list(ConnectionManager._instances):
        manager.after_fork()


def post_request(worker, req, environ, resp):
    """Once the supervisor drains, the worker finishes the request in hand and exits, and asks its
    gunicorn master for a graceful stop (the drain is a stop of the whole service, as for a C
    prefork server whose workers exit on mongosup_draining; a bare worker exit would only make
    gunicorn fork a replacement).  The master is signalled only when it is this process's parent
    (gunicorn's own check), once per worker."""
    for manager in list(ConnectionManager._instances):
        manager.safe_point()  # no request runs here: replaced clients nothing holds are closed
    for manager in list(ConnectionManager._instances):
        if manager.draining():
            worker.alive = False
            if not getattr(worker, "mongosup_stop_asked", False) and worker.ppid == os.getppid():
                worker.mongosup_stop_asked = True
                os.kill(worker.ppid, signal.SIGTERM)
            return


def worker_exit(server, worker):
    """Detaches the worker's slot: its counters go to the segment's totals."""
    ConnectionManager.close_all()
