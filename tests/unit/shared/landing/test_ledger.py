"""The landing ledger: one written by the previous version is read and keeps working.

Every test runs with a batch of rows and with one Arrow table (the ``batch_form`` fixture).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shared.errors import UnreadableLakeFile
from shared.failures import ErrorClass, classify
from shared.lake import LocalLake
from shared.landing.ledger import names_pending
from shared.landing.partition import timestamp_span
from shared.layout import ledger_path
from shared.records import KafkaRecord, TopicPartition
from tests.conftest import records_for
from tests.unit.shared.landing.conftest import CLICKS, land_clicks, landed_positions

pytestmark = pytest.mark.usefixtures("batch_form")
LEDGER = ledger_path("clickstream", TopicPartition("clickstream", 0))
PENDING = {"low": 0, "high": 9, "files": [], "owner": "x", "started_ms": 0}
DAMAGED = {
    "truncated": b'{"incarnation": 0, "landed": [[0, 9]], "fingerp',
    "binary": b"\x00\x01garbage",
    "a list": b"[]",
    "null": b"null",
    "wrong type": b'{"incarnation": "zero"}',
    "a newer version's pending": orjson.dumps({"incarnation": 0, "pending": PENDING | {"v2": 1}}),
    "pending files not a list": orjson.dumps({"incarnation": 0, "pending": PENDING | {"files": "raw/x"}}),
    "a range not a pair": b'{"incarnation": 0, "landed": [[0]]}',
    "ranges out of order": b'{"incarnation": 0, "landed": [[20, 29], [0, 9]]}',
    "an earlier life not an object": b'{"incarnation": 1, "previous": [5]}',
    "an earlier life's fingerprints": b'{"incarnation": 1, "previous": [{"incarnation": 0, "landed": [], '
    b'"fingerprints": {"3": 7}}]}',
    "seen_at not an offset": b'{"incarnation": 1, "seen_at": "15"}',
    "adopted not ranges": b'{"incarnation": 1, "seen_at": 15, "adopted": [[9, 0]]}',
    "an earlier life's adopted": b'{"incarnation": 2, "previous": [{"incarnation": 1, "landed": [], '
    b'"seen_at": 4, "adopted": [3]}]}',
    "a newer version's format": b'{"format": 2, "incarnation": 0}',
    "format not a number": b'{"format": "1", "incarnation": 0}',
    "a next_life copy's seen_at": b'{"incarnation": 1, "previous": [{"incarnation": 0, "landed": [], '
    b'"next_life": {"incarnation": 1, "seen_at": "4"}}]}',
}


def test_a_ledger_written_by_the_previous_version_keeps_working(tmp_path: Path) -> None:
    """An upgrade in place: the previous version's ledger (no incarnation on pending, no earlier fingerprints,
    no removing flag) is read, its unfinished landing completed, and nothing lands twice or goes missing."""
    import orjson

    from shared.landing.ledger import fingerprint

    first_life, records = records_for(CLICKS, 30, seed=3), records_for(CLICKS, 150)
    land_clicks(LocalLake(tmp_path), first_life)
    land_clicks(LocalLake(tmp_path), records[:100])  # incarnation 1: offsets restarted
    (raw_file,) = [p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("raw/**/*+i1+*.parquet")]
    (tmp_path / raw_file).unlink()  # the old writer died before its file
    old = {  # what the previous version wrote for that moment
        "incarnation": 1,
        "landed": [],
        "fingerprints": {"0": fingerprint(records[0]), "99": fingerprint(records[99])},
        "pending": {"low": 0, "high": 99, "files": [raw_file], "owner": "old-process", "started_ms": 0},
        "previous": [{"incarnation": 0, "landed": [[0, 29]]}],
    }
    (tmp_path / ledger_path("clickstream", TopicPartition("clickstream", 0))).write_bytes(orjson.dumps(old))
    assert land_clicks(LocalLake(tmp_path), records) == 150  # the unfinished 0-99 as the same file, then 100-149
    assert (tmp_path / raw_file).exists()
    expected = [(0, 0, offset) for offset in range(30)] + [(0, 1, offset) for offset in range(150)]
    assert landed_positions(tmp_path) == expected
    assert land_clicks(LocalLake(tmp_path), records[50:150]) == 0
    assert landed_positions(tmp_path) == expected


def test_a_newer_versions_top_level_field_is_kept_when_this_version_rewrites_the_ledger(tmp_path: Path) -> None:
    """Peers of two versions share a ledger during a rolling deploy: this version lands (rewrites the ledger) and the
    newer version's field, which it does not know, is still there, as stored; the format it writes is its own."""
    records = records_for(CLICKS, 20)
    land_clicks(LocalLake(tmp_path), records[:10])
    stored = orjson.loads((tmp_path / LEDGER).read_bytes())
    assert stored["format"] == 1
    (tmp_path / LEDGER).write_bytes(orjson.dumps(stored | {"newer": {"kept": [1, "a"]}}))
    assert land_clicks(LocalLake(tmp_path), records) == 10
    rewritten = orjson.loads((tmp_path / LEDGER).read_bytes())
    assert rewritten["newer"] == {"kept": [1, "a"]} and rewritten["format"] == 1
    assert landed_positions(tmp_path) == [(0, 0, offset) for offset in range(20)]


