"""Large batches on the Blob API (real Azurite, real SDK): every data file is one Put Blob sent before its
landing's deadline, and a batch whose values pass ``LANDING_MAX_BYTES`` lands in parts, each offset once.

A review proved the SDK stages a body over 64 MiB as Put Blocks committed by a Put Block List, all inside one
``create``: on a slow link a holder kept sending long after its deadline, and its commit landed records another
instance had landed after taking the lease over. The clock here is the only fake: each request takes 30 s of it.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from typing import Any

import pytest
from azure.core.pipeline.transport import RequestsTransport

from devhost.services.azurite import Azurite
from shared.formats import decode
from shared.invocation import handle_batch
from shared.lake.blob import BlobLake
from shared.landing.guard import LANDING_MAX_BYTES, guard_for, size_cut
from shared.landing.partition import CLOCK_SKEW_SECONDS, DEFAULT_LEASE_SECONDS
from shared.records import KafkaRecord
from shared.settings import load_settings
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS, context_for

CLICKS = get_source("clickstream")
SECONDS_PER_REQUEST = 30.0  # within the SDK's limits: 5 s to connect, 15 s between bytes


class SlowLink(RequestsTransport):
    """Every request takes SECONDS_PER_REQUEST of the shared fake clock; records what was sent when."""

    def __init__(self, clock: list[float]) -> None:
        super().__init__()
        self.clock = clock
        self.sent: list[tuple[float, str, str]] = []

    def send(self, request: Any, **kwargs: Any) -> Any:
        path = request.url.split("?")[0].split("/", 5)[-1]  # after account and container
        self.sent.append(
            (self.clock[0], request.method, path + ("?" + request.url.split("?")[1] if "?" in request.url else ""))
        )
        response = super().send(request, **kwargs)
        self.clock[0] += SECONDS_PER_REQUEST
        return response


def oversized(count: int, first: int = 0) -> list[KafkaRecord]:
    """Records over MAX_RECORD_BYTES (random, incompressible): dead letters that keep their raw bytes."""
    return [
        KafkaRecord("clickstream", 0, offset, f"k{offset}", os.urandom(1_150_000), FIXED_NOW_MS)
        for offset in range(first, first + count)
    ]


def slow_lake(azurite: Azurite, container: str, clock: list[float]) -> tuple[BlobLake, SlowLink]:
    link = SlowLink(clock)
    settings = load_settings({"LAKE_CONNECTION_STRING": azurite.connection_string, "LAKE_FILE_SYSTEM": container})
    lake = BlobLake.from_settings(settings, transport=link)
    guard_for(lake, DEFAULT_LEASE_SECONDS).clock = lambda: clock[0]
    return lake, link


def dead_lettered_offsets(lake: BlobLake) -> Counter[int]:
    return Counter(row["_offset"] for path in lake.list_paths("deadletter") for row in decode("jsonl", lake.read(path)))


def test_a_large_batch_lands_in_parts_each_file_one_request_within_its_deadline(azurite: Azurite) -> None:
    clock = [1_000_000.0]
    lake, link = slow_lake(azurite, f"l{uuid.uuid4().hex[:8]}", clock)
    records = oversized(66)  # about 72 MiB of values: one landing would write a ~100 MiB dead-letter file
    link.sent.clear()
    handle_batch(context_for(CLICKS, lake), records)
    sent = list(link.sent)

    assert dead_lettered_offsets(lake) == Counter(range(66))
    data = [(at, method, path) for at, method, path in sent if path.startswith(("raw/", "deadletter/"))]
    assert all(method == "PUT" and "comp=block" not in path for _, method, path in data), data
    assert len(data) >= 3, "72 MiB of values land in parts of at most LANDING_MAX_BYTES"
    landing_started = None
    for at, method, path in sent:  # each data request after the ledger write that began its landing
        if method == "PUT" and path.startswith("_landing/"):
            landing_started = at
        elif path.startswith(("raw/", "deadletter/")):
            assert landing_started is not None
            deadline = landing_started + DEFAULT_LEASE_SECONDS - lake.max_request_seconds - CLOCK_SKEW_SECONDS
            assert at <= deadline, (at - landing_started, path)


def test_a_large_batch_cut_differently_on_redelivery_lands_nothing_twice(azurite: Azurite) -> None:
    clock = [1_000_000.0]
    lake, _ = slow_lake(azurite, f"l{uuid.uuid4().hex[:8]}", clock)
    records = oversized(40)
    handle_batch(context_for(CLICKS, lake), records[:25])
    handle_batch(context_for(CLICKS, lake), records)  # redelivered from offset 0, cut elsewhere
    handle_batch(context_for(CLICKS, lake), records[10:])
    assert dead_lettered_offsets(lake) == Counter(range(40))


@pytest.mark.parametrize(
    ("sizes", "cut"),
    [
        ([100] * 10, None),  # within the limit
        ([LANDING_MAX_BYTES + 1], None),  # one record: nothing to cut
        ([LANDING_MAX_BYTES // 2 + 1] * 2, 1),
        ([LANDING_MAX_BYTES // 4 + 1] * 4, 2),
        ([1, LANDING_MAX_BYTES + 1], 1),
        ([LANDING_MAX_BYTES + 1, 1, 1], 1),
    ],
)
def test_the_size_cut_starts_the_second_half_by_bytes(sizes: list[int], cut: int | None) -> None:
    records = [KafkaRecord("t", 0, offset, None, b"x" * size, 0) for offset, size in enumerate(sizes)]
    assert size_cut(list(reversed(records))) == cut
