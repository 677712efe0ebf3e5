"""listeners: pymongo monitoring listeners that record commands, pool events and heartbeats into this worker's slot."""

import threading
import time
import weakref

from pymongo import monitoring
from pymongo.errors import ServerSelectionTimeoutError
from pymongo.monitoring import ConnectionCheckOutFailedReason

from . import _native as n
from .classify import failed_event_class

_lib = n.lib


class Recorder(object):
    """What every listener of one client shares: the handle, the cluster, the pool's size.

    pymongo calls listeners on the application's threads (and Motor on its
    executor's), synchronously, inside the operation: each event is one
    ctypes call into relaxed atomic adds on this worker's own slot.
    """

    def __init__(self, handle, cluster, max_pool_size):
        self.handle = handle            # a ctypes c_void_p value (int); never used after fork
        self.cluster = cluster.encode()
        self.max_pool_size = max_pool_size
        self.local = threading.local()  # per thread: a checkout's start, a failure already counted
        self.lock = threading.Lock()
        self.in_use = {}                # address -> connections out of that server's pool
        self.paid = set()               # (address, connection id) holding a budget token
        self.classes = {}               # command name -> operation class (cached C answer)
        self.budget_refused = 0         # connections the host's max_connections could not pay for
        self.selection_watched = False  # watch_server_selection counts this client's selection failures
        self.closing = False            # the manager closes the client: its own selections are not the application's

    def op_class(self, name):
        cls = self.classes.get(name)
        if cls is None:
            cls = self.classes[name] = _lib.mongosup_command_class(name.encode())
        return cls


class CommandRecorder(monitoring.CommandListener):
    """Every command's class and latency; failures by class.  Write errors in an ok:1 reply
    count as server failures, as mongosup_checkin's outcome does on the mongoc path."""

    def __init__(self, recorder):
        self.r = recorder

    def started(self, event):
        pass

    def succeeded(self, event):
        r = self.r
        cls = r.op_class(event.command_name)
        reply = event.reply
        werr = reply.get("writeErrors") if isinstance(reply, dict) else None
        wce = reply.get("writeConcernError") if isinstance(reply, dict) else None
        if werr or wce:
            first = werr[0] if werr else wce
            _lib.mongosup_record_op(r.handle, r.cluster, cls, event.duration_micros, n.FAIL_SERVER,
                                    int(first.get("code", 0)) & 0xFFFFFFFF,
                                    str(first.get("errmsg", "write error")).encode("utf-8", "replace"))
            return
        _lib.mongosup_record_op(r.handle, r.cluster, cls, event.duration_micros, n.FAIL_NONE, 0, None)

    def failed(self, event):
        r = self.r
        failure = event.failure
        fail = failed_event_class(event.command_name, failure)
        code = failure.get("code", 0) if isinstance(failure, dict) else 0
        message = failure.get("errmsg", "") if isinstance(failure, dict) else str(failure)
        _lib.mongosup_record_op(r.handle, r.cluster, r.op_class(event.command_name), event.duration_micros,
                                fail, int(code or 0) & 0xFFFFFFFF, str(message).encode("utf-8", "replace"))
        r.local.counted = True  # a checkout failing after this (auth) is not counted twice


