"""manager: ConnectionManager, pymongo clients per cluster from a mongosup configuration, attached to the segment after fork, failing fast."""

import ctypes
import os
import sys
import threading
import time
import weakref

import pymongo

from . import _native as n
from .errors import CircuitOpen, ConfigError, ShuttingDown
from .listeners import Recorder, listeners_for
from .retry import Attempts

_lib = n.lib
# Clients inherited across fork: kept referenced so that their finalizers
# never run in the child (they would close the parent's sockets' copies).
_inherited = []


def _text(b):
    return b.decode("utf-8", "replace") if b is not None else None


def _warn(message):
    sys.stderr.write("mongosup[%d]: %s\n" % (os.getpid(), message))
    sys.stderr.flush()


class _Cluster(object):
    """One cluster as this process sees it: its settings, its client and the generation it serves."""

    def __init__(self, name, settings):
        self.name = name
        self.bname = name.encode()
        self.settings = settings
        self.client = None
        self.generation = 0
        self.rebuild_due = None  # monotonic time of a pending rebuild after a generation bump
        self.recorder = None


class ConnectionManager(object):
    """pymongo clients for the clusters of a mongosup configuration.

    config: the configuration file (default $MONGOSUP_CONFIG); environment:
    the environment in it (default $MONGOSUP_ENV, else the file's
    default_environment).  The URIs, secrets and settings resolve exactly as
    for the C workers (docs/configuration.md).  Nothing connects and nothing
    attaches before the first get_client in a process: build the manager in
    the gunicorn master if you like; each worker attaches its own slot after
    fork, and a client made before a fork is never used after it.
    """

    _instances = weakref.WeakSet()
    _instances_lock = threading.Lock()

    def __init__(self, config=None, environment=None, client_kwargs=None):
        path = config or os.environ.get("MONGOSUP_CONFIG")
        if not path:
            raise ConfigError("mongosup: no configuration file (pass config= or set MONGOSUP_CONFIG)")
        err = n.Error()
        cfg = _lib.mongosup_config_load(os.fsencode(path), environment.encode() if environment else None,
                                        ctypes.byref(err))
        if not cfg:
            raise ConfigError("mongosup: %s" % err.text())
        self._cfg = ctypes.c_void_p(cfg)
        self.config_path = path
        self.environment = _text(_lib.mongosup_config_environment(self._cfg))
        self._client_kwargs = dict(client_kwargs or {})
        self._clusters = {}
        for i in range(_lib.mongosup_config_cluster_count(self._cfg)):
            name = _text(_lib.mongosup_config_cluster_name(self._cfg, i))
            st = n.ClusterSettings()
            if not _lib.mongosup_cluster_settings(self._cfg, name.encode(), ctypes.byref(st), ctypes.byref(err)):
                raise ConfigError("mongosup: %s" % err.text())
            self._clusters[name] = _Cluster(name, st)
        self._lock = threading.RLock()
        self._handle = None
        self._pid = None
        self._attach_failed = False
        self._closed = False
        with ConnectionManager._instances_lock:
            ConnectionManager._instances.add(self)

    # ---- the process's slot ----

    def _attached(self):
        """The handle of this process (attached on first use after fork), or None when attaching
        failed: then the manager fails open, serving without gate or records, as the C side does
        without a live supervisor."""
        if self._closed:
            raise ShuttingDown(None, "mongosup: the connection manager is closed")
        if self._pid == os.getpid():
            return self._handle
        with self._lock:
            if self._pid != os.getpid():
                self._forget_parent()
                err = n.Error()
                h = _lib.mongosup_attach(self._cfg, ctypes.byref(err))
                if h:
                    self._handle = h
                else:
                    self._handle = None
                    _warn("cannot attach to the mongosup segment, serving without it (fail open): %s"
                          % err.text())
                self._pid = os.getpid()
        return self._handle

    def _forget_parent(self):
        """After fork: the parent's clients and handle are the parent's.  Clients are dropped, never
        closed or used (their sockets and threads belong to the parent); the inherited C handle is
        abandoned by mongosup_detach, which frees nothing of it."""
        for c in self._clusters.values():
            if c.client is not None:
                _inherited.append(c.client)
            c.client = None
            c.recorder = None
            c.rebuild_due = None
        if self._handle is not None:
            h = ctypes.c_void_p(self._handle)
            _lib.mongosup_detach(ctypes.byref(h), 0)
            self._handle = None

    def _cluster(self, name):
        c = self._clusters.get(name)
        if c is None:
            raise ConfigError("mongosup: cluster '%s' is not in the configuration (environment %s)"
                              % (name, self.environment))
        return c

    def _gate(self, c, handle):
        """The C gate: the generation to serve, or CircuitOpen / ShuttingDown."""
        if handle is None:
            return None
        gen = ctypes.c_uint64(0)
        err = n.Error()
        if _lib.mongosup_gate(handle, c.bname, ctypes.byref(gen), ctypes.byref(err)):
            return gen.value
        if err.code == n.E_CIRCUIT_OPEN:
            raise CircuitOpen(c.name, err.text())
        if err.code == n.E_SHUTTING_DOWN:
            raise ShuttingDown(c.name, err.text())
        raise ConfigError("mongosup: %s" % err.text())

    # ---- clients ----

    def client_kwargs(self, cluster):
        """The MongoClient keyword arguments the configuration makes for a cluster (no URI, no secret)."""
        s = self._cluster(cluster).settings
        pool = s.max_pool_size
        if s.max_connections and s.max_connections < pool:
            pool = s.max_connections  # one process never exceeds the host's budget by itself
        kw = dict(maxPoolSize=pool, minPoolSize=min(s.min_pool_size, pool),
                  waitQueueTimeoutMS=s.wait_queue_timeout_ms or None,
                  connectTimeoutMS=s.connect_timeout_ms, socketTimeoutMS=s.socket_timeout_ms,
                  serverSelectionTimeoutMS=s.server_selection_timeout_ms,
                  heartbeatFrequencyMS=s.heartbeat_frequency_ms,
                  retryWrites=bool(s.retry_writes), retryReads=bool(s.retry_reads), connect=False)
        if s.max_idle_time_ms:
            kw["maxIdleTimeMS"] = s.max_idle_time_ms
        kw["appname"] = _text(s.appname) or "mongosup-%d" % os.getpid()
        kw.update(self._client_kwargs)
        return kw

    def _new_client(self, c, handle):
        kw = self.client_kwargs(c.name)
        recorder = Recorder(handle, c.name, kw["maxPoolSize"])
        # s.uri carries the secrets: it goes to the driver and nowhere else.
        client = self._client_class()(_text(c.settings.uri), event_listeners=listeners_for(recorder), **kw)
        return client, recorder

    def _client_class(self):
        return pymongo.MongoClient

    def _close_client(self, client):
        client.close()

    def get_client(self, cluster):
        """The cluster's client in this process.  Raises CircuitOpen when a live supervisor marks the
        cluster DOWN, ShuttingDown while it drains, ConfigError for an unknown cluster."""
        c = self._cluster(cluster)
        handle = self._attached()
        gen = self._gate(c, handle)
        client = c.client
        if client is not None and (gen is None or gen == c.generation):
            return client
        old = None
        with self._lock:
            if c.client is None:
                c.client, c.recorder = self._new_client(c, handle)
                c.generation = gen or 0
                if handle is not None:
                    _lib.mongosup_serving_generation(handle, c.bname, c.generation, False)
            elif gen != c.generation:
                # The supervisor asked for a reconnect: after this worker's delay (spread over
                # reconnect_window_ms by slot), a new client; the old one keeps serving until then.
                now = time.monotonic()
                if c.rebuild_due is None:
                    c.rebuild_due = now + _lib.mongosup_reconnect_delay_ms(handle, c.bname) / 1000.0
                if now >= c.rebuild_due:
                    old = c.client
                    c.client, c.recorder = self._new_client(c, handle)
                    c.generation = gen
                    c.rebuild_due = None
                    _lib.mongosup_serving_generation(handle, c.bname, gen, True)
            client = c.client
        if old is not None:
            self._close_client(old)
        return client

    def get_database(self, cluster, name=None):
        """The cluster's database: `name`, else its configured database_name."""
        db = name or _text(self._cluster(cluster).settings.database_name)
        if not db:
            raise ConfigError("mongosup: cluster '%s' has no database_name: pass a name" % cluster)
        return self.get_client(cluster)[db]

    def run(self, cluster, fn):
        """fn(database) with mongosup_run's retry policy (mongosup.retry.Attempts): transient
        failures are retried with backoff and jitter; CircuitOpen, ShuttingDown and a pool's
        wait-queue timeout are raised at once; the last failure is raised as pymongo raised it."""
        attempts = Attempts(self._attached(), self._cluster(cluster))
        while True:
            attempts.begin()
            db = self.get_database(cluster)
            try:
                return fn(db)
            except Exception as exc:
                pause = attempts.pause_after(exc)
                if pause is None:
                    raise
            time.sleep(pause)

    # ---- state ----

    def clusters(self):
        return list(self._clusters)

    def health(self):
        """The supervisor's verdict per cluster: {"users": {"health": "UP", "supervisor": True}, ...}.
        "supervisor" is False when no live supervisor stands behind the verdict (the gate then
        fails open)."""
        handle = self._attached()
        out = {}
        for name, c in self._clusters.items():
            alive = ctypes.c_bool(False)
            code = _lib.mongosup_cluster_health(handle, c.bname, ctypes.byref(alive)) if handle else 0
            out[name] = {"health": n.HEALTH_NAMES.get(code, "UNKNOWN"), "supervisor": bool(alive.value)}
        return out

    def draining(self):
        """True once the supervisor drains: finish the request in hand, take no new work."""
        handle = None if self._closed else self._attached()
        return bool(handle) and bool(_lib.mongosup_draining(handle))

    def worker_slot(self):
        handle = self._attached()
        return _lib.mongosup_worker_slot(handle) if handle else -1

    def after_fork(self):
        """Called in a child after fork (os.register_at_fork does it; gunicorn's post_fork hook may
        too): forgets the parent's clients and slot; the child attaches at its first use."""
        with self._lock:
            if self._pid is not None and self._pid != os.getpid():
                self._forget_parent()
                self._pid = None

    def close(self, drain_timeout_ms=5000):
        """Closes the clients and detaches this process's slot (its counters stay in the segment's
        totals).  The manager refuses further use."""
        with self._lock:
            if self._closed:
                return
            if self._pid == os.getpid():
                for c in self._clusters.values():
                    if c.client is not None:
                        self._close_client(c.client)
                    c.client = None
                if self._handle is not None:
                    h = ctypes.c_void_p(self._handle)
                    _lib.mongosup_detach(ctypes.byref(h), drain_timeout_ms)
            else:
                self._forget_parent()
            self._handle = None
            self._closed = True
            cfg, self._cfg = self._cfg, None
            # Settings point into the configuration: it lives as long as the manager object.
            self._kept_cfg = cfg

    def __del__(self):
        cfg = getattr(self, "_kept_cfg", None) or getattr(self, "_cfg", None)
        if cfg and (self._closed or self._handle is None) and _lib is not None:
            _lib.mongosup_config_destroy(ctypes.byref(cfg))

    @classmethod
    def close_all(cls, drain_timeout_ms=5000):
        """Closes every manager of this process (a gunicorn worker_exit hook calls this)."""
        with cls._instances_lock:
            managers = list(cls._instances)
        for m in managers:
            m.close(drain_timeout_ms)

    @classmethod
    def _after_fork_all(cls):
        for m in list(cls._instances):
            m.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=ConnectionManager._after_fork_all)
