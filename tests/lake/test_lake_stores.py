"""One behaviour, three stores: atomic overwrite, scoped listings, safe paths, errors converted at the edge."""

from __future__ import annotations

from pathlib import Path

import pytest

from devhost.services.azurite import Azurite
from devhost.services.processes import free_port
from shared.batch import process_batch
from shared.errors import LakeError, LakeUnavailable, UnsafePath, WriteConflict
from shared.formats import decode, format_named
from shared.lake import LakeStore
from shared.landing.files import land, plan_batch
from shared.sources import SOURCES
from tests.conftest import FIXED_NOW_MS, records_for
from tests.lake.conftest import adls_lake, blob_lake
from tests.lake.fake_dfs_server import FakeDataLake

PATH = "raw/clickstream/date=2026-11-24/hour=10/clickstream+0+00000000000000000000+00000000000000000009.parquet"


def test_write_then_read_back_and_overwrite_replaces(store: LakeStore) -> None:
    store.write_atomic(PATH, b"first")
    store.write_atomic(PATH, b"second version")
    assert store.read(PATH) == b"second version"
    assert store.list_paths("raw") == [PATH]


def test_listing_is_sorted_scoped_and_empty_for_unknown_prefixes(store: LakeStore) -> None:
    for name in ("raw/b/2.avro", "raw/a/1.avro", "deadletter/a/1.jsonl.gz", "raw/a/0.avro"):
        store.write_atomic(name, b"x")
    assert store.list_paths("raw") == ["raw/a/0.avro", "raw/a/1.avro", "raw/b/2.avro"]
    assert store.list_paths("raw/a") == ["raw/a/0.avro", "raw/a/1.avro"]
    assert store.list_paths("nothing/here") == []


def test_reading_a_missing_file_is_a_lake_error(store: LakeStore) -> None:
    with pytest.raises(LakeError) as raised:
        store.read("raw/missing.parquet")
    assert not isinstance(raised.value, LakeUnavailable)


@pytest.mark.parametrize("path", ["../outside", "/absolute", "a//b", "a/./b", "a/../../b", "a/b\\c", ""])
def test_unsafe_paths_are_refused_before_any_io(store: LakeStore, path: str) -> None:
    with pytest.raises(UnsafePath):
        store.write_atomic(path, b"x")
    with pytest.raises(UnsafePath):
        store.read(path)


def test_landing_a_batch_twice_gives_the_same_files_and_rows_on_every_store(store: LakeStore) -> None:
    source = SOURCES["clickstream"]
    batch = process_batch(source, records_for(source, 50), max_record_bytes=1 << 20)
    first = land(store, plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS))
    again = land(store, plan_batch(batch, format_named("parquet"), now_ms=FIXED_NOW_MS))
    assert first.files == again.files and store.list_paths("raw") == sorted(first.files)
    rows = [row for path in store.list_paths("raw") for row in decode("parquet", store.read(path))]
    assert len(rows) == 50 == len({row["_offset"] for row in rows})


def test_data_files_are_created_only_if_absent(store: LakeStore) -> None:
    assert store.create(PATH, b"first") is True
    assert store.create(PATH, b"second") is False  # already there: counts as written, never replaced
    assert store.read(PATH) == b"first"
    assert store.list_paths("raw") == [PATH]


def test_adls_writes_are_one_request_each_and_leave_no_temporary_files(fake_dfs: tuple[FakeDataLake, str]) -> None:
    service, connection_string = fake_dfs
    lake = adls_lake(connection_string)
    before = len(service.requests)
    assert lake.create(PATH, b"data")
    assert not lake.create(PATH, b"other")
    version = lake.write_if(LEDGER, b"ledger", None)
    lake.write_if(LEDGER, b"ledger again", version)
    lake.write_atomic(PATH, b"data again")
    made = service.requests[before:]
    assert [method for method, _path, _query in made] == ["PUT"] * 5  # one Put Blob per write, no create/append/flush
    assert {path for _method, path, _query in made} == {f"lake/{PATH}", f"lake/{LEDGER}"}
    names = set(service.file_systems["lake"])
    assert not [n for n in names if n.startswith("_tmp")]
    assert lake.read(PATH) == b"data again" and lake.list_paths("_landing") == [LEDGER]


def test_adls_throttling_is_transient_and_retried_by_the_trigger(fake_dfs: tuple[FakeDataLake, str]) -> None:
    service, connection_string = fake_dfs
    lake = adls_lake(connection_string)
    service.fail_next(1, 503)
    with pytest.raises(LakeUnavailable):
        lake.write_atomic(PATH, b"data")
    lake.write_atomic(PATH, b"data")
    assert lake.read(PATH) == b"data"


