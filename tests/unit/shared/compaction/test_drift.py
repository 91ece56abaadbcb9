"""Fitting an hour's tables to one schema (pure): the types each column takes, and how values get there."""

from __future__ import annotations

import pyarrow as pa

from shared.compaction.drift import TypeChange, fit_table
from shared.compaction.rows import TIMESTAMP

AT_MS = 1_795_000_000_123


def test_epoch_milliseconds_fitted_to_a_timestamp_column_are_milliseconds() -> None:
    """A JSON lines file of a model that had ``created_at`` holds epoch ms (``shared.formats``); the Parquet file
    of the same model typed the column. Cast as Arrow casts integers, the ms were read as microseconds."""
    changes: dict[str, TypeChange] = {}
    fitted = fit_table(pa.table({"created_at": [AT_MS, None]}), {"created_at": TIMESTAMP}, changes)
    expected = pa.array([AT_MS, None], pa.timestamp("ms", tz="UTC")).cast(TIMESTAMP)
    assert fitted.column("created_at").combine_chunks() == expected and changes["created_at"].moved == 0


def test_epoch_milliseconds_past_what_a_timestamp_holds_move_to_extra_alone() -> None:
    changes: dict[str, TypeChange] = {}
    fitted = fit_table(pa.table({"created_at": [AT_MS, 2**62]}), {"created_at": TIMESTAMP}, changes)
    assert fitted.column("created_at").to_pylist()[1] is None and changes["created_at"].moved == 1
    assert fitted.column("created_at").cast(pa.int64()).to_pylist()[0] == AT_MS * 1000
    assert fitted.column("_extra").to_pylist() == [None, f'{{"created_at":{2**62}}}']
