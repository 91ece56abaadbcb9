"""Trace context from the generator's produce to the processing invocation, through real Kafka headers."""

from __future__ import annotations

import base64

import azure.functions as func
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from functions.bindings import trace_carriers
from shared.tracing import MAX_LINKS, processing_span, producing_span


def _tracer() -> tuple[InMemorySpanExporter, object]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter, provider.get_tracer("test")


def _event(traceparent: str | None) -> func.KafkaEvent:
    headers = (
        []
        if traceparent is None
        else [{"Key": "traceparent", "Value": base64.b64encode(traceparent.encode()).decode()}]
    )
    return func.KafkaEvent(body=b"{}", headers=headers)


def test_processing_continues_the_producers_trace_and_links_every_producer() -> None:
    exporter, tracer = _tracer()
    parents = []
    for _ in range(2):
        with producing_span("sensors", tracer) as span:  # type: ignore[arg-type]
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            parents.append((span.get_span_context(), carrier["traceparent"]))
    events = [_event(parents[0][1]), _event(parents[0][1]), _event(parents[1][1]), _event(None), _event("garbage")]
    with processing_span("sensors", trace_carriers(events), tracer):  # type: ignore[arg-type]
        pass
    produced = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.PRODUCER]
    (processed,) = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CONSUMER]
    assert len(produced) == 2
    assert processed.context.trace_id == parents[0][0].trace_id  # same end-to-end transaction
    assert processed.parent is not None and processed.parent.span_id == parents[0][0].span_id
    assert {link.context.span_id for link in processed.links} == {p.span_id for p, _ in parents}
    assert processed.attributes["messaging.batch.message_count"] == 5


def test_a_batch_without_headers_starts_a_new_trace_and_links_are_capped() -> None:
    exporter, tracer = _tracer()
    with processing_span("mobile", [{}], tracer):  # type: ignore[arg-type]
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is None and not span.links
    many = [{"traceparent": f"00-{i + 1:032x}-{i + 1:016x}-01"} for i in range(100)]
    with processing_span("mobile", many, tracer):  # type: ignore[arg-type]
        pass
    assert len(exporter.get_finished_spans()[-1].links) == MAX_LINKS
