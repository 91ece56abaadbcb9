"""What the schema registry tests share: an Avro Datagen source, its generated records, a local registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from faker import Faker

from devhost.registry.server import serve_registry
from shared.datagen.config import parse_config
from shared.datagen.source import config_source
from shared.records import KafkaRecord
from shared.source_model import Source
from tests.conftest import FIXED_NOW, FIXED_NOW_MS

AVRO_CONFIG = {
    "connector.class": "io.confluent.kafka.connect.datagen.DatagenConnector",
    "value.converter": "io.confluent.connect.avro.AvroConverter",
    "value.converter.schema.registry.url": "http://registry.invalid:8081",
}


def avro_source(quickstart: str = "orders", topic: str = "orders") -> Source:
    document = {"name": f"datagen-{topic}", "config": AVRO_CONFIG | {"kafka.topic": topic, "quickstart": quickstart}}
    return config_source(parse_config(document, source=topic, file=f"sources/{topic}.json", folder=Path(".")))


def generated(source: Source, count: int, seed: int = 5) -> list[tuple[str | None, str]]:
    """``count`` records as the JSON generator would send them: (key, JSON text)."""
    fake = Faker()
    fake.seed_instance(seed)
    assert source.generate_from is not None
    records = source.generate_from(fake, count, FIXED_NOW, 0)
    return [(source.entity_key(source.transform(r.model_dump())), r.model_dump_json(by_alias=True)) for r in records]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    with serve_registry(tmp_path / "registry.sqlite") as url:
        yield url


def records_of(
    values: list[bytes | None], topic: str = "orders", content_types: list[str | None] | None = None
) -> list[KafkaRecord]:
    types = content_types or [None] * len(values)
    return [
        KafkaRecord(topic, 0, offset, f"k{offset}", value, FIXED_NOW_MS, content_type)
        for offset, (value, content_type) in enumerate(zip(values, types, strict=True))
    ]
