"""Quarantining a raw file: never one its partition's landing still names as pending; under a name the lake takes,
however long the raw file's; and listing the quarantine, whatever it holds."""

from __future__ import annotations

import dataclasses
import gzip
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from shared.batch import process_batch
from shared.compaction import quarantine as quarantine_module
from shared.compaction.hours import Hour, parse_raw_path
from shared.compaction.job import CompactionReport, compact, open_curated
from shared.compaction.quarantine import (
    NAME_BYTES,
    NO_REASON,
    REASON_SUFFIX,
    REFUSED_NAME,
    SUFFIX,
    Quarantined,
    StillLanding,
    quarantine,
    quarantine_directory,
    quarantine_name,
    quarantined_files,
)
from shared.errors import LakeUnavailable
from shared.formats import decode, format_named
from shared.lake import LocalLake
from shared.landing.files import land, plan_batch
from shared.landing.guard import LandingGuard, PartitionLander
from shared.landing.partition import DEFAULT_LEASE_SECONDS
from shared.layout import HOUR_MS, batch_file_name
from shared.records import KafkaRecord, OffsetSpan, TopicPartition
from shared.settings import load_settings
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS, records_for

CLICKS = get_source("clickstream")


def _half_late(first: int, seed: int) -> list[KafkaRecord]:
    """Ten records from ``first``, every other one two hours old: one batch, two raw files (two event hours)."""
    records = []
    for record in records_for(CLICKS, 10, seed=seed, first_offset=first):
        event = json.loads(record.value or b"{}")
        if record.offset % 2:
            event["_time"] -= 2 * HOUR_MS
        records.append(dataclasses.replace(record, value=json.dumps(event).encode()))
    return records


def _land(guard: LandingGuard, records: list[KafkaRecord]) -> None:
    (part,) = process_batch(CLICKS, records, max_record_bytes=1 << 20)
    lander = PartitionLander(
        guard.partition(CLICKS.name, part.topic_partition), part, format_named("parquet"), FIXED_NOW_MS
    )
    lander.admit()
    lander.begin()
    lander.write()
    lander.finish()


def _offsets(root: Path, pattern: str) -> set[int]:
    return {row["_offset"] for path in root.glob(pattern) for row in decode("parquet", path.read_bytes())}


def test_a_raw_file_of_a_pending_landing_waits_for_the_landing_to_finish(tmp_path: Path) -> None:
    """A partition's last landing stays pending until its next batch. Moving one of its files then made the
    next instance take the landing for unfinished and remove its other files: records Kafka does not send
    again (a review found it). The file is moved once the next batch has finished the landing."""
    clock = [1_000_000.0]
    _land(LandingGuard(LocalLake(tmp_path), clock=lambda: clock[0]), _half_late(0, seed=1))
    late, _ = sorted(str(path.relative_to(tmp_path)) for path in tmp_path.glob("raw/**/*.parquet"))
    with pytest.raises(StillLanding, match="still names it as pending"):
        quarantine(LocalLake(tmp_path), CLICKS.name, late, "a column no Delta table stores")

    clock[0] += DEFAULT_LEASE_SECONDS + 10
    _land(LandingGuard(LocalLake(tmp_path), clock=lambda: clock[0]), _half_late(10, seed=2))  # another instance
    moved = quarantine(LocalLake(tmp_path), CLICKS.name, late, "a column no Delta table stores")
    assert moved.raw_path == late and not (tmp_path / late).exists()
    landed, quarantined = _offsets(tmp_path, "raw/**/*.parquet"), _offsets(tmp_path, "deadletter/**/*.quarantined")
    assert landed | quarantined == set(range(20)) and not landed & quarantined


# A raw name as long as the layout makes it: a 190-character topic, 245 characters in all. The quarantine's name
# added 29 characters and its sidecar 5 more, past the 255 bytes a file system (or ADLS Gen2) takes in a name.
LONG_TOPIC = "t" * 190
ORDERS_HOUR = "raw/orders/date=2026-11-24/hour=10"


def _long_raw_path(first: int, topic: str = LONG_TOPIC) -> str:
    return f"{ORDERS_HOUR}/{batch_file_name(TopicPartition(topic, 0), OffsetSpan(first, first + 9), 0, 'parquet')}"


