"""Avro with a schema registry through the local host: a Datagen config with the AvroConverter,
dropped into a copy of the project, generates, registers and lands through the host's own registry;
hostile records are dead-lettered; a registry outage makes the batch wait, then it flows."""

from __future__ import annotations

import struct
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from devhost.registry.server import serve_registry
from devhost.services.processes import free_port
from shared.datagen.config import parse_config
from shared.datagen.source import config_source
from shared.schema_registry.client import ConfluentRegistry
from shared.schema_registry.encoder import AvroEncoder
from shared.source_model import Source
from tests.integration.harness import DevHost, landed_rows, produce, wait_for
from tests.integration.test_dropin_config import OTHER_GENERATORS_OFF, _payments_config, _project_with
from tests.unit.shared.schema_registry.conftest import generated

FAST_RETRIES = {"DEVHOST_RETRY_DELAY_SCALE": "0.01"}


def _avro_config(topic: str) -> dict[str, Any]:
    document = _payments_config(topic)
    document["config"] |= {
        "value.converter": "io.confluent.connect.avro.AvroConverter",
        "value.converter.schema.registry.url": "http://localhost:8081",  # docker-compose's; the host serves its own
    }
    return document


def _source(document: dict[str, Any]) -> Source:
    config = parse_config(document, source="payments", file="sources/payments.json", folder=Path("."))
    return config_source(config)


def test_avro_from_a_datagen_config_lands_once_through_the_hosts_registry(broker: str, tmp_path: Path) -> None:
    topic = f"payments-{uuid.uuid4().hex[:8]}"
    document = _avro_config(topic)
    project, lake = _project_with(tmp_path, "payments", document), tmp_path / "lake"
    generator = {"PAYMENTS_GENERATOR_ITERATIONS": "40", "PAYMENTS_GENERATOR_EVENTS_PER_TICK": "40"}
    host = DevHost(broker, lake, OTHER_GENERATORS_OFF | generator, project=project)
    try:
        wait_for(lambda: len(landed_rows(lake, "raw", "payments")) >= 40, 90, "the generator's 40 records to land")
        registry = ConfluentRegistry(f"http://127.0.0.1:{host.port}/registry")
        encoder = AvroEncoder(_source(document), registry, topic)
        valid = [encoder.encode(key, text) for key, text in generated(_source(document), 10, seed=9)]
        unknown_id = struct.pack(">bI", 0, int(encoder.schema_id()) + 100) + valid[0].value[5:]
        hostile = [b'{"payment_id": 1}', unknown_id, valid[1].value[:-3]]
        produce(broker, topic, [(m.key, m.value) for m in valid] + [("bad", value) for value in hostile])
        wait_for(lambda: len(landed_rows(lake, "raw", "payments")) >= 50, 60, "the produced records to land")
        wait_for(lambda: len(landed_rows(lake, "deadletter", "payments")) >= 3, 60, "the hostile ones")
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    rows = landed_rows(lake, "raw", "payments")
    offsets = Counter((row["_partition"], row["_offset"]) for row in rows)
    assert len(rows) == 50 == len(offsets), "exactly once per offset"
    assert all(orjson.loads(row["_received"])["payment_id"] == row["payment_id"] for row in rows)
    letters = landed_rows(lake, "deadletter", "payments")
    assert sorted(letter["reason"] for letter in letters) == ["not_avro", "not_avro", "unknown_schema"]
    assert (tmp_path / "lake.state" / "registry.sqlite").exists(), "the host's registry is persisted beside the lake"


def test_a_registry_outage_makes_the_batch_wait_then_it_lands(broker: str, tmp_path: Path) -> None:
    topic = f"payments-{uuid.uuid4().hex[:8]}"
    document = _avro_config(topic)
    project, lake = _project_with(tmp_path, "payments", document), tmp_path / "lake"
    store, port = tmp_path / "registry.sqlite", free_port()
    with serve_registry(store, port) as url:
        encoder = AvroEncoder(_source(document), ConfluentRegistry(url), topic)
        messages = [encoder.encode(key, text) for key, text in generated(_source(document), 30)]
    settings = OTHER_GENERATORS_OFF | FAST_RETRIES | {"SCHEMA_REGISTRY_URL": url, "PAYMENTS_GENERATOR_ENABLED": "false"}
    host = DevHost(broker, lake, settings, "--no-timers", project=project)
    try:
        produce(broker, topic, [(m.key, m.value) for m in messages])
        wait_for(lambda: host.function_stats()["process_payments"]["failures"] >= 3, 60, "the batch to fail and wait")
        assert landed_rows(lake, "raw", "payments") == [] and landed_rows(lake, "deadletter", "payments") == []
        with serve_registry(store, port):
            rows = wait_for(lambda: len(landed_rows(lake, "raw", "payments")) >= 30 or None, 90, "the batch to land")
            assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    rows = landed_rows(lake, "raw", "payments")
    assert len(rows) == 30 == len({(row["_partition"], row["_offset"]) for row in rows})
    assert landed_rows(lake, "deadletter", "payments") == [], "an outage dead-letters nothing"
