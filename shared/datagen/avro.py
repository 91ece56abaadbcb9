"""Parse an Avro schema (as Datagen reads it) into a small typed tree, checking its ``arg.properties``.

Every problem raises :class:`SchemaProblem` naming where in the schema it is (``address.city``),
so a connector config can be rejected at indexing with the field and the option at fault.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from shared.datagen.regex_gen import RegexError, _Alt, _Chars, _Repeat, _Seq, parse_regex
from shared.errors import StreamingPocError
from shared.source_model import MAX_TIMESTAMP_MS

PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
NUMERIC = ("int", "long", "float", "double")
INT_BOUNDS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
FLOAT_MAX = {"float": 3.4028234663852886e38, "double": 1.7976931348623157e308}
# What a timestamp or date can be and still be a date the lake can store: years 1 to 9999. A landed
# timestamp outside them fails every compaction of its hour (Python, Spark and .NET hold no such date).
MIN_TIMESTAMP_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
MIN_DATE_DAYS, MAX_DATE_DAYS = -719_162, 2_932_896  # 0001-01-01 and 9999-12-31, in days from 1970-01-01
LOGICAL_BOUNDS: dict[str, tuple[int, int]] = {
    "timestamp-millis": (MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS),
    "local-timestamp-millis": (MIN_TIMESTAMP_MS, MAX_TIMESTAMP_MS),
    "timestamp-micros": (MIN_TIMESTAMP_MS * 1000, MAX_TIMESTAMP_MS * 1000 + 999),
    "local-timestamp-micros": (MIN_TIMESTAMP_MS * 1000, MAX_TIMESTAMP_MS * 1000 + 999),
    "date": (MIN_DATE_DAYS, MAX_DATE_DAYS),
    "time-millis": (0, 86_399_999),  # a time of day: Avro's milliseconds after midnight
    "time-micros": (0, 86_399_999_999),
}
LOGICAL_SPANS = {"time-millis": "a time of day", "time-micros": "a time of day"}  # the rest: years 1 to 9999
# A decimal lands as a double: with at most 308 digits every value it holds is finite there.
MAX_DECIMAL_PRECISION = 308
# How deep a schema's JSON may nest (about 30 levels of records): the model and its validators recurse per level.
MAX_SCHEMA_DEPTH = 100
ITERATION_HORIZON = 2**63  # records a sequence must be able to run without a double overflowing
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")

# Which arg.properties annotations Avro Random Generator honours on which type.
ANNOTATIONS: dict[str, frozenset[str]] = {
    "null": frozenset({"options"}),
    "boolean": frozenset({"options", "iteration", "odds"}),
    "int": frozenset({"options", "range", "iteration"}),
    "long": frozenset({"options", "range", "iteration"}),
    "float": frozenset({"options", "range", "iteration"}),
    "double": frozenset({"options", "range", "iteration"}),
    "bytes": frozenset({"options", "length", "range"}),  # range only for the decimal logical type
    "string": frozenset({"options", "length", "regex", "prefix", "suffix", "iteration"}),
    "array": frozenset({"options", "length"}),
    "map": frozenset({"options", "length", "keys"}),
    "enum": frozenset({"options"}),
    "fixed": frozenset({"options"}),
    "record": frozenset({"options"}),
    "union": frozenset({"options"}),
}
KEY_ANNOTATIONS = frozenset({"options", "length", "regex", "prefix", "suffix"})


class SchemaProblem(StreamingPocError):
    """An Avro schema or one of its ``arg.properties`` that this stand-in cannot honour."""

    def __init__(self, where: str, message: str) -> None:
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(eq=False)
class AvroType:
    """One node of a schema. ``props`` is its ``arg.properties`` (already checked)."""

    kind: str  # a primitive, or record | enum | array | map | fixed | union
    path: str
    props: dict[str, Any] = field(default_factory=dict)
    logical: str | None = None
    name: str = ""  # records, enums, fixed
    fields: list[AvroField] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    items: AvroType | None = None  # arrays; maps' values
    branches: list[AvroType] = field(default_factory=list)
    size: int = 0  # fixed
    precision: int = 0  # decimal
    scale: int = 0
    once_per_record: bool = True  # generated exactly once per top-level record (iteration can use the index)

    @property
    def nullable(self) -> bool:
        return self.kind == "null" or (self.kind == "union" and any(b.kind == "null" for b in self.branches))

    @property
    def non_null(self) -> list[AvroType]:
        return [b for b in self.branches if b.kind != "null"] if self.kind == "union" else [self]

    @property
    def described(self) -> str:
        """``an int``, ``a long (timestamp-millis)``: the type as messages name it."""
        kind = f"{self.kind} ({self.logical})" if self.logical else self.kind
        return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def value_bounds(node: AvroType) -> tuple[int, int]:
    """The smallest and largest value (inclusive) an int or long ``node`` may hold: its Avro type's range,
    narrowed for a timestamp or date to years 1 to 9999 and for a time to one day. The model enforces it and the
    generator stays in it."""
    low, high = INT_BOUNDS[node.kind]
    return LOGICAL_BOUNDS.get(node.logical or "", (low, high))


def real_bounds(bounds: dict[str, Any]) -> tuple[float, float]:
    """The span ``[low, high)`` a float or double ``range`` draws from: a missing end is 1e6 from the other
    (or -1e6..1e6 with neither)."""
    low = float(bounds.get("min", -1e6 if "max" not in bounds else bounds["max"] - 1e6))
    high = float(bounds.get("max", low + 2e6 if "min" not in bounds else low + 1e6))
    return low, high


def decimal_bounds(node: AvroType) -> tuple[int, int]:
    """The unscaled values ``[low, high)`` a decimal draws from: its ``range`` within what its precision holds."""
    bounds = node.props.get("range", {})
    largest = 10**node.precision - 1
    scale = 10**node.scale
    low = int(Decimal(str(bounds["min"])) * scale) if "min" in bounds else -largest
    high = int(Decimal(str(bounds["max"])) * scale) if "max" in bounds else largest + 1  # exclusive
    return max(low, -largest), min(high, largest + 1)


NO_DEFAULT: Any = object()  # a field whose schema gives no default


@dataclass(eq=False)
class AvroField:
    name: str
    type: AvroType
    default: Any = NO_DEFAULT  # the schema's JSON default: what a record written without the field reads
    aliases: tuple[str, ...] = ()  # earlier names of the field: a record written with one still reads


def parse_schema(schema: Any) -> AvroType:
    """The typed tree of a top-level record schema (Datagen needs a record at the top)."""
    depth = _json_depth(schema)
    if depth > MAX_SCHEMA_DEPTH:
        raise SchemaProblem("", f"the schema nests {depth} levels of JSON deep, over {MAX_SCHEMA_DEPTH}")
    named: dict[str, AvroType] = {}
    root = _parse(schema, "", named, namespace="", once=True)
    if root.kind != "record":
        raise SchemaProblem("", f"the top-level schema must be a record, not {root.kind}")
    _check_generated_values(root)
    check_largest_record(root)
    return root


def _json_depth(value: Any) -> int:
    """How many objects and lists deep ``value`` nests, counted without recursing."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            pending.extend((child, depth + 1) for child in item)
    return deepest


