"""Where things land in the lake. Pure path logic; every path is relative to the lake root.

``raw/<source>/date=YYYY-MM-DD/hour=HH/<topic>+<partition>+i<incarnation>+<firstOffset>+<lastOffset>.<ext>``
Offsets are zero-padded to 20 digits so names sort in offset order. The incarnation counts the
lives of a topic-partition's offsets (see ``shared.landing.ledger``), so a recreated topic's
files never take an earlier one's names. ``_landing/`` holds each partition's ledger.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from shared.errors import UnsafePath
from shared.records import OffsetSpan, TopicPartition

RAW_AREA = "raw"
DEADLETTER_AREA = "deadletter"
LEDGER_AREA = "_landing"
# The curated tables' partition columns, which compaction adds to every row: no landed column may take either name.
PARTITION_COLUMNS = ("date", "hour")
OFFSET_DIGITS = 20
NAME_BYTES = 255  # the longest file name (path segment) local file systems and ADLS Gen2 take
REPROCESSED = "reprocessed-"  # the extension's start of dead letters tools.reprocess wrote for rows it removed
REPROCESSED_DIGEST_CHARS = 16
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9._=+%-]+\Z")


def safe_segment(value: str) -> str:
    """One path segment from untrusted text: percent-encodes anything outside [A-Za-z0-9._-]."""
    encoded = quote(value, safe="")
    if encoded in ("", ".", "..") or len(encoded) > 255:
        raise UnsafePath(f"{value!r} cannot be a path segment")
    return encoded


def check_relative_path(path: str) -> str:
    """Reject absolute paths, ``..``, empty segments and characters outside the layout's alphabet."""
    segments = path.split("/")
    if not path or path.startswith("/") or any(s in ("", ".", "..") or not _SAFE_SEGMENT.match(s) for s in segments):
        raise UnsafePath(f"refusing lake path {path!r}")
    return path


def hour_directory(area: str, source: str, event_ms: int) -> str:
    moment = datetime.fromtimestamp(event_ms / 1000, tz=UTC)
    return f"{area}/{safe_segment(source)}/date={moment:%Y-%m-%d}/hour={moment:%H}"


def batch_file_name(where: TopicPartition, span: OffsetSpan, incarnation: int, extension: str) -> str:
    """``<topic>+<partition>+i<incarnation>+<first>+<last>.<extension>``: a landed file of one partition's records."""
    (topic, partition), (first, last) = where, span
    if partition < 0 or first < 0 or last < first or incarnation < 0:
        raise UnsafePath(f"bad offset range {partition}:{first}-{last} (incarnation {incarnation})")
    offsets = f"{first:0{OFFSET_DIGITS}d}+{last:0{OFFSET_DIGITS}d}"
    return f"{safe_segment(topic)}+{partition}+i{incarnation}+{offsets}.{extension}"


_BATCH_FILE = re.compile(
    r"^(?P<topic>[^+/]+)\+(?P<partition>\d+)\+(?:i(?P<incarnation>\d+)\+)?(?P<first>\d+)\+(?P<last>\d+)\."
)


@dataclass(frozen=True, slots=True)
class BatchFile:
    """What a landed file's name says: its topic-partition, incarnation and offset range."""

    topic: str
    partition: int
    incarnation: int
    first: int
    last: int


def parse_batch_file_name(name: str) -> BatchFile | None:
    """The parts of a ``batch_file_name`` (names from before incarnations were recorded are incarnation 0)."""
    found = _BATCH_FILE.match(name.rpartition("/")[2])
    if found is None:
        return None
    incarnation = found["incarnation"]
    return BatchFile(
        found["topic"], int(found["partition"]), int(incarnation or 0), int(found["first"]), int(found["last"])
    )


def reprocessed_extension(digest: str) -> str:
    """The extension of a dead-letter file ``tools.reprocess`` wrote, named by a digest of its rows' offsets."""
    return f"{REPROCESSED}{digest[:REPROCESSED_DIGEST_CHARS]}.jsonl.gz"


def is_reprocessed(path: str) -> bool:
    """Whether ``path`` is a dead-letter file ``tools.reprocess`` wrote, read from the extension after its offsets
    (never from the topic before them, which may hold the same text)."""
    name = path.rpartition("/")[2]
    found = _BATCH_FILE.match(name)
    return found is not None and name.startswith(REPROCESSED, found.end())


def longest_file_name_bytes(topic: str) -> int:
    """Bytes of the longest file name a landing of ``topic`` can take: a reprocessed dead letter's, of the largest
    partition, incarnation and offsets. Over ``NAME_BYTES`` no file of the topic could ever be written."""
    largest = TopicPartition(topic, 2**31 - 1)
    span = OffsetSpan(10**OFFSET_DIGITS - 1, 10**OFFSET_DIGITS - 1)
    return len(batch_file_name(largest, span, 2**31 - 1, reprocessed_extension("0" * 64)).encode())


def ledger_path(source: str, where: TopicPartition) -> str:
    """``_landing/<source>/<topic>+<partition>.json``: the landing ledger of one partition."""
    return _ledger_path(source, safe_segment(where.topic), where.partition)


def batch_file_ledger_path(source: str, file: BatchFile) -> str:
    """The ledger of the partition that landed ``file`` (whose topic is already a path segment)."""
    return _ledger_path(source, file.topic, file.partition)


def _ledger_path(source: str, topic_segment: str, partition: int) -> str:
    return f"{LEDGER_AREA}/{safe_segment(source)}/{topic_segment}+{partition}.json"


HOUR_MS = 3_600_000


def hour_start_ms(event_ms: int) -> int:
    return event_ms - event_ms % HOUR_MS
