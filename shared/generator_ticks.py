"""What the timer generator sends: Datagen-like records per source, keyed by entity, a tick in bounded pieces.

Pure: the caller passes the clock, the seed, the progress it read and what its own sends delivered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from faker import Faker

from shared.errors import UnreadableLakeFile
from shared.settings import SourceSettings
from shared.source_model import Source


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    key: str | None  # None: unkeyed (a Datagen config without schema.keyfield)
    value: str


def tick_size(settings: SourceSettings, already_sent: int) -> int:
    """Events to send this tick: the rate, capped by what is left of ``iterations`` (0 = no cap)."""
    if not settings.generator_enabled:
        return 0
    if settings.generator_iterations:
        return max(0, min(settings.generator_events_per_tick, settings.generator_iterations - already_sent))
    return settings.generator_events_per_tick


def needs_progress(settings: SourceSettings, source: Source | None = None) -> bool:
    """A seeded or bounded generator, or one whose records count (``iteration``), must remember how
    far it got across ticks and restarts."""
    counted = source is not None and source.generate_from is not None
    return counted or bool(settings.generator_iterations) or settings.generator_seed is not None


def generate_messages(
    source: Source, count: int, *, now: datetime, seed: int | None, start_index: int
) -> list[OutgoingMessage]:
    """``count`` records; with a seed, the same (seed, start_index, now) always gives the same records."""
    fake = _faker(source, seed, start_index)
    events = (
        source.generate(fake, count, now)
        if source.generate_from is None
        else source.generate_from(fake, count, now, start_index)
    )
    return [_message(source, event) for event in events]


def _faker(source: Source, seed: int | None, start_index: int) -> Faker:
    fake = Faker()
    if seed is not None:
        fake.seed_instance(f"{source.name}:{seed}:{start_index}")
    return fake


def _message(source: Source, event: Any) -> OutgoingMessage:
    row = source.transform(event.model_dump())
    return OutgoingMessage(source.entity_key(row), event.model_dump_json(by_alias=True))


# A tick is sent in pieces of at most PIECE_RECORDS records and PIECE_BYTES bytes of keys and values, each
# acknowledged by the broker and recorded in the progress before the next is sent (functions/generator.py). One
# throughput unit of Event Hubs, the smallest namespace, takes 1,000 events/s or 1 MB/s in, namespace-wide: either
# bound is a second of it, so a piece is acknowledged well within librdkafka's 45 s message timeout even with
# every source's generator sending at once. A record larger than PIECE_BYTES is a piece of its own (a Datagen
# record is at most 960 KiB, docs/datagen.md: two of those never share one). A tick of at most PIECE_RECORDS small
# records (the default rates: 100 and a config's 40) is one piece, as before pieces.
PIECE_RECORDS = 1_000
PIECE_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class Piece:
    """Records ``start`` up to ``end`` (exclusive) of a tick, counted from the tick's first record."""

    start: int
    messages: list[OutgoingMessage]

    @property
    def end(self) -> int:
        return self.start + len(self.messages)


def message_bytes(message: OutgoingMessage) -> int:
    """What a piece's byte bound counts of a record: its key and value, UTF-8, as generated (headers are the
    sender's, the same few dozen bytes on each record). An Avro body is most often smaller, but may be up to ~2.7
    times a record of short numbers (``0.0``: 3 bytes of JSON, 8 of a double): such a piece is a few MB, still
    seconds of one throughput unit."""
    return len(message.value.encode()) + (len(message.key.encode()) if message.key is not None else 0)