def test_a_raw_file_with_a_name_near_the_limit_is_quarantined_under_names_the_lake_takes(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    raw_path = _long_raw_path(0)
    assert len(raw_path.rpartition("/")[2]) == 245
    lake.write_atomic(raw_path, b"not parquet")

    moved = quarantine(lake, "orders", raw_path, "cannot read raw file")

    name = moved.path.rpartition("/")[2]
    assert len((name + REASON_SUFFIX).encode()) <= NAME_BYTES and name.endswith(SUFFIX)
    assert lake.read(moved.path) == b"not parquet" and not lake.exists(raw_path)
    assert quarantined_files(lake, "orders") == [moved]  # its raw path, from the sidecar: not the cut name's


def test_a_cut_quarantine_name_is_the_same_on_a_rerun_and_another_names_differs(tmp_path: Path) -> None:
    """A run cut between the copy and the delete repeats the move under the same name; two long names that begin
    alike (two files of one long topic, the same bytes) keep apart."""
    lake = LocalLake(tmp_path)
    first, second = _long_raw_path(0), _long_raw_path(10)
    lake.write_atomic(first, b"")
    moved = quarantine(lake, "orders", first, "empty")
    lake.write_atomic(first, b"")  # as if the delete had not happened
    assert quarantine(lake, "orders", first, "empty") == moved
    lake.write_atomic(second, b"")
    other = quarantine(lake, "orders", second, "empty")

    assert other.path != moved.path
    assert sorted((q.raw_path, q.path) for q in quarantined_files(lake, "orders")) == sorted(
        [(first, moved.path), (second, other.path)]
    )


def test_a_short_name_is_quarantined_as_earlier_versions_named_it() -> None:
    digest = "0123456789abcdef" * 4
    assert quarantine_name("a.parquet", digest) == "a.parquet.0123456789abcdef.quarantined"


def test_files_quarantined_under_the_earlier_names_read_as_before(tmp_path: Path) -> None:
    """Copies earlier versions quarantined (``<name>.<digest>.quarantined``), with their sidecar or without."""
    lake = LocalLake(tmp_path)
    directory = f"{quarantine_directory('orders')}/date=2026-11-24/hour=10"
    with_sidecar, without = (
        f"{directory}/a.parquet.0123456789abcdef.quarantined",
        f"{directory}/b.avro.fedc.quarantined",
    )
    lake.write_atomic(with_sidecar, b"x")
    sidecar = {"reason": "unusable_raw_file", "detail": "cannot read", "raw_path": f"{ORDERS_HOUR}/a.parquet"}
    lake.write_atomic(with_sidecar + REASON_SUFFIX, json.dumps(sidecar).encode())
    lake.write_atomic(without, b"y")

    assert quarantined_files(lake, "orders") == [
        Quarantined(f"{ORDERS_HOUR}/a.parquet", with_sidecar, "cannot read"),
        Quarantined(f"{ORDERS_HOUR}/b.avro", without, NO_REASON),
    ]


def test_a_cut_name_whose_sidecar_is_gone_still_tells_its_hour_and_format(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    raw_path = _long_raw_path(0)
    lake.write_atomic(raw_path, b"not parquet")
    moved = quarantine(lake, "orders", raw_path, "cannot read raw file")
    lake.delete(moved.path + REASON_SUFFIX)

    (found,) = quarantined_files(lake, "orders")

    guessed = parse_raw_path("orders", found.raw_path)
    assert found.why == NO_REASON and guessed is not None
    assert (guessed.hour, guessed.format) == (parse_raw_path("orders", raw_path).hour, "parquet")  # type: ignore[union-attr]


class _DeletesSidecarsWhenListed(LocalLake):
    """An operator (or the lifecycle rule) deletes every sidecar just after the quarantine is listed."""

    def list_paths(self, prefix: str) -> list[str]:
        listed = super().list_paths(prefix)
        for path in listed:
            if path.endswith(REASON_SUFFIX):
                self.delete(path)
        return listed


def test_a_sidecar_deleted_between_the_listing_and_its_read_is_no_reason_recorded(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    raw_path = f"{ORDERS_HOUR}/a.parquet"
    lake.write_atomic(raw_path, b"not parquet")
    moved = quarantine(lake, "orders", raw_path, "cannot read raw file")

    assert quarantined_files(_DeletesSidecarsWhenListed(tmp_path), "orders") == [
        Quarantined(raw_path, moved.path, NO_REASON)
    ]


def test_a_quarantined_file_whose_name_the_lake_refuses_is_listed_with_that_as_its_reason(tmp_path: Path) -> None:
    """An operator's copy beside a quarantined file, named as a file manager names copies, with its sidecar."""
    lake = LocalLake(tmp_path)
    raw_path = f"{ORDERS_HOUR}/c.parquet"
    lake.write_atomic(raw_path, b"not parquet")
    moved = quarantine(lake, "orders", raw_path, "cannot read raw file")
    copy = tmp_path / moved.path.rpartition("/")[0] / "c (1).parquet.0000.quarantined"
    copy.write_bytes(b"not parquet")
    Path(f"{copy}{REASON_SUFFIX}").write_bytes((tmp_path / (moved.path + REASON_SUFFIX)).read_bytes())

    found = quarantined_files(lake, "orders")

    assert [q.path for q in found] == sorted([moved.path, str(copy.relative_to(tmp_path))])
    assert moved in found
    (refused,) = (q for q in found if q != moved)
    assert refused.why == REFUSED_NAME


def test_an_outage_while_reading_a_sidecar_is_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lake = LocalLake(tmp_path)
    raw_path = f"{ORDERS_HOUR}/a.parquet"
    lake.write_atomic(raw_path, b"not parquet")
    quarantine(lake, "orders", raw_path, "cannot read raw file")

    def unavailable(path: str) -> bytes:
        raise LakeUnavailable(f"cannot read {path}: the disk is gone")

    monkeypatch.setattr(lake, "read", unavailable)
    with pytest.raises(LakeUnavailable):
        quarantined_files(lake, "orders")


# Compaction of a source whose hour holds an unusable raw file with a long name, and an hour after it.
CLICKS_H10 = Hour.of_ms(FIXED_NOW_MS)
CLICKS_H09 = Hour.of_ms(CLICKS_H10.start_ms - 1)


def _clicks_parquet(hour: Hour, offsets: list[int]) -> bytes:
    table = pa.table({"_topic": ["clickstream"] * len(offsets), "_partition": [0] * len(offsets), "_offset": offsets})
    times = pa.array([hour.start_ms + 1000 + i for i in range(len(offsets))], pa.timestamp("ms", tz="UTC"))
    sink = io.BytesIO()
    pq.write_table(table.append_column("_event_time", times), sink)
    return sink.getvalue()


def _compact_long_named_unusable_file(tmp_path: Path) -> tuple[LocalLake, CompactionReport]:
    lake = LocalLake(tmp_path)
    directory = f"raw/clickstream/date={CLICKS_H09.date}/hour={CLICKS_H09.hour}"
    name = "x" * (240 - len(".jsonl.gz")) + ".jsonl.gz"  # 240 characters: the lake stores and lists it
    lake.write_atomic(f"{directory}/{name}", gzip.compress(b"[1, 2]\n"))  # a row that is not an object: unusable
    lake.write_atomic(f"{directory}/good.parquet", _clicks_parquet(CLICKS_H09, [7, 8]))
    batch = process_batch(CLICKS, records_for(CLICKS, 10), max_record_bytes=100_000)
    land(lake, plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS))  # the hour after the bad one
    settings = load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)})
    report = compact(
        CLICKS.name, lake, open_curated(settings, CLICKS.name), now_ms=CLICKS_H10.end_ms + 2 * HOUR_MS, grace_ms=0
    )
    return lake, report


