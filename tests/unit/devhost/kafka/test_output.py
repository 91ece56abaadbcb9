"""The Kafka output binding: what a function sets becomes keyed records with headers."""

from __future__ import annotations

import json

import pytest

from devhost.kafka.output import parse_output


def _event(key: str, value: str) -> dict[str, object]:
    """The extension's Kafka event object: Key and Headers count only when all six fields are there."""
    headers = [{"Key": "traceparent", "Value": "00-abc-def-01"}]
    return {
        "Offset": 0,
        "Partition": 0,
        "Topic": "",
        "Timestamp": "2026-11-24T10:30:00Z",
        "Key": key,
        "Value": value,
        "Headers": headers,
    }


def test_kafka_event_objects_become_keyed_records_with_headers() -> None:
    payload = json.dumps([_event("u1", '{"x":1}'), _event("u2", '{"x":2}')])
    records = parse_output(payload)
    assert [(r.key, r.value) for r in records] == [(b"u1", b'{"x":1}'), (b"u2", b'{"x":2}')]
    assert records[0].headers == (("traceparent", b"00-abc-def-01"),)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", [b"plain text"]),
        ('{"no": "event fields"}', [b'{"no": "event fields"}']),
        ('["a", {"b": 1}]', [b"a", b'{"b":1}']),
        (["one", "two"], [b"one", b"two"]),
        (b"\x00raw", [b"\x00raw"]),
        (None, []),
    ],
)
def test_other_output_values_follow_the_extension(value: object, expected: list[bytes]) -> None:
    assert [(r.key, r.value) for r in parse_output(value)] == [(None, v) for v in expected]
