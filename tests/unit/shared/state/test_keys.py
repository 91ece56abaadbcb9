"""Per-record isolation: entity key encoding, encoding isolation, bad keys, error classes, the stall log."""

from __future__ import annotations

import asyncio
import errno
import logging
import unicodedata
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared import formats
from shared.batch import ProcessedBatch, process_batch
from shared.errors import LakeError, LakeUnavailable, TransientError
from shared.failures import StallLog, classify, classify_entity_error
from shared.formats import format_named
from shared.invocation import ProcessingContext, _RecordIsolatingGateway, handle_batch_with_state
from shared.lake import LocalLake
from shared.landing.files import plan_batch, plan_files
from shared.landing.isolation import encode_isolating
from shared.records import KafkaRecord, offset_spans
from shared.settings import load_settings, load_source_settings
from shared.source_model import Column
from shared.sources import SOURCES
from shared.state.aggregate import Signal
from shared.state.buckets import bucket_for
from shared.state.keys import MAX_ENCODED_KEY_LENGTH, BadKey, check_key, decode_key, encode_key, is_storable_key
from shared.state.lookups import StateJoiner
from shared.state.query_api import BadQuery, key_from_url, locate
from tests.conftest import FIXED_NOW_MS, records_for

HOSTILE_KEYS = [
    "a/b", "?", "#", "%", "%2F", "\\", "..", ".", "...", "a.", ".a", " ", "\t\n", "\x00", "\x01\x7f\x9f", "~", "~7E",
    "@user@x", "ключ", "🙂", unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café"),
]  # fmt: skip


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_every_key_encodes_reversibly_to_a_storable_url_segment(key: str) -> None:
    encoded = encode_key(key)
    assert decode_key(encoded) == key
    assert is_storable_key(encoded)
    assert encoded not in (".", "..") and not encoded.endswith(".") and "%" not in encoded


def test_distinct_keys_never_share_an_entity() -> None:
    encoded = [encode_key(key) for key in HOSTILE_KEYS]
    assert len(set(encoded)) == len(HOSTILE_KEYS)


def test_readable_keys_are_unchanged() -> None:
    assert [encode_key(k) for k in ("device-00001", "ip:111.152.45.45", "7")] == [
        "device-00001",
        "ip:111.152.45.45",
        "7",
    ]


@pytest.mark.parametrize("key", ["", "é" * 100, "k" * (MAX_ENCODED_KEY_LENGTH + 1), "\ud800"])
def test_empty_overlong_and_invalid_keys_are_refused(key: str) -> None:
    with pytest.raises(BadKey):
        encode_key(key)


def test_query_reads_the_key_from_the_raw_url_whatever_the_host_decoded() -> None:
    url = "http://h/api/state/mobile/a%2Fb%3F%23%25%2E%2E"
    assert key_from_url(url, "mobile", "a%2Fb?#%..") == "a/b?#%.."
    assert key_from_url("http://h/api/state/sensors/s%20x/windows", "sensors", "x") == "s x"
    where = locate("mobile", "a/b", 64)
    assert (where.entity, where.bucket, where.per_key) == ("device_activity", bucket_for("a/b", 64), "a~2Fb")
    with pytest.raises(BadQuery):
        key_from_url("http://h/api/state/mobile/%FF", "mobile", "")


def test_encoding_isolation_finds_the_offending_rows_in_every_format() -> None:
    columns = (Column("n", "long"), Column("s", "string"))
    rows = [{"n": i, "s": "ok"} for i in range(100)]
    rows[3]["n"] = 2**63
    rows[70]["s"] = "\ud800"
    for fmt in ("parquet", "avro", "jsonl"):
        data, bad = encode_isolating(format_named(fmt), columns, rows, record_name="t")
        expected = [70] if fmt == "jsonl" else [3, 70]  # JSON lines carry any integer
        assert [item.index for item in bad] == expected
        assert len(formats.decode(fmt, data)) == 100 - len(expected)  # type: ignore[arg-type]


def test_clean_files_are_encoded_once_and_unchanged() -> None:
    columns = (Column("n", "long"),)
    rows = [{"n": i} for i in range(10)]
    data, bad = encode_isolating(format_named("jsonl"), columns, rows, record_name="t")
    assert bad == [] and data == formats.encode("jsonl", columns, rows, record_name="t")


