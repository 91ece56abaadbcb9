"""How many key buckets each keyed source's state is spread over (N), as the lake records it.

N is part of where a key's state lives (a bucket's key names it: ``~b7of256``), so every writer
and reader must use the same N, and a deployment must not move to another N because a default
changed: its keys would start over in empty buckets. So N is recorded per source in the lake,
``_state/buckets.json`` (``{"buckets": {source: N}}``), and read from there. A keyed source's N
is recorded before its first landing (``shared.invocation``), state on or off, so a source the
record does not name:

- has no landing ledger: it is new, and gets ``STATE_BUCKETS`` if set, else its kind's N
  (``shared.state.registry``);
- has ledgers: it landed under a version from before the record, and its state is in that
  version's buckets: ``STATE_BUCKETS`` if set, else 1,024. Unless the lake shows that a record named it and was
  lost since (a restore without it, a delete): then its state is in the buckets of the N the lost record named,
  which nothing here can tell, and ``RecordLost`` names the file and what to do (docs/scale.md, "If the record is
  lost") instead of taking another N.

What shows it, per source, is evidence a write of the record by another source leaves in place (never whether the
record is empty: the first source to settle after a loss may be a new one, which writes a record naming itself):

- the runs record (``RUNS_PATH``) names the source (a migration moved it, which only a record naming it allows);
- the record is absent while something else is under ``_state/`` (the runs record: only a version that records N
  writes there);
- the record is one written in such a lake (absent, ``_state/`` not empty), which keeps what showed the loss under
  ``"lost"`` (``LOST``), so the sources that landed stay refused once a new source has written it. A record a
  person writes (restored from a backup, or rewritten naming each keyed source's N) has no ``"lost"``, and the
  record's other fields are kept by every write of this module.

A restore that brings ``_state/`` back brings the evidence back with it; one that loses all of ``_state/`` leaves
none (the source takes 1,024, or ``STATE_BUCKETS``: docs/scale.md). A lake from before the record has ledgers and
nothing under ``_state/``, and a new deployment neither: no evidence, N taken as above.

The record is created only if absent and extended only at its version, so concurrent workers
agree on it. A worker reads it once; moving a source to another N is a migration that rewrites
the record, after which the app restarts (docs/scale.md).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import orjson

from shared.errors import ConfigurationError, LakeError, WriteConflict
from shared.lake.base import LakeStore
from shared.layout import LEDGER_AREA, safe_segment
from shared.state.registry import ENTITY_KINDS

T = TypeVar("T")

RECORD_PATH = "_state/buckets.json"
# Migration runs (``tools.migrate_state``): the last token handed out, the last run completed per source, the
# exports imported per source (their digests): ``{"last": token, "completed": {source: token}, "imported": {...}}``.
RUNS_PATH = "_state/migration_runs.json"
STATE_AREA = "_state"  # what this version keeps in the lake about keyed state; the versions before the record kept none
BEFORE_THE_RECORD = 1024  # STATE_BUCKETS' default in the versions that did not record N
# In a record written where one had been lost (absent, ``_state/`` not empty): what under ``_state/`` showed it.
LOST = "lost"
_ATTEMPTS = 5


class RecordLost(ConfigurationError, LakeError):
    """The record of bucket counts that named a source which landed is lost (absent, or replaced by one written
    since that does not name it): no N can be taken for the source (its state is in the buckets of the N the lost
    record named). A configuration to restore, which every reader
    of the record reports as it does a damaged record (a ``LakeError``): processing waits, the API answers 503."""


class BucketCounts:
    """Each keyed source's N for one lake; ``override`` is ``STATE_BUCKETS`` and ``new_sources``
    ``NEW_SOURCE_STATE_BUCKETS`` (None: unset)."""

    def __init__(self, lake: LakeStore, override: int | None = None, new_sources: int | None = None) -> None:
        self.lake = lake
        self.override = override
        self.new_sources = new_sources
        self._known: dict[str, int] = {}
        self._lock = threading.Lock()

    def of(self, source: str) -> int:
        """N of a keyed source (``KeyError`` for a source without keyed state)."""
        known = self._known.get(source)
        return known if known is not None else self.resolve([source])[source]

    def known(self, sources: Iterable[str]) -> dict[str, int] | None:
        """The sources' N when already read, without touching the lake; None otherwise."""
        counts = {source: self._known.get(source) for source in sources}
        return None if None in counts.values() else {source: n for source, n in counts.items() if n is not None}

    def resolve(self, sources: Iterable[str]) -> dict[str, int]:
        """N of each source, reading (and if needed writing) the lake's record once per worker."""
        wanted = sorted(set(sources))
        for source in wanted:
            if source not in ENTITY_KINDS:
                raise KeyError(f"{source!r} keeps no keyed state")
        with self._lock:
            if any(source not in self._known for source in wanted):
                self._known.update(self._settle(wanted))
            return {source: self._known[source] for source in wanted}

    def _settle(self, wanted: list[str]) -> dict[str, int]:
        def name_missing(record: _Record) -> bool:
            missing = [source for source in wanted if source not in record.counts]
            if not missing:
                return False
            if record.absent and (signs := _signs_of_a_record(self.lake)):
                record.others[LOST] = signs  # the record written now is not the one the lake had: it says so
            record.counts.update({source: self._first_count(source, record) for source in missing})
            return True

        return _update(self.lake, name_missing).counts

    def _first_count(self, source: str, record: _Record) -> int:
        """N for a source ``record`` does not name: a source that landed before it was named has its state (if any)
        in the buckets of a version from before the record; otherwise it is new. A source that landed is refused
        (``RecordLost``) when the lake shows a record that named it was lost (the module's rule)."""
        if not self.lake.list_paths(f"{LEDGER_AREA}/{safe_segment(source)}"):
            return self.override or self.new_sources or ENTITY_KINDS[source].buckets
        if LOST in record.others:
            lost = record.others[LOST]
            signs = [str(sign) for sign in lost] if isinstance(lost, list) else [str(lost)]
            evidence = f"it holds {', '.join(signs[:3])}, which only a version that records N writes"
        elif _moved_by_a_run(self.lake, source):
            evidence = f"{RUNS_PATH} names {source}: a migration moved it, which only a record naming it allows"
        else:
            return self.override or BEFORE_THE_RECORD
        where = RECORD_PATH if record.absent else f"the {RECORD_PATH} that named {source}"
        since = "" if record.absent else f"; the one there now was written since and names {sorted(record.counts)}"
        raise RecordLost(
            f"{where} is absent, but this lake had one ({evidence}{since}): {source} landed, and its state is in the "
            f"buckets of the N the lost record named, not {self.override or BEFORE_THE_RECORD:,} (what a lake from "
            f"before the record would take). Nothing was recorded. Restore {RECORD_PATH} from a backup of the lake, "
            'or write it as {"buckets": {"<source>": N, ...}} naming each keyed source with the N of the buckets its '
            'state is in (docs/scale.md, "If the record is lost"), then restart the app'
        )


