"""mongosup: pymongo and Motor connection management that reports into mongosup's shared segment and fails fast."""

from ._native import library_path
from .errors import CircuitOpen, ConfigError, MongosupError, ShuttingDown
from .manager import ConnectionManager
from .proxy import CollectionProxy, DatabaseProxy, unwrap

__all__ = ["ConnectionManager", "MotorConnectionManager", "DatabaseProxy", "CollectionProxy", "unwrap",
           "CircuitOpen", "ShuttingDown", "ConfigError", "MongosupError", "library_path"]


def __getattr__(name):
    # Motor is optional: imported only when its manager is asked for.
    if name == "MotorConnectionManager":
        from .motor import MotorConnectionManager
        return MotorConnectionManager
    raise AttributeError(name)
