"""Reprocessing an Avro source is refused: its rows landed resolved from the producer's schema, and they keep the
record as the producer wrote it (``_received``) but not that schema's id, so it cannot be resolved again.

Validating ``_received`` as JSON instead (what recomputing did) removed or rewrote rows that landed correctly."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pyarrow as pa
import pytest

from shared import formats
from shared.batch import process_batch
from shared.compaction.hours import Hour
from shared.datagen.config import parse_config
from shared.datagen.source import config_source
from shared.lineage import LINEAGE_COLUMNS
from shared.reprocess import NotReprocessable, recompute_hour
from shared.schema_registry.client import ConfluentRegistry
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.wire import confluent_frame
from shared.source_model import Source
from tests.conftest import FIXED_NOW_MS
from tests.unit.shared.schema_registry.conftest import AVRO_CONFIG, records_of

THING = {
    "type": "record",
    "name": "Thing",
    "namespace": "x",
    "fields": [{"name": "id", "type": "long"}, {"name": "name", "type": "string"}],
}
COLOR = {"type": "enum", "name": "Color", "symbols": ["RED", "OTHER"], "default": "OTHER"}
CITY_ONLY = {"type": "record", "name": "Addr", "fields": [{"name": "city", "type": "string"}]}
CITY_AND_ZIP = CITY_ONLY | {"fields": [*CITY_ONLY["fields"], {"name": "zip", "type": "string", "default": "-"}]}


def _with(field: dict[str, Any], *, replacing: str | None = None) -> dict[str, Any]:
    kept = [item for item in THING["fields"] if item["name"] != replacing]
    return THING | {"fields": [*kept, field]}


def _things(schema: dict[str, Any]) -> Source:
    config = AVRO_CONFIG | {"kafka.topic": "things", "schema.string": json.dumps(schema)}
    return config_source(parse_config({"name": "things", "config": config}, source="things", file="t", folder=Path()))


def _landed(registry: str, source: Source, writer: dict[str, Any], record: dict[str, Any]) -> pa.Table:
    """The curated rows of ``record`` as a producer with ``writer`` sent it and ``source`` read it."""
    client = ConfluentRegistry(registry)
    sink = io.BytesIO()
    fastavro.schemaless_writer(sink, fastavro.parse_schema(writer), record)
    value = confluent_frame(client.register("things-value", json.dumps(writer)), sink.getvalue())
    batch = process_batch(
        source, records_of([value], topic="things"), max_record_bytes=1 << 20, decoder=AvroDecoder(client)
    )
    assert batch.dead_letters == []
    return pa.Table.from_pylist(batch.rows(), schema=formats.arrow_schema((*source.columns, *LINEAGE_COLUMNS)))


@pytest.mark.parametrize(
    ("reader", "writer", "record", "column", "landed"),
    [
        (  # recomputing removed it: 'BLUE' is no symbol of the source's enum
            _with({"name": "color", "type": COLOR}),
            _with({"name": "color", "type": COLOR | {"symbols": ["RED", "OTHER", "BLUE"]}}),
            {"id": 1, "name": "a", "color": "BLUE"},
            "color",
            "OTHER",
        ),
        (  # recomputing rewrote it as 'aGVsbG8=': _received holds bytes as base64 text
            THING,
            _with({"name": "name", "type": "bytes"}, replacing="name"),
            {"id": 1, "name": b"hello"},
            "name",
            "hello",
        ),
        (  # recomputing removed it: 'hello' as sent is no base64 text of bytes
            _with({"name": "name", "type": "bytes"}, replacing="name"),
            THING,
            {"id": 1, "name": "hello"},
            "name",
            "aGVsbG8=",  # bytes land as base64 text
        ),
        (  # recomputing removed it: the nested record as sent lacks zip, which has a default only in Avro
            _with({"name": "addr", "type": CITY_AND_ZIP}),
            _with({"name": "addr", "type": CITY_ONLY}),
            {"id": 1, "name": "a", "addr": {"city": "X"}},
            "addr_zip",
            "-",
        ),
    ],
    ids=["enum default", "bytes to string", "string to bytes", "nested default"],
)
def test_reprocessing_an_avro_source_is_refused_instead_of_removing_or_rewriting_rows_that_landed_correctly(
    registry: str, reader: dict[str, Any], writer: dict[str, Any], record: dict[str, Any], column: str, landed: Any
) -> None:
    source = _things(reader)
    curated = _landed(registry, source, writer, record)
    assert curated.column(column).to_pylist() == [landed], "the row landed resolved to the source's schema"
    with pytest.raises(NotReprocessable, match="writer schema id") as refused:
        recompute_hour(source, Hour.of_ms(FIXED_NOW_MS), curated, [], max_record_bytes=1 << 20)
    assert "tools.redrive things" in str(refused.value)
