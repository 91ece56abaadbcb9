"""Raw files an hour cannot use, moved out of ``raw/`` so that the rest of their hour compacts.

A raw file that cannot be read, decoded or fitted (truncated or foreign bytes, a row that is not a
record, a column that clashes with the partition columns or the table's, a type no Delta table can
store) would fail its hour on every run until the lifecycle rule deleted the hour's raw files
(``raw_retention_days``), and the good rows with them. Compaction moves it instead to

``deadletter/<source>/quarantine/date=YYYY-MM-DD/hour=HH/<name>.<digest>.quarantined``

(its bytes, as they were) beside ``<that path>.json``, which says why, and compacts the rest of the
hour in the same run. The digest is of the bytes: the copy is created only if absent, so a run cut
between the copy and the delete repeats the move with the same name, and never takes another file's
bytes for its own. Neither name ends like a landed file or a dead letter, so redrive, reprocess and
the landing's look-ups of dead letters leave them alone; ``tools.reconcile`` counts their offsets.

A name is at most ``NAME_BYTES`` long, the sidecar's included (local file systems and ADLS Gen2 path
segments take no longer one), though a raw name may be nearly that long itself: when ``<name>`` does
not fit, the stem of it is cut and a digest of the whole name follows it (``quarantine_name``:
``<cut stem>.<name digest>.<extension>.<digest>.quarantined``), so the name stays unique and the same
on every rerun. The name is therefore not the way back: the sidecar's ``raw_path`` is
(``quarantined_files``); the name is read only for a file whose sidecar is missing or damaged
(``original_path``: exact for a name that was not cut, which includes every name earlier versions gave).

A file is put back by copying it to its ``raw_path`` (after fixing whatever was wrong): the next
compaction recompacts its hour with it.

A file its partition's landing ledger still names in its pending landing is not moved
(``StillLanding``): the next instance to land that partition would find it missing, take the landing
for unfinished, and remove its other files, whose records Kafka does not deliver again. The run leaves
that file out (``LeftOut``: not moved, not recorded as covered) and compacts the rest of its hour; the
next run tries it again. A partition's last landing stays pending until its next batch, so an idle
partition's file waits as long: its hour's lag grows, and each run fails naming it.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import orjson

from shared.compaction.hours import Hour, parse_raw_path, raw_prefix
from shared.compaction.rows import CompactionError
from shared.errors import LakeError, LakeRefused, TransientError
from shared.lake.base import LakeStore
from shared.landing.ledger import names_pending
from shared.layout import DEADLETTER_AREA, NAME_BYTES, check_relative_path, safe_segment

QUARANTINE = "quarantine"
SUFFIX = ".quarantined"
REASON_SUFFIX = ".json"
REASON = "unusable_raw_file"  # the sidecar's ``reason``, as a dead letter names its own
DIGEST_CHARS = 16
NAME_DIGEST_CHARS = 8  # of the whole raw name, in a name whose stem was cut
RAW_EXTENSIONS = (".parquet", ".avro", ".jsonl.gz")
NO_REASON = "no reason recorded (its sidecar is missing or damaged)"
REFUSED_NAME = "a name the lake refuses (no copy compaction made: its sidecar is left unread)"

log = logging.getLogger("streamingpoc.compaction")


class UnusableRawFiles(CompactionError):
    """Raw files of an hour that cannot be used as they are (``reasons``: path -> why); the others can."""

    def __init__(self, reasons: dict[str, str]) -> None:
        super().__init__("; ".join(f"raw file {path}: {why}" for path, why in sorted(reasons.items())))
        self.reasons = reasons


class StillLanding(CompactionError):
    """A raw file that cannot be used is still named by its partition's pending landing: not moved yet."""

    def __init__(self, raw_path: str, why: str) -> None:
        super().__init__(
            f"raw file {raw_path} cannot be used ({why}), but its partition's landing still names it as pending: "
            "it is moved once the partition's next batch has finished that landing"
        )
        self.raw_path = raw_path
        self.why = why


