"""Recompute landed hours from the records as received, with today's validation and transform.

Input per hour: the curated rows (each carries ``_received``, the record as it came) and the
hour's dead letters not yet redriven. Today's code validates and transforms them again; joined
columns (what keyed state wrote into a row) keep their landed values, because state is not
versioned. A row is identified by topic, partition, incarnation and offset, and each incarnation is
recomputed in a batch of its own (a batch keeps one record per offset), checked as processing
checks it (entity keys when the source's state is on). The diff per hour: rows *changed* (same
identity, other values), *removed* (a landed row that does not pass any more) of which *newly
dead-lettered* by reason, rows *restored* (a row an earlier promotion removed, its ``.reprocessed``
dead letter's record still in raw/, that passes again), rows *kept* as they are because they landed
before ``_received`` existed, and dead letters *now valid* (never landed). ``entity_rejected`` dead
letters are left out: their rows are in raw/ and curated/ by design (only the state update was refused),
and are recomputed from curated/ once compaction has them.

Promoting replaces the hour in ``curated/<source>`` in one commit that keeps the hour's coverage
(so compaction does not redo it; and as compaction keeps curated rows first, a late raw file
never brings the old values back). Rows that leave are written to ``deadletter/`` as
``...reprocessed-<digest>.jsonl.gz``, named by the rows they hold (they stay in raw/, which is
immutable), and come back when they pass again: they landed and were counted in state once. The letters of
an attempt whose commit never took effect are removed first (:func:`letters_never_committed`). An hour
every row leaves is emptied. Dead letters that never landed and pass now are
counted, not landed: ``tools.redrive`` sends them through the whole path (raw/, keyed state, then
curated), once, by its redrive log; landing them here would skip raw/ and state.

An Avro source is refused (:class:`NotReprocessable`, :func:`check_reprocessable`): its rows landed resolved
from the producer's schema to the source's, and ``_received`` keeps the record as the producer wrote it but
not that schema's id, so it cannot be resolved again. Validated as JSON, rows that landed correctly would
leave (an enum symbol that took the enum's default, a string promoted to bytes, a nested field that took its
default) or change (bytes promoted to a string would land as base64 text).
"""

from __future__ import annotations

import zlib
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import pyarrow as pa

from shared import formats
from shared.batch import process_batch, rows_of
from shared.compaction import drift
from shared.compaction.hours import Hour, parse_raw_path
from shared.compaction.plan import planned_raw_file
from shared.compaction.rows import TIMESTAMP, column_as
from shared.dead_letters import DeadLetter
from shared.errors import StreamingPocError, UnreadableLakeFile
from shared.formats import DECODE_ERRORS
from shared.lake.base import LakeStore
from shared.landing.raw_rows import Identity
from shared.layout import (
    DEADLETTER_AREA,
    RAW_AREA,
    hour_directory,
    hour_start_ms,
    is_reprocessed,
    parse_batch_file_name,
    safe_segment,
)
from shared.lineage import LINEAGE_COLUMNS
from shared.records import KafkaRecord
from shared.redrive import DeadLetterEntry
from shared.source_model import MAX_TIMESTAMP_MS, Row, Source
from shared.state.enrich import JOINED_FIELDS
from shared.state.registry import entity_for

# What keyed state writes into a source's rows before they land (shared/state: enrich, anomaly).
JOINED_COLUMNS: dict[str, tuple[str, ...]] = {"clickstream": JOINED_FIELDS, "sensors": ("anomaly",)}
NOT_COMPARED = frozenset({"_received", "date", "hour"})


class NotReprocessable(StreamingPocError):
    """A source whose landed rows cannot be recomputed as they landed: nothing is read or written."""


class HourNotPromotable(StreamingPocError):
    """An hour a promotion would not hold for good (:func:`check_promotable`): nothing of it was written."""


