"""Transient or permanent: every failure is classified here, once, and a waiting partition is loud.

Three classes (docs/reliability.md has the table):

- ``transient``: may heal by itself (timeouts, throttling, 5xx, connection errors). The trigger's
  retry policy retries with backoff.
- ``record``: one record's own problem (an entity 4xx for its key). Never raised: the records
  become dead letters and the batch goes on.
- ``infrastructure``: will not heal without someone acting (403, missing container or entity
  function, unsafe path, an unknown error). The batch still fails so nothing is skipped and the
  partition waits, but :class:`StallLog` logs it once a minute and counts it in a metric.
"""

from __future__ import annotations

import errno
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from shared.errors import ConfigurationError, LakeError, RecordRejected, StateBackendError, TransientError
from shared.records import OffsetSpans


class ErrorClass(StrEnum):
    """What a failure means: retry (``transient``), wait loudly (``infrastructure``), or dead-letter its record."""

    TRANSIENT = "transient"
    INFRASTRUCTURE = "infrastructure"
    RECORD = "record"


log = logging.getLogger("streamingpoc.failures")

TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
INFRASTRUCTURE_STATUS = frozenset({401, 403, 404, 405, 407})  # the API as a whole refuses us
_STATUS = re.compile(r"status code (\d{3})")
STALL_LOG_INTERVAL_S = 60.0


def http_status(error: BaseException) -> int | None:
    """The HTTP status an error carries (``status``/``status_code`` or the durable client's message)."""
    for name in ("status", "status_code"):
        value = getattr(error, name, None)
        if isinstance(value, int):
            return value
    found = _STATUS.search(str(error))
    return int(found.group(1)) if found else None


def classify_entity_error(error: BaseException) -> ErrorClass:
    """What an entity read or signal failure means for the record whose key it was for."""
    if isinstance(error, RecordRejected):
        return ErrorClass.RECORD
    if isinstance(error, TransientError | TimeoutError | ConnectionError):
        return ErrorClass.TRANSIENT
    status = http_status(error)
    if status is None:
        # aiohttp's client errors and the like: the endpoint did not answer.
        return ErrorClass.TRANSIENT if _is_connection_error(error) else ErrorClass.INFRASTRUCTURE
    if status in TRANSIENT_STATUS or status >= 500:
        return ErrorClass.TRANSIENT
    if status in INFRASTRUCTURE_STATUS:
        return ErrorClass.INFRASTRUCTURE
    return ErrorClass.RECORD if 400 <= status < 500 else ErrorClass.INFRASTRUCTURE


# OS errors no retry heals: a path that is not a directory, no permission, a full or read-only disk.
_PERMANENT_ERRNOS = frozenset({errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EROFS})


def classify(error: BaseException) -> ErrorClass:
    """What a failed invocation means for its partition: ``transient`` or ``infrastructure``."""
    cause = error.__cause__
    if isinstance(error, TransientError) and isinstance(cause, OSError) and cause.errno in _PERMANENT_ERRNOS:
        return ErrorClass.INFRASTRUCTURE  # the local lake maps every OSError to LakeUnavailable; these will not pass
    if isinstance(error, TransientError):
        return ErrorClass.TRANSIENT
    if isinstance(error, LakeError | StateBackendError | ConfigurationError):
        return ErrorClass.INFRASTRUCTURE
    if isinstance(error, TimeoutError | ConnectionError):
        return ErrorClass.TRANSIENT
    if isinstance(error, OSError):
        return ErrorClass.INFRASTRUCTURE if error.errno in _PERMANENT_ERRNOS else ErrorClass.TRANSIENT
    return ErrorClass.TRANSIENT if _is_connection_error(error) else ErrorClass.INFRASTRUCTURE


def _is_connection_error(error: BaseException) -> bool:
    names = {cls.__name__ for cls in type(error).__mro__}
    return bool(names & {"ClientConnectionError", "ServerTimeoutError", "ClientOSError", "ServerDisconnectedError"})


@dataclass
class _Stall:
    first_offset: int
    last_offset: int
    attempts: int
    since: float
    logged_at: float
    error_class: ErrorClass
    cause: str


class StallLog:
    """Failed attempts per (source, topic, partition): one error log a minute while a partition waits.

    ``failed`` is called by the processing core when an invocation is about to raise, ``succeeded``
    when one lands; ``on_failure`` receives every failure (the metric). One per worker process.
    """

    def __init__(
        self,
        interval_s: float = STALL_LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        on_failure: Callable[[str, ErrorClass], None] | None = None,
    ) -> None:
        self.interval_s = interval_s
        self.clock = clock
        self.on_failure = on_failure
        self._stalls: dict[tuple[str, str, int], _Stall] = {}
        self._lock = threading.Lock()

    def failed(self, source: str, spans: OffsetSpans, error: BaseException) -> ErrorClass:
        error_class = classify(error)
        cause = f"{type(error).__name__}: {error}"[:500]
        now = self.clock()
        for (topic, partition), (first, last) in spans.items():
            with self._lock:
                stall = self._stalls.get((source, topic, partition))
                if stall is None or stall.first_offset != first:
                    stall = _Stall(first, last, 0, now, now - self.interval_s, error_class, cause)
                    self._stalls[(source, topic, partition)] = stall
                stall.attempts += 1
                stall.last_offset = max(stall.last_offset, last)
                stall.error_class, stall.cause = error_class, cause
                due = now - stall.logged_at >= self.interval_s
                if due:
                    stall.logged_at = now
            if due:
                log.log(
                    logging.ERROR if error_class is ErrorClass.INFRASTRUCTURE else logging.WARNING,
                    "partition waiting: source=%s topic=%s partition=%d offsets=%d-%d attempts=%d "
                    "waiting_s=%.0f class=%s cause=%s",
                    source,
                    topic,
                    partition,
                    stall.first_offset,
                    stall.last_offset,
                    stall.attempts,
                    now - stall.since,
                    error_class,
                    cause,
                    extra={"source": source, "partition": partition, "error_class": str(error_class)},
                )
        if self.on_failure is not None:
            self.on_failure(source, error_class)
        return error_class

    def succeeded(self, source: str, spans: OffsetSpans) -> None:
        if not self._stalls:  # nothing waits: the common case costs no pass over the batch
            return
        for topic, partition in spans:
            with self._lock:
                stall = self._stalls.pop((source, topic, partition), None)
            if stall is not None:
                log.warning(
                    "partition flowing again: source=%s topic=%s partition=%d after %d failed attempts in %.0f s",
                    source,
                    topic,
                    partition,
                    stall.attempts,
                    self.clock() - stall.since,
                )

    def waiting(self) -> dict[tuple[str, str, int], dict[str, object]]:
        """The partitions currently waiting, with their offsets, attempts, class and cause."""
        with self._lock:
            return {
                key: {
                    "first_offset": s.first_offset,
                    "last_offset": s.last_offset,
                    "attempts": s.attempts,
                    "waiting_s": round(self.clock() - s.since, 1),
                    "error_class": s.error_class,
                    "cause": s.cause,
                }
                for key, s in self._stalls.items()
            }


_fast_path_failures: set[tuple[str, str, str]] = set()


def fast_path_failed(step: str, source: str, error: BaseException) -> None:
    """A batch left a fast path for the row by row one (which names any failing record). Logged once
    per step, source and kind of error, so a fast path that stopped working does not go unnoticed."""
    key = (step, source, type(error).__name__)
    if key not in _fast_path_failures:
        _fast_path_failures.add(key)
        log.warning("%s for %s failed, the batch goes row by row: %s: %s", step, source, type(error).__name__, error)
