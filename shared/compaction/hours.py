"""The unit of compaction: one event hour of one source, as the raw layout names it.

Only the directory part of a raw path is read (``raw/<source>/date=YYYY-MM-DD/hour=HH/``) and
the file's extension (its format); the file name itself carries no meaning here, so landing
may name files however it likes, a leading dot included (a file landed for a topic named ``.orders``
before settings refused such names: ``shared.settings``). The lake's own temporary files are never
listed (``shared.lake.local``), so a dot-file is a lake file like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from shared.layout import HOUR_MS, RAW_AREA, safe_segment

RawFormat = Literal["parquet", "avro", "jsonl"]
_HOUR_DIRECTORY = re.compile(r"^date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/")
_RAW_FILE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})/[^/]+\.(parquet|avro|jsonl\.gz)\Z")
_FORMATS: dict[str, RawFormat] = {"parquet": "parquet", "avro": "avro", "jsonl.gz": "jsonl"}


@dataclass(frozen=True, order=True, slots=True)
class Hour:
    """An event hour in UTC: the ``date`` and ``hour`` partition values of both the raw and curated layers."""

    date: str
    hour: str

    @classmethod
    def of_ms(cls, epoch_ms: int) -> Hour:
        moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
        return cls(f"{moment:%Y-%m-%d}", f"{moment:%H}")

    @property
    def start_ms(self) -> int:
        moment = datetime.strptime(f"{self.date} {self.hour}", "%Y-%m-%d %H").replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)

    @property
    def end_ms(self) -> int:
        return self.start_ms + HOUR_MS

    @property
    def predicate(self) -> str:
        """The Delta predicate that selects exactly this hour's partition (values are validated digits)."""
        return f"date = '{self.date}' AND hour = '{self.hour}'"

    def __str__(self) -> str:
        return f"{self.date}T{self.hour}"


@dataclass(frozen=True, slots=True)
class RawFile:
    path: str
    hour: Hour
    format: RawFormat


def raw_prefix(source: str) -> str:
    return f"{RAW_AREA}/{safe_segment(source)}"


def parse_raw_path(source: str, path: str) -> RawFile | None:
    """The hour and format of a landed file, or ``None`` for anything else under the prefix (temp files, strays)."""
    prefix = raw_prefix(source) + "/"
    if not path.startswith(prefix):
        return None
    match = _RAW_FILE.match(path[len(prefix) :])
    if match is None:
        return None
    date, hour, extension = match.groups()
    if not _is_hour(date, hour):
        return None
    return RawFile(path, Hour(date, hour), _FORMATS[extension])


def hour_of_raw_path(source: str, path: str) -> Hour | None:
    """The hour whose directory ``path`` is in (at any depth below it), whatever the file: ``None`` outside one."""
    prefix = raw_prefix(source) + "/"
    match = _HOUR_DIRECTORY.match(path[len(prefix) :]) if path.startswith(prefix) else None
    if match is None or not _is_hour(*match.groups()):
        return None
    return Hour(*match.groups())


def _is_hour(date: str, hour: str) -> bool:
    try:
        datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H")
    except ValueError:
        return False
    return True
