"""manager: ConnectionManager, pymongo clients per cluster from a mongosup configuration, attached to the segment after fork, failing fast."""

import ctypes
import os
import sys
import threading
import time
import weakref

import pymongo
from pymongo.collection import Collection
from pymongo.database import Database

from . import _native as n
from .errors import CircuitOpen, ConfigError, ShuttingDown
from .listeners import Recorder, listeners_for, watch_server_selection
from .proxy import DatabaseProxy, views_of
from .retry import Attempts

_lib = n.lib
# Clients inherited across fork: kept referenced so that their finalizers
# never run in the child (they would close the parent's sockets' copies).
_inherited = []
# Driver objects the proxies resolved, per cluster, kept for the current client only: beyond this
# many (an application deriving ever new collections or options), the cache starts over.
_PROXY_CACHE_LIMIT = 256


def _text(b):
    return b.decode("utf-8", "replace") if b is not None else None


def _warn(message):
    sys.stderr.write("mongosup[%d]: %s\n" % (os.getpid(), message))
    sys.stderr.flush()


class _Cluster(object):
    """One cluster as this process sees it: its settings, its client and what that client was built for."""

    def __init__(self, name, settings):
        self.name = name
        self.bname = name.encode()
        self.settings = settings  # n.Settings: the handle's current ones once attached
        self.client = None
        self.recorder = None
        self.built_with = None    # (uri, keyword arguments) of the client
        self.generation = 0       # the reconnect generation the client serves
        self.rebuild_due = None   # monotonic time of a pending rebuild after a generation bump
        self.stale = False        # a reload changed what the client is built with: rebuild at once
        self.resolved = {}        # proxy key -> (client, settings, driver object, path): see _resolve_proxy


class _Retired(object):
    """A client replaced by a rebuild, and its recorder: closed once nothing but this entry refers to it."""

    __slots__ = ("client", "recorder")

    def __init__(self, client, recorder=None):
        self.client = client
        self.recorder = recorder


class _Wrapper(object):
    """Stands for a client that keeps its driver object in an attribute (Motor's delegate)."""


# What sys.getrefcount says of an object held only by a _Retired entry, and of
# a driver object held only by its wrapper's attribute, measured exactly as
# _held_elsewhere measures (CPython counts references exactly; how it counts
# the measurement's own is the interpreter's business, hence the calibration).
_entry = _Retired(_Wrapper())
_entry.client.delegate = object()
_ALONE = sys.getrefcount(_entry.client)
_DELEGATE_ALONE = sys.getrefcount(_entry.client.delegate)
del _entry


def _database_name(c, name, settings):
    """`name`, else the cluster's database_name in `settings` (as reloaded)."""
    db = name or settings.database_name
    if not db:
        raise ConfigError("mongosup: cluster '%s' has no database_name: pass a name" % c.name)
    return db


def _held_elsewhere(entry, delegate):
    """True while anything but the entry refers to its client: a request's Database, Collection or
    cursor, an operation on another thread; with `delegate`, also while anything refers to the
    driver client behind it (Motor's own Database objects hold the pymongo one)."""
    if sys.getrefcount(entry.client) > _ALONE:
        return True
    return delegate and sys.getrefcount(entry.client.delegate) > _DELEGATE_ALONE


