"""A lake in a local directory: the embedded default for development and tests."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.errors import LakeError, LakeUnavailable, WriteConflict
from shared.layout import check_relative_path

# The lake's own files beside the data: temporary files (``.tmp-~<random>.part``) and lock files (``.lock-~<name>``).
# Their names hold ``PRIVATE_MARK``, which no lake path may contain (``check_relative_path``), so they never collide
# with a lake file and are never listed; any other name is, dot-files included (files landed for a topic starting
# with ".", which settings now refuse, by an earlier version).
PRIVATE_MARK = "~"
TEMPORARY_PREFIX = f".tmp-{PRIVATE_MARK}"
LOCK_PREFIX = f".lock-{PRIVATE_MARK}"
# What earlier versions named them, still hidden: temporary files exactly as mkstemp names them, and lock files,
# which are always empty (a landed file never is).
_LEGACY_TEMPORARY = re.compile(r"^\.tmp-[a-z0-9_]{8}\.part\Z")
_LEGACY_LOCK_PREFIX = ".lock-"


class LocalLake:
    """Files under ``root``; writes go to a temporary sibling and are renamed (or linked) into place."""

    max_request_seconds = 1.0  # a local write; the bound holds unless the process is paused or the disk stalls

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).resolve()

    def _resolve(self, path: str) -> Path:
        try:
            target = (self.root / check_relative_path(path)).resolve()
        except RuntimeError as error:  # a symlink loop (Python 3.11; later versions raise OSError)
            raise LakeError(f"{path!r}: {error}") from error
        if not target.is_relative_to(self.root):
            raise LakeError(f"{path!r} escapes the lake root")
        return target

    def create(self, path: str, data: bytes) -> bool:
        target = self._resolve(path)
        try:
            return _create(target, data)
        except OSError as error:
            raise _failed(f"cannot create {path}", error) from error

    def write_atomic(self, path: str, data: bytes) -> None:
        target = self._resolve(path)
        try:
            _replace(target, data)
        except OSError as error:
            raise _failed(f"cannot write {path}", error) from error

    def read(self, path: str) -> bytes:
        try:
            return self._resolve(path).read_bytes()
        except FileNotFoundError as error:
            raise LakeError(f"{path} does not exist") from error
        except OSError as error:
            raise _failed(f"cannot read {path}", error) from error

    def list_paths(self, prefix: str) -> list[str]:
        base = self._resolve(prefix)
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file() and not _is_private(p)
        )

    def list_modified(self, prefix: str) -> dict[str, int | None]:
        """As listed, each with its modification time; a name no lake path can have (an operator's copy,
        ``x (1).parquet``) is listed as the Blob and ADLS stores list it, for the caller to ignore."""
        base = self._resolve(prefix)
        if not base.is_dir():
            return {}
        found: dict[str, int | None] = {}
        for file in sorted(base.rglob("*")):
            if _is_private(file) or not file.is_file():
                continue
            try:
                found[file.relative_to(self.root).as_posix()] = file.stat().st_mtime_ns // 1_000_000
            except FileNotFoundError:  # deleted since it was listed
                continue
            except OSError as error:
                raise _failed(f"cannot list {prefix}", error) from error
        return found

    def exists(self, path: str) -> bool:
        try:
            self._check_root()
        except OSError as error:
            raise LakeUnavailable(str(error)) from error
        try:
            return self._resolve(path).is_file()
        except OSError as error:
            if error.errno == errno.ENAMETOOLONG:
                return False  # no file can have that name
            raise _failed(f"cannot check {path}", error) from error

    def _check_root(self) -> None:
        """A root that is missing is an empty lake; one that is something else is a lake that is down."""
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"the lake root {self.root} is not a directory")

    def delete(self, path: str) -> None:
        try:
            self._resolve(path).unlink(missing_ok=True)
        except OSError as error:
            raise _failed(f"cannot delete {path}", error) from error

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        target = self._resolve(path)
        try:
            with self._locked(target):
                data = target.read_bytes()
                return data, _version(target, data)
        except FileNotFoundError:
            return None
        except OSError as error:
            raise _failed(f"cannot read {path}", error) from error

    def write_if(self, path: str, data: bytes, version: str | None) -> str:
        target = self._resolve(path)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with self._locked(target):
                current = _version(target) if target.exists() else None
                if current != version:
                    raise WriteConflict(f"{path} is at version {current}, not {version}")
                _replace(target, data)
                return _version(target, data)
        except OSError as error:
            raise _failed(f"cannot write {path}", error) from error

    @contextmanager
    def _locked(self, target: Path) -> Iterator[None]:
        """An exclusive lock per file shared by every process on this machine (``flock``)."""
        if not target.parent.is_dir():
            self._check_root()
            raise FileNotFoundError(target.parent)
        with open(target.parent / f"{LOCK_PREFIX}{target.name}", "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


def _failed(what: str, error: OSError) -> LakeError | LakeUnavailable:
    """The lake's error for an ``OSError``: a name too long for the file system (``ENAMETOOLONG``) is the path's own
    and fails the same way on every try (``LakeError``, as a path the lake refuses); any other is the disk's or the
    mount's, which may pass (``LakeUnavailable``)."""
    if error.errno == errno.ENAMETOOLONG:
        return LakeError(f"{what}: a name longer than the file system takes: {error}")
    return LakeUnavailable(f"{what}: {error}")


def _is_private(path: Path) -> bool:
    """Whether ``path`` is one of the lake's own temporary or lock files, not a lake file."""
    name = path.name
    if PRIVATE_MARK in name or _LEGACY_TEMPORARY.match(name):
        return True
    if not name.startswith(_LEGACY_LOCK_PREFIX):
        return False
    try:
        return path.stat().st_size == 0
    except FileNotFoundError:
        return True  # deleted meanwhile: nothing to list


def _version(target: Path, data: bytes | None = None) -> str:
    """The file's version: its inode, modification time and size, and a digest of its content (``data`` when
    already read). Inodes are reused and a coarse clock can give two writes one mtime: the digest keeps two
    versions apart whenever their contents differ."""
    status = target.stat()
    content = target.read_bytes() if data is None else data
    digest = hashlib.blake2b(content, digest_size=8).hexdigest()
    return f"{status.st_ino}-{status.st_mtime_ns}-{status.st_size}-{digest}"


def _replace(target: Path, data: bytes) -> None:
    """Write a hidden sibling, then rename it over ``target``: a reader sees the old file or the whole new one."""
    temporary = _written_aside(target, data)
    try:
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _create(target: Path, data: bytes) -> bool:
    """Write a hidden sibling, then hard-link it as ``target`` only if nothing is there (``link`` never replaces)."""
    temporary = _written_aside(target, data)
    try:
        os.link(temporary, target)
    except FileExistsError:
        return False
    finally:
        temporary.unlink(missing_ok=True)
    return True


def _written_aside(target: Path, data: bytes) -> Path:
    """``data`` in a new hidden file beside ``target``, flushed to disk; removed again if writing fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=TEMPORARY_PREFIX, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return Path(temporary)
