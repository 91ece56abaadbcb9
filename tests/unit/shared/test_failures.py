"""Failure classes: transient or permanent, decided once; a waiting partition is logged once a minute."""

from __future__ import annotations

import errno
import logging

import pytest

from shared.errors import LakeError, LakeUnavailable
from shared.failures import StallLog, classify, classify_entity_error
from shared.records import KafkaRecord, offset_spans
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