def check_promotable(lake: LakeStore, source: str, hour: Hour, covered: frozenset[str], *, now_ms: int) -> None:
    """Raise :class:`HourNotPromotable` unless every raw file a later compaction would merge into ``hour`` is
    one its recomputed rows came from, and the promotion's commit is one compaction will read back.

    A promotion moves rows out of the hour and records as covered only the raw files its rows were read with
    (``covered``). Any other raw file of the hour (one that landed since, a redelivery landed a second time under
    another name) is new to the next compaction, which merges it into the promoted hour: the rows removed here
    would come back, in curated and in deadletter/ at once. Recording every file listed now as covered instead
    would lose the rows only such a file holds (never merged, since covered). So the hour is refused, named: the
    next compaction merges the file, and the command run again recomputes the hour with its rows. Nothing is lost
    or doubled either way; a file that lands between this check and the commit (seconds) is not seen.

    An hour that has not begun (by ``now_ms``, the clock the commit is stamped with) is refused too: compaction
    finds a commit of an hour made before the hour began only through the hour's data files written then
    (``CuratedTable.hour_coverage``), which a promotion that empties the hour leaves none of, so it could miss
    it, and merge every raw file of the hour again."""
    if now_ms < hour.start_ms:
        raise HourNotPromotable(
            f"{hour} has not begun: compaction could miss a commit made before its start and would merge"
            " the rows removed here again; promote it once the hour has begun"
        )
    listed = lake.list_paths(hour_directory(RAW_AREA, source, hour.start_ms))
    uncovered = [path for path in listed if planned_raw_file(source, path) is not None and path not in covered]
    if uncovered:
        shown = ", ".join(uncovered[:3]) + (f" and {len(uncovered) - 3} more" if len(uncovered) > 3 else "")
        raise HourNotPromotable(
            f"{hour} holds raw files its rows were not read from, which the next compaction merges ({shown}):"
            " promoted now, the rows it removes could come back with them; run the command again once"
            " compaction has them"
        )


def check_reprocessable(source: Source) -> None:
    """Raise :class:`NotReprocessable` for a source whose rows reprocessing would get wrong: an Avro source."""
    if source.value_format == "avro":
        raise NotReprocessable(
            f"{source.name} is an Avro source: its rows are not reprocessed. A row keeps the record as the"
            " producer wrote it (_received) but not the writer schema id it was resolved from, so it cannot be"
            " resolved again as it was landed; recomputed as JSON, rows that landed correctly would be removed or"
            " rewritten. Its dead letters are sent again, decoded with the registry, by"
            f" python -m tools.redrive {source.name}."
        )


@dataclass
class HourDiff:
    hour: Hour
    rows: int = 0  # curated rows before
    changed: int = 0
    removed: int = 0
    newly_dead: Counter[str] = field(default_factory=Counter)
    kept: int = 0  # landed before _received: kept as they are
    columns: Counter[str] = field(default_factory=Counter)  # changed rows per column
    restored: int = 0  # dead letters whose record is still in raw/ (a promotion removed it) that pass again
    now_valid: int = 0  # dead letters that never landed and pass now: left to tools.redrive

    @property
    def differs(self) -> bool:
        """Whether promoting would change the hour's curated rows."""
        return bool(self.changed or self.removed or self.restored)


@dataclass
class HourResult:
    diff: HourDiff
    table: pa.Table  # the hour as recomputed (curated column order, partition columns not included)
    letters: list[DeadLetter]  # records that no longer land
    letter_incarnations: list[int]  # the incarnation each of ``letters`` landed in
    covered: frozenset[str] = frozenset()  # the raw files the hour's curated rows held when they were read
    read_version: int | None = None  # the curated table's version they were read at (-1: no table yet)
    # The hour's curated rows as read: each identity with its Kafka timestamp (ms; 0 when none), whose hour is where
    # a letter of the row is filed (letters_never_committed).
    read_rows: Mapping[Identity, int] = field(default_factory=dict)


def joined_columns(source: Source) -> tuple[str, ...]:
    """Columns keyed state fills (kept from the landed row); none for a source without a lookup."""
    kind = entity_for(source.name)
    return JOINED_COLUMNS.get(source.name, ()) if kind is not None and kind.lookup is not None else ()


