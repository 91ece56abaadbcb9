"""The landing guard: each offset lands once however batches are redelivered or recut, each partition on
its own; the lease it is given is checked.

Every test runs with a batch of rows and with one Arrow table (the ``batch_form`` fixture).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.batch import ProcessedBatch, process_batch
from shared.errors import ConfigurationError
from shared.lake import LocalLake
from shared.landing.guard import DEFAULT_LEASE_SECONDS, LandingGuard, guard_for, land_once
from shared.records import KafkaRecord
from shared.sources import get_source
from tests.conftest import FIXED_NOW_MS, records_for
from tests.unit.shared.landing.conftest import CLICKS, PARQUET, land_clicks, land_clicks_report, landed_positions

pytestmark = pytest.mark.usefixtures("batch_form")


def test_redelivered_and_recut_batches_land_each_offset_once(tmp_path: Path) -> None:
    records = records_for(CLICKS, 300)
    lake = LocalLake(tmp_path)
    assert land_clicks(lake, records[:100]) == 100
    assert land_clicks(lake, records[:100]) == 0  # redelivered as it was
    assert land_clicks(lake, records[:150]) == 50  # redelivered, cut longer
    assert land_clicks(lake, records[50:120]) == 0  # consumer group rewound into landed batches
    assert land_clicks(lake, records[120:300]) == 150
    assert landed_positions(tmp_path) == [(0, 0, offset) for offset in range(300)]


def test_partitions_of_one_batch_are_guarded_separately(tmp_path: Path) -> None:
    zero = records_for(CLICKS, 50, partition=0)
    one = records_for(CLICKS, 50, partition=1, first_offset=1000)
    lake = LocalLake(tmp_path)
    assert land_clicks(lake, zero[:20] + one) == 70
    assert land_clicks(LocalLake(tmp_path), zero + one) == 30
    assert landed_positions(tmp_path) == [(0, 0, o) for o in range(50)] + [(1, 0, o) for o in range(1000, 1050)]


def test_a_row_dead_lettered_as_unencodable_stays_out_of_a_redelivered_batch(tmp_path: Path) -> None:
    mobile = get_source("mobile")
    records = records_for(mobile, 20)

    def delivered() -> ProcessedBatch:
        batch = process_batch(mobile, records, max_record_bytes=1 << 20)
        batch.rows()[5]["screen"] = "\udcff"  # no encoder takes a lone surrogate
        return batch

    first = land_once(LocalLake(tmp_path), delivered(), PARQUET, now_ms=FIXED_NOW_MS)
    assert first.row_count == 19 and [letter.record.offset for letter in first.unencodable] == [5]
    again = land_once(LocalLake(tmp_path), delivered(), PARQUET, now_ms=FIXED_NOW_MS)  # redelivered to a new process
    assert again.row_count == 0  # nothing lands, nothing is encoded for landing
    assert [record.offset for record in again.dead_lettered_before] == [5]  # found in the dead-letter file
    assert {offset for _, _, offset in again.not_in_raw()} == {5}


def test_a_row_that_landed_before_counts_though_no_encoder_takes_it_now(tmp_path: Path) -> None:
    """The converse: the row landed (the encoder took it then), and a redelivery's copy no encoder takes (a format
    or an encoder changed). raw/ holds it, so its entity must count it: it is not reported as outside raw/."""
    mobile = get_source("mobile")
    records = records_for(mobile, 20)
    first = land_once(LocalLake(tmp_path), process_batch(mobile, records, max_record_bytes=1 << 20), PARQUET, now_ms=0)
    assert first.row_count == 20
    redelivered = process_batch(mobile, records, max_record_bytes=1 << 20)
    redelivered.rows()[5]["screen"] = "\udcff"
    again = land_once(LocalLake(tmp_path), redelivered, PARQUET, now_ms=FIXED_NOW_MS)
    assert (again.row_count, again.skipped, again.not_in_raw(), again.rejected_in_raw) == (0, 20, set(), ())


def test_a_lease_too_short_for_the_lakes_requests_is_refused(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    with pytest.raises(ConfigurationError, match="LANDING_LEASE_SECONDS"):
        LandingGuard(lake, lease_seconds=lake.max_request_seconds)
    assert DEFAULT_LEASE_SECONDS >= 2 * 66 + 2  # the Azure stores' longest request (shared.lake.connection), twice


def test_a_retried_admission_relabels_rows_an_earlier_attempt_set_to_another_incarnation(tmp_path: Path) -> None:
    """Rows carry the incarnation of the admission that lands them, not of an attempt before it."""
    from shared.landing.guard import PartitionLander, guard_for

    records = records_for(CLICKS, 20)
    (part,) = process_batch(CLICKS, records, max_record_bytes=1 << 20)
    part.set_incarnation(3)  # what a lost attempt left on the rows
    lake = LocalLake(tmp_path)
    lander = PartitionLander(guard_for(lake).partition(CLICKS.name, part.topic_partition), part, PARQUET, FIXED_NOW_MS)
    lander.admit()
    assert part.incarnation == 0 and {row["_incarnation"] for row in part.to_rows()} == {0}


def test_an_offset_delivered_twice_in_one_batch_lands_once(tmp_path: Path) -> None:
    """A consumer that loses and regains a partition while it gathers a batch fetches again from the
    committed offset, so one batch can hold a record twice; the lake must still hold it once."""
    records = records_for(CLICKS, 10)
    assert land_clicks(LocalLake(tmp_path), [*records, *records[3:5]]) == 10
    assert landed_positions(tmp_path) == [(0, 0, offset) for offset in range(10)]


class _CountingFingerprints(dict[int, str]):
    """Fingerprints that count each lookup."""

    lookups = 0

    def get(self, *args):  # type: ignore[no-untyped-def, override]
        _CountingFingerprints.lookups += 1
        return super().get(*args)

    def __contains__(self, key: object) -> bool:
        _CountingFingerprints.lookups += 1
        return super().__contains__(key)

    def __getitem__(self, key: int) -> str:
        _CountingFingerprints.lookups += 1
        return super().__getitem__(key)


def test_a_steady_state_batch_looks_up_no_fingerprint_per_record(tmp_path: Path) -> None:
    """Past everything landed, on a topic that never restarted, a batch is compared with nothing."""
    lake = LocalLake(tmp_path)
    records = records_for(CLICKS, 2100, seed=3)
    land_once(lake, process_batch(CLICKS, records[:100], max_record_bytes=1 << 20), PARQUET, now_ms=FIXED_NOW_MS)
    landing = guard_for(lake).partition(CLICKS.name, records[0].topic_partition)
    snapshot = landing._loaded()
    snapshot.fingerprints = _CountingFingerprints(snapshot.fingerprints)
    _CountingFingerprints.lookups = 0
    batch = process_batch(CLICKS, records[100:], max_record_bytes=1 << 20)
    assert land_once(lake, batch, PARQUET, now_ms=FIXED_NOW_MS).row_count == 2000
    assert _CountingFingerprints.lookups <= 4


def _two_partitions_one_not_json(offset: int) -> list[KafkaRecord]:
    """Ten clicks on each of partitions 0 and 1, one shared timestamp; partition 1's record at ``offset`` not JSON."""
    zero, one = records_for(CLICKS, 10, partition=0), records_for(CLICKS, 10, partition=1)
    for record in zero + one:
        record.timestamp_ms = FIXED_NOW_MS
    one[offset].value = b"{not json"
    return zero + one


