"""Dead-letter redrive: send back dead letters that now pass the whole path, once; re-apply refused state from raw.

Dead letters are gzipped JSON lines under ``deadletter/<source>/`` (``shared.landing.files``). A
dead letter is identified by its record's topic, partition, incarnation and offset. A redrive:

- re-runs each dead letter through the whole processing path: size, JSON, schema, transform, the
  entity key (``bad_key``) and the lake format's encoder (``unencodable``). Only what passes is sent;
- never sends a record that already has a raw row with its identity (looked up in ``raw/``, not in
  the landing ledger, which counts dead-lettered offsets as landed too);
- never sends ``entity_rejected`` letters: their records are in raw already, and only their state
  update was refused. It is re-applied from the raw row, as a signal through the entity API
  (``EntitySignaller``); entities apply an offset once, so a repeated signal changes nothing;
- never sends ``.reprocessed-`` letters (rows a ``tools.reprocess`` promotion removed from curated/):
  their records landed and were counted in state; ``tools.reprocess`` restores them once they pass;
- never sends a letter of a landing that is still pending and unfinished (its partition's landing
  ledger names the file; ``names_pending``): the partition's next owner may remove that landing and
  land its records again, this one too. A later run sends it once the landing is counted;
- never sends a letter whose record may be in a raw file it cannot read (named: "unknown").

What was done is recorded in the lake under ``_redrive/<source>/`` (the *redrive log*, not the
landing ledger), so a dead letter is never sent twice:

- ``<run>.intent.jsonl.gz`` is written *before* sending: the identities this run is about to send;
- ``<run>.unsent.jsonl.gz`` after sending, when some were certainly not appended (``Delivery.NOT_SENT``);
- ``<run>.sent.jsonl.gz`` last: those the broker acknowledged (or the entity API accepted).

A later run skips every identity in an intent or ``sent`` log, except those in the run's ``unsent`` log: it
sends them again. One with an intent but neither (the run died mid-send) is reported as unconfirmed and not
sent again: sending it twice would land it twice, under a new offset. ``unsent`` is written before ``sent``
so that a run cut between them (a kill, a lake failure) leaves only that safe state: its acknowledged letters
unconfirmed, its unsent ones sent by the next run. A run cut before its ``unsent`` log leaves them all
unconfirmed: what it knew of them died with it. A re-signal is the exception: an entity applies an offset
once, so one the entity API did not confirm is signalled again. Logs written before incarnations read as
incarnation 0.

The log only protects what was written to it, and a run reads it long before it writes its intent.
So a run that sends first takes the source's *redrive lease* (``_redrive/<source>/lease.json``,
``take_lease``): a second run at the same time (two operators, a scheduled and a manual run)
stops with ``RedriveInProgress`` and sends nothing. A dry run sends nothing and takes no lease.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import secrets
import socket
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Protocol, TypeVar

import orjson

from shared import formats
from shared.batch import process_batch
from shared.dead_letters import Reason
from shared.errors import (
    LakeError,
    LakeRefused,
    RedriveInProgress,
    StreamingPocError,
    UnreadableLakeFile,
    UnsafePath,
    WriteConflict,
)
from shared.formats import format_named
from shared.lake.base import LakeStore
from shared.landing.files import plan_files
from shared.landing.ledger import names_pending, stored_holes
from shared.landing.partition import CLOCK_SKEW_SECONDS, minimum_lease_seconds
from shared.landing.raw_rows import Identity, raw_rows
from shared.layout import DEADLETTER_AREA, is_reprocessed, safe_segment
from shared.records import KafkaRecord, OffsetSpan, TopicPartition
from shared.schema_registry.decoder import AvroDecoder
from shared.schema_registry.wire import CONTENT_TYPE_HEADER
from shared.settings import LakeFormat
from shared.source_model import INT64_MAX, MAX_TIMESTAMP_MS, Column, Row, Source
from shared.state.aggregate import Signal, signals_for, with_holes
from shared.state.bucket_counts import bucket_counts
from shared.state.registry import keeps_state

log = logging.getLogger("streamingpoc.redrive")
REDRIVE_AREA = "_redrive"
REDRIVE_LEASE_FILE = "lease.json"
STATE_RUN = "-state"  # the run id suffix of a run's re-signals of refused state updates (its log apart from its sends)
REDRIVE_LEASE_SECONDS = 300.0  # why this long, and no longer: ``RedriveLease``
REDRIVE_LOG_COLUMNS = (
    Column("_topic", "string", nullable=False),
    Column("_partition", "long", nullable=False),
    Column("_incarnation", "long", nullable=False),
    Column("_offset", "long", nullable=False),
    Column("redriven_at", "timestamp", nullable=False),
)
REDRIVE_HEADER = "streamingpoc-redriven-from"
ENTITY_REJECTED = "entity_rejected"
T = TypeVar("T")
PENDING_LANDING = "pending landing: not sent (a later run)"
REMOVED_BY_A_PROMOTION = "removed by a promotion (never sent)"
RAW_UNREADABLE = "unknown: raw file unreadable (not sent)"
_SHOWN_WHEN_COUNTING = frozenset({PENDING_LANDING, REMOVED_BY_A_PROMOTION, RAW_UNREADABLE})  # summary rows


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
    content_type: str | None = None  # the record's content-type header, when it was read

    @property
    def identity(self) -> Identity:
        return (self.topic, self.partition, self.incarnation, self.offset)


@dataclass(frozen=True, slots=True)
class OutgoingRedrive:
    key: str | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    entry: DeadLetterEntry


class Delivery(StrEnum):
    """What became of one message a redrive sent."""

    ACKNOWLEDGED = "acknowledged"  # the broker has it
    NOT_SENT = "not_sent"  # certainly not appended (refused before or by the broker): a later run sends it again
    UNKNOWN = "unknown"  # no answer (a timeout, a cut connection): it may have landed, so it is never sent again


class RedriveSender(Protocol):
    """Sends to one topic; returns, per message and in order, what became of it (``True``: acknowledged,
    ``False``: unknown)."""

    def send(self, topic: str, messages: Sequence[OutgoingRedrive]) -> Sequence[Delivery | bool]: ...


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
    reprocessed: int = 0
    pending_landing: int = 0
    already_in_raw: int = 0
    raw_unknown: int = 0
    now_valid: int = 0
    sent: int = 0
    failed: int = 0
    not_sent: int = 0
    state_refused: int = 0
    resignalled: int = 0
    resignal_failed: int = 0
    still_invalid: Counter[str] = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)  # dead-letter files that could not be read: "path: why"
    pending_files: list[str] = field(default_factory=list)  # dead-letter files of a pending, unfinished landing
    unknown: list[str] = field(default_factory=list)  # letters a raw file that could not be read may hold: "id: why"
    dry_run: bool = False

    def table(self) -> str:
        """The summary as a two-column table (what the CLI prints at the end)."""
        dry = " (dry run: nothing sent)" if self.dry_run else ""
        rows = [
            ("dead letters read", self.read),
            ("left out by --reason/--since", self.filtered_out),
            ("already redriven (skipped)", self.already_redriven),
            ("unconfirmed earlier send (skipped)", self.unconfirmed),
            (REMOVED_BY_A_PROMOTION, self.reprocessed),
            (PENDING_LANDING, self.pending_landing),
            ("already in raw/ (skipped)", self.already_in_raw),
            (RAW_UNREADABLE, self.raw_unknown),
            ("now valid", self.now_valid),
            ("sent" + dry, self.sent),
            ("send unconfirmed (never sent again)", self.failed),
            ("not sent (sent again next run)", self.not_sent),
            ("entity_rejected: state to re-apply", self.state_refused),
            ("entity_rejected: re-signalled" + dry, self.resignalled),
            ("entity_rejected: signal failed", self.resignal_failed),
        ]
        rows = [(label, count) for label, count in rows if count or label not in _SHOWN_WHEN_COUNTING]
        rows += [(f"still invalid: {reason}", count) for reason, count in sorted(self.still_invalid.items())]
        rows += [("unreadable dead-letter files (left out)", len(self.unreadable))] if self.unreadable else []
        width = max(len(label) for label, _ in rows)
        lines = [f"redrive of {self.source}", f"{'':-<{width}}  {'':-<8}"]
        lines += [f"{label:<{width}}  {count:>8}" for label, count in rows]
        lines += [f"unreadable: {path}" for path in self.unreadable]
        lines += [f"pending landing: not sent: {path}" for path in self.pending_files]
        lines += [f"unknown: not sent: {letter}" for letter in self.unknown]
        return "\n".join(lines)


def read_dead_letters(lake: LakeStore, source: str, unreadable: list[str] | None = None) -> list[DeadLetterEntry]:
    """Every dead letter of ``source`` in the lake, first seen first; one per identity.

    A file that is not gzipped JSON lines of dead-letter rows raises :class:`UnreadableLakeFile` naming it;
    given ``unreadable``, it is left out instead and ``"<path>: <why>"`` appended there."""
    entries: dict[Identity, DeadLetterEntry] = {}
    for path in _dead_letter_files(lake, source):
        try:
            file_entries = _parsed_rows(lake, path, _entry)
        except UnreadableLakeFile as error:
            if unreadable is None:
                raise
            unreadable.append(str(error))
            continue
        for entry in file_entries:
            entries.setdefault(entry.identity, entry)
    return list(entries.values())


def _dead_letter_files(lake: LakeStore, source: str) -> list[str]:
    return [
        path
        for path in lake.list_paths(f"{DEADLETTER_AREA}/{safe_segment(source)}")
        if path.endswith(formats.EXTENSIONS["jsonl"])
    ]


@dataclass(slots=True)
class _Letters:
    """What a redrive reads: one entry per identity (not of ``.reprocessed-`` files), the identities of
    ``.reprocessed-`` letters, and those in files of a pending landing not finished yet."""

    entries: dict[Identity, DeadLetterEntry] = field(default_factory=dict)
    reprocessed: set[Identity] = field(default_factory=set)
    pending: set[Identity] = field(default_factory=set)
    oversized: set[Identity] = field(default_factory=set)  # still past the size limit: their bytes are not kept


def _letters_to_check(
    lake: LakeStore,
    source: str,
    summary: RedriveSummary,
    needs_value: Callable[[DeadLetterEntry], bool],
    max_record_bytes: int,
) -> _Letters:
    """Every dead letter of ``source``, sorted as a redrive treats them; a file that cannot be read is named in
    ``summary.unreadable``, one of an unfinished landing in ``summary.pending_files``.

    A letter keeps its record's bytes only when ``needs_value`` says it may be sent and they are within the size
    limit: what a run holds grows with the letters it may send, not with every letter ever landed (600 letters of
    1.2 MB, gzipped to 8 KB each, took 832 MB for a run whose filter left out every one)."""
    letters = _Letters()
    for path in _dead_letter_files(lake, source):
        reprocessed = is_reprocessed(path)
        try:
            # the ledger first, then the file: a landing no longer pending then was counted or removed before
            pending = not reprocessed and _names_pending(lake, source, path)
            file_entries = _parsed_rows(lake, path, _entry)
        except UnreadableLakeFile as error:
            summary.unreadable.append(str(error))
            continue
        if reprocessed:
            letters.reprocessed.update(entry.identity for entry in file_entries)
            continue
        if pending:
            summary.pending_files.append(path)
            letters.pending.update(entry.identity for entry in file_entries)
        for entry in file_entries:
            if entry.identity in letters.entries:
                continue
            if entry.raw is not None:
                needed = needs_value(entry)
                if needed and len(entry.raw) > max_record_bytes:
                    letters.oversized.add(entry.identity)
                    needed = False
                if not needed:
                    entry = dataclasses.replace(entry, raw=None)
            letters.entries[entry.identity] = entry
    return letters


def _names_pending(lake: LakeStore, source: str, path: str) -> bool:
    """Whether ``path`` is a file of a pending landing not finished yet (``names_pending``); a ledger the lake
    refuses to read (not an outage) makes the file unreadable."""
    try:
        return names_pending(lake, source, path, unless_complete=True)
    except LakeRefused:  # the lake refuses the app, not this file's ledger
        raise
    except LakeError as error:
        raise UnreadableLakeFile(path, f"its landing ledger: {type(error).__name__}: {error}") from error


def _parsed_rows(lake: LakeStore, path: str, parse: Callable[[dict[str, object]], T]) -> list[T]:
    """Each row of a gzipped JSON lines file, parsed; :class:`UnreadableLakeFile` naming the file when it is
    not one, a row lacks what ``parse`` reads, or the lake refuses it for good (a name it does not take, a file
    deleted since it was listed). An outage (``LakeUnavailable``) is not the file's: it propagates."""
    try:
        data = lake.read(path)
    except (UnreadableLakeFile, LakeRefused):
        raise
    except LakeError as error:
        raise UnreadableLakeFile(path, f"{type(error).__name__}: {error}") from error
    try:
        return [parse(row) for row in formats.decode("jsonl", data)]
    except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError, AttributeError) as error:
        raise UnreadableLakeFile(path, f"{type(error).__name__}: {error}") from error