class PoolRecorder(monitoring.ConnectionPoolListener):
    """CMAP events: checkouts, their waits, timeouts, connections created and closed, and the gauges.
    A checkout waits when max_pool_size connections of that server are out (pymongo's semaphore)."""

    def __init__(self, recorder):
        self.r = recorder

    def pool_created(self, event):
        pass

    def pool_cleared(self, event):
        pass

    def pool_closed(self, event):
        pass

    def connection_ready(self, event):
        pass

    def connection_check_out_started(self, event):
        r = self.r
        tl = r.local
        tl.counted = False
        # A single dict read is atomic under the GIL; the updates below take the lock.
        waits = r.in_use.get(event.address, 0) >= r.max_pool_size
        tl.wait_start = time.monotonic() if waits else None
        if waits:
            _lib.mongosup_record_pool(r.handle, r.cluster, n.POOL_CHECKOUT_WAIT, 1)

    def _waited_us(self):
        start = getattr(self.r.local, "wait_start", None)
        self.r.local.wait_start = None
        return 0 if start is None else max(1, int((time.monotonic() - start) * 1e6))

    def connection_checked_out(self, event):
        r = self.r
        with r.lock:
            r.in_use[event.address] = r.in_use.get(event.address, 0) + 1
        _lib.mongosup_record_pool(r.handle, r.cluster, n.POOL_CHECKOUT_SUCCEEDED, self._waited_us())

    def connection_check_out_failed(self, event):
        r = self.r
        waited = self._waited_us()
        if event.reason == ConnectionCheckOutFailedReason.TIMEOUT:
            _lib.mongosup_record_pool(r.handle, r.cluster, n.POOL_CHECKOUT_FAILED, waited)
        elif event.reason == ConnectionCheckOutFailedReason.CONN_ERROR and not getattr(r.local, "counted", False):
            # A new connection that could not connect (the handshake is not a command event).
            _lib.mongosup_record_failure(r.handle, r.cluster, n.FAIL_NETWORK, 0,
                                         ("cannot connect to %s:%s" % event.address).encode())

    def connection_checked_in(self, event):
        r = self.r
        with r.lock:
            r.in_use[event.address] = r.in_use.get(event.address, 1) - 1
        _lib.mongosup_record_pool(r.handle, r.cluster, n.POOL_CHECKED_IN, 0)

    def connection_created(self, event):
        r = self.r
        # pymongo cannot be refused a connection: the token is taken when the
        # host's budget has room, and a connection it cannot pay for is
        # counted (docs/python.md, "Connection budget").
        if _lib.mongosup_connection_acquire(r.handle, r.cluster, None):
            with r.lock:
                r.paid.add((event.address, event.connection_id))
        else:
            with r.lock:
                r.budget_refused += 1
        _lib.mongosup_record_pool(r.handle, r.cluster, n.POOL_CONNECTION_CREATED, 0)

    def connection_closed(self, event):
        r = self.r
        key = (event.address, event.connection_id)
        with r.lock:
            paid = key in r.paid
            r.paid.discard(key)
        if paid:
            _lib.mongosup_connection_release(r.handle, r.cluster)
        _lib.mongosup_record_pool(r.handle, r.cluster, n.POOL_CONNECTION_CLOSED, 0)


class HeartbeatRecorder(monitoring.ServerHeartbeatListener):
    """The driver's own monitor reaching a server opens the half-open gate while the row says DOWN."""

    def __init__(self, recorder):
        self.r = recorder

    def started(self, event):
        pass

    def succeeded(self, event):
        _lib.mongosup_record_heartbeat_ok(self.r.handle, self.r.cluster)

    def failed(self, event):
        pass


def watch_server_selection(topology, recorder):
    """Counts the client's server-selection failures, which pymongo 3.11 reports in no event (the
    operation fails before any command or checkout, and the topology and server listeners see
    only description changes).  The one place they surface is the topology's selection loop,
    which every operation goes through: this wraps it on that one Topology object (an instance
    attribute; nothing of pymongo's is patched globally), counts ServerSelectionTimeoutError and
    re-raises it unchanged.  Returns False when this pymongo has no such loop: then run() counts
    the failures it sees, as before."""
    loop = getattr(type(topology), "_select_servers_loop", None)
    if loop is None or not callable(loop):
        return False
    ref = weakref.ref(topology)  # no cycle through the instance attribute

    def select_servers_loop(selector, timeout, address):
        try:
            return loop(ref(), selector, timeout, address)
        except ServerSelectionTimeoutError as exc:
            if not recorder.closing:
                _lib.mongosup_record_failure(recorder.handle, recorder.cluster, n.FAIL_SERVER_SELECTION, 0,
                                             str(exc).encode("utf-8", "replace"))
            raise
    topology._select_servers_loop = select_servers_loop
    return True


def listeners_for(recorder):
    return [CommandRecorder(recorder), PoolRecorder(recorder), HeartbeatRecorder(recorder)]
