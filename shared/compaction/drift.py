"""Schema drift per source and hour: columns a model added, columns whose type changed, fields the
model does not know (``_extra``), null rates. Pure (tables in, tables and a report out).

An hour still compacts when a column's type changed: each input table is fitted to the type the
curated table (or, before its first commit, the first table holding the column) has; values that
cast keep their column, the rest move to the row's ``_extra`` under their column's key
(``shared.extra_fields.field_key``: a ``.`` or ``\\`` in the name escaped, as processing keys a
top-level unknown field) and are counted, not reported as new fields. A struct's fields the
curated struct lacks (a foreign file's, or registry-typed Parquet of a newer model) move there
too, as ``parent.child`` (Arrow's cast would drop them); inside a
list or a map no such name reaches them, so the whole value moves. A column a model added is a
new nullable column (Delta's schema evolution; older rows read null). The report rides along in
the hour's commit (``streamingpoc.drift``) and is logged and counted; ``python -m tools.query
--drift`` prints it.

Field names in ``_extra`` are the producers' choice: any number, any length, any characters. The
report keeps the ``NEW_FIELDS_REPORTED`` names carried by the most rows (ties by name) and counts
the others (``more_fields``); a name is cut to ``FIELD_NAME_CHARS`` characters as it is counted,
and the tally holds fewer than ``FIELDS_TRACKED`` names while it counts (``DriftTally``). The commit
keeps names as JSON strings; wherever one is logged or printed it is ``printable`` (control and
other non-printable characters escaped), so a name can neither forge a log line nor drive a terminal.

A compaction fits and counts its hour one event-time slice at a time (``HourFit``, used by
``shared.compaction.rewrite``); ``fit_tables`` and ``report`` do the same on tables held whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from shared.compaction.hours import Hour
from shared.compaction.rows import TIMESTAMP, CompactionError
from shared.extra_fields import field_key

EXTRA = "_extra"
METADATA_KEY = "streamingpoc.drift"
NULL_RATE_DIGITS = 4
NEW_FIELDS_REPORTED = 50  # names of fields in _extra an hour's report keeps, the most frequent; the rest counted
FIELD_NAME_CHARS = 100  # a longer field name is cut to this many characters (and CUT_MARK) as it is counted
FIELDS_TRACKED = 1_000  # distinct names a tally holds while counting; when reached, the less frequent half goes
CUT_MARK = "\u2026"  # ends a cut name
ArrowValues = TypeVar("ArrowValues", pa.Array, pa.ChunkedArray)


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
    new_fields: dict[str, int] = field(default_factory=dict)  # names in _extra -> rows carrying them (the top ones)
    more_fields: int = 0  # other names seen in _extra (see fields_approximate)
    fields_approximate: bool = False  # more than FIELDS_TRACKED names: counts may be low, more_fields high
    new_columns: list[str] = field(default_factory=list)  # columns the curated table gains with this commit
    type_changes: dict[str, TypeChange] = field(default_factory=dict)
    null_rates: dict[str, float] = field(default_factory=dict)  # columns with nulls -> share of rows

    @property
    def drifted(self) -> bool:
        return bool(self.new_fields or self.more_fields or self.new_columns or self.type_changes)

    def document(self) -> dict[str, Any]:
        return {
            "date": self.hour.date,
            "hour": self.hour.hour,
            "rows": self.rows,
            "new_fields": self.new_fields,
            "more_fields": self.more_fields,
            "fields_approximate": self.fields_approximate,
            "new_columns": self.new_columns,
            "type_changes": {name: vars(change) for name, change in self.type_changes.items()},
            "null_rates": self.null_rates,
        }

    def metadata(self) -> dict[str, str]:
        return {METADATA_KEY: orjson.dumps(self.document()).decode()}

    def summary(self) -> str:
        """One log line's worth: bounded, every name ``printable``."""
        parts = [f"{self.rows} rows"]
        if self.new_fields or self.more_fields:
            parts.append("new fields " + fields_text(self.new_fields, self.more_fields, self.fields_approximate))
        if self.new_columns:
            parts.append("new columns " + ", ".join(printable(name) for name in self.new_columns))
        for name, change in sorted(self.type_changes.items()):
            landed, curated = printable(change.landed), printable(change.curated)
            parts.append(f"{printable(name)} {landed} -> {curated} ({change.moved} to _extra)")
        return "; ".join(parts)