def _signs_of_a_record(lake: LakeStore) -> list[str]:
    """What the lake holds under ``_state/`` besides the record (the runs record, ``RUNS_PATH``): only a version that
    records N writes there, so any of it shows a record existed."""
    return sorted(path for path in lake.list_paths(STATE_AREA) if path != RECORD_PATH)


def _moved_by_a_run(lake: LakeStore, source: str) -> bool:
    """Whether the runs record names ``source`` (a migration moved it: ``record_migrated`` records a run only over
    the N a record named)."""
    found = lake.read_versioned(RUNS_PATH)
    if found is None:
        return False
    runs = _parse_runs(found[0])
    return source in runs["completed"] or source in runs["imported"]


def record_migrated(
    lake: LakeStore, source: str, buckets: int, moved_from: int, *, run: int | None = None, export: str | None = None
) -> int | None:
    """Record that ``source``'s state is now in ``buckets`` buckets (after a verified migration), only if the record
    still names ``moved_from``, the N the run moved from (compare-and-set at the record's version: another run that
    moved the source meanwhile is not overwritten). Returns ``None`` when recorded (a record already naming
    ``buckets`` counts: the write took effect though its answer was lost), else the N the record names (nothing
    written; ``0``: it names none). Then, in the runs record (``RUNS_PATH``), the completed ``run`` (no
    token at or below it is handed out again: ``next_run``) and the ``export`` imported (its digest: an import of
    it again is refused, ``imported``)."""
    found: list[int | None] = []

    def move(record: _Record) -> bool:
        found[:] = [record.counts.get(source)]
        if found[0] != moved_from:
            return False
        record.counts[source] = buckets
        return buckets != moved_from

    _update(lake, move)
    if found[0] not in (moved_from, buckets):  # ``buckets``: this run's own write, whose answer was lost and whose
        return found[0] or 0  # retry read the record again (or a run that made the same move)

    def completed(runs: dict[str, Any]) -> bool:
        if run is not None:
            runs["last"] = max(runs["last"], run)
            runs["completed"][source] = max(int(runs["completed"].get(source, 0)), run)
        if export is not None and export not in runs["imported"].setdefault(source, []):
            runs["imported"][source].append(export)
        return True

    _update_runs(lake, completed)
    return None