def test_a_batch_at_no_fingerprint_is_the_life_of_the_batch_it_follows_unless_that_life_contradicts_it() -> None:
    from shared.landing.ledger import Ledger, fingerprint

    old, new = records_for(CLICKS, 20, seed=1), records_for(CLICKS, 20, seed=2)
    ledger = Ledger(incarnation=0, landed=[[0, 9]], fingerprints={0: fingerprint(old[0]), 9: fingerprint(old[9])})
    ledger = ledger.next_incarnation()  # the topic restarted: life 1
    ledger.fingerprints = {0: fingerprint(new[0]), 15: fingerprint(new[15])}
    ledger.landed = [[0, 15]]
    ledger.stamp(timestamp_span(new[:16]), 1)  # as landing them did
    unmarked = old[10:14]  # at no fingerprint of either life
    assert ledger.incarnation_of(unmarked) == 1, "without a stream to follow: the current life"
    assert ledger.incarnation_of(unmarked, same_stream=0) == 0
    assert ledger.incarnation_of(old[9:14], same_stream=0) == 0, "matching life 0's fingerprint at 9"
    assert ledger.incarnation_of(new[9:14], same_stream=0) == 1, "contradicting life 0 at 9: not that life"


def test_where_a_restart_showed_and_what_the_new_life_adopted_are_stored_and_read_back() -> None:
    """Stored with the life when it starts and carried into ``previous`` by the next restart; a ledger of a life
    that never restarted writes neither (it reads as the previous version wrote it)."""
    from shared.landing.ledger import Ledger, fingerprint

    old, new = records_for(CLICKS, 30, first_offset=20, seed=1), records_for(CLICKS, 40, seed=2)
    ledger = Ledger(landed=[[0, 9], [20, 49]], fingerprints={0: fingerprint(new[0]), 20: fingerprint(old[0])})
    assert set(ledger.to_json()) == {"format", "incarnation", "landed", "fingerprints", "pending", "previous"}
    ledger = ledger.next_incarnation(20, seen_at=10)
    ledger.adopt([[0, 9]], 1)
    read = Ledger.from_json(orjson.loads(orjson.dumps(ledger.to_json())))
    assert (read.seen_at, read.adopted) == (10, [[0, 9]])
    assert read.landed_before_seen(new[3:8], 1, of_this_life=True) == frozenset(range(3, 8)), "adopted"
    assert read.landed_before_seen(new[3:8], 1) == frozenset(), "no evidence the batch is life 1's: never skipped"
    assert read.landed_before_seen(new[10:14], 1) == frozenset(), "at or above where it showed: its own"
    assert read.holes(1) == [], "its adopted offsets are no gap the life may land yet"
    later = Ledger.from_json(orjson.loads(orjson.dumps(read.next_incarnation(None, seen_at=0).to_json())))
    assert later.seen_at_of(1) == 10 and later.adopted_in(1) == [[0, 9]]


