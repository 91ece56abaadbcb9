"""Dead-letter redrive: send dead letters that now pass the source's model back to its topic, once.

Dead letters are gzipped JSON lines under ``deadletter/<source>/`` (``shared.landing.files``). A redrive
re-validates each against the current model (the whole processing path: size, JSON, schema,
transform), and sends the ones that now pass with their original key. What was sent is recorded
in the lake under ``_redrive/<source>/``, keyed by the dead letter's topic, partition and offset,
so a dead letter is never sent twice:

- ``<run>.intent.jsonl.gz`` is written *before* sending: the positions this run is about to send;
- ``<run>.sent.jsonl.gz`` after the broker acknowledged: the positions it did send.

A later run skips every position in either. A position with an intent but no ``sent`` record
(the run died mid-send) is reported as unconfirmed and not sent again: sending it twice would
land it twice, under a new offset.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from shared import formats
from shared.batch import process_batch
from shared.lake.base import LakeStore
from shared.layout import DEADLETTER_AREA, safe_segment
from shared.records import KafkaRecord
from shared.sources.base import Column, Source

REDRIVE_AREA = "_redrive"
LEDGER_COLUMNS = (
    Column("_topic", "string", nullable=False),
    Column("_partition", "long", nullable=False),
    Column("_offset", "long", nullable=False),
    Column("redriven_at", "timestamp", nullable=False),
)
REDRIVE_HEADER = "streamingpoc-redriven-from"
Position = tuple[str, int, int]


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One dead letter as landed: where it came from, why, and its raw bytes."""

    topic: str
    partition: int
    offset: int
    key: str | None
    timestamp_ms: int | None
    reason: str
    raw: bytes | None
    dead_lettered_at: int

    @property
    def position(self) -> Position:
        return (self.topic, self.partition, self.offset)


@dataclass(frozen=True, slots=True)
class OutgoingRedrive:
    key: str | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    entry: DeadLetterEntry


class RedriveSender(Protocol):
    """Sends to one topic; returns, per message and in order, whether the broker acknowledged it."""

    def send(self, topic: str, messages: Sequence[OutgoingRedrive]) -> list[bool]: ...


@dataclass(slots=True)
class RedriveSummary:
    source: str
    read: int = 0
    filtered_out: int = 0
    already_redriven: int = 0
    unconfirmed: int = 0
    now_valid: int = 0
    sent: int = 0
    failed: int = 0
    still_invalid: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False

    def table(self) -> str:
        """The summary as a two-column table (what the CLI prints at the end)."""
        rows = [
            ("dead letters read", self.read),
            ("left out by --reason/--since", self.filtered_out),
            ("already redriven (skipped)", self.already_redriven),
            ("unconfirmed earlier send (skipped)", self.unconfirmed),
            ("now valid", self.now_valid),
            ("sent" + (" (dry run: nothing sent)" if self.dry_run else ""), self.sent),
            ("send failed", self.failed),
        ]
        rows += [(f"still invalid: {reason}", count) for reason, count in sorted(self.still_invalid.items())]
        width = max(len(label) for label, _ in rows)
        lines = [f"redrive of {self.source}", f"{'':-<{width}}  {'':-<8}"]
        lines += [f"{label:<{width}}  {count:>8}" for label, count in rows]
        return "\n".join(lines)


def read_dead_letters(lake: LakeStore, source: str) -> list[DeadLetterEntry]:
    """Every dead letter of ``source`` in the lake, first seen first; one per topic/partition/offset."""
    entries: dict[Position, DeadLetterEntry] = {}
    for path in lake.list_paths(f"{DEADLETTER_AREA}/{safe_segment(source)}"):
        if not path.endswith(formats.EXTENSIONS["jsonl"]):
            continue
        for row in formats.decode("jsonl", lake.read(path)):
            entry = _entry(row)
            entries.setdefault(entry.position, entry)
    return list(entries.values())