def recompute_hour(
    source: Source,
    hour: Hour,
    curated: pa.Table,
    dead_letters: list[DeadLetterEntry],
    *,
    max_record_bytes: int,
    keyed: bool = False,
    removed: frozenset[Identity] = frozenset(),
) -> HourResult:
    """The hour as today's code makes it from what was received, and how it differs from ``curated``.

    ``keyed``: the source keeps state (``<SOURCE>_STATE_ENABLED``), so a row whose entity key no entity
    can take leaves, as processing would dead-letter it. The recomputed table holds the landed rows and
    the dead letters that pass whose identity is in ``removed`` (rows an earlier promotion removed from
    curated, their records in raw/: ``removed_by_promotions``); the other dead letters that pass are
    counted (``now_valid``), for ``tools.redrive`` to send.

    An hour can hold two lives of a partition whose offsets restarted, a row of each at the same
    offset: rows are matched by incarnation as well as offset, and keep the incarnation they landed in.

    An Avro source raises :class:`NotReprocessable` (:func:`check_reprocessable`)."""
    check_reprocessable(source)
    landed = _rows(curated)
    kept = [row for row in landed if row.get("_received") is None]
    candidates = [row for row in landed if row.get("_received") is not None]
    recomputed, letters = _recompute(source, _records_by_life(candidates, dead_letters), max_record_bytes, keyed)
    before = {_identity(row): row for row in landed}
    diff = HourDiff(hour, rows=len(landed), kept=len(kept))
    joined = joined_columns(source)
    rows = []
    for row in recomputed:
        landed_row = before.get(_identity(row))
        if landed_row is None and _identity(row) in removed:
            diff.restored += 1
            rows.append(row)
        elif landed_row is None:
            diff.now_valid += 1
        else:
            _compare(row, landed_row, joined, diff)
            rows.append(row)
    landed_now = {_identity(row) for row in rows}
    diff.removed = sum(1 for row in candidates if _identity(row) not in landed_now)
    leaving = [(letter, life) for letter, life in letters if _identity_of(letter.record, life) in before]
    diff.newly_dead.update(str(letter.reason) for letter, _ in leaving)
    table = _table(source, kept, rows, curated.schema)
    read_rows = {identity: row.get("_kafka_timestamp") or 0 for identity, row in before.items()}
    return HourResult(
        diff, table, [letter for letter, _ in leaving], [life for _, life in leaving], read_rows=read_rows
    )


def _records_by_life(candidates: list[Row], dead_letters: list[DeadLetterEntry]) -> dict[int, list[KafkaRecord]]:
    """The records to recompute by incarnation: the landed rows' as received, then the dead letters'."""
    lives: dict[int, list[KafkaRecord]] = defaultdict(list)
    for row in candidates:
        lives[row.get("_incarnation") or 0].append(_record(row))
    for entry in dead_letters:
        lives[entry.incarnation].append(_letter_record(entry))
    return lives


def _recompute(
    source: Source, lives: dict[int, list[KafkaRecord]], max_record_bytes: int, keyed: bool
) -> tuple[list[Row], list[tuple[DeadLetter, int]]]:
    """Today's rows and dead letters of each life's records, each with the incarnation it belongs to.

    One batch per incarnation, as ``shared.redrive`` does: two lives of a topic can hold a record at the
    same offset, and a batch keeps one record per offset."""
    rows: list[Row] = []
    letters: list[tuple[DeadLetter, int]] = []
    for incarnation, records in sorted(lives.items()):
        batch = process_batch(source, records, max_record_bytes=max_record_bytes, keyed=keyed)
        for part in batch:
            part.set_incarnation(incarnation)
        rows += batch.rows()
        letters += [(letter, incarnation) for letter in batch.dead_letters]
    return rows, letters


def _compare(row: Row, before: Row, joined: tuple[str, ...], diff: HourDiff) -> None:
    """Count ``row`` as changed if it differs from its landed self; joined columns keep their landed values."""
    for name in joined:
        row[name] = before.get(name)
    changed = [name for name in sorted(set(row) | set(before)) if _differs(name, row, before)]
    if changed:
        diff.changed += 1
        diff.columns.update(changed)