# The largest record a schema may generate, as compact JSON (what a JSON source sends; an Avro source's options
# count at their Avro size where it is larger, ``avro_bytes``): 960 KiB, under librdkafka's default
# message.max.bytes of 1,000,000 (and Event Hubs' 1 MiB) with room for the key, the headers and the message's
# framing. A bigger record could never be sent, and the generator would retry its tick forever.
MAX_RECORD_JSON_BYTES = 960 * 1024
DEFAULT_LENGTH_MAX = 15  # largest of Avro Random Generator's default length 8..16 (max exclusive)
_SCALAR_JSON = {"null": 4, "boolean": 5, "int": 11, "long": 20, "float": 24, "double": 24}  # "-1.7976931348623157e+308"


@dataclass
class _Sizing:
    """What sizing a schema's largest record gathers: each length's, regex's or options' bytes in it (``(bytes,
    where, option)``), and the options' largest values as a record sends them (``option_bytes``, by ``id`` of
    their node: an ``int`` on a ``double`` is sent as ``0.0``, a record option with its defaults filled in)."""

    contributions: list[tuple[int, str, str]] = field(default_factory=list)
    option_bytes: Mapping[int, int] = field(default_factory=dict)


def check_largest_record(root: AvroType, option_bytes: Mapping[int, int] | None = None, *, avro: bool = False) -> None:
    """Refuse a schema whose largest record, as JSON, is over :data:`MAX_RECORD_JSON_BYTES`, naming the ``length``
    (or ``regex``, or ``options``) that contributes most to it: every length is taken at its maximum, nested ones
    multiplied, and each byte is counted for the innermost length, regex or options that makes it; options at
    ``option_bytes`` (by ``id`` of their node) when ``shared.datagen.source`` measured them as sent (``avro``: as
    JSON or in the Avro body, whichever is larger)."""
    sizing = _Sizing(option_bytes=option_bytes or {})
    largest = _largest_json(root, 1, sizing)
    contributions = sizing.contributions
    if largest <= MAX_RECORD_JSON_BYTES:
        return
    limit = f"{MAX_RECORD_JSON_BYTES:,} bytes, the most a generated record may have (a Kafka message holds 1,000,000)"
    unit = "bytes as JSON or Avro" if avro else "bytes of JSON"
    if not contributions:
        raise SchemaProblem("", f"a record can reach {largest:,} {unit}, over {limit}")
    _, where, option = max(contributions)
    raise SchemaProblem(where, f"{option} lets a record reach {largest:,} {unit}, over {limit}: lower it")


