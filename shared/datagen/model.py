"""From an Avro record schema: the pydantic wire model, the landed columns and the transform.

The model validates what Datagen sends with the JsonConverter (``schemas.enable=false``):
ints and longs within their Avro range (no strings, no booleans; timestamps and dates within the
years 1 to 9999, the dates the lake can store), finite floats, unions with
null as optional values, nested records as objects, arrays, maps, enums as their symbols,
bytes/fixed/decimal as base64 text, logical types as their underlying numbers.

Landed columns: top-level and nested record fields flatten into ``parent_child`` columns;
``map<string>`` lands as a map; arrays, other maps and multi-type unions land as JSON text, but for
unions of int and long (a long column) and of int, float and double (a double column: a double holds
each of their values exactly, unlike a long's past 2**53); decimals as doubles; ``timestamp-*`` as
timestamps (ms); ``date`` as ISO date text.
"""

from __future__ import annotations

import base64
import binascii
import copy
import keyword
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, NotRequired, Union

import orjson
from pydantic import AfterValidator, AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, Strict, create_model
from typing_extensions import TypedDict

from shared.datagen.avro import FLOAT_MAX, NO_DEFAULT, AvroType, SchemaProblem, value_bounds
from shared.datagen.generate import decimal_from_base64
from shared.layout import PARTITION_COLUMNS
from shared.source_model import KEEP_UNKNOWN_FIELDS, Column, ColumnType, Row

RESERVED_COLUMNS = frozenset(
    {
        "_topic",
        "_partition",
        "_incarnation",
        "_offset",
        "_key",
        "_kafka_timestamp",
        "_event_time",
        "_event_time_source",
        "_extra",
        "_received",
    }
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC).date()


def _base64(text: str) -> str:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64 (bytes travel as base64 text)") from None
    return text


def _decimal_within(precision: int) -> Callable[[str], str]:
    """A check that a decimal's base64 unscaled value has at most ``precision`` digits, as its schema says."""
    largest = 10**precision - 1

    def check(text: str) -> str:
        if abs(int.from_bytes(base64.b64decode(text), "big", signed=True)) > largest:
            raise ValueError(f"a decimal of precision {precision} holds at most {precision} digits")
        return text

    return check


def _fixed_of(size: int) -> Callable[[str], str]:
    """A check that a fixed's base64 text holds exactly ``size`` bytes, as its schema says."""

    def check(text: str) -> str:
        if (length := len(base64.b64decode(text))) != size:
            raise ValueError(f"a fixed of size {size} holds exactly {size} bytes, not {length}")
        return text

    return check


def _uuid(text: str) -> str:
    uuid.UUID(text)
    return text


def python_name(name: str, taken: set[str], others: frozenset[str] = frozenset()) -> str:
    """A pydantic field name for an Avro field name (``_time`` -> ``f_time``); the alias keeps the wire name.

    Never a name in ``others``, the names the record's fields are sent under but this field's own: validation drops
    a sent key equal to a Python name that is read under another key, so a record sending it beside the field's
    own name would lose it unseen (``shared.source_model.record_type``)."""
    candidate = name
    if name.startswith("_") or keyword.iskeyword(name) or name.startswith("model_") or hasattr(BaseModel, name):
        candidate = f"f_{name.lstrip('_')}"
    while candidate in taken or candidate in others:
        candidate += "_"
    taken.add(candidate)
    return candidate


def annotation(node: AvroType) -> Any:
    """The Python type (with constraints) that validates ``node``'s wire values."""
    kind = node.kind
    if kind == "null":
        return None
    if kind == "boolean":
        return Annotated[bool, Strict()]
    if kind in ("int", "long"):  # a timestamp or date: years 1 to 9999 (what the lake can store); a time: one day
        low, high = value_bounds(node)
        return Annotated[int, Strict(), Field(ge=low, le=high)]
    if kind in ("float", "double"):
        limit = FLOAT_MAX[kind]
        return Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-limit, le=limit)]
    if kind == "string":
        if node.logical == "uuid":
            return Annotated[str, Strict(), AfterValidator(_uuid)]
        return Annotated[str, Strict()]
    if kind in ("bytes", "fixed"):
        checked: Any = Annotated[str, Strict(), AfterValidator(_base64)]
        if kind == "fixed":  # exactly its size: a JSON record says nothing of it but its base64 text
            checked = Annotated[checked, AfterValidator(_fixed_of(node.size))]
        if node.logical == "decimal":
            checked = Annotated[checked, AfterValidator(_decimal_within(node.precision))]
        return checked
    if kind == "enum":
        return Literal[tuple(node.symbols)]
    if kind == "array":
        assert node.items is not None
        return list[annotation(node.items)]  # type: ignore[misc]
    if kind == "map":
        assert node.items is not None
        return dict[str, annotation(node.items)]  # type: ignore[misc]
    if kind == "record":
        return record_typed_dict(node)
    if kind == "union":
        branches = [annotation(b) for b in node.branches if b.kind != "null"]
        inner = branches[0] if len(branches) == 1 else Union[tuple(branches)]  # noqa: UP007
        return inner | None if node.nullable else inner
    raise SchemaProblem(node.path, f"unsupported type {kind}")


