"""Recompute curated hours from the records as received with today's code; show the diff; promote.

python -m tools.reprocess orders --from 2026-11-27T10:00Z --to 2026-11-27T12:00Z            # diff only
python -m tools.reprocess orders --from 2026-11-27T10:00Z --to 2026-11-27T12:00Z --promote  # replace them

Before anything changes it writes the recomputed hours to the shadow Delta table
``shadow/<source>`` and prints, per hour, the rows changed, removed and newly dead-lettered, and
the dead letters that pass now (``tools.redrive`` sends those: it lands them in raw/, state and
curated alike). ``--promote`` then replaces each hour that differs in ``curated/<source>``, one
commit per hour (an hour every row of which leaves is emptied); an hour whose promotion fails (its commit,
the lake, the lease's renewal) or is refused (it holds a raw file its rows were not read from, or has not
begun: ``shared.reprocess.check_promotable``) is named, the others go on, and the command exits 1: run it
again for that hour (after the next compaction, for a refused one).
Joined columns (what keyed state wrote: clickstream's username/city/level, sensors' anomaly) keep
their landed values, because state is not versioned. An Avro source is refused before anything is read
or written (exit 4): its rows keep the record as the producer wrote it but not the writer schema id, so it
cannot be resolved again as it was landed; ``tools.redrive`` sends its dead letters. Settings as for the app
(``--settings``, the environment; ``--lake DIR`` for a local lake). See docs/datagen.md, "Reprocess".
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pyarrow as pa

from shared import formats
from shared.compaction import drift
from shared.compaction.coverage import REPROCESS_KEY, commit_metadata
from shared.compaction.delta_table import CuratedTable, HourChangedSince, VersionTaken
from shared.compaction.hours import Hour
from shared.compaction.job import MB, open_curated
from shared.compaction.location import DeltaLocation, curated_path, delta_location
from shared.compaction.rewrite import replace_hour
from shared.compaction.rows import CompactionError, merge_hour, offset_ranges
from shared.errors import LakeError, LakeUnavailable, RedriveInProgress, TransientError
from shared.lake import open_lake
from shared.lake.base import LakeStore
from shared.landing.files import DEADLETTER_COLUMNS, dead_letter_row
from shared.landing.raw_rows import Identity
from shared.layout import (
    DEADLETTER_AREA,
    batch_file_name,
    hour_directory,
    hour_start_ms,
    reprocessed_extension,
    safe_segment,
)
from shared.records import OffsetSpan, TopicPartition
from shared.redrive import (
    ENTITY_REJECTED,
    DeadLetterEntry,
    RedriveLease,
    read_dead_letters,
    redrive_log,
    take_lease,
)
from shared.reprocess import (
    HourNotPromotable,
    HourResult,
    NotReprocessable,
    check_promotable,
    check_reprocessable,
    dead_letters_by_hour,
    joined_columns,
    letters_never_committed,
    raw_rows_in_hours,
    recompute_hour,
    removed_by_promotions,
)
from shared.settings import Settings, load_settings, load_source_settings
from shared.sources import SOURCES, Source
from shared.state.registry import keeps_state
from tools.cli import MAX_ERROR_TEXT, lake_target, one_line, parse_since, tool_environment, tool_main
from tools.redrive import EXIT_ANOTHER_REDRIVE_RUNNING

HOUR_MS = 3_600_000
EXIT_NOT_PROMOTED = 1  # an hour's commit failed: run the command again for it
EXIT_NOT_REPROCESSABLE = 4  # an Avro source (shared.reprocess.check_reprocessable): nothing read or written
EXIT_LAKE_UNAVAILABLE = 5  # the lake could not be read or written before any hour was promoted
PROG = "python -m tools.reprocess"


def shadow_path(source: str) -> str:
    return f"shadow/{safe_segment(source)}"


def shadow_location(location: DeltaLocation, source: str) -> DeltaLocation:
    """``shadow/<source>`` beside ``curated/<source>`` on the same store."""
    base = location.uri[: -len(curated_path(source))]
    return DeltaLocation(f"{base}{shadow_path(source)}", location.storage_options)


def reprocess(
    source: Source,
    *,
    lake: LakeStore,
    curated: CuratedTable,
    shadow: CuratedTable,
    window: tuple[int, int],
    max_record_bytes: int,
    keyed: bool = False,
) -> list[HourResult]:
    """Recompute every hour of ``[from, to)`` that has curated rows or dead letters; write them to ``shadow``.

    ``keyed``: the source's state is on, so entity keys are checked as processing checks them.
    An Avro source raises :class:`NotReprocessable` before anything is read or written."""
    check_reprocessable(source)
    hours = window_hours(window)
    removed = removed_by_promotions(lake, source.name)
    letters = _dead_letters(lake, source.name, removed)
    landed = raw_rows_in_hours(lake, source.name, hours, {e.identity for e in letters if e.identity in removed})
    restorable = frozenset(landed)  # removed rows of the window's hours; those of other hours are not this run's
    letters = [letter for letter in letters if letter.identity not in removed or letter.identity in restorable]
    letters_by_hour = dead_letters_by_hour(letters, {i: int(row["_event_time"]) for i, row in landed.items()})
    # Once, before the rows: they hold at least these. Each hour's is the commit compaction finds for it, however
    # few hours are asked about (an hour compacted ahead of its start included: CuratedTable.hour_coverage).
    coverage = curated.coverage(set(hours))
    results = []
    for hour in hours:
        read_version = curated.version()  # what the promotion checks for commits of the hour since
        rows = curated.read_hour(hour)
        letters_of_hour = letters_by_hour.get(hour, [])
        if not rows.num_rows and not letters_of_hour:
            continue
        result = recompute_hour(
            source, hour, rows, letters_of_hour, max_record_bytes=max_record_bytes, keyed=keyed, removed=restorable
        )
        result = dataclasses.replace(result, covered=coverage.get(hour, frozenset()), read_version=read_version)
        recomputed = _merged(hour, [result.table])
        _write_shadow_hour(lake, shadow, source.name, hour, recomputed, {REPROCESS_KEY: _note(result)})
        results.append(result)
    return results


class ShadowTaken(Exception):
    """``shadow/<source>`` changed under this run: another reprocess of the source is writing it (a diff-only run
    takes no lease, so that it never holds up a redrive)."""


def _write_shadow_hour(
    lake: LakeStore, shadow: CuratedTable, source: str, hour: Hour, rows: pa.Table | None, metadata: dict[str, str]
) -> None:
    """The recomputed hour into ``shadow/<source>``; a commit that fails because another writer committed the hour,
    or the version, first is :class:`ShadowTaken` (exit 3), not a lake that cannot be used."""
    try:
        _replace_hour(lake, shadow, shadow_path(source), hour, rows, metadata)
    except (HourChangedSince, VersionTaken) as error:
        raise ShadowTaken(
            f"shadow/{source} changed under this run at {hour} (another reprocess of {source} running?): run again "
            "once it is done"
        ) from error


# Each hour of a window is looked up and read: a window from year 1 to 9999 ran for hours on gigabytes of hour lists.
MAX_WINDOW_HOURS = 366 * 24


def window_hours(window: tuple[int, int]) -> list[Hour]:
    """The hours ``[from, to)`` touches."""
    return [Hour.of_ms(start) for start in _hour_starts(window)]


def _hour_starts(window: tuple[int, int]) -> range:
    """The epoch ms at which each hour ``[from, to)`` touches starts."""
    return range(window[0] - window[0] % HOUR_MS, window[1], HOUR_MS)


def _dead_letters(lake: LakeStore, source: str, removed: frozenset[Identity]) -> list[DeadLetterEntry]:
    """The source's dead letters not redriven; of the ``entity_rejected`` ones, only rows a promotion removed
    (the others are in curated/, or will be once compacted: only their state update was refused)."""
    sent, unconfirmed = redrive_log(lake, source, sends_only=True)
    unreadable: list[str] = []
    letters = [
        entry
        for entry in read_dead_letters(lake, source, unreadable)
        if entry.identity not in sent | unconfirmed and (entry.reason != ENTITY_REJECTED or entry.identity in removed)
    ]
    for file in unreadable:  # the run goes on without it
        print(f"unreadable dead-letter file left out: {file}", file=sys.stderr)
    return letters


def promote(
    source: Source,
    result: HourResult,
    *,
    lake: LakeStore,
    curated: CuratedTable,
    run_id: str,
    now_ms: int,
    clock: Callable[[], float] = time.time,
) -> None:
    """Replace the hour in ``curated`` (empty it when every row leaves): the leaving rows' dead letters first, so
    a crash loses nothing. Their files are named by the rows they hold, and the letters an earlier attempt whose
    commit never took effect wrote (every row they hold is still in the hour's rows as read:
    ``letters_never_committed``) are removed before they are written: a rerun after a commit that failed leaves
    one letter per leaving row, never a second copy, also when the hour's rows changed in between (a late raw
    file compacted into it, the code changed), and none for a row that stays. An Avro source raises
    :class:`NotReprocessable` first.

    An hour holding a raw file its rows were not read from, or that has not begun by ``clock`` (which stamps
    the commit), raises :class:`HourNotPromotable` before anything is written (``check_promotable``: refused,
    not covered, as covering such a file would lose its rows). ``now_ms`` dates the dead letters."""
    check_reprocessable(source)
    hour = result.diff.hour
    check_promotable(lake, source.name, hour, result.covered, now_ms=int(clock() * 1000))
    fitted, _ = drift.fit_tables(curated.schema(), [result.table])
    merged = _merged(hour, fitted)
    offsets, rows = ([], 0) if merged is None else (offset_ranges(merged), merged.num_rows)
    # The coverage of the rows read, not the table's now. The commit is checked against the version they were
    # read at (not the one curated.schema() refreshed to): a compaction of the hour committed since, whose
    # rows these lack, fails the promotion instead of being undone until the next compaction.
    metadata = commit_metadata(source.name, hour, sorted(result.covered), offsets, rows)
    metadata[REPROCESS_KEY] = _note(result)
    letters = _dead_letter_files(source.name, result, run_id, now_ms)
    for path in letters_never_committed(lake, source.name, result.read_rows, keep=letters):
        lake.delete(path)  # before any letter is written: an offset is never in two files, whenever this stops
    for path, data in letters.items():
        lake.write_atomic(path, data)
    _replace_hour(lake, curated, curated_path(source.name), hour, merged, metadata, read_version=result.read_version)


def _merged(hour: Hour, tables: list[pa.Table]) -> pa.Table | None:
    """The hour's rows as one sorted table (``merge_hour``); None when no row stays."""
    return merge_hour(hour, tables) if any(table.num_rows for table in tables) else None