def test_a_batch_matching_an_earlier_life_then_contradicting_it_is_not_of_that_life() -> None:
    """The new life's first records landed as the old life (0-9), the restart showed at 20 and the landing that saw
    it was removed (no fingerprint of life 1 left). A redelivery from 0 matches life 0 at 0 and contradicts it at
    20: it left life 0 there, so it is life 1's, not life 0's (whose 20-49 it would skip as landed: lost)."""
    from shared.landing.ledger import Ledger, fingerprint

    old, new = records_for(CLICKS, 30, first_offset=20, seed=1), records_for(CLICKS, 40, seed=2)
    known = {0: fingerprint(new[0]), 9: fingerprint(new[9]), 20: fingerprint(old[0])}
    ledger = Ledger(landed=[[0, 9], [20, 49]], fingerprints=known).next_incarnation(20, seen_at=10)
    assert ledger.incarnation_of(new[0:30]) == 1
    assert ledger.incarnation_of(new[0:9]) == 0, "matching life 0 and nothing above contradicting it"
    assert ledger.incarnation_of(old[0:5]) == 0, "the old life's own records"
    ledger.adopt([[0, 9]], 1)
    assert ledger.incarnation_of(new[0:9]) == 0, "matching life 0 where life 1 adopted: life 0 holds it"
    assert ledger.evidence(new[0:9], 1) is True, "evidence of life 1 all the same"
    third = records_for(CLICKS, 10, seed=5)
    assert ledger.incarnation_of(third) == 2, "contradicting life 1's adopted record at 0: the topic restarted again"


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_ledger_this_version_cannot_read_makes_its_partition_wait_loudly(tmp_path: Path, content: bytes) -> None:
    """A damaged ledger (or a newer version's) never heals by itself: every write of it is conditional on a version
    read from it. Taken for transient, its partition retried for good while the partition-waiting alert, which
    fires on infrastructure failures, stayed quiet (and a JSON list raised a bare AttributeError). It must name
    the ledger, land nothing and leave the ledger as it is."""
    (tmp_path / LEDGER).parent.mkdir(parents=True)
    (tmp_path / LEDGER).write_bytes(content)
    with pytest.raises(UnreadableLakeFile) as raised:
        land_clicks(LocalLake(tmp_path), records_for(CLICKS, 10))
    assert classify(raised.value) is ErrorClass.INFRASTRUCTURE
    assert raised.value.path == LEDGER and LEDGER in str(raised.value)
    assert landed_positions(tmp_path) == []
    assert (tmp_path / LEDGER).read_bytes() == content


