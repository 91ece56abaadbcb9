"""What processing makes of one batch for one source: landed rows and dead letters.

:func:`process_batch` is the pure core an invocation calls first: validate
(``shared.validation``), then transform (``shared.transform``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.dead_letters import DeadLetter
from shared.records import KafkaRecord
from shared.sources.base import Row, Source
from shared.transform import transform_into
from shared.validation import validate_batch


@dataclass(slots=True)
class ProcessedBatch:
    """Landed rows and dead letters of one invocation for one source."""

    source: Source
    rows: list[Row] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    records: int = 0
    origins: list[KafkaRecord] = field(default_factory=list)  # the record each row came from, row by row

    def dead_letter_rows(self, rows: list[Row], reason: str, details: list[str]) -> None:
        """Move ``rows`` (objects of ``self.rows``) to the dead letters with ``reason``; called by landing."""
        detail_of = {id(row): detail for row, detail in zip(rows, details, strict=True)}
        kept_rows, kept_origins = [], []
        for row, origin in zip(self.rows, self.origins, strict=True):
            detail = detail_of.get(id(row))
            if detail is None:
                kept_rows.append(row)
                kept_origins.append(origin)
            else:
                self.dead_letters.append(DeadLetter(origin, reason, detail))
        self.rows, self.origins = kept_rows, kept_origins


def process_batch(
    source: Source, records: Iterable[KafkaRecord], *, max_record_bytes: int, keyed: bool = False
) -> ProcessedBatch:
    """Validate and transform ``records``; each bad one becomes a :class:`DeadLetter` with its reason.

    Called once per invocation. Never raises for anything a record carries.
    """
    validated = validate_batch(source, records, max_record_bytes=max_record_bytes)
    batch = ProcessedBatch(source, dead_letters=validated.dead_letters, records=validated.records)
    transform_into(batch, validated, keyed=keyed)
    return batch
