"""One Kafka-triggered function per registered source (``process_<source>``), cardinality many."""

from __future__ import annotations

import asyncio
import gc
import typing

import azure.durable_functions as df
import azure.functions as func

from functions.bindings import (
    BROKER_LIST,
    kafka_auth,
    lake,
    setting_ref,
    source_settings,
    to_record,
    to_record_with_content_type,
    trace_carriers,
    values_not_handed_over,
    with_values_from_broker,
)
from functions.state_client import DurableStateGateway
from shared.invocation import ProcessingContext, handle_batch_with_state, starting
from shared.settings import check_sources_apart, current_settings
from shared.sources import SOURCES, Source
from shared.state.lookups import StateJoiner
from shared.tracing import processing_span

# A batch allocates about ten container objects per event (the worker's KafkaEvents and their
# metadata, pydantic's dicts), all alive until the batch ends and none in a reference cycle. With
# Python's default threshold (700 allocations) the cycle collector runs every ~70 events and walks
# the whole batch in flight each time: about a fifth of the local host's CPU (bench/README.md).
# Collecting every 50,000 allocations keeps cycles (rare here) bounded at a fraction of the cost.
GC_THRESHOLDS = (50_000, 20, 100)
gc.set_threshold(*GC_THRESHOLDS)

bp = df.Blueprint()
_joiners = {name: StateJoiner() for name in SOURCES}  # lookup caches shared by a worker's invocations


def _id_in_header(source: Source) -> bool:
    """Avro with the Event Hubs Schema Registry: the schema id travels in the content-type header."""
    return source.value_format == "avro" and current_settings().schema_registry_kind == "eventhubs"


def _register(source: Source) -> None:
    @bp.function_name(name=f"process_{source.name}")
    @bp.kafka_trigger(
        arg_name="events",
        topic=setting_ref(source.name, "topic"),
        broker_list=BROKER_LIST,
        consumer_group=setting_ref(source.name, "consumer_group"),
        cardinality=func.Cardinality.MANY,
        data_type=func.DataType.BINARY,
        # A number in the binding JSON, which the extension does not resolve from %settings%,
        # so <SOURCE>_LAG_THRESHOLD is read here, when the worker indexes the function.
        lag_threshold=source_settings(source.name).lag_threshold,
        **kafka_auth("consumer", source.name),
    )
    @bp.retry(
        strategy="exponential_backoff", max_retry_count="5", minimum_interval="00:00:02", maximum_interval="00:01:00"
    )
    @bp.durable_client_input(client_name="client")
    # typing.List: the Python worker refuses list[...] (not a class, not typing's generic) and then indexes no function
    async def process(events: typing.List[func.KafkaEvent], client: df.DurableOrchestrationClient) -> None:  # noqa: UP006
        """Called by the Kafka extension with up to ``maxBatchSize`` records, partitions mixed."""
        this_source = source_settings(source.name)
        convert = to_record_with_content_type if _id_in_header(source) else to_record
        with processing_span(source.name, trace_carriers(events), message_count=len(events)):
            records = [convert(event) for event in events]
            with starting(source.name, records):
                if (handed_over := values_not_handed_over(events)) is not None:  # the host left null values out
                    records = await asyncio.to_thread(with_values_from_broker, source.name, records, handed_over)
                context = ProcessingContext(source, lake(), current_settings(), this_source)
            state = DurableStateGateway(client) if this_source.state_enabled else None
            await handle_batch_with_state(context, records, state, _joiners[source.name])


# Every source's settings, read when the app is indexed: two sources on one topic or in one consumer group fail here,
# naming their settings, instead of dead-lettering each other's records (ConfigurationError).
check_sources_apart({name: source_settings(name) for name in SOURCES})
for _source in SOURCES.values():
    _register(_source)
