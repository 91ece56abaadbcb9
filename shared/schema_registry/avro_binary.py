"""Avro binary bodies to and from the form the JSON converter sends, with fastavro.

Models validate what Kafka Connect's JsonConverter sends (``shared.datagen.model``): logical types
as their underlying numbers, bytes, fixed and decimals as base64 text. So schemas are parsed with
their logical types set aside (under ``LOGICAL_TYPE``, which fastavro does not read), and decoded
bytes become base64 text: an Avro record and the same record sent as JSON validate and land alike.
"""

from __future__ import annotations

import base64
import copy
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import fastavro
import orjson
from fastavro.validation import _validate as fastavro_validate  # what its writer picks a union branch by

from shared.errors import StreamingPocError
from shared.schema_registry.wire import NotAvro

ParsedSchema = Any  # what fastavro.parse_schema returns

_NAMED = ("record", "enum", "fixed")
# What one record may decode to, in array items and map entries, each weighted by the values it holds (a
# record item of three fields: 4). Every item takes at least a byte, and a byte can decode to a dict of
# hundreds of bytes (an item record of one boolean) or more (of many null fields): without a bound, a record
# within the size limit decodes to gigabytes. No source model's record comes near: Datagen's quickstarts hold
# a few items. A batch's records together may decode to MAX_BATCH_REPEATED_VALUES (shared.schema_registry.decoder).
MAX_REPEATED_VALUES = 100_000
# What fastavro's writer may cost to re-encode a decoded value (:func:`decode` compares it with its body): it
# finds a union value's branch by validating the value against each branch in turn (each walking the value),
# again at every union nested in it, and an enum symbol's index by searching the schema's symbols. Schemas
# past these bounds are walked byte by byte instead, in work linear in the body.
MAX_REENCODED_UNION_DEPTH = 8  # unions nested in a union's value: each validates the value again
MAX_REENCODED_ENUM_SYMBOLS = 64


class BadSchema(StreamingPocError):
    """A schema the registry returned that is not a usable Avro schema."""


class OversizedSchema(BadSchema):
    """A schema whose records hold more than ``MAX_REPEATED_VALUES`` values outside their arrays and maps
    (records holding records, a named type used twice at each of many levels): every record of it would
    decode to too much, whatever its bytes (dead letter ``oversized``)."""


class Unresolved(StreamingPocError):
    """A record whose writer schema does not resolve to the source's by Avro's rules (fastavro refuses it): a
    dead letter ``schema``, always. It is never validated as sent instead: as sent, a value may pass the
    source's model with another meaning (a producer's second enum or record of the same symbols or fields, a
    map of timestamp-millis read as a record of timestamp-micros, bytes as base64 text read as a string).
    ``sent``: the record as sent, decoded (its batch counts what it decoded to)."""

    def __init__(self, message: str, sent: Any) -> None:
        super().__init__(message)
        self.sent = sent


class Oversized(NotAvro):
    """A body that would decode to more than ``MAX_REPEATED_VALUES`` (dead letter ``oversized``), found
    without decoding it; ``counted``: the values counted before stopping."""

    def __init__(self, message: str, counted: int) -> None:
        super().__init__(message)
        self.counted = counted


