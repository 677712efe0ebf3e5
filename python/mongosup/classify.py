"""classify: pymongo's failures in mongosup's 8 failure classes, and the transient rule of mongosup_run."""

from pymongo.errors import (AutoReconnect, ConnectionFailure, NetworkTimeout, OperationFailure,
                            PyMongoError, ServerSelectionTimeoutError)

from . import _native as n

# Server codes of the NotWritablePrimary / ShutdownInProgress family (lib/classify.c).
TRANSIENT_CODES = frozenset((6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436))
TRANSIENT_LABELS = ("RetryableWriteError", "TransientTransactionError")
# AuthenticationFailed, and the codes a failed SASL conversation answers with.
AUTH_CODES = frozenset((18, 11, 13))
AUTH_COMMANDS = frozenset(("saslstart", "saslcontinue", "authenticate"))


def failed_event_class(command_name, failure):
    """The class of a CommandFailedEvent's failure document (pymongo's conversion of the exception)."""
    errtype = failure.get("errtype") if isinstance(failure, dict) else None
    if errtype == "NetworkTimeout":
        return n.FAIL_TIMEOUT
    if errtype in ("AutoReconnect", "ConnectionFailure", "NotMasterError"):
        return n.FAIL_SERVER if errtype == "NotMasterError" else n.FAIL_NETWORK
    code = failure.get("code") if isinstance(failure, dict) else None
    if command_name.lower() in AUTH_COMMANDS or code == 18:
        return n.FAIL_AUTH
    if code is not None:
        return n.FAIL_SERVER
    return n.FAIL_OTHER


def exception_class(exc):
    """The class of an exception raised to the application."""
    if isinstance(exc, ServerSelectionTimeoutError):
        return n.FAIL_SERVER_SELECTION
    if isinstance(exc, NetworkTimeout):
        return n.FAIL_TIMEOUT
    if isinstance(exc, OperationFailure):
        return n.FAIL_AUTH if exc.code == 18 else n.FAIL_SERVER
    if isinstance(exc, AutoReconnect):
        return n.FAIL_NETWORK
    return n.FAIL_OTHER


def is_transient(exc):
    """True for what mongosup_run retries: network errors and socket timeouts (not server selection,
    not a pool's wait-queue timeout), the NotWritablePrimary / ShutdownInProgress codes, and the
    RetryableWriteError / TransientTransactionError labels."""
    if isinstance(exc, PyMongoError) and any(exc.has_error_label(l) for l in TRANSIENT_LABELS):
        return True
    if isinstance(exc, ServerSelectionTimeoutError):
        return False
    if isinstance(exc, AutoReconnect):  # NetworkTimeout and NotMasterError included
        return True
    if isinstance(exc, OperationFailure):
        return exc.code in TRANSIENT_CODES
    return False


def is_refusal(exc):
    """A pool's wait-queue timeout: refused, not retried (as mongosup_run's pool timeout)."""
    return isinstance(exc, ConnectionFailure) and not isinstance(exc, AutoReconnect)
