"""``python -m tools.reconcile``: its report and how it says the broker cannot be reached."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.compaction.quarantine import quarantine
from shared.lake import LocalLake
from shared.reconcile import Landed, reconcile
from shared.records import TopicPartition
from shared.settings import load_settings
from tools.reconcile import report_table


def test_a_clean_report_with_pending_offsets_says_so() -> None:
    (report,) = reconcile(
        {TopicPartition("t", 0): (0, 4)},
        [Landed("t", 0, 0, 0, "raw/a"), Landed("t", 0, 0, 1, "raw/a")],
        {},
        {TopicPartition("t", 0): 2},
    )
    table = report_table("s", "t", [report])
    assert "2 past them are pending" in table and "NOT reconciled" not in table


def test_reconcile_with_no_broker_to_reach_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tools import reconcile as reconcile_cli

    monkeypatch.delenv("KAFKA_BROKER_LIST", raising=False)
    monkeypatch.setattr(reconcile_cli, "CHECK_TIMEOUT", 1.0)
    code = reconcile_cli.main(
        ["orders", "--broker", "127.0.0.1:1", "--lake", str(tmp_path), "--settings", str(tmp_path / "absent.json")]
    )
    captured = capsys.readouterr()
    assert code == reconcile_cli.EXIT_BROKER_UNREACHABLE
    assert captured.err.startswith("reconcile of orders stopped: the broker did not answer")
    assert len(captured.err.splitlines()) == 1 and "FAIL" not in captured.out + captured.err


class _Broker:
    """Partition 0 of ``t`` retains offsets 0-4; the group committed them all."""

    def partitions(self, topic: str) -> list[int]:
        return [0]

    def retained(self, topic: str, partition: int) -> tuple[int, int]:
        return 0, 5

    def committed(self, group: str, topic: str, partitions: list[int]) -> dict[int, int | None]:
        return {0: 5}

    def records_in(self, topic: str, partition: int, gaps: list[tuple[int, int]]) -> set[int]:
        return {offset for first, last in gaps for offset in range(first, last + 1)}


def test_the_rows_of_raw_files_compaction_quarantined_are_accounted_for_and_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A quarantined file is out of raw/: without looking in the quarantine its offsets were missing, unnamed."""
    from tools import reconcile as reconcile_cli

    lake = LocalLake(tmp_path)
    directory = "raw/orders/date=2026-11-24/hour=10"

    def rows(offsets: list[int], **columns: list[object]) -> bytes:
        sink = io.BytesIO()
        table = pa.table({"_topic": ["t"] * len(offsets), "_partition": [0] * len(offsets), "_offset": offsets})
        pq.write_table(table.append_column("_event_time", pa.array(offsets, pa.int64())), sink)
        return sink.getvalue()

    lake.write_atomic(f"{directory}/a.parquet", rows([0, 1]))
    lake.write_atomic(f"{directory}/b.parquet", rows([2, 3]))
    lake.write_atomic(f"{directory}/c.parquet", rows([4])[:20])
    unfit = quarantine(lake, "orders", f"{directory}/b.parquet", "rows carry columns ['Date']")
    damaged = quarantine(lake, "orders", f"{directory}/c.parquet", "cannot read raw file")
    monkeypatch.setattr(reconcile_cli, "open_lake", lambda settings: lake)

    code = reconcile_cli.run_reconcile(_Broker(), load_settings({}), "orders", "t", "g")  # type: ignore[arg-type]

    printed = capsys.readouterr().out
    assert code == 1
    partition = next(line.split() for line in printed.splitlines() if line.split()[:2] == ["0", "0"])
    assert partition[4:7] == ["2", "2", "1"], printed  # landed, dead (the unfit file's rows), missing
    assert f"unreadable (left out, its offsets count as missing): {damaged.path} (quarantined: cannot read" in printed
    assert f"{unfit.raw_path} -> {unfit.path}: rows carry columns ['Date']" in printed