def test_an_unencodable_row_becomes_a_dead_letter_and_the_rest_lands() -> None:
    source = SOURCES["mobile"]
    batch = process_batch(source, records_for(source, 20), max_record_bytes=1 << 20)
    batch.rows()[5]["screen"] = "\udcff"  # a gap no model closes today: a transform producing a lone surrogate
    (part,) = batch
    plan = plan_files(part, format_named("parquet"), now_ms=FIXED_NOW_MS)
    raw = [f for f in plan.files if f.path.startswith("raw/")]
    letters = [row for f in plan.files if f.dead_letters for row in formats.decode("jsonl", f.data)]
    assert sum(len(formats.decode("parquet", f.data)) for f in raw) == 19
    assert [(row["_offset"], row["reason"]) for row in letters] == [(5, "unencodable")]
    assert [letter.record.offset for letter in plan.unencodable] == [5]  # returned, so no signal is sent for it
    assert len(batch.rows()) == 20  # the batch itself is left as it was


def test_keys_no_entity_can_take_are_bad_key_dead_letters_only_with_state() -> None:
    source = SOURCES["mobile"]
    good = records_for(source, 3)
    too_long = good[1].value.replace(b'"device_id":"', b'"device_id":"' + "é".encode() * 100)  # type: ignore[union-attr]
    records = [good[0], KafkaRecord("mobile", 0, 1, None, too_long, FIXED_NOW_MS), good[2]]
    keyed = process_batch(source, records, max_record_bytes=1 << 20, keyed=True)
    assert [(d.record.offset, d.reason) for d in keyed.dead_letters] == [(1, "bad_key")]
    assert len(keyed.rows()) == 2
    unkeyed = process_batch(source, records, max_record_bytes=1 << 20)
    assert unkeyed.dead_letters == [] and len(unkeyed.rows()) == 3


def test_absurd_kafka_timestamps_are_treated_as_absent() -> None:
    source = SOURCES["users"]
    record = records_for(source, 1)[0]
    hostile = KafkaRecord(record.topic, 0, 0, None, record.value, 2**62)
    batch = process_batch(source, [hostile], max_record_bytes=1 << 20)
    row = batch.rows()[0]
    assert row["_kafka_timestamp"] is None and (row["_event_time"], row["_event_time_source"]) == (0, "none")
    assert plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS)


class _Refused(Exception):
    pass


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (Exception("The operation failed with an unexpected status code 400"), "record"),
        (Exception("The operation failed with an unexpected status code 414"), "record"),
        (Exception("The operation failed with an unexpected status code 429"), "transient"),
        (Exception("The operation failed with an unexpected status code 503"), "transient"),
        (Exception("The operation failed with an unexpected status code 403"), "infrastructure"),
        (Exception("The operation failed with an unexpected status code 404"), "infrastructure"),
        (TimeoutError(), "transient"),
        (ConnectionRefusedError(), "transient"),
        (ValueError("no status"), "infrastructure"),
    ],
)
def test_entity_errors_are_classified_once(error: Exception, expected: str) -> None:
    assert classify_entity_error(error) == expected


def test_invocation_errors_are_transient_only_when_they_can_heal() -> None:
    assert classify(LakeUnavailable("HTTP 503")) == "transient"
    assert classify(LakeError("not authorised")) == "infrastructure"
    blocked = LakeUnavailable("cannot write")
    blocked.__cause__ = NotADirectoryError(errno.ENOTDIR, "Not a directory")
    assert classify(blocked) == "infrastructure"
    assert classify(RuntimeError("unknown")) == "infrastructure"


def test_a_refused_key_is_dead_lettered_while_others_are_signalled() -> None:
    class Gateway:
        def __init__(self) -> None:
            self.signalled: list[str] = []

        async def read(self, entity: str, key: str) -> dict[str, Any] | None:
            if key == "bad":
                raise Exception("The operation failed with an unexpected status code 400")
            return {"ok": True}

        async def signal(self, signal: Signal) -> None:
            if signal.key == "bad":
                raise Exception("The operation failed with an unexpected status code 400")
            self.signalled.append(signal.key)

    inner = Gateway()
    gateway = _RecordIsolatingGateway(inner)
    assert asyncio.run(gateway.read("e", "bad")) is None
    asyncio.run(gateway.signal(Signal("e", "bad", "apply", {})))
    asyncio.run(gateway.signal(Signal("e", "good", "apply", {})))
    assert inner.signalled == ["good"] and [s.key for s, _ in gateway.rejected] == ["bad"]

    class Down(Gateway):
        async def signal(self, signal: Signal) -> None:
            raise Exception("The operation failed with an unexpected status code 503")

    with pytest.raises(TransientError):
        asyncio.run(_RecordIsolatingGateway(Down()).signal(Signal("e", "k", "apply", {})))