@dataclass(frozen=True, slots=True)
class LeftOut:
    """A raw file a run could not use nor move (``StillLanding``): its hour compacted without it, and did not
    record it as covered, so the next run tries it again."""

    raw_path: str
    why: str


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A raw file moved out of ``raw/``: where it was, where it is, and why."""

    raw_path: str
    path: str
    why: str


def quarantine_directory(source: str, hour: Hour | None = None) -> str:
    directory = f"{DEADLETTER_AREA}/{safe_segment(source)}/{QUARANTINE}"
    return directory if hour is None else f"{directory}/date={hour.date}/hour={hour.hour}"


def quarantine(lake: LakeStore, source: str, raw_path: str, why: str) -> Quarantined:
    """Move the raw file at ``raw_path`` to the quarantine with the reason beside it; logged as an error.

    The lake's errors are raised as they are: an outage (``TransientError``) is not the file's, and the
    hour is retried as a whole by the next run."""
    raw = parse_raw_path(source, raw_path)
    if raw is None:
        raise LakeError(f"{raw_path} is not a raw file of {source}")
    if names_pending(lake, source, raw_path):  # moved by mistake is what must not happen: unreadable counts
        raise StillLanding(raw_path, why)
    data = lake.read(raw_path)
    digest = hashlib.sha256(data).hexdigest()
    path = f"{quarantine_directory(source, raw.hour)}/{quarantine_name(raw_path.rpartition('/')[2], digest)}"
    lake.create(path, data)  # False: an earlier run's copy of these same bytes (the digest names them)
    sidecar = {
        "source": source,
        "reason": REASON,
        "detail": why,
        "raw_path": raw_path,
        "sha256": digest,
        "bytes": len(data),
        "quarantined_at": int(time.time() * 1000),
    }
    lake.write_atomic(path + REASON_SUFFIX, orjson.dumps(sidecar))
    lake.delete(raw_path)
    log.error(
        "%s: QUARANTINED raw file %s (its rows are not in curated/%s until it is fixed and put back): %s; now at %s",
        source,
        raw_path,
        source,
        why,
        path,
    )
    return Quarantined(raw_path, path, why)


def quarantine_name(name: str, digest: str) -> str:
    """The quarantined copy's file name for the raw file ``name`` whose bytes' SHA-256 is ``digest``:
    ``<name>.<digest>.quarantined`` (as earlier versions named every copy) when it fits in ``NAME_BYTES`` with its
    sidecar's suffix; else the stem of ``name`` cut to fit, followed by a digest of the whole ``name`` and its
    extension (two long names that begin alike, holding the same bytes, keep apart)."""
    tail = f".{digest[:DIGEST_CHARS]}{SUFFIX}"
    whole = f"{name}{tail}"
    if len(f"{whole}{REASON_SUFFIX}".encode()) <= NAME_BYTES:
        return whole
    extension = next((ext for ext in RAW_EXTENSIONS if name.endswith(ext)), "")
    stem = name.removesuffix(extension) if extension else name
    marker = f".{hashlib.sha256(name.encode()).hexdigest()[:NAME_DIGEST_CHARS]}"
    room = NAME_BYTES - len(f"{marker}{extension}{tail}{REASON_SUFFIX}".encode())
    return f"{stem.encode()[:room].decode(errors='ignore')}{marker}{extension}{tail}"


def quarantined_files(lake: LakeStore, source: str) -> list[Quarantined]:
    """Every quarantined raw file of ``source``: where it was (its sidecar's ``raw_path``; read from its name
    only when the sidecar is missing or damaged) and the reason its sidecar gives (or says it lacks one).

    A file whose name the lake refuses (an operator's copy, ``c (1).parquet.<digest>.quarantined``) is listed
    with that as its reason and its sidecar left unread: reading it would only be refused too (its own read
    is, in ``tools.reconcile``, which names it unreadable). A sidecar the lake cannot give (refused, or deleted
    since the listing) is none; an outage (``TransientError``) is not the file's and is raised."""
    paths = set(lake.list_paths(quarantine_directory(source)))
    found = []
    for path in sorted(path for path in paths if path.endswith(SUFFIX)):
        try:
            check_relative_path(path)
        except LakeError:
            found.append(Quarantined(original_path(source, path), path, REFUSED_NAME))
            continue
        sidecar = _sidecar(lake, path + REASON_SUFFIX) if path + REASON_SUFFIX in paths else None
        detail = None if sidecar is None else sidecar.get("detail")
        raw_path = None if sidecar is None else sidecar.get("raw_path")
        if not isinstance(raw_path, str) or parse_raw_path(source, raw_path) is None:
            raw_path = original_path(source, path)
        found.append(Quarantined(raw_path, path, NO_REASON if detail is None else str(detail)))
    return found


def _sidecar(lake: LakeStore, path: str) -> dict[str, object] | None:
    """The sidecar at ``path`` as written, or None when it is not there to read (the lake refuses its name, or
    it was deleted since the listing) or not a JSON object. An outage is raised."""
    try:
        data = lake.read(path)
    except (TransientError, LakeRefused):  # not the sidecar's own
        raise
    except LakeError:
        return None
    try:
        loaded = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return loaded if isinstance(loaded, dict) else None


def original_path(source: str, path: str) -> str:
    """The raw path a quarantined file was moved from as its name tells it (its directory's hour, its name less
    digest and suffix): exact unless ``quarantine_name`` cut the name, when it keeps the cut stem, the name's
    digest and the extension (its format). ``quarantined_files`` reads the sidecar's ``raw_path`` first."""
    directory, _, name = path.rpartition("/")
    hour_directory = directory.removeprefix(quarantine_directory(source) + "/")
    return f"{raw_prefix(source)}/{hour_directory}/{name.removesuffix(SUFFIX).rpartition('.')[0]}"