def tick_piece(source: Source, tick: Tick, start: int) -> Piece:
    """The piece of ``tick`` that begins at its record ``start`` (``0 <= start < tick.count``): its records up to
    :data:`PIECE_RECORDS`, and up to :data:`PIECE_BYTES` unless the first alone is larger.

    Generated from the tick and ``start`` alone (the tick's seed, time and the piece's absolute first index, as
    :func:`generate_messages` seeds a tick), so the piece sent again after a failure, by any process, holds the same
    records, and the next piece begins where this one ends. A source whose records count (``generate_from``: a
    Datagen config, records up to 960 KiB) is generated a record at a time, so no more than the piece and one record
    is ever in memory; a hand-written source's records (a few hundred bytes) are generated a piece's count at once.
    """
    first = tick.start + start
    count = min(PIECE_RECORDS, tick.count - start)
    at = datetime.fromisoformat(tick.now)
    fake = _faker(source, tick.seed, first)
    generate_from = source.generate_from
    events: Iterable[Any] = (
        source.generate(fake, count, at)
        if generate_from is None
        else (generate_from(fake, 1, at, first + i)[0] for i in range(count))
    )
    messages: list[OutgoingMessage] = []
    size = 0
    for event in events:
        message = _message(source, event)
        size += message_bytes(message)
        if messages and size > PIECE_BYTES:
            break
        messages.append(message)
    return Piece(start, messages)


PROGRESS_VERSION = 1  # the progress file's format; a file in any other is refused, never taken for "nothing sent"
_PROGRESS_KEYS = {"version", "sent", "pending"}
# delivered: records of the tick delivered piece by piece (only in a file saved mid-way through a tick of several)
_PENDING_KEYS = {"start", "count", "now", "seed", "owner", "acknowledged", "delivered", "resent"}  # resent: before 1


@dataclass(frozen=True, slots=True)
class Tick:
    """The records one invocation sends: ``count`` from ``start`` at time ``now`` (ISO 8601), generated with
    ``seed`` (None only for an unseeded generator's pending tick saved before seeds were stored)."""

    start: int
    count: int
    now: str
    seed: int | None


@dataclass(frozen=True, slots=True)
class Plan:
    """What an invocation sends, and the progress to save first (``progress``; the one read when nothing changes).

    ``taken_over``: the tick is a pending one another process planned; once sent, its acknowledgement is saved
    (:func:`acknowledged`) so that the others confirm it instead of sending it again. ``resume``: the tick's records
    delivered already, piece by piece (:func:`pieces_delivered`); the send begins with the piece after them."""

    tick: Tick
    progress: dict[str, Any]
    taken_over: bool
    resume: int = 0


def read_progress(data: bytes, path: str) -> dict[str, Any]:
    """The progress saved in ``path``, checked; ``UnreadableLakeFile`` naming it when it is damaged or in a
    format this version does not know (a newer version's, say): never taken for "nothing sent yet", which would
    start a bounded or seeded run again from its first record."""
    try:
        progress = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise UnreadableLakeFile(path, f"generator progress is not JSON ({error})") from error
    if not isinstance(progress, dict):
        raise UnreadableLakeFile(path, "generator progress is not a JSON object")
    version = progress.get("version", PROGRESS_VERSION)  # files saved before the field: version 1's content
    if version != PROGRESS_VERSION or isinstance(version, bool):
        raise UnreadableLakeFile(
            path, f"generator progress in format version {version!r}; this version reads only {PROGRESS_VERSION}"
        )
    problem = _progress_problem(progress)
    if problem:
        raise UnreadableLakeFile(path, f"not generator progress of format version {PROGRESS_VERSION}: {problem}")
    return progress


def _progress_problem(progress: dict[str, Any]) -> str | None:
    unknown = set(progress) - _PROGRESS_KEYS
    if unknown:
        return f"unknown fields {sorted(unknown)}"
    if not _count(progress.get("sent")):
        return "'sent' is not a count"
    pending = progress.get("pending")
    if pending is None:
        return None
    if not isinstance(pending, dict):
        return "'pending' is not an object"
    unknown = set(pending) - _PENDING_KEYS
    if unknown:
        return f"unknown pending fields {sorted(unknown)}"
    if not (_count(pending.get("start")) and _count(pending.get("count")) and _time(pending.get("now"))):
        return "'pending' needs a start, a count and an ISO time"
    # What every version writes, and what plan_tick trusts: a tick is saved pending at 'sent', only when it has
    # records, and its last piece is confirmed as the tick, never recorded delivered.
    if pending["start"] != progress["sent"]:
        return f"the pending tick starts at {pending['start']}, not at 'sent' ({progress['sent']})"
    if pending["count"] < 1:
        return "the pending tick has no records"
    seed = pending.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        return "the pending seed is not an integer"
    delivered = pending.get("delivered", 0)
    if not (_count(delivered) and delivered < pending["count"]):
        return "the pending tick's 'delivered' is not a count below its records"
    return None


