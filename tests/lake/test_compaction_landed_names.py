"""No landed raw file is ever silently ignored by compaction: a dot-file is compacted like any other, and a file
named as a landed batch that compaction does not read counts in the lag and fails the run, naming it.

Each test lands through the real processing path (``shared.invocation.handle_batch``) into a real local lake and
runs the real compaction against a real Delta table.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.compaction.job import compact, open_curated, run_compaction
from shared.compaction.rows import CompactionError
from shared.errors import ConfigurationError
from shared.invocation import ProcessingContext, handle_batch
from shared.lake import LocalLake
from shared.settings import load_settings, load_source_settings
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS, records_for

GRACE = 15 * 60_000
HOUR = 3_600_000


def _settings(root: Path):  # type: ignore[no-untyped-def]
    return load_settings({"LAKE_LOCAL_ROOT": str(root)})


def _compact(root: Path, now_ms: int, source: str = "orders"):  # type: ignore[no-untyped-def]
    table = open_curated(_settings(root), source)
    return compact(source, LocalLake(root), table, now_ms=now_ms, grace_ms=GRACE)


def _curated_offsets(root: Path, source: str = "orders") -> list[int]:
    from deltalake import DeltaTable, QueryBuilder

    location = open_curated(_settings(root), source).location
    try:
        table = DeltaTable(location.uri, storage_options=location.storage_options)
    except Exception:
        return []
    rows = QueryBuilder().register("t", table).execute("SELECT _offset FROM t").read_all()
    return sorted(rows.column("_offset").to_pylist())


def _land_orders(root: Path, topic: str = "orders") -> list[str]:
    """10 orders records landed by the processing path, as a deployment on ``topic`` lands them (the settings'
    own check skipped: a deployment from before it refused the topic)."""
    source = SOURCES["orders"]
    source_settings = load_source_settings("orders", {}).model_copy(update={"topic": topic})
    context = ProcessingContext(
        source, LocalLake(root), _settings(root), source_settings, clock=lambda: FIXED_NOW_MS / 1000
    )
    handle_batch(context, records_for(source, 10, topic=topic))
    return LocalLake(root).list_paths("raw/orders")


def test_a_topic_starting_with_a_dot_is_refused_and_the_files_landed_for_one_are_compacted(tmp_path: Path) -> None:
    """``ORDERS_TOPIC=.orders`` was a valid setting; landing named its files ``.orders+0+i0+...parquet`` and
    compaction's raw-file pattern refused a leading dot: the files were ignored forever, never planned, never
    counted in the lag, and deleted by the lifecycle rule. The setting is refused now, and files an earlier
    deployment landed so are compacted."""
    with pytest.raises(ConfigurationError, match=r"ORDERS_TOPIC must not start with '\.'"):
        load_source_settings("orders", {"ORDERS_TOPIC": ".orders"})
    landed = _land_orders(tmp_path, ".orders")
    assert landed and all("/.orders+0+i0+" in path for path in landed), landed

    report = _compact(tmp_path, FIXED_NOW_MS + 3 * HOUR)
    # Either the rows reach curated, or the lag (what the alert reads) says that something is stuck.
    assert _curated_offsets(tmp_path) == list(range(10)) or report.plan.lag_ms > 0, (
        f"landed {landed}, curated {_curated_offsets(tmp_path)}, lag {report.plan.lag_ms}, "
        f"ignored {report.plan.ignored}"
    )
    assert report.plan.ignored == () and _compact(tmp_path, FIXED_NOW_MS + 4 * HOUR).plan.tasks == ()


def test_a_landed_batch_file_compaction_does_not_read_counts_in_the_lag_and_fails_the_run(tmp_path: Path) -> None:
    """A file named as a landed batch where compaction does not read it (here moved one directory down, as an
    operator might): its rows are nowhere else, so it is not ignored as a stray. It counts in the lag from its
    hour's end, and the run fails naming it, every run until it is moved where compaction reads it."""
    (landed,) = _land_orders(tmp_path)
    directory, name = landed.rsplit("/", 1)
    moved = f"{directory}/retry/{name}"
    store = LocalLake(tmp_path)
    store.write_atomic(moved, store.read(landed))
    store.delete(landed)

    now = FIXED_NOW_MS + 3 * HOUR
    with pytest.raises(CompactionError, match="named as landed batches but compaction does not read them") as raised:
        run_compaction("orders", store, _settings(tmp_path), now_ms=now)
    assert moved in str(raised.value)
    report = _compact(tmp_path, now)
    hour_end = FIXED_NOW_MS - FIXED_NOW_MS % HOUR + HOUR
    assert report.plan.unplanned == (moved,) and report.plan.lag_ms == now - hour_end

    store.write_atomic(landed, store.read(moved))  # the operator moves it back
    store.delete(moved)
    assert run_compaction("orders", store, _settings(tmp_path), now_ms=now).rows == 10
    assert _curated_offsets(tmp_path) == list(range(10))


def test_a_stray_that_is_not_named_as_a_landed_batch_is_only_reported(tmp_path: Path) -> None:
    store = LocalLake(tmp_path)
    _land_orders(tmp_path)
    store.write_atomic("raw/orders/date=2026-11-24/hour=10/notes.txt", b"a note")
    report = run_compaction("orders", store, _settings(tmp_path), now_ms=FIXED_NOW_MS + 3 * HOUR)
    assert report.plan.ignored == ("raw/orders/date=2026-11-24/hour=10/notes.txt",) and report.plan.unplanned == ()


def test_a_stray_no_lake_path_can_name_is_only_reported_on_the_local_lake_too(tmp_path: Path) -> None:
    """Review 15: an operator's copy (``x (1).parquet``: a space and parentheses) is listed by the Blob and ADLS
    stores and ignored by the plan; the local lake's listing refused the whole prefix for it (UnsafePath), so
    compaction of the source failed on every run."""
    store = LocalLake(tmp_path)
    landed = _land_orders(tmp_path)
    stray = f"{landed[0].rsplit('/', 1)[0]}/x (1).parquet"
    (tmp_path / stray).write_bytes(b"junk")
    report = run_compaction("orders", store, _settings(tmp_path), now_ms=FIXED_NOW_MS + 3 * HOUR)
    assert report.plan.ignored == (stray,) and report.rows == 10