def _differs(name: str, row: Row, before: Row) -> bool:
    if name in NOT_COMPARED:
        return False
    return row.get(name) != before.get(name)


def _rows(table: pa.Table) -> list[Row]:
    """Curated rows as the row path has them: timestamps in epoch ms, maps as dicts."""
    for index, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type):
            table = table.set_column(index, column.name, table.column(index).cast(pa.timestamp("ms", tz="UTC")))
    return rows_of(table)


def _identity(row: Row) -> Identity:
    return (row["_topic"], row["_partition"], row.get("_incarnation") or 0, row["_offset"])


def _identity_of(record: KafkaRecord, incarnation: int) -> Identity:
    return (record.topic, record.partition, incarnation, record.offset)


def _record(row: Row) -> KafkaRecord:
    return KafkaRecord(
        row["_topic"],
        row["_partition"],
        row["_offset"],
        row.get("_key"),
        str(row["_received"]).encode(),
        row.get("_kafka_timestamp"),
    )


def _letter_record(entry: DeadLetterEntry) -> KafkaRecord:
    return KafkaRecord(entry.topic, entry.partition, entry.offset, entry.key, entry.raw, entry.timestamp_ms)


def _table(source: Source, kept: list[Row], rows: list[Row], curated: pa.Schema) -> pa.Table:
    """The hour's rows typed like the curated table (its columns first, then any new ones): ``kept`` (curated
    rows not recomputed) in the curated types, ``rows`` (recomputed) in today's model's, then fitted to the curated
    table as compaction fits an hour, so a value of a type changed since keeps its own form in ``_extra``, never
    cast into another value (2.5 into 2), and one that cannot be cast never stops the run."""
    landed = formats.arrow_schema((*source.columns, *LINEAGE_COLUMNS))
    names = [name for name in curated.names if name not in ("date", "hour")]
    names += [name for name in landed.names if name not in names]
    first, second = (curated, landed), (landed, curated)
    tables = [_typed(part, names, order) for part, order in ((kept, first), (rows, second))]
    fitted, _ = drift.fit_tables(curated, tables)
    return pa.concat_tables(fitted)


def _typed(rows: list[Row], names: list[str], schemas: tuple[pa.Schema, pa.Schema]) -> pa.Table:
    """``rows`` as a table of ``names``, each column in the first of ``schemas`` that has it."""
    fields = []
    for name in names:
        kind = next(schema.field(name).type for schema in schemas if name in schema.names)
        if pa.types.is_timestamp(kind):
            kind = pa.timestamp("ms", tz="UTC")
        fields.append(pa.field(name, kind))
    values = {name: [row.get(name) for row in rows] for name in names}
    for column in fields:
        if pa.types.is_map(column.type):
            values[column.name] = [None if v is None else list(v.items()) for v in values[column.name]]
    table = pa.table({f.name: column_as(values[f.name], f.type) for f in fields})
    for index, column in enumerate(table.schema):
        if pa.types.is_timestamp(column.type):
            table = table.set_column(index, column.name, table.column(index).cast(TIMESTAMP))
    return table


def dead_letters_by_hour(
    entries: list[DeadLetterEntry], landed_ms: Mapping[Identity, int] | None = None
) -> dict[Hour, list[DeadLetterEntry]]:
    """Dead letters by the hour their row belongs to: for one whose record is in raw/ too (``landed_ms``: its raw
    row's ``_event_time``), that row's hour, where curated holds it or held it; else the hour their record's
    Kafka timestamp falls in (where processing filed them)."""
    landed = landed_ms or {}
    by_hour: dict[Hour, list[DeadLetterEntry]] = defaultdict(list)
    for entry in entries:
        moment = landed.get(entry.identity)
        moment = entry.timestamp_ms or 0 if moment is None else moment
        # Processing files a record whose timestamp no date can hold at epoch 0 (validation._screen); so here.
        by_hour[Hour.of_ms(moment if 0 <= moment <= MAX_TIMESTAMP_MS else 0)].append(entry)
    return by_hour


