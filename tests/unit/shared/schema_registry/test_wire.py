"""Where an Avro record's schema id travels: the Confluent frame and the Event Hubs content type."""

from __future__ import annotations

import pytest

from shared.schema_registry.wire import NotAvro, confluent_frame, confluent_split, schema_id_of_content_type


def test_confluent_framing_round_trips_and_refuses_what_is_not_framed() -> None:
    framed = confluent_frame("7", b"\x02ab")
    assert framed[:5] == b"\x00\x00\x00\x00\x07"
    schema_id, body = confluent_split(framed)
    assert (schema_id, bytes(body)) == ("7", b"\x02ab")
    for value, message in [(b'{"json":1}', "magic byte 0x7b"), (b"\x00\x00", "shorter"), (b"\x00" * 5, "id 0")]:
        with pytest.raises(NotAvro, match=message):
            confluent_split(value)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("avro/binary+0123abcd0123abcd0123abcd0123abcd", "0123abcd0123abcd0123abcd0123abcd"), ("Avro/Binary+42", "42")],
)
def test_event_hubs_content_type_names_the_schema_id(header: str, expected: str) -> None:
    assert schema_id_of_content_type(header) == expected


@pytest.mark.parametrize("header", [None, "", "application/json", "avro/binary", "avro/binary+", "avro/binary+a/b"])
def test_a_content_type_without_an_avro_schema_id_is_not_avro(header: str | None) -> None:
    with pytest.raises(NotAvro):
        schema_id_of_content_type(header)
