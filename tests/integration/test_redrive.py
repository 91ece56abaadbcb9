"""Dead-letter redrive on the real broker: exactly the fixed records go back, with their keys, once."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from devhost.services.broker import ensure_topics
from shared.datagen.config import load_quickstart, parse_config
from shared.datagen.source import config_source
from shared.formats import decode
from shared.generator_ticks import generate_messages
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.records import KafkaRecord
from shared.redrive import REDRIVE_HEADER, DeadLetterEntry, Delivery, OutgoingRedrive, redrive_log
from shared.settings import load_settings, load_source_settings
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW, FIXED_NOW_MS, context_for
from tests.integration.harness import records_until_sentinel
from tests.unit.shared.test_redrive import DyingLake, Killed
from tests.unit.tools.no_settings import NO_SETTINGS
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
    no_file = ["--settings", NO_SETTINGS]

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
    # Their own Kafka timestamps (12 days before today's clock), not the redrive's: lineage checks the event time
    # against it, and with the redrive's (review 15) the rows were filed in the redrive's hour, not their own.
    assert {m.timestamp()[1] for m in received} == {FIXED_NOW_MS}
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


def _messages_from(broker: str, topic: str, offset: int) -> list[Any]:
    """The messages of ``topic``'s partition 0 from ``offset`` on, up to an end marker this sends after them."""
    end = uuid.uuid4().hex.encode()
    producer = Producer({"bootstrap.servers": broker})
    producer.produce(topic, end)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": broker, "group.id": uuid.uuid4().hex, "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, offset)])
    messages: list[Any] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is None or message.error():
                continue
            if message.value() == end:
                return messages
            messages.append(message)
        raise AssertionError(f"no end marker on {topic}; got {len(messages)} messages")
    finally:
        consumer.close()


def test_a_dead_letter_of_a_landing_a_worker_left_unfinished_is_not_redriven_and_lands_once(
    broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The worker dies between its landing's two dead-letter files; the operator raises MAX_RECORD_BYTES and
    redrives; the partition's next owner removes the unfinished landing and lands the batch again. Record 1, sent
    by the redrive too, would land twice."""
    from shared.landing import guard as guard_module
    from shared.landing.guard import LandingGuard

    topic = f"orders-pending-{uuid.uuid4().hex[:8]}"
    ensure_topics({"bootstrap.servers": broker}, [topic], partitions=1)
    order = b'{"ordertime":1,"orderid":%d,"itemid":"I","orderunits":1.5,"address":{"city":"C","state":"S","zipcode":1}'
    big = order % 1 + b',"note":"' + b"x" * 300 + b'"}'
    produced = [(order % 0 + b"}", 0), (big, 0), (order % 2 + b"}", 0), (b"{oops", 3_600_000)]  # 3: hour 11
    producer = Producer({"bootstrap.servers": broker})
    for index, (value, later) in enumerate(produced):
        producer.produce(topic, value, str(index).encode(), timestamp=FIXED_NOW_MS + later)
    assert producer.flush(30) == 0
    batch = [
        KafkaRecord(topic, 0, m.offset(), m.key().decode(), m.value(), m.timestamp()[1])
        for m in records_until_sentinel(broker, topic)
    ]
    assert [record.offset for record in batch] == [0, 1, 2, 3]
    orders = SOURCES["orders"]
    dying = DyingLake(tmp_path)
    dying.die_on = "deadletter/orders/date=2026-11-24/hour=11/"
    with pytest.raises(Killed):
        handle_batch(context_for(orders, dying, settings={"MAX_RECORD_BYTES": "200", "ORDERS_TOPIC": topic}), batch)

    for name, value in {"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": str(tmp_path), "KAFKA_BROKER_LIST": broker}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ORDERS_TOPIC", topic)
    monkeypatch.setenv("MAX_RECORD_BYTES", "100000")
    no_file = ["--settings", NO_SETTINGS]
    assert redrive_cli.main(["orders", *no_file]) == 0
    first = capsys.readouterr().out
    assert _row(first, "pending landing: not sent") == 1 and _row(first, "sent") == 0, first

    lake = LocalLake(tmp_path)  # the next owner, past the dead worker's landing lease
    monkeypatch.setitem(guard_module._guards, lake, LandingGuard(lake, clock=lambda: time.time() + 10_000))
    handle_batch(context_for(orders, lake, settings={"MAX_RECORD_BYTES": "100000", "ORDERS_TOPIC": topic}), batch)
    assert redrive_cli.main(["orders", *no_file]) == 0
    second = capsys.readouterr().out
    assert _row(second, "sent") == 0 and "pending landing" not in second, second

    assert _messages_from(broker, topic, 5) == []  # nothing produced after the records and the harness's sentinel
    raw = [row["orderid"] for path in lake.list_paths("raw/orders") for row in decode("parquet", lake.read(path))]
    assert sorted(raw) == [0, 1, 2]
