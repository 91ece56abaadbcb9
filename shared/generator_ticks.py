"""What the timer generator sends: Datagen-like records per source, keyed by entity.

Pure: the caller passes the clock, the seed and how many records were already sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from faker import Faker

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
    fake = Faker()
    if seed is not None:
        fake.seed_instance(f"{source.name}:{seed}:{start_index}")
    messages = []
    events = (
        source.generate(fake, count, now)
        if source.generate_from is None
        else source.generate_from(fake, count, now, start_index)
    )
    for event in events:
        row = source.transform(event.model_dump())
        messages.append(OutgoingMessage(source.entity_key(row), event.model_dump_json(by_alias=True)))
    return messages


@dataclass(frozen=True, slots=True)
class Tick:
    """The records one invocation sends: ``count`` from ``start`` at time ``now`` (ISO 8601)."""

    start: int
    count: int
    now: str


def plan_tick(
    progress: Mapping[str, Any], settings: SourceSettings, *, now: datetime, owner: str, retrying: bool
) -> tuple[Tick, dict[str, Any]]:
    """What this tick sends and the progress to save *before* sending it (at least once).

    A tick records what it is about to send as ``pending`` before it sends; the next tick in the
    same process knows that send succeeded (a tick returns only once the broker acknowledged
    every record, and the timer's retry policy retries a failed send forever) and counts it as sent. A retry, or a
    pending tick left by another process (restarted, moved), is sent again, once: if ticks
    alternate between processes, a tick already resent is confirmed rather than resent forever.
    A record may be produced twice; it is lost only if a resend fails and its process dies too.
    """
    sent = int(progress.get("sent", 0))
    pending = progress.get("pending")
    foreign = pending is not None and pending["owner"] != owner
    if pending and (retrying or (foreign and not pending.get("resent"))):
        tick = Tick(int(pending["start"]), int(pending["count"]), str(pending["now"]))
        return tick, {"sent": sent, "pending": {**pending, "owner": owner, "resent": foreign or pending.get("resent")}}
    if pending:
        sent = int(pending["start"]) + int(pending["count"])
    tick = Tick(sent, tick_size(settings, sent), now.isoformat())
    if tick.count == 0:
        return tick, {"sent": sent, "pending": None}
    return tick, {"sent": sent, "pending": {"start": tick.start, "count": tick.count, "now": tick.now, "owner": owner}}
