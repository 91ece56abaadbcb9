"""The Quix Streams peer of the local host in ``bench/compare.py``: the same job, written the Quix way.

    .venv-quix/bin/python bench/quix_app.py --broker HOST:PORT --topic T --group G --output DIR

Runs under ``.venv-quix`` (``make .venv-quix/bin/python``): quixstreams 3.28.1 resolves an older
pydantic than the app's, so it cannot share ``.venv``. It imports the app's pydantic model and
transform unchanged from ``shared/sources/clickstream.py`` (the model's source is valid under
both pydantic versions) and validates with the same dict validator the core uses
(``record_validator``). Per message: validate, transform, add the same lineage columns; valid rows
go to a ``LocalFileSink`` writing Parquet (zstd) under ``DIR/raw``, bad records with their reason
and raw bytes to one writing gzipped JSON lines under ``DIR/deadletter``, one file per partition
per checkpoint. Trace headers are ignored (Quix has no trace links). Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from quixstreams import Application, message_context
from quixstreams.sinks.community.file.formats import JSONFormat, ParquetFormat
from quixstreams.sinks.community.file.local import LocalFileSink

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.source_model import record_validator
from shared.sources.clickstream import SOURCE

MAX_RECORD_BYTES = 1 << 20  # the app's default MAX_RECORD_BYTES
MAX_EVENT_AGE_MS = 7 * 24 * 3600 * 1000
MAX_EVENT_LEAD_MS = 3600 * 1000
VALIDATE_JSON = record_validator(SOURCE.model).validate_json


def dead(reason: str, detail: str, value: bytes | None) -> dict[str, Any]:
    context = message_context()
    return {
        "_reason": reason,
        "detail": detail,
        "value_b64": None if value is None else base64.b64encode(value).decode(),
        "_topic": context.topic,
        "_partition": context.partition,
        "_offset": context.offset,
    }


def process(value: bytes | None, key: Any, timestamp: int, headers: Any) -> dict[str, Any]:
    """Called by Quix for each message: the landed row, or a dead letter (it has ``_reason``)."""
    if not value:
        return dead("null_value", "record has no value (tombstone or empty)", value)
    if len(value) > MAX_RECORD_BYTES:
        return dead("oversized", f"{len(value)} bytes exceeds {MAX_RECORD_BYTES}", value)
    try:
        event = VALIDATE_JSON(value)
    except ValidationError as error:
        issues = error.errors(include_url=False, include_input=False)
        if any(issue["type"] == "json_invalid" for issue in issues):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as decode_error:
                return dead("not_utf8", str(decode_error), value)
            return dead("not_json", issues[0]["msg"], value)
        return dead("schema", "; ".join(f"{issue['loc']}: {issue['msg']}" for issue in issues[:10]), value)
    try:
        row = SOURCE.transform(event)
    except Exception as error:
        return dead("transform_error", f"{type(error).__name__}: {error}", value)
    context = message_context()
    event_ms = SOURCE.event_time_ms(event)
    if event_ms is not None and timestamp - MAX_EVENT_AGE_MS <= event_ms <= timestamp + MAX_EVENT_LEAD_MS:
        row["_event_time"], row["_event_time_source"] = event_ms, "event"
    else:
        row["_event_time"], row["_event_time_source"] = timestamp, "kafka"
    row["_topic"], row["_partition"], row["_offset"] = context.topic, context.partition, context.offset
    row["_key"], row["_kafka_timestamp"] = key, timestamp
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--broker", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--commit-interval", type=float, default=1.0, help="seconds between checkpoints")
    args = parser.parse_args()
    args.output.mkdir(parents=True, exist_ok=True)
    os.chdir(args.output)  # LocalFileSink accepts only [A-Za-z0-9 ._] in its directory
    app = Application(
        broker_address=args.broker,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        commit_interval=args.commit_interval,
        loglevel="WARNING",
    )
    topic = app.topic(args.topic, key_deserializer="str", value_deserializer="bytes")
    rows = app.dataframe(topic).apply(process, metadata=True)
    rows.filter(lambda row: "_reason" not in row).sink(
        LocalFileSink(directory="raw", format=ParquetFormat(compression="zstd"))
    )
    dead_letters = LocalFileSink(directory="deadletter", format=JSONFormat(compress=True))
    rows.filter(lambda row: "_reason" in row).sink(dead_letters)
    started = time.perf_counter()
    app.run()
    print(f"quix app stopped after {time.perf_counter() - started:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