def _entry(row: dict[str, object]) -> DeadLetterEntry:
    """One dead-letter row; ``ValueError`` when its identity is not one a landing writes (a foreign row): a topic
    that is no path segment, a partition, incarnation or offset below 0 or beyond a Kafka long."""
    raw_text = row.get("raw_base64")
    try:
        raw = None if raw_text is None else base64.b64decode(str(raw_text), validate=True)
    except (binascii.Error, ValueError):
        raw = None
    timestamp = row.get("_kafka_timestamp")
    key = row.get("_key")
    entry = DeadLetterEntry(
        topic=str(row["_topic"]),
        partition=_whole_number(row["_partition"]),
        incarnation=_whole_number(row.get("_incarnation") or 0),
        offset=_whole_number(row["_offset"]),
        key=None if key is None else str(key),
        timestamp_ms=None if timestamp is None else _whole_number(timestamp),
        reason=str(row.get("reason", "")),
        raw=raw,
        dead_lettered_at=_whole_number(row.get("dead_lettered_at") or 0),
        content_type=None if row.get("content_type") is None else str(row["content_type"]),
    )
    _check_identity(entry)
    return entry


def _whole_number(value: object) -> int:
    """A number as a landing writes it: a JSON integer, or its ASCII digits. ``int()`` alone would also take
    other scripts' digits, ``_`` and spaces (``"\u0661"``, ``"1_0"``): a foreign row read as another identity."""
    if type(value) is int:
        return value
    if type(value) is str and value.isascii() and value.isdigit():
        return int(value)
    raise ValueError(f"{value!r} is not a whole number")


