"""The local-directory lake refuses any path that could escape its root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.compaction.hours import raw_prefix
from shared.errors import LakeError, LakeUnavailable, UnsafePath, WriteConflict
from shared.lake import LocalLake, local
from shared.layout import RAW_AREA, batch_file_name, hour_directory
from shared.records import OffsetSpan, TopicPartition


@pytest.mark.parametrize("path", ["../x", "/abs/x", "a//b", "a/./b", "a/../b", ""])
def test_paths_that_could_escape_the_lake_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(UnsafePath):
        LocalLake(tmp_path).write_atomic(path, b"x")
    assert list(tmp_path.iterdir()) == []


def test_a_stale_version_is_refused_even_when_inode_mtime_and_size_repeat(tmp_path: Path) -> None:
    """A coarse clock (or a filesystem with second mtimes) can give two same-size writes one mtime, and the
    inode is reused on nearly every replace: the content digest still tells the versions apart."""
    lake = LocalLake(tmp_path)
    first = lake.write_if("ledger.json", b'{"v": 1}', None)
    target = tmp_path / "ledger.json"
    stamp = target.stat().st_mtime_ns
    with open(target, "r+b") as file:  # the same inode, the same size, then the same mtime
        file.write(b'{"v": 2}')
    os.utime(target, ns=(stamp, stamp))
    with pytest.raises(WriteConflict):
        lake.write_if("ledger.json", b'{"v": 3}', first)


def test_a_landed_file_of_a_topic_starting_with_a_dot_is_listed(tmp_path: Path) -> None:
    """Kafka topics may start with "." (".clicks"): their files are lake files, listed as Blob and ADLS list them."""
    lake = LocalLake(tmp_path)
    hour = hour_directory(RAW_AREA, "clickstream", 1_767_225_600_000)
    path = f"{hour}/{batch_file_name(TopicPartition('.clicks', 0), OffsetSpan(0, 9), 0, 'parquet')}"
    assert path.rsplit("/", 1)[1].startswith(".clicks+0+")
    assert lake.create(path, b"data")
    lake.write_atomic(f"{hour}/.notes", b"a dot-file")
    assert lake.list_paths(raw_prefix("clickstream")) == [path, f"{hour}/.notes"]


def test_a_name_that_only_begins_like_an_earlier_temporary_file_is_listed(tmp_path: Path) -> None:
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / ".tmp-abc123_x.part\n").write_bytes(b"x")  # not exactly as mkstemp names them
    assert LocalLake(tmp_path).list_paths("state") == ["state/.tmp-abc123_x.part\n"]


def test_only_the_lakes_own_temporary_and_lock_files_are_hidden(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.write_if("state/ledger.json", b"{}", None)  # leaves its lock file beside the ledger
    written_aside = local._written_aside(tmp_path / "state" / "other.json", b"{}")  # as a crashed write leaves it
    lake.write_if("state/.lock-ledger.json", b"{}", None)  # a lake file that looks like an earlier lock name
    (tmp_path / "state" / ".lock-old.json").touch()  # an earlier version's lock file (always empty)
    (tmp_path / "state" / ".tmp-abc123_x.part").write_bytes(b"x")  # an earlier version's crashed write
    names = {p.name for p in (tmp_path / "state").iterdir()}
    assert f"{local.LOCK_PREFIX}ledger.json" in names and written_aside.name.startswith(local.TEMPORARY_PREFIX)
    assert lake.list_paths("state") == ["state/.lock-ledger.json", "state/ledger.json"]
    with pytest.raises(UnsafePath):
        lake.write_atomic(f"state/{local.LOCK_PREFIX}x", b"")  # the lake's own names are never lake paths


def test_a_name_too_long_for_the_file_system_is_the_paths_error_not_an_outage(tmp_path: Path) -> None:
    """``ENAMETOOLONG`` fails the same way on every try: taken for an outage (``LakeUnavailable``), it stopped every
    compaction run of the source at the quarantine of a raw file with a long name (a review proved it)."""
    lake = LocalLake(tmp_path)
    path = f"deadletter/x/{'n' * 256}"
    for request in (
        lambda: lake.create(path, b"x"),
        lambda: lake.write_atomic(path, b"x"),
        lambda: lake.read(path),
        lambda: lake.write_if(path, b"x", None),
        lambda: lake.read_versioned(path),
        lambda: lake.delete(path),
    ):
        with pytest.raises(LakeError, match="longer than the file system takes") as raised:
            request()
        assert not isinstance(raised.value, LakeUnavailable)
    assert lake.exists(path) is False


def test_other_os_errors_are_still_the_lake_unavailable(tmp_path: Path) -> None:
    lake = LocalLake(tmp_path)
    lake.write_atomic("a/file", b"x")
    with pytest.raises(LakeUnavailable):
        lake.create("a/file/below", b"x")  # a file where a directory should be: the disk's state, not the name


def test_a_symlink_loop_in_the_lake_is_the_paths_lake_error_not_a_bare_runtime_error(tmp_path: Path) -> None:
    """Review 15: Python 3.11's ``Path.resolve`` raises RuntimeError on a loop, which left every call as itself."""
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "a").symlink_to(tmp_path / "raw" / "b")
    (tmp_path / "raw" / "b").symlink_to(tmp_path / "raw" / "a")
    lake = LocalLake(tmp_path)
    for call in (lambda: lake.read("raw/a"), lambda: lake.exists("raw/a"), lambda: lake.create("raw/a", b"x")):
        with pytest.raises(LakeError):
            call()
    assert lake.list_paths("raw") == [] and lake.list_modified("raw") == {}
