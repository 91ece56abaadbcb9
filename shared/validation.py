"""Step 1 of processing: decode and validate a batch's values against its source's model.

The whole batch goes through pydantic in one call: each value is parsed as JSON and validated
into a dict, and a value that fails comes back as its own bytes (a left-to-right union), so one
bad record never costs the batch its fast path. Only the failed values are validated again,
one by one, to name their exact reason. Pure: no I/O, never raises for bad data.

Avro sources pass a decoder (``shared.schema_registry.decoder``): values are decoded with their
writer schemas first (the decoder's only I/O is fetching a schema it has not seen), then the
decoded records are validated the same way, as Python objects.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cache
from itertools import compress
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from pydantic import BaseModel, Field, Json, TypeAdapter, ValidationError

from shared.dead_letters import DeadLetter, Reason
from shared.records import KafkaRecord
from shared.schema_registry.wire import HEADER_BYTES, MAGIC_BYTE
from shared.source_model import MAX_TIMESTAMP_MS, Row, Source, record_type, record_validator

if TYPE_CHECKING:
    from shared.schema_registry.decoder import AvroDecoder


@dataclass(slots=True)
class ValidatedBatch:
    """Valid events (dicts keyed by field name), the record each came from, and the rest as dead letters.

    ``received`` holds each event's record as received (JSON text) when that is not the record's
    value: for Avro, the decoded record. ``None`` means the values themselves.
    """

    events: list[Row] = field(default_factory=list)
    origins: list[KafkaRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    record_count: int = 0
    received: list[bytes] | None = None


def validate_batch(
    source: Source, records: Iterable[KafkaRecord], *, max_record_bytes: int, decoder: AvroDecoder | None = None
) -> ValidatedBatch:
    """Validate ``records`` in one pydantic call; each bad one becomes a :class:`DeadLetter` with its reason.

    With ``decoder`` (Avro sources) values are decoded first. Dead letters are in offset order per
    partition. Called once per invocation, before the transform.
    """
    records = list(records)
    values: list[Any] = [record.value for record in records]
    candidates, letters = records, list[DeadLetter]()
    if not _all_plain(records, values, max_record_bytes):  # the common case needs no screening
        candidates, values, letters = _screen(records, max_record_bytes)
    batch = ValidatedBatch(dead_letters=letters, record_count=len(records))
    if decoder is not None:
        _validate_decoded(source, decoder, candidates, values, batch)
        return batch
    model = source.model
    screened = len(letters)
    events = _validate_all(model, values)
    if set(map(type, events)) <= {dict}:  # every value valid: the common case, checked in a C loop
        batch.events, batch.origins = events, candidates
    else:
        bodies = _unframed(model, values, events)
        valid = [isinstance(event, dict) for event in events]
        batch.events, batch.origins = list(compress(events, valid)), list(compress(candidates, valid))
        if bodies:
            batch.received = [bodies.get(index, value) for index, value in enumerate(values) if valid[index]]
        letters.extend(
            _reason(model, record, bodies.get(index)) for index, record in enumerate(candidates) if not valid[index]
        )
    if screened and len(letters) > screened:
        in_offset_order(letters)
    return batch


def _validate_decoded(
    source: Source, decoder: AvroDecoder, records: list[KafkaRecord], values: list[Any], batch: ValidatedBatch
) -> None:
    """Decode Avro ``values`` as the source reads them (its schema: defaults, aliases, promotions), then
    validate the decoded records in one call (Python objects, not JSON)."""
    model = source.model
    decoded = decoder.decode(records, values, source.avro_schema)
    letters = batch.dead_letters
    letters.extend(decoded.letters)
    batch.received = []
    events = _validate_all_python(model, decoded.values)
    for record, value, text, event in zip(decoded.records, decoded.values, decoded.received, events, strict=True):
        if event is not value and type(event) is dict:
            batch.events.append(event)
            batch.origins.append(record)
            batch.received.append(text)
        else:
            letters.append(_reason_python(model, record, value))
    in_offset_order(letters)


@cache
def python_batch_validator(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    """Validates a list of decoded records: each valid one becomes a new dict, an invalid one stays itself."""
    item: Any = Annotated[record_type(model) | Any, Field(union_mode="left_to_right")]
    return TypeAdapter(list[item])


def _validate_all_python(model: type[BaseModel], values: list[Any]) -> list[Any]:
    """Each decoded record as a new dict when it is valid, else as it came."""
    return _each_or_itself(python_batch_validator(model), record_validator(model).validate_python, values)


def _each_or_itself(batch: TypeAdapter[list[Any]], validate_one: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    try:
        return batch.validate_python(values)
    except Exception:  # a model's own check raised something pydantic does not wrap: one by one
        results = []
        for value in values:
            try:
                results.append(validate_one(value))
            except Exception:
                results.append(value)
        return results


def _reason_python(model: type[BaseModel], record: KafkaRecord, value: Any) -> DeadLetter:
    try:
        record_validator(model).validate_python(value)
    except ValidationError as error:
        return _classify(record, b"", error)
    except Exception as error:
        return DeadLetter(record, Reason.SCHEMA, f"{type(error).__name__}: {error}")
    return DeadLetter(record, Reason.SCHEMA, "valid alone, but its batch failed validation")


def in_offset_order(letters: list[DeadLetter]) -> None:
    """Sort dead letters as their records came: by partition, then offset."""
    letters.sort(key=lambda letter: (letter.record.topic, letter.record.partition, letter.record.offset))


def _all_plain(records: list[KafkaRecord], values: list[bytes | None], max_record_bytes: int) -> bool:
    """True when every record has a value within the size limit and a timestamp a date can be built from."""
    if not all(values) or max(map(len, values), default=0) > max_record_bytes:  # type: ignore[arg-type]
        return False
    timestamps = list(map(attrgetter("timestamp_ms"), records))
    if None in timestamps:
        timestamps = [timestamp for timestamp in timestamps if timestamp is not None]
    return not timestamps or (min(timestamps) >= 0 and max(timestamps) <= MAX_TIMESTAMP_MS)


def _screen(records: list[KafkaRecord], max_record_bytes: int) -> tuple[list[KafkaRecord], list[Any], list[DeadLetter]]:
    """Records worth validating and their values; the rest as dead letters (no value, oversized)."""
    candidates: list[KafkaRecord] = []
    values: list[Any] = []
    letters: list[DeadLetter] = []
    for record in records:
        value = record.value
        timestamp_ms = record.timestamp_ms
        if timestamp_ms is not None and not 0 <= timestamp_ms <= MAX_TIMESTAMP_MS:
            record = dataclasses.replace(record, timestamp_ms=None)  # no date can be built from it
        if not value:  # the Functions worker hands a tombstone's null value over as empty bytes
            letters.append(DeadLetter(record, Reason.NULL_VALUE, "record has no value (tombstone or empty)"))
        elif len(value) > max_record_bytes:
            detail = f"{len(value)} bytes exceeds MAX_RECORD_BYTES={max_record_bytes}"
            letters.append(DeadLetter(record, Reason.OVERSIZED, detail))
        else:
            candidates.append(record)
            values.append(value)
    return candidates, values, letters


@cache
def batch_validator(model: type[BaseModel]) -> TypeAdapter[list[Any]]:
    """Validates a list of raw values: each becomes a dict, or stays bytes when it is not a valid record."""
    item: Any = Annotated[Json[record_type(model)] | bytes, Field(union_mode="left_to_right")]  # type: ignore[misc]
    return TypeAdapter(list[item])


def _validate_all(model: type[BaseModel], values: list[Any]) -> list[Any]:
    """Each value as a dict when it is a valid record, else as it came."""
    return _each_or_itself(batch_validator(model), record_validator(model).validate_json, values)


def _unframed(model: type[BaseModel], values: list[Any], events: list[Any]) -> dict[int, bytes]:
    """JSON in Confluent's wire format (magic byte 0, a 4-byte schema id, then the JSON text: what
    KafkaJsonSchemaSerializer and Datagen's JsonSchemaConverter send) validated by its text alone.
    ``events`` takes each such record's event in place; returns the index -> text of every framed value,
    valid or not: its dead letter's reason is its text's, whatever bytes the schema id holds. A value is
    framed when its text opens a JSON value (``_json_text``): an array or a number is then a ``schema`` dead letter,
    not ``not_json`` or UTF-32 by its id's bytes; other bytes that start with 0 keep their own reason. JSON text
    never starts with byte 0, so no plain record is read differently."""
    framed = {
        index: bytes(value[HEADER_BYTES:])
        for index, (value, event) in enumerate(zip(values, events, strict=True))
        if type(event) is not dict
        and len(value) > HEADER_BYTES
        and value[0] == MAGIC_BYTE
        and _json_text(value[HEADER_BYTES:])
    }
    for index, event in zip(framed, _validate_all(model, list(framed.values())), strict=True):
        if type(event) is dict:
            events[index] = event
    return framed


_JSON_STARTS = frozenset(b'{["-0123456789tfnNI')  # NaN and Infinity too: the parser reads them (as numbers)
UTF8_BOM = b"\xef\xbb\xbf"


def _json_text(body: bytes) -> bool:
    """Whether ``body`` reads as JSON text of some kind (a BOM before it taken as part of it): it opens an object,
    or another JSON value with no NUL byte in it (UTF-8 JSON never holds one; UTF-16 or UTF-32 text of ASCII does,
    every other byte or more, and keeps its own reason)."""
    start = body.removeprefix(UTF8_BOM).lstrip()[:1]
    return start == b"{" or (bool(start) and start[0] in _JSON_STARTS and b"\x00" not in body)


def _valid_json(text: bytes) -> bool:
    """Whether another parser reads ``text`` as JSON: orjson (1,024 levels), else the standard library's (NaN,
    Infinity and numbers past a double, which orjson refuses; about 1,000 levels)."""
    try:
        orjson.loads(text)
        return True
    except orjson.JSONDecodeError:
        pass
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _reason(model: type[BaseModel], record: KafkaRecord, text: bytes | None = None) -> DeadLetter:
    """Why ``record`` (or ``text``: its JSON without a wire-format header) failed, from validating it alone
    (only failed records get here)."""
    value = text if text is not None else record.value or b""
    try:
        record_validator(model).validate_json(value)
    except ValidationError as error:
        return _classify(record, value, error)
    except Exception as error:
        return DeadLetter(record, Reason.SCHEMA, f"{type(error).__name__}: {error}")
    return DeadLetter(record, Reason.SCHEMA, "valid alone, but its batch failed validation")


def _classify(record: KafkaRecord, value: bytes, error: ValidationError) -> DeadLetter:
    issues = error.errors(include_url=False, include_input=False)
    if any(issue["type"] == "json_invalid" for issue in issues):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as decode_error:
            return DeadLetter(record, Reason.NOT_UTF8, str(decode_error))
        message = issues[0]["msg"]
        if encoding := _wide_encoding(value):
            detail = f"{encoding} without a byte-order mark; JSON is UTF-8 ({message})"
            return DeadLetter(record, Reason.NOT_UTF8, detail)
        if "number out of range" in message:
            detail = f"{message}: a number of more than 4,300 digits, longer than the parser reads in any field"
            return DeadLetter(record, Reason.SCHEMA, detail)
        if "recursion limit exceeded" in message and _valid_json(value):
            detail = f"{message}: values nested deeper than the parser reads (about 200 levels), in any field"
            return DeadLetter(record, Reason.SCHEMA, detail)
        return DeadLetter(record, Reason.NOT_JSON, message)
    detail = "; ".join(f"{'.'.join(map(str, issue['loc'])) or '<record>'}: {issue['msg']}" for issue in issues[:10])
    return DeadLetter(record, Reason.SCHEMA, detail)


def _wide_encoding(value: bytes) -> str | None:
    """The UTF-16 or UTF-32 that ``value`` is in when it has no byte-order mark, from where its first two characters'
    zero bytes fall (RFC 4627, section 3: JSON text starts with two ASCII characters); ASCII text in them is valid
    UTF-8 (ASCII and NUL bytes), so the decoder alone takes it for UTF-8."""
    if len(value) < 4:
        return None
    zeros = (value[0] == 0, value[1] == 0, value[2] == 0, value[3] == 0)
    return {
        (True, True, True, False): "UTF-32-BE",
        (False, True, True, True): "UTF-32-LE",
        (True, False, True, False): "UTF-16-BE",
        (False, True, False, True): "UTF-16-LE",
    }.get(zeros)
