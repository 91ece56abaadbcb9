"""Schema drift per source and hour: columns a model added, columns whose type changed, fields the
model does not know (``_extra``), null rates. Pure (tables in, tables and a report out).

An hour still compacts when a column's type changed: each input table is fitted to the type the
curated table (or, before its first commit, the first table holding the column) has; values that
cast keep their column, the rest move to the row's ``_extra`` under their column name and are
counted. A column a model added is a new nullable column (Delta's schema evolution; older rows
read null). The report rides along in the hour's commit (``streamingpoc.drift``) and is logged and
counted; ``python -m tools.query --drift`` prints it.

A compaction fits and counts its hour one event-time slice at a time (``HourFit``, used by
``shared.compaction.rewrite``); ``fit_tables`` and ``report`` do the same on tables held whole.
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
    target = target_types(curated, [table.schema for table in tables])
    changes: dict[str, TypeChange] = {}
    fitted = [fit_table(table, target, changes) for table in tables]
    return fitted, changes


def target_types(curated: pa.Schema | None, schemas: Sequence[pa.Schema]) -> dict[str, pa.DataType]:
    """Each column's type, in order of appearance: the curated table's, else the first non-null one given."""
    target: dict[str, pa.DataType] = {} if curated is None else {f.name: _plain(f.type) for f in curated}
    for schema in schemas:
        for column in schema:
            if column.name not in target or pa.types.is_null(target[column.name]):
                target[column.name] = _plain(column.type)
    return target


def may_move(target: Mapping[str, pa.DataType], schemas: Sequence[pa.Schema]) -> bool:
    """True when a column of ``schemas`` has another type than ``target`` (its misfits would go to ``_extra``)."""
    return any(
        not pa.types.is_null(column.type) and _plain(column.type) != target[column.name]
        for schema in schemas
        for column in schema
    )


def fit_table(table: pa.Table, target: Mapping[str, pa.DataType], changes: dict[str, TypeChange]) -> pa.Table:
    """``table`` in the ``target`` types; values that do not cast go to ``_extra``, counted in ``changes``."""
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
    tally = DriftTally(frozenset(merged.column_names) - {"date", "hour"})
    tally.add(merged)
    return tally.report(hour, curated, changes)


@dataclass
class DriftTally:
    """What a drift report counts, added up table by table: an hour need not be in memory at once.

    ``columns`` are the hour's columns (partition columns excluded); a table that lacks one counts
    its rows as nulls there, as merging it with the others would.
    """

    columns: frozenset[str]
    rows: int = 0
    nulls: Counter[str] = field(default_factory=Counter)
    fields: Counter[str] = field(default_factory=Counter)  # names in _extra that are not columns

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        for name in self.columns:
            self.nulls[name] += table.column(name).null_count if name in table.column_names else table.num_rows
        if EXTRA in table.column_names:
            for text in pc.drop_null(table.column(EXTRA)).to_pylist():
                self.fields.update(key for key in orjson.loads(text) if key not in self.columns)

    def report(self, hour: Hour, curated: pa.Schema | None, changes: dict[str, TypeChange]) -> HourDrift:
        drift = HourDrift(hour, rows=self.rows, type_changes=changes, new_fields=dict(sorted(self.fields.items())))
        if curated is not None:
            drift.new_columns = sorted(self.columns - set(curated.names))
        rows = max(1, self.rows)
        drift.null_rates = {
            name: round(self.nulls[name] / rows, NULL_RATE_DIGITS)
            for name in sorted(self.columns)
            if self.nulls[name] and not name.startswith("_")
        }
        return drift


class HourFit:
    """Fits every part of one hour to one schema, the curated table's where it has the column, and
    counts the hour's drift as the parts pass (``shared.compaction.rewrite`` fits slice by slice).

    ``schemas`` are the inputs' schemas in input order (the curated rows' first). The hour's
    schema is theirs with the target types, all nullable, plus ``_extra`` when a column's type
    changed, since its misfits move there.
    """

    def __init__(self, curated: pa.Schema | None, schemas: Sequence[pa.Schema]) -> None:
        self.curated = curated
        self.target = target_types(curated, schemas)
        if pa.types.is_null(self.target.get(EXTRA, pa.string())):
            self.target[EXTRA] = pa.string()  # no row had unknown fields yet; misfits may move there
        self.changes: dict[str, TypeChange] = {}
        columns = [pa.field(name, kind) for name, kind in self.target.items()]
        if EXTRA not in self.target and may_move(self.target, schemas):
            columns.append(pa.field(EXTRA, pa.string()))
        self.schema = pa.schema(columns)
        self.tally = DriftTally(frozenset(self.schema.names))

    def fit(self, table: pa.Table) -> pa.Table:
        return fit_table(table, self.target, self.changes)

    def count(self, rows: pa.Table) -> None:
        self.tally.add(rows)

    def report(self, hour: Hour) -> HourDrift:
        return self.tally.report(hour, self.curated, self.changes)


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
