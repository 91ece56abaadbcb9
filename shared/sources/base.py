"""What a source is: its wire model, its landed columns, its generator, key and transform."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from faker import Faker
from pydantic import BaseModel

ColumnType = Literal["string", "long", "double", "boolean", "timestamp", "map"]
Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Column:
    """One landed column. ``timestamp`` values are epoch milliseconds (UTC); ``map`` is str -> str."""

    name: str
    type: ColumnType
    nullable: bool = True


@dataclass(frozen=True, slots=True)
class Source:
    """A stream StreamingPOC generates, processes and lands.

    - ``model`` validates one record as it arrives on the topic (JSON, UTF-8).
    - ``transform`` turns a valid record into a landed row holding exactly ``columns``.
    - ``event_time_ms`` reads the record's own time (epoch ms) or ``None`` when it has none.
    - ``entity_key`` names the entity a row belongs to; it is also the Kafka message key.
    - ``generate`` makes ``count`` realistic records stamped around ``now`` using ``fake``.
    """

    name: str
    model: type[BaseModel]
    columns: Sequence[Column]
    transform: Callable[[Any], Row]
    event_time_ms: Callable[[Any], int | None]
    entity_key: Callable[[Row], str]
    generate: Callable[[Faker, int, datetime], list[Any]]

    @property
    def column_names(self) -> list[str]:
        return [column.name for column in self.columns]


def epoch_ms(moment: datetime | None) -> int | None:
    """Epoch milliseconds of an aware datetime; naive datetimes are taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