def _curated_offsets(tmp_path: Path, hour: Hour) -> list[int]:
    location = open_curated(load_settings({"LAKE_LOCAL_ROOT": str(tmp_path)}), CLICKS.name).location
    rows = DeltaTable(location.uri, storage_options=location.storage_options).to_pyarrow_table(
        columns=["date", "hour", "_offset"]
    )
    return sorted(r["_offset"] for r in rows.to_pylist() if (r["date"], r["hour"]) == (hour.date, hour.hour))


def test_an_unusable_raw_file_with_a_long_name_is_quarantined_and_its_hour_and_the_next_compact(
    tmp_path: Path,
) -> None:
    """Its quarantine's name was too long for the file system: the lake took that for an outage, which stops the
    run, so no later hour of the source ever compacted again (a review proved it)."""
    _, report = _compact_long_named_unusable_file(tmp_path)

    assert not report.failed and [q.raw_path.rpartition("/")[2][:3] for q in report.quarantined] == ["xxx"]
    assert _curated_offsets(tmp_path, CLICKS_H09) == [7, 8]
    assert _curated_offsets(tmp_path, CLICKS_H10) == list(range(10))


def test_a_name_too_long_for_the_lake_fails_only_its_hour(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Were a quarantine's name still too long (as earlier versions named it), the lake's refusal is the file's:
    its hour fails, the hours after it compact."""
    monkeypatch.setattr(quarantine_module, "quarantine_name", lambda name, digest: f"{name}.{digest[:16]}{SUFFIX}")

    _, report = _compact_long_named_unusable_file(tmp_path)

    assert list(report.failed) == [CLICKS_H09] and "longer than the file system takes" in report.failed[CLICKS_H09]
    assert _curated_offsets(tmp_path, CLICKS_H10) == list(range(10))


def test_an_outage_while_copying_to_the_quarantine_keeps_the_raw_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The raw file goes only once its quarantined copy is made. Deleted first, a 503 on the copy left neither:
    its records were gone, and Kafka does not send them again."""
    lake = LocalLake(tmp_path)
    raw_path = f"{ORDERS_HOUR}/a.parquet"
    lake.write_atomic(raw_path, b"not parquet")

    def unavailable(path: str, data: bytes) -> bool:
        raise LakeUnavailable(f"cannot create {path}: 503 Server Busy")

    monkeypatch.setattr(lake, "create", unavailable)
    with pytest.raises(LakeUnavailable):
        quarantine(lake, "orders", raw_path, "cannot read raw file")

    assert lake.read(raw_path) == b"not parquet"
    monkeypatch.undo()
    moved = quarantine(lake, "orders", raw_path, "cannot read raw file")  # the next run moves it
    assert (tmp_path / moved.path).read_bytes() == b"not parquet" and not (tmp_path / raw_path).exists()