def without_generator_hints(schema: Any) -> Any:
    """The schema as registered: Datagen's ``arg.properties`` are generator hints, not part of the type."""
    if isinstance(schema, list):
        return [without_generator_hints(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    return {key: without_generator_hints(value) for key, value in schema.items() if key != "arg.properties"}


def parse_writer_schema(text: str, references: Sequence[str] = ()) -> ParsedSchema:
    """A registry's schema text, parsed for reading and writing without logical-type conversion, and without
    its defaults: a writer's defaults are never used to read its own records (only a reader's are), and
    Confluent's deserializer does not validate them for a schema fetched by id, so registries hold schemas
    whose defaults fastavro would refuse (``"default": null`` for a string).

    ``references`` are the texts of the schemas it refers to by name (Confluent schema references),
    each after those it refers to itself: they are parsed first, so their named types are known.

    Refused (:class:`BadSchema`), as no source model needs them and a record's few bytes could
    otherwise cost without limit: a recursive schema (a named type inside itself: a record of it
    nests as deep as its body's bytes say, which crashes fastavro's reader, the worker itself, past
    ~100,000 levels, long before a record's size limit would stop it), and an array whose items can
    encode in zero bytes (:func:`zero_width_items`: its count alone, one varint, would build a list
    of up to 2**63 items), and a record holding more than ``MAX_REPEATED_VALUES`` values outside its
    arrays and maps (:class:`OversizedSchema`: the bound on array items and map entries does not count
    them, and a record type used twice at each of 20 levels decodes a 0-byte body to millions of dicts).
    Also refused: fastavro's own markers anywhere (``__fastavro_parsed`` and ``__named_schemas`` make
    it take a schema as already parsed, skipping its parsing and these checks),
    and a named type defined again after a referenced schema defined it (it would change what the
    referenced schema's types mean after they were checked). The checks run on what fastavro parses,
    names resolved as its reader resolves them.
    """
    named: dict[str, Any] = {}
    parsed: ParsedSchema = None
    for document in (*references, text):
        parsed = _parse_writer(document, named)
    return parsed


def _parse_writer(text: str, named: dict[str, Any]) -> ParsedSchema:
    try:
        plain = as_parsed(orjson.loads(text), defaults=False)
        private = private_key(plain)
        if private is not None:
            raise BadSchema(f"the schema has a key {private!r}, which is fastavro's own marker")
        problem = malformed(plain)
        if problem is not None:
            raise BadSchema(f"not an Avro schema: {problem}"[:500])
        known = dict(named)
        parsed = fastavro.parse_schema(plain, named)
        redefined = next((name for name, schema in known.items() if named.get(name) is not schema), None)
        if redefined is not None:
            raise BadSchema(f"{redefined}, a named type of a referenced schema, is defined again: not supported")
        recursive = recursive_type(plain) or _recursive_parsed(parsed, named)
    except (BadSchema, MemoryError):  # out of memory is the worker's state, not the schema's: the batch is retried
        raise
    except Exception as error:  # fastavro raises several kinds for a bad schema; a RecursionError for a deep one
        raise BadSchema(f"not an Avro schema: {type(error).__name__}: {error}"[:500]) from error
    if recursive is not None:
        raise BadSchema(f"recursive Avro schema ({recursive} contains itself): not supported")
    empty = zero_width_items(parsed, named)
    if empty is not None:
        raise BadSchema(
            f"an array of {empty}, whose items can encode in zero bytes, so a few bytes could declare"
            " any number of them: not supported"
        )
    weight = _Shape(named).weight(parsed)
    if weight > MAX_REPEATED_VALUES:
        raise OversizedSchema(
            f"a record of it holds up to {weight:,} values outside its arrays and maps, whatever its bytes,"
            f" more than the {MAX_REPEATED_VALUES:,} a record may decode to: not supported"
        )
    return parsed


FASTAVRO_MARKERS = frozenset({"__fastavro_parsed", "__named_schemas"})  # keys fastavro.parse_schema trusts


def malformed(schema: Any, where: str = "the schema") -> str | None:
    """What in ``schema`` (a schema's JSON form) breaks the Avro specification where this code relies on it: a
    named type without a text name, a record's fields not a list of fields with text names, an enum's symbols not
    a list of text, a fixed's size not a whole number of bytes, an array without items, a map without values;
    None when nothing does. fastavro's parser takes some of these (a fixed whose size is text, a field whose name
    is an object) and they fail later, while records are decoded or resolved: a registry that stores such a schema
    (Confluent's, Redpanda's and Event Hubs' refuse it; the local one and some others do not) stopped the partition
    at every retry, where it is the record's problem (``unknown_schema``)."""
    if isinstance(schema, str):
        return None
    if isinstance(schema, list):
        return next((found for branch in schema if (found := malformed(branch, f"a branch of {where}"))), None)
    if not isinstance(schema, dict):
        return f"{where} is {type(schema).__name__}, not a schema"
    kind = schema.get("type")
    if isinstance(kind, dict | list):
        return malformed(kind, where)
    if not isinstance(kind, str):
        return f"{where} has no type name"
    if kind in ("record", "error", "enum", "fixed"):
        name = schema.get("name")
        if not isinstance(name, str) or not name:
            return f"{where}: a {kind} whose name is {name!r}"
        if not _texts(schema.get("aliases", [])):
            return f"{where}: the aliases of {name} are not a list of names"
        where = name
    if kind in ("record", "error"):
        fields = schema.get("fields")
        if not isinstance(fields, list):
            return f"{where}: its fields are not a list"
        for field in fields:
            if not isinstance(field, dict) or not isinstance(field.get("name"), str) or "type" not in field:
                return f"{where}: a field that is not a name and a type: {field!r}"[:200]
            if not _texts(field.get("aliases", [])):
                return f"{where}.{field['name']}: its aliases are not a list of names"
            if (found := malformed(field["type"], f"{where}.{field['name']}")) is not None:
                return found
    elif kind == "enum" and not (isinstance(schema.get("symbols"), list) and _texts(schema["symbols"])):
        return f"{where}: its symbols are not a list of names"
    elif kind == "fixed" and not (type(schema.get("size")) is int and schema["size"] >= 0):
        return f"{where}: a fixed of size {schema.get('size')!r}, not a whole number of bytes"
    elif kind == "array":
        return f"{where}: an array without items" if "items" not in schema else malformed(schema["items"], where)
    elif kind == "map":
        return f"{where}: a map without values" if "values" not in schema else malformed(schema["values"], where)
    return None


def _texts(items: Any) -> bool:
    return isinstance(items, list) and all(isinstance(item, str) for item in items)


def private_key(document: Any) -> str | None:
    """The first of fastavro's own markers among ``document``'s keys (a schema's JSON), at any depth; None if
    none is. Other keys starting with ``__`` are a producer's own attributes (Debezium's
    ``__debezium.source.column.type`` among Connect's ``connect.parameters``) and are left alone."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            found: str | None = next((key for key in item if key in FASTAVRO_MARKERS), None)
            if found is not None:
                return found
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


def _recursive_parsed(parsed: ParsedSchema, named: dict[str, Any]) -> str | None:
    """The full name of a named type of ``parsed`` that contains itself, names resolved through ``named`` as
    fastavro's reader resolves them (referenced schemas' types included); None if none does."""
    done: set[str] = set()
    path: list[str] = []

    def walk(schema: Any) -> str | None:
        if isinstance(schema, list):
            return next((found for branch in schema if (found := walk(branch))), None)
        if isinstance(schema, str):
            if schema in path:
                return schema
            return None if schema in done or schema not in named else enter(schema, named[schema])
        if not isinstance(schema, dict):
            return None
        name = schema.get("name")
        if schema.get("type") in (*_NAMED, "error") and isinstance(name, str):
            if name in path:
                return name
            return None if name in done else enter(name, schema)
        return inside(schema)

    def enter(name: str, schema: Any) -> str | None:
        path.append(name)
        found = inside(schema) if isinstance(schema, dict) else walk(schema)
        path.pop()
        if found is None:
            done.add(name)
        return found

    def inside(schema: dict[str, Any]) -> str | None:
        kind = schema.get("type")
        if kind in ("record", "error"):
            return next((found for item in schema.get("fields") or [] if (found := walk(item.get("type")))), None)
        if kind == "array":
            return walk(schema.get("items"))
        if kind == "map":
            return walk(schema.get("values"))
        if isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind in named):
            return walk(kind)
        return None

    return walk(parsed)


def zero_width_items(parsed: ParsedSchema, named: dict[str, Any]) -> str | None:
    """What an array of ``parsed`` (a fastavro-parsed schema; ``named``: its named types) holds when its
    items can encode in zero bytes; None if no array's can.

    Zero bytes: ``null``, a fixed of size 0, a record whose fields all are (an empty record among them).
    Every other type takes at least a byte: numbers, strings and bytes (their length), enums and unions
    (their index: a union of only ``null`` takes one), arrays and maps (their block count). So an
    array's item count is otherwise bounded by its record's bytes; a map's entries always are, each
    starting with its key's length, whatever its values.
    """
    shape = _Shape(named)

    def find(schema: Any) -> str | None:
        if isinstance(schema, list):
            return next((found for branch in schema if (found := find(branch))), None)
        if not isinstance(schema, dict):  # a primitive or a named type defined (and checked) where it first appears
            return None
        kind = schema.get("type")
        if kind == "array":
            items = schema.get("items")
            return _describe(items) if shape.zero_width(items) else find(items)
        if kind == "map":
            return find(schema.get("values"))
        if kind in ("record", "error"):
            return next((found for item in schema.get("fields") or [] if (found := find(item.get("type")))), None)
        return find(kind) if isinstance(kind, (dict, list)) else None

    return find(parsed)


def _describe(schema: Any) -> str:
    if isinstance(schema, dict):
        return f"{schema.get('type')} {schema.get('name', '')}".strip()
    return str(schema)


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
    if kind in (*_NAMED, "error") and isinstance(name, str):
        namespace = name.rsplit(".", 1)[0] if "." in name else str(schema.get("namespace") or namespace)
        enclosing = (*enclosing, name if "." in name or not namespace else f"{namespace}.{name}")
    if kind in ("record", "error"):
        fields = schema.get("fields") or []
        return next(
            (found for item in fields if (found := recursive_type(item.get("type"), namespace, enclosing))), None
        )
    if kind == "array":
        return recursive_type(schema.get("items"), namespace, enclosing)
    if kind == "map":
        return recursive_type(schema.get("values"), namespace, enclosing)
    return None if kind in (*_NAMED, "error", "array", "map") else recursive_type(kind, namespace, enclosing)


LOGICAL_TYPE = "streamingpoc.logicalType"  # where a parsed schema keeps a ``logicalType``, unread by fastavro


def as_parsed(schema: Any, *, defaults: bool) -> Any:
    """``schema`` as this module parses it: each ``logicalType`` moved to ``LOGICAL_TYPE``, so that fastavro
    reads and writes the underlying type and resolution can still compare them (:func:`changed_meaning`);
    with ``defaults`` False (a writer's schema), every ``default`` dropped: of fields and of enums.

    Only types are walked (a record's fields, once each): other keys are a producer's attributes, kept.
    """
    if isinstance(schema, list):
        return [as_parsed(branch, defaults=defaults) for branch in schema]
    if not isinstance(schema, dict):
        return schema
    parsed: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "logicalType":
            parsed[LOGICAL_TYPE] = value
        elif key in ("type", "items", "values"):
            parsed[key] = as_parsed(value, defaults=defaults)
        elif key == "fields" and isinstance(value, list):
            parsed[key] = [_field_as_parsed(item, defaults=defaults) for item in value]
        elif key != "default" or defaults:
            parsed[key] = value
    return parsed


def _field_as_parsed(field: Any, *, defaults: bool) -> Any:
    if not isinstance(field, dict):
        return field
    kept = {key: value for key, value in field.items() if key != "default" or defaults}
    if "type" in field:
        kept["type"] = as_parsed(field["type"], defaults=defaults)
    return kept


def decode(parsed: ParsedSchema, body: bytes | memoryview) -> Any:
    """One Avro binary body as the JSON converter's form; :class:`NotAvro` when it does not decode exactly.

    Exactly: fastavro reads some invalid bodies as made-up values (a negative enum or union index picks
    from the end, a boolean byte 5 is true, an int past 32 bits or a varint past 10 bytes reads as some
    number). So a body must also be the one the value encodes to (and its ints within 32 bits); one
    that is not, a legal but different encoding (several array blocks, negative block counts,
    padded varints, a union branch fastavro would not pick) or an invalid one, is walked byte by byte
    (:func:`avro_problem`), which refuses only invalid ones. A body of a schema whose values fastavro's
    writer cannot re-encode in work linear in them (:meth:`_Shape.reencoded_unions`: wide unions, unions
    of records nested in each other, long enums) is always walked: the walk takes each union's branch by
    its index and checks each int's 32 bits as it reads it.

    A body that would decode to more than ``MAX_REPEATED_VALUES`` is :class:`Oversized`, found before
    decoding it (:func:`check_repeats`).
    """
    check_repeats(parsed, body)
    stream = io.BytesIO(body)
    try:
        value = fastavro.schemaless_reader(stream, parsed, None)
    except MemoryError:  # the worker's problem, not the record's: its batch fails and is retried
        raise
    except Exception as error:  # truncated or corrupt bodies surface as EOFError, IndexError, ValueError...
        raise NotAvro(f"body does not decode with its writer schema: {type(error).__name__}: {error}"[:500]) from None
    left = len(body) - stream.tell()
    if left:
        raise NotAvro(f"{left} bytes left after the record: not this schema's Avro binary")
    if not _encodes_to(parsed, value, body):
        problem = avro_problem(parsed, body)
        if problem is not None:
            raise NotAvro(f"not valid Avro binary: {problem}"[:500])
    return _json_form(value)


def _encodes_to(parsed: ParsedSchema, value: Any, body: bytes | memoryview) -> bool:
    """Whether ``value`` encodes to exactly ``body`` and its ints fit 32 bits (the common, fast case); False,
    without encoding it, for a schema fastavro's writer cannot re-encode in work linear in the value."""
    ints_fit = _reencoding_check(parsed)
    if ints_fit is None:
        return False
    sink = io.BytesIO()
    try:
        fastavro.schemaless_writer(sink, parsed, value)
    except MemoryError:
        raise
    except Exception:  # a value the writer refuses: let the byte walk decide
        return False
    return sink.getvalue() == body and ints_fit(value)


# By id(parsed), which it keeps alive: the check that a value's ints fit 32 bits, or None when the schema's values
# are not re-encoded (:meth:`_Shape.reencoded_unions`).
_REENCODING_CHECKS: dict[int, tuple[ParsedSchema, Callable[[Any], bool] | None]] = {}


def _reencoding_check(parsed: ParsedSchema) -> Callable[[Any], bool] | None:
    """A check that a value of ``parsed`` has every ``int`` within 32 bits, when its values are re-encoded to
    compare them with their bodies; None when they are only walked (built once per schema)."""
    found = _REENCODING_CHECKS.get(id(parsed))
    if found is None or found[0] is not parsed:
        if len(_REENCODING_CHECKS) >= 1024:
            _REENCODING_CHECKS.clear()
        named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
        shape = _Shape(named)
        nested = shape.reencoded_unions(parsed)
        check = None if nested is None or nested > MAX_REENCODED_UNION_DEPTH else shape.int_check(parsed) or _always
        found = _REENCODING_CHECKS[id(parsed)] = (parsed, check)
    return found[1]


def _always(_: Any) -> bool:
    return True


def _is_primitive(schema: Any) -> bool:
    """Whether a union branch is a primitive type (``{"type": "string"}`` and logical types of them included)."""
    kind = schema.get("type") if isinstance(schema, dict) else schema
    return isinstance(kind, str) and kind in _PRIMITIVES


def _fits_int(value: Any) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@dataclass(frozen=True, slots=True)
class _Repeats:
    """What a schema's arrays and maps can cost: ``weight``, the most values one item or entry adds (0: the
    schema has none, so a record decodes to a number of values its schema bounds); ``count``, the values a
    decoded record's items and entries hold, given the record and the body it decoded from."""

    weight: int
    count: Callable[[Any, bytes | memoryview], int]


_REPEATS: dict[int, tuple[ParsedSchema, _Repeats]] = {}  # by id(parsed), which it keeps alive


def _repeats(parsed: ParsedSchema) -> _Repeats:
    found = _REPEATS.get(id(parsed))
    if found is None or found[0] is not parsed:
        if len(_REPEATS) >= 1024:
            _REPEATS.clear()
        named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
        shape = _Shape(named)
        counter = shape.counter(parsed) or _none

        def count(value: Any, body: bytes | memoryview) -> int:
            return _walked_repeats(parsed, shape, body) if shape.by_branch else counter(value)

        found = _REPEATS[id(parsed)] = (parsed, _Repeats(shape.most, count))
    return found[1]


def _none(_: Any) -> int:
    return 0


def _walked_repeats(parsed: ParsedSchema, shape: _Shape, body: bytes | memoryview) -> int:
    """The weighted array items and map entries of ``body`` (a record of ``parsed`` that decoded), counted
    walking it byte by byte: each union's value as the branch its index names, in work linear in the body."""
    walk = _Walk(bytes(body), shape.named, shape=shape)
    try:
        walk.value(parsed)
    except _Invalid as problem:  # never for a body that decoded: it was walked so (:func:`decode`)
        raise NotAvro(f"not valid Avro binary: {problem}"[:500]) from None
    return walk.counted


_Found = TypeVar("_Found")


class _Shape:
    """What a schema's types hold: their weights (the values a value of each holds, an array or map in it
    counting one) and the most an array item or map entry weighs, whether they encode in zero bytes or a
    fixed number, checks and counters for their decoded values.

    Each named type is worked out once, at its first use: a schema using a type twice at each of 40 levels
    would otherwise cost 2**40 steps for 3 KB of text. A use of a type inside itself takes a placeholder, so
    every walk ends; such schemas are refused (:func:`parse_writer_schema`) before anything asks these.
    """

    def __init__(self, named: dict[str, Any]) -> None:
        self.named, self.most = named, 0
        self._weights: dict[str, int] = {}
        self._zero_widths: dict[str, bool] = {}
        self._fixed_widths: dict[str, int | None] = {}
        self._int_checks: dict[str, Callable[[Any], bool] | None] = {}
        self._counters: dict[str, Callable[[Any], int] | None] = {}
        self._reencoded_unions: dict[str, int | None] = {}
        # Set by :meth:`counter` for a union of two or more types holding arrays or maps: counting its value with
        # each branch's counter costs branches x values, and only the body tells which branch it was written with.
        self.by_branch = False
        self.blocks: dict[int, tuple[Any, int, int | None]] = {}  # :class:`_Walk`'s, by id(an array or map type)

    def _once(self, done: dict[str, _Found], name: str, work: Callable[[Any], _Found], placeholder: _Found) -> _Found:
        if name not in done:
            done[name] = placeholder
            done[name] = work(self.named[name])
        return done[name]

    def weight(self, schema: Any) -> int:
        if isinstance(schema, str):
            return self._once(self._weights, schema, self.weight, 1) if schema in self.named else 1
        if isinstance(schema, list):
            return max((self.weight(branch) for branch in schema), default=1)
        if not isinstance(schema, dict):
            return 1
        kind = schema.get("type")
        if kind in ("record", "error"):
            return 1 + sum(self.weight(item.get("type")) for item in schema.get("fields") or [])
        if kind == "array":
            self.most = max(self.most, self.weight(schema.get("items")))
            return 1
        if kind == "map":
            self.most = max(self.most, 1 + self.weight(schema.get("values")))
            return 1
        return self.weight(kind) if isinstance(kind, (dict, list)) or kind in self.named else 1

    def zero_width(self, schema: Any) -> bool:
        """Whether a value of ``schema`` can encode in zero bytes."""
        if isinstance(schema, str):
            if schema in self.named:
                return self._once(self._zero_widths, schema, self.zero_width, False)
            return schema == "null"
        if not isinstance(schema, dict):
            return False  # a union: its branch index takes a byte
        kind = schema.get("type")
        if kind in ("record", "error"):
            return all(self.zero_width(item.get("type")) for item in schema.get("fields") or [])
        if kind == "fixed":
            return schema.get("size") == 0
        if isinstance(kind, (str, dict)) and kind not in ("array", "map", "enum"):
            return self.zero_width(kind)
        return False

    def fixed_width(self, schema: Any) -> int | None:
        """The bytes every value of ``schema`` takes, when all take the same; None otherwise."""
        if isinstance(schema, str):
            if schema in self.named:
                return self._once(self._fixed_widths, schema, self.fixed_width, None)
            return {"null": 0, "boolean": 1, "float": 4, "double": 8}.get(schema)
        if not isinstance(schema, dict):
            return None
        kind = schema.get("type")
        if kind in ("record", "error"):
            widths = [self.fixed_width(item.get("type")) for item in schema.get("fields") or []]
            return None if None in widths else sum(w for w in widths if w is not None)
        if kind == "fixed":
            size = schema.get("size")
            return size if isinstance(size, int) else None
        if isinstance(kind, (str, dict)) and kind not in ("array", "map", "enum"):
            return self.fixed_width(kind)
        return None

    def int_check(self, schema: Any) -> Callable[[Any], bool] | None:
        """A check that the ints in a value of ``schema`` fit 32 bits; None when it holds no int.

        A value not of the type a check expects passes it (in a union, another branch's value), so a union
        checks its value with every branch holding ints: the branch it was written with among them.
        """
        if isinstance(schema, str):
            if schema in self.named:
                return self._once(self._int_checks, schema, self.int_check, None)
            return _fits_int if schema == "int" else None
        if isinstance(schema, list):
            checks = [check for branch in schema if (check := self.int_check(branch))]
            return (lambda value: all(check(value) for check in checks)) if checks else None
        kind = schema.get("type")
        if kind in ("record", "error"):
            fields = [(item["name"], check) for item in schema["fields"] if (check := self.int_check(item["type"]))]
            if not fields:
                return None
            return lambda value: not isinstance(value, dict) or all(check(value.get(name)) for name, check in fields)
        if kind == "array":
            items = self.int_check(schema["items"])
            return (lambda value: not isinstance(value, list) or all(map(items, value))) if items else None
        if kind == "map":
            values = self.int_check(schema["values"])
            return (lambda value: not isinstance(value, dict) or all(map(values, value.values()))) if values else None
        return self.int_check(kind) if isinstance(kind, (str, dict, list)) else None

    def reencoded_unions(self, schema: Any) -> int | None:
        """The most unions nested in one another in a value of ``schema``, when fastavro's writer re-encodes its
        values in work linear in them but for that depth (each union validates its value again); None when it
        cannot: a union of more than one type besides primitives (a value is validated against each, each
        walking it: branches times values, and twice as much per level of such unions nested in each other),
        or an enum of more than ``MAX_REENCODED_ENUM_SYMBOLS`` symbols (each value's searched among them)."""
        if isinstance(schema, str):
            if schema in self.named:
                return self._once(self._reencoded_unions, schema, self.reencoded_unions, 0)
            return 0
        if isinstance(schema, list):
            if sum(not _is_primitive(branch) for branch in schema) > 1:
                return None
            depths = [self.reencoded_unions(branch) for branch in schema]
            return None if None in depths else 1 + max((d for d in depths if d is not None), default=0)
        if not isinstance(schema, dict):
            return 0
        kind = schema.get("type")
        if kind in ("record", "error"):
            inner = [item.get("type") for item in schema.get("fields") or []]
        elif kind == "array":
            inner = [schema.get("items")]
        elif kind == "map":
            inner = [schema.get("values")]
        elif kind == "enum":
            return 0 if len(schema.get("symbols") or ()) <= MAX_REENCODED_ENUM_SYMBOLS else None
        elif isinstance(kind, (dict, list)) or kind in self.named:
            inner = [kind]
        else:
            return 0
        depths = [self.reencoded_unions(item) for item in inner]
        return None if None in depths else max((d for d in depths if d is not None), default=0)

    def counter(self, schema: Any) -> Callable[[Any], int] | None:
        """Counts a decoded value's weighted items and entries; None when ``schema`` has no array or map. A
        union's value counts what its branches' counters count the most; when two or more of its branches hold
        arrays or maps, that is work in branches x values, so ``by_branch`` is set: :func:`repeat_counter`
        counts the schema's records walking their bodies instead."""
        self.weight(schema)  # sets ``most``
        return self._counter(schema)

    def _counter(self, schema: Any) -> Callable[[Any], int] | None:
        if isinstance(schema, str):
            return self._once(self._counters, schema, self._counter, None) if schema in self.named else None
        if isinstance(schema, list):
            counters = [found for branch in schema if (found := self._counter(branch))]
            self.by_branch = self.by_branch or len(counters) > 1
            return (lambda value: max(count(value) for count in counters)) if counters else None
        if not isinstance(schema, dict):
            return None
        kind = schema.get("type")
        if kind in ("record", "error"):
            fields = [(field["name"], found) for field in schema["fields"] if (found := self._counter(field["type"]))]
            if not fields:
                return None
            return lambda value: sum(count(value.get(name)) for name, count in fields) if isinstance(value, dict) else 0
        if kind in ("array", "map"):
            inner = schema.get("items" if kind == "array" else "values")
            weight, nested = self.weight(inner) + (kind == "map"), self._counter(inner)
            if kind == "array":
                if nested is None:
                    return lambda value: weight * len(value) if isinstance(value, list) else 0
                return lambda value: weight * len(value) + sum(map(nested, value)) if isinstance(value, list) else 0
            if nested is None:
                return lambda value: weight * len(value) if isinstance(value, dict) else 0
            return lambda value: (
                weight * len(value) + sum(map(nested, value.values())) if isinstance(value, dict) else 0
            )
        return self._counter(kind) if isinstance(kind, (dict, list)) or kind in self.named else None


def check_repeats(parsed: ParsedSchema, body: bytes | memoryview, limit: int = MAX_REPEATED_VALUES) -> None:
    """:class:`Oversized` when ``body`` would decode to more than ``limit`` weighted array items and map entries.

    Free for a schema without arrays or maps, and for a body too short to hold that many (each item takes a
    byte at least: zero-width items are refused with the schema); otherwise the body is walked, items of a
    fixed width skipped a block at a time, until the count passes ``limit``.
    """
    repeats = _repeats(parsed)
    if not repeats.weight or len(body) * repeats.weight <= limit:
        return
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    walk = _Walk(bytes(body), named, limit)
    try:
        walk.value(parsed)
    except _TooMany:
        raise Oversized(
            f"decodes to more than {limit:,} array items and map entries (weighted by their values):"
            f" {walk.counted:,} counted within its first {walk.at:,} bytes",
            walk.counted,
        ) from None
    except _Invalid as problem:
        raise NotAvro(f"not valid Avro binary: {problem}"[:500]) from None


def repeated_values(parsed: ParsedSchema, value: Any, body: bytes | memoryview) -> int:
    """The weighted array items and map entries of ``value``, a record of ``parsed`` as decoded from ``body``.

    Counted from ``value``, in work linear in it; for a schema with a union of two or more types holding arrays
    or maps, from ``body``, walked byte by byte (:meth:`_Shape.counter`): each union's value counts as the
    branch it was written with, never as another branch's counter would count it (no more than those do).
    """
    return _repeats(parsed).count(value, body)


def repeat_counter(parsed: ParsedSchema) -> Callable[[Any, bytes | memoryview], int] | None:
    """:func:`repeated_values` for records of ``parsed``; None when it has no array or map (they count 0)."""
    repeats = _repeats(parsed)
    return repeats.count if repeats.weight else None


_INT_BITS = {"int": 32, "long": 64}
_VARINT_BYTES = {"int": 5, "long": 10}


def avro_problem(parsed: ParsedSchema, body: bytes | memoryview) -> str | None:
    """What makes ``body`` invalid Avro binary of ``parsed``; None when it is valid, walked byte by byte.

    Invalid: a union or enum index outside the schema's (negative ones included), a boolean byte other
    than 0 or 1, a varint longer than an int's 5 or a long's 10 bytes or its value outside them, a
    negative length, a string that is not UTF-8, a truncated body or bytes after the record. Legal
    though not what fastavro writes: several blocks in an array or map, negative block counts (with
    their byte size), varints padded with zero groups.
    """
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    walk = _Walk(bytes(body), named)
    try:
        walk.value(parsed)
    except _Invalid as problem:
        return str(problem)
    if walk.at != len(walk.body):
        return f"{len(walk.body) - walk.at} bytes left after the record"
    return None


class _Invalid(Exception):
    pass


class _TooMany(Exception):
    pass


class _Walk:
    """A cursor over an Avro body, reading values of a schema only to check them; with ``limit`` or ``shape``
    (the schema's, its caches shared by the walks of its bodies), counting weighted array items and map entries
    (``counted``), and with ``limit`` stopping past it."""

    def __init__(
        self, body: bytes, named: dict[str, Any], limit: int | None = None, shape: _Shape | None = None
    ) -> None:
        self.body, self.named, self.at, self.limit, self.counted = body, named, 0, limit, 0
        self._shape = _Shape(named) if shape is None and limit is not None else shape
        self._widths = self._shape.blocks if self._shape is not None else {}

    def take(self, count: int) -> bytes:
        if count < 0 or self.at + count > len(self.body):
            raise _Invalid(f"{count} bytes at byte {self.at}: past the end of the body")
        self.at += count
        return self.body[self.at - count : self.at]

    def varint(self, kind: str) -> int:
        start, shift, result = self.at, 0, 0
        for _ in range(_VARINT_BYTES[kind]):
            (byte,) = self.take(1)
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                value = (result >> 1) ^ -(result & 1)
                if not -(2 ** (_INT_BITS[kind] - 1)) <= value < 2 ** (_INT_BITS[kind] - 1):
                    raise _Invalid(f"{kind} at byte {start}: {value} is outside {_INT_BITS[kind]} bits")
                return value
        raise _Invalid(f"{kind} at byte {start}: a varint longer than {_VARINT_BYTES[kind]} bytes")

    def index(self, what: str, count: int) -> int:
        start = self.at
        found = self.varint("long")
        if not 0 <= found < count:
            raise _Invalid(f"{what} index {found} at byte {start}: not in 0..{count - 1}")
        return found

    def value(self, schema: Any) -> None:
        if isinstance(schema, list):
            self.value(schema[self.index("union", len(schema))])
            return
        if isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)):
            self.value(schema["type"])
            return
        kind = schema.get("type") if isinstance(schema, dict) else schema
        if kind in self.named and not isinstance(schema, dict):
            self.value(self.named[kind])
        elif kind in ("int", "long"):
            self.varint(kind)
        elif kind == "boolean":
            start, (byte,) = self.at, self.take(1)
            if byte > 1:
                raise _Invalid(f"boolean at byte {start}: {byte}, not 0 or 1")
        elif kind in ("float", "double"):
            self.take(4 if kind == "float" else 8)
        elif kind in ("string", "bytes"):
            start, data = self.at, self.take(self.varint("long"))
            if kind == "string":
                try:
                    data.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise _Invalid(f"string at byte {start}: not UTF-8 ({error.reason})") from None
        elif kind == "fixed":
            self.take(int(schema["size"]))
        elif kind == "enum":
            self.index(f"enum {schema['name']}", len(schema["symbols"]))
        elif kind in ("record", "error"):
            for item in schema["fields"]:
                self.value(item["type"])
        elif kind in ("array", "map"):
            self.blocks(schema)
        elif kind in self.named:
            self.value(self.named[kind])
        elif kind != "null":
            raise _Invalid(f"unknown type {kind!r}")

    def blocks(self, schema: dict[str, Any]) -> None:
        while count := self.varint("long"):
            if count < 0:  # a negative count is followed by the block's size in bytes
                count = -count
                if self.varint("long") < 0:
                    raise _Invalid(f"a negative block size at byte {self.at}")
            if self._shape is not None and self._counts(schema, count):
                continue
            for _ in range(count):
                if schema["type"] == "map":
                    self.value("string")
                    self.value(schema["values"])
                else:
                    self.value(schema["items"])

    def _counts(self, schema: dict[str, Any], count: int) -> bool:
        """Counts a block of ``count`` items (past ``limit``: :class:`_TooMany`); True when it skipped them,
        items of a fixed width (no array, map, string, number or union among them) needing no walk."""
        found = self._widths.get(id(schema))
        if found is None or found[0] is not schema:
            assert self._shape is not None
            inner = schema["items"] if schema["type"] == "array" else schema["values"]
            weight = self._shape.weight(inner) + (schema["type"] == "map")
            width = self._shape.fixed_width(inner) if schema["type"] == "array" else None
            found = self._widths[id(schema)] = (schema, weight, width)
        _, weight, width = found
        self.counted += count * weight
        if self.limit is not None and self.counted > self.limit:
            raise _TooMany
        if width is None:
            return False
        self.take(count * width)
        return True


def parse_reader_schema(schema: Any) -> ParsedSchema:
    """The schema a source reads its records as (its Datagen config's), logical types set aside as for writers
    (:func:`as_parsed`) and defaults kept: they fill the fields a writer lacks."""
    try:
        parsed = fastavro.parse_schema(as_parsed(schema, defaults=True))
        _bytes_defaults_as_bytes(parsed)
    except MemoryError:  # the worker's state: not cached as a schema that does not parse, the batch is retried
        raise
    except Exception as error:  # fastavro raises several kinds for a bad schema
        raise BadSchema(f"not an Avro schema: {type(error).__name__}: {error}"[:500]) from error
    return parsed


def _bytes_defaults_as_bytes(parsed: ParsedSchema) -> None:
    """Each field default of a bytes or fixed type (of a union: of its first branch but null) turned from its JSON
    form, text of code points 0-255, into those bytes: fastavro fills a field the writer lacks with the default as
    it is, and only bytes become base64 text, the form a JSON record's default lands in
    (:func:`shared.datagen.model.json_form_default`). Values inside a record, array or map default stay as they
    are, as on the JSON path."""
    named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    for record in (*_named_types(parsed), *named.values()):
        for field in record.get("fields") or ():
            kind = _definition(field["type"], named)
            if isinstance(kind, list):
                kind = next((branch for branch in kind if _kind(_definition(branch, named)) != "null"), None)
                kind = _definition(kind, named)
            default = field.get("default")
            # Text past code point 255 is not bytes: left as text, it is refused as base64 where a record takes it.
            if isinstance(default, str) and _kind(kind) in ("bytes", "fixed") and all(ord(c) < 256 for c in default):
                field["default"] = default.encode("latin-1")


def decode_as(writer: ParsedSchema, reader: ParsedSchema | None, body: bytes | memoryview) -> tuple[Any, Any]:
    """One body as the source reads it, and as it was sent (both in the JSON converter's form).

    Read, the record is resolved from its writer schema to the source's (Avro's rules: a field the
    writer lacks takes its default, a renamed field is found by its aliases, an unknown enum symbol
    takes the enum's default, int/long/float/string/bytes are promoted); the fields only the writer
    has are kept beside, in records at every level, map values and array items, where a JSON record
    would carry them (so they reach ``_extra``, or stay in the column holding them). ``reader`` is the
    source's schema as :func:`with_writer_names` gives it for ``writer``: named types of other names resolve.

    A record that does not resolve (a value the reader's type cannot take: bytes that are not UTF-8 read as
    a string, a union branch the reader lacks, a long read as an int, a map read as a record) is
    :class:`Unresolved`, with the resolution's error: a value of it would otherwise land with another meaning.
    The caller first checks that resolving keeps what values mean (:func:`changed_meaning`).
    """
    sent = decode(writer, body)
    if reader is None:
        return sent, sent
    try:
        resolved = fastavro.schemaless_reader(io.BytesIO(body), writer, reader)
    except MemoryError:
        raise
    except Exception as error:  # fastavro's resolution errors have no common type
        problem = f"{type(error).__name__}: {error}"[:300]
        raise Unresolved(f"does not resolve to the source's schema ({problem})", sent) from None
    named = reader.get("__named_schemas", {}) if isinstance(reader, dict) else {}
    return _with_unread(_json_form(resolved), sent, reader, named), sent


def _with_unread(read: Any, sent: Any, schema: Any, named: dict[str, Any]) -> Any:
    """``read`` with the fields of ``sent`` it does not have: in records (and map values) key by key, in
    arrays item by item. ``schema``: the reader's type of ``read``, whose fields were read from ``sent`` by
    name or, when ``sent`` lacks their name, by one of their aliases (that writer field is not one ``read`` lacks)."""
    schema = _read_branch(schema, read, named)
    kind = _kind(schema)
    if isinstance(read, dict) and isinstance(sent, dict):
        fields = schema["fields"] if kind in ("record", "error") else ()
        types = {field["name"]: field["type"] for field in fields}
        renamed = {
            alias: field["name"]
            for field in fields
            if field["name"] in read and field["name"] not in sent
            for alias in field.get("aliases", ())
        }
        merged = dict(read)
        for name, value in sent.items():
            key = name if name in read else renamed.get(name, name)
            inner = schema["values"] if kind == "map" else types.get(key)
            merged[key] = _with_unread(read[key], value, inner, named) if key in read else value
        return merged
    if isinstance(read, list) and isinstance(sent, list) and len(read) == len(sent):
        items = schema["items"] if kind == "array" else None
        return [_with_unread(item, sent_item, items, named) for item, sent_item in zip(read, sent, strict=True)]
    return read


def _read_branch(schema: Any, read: Any, named: dict[str, Any]) -> Any:
    """``schema``'s definition; of a union, the branch ``read`` was read as: a record of its keys, else a map for a
    dict, an array for a list (None when none is)."""
    schema = _definition(schema, named)
    if not isinstance(schema, list):
        return schema
    branches = [_definition(branch, named) for branch in schema]
    if isinstance(read, dict):
        records = (b for b in branches if _kind(b) in ("record", "error") and read.keys() == _field_names(b))
        return next(records, next((b for b in branches if _kind(b) == "map"), None))
    return next((b for b in branches if _kind(b) == "array"), None) if isinstance(read, list) else None


def _field_names(record: dict[str, Any]) -> set[str]:
    return {field["name"] for field in record["fields"]}


def changed_meaning(writer: ParsedSchema, reader: ParsedSchema) -> str | None:
    """Where a record of ``writer`` read as ``reader`` would keep its numbers but not what they mean, said as
    ``field at: written as timestamp-millis, read as timestamp-micros ...``; None when nowhere.

    There both schemas declare a logical type, and not the same one: a timestamp of another unit (2026 in
    milliseconds read as microseconds is January 1970), a date read as a timestamp, a decimal of another
    scale. Every record of the writer would land a wrong value, so none is read as the reader (the decoder
    dead-letters them, ``schema``). A side without a logical type takes the number as it is, as the JSON
    converter sends it; a decimal's precision is the model's check, record by record (its digits).
    Types are matched as fastavro's resolution matches them (:func:`_matches`): fields by name or the reader's
    aliases; a named type with a reader type of its unqualified name or having its name among its aliases
    (those :func:`with_writer_names` adds included: pass the reader it gives), a union's value with the first
    branch that matches it so, or is of its type or one it is promoted to. Types that do not match are not
    compared: their records do not resolve, each a dead letter of its own (:class:`Unresolved`).
    """
    writer_named = writer.get("__named_schemas", {}) if isinstance(writer, dict) else {}
    reader_named = reader.get("__named_schemas", {}) if isinstance(reader, dict) else {}
    compared: set[tuple[int, int]] = set()  # each pair of types once: named types used many times included

    def matches(written: Any, read: Any) -> bool:
        return _matches(written, read, writer_named, reader_named)

    def walk(written: Any, read: Any, where: str) -> str | None:
        written, read = _definition(written, writer_named), _definition(read, reader_named)
        if (id(written), id(read)) in compared:
            return None
        compared.add((id(written), id(read)))
        if isinstance(written, list):
            return next((found for branch in written if (found := walk(branch, read, where))), None)
        if isinstance(read, list):
            branches = (_definition(branch, reader_named) for branch in read)
            branch = next((branch for branch in branches if matches(written, branch)), None)
            return None if branch is None else walk(written, branch, where)
        if not matches(written, read):
            return None
        written_kind, read_kind = _kind(written), _kind(read)
        named_kinds = (_NAMED_FAMILY.get(written_kind), _NAMED_FAMILY.get(read_kind))
        if None not in named_kinds and named_kinds[0] != named_kinds[1]:
            # fastavro takes named types of one name for each other whatever their kinds: a fixed read as a record
            # came back as its bytes, which landed as base64 text in a string branch beside it
            return (
                f"field {where or '(the record)'}: written as the {written_kind} {written.get('name')}, read as a"
                f" {read_kind} of that name: Avro resolves neither kind to the other"
            )
        if written_kind in ("record", "error") and read_kind in ("record", "error"):
            fields = {field["name"]: field["type"] for field in written["fields"]}
            for field in read["fields"]:
                name = next((name for name in (field["name"], *field.get("aliases", ())) if name in fields), None)
                inside = f"{where}.{field['name']}" if where else field["name"]
                if name is not None and (found := walk(fields[name], field["type"], inside)):
                    return found
            return None
        if written_kind == read_kind == "array":
            return walk(written["items"], read["items"], f"{where}[]")
        if written_kind == read_kind == "map":
            return walk(written["values"], read["values"], f"{where}{{}}")
        return _logical_change(written, read, where)

    return walk(writer, reader, "")


_NAMED_FAMILY = {"record": "record", "error": "record", "enum": "enum", "fixed": "fixed"}


def with_writer_names(writer: ParsedSchema, reader: ParsedSchema) -> ParsedSchema:
    """``reader``, or when ``writer`` names its types otherwise, a copy of it whose named types carry as aliases
    the full names of the writer's types read as them.

    fastavro resolves a named type only to one of the same unqualified name or that has the writer's name among
    its aliases (as the Avro specification says), and a producer's record is often named otherwise than the
    source's: a Java class ``com.acme.Order``, Datagen's ``ksql.orders``, a nested ``Address`` the source calls
    ``Thing_address``. Its records would never resolve. Types are paired as resolution pairs them: the
    top-level ones, fields by name or the reader's aliases, array items, map values, and the branches of a
    union (a type that is not one is a union of itself) by name first; then a reader's branch no writer type
    took by name is paired by kind only when it is the only one of its kind left and so is the writer's (of
    [Color, Size] read as [Color], Size is read as nothing: Avro resolves it to no type, where the alias would
    read the size S as an unknown color). A named type of another kind, or a fixed of another size, is left
    unpaired: it does not resolve whatever its name. An alias is the type's, wherever it is used: a reader type
    paired with two writer types (by name or not), anywhere, takes neither's name, so that no writer type is
    read as a type of another. Built once per writer schema (the decoder keeps it); the reader itself when
    every name matches.
    """
    writer_named = writer.get("__named_schemas", {}) if isinstance(writer, dict) else {}
    reader_named = reader.get("__named_schemas", {}) if isinstance(reader, dict) else {}
    paired: dict[str, dict[str, bool]] = {}  # a reader type's full name: the writer names read as it (by name?)
    compared: set[tuple[int, int]] = set()

    def walk(written: Any, read: Any) -> None:
        written, read = _definition(written, writer_named), _definition(read, reader_named)
        if (id(written), id(read)) in compared:
            return
        compared.add((id(written), id(read)))
        if isinstance(written, list) or isinstance(read, list):
            written_branches = [_definition(branch, writer_named) for branch in _branches(written)]
            read_branches = [_definition(branch, reader_named) for branch in _branches(read)]
            for written_branch, read_branch in _union_pairs(written_branches, read_branches):
                walk(written_branch, read_branch)
            return
        written_kind, read_kind = _kind(written), _kind(read)
        if written_kind == read_kind == "array":
            walk(written["items"], read["items"])
        elif written_kind == read_kind == "map":
            walk(written["values"], read["values"])
        elif _same_family(written, read):
            paired.setdefault(read["name"], {})[written["name"]] = _same_name(written, read)
            if _NAMED_FAMILY[written_kind] == "record":
                fields = {field["name"]: field["type"] for field in written["fields"]}
                for field in read["fields"]:
                    name = next((name for name in (field["name"], *field.get("aliases", ())) if name in fields), None)
                    if name is not None:
                        walk(fields[name], field["type"])

    walk(writer, reader)
    aliases = {
        read_name: [name for name, by_name in names.items() if not by_name]
        for read_name, names in paired.items()
        if len(names) == 1 and not any(names.values())
    }
    if not aliases:
        return reader
    # A deep copy keeps the parsed schema's sharing: a named type is one dict in the tree and in
    # ``__named_schemas``; the top-level type is the only one that is two (with and without fastavro's markers).
    renamed = copy.deepcopy(reader)
    named = renamed.get("__named_schemas", {}) if isinstance(renamed, dict) else {}
    for definition in {id(found): found for found in (*_named_types(renamed), *named.values())}.values():
        added = aliases.get(str(definition.get("name")))
        if added:
            definition["aliases"] = [*definition.get("aliases", ()), *added]
    return renamed


def _branches(schema: Any) -> list[Any]:
    """A union's branches; any other type as the one branch of a union."""
    return list(schema) if isinstance(schema, list) else [schema]


def _named_types(schema: Any) -> list[dict[str, Any]]:
    """The named types a parsed schema defines in its tree (a type's own keys walked, not its defaults)."""
    found: list[dict[str, Any]] = []
    pending = [schema]
    while pending:
        item = pending.pop()
        if isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, dict):
            if _kind(item) in _NAMED_FAMILY and isinstance(item.get("name"), str):
                found.append(item)
            pending.extend(field.get("type") for field in item.get("fields") or () if isinstance(field, dict))
            pending.extend(item[key] for key in ("items", "values") if key in item)
            if isinstance(item.get("type"), (dict, list)):
                pending.append(item["type"])
    return found


