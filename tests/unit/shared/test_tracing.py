"""Trace context from the generator's produce to the processing invocation, through real Kafka headers."""

from __future__ import annotations

import base64

import azure.functions as func
import pytest
from azure.monitor.opentelemetry.exporter import ApplicationInsightsSampler
from opentelemetry import propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from functions.bindings import MAX_TRACE_CONTEXTS, trace_carriers
from shared import tracing
from shared.telemetry import TRACE_SAMPLING_RATIO
from shared.tracing import MAX_LINKS, processing_span, producing_span
from tests.unit.conftest import b64


def _tracer(ratio: float | None = None) -> tuple[InMemorySpanExporter, object]:
    """A tracer whose finished, sampled spans the exporter keeps; with ``ratio``, sampled as Application Insights'
    exporter samples (``shared.telemetry.exporter_options``)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider() if ratio is None else TracerProvider(sampler=ApplicationInsightsSampler(ratio))
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
    with processing_span("sensors", trace_carriers(events), tracer, message_count=len(events)):  # type: ignore[arg-type]
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


def test_links_parse_each_distinct_header_value_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    extract = propagate.extract

    def counting_extract(carrier: dict[str, str]) -> object:
        calls.append(carrier["traceparent"])
        return extract(carrier)

    monkeypatch.setattr(tracing.propagate, "extract", counting_extract)
    tick = [{"traceparent": f"00-{7:032x}-{7:016x}-01"}] * 1000  # one generator tick stamps one traceparent
    links = tracing.producer_links([*tick, {"traceparent": f"00-{8:032x}-{8:016x}-01"}, {}])
    assert [link.context.span_id for link in links] == [7, 8]
    assert len(calls) == 2


def test_hostile_headers_bound_the_parsing_work(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    extract = propagate.extract

    def counting_extract(carrier: dict[str, str]) -> object:
        calls.append(carrier["traceparent"])
        return extract(carrier)

    monkeypatch.setattr(tracing.propagate, "extract", counting_extract)
    garbage = [{"traceparent": f"garbage-{i}"} for i in range(10_000)]
    assert tracing.producer_links(garbage) == []
    assert len(calls) == tracing.MAX_PARSED
    events = [func.KafkaEvent(body=b"{}", headers=[{"Key": "traceparent", "Value": b64(f"g{i}")}]) for i in range(500)]
    assert len(trace_carriers(events)) == MAX_TRACE_CONTEXTS


def test_the_span_counts_the_batch_not_the_distinct_carriers() -> None:
    exporter, tracer = _tracer()
    with processing_span("clickstream", [{"traceparent": f"00-{9:032x}-{9:016x}-01"}], tracer, message_count=1000):  # type: ignore[arg-type]
        pass
    (span,) = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes["messaging.batch.message_count"] == 1000
    assert span.context.trace_id == 9


def _produce_and_process(tracer: object, source: str) -> tuple[int, int, str]:
    """A generator tick and the invocation of its batch: both spans' trace ids, and the header between them."""
    with producing_span(source, tracer) as produced:  # type: ignore[arg-type]
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
    with processing_span(source, [carrier], tracer) as processed:  # type: ignore[arg-type]
        pass
    return produced.get_span_context().trace_id, processed.get_span_context().trace_id, carrier["traceparent"]


def test_by_default_no_span_is_exported_and_the_trace_context_still_travels() -> None:
    """The exporter's default sampling (issue 19: no requests row per invocation) keeps the lineage: the batch's
    header names the producer's trace, and the invocation continues it, so sampling in later joins them up."""
    exporter, tracer = _tracer(TRACE_SAMPLING_RATIO)
    produced, processed, traceparent = _produce_and_process(tracer, "orders")
    assert exporter.get_finished_spans() == ()
    assert traceparent.split("-")[1] == f"{produced:032x}" and processed == produced


def test_sampled_in_a_trace_keeps_both_its_spans() -> None:
    """OTEL_TRACES_SAMPLER=microsoft.fixed_percentage decides per trace id: a trace is exported with both the
    generator's span and the invocation's, or with neither."""
    exporter, tracer = _tracer(0.5)
    traces = [_produce_and_process(tracer, "sensors")[0] for _ in range(200)]
    kinds: dict[int, set[SpanKind]] = {}
    for span in exporter.get_finished_spans():
        kinds.setdefault(span.context.trace_id, set()).add(span.kind)
    assert 0 < len(kinds) < len(traces)  # some traces in, some out
    assert all(found == {SpanKind.PRODUCER, SpanKind.CONSUMER} for found in kinds.values())
