"""Kafka records as the core sees them: each partition's offset span."""

from __future__ import annotations

import random
from typing import Any

from shared.records import KafkaRecord, offset_spans


def test_offset_spans_are_each_partitions_lowest_and_highest_offset_however_records_interleave() -> None:
    chance = random.Random(13)
    for _ in range(500):
        records = [
            KafkaRecord(chance.choice("ab"), chance.randint(0, 3), chance.randint(0, 60), None, b"v", None)
            for _ in range(chance.randint(0, 40))
        ]
        expected: dict[tuple[str, int], Any] = {}
        for record in records:
            offsets = expected.setdefault((record.topic, record.partition), [])
            offsets.append(record.offset)
        assert offset_spans(records) == {key: (min(v), max(v)) for key, v in expected.items()}
