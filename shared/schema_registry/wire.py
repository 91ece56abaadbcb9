"""Where an Avro record's schema id travels, and the dead-letter reasons of a record that has none.

Confluent's wire format (Confluent Cloud, Redpanda, Apicurio's ccompat serdes, Datagen with the
AvroConverter): magic byte 0, the schema id as a 4-byte big-endian integer, then the Avro binary
body. Event Hubs Schema Registry's Avro encoder (azure-schemaregistry-avroencoder) keeps the body
plain and carries ``avro/binary+<schema id>`` as the message's content type: on Kafka that is the
``content-type`` header, which this pipeline's generator writes and its processor reads.
"""

from __future__ import annotations

import re
import struct
from typing import Literal

from shared.errors import StreamingPocError

RegistryKind = Literal["confluent", "eventhubs"]

MAGIC_BYTE = 0
HEADER_BYTES = 5
CONTENT_TYPE_HEADER = "content-type"
AVRO_CONTENT_TYPE = "avro/binary"
# Event Hubs schema ids are GUIDs as 32 hex digits without dashes (azure-schemaregistry-avroencoder: "the
# hexadecimal representation of GUID, same format ... as the string from the Schema Registry service"). The
# service answers any other id with 400 InvalidRequest, not 404: such an id is the record's problem, not_avro.
EVENT_HUBS_ID = re.compile(r"^[0-9A-Fa-f]{32}\Z")
# Confluent's id is a signed 32-bit int (a Java Integer; the registry's path parameter): ids number from 1, so
# 0 and negative ones (2**31 and up read unsigned) name no schema, and a registry answers them with a bare 404.
_FRAME = struct.Struct(">bi")


class NotAvro(StreamingPocError):
    """The record carries no usable schema id or its body is not Avro: dead letter ``not_avro``."""


def confluent_frame(schema_id: str, body: bytes) -> bytes:
    """``body`` in Confluent's wire format under the registry's integer ``schema_id``."""
    return _FRAME.pack(MAGIC_BYTE, int(schema_id)) + body


def confluent_split(value: bytes) -> tuple[str, memoryview]:
    """The schema id and Avro body of a Confluent wire-format value; :class:`NotAvro` otherwise."""
    if len(value) < HEADER_BYTES:
        raise NotAvro(f"{len(value)} bytes: shorter than the 5-byte Confluent header (magic byte 0, schema id)")
    magic, schema_id = _FRAME.unpack_from(value)
    if magic != MAGIC_BYTE:
        raise NotAvro(f"magic byte {magic & 0xFF:#04x}, not 0x00: not Confluent wire-format Avro")
    if schema_id <= 0:
        raise NotAvro(f"schema id {schema_id} (a signed 32-bit int): registries number schemas from 1 to 2**31-1")
    return str(schema_id), memoryview(value)[HEADER_BYTES:]


def content_type(schema_id: str) -> str:
    """The content type Event Hubs Schema Registry's Avro encoder gives a record of ``schema_id``."""
    return f"{AVRO_CONTENT_TYPE}+{schema_id}"


def schema_id_of_content_type(value: str | None) -> str:
    """The schema id of an ``avro/binary+<id>`` content type; :class:`NotAvro` otherwise."""
    if not value:
        raise NotAvro(f"no {CONTENT_TYPE_HEADER} header: Event Hubs Schema Registry Avro carries avro/binary+<id>")
    kind, plus, schema_id = value.strip().partition("+")
    if kind.strip().lower() != AVRO_CONTENT_TYPE or not plus or not EVENT_HUBS_ID.match(schema_id.strip()):
        raise NotAvro(f"{CONTENT_TYPE_HEADER} {value[:100]!r} is not avro/binary+<schema id>")
    return schema_id.strip()
