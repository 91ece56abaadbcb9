"""The Datagen stand-in: one timer-triggered function per source (``generate_<source>``).

Each tick sends ``<SOURCE>_GENERATOR_EVENTS_PER_TICK`` records, keyed by entity, in pieces of at most 1,000
records and 1 MB (``shared.generator_ticks.tick_piece``), each sent once the broker acknowledged the one before
(``shared.kafka_clients.send``); a failed send raises and the timer's retry sends the same records again. A
seeded, bounded or counted generator keeps its progress in the lake (``_generator/<source>.json``), saved before
it sends, with one read and one conditional write per tick (and one more per piece after the first), and counts a
tick as sent only with proof of its delivery (``shared.generator_ticks.plan_tick``): at least once, never lost,
also when several instances run the same timer; a retry or a restart sends again only the pieces not recorded
delivered, so however large a tick, every attempt makes progress. An untracked generator (unseeded, unbounded,
hand-written source) keeps nothing: its retry sends new random records.

The Kafka output binding is not used: it returns before delivery, so a tick whose records never
arrived would count as sent (``shared.kafka_clients``). An Avro source (a Datagen config with the
AvroConverter) registers its schema and sends each record in its registry's wire format.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import orjson

from functions.bindings import lake, setting_ref, source_settings, trace_headers
from shared import kafka_clients
from shared.errors import TransientError, WriteConflict
from shared.generator_ticks import (
    OutgoingMessage,
    Plan,
    Tick,
    acknowledged,
    needs_progress,
    pieces_delivered,
    plan_tick,
    read_progress,
    resume_point,
    tick_piece,
)
from shared.records import ProducedRecord
from shared.schema_registry.decoder import registry_for
from shared.schema_registry.encoder import AvroEncoder
from shared.settings import current_settings
from shared.sources import SOURCES, Source
from shared.tracing import producing_span

bp = func.Blueprint()
log = logging.getLogger("streamingpoc.generator")
PROCESS_ID = uuid.uuid4().hex  # tells this worker's pending ticks from those another process left
# Per source, the last tick this process's send delivered (the broker acknowledged every record): the proof with
# which its next tick counts it as sent, without a write per tick to record it.
_delivered: dict[str, Tick] = {}
# Per source, the piece (its tick and first record) whose one record the broker refused for its size, taking the
# others, and that record's place in it: the retries (every 5 s, for ever) send that record alone, not the piece's
# others again each time; once it goes through, the piece is delivered.
_refused_alone: dict[str, tuple[Tick, int, int]] = {}
ACKNOWLEDGE_ATTEMPTS = 3


def progress_path(source: str) -> str:
    return f"_generator/{source}.json"


def _read_progress(source: str) -> tuple[dict[str, Any], str | None]:
    """The saved progress and its version (None: no file yet). Any failure to read it raises (the retry reads
    again): only a missing file means nothing was sent."""
    path = progress_path(source)
    found = lake().read_versioned(path)
    if found is None:
        return {}, None
    data, version = found
    return read_progress(data, path), version


def _plan(source: Source) -> tuple[Plan, str | None] | None:
    """What this invocation sends, saved first when it changes the progress, and the version of the progress it
    was planned from; None when another instance saved the progress first (this tick is skipped)."""
    settings = source_settings(source.name)
    tracked = needs_progress(settings, source)
    progress, version = _read_progress(source.name) if tracked else ({}, None)
    plan = plan_tick(
        progress,
        settings,
        now=datetime.now(UTC),
        owner=PROCESS_ID,
        delivered=_delivered.get(source.name),
        fresh_seed=secrets.randbits(63),
    )
    if tracked and plan.progress != progress:
        try:
            version = lake().write_if(progress_path(source.name), orjson.dumps(plan.progress), version)
        except WriteConflict:  # another instance planned from the same progress: its tick goes, this one not
            log.info("generate_%s: the progress changed since it was read; this tick is skipped", source.name)
            return None
    return plan, version


def _record_acknowledged(source: Source, tick: Tick, progress: dict[str, Any], version: str | None) -> bool:
    """Mark ``tick``, another process's pending tick this one delivered, acknowledged in the lake, so that no
    instance sends it again; conditional, so it never overwrites newer progress. Whether it is recorded (marked, or
    confirmed already); not saved (the lake unavailable, or busy), the tick is only sent once more by whoever finds
    it pending."""
    settings = source_settings(source.name)
    why = "the progress kept changing"
    try:
        for _ in range(ACKNOWLEDGE_ATTEMPTS):
            updated = acknowledged(progress, settings, tick)
            if updated is None:  # no longer pending: confirmed already
                return True
            try:
                lake().write_if(progress_path(source.name), orjson.dumps(updated), version)
                return True
            except WriteConflict:
                progress, version = _read_progress(source.name)
    except TransientError as error:
        why = str(error)
    log.warning("generate_%s: delivered tick %s not recorded as acknowledged: %s", source.name, tick, why)
    return False


def _record_piece(
    source: Source, tick: Tick, delivered: int, progress: dict[str, Any], version: str | None
) -> tuple[dict[str, Any], str | None, int] | None:
    """Save that the first ``delivered`` records of ``tick`` were delivered, before the next piece is sent, so that a
    retry, a restart or another instance sends only what follows. Conditional, re-read on a conflict: another
    instance sending the same tick may be ahead (its record stands, and this one goes on from there). Returns the
    progress, its version and the record to go on from; None when the tick needs nothing more from this invocation
    (confirmed, or marked acknowledged: another instance delivered it whole). A progress that kept changing raises
    (the retry sends this piece again)."""
    settings = source_settings(source.name)
    for _ in range(ACKNOWLEDGE_ATTEMPTS):
        resume = resume_point(progress, settings, tick)
        if resume is None:
            return None
        updated = pieces_delivered(progress, settings, tick, delivered)
        if updated is None:  # recorded as far already
            return progress, version, resume
        try:
            version = lake().write_if(progress_path(source.name), orjson.dumps(updated), version)
            return updated, version, delivered
        except WriteConflict:
            progress, version = _read_progress(source.name)
    raise TransientError(
        f"generate_{source.name}: delivered piece of tick {tick} not recorded: the progress kept changing"
    )


_encoders: dict[tuple[str, str], AvroEncoder] = {}


def _avro_messages(source: Source, messages: list[OutgoingMessage], topic: str) -> list[ProducedRecord]:
    encoder = _encoders.get((source.name, topic))
    if encoder is None:
        encoder = _encoders[(source.name, topic)] = AvroEncoder(source, registry_for(source, current_settings()), topic)
    trace = tuple(trace_headers().items())
    encoded = [encoder.encode(message.key, message.value) for message in messages]
    return [ProducedRecord(m.key, m.value, m.headers + trace) for m in encoded]


def _records(source: Source, messages: list[OutgoingMessage], topic: str) -> list[ProducedRecord]:
    """A piece's messages as the topic takes them: JSON text, or the registry's Avro wire format."""
    if source.value_format == "avro":
        return _avro_messages(source, messages, topic)
    trace = tuple(trace_headers().items())
    return [ProducedRecord(message.key, message.value.encode(), trace) for message in messages]


def _send(source: Source, tick: Tick, start: int, records: list[ProducedRecord], config: dict[str, Any]) -> None:
    """One piece, the tick's records from ``start``; a record too large for the broker fails naming the source, the
    record and its size (sending it again cannot succeed: the retry would fail alike, every time)."""
    try:
        kafka_clients.send(config, source_settings(source.name).topic, records)
    except kafka_clients.RecordTooLarge as error:
        index = tick.start + start + error.index
        raise kafka_clients.RecordTooLarge(
            f"generate_{source.name}: record {index} ({error.size:,} bytes of key, value and headers) is too large for "
            f"the broker, and the generator cannot go past it: {error}. Datagen configs are bounded at 960 KiB a "
            "record (docs/datagen.md); a broker or topic taking less needs its max.message.bytes raised",
            index=index,
            size=error.size,
            alone=error.alone,
        ) from error


def _register(source: Source) -> None:
    @bp.function_name(name=f"generate_{source.name}")
    @bp.timer_trigger(
        arg_name="timer",
        schedule=setting_ref(source.name, "generator_schedule"),
        run_on_startup=False,
        use_monitor=False,
    )
    @bp.retry(strategy="fixed_delay", max_retry_count="-1", delay_interval="00:00:05")
    def generate(timer: func.TimerRequest, context: func.Context) -> None:
        """Called on every tick of the source's NCRONTAB schedule; a failed send raises, and the retry sends
        the same records again (a retry plans like any tick: the failed tick is still pending, unacknowledged).
        A tick another process left pending (a restart: only its memory knew it was delivered) is sent first,
        then this fire's own, so a restart costs a resend but not a fire."""
        planned = _plan(source)
        if planned is not None and _send_tick(source, *planned):
            planned = _plan(source)
            if planned is not None:
                _send_tick(source, *planned)


