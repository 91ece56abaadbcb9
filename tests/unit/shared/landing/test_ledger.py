"""The landing ledger: one written by the previous version is read and keeps working.

Every test runs with a batch of rows and with one Arrow table (the ``batch_form`` fixture).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.lake import LocalLake
from shared.layout import ledger_path
from shared.records import TopicPartition
from tests.conftest import records_for
from tests.unit.shared.landing.conftest import CLICKS, land_clicks, landed_positions

pytestmark = pytest.mark.usefixtures("batch_form")


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


def test_a_batch_at_no_fingerprint_is_the_life_of_the_batch_it_follows_unless_that_life_contradicts_it() -> None:
    from shared.landing.ledger import Ledger, fingerprint

    old, new = records_for(CLICKS, 20, seed=1), records_for(CLICKS, 20, seed=2)
    ledger = Ledger(incarnation=0, landed=[[0, 9]], fingerprints={0: fingerprint(old[0]), 9: fingerprint(old[9])})
    ledger = ledger.next_incarnation()  # the topic restarted: life 1
    ledger.fingerprints = {0: fingerprint(new[0]), 15: fingerprint(new[15])}
    ledger.landed = [[0, 15]]
    unmarked = old[10:14]  # at no fingerprint of either life
    assert ledger.incarnation_of(unmarked) == 1, "without a stream to follow: the current life"
    assert ledger.incarnation_of(unmarked, same_stream=0) == 0
    assert ledger.incarnation_of(old[9:14], same_stream=0) == 0, "matching life 0's fingerprint at 9"
    assert ledger.incarnation_of(new[9:14], same_stream=0) == 1, "contradicting life 0 at 9: not that life"
