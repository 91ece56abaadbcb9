"""What a source is: its wire model, its landed columns, its generator, key and transform."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from types import UnionType
from typing import Annotated, Any, Literal, NotRequired, Union, cast, get_args, get_origin

import pyarrow as pa
from faker import Faker
from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    TypeAdapter,
)
from pydantic.fields import FieldInfo
from pydantic_core import core_schema
from typing_extensions import TypedDict

ColumnType = Literal["string", "long", "double", "boolean", "timestamp", "map"]
ValueFormat = Literal["json", "avro"]
Row = dict[str, Any]

# What the lake can store, enforced by the models so that a value no format can hold is a
# ``schema`` dead letter, not an encoding failure: Parquet and Avro longs are signed 64-bit,
# doubles are finite here (JSON has no NaN/Infinity), timestamps must be datetimes readers can build.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_TIMESTAMP_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last instant Python, Spark and .NET can hold


LAX_SCHEMA = "streamingpoc_lax_schema"


class NoBoolean:
    """Marks a number field of a hand-written model: read as pydantic's lax mode reads numbers (a JSON number, or
    numeric text such as ``"7"``), never from a boolean, which lax mode takes as 1 or 0 (``"userid": true`` would
    count as user 1). A value the field refuses gets one message naming what it takes (``expected``)."""

    def __init__(self, expected: str) -> None:
        self.expected = expected

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        lax = handler(source)  # the number with its constraints
        exact = cast(core_schema.CoreSchema, {**lax, "strict": True})  # the usual value: one strict check, no coercion
        numeric = [core_schema.int_schema(strict=True), core_schema.float_schema(strict=True)]
        text = core_schema.chain_schema(
            [core_schema.union_schema([*numeric, core_schema.str_schema(strict=True)]), lax]
        )
        return core_schema.union_schema(
            [exact, text],
            mode="left_to_right",
            custom_error_type="number_type",
            custom_error_message=f"Input should be {self.expected} (a number, or numeric text; not true or false)",
            metadata={LAX_SCHEMA: lax},
        )

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        """The published schema is the number's own (its type and bounds), not the union that reads it."""
        return handler(schema.get("metadata", {}).get(LAX_SCHEMA, schema))


FiniteFloat = Annotated[float, Field(allow_inf_nan=False), NoBoolean("a finite number")]
# Validated records keep the fields their model does not know, so that they land in ``_extra``
# instead of being dropped (pydantic ignores unknown keys by default).
KEEP_UNKNOWN_FIELDS = ConfigDict(extra="allow")
TimestampMs = Annotated[
    int, Field(ge=0, le=MAX_TIMESTAMP_MS), NoBoolean(f"epoch milliseconds from 0 to {MAX_TIMESTAMP_MS}")
]


@dataclass(frozen=True, slots=True)
class Column:
    """One landed column. ``timestamp`` values are epoch milliseconds (UTC); ``map`` is str -> str."""

    name: str
    type: ColumnType
    nullable: bool = True


@dataclass(frozen=True, slots=True)
class Source:
    """A stream StreamingPOC generates, processes and lands.

    - ``model`` is the record's schema as it arrives on the topic (JSON, UTF-8). The hot path
      validates with :func:`record_validator`, which applies this model's schema to a dict.
    - ``transform`` turns a valid record (a dict keyed by field name) into a landed row
      holding exactly ``columns``.
    - ``event_time_ms`` reads the record's own time (epoch ms) or ``None`` when it has none.
    - ``entity_key`` names the entity a row belongs to; it is also the Kafka message key
      (``None``: unkeyed, for sources without keyed state).
    - ``generate`` makes ``count`` realistic records stamped around ``now`` using ``fake``.
    - ``generate_from``, when set, is used instead and also gets the absolute index of the first
      record (Datagen's ``iteration`` continues across ticks); the generator then keeps its
      progress in the lake.
    - ``setting_defaults`` overrides per-source setting defaults (``SourceSettings`` field -> value),
      e.g. a Datagen config's topic and rate.
    - ``transform_columns``, optional, is ``transform`` for a whole batch at once: an Arrow table of
      valid events (:func:`event_schema`) in, a table holding ``columns`` out. It must give exactly
      the rows ``transform`` gives (a test checks each source that has one); ``transform`` stays the
      reference and what keyed state uses. Without it, rows are transformed one by one.
    - ``value_format`` is how values travel: ``json`` (UTF-8 JSON text) or ``avro`` (Avro binary with a
      schema registry, ``shared.schema_registry``); ``avro_schema`` is then the schema the generator
      registers and writes, and ``registry_url`` the registry a Datagen config names (the
      ``SCHEMA_REGISTRY_URL`` setting overrides it).
    """

    name: str
    model: type[BaseModel]
    columns: Sequence[Column]
    transform: Callable[[Row], Row]
    event_time_ms: Callable[[Row], int | None]
    entity_key: Callable[[Row], str | None]
    generate: Callable[[Faker, int, datetime], list[Any]]
    generate_from: Callable[[Faker, int, datetime, int], list[Any]] | None = None
    setting_defaults: Mapping[str, str] = field(default_factory=dict)
    transform_columns: Callable[[pa.Table], pa.Table] | None = None
    value_format: ValueFormat = "json"
    avro_schema: Any = None
    registry_url: str = ""

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MILLISECOND = timedelta(milliseconds=1)


