"""_native: loads libmongosup through ctypes and declares the C functions the package calls."""

import ctypes
import os

# The library's file name; where it is looked for: _library_path().
DEFAULT_LIBRARY = "libmongosup.so.0"

ERROR_MONGOSUP = 1
ERROR_DRIVER = 2

# mongosup_error_code_t
E_CONFIG = 1
E_SEGMENT = 2
E_UNKNOWN_CLUSTER = 3
E_CIRCUIT_OPEN = 4
E_POOL_TIMEOUT = 5
E_SHUTTING_DOWN = 6
E_FORKED = 7

# mongosup_op_class_t
OP_READ, OP_WRITE, OP_COMMAND = 0, 1, 2

# mongosup_fail_class_t
FAIL_NONE = -1
FAIL_NETWORK = 0
FAIL_TIMEOUT = 1
FAIL_SERVER_SELECTION = 2
FAIL_AUTH = 3
FAIL_SERVER = 4
FAIL_CIRCUIT_OPEN = 5
FAIL_SHUTTING_DOWN = 6
FAIL_OTHER = 7

# mongosup_pool_event_t
POOL_CHECKOUT_WAIT = 1
POOL_CHECKOUT_SUCCEEDED = 2
POOL_CHECKOUT_FAILED = 3
POOL_CHECKED_IN = 4
POOL_CONNECTION_CREATED = 5
POOL_CONNECTION_CLOSED = 6
POOL_RETRY = 7

HEALTH_NAMES = {0: "UNKNOWN", 1: "UP", 2: "DEGRADED", 3: "DOWN", 4: "RECOVERING"}


class Error(ctypes.Structure):
    """mongosup_error_t."""
    _fields_ = [("domain", ctypes.c_uint32), ("code", ctypes.c_uint32),
                ("driver_domain", ctypes.c_uint32), ("driver_code", ctypes.c_uint32),
                ("message", ctypes.c_char * 496)]

    def text(self):
        return self.message.decode("utf-8", "replace")


class ClusterSettings(ctypes.Structure):
    """mongosup_cluster_settings_t (its size is checked against the library's)."""
    _fields_ = [("uri", ctypes.c_char_p), ("uri_display", ctypes.c_char_p),
                ("database_name", ctypes.c_char_p), ("appname", ctypes.c_char_p)] + [
        (name, ctypes.c_uint32) for name in (
            "max_pool_size", "min_pool_size", "max_idle_time_ms", "wait_queue_timeout_ms",
            "connect_timeout_ms", "socket_timeout_ms", "server_selection_timeout_ms",
            "heartbeat_frequency_ms", "retry_max_attempts", "retry_deadline_ms", "retry_backoff_ms",
            "max_connections", "max_connecting", "reconnect_window_ms")] + [
        (name, ctypes.c_bool) for name in (
            "retry_writes", "retry_reads", "circuit_breaker", "is_replica_set")]


class Settings(object):
    """A cluster's resolved settings copied out of a ClusterSettings (str for the strings, None for
    NULL): they outlive the configuration or handle the library filled them from.  uri carries
    the secrets: it goes to the driver and nowhere else."""

    __slots__ = tuple(name for name, _ in ClusterSettings._fields_)

    def __init__(self, st):
        for name in self.__slots__:
            value = getattr(st, name)
            setattr(self, name, value.decode("utf-8", "replace") if isinstance(value, bytes) else value)


_P = ctypes.c_void_p
_S = ctypes.c_char_p
_E = ctypes.POINTER(Error)

_PROTOTYPES = {
    "mongosup_version": (_S, []),
    "mongosup_config_load": (_P, [_S, _S, _E]),
    "mongosup_config_destroy": (None, [ctypes.POINTER(_P)]),
    "mongosup_config_environment": (_S, [_P]),
    "mongosup_config_cluster_count": (ctypes.c_size_t, [_P]),
    "mongosup_config_cluster_name": (_S, [_P, ctypes.c_size_t]),
    "mongosup_cluster_settings_size": (ctypes.c_size_t, []),
    "mongosup_cluster_settings": (ctypes.c_bool, [_P, _S, ctypes.POINTER(ClusterSettings), _E]),
    "mongosup_attach": (_P, [_P, _E]),
    "mongosup_detach": (ctypes.c_bool, [ctypes.POINTER(_P), ctypes.c_uint32]),
    "mongosup_draining": (ctypes.c_bool, [_P]),
    "mongosup_worker_slot": (ctypes.c_int, [_P]),
    "mongosup_current_settings": (ctypes.c_bool, [_P, _S, ctypes.POINTER(ClusterSettings), _E]),
    "mongosup_config_generation": (ctypes.c_uint64, [_P]),
    "mongosup_gate": (ctypes.c_bool, [_P, _S, ctypes.POINTER(ctypes.c_uint64), _E]),
    "mongosup_command_class": (ctypes.c_int, [_S]),
    "mongosup_record_op": (None, [_P, _S, ctypes.c_int, ctypes.c_uint64, ctypes.c_int, ctypes.c_uint32, _S]),
    "mongosup_record_failure": (None, [_P, _S, ctypes.c_int, ctypes.c_uint32, _S]),
    "mongosup_record_heartbeat_ok": (None, [_P, _S]),
    "mongosup_record_pool": (None, [_P, _S, ctypes.c_int, ctypes.c_uint64]),
    "mongosup_connection_acquire": (ctypes.c_bool, [_P, _S, _E]),
    "mongosup_connection_release": (None, [_P, _S]),
    "mongosup_cluster_health": (ctypes.c_int, [_P, _S, ctypes.POINTER(ctypes.c_bool)]),
    "mongosup_reconnect_delay_ms": (ctypes.c_uint32, [_P, _S]),
    "mongosup_serving_generation": (None, [_P, _S, ctypes.c_uint64, ctypes.c_bool]),
}


def _library_path():
    """$MONGOSUP_LIBRARY (a path); else, for a package that make install put in place, the library
    installed with it when it is there (found relative to the package first, which holds in a
    tree staged with DESTDIR or moved as a whole, then in the configured libdir); else the file
    name, for the dynamic linker's search path (pip install, or a library installed elsewhere)."""
    path = os.environ.get("MONGOSUP_LIBRARY")
    if path:
        return path
    try:
        from . import _install  # written by make install only (python/local.mk)
    except ImportError:
        return DEFAULT_LIBRARY
    package = os.path.dirname(os.path.realpath(__file__))
    for libdir in (os.path.join(package, _install.LIBDIR_FROM_PACKAGE), _install.LIBDIR):
        candidate = os.path.normpath(os.path.join(libdir, DEFAULT_LIBRARY))
        if os.path.exists(candidate):
            return candidate
    return DEFAULT_LIBRARY


def _load():
    path = _library_path()
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise ImportError(
            "mongosup: cannot load the shared library %s (%s); install libmongosup "
            "(make install) or set MONGOSUP_LIBRARY to its path" % (path, exc), path=path) from None
    for name, (restype, argtypes) in _PROTOTYPES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise ImportError("mongosup: the shared library %s has no %s: it is older than this "
                              "package" % (path, name), path=path) from None
        fn.restype = restype
        fn.argtypes = argtypes
    if lib.mongosup_cluster_settings_size() != ctypes.sizeof(ClusterSettings):
        raise ImportError("mongosup: the shared library %s does not match this package "
                          "(mongosup_cluster_settings_t has another size)" % path, path=path)
    return lib, path


lib, library_path = _load()
