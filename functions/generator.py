"""The Datagen stand-in: one timer-triggered function per source (``generate_<source>``).

Each tick sends ``<SOURCE>_GENERATOR_EVENTS_PER_TICK`` records, keyed by entity, and returns once
the broker acknowledged every one (``shared.kafka_clients.send``); a failed send raises and the
timer's retry sends the same records again. A seeded or bounded generator keeps its progress in
the lake, saved before it sends and confirmed by the next tick (``shared.generator_ticks.plan_tick``):
at least once, never lost.

The Kafka output binding is not used: it returns before delivery, so a tick whose records never
arrived would count as sent (``shared.kafka_clients``). An Avro source (a Datagen config with the
AvroConverter) registers its schema and sends each record in its registry's wire format.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import orjson

from functions.bindings import lake, setting_ref, source_settings, trace_headers
from shared import kafka_clients
from shared.errors import LakeError
from shared.generator_ticks import OutgoingMessage, generate_messages, needs_progress, plan_tick
from shared.records import ProducedRecord
from shared.schema_registry.decoder import registry_for
from shared.schema_registry.encoder import AvroEncoder
from shared.settings import current_settings
from shared.sources import SOURCES, Source
from shared.tracing import producing_span

bp = func.Blueprint()
PROCESS_ID = uuid.uuid4().hex  # tells this worker's pending ticks from those another process left


def progress_path(source: str) -> str:
    return f"_generator/{source}.json"


def _read_progress(source: str) -> dict[str, Any]:
    try:
        return dict(orjson.loads(lake().read(progress_path(source))))
    except LakeError:
        return {}


def _tick_messages(source: Source, retrying: bool) -> tuple[list[OutgoingMessage], datetime]:
    """The records this tick sends and their time, after saving the progress that makes a failed send resend them."""
    settings = source_settings(source.name)
    tracked = needs_progress(settings, source)
    progress = _read_progress(source.name) if tracked else {}
    tick, saved = plan_tick(progress, settings, now=datetime.now(UTC), owner=PROCESS_ID, retrying=retrying)
    if tracked and saved != progress:
        lake().write_atomic(progress_path(source.name), orjson.dumps(saved))
    at = datetime.fromisoformat(tick.now)
    if tick.count == 0:
        return [], at
    return generate_messages(source, tick.count, now=at, seed=settings.generator_seed, start_index=tick.start), at


_encoders: dict[tuple[str, str], AvroEncoder] = {}


def _avro_messages(source: Source, messages: list[OutgoingMessage], topic: str) -> list[ProducedRecord]:
    encoder = _encoders.get((source.name, topic))
    if encoder is None:
        encoder = _encoders[(source.name, topic)] = AvroEncoder(source, registry_for(source, current_settings()), topic)
    trace = tuple(trace_headers().items())
    encoded = [encoder.encode(message.key, message.value) for message in messages]
    return [ProducedRecord(m.key, m.value, m.headers + trace) for m in encoded]


def _records(source: Source, messages: list[OutgoingMessage], topic: str) -> list[ProducedRecord]:
    """The tick's messages as the topic takes them: JSON text, or the registry's Avro wire format."""
    if source.value_format == "avro":
        return _avro_messages(source, messages, topic)
    trace = tuple(trace_headers().items())
    return [ProducedRecord(message.key, message.value.encode(), trace) for message in messages]


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
        the same records again."""
        retrying = bool(context.retry_context and context.retry_context.retry_count)
        messages, _ = _tick_messages(source, retrying)
        if not messages:
            return
        settings = source_settings(source.name)
        with producing_span(source.name):
            records = _records(source, messages, settings.topic)
            config = kafka_clients.producer_config(current_settings(), source.name, settings)
            kafka_clients.send(config, settings.topic, records)


for _source in SOURCES.values():
    _register(_source)
