"""The local-directory lake refuses any path that could escape its root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.errors import UnsafePath, WriteConflict
from shared.lake import LocalLake


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
