"""What the generator of an Avro source sends: each record in its registry's wire format.

The source's schema is registered once per worker (Confluent: subject ``<topic>-value``, Datagen's
AvroConverter default; Event Hubs: the record's full name in the schema group), then each record
is Avro binary framed with the id (Confluent) or sent plain with ``content-type: avro/binary+<id>``
(Event Hubs), the form each registry's own serializers produce.
"""

from __future__ import annotations

import threading

import orjson

from shared.records import ProducedRecord
from shared.schema_registry.avro_binary import encode, parse_writer_schema, without_generator_hints
from shared.schema_registry.client import SchemaRegistry
from shared.schema_registry.wire import CONTENT_TYPE_HEADER, confluent_frame, content_type
from shared.source_model import Source


def subject_of(source: Source, topic: str, registry: SchemaRegistry) -> str:
    """Where the schema is registered: ``<topic>-value`` (Confluent), the record's full name (Event Hubs)."""
    if registry.kind == "eventhubs":
        schema = source.avro_schema
        name = str(schema.get("name", source.name))
        namespace = schema.get("namespace")
        return name if "." in name or not namespace else f"{namespace}.{name}"
    return f"{topic}-value"


class AvroEncoder:
    """Encodes a source's records for one registry and topic; registers the schema on first use."""

    def __init__(self, source: Source, registry: SchemaRegistry, topic: str) -> None:
        if source.avro_schema is None:
            raise ValueError(f"{source.name} has no Avro schema")
        self.source, self.registry, self.topic = source, registry, topic
        self.schema_text = orjson.dumps(without_generator_hints(source.avro_schema)).decode()
        self._parsed = parse_writer_schema(self.schema_text)
        self._id: str | None = None
        self._lock = threading.Lock()

    def schema_id(self) -> str:
        with self._lock:
            if self._id is None:
                self._id = self.registry.register(subject_of(self.source, self.topic, self.registry), self.schema_text)
            return self._id

    def encode(self, key: str | None, record_json: str | bytes) -> ProducedRecord:
        """One record, given as the JSON converter's text (what the JSON generator sends), in the wire format."""
        schema_id = self.schema_id()
        body = encode(self._parsed, orjson.loads(record_json))
        if self.registry.kind == "eventhubs":
            return ProducedRecord(key, body, ((CONTENT_TYPE_HEADER, content_type(schema_id)),))
        return ProducedRecord(key, confluent_frame(schema_id, body))
