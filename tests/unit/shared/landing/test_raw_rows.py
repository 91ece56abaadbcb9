"""Reading back what raw/ holds of given records (``shared.landing.raw_rows``)."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import orjson
import pytest

from shared.errors import UnreadableLakeFile
from shared.lake import LocalLake
from shared.landing.raw_rows import raw_rows
from shared.layout import RAW_AREA, batch_file_name, hour_directory
from shared.records import OffsetSpan, TopicPartition
from tests.conftest import FIXED_NOW_MS

HOUR = FIXED_NOW_MS - FIXED_NOW_MS % 3_600_000


def _landed(lake: LocalLake, partition: int, rows: list[dict[str, object]], name: str | None = None) -> str:
    file = name or batch_file_name(TopicPartition("mobile", partition), OffsetSpan(0, 9), 0, "jsonl.gz")
    path = f"{hour_directory(RAW_AREA, 'mobile', HOUR)}/{file}"
    lake.create(path, gzip.compress(b"\n".join(orjson.dumps(row) for row in rows)))
    return path


def test_each_record_is_found_in_its_partitions_landing_and_what_is_not_one_is_skipped(tmp_path: Path) -> None:
    """Two partitions' landings in one hour, a file named as no landing, a row without an offset, a row of
    another life, a row whose offset is not a number: each wanted record is found in its own partition's file."""
    lake = LocalLake(tmp_path)
    rows = [{"_offset": 3, "_incarnation": 0, "v": "p0"}, {"v": "no offset"}, {"_offset": 4, "_incarnation": 1}]
    _landed(lake, 0, [*rows, {"_offset": "x"}])
    _landed(lake, 1, [{"_offset": 3, "_incarnation": 0, "v": "p1"}])
    _landed(lake, 1, [{"_offset": 5, "_incarnation": 0, "v": "foreign"}], name="notes.jsonl.gz")
    wanted = [("mobile", 0, 0, 3), ("mobile", 1, 0, 3), ("mobile", 1, 0, 5), ("mobile", 0, 0, 4)]
    for hours in ([HOUR, HOUR + 3_600_000], None):
        found = raw_rows(lake, "mobile", wanted, hours=hours)
        assert {item: row.get("v") for item, row in found.items()} == {
            ("mobile", 0, 0, 3): "p0",
            ("mobile", 1, 0, 3): "p1",
        }
    assert raw_rows(lake, "mobile", wanted, hours=[HOUR + 3_600_000]) == {}, "only the hours given are read"


def test_an_unreadable_covering_file_is_named_or_put_in_doubt(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    path = _landed(lake, 0, [{"_offset": 3, "_incarnation": 0}])
    lake.write_atomic(path, b"not gzip")
    with pytest.raises(UnreadableLakeFile, match=re.escape(path)):
        raw_rows(lake, "mobile", [("mobile", 0, 0, 3)])
    in_doubt: dict[tuple[str, int, int, int], str] = {}
    assert raw_rows(lake, "mobile", [("mobile", 0, 0, 3), ("mobile", 0, 0, 20)], unreadable=in_doubt) == {}
    assert list(in_doubt) == [("mobile", 0, 0, 3)] and in_doubt[("mobile", 0, 0, 3)].startswith(f"{path}: ")


def test_a_row_landed_before_lives_were_recorded_comes_back_as_life_0_and_signals(tmp_path: Path) -> None:
    """Review 15: such a row (no ``_incarnation``) was found as life 0, then its re-signal (``tools.redrive``, or a
    redelivery rejecting the record) read ``row["_incarnation"]`` and failed with a KeyError, every time."""
    from shared.state.aggregate import signals_for

    lake = LocalLake(tmp_path)
    row = {"_topic": "mobile", "_partition": 0, "_offset": 3, "_event_time": FIXED_NOW_MS, "device_id": "d1"}
    _landed(lake, 0, [row | {"event_type": "tap", "screen": "home", "app_version": "4.3.0", "os": "iOS"}])
    (found,) = raw_rows(lake, "mobile", [("mobile", 0, 0, 3)]).values()
    assert found["_incarnation"] == 0
    (signal,) = signals_for("mobile", [found], buckets=4)
    assert signal.payload["parts"][0]["incarnation"] == 0
