"""Step 2 of processing: turn validated events into landed rows with their lineage. Pure: no I/O.

Each source's ``transform`` runs once per event (:func:`transform_rows`), or its
``transform_columns`` once per batch (:func:`transform_table`); a transform that raises parks its
record as a ``transform_error`` dead letter instead of stopping the stream. With ``keyed`` (the source keeps
state in entities) a row whose entity key no entity can take is dead-lettered as ``bad_key``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from shared import formats
from shared.dead_letters import DeadLetter, Reason
from shared.extra_fields import extra_texts
from shared.failures import fast_path_failed
from shared.lineage import LINEAGE_COLUMNS, add_lineage, lineage_arrays
from shared.records import KafkaRecord
from shared.source_model import Row, Source, event_schema
from shared.state.keys import ALWAYS_FITS, BadKey, encode_key
from shared.validation import ValidatedBatch, in_offset_order


@dataclass(slots=True)
class TransformedRows:
    """Landed rows (with lineage), the record of each, and the records that failed here and before."""

    rows: list[Row] = field(default_factory=list)
    origins: list[KafkaRecord] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)


def transform_rows(source: Source, validated: ValidatedBatch, *, keyed: bool = False) -> TransformedRows:
    """The landed rows of ``validated`` events; records that fail here join its dead letters."""
    transform, event_time_ms, entity_key = source.transform, source.event_time_ms, source.entity_key
    result = TransformedRows(dead_letters=list(validated.dead_letters))
    rows, origins, letters = result.rows, result.origins, result.dead_letters
    event_times: list[int | None] = []
    extras = extra_texts(source.model, validated.events)
    received = validated.received
    kept: list[int] = []
    failed = False
    for index, (event, record) in enumerate(zip(validated.events, validated.origins, strict=True)):
        try:
            row = transform(event)
            event_ms = event_time_ms(event)
            if keyed:
                key = entity_key(row)
                if not key or len(key) > ALWAYS_FITS:  # shared.state.keys.check_key, inlined: once per record
                    encode_key(key or "")
        except BadKey as error:
            letters.append(DeadLetter(record, Reason.BAD_KEY, str(error)))
            failed = True
            continue
        except Exception as error:  # a transform bug must not stop the stream: park the record
            letters.append(DeadLetter(record, Reason.TRANSFORM_ERROR, f"{type(error).__name__}: {error}"))
            failed = True
            continue
        rows.append(row)
        origins.append(record)
        event_times.append(event_ms)
        kept.append(index)
    if failed:  # only the kept rows' extras and received texts, in their order
        extras = None if extras is None else [extras[index] for index in kept]
        received = None if received is None else [received[index] for index in kept]
        in_offset_order(letters)
    add_lineage(rows, origins, event_times, extras, received)
    return result


def transform_table(source: Source, validated: ValidatedBatch) -> pa.Table | None:
    """The landed rows of ``validated`` events as one Arrow table, by the source's columnar transform.

    ``None`` when the batch cannot be transformed as a whole (a value the columnar transform does
    not take): then the row transform runs and names the records that fail.
    """
    assert source.transform_columns is not None
    schema = formats.arrow_schema((*source.columns, *LINEAGE_COLUMNS))
    try:
        events = pa.Table.from_pylist(validated.events, schema=event_schema(source.model))
        transformed = source.transform_columns(events)
        event_time_ms = source.event_time_ms
        event_times = [event_time_ms(event) for event in validated.events]
        arrays = [transformed.column(column.name).cast(schema.field(column.name).type) for column in source.columns]
        extras = extra_texts(source.model, validated.events)
        lineage = lineage_arrays(validated.origins, event_times, extras, validated.received)
        return pa.Table.from_arrays([*arrays, *lineage], schema=schema)
    except Exception as error:  # the row transform finds the record, if any, and dead-letters it alone
        fast_path_failed("columnar transform", source.name, error)
        return None