def _time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _pending_tick(pending: Mapping[str, Any], settings: SourceSettings) -> Tick:
    seed = pending.get("seed", settings.generator_seed)  # the configured one: saved before seeds were
    return Tick(int(pending["start"]), int(pending["count"]), str(pending["now"]), seed)


def plan_tick(
    progress: Mapping[str, Any],
    settings: SourceSettings,
    *,
    now: datetime,
    owner: str,
    delivered: Tick | None,
    fresh_seed: int,
) -> Plan:
    """What this invocation sends and the progress to save *before* sending it (at least once).

    A tick is saved as ``pending`` (start, count, time, seed) before it is sent, and counted as sent
    (``sent``) only with proof that the broker acknowledged every record: ``delivered``, the tick this process's
    own last send delivered, or the pending entry marked ``acknowledged`` by the process that delivered it
    (:func:`acknowledged`). Any other pending tick (this process's failed send, its retry, another process's
    tick, possibly still being sent, or a restarted process's) is sent again with the same records, whoever
    runs next, from the first piece not recorded delivered (``Plan.resume``). So a tick is never counted without
    having been delivered, and a failed one is sent until a send succeeds. ``fresh_seed`` seeds a new tick of an
    unseeded generator, so that a resend sends the same records. A generator switched off sends nothing, its
    pending tick included (kept for when it is switched on again).
    """
    sent = int(progress.get("sent", 0))
    pending = progress.get("pending")
    if pending and not settings.generator_enabled:  # switched off: nothing goes, the pending tick waits for it on
        return Plan(Tick(sent, 0, now.isoformat(), None), dict(progress), taken_over=False)
    if pending:
        tick = _pending_tick(pending, settings)
        if not (pending.get("acknowledged") or tick == delivered):
            resume = int(pending.get("delivered", 0))
            return Plan(tick, dict(progress), taken_over=pending.get("owner") != owner, resume=resume)
        sent = tick.start + tick.count
    seed = fresh_seed if settings.generator_seed is None else settings.generator_seed
    tick = Tick(sent, tick_size(settings, sent), now.isoformat(), seed)
    saved: dict[str, Any] = {"version": PROGRESS_VERSION, "sent": sent, "pending": None}
    if tick.count:
        saved["pending"] = {"start": tick.start, "count": tick.count, "now": tick.now, "seed": seed, "owner": owner}
    return Plan(tick, saved, taken_over=False)


def acknowledged(progress: Mapping[str, Any], settings: SourceSettings, tick: Tick) -> dict[str, Any] | None:
    """The progress that records that ``tick`` was delivered, or None when there is nothing to record: it is
    no longer pending (confirmed already) or marked acknowledged already."""
    pending = progress.get("pending")
    if not pending or pending.get("acknowledged") or _pending_tick(pending, settings) != tick:
        return None
    return {**progress, "version": PROGRESS_VERSION, "pending": {**pending, "acknowledged": True}}


def resume_point(progress: Mapping[str, Any], settings: SourceSettings, tick: Tick) -> int | None:
    """How many of ``tick``'s records ``progress`` records delivered, piece by piece; None when it no longer needs
    sending: not pending any more (confirmed), or marked acknowledged (another process delivered it whole)."""
    pending = progress.get("pending")
    if not pending or pending.get("acknowledged") or _pending_tick(pending, settings) != tick:
        return None
    return int(pending.get("delivered", 0))


def pieces_delivered(
    progress: Mapping[str, Any], settings: SourceSettings, tick: Tick, delivered: int
) -> dict[str, Any] | None:
    """The progress that records the first ``delivered`` records of ``tick`` delivered (the broker acknowledged every
    piece up to there), so that a retry, a restart or another instance sends only the pieces after them. None when
    there is nothing to record: the tick needs no sending (:func:`resume_point`), or as much is recorded already.
    Pieces are delivered in order from a point recorded delivered, so the larger of two records is the right one."""
    resume = resume_point(progress, settings, tick)
    if resume is None or resume >= delivered:
        return None
    pending = progress["pending"]
    return {**progress, "version": PROGRESS_VERSION, "pending": {**pending, "delivered": delivered}}
