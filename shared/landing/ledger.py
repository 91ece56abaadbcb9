"""What has landed, per topic-partition: the lake's own record of its position (pure, no I/O).

The consumer group's committed offset is not trusted: commits are asynchronous and lost to
rebalances, so a batch can come again, cut differently. The ledger keeps the offset ranges
already landed for the partition's current *incarnation* and the one batch in flight
(``pending``: its range and the files it writes), so a crash between the files and the next
ledger write is recognised from the files themselves.

An incarnation is one life of a topic-partition's offsets. When a topic is recreated (a new
embedded broker, an event hub replaced) offsets restart; a record at an offset the ledger has
fingerprinted, whose key, value or timestamp differ, proves it. The ledger then starts a new
incarnation: nothing landed before is skipped for, hidden by, or overwritten with the new
records (file names and the ``_incarnation`` column carry it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.offset_ranges import OffsetRanges, add, contains
from shared.records import KafkaRecord

KEPT_FINGERPRINTS = 64
KEPT_INCARNATIONS = 8


def fingerprint(record: KafkaRecord) -> str:
    """A short digest of what makes a record itself: key, value and timestamp."""
    digest = hashlib.blake2b(digest_size=8)
    for part in (record.key or "", record.value or b"", str(record.timestamp_ms)):
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


@dataclass
class Pending:
    """A landing that started: the offsets it covers, every file it writes, who holds it and since when.

    ``removing``: its holder found it unfinished and is deleting its files to land the records
    again; nobody else touches it until the holder's lease has run out.
    """

    low: int
    high: int
    files: list[str]
    owner: str
    started_ms: int
    removing: bool = False

    def covers(self, low: int, high: int) -> bool:
        return low <= self.low and self.high <= high


@dataclass
class Ledger:
    """One topic-partition's landing record, stored as JSON in the lake."""

    incarnation: int = 0
    landed: OffsetRanges = field(default_factory=list)
    fingerprints: dict[int, str] = field(default_factory=dict)
    pending: Pending | None = None
    previous: list[dict[str, Any]] = field(default_factory=list)

    def contradicted_by(self, records: Sequence[KafkaRecord]) -> bool:
        """True when a record sits at a fingerprinted offset but is not the record landed there."""
        known = self.fingerprints
        return any(
            record.offset in known and known[record.offset] != fingerprint(record)
            for record in records
            if record.offset in known
        )

    def next_incarnation(self) -> Ledger:
        """A fresh ledger for the topic-partition's next life; this one's ranges are kept as history."""
        history = [*self.previous, {"incarnation": self.incarnation, "landed": self.landed}]
        return Ledger(incarnation=self.incarnation + 1, previous=history[-KEPT_INCARNATIONS:])

    def is_landed(self, offset: int) -> bool:
        return contains(self.landed, offset)

    def mark_landed(self, low: int, high: int) -> None:
        """Record ``[low, high]`` as landed."""
        self.landed = add(self.landed, low, high)

    def remember(self, *records: KafkaRecord) -> None:
        """Fingerprint records about to land, so a different record at their offset is recognised."""
        for record in records:
            self.fingerprints[record.offset] = fingerprint(record)
        if len(self.fingerprints) > KEPT_FINGERPRINTS:
            oldest = min(self.fingerprints)  # the incarnation's first offset stays: a restart from 0 meets it
            recent = sorted(self.fingerprints)[-(KEPT_FINGERPRINTS - 1) :]
            self.fingerprints = {offset: self.fingerprints[offset] for offset in (oldest, *recent)}

    def to_json(self) -> dict[str, Any]:
        pending = self.pending
        return {
            "incarnation": self.incarnation,
            "landed": self.landed,
            "fingerprints": {str(offset): value for offset, value in sorted(self.fingerprints.items())},
            "pending": None
            if pending is None
            else {
                "low": pending.low,
                "high": pending.high,
                "files": pending.files,
                "owner": pending.owner,
                "started_ms": pending.started_ms,
                "removing": pending.removing,
            },
            "previous": self.previous,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> Ledger:
        pending = document.get("pending")
        return cls(
            incarnation=int(document["incarnation"]),
            landed=[[int(low), int(high)] for low, high in document.get("landed", [])],
            fingerprints={int(offset): str(value) for offset, value in document.get("fingerprints", {}).items()},
            pending=None if pending is None else Pending(**pending),
            previous=list(document.get("previous", [])),
        )
