"""Move keyed state between layouts once: per-key entities into key buckets, one N to another, one backend to another.

In full: from the per-key entities of the previous layout into key buckets, from one bucket count
(N) to another, or from one Durable backend to another.

python -m tools.migrate_state                         # every keyed source, the local host on :7071
python -m tools.migrate_state --sources sensors --durable-url https://<app>.azurewebsites.net/runtime/webhooks/durabletask
python -m tools.migrate_state --to-buckets 256 --sources clickstream mobile users   # another N
python -m tools.migrate_state --export state.json     # then switch durable_backend, then:
python -m tools.migrate_state --import state.json [--to-buckets 256]
DURABLE_SYSTEM_KEY=<the durabletask_extension system key> python -m tools.migrate_state --durable-url ...

Stop processing first (docs/scale.md, "Upgrading keyed state"). From per-key entities: the keys
are taken from the lake (raw files and the curated table: every key that can have state), each
key's per-key entity is read, its state moved into its bucket (``adopt``, one operation per
bucket). To another N (``--to-buckets``): every bucket of the N the lake records
(``_state/buckets.json``) is read and each key it holds moved into its bucket of the new N, which
keeps the old bucket's applied offsets once (a gap between its ranges closed only where the
partition's landing ledger counts it landed whole: each ledger is read once; a partition without a
readable one keeps its gaps, and the run names it); once every key is there and the old buckets did not
change meanwhile, the record names the new N (restart the app before processing resumes: workers
read the record once).
To another backend: ``--export FILE`` reads every bucket of the N the lake records from the backend
the app uses now and writes each key's state, named by its bucket, with that bucket's applied
offsets, to FILE (refused if a bucket changed while it was read); after the switch, ``--import FILE``
moves those states into the new backend's buckets, of the recorded N or ``--to-buckets``, as a move
to another N does, and records the new N once every key is there.
Every moved key is read back from its bucket, and then what it was moved from is read again (the per-key
entities, or the old buckets). Exit 0 when every key with state is in its bucket
as it was, 1 when one is missing after ``--wait`` seconds or its bucket holds other state (a
conflict: the bucket had counted events for it, so processing ran before the migration), or when what it was
moved from changed meanwhile (signals still queued: let the entities drain, run again; from per-key entities, a
key an earlier run moved whose bucket has applied nothing since is moved again when its per-key entity has applied
more: ``shared.state.migration.moved_on``). A key whose
state cannot be put in today's form (``upgrade`` raises: a shape no release wrote, or damaged) is moved
(or exported) as stored and the others go on; the run names it at the end and exits 1. So is one whose stored
text is not a JSON object (its new bucket holds it as damaged, as the old one did). Damaged outside this code, as
the entity reads it (``shared.state.bucket_state``): a bucket's bookkeeping is set aside and its keys move; what a
bucket set aside or refused stays in it; a raw file that cannot be read (or whose name the lake refuses), or a
curated table that cannot be read (its log or a data file damaged: the rest of it), is passed over (a key only it
holds is not moved): each is named in one line and the run exits 1.
Exit 2, naming it, when the Durable HTTP API or the lake cannot be reached (nothing is recorded; run it again),
or a setting or an argument is refused (a ``--durable-url`` not https://, or with whitespace or a control
character; a ``--wait`` not a number of seconds from 0; an ``--export`` FILE that is a directory or in none: before
anything is read), or the ``--export`` FILE cannot be written (nothing left), or the lake's record of bucket counts
is lost (one line; docs/scale.md, "If the record is lost").
Running it again is harmless: nothing is moved twice. Buckets of an N the lake does not record hold only stale
state (an interrupted run's, or the N the source used before): a move into them (``--to-buckets``, or
``--import`` into an N other than the recorded one) sends each of the N buckets an adopt naming the run, and
each is emptied by its run's first adopt before it takes the moved states, those no key goes to included, and
every bucket is read back until the run has emptied it. So an interrupted move completes when run again, and a
move back to an earlier N brings back no key evicted since (nor its offsets). Each run's token comes from a
counter in the lake (``_state/migration_runs.json``, a conditional write before any adopt is sent), so a later
run's is higher than an earlier run's on any machine, and an earlier run's adopts still queued are refused. The
rule that keeps a run again safe: only a move into an N the record does not name replaces, and the record names
the new N only once the move is complete, before processing resumes there, and only if it still names the N the
run moved from (else exit 1, naming the N found: another run moved the source); a run again after that finds the
N recorded ("already in N buckets"). An import into the recorded N adopts without replacing, and first refuses
buckets that hold anything it would not bring (processing ran there); a completed import records the file's
digest, and the same file imported again is "already imported", nothing done.
A move into a new N whose buckets would pass their bound once the adopts are applied is refused, nothing sent;
a bucket over 80% of its bound after the move is named: its next applies may evict keys (raise N).
What the old buckets owe (``_owed``: offsets whose events they were refused, which ``tools.redrive`` re-signals)
moves too, an export carrying it: once every adopt is applied, each new bucket is sent one ``apply`` of ranges alone
naming the offsets owed by the old buckets whose keys can hash into it (``shared.state.migration.owed_into``), and
read back until it owes them; only then is the move complete.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import itertools
import json
import math
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError, TableNotFoundError

from shared.compaction.hours import parse_raw_path, raw_prefix
from shared.compaction.location import delta_location
from shared.compaction.rows import CompactionError, read_raw
from shared.errors import ConfigurationError, LakeError, LakeUnavailable, UnsafePath
from shared.lake import open_lake
from shared.lake.base import LakeStore
from shared.landing.ledger import Ledger
from shared.layout import ledger_path
from shared.offset_ranges import OffsetRanges, without
from shared.records import TopicPartition
from shared.settings import Settings, load_settings
from shared.sources import SOURCES
from shared.state.aggregate import Signal
from shared.state.bucket_counts import bucket_counts, imported, record_migrated, state_bucket_settings
from shared.state.bucket_state import KEPT_OWED, MAX_BUCKET_BYTES, OWED, held_keys
from shared.state.buckets import MAX_BUCKETS, bucket_for, bucket_key
from shared.state.keys import BadKey, encode_key
from shared.state.migration import (
    NEAR_CAPACITY,
    ExportError,
    Origins,
    Owed,
    StateExport,
    Verification,
    adopt_signals,
    as_stored,
    export_bytes,
    export_of,
    held_as_moved,
    keys_of,
    left_behind,
    moved_on,
    not_owing,
    overfull,
    owed_into,
    owed_of,
    owed_over,
    owed_signals,
    parse_export,
    partition_of,
    positions_of,
    readable,
    replaced_by,
    run_token,
    unbucketed,
    upgraded,
    verify,
)
from shared.state.offsets import APPLIED
from shared.state.registry import ENTITY_KINDS
from tools.cli import (
    MAX_ERROR_TEXT,
    RefusedArgument,
    one_line,
    secure_url,
    settings_error_line,
    tool_environment,
)

CONCURRENT_REQUESTS = 16
LOCAL_DURABLE_URL = "http://127.0.0.1:7071/runtime/webhooks/durabletask"
# what a damaged curated table raises as it is read (garbage in its log, a truncated data file)
UNREADABLE_TABLE = (DeltaError, OSError, pa.ArrowException)


class UnusableUrl(RefusedArgument):
    """A ``--durable-url`` ``urllib`` cannot make a request of (it raised ``ValueError`` or ``InvalidURL`` before
    sending anything): a bad argument. Its message names the URL without its query (the system key's ``code``)."""


class DurableApiError(Exception):
    """The ``--durable-url`` answered, but not as the Durable HTTP API does (a page that is not JSON, a signal not
    accepted with 202): most likely a wrong path or a login page."""


class DurableHttp:
    """The Durable Functions HTTP API for entities: read a state, signal an operation (as the durable client does)."""

    def __init__(self, base_url: str, system_key: str | None, timeout: float = 30.0) -> None:
        self.base_url = secure_url(base_url, "--durable-url").rstrip("/")
        self.system_key = system_key
        self.timeout = timeout

    def _url(self, entity: str, key: str, **query: str) -> str:
        if self.system_key:
            query["code"] = self.system_key
        path = f"{self.base_url}/entities/{urllib.parse.quote(entity, safe='')}/{urllib.parse.quote(key, safe='~:')}"
        return path + ("?" + urllib.parse.urlencode(query) if query else "")

    def _open(self, url: str, **request: Any) -> Any:
        """``urlopen`` of ``url``; one ``urllib`` or ``http.client`` cannot request (``ValueError``: a character a
        request line cannot hold; ``InvalidURL``) is ``UnusableUrl``, never their message: it quotes the request,
        the system key included."""
        try:
            return urllib.request.urlopen(urllib.request.Request(url, **request), timeout=self.timeout)
        except (ValueError, http.client.InvalidURL) as error:
            parsed = urllib.parse.urlsplit(self.base_url)
            shown = urllib.parse.urlunsplit((parsed.scheme, parsed.hostname or "", parsed.path, "", ""))
            raise UnusableUrl(
                f"--durable-url {shown!r} cannot be requested ({type(error).__name__}: a character a URL cannot hold, "
                "or a bad port?)"
            ) from None

    def read(self, entity: str, key: str) -> Any:
        """The entity's state as stored, of whatever shape (``None``: no such entity, or no state)."""
        try:
            with self._open(self._url(entity, key)) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return None
            raise
        except ValueError as error:  # json's JSONDecodeError, or text that is not UTF-8
            raise DurableApiError(f"reading {entity}@{key} answered what is not JSON ({error})") from None

    def signal(self, signal: Signal) -> None:
        body = json.dumps(json.dumps(signal.payload)).encode()  # what signal_entity posts: JSON text of JSON text
        with self._open(
            self._url(signal.entity, signal.key, op=signal.operation),
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        ) as response:
            if response.status != 202:
                raise DurableApiError(f"signal {signal.entity}@{signal.key} answered {response.status}, not 202")


def lake_rows(
    settings: Settings, source: str, environ: dict[str, str], unreadable: list[str]
) -> Iterator[dict[str, Any]]:
    """Every row of a source the lake holds: its raw files, then its curated table. A raw file that cannot be read
    (damaged, or a name the lake refuses) is passed over and named in ``unreadable`` (its path and why): a key only
    it holds is not found. So is a curated table that cannot be read (its log or a data file damaged): its rows
    read before the damage was met are taken, the rest passed over."""
    lake = open_lake(settings)
    for path in lake.list_paths(raw_prefix(source)):
        raw = parse_raw_path(source, path)
        if raw is None:
            continue
        try:
            rows = read_raw(raw.format, lake.read(path), path=path).to_pylist()
        except CompactionError as error:
            unreadable.append(str(error))
            continue
        except UnsafePath as error:  # a name the lake refuses to read (e.g. a copy's "c (1).parquet")
            unreadable.append(f"cannot read raw file {path}: {one_line(error, MAX_ERROR_TEXT)}")
            continue
        yield from rows
    location = delta_location(settings, source, environ)
    table = f"curated/{source}"
    try:
        found = DeltaTable(location.uri, storage_options=location.storage_options)
        batches = iter(found.to_pyarrow_dataset().to_batches())
    except TableNotFoundError:
        return
    except UNREADABLE_TABLE as error:
        unreadable.append(_unreadable_table(table, error))
        return
    while True:
        try:
            batch = next(batches, None)
        except UNREADABLE_TABLE as error:
            unreadable.append(_unreadable_table(table, error))
            return
        if batch is None:
            return
        yield from batch.to_pylist()


def _unreadable_table(table: str, error: Exception) -> str:
    """``cannot read curated/<source>: <why>`` on one line, without the stack backtrace a ``DeltaError`` may carry."""
    why = "\n".join(itertools.takewhile(lambda line: not _BACKTRACE_FRAME.match(line), str(error).splitlines()))
    return f"cannot read {table}: {type(error).__name__}: {one_line(why, MAX_ERROR_TEXT)}"


_BACKTRACE_FRAME = re.compile(r"\s*\d+: ")  # "   0: <unknown>": delta-rs's backtrace, after the error's own lines


def migrate(http: DurableHttp, source: str, keys: set[str], buckets: int, wait_seconds: float) -> Verification:
    """Move the per-key states of ``keys`` into their buckets and check them there; then read the per-key entities
    again: one that changed since it was read (a signal still queued for it, applied after the read) holds what
    its bucket does not, so the move is not complete (``source_changed``, naming the keys)."""
    entity = ENTITY_KINDS[source].name
    encodable = sorted(key for key in keys if _encodable(key))
    per_key = [encode_key(key) for key in encodable]
    before = _read_all(http, entity, per_key)
    stored = {
        key: _per_key_state(state) for key, state in zip(encodable, before.values(), strict=True) if state is not None
    }
    states, not_upgraded = upgraded(ENTITY_KINDS[source].upgrade, stored)
    homes = sorted({bucket_for(key, buckets) for key in states})
    renew = moved_on(states, _read_buckets(http, entity, homes), buckets)  # an earlier run left them behind
    outcome = _move(http, entity, states, buckets, wait_seconds, renew=renew)
    outcome.not_upgraded, outcome.renewed = not_upgraded, renew
    if outcome.complete:
        after = _read_all(http, entity, per_key)
        outcome.changed = [key for key, name in zip(encodable, per_key, strict=True) if after[name] != before[name]]
        outcome.source_changed = bool(outcome.changed)  # signals were still arriving: their events are not moved
    return outcome


def _per_key_state(state: Any) -> Any:
    """A per-key entity's state as a move carries it: one that is not an object (damaged outside this code) as
    stored (``as_stored``), which ``upgraded`` names."""
    return state if isinstance(state, dict) else as_stored(state)


def rebucket(
    http: DurableHttp, source: str, old: int, new: int, wait_seconds: float, *, lake: LakeStore
) -> Verification:
    """Move every key the ``old`` buckets of ``source`` hold into its bucket of ``new`` and check it there; the
    origins' gaps are closed where the ``lake``'s landing ledgers count them landed (``landed_offsets``), and the
    run's token comes from the ``lake``'s counter (``run_token``)."""
    entity = ENTITY_KINDS[source].name
    homes = [bucket_key(index, old) for index in range(old)]
    before = _read_buckets(http, entity, homes)
    landed, gaps_kept = landed_offsets(lake, source, positions_of(before))
    stored, origins = unbucketed(before, landed)
    states, not_upgraded = upgraded(ENTITY_KINDS[source].upgrade, stored)
    # the record still names old
    outcome = _move(http, entity, states, new, wait_seconds, origins, replace=lake, owed=owed_of(before))
    outcome.not_upgraded = not_upgraded
    outcome.gaps_kept = gaps_kept
    outcome.left_behind = left_behind(before)
    if outcome.complete:
        after = _read_buckets(http, entity, homes)
        outcome.changed = [home for home in homes if after[home] != before[home]]
        outcome.source_changed = bool(outcome.changed)  # signals were still arriving: what was moved may miss some
    return outcome


def export_state(
    http: DurableHttp, source: str, buckets: int, *, lake: LakeStore | None = None
) -> tuple[StateExport, bool, dict[str, str], dict[str, str], dict[str, str]]:
    """Every key state the ``buckets`` buckets of ``source`` hold, whether a bucket changed while they were read,
    the keys exported as stored because their upgrade raised or they are not an object (with why), the positions
    whose origins keep their gaps (no landing ledger of the ``lake`` to close them by: ``landed_offsets``), and
    what the export does not carry out of a bucket (``left_behind``)."""
    entity = ENTITY_KINDS[source].name
    homes = [bucket_key(index, buckets) for index in range(buckets)]
    held = _read_buckets(http, entity, homes)
    landed, gaps_kept = landed_offsets(lake, source, positions_of(held))
    export = export_of(entity, buckets, held, landed)
    states, not_upgraded = upgraded(ENTITY_KINDS[source].upgrade, export.states)
    export.states.update(states)
    return export, _read_buckets(http, entity, homes) != held, not_upgraded, gaps_kept, left_behind(held)


def landed_offsets(
    lake: LakeStore | None, source: str, positions: set[str]
) -> tuple[dict[str, OffsetRanges], dict[str, str]]:
    """Per position (``topic/partition/incarnation``), the offsets its partition's landing ledger counts as landed
    in that life: ``shared.state.migration.origin_ranges`` closes an old bucket's gap only where they hold it whole.
    Each partition's ledger is read once. Also, per position it cannot tell, why: no ledger, one this version
    cannot read, a life the ledger no longer keeps (no ``lake``: none read); such a position's gaps stay open, as
    is always exact (the origins are only larger). Lake errors propagate (``LakeUnavailable``: run again)."""
    landed: dict[str, OffsetRanges] = {}
    gaps_kept: dict[str, str] = {}
    ledgers: dict[TopicPartition, Ledger | str] = {}
    for where in sorted(positions):
        found = partition_of(where)
        if lake is None or found is None:
            gaps_kept[where] = "no landing ledger read" if lake is None else "not a topic/partition/incarnation"
            continue
        partition, life = found
        if partition not in ledgers:
            ledgers[partition] = _ledger(lake, source, partition)
        ledger = ledgers[partition]
        if isinstance(ledger, str):
            gaps_kept[where] = ledger
        elif life != ledger.incarnation and all(int(entry["incarnation"]) != life for entry in ledger.previous):
            gaps_kept[where] = f"life {life} no longer in its landing ledger"
        else:
            landed[where] = ledger.records_landed_in(life)
    return landed, gaps_kept


def _ledger(lake: LakeStore, source: str, partition: TopicPartition) -> Ledger | str:
    """The partition's landing ledger, or why there is none to read."""
    try:
        found = lake.read_versioned(ledger_path(source, partition))
        if found is None:
            return "no landing ledger"
        return Ledger.from_json(orjson.loads(found[0]))
    except (ValueError, KeyError, TypeError, UnsafePath) as error:  # orjson.JSONDecodeError is a ValueError
        return f"landing ledger unreadable: {type(error).__name__}: {error}"[:200]


def import_state(
    http: DurableHttp, export: StateExport, buckets: int, wait_seconds: float, *, replace: LakeStore | None = None
) -> Verification:
    """Move an export's key states into their buckets of ``buckets`` (in the app's backend) and check them;
    ``replace`` (the lake, whose counter names the run) when the lake records another N (nothing processes into
    these buckets)."""
    return _move(
        http, export.entity, export.states, buckets, wait_seconds, export.origins, replace=replace, owed=export.owed
    )


def held_otherwise(http: DurableHttp, export: StateExport, buckets: int) -> list[str]:
    """What the ``buckets`` buckets hold that an import of ``export`` (not replacing) did not bring: keys it does not
    move or holds with other state, and buckets that applied events (processing ran there): offsets they do not owe.
    Empty: they hold nothing, or only what an interrupted run of this import adopted and told them they owe, which a
    run again completes."""
    homes = [bucket_key(index, buckets) for index in range(buckets)]
    held = _read_buckets(http, export.entity, homes)
    found = [f"bucket {home} applied events" for home, bucket in held.items() if _applied_unowed(bucket)]
    for bucket in held.values():
        for key in held_keys(bucket):
            if key not in export.states or not held_as_moved(bucket, key, export.states[key]):
                found.append(key)
    return sorted(found)


def _applied_unowed(bucket: dict[str, Any] | None) -> bool:
    """Whether a bucket marked applied an offset it does not owe (an ``apply`` of ranges alone that names only what it
    owes, as a move sends, applied no event)."""
    owed = (bucket or {}).get(OWED) or {}
    return any(without(ranges, owed.get(where, [])) for where, ranges in ((bucket or {}).get(APPLIED) or {}).items())


def _read_all(http: DurableHttp, entity: str, keys: list[str]) -> dict[str, Any]:
    with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        return dict(zip(keys, pool.map(lambda key: http.read(entity, key), keys), strict=True))


def _read_buckets(http: DurableHttp, entity: str, homes: list[str]) -> dict[str, dict[str, Any] | None]:
    """The buckets' states as their entity reads them (``readable``: damaged bookkeeping set aside)."""
    return {home: readable(state) for home, state in _read_all(http, entity, homes).items()}


def _move(
    http: DurableHttp,
    entity: str,
    states: dict[str, Any],
    buckets: int,
    wait_seconds: float,
    origins: Origins | None = None,
    *,
    replace: LakeStore | None = None,
    renew: list[str] | None = None,
    owed: Owed | None = None,
) -> Verification:
    """Send the adopts and poll the buckets until every key is there; with ``replace`` (an N the record does not
    name; the lake whose counter names the run, before any adopt is sent), every one of the ``buckets`` buckets is
    sent this run's adopt and polled until the run has emptied it. ``renew``: keys whose adopts replace what their
    bucket holds for them (``moved_on``). ``owed`` (per old bucket, what it owed: ``owed_of``): once every adopt is
    applied, the new buckets are told to owe it (``_owe``); when a new bucket would owe more ranges of a position than
    it keeps (``KEPT_OWED``), nothing is sent: the oldest would count as applied and their re-signals be skipped."""
    into = owed_into(owed, buckets) if owed else {}
    if over := owed_over(into):  # the oldest would count as applied: refused whole
        return Verification(owed_over=over)
    if replace is not None and (full := overfull(entity, states, buckets, origins)):  # into empty buckets: known now
        return Verification(overfull=full)
    with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        run = None
        if replace is not None:  # the buckets are read first: the run is named later than any run they name too
            homes = [bucket_key(index, buckets) for index in range(buckets)]
            named = [replaced_by(bucket) for bucket in _read_buckets(http, entity, homes).values()]
            run = run_token(replace, max((earlier for earlier in named if earlier is not None), default=0))
        else:
            homes = sorted({bucket_for(key, buckets) for key in states})
        signals = adopt_signals(entity, states, buckets, origins, replace=run is not None, run=run, renew=renew or ())
        list(pool.map(http.signal, signals))
        deadline = time.monotonic() + wait_seconds
        while True:
            held = _read_buckets(http, entity, homes)
            outcome = verify(states, held, buckets, origins, run=run)
            outcome.run = run
            if not (outcome.missing or outcome.not_emptied) or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # the adopt operations are queued: poll the buckets until they are applied
        if into and outcome.complete:  # after every adopt of the run: an applied bucket refuses the run's adopts
            _owe(http, pool, entity, into, wait_seconds, outcome)
        return outcome


def _owe(
    http: DurableHttp,
    pool: ThreadPoolExecutor,
    entity: str,
    into: Owed,
    wait_seconds: float,
    outcome: Verification,
) -> None:
    """Tell each new bucket what it owes (``into``: ``owed_into``) and poll them until they owe it: the buckets
    that do not yet are ``outcome.not_owing`` (the move is not complete)."""
    list(pool.map(http.signal, owed_signals(entity, into)))
    deadline = time.monotonic() + wait_seconds
    while True:
        outcome.not_owing = not_owing(into, _read_buckets(http, entity, sorted(into)))
        if not outcome.not_owing or time.monotonic() > deadline:
            return
        time.sleep(0.5)


def _encodable(key: str) -> bool:
    try:
        encode_key(key)
    except (BadKey, ValueError):
        return False  # a key no per-key entity could take: dead-lettered as bad_key, it never had state
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.migrate_state", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sources", nargs="+", choices=sorted(ENTITY_KINDS), help="keyed sources (default: all of them)"
    )
    parser.add_argument("--durable-url", default=LOCAL_DURABLE_URL, help="the app's .../runtime/webhooks/durabletask")
    parser.add_argument("--settings", type=Path, default=Path("local.settings.json"), help="settings file (Values)")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the buckets to apply")
    parser.add_argument(
        "--to-buckets", type=int, help="move from the N the lake records to this N (1-65536) instead of from per-key"
    )
    between = parser.add_mutually_exclusive_group()
    between.add_argument("--export", type=Path, metavar="FILE", help="write every bucket's key states to FILE")
    between.add_argument(
        "--import", dest="import_file", type=Path, metavar="FILE", help="move the key states of FILE into the buckets"
    )
    args = parser.parse_args(argv)
    args.named_sources = args.sources is not None
    args.sources = args.sources or sorted(ENTITY_KINDS)
    if args.to_buckets is not None and not 1 <= args.to_buckets <= MAX_BUCKETS:
        parser.error(f"--to-buckets must be from 1 to {MAX_BUCKETS:,}")
    if args.export is not None and args.to_buckets is not None:
        parser.error("--to-buckets goes with --import (or alone), not with --export")
    secure_url(args.durable_url, "--durable-url")  # a bad argument before any setting is read
    if not math.isfinite(args.wait) or args.wait < 0:  # nan: a deadline never passed, the run never ended
        raise RefusedArgument(f"--wait must be a number of seconds, 0 or more: {args.wait}")
    if args.export is not None:
        _check_export_path(args.export)  # before every bucket is read, not after
    environ = tool_environment(args.settings)  # a local lake that is not a directory: refused, exit 2
    settings = load_settings(environ)
    http = DurableHttp(args.durable_url, environ.get("DURABLE_SYSTEM_KEY") or None)
    lake = open_lake(settings)
    counts = bucket_counts(lake, *state_bucket_settings(settings))
    if args.export is not None:
        return _export(http, lake, args.sources, counts.of, args.export)
    if args.import_file is not None:
        return _import(http, lake, args, counts.of)
    failed = False
    not_upgraded: dict[str, list[str]] = {}
    for source in args.sources:
        buckets = counts.of(source)
        unreadable: list[str] = []
        if args.to_buckets is None:
            keys = keys_of(SOURCES[source].entity_key, lake_rows(settings, source, environ, unreadable))
            outcome = migrate(http, source, keys, buckets, args.wait)
            found = f"{len(keys):,} keys in the lake"
        elif args.to_buckets == buckets:
            print(f"{source}: already in {buckets:,} buckets")
            continue
        else:
            outcome = rebucket(http, source, buckets, args.to_buckets, args.wait, lake=lake)
            found = f"{_key_count(outcome):,} keys in {buckets:,} buckets"
            if outcome.complete:
                outcome.record_moved = record_migrated(lake, source, args.to_buckets, buckets, run=outcome.run)
            buckets = args.to_buckets
        failed = _report(source, found, buckets, outcome) or failed
        failed = _report_unreadable(unreadable) or failed
        not_upgraded[source] = sorted(outcome.not_upgraded)
    return _exit_code(failed, not_upgraded)


