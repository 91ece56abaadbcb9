"""``python -m tools.reconcile``: its report and how it says the broker cannot be reached."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.reconcile import Landed, reconcile
from shared.records import TopicPartition
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