def _replace_hour(
    lake: LakeStore,
    table: CuratedTable,
    table_path: str,
    hour: Hour,
    rows: pa.Table | None,
    metadata: dict[str, str],
    *,
    read_version: int | None = None,
) -> None:
    """The hour in ``table`` replaced by ``rows`` in one commit; emptied when there are none. ``read_version``:
    the version of ``table`` the hour was read at (``CuratedTable.commit_hour``)."""
    if rows is None:
        table.clear_hour(hour, metadata, read_version=read_version)
    else:
        replace_hour(lake, table, table_path, hour, rows, metadata, read_version=read_version)


def _note(result: HourResult) -> str:
    diff = result.diff
    return orjson.dumps(
        {
            "changed": diff.changed,
            "removed": diff.removed,
            "restored": diff.restored,
            "newly_dead": dict(diff.newly_dead),
        }
    ).decode()


def _dead_letter_files(source: str, result: HourResult, run_id: str, now_ms: int) -> dict[str, bytes]:
    """Rows that leave curated, as dead-letter files beside the others (``.reprocessed``: raw/ still holds them),
    by path: one per topic, partition, incarnation and Kafka hour.

    A file's name says which rows it holds (``reprocessed-<digest of their offsets>``), not which run wrote it:
    writing the same rows again replaces the file."""
    files: dict[str, bytes] = {}
    by_file: dict[tuple[str, int, int, int], list[dict[str, object]]] = {}
    for letter, incarnation in zip(result.letters, result.letter_incarnations, strict=True):
        row = dead_letter_row(letter, now_ms, incarnation)  # the life it landed in: redrive identifies it by that
        row["detail"] = f"tools.reprocess {run_id}: {row['detail']}"
        hour_ms = hour_start_ms(letter.record.timestamp_ms or 0)  # where letters_never_committed looks
        where = (letter.record.topic, letter.record.partition, incarnation, hour_ms)
        by_file.setdefault(where, []).append(row)
    for (topic, partition, incarnation, hour_ms), rows in sorted(by_file.items()):
        offsets = sorted(int(str(row["_offset"])) for row in rows)
        digest = hashlib.sha256(",".join(map(str, offsets)).encode()).hexdigest()
        name = batch_file_name(
            TopicPartition(topic, partition),
            OffsetSpan(offsets[0], offsets[-1]),
            incarnation,
            reprocessed_extension(digest),
        )
        data = formats.encode("jsonl", DEADLETTER_COLUMNS, rows, record_name="deadletter")
        files[f"{hour_directory(DEADLETTER_AREA, source, hour_ms)}/{name}"] = data
    return files