def test_adls_permission_denied_is_permanent(fake_dfs: tuple[FakeDataLake, str]) -> None:
    service, connection_string = fake_dfs
    lake = adls_lake(connection_string)
    service.fail_next(1, 403)
    with pytest.raises(LakeError) as raised:
        lake.write_atomic(PATH, b"data")
    assert not isinstance(raised.value, LakeUnavailable)


def test_blob_store_that_cannot_be_reached_is_transient(azurite: Azurite) -> None:
    unreachable = azurite.connection_string.replace(str(azurite.blob_port), str(free_port()))
    with pytest.raises(LakeUnavailable):
        blob_lake(unreachable)


def test_azure_stores_bound_every_request_with_explicit_timeouts(fake_dfs: tuple[FakeDataLake, str]) -> None:
    from shared.lake.connection import REQUEST_LIMITS, max_request_seconds

    lake = adls_lake(fake_dfs[1])
    for client in (lake.container, lake.file_system):
        config = client._pipeline._transport.connection_config  # what the SDK sends with: not its 60 s default
        assert (config.timeout, config.read_timeout) == (REQUEST_LIMITS["connection_timeout"], 15)
    assert lake.max_request_seconds == max_request_seconds(REQUEST_LIMITS | {"retry_total": 0}) == 20
    backoffs = (0.5 + 1.5 + 0.5) + (0.5 + 1.5**2 + 0.5)  # the n-th retry waits initial + base ** n + jitter
    assert max_request_seconds(REQUEST_LIMITS) == 3 * 20 + backoffs == 65.75  # attempts, then each backoff


def test_a_local_reader_keeps_the_old_bytes_and_a_failed_write_leaves_no_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shared.lake import LocalLake

    lake = LocalLake(tmp_path)
    lake.write_atomic(PATH, b"old bytes")
    with open(tmp_path / PATH, "rb") as reader:
        lake.write_atomic(PATH, b"new bytes")
        assert reader.read() == b"old bytes"  # the file it opened was replaced, not rewritten in place
    assert lake.read(PATH) == b"new bytes"

    def crash(_fd: int) -> None:
        raise OSError("the disk went away mid-write")

    monkeypatch.setattr("os.fsync", crash)
    for write in (lambda: lake.write_atomic(PATH, b"partial"), lambda: lake.create(PATH + ".new", b"partial")):
        with pytest.raises(LakeUnavailable):
            write()
    assert lake.read(PATH) == b"new bytes" and not (tmp_path / (PATH + ".new")).exists()
    assert [p.name for p in (tmp_path / PATH).parent.iterdir() if p.name.startswith(".tmp")] == []


def test_local_store_cannot_write_is_transient(tmp_path: Path) -> None:
    from shared.lake import LocalLake

    (tmp_path / "raw").write_text("a file where a directory must go")
    with pytest.raises(LakeUnavailable):
        LocalLake(tmp_path).write_atomic("raw/x.parquet", b"x")


LEDGER = "_landing/clickstream/clickstream+0.json"


def test_conditional_writes_let_one_writer_win_and_tell_the_other(store: LakeStore) -> None:
    assert store.read_versioned(LEDGER) is None
    first = store.write_if(LEDGER, b"one", None)
    with pytest.raises(WriteConflict):
        store.write_if(LEDGER, b"two", None)  # it exists now
    second = store.write_if(LEDGER, b"two", first)
    assert second != first
    with pytest.raises(WriteConflict):
        store.write_if(LEDGER, b"stale", first)  # someone else moved it on
    assert store.read_versioned(LEDGER) == (b"two", second)
    assert store.list_paths("_landing") == [LEDGER]


def test_exists_and_delete(store: LakeStore) -> None:
    assert not store.exists(PATH)
    store.write_atomic(PATH, b"x")
    assert store.exists(PATH)
    store.delete(PATH)
    store.delete(PATH)  # deleting what is not there is not an error
    assert not store.exists(PATH) and store.list_paths("raw") == []


def test_a_listing_with_times_lists_what_list_paths_does_each_with_when_it_was_written(store: LakeStore) -> None:
    """Compaction's lag counts from when a late file landed (``LakeStore.list_modified``): every store gives the
    same paths as ``list_paths``, in order, each with its write time (the server's clock for Azurite and the fake
    DFS server, the file's for the local store; within a minute of this machine's here)."""
    import time

    before_ms = int(time.time() * 1000)
    for name in ("b", "a", "c"):
        store.create(PATH.replace("clickstream+0", f"clickstream+{name}"), b"x")
    store.write_atomic("raw/other/file.parquet", b"x")
    listed = store.list_modified("raw/clickstream")
    assert list(listed) == store.list_paths("raw/clickstream") and len(listed) == 3
    after_ms = int(time.time() * 1000)
    for when in listed.values():
        assert when is not None and before_ms - 60_000 <= when <= after_ms + 60_000, (before_ms, when, after_ms)
    assert store.list_modified("raw/none") == {}