def _headers(entry: DeadLetterEntry) -> tuple[tuple[str, bytes], ...]:
    """The redriven record's headers: where it came from, and its content type as it was read (an Event Hubs
    Schema Registry id travels there)."""
    origin = (REDRIVE_HEADER, _origin(entry))
    if entry.content_type is None:
        return (origin,)
    return origin, (CONTENT_TYPE_HEADER, entry.content_type.encode("utf-8", "surrogatepass"))


def _check_identity(entry: DeadLetterEntry) -> None:
    try:
        safe_segment(entry.topic)  # a landing names its files by it
    except UnsafePath as error:
        raise ValueError(f"topic {entry.topic[:80]!r}: {error}") from error
    for name in ("partition", "incarnation", "offset"):
        if not 0 <= getattr(entry, name) <= INT64_MAX:
            raise ValueError(f"{name} {getattr(entry, name)} is not a Kafka {name}")


def redrive_log(lake: LakeStore, source: str, *, sends_only: bool = False) -> tuple[set[Identity], set[Identity]]:
    """Identities already redriven (acknowledged) and identities announced but never confirmed; with
    ``sends_only``, of the runs that sent records to Kafka only, not of those that re-signalled state
    (``STATE_RUN``): a re-signal puts nothing back in raw/ or curated/.

    Per run, an identity it announced (``intent``) is settled when the broker acknowledged it
    (``sent``) or certainly did not append it (``unsent``: a later run sends it again); otherwise the
    run's send is unconfirmed, and the identity is never sent again. A run writes ``unsent`` before ``sent``
    (``_send``), so that wherever it is cut, what this reads is safe: no outcome yet, every announced identity
    unconfirmed; ``unsent`` alone, the acknowledged ones unconfirmed and the unsent ones free. Logs of runs that
    wrote ``sent`` first read the same way."""
    logs: dict[tuple[str, str], set[Identity]] = defaultdict(set)
    for path in lake.list_paths(f"{REDRIVE_AREA}/{safe_segment(source)}"):
        run, _, kind = path.rsplit("/", 1)[-1].removesuffix(".jsonl.gz").rpartition(".")
        if kind not in ("intent", "sent", "unsent") or (sends_only and run.endswith(STATE_RUN)):
            continue
        logs[(run, kind)].update(_parsed_rows(lake, path, _logged_identity))
    sent = set().union(*(identities for (_, kind), identities in logs.items() if kind == "sent"))
    unconfirmed = set().union(
        *(
            identities - logs.get((run, "sent"), set()) - logs.get((run, "unsent"), set())
            for (run, kind), identities in logs.items()
            if kind == "intent"
        )
    )
    return sent, unconfirmed - sent


