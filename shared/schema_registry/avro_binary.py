"""Avro binary bodies to and from the form the JSON converter sends, with fastavro.

Models validate what Kafka Connect's JsonConverter sends (``shared.datagen.model``): logical types
as their underlying numbers, bytes, fixed and decimals as base64 text. So writer schemas are
parsed with their logical types removed, and decoded bytes become base64 text: an Avro record
and the same record sent as JSON validate and land alike.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import fastavro
import orjson

from shared.errors import StreamingPocError
from shared.schema_registry.wire import NotAvro

ParsedSchema = Any  # what fastavro.parse_schema returns

_NAMED = ("record", "enum", "fixed")


class BadSchema(StreamingPocError):
    """A schema the registry returned that is not a usable Avro schema."""


def parse_writer_schema(text: str) -> ParsedSchema:
    """A registry's schema text, parsed for reading and writing without logical-type conversion.

    A recursive schema (a named type inside itself) is refused: a record of it nests as deep as its
    body's bytes say, which crashes fastavro's reader (the worker itself, past ~100,000 levels) long
    before a record's size limit would stop it; no source model is recursive.
    """
    try:
        schema = orjson.loads(text)
        recursive = recursive_type(schema)
        parsed = fastavro.parse_schema(without_logical_types(schema))
    except Exception as error:  # fastavro raises several kinds for a bad schema
        raise BadSchema(f"not an Avro schema: {type(error).__name__}: {error}"[:500]) from error
    if recursive is not None:
        raise BadSchema(f"recursive Avro schema ({recursive} contains itself): not supported")
    return parsed


def recursive_type(schema: Any, namespace: str = "", enclosing: tuple[str, ...] = ()) -> str | None:
    """The full name of a named type that refers to itself, directly or through others; None if none does."""
    if isinstance(schema, str):
        full = schema if "." in schema or not namespace else f"{namespace}.{schema}"
        return full if full in enclosing or schema in enclosing else None
    if isinstance(schema, list):
        return next((found for branch in schema if (found := recursive_type(branch, namespace, enclosing))), None)
    if not isinstance(schema, dict):
        return None
    kind, name = schema.get("type"), schema.get("name")
    if kind in _NAMED and isinstance(name, str):
        namespace = name.rsplit(".", 1)[0] if "." in name else str(schema.get("namespace") or namespace)
        enclosing = (*enclosing, name if "." in name or not namespace else f"{namespace}.{name}")
    if kind == "record":
        fields = schema.get("fields") or []
        return next(
            (found for item in fields if (found := recursive_type(item.get("type"), namespace, enclosing))), None
        )
    if kind == "array":
        return recursive_type(schema.get("items"), namespace, enclosing)
    if kind == "map":
        return recursive_type(schema.get("values"), namespace, enclosing)
    return None if kind in (*_NAMED, "array", "map") else recursive_type(kind, namespace, enclosing)


def without_logical_types(schema: Any) -> Any:
    """``schema`` with every ``logicalType`` removed, so values read and write as their underlying type."""
    if isinstance(schema, list):
        return [without_logical_types(branch) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    plain = {key: without_logical_types(value) for key, value in schema.items() if key != "logicalType"}
    if "fields" in schema:
        plain["fields"] = [{**item, "type": without_logical_types(item["type"])} for item in schema["fields"]]
    return plain


def decode(parsed: ParsedSchema, body: bytes | memoryview) -> Any:
    """One Avro binary body as the JSON converter's form; :class:`NotAvro` when it does not decode exactly."""
    stream = io.BytesIO(body)
    try:
        value = fastavro.schemaless_reader(stream, parsed, None)
    except Exception as error:  # truncated or corrupt bodies surface as EOFError, IndexError, ValueError...
        raise NotAvro(f"body does not decode with its writer schema: {type(error).__name__}: {error}"[:500]) from None
    left = len(body) - stream.tell()
    if left:
        raise NotAvro(f"{left} bytes left after the record: not this schema's Avro binary")
    return _json_form(value)


