"""A lake in a local directory: the embedded default for development and tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from shared.errors import LakeError, LakeUnavailable
from shared.layout import check_relative_path


class LocalLake:
    """Files under ``root``; writes go to a temporary sibling and are renamed into place."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def _resolve(self, path: str) -> Path:
        target = (self.root / check_relative_path(path)).resolve()
        if not target.is_relative_to(self.root):
            raise LakeError(f"{path!r} escapes the lake root")
        return target

    def write_atomic(self, path: str, data: bytes) -> None:
        target = self._resolve(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".part")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, target)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
        except OSError as error:
            raise LakeUnavailable(f"cannot write {path}: {error}") from error

    def read(self, path: str) -> bytes:
        try:
            return self._resolve(path).read_bytes()
        except FileNotFoundError as error:
            raise LakeError(f"{path} does not exist") from error
        except OSError as error:
            raise LakeUnavailable(f"cannot read {path}: {error}") from error

    def list_paths(self, prefix: str) -> list[str]:
        base = self._resolve(prefix)
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )
