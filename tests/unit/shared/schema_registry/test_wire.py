"""Where an Avro record's schema id travels: the Confluent frame and the Event Hubs content type."""

from __future__ import annotations

import struct

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


@pytest.mark.parametrize("schema_id", [2**31, 2**31 + 7, 2**32 - 1])
def test_a_confluent_id_past_a_java_int_is_not_avro(schema_id: int) -> None:
    """The id is a signed 32-bit int (the registry's Java Integer): past 2**31-1 it reads negative and names no
    schema; asked, a registry answers a bare 404 the client takes for a wrong URL, which stalls the partition."""
    with pytest.raises(NotAvro, match="from 1 to 2"):
        confluent_split(struct.pack(">BI", 0, schema_id) + b"\x02")
    assert confluent_split(struct.pack(">BI", 0, 2**31 - 1) + b"\x02")[0] == str(2**31 - 1)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("avro/binary+0123abcd0123abcd0123abcd0123abcd", "0123abcd0123abcd0123abcd0123abcd"),
        ("Avro/Binary+ 0123ABCD0123abcd0123abcd0123abcd ", "0123ABCD0123abcd0123abcd0123abcd"),
    ],
)
def test_event_hubs_content_type_names_the_schema_id(header: str, expected: str) -> None:
    assert schema_id_of_content_type(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "application/json",
        "avro/binary",
        "avro/binary+",
        "avro/binary+a/b",
        # Not the service's id form (32 hex digits): it answers such ids 400 InvalidRequest, not 404.
        "avro/binary+42",
        "avro/binary+fakeschemaid",
        "avro/binary+" + "0" * 64,
        "avro/binary+0123abcd0123abcd0123abcd0123abc",
        "avro/binary+0123abcd-0123-abcd-0123-abcd0123abcd",
        "avro/binary+0123abcd0123abcd0123abcd0123abcg",
    ],
)
def test_a_content_type_without_an_avro_schema_id_is_not_avro(header: str | None) -> None:
    with pytest.raises(NotAvro):
        schema_id_of_content_type(header)