def report(source: Source, results: list[HourResult], window: tuple[int, int]) -> str:
    start, end = (datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ") for ms in window)
    lines = [
        f"reprocess of {source.name}, {start} to {end}: recomputed into shadow/{source.name}",
        f"{'hour':<14}  {'rows':>6}  {'changed':>7}  {'removed':>7}  newly dead-lettered  {'restored':>8}"
        "  kept as landed  now valid",
    ]
    for result in results:
        d = result.diff
        dead = ", ".join(f"{count} {reason}" for reason, count in sorted(d.newly_dead.items())) or "0"
        lines.append(
            f"{d.hour!s:<14}  {d.rows:>6}  {d.changed:>7}  {d.removed:>7}  {dead:<19}  {d.restored:>8}  {d.kept:>14}"
            f"  {d.now_valid:>9}"
        )
        if d.columns:
            lines.append(f"{'':<14}  columns changed: " + ", ".join(f"{n} ({c})" for n, c in sorted(d.columns.items())))
    joined = joined_columns(source)
    if joined:
        lines.append(f"joined columns keep their landed values (state is not versioned): {', '.join(joined)}")
    lines.append(f"hours that differ: {sum(r.diff.differs for r in results)} of {len(results)}")
    now_valid = sum(r.diff.now_valid for r in results)
    if now_valid:
        lines.append(
            f"{now_valid} dead letter(s) pass now; not landed here: python -m tools.redrive {source.name} sends them"
        )
    return "\n".join(lines)


@tool_main(PROG)
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("source", choices=sorted(SOURCES))
    parser.add_argument("--from", dest="start", type=parse_since, required=True, help="ISO time, inclusive")
    parser.add_argument("--to", dest="end", type=parse_since, required=True, help="ISO time, exclusive")
    parser.add_argument("--promote", action="store_true", help="replace the hours that differ in curated/<source>")
    parser.add_argument("--lake", type=Path, help="a local lake directory (default: settings)")
    parser.add_argument("--settings", type=Path, default=Path("local.settings.json"), help="settings file (Values)")
    args = parser.parse_args(argv)
    if args.start >= args.end:
        parser.error("--from must be before --to")
    if (hours := len(_hour_starts((args.start, args.end)))) > MAX_WINDOW_HOURS:
        parser.error(f"--from to --to spans {hours:,} hours; reprocess at most {MAX_WINDOW_HOURS:,} (a year) a run")
    source = SOURCES[args.source]
    try:
        check_reprocessable(source)
    except NotReprocessable as error:
        print(f"not reprocessed: {error}", file=sys.stderr)
        return EXIT_NOT_REPROCESSABLE
    env = tool_environment(args.settings, lake=args.lake)
    settings: Settings = load_settings(env)
    try:
        return _run(args, source, settings, env)
    except (LakeUnavailable, LakeError) as error:  # unreachable or refused before any hour was promoted
        print(
            f"reprocess of {source.name} stopped: cannot use the lake ({lake_target(settings)}): "
            f"{one_line(error, MAX_ERROR_TEXT)}",
            file=sys.stderr,
        )
        return EXIT_LAKE_UNAVAILABLE


def _run(args: argparse.Namespace, source: Source, settings: Settings, env: dict[str, str]) -> int:
    lake = open_lake(settings)
    curated = open_curated(settings, source.name, env)
    shadow = CuratedTable(
        shadow_location(delta_location(settings, source.name, env), source.name),
        target_file_bytes=settings.compaction_target_file_mb * MB,
    )
    window = (args.start, args.end)
    run_id = f"{int(time.time())}-{uuid.uuid4().hex[:6]}"
    keyed = keeps_state(source.name, load_source_settings(source.name, env).state_enabled)
    try:  # one operator run of a source at a time: two promotions would write the leaving rows' dead letters twice
        lease = take_lease(lake, source.name, f"reprocess-{run_id}") if args.promote else None
    except RedriveInProgress as error:
        print(f"not reprocessed: {error}", file=sys.stderr)
        return EXIT_ANOTHER_REDRIVE_RUNNING
    try:
        results = reprocess(
            source,
            lake=lake,
            curated=curated,
            shadow=shadow,
            window=window,
            max_record_bytes=settings.max_record_bytes,
            keyed=keyed,
        )
        print(report(source, results, window))
        if lease is None:
            print("nothing in curated/ changed; --promote replaces the hours that differ")
            return 0
        not_promoted = _promote_differing(source, results, lake=lake, curated=curated, lease=lease, run_id=run_id)
    except (RedriveInProgress, ShadowTaken) as error:
        print(f"stopped: {error}", file=sys.stderr)
        return EXIT_ANOTHER_REDRIVE_RUNNING
    finally:
        if lease is not None:
            lease.release()
    return EXIT_NOT_PROMOTED if not_promoted else 0


def _promote_differing(
    source: Source,
    results: list[HourResult],
    *,
    lake: LakeStore,
    curated: CuratedTable,
    lease: RedriveLease,
    run_id: str,
) -> int:
    """Promote each hour that differs, one at a time; an hour that fails (its commit: compaction committed it
    meanwhile; the lake unavailable or refusing a request, the lease's renewal before it included; an hour
    ``check_promotable`` refuses) is named and left for a rerun, and the others go on (exit 1, never the exit 5
    of a lake unusable before any hour was promoted). Only a lease another run took over stops the loop
    (``RedriveInProgress`` from ``fence``: exit 3). Returns how many were not promoted."""
    not_promoted = 0
    for result in results:
        if not result.diff.differs:
            continue
        try:
            lease.fence()
            promote(source, result, lake=lake, curated=curated, run_id=run_id, now_ms=int(time.time() * 1000))
        except (TransientError, LakeError, CompactionError, HourNotPromotable) as error:
            not_promoted += 1
            print(
                f"{result.diff.hour}: not promoted ({error}); run the command again for this hour "
                "(if its commit took effect after all, it shows no difference then)",
                file=sys.stderr,
            )
        else:
            print(f"promoted {result.diff.hour}")
    return not_promoted


if __name__ == "__main__":
    sys.exit(main())
