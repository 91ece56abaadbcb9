"""The Datagen stand-in: one timer-triggered function per source (``generate_<source>``).

Each tick sends ``<SOURCE>_GENERATOR_EVENTS_PER_TICK`` records through the Kafka output
binding, keyed by entity. A seeded or bounded generator keeps its progress in the lake.
"""

from __future__ import annotations

from datetime import UTC, datetime

import azure.functions as func
import orjson

from functions.bindings import BROKER_LIST, kafka_auth, lake, setting_ref, source_settings, trace_headers
from shared.errors import LakeError
from shared.generator import generate_messages, kafka_output_payload, needs_progress, tick_size
from shared.sources import SOURCES, Source
from shared.tracing import producing_span

bp = func.Blueprint()


def progress_path(source: str) -> str:
    return f"_generator/{source}.json"


def _read_sent(source: str) -> int:
    try:
        return int(orjson.loads(lake().read(progress_path(source)))["sent"])
    except LakeError:
        return 0


def _register(source: Source) -> None:
    @bp.function_name(name=f"generate_{source.name}")
    @bp.timer_trigger(
        arg_name="timer",
        schedule=setting_ref(source.name, "generator_schedule"),
        run_on_startup=False,
        use_monitor=False,
    )
    @bp.kafka_output(
        arg_name="out",
        topic=setting_ref(source.name, "topic"),
        broker_list=BROKER_LIST,
        data_type=func.DataType.STRING,
        **kafka_auth("producer"),
    )
    def generate(timer: func.TimerRequest, out: func.Out[str]) -> None:
        """Called on every tick of the source's NCRONTAB schedule."""
        settings = source_settings(source.name)
        sent = _read_sent(source.name) if needs_progress(settings, source) else 0
        count = tick_size(settings, sent)
        if count == 0:
            return
        now = datetime.now(UTC)
        messages = generate_messages(source, count, now=now, seed=settings.generator_seed, start_index=sent)
        with producing_span(source.name):
            out.set(kafka_output_payload(messages, now=now, headers=trace_headers()))
        if needs_progress(settings, source):
            lake().write_atomic(progress_path(source.name), orjson.dumps({"sent": sent + count}))


for _source in SOURCES.values():
    _register(_source)