def fields_text(new_fields: Mapping[str, int], more: int = 0, approximate: bool = False) -> str:
    """``name (rows), ...`` of the ``NEW_FIELDS_REPORTED`` most frequent names (cut, ``printable``), then
    ``+K more``: what the log line and ``tools.query --drift`` show (a document of older code may hold more)."""
    shown = top_fields(new_fields)
    more += max(0, len(new_fields) - NEW_FIELDS_REPORTED)
    text = ", ".join(f"{printable(name)} ({rows})" for name, rows in shown.items())
    if more:
        text += f"{', ' if text else ''}+{more} more"
    if approximate:
        text += f" (approximate: over {FIELDS_TRACKED} distinct names)"
    return text


def top_fields(counts: Mapping[str, int], limit: int = NEW_FIELDS_REPORTED) -> dict[str, int]:
    """The ``limit`` names carried by the most rows (ties: the smaller name), cut, in name order."""
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return dict(sorted((cut_name(name), rows) for name, rows in top))


def cut_name(name: str) -> str:
    """``name``, cut to ``FIELD_NAME_CHARS`` characters (and ``CUT_MARK``) when longer."""
    return name if len(name) <= FIELD_NAME_CHARS else name[:FIELD_NAME_CHARS] + CUT_MARK


def printable(text: str) -> str:
    """``text`` safe to log or print on one line: a backslash, and every character ``str.isprintable``
    refuses (control characters such as a newline or ESC, line separators, format characters such as a
    bidi override), written as ``repr`` writes it (a backslash escape), so a name can neither start a
    line of its own nor send a terminal a control sequence."""
    if text.isprintable() and "\\" not in text:
        return text
    return "".join(repr(char)[1:-1] if char == "\\" or not char.isprintable() else char for char in text)


def fit_tables(curated: pa.Schema | None, tables: Sequence[pa.Table]) -> tuple[list[pa.Table], dict[str, TypeChange]]:
    """Every table with each column in one type: the curated table's, else the first table's that has it."""
    target = target_types(curated, [table.schema for table in tables])
    changes: dict[str, TypeChange] = {}
    fitted = [fit_table(table, target, changes) for table in tables]
    return fitted, changes


def target_types(
    curated: pa.Schema | None, schemas: Sequence[pa.Schema], origins: Sequence[str] = ()
) -> dict[str, pa.DataType]:
    """Each column's type, in order of appearance: the curated table's, else the first non-null one given,
    as a Delta table stores it (``storable``).

    ``origins`` name where each of ``schemas`` comes from (a raw file), for the error raised when a
    column's type is one no Delta table can store.
    """
    target: dict[str, pa.DataType] = {} if curated is None else {f.name: _plain(f.type) for f in curated}
    for position, schema in enumerate(schemas):
        for column in schema:
            if column.name not in target or pa.types.is_null(target[column.name]):
                kind = storable(column.type)
                if kind is None:
                    origin = origins[position] if position < len(origins) else "a raw file"
                    raise CompactionError(
                        f"column {column.name} is {column.type} in {origin}, a type a Delta table cannot store"
                    )
                target[column.name] = kind
    return target


_WIDER = {8: pa.int16(), 16: pa.int32(), 32: pa.int64(), 64: pa.int64()}


