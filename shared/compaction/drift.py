"""Schema drift per source and hour: columns a model added, columns whose type changed, fields the
model does not know (``_extra``), null rates. Pure (tables in, tables and a report out).

An hour still compacts when a column's type changed: each input table is fitted to the type the
curated table (or, before its first commit, the first table holding the column) has; values that
cast keep their column, the rest move to the row's ``_extra`` under their column name and are
counted. A column a model added is a new nullable column (Delta's schema evolution; older rows
read null). The report rides along in the hour's commit (``streamingpoc.drift``) and is logged and
counted; ``python -m tools.query --drift`` prints it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from shared.compaction.hours import Hour

EXTRA = "_extra"
METADATA_KEY = "streamingpoc.drift"
NULL_RATE_DIGITS = 4


@dataclass
class TypeChange:
    """A column whose rows came in another type than the curated one; ``moved`` values went to ``_extra``."""

    curated: str
    landed: str
    moved: int = 0


@dataclass
class HourDrift:
    hour: Hour
    rows: int = 0
    new_fields: dict[str, int] = field(default_factory=dict)  # names in _extra -> rows carrying them
    new_columns: list[str] = field(default_factory=list)  # columns the curated table gains with this commit
    type_changes: dict[str, TypeChange] = field(default_factory=dict)
    null_rates: dict[str, float] = field(default_factory=dict)  # columns with nulls -> share of rows

    @property
    def drifted(self) -> bool:
        return bool(self.new_fields or self.new_columns or self.type_changes)

    def document(self) -> dict[str, Any]:
        return {
            "date": self.hour.date,
            "hour": self.hour.hour,
            "rows": self.rows,
            "new_fields": self.new_fields,
            "new_columns": self.new_columns,
            "type_changes": {name: vars(change) for name, change in self.type_changes.items()},
            "null_rates": self.null_rates,
        }

    def metadata(self) -> dict[str, str]:
        return {METADATA_KEY: orjson.dumps(self.document()).decode()}

    def summary(self) -> str:
        """One log line's worth."""
        parts = [f"{self.rows} rows"]
        if self.new_fields:
            parts.append("new fields " + ", ".join(f"{k} ({v})" for k, v in sorted(self.new_fields.items())))
        if self.new_columns:
            parts.append("new columns " + ", ".join(self.new_columns))
        for name, change in sorted(self.type_changes.items()):
            parts.append(f"{name} {change.landed} -> {change.curated} ({change.moved} to _extra)")
        return "; ".join(parts)


def fit_tables(curated: pa.Schema | None, tables: Sequence[pa.Table]) -> tuple[list[pa.Table], dict[str, TypeChange]]:
    """Every table with each column in one type: the curated table's, else the first table's that has it."""
    target: dict[str, pa.DataType] = {} if curated is None else {f.name: _plain(f.type) for f in curated}
    for table in tables:
        for column in table.schema:
            target.setdefault(column.name, _plain(column.type))
    changes: dict[str, TypeChange] = {}
    fitted = [_fit(table, target, changes) for table in tables]
    return fitted, changes


def _fit(table: pa.Table, target: Mapping[str, pa.DataType], changes: dict[str, TypeChange]) -> pa.Table:
    moved: dict[int, dict[str, Any]] = {}  # row index -> values moved to _extra
    for index, column in enumerate(table.schema):
        wanted = target[column.name]
        if _plain(column.type) == wanted or pa.types.is_null(column.type):
            continue
        values, misfits = _cast_what_fits(table.column(index), wanted)
        change = changes.setdefault(column.name, TypeChange(str(wanted), str(_plain(column.type))))
        change.moved += len(misfits)
        for row, value in misfits.items():
            moved.setdefault(row, {})[column.name] = value
        table = table.set_column(index, pa.field(column.name, wanted), values)
    return _merge_into_extra(table, moved) if moved else table


def _cast_what_fits(column: pa.ChunkedArray, wanted: pa.DataType) -> tuple[pa.Array, dict[int, Any]]:
    """The column in ``wanted`` type: the whole column when it casts, else value by value (misfits null)."""
    try:
        return column.cast(wanted).combine_chunks(), {}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    values: list[Any] = []
    misfits: dict[int, Any] = {}
    for row, value in enumerate(column.to_pylist()):
        if value is None:
            values.append(None)
            continue
        try:
            values.append(pa.array([value]).cast(wanted)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
            values.append(None)
            misfits[row] = value
    return pa.array(values, wanted), misfits


def _merge_into_extra(table: pa.Table, moved: Mapping[int, dict[str, Any]]) -> pa.Table:
    current: list[Any] = table.column(EXTRA).to_pylist() if EXTRA in table.column_names else [None] * table.num_rows
    for row, values in moved.items():
        document = orjson.loads(current[row]) if current[row] else {}
        current[row] = orjson.dumps({**document, **values}, default=str).decode()
    extra = pa.array(current, pa.string())
    if EXTRA in table.column_names:
        return table.set_column(table.schema.get_field_index(EXTRA), pa.field(EXTRA, pa.string()), extra)
    return table.append_column(pa.field(EXTRA, pa.string()), extra)


def report(hour: Hour, merged: pa.Table, curated: pa.Schema | None, changes: dict[str, TypeChange]) -> HourDrift:
    """The drift of one merged hour against the curated table's schema before this commit."""
    drift = HourDrift(hour, rows=merged.num_rows, type_changes=changes)
    columns = set(merged.column_names) - {"date", "hour"}
    if curated is not None:
        drift.new_columns = sorted(columns - set(curated.names))
    if EXTRA in merged.column_names:
        counts: Counter[str] = Counter()
        for text in pc.drop_null(merged.column(EXTRA)).to_pylist():
            counts.update(key for key in orjson.loads(text) if key not in columns)
        drift.new_fields = dict(sorted(counts.items()))
    rows = max(1, merged.num_rows)
    drift.null_rates = {
        name: round(merged.column(name).null_count / rows, NULL_RATE_DIGITS)
        for name in sorted(columns)
        if merged.column(name).null_count and not name.startswith("_")
    }
    return drift


def _plain(kind: pa.DataType) -> pa.DataType:
    """Types as raw files write them (the engine reads back view and large types)."""
    from shared.compaction.rows import _plain_type

    return _plain_type(kind)


def drift_from_history(history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The drift document of each hour's newest compaction, oldest hour first (history: newest commit first)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for commit in history:
        raw = commit.get(METADATA_KEY)
        if not isinstance(raw, str):
            continue
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(document, dict):
            seen.setdefault((str(document.get("date")), str(document.get("hour"))), document)
    return [seen[key] for key in sorted(seen)]
