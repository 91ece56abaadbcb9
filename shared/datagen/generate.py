"""Random records that follow an Avro schema and its ``arg.properties``, as Avro Random Generator makes them.

Values come out in the wire form of Datagen's JsonConverter with ``schemas.enable=false``: field
order of the schema, unions as plain values, bytes/fixed/decimal as base64 text, timestamps and
dates as numbers. ``iteration`` counts from the absolute record index, so a sequence continues
across ticks and restarts (Datagen restores its generator's position from its source offsets).
"""

from __future__ import annotations

import base64
import math
import random
import string
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from shared.datagen.avro import FLOAT_MAX, INT_BOUNDS, AvroType, decimal_bounds, real_bounds, value_bounds
from shared.datagen.regex_gen import generate as regex_generate
from shared.datagen.regex_gen import parse_regex
from shared.source_model import epoch_ms

DEFAULT_LENGTH = (8, 16)  # Avro Random Generator's default length {min: 8, max: 16}, max exclusive
_LETTERS = string.ascii_letters + string.digits


class RecordGenerator:
    """Generates top-level records of one schema. Not thread-safe; one per call is cheap."""

    def __init__(self, root: AvroType) -> None:
        self.root = root
        self._regexes: dict[str, Any] = {}

    def records(self, rnd: random.Random, count: int, now: datetime, start_index: int) -> list[dict[str, Any]]:
        now_ms = epoch_ms(now) or 0  # exactly: a float product lands 9999-12-31T23:59:59.999999 past year 9999
        return [self._value(self.root, rnd, start_index + i, now_ms, {}) for i in range(count)]

    def _value(self, node: AvroType, rnd: random.Random, index: int, now_ms: int, counters: dict[int, int]) -> Any:
        props = node.props
        if "options" in props:
            return rnd.choice(props["options"])
        if "iteration" in props:
            if node.once_per_record:
                position = index
            else:  # inside an array, map or union: counts within this call
                position = counters.get(id(node), 0)
                counters[id(node)] = position + 1
            return iteration_value(node, position)
        kind = node.kind
        if kind == "record":
            return {f.name: self._value(f.type, rnd, index, now_ms, counters) for f in node.fields}
        if kind == "union":
            return self._value(rnd.choice(node.branches), rnd, index, now_ms, counters)
        if kind == "array":
            assert node.items is not None
            return [self._value(node.items, rnd, index, now_ms, counters) for _ in range(_length(props, rnd))]
        if kind == "map":
            assert node.items is not None
            keys = props.get("keys", {})
            return {
                self._string(keys, rnd): self._value(node.items, rnd, index, now_ms, counters)
                for _ in range(_length(props, rnd))
            }
        if kind == "enum":
            return rnd.choice(node.symbols)
        if kind == "null":
            return None
        if kind == "boolean":
            return rnd.random() < float(props.get("odds", 0.5))
        if kind in ("int", "long"):
            return self._integer(node, rnd, now_ms)
        if kind in ("float", "double"):
            return _real(node, rnd)
        if kind == "string":
            if node.logical == "uuid":
                return str(uuid.UUID(int=rnd.getrandbits(128), version=4))
            return self._string(props, rnd)
        if kind in ("bytes", "fixed"):
            if node.logical == "decimal":
                return _decimal(node, rnd, node.size if kind == "fixed" else 0)
            size = node.size if kind == "fixed" else _length(props, rnd)
            return base64.b64encode(rnd.randbytes(size)).decode("ascii")
        raise ValueError(f"{node.path}: cannot generate {kind}")

    def _integer(self, node: AvroType, rnd: random.Random, now_ms: int) -> int:
        bounds = node.props.get("range")
        low, high = INT_BOUNDS[node.kind]
        if bounds is None:
            logical = node.logical
            if logical in ("timestamp-millis", "local-timestamp-millis"):
                return now_ms
            if logical in ("timestamp-micros", "local-timestamp-micros"):
                return now_ms * 1000
            if logical == "date":
                return now_ms // 86_400_000
            if logical == "time-millis":
                return now_ms % 86_400_000
            if logical == "time-micros":
                return (now_ms % 86_400_000) * 1000
            return rnd.randint(low, high)
        minimum = int(bounds.get("min", low))
        maximum = int(bounds.get("max", high + 1))  # exclusive
        return rnd.randrange(minimum, maximum)

    def _string(self, props: dict[str, Any], rnd: random.Random) -> str:
        if "options" in props:
            return str(rnd.choice(props["options"]))
        if "regex" in props:
            pattern = props["regex"]
            tree = self._regexes.get(pattern)
            if tree is None:
                tree = self._regexes[pattern] = parse_regex(pattern)
            text = regex_generate(tree, rnd)
        else:
            text = "".join(rnd.choice(_LETTERS) for _ in range(_length(props, rnd)))
        return f"{props.get('prefix', '')}{text}{props.get('suffix', '')}"