def storable(kind: pa.DataType) -> pa.DataType | None:
    """``kind`` as a Delta table stores it, or None when Delta has no such type (durations, times, intervals).

    Raw files are not all this project's: a foreign one may hold Arrow types Delta lacks. Unsigned
    integers widen to the next signed type (uint64 stays 64 bits: its values past int64 do not fit
    and move to ``_extra``), half floats to floats, dictionaries are their values, timestamps are
    microseconds in UTC (as ``rows`` makes top-level ones), and nested types map their children.
    Delta-rs would take some of these as they are and write a table it cannot read back.
    """
    if pa.types.is_dictionary(kind):
        return storable(kind.value_type)
    if pa.types.is_unsigned_integer(kind):
        return _WIDER[kind.bit_width]
    if pa.types.is_float16(kind):
        return pa.float32()
    if pa.types.is_timestamp(kind):
        return TIMESTAMP
    if pa.types.is_date(kind):
        return pa.date32()
    if pa.types.is_decimal(kind):
        fits = 0 <= kind.scale <= kind.precision <= 38
        return pa.decimal128(kind.precision, kind.scale) if fits else None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return pa.string()
    if (
        pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
        or pa.types.is_binary_view(kind)
        or pa.types.is_fixed_size_binary(kind)
    ):
        return pa.binary()
    if (
        pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
        or pa.types.is_fixed_size_list(kind)
        or pa.types.is_list_view(kind)
        or pa.types.is_large_list_view(kind)
    ):
        value = storable(kind.value_type)
        return None if value is None else pa.list_(kind.value_field.with_type(value))
    if pa.types.is_map(kind):
        key, item = storable(kind.key_type), storable(kind.item_type)
        if key is None or item is None:
            return None
        return pa.map_(kind.key_field.with_type(key), kind.item_field.with_type(item), kind.keys_sorted)
    if pa.types.is_struct(kind):
        fields = []
        for field in kind:
            child = storable(field.type)
            if child is None:
                return None
            fields.append(field.with_type(child))
        return pa.struct(fields) if fields else None  # Delta has no struct without fields
    if (
        pa.types.is_null(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_signed_integer(kind)
        or pa.types.is_float32(kind)
        or pa.types.is_float64(kind)
    ):
        return kind
    return None


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
        if column.type == wanted or pa.types.is_null(column.type):
            continue
        if _plain(column.type) == wanted:  # the same values in another layout (view, large, dictionary)
            table = table.set_column(index, pa.field(column.name, wanted), table.column(index).cast(wanted))
            continue
        nested = _unknown_field_values(column.name, table.column(index), wanted)
        if _drops_fields_inside(column.type, wanted):
            values, misfits = _all_misfits(table.column(index), wanted)
        else:
            values, misfits = _cast_what_fits(table.column(index), wanted)
        change = changes.setdefault(column.name, TypeChange(str(wanted), str(_plain(column.type))))
        change.moved += len(misfits.keys() | nested.keys())
        for row, value in misfits.items():
            moved.setdefault(row, {})[field_key(column.name)] = value
        for row, fields in nested.items():
            moved.setdefault(row, {}).update(fields)
        table = table.set_column(index, pa.field(column.name, wanted), values)
    return _merge_into_extra(table, moved) if moved else table


def unknown_fields(actual: pa.DataType, wanted: pa.DataType) -> list[tuple[str, ...]]:
    """The struct fields of ``actual`` that ``wanted`` lacks, as paths through nested structs: Arrow's cast
    of a struct keeps the fields of the type it casts to and drops the others."""
    if not (pa.types.is_struct(actual) and pa.types.is_struct(wanted)):
        return []
    known = {child.name: child.type for child in wanted}
    found: list[tuple[str, ...]] = []
    for child in actual:
        if child.name not in known:
            found.append((child.name,))
        else:
            found += [(child.name, *path) for path in unknown_fields(child.type, known[child.name])]
    return found


def _unknown_field_values(name: str, column: pa.ChunkedArray, wanted: pa.DataType) -> dict[int, dict[str, Any]]:
    """Per row, the values of the struct fields ``wanted`` lacks, named ``parent.child`` as processing names them
    (``shared.extra_fields.field_key``; nulls are not kept)."""
    found: dict[int, dict[str, Any]] = {}
    for path in unknown_fields(column.type, wanted):
        values = column
        for step in path:
            values = pc.struct_field(values, step)  # null where a parent is null
        for row, value in enumerate(values.to_pylist()):
            if value is not None:
                found.setdefault(row, {})[field_key(name, *path)] = value
    return found


def _drops_fields_inside(actual: pa.DataType, wanted: pa.DataType) -> bool:
    """Whether a cast would drop struct fields inside a list or map, where no ``parent.child`` name reaches them."""
    if pa.types.is_struct(actual) and pa.types.is_struct(wanted):
        known = {child.name: child.type for child in wanted}
        return any(_drops_fields_inside(child.type, known[child.name]) for child in actual if child.name in known)
    pairs: list[tuple[pa.DataType, pa.DataType]] = []
    if _is_list(actual) and _is_list(wanted):
        pairs = [(actual.value_type, wanted.value_type)]
    elif pa.types.is_map(actual) and pa.types.is_map(wanted):
        pairs = [(actual.key_type, wanted.key_type), (actual.item_type, wanted.item_type)]
    return any(unknown_fields(inner, target) or _drops_fields_inside(inner, target) for inner, target in pairs)


def _is_list(kind: pa.DataType) -> bool:
    kinds = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list, pa.types.is_list_view)
    return any(is_kind(kind) for is_kind in (*kinds, pa.types.is_large_list_view))


def _all_misfits(column: pa.ChunkedArray, wanted: pa.DataType) -> tuple[pa.Array, dict[int, Any]]:
    """Every value of the column moved whole (the column null): what it holds cannot be cast without loss."""
    misfits = {row: value for row, value in enumerate(column.to_pylist()) if value is not None}
    return pa.nulls(len(column), wanted), misfits