def _export(http: DurableHttp, lake: LakeStore, sources: list[str], recorded: Callable[[str], int], path: Path) -> int:
    """Write the selected sources' key states to ``path``; exit 1 (nothing written) if a bucket changed meanwhile."""
    exports = {}
    not_upgraded: dict[str, list[str]] = {}
    failed = False
    for source in sources:
        buckets = recorded(source)
        export, changed, not_upgraded_here, gaps_kept, left = export_state(http, source, buckets, lake=lake)
        if changed:
            print(
                f"{source}: its buckets changed while they were read (processing running, or signals still "
                "queued): nothing written; stop processing, let the entities drain, run again"
            )
            return 1
        exports[source] = export
        print(f"{source}: {len(export.states):,} keys from {buckets:,} buckets")
        _report_gaps_kept(gaps_kept)
        _report_not_upgraded(not_upgraded_here)
        _report_left_behind(left)
        not_upgraded[source] = sorted(not_upgraded_here)
        failed = failed or bool(left)
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_bytes(export_bytes(exports))
        partial.replace(path)
    except OSError as error:  # its directory gone meanwhile, a disk full, a directory made at the path
        if partial.is_file() or partial.is_symlink():
            with contextlib.suppress(OSError):
                partial.unlink()
        why = error.strerror or type(error).__name__
        print(f"migrate_state: cannot write {path}: {one_line(why, MAX_ERROR_TEXT)}: nothing written", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return _exit_code(failed, not_upgraded)


def _check_export_path(path: Path) -> None:
    """Refuse an ``--export`` path that cannot be written (``RefusedArgument``): its directory missing, or a
    directory itself."""
    if path.is_dir():
        raise RefusedArgument(f"--export {path} is a directory: name a file; nothing was read")
    if not path.parent.is_dir():
        why = "does not exist" if not path.parent.exists() else "is not a directory"
        raise RefusedArgument(f"--export {path}: its directory {path.parent} {why}; nothing was read")


def _import(http: DurableHttp, lake: LakeStore, args: argparse.Namespace, recorded: Callable[[str], int]) -> int:
    """Move the key states of the export file into the buckets; record the new N where it changed."""
    try:
        data = args.import_file.read_bytes()
        exports = parse_export(data, {s: k.name for s, k in ENTITY_KINDS.items()})
    except (OSError, ExportError) as error:
        print(f"cannot import {args.import_file}: {error}", file=sys.stderr)
        return 2
    digest = hashlib.sha256(data).hexdigest()
    missing = [source for source in args.sources if source not in exports]
    if missing and (args.named_sources or len(missing) == len(args.sources)):
        print(
            f"cannot import {args.import_file}: it holds no state of {', '.join(missing)}; nothing imported",
            file=sys.stderr,
        )
        return 2
    failed = False
    for source in args.sources:
        if source not in exports:
            print(f"{source}: not in {args.import_file}, skipped")
            continue
        if imported(lake, source, digest):  # processing may have counted (and evicted) since: its states are stale
            print(f"{source}: {args.import_file} already imported (sha256 {digest[:16]}...): nothing done")
            continue
        export, buckets, moved_from = exports[source], args.to_buckets or recorded(source), recorded(source)
        if buckets == moved_from and (held := held_otherwise(http, export, buckets)):
            print(
                f"{source}: its {buckets:,} buckets (the N recorded) already hold state this import did not bring "
                f"(processing ran there, or another import): nothing imported; {len(held):,} e.g. {held[:20]!r}"
            )
            failed = True
            continue
        outcome = import_state(http, export, buckets, args.wait, replace=lake if buckets != moved_from else None)
        if outcome.complete:
            outcome.record_moved = record_migrated(lake, source, buckets, moved_from, run=outcome.run, export=digest)
        found = f"{len(export.states):,} keys in the export ({export.buckets:,} buckets)"
        failed = _report(source, found, buckets, outcome) or failed
    return 1 if failed else 0


def _exit_code(failed: bool, not_upgraded: dict[str, list[str]]) -> int:
    """1 when a move failed or some key was moved as stored; such keys are named last, where they are seen."""
    for source, keys in not_upgraded.items():
        if keys:
            print(f"{source}: {len(keys):,} keys kept as stored, not upgraded (see above): {keys!r}")
    return 1 if failed or any(not_upgraded.values()) else 0


def _key_count(outcome: Verification) -> int:
    return len(outcome.moved) + len(outcome.missing) + len(outcome.conflicts)


def _report(source: str, found: str, buckets: int, outcome: Verification) -> bool:
    """Print what a move did; True when it failed."""
    print(
        f"{source}: {found}, {len(outcome.moved):,} moved into {buckets:,} buckets, "
        f"{len(outcome.missing):,} missing, {len(outcome.conflicts):,} conflicts"
    )
    for problem, keys_listed in (("missing", outcome.missing), ("conflict", outcome.conflicts)):
        for key in keys_listed[:20]:
            print(f"  {problem}: {key!r}")
    if outcome.renewed:
        print(
            f"  {len(outcome.renewed):,} keys moved again, their per-key entities having applied more since an "
            f"earlier run moved them: {outcome.renewed[:20]!r}"
        )
    if outcome.not_emptied:
        print(
            f"  {len(outcome.not_emptied):,} buckets not emptied by this run yet (its adopts still queued, or a "
            f"later run's): {outcome.not_emptied[:20]!r}"
        )
    if outcome.not_owing:
        print(
            f"  {len(outcome.not_owing):,} buckets do not owe yet the offsets the old buckets owed (the operations "
            f"still queued): {outcome.not_owing[:20]!r}"
        )
    for where, ranges in sorted(outcome.owed_over.items())[:20]:
        print(
            f"  refused, nothing sent: a new bucket would owe {ranges:,} ranges at {where}, over the {KEPT_OWED} it "
            "keeps (the oldest would count as applied, their re-signals skipped): run tools.redrive first, then again"
        )
    for home, size in sorted(outcome.overfull.items())[:20]:
        print(
            f"  refused, nothing sent: bucket {home} would hold {size:,} bytes after the move, over its "
            f"{MAX_BUCKET_BYTES:,}: its first apply would evict keys, their state dropped (move to a larger N)"
        )
    for home, size in sorted(outcome.near_capacity.items())[:20]:
        print(
            f"  warning: bucket {home} holds {size:,} bytes after the move, over {NEAR_CAPACITY:.0%} of its "
            f"{MAX_BUCKET_BYTES:,}: its next applies may evict keys (move to a larger N)"
        )
    _report_gaps_kept(outcome.gaps_kept)
    _report_not_upgraded(outcome.not_upgraded)
    _report_left_behind(outcome.left_behind)
    if outcome.record_moved is not None:
        print(
            f"  the record names {outcome.record_moved:,} buckets, not the N this run moved from (another run moved "
            "the source meanwhile): the record is unchanged, the move incomplete; check which N holds the live state"
        )
    if outcome.source_changed:
        print(
            f"  what {source} was moved from changed during the move (processing running, or signals still "
            f"queued), {len(outcome.changed):,} entities, e.g. {outcome.changed[:20]!r}: the record is unchanged; "
            "stop processing, let the entities drain, run again"
        )
    return not outcome.complete or bool(outcome.left_behind)


def _report_gaps_kept(gaps_kept: dict[str, str]) -> None:
    """Name the positions whose origins keep the old buckets' gaps: exact, but each gap is one range more, carried
    into every new bucket its keys went to (a bucket may then fill sooner: see the warnings)."""
    if gaps_kept:
        print(
            f"  {len(gaps_kept):,} positions keep their gaps in the moved origins (no landing ledger to close them "
            "by; exact, only larger):"
        )
    for where, why in sorted(gaps_kept.items())[:20]:
        print(f"    {where}: {why}")


def _report_not_upgraded(not_upgraded: dict[str, str]) -> None:
    for key, why in sorted(not_upgraded.items())[:20]:
        print(f"  not upgraded, kept as stored: {key!r} ({why})")


def _report_left_behind(left: dict[str, str]) -> None:
    """Name what a move did not carry out of a bucket (it keeps it): damaged outside this code, for a person."""
    for home, what in sorted(left.items())[:20]:
        print(f"  bucket {home} keeps what was not moved (damaged outside this code; inspect it): {what}")


def _report_unreadable(unreadable: list[str]) -> bool:
    """Name each raw file (or curated table) that could not be read; True when there is one (a key only it holds
    was not moved)."""
    for why in unreadable:
        print(f"  {why}: a key only it holds was not moved; check its keys")
    return bool(unreadable)


def cli(argv: list[str] | None = None) -> int:
    """``main`` with an unreachable Durable HTTP API or lake, refused settings or a refused argument (a
    ``--durable-url``, ``--wait`` or ``--export``; a ``--durable-url`` no request can be made of: ``UnusableUrl``,
    never quoting its query, the system key) as one line (exit 2), not a traceback."""
    try:
        return main(argv)
    except RefusedArgument as error:
        print(f"migrate_state: {error}", file=sys.stderr)
    except urllib.error.HTTPError as error:
        print(f"migrate_state: the Durable HTTP API answered {error.code} {error.reason}", file=sys.stderr)
    except DurableApiError as error:
        print(
            f"migrate_state: --durable-url does not answer as the Durable HTTP API: {error}; is it the app's "
            ".../runtime/webhooks/durabletask?",
            file=sys.stderr,
        )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        print(f"migrate_state: the Durable HTTP API did not answer ({reason}); is the app running?", file=sys.stderr)
    except LakeUnavailable as error:
        print(f"migrate_state: the lake did not answer: {error}", file=sys.stderr)
    except ConfigurationError as error:  # before LakeError: a lost bucket-count record is both
        print(settings_error_line("migrate_state", error), file=sys.stderr)
    except LakeError as error:  # refused (its container gone, not authorised): nothing was recorded
        print(f"migrate_state: the lake refused: {error}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(cli())