def _family(schema: Any) -> tuple[str, Any] | None:
    """The family of a named type, as resolution tells them apart but for their names: records (or errors),
    enums, fixed of one size; None for any other type."""
    family = _NAMED_FAMILY.get(_kind(schema)) if isinstance(schema, dict) else None
    if family is None:
        return None
    return family, schema.get("size") if family == "fixed" else None


def _same_family(written: Any, read: Any) -> bool:
    """Whether two named types resolve to each other but for their names."""
    family = _family(written)
    return family is not None and family == _family(read)


def _same_name(written: dict[str, Any], read: dict[str, Any]) -> bool:
    """Whether fastavro resolves ``written`` to ``read`` by name: the same unqualified name, or one of the
    reader's aliases."""
    unqualified = str(written["name"]).rsplit(".", 1)[-1]
    read_aliases = read.get("aliases", ())
    return (
        unqualified == str(read["name"]).rsplit(".", 1)[-1]
        or written["name"] in read_aliases
        or unqualified in read_aliases
    )


def _union_pairs(written: list[Any], read: list[Any]) -> list[tuple[Any, Any]]:
    """The branches of a writer's union paired with those of a reader's union to name types (each side's
    definitions; a type that is not a union as its one branch): a named type with the reader's of its kind and
    name; then a reader's named type no writer type took, with the writer's of its kind no reader type took,
    when each is the only one of its kind left on its side; an array or a map with the reader's first of that
    kind. A writer type is read as at most one reader type here, and each reader type from at most one writer
    type but those of its name (which fastavro resolves to it whatever is paired)."""
    by_name: dict[tuple[tuple[str, Any], str], tuple[int, Any]] = {}  # (family, name or alias): first reader type
    for at, item in enumerate(read):
        family = _family(item)
        if family is not None:
            for name in (str(item["name"]).rsplit(".", 1)[-1], *item.get("aliases", ())):
                by_name.setdefault((family, name), (at, item))
    pairs: list[tuple[Any, Any]] = []
    claimed: set[int] = set()  # the reader branches taken, by id
    unpaired: dict[tuple[str, Any], list[Any]] = {}  # by family, the writer's named types left by name
    for branch in written:
        family = _family(branch)
        if family is None:
            continue
        unqualified = str(branch["name"]).rsplit(".", 1)[-1]
        found = [by_name[key] for key in ((family, unqualified), (family, str(branch["name"]))) if key in by_name]
        if found:
            match = min(found, key=lambda pair: pair[0])[1]  # the first of the reader's that fastavro would take
            pairs.append((branch, match))
            claimed.add(id(match))
        else:
            unpaired.setdefault(family, []).append(branch)
    left: dict[tuple[str, Any], list[Any]] = {}  # by family, the reader's named types no writer type took
    for item in read:
        family = _family(item)
        if family is not None and id(item) not in claimed:
            left.setdefault(family, []).append(item)
    for family, branches in unpaired.items():
        if len(branches) == 1 and len(left.get(family, ())) == 1:
            pairs.append((branches[0], left[family][0]))
    for branch in written:
        if _kind(branch) in ("array", "map"):
            match = next((item for item in read if _kind(item) == _kind(branch)), None)
            if match is not None:
                pairs.append((branch, match))
    return pairs


_PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
_TYPE_NAMES = frozenset((*_PRIMITIVES, "record", "error", "enum", "array", "map", "fixed"))


def _definition(schema: Any, named: dict[str, Any]) -> Any:
    """``schema`` itself: a named type's definition for its name, the inner schema of ``{"type": {...}}``. A
    type's own keyword (``record``) is never taken for a named type of that name, which fastavro allows."""
    while True:
        if isinstance(schema, dict) and isinstance(schema.get("type"), (dict, list)):
            schema = schema["type"]
            continue
        name = schema.get("type") if isinstance(schema, dict) else schema
        if not isinstance(name, str) or name in _TYPE_NAMES or name not in named:
            return schema
        schema = named[name]  # a record, enum or fixed: the next turn returns it


def _kind(schema: Any) -> Any:
    if isinstance(schema, list):
        return "union"
    return schema.get("type") if isinstance(schema, dict) else schema


_PROMOTED = {"int": ("long", "float", "double"), "long": ("float", "double"), "float": ("double",)}
_PROMOTED |= {"string": ("bytes",), "bytes": ("string",)}


def _matches(written: Any, read: Any, writer_named: dict[str, Any], reader_named: dict[str, Any]) -> bool:
    """Whether fastavro resolves a value of ``written`` as ``read`` (its ``match_types``; a union's value with
    the first of its branches that matches): named types (of any of the named kinds, a fixed of the same size)
    by name only, the writer's unqualified name being the reader's or either name among the reader's aliases;
    an array or a map when their items or values match; a union with anything (its branch is matched when
    read); other types when of the same type or one it is promoted to."""
    written, read = _definition(written, writer_named), _definition(read, reader_named)
    if isinstance(written, list) or isinstance(read, list):
        return True
    written_kind, read_kind = _kind(written), _kind(read)
    if written_kind in _NAMED_FAMILY and read_kind in _NAMED_FAMILY:
        if written_kind == read_kind == "fixed" and written.get("size") != read.get("size"):
            return False
        return _same_name(written, read)
    if written_kind in _NAMED_FAMILY or read_kind in _NAMED_FAMILY:
        return False
    if written_kind == read_kind == "array":
        return _matches(written["items"], read["items"], writer_named, reader_named)
    if written_kind == read_kind == "map":
        return _matches(written["values"], read["values"], writer_named, reader_named)
    return bool(written_kind == read_kind or read_kind in _PROMOTED.get(written_kind, ()))


