"""Trace context across Kafka: the generator's span travels in a ``traceparent`` header, and a
processing invocation's span continues the first record's trace and links every other one.

A batch mixes records produced under different spans (ticks, sources), so one parent cannot
describe it; OpenTelemetry's messaging conventions use span links for that. With the exporter
``shared.telemetry.configure`` installs, every span gets its ids and the context travels, but
traces are exported only as sampled (none by default: a processing span, kind CONSUMER, would be
a requests row per invocation; OTEL_TRACES_SAMPLER opts in, per trace id, so a sampled trace holds
both its generator's and its processor's span). Without the exporter, spans are no-ops.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, Span, SpanKind

MAX_LINKS = 32
MAX_PARSED = 4 * MAX_LINKS  # distinct header values parsed per batch; bounds the work on hostile headers
_TRACER_NAME = "streamingpoc"


def producer_links(carriers: Iterable[Mapping[str, str]]) -> list[Link]:
    """One link per distinct producing span found in the records' headers (at most ``MAX_LINKS``).

    A generator tick stamps one ``traceparent`` on all its records, so a batch holds few distinct
    header values: each distinct (traceparent, tracestate) pair is parsed once, never per record.
    """
    links: dict[tuple[int, int], Link] = {}
    parsed: set[tuple[str, str | None]] = set()
    for carrier in carriers:
        traceparent = carrier.get("traceparent")
        if traceparent is None:
            continue
        raw = (traceparent, carrier.get("tracestate"))
        if raw in parsed:
            continue
        if len(parsed) >= MAX_PARSED:
            break
        parsed.add(raw)
        span_context = trace.get_current_span(propagate.extract(carrier)).get_span_context()
        if span_context.is_valid:
            links.setdefault((span_context.trace_id, span_context.span_id), Link(span_context))
            if len(links) >= MAX_LINKS:
                break
    return list(links.values())


@contextmanager
def processing_span(
    source: str,
    carriers: Sequence[Mapping[str, str]],
    tracer: trace.Tracer | None = None,
    *,
    message_count: int | None = None,
) -> Iterator[Span]:
    """The span of one processing invocation. Called by the Kafka-triggered function around its work.

    ``carriers`` may hold one entry per record or only the distinct ones (what
    ``functions.bindings.trace_carriers`` returns); ``message_count`` is the batch size, by
    default ``len(carriers)``.
    """
    links = producer_links(carriers)
    parent = trace.set_span_in_context(trace.NonRecordingSpan(links[0].context)) if links else None
    attributes: dict[str, str | int] = {
        "messaging.system": "kafka",
        "messaging.batch.message_count": len(carriers) if message_count is None else message_count,
        "source": source,
    }
    with (tracer or trace.get_tracer(_TRACER_NAME)).start_as_current_span(
        f"process {source}", context=parent, kind=SpanKind.CONSUMER, links=links, attributes=attributes
    ) as span:
        yield span


@contextmanager
def producing_span(source: str, tracer: trace.Tracer | None = None) -> Iterator[Span]:
    """The span whose context the generator puts in its records' ``traceparent`` header."""
    with (tracer or trace.get_tracer(_TRACER_NAME)).start_as_current_span(
        f"generate {source}", kind=SpanKind.PRODUCER, attributes={"messaging.system": "kafka", "source": source}
    ) as span:
        yield span