def _logged_identity(row: dict[str, object]) -> Identity:
    incarnation = _whole_number(row.get("_incarnation") or 0)
    return (str(row["_topic"]), _whole_number(row["_partition"]), incarnation, _whole_number(row["_offset"]))


def write_redrive_log(lake: LakeStore, source: str, run_id: str, kind: str, entries: Sequence[DeadLetterEntry]) -> None:
    """Record ``entries`` in the redrive log as ``kind`` (``intent``, ``sent`` or ``unsent``) of run ``run_id``."""
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    rows = [
        {"_topic": e.topic, "_partition": e.partition, "_incarnation": e.incarnation, "_offset": e.offset}
        | {"redriven_at": now_ms}
        for e in entries
    ]
    data = formats.encode("jsonl", REDRIVE_LOG_COLUMNS, rows, record_name="redrive")
    lake.create(f"{REDRIVE_AREA}/{safe_segment(source)}/{run_id}.{kind}.jsonl.gz", data)


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """What the lease file holds: the run that has it, its host, and until when (ms since the epoch; 0: released)."""

    owner: str
    host: str
    expires_ms: int

    def encode(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @staticmethod
    def decode(data: bytes) -> LeaseRecord | None:
        """The record, or None when the file is not one (then it counts as free: taking it is still conditional).
        An end past year 9999 (or not finite) is not one: no date can be built from it to name the holder by."""
        try:
            fields = orjson.loads(data)  # depth-limited: a ValueError, where json raised RecursionError
            record = LeaseRecord(str(fields["owner"]), str(fields["host"]), int(fields["expires_ms"]))
        except (ValueError, TypeError, KeyError, OverflowError):
            return None
        return record if 0 <= record.expires_ms <= MAX_TIMESTAMP_MS else None

    def live_at(self, now: float) -> bool:
        """Still held, even if the holder's clock is behind this host's by the allowed skew."""
        return now * 1000 < self.expires_ms + CLOCK_SKEW_SECONDS * 1000

    def describe(self) -> str:
        until = datetime.fromtimestamp(self.expires_ms / 1000, UTC)
        return f"run {self.owner} on {self.host}, lease until {until:%Y-%m-%dT%H:%M:%SZ}"


@dataclass(slots=True)
class RedriveLease:
    """One run's exclusive hold on redriving a source, in the lake: a file only ever replaced at the version read.

    Why a lease: a run reads the redrive log, checks every dead letter, then writes its intent and sends. Two runs
    that both read the log before either wrote would both send every dead letter, and it would land twice. Once an
    intent is written the log protects those identities; the lease covers the time before that.

    Why five minutes (``REDRIVE_LEASE_SECONDS``): short, so that after a crash the next run is refused for at most
    five minutes (the message says until when); long enough for a run to read and check its dead letters before it
    sends. A run slower than that is still safe: once another run has taken the lease over, the slow run's
    ``fence`` fails and it sends nothing. The lease is never shorter than the lake's ``minimum_lease_seconds``
    (about two minutes in Azure): after the fence, the intent (the next request) is written before anyone can take
    over. Sending may outlast the lease: a run that takes it over then reads that intent and skips those dead
    letters as unconfirmed."""

    lake: LakeStore
    path: str
    owner: str
    clock: Callable[[], float] = time.time
    version: str | None = None  # of the lease file as this run last wrote it

    @property
    def seconds(self) -> float:
        return max(REDRIVE_LEASE_SECONDS, minimum_lease_seconds(self.lake))

    def hold(self, version: str | None) -> None:
        """Write this run's lease, for ``seconds`` from now, over the file at ``version`` (None: only if none)."""
        self.version = self._write(self.clock() + self.seconds, version)

    def fence(self) -> None:
        """Renew the lease at the version this run last wrote; called just before the intent is written.

        ``RedriveInProgress`` when another run took it over meanwhile: this run must not send."""
        try:
            self.hold(self.version)
        except WriteConflict as error:
            raise RedriveInProgress(
                f"another redrive took over this run's lease ({self.path}); nothing was sent"
            ) from error

    def release(self) -> None:
        """Mark the lease free if this run still holds it. Best effort: a lease left behind expires by itself."""
        try:
            self._write(None, self.version)
        except WriteConflict:
            pass  # another run has taken it over: it is not this run's to release
        except StreamingPocError as error:
            log.warning("redrive lease %s not released (%s); it expires by itself", self.path, error)

    def _write(self, until: float | None, version: str | None) -> str:
        expires_ms = 0 if until is None else int(until * 1000)
        record = LeaseRecord(self.owner, socket.gethostname(), expires_ms)
        return self.lake.write_if(self.path, record.encode(), version)


def lease_path(source: str) -> str:
    return f"{REDRIVE_AREA}/{safe_segment(source)}/{REDRIVE_LEASE_FILE}"


def take_lease(lake: LakeStore, source: str, owner: str, clock: Callable[[], float] = time.time) -> RedriveLease:
    """Take ``source``'s redrive lease for run ``owner``: when there is none, or it was released or has expired.

    ``RedriveInProgress`` when another run holds it, or takes it at the same moment (the conditional write loses)."""
    path = lease_path(source)
    held = lake.read_versioned(path)
    holder = None if held is None else LeaseRecord.decode(held[0])
    if holder is not None and holder.live_at(clock()):
        raise RedriveInProgress(f"another redrive of {source} is running ({holder.describe()}); nothing was sent")
    lease = RedriveLease(lake, path, owner, clock)
    try:
        lease.hold(None if held is None else held[1])
    except WriteConflict as error:
        raise RedriveInProgress(f"another redrive of {source} took its lease just now; nothing was sent") from error
    return lease


@dataclass(frozen=True)
class RedriveTarget:
    """Where a redrive sends, and how the source's records are checked on the way."""

    topic: str
    max_record_bytes: int
    fmt: LakeFormat = "parquet"
    state_buckets: int | None = None  # N of the source's key buckets; None: the lake's record, read when needed
    bucket_settings: tuple[int | None, int | None] = (None, None)  # ``state_bucket_settings``: how N is read then
    decoder: AvroDecoder | None = None  # an Avro source's registry decoder (``decoder_for``)
    state_enabled: bool = True  # ``<SOURCE>_STATE_ENABLED``: entity keys are checked only then, as processing does


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
    re-apply the state updates entities refused (``entity_rejected``) from raw.

    Holds the source's redrive lease from before it reads the redrive log until it is done, so that no other run
    sends meanwhile; ``RedriveInProgress`` (nothing sent) when another run holds it. A dry run takes none."""
    summary = RedriveSummary(source.name, dry_run=dry_run)
    if dry_run:
        _plan(source, lake, target, reasons, since_ms, summary)
        return summary
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"
    lease = take_lease(lake, source.name, run_id)
    try:
        to_send, to_resignal = _plan(source, lake, target, reasons, since_ms, summary)
        buckets = 0
        if to_resignal:  # N before anything is sent: a lost record of it (RecordLost) stops the run with nothing sent
            if signaller is None:
                raise ValueError("an entity signaller is needed to re-apply refused state updates")
            buckets = target.state_buckets or bucket_counts(lake, *target.bucket_settings).of(source.name)
        if to_send:
            if sender is None:
                raise ValueError("a sender is needed to send dead letters that now pass")
            lease.fence()
            _send(lake, source.name, run_id, target.topic, sender, to_send, summary)
        if to_resignal and signaller is not None:
            done = _resignal(lake, source.name, f"{run_id}{STATE_RUN}", signaller, to_resignal, buckets)
            summary.resignalled, summary.resignal_failed = done, len(to_resignal) - done
    finally:
        lease.release()
    return summary


def _plan(
    source: Source,
    lake: LakeStore,
    target: RedriveTarget,
    reasons: frozenset[str],
    since_ms: int | None,
    summary: RedriveSummary,
) -> tuple[list[DeadLetterEntry], list[tuple[DeadLetterEntry, Row]]]:
    """What this run would do, counted in ``summary``: the dead letters to send, and the refused state updates to
    re-apply with their raw rows."""
    sent_before, unconfirmed = redrive_log(lake, source.name)

    def left_out(entry: DeadLetterEntry) -> bool:
        return bool(reasons and entry.reason not in reasons) or (
            since_ms is not None and entry.dead_lettered_at < since_ms
        )

    def may_be_sent(entry: DeadLetterEntry) -> bool:  # a refused state update is re-applied from raw/, never sent
        done = entry.identity in sent_before or entry.identity in unconfirmed
        return entry.reason != ENTITY_REJECTED and not left_out(entry) and not done

    letters = _letters_to_check(lake, source.name, summary, may_be_sent, target.max_record_bytes)
    summary.read = len(letters.entries) + len(letters.reprocessed)
    candidates: list[DeadLetterEntry] = []
    for entry in letters.entries.values():
        if left_out(entry):
            summary.filtered_out += 1
        elif entry.identity in letters.pending:  # the landing may be removed and its records landed again
            summary.pending_landing += 1
        elif entry.identity in letters.reprocessed and entry.reason != ENTITY_REJECTED:
            summary.reprocessed += 1  # its record landed (a promotion removed its row): never sent
        elif entry.identity in sent_before:
            summary.already_redriven += 1
        elif entry.identity in unconfirmed and entry.reason != ENTITY_REJECTED:  # a re-signal can be repeated
            summary.unconfirmed += 1
        elif entry.identity in letters.oversized:  # what validation would say first, without holding its bytes
            summary.still_invalid[Reason.OVERSIZED] += 1
        else:
            candidates.append(entry)
    summary.reprocessed += len(letters.reprocessed)  # their records landed and were counted: never sent
    refused = [entry for entry in candidates if entry.reason == ENTITY_REJECTED]
    passing = _passing(source, [entry for entry in candidates if entry.reason != ENTITY_REJECTED], target, summary)
    in_doubt: dict[Identity, str] = {}
    in_raw = raw_rows(lake, source.name, [entry.identity for entry in passing + refused], unreadable=in_doubt)
    for entry in passing + refused:  # a raw file that may hold its record cannot be read: it may have landed
        if entry.identity in in_doubt:
            summary.unknown.append(f"{_origin(entry).decode()} ({entry.reason}): raw file {in_doubt[entry.identity]}")
    summary.raw_unknown = len(summary.unknown)
    to_send = [entry for entry in passing if entry.identity not in in_raw and entry.identity not in in_doubt]
    summary.already_in_raw = sum(1 for entry in passing if entry.identity in in_raw)
    summary.now_valid = len(to_send)
    to_resignal = [(entry, in_raw[entry.identity]) for entry in refused if entry.identity in in_raw]
    summary.state_refused = len(to_resignal)
    gone = sum(1 for entry in refused if entry.identity not in in_raw and entry.identity not in in_doubt)
    if gone:  # their raw rows are gone (removed by hand?): nothing to re-apply from
        summary.still_invalid["entity_rejected, not in raw/"] += gone
    return to_send, to_resignal


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
    records = [
        KafkaRecord(e.topic, e.partition, e.offset, e.key, e.raw, e.timestamp_ms, content_type=e.content_type)
        for e in entries
    ]
    keyed = keeps_state(source.name, target.state_enabled)
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
    outgoing = [OutgoingRedrive(entry.key, entry.raw or b"", _headers(entry), entry) for entry in entries]
    outcomes = [_delivery(outcome) for outcome in sender.send(topic, outgoing)]
    by_outcome: dict[Delivery, list[DeadLetterEntry]] = defaultdict(list)
    for message, outcome in zip(outgoing, outcomes, strict=True):
        by_outcome[outcome].append(message.entry)
    # ``unsent`` first: cut after it (a kill, a lake failure), the run's acknowledged letters are unconfirmed
    # (never sent again) and its unsent ones free. Written after ``sent``, a cut between the two would leave the
    # unsent ones unconfirmed for good, though they never left the process.
    if by_outcome[Delivery.NOT_SENT]:
        write_redrive_log(lake, source, run_id, "unsent", by_outcome[Delivery.NOT_SENT])
    write_redrive_log(lake, source, run_id, "sent", by_outcome[Delivery.ACKNOWLEDGED])
    summary.sent = len(by_outcome[Delivery.ACKNOWLEDGED])
    summary.not_sent = len(by_outcome[Delivery.NOT_SENT])
    summary.failed = len(by_outcome[Delivery.UNKNOWN])


def _delivery(outcome: Delivery | bool) -> Delivery:
    if isinstance(outcome, Delivery):
        return outcome
    return Delivery.ACKNOWLEDGED if outcome else Delivery.UNKNOWN


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
    now_ms = int(time.time() * 1000)  # an event from a clock far ahead is taken as now, as processing takes it
    pairs = [
        (entry, signal)
        for entry, row in refused
        for signal in signals_for(
            source,
            [row],
            {entry_partition(entry): OffsetSpan(entry.offset, entry.offset)},
            buckets=buckets,
            now_ms=now_ms,
        )
    ]
    lives = {(entry.topic, entry.partition, entry.incarnation) for entry, _ in refused}
    holes = {life: stored_holes(lake, source, TopicPartition(life[0], life[1]), life[2]) for life in lives}
    with_holes([signal for _, signal in pairs], holes)
    write_redrive_log(lake, source, run_id, "intent", [entry for entry, _ in pairs])
    accepted = signaller.signal([signal for _, signal in pairs])
    done = [entry for (entry, _), ok in zip(pairs, accepted, strict=True) if ok]
    write_redrive_log(lake, source, run_id, "sent", done)
    return len(done)