def _entry(row: dict[str, object]) -> DeadLetterEntry:
    raw_text = row.get("raw_base64")
    try:
        raw = None if raw_text is None else base64.b64decode(str(raw_text), validate=True)
    except (binascii.Error, ValueError):
        raw = None
    timestamp = row.get("_kafka_timestamp")
    key = row.get("_key")
    return DeadLetterEntry(
        topic=str(row["_topic"]),
        partition=int(str(row["_partition"])),
        offset=int(str(row["_offset"])),
        key=None if key is None else str(key),
        timestamp_ms=None if timestamp is None else int(str(timestamp)),
        reason=str(row.get("reason", "")),
        raw=raw,
        dead_lettered_at=int(str(row.get("dead_lettered_at") or 0)),
    )


def ledger(lake: LakeStore, source: str) -> tuple[set[Position], set[Position]]:
    """Positions already redriven (acknowledged) and positions announced but never confirmed."""
    sent: set[Position] = set()
    intended: set[Position] = set()
    for path in lake.list_paths(f"{REDRIVE_AREA}/{safe_segment(source)}"):
        target = sent if path.endswith(".sent.jsonl.gz") else intended if path.endswith(".intent.jsonl.gz") else None
        if target is None:
            continue
        for row in formats.decode("jsonl", lake.read(path)):
            target.add((str(row["_topic"]), int(row["_partition"]), int(row["_offset"])))
    return sent, intended - sent


def _write_ledger(lake: LakeStore, source: str, run_id: str, kind: str, entries: Sequence[DeadLetterEntry]) -> None:
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    rows = [{"_topic": e.topic, "_partition": e.partition, "_offset": e.offset, "redriven_at": now_ms} for e in entries]
    data = formats.encode("jsonl", LEDGER_COLUMNS, rows, record_name="redrive")
    lake.write_atomic(f"{REDRIVE_AREA}/{safe_segment(source)}/{run_id}.{kind}.jsonl.gz", data)


def redrive(
    source: Source,
    *,
    lake: LakeStore,
    sender: RedriveSender | None,
    topic: str,
    max_record_bytes: int,
    reasons: frozenset[str] = frozenset(),
    since_ms: int | None = None,
    dry_run: bool = False,
    now_ms: int | None = None,
) -> RedriveSummary:
    """Re-validate ``source``'s dead letters and send the ones that pass to ``topic``, each at most once."""
    summary = RedriveSummary(source.name, dry_run=dry_run)
    now_ms = int(datetime.now(UTC).timestamp() * 1000) if now_ms is None else now_ms
    sent_before, unconfirmed = ledger(lake, source.name)
    candidates: list[DeadLetterEntry] = []
    for entry in read_dead_letters(lake, source.name):
        summary.read += 1
        if (reasons and entry.reason not in reasons) or (since_ms is not None and entry.dead_lettered_at < since_ms):
            summary.filtered_out += 1
        elif entry.position in sent_before:
            summary.already_redriven += 1
        elif entry.position in unconfirmed:
            summary.unconfirmed += 1
        else:
            candidates.append(entry)
    records = [KafkaRecord(e.topic, e.partition, e.offset, e.key, e.raw, e.timestamp_ms) for e in candidates]
    batch = process_batch(source, records, max_record_bytes=max_record_bytes)
    for letter in batch.dead_letters:
        summary.still_invalid[letter.reason] += 1
    passing = {(row["_topic"], row["_partition"], row["_offset"]) for row in batch.rows}
    valid = [entry for entry in candidates if entry.position in passing]
    summary.now_valid = len(valid)
    if dry_run or not valid:
        return summary
    if sender is None:
        raise ValueError("a sender is needed unless dry_run")
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    _write_ledger(lake, source.name, run_id, "intent", valid)
    outgoing = [
        OutgoingRedrive(
            entry.key,
            entry.raw or b"",
            ((REDRIVE_HEADER, f"{entry.topic}/{entry.partition}/{entry.offset}".encode()),),
            entry,
        )
        for entry in valid
    ]
    delivered = sender.send(topic, outgoing)
    acknowledged = [message.entry for message, ok in zip(outgoing, delivered, strict=True) if ok]
    _write_ledger(lake, source.name, run_id, "sent", acknowledged)
    summary.sent = len(acknowledged)
    summary.failed = len(outgoing) - len(acknowledged)
    return summary