def removed_by_promotions(lake: LakeStore, source: str) -> frozenset[Identity]:
    """The identities of rows earlier promotions removed from curated/: those of its ``.reprocessed`` dead letters.

    A file that cannot be read is left out here (``read_dead_letters`` names it)."""
    removed: set[Identity] = set()
    for path in lake.list_paths(f"{DEADLETTER_AREA}/{safe_segment(source)}"):
        if not is_reprocessed(path):
            continue
        try:
            removed.update(_identity(row) for row in formats.decode("jsonl", lake.read(path)))
        except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError):
            continue
    return frozenset(removed)


def letters_never_committed(
    lake: LakeStore, source: str, read_rows: Mapping[Identity, int], keep: Collection[str] = ()
) -> list[str]:
    """The ``.reprocessed`` letter files that hold only rows of the hour's curated rows as read (``read_rows``,
    ``HourResult.read_rows``), but those in ``keep``: an earlier promotion of the hour wrote them and its commit
    never took effect (a commit that did removed their rows), or a later promotion restored every row they hold.
    Such a letter says a row left curated that did not.

    A promotion removes them before it writes its own letters: a rerun whose leaving rows differ from the failed
    attempt's (a late raw file compacted into the hour meanwhile, the code changed) names its files otherwise, and
    the earlier ones stayed, their offsets dead-lettered twice, and a row that stays in curated dead-lettered too.
    The letters of a promotion that committed, of this hour or another, hold rows not read here and are left as
    they are; so is a file that cannot be read. Looked for where letters of the rows are filed: the directories of
    their Kafka hours, files of their topic, partition and incarnation whose first and last offsets are rows read."""
    by_segment = {(safe_segment(topic), partition, life, offset) for topic, partition, life, offset in read_rows}
    directories = {hour_directory(DEADLETTER_AREA, source, hour_start_ms(ms)) for ms in read_rows.values()}
    found: list[str] = []
    for path in (path for directory in sorted(directories) for path in lake.list_paths(directory)):
        name = parse_batch_file_name(path)
        if name is None or not is_reprocessed(path) or path in keep:
            continue
        if any(
            (name.topic, name.partition, name.incarnation, end) not in by_segment for end in (name.first, name.last)
        ):
            continue  # another hour's rows, or rows a committed promotion removed: not read
        content = lake.read_versioned(path)  # None: gone since it was listed
        try:
            held = {_identity(row) for row in formats.decode("jsonl", content[0])} if content is not None else set()
        except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError):
            continue
        if held and all(identity in read_rows for identity in held):
            found.append(path)
    return found


def raw_rows_in_hours(
    lake: LakeStore, source: str, hours: list[Hour], identities: set[Identity]
) -> dict[Identity, Row]:
    """The raw rows of ``identities`` that landed in ``hours`` (a row lands in its event hour's directory); only
    the files of those hours whose names cover one of them are read."""
    offsets: dict[tuple[str, int, int], list[int]] = defaultdict(list)
    for topic, partition, incarnation, offset in identities:
        offsets[(topic, partition, incarnation)].append(offset)
    found: dict[Identity, Row] = {}
    for hour in hours if identities else []:
        for path in lake.list_paths(hour_directory(RAW_AREA, source, hour.start_ms)):
            raw, name = parse_raw_path(source, path), parse_batch_file_name(path)
            if raw is None or name is None:
                continue
            wanted = offsets.get((name.topic, name.partition, name.incarnation), [])
            if any(name.first <= offset <= name.last for offset in wanted):
                try:
                    rows = formats.decode(raw.format, lake.read(path))
                except DECODE_ERRORS as error:
                    raise UnreadableLakeFile(path, f"{type(error).__name__}: {error}") from error
                found.update((_identity(row), row) for row in rows if _identity(row) in identities)
    return found
