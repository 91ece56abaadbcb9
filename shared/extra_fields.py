"""Fields a validated record carries that its model does not know: what lands in ``_extra``.

Models validate with unknown fields kept (``shared.source_model.KEEP_UNKNOWN_FIELDS``). A top-level
unknown field is kept whole under its name, nested objects included; an unknown field inside a
known nested record (a Datagen record field) under ``parent.child``, the names as sent (the parent's by its
current name: one sent under an earlier name, an alias, is reported under the current one). In a name
that holds ``.`` or ``\\``, each of those is escaped by a ``\\`` (a top-level ``address.zip`` is
``address\\.zip``), so that no two fields share a key: a top-level field's key has no unescaped dot,
a nested one's has one per level (``field_key``). Clean batches, the usual case, cost one subset test
per record and give ``None``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import cache
from types import UnionType
from typing import Annotated, Any, NotRequired, Required, Union, get_args, get_origin

import orjson
from pydantic import BaseModel
from typing_extensions import is_typeddict

from shared.source_model import Row, shadow_fields

Structure = dict[str, "Structure | None"]  # field name -> the nested record's fields, or None for a leaf


def _nested(annotation: Any) -> Structure | None:
    """The fields of a nested record type (a TypedDict, perhaps optional or annotated); None for anything else."""
    while get_origin(annotation) in (Annotated, NotRequired, Required):
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        branches = [branch for branch in get_args(annotation) if branch is not type(None)]
        return _nested(branches[0]) if len(branches) == 1 else None
    if is_typeddict(annotation):
        return {name: _nested(kind) for name, kind in annotation.__annotations__.items()}
    return None


@cache
def structure(model: type[BaseModel]) -> Structure:
    """``model``'s field names as validated records hold them, with nested records' fields."""
    return {name: _nested(info.annotation) for name, info in model.model_fields.items()}


@cache
def unknown_fields(model: type[BaseModel]) -> Callable[[Row], dict[str, Any] | None]:
    """A function giving a validated record's unknown fields (``None`` when it has none)."""
    fields = structure(model)
    known = frozenset(fields)
    # a nested record's unknown fields are named under the record's name as sent, not its Python name
    nested = {
        name: (inner, _escaped(model.model_fields[name].alias or name) + ".") for name, inner in fields.items() if inner
    }

    sent_name = shadow_fields(model)  # a shadow field is reported under the name it read

    def find(event: Row) -> dict[str, Any] | None:
        found = (
            {}
            if known.issuperset(event)
            else {_escaped(sent_name.get(k, k)): v for k, v in event.items() if k not in known}
        )
        for name, (inner, prefix) in nested.items():
            value = event.get(name)
            if isinstance(value, dict):
                _walk(inner, value, prefix, found)
        return found or None

    return find


def field_key(*names: str) -> str:
    """The key in ``_extra`` of the unknown field at ``names`` (a top-level field's name; a nested one's
    parents' names, then its own): the names with ``\\`` and ``.`` escaped by a ``\\``, joined by ``.``."""
    return ".".join(map(_escaped, names))


def _escaped(name: str) -> str:
    if "." not in name and "\\" not in name:  # the usual name, kept as it is
        return name
    return name.replace("\\", "\\\\").replace(".", "\\.")


def _walk(fields: Structure, value: dict[str, Any], prefix: str, found: dict[str, Any]) -> None:
    for key, item in value.items():
        if key not in fields:
            found[prefix + _escaped(key)] = item
        elif (inner := fields[key]) and isinstance(item, dict):
            _walk(inner, item, f"{prefix}{_escaped(key)}.", found)


def extra_texts(model: type[BaseModel], events: list[Row]) -> list[str | None] | None:
    """Each event's ``_extra`` (JSON text, or None), or None for the whole batch when no event has any."""
    if _all_known(structure(model), events):
        return None  # the common case: every record clean, checked level by level in C loops
    find = unknown_fields(model)
    fields = structure(model)
    if any(fields.values()):
        found = [find(event) for event in events]
    else:  # a flat model: only records with a top-level unknown field need a look
        clean = map(frozenset(fields).issuperset, events)
        found = [None if ok else find(event) for ok, event in zip(clean, events, strict=True)]
    if not any(found):
        return None
    return [None if extra is None else extra_text(extra) for extra in found]


def extra_text(extra: dict[str, Any]) -> str:
    """``_extra`` as JSON text. orjson refuses integers beyond 64 bits and nesting past 254 levels, which a
    producer may send in a field no model checks: those go through the standard library (any integer;
    NaN and infinities as null, as orjson writes them), and a value neither can write is named, its
    whole record being in ``_received``."""
    try:
        return orjson.dumps(extra, default=str).decode()
    except TypeError:
        pass
    try:
        return json.dumps(_finite(extra), default=str, ensure_ascii=False, separators=(",", ":"))
    except (RecursionError, ValueError, TypeError):
        return orjson.dumps({name: "<not encodable: see _received>" for name in extra}).decode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _all_known(fields: Structure, values: list[Any]) -> bool:
    """True when no dict in ``values`` has a key outside ``fields``, at any nested level ``fields`` describes."""
    if not all(map(frozenset(fields).issuperset, values)):
        return False
    for name, inner in fields.items():
        if inner:
            nested = [value[name] for value in values if isinstance(value.get(name), dict)]
            if nested and not _all_known(inner, nested):
                return False
    return True
