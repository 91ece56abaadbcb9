"""The end-to-end benchmarks' own checks: a run that lost or duplicated records fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.common import CheckFailed, Produced, check_counts, check_landed


def _produced(valid: int, invalid: int) -> Produced:
    return Produced({"t": {0: valid + invalid}}, {"clickstream": valid}, {"clickstream": invalid}, {"clickstream": "t"})


def test_counts_pass_only_when_every_record_landed_or_was_dead_lettered_once() -> None:
    check_counts("clickstream", 95, 95, 5, _produced(95, 5))
    with pytest.raises(CheckFailed, match="dead-lettered 100"):
        check_counts("clickstream", 0, 0, 100, _produced(95, 5))  # everything dead-lettered
    with pytest.raises(CheckFailed, match="96 rows, 95 distinct"):
        check_counts("clickstream", 96, 95, 5, _produced(95, 5))  # a duplicate


def test_an_empty_lake_fails_the_landing_check(tmp_path: Path) -> None:
    with pytest.raises(CheckFailed, match="landed 0 rows"):
        check_landed(tmp_path, _produced(10, 1))
