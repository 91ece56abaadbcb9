"""A header key that is not UTF-8, through the local host's Kafka trigger: no record can stop a stream.

librdkafka's producer cannot send such a key, so the record is written with a hand-made Produce request
(``tests.integration.raw_kafka``). confluent-kafka's ``headers()`` raises on it and keeps a broken list that the
next call crashes the process on, so the decoding runs in a child process: a crash fails the test, not the run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from devhost.services.broker import ensure_topics
from shared.generator_ticks import generate_messages
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW
from tests.integration.harness import Run, produce
from tests.integration.raw_kafka import produce_raw

PROJECT_ROOT = Path(__file__).resolve().parents[2]

DECODE_TWICE = textwrap.dedent(
    """
    import json, sys
    from confluent_kafka import Consumer
    from devhost.kafka.events import decode_batch

    broker, topic, group = sys.argv[1:4]
    consumer = Consumer({"bootstrap.servers": broker, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        messages = []
        for _ in range(60):
            messages += [m for m in consumer.consume(10, timeout=0.5) if m.error() is None]
            if len(messages) >= 2:
                break
    finally:
        consumer.close()
    decoded = [decode_batch(messages, "MANY") for _ in range(2)]  # a retried batch is decoded again
    one = decode_batch(messages[:1], "ONE")
    events = [(e.offset, e.get_body().decode(), e.headers) for e in decoded[-1]]
    print(json.dumps({"events": events, "one": [one.offset, one.headers]}))
    """
)


def test_a_header_key_that_is_not_utf8_hands_the_record_over_without_headers(broker: str) -> None:
    run = Run()
    topic = run.topic("clickstream")
    ensure_topics({"bootstrap.servers": broker}, [topic], partitions=1)
    first, second = (
        m.value for m in generate_messages(SOURCES["clickstream"], 2, now=FIXED_NOW, seed=4, start_index=0)
    )
    produce_raw(broker, topic, 0, b"42", first.encode(), [(b"\xff\xfe", b"v"), (b"trace", b"kept?")])
    produce(broker, topic, [("43", second.encode())])
    child = subprocess.run(
        [sys.executable, "-c", DECODE_TWICE, broker, topic, f"decode-{run.suffix}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, f"exit {child.returncode}: {child.stderr[-2000:]}"
    decoded = json.loads(child.stdout.splitlines()[-1])
    assert decoded["events"] == [[0, first, []], [1, second, []]]
    assert decoded["one"] == [0, []]
    assert "headers not readable, handed over without them" in child.stderr