def record_typed_dict(node: AvroType) -> Any:
    """A nested record as a TypedDict keyed by the Avro field names (validates to plain dicts). A record sent
    under its fields' earlier names (``aliases``) or before a field existed (its ``default``) is read as the
    top level reads it, and as Avro's resolution reads the same record."""
    fields: dict[str, Any] = {}
    renamed: dict[str, str] = {}
    defaults: dict[str, Any] = {}
    for item in node.fields:
        kind = annotation(item.type)
        fields[item.name] = NotRequired[kind] if item.type.nullable else kind
        renamed.update((alias, item.name) for alias in item.aliases)
        if item.default is not NO_DEFAULT:
            defaults[item.name] = json_form_default(item.default, item.type)
    nested: Any = TypedDict(node.name.rsplit(".", 1)[-1], fields)  # type: ignore[misc]
    nested.__pydantic_config__ = KEEP_UNKNOWN_FIELDS  # type: ignore[attr-defined]  # unknown fields kept, for _extra
    if renamed or defaults:
        return Annotated[nested, BeforeValidator(_as_the_reader_reads(renamed, defaults))]
    return nested


def _as_the_reader_reads(renamed: dict[str, str], defaults: dict[str, Any]) -> Callable[[Any], Any]:
    """A nested record with each field sent under an alias moved to the field's name (unless the record also
    has that name: the alias is then a field of its own, kept for ``_extra``) and each missing field given its
    default."""

    def read(value: Any) -> Any:
        if not isinstance(value, dict) or (renamed.keys().isdisjoint(value) and defaults.keys() <= value.keys()):
            return value
        value = dict(value)
        for alias, name in renamed.items():
            if alias in value and name not in value:
                value[name] = value.pop(alias)
        for name, default in defaults.items():
            if name not in value:
                value[name] = copy.deepcopy(default)
        return value

    return read


def build_model(root: AvroType, model_name: str) -> tuple[type[BaseModel], dict[str, str]]:
    """The top-level model and its Avro name -> Python field name map."""
    taken: set[str] = set()
    names: dict[str, str] = {}
    definitions: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    sent = frozenset(name for item in root.fields for name in (item.name, *item.aliases))
    for item in root.fields:
        python = names[item.name] = python_name(item.name, taken, sent - {item.name})
        kind = annotation(item.type)
        default: Any = None if item.type.nullable else ...
        if item.default is not NO_DEFAULT:  # a record sent before the field existed reads its default
            default = defaults[python] = json_form_default(item.default, item.type)
        names_read = AliasChoices(item.name, *item.aliases)  # a record sent under an earlier name still reads
        definitions[python] = (kind, Field(default, alias=item.name, validation_alias=names_read))
    config = ConfigDict(populate_by_name=True, frozen=True, serialize_by_alias=True)
    model: type[BaseModel] = create_model(model_name, __config__=config, **definitions)
    if defaults:
        model.check_record = staticmethod(_with_defaults(defaults))  # type: ignore[attr-defined]
    return model, names


def _with_defaults(defaults: dict[str, Any]) -> Callable[[Row], Row]:
    """Fills the schema's defaults into a validated record that lacks those fields (records are validated as
    dicts, where pydantic leaves an absent optional field absent)."""

    def check_record(record: Row) -> Row:
        for name, default in defaults.items():
            if name not in record:
                record[name] = copy.deepcopy(default)
        return record

    return check_record


