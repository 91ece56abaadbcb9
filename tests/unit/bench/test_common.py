"""The benchmarks' own checks: a run that lost or duplicated records must fail, and the profile
split must put each sample where its code lives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.common import CheckFailed, Produced, check_counts, check_landed
from bench.compare import breakdown
from bench.core import checked_pipeline, seeded_records
from shared.sources import SOURCES


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


def test_the_core_bench_checks_what_it_encoded() -> None:
    records = seeded_records(SOURCES["clickstream"], 50)
    checked_pipeline(SOURCES["clickstream"], records)
    broken = [dataclasses.replace(record, value=b"not json") for record in records[:3]]
    with pytest.raises(CheckFailed, match="3 dead-lettered"):
        checked_pipeline(SOURCES["clickstream"], records[3:] + broken)


def test_profile_samples_go_to_the_innermost_project_or_sdk_frame(tmp_path: Path) -> None:
    root = "/work/app"
    stacks = [
        f"run (/usr/lib/python3.11/threading.py:1);consume ({root}/devhost/kafka/trigger.py:9);poll (x.py:1) 5",
        f"loop ({root}/devhost/runtime/invoker.py:3);process ({root}/functions/processing.py:47);"
        f"process_batch ({root}/shared/validation.py:50);validate_json (site-packages/pydantic/type_adapter.py:9) 7",
        f"to_thread ({root}/devhost/runtime/invoker.py:3);land ({root}/shared/landing/files.py:3);"
        f"encode ({root}/shared/formats.py:1) 4",
        f"decode ({root}/devhost/kafka/events.py:70);"
        "decode_multiple_events (site-packages/azure/functions/kafka.py:263) 3",
        f"apply ({root}/devhost/durable/entity_runtime.py:5);reduce ({root}/shared/state/user_activity.py:3) 2",
        f"signal ({root}/devhost/web/server.py:80);save ({root}/devhost/durable/store.py:60) 6",
        "select (/usr/lib/python3.11/selectors.py:468) 1",
    ]
    samples = tmp_path / "raw.txt"
    samples.write_text("\n".join(stacks) + "\n")
    counts, total = breakdown(samples)
    assert total == 28
    assert counts["Durable extension emulation + entity functions (devhost HTTP API, entities)"] == 6
    assert counts["Kafka extension emulation (devhost)"] == 5
    assert counts["core (validate + transform)"] == 7
    assert counts["lake write (plan, encode, atomic write)"] == 4
    assert counts["Functions SDK conversion (azure.functions)"] == 3
    assert counts["keyed state (shared/state: signals, lookups, reducers; durable client)"] == 2
    assert counts["other Python (event loop, threads, start-up)"] == 1
