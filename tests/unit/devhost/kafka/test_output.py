"""The Kafka output binding: what a function sets becomes keyed records with headers."""

from __future__ import annotations

import pytest

from devhost.kafka.output import parse_output
from shared.generator_ticks import OutgoingMessage, kafka_output_payload
from tests.conftest import FIXED_NOW


def test_generator_payload_becomes_keyed_records_with_headers() -> None:
    payload = kafka_output_payload(
        [OutgoingMessage("u1", '{"x":1}'), OutgoingMessage("u2", '{"x":2}')],
        now=FIXED_NOW,
        headers={"traceparent": "00-abc-def-01"},
    )
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