def next_run(lake: LakeStore, after: int = 0) -> int:
    """A migration run's token, handed out from the lake's runs record (``RUNS_PATH``) by a conditional write before
    the run sends any adopt: later than every token handed out before (on any machine, whatever its clock), than
    every completed run, than ``after`` (the latest run the target buckets name) and, so that tokens of versions
    that took the clock stay below, than this machine's clock in nanoseconds."""
    token: list[int] = []

    def take(runs: dict[str, Any]) -> bool:
        completed = max((int(run) for run in runs["completed"].values()), default=0)
        token[:] = [max(runs["last"] + 1, completed + 1, after + 1, time.time_ns())]
        runs["last"] = token[0]
        return True

    _update_runs(lake, take)
    return token[0]


def imported(lake: LakeStore, source: str, export: str) -> bool:
    """Whether an import of the export whose digest is ``export`` completed for ``source`` (``record_migrated``)."""
    found = lake.read_versioned(RUNS_PATH)
    return found is not None and export in _parse_runs(found[0])["imported"].get(source, [])


def _update_runs(lake: LakeStore, change: Callable[[dict[str, Any]], bool]) -> None:
    """Read the runs record, let ``change`` edit it, write it back at the version read; again on a conflict."""
    _rewrite(lake, RUNS_PATH, lambda data: _parse_runs(data or b"{}"), change, _sorted_json)


def _parse_runs(data: bytes) -> dict[str, Any]:
    try:
        runs: Any = orjson.loads(data)
        runs.setdefault("last", 0)
        runs.setdefault("completed", {})
        runs.setdefault("imported", {})
        if (
            type(runs["last"]) is int
            and isinstance(runs["completed"], dict)
            and all(type(run) is int for run in runs["completed"].values())
            and isinstance(runs["imported"], dict)
            and all(isinstance(digests, list) for digests in runs["imported"].values())
        ):
            return dict(runs)
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        pass
    raise LakeError(f"{RUNS_PATH} is not a record of migration runs ({data[:200]!r}): restore it (docs/scale.md)")


@dataclass
class _Record:
    """The record as read: each source's N, its other fields (``LOST``, or a later version's), kept as they are by a
    write, and whether it was absent."""

    counts: dict[str, int]
    others: dict[str, Any] = field(default_factory=dict)
    absent: bool = False


def _update(lake: LakeStore, change: Callable[[_Record], bool]) -> _Record:
    """Read the record, let ``change`` edit it (False: nothing to write), write it back at the version read;
    read again when another writer got there first."""
    return _rewrite(
        lake,
        RECORD_PATH,
        lambda data: _Record({}, absent=True) if data is None else _parse(data),
        change,
        lambda record: _sorted_json({**record.others, "buckets": record.counts}),
    )


def _rewrite(
    lake: LakeStore,
    path: str,
    parse: Callable[[bytes | None], T],
    change: Callable[[T], bool],
    dump: Callable[[T], bytes],
) -> T:
    """Read ``path`` (None: absent), let ``change`` edit it (False: nothing to write), write it back with ``dump`` at
    the version read; read again when another writer got there first."""
    for _ in range(_ATTEMPTS):
        found = lake.read_versioned(path)
        value, version = (parse(found[0]), found[1]) if found is not None else (parse(None), None)
        if not change(value):
            return value
        try:
            lake.write_if(path, dump(value), version)
        except WriteConflict:
            continue
        return value
    raise WriteConflict(f"{path} kept changing under {_ATTEMPTS} attempts to update it")


def _sorted_json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _parse(data: bytes) -> _Record:
    try:
        record: Any = orjson.loads(data)
        counts = record["buckets"]
        if isinstance(counts, dict) and all(
            isinstance(source, str) and type(n) is int and 1 <= n <= 65_536 for source, n in counts.items()
        ):
            return _Record(dict(counts), {name: value for name, value in record.items() if name != "buckets"})
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        pass
    raise LakeError(f"{RECORD_PATH} is not a record of bucket counts ({data[:200]!r}): restore it (docs/scale.md)")


def state_bucket_settings(settings: Any) -> tuple[int | None, int | None]:
    """``STATE_BUCKETS`` and ``NEW_SOURCE_STATE_BUCKETS`` from the app's settings, as ``bucket_counts`` takes them."""
    return settings.state_buckets, settings.new_source_state_buckets


_per_lake: WeakKeyDictionary[Any, BucketCounts] = WeakKeyDictionary()
_per_lake_lock = threading.Lock()


def bucket_counts(lake: LakeStore, override: int | None = None, new_sources: int | None = None) -> BucketCounts:
    """The worker's ``BucketCounts`` for ``lake`` (one per lake client, so the record is read once)."""
    with _per_lake_lock:
        counts = _per_lake.get(lake)
        if counts is None or (counts.override, counts.new_sources) != (override, new_sources):
            counts = _per_lake[lake] = BucketCounts(lake, override, new_sources)
        return counts
