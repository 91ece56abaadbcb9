"""Dead-letter redrive: send back dead letters that now pass the whole path, once; re-apply refused state from raw.

Dead letters are gzipped JSON lines under ``deadletter/<source>/`` (``shared.landing.files``). A
dead letter is identified by its record's topic, partition, incarnation and offset. A redrive:

- re-runs each dead letter through the whole processing path: size, JSON, schema, transform, the
  entity key (``bad_key``) and the lake format's encoder (``unencodable``). Only what passes is sent;
- never sends a record that already has a raw row with its identity (looked up in ``raw/``, not in
  the landing ledger, which counts dead-lettered offsets as landed too);
- never sends ``entity_rejected`` letters: their records are in raw already, and only their state
  update was refused. It is re-applied from the raw row, as a signal through the entity API
  (``EntitySignaller``); entities apply an offset once, so a repeated signal changes nothing.

What was done is recorded in the lake under ``_redrive/<source>/`` (the *redrive log*, not the
landing ledger), so a dead letter is never sent twice:

- ``<run>.intent.jsonl.gz`` is written *before* sending: the identities this run is about to send;
- ``<run>.sent.jsonl.gz`` after the broker acknowledged (or the entity API accepted): what it did.

A later run skips every identity in either. One with an intent but no ``sent`` record (the run
died mid-send) is reported as unconfirmed and not sent again: sending it twice would land it twice,
under a new offset. A re-signal is the exception: an entity applies an offset once, so one the
entity API did not confirm is signalled again. Logs written before incarnations read as incarnation 0.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, cast, get_args

from shared import formats
from shared.batch import process_batch
from shared.formats import format_named
from shared.lake.base import LakeStore
from shared.landing.files import plan_files
from shared.layout import DEADLETTER_AREA, RAW_AREA, parse_batch_file_name, safe_segment
from shared.records import KafkaRecord, OffsetSpan, TopicPartition
from shared.schema_registry.decoder import AvroDecoder
from shared.settings import LakeFormat
from shared.source_model import Column, Row, Source
from shared.state.aggregate import Signal, signals_for
from shared.state.bucket_counts import bucket_counts
from shared.state.registry import entity_for

REDRIVE_AREA = "_redrive"
REDRIVE_LOG_COLUMNS = (
    Column("_topic", "string", nullable=False),
    Column("_partition", "long", nullable=False),
    Column("_incarnation", "long", nullable=False),
    Column("_offset", "long", nullable=False),
    Column("redriven_at", "timestamp", nullable=False),
)
REDRIVE_HEADER = "streamingpoc-redriven-from"
ENTITY_REJECTED = "entity_rejected"
Identity = tuple[str, int, int, int]  # topic, partition, incarnation, offset


@dataclass(frozen=True, slots=True)
class DeadLetterEntry:
    """One dead letter as landed: where it came from, why, and its raw bytes."""

    topic: str
    partition: int
    incarnation: int
    offset: int
    key: str | None
    timestamp_ms: int | None
    reason: str
    raw: bytes | None
    dead_lettered_at: int

    @property
    def identity(self) -> Identity:
        return (self.topic, self.partition, self.incarnation, self.offset)


@dataclass(frozen=True, slots=True)
class OutgoingRedrive:
    key: str | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    entry: DeadLetterEntry


class RedriveSender(Protocol):
    """Sends to one topic; returns, per message and in order, whether the broker acknowledged it."""

    def send(self, topic: str, messages: Sequence[OutgoingRedrive]) -> list[bool]: ...


class EntitySignaller(Protocol):
    """Signals entities through the entity API; returns, per signal and in order, whether it was accepted."""

    def signal(self, signals: Sequence[Signal]) -> list[bool]: ...


@dataclass(slots=True)
class RedriveSummary:
    source: str
    read: int = 0
    filtered_out: int = 0
    already_redriven: int = 0
    unconfirmed: int = 0
    already_in_raw: int = 0
    now_valid: int = 0
    sent: int = 0
    failed: int = 0
    state_refused: int = 0
    resignalled: int = 0
    resignal_failed: int = 0
    still_invalid: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False

    def table(self) -> str:
        """The summary as a two-column table (what the CLI prints at the end)."""
        dry = " (dry run: nothing sent)" if self.dry_run else ""
        rows = [
            ("dead letters read", self.read),
            ("left out by --reason/--since", self.filtered_out),
            ("already redriven (skipped)", self.already_redriven),
            ("unconfirmed earlier send (skipped)", self.unconfirmed),
            ("already in raw/ (skipped)", self.already_in_raw),
            ("now valid", self.now_valid),
            ("sent" + dry, self.sent),
            ("send failed", self.failed),
            ("entity_rejected: state to re-apply", self.state_refused),
            ("entity_rejected: re-signalled" + dry, self.resignalled),
            ("entity_rejected: signal failed", self.resignal_failed),
        ]
        rows += [(f"still invalid: {reason}", count) for reason, count in sorted(self.still_invalid.items())]
        width = max(len(label) for label, _ in rows)
        lines = [f"redrive of {self.source}", f"{'':-<{width}}  {'':-<8}"]
        lines += [f"{label:<{width}}  {count:>8}" for label, count in rows]
        return "\n".join(lines)


def read_dead_letters(lake: LakeStore, source: str) -> list[DeadLetterEntry]:
    """Every dead letter of ``source`` in the lake, first seen first; one per identity."""
    entries: dict[Identity, DeadLetterEntry] = {}
    for path in lake.list_paths(f"{DEADLETTER_AREA}/{safe_segment(source)}"):
        if not path.endswith(formats.EXTENSIONS["jsonl"]):
            continue
        for row in formats.decode("jsonl", lake.read(path)):
            entry = _entry(row)
            entries.setdefault(entry.identity, entry)
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
        incarnation=int(str(row.get("_incarnation") or 0)),
        offset=int(str(row["_offset"])),
        key=None if key is None else str(key),
        timestamp_ms=None if timestamp is None else int(str(timestamp)),
        reason=str(row.get("reason", "")),
        raw=raw,
        dead_lettered_at=int(str(row.get("dead_lettered_at") or 0)),
    )


def redrive_log(lake: LakeStore, source: str) -> tuple[set[Identity], set[Identity]]:
    """Identities already redriven (acknowledged) and identities announced but never confirmed."""
    sent: set[Identity] = set()
    intended: set[Identity] = set()
    for path in lake.list_paths(f"{REDRIVE_AREA}/{safe_segment(source)}"):
        target = sent if path.endswith(".sent.jsonl.gz") else intended if path.endswith(".intent.jsonl.gz") else None
        if target is None:
            continue
        for row in formats.decode("jsonl", lake.read(path)):
            incarnation = int(row.get("_incarnation") or 0)
            target.add((str(row["_topic"]), int(row["_partition"]), incarnation, int(row["_offset"])))
    return sent, intended - sent


def raw_rows(lake: LakeStore, source: str, identities: Iterable[Identity]) -> dict[Identity, Row]:
    """The raw rows of ``identities`` that are in the lake; only files whose names cover one of them are read."""
    wanted = set(identities)
    by_partition: dict[tuple[str, int, int], list[int]] = {}
    for topic, partition, incarnation, offset in wanted:
        by_partition.setdefault((topic, partition, incarnation), []).append(offset)
    found: dict[Identity, Row] = {}
    for path in lake.list_paths(f"{RAW_AREA}/{safe_segment(source)}") if wanted else ():
        name = parse_batch_file_name(path)
        fmt = _format_of(path)
        if name is None or fmt is None:
            continue
        offsets = by_partition.get((name.topic, name.partition, name.incarnation), [])
        if not any(name.first <= offset <= name.last for offset in offsets):
            continue
        for row in formats.decode(fmt, lake.read(path)):
            identity = (str(row["_topic"]), int(row["_partition"]), int(row.get("_incarnation") or 0), row["_offset"])
            if identity in wanted:
                found[identity] = row
    return found


def _format_of(path: str) -> LakeFormat | None:
    for fmt in get_args(LakeFormat):
        if path.endswith("." + formats.EXTENSIONS[fmt]):
            return cast(LakeFormat, fmt)
    return None


def write_redrive_log(lake: LakeStore, source: str, run_id: str, kind: str, entries: Sequence[DeadLetterEntry]) -> None:
    """Record ``entries`` in the redrive log as ``kind`` (``intent`` or ``sent``) of run ``run_id``."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    rows = [
        {"_topic": e.topic, "_partition": e.partition, "_incarnation": e.incarnation, "_offset": e.offset}
        | {"redriven_at": now_ms}
        for e in entries
    ]
    data = formats.encode("jsonl", REDRIVE_LOG_COLUMNS, rows, record_name="redrive")
    lake.create(f"{REDRIVE_AREA}/{safe_segment(source)}/{run_id}.{kind}.jsonl.gz", data)