class ConnectionManager(object):
    """pymongo clients for the clusters of a mongosup configuration.

    config: the configuration file (default $MONGOSUP_CONFIG); environment:
    the environment in it (default $MONGOSUP_ENV, else the file's
    default_environment).  The URIs, secrets and settings resolve exactly as
    for the C workers (docs/configuration.md), and follow the supervisor's
    reloads as theirs do.  Nothing connects and nothing attaches before the
    first get_client in a process: build the manager in the gunicorn master
    if you like; each worker attaches its own slot after fork, and a client
    made before a fork is never used after it.
    """

    _instances = weakref.WeakSet()
    _instances_lock = threading.Lock()
    # Motor's clients keep the pymongo client in this attribute (motor.py).
    _delegate = False
    # What the proxies stand for (proxy.views_of): the driver's classes and their attribute names.
    _VIEWS = views_of(Database, Collection)

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
            self._clusters[name] = _Cluster(name, n.Settings(st))
        self._lock = threading.RLock()
        self._built_pid = os.getpid()
        self._handle = None
        self._attach_cfg = None      # the file as read again in a child (_attach)
        self._pid = None
        self._closed = False
        self._settings_generation = None  # mongosup_config_generation the settings were read at
        self._retired = []           # _Retired clients, closed once unreferenced
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
                self._attach()
                self._pid = os.getpid()
        return self._handle

    def _attach(self):
        """Attaches this process's slot.  A manager built in another process (the gunicorn master,
        before fork) reads its file again first: the supervisor may have reloaded it since, and a
        worker's handle follows only the reloads after its attach.  A file that no longer loads
        leaves the parent's settings (one line on stderr), as a failed reload does."""
        cfg = self._cfg
        if self._built_pid != os.getpid():
            err = n.Error()
            fresh = _lib.mongosup_config_load(os.fsencode(self.config_path), self.environment.encode(),
                                              ctypes.byref(err))
            if fresh:
                self._attach_cfg = cfg = ctypes.c_void_p(fresh)
            else:
                _warn("configuration reload failed, keeping the settings read before fork: %s" % err.text())
        err = n.Error()
        h = _lib.mongosup_attach(cfg, ctypes.byref(err))
        if h:
            self._handle = h
        else:
            self._handle = None
            _warn("cannot attach to the mongosup segment, serving without it (fail open): %s" % err.text())
        self._settings_generation = None

    def _forget_parent(self):
        """After fork: the parent's clients and handle are the parent's.  Clients are dropped, never
        closed or used (their sockets and threads belong to the parent); the inherited C handle is
        abandoned by mongosup_detach, which frees nothing of it (nor its configuration)."""
        for c in self._clusters.values():
            if c.client is not None:
                _inherited.append(c.client)
            c.client = c.recorder = c.built_with = None
            c.resolved = {}
            c.rebuild_due = None
            c.stale = False
        _inherited.extend(r.client for r in self._retired)
        self._retired = []
        if self._handle is not None:
            h = ctypes.c_void_p(self._handle)
            _lib.mongosup_detach(ctypes.byref(h), 0)
            self._handle = None
        self._attach_cfg = None

    def _cluster(self, name):
        c = self._clusters.get(name)
        if c is None:
            raise ConfigError("mongosup: cluster '%s' is not in the configuration (environment %s)"
                              % (name, self.environment))
        return c

    def _gate(self, name, handle):
        """The C gate (which follows a reload first): the generation to serve, or CircuitOpen /
        ShuttingDown / ConfigError (a cluster not in the configuration, or gone by a reload)."""
        if handle is None:
            return None
        gen = ctypes.c_uint64(0)
        err = n.Error()
        if _lib.mongosup_gate(handle, name.encode(), ctypes.byref(gen), ctypes.byref(err)):
            return gen.value
        if err.code == n.E_CIRCUIT_OPEN:
            raise CircuitOpen(name, err.text())
        if err.code == n.E_SHUTTING_DOWN:
            raise ShuttingDown(name, err.text())
        if err.code == n.E_UNKNOWN_CLUSTER:
            self._retire_removed(name)
        raise ConfigError("mongosup: %s" % err.text())

    # ---- reloads ----

    def _follow_reload(self, handle):
        """The handle followed a reload (at the gate): the settings it follows now replace ours,
        and a client whose URI or keyword arguments change is rebuilt at its cluster's next
        get_client (docs/api.md, Reload: a new pool at once, the old one retired)."""
        with self._lock:
            seen = _lib.mongosup_config_generation(handle)
            if seen == self._settings_generation:
                return
            for c in self._clusters.values():
                st = n.ClusterSettings()
                if not _lib.mongosup_current_settings(handle, c.bname, ctypes.byref(st), None):
                    continue  # removed by the reload: the gate refuses it
                c.settings = n.Settings(st)
                if c.client is not None and self._build_args(c) != c.built_with:
                    c.stale = True
            self._settings_generation = seen

    def _added_cluster(self, name, handle):
        """A cluster that the handle knows and we do not: added by a reload."""
        st = n.ClusterSettings()
        with self._lock:
            if name not in self._clusters and \
                    _lib.mongosup_current_settings(handle, name.encode(), ctypes.byref(st), None):
                self._clusters[name] = _Cluster(name, n.Settings(st))
        return self._cluster(name)

    def _retire_removed(self, name):
        with self._lock:
            c = self._clusters.get(name)
            if c is not None and c.client is not None:
                self._retire(c)
                c.client = c.recorder = c.built_with = None
                c.resolved = {}

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
        kw["appname"] = s.appname or "mongosup-%d" % os.getpid()
        kw.update(self._client_kwargs)
        return kw

    def _build_args(self, c):
        return c.settings.uri, self.client_kwargs(c.name)

    def _new_client(self, c, handle):
        uri, kw = self._build_args(c)
        recorder = Recorder(handle, c.name, kw["maxPoolSize"])
        # The URI carries the secrets: it goes to the driver and nowhere else.
        c.client = self._client_class()(uri, event_listeners=listeners_for(recorder), **kw)
        driver = c.client.delegate if self._delegate else c.client
        recorder.selection_watched = watch_server_selection(getattr(driver, "_topology", None), recorder)
        c.recorder = recorder
        c.resolved = {}  # what the proxies resolved refers to the replaced client: let it go
        c.built_with = (uri, kw)
        c.stale = False
        c.rebuild_due = None

    def _client_class(self):
        return pymongo.MongoClient

    def _close_client(self, client):
        client.close()

    def _retire(self, c):
        """The cluster's client is replaced: it keeps working for whatever still refers to it (as a
        C pool retired by a rebuild serves the clients still out of it) and is closed once nothing
        does."""
        self._retired.append(_Retired(c.client, c.recorder))

    def _close_unreferenced(self):
        """Closes the retired clients that nothing refers to any more: no request, Database,
        Collection, cursor or operation of the application holds them, so none is closed under a
        running request.  Called at every get_client and by safe_point()."""
        with self._lock:
            done = [e for e in self._retired if not _held_elsewhere(e, self._delegate)]
            if not done:
                return 0
            self._retired = [e for e in self._retired if e not in done]
        for entry in done:
            entry.recorder.closing = True
            self._close_client(entry.client)
        return len(done)

    def safe_point(self):
        """A point between requests (gunicorn's post_request hook calls it): closes the clients that
        rebuilds replaced once nothing refers to them.  Returns how many it closed."""
        if self._closed or self._pid != os.getpid() or not self._retired:
            return 0
        return self._close_unreferenced()

    def get_client(self, cluster):
        """The cluster's client in this process.  Raises CircuitOpen when a live supervisor marks the
        cluster DOWN, ShuttingDown while it drains, ConfigError for an unknown cluster.  After the
        supervisor's reload, the first call with new settings for the cluster returns a new client
        built with them; after a reconnect generation, one built after this worker's delay."""
        handle = self._attached()
        gen = self._gate(cluster, handle)
        if handle is not None and _lib.mongosup_config_generation(handle) != self._settings_generation:
            self._follow_reload(handle)
        if self._retired:
            self._close_unreferenced()
        c = self._clusters.get(cluster)
        if c is None:
            c = self._added_cluster(cluster, handle) if handle is not None else self._cluster(cluster)
        client = c.client
        if client is not None and not c.stale and (gen is None or gen == c.generation):
            return client
        with self._lock:
            if c.client is None:
                self._new_client(c, handle)
                c.generation = gen or 0
                if handle is not None:
                    _lib.mongosup_serving_generation(handle, c.bname, c.generation, False)
            elif c.stale:
                # New settings: a new client at once, as the C pool (counted as a reconnect).
                self._retire(c)
                self._new_client(c, handle)
                if gen is not None:
                    c.generation = gen
                _lib.mongosup_serving_generation(handle, c.bname, c.generation, True)
            elif gen != c.generation:
                # The supervisor asked for a reconnect: after this worker's delay (spread over
                # reconnect_window_ms by slot), a new client; the old one keeps serving until then.
                now = time.monotonic()
                if c.rebuild_due is None:
                    c.rebuild_due = now + _lib.mongosup_reconnect_delay_ms(handle, c.bname) / 1000.0
                if now >= c.rebuild_due:
                    self._retire(c)
                    self._new_client(c, handle)
                    c.generation = gen
                    _lib.mongosup_serving_generation(handle, c.bname, gen, True)
            return c.client

    def database(self, cluster, name=None):
        """The cluster's database `name` (else its configured database_name, as reloaded) as a
        DatabaseProxy: each operation on it, or on a collection taken from it, goes to the cluster's
        current client through the gate, so one kept in a module global follows reloads and
        reconnects and the client it replaces is closed once no request uses it.  Making it
        attaches nothing and connects nothing (fine at import time in a gunicorn master).
        Synchronous in both managers."""
        c = self._clusters.get(cluster)
        if c is None:
            if self._pid != os.getpid() or self._handle is None:
                self._cluster(cluster)  # ConfigError: not in the file as read
            self.get_client(cluster)    # added by a reload, or ConfigError
            c = self._cluster(cluster)
        if name is not None and not isinstance(name, str):
            raise TypeError("name must be an instance of str")
        _database_name(c, name, c.settings)
        return DatabaseProxy(self, cluster, name)

    get_database = database

    def _database_now(self, cluster, name=None):
        """The driver's Database of the cluster's current client, through the gate: what one
        attempt of run() works with from start to end."""
        client = self.get_client(cluster)
        c = self._cluster(cluster)
        return client[_database_name(c, name, c.settings)]

    def _resolve_proxy(self, proxy):
        """The driver object a proxy stands for, made from the cluster's current client (get_client:
        the gate, the reload, the reconnect generation, closing what nothing holds).  Made once per
        client and settings and cached in the cluster (c.resolved, emptied when the client is
        replaced, so the cache never holds a replaced client); an entry is used only while it was
        made from this very client and settings, so one stored by a thread that lost a race with
        a rebuild or a reload is never served."""
        cluster = proxy._mongosup_cluster
        client = self.get_client(cluster)
        c = self._clusters[cluster]
        settings = c.settings
        key = proxy._mongosup_key  # (dbname, the path's steps)
        hit = c.resolved.get(key)
        if hit is not None and hit[0] is client and hit[1] is settings:
            return hit[2]
        obj = client[_database_name(c, proxy._mongosup_dbname, settings)]
        for method, args, kwargs in proxy._mongosup_path:
            obj = getattr(obj, method)(*args, **kwargs)
        with self._lock:
            if c.client is client and c.settings is settings:
                if len(c.resolved) >= _PROXY_CACHE_LIMIT:
                    c.resolved = {}
                c.resolved[key] = (client, settings, obj, proxy._mongosup_path)
        return obj

    def _attempts(self, cluster):
        return Attempts(self._attached(), self._cluster(cluster))

    def run(self, cluster, fn):
        """fn(database) with mongosup_run's retry policy (mongosup.retry.Attempts): transient
        failures are retried with backoff and jitter; CircuitOpen, ShuttingDown and a pool's
        wait-queue timeout are raised at once; the last failure is raised as pymongo raised it."""
        attempts = None
        while True:
            db = self._database_now(cluster)  # the gate, the last reload; one client for the attempt
            attempts = attempts or self._attempts(cluster)
            attempts.begin()
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
        """Closes the clients (those that rebuilds replaced too) and detaches this process's slot
        (its counters stay in the segment's totals).  The manager refuses further use."""
        with self._lock:
            if self._closed:
                return
            if self._pid == os.getpid():
                closing = self._retired + [_Retired(c.client, c.recorder) for c in self._clusters.values()
                                           if c.client is not None]
                for c in self._clusters.values():
                    c.client = c.recorder = None
                    c.resolved = {}
                self._retired = []
                for entry in closing:
                    entry.recorder.closing = True
                    self._close_client(entry.client)
                    # A client the application still holds reopens when used (pymongo 3.11): its
                    # events then record nowhere rather than into a detached handle.
                    entry.recorder.handle = None
                if self._handle is not None:
                    h = ctypes.c_void_p(self._handle)
                    _lib.mongosup_detach(ctypes.byref(h), drain_timeout_ms)
                if self._attach_cfg is not None:
                    _lib.mongosup_config_destroy(ctypes.byref(self._attach_cfg))
            else:
                self._forget_parent()
            self._handle = None
            self._attach_cfg = None
            self._closed = True

    def __del__(self):
        cfg = getattr(self, "_cfg", None)
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