def _cast_what_fits(column: pa.ChunkedArray, wanted: pa.DataType) -> tuple[pa.Array, dict[int, Any]]:
    """The column in ``wanted`` type: the whole column when it casts without changing a value, else value by value
    (misfits null). A cast that changes a value (5 to true, "0501" to 501, "NaN" to a float NaN) is a misfit: the
    value keeps its own form in ``_extra``."""
    try:
        fitted = _cast(column, wanted).combine_chunks()
        if _unchanged(fitted, column):
            return fitted, {}
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        pass
    values: list[Any] = []
    misfits: dict[int, Any] = {}
    for row, value in enumerate(column.to_pylist()):
        if value is None:
            values.append(None)
            continue
        try:
            one = pa.array([value], column.type)
            fitted = _cast(one, wanted)
            if not _unchanged(fitted, one):
                raise pa.ArrowInvalid(f"{value!r} would change")
            values.append(fitted[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
            values.append(None)
            misfits[row] = value
    return pa.array(values, wanted), misfits


def _unchanged(fitted: ArrowValues, original: ArrowValues) -> bool:
    """Whether casting ``fitted`` back gives ``original``, values inside structs and lists included. A nested value
    that does not cast back (a struct the target gave fewer fields, which move to ``_extra`` on their own) is
    compared as read."""
    nested = pa.types.is_nested(fitted.type) or pa.types.is_nested(original.type)
    try:
        if pa.types.is_timestamp(fitted.type) and pa.types.is_integer(original.type):  # epoch ms, as _cast reads them
            back = fitted.cast(pa.timestamp("ms", tz=fitted.type.tz)).cast(pa.int64()).cast(original.type)
        else:
            back = fitted.cast(original.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        if not nested:
            return False
        back = fitted
    whole = original.combine_chunks() if isinstance(original, pa.ChunkedArray) else original
    if back.type == whole.type and back.equals(whole):  # the usual widening, compared in Arrow
        return True
    values = zip(back.to_pylist(), original.to_pylist(), fitted.to_pylist(), strict=True)
    return all(_holds(a, b, shape) for a, b, shape in values)


def _holds(back: Any, original: Any, fitted: Any) -> bool:
    """``back`` is ``original`` at any depth (NaN is NaN), but for struct fields ``fitted`` does not have."""
    if isinstance(fitted, dict) and isinstance(back, dict) and isinstance(original, dict):
        return all(_holds(back.get(name), original.get(name), value) for name, value in fitted.items())
    if isinstance(fitted, list | tuple) and isinstance(back, list | tuple) and isinstance(original, list | tuple):
        items = zip(back, original, fitted, strict=False)
        return len(back) == len(original) == len(fitted) and all(_holds(*item) for item in items)
    return bool(back == original) or (back != back and original != original)


def _cast(values: ArrowValues, wanted: pa.DataType) -> ArrowValues:
    """``values`` as ``wanted``; integers become timestamps as epoch milliseconds, what the project's files hold
    (``shared.formats``; JSON lines of a model that had the column), as ``rows._as_timestamp`` reads them."""
    if pa.types.is_integer(values.type) and pa.types.is_timestamp(wanted):
        values = values.cast(pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    return values.cast(wanted)


def _merge_into_extra(table: pa.Table, moved: Mapping[int, dict[str, Any]]) -> pa.Table:
    current: list[Any] = table.column(EXTRA).to_pylist() if EXTRA in table.column_names else [None] * table.num_rows
    for row, values in moved.items():
        document = _extra_fields(current[row])
        if document is None:  # not a JSON object (a foreign file's): kept whole under its own name
            document = {EXTRA: current[row]}
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

    ``fields`` counts, per name in ``_extra`` that is not a column's key there, the rows carrying it (a column's
    misfits move to ``_extra`` under ``field_key(column)``, a ``.`` or ``\\`` in its name escaped: a misfit of a
    column ``a.b`` is ``a\\.b``, and ``a.b`` is a field ``b`` inside ``a``, a new field): names are cut
    to ``FIELD_NAME_CHARS`` characters (a row counts once for names that cut the same), and it holds
    fewer than ``FIELDS_TRACKED`` names. When it reaches that many, the ``FIELDS_TRACKED // 2`` carried
    by the most rows (ties: the smaller name) stay and the others are dropped, counted in
    ``fields_dropped``. Up to ``FIELDS_TRACKED`` distinct names the counts are exact; past it they are
    approximate: a name dropped and seen again counts from zero (its count is low, and it may be
    missing from the report), and ``more_fields`` counts each drop (at most the true number of
    other names plus one per repeated drop); which names stay then depends on the order rows came in.
    """

    columns: frozenset[str]
    rows: int = 0
    nulls: Counter[str] = field(default_factory=Counter)
    fields: Counter[str] = field(default_factory=Counter)  # names in _extra that are not columns' keys, cut
    fields_dropped: int = 0  # names dropped from ``fields`` to keep it under FIELDS_TRACKED
    _column_keys: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._column_keys = frozenset(field_key(name) for name in self.columns)

    def add(self, table: pa.Table) -> None:
        self.rows += table.num_rows
        for name in self.columns:
            self.nulls[name] += table.column(name).null_count if name in table.column_names else table.num_rows
        if EXTRA in table.column_names:
            for text in pc.drop_null(table.column(EXTRA)).to_pylist():
                try:
                    document = orjson.loads(text)
                except orjson.JSONDecodeError:
                    continue  # not JSON (a foreign file's column of that name): no fields to count
                if isinstance(document, dict):
                    # each name once per row, in the row's order (a set's would vary with the hash seed)
                    for name in dict.fromkeys(cut_name(key) for key in document if key not in self._column_keys):
                        self.fields[name] += 1
                        if len(self.fields) >= FIELDS_TRACKED:
                            self._drop_rare_fields()

    def _drop_rare_fields(self) -> None:
        kept = sorted(self.fields.items(), key=lambda item: (-item[1], item[0]))[: FIELDS_TRACKED // 2]
        self.fields_dropped += len(self.fields) - len(kept)
        self.fields = Counter(dict(kept))

    def report(self, hour: Hour, curated: pa.Schema | None, changes: dict[str, TypeChange]) -> HourDrift:
        new_fields = top_fields(self.fields)
        drift = HourDrift(
            hour,
            rows=self.rows,
            type_changes=changes,
            new_fields=new_fields,
            more_fields=len(self.fields) - len(new_fields) + self.fields_dropped,
            fields_approximate=self.fields_dropped > 0,
        )
        if curated is not None:
            drift.new_columns = sorted(self.columns - set(curated.names))
        rows = max(1, self.rows)
        drift.null_rates = {
            name: round(self.nulls[name] / rows, NULL_RATE_DIGITS)
            for name in sorted(self.columns)
            if self.nulls[name] and not name.startswith("_")
        }
        return drift


def _extra_fields(text: Any) -> dict[str, Any] | None:
    """A row's ``_extra`` as the object landing writes: {} when empty, None when it is not a JSON object
    (a foreign file's column of that name)."""
    if text is None or text == "":
        return {}
    if not isinstance(text, str | bytes):
        return None
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return document if isinstance(document, dict) else None


class HourFit:
    """Fits every part of one hour to one schema, the curated table's where it has the column, and
    counts the hour's drift as the parts pass (``shared.compaction.rewrite`` fits slice by slice).

    ``schemas`` are the inputs' schemas in input order (the curated rows' first), ``origins`` what
    each is (a raw file's path), to name in errors. The hour's schema is theirs with the target
    types, all nullable, plus ``_extra`` when a column's type changed, since its misfits move there.
    A column that holds only nulls so far (Arrow's ``null`` type: a field a newer model added, null in
    every row of an Avro or JSON lines file) is left out until a typed value arrives: the table would
    take it as a ``void`` column, and Delta cannot change a column's type after. A column of a type no
    Delta table can store fails the hour (``CompactionError``).
    """

    def __init__(self, curated: pa.Schema | None, schemas: Sequence[pa.Schema], origins: Sequence[str] = ()) -> None:
        self.curated = curated
        self.target = target_types(curated, schemas, origins)
        extra = self.target.get(EXTRA)
        if extra is not None and (pa.types.is_null(extra) or curated is None or EXTRA not in curated.names):
            # JSON text: no row had unknown fields yet, or a foreign file's column of that name is another type
            self.target[EXTRA] = pa.string()
        self.changes: dict[str, TypeChange] = {}
        columns = [pa.field(name, kind) for name, kind in self.target.items() if not pa.types.is_null(kind)]
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
    """Types as raw files write them (the engine reads back view and large types; dictionaries are their values)."""
    from shared.compaction.rows import _plain_type

    return _plain_type(kind.value_type if pa.types.is_dictionary(kind) else kind)


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