@dataclass(frozen=True)
class RedriveTarget:
    """Where a redrive sends, and how the source's records are checked on the way."""

    topic: str
    max_record_bytes: int
    fmt: LakeFormat = "parquet"
    state_buckets: int | None = None  # N of the source's key buckets; None: the lake's record
    decoder: AvroDecoder | None = None  # an Avro source's registry decoder (``decoder_for``)


def redrive(
    source: Source,
    *,
    lake: LakeStore,
    target: RedriveTarget,
    sender: RedriveSender | None = None,
    signaller: EntitySignaller | None = None,
    reasons: frozenset[str] = frozenset(),
    since_ms: int | None = None,
    dry_run: bool = False,
) -> RedriveSummary:
    """Send ``source``'s dead letters that now pass the whole path to ``target.topic``, each at most once, and
    re-apply the state updates entities refused (``entity_rejected``) from raw."""
    summary = RedriveSummary(source.name, dry_run=dry_run)
    sent_before, unconfirmed = redrive_log(lake, source.name)
    candidates: list[DeadLetterEntry] = []
    for entry in read_dead_letters(lake, source.name):
        summary.read += 1
        if (reasons and entry.reason not in reasons) or (since_ms is not None and entry.dead_lettered_at < since_ms):
            summary.filtered_out += 1
        elif entry.identity in sent_before:
            summary.already_redriven += 1
        elif entry.identity in unconfirmed and entry.reason != ENTITY_REJECTED:  # a re-signal can be repeated
            summary.unconfirmed += 1
        else:
            candidates.append(entry)
    refused = [entry for entry in candidates if entry.reason == ENTITY_REJECTED]
    passing = _passing(source, [entry for entry in candidates if entry.reason != ENTITY_REJECTED], target, summary)
    in_raw = raw_rows(lake, source.name, [entry.identity for entry in passing + refused])
    to_send = [entry for entry in passing if entry.identity not in in_raw]
    summary.already_in_raw = len(passing) - len(to_send)
    summary.now_valid = len(to_send)
    to_signal = [entry for entry in refused if entry.identity in in_raw]
    summary.state_refused = len(to_signal)
    if len(refused) > len(to_signal):  # their raw rows are gone (removed by hand?): nothing to re-apply from
        summary.still_invalid["entity_rejected, not in raw/"] += len(refused) - len(to_signal)
    if dry_run:
        return summary
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    if to_send:
        if sender is None:
            raise ValueError("a sender is needed to send dead letters that now pass")
        _send(lake, source.name, run_id, target.topic, sender, to_send, summary)
    if to_signal:
        if signaller is None:
            raise ValueError("an entity signaller is needed to re-apply refused state updates")
        refused_rows = [(entry, in_raw[entry.identity]) for entry in to_signal]
        buckets = target.state_buckets or bucket_counts(lake).of(source.name)
        done = _resignal(lake, source.name, f"{run_id}-state", signaller, refused_rows, buckets)
        summary.resignalled, summary.resignal_failed = done, len(to_signal) - done
    return summary


