"""errors: the exceptions the manager raises; subclasses of pymongo's, so existing `except` clauses handle them."""

from pymongo.errors import ConfigurationError, ConnectionFailure


class MongosupError(Exception):
    """Base of mongosup's own exceptions."""


class CircuitOpen(MongosupError, ConnectionFailure):
    """The supervisor marks the cluster DOWN: refused at once instead of waiting for server selection."""

    def __init__(self, cluster, message):
        ConnectionFailure.__init__(self, message)
        self.cluster = cluster


class ShuttingDown(MongosupError, ConnectionFailure):
    """The supervisor is draining (or the manager is closing): finish the work in hand and exit."""

    def __init__(self, cluster, message):
        ConnectionFailure.__init__(self, message)
        self.cluster = cluster


class ConfigError(MongosupError, ConfigurationError):
    """The mongosup configuration file does not load (the message has file:line), or an unknown cluster."""
