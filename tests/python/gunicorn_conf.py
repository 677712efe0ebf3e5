"""gunicorn_conf: the gunicorn configuration of the tests (and of docs/python.md): 4 prefork workers and mongosup's hooks."""

import os

from mongosup.gunicorn import post_fork, post_request, worker_exit  # noqa: F401 (gunicorn reads them)

bind = "127.0.0.1:%s" % os.environ["APP_PORT"]
workers = 4
worker_class = "sync"
graceful_timeout = 10
timeout = 30