@pytest.mark.parametrize("damage", ["truncated", "binary", "a list"])
def test_a_ledger_that_cannot_be_read_still_counts_as_naming_its_pending_files(tmp_path: Path, damage: str) -> None:
    """The tools that must leave an unfinished landing's files alone (compaction's quarantine, redrive) take a
    ledger they cannot read as naming the file: its partition's next owner may yet remove it."""
    lake = LocalLake(tmp_path)
    land_clicks(lake, records_for(CLICKS, 10))  # the stored ledger names this landing until the next batch
    (raw,) = lake.list_paths("raw/clickstream")
    stored = (tmp_path / LEDGER).read_bytes()
    damaged = {"truncated": stored[: len(stored) // 2], "binary": b"\x00\x01garbage", "a list": b"[]"}[damage]
    (tmp_path / LEDGER).write_bytes(damaged)
    assert names_pending(lake, "clickstream", raw)
    assert names_pending(lake, "clickstream", raw, unless_complete=True)


def test_offsets_the_consumer_passed_over_prove_no_next_life() -> None:
    """A group moved forward (offsets 10-19 passed over: landed, no record there) then back: the records at 10-19,
    stamped by a clock ahead, were newer than every record the life landed and sat at "landed" offsets, so a life
    that does not exist began, and a later batch across 20 landed 20-25 in it again (a review's reproduction:
    six offsets doubled). Only offsets where a record landed, and a record with a timestamp there, prove it."""
    import dataclasses

    from shared.landing.ledger import Ledger, fingerprint

    records = records_for(CLICKS, 35, seed=1)
    ledger = Ledger.first()
    ledger.landed, ledger.passed_over = [[0, 29]], [[10, 19]]
    ledger.fingerprints = {0: fingerprint(records[0]), 29: fingerprint(records[29])}
    ledger.stamp(timestamp_span([*records[:10], *records[20:30]]), 0)
    ahead = [dataclasses.replace(record, timestamp_ms=(record.timestamp_ms or 0) + 5_000) for record in records]
    assert ledger.incarnation_of(ahead[10:20]) == 0, "a rewind into what the consumer passed over lands there"
    assert ledger.incarnation_of(ahead[20:25]) == 1, "at offsets whose records landed: still the next life"
    untimed = [dataclasses.replace(record, timestamp_ms=None) for record in records[20:22]]
    assert ledger.incarnation_of([*untimed, *ahead[30:]]) == 0, "no timestamp at a landed offset: nothing proved"


def test_a_batch_newer_than_all_its_life_landed_at_an_offset_it_landed_is_of_the_next_life() -> None:
    """A re-created topic's consumer group starting inside the old life's landed offsets (retention, a move) meets
    none of its kept fingerprints: its records, all newer than every record the life landed, are not the ones
    landed there: the next life. Only that proof moves a batch: older records, a batch partly newer, lives whose
    timestamps are out of order or not known, leave it to the current life, as before."""
    import dataclasses

    from shared.landing.ledger import Ledger, fingerprint

    def shifted(records: list[KafkaRecord], ms: int) -> list[KafkaRecord]:
        return [dataclasses.replace(record, timestamp_ms=(record.timestamp_ms or 0) + ms) for record in records]

    landed = records_for(CLICKS, 100, seed=1)
    ledger = Ledger.first()
    ledger.landed = [[0, 99]]
    ledger.fingerprints = {0: fingerprint(landed[0]), 99: fingerprint(landed[99])}
    ledger.stamp(timestamp_span(landed), 0)
    newer, older = shifted(landed, 1), shifted(landed, -1)
    assert ledger.incarnation_of(newer[40:50]) == 1
    assert ledger.incarnation_of(newer[40:50], same_stream=0) == 1, "the same consumer: still not what landed"
    assert ledger.incarnation_of(landed[40:50]) == 0, "a redelivery"
    assert ledger.incarnation_of(older[40:50]) == 0, "older: which life, nothing tells"
    assert ledger.incarnation_of([*landed[40:45], *newer[45:50]]) == 0, "partly newer: nothing proved"
    past = [dataclasses.replace(record, offset=record.offset + 100) for record in newer[:10]]
    assert ledger.incarnation_of(past) == 0, "past the landed offsets: fresh, not a contradiction"

    after = ledger.next_incarnation()
    assert after.timestamps_ms == [] and after.timestamps_of(0) == ledger.timestamps_ms
    after.landed = [[0, 49]]
    after.stamp(timestamp_span(newer[:50]), 1)
    assert after.incarnation_of(shifted(landed, 2)[10:20]) == 2, "the lives' clocks in order: the next life"
    back = ledger.next_incarnation()  # the producers' clocks went back across the re-creation
    back.landed = [[0, 49]]
    back.stamp(timestamp_span(shifted(landed, -5)[:50]), 1)
    assert back.incarnation_of(landed[10:20]) == 1, "newer than this life, clocks out of order: nothing tells"
    back.stamp((0, 1), 0)
    assert back.timestamps_of(0) == [0, ledger.timestamps_ms[1]], "landing in the life before widens its own"  # type: ignore[index]

    read = Ledger.from_json(orjson.loads(orjson.dumps(after.to_json())))
    assert read.timestamps_ms == after.timestamps_ms and read.incarnation_of(shifted(landed, 2)[10:20]) == 2
    written_by_an_older_version = {name: value for name, value in after.to_json().items() if name != "timestamps_ms"}
    stale = Ledger.from_json(written_by_an_older_version)  # it carried the earlier life's entry as it found it
    assert stale.timestamps_of(0) is None and stale.incarnation_of(shifted(landed, 2)[10:20]) == 1
    restarted = stale.next_incarnation()
    assert all("timestamps_ms" not in entry for entry in restarted.previous)
    restarted.landed = [[0, 49]]
    restarted.stamp(timestamp_span(shifted(landed, 2)[:50]), 2)
    assert restarted.incarnation_of(shifted(landed, 3)[10:20]) == 2, "the life before's not known: nothing tells"
    document = ledger.to_json()
    del document["timestamps_ms"]
    legacy = Ledger.from_json(document)
    assert legacy.timestamps_ms is None and legacy.incarnation_of(newer[40:50]) == 0
    legacy.stamp((0, 10**15), 0)
    assert legacy.timestamps_ms is None, "never started part-way through a life"
    for damaged in ([5], [9, 3], ["x", 1]):
        with pytest.raises(ValueError, match="timestamps_ms"):
            Ledger.from_json(document | {"timestamps_ms": damaged})