def _send_tick(source: Source, plan: Plan, version: str | None) -> bool:
    """Send ``plan``'s tick from its first piece not recorded delivered; whether it was another process's, taken
    over, and is now recorded acknowledged (so the next plan is a new tick)."""
    tick, progress, position = plan.tick, plan.progress, plan.resume
    if tick.count == 0:
        return False
    settings = source_settings(source.name)
    tracked = needs_progress(settings, source)
    with producing_span(source.name):
        config = kafka_clients.producer_config(current_settings())
        while position < tick.count:
            piece = tick_piece(source, tick, position)
            records, first = _records(source, piece.messages, settings.topic), piece.start
            refused = _refused_alone.get(source.name)
            if refused is not None and refused[:2] == (tick, piece.start):
                records, first = records[refused[2] : refused[2] + 1], piece.start + refused[2]
            try:
                _send(source, tick, first, records, config)
            except kafka_clients.RecordTooLarge as error:
                if error.alone and refused is None:
                    _refused_alone[source.name] = (tick, piece.start, error.index - tick.start - piece.start)
                raise
            _refused_alone.pop(source.name, None)
            position = piece.end
            if tracked and position < tick.count:
                recorded = _record_piece(source, tick, position, progress, version)
                if recorded is None:  # another instance delivered the rest and said so
                    return False
                progress, version, position = recorded
    _delivered[source.name] = tick
    # only a tracked generator has pending ticks to take over
    return plan.taken_over and _record_acknowledged(source, tick, progress, version)


for _source in SOURCES.values():
    _register(_source)
