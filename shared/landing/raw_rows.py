"""What raw/ holds of given records: their landed rows, read back from the files whose names cover them.

Two readers need them: an invocation whose redelivery rejects records an earlier delivery landed as rows (state
counts the rows raw/ holds, ``shared.invocation``), and ``tools.redrive`` (a dead letter whose record is in raw/
is not sent again; a refused state update is re-applied from its row). A record is named by its ``Identity``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from shared.errors import LakeError, LakeRefused, UnreadableLakeFile, UnsafePath
from shared.formats import DECODE_ERRORS, Format, format_of_path
from shared.lake.base import LakeStore
from shared.layout import RAW_AREA, hour_directory, parse_batch_file_name, safe_segment
from shared.source_model import Row

Identity = tuple[str, int, int, int]  # topic, partition, incarnation (the life of its offsets), offset


def raw_rows(
    lake: LakeStore,
    source: str,
    identities: Iterable[Identity],
    *,
    hours: Collection[int] | None = None,
    unreadable: dict[Identity, str] | None = None,
) -> dict[Identity, Row]:
    """The raw rows of ``identities`` that are in the lake; only files whose names cover one of them are read, in
    the event ``hours`` given (hour starts, ms), else in every hour of the source.

    A row is its file's partition's, at its own ``_offset`` and ``_incarnation`` (0 for a row landed before lives
    were recorded, which has none: the row returned has it); a row without an offset is skipped. A covering file
    that cannot be read (damaged, foreign, deleted since it was listed, refused by the lake for good) raises
    :class:`UnreadableLakeFile` naming it; given ``unreadable``, each identity it may hold and no other file holds
    is put there with ``"<path>: <why>"`` instead. An outage (``LakeUnavailable``) propagates."""
    wanted = set(identities)
    by_file_partition: dict[tuple[str, int, int], list[int]] = {}
    topics: dict[str, str] = {}
    for topic, partition, incarnation, offset in wanted:
        try:
            segment = topics.setdefault(safe_segment(topic), topic)  # raw file names hold the topic as a segment
        except UnsafePath:
            continue  # no landing names a file after it
        by_file_partition.setdefault((segment, partition, incarnation), []).append(offset)
    found: dict[Identity, Row] = {}
    in_doubt: dict[Identity, str] = {}
    for path in _listed(lake, source, hours) if by_file_partition else ():
        name, fmt = parse_batch_file_name(path), format_of_path(path)
        if name is None or fmt is None:
            continue
        covered = [
            offset
            for offset in by_file_partition.get((name.topic, name.partition, name.incarnation), [])
            if name.first <= offset <= name.last
        ]
        if not covered:
            continue
        topic = topics[name.topic]
        try:
            rows = _file_rows(lake, path, fmt)
        except UnreadableLakeFile as error:
            if unreadable is None:
                raise
            for offset in covered:
                in_doubt.setdefault((topic, name.partition, name.incarnation, offset), str(error))
            continue
        for row in rows:
            identity = _identity(topic, name.partition, row)
            if identity in wanted:
                row["_incarnation"] = identity[2]  # a row landed before lives were recorded has none: it is life 0
                found[identity] = row
        if len(found) == len(wanted):
            break
    if unreadable is not None:
        unreadable.update((identity, why) for identity, why in in_doubt.items() if identity not in found)
    return found


def _identity(topic: str, partition: int, row: Row) -> Identity | None:
    try:
        return (topic, partition, int(row.get("_incarnation") or 0), int(row["_offset"]))
    except (KeyError, TypeError, ValueError):  # no offset (or not a number): no landing wrote the row
        return None


def _listed(lake: LakeStore, source: str, hours: Collection[int] | None) -> Iterator[str]:
    if hours is None:
        yield from lake.list_paths(f"{RAW_AREA}/{safe_segment(source)}")
        return
    for hour in sorted(hours):
        yield from lake.list_paths(hour_directory(RAW_AREA, source, hour))


def _file_rows(lake: LakeStore, path: str, fmt: Format) -> list[Row]:
    try:
        data = lake.read(path)
    except LakeRefused:  # the lake refuses the app, not this file
        raise
    except LakeError as error:  # a name the lake refuses, a file deleted since it was listed (compaction)
        raise UnreadableLakeFile(path, f"{type(error).__name__}: {error}") from error
    try:
        return fmt.decode(data)
    except DECODE_ERRORS as error:
        raise UnreadableLakeFile(path, f"{type(error).__name__}: {error}") from error