def test_stall_log_logs_once_a_minute_per_partition_and_counts_every_failure(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    counted: list[tuple[str, str]] = []
    stalls = StallLog(clock=lambda: now[0], on_failure=lambda s, c: counted.append((s, c)))
    records = [KafkaRecord("mobile", 0, offset, None, b"{}", None) for offset in range(10, 20)]
    caplog.set_level(logging.WARNING, "streamingpoc.failures")
    for _ in range(5):
        stalls.failed("mobile", offset_spans(records), LakeError("HTTP 403 forbidden"))
        now[0] += 10
    lines = [r.getMessage() for r in caplog.records if "partition waiting" in r.getMessage()]
    assert len(lines) == 1
    assert "source=mobile topic=mobile partition=0 offsets=10-19 attempts=1" in lines[0]
    assert "class=infrastructure" in lines[0] and "HTTP 403" in lines[0]
    now[0] += 60
    stalls.failed("mobile", offset_spans(records), LakeError("HTTP 403 forbidden"))
    assert sum("attempts=6" in r.getMessage() for r in caplog.records) == 1
    assert counted == [("mobile", "infrastructure")] * 6
    assert stalls.waiting()[("mobile", "mobile", 0)]["attempts"] == 6
    stalls.succeeded("mobile", offset_spans(records))
    assert stalls.waiting() == {}
    assert any("flowing again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("columnar", [False, True])
def test_selecting_offsets_keeps_rows_origins_records_and_dead_letters_aligned(columnar: bool) -> None:
    source = SOURCES["clickstream"]
    records = records_for(source, 6)
    records[4] = KafkaRecord(records[4].topic, 0, 4, None, b"{not json", FIXED_NOW_MS)
    batch: ProcessedBatch = process_batch(source, records, max_record_bytes=1 << 20, columnar=columnar)
    (part,) = batch
    chosen = part.select({1, 3, 4})
    assert [r["_offset"] for r in chosen.to_rows()] == [o.offset for o in chosen.origins] == [1, 3]
    assert [r.offset for r in chosen.records] == [1, 3, 4] and [d.record.offset for d in chosen.dead_letters] == [4]
    assert (chosen.table is not None) == columnar and part.row_count == 5  # the batch it came from is unchanged


def test_a_key_the_gateway_cannot_encode_is_the_records_problem() -> None:
    assert classify_entity_error(BadKey("entity key is empty")) == "record"


def test_a_refused_signal_dead_letters_that_buckets_landed_records_and_the_batch_succeeds(tmp_path: Path) -> None:
    source = SOURCES["mobile"]
    records = records_for(source, 30)
    settings = load_settings({"STATE_BUCKETS": "8"})
    key_of = {r.offset: source.entity_key(source.transform(orjson.loads(r.value or b"{}"))) for r in records}
    refused_bucket = bucket_for(key_of[0], 8)

    class Gateway:
        def __init__(self) -> None:
            self.signalled: list[str] = []

        async def read(self, entity: str, key: str) -> dict[str, Any] | None:
            return None

        async def signal(self, signal: Signal) -> None:
            if signal.key == refused_bucket:
                raise Exception("The operation failed with an unexpected status code 400")
            self.signalled.append(signal.key)

    gateway, lake = Gateway(), LocalLake(tmp_path)
    outcome = asyncio.run(
        handle_batch_with_state(
            ProcessingContext(
                source, lake, settings, load_source_settings("mobile", {}), clock=lambda: FIXED_NOW_MS / 1000
            ),
            records,
            gateway,
            StateJoiner(),
        )
    )
    assert outcome.landed == 30 and refused_bucket not in gateway.signalled and gateway.signalled
    letters = sorted(tmp_path.rglob("*.entity_rejected.jsonl.gz"))
    rows = sorted((row for f in letters for row in formats.decode("jsonl", f.read_bytes())), key=lambda r: r["_offset"])
    expected = [offset for offset, key in key_of.items() if bucket_for(key, 8) == refused_bucket]
    assert len(expected) < 30  # only the refused bucket's keys: the other buckets' signals went through
    assert [row["_offset"] for row in rows] == expected and {row["reason"] for row in rows} == {"entity_rejected"}
    assert "status code 400" in rows[0]["detail"]


def test_check_key_agrees_with_encode_key() -> None:
    for key in ["", "é" * 100, "k" * 33, "a/b", "é" * 30]:
        try:
            encode_key(key)
            fits = True
        except BadKey:
            fits = False
        try:
            check_key(key)
            checked = True
        except BadKey:
            checked = False
        assert checked == fits, key
