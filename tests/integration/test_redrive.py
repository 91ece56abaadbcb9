"""Dead-letter redrive on the real broker: exactly the fixed records go back, with their keys, once."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from devhost.services.broker import ensure_topics
from shared.datagen.config import load_quickstart, parse_config
from shared.datagen.source import config_source
from shared.generator_ticks import generate_messages
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.redrive import REDRIVE_HEADER, DeadLetterEntry, Delivery, OutgoingRedrive, redrive_log
from shared.settings import load_settings, load_source_settings
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW, FIXED_NOW_MS, context_for
from tests.integration.harness import records_until_sentinel
from tools import redrive as redrive_cli

pytestmark = pytest.mark.integration


def _stricter_orders() -> Any:
    """Yesterday's orders schema: orderunits was an int, so today's records were dead-lettered."""
    schema = load_quickstart("orders")
    for item in schema["fields"]:
        if item["name"] == "orderunits":
            item["type"] = "int"
    options = {
        "connector.class": "DatagenConnector",
        "kafka.topic": "orders",
        "schema.string": json.dumps(schema),
        "schema.keyfield": "orderid",
    }
    return config_source(parse_config({"name": "o", "config": options}, source="orders", file="o", folder=Path(".")))


def test_redrive_sends_exactly_the_fixed_records_once(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = f"orders-redrive-{uuid.uuid4().hex[:8]}"
    ensure_topics({"bootstrap.servers": broker}, [topic], partitions=1)
    orders = SOURCES["orders"]
    fixed = generate_messages(orders, 6, now=FIXED_NOW, seed=5, start_index=0)
    broken = [(None, b"{not json"), ("k", b'{"orderid": 1}')]
    records = [KafkaRecord(topic, 0, i, m.key, m.value.encode(), FIXED_NOW_MS) for i, m in enumerate(fixed)]
    records += [KafkaRecord(topic, 0, 6 + i, key, value, FIXED_NOW_MS) for i, (key, value) in enumerate(broken)]
    lake = LocalLake(tmp_path)
    landed = handle_batch(context_for(_stricter_orders(), lake, now_ms=FIXED_NOW_MS), records)
    assert (landed.landed, landed.dead_letters) == (0, 8)

    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("KAFKA_BROKER_LIST", broker)
    monkeypatch.setenv("ORDERS_TOPIC", topic)
    no_file = ["--settings", str(tmp_path / "absent.json")]

    assert redrive_cli.main(["orders", "--dry-run", *no_file]) == 0
    dry = capsys.readouterr().out
    assert "now valid" in dry and "dry run" in dry
    assert redrive_log(lake, "orders") == (set(), set())  # a dry run records nothing

    assert redrive_cli.main(["orders", *no_file]) == 0
    first = capsys.readouterr().out
    assert _row(first, "now valid") == 6 and _row(first, "sent") == 6
    assert _row(first, "still invalid: not_json") == 1 and _row(first, "still invalid: schema") == 1

    assert redrive_cli.main(["orders", *no_file]) == 0  # again: nothing is sent twice
    second = capsys.readouterr().out
    assert _row(second, "already redriven (skipped)") == 6 and _row(second, "sent") == 0

    received = records_until_sentinel(broker, topic)
    assert sorted((m.key().decode(), m.value().decode()) for m in received) == sorted((m.key, m.value) for m in fixed)
    origins = {dict(m.headers())[REDRIVE_HEADER].decode() for m in received}
    assert origins == {f"{topic}/0/{offset}" for offset in range(6)}
    assert redrive_log(lake, "orders") == ({(topic, 0, 0, offset) for offset in range(6)}, set())


def _row(table: str, label: str) -> int:
    for line in table.splitlines():
        if line.startswith(label):
            return int(line.split()[-1])
    raise AssertionError(f"no {label!r} row in:\n{table}")


def test_the_kafka_sender_tells_a_refused_record_from_an_acknowledged_one(broker: str) -> None:
    """A record over the producer's message.max.bytes never leaves this process: not sent, so a later run may
    send it again; the one beside it is acknowledged by the broker."""
    topic = f"orders-refused-{uuid.uuid4().hex[:8]}"
    ensure_topics({"bootstrap.servers": broker}, [topic], partitions=1)
    sender = redrive_cli.KafkaRedriveSender(
        load_settings({"KAFKA_BROKER_LIST": broker}), load_source_settings("orders", {}), timeout=30
    )
    entry = DeadLetterEntry("orders", 0, 0, 7, "k", FIXED_NOW_MS, "schema", b"{}", FIXED_NOW_MS)
    messages = [
        OutgoingRedrive("k", b'{"orderid": 1}', (), entry),
        OutgoingRedrive("k", b"x" * 2_000_000, (), entry),
    ]
    assert sender.send(topic, messages) == [Delivery.ACKNOWLEDGED, Delivery.NOT_SENT]
