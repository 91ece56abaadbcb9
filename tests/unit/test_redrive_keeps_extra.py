"""Redrive keeps what the model does not know: it sends a dead letter's bytes as they came, so the
redriven record lands with its unknown fields in ``_extra``."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from pathlib import Path

from shared import formats
from shared.batch import process_batch
from shared.lake import LocalLake
from shared.landing.files import DEADLETTER_COLUMNS
from shared.records import KafkaRecord
from shared.redrive import OutgoingRedrive, RedriveTarget, redrive
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS

ORDER_WITH_UNKNOWN_FIELDS = (
    b'{"ordertime":1,"orderid":7,"itemid":"Item_1","orderunits":1.5,'
    b'"address":{"city":"C","state":"S","zipcode":1,"country":"NO"},"coupon":{"code":"X","uses":[1,2]}}'
)


class CollectingSender:
    """Stands in for the broker: acknowledges and keeps what it was given."""

    def __init__(self) -> None:
        self.sent: list[OutgoingRedrive] = []

    def send(self, topic: str, messages: Sequence[OutgoingRedrive]) -> list[bool]:
        self.sent.extend(messages)
        return [True] * len(messages)


def test_a_redriven_record_keeps_its_unknown_fields(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    row = {
        "_topic": "orders",
        "_partition": 0,
        "_offset": 3,
        "_key": "7",
        "_kafka_timestamp": FIXED_NOW_MS,
        "reason": "schema",
        "detail": "orderunits: an older model wanted an int",
        "raw_base64": base64.b64encode(ORDER_WITH_UNKNOWN_FIELDS).decode(),
        "dead_lettered_at": FIXED_NOW_MS,
    }
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, [row], record_name="x")
    lake.write_atomic(f"deadletter/orders/date=2026-11-24/hour=10/orders+0+{3:020d}+{3:020d}.jsonl.gz", data)
    sender = CollectingSender()
    target = RedriveTarget("orders", max_record_bytes=10_000)
    summary = redrive(SOURCES["orders"], lake=lake, target=target, sender=sender)
    assert summary.sent == 1
    (message,) = sender.sent
    assert message.value == ORDER_WITH_UNKNOWN_FIELDS
    redriven = KafkaRecord("orders", 1, 100, message.key, message.value, FIXED_NOW_MS)
    (landed,) = process_batch(SOURCES["orders"], [redriven], max_record_bytes=10_000).rows()
    assert json.loads(landed["_extra"]) == {"coupon": {"code": "X", "uses": [1, 2]}, "address.country": "NO"}