def _passing(
    source: Source, entries: list[DeadLetterEntry], target: RedriveTarget, summary: RedriveSummary
) -> list[DeadLetterEntry]:
    """The entries whose records now pass validation, transform, the entity key and the lake format's encoder.

    One batch per incarnation: two lives of a topic can hold a record at the same offset, and a batch
    keeps one record per offset."""
    lives: dict[int, list[DeadLetterEntry]] = {}
    for entry in entries:
        lives.setdefault(entry.incarnation, []).append(entry)
    return [passed for life in lives.values() for passed in _passing_in_one_life(source, life, target, summary)]


def _passing_in_one_life(
    source: Source, entries: list[DeadLetterEntry], target: RedriveTarget, summary: RedriveSummary
) -> list[DeadLetterEntry]:
    entry_of = {(entry.topic, entry.partition, entry.offset): entry for entry in entries}
    records = [KafkaRecord(e.topic, e.partition, e.offset, e.key, e.raw, e.timestamp_ms) for e in entries]
    keyed = entity_for(source.name) is not None
    batch = process_batch(
        source, records, max_record_bytes=target.max_record_bytes, keyed=keyed, decoder=target.decoder
    )
    fmt = format_named(target.fmt)
    passing = []
    for part in batch:
        unencodable = plan_files(part, fmt, now_ms=0).unencodable
        for letter in (*part.dead_letters, *unencodable):
            summary.still_invalid[letter.reason] += 1
        refused = {id(letter.record) for letter in unencodable}
        passing += [origin for origin in part.origins if id(origin) not in refused]
    return [entry_of[(o.topic, o.partition, o.offset)] for o in passing]