def json_form_default(default: Any, kind: AvroType) -> Any:
    """An Avro JSON default in the form records are validated in: bytes and fixed defaults (strings of
    code points 0-255, the Avro specification's encoding) as base64 text, as the JSON converter sends them."""
    target = kind.non_null[0] if kind.kind == "union" and default is not None else kind
    if target.kind in ("bytes", "fixed") and isinstance(default, str):
        try:
            return base64.b64encode(default.encode("latin-1")).decode("ascii")
        except UnicodeEncodeError:
            raise SchemaProblem(kind.path, "a bytes default is a string of code points 0-255") from None
    return default


Getter = Callable[[Row], Any]


def landed_columns(root: AvroType, names: dict[str, str]) -> tuple[tuple[Column, ...], Callable[[Row], Row]]:
    """The columns a record lands as and the transform that builds them from a validated record."""
    plan: list[tuple[Column, Getter]] = []
    for item in root.fields:
        key = names[item.name]
        _plan(item.type, item.name, _field_getter(key), False, plan)
    seen: dict[str, str] = {}  # by name as compaction compares them: Delta column names ignore case
    reserved = {name.lower(): name for name in RESERVED_COLUMNS}
    for column, _ in plan:
        if (lineage := reserved.get(column.name.lower())) is not None:
            raise SchemaProblem(column.name, f"the name of the lineage column {lineage!r} (Delta ignores case); rename")
        if column.name.lower() in PARTITION_COLUMNS:  # as compaction compares: Delta column names ignore case
            raise SchemaProblem(
                column.name,
                f"the name of the curated table's partition column {column.name.lower()!r} (compaction adds"
                f" {' and '.join(PARTITION_COLUMNS)} to every row, so no hour holding such a column would"
                " compact); rename the field",
            )
        if (other := seen.get(column.name.lower())) is not None:
            why = "the same column" if other == column.name else f"columns {other!r} and {column.name!r}, one to Delta"
            raise SchemaProblem(column.name, f"two fields land as {why} (nested fields flatten to a_b)")
        seen[column.name.lower()] = column.name
    getters = [(column.name, getter) for column, getter in plan]

    def transform(event: Row) -> Row:
        return {name: getter(event) for name, getter in getters}

    return tuple(column for column, _ in plan), transform


def _field_getter(key: str) -> Getter:
    def get(event: Row) -> Any:
        return event.get(key)

    return get


def _plan(node: AvroType, name: str, get: Getter, nullable: bool, plan: list[tuple[Column, Getter]]) -> None:
    branches = node.non_null
    nullable = nullable or node.nullable
    if len(branches) == 1 and branches[0].kind == "record":
        record = branches[0]
        for item in record.fields:

            def child(event: Row, parent: Getter = get, field: str = item.name) -> Any:
                value = parent(event)
                return None if value is None else value.get(field)

            _plan(item.type, f"{name}_{item.name}", child, nullable, plan)
        return
    column_type, convert = _column(branches)
    if convert is None:
        plan.append((Column(name, column_type, nullable), get))
    else:
        plan.append((Column(name, column_type, nullable), lambda event: _apply(convert, get(event))))


def _apply(convert: Callable[[Any], Any], value: Any) -> Any:
    return None if value is None else convert(value)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def _column(branches: list[AvroType]) -> tuple[ColumnType, Callable[[Any], Any] | None]:
    if len(branches) != 1:
        kinds = {b.kind for b in branches}
        if kinds <= {"int", "long"} and not any(b.logical for b in branches):
            return "long", None
        if kinds <= {"int", "float", "double"} and not any(b.logical for b in branches):
            return "double", float  # a double holds every int and float exactly; not every long: JSON text
        return "string", _json_text
    node = branches[0]
    kind, logical = node.kind, node.logical
    if logical == "decimal":
        scale = node.scale
        return "double", lambda text: float(decimal_from_base64(text, scale))
    if logical in ("timestamp-millis", "local-timestamp-millis"):
        return "timestamp", None
    if logical in ("timestamp-micros", "local-timestamp-micros"):
        return "timestamp", lambda micros: micros // 1000
    if logical == "date":
        return "string", lambda days: (_EPOCH + timedelta(days=days)).isoformat()
    if kind in ("int", "long"):
        return "long", None
    if kind in ("float", "double"):
        return "double", float
    if kind == "boolean":
        return "boolean", None
    if kind in ("string", "enum", "bytes", "fixed"):
        return "string", None
    if kind == "map" and node.items is not None and node.items.kind == "string":
        return "map", None
    if kind == "null":
        return "string", None
    return "string", _json_text
