"""The local-directory lake refuses any path that could escape its root."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.errors import UnsafePath
from shared.lake import LocalLake


@pytest.mark.parametrize("path", ["../x", "/abs/x", "a//b", "a/./b", "a/../b", ""])
def test_paths_that_could_escape_the_lake_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(UnsafePath):
        LocalLake(tmp_path).write_atomic(path, b"x")
    assert list(tmp_path.iterdir()) == []
