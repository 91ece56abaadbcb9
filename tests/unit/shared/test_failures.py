"""Failure classes: transient or permanent, decided once; a waiting partition is logged once a minute."""

from __future__ import annotations

import errno
import logging

import pytest

from shared.errors import LakeError, LakeUnavailable
from shared.failures import StallLog, classify, classify_entity_error
from shared.records import KafkaRecord, OffsetSpan, OffsetSpans, TopicPartition, offset_spans
from shared.state.keys import BadKey


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Exception("The operation failed with an unexpected status code 400"), "record"),
        (Exception("The operation failed with an unexpected status code 414"), "record"),
        (Exception("The operation failed with an unexpected status code 429"), "transient"),
        (Exception("The operation failed with an unexpected status code 503"), "transient"),
        (Exception("The operation failed with an unexpected status code 403"), "infrastructure"),
        (Exception("The operation failed with an unexpected status code 404"), "infrastructure"),
        (TimeoutError(), "transient"),
        (ConnectionRefusedError(), "transient"),
        (ValueError("no status"), "infrastructure"),
    ],
)
def test_entity_errors_are_classified_once(error: Exception, expected: str) -> None:
    assert classify_entity_error(error) == expected


def test_invocation_errors_are_transient_only_when_they_can_heal() -> None:
    assert classify(LakeUnavailable("HTTP 503")) == "transient"
    assert classify(LakeError("not authorised")) == "infrastructure"
    blocked = LakeUnavailable("cannot write")
    blocked.__cause__ = NotADirectoryError(errno.ENOTDIR, "Not a directory")
    assert classify(blocked) == "infrastructure"
    assert classify(RuntimeError("unknown")) == "infrastructure"


def test_stall_log_logs_once_a_minute_per_partition_and_counts_every_failure(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    counted: list[tuple[str, str]] = []
    stalls = StallLog(clock=lambda: now[0], on_failure=lambda s, c: counted.append((s, c)))
    records = [KafkaRecord("mobile", 0, offset, None, b"{}", None) for offset in range(10, 20)]
    caplog.set_level(logging.WARNING, "streamingpoc.failures")
    for _ in range(5):
        stalls.failed("mobile", offset_spans(records), LakeError("HTTP 403 forbidden"))
        now[0] += 10
    lines = [r.getMessage() for r in caplog.records if "partition waiting" in r.getMessage()]
    assert len(lines) == 1
    assert "source=mobile topic=mobile partition=0 offsets=10-19 attempts=1" in lines[0]
    assert "class=infrastructure" in lines[0] and "HTTP 403" in lines[0]
    now[0] += 60
    stalls.failed("mobile", offset_spans(records), LakeError("HTTP 403 forbidden"))
    assert sum("attempts=6" in r.getMessage() for r in caplog.records) == 1
    assert counted == [("mobile", "infrastructure")] * 6
    assert stalls.waiting()[("mobile", "mobile", 0)]["attempts"] == 6
    stalls.succeeded("mobile", offset_spans(records))
    assert stalls.waiting() == {}
    assert any("flowing again" in r.getMessage() for r in caplog.records)


def test_a_key_the_gateway_cannot_encode_is_the_records_problem() -> None:
    assert classify_entity_error(BadKey("entity key is empty")) == "record"


@pytest.mark.parametrize(
    ("status", "expected"),
    [(501, "transient"), (507, "transient"), (599, "transient"), (302, "infrastructure"), (304, "infrastructure")],
)
def test_every_5xx_may_heal_and_a_3xx_is_not_the_records_problem(status: int, expected: str) -> None:
    """Any 5xx is retried, not only the listed ones; a redirect is not a 4xx of the key: nothing is dead-lettered."""
    assert classify_entity_error(Exception(f"unexpected status code {status}")) == expected


def test_the_status_is_read_from_a_status_code_attribute_too() -> None:
    """Clients name it ``status`` or ``status_code``: a 400 under either is the record's own problem."""
    error = Exception("refused")
    error.status_code = 400  # type: ignore[attr-defined]
    assert classify_entity_error(error) == "record"


def test_a_dropped_connection_is_transient() -> None:
    """aiohttp's ServerDisconnectedError (by name, no import of aiohttp here) means the endpoint went away."""
    server_disconnected = type("ServerDisconnectedError", (Exception,), {})
    assert classify(server_disconnected("Server disconnected")) == "transient"
    assert classify_entity_error(server_disconnected("Server disconnected")) == "transient"


def test_a_full_disk_behind_the_local_lake_is_infrastructure() -> None:
    """ENOSPC does not heal by retrying: the partition waits loudly instead of retrying quietly."""
    full = LakeUnavailable("cannot write")
    full.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert classify(full) == "infrastructure"
    assert classify(OSError(errno.ENOSPC, "No space left on device")) == "infrastructure"


def _spans(low: int, high: int) -> OffsetSpans:
    return {TopicPartition("mobile", 0): OffsetSpan(low, high)}


def test_a_stall_follows_the_batch_that_waits_and_its_latest_class(caplog: pytest.LogCaptureFixture) -> None:
    """A retry of fewer records does not shrink the stall's last offset; a new first offset is a new stall
    (attempts from 1); ``waiting`` shows the latest failure's class; infrastructure logs at ERROR, the rest WARNING."""
    now = [1000.0]
    stalls = StallLog(clock=lambda: now[0])
    caplog.set_level(logging.WARNING, "streamingpoc.failures")
    stalls.failed("mobile", _spans(10, 19), LakeError("HTTP 403 forbidden"))
    assert [r.levelno for r in caplog.records] == [logging.ERROR]
    stalls.failed("mobile", _spans(10, 14), LakeUnavailable("HTTP 503"))
    waiting = stalls.waiting()[("mobile", "mobile", 0)]
    assert (waiting["first_offset"], waiting["last_offset"], waiting["attempts"]) == (10, 19, 2)
    assert waiting["error_class"] == "transient"
    now[0] += 5
    stalls.failed("mobile", _spans(20, 29), LakeUnavailable("HTTP 503"))
    waiting = stalls.waiting()[("mobile", "mobile", 0)]
    assert (waiting["first_offset"], waiting["last_offset"], waiting["attempts"]) == (20, 29, 1)
    assert caplog.records[-1].levelno == logging.WARNING and "offsets=20-29" in caplog.records[-1].getMessage()
