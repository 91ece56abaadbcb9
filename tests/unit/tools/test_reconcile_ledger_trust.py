"""``python -m tools.reconcile`` trusts the landing ledger only as far as it can read it, and believes what it says:
an unreadable ledger is named and nothing is reconciled; offsets it landed that no file holds are missing."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shared.invocation import handle_batch
from shared.lake import LocalLake
from shared.layout import ledger_path
from shared.records import KafkaRecord, TopicPartition
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS, context_for
from tests.unit.tools.test_reconcile import _columns, _orders, _run, _Topic, _TransactionalTopic

LEDGER = ledger_path("orders", TopicPartition("orders", 0))


def _landed(tmp_path: Path, *batches: tuple[int, int]) -> LocalLake:
    """A lake where the real landing landed each ``[first, last)`` batch of partition 0 of ``orders``."""
    lake = LocalLake(tmp_path)
    for first, last in batches:
        handle_batch(context_for(SOURCES["orders"], lake), _orders(range(first, last)))
    return lake


def _raw_file(tmp_path: Path, first: int, last: int) -> Path:
    (found,) = tmp_path.glob(f"raw/orders/**/orders+0+i0+{first:020d}+{last:020d}.parquet")
    return found


@pytest.mark.parametrize("damage", ["a newer version's", "truncated"])
def test_a_recreated_topic_whose_ledger_cannot_be_read_is_not_reported_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    """The old life landed 0-9; the topic is recreated, its new records 0-4 not landed, the group committed 5. With
    the ledger read, its fingerprints show it. A ledger it could not read was taken for "no ledger": the old life's
    files covered 0-4, nothing was compared, and it said every retained offset was in the lake exactly once."""
    lake = _landed(tmp_path, (0, 10))
    new_life = _orders(range(5), key="n", orderid=10_000, timestamp_ms=FIXED_NOW_MS + 1)
    code, printed = _run(lake, _Topic(new_life, 5), monkeypatch, capsys)
    assert code == 1 and "missing: partition 0 offsets 0-4 (5)" in printed, printed  # readable: it is seen

    stored = (tmp_path / LEDGER).read_bytes()
    if damage == "truncated":
        (tmp_path / LEDGER).write_bytes(stored[:15])
    else:
        (tmp_path / LEDGER).write_bytes(orjson.dumps(orjson.loads(stored) | {"format": 2}))
    code, printed = _run(lake, _Topic(new_life, 5), monkeypatch, capsys)

    assert code == 1 and printed.splitlines()[-1] == "result: NOT reconciled", printed
    assert f"unreadable landing ledger (its partition is not reconciled): {LEDGER}: " in printed, printed
    assert "unverified: partition 0: its landing ledger cannot be read" in printed, printed
    if damage == "truncated":
        assert "not a landing ledger this version reads (JSONDecodeError" in printed, printed
    else:
        assert "written by a newer version (ledger format 2; this version reads 1): run the newer version's" in printed


def test_offsets_the_ledger_landed_whose_raw_file_is_gone_are_missing_with_no_committed_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """0-2, 3-5 and 6-9 landed; 6-9's raw file is deleted and the group's offset expired. Inferred from the files
    alone, 6-9 were pending (exit 0), but a redelivery lands nothing there: the ledger says they landed."""
    lake = _landed(tmp_path, (0, 3), (3, 6), (6, 10))
    _raw_file(tmp_path, 6, 9).unlink()

    code, printed = _run(lake, _Topic(_orders(range(10)), None), monkeypatch, capsys)

    assert code == 1 and "missing: partition 0 offsets 6-9 (4)" in printed, printed
    assert _columns(printed)[4:10] == ["6", "0", "4", "0", "0", "0"], printed  # landed, dead, missing, .., pending
    assert printed.splitlines()[-1] == "result: NOT reconciled", printed


def test_offsets_the_ledger_counts_landed_that_no_file_holds_are_missing_with_no_committed_offset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The ledger counts 0-19 landed, the files hold 0-4: 5-19 were reported pending (exit 0)."""
    lake = _landed(tmp_path, (0, 5))
    document = orjson.loads((tmp_path / LEDGER).read_bytes())
    (tmp_path / LEDGER).write_bytes(orjson.dumps(document | {"landed": [[0, 19]]}))

    code, printed = _run(lake, _Topic(_orders(range(20)), None), monkeypatch, capsys)

    assert code == 1 and "missing: partition 0 offsets 5-19 (15)" in printed, printed
    assert _columns(printed)[4:10] == ["5", "0", "15", "0", "0", "0"], printed


def test_a_clean_lake_with_a_readable_ledger_and_no_committed_offset_stays_clean(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Controls: every landed offset in the lake (the last batch's dead letters included; its landing still named
    by the ledger) is clean, and offsets past what the ledger and the files hold stay pending."""
    lake = _landed(tmp_path, (0, 3), (3, 6))
    bad = [KafkaRecord("orders", 0, offset, str(offset), b"not json", FIXED_NOW_MS) for offset in (8, 9)]
    handle_batch(context_for(SOURCES["orders"], lake), [*_orders(range(6, 8)), *bad])
    log = [*_orders(range(8)), *bad]

    code, printed = _run(lake, _Topic(log, None), monkeypatch, capsys)
    assert code == 0 and printed.splitlines()[-1] == "result: every retained offset is in the lake exactly once"
    assert _columns(printed)[4:10] == ["8", "2", "0", "0", "0", "0"], printed

    code, printed = _run(lake, _Topic([*log, *_orders(range(10, 15))], None), monkeypatch, capsys)
    assert code == 0 and "5 past them are pending" in printed and "missing:" not in printed, printed


def test_commit_markers_past_what_landed_with_no_committed_offset_are_no_gap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two transactions (0-4, 6-10), each with its commit marker (5, 11), which hold no record: still clean."""
    lake = _landed(tmp_path, (0, 5), (6, 11))
    topic = _TransactionalTopic([*_orders(range(0, 5)), *_orders(range(6, 11))], None)
    topic.end = 12  # the last marker is retained too

    code, printed = _run(lake, topic, monkeypatch, capsys)

    assert code == 0 and printed.splitlines()[-1] == "result: every retained offset is in the lake exactly once"
    assert _columns(printed)[4:11] == ["10", "0", "0", "0", "0", "2"], printed  # landed .. no record