def epoch_ms(moment: datetime | None) -> int | None:
    """Epoch milliseconds of an aware datetime, exactly (``timestamp() * 1000``, a float, lands some instants a
    millisecond early); naive datetimes are taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // MILLISECOND


# A field read under another name (``_time`` into ``time_ms``) would hide a producer's own field named like
# its Python name, which the validated record holds under that name. ``record_type`` reads such a field
# under this mark plus the name instead, and ``shared.extra_fields`` reports it under the name. The mark is
# a private-use character; a record that sends a shadow's own key is refused, and any other marked name is an
# unknown field like another, so nothing is hidden.
SHADOW_MARK = "\uf8ff"


def _reserved(value: Any) -> Any:
    raise ValueError(f"field names starting with U+{ord(SHADOW_MARK):04X} are reserved by the pipeline")


def wire_names(info: FieldInfo, name: str) -> set[str]:
    """The names a field is read under in a record as sent."""
    chosen = info.validation_alias
    if isinstance(chosen, str):
        return {chosen}
    if isinstance(chosen, AliasChoices):
        return {choice for choice in chosen.choices if isinstance(choice, str)}
    return {info.alias or name}


def first_wire_name(info: FieldInfo, name: str) -> str | None:
    """The name a field reads first (a record sending it always has it read by that field); None when that is a
    path into a nested value, not a name."""
    chosen = info.validation_alias
    first = chosen.choices[0] if isinstance(chosen, AliasChoices) else chosen
    if first is None:
        return info.alias or name
    return first if isinstance(first, str) else None


@cache
def shadow_fields(model: type[BaseModel]) -> dict[str, str]:
    """``model``'s shadow fields (:data:`SHADOW_MARK`): the key each reads a Python name under -> the name. A
    Python name that is some field's wire name (``f_x`` for ``_x`` beside a field ``f_x``) is that field's."""
    fields = model.model_fields.items()
    sent = {wire for name, info in fields for wire in wire_names(info, name)}
    return {SHADOW_MARK + name: name for name, _ in fields if name not in sent}


@cache
def record_type(model: type[BaseModel]) -> Any:
    """A TypedDict with ``model``'s fields, types, constraints and aliases, plus its ``check_record``.

    Validating into it is about three times faster than ``model.model_validate_json`` because no
    model instance is built. Optional fields that are absent stay absent; fields the model does
    not know are kept as they came (``unknown_fields`` finds them). A model may define a
    static ``check_record(record) -> record`` for cross-field rules; it runs here and in the model.
    """
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        names = Field(alias=info.alias or name, validation_alias=info.validation_alias)  # earlier names read too
        annotated: Any = Annotated[(info.annotation, *info.metadata, names)]
        fields[name] = annotated if info.is_required() else NotRequired[annotated]
    shadows = shadow_fields(model)
    for shadow, name in shadows.items():
        fields[shadow] = NotRequired[Annotated[Any, Field(alias=name)]]
    for shadow, name in shadows.items():  # a guard refuses a record that sends the shadow's own key
        fields[_guard_name(model, name, fields, shadow)] = NotRequired[
            Annotated[Any, AfterValidator(_reserved), Field(alias=shadow)]
        ]
    record: Any = TypedDict(f"{model.__name__}Record", fields)  # type: ignore[misc]
    record.__pydantic_config__ = KEEP_UNKNOWN_FIELDS  # type: ignore[attr-defined]
    check = getattr(model, "check_record", None)
    return Annotated[record, AfterValidator(check)] if check else record


def _guard_name(model: type[BaseModel], name: str, taken: dict[str, Any], shadow: str) -> str:
    """The guard's Python name: the key ``name``'s field reads first, so that a record sending it always has it read
    by that field. Validation drops a sent key equal to a Python name that is read under another key (pydantic keeps
    the output's names apart): a guard named ``SHADOW_MARK + shadow``, or after a later (earlier-name) key the field
    may leave unread when both are sent, would drop that key, unseen in ``_extra``."""
    first = first_wire_name(model.model_fields[name], name)
    return first if first is not None and first not in taken else SHADOW_MARK + shadow


@cache
def record_validator(model: type[BaseModel]) -> TypeAdapter[Row]:
    """A validator of one record against ``model``'s schema (:func:`record_type`) that returns a dict."""
    adapter: TypeAdapter[Row] = TypeAdapter(record_type(model))
    return adapter


_EVENT_TYPES: dict[Any, pa.DataType] = {int: pa.int64(), str: pa.string(), float: pa.float64(), bool: pa.bool_()}


@cache
def event_schema(model: type[BaseModel]) -> pa.Schema:
    """The Arrow schema of ``model``'s valid events (field names, not aliases), for columnar transforms.

    Only flat fields of int, str, float and bool (optional or not) have one; other models raise TypeError.
    """
    fields = []
    for name, info in model.model_fields.items():
        annotation, nullable = info.annotation, not info.is_required()
        arguments = [a for a in get_args(annotation) if a is not type(None)]
        if get_origin(annotation) in (Union, UnionType) and len(arguments) == 1:
            annotation, nullable = arguments[0], True
        if annotation not in _EVENT_TYPES:
            raise TypeError(f"{model.__name__}.{name}: {annotation!r} has no columnar form")
        fields.append(pa.field(name, _EVENT_TYPES[annotation], nullable=nullable))
    return pa.schema(fields)
