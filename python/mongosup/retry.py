"""retry: mongosup_run's retry policy for Python callers (attempts, deadline, exponential backoff with equal jitter)."""

import random
import time

from . import _native as n
from .classify import exception_class, is_refusal, is_transient


class Attempts(object):
    """The attempts of one run(): after a failure, the pause before the next one, or None to give up.

    Transient failures (network errors and socket timeouts, the NotWritablePrimary /
    ShutdownInProgress codes, the RetryableWriteError / TransientTransactionError labels) are
    retried up to retry_max_attempts, and none starts past retry_deadline_ms; the pause before
    retry k is retry_backoff_ms * 2^(k-1) (capped at 1024x), half fixed and half random, so
    workers hit by the same failover do not retry in lockstep.  Refusals (CircuitOpen,
    ShuttingDown, a pool's wait-queue timeout) are never retried.  Each retry is counted.
    """

    def __init__(self, handle, cluster):
        s = cluster.settings
        self.handle = handle
        self.cluster = cluster
        self.max_attempts = max(1, s.retry_max_attempts)
        self.base_ms = s.retry_backoff_ms
        self.deadline = time.monotonic() + s.retry_deadline_ms / 1000.0
        self.attempt = 0
        # The client's topology counts selection failures itself when it can (listeners.py).
        self.count_selection = not (cluster.recorder is not None and cluster.recorder.selection_watched)

    def begin(self):
        self.attempt += 1

    def pause_after(self, exc):
        self._count_unseen(exc)
        if is_refusal(exc) or not is_transient(exc) or self.attempt >= self.max_attempts:
            return None
        full = (self.base_ms / 1000.0) * (2 ** min(self.attempt - 1, 10))
        pause = full / 2 + random.uniform(0, full / 2)
        if time.monotonic() + pause >= self.deadline:
            return None
        if self.handle is not None:
            n.lib.mongosup_record_pool(self.handle, self.cluster.bname, n.POOL_RETRY, 0)
        return pause

    def _count_unseen(self, exc):
        """Failures that no event reports: server selection fails before any command is sent (unless
        the client's topology is watched: listeners.watch_server_selection)."""
        if self.handle is not None and self.count_selection and exception_class(exc) == n.FAIL_SERVER_SELECTION:
            n.lib.mongosup_record_failure(self.handle, self.cluster.bname, n.FAIL_SERVER_SELECTION, 0,
                                          str(exc).encode("utf-8", "replace"))