_AVRO_SCALAR = {"null": 0, "boolean": 1, "int": 5, "long": 10, "float": 4, "double": 8, "enum": 5}
_VARINT = 10  # the most bytes a long (a length, a count, a union's branch) takes in Avro


def avro_bytes(node: AvroType, value: Any) -> int:
    """The most bytes ``value`` (as a record sends it, in JSON form) can take in an Avro body of ``node``. It can be
    more than its JSON: ``0.0`` is 3 bytes of JSON and 8 as a double, ``null`` of a union a byte, a union's ``0``
    two."""
    kind = node.kind
    if kind == "union":
        return _VARINT + max(avro_bytes(branch, value) for branch in node.branches)
    if kind in _AVRO_SCALAR:
        return _AVRO_SCALAR[kind]
    if kind == "fixed":
        return node.size
    if kind == "record":
        fields = value if isinstance(value, dict) else {}
        return sum(avro_bytes(item.type, fields.get(item.name)) for item in node.fields)
    if kind in ("array", "map"):
        assert node.items is not None
        entries = value.items() if isinstance(value, dict) else enumerate(value if isinstance(value, list) else ())
        key = _VARINT if kind == "map" else 0
        return 2 * _VARINT + sum(
            key + len(str(name).encode()) * (kind == "map") + avro_bytes(node.items, item) for name, item in entries
        )
    text = value if isinstance(value, str) else json.dumps(value)  # string, bytes (base64 text), a decimal
    decimal = max(node.size, (10**node.precision).bit_length() // 8 + 1) if node.logical == "decimal" else 0
    return _VARINT + max(len(text.encode()), decimal)


def largest_json(node: AvroType) -> int:
    """The most bytes ``node``'s value can take as compact JSON: at least the UTF-8 bytes of its text (a message
    key is a field's text, and a string's JSON adds its quotes and escapes to it)."""
    return _largest_json(node, 1, _Sizing())


def _largest_json(node: AvroType, times: int, sizing: _Sizing) -> int:
    """The most bytes ``node``'s value can take as compact JSON; ``times``: how often one record holds it."""
    props = node.props
    where = f"{node.path} arg.properties" if node.path else "arg.properties"
    if "options" in props:
        written = max(len(json.dumps(o, separators=(",", ":"), ensure_ascii=False).encode()) for o in props["options"])
        size = max(written, sizing.option_bytes.get(id(node), 0))
        sizing.contributions.append((times * size, where, "options"))
        return size
    if "iteration" in props:
        return _iteration_string_json(props["iteration"]) if node.kind == "string" else _SCALAR_JSON[node.kind]
    kind = node.kind
    if kind == "record":
        return 1 + sum(len(f.name) + 4 + _largest_json(f.type, times, sizing) for f in node.fields)
    if kind == "union":
        return max(_largest_json(branch, times, sizing) for branch in node.branches)
    if kind in ("array", "map"):
        assert node.items is not None
        count = _largest_length(props)
        nested = len(sizing.contributions)
        entry = 1 + _largest_json(node.items, times * count, sizing)
        if kind == "map":
            entry += 1 + _largest_string(props.get("keys", {}), f"{where}.keys", times * count, sizing.contributions)
        size = 2 + count * entry
        if "length" in props:  # what the lengths nested in it do not already account for
            inner = sum(c[0] for c in sizing.contributions[nested:])
            sizing.contributions.append((times * size - inner, where, "length"))
        return size
    if kind == "enum":
        return 2 + max(len(symbol) for symbol in node.symbols)
    if kind == "string":
        return 38 if node.logical == "uuid" else _largest_string(props, where, times, sizing.contributions)
    if kind in ("bytes", "fixed"):
        if node.logical == "decimal":
            count = max(node.size, (10**node.precision).bit_length() // 8 + 1)
        else:
            count = node.size if kind == "fixed" else _largest_length(props)
        size = 2 + 4 * -(-count // 3)  # base64
        if kind == "bytes" and "length" in props and node.logical != "decimal":
            sizing.contributions.append((times * size, where, "length"))
        return size
    return _SCALAR_JSON[kind]


def _largest_string(props: dict[str, Any], where: str, times: int, contributions: list[tuple[int, str, str]]) -> int:
    if "options" in props:
        return max(len(json.dumps(str(o), ensure_ascii=False).encode()) for o in props["options"])
    affixes = sum(
        len(json.dumps(str(props.get(key, "")), ensure_ascii=False).encode()) - 2 for key in ("prefix", "suffix")
    )
    if "regex" in props:
        size = 2 + affixes + _largest_match(parse_regex(props["regex"]))
        contributions.append((times * size, where, "regex"))
    else:
        size = 2 + affixes + _largest_length(props)
        if "length" in props:
            contributions.append((times * size, where, "length"))
    return size


def _largest_length(props: dict[str, Any]) -> int:
    """The largest count ``length`` allows (as ``generate`` draws it): a number, or below ``max``."""
    length = props.get("length")
    if isinstance(length, int):
        return length
    if isinstance(length, dict):
        if "max" in length:
            return int(length["max"]) - 1
        return int(length["min"]) + DEFAULT_LENGTH_MAX - 8
    return DEFAULT_LENGTH_MAX


def _largest_match(tree: Any) -> int:
    """The most bytes of JSON a string matching a parsed regex can take (an escaped character takes two)."""
    if isinstance(tree, _Chars):
        return max(_largest_char(first, last) for first, last in tree.ranges)
    if isinstance(tree, _Seq):
        return sum(_largest_match(item) for item in tree.items)
    if isinstance(tree, _Alt):
        return max((_largest_match(option) for option in tree.options), default=0)
    assert isinstance(tree, _Repeat)
    return tree.high * _largest_match(tree.item)


def _largest_char(first: int, last: int) -> int:
    """The most bytes of JSON one character from ``first`` to ``last`` (code points) takes: UTF-8's length grows
    with the code point, and below 128 an escaped one (a quote, a control character) takes two or six."""
    above = 2 + (last >= 0x800) + (last >= 0x10000) if last >= 0x80 else 0
    below = range(first, min(last, 0x7F) + 1)
    return max([above, *(len(json.dumps(chr(code), ensure_ascii=False).encode()) - 2 for code in below)])


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _parse(schema: Any, path: str, named: dict[str, AvroType], *, namespace: str, once: bool) -> AvroType:
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return AvroType(schema, path, once_per_record=once)
        reference = named.get(_full_name(schema, namespace)) or named.get(schema)
        if reference is None:
            raise SchemaProblem(path, f"unknown type {schema!r}")
        if reference.kind == "record":
            raise SchemaProblem(path, f"record {schema!r} is used twice or recursively; inline a copy instead")
        return reference
    if isinstance(schema, list):
        node = AvroType("union", path, once_per_record=once)
        # one branch's value per value of the union: an iteration there counts by the record as the union does
        node.branches = [_parse(b, path, named, namespace=namespace, once=once) for b in schema]
        if not node.branches:
            raise SchemaProblem(path, "a union needs at least one branch")
        unnamed = [branch.kind for branch in node.branches if branch.kind not in ("record", "enum", "fixed")]
        if len(unnamed) != len(set(unnamed)):
            raise SchemaProblem(path, f"a union holds two branches of one type: {unnamed}")
        if all(branch.kind == "null" for branch in node.branches):
            raise SchemaProblem(path, "a union needs a branch other than null")
        return node
    if not isinstance(schema, dict) or "type" not in schema:
        raise SchemaProblem(path, f"not an Avro schema: {schema!r}")
    kind = schema["type"]
    if isinstance(kind, (list, dict)) or (isinstance(kind, str) and kind not in ANNOTATIONS):
        # {"type": {...}} or {"type": "someNamedType"}: a wrapper around another schema
        inner = _parse(kind, path, named, namespace=namespace, once=once)
        props = _props(schema, inner.kind, path)
        if props:
            inner = _with_props(inner, props, path)
        return inner
    node = AvroType(kind, path, once_per_record=once)
    namespace = str(schema.get("namespace") or namespace)
    if kind in ("record", "enum", "fixed"):
        name = schema.get("name")
        if not isinstance(name, str) or not _NAME.match(name.rsplit(".", 1)[-1]):
            raise SchemaProblem(path, f"a {kind} needs a valid name, got {name!r}")
        node.name = name
        named[_full_name(name, namespace)] = node
    if kind == "record":
        fields = schema.get("fields")
        if not isinstance(fields, list) or not fields:
            raise SchemaProblem(path, "a record needs a non-empty fields list")
        seen: set[str] = set()
        for item in fields:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str) or not _NAME.match(name):
                raise SchemaProblem(path, f"field name {name!r} is not a valid Avro name")
            if name in seen:
                raise SchemaProblem(path, f"field {name!r} appears twice")
            seen.add(name)
            child_path = f"{path}.{name}" if path else name
            if "type" not in item:
                raise SchemaProblem(child_path, "field has no type")
            child = _parse(item["type"], child_path, named, namespace=namespace, once=once)
            field_props = _props(item, child.kind, child_path)
            if field_props:
                child = _with_props(child, field_props, child_path)
            aliases = item.get("aliases", [])
            if not isinstance(aliases, list) or not all(isinstance(alias, str) for alias in aliases):
                raise SchemaProblem(child_path, "aliases must be a list of names")
            node.fields.append(AvroField(name, child, item.get("default", NO_DEFAULT), tuple(aliases)))
    elif kind == "enum":
        symbols = schema.get("symbols")
        if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
            raise SchemaProblem(path, "an enum needs a non-empty list of string symbols")
        node.symbols = list(symbols)
    elif kind == "array":
        if "items" not in schema:
            raise SchemaProblem(path, "an array needs items")
        node.items = _parse(schema["items"], f"{path}[]", named, namespace=namespace, once=False)
    elif kind == "map":
        if "values" not in schema:
            raise SchemaProblem(path, "a map needs values")
        node.items = _parse(schema["values"], f"{path}{{}}", named, namespace=namespace, once=False)
    elif kind == "fixed":
        size = schema.get("size")
        if not isinstance(size, int) or size < 0:
            raise SchemaProblem(path, "a fixed needs a size")
        node.size = size
    _logical(node, schema)
    node.props = _props(schema, kind, path)
    return node


def _with_props(node: AvroType, props: dict[str, Any], path: str) -> AvroType:
    if node.props:
        raise SchemaProblem(path, "arg.properties given twice (on the field and on its type)")
    copy = AvroType(**{**node.__dict__, "props": props})
    return copy


def _logical(node: AvroType, schema: dict[str, Any]) -> None:
    logical = schema.get("logicalType")
    if logical is None:
        return
    valid = {
        "decimal": ("bytes", "fixed"),
        "uuid": ("string",),
        "date": ("int",),
        "time-millis": ("int",),
        "time-micros": ("long",),
        "timestamp-millis": ("long",),
        "timestamp-micros": ("long",),
        "local-timestamp-millis": ("long",),
        "local-timestamp-micros": ("long",),
    }
    if logical not in valid or node.kind not in valid[logical]:
        return  # Avro ignores unknown logical types: the underlying type stands
    node.logical = logical
    if logical == "decimal":
        precision, scale = schema.get("precision"), schema.get("scale", 0)
        if not isinstance(precision, int) or precision < 1 or not isinstance(scale, int) or not 0 <= scale <= precision:
            raise SchemaProblem(node.path, "decimal needs precision >= 1 and 0 <= scale <= precision")
        if precision > MAX_DECIMAL_PRECISION:
            raise SchemaProblem(
                node.path,
                f"decimal precision {precision} is over {MAX_DECIMAL_PRECISION}: it lands as a double, "
                "and no double holds a number of more than 308 digits",
            )
        if node.kind == "fixed" and (10**precision - 1).bit_length() + 1 > 8 * node.size:
            raise SchemaProblem(node.path, f"a fixed of {node.size} bytes cannot hold precision {precision}")
        node.precision, node.scale = precision, scale


def _props(schema: dict[str, Any], kind: str, path: str) -> dict[str, Any]:
    props = schema.get("arg.properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise SchemaProblem(path, "arg.properties must be an object")
    allowed = ANNOTATIONS.get(kind, frozenset())
    for key in props:
        if key not in allowed:
            raise SchemaProblem(
                path, f"arg.properties.{key} is not supported on {kind} (allowed: {', '.join(sorted(allowed))})"
            )
    _check_props(props, kind, path)
    return dict(props)


def _number(value: Any) -> bool:
    """A finite JSON number (Python's json also reads ``NaN`` and ``Infinity``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return isinstance(value, int) or math.isfinite(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def lone_surrogate(value: Any) -> str | None:
    """The first lone surrogate (JSON reads ``"\\ud800"``, but it is not text: no record holding it can be sent)
    in a string, or in the strings and keys of a list or object however deep; None if there is none."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as error:
                return item[error.start]
        elif isinstance(item, dict):
            pending.extend(reversed([*item.keys(), *item.values()]))
        elif isinstance(item, list):
            pending.extend(reversed(item))
    return None


def _not_text(what: str, surrogate: str) -> str:
    return f"{what} holds a lone surrogate {surrogate!r}, which is not text (a \\ud800-\\udfff escape is half a pair)"


def _check_props(props: dict[str, Any], kind: str, path: str) -> None:
    where = f"{path} arg.properties" if path else "arg.properties"
    if "options" in props:
        options = props["options"]
        if isinstance(options, dict):
            raise SchemaProblem(where, "options from a file are not supported; list them inline")
        if not isinstance(options, list) or not options:
            raise SchemaProblem(where, "options must be a non-empty list")
        for number, option in enumerate(options):
            if (surrogate := lone_surrogate(option)) is not None:
                raise SchemaProblem(where, _not_text(f"options[{number}]", surrogate))
    if "range" in props:
        bounds = props["range"]
        if not isinstance(bounds, dict) or not bounds or set(bounds) - {"min", "max"}:
            raise SchemaProblem(where, 'range must be {"min": ..., "max": ...} (at least one)')
        if not all(_number(v) for v in bounds.values()):
            raise SchemaProblem(where, "range min and max must be finite numbers")
        if kind in ("int", "long") and not all(_whole(v) for v in bounds.values()):
            raise SchemaProblem(where, f"range min and max of an {kind} must be whole numbers")
        if "min" in bounds and "max" in bounds and bounds["min"] >= bounds["max"]:
            raise SchemaProblem(where, "range min must be below max (max is exclusive)")
    if "iteration" in props:
        _check_iteration(props["iteration"], kind, where)
    if "length" in props:
        length = props["length"]
        if isinstance(length, dict):
            if not length or set(length) - {"min", "max"} or not all(isinstance(v, int) for v in length.values()):
                raise SchemaProblem(where, 'length must be a number or {"min": n, "max": m}')
            if length.get("min", 0) < 0 or ("max" in length and length["max"] <= length.get("min", 0)):
                raise SchemaProblem(where, "length needs 0 <= min < max (max is exclusive)")
        elif not isinstance(length, int) or isinstance(length, bool) or length < 0:
            raise SchemaProblem(where, "length must be a whole number >= 0")
    if "regex" in props:
        if not isinstance(props["regex"], str):
            raise SchemaProblem(where, "regex must be a string")
        if (surrogate := lone_surrogate(props["regex"])) is not None:
            raise SchemaProblem(where, _not_text("regex", surrogate))
        try:
            tree = parse_regex(props["regex"])
        except RegexError as error:
            raise SchemaProblem(where, f"regex {props['regex']!r}: {error}") from None
        if _makes_surrogates(tree):
            raise SchemaProblem(
                where, f"regex {props['regex']!r} can make a lone surrogate (U+D800 to U+DFFF), which is not text"
            )
    for key in ("prefix", "suffix"):
        if key in props and not isinstance(props[key], str):
            raise SchemaProblem(where, f"{key} must be a string")
        if key in props and (surrogate := lone_surrogate(props[key])) is not None:
            raise SchemaProblem(where, _not_text(key, surrogate))
    if "odds" in props and not (_number(props["odds"]) and 0 <= props["odds"] <= 1):
        raise SchemaProblem(where, "odds must be a number from 0 to 1")
    if "keys" in props:
        keys = props["keys"]
        if not isinstance(keys, dict) or set(keys) - KEY_ANNOTATIONS:
            raise SchemaProblem(where, f"keys takes {', '.join(sorted(KEY_ANNOTATIONS))}")
        _check_props(keys, "string", f"{path} keys")


def _check_iteration(iteration: Any, kind: str, where: str) -> None:
    if not isinstance(iteration, dict) or "start" not in iteration:
        raise SchemaProblem(where, "iteration needs a start")
    unknown = set(iteration) - {"start", "restart", "step", "initial"}
    if unknown:
        raise SchemaProblem(where, f"iteration does not know {', '.join(sorted(unknown))}")
    if kind == "boolean":
        if set(iteration) != {"start"} or not isinstance(iteration["start"], bool):
            raise SchemaProblem(where, "a boolean iteration takes only a true/false start")
        return
    if not all(_number(v) for v in iteration.values()):
        raise SchemaProblem(where, "iteration values must be finite numbers")
    if iteration.get("restart") == iteration["start"]:
        raise SchemaProblem(where, "iteration restart must differ from start")
    if iteration.get("step") == 0:
        raise SchemaProblem(where, "iteration step must not be 0")
    if kind in ("int", "long"):  # exact: wraps around within the type, as Java's int and long do
        if not all(_whole(v) for v in iteration.values()):
            raise SchemaProblem(where, f"iteration values of an {kind} must be whole numbers")
        return
    # floats, doubles and strings count in doubles: the sequence must not overflow one, however long it runs
    limit = FLOAT_MAX.get(kind, FLOAT_MAX["double"])
    values: dict[str, Any] = {"initial": iteration["start"], "step": 1, "restart": 0, **iteration}
    start, initial, step, restart = values["start"], values["initial"], values["step"], values["restart"]
    try:
        reach = abs(float(initial)) + ITERATION_HORIZON * abs(float(step))
        ends = max(abs(float(start)), abs(float(restart)))
    except OverflowError:
        reach = ends = math.inf
    if reach > limit or ends > limit:
        raise SchemaProblem(
            where,
            f"iteration can pass {limit:.8g}, the largest {'double' if kind == 'string' else kind}, within "
            f"{ITERATION_HORIZON:,} records (initial + records x step): lower its values",
        )


def _iteration_string_json(iteration: dict[str, Any]) -> int:
    """The most bytes a string iteration's value takes as JSON: a whole number is written with every digit
    (``generate.iteration_value``: 1e300 is 301 characters), any other double in at most 24."""
    values: dict[str, Any] = {"initial": iteration["start"], "step": 1, "restart": 0, **iteration}
    reach = abs(float(values["initial"])) + ITERATION_HORIZON * abs(float(values["step"]))
    largest = max(reach, abs(float(values["start"])), abs(float(values["restart"])))
    return 2 + max(24, 1 + len(str(int(largest))))  # quotes, and a sign


def _makes_surrogates(tree: Any) -> bool:
    if isinstance(tree, _Chars):
        return any(first <= 0xDFFF and last >= 0xD800 for first, last in tree.ranges)
    if isinstance(tree, _Seq):
        return any(_makes_surrogates(item) for item in tree.items)
    if isinstance(tree, _Alt):
        return any(_makes_surrogates(option) for option in tree.options)
    return _makes_surrogates(tree.item)


def _check_generated_values(node: AvroType) -> None:
    """Refuse an ``arg.properties`` with which the generator makes no value (an empty range) or one the schema's
    own model refuses: every tick of such a source would fail, and the timer retries a tick forever."""
    where = f"{node.path} arg.properties" if node.path else "arg.properties"
    props = node.props
    if node.kind in ("int", "long"):
        _check_integer_values(node, where)
    elif node.kind in ("float", "double") and "range" in props:
        limit = FLOAT_MAX[node.kind]
        try:
            low, high = real_bounds(props["range"])
        except OverflowError:
            low, high = -math.inf, math.inf
        if not -limit <= low <= high <= limit:
            raise SchemaProblem(
                where, f"range draws from {low:.8g} to {high:.8g}: {node.described} holds -{limit:.8g} to {limit:.8g}"
            )
    elif node.logical == "decimal" and "range" in props:
        low, high = decimal_bounds(node)
        if low >= high:
            largest = Decimal(10**node.precision - 1).scaleb(-node.scale)
            raise SchemaProblem(
                where,
                f"range {json.dumps(props['range'])} leaves nothing to draw: a decimal of precision {node.precision} "
                f"and scale {node.scale} holds -{largest} to {largest}",
            )
    elif node.logical == "uuid" and "iteration" in props:
        raise SchemaProblem(where, "iteration makes numbers, not the UUIDs a uuid string holds")
    for item in node.fields:
        _check_generated_values(item.type)
    for branch in node.branches:
        _check_generated_values(branch)
    if node.items is not None:
        _check_generated_values(node.items)


def _check_integer_values(node: AvroType, where: str) -> None:
    low, high = value_bounds(node)
    span = LOGICAL_SPANS.get(node.logical or "", "years 1 to 9999") if node.logical in LOGICAL_BOUNDS else ""
    holds = f"{node.described} holds {low:,} to {high:,}" + (f" ({span})" if span else "")
    bounds = node.props.get("range")
    if bounds is not None:
        type_low, type_high = INT_BOUNDS[node.kind]
        first, last = bounds.get("min", type_low), bounds.get("max", type_high + 1)  # as the generator draws
        if first >= last:
            raise SchemaProblem(
                where, f"range leaves nothing to draw: min {first:,} is not below max {last:,} ({holds})"
            )
        if not low <= first < last <= high + 1:
            raise SchemaProblem(
                where,
                f"range draws from {first:,} to {last:,} (max exclusive; a missing end is the {node.kind}'s): {holds}",
            )
    iteration = node.props.get("iteration")
    if iteration is not None:
        limits = {"start": (low, high), "restart": (low - 1, high + 1)}  # restart is never reached itself
        if "restart" not in iteration:
            limits["initial"] = (low, high)  # with a restart, initial wraps between start and restart
        for key, (first, last) in limits.items():
            if key in iteration and not first <= iteration[key] <= last:
                raise SchemaProblem(where, f"iteration {key} {iteration[key]:,} is outside what {holds}")
