"""Where a state-off invocation's CPU goes, per event, stage by stage, beside ``orjson.loads`` of the same values.

    python bench/core_stages.py [--source clickstream] [--records 100000] [--repeat 3]

``bench/core.py`` measures the whole path; this splits it, in one process and alternating rounds, into
validation (pydantic: parse, types, constraints, the fields a model does not know kept for ``_extra``), the
columnar transform with lineage (``transform_table``; two of its parts measured alone too) and the Parquet
encoding (``plan_batch``), in invocations of host.json's ``maxBatchSize``. Validation is also run with parts of its
schema left out, to show what each part costs; those variants are not what the app runs (they would drop unknown
fields or their shadows), only rulers. The rulers, the transform and the encoding check their output (every record
valid, a table made, every row encoded); the baseline and the whole path are ``core.py``'s own ``raw_parse`` and
``pipeline`` (which checks its rows too).
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
from pydantic import ConfigDict, Json, TypeAdapter
from typing_extensions import TypedDict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CheckFailed
from bench.core import BATCH, PARQUET, pipeline, raw_parse, seeded_records
from shared.batch import process_batch
from shared.extra_fields import extra_texts
from shared.landing.files import plan_batch
from shared.lineage import lineage_arrays
from shared.records import KafkaRecord
from shared.source_model import Source, event_schema, record_type
from shared.sources import SOURCES
from shared.transform import transform_table
from shared.validation import batch_validator, validate_batch
from tests.conftest import FIXED_NOW_MS

MAX_RECORD_BYTES = 1 << 20


def validation_rulers(source: Source) -> dict[str, TypeAdapter[list[Any]]]:
    """The app's batch validator and variants of its record type with a part left out (rulers, not the app's)."""
    record = record_type(source.model)
    if not hasattr(record, "__annotations__"):  # a model with check_record: Annotated, not a plain TypedDict
        raise SystemExit(f"{source.name}: its record type has a cross-field check; pick a source without one")
    fields = dict(record.__annotations__)
    own = {name: annotation for name, annotation in fields.items() if name in source.model.model_fields}

    def variant(annotations: dict[str, Any], extra: Literal["allow", "ignore"]) -> TypeAdapter[list[Any]]:
        typed: Any = TypedDict(f"{source.model.__name__}Ruler", annotations)  # type: ignore[misc]
        typed.__pydantic_config__ = ConfigDict(extra=extra)  # type: ignore[attr-defined]
        return TypeAdapter(list[Json[typed]])

    return {
        "the app's validator": batch_validator(source.model),
        "  unknown fields ignored": variant(fields, "ignore"),
        "  and no shadow fields": variant(own, "ignore"),
        "  parse only (Json[Any])": TypeAdapter(list[Json[Any]]),
    }


def per_event_us(works: dict[str, Callable[[], object]], count: int, repeat: int) -> dict[str, float]:
    """CPU microseconds per event of each work, over ``repeat`` rounds that run them all in turn, after one unmeasured
    run of each."""
    for work in works.values():  # a first run builds what each keeps (validators' caches, Arrow's kernels)
        work()
    spent = dict.fromkeys(works, 0.0)
    for _ in range(repeat):
        for name, work in works.items():
            started = time.process_time()
            work()
            spent[name] += time.process_time() - started
    return {name: seconds / (count * repeat) * 1e6 for name, seconds in spent.items()}


class Stages:
    """The stages of state-off invocations over ``records`` (in host.json's batches), each checking its output."""

    def __init__(self, source: Source, records: list[KafkaRecord]) -> None:
        if source.transform_columns is None:
            raise SystemExit(f"{source.name} has no columnar transform: its state-off path builds rows")
        self.source, self.records, self.record_count = source, records, len(records)
        self.batches = [records[start : start + BATCH] for start in range(0, len(records), BATCH)]
        self.values = [[record.value or b"" for record in batch] for batch in self.batches]
        self.validated = [validate_batch(source, batch, max_record_bytes=MAX_RECORD_BYTES) for batch in self.batches]
        if sum(len(batch.events) for batch in self.validated) != len(records):
            raise CheckFailed(f"{source.name}: seeded records failed validation")
        self.processed = [
            process_batch(source, batch, max_record_bytes=MAX_RECORD_BYTES, columnar=True) for batch in self.batches
        ]

    def validate(self, adapter: TypeAdapter[list[Any]]) -> None:
        for batch in self.values:
            if not all(type(result) is dict for result in adapter.validate_python(batch)):
                raise CheckFailed(f"{self.source.name}: a ruler refused a seeded record")

    def transform(self) -> None:
        for batch in self.validated:
            if transform_table(self.source, batch) is None:
                raise CheckFailed(f"{self.source.name}: the columnar transform refused a batch")

    def events_table(self) -> None:
        schema = event_schema(self.source.model)
        for batch in self.validated:
            pa.Table.from_pylist(batch.events, schema=schema)

    def lineage(self) -> None:
        source = self.source
        for batch in self.validated:
            times = [source.event_time_ms(event) for event in batch.events]
            lineage_arrays(batch.origins, times, extra_texts(source.model, batch.events), batch.received)

    def encode(self) -> None:
        files = [file for batch in self.processed for file in plan_batch(batch, PARQUET, now_ms=FIXED_NOW_MS)]
        rows = sum(file.row_count for file in files)
        if rows != self.record_count:
            raise CheckFailed(f"{self.source.name}: {rows} rows encoded of {self.record_count}")

    def works(self) -> dict[str, Callable[[], object]]:
        rulers = validation_rulers(self.source)
        return {
            "orjson.loads (baseline)": partial(raw_parse, self.records),
            **{name: partial(self.validate, adapter) for name, adapter in rulers.items()},
            "transform_table (Arrow, lineage)": self.transform,
            "  of which the events' table": self.events_table,
            "  and the lineage columns": self.lineage,
            "plan_batch (Parquet, zstd)": self.encode,
            "whole path (bench/core.py's)": partial(pipeline, self.source, self.records),
        }


STAGES = ("the app's validator", "transform_table (Arrow, lineage)", "plan_batch (Parquet, zstd)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="clickstream", choices=sorted(SOURCES))
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from functions.processing import GC_THRESHOLDS  # the collector as the app's worker sets it, on import

    gc.set_threshold(*GC_THRESHOLDS)
    source = SOURCES[args.source]
    stages = Stages(source, seeded_records(source, args.records))
    costs = per_event_us(stages.works(), stages.record_count, args.repeat)
    print(f"{source.name}: {stages.record_count:,} records, invocations of {BATCH:,}, gc thresholds {GC_THRESHOLDS}")
    baseline = costs["orjson.loads (baseline)"]
    for name, cost in costs.items():
        print(f"{name:<34} {cost:>7.3f} us/event  {cost / baseline:>5.2f}x orjson")
    summed, whole = sum(costs[name] for name in STAGES), costs["whole path (bench/core.py's)"]
    print(f"{'the three stages':<34} {summed:>7.3f} us/event  (the whole path: {whole:.3f}, {1e6 / whole:,.0f} ev/s)")
    print(f"300,000 ev per CPU-second is {1e6 / 300_000:.3f} us/event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
