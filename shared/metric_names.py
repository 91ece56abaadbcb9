"""Names of the metrics the code emits (OpenTelemetry instruments -> App Insights customMetrics).

The Terraform workbook and alerts query exactly these names; a test checks they match.
Every metric carries the attribute ``source``; dead letters also carry ``reason``, batch
failures ``error_class`` (``transient`` or ``infrastructure``, see shared/failures.py).
"""

from __future__ import annotations

EVENTS_RECEIVED = "streamingpoc.events.received"
EVENTS_LANDED = "streamingpoc.events.landed"
EVENTS_DEADLETTERED = "streamingpoc.events.deadlettered"
EVENTS_LATE = "streamingpoc.events.late"
ANOMALIES = "streamingpoc.anomalies"
BATCH_DURATION = "streamingpoc.batch.duration"
BATCH_SIZE = "streamingpoc.batch.size"
END_TO_END_LATENCY = "streamingpoc.end_to_end.latency"
LAKE_WRITE_DURATION = "streamingpoc.lake.write.duration"
LAKE_BYTES_WRITTEN = "streamingpoc.lake.bytes_written"
LAKE_FILES_WRITTEN = "streamingpoc.lake.files_written"
ENTITY_SIGNALS = "streamingpoc.entity.signals"
COMPACTION_HOURS = "streamingpoc.compaction.hours"
COMPACTION_ROWS = "streamingpoc.compaction.rows"
COMPACTION_FILES_IN = "streamingpoc.compaction.files_in"
COMPACTION_FILES_OUT = "streamingpoc.compaction.files_out"
COMPACTION_LAG = "streamingpoc.compaction.lag"
COMPACTION_DRIFT = "streamingpoc.compaction.drift"
BATCH_FAILURES = "streamingpoc.batch.failures"
CONSUMER_LAG = "streamingpoc.consumer.lag"
STATE_BUCKET_BYTES = "streamingpoc.state.bucket_bytes"
STATE_EVICTED_KEYS = "streamingpoc.state.evicted_keys"

# name -> (instrument kind, unit, description)
METRICS: dict[str, tuple[str, str, str]] = {
    EVENTS_RECEIVED: ("counter", "{event}", "Records delivered to a processing function"),
    EVENTS_LANDED: ("counter", "{event}", "Valid records written to the lake"),
    EVENTS_DEADLETTERED: ("counter", "{event}", "Records written to the dead-letter area, by reason"),
    EVENTS_LATE: ("counter", "{event}", "Events older than the oldest window kept in state"),
    ANOMALIES: ("counter", "{event}", "Sensor readings flagged as anomalies"),
    BATCH_DURATION: ("histogram", "ms", "Wall time of one processing invocation"),
    BATCH_SIZE: ("histogram", "{event}", "Records per processing invocation"),
    END_TO_END_LATENCY: ("histogram", "ms", "Event time to landed time"),
    LAKE_WRITE_DURATION: ("histogram", "ms", "Wall time of one lake file write"),
    LAKE_BYTES_WRITTEN: ("counter", "By", "Bytes written to the lake"),
    LAKE_FILES_WRITTEN: ("counter", "{file}", "Files written to the lake"),
    ENTITY_SIGNALS: ("counter", "{signal}", "Durable entity signals sent"),
    COMPACTION_HOURS: ("counter", "{hour}", "Raw hours compacted into the curated Delta table"),
    COMPACTION_ROWS: ("counter", "{row}", "Rows written by compaction (distinct by offset)"),
    COMPACTION_FILES_IN: ("counter", "{file}", "Raw files read by compaction"),
    COMPACTION_FILES_OUT: ("counter", "{file}", "Curated Delta files written by compaction"),
    COMPACTION_LAG: ("histogram", "s", "Longest wait of an uncovered raw file of a due hour, per run (0 if none)"),
    COMPACTION_DRIFT: (
        "counter",
        "{field}",
        "Schema drift found by compaction per hour, by kind: new_field (in _extra), new_column, type_change",
    ),
    BATCH_FAILURES: (
        "counter",
        "{invocation}",
        "Failed processing invocations (the partition waits), by error_class: transient or infrastructure",
    ),
    STATE_BUCKET_BYTES: (
        "histogram",
        "By",
        "Size of a key bucket's state after an operation, measured for buckets that may be near their capacity",
    ),
    STATE_EVICTED_KEYS: ("counter", "{key}", "Keys a full bucket evicted, the least recently updated first"),
    # Emitted by the local host only: in Azure the Kafka extension owns the consumer (see docs/reliability.md).
    CONSUMER_LAG: ("gauge", "{event}", "Records behind the end of each partition, from its first unprocessed one"),
}