def _logical_change(written: Any, read: Any, where: str) -> str | None:
    written_meaning, read_meaning = _meaning(written), _meaning(read)
    if written_meaning is None or read_meaning is None or written_meaning[0] == read_meaning[0]:
        return None
    return (
        f"field {where or '(the record)'}: written as {written_meaning[1]}, read as {read_meaning[1]}:"
        " the same number would land as another value"
    )


def _meaning(schema: Any) -> tuple[Any, str] | None:
    """A type's logical type, as compared (a decimal: its scale) and as said; None without one."""
    logical = schema.get(LOGICAL_TYPE) if isinstance(schema, dict) else None
    if logical is None:
        return None
    if logical == "decimal":
        scale = schema.get("scale", 0)
        return ("decimal", scale), f"decimal({schema.get('precision')}, {scale})"
    return logical, str(logical)


def _json_form(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _json_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_form(item) for item in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


def encode(parsed: ParsedSchema, record: Any) -> bytes:
    """``record`` in the JSON converter's form (base64 bytes) as the Avro binary body of ``parsed``
    (:func:`parse_writer_schema`: full names, so that a union's record branch can be named to fastavro)."""
    if isinstance(parsed, dict) and "__named_schemas" in parsed:
        named = dict(parsed["__named_schemas"])
    else:  # a top-level union or primitive: its named types where they are defined
        named = {definition["name"]: definition for definition in _named_types(parsed)}
    sink = io.BytesIO()
    fastavro.schemaless_writer(sink, parsed, _avro_form(parsed, record, named))
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
    """A union value: text stays text when the union has a string branch; an object goes by the record branch
    whose fields it fills (:func:`_record_branch`); otherwise by the first non-null branch that converts it (base64
    text to bytes) into a value that branch takes, or as it is (fastavro picks). A record branch converts any object
    into one holding only its fields: taken unchecked, a map's object was written as that record, its keys lost."""
    if isinstance(value, str) and any(_is_text(branch) for branch in branches):
        return value
    if isinstance(value, dict) and (chosen := _record_branch(branches, value, named)) is not None:
        return chosen  # fastavro's notation (name, value): written as that branch
    for branch in branches:
        if branch != "null" and (converted := _fitted(branch, value, named)) is not None and converted is not value:
            return converted
    return value


def _fitted(branch: Any, value: Any, named: dict[str, Any]) -> Any:
    """``value`` in ``branch``'s form when that branch takes it (fastavro's check, as its writer picks a branch),
    else None: text that is no base64 for the branch's bytes is another branch's."""
    try:
        converted = _avro_form(branch, value, named)
    except ValueError:
        return None
    return converted if fastavro_validate(converted, branch, named, "", False, {}) else None


def _record_branch(branches: list[Any], value: dict[str, Any], named: dict[str, Any]) -> tuple[str, Any] | None:
    """The record branch an object was made as, by name, and the object in its form: the first whose fields are
    exactly its keys and whose types take its values (``{x: 1.5}`` is not ``A{x: long}``), or None (then fastavro
    picks among the branches: a map's, an object with fewer keys). Left to its first record branch that converts
    it, the object lost the keys that branch lacks (``{x, y}`` written as ``A{x}`` of ``[A{x}, B{x, y}]``) or was
    refused (another branch's keys); left to fastavro, it could gain a field (an earlier branch's default)."""
    for branch in branches:
        record = named.get(branch) if isinstance(branch, str) else branch
        if (
            isinstance(record, dict)
            and record.get("type") in ("record", "error")
            and value.keys() == {item["name"] for item in record["fields"]}
            and (converted := _fitted(record, value, named)) is not None
        ):
            return record["name"], converted
    return None
