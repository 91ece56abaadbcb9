"""Readers that take one file's refusal for that file's problem pass the lake refusing the app (``LakeRefused``:
its container gone, the app not authorised) on: nothing is put in doubt, skipped or read as having no gaps."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.compaction.quarantine import quarantine, quarantined_files
from shared.errors import LakeRefused
from shared.lake import LocalLake
from shared.landing.ledger import stored_holes
from shared.landing.raw_rows import raw_rows
from shared.layout import RAW_AREA, batch_file_name, hour_directory, ledger_path
from shared.reconcile import current_lives, landed_offsets
from shared.records import OffsetSpan, TopicPartition
from shared.redrive import RedriveSummary, _letters_to_check
from tests.conftest import FIXED_NOW_MS

HOUR = FIXED_NOW_MS - FIXED_NOW_MS % 3_600_000


class RefusingLake(LocalLake):
    """A local lake whose reads are refused as a deleted container's are, once ``refusing`` is set."""

    refusing = False

    def read(self, path: str) -> bytes:
        if self.refusing:
            raise LakeRefused(f"read {path}: the lake's container is not there (ContainerNotFound)")
        return super().read(path)

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        if self.refusing:
            raise LakeRefused(f"read {path}: the lake's container is not there (ContainerNotFound)")
        return super().read_versioned(path)


def test_raw_rows_raises_it_rather_than_naming_files_unreadable(tmp_path: Path) -> None:
    lake = RefusingLake(tmp_path)
    where = TopicPartition("mobile", 0)
    name = batch_file_name(where, OffsetSpan(0, 9), 0, "jsonl.gz")
    lake.create(f"{hour_directory(RAW_AREA, 'mobile', HOUR)}/{name}", b"")
    lake.refusing = True
    unreadable: dict[tuple[str, int, int, int], str] = {}
    with pytest.raises(LakeRefused):
        raw_rows(lake, "mobile", [("mobile", 0, 0, 3)], hours=[HOUR], unreadable=unreadable)
    assert unreadable == {}


def test_stored_holes_raises_it_rather_than_answering_no_gaps(tmp_path: Path) -> None:
    lake = RefusingLake(tmp_path)
    lake.refusing = True
    with pytest.raises(LakeRefused):
        stored_holes(lake, "mobile", TopicPartition("mobile", 0), 0)


def test_quarantine_listing_raises_it_rather_than_losing_reasons(tmp_path: Path) -> None:
    lake = RefusingLake(tmp_path)
    name = batch_file_name(TopicPartition("mobile", 0), OffsetSpan(0, 9), 0, "jsonl.gz")
    raw_path = f"{hour_directory(RAW_AREA, 'mobile', HOUR)}/{name}"
    lake.create(raw_path, b"damaged")
    quarantine(lake, "mobile", raw_path, "not gzip")
    lake.refusing = True
    with pytest.raises(LakeRefused):
        quarantined_files(lake, "mobile")


def test_redrive_raises_it_rather_than_naming_letter_files_unreadable(tmp_path: Path) -> None:
    lake = RefusingLake(tmp_path)
    lake.create("deadletter/mobile/dt=2026-12-06/hour=08/mobile-0-0-9.jsonl.gz", b"")
    lake.refusing = True
    summary = RedriveSummary(source="mobile")
    with pytest.raises(LakeRefused):
        _letters_to_check(lake, "mobile", summary, lambda entry: True, 1 << 20)
    assert summary.unreadable == []


def test_reconcile_raises_it_rather_than_naming_files_unreadable_or_reading_no_ledger(tmp_path: Path) -> None:
    """``tools.reconcile``'s readers caught every exception but an outage: a refused raw file was listed unreadable
    (its offsets then counted missing) and a refused ledger read taken for "no ledger yet"."""
    lake = RefusingLake(tmp_path)
    where = TopicPartition("mobile", 0)
    name = batch_file_name(where, OffsetSpan(0, 9), 0, "jsonl.gz")
    lake.create(f"{hour_directory(RAW_AREA, 'mobile', HOUR)}/{name}", b"")
    lake.create(ledger_path("mobile", where), b"{}")
    lake.refusing = True
    unreadable: list[str] = []
    with pytest.raises(LakeRefused):
        landed_offsets(lake, "mobile", unreadable)
    assert unreadable == []
    with pytest.raises(LakeRefused):
        current_lives(lake, "mobile", {where: (0, 10)}, [])
