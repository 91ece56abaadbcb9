"""The core benchmark checks what it encoded: records it did not expect to dead-letter fail the run."""

from __future__ import annotations

import dataclasses

import pytest

from bench.common import CheckFailed
from bench.core import checked_pipeline, seeded_records
from shared.sources import SOURCES


def test_the_core_bench_checks_what_it_encoded() -> None:
    records = seeded_records(SOURCES["clickstream"], 50)
    checked_pipeline(SOURCES["clickstream"], records)
    broken = [dataclasses.replace(record, value=b"not json") for record in records[:3]]
    with pytest.raises(CheckFailed, match="3 dead-lettered"):
        checked_pipeline(SOURCES["clickstream"], records[3:] + broken)
