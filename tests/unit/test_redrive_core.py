"""Redrive decisions without a broker: filters, the ledger and the summary (dry runs send nothing)."""

from __future__ import annotations

import base64
from pathlib import Path

from shared import formats
from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.landing.files import DEADLETTER_COLUMNS
from shared.records import KafkaRecord
from shared.redrive import LEDGER_COLUMNS, read_dead_letters, redrive
from shared.settings import load_settings, load_source_settings
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS

ORDER = (
    b'{"ordertime":1,"orderid":%d,"itemid":"Item_1","orderunits":1.5,"address":{"city":"C","state":"S","zipcode":1}}'
)


def _dead_letters(lake: LocalLake, now_ms: int) -> None:
    records = [
        KafkaRecord("orders", 0, 0, "0", b"", FIXED_NOW_MS),  # null_value: never passes
        KafkaRecord("orders", 0, 1, "1", b"{oops", FIXED_NOW_MS),  # not_json
        KafkaRecord("orders", 0, 2, "2", b"\xff\xfe", FIXED_NOW_MS),  # not_utf8
    ]
    handle_batch(
        SOURCES["orders"],
        records,
        lake=lake,
        settings=load_settings({}),
        source_settings=load_source_settings("orders", {}),
        now_ms=now_ms,
    )


def _valid_dead_letter_rows(lake: LocalLake, offsets: range, now_ms: int) -> None:
    """Dead letters of records that pass today (they failed under an older model)."""
    rows = [
        {
            "_topic": "orders",
            "_partition": 1,
            "_offset": offset,
            "_key": str(offset),
            "_kafka_timestamp": FIXED_NOW_MS,
            "reason": "schema",
            "detail": "orderunits: older model wanted an int",
            "raw_base64": base64.b64encode(ORDER % offset).decode(),
            "dead_lettered_at": now_ms,
        }
        for offset in offsets
    ]
    data = formats.encode("jsonl", DEADLETTER_COLUMNS, rows, record_name="x")
    lake.write_atomic(
        f"deadletter/orders/date=2026-11-24/hour=10/orders+1+{offsets[0]:020d}+{offsets[-1]:020d}.jsonl.gz", data
    )


def test_dry_run_counts_filters_and_reasons(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _dead_letters(lake, FIXED_NOW_MS)
    _valid_dead_letter_rows(lake, range(10, 14), FIXED_NOW_MS + 60_000)
    assert len(read_dead_letters(lake, "orders")) == 7
    everything = redrive(SOURCES["orders"], lake=lake, sender=None, topic="orders", max_record_bytes=1000, dry_run=True)
    assert (everything.read, everything.now_valid, everything.sent) == (7, 4, 0)
    assert dict(everything.still_invalid) == {"null_value": 1, "not_json": 1, "not_utf8": 1}
    only_json = redrive(
        SOURCES["orders"],
        lake=lake,
        sender=None,
        topic="orders",
        max_record_bytes=1000,
        reasons=frozenset({"not_json"}),
        dry_run=True,
    )
    assert (only_json.filtered_out, only_json.now_valid, dict(only_json.still_invalid)) == (6, 0, {"not_json": 1})
    recent = redrive(
        SOURCES["orders"],
        lake=lake,
        sender=None,
        topic="orders",
        max_record_bytes=1000,
        since_ms=FIXED_NOW_MS + 1,
        dry_run=True,
    )
    assert (recent.filtered_out, recent.now_valid) == (3, 4)
    assert "still invalid: not_utf8" in everything.table()


def test_an_unconfirmed_send_is_never_repeated(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    _valid_dead_letter_rows(lake, range(20, 23), FIXED_NOW_MS)
    intent = [{"_topic": "orders", "_partition": 1, "_offset": 21, "redriven_at": FIXED_NOW_MS}]
    lake.write_atomic(
        "_redrive/orders/r1.intent.jsonl.gz", formats.encode("jsonl", LEDGER_COLUMNS, intent, record_name="r")
    )
    summary = redrive(SOURCES["orders"], lake=lake, sender=None, topic="orders", max_record_bytes=1000, dry_run=True)
    assert (summary.unconfirmed, summary.now_valid) == (1, 2)