def _send(
    lake: LakeStore,
    source: str,
    run_id: str,
    topic: str,
    sender: RedriveSender,
    entries: list[DeadLetterEntry],
    summary: RedriveSummary,
) -> None:
    write_redrive_log(lake, source, run_id, "intent", entries)
    outgoing = [
        OutgoingRedrive(entry.key, entry.raw or b"", ((REDRIVE_HEADER, _origin(entry)),), entry) for entry in entries
    ]
    delivered = sender.send(topic, outgoing)
    acknowledged = [message.entry for message, ok in zip(outgoing, delivered, strict=True) if ok]
    write_redrive_log(lake, source, run_id, "sent", acknowledged)
    summary.sent = len(acknowledged)
    summary.failed = len(outgoing) - len(acknowledged)


def _origin(entry: DeadLetterEntry) -> bytes:
    incarnation = f"i{entry.incarnation}/" if entry.incarnation else ""
    return f"{entry.topic}/{entry.partition}/{incarnation}{entry.offset}".encode()


def entry_partition(entry: DeadLetterEntry) -> TopicPartition:
    return TopicPartition(entry.topic, entry.partition)


def _resignal(
    lake: LakeStore,
    source: str,
    run_id: str,
    signaller: EntitySignaller,
    refused: list[tuple[DeadLetterEntry, Row]],
    buckets: int,
) -> int:
    """One signal per raw row, carrying only its own offset: the entity applies it once whatever it holds.
    Returns how many the entity API accepted."""
    pairs = [
        (entry, signal)
        for entry, row in refused
        for signal in signals_for(
            source, [row], {entry_partition(entry): OffsetSpan(entry.offset, entry.offset)}, buckets=buckets
        )
    ]
    write_redrive_log(lake, source, run_id, "intent", [entry for entry, _ in pairs])
    accepted = signaller.signal([signal for _, signal in pairs])
    done = [entry for (entry, _), ok in zip(pairs, accepted, strict=True) if ok]
    write_redrive_log(lake, source, run_id, "sent", done)
    return len(done)
