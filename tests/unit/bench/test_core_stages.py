"""The core's stage-by-stage bench checks each stage's output: a refused record or a row short fails the run."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import Json, TypeAdapter

from bench.common import CheckFailed
from bench.core import seeded_records
from bench.core_stages import STAGES, Stages, validation_rulers
from shared.sources import SOURCES

CLICKSTREAM = SOURCES["clickstream"]


def test_every_stage_runs_and_the_rulers_take_every_seeded_record() -> None:
    stages = Stages(CLICKSTREAM, seeded_records(CLICKSTREAM, 30))
    works = stages.works()
    assert set(STAGES) <= set(works)
    for work in works.values():
        work()  # each raises CheckFailed when its own check fails


def test_a_ruler_that_refuses_a_record_fails_the_run() -> None:
    stages = Stages(CLICKSTREAM, seeded_records(CLICKSTREAM, 30))
    with pytest.raises(CheckFailed, match="a ruler refused"):
        stages.validate(TypeAdapter(list[Json[int] | bytes]))


def test_records_that_are_not_valid_are_refused_before_anything_is_measured() -> None:
    records = seeded_records(CLICKSTREAM, 30)
    records[3] = dataclasses.replace(records[3], value=b"not json")
    with pytest.raises(CheckFailed, match="seeded records failed validation"):
        Stages(CLICKSTREAM, records)


def test_an_encoding_short_of_rows_fails_the_run() -> None:
    stages = Stages(CLICKSTREAM, seeded_records(CLICKSTREAM, 30))
    stages.record_count += 1
    with pytest.raises(CheckFailed, match="30 rows encoded of 31"):
        stages.encode()


def test_the_rulers_leave_out_only_what_they_say() -> None:
    """The app's validator keeps an unknown field; the ruler that ignores them drops it, and takes the record."""
    rulers: dict[str, TypeAdapter[list[Any]]] = validation_rulers(CLICKSTREAM)
    value = seeded_records(CLICKSTREAM, 1)[0].value
    assert value is not None
    with_unknown = value[:-1] + b', "campaign": "x"}'
    assert rulers["the app's validator"].validate_python([with_unknown])[0]["campaign"] == "x"
    assert "campaign" not in rulers["  unknown fields ignored"].validate_python([with_unknown])[0]