def test_another_partitions_dead_letter_at_the_same_offset_hides_no_landed_row(tmp_path: Path) -> None:
    """Dead-letter files of both partitions share an hour directory: only this partition's file (its name) says
    which of its offsets were dead-lettered. Read by offset alone, partition 0's landed row 5 would be taken for a
    dead letter on redelivery, and state would never count it."""
    records = _two_partitions_one_not_json(5)
    assert land_clicks_report(LocalLake(tmp_path), records).row_count == 19
    again = land_clicks_report(LocalLake(tmp_path), records)
    assert again.dead_lettered_before == () and again.not_in_raw() == set()


def test_a_damaged_dead_letter_file_stops_no_redelivery(tmp_path: Path) -> None:
    """A dead-letter file that cannot be read is taken as landed (logged): raising there would fail every redelivery
    of the partition, for ever."""
    records = _two_partitions_one_not_json(5)
    land_clicks_report(LocalLake(tmp_path), records)
    (letters,) = tmp_path.glob("deadletter/**/*.gz")
    letters.write_bytes(b"not gzip at all")
    assert land_clicks_report(LocalLake(tmp_path), records).row_count == 0


class _OneSecondALake(LocalLake):
    """A local lake whose every request takes a second of the guard's clock (and of the monotonic one)."""

    def __init__(self, root: Path, clock: list[float]) -> None:
        super().__init__(root)
        self.clock = clock
        self.created: list[str] = []

    def _tick(self) -> None:
        self.clock[0] += 1.0

    def create(self, path: str, data: bytes) -> bool:
        self._tick()
        self.created.append(path)
        return super().create(path, data)

    def exists(self, path: str) -> bool:
        self._tick()
        return super().exists(path)

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        self._tick()
        return super().read_versioned(path)

    def write_if(self, path: str, data: bytes, version: str | None) -> str:
        self._tick()
        return super().write_if(path, data, version)


def test_a_batch_spanning_many_hours_lands_in_parts_that_each_fit_a_lease(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file per hour of its rows: 400 records with Kafka times an hour apart (producer clocks, a backfill) made one
    landing of 400 files, one request each. Its lease ran out part way; every retry then checked the 400 files it
    named before writing on, which took longer than a lease, so it never wrote again: the partition stalled. It now
    lands in parts of at most LANDING_MAX_FILES files, each within its lease, each offset once."""
    from shared.landing import guard as guard_module
    from shared.landing import partition

    clock = [float(FIXED_NOW_MS // 1000)]
    monkeypatch.setattr(partition.time, "monotonic", lambda: clock[0])
    lake = _OneSecondALake(tmp_path, clock)
    guard_for(lake).clock = lambda: clock[0]
    hour = 3_600_000
    records = [
        KafkaRecord(r.topic, r.partition, r.offset, r.key, r.value, FIXED_NOW_MS - offset * hour)
        for offset, r in enumerate(records_for(CLICKS, 400))
    ]
    attempts = 0
    while attempts < 5:  # the trigger retries a failed batch
        attempts += 1
        try:
            land_clicks(lake, records)
            break
        except partition.LeaseExpired:
            continue
    assert landed_positions(tmp_path) == [(0, 0, offset) for offset in range(400)], f"{attempts} attempts"
    assert attempts == 1
    raw_files = [path for path in lake.created if path.startswith("raw/")]
    assert len(raw_files) == len(set(raw_files)) > guard_module.LANDING_MAX_FILES