def parse_reader_schema(schema: Any) -> ParsedSchema:
    """The schema a source reads its records as (its Datagen config's), logical types removed as for writers."""
    try:
        return fastavro.parse_schema(without_logical_types(schema))
    except Exception as error:  # fastavro raises several kinds for a bad schema
        raise BadSchema(f"not an Avro schema: {type(error).__name__}: {error}"[:500]) from error


def decode_as(writer: ParsedSchema, reader: ParsedSchema | None, body: bytes | memoryview) -> tuple[Any, Any]:
    """One body as the source reads it, and as it was sent (both in the JSON converter's form).

    Read, the record is resolved from its writer schema to the source's (Avro's rules: a field the
    writer lacks takes its default, a renamed field is found by its aliases, an unknown enum symbol
    takes the enum's default, int/long/float/string/bytes are promoted); the fields only the writer
    has are kept beside, at every record level, so they still reach ``_extra``. When the two
    schemas do not resolve, the record as sent is validated instead and the model names what fails.
    """
    sent = decode(writer, body)
    if reader is None:
        return sent, sent
    try:
        resolved = fastavro.schemaless_reader(io.BytesIO(body), writer, reader)
    except Exception:  # fastavro's resolution errors have no common type
        return sent, sent
    return _with_unread(_json_form(resolved), sent), sent


def _with_unread(read: Any, sent: Any) -> Any:
    """``read`` with the fields of ``sent`` it does not have, record by record."""
    if not isinstance(read, dict) or not isinstance(sent, dict):
        return read
    merged = dict(read)
    for name, value in sent.items():
        merged[name] = _with_unread(read[name], value) if name in read else value
    return merged


def _json_form(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_form(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def encode(schema: Any, parsed: ParsedSchema, record: Any) -> bytes:
    """``record`` in the JSON converter's form (base64 bytes) as the Avro binary body of ``schema``."""
    sink = io.BytesIO()
    fastavro.schemaless_writer(sink, parsed, _avro_form(schema, record, {}))
    return sink.getvalue()


def _avro_form(schema: Any, value: Any, named: dict[str, Any]) -> Any:
    """Base64 text back to bytes wherever ``schema`` says bytes or fixed; other values unchanged."""
    if value is None:
        return None
    if isinstance(schema, str):
        if schema in named:
            return _avro_form(named[schema], value, named)
        return base64.b64decode(value) if schema == "bytes" and isinstance(value, str) else value
    if isinstance(schema, list):
        return _union(schema, value, named)
    kind = schema.get("type")
    if kind in _NAMED and "name" in schema:
        named.setdefault(schema["name"], schema)
        named.setdefault(schema["name"].rsplit(".", 1)[-1], schema)
    if kind == "record" and isinstance(value, dict):
        return {
            item["name"]: _avro_form(item["type"], value.get(item["name"]), named)
            for item in schema["fields"]
            if item["name"] in value
        }
    if kind == "array" and isinstance(value, list):
        return [_avro_form(schema["items"], item, named) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {key: _avro_form(schema["values"], item, named) for key, item in value.items()}
    if kind in ("bytes", "fixed") and isinstance(value, str):
        return base64.b64decode(value)
    if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in named):
        return _avro_form(kind, value, named)
    return value


def _is_text(branch: Any) -> bool:
    return branch == "string" or (isinstance(branch, dict) and branch.get("type") == "string")


def _union(branches: list[Any], value: Any, named: dict[str, Any]) -> Any:
    """A union value: text stays text when the union has a string branch; otherwise the first non-null
    branch that converts it (bytes, or a record holding bytes) does."""
    if isinstance(value, str) and any(_is_text(branch) for branch in branches):
        return value
    for branch in branches:
        if branch == "null":
            continue
        converted = _avro_form(branch, value, named)
        if converted is not value:
            return converted
    return value