def iteration_value(node: AvroType, position: int) -> Any:
    """The ``position``-th value (0-based) of an ``iteration`` annotation.

    The first value is ``initial`` (default ``start``); each next adds ``step``; reaching
    ``restart`` wraps back to ``start``. ``step`` defaults to 1 (-1 when ``restart < start``).
    A boolean starts at ``start`` and alternates.
    """
    iteration = node.props["iteration"]
    start = iteration["start"]
    if node.kind == "boolean":
        return bool(start) if position % 2 == 0 else not start
    restart = iteration.get("restart")
    step = iteration.get("step", -1 if restart is not None and restart < start else 1)
    initial = iteration.get("initial", start)
    value = initial + position * step
    if restart is not None:
        span = restart - start
        value = start + (value - start) % span
    if node.kind in ("int", "long"):
        # overflows wrap, as Java's int and long do; a timestamp's or date's within the years 1 to 9999 it holds
        low, high = value_bounds(node)
        return (int(value) - low) % (high - low + 1) + low
    if node.kind == "string":
        return str(int(value)) if float(value).is_integer() else str(value)
    return float(value)


def _length(props: dict[str, Any], rnd: random.Random) -> int:
    length = props.get("length")
    if isinstance(length, int):
        return length
    low, high = DEFAULT_LENGTH
    if isinstance(length, dict):
        low = length.get("min", 0 if "max" in length else low)
        high = length.get("max", low + DEFAULT_LENGTH[1] - DEFAULT_LENGTH[0])
    return rnd.randrange(low, high)


def _real(node: AvroType, rnd: random.Random) -> float:
    limit = FLOAT_MAX[node.kind]
    low, high = real_bounds(node.props.get("range", {}))
    share, span = rnd.random(), high - low
    value = low + share * span if math.isfinite(span) else low * (1 - share) + high * share  # no overflow
    if value >= high:
        value = low
    if node.kind == "float":  # round-trip through 32 bits so the value is a float the schema can hold
        import struct

        value = struct.unpack("f", struct.pack("f", max(-limit, min(limit, value))))[0]
        if value >= high:
            value = low
    return value


def _decimal(node: AvroType, rnd: random.Random, size: int) -> str:
    """A decimal in range, with the schema's scale, as Connect's JsonConverter sends it: base64 of the
    big-endian two's-complement unscaled value (``decimal.format=BASE64``, the default)."""
    unscaled = rnd.randrange(*decimal_bounds(node))
    return base64.b64encode(decimal_bytes(unscaled, size)).decode("ascii")


def decimal_bytes(unscaled: int, size: int = 0) -> bytes:
    """Big-endian two's complement, minimal or (for a fixed) exactly ``size`` bytes."""
    needed = max(1, (unscaled.bit_length() + 8) // 8)
    return unscaled.to_bytes(max(size, needed), "big", signed=True)


def decimal_from_base64(text: str, scale: int) -> Decimal:
    return Decimal(int.from_bytes(base64.b64decode(text, validate=True), "big", signed=True)).scaleb(-scale)
