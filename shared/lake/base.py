"""The lake interface every store implements: atomic whole-file writes, reads and listings.

Data files are created only if absent (``create``): nothing landed is ever replaced. Ledgers are
replaced only on a version match (``write_if``): the fencing token every landing decision is
committed with (``shared.landing``).
"""

from __future__ import annotations

from typing import Protocol


class LakeStore(Protocol):
    """A place landed files go. Paths are relative, ``/``-separated, checked by ``shared.layout``.

    Implementations convert their SDK's errors into ``LakeUnavailable`` (transient: the
    trigger retries) or ``LakeError`` (permanent) at this edge. ``max_request_seconds`` bounds
    one request, retries included, both the client's wait and when the service can still act on any
    of its tries (the SDK's timeouts and the server-side timeout every request names): landing
    leases are derived from it.
    """

    max_request_seconds: float

    def create(self, path: str, data: bytes) -> bool:
        """Write ``path`` in one atomic step only if no file is there.

        True when this call created it; False when a file was already there (it is left as it is).
        """
        ...

    def write_atomic(self, path: str, data: bytes) -> None:
        """Create or replace ``path`` so that a reader sees the old file or the whole new one."""
        ...

    def read(self, path: str) -> bytes:
        """The whole content of ``path``; ``LakeError`` if it does not exist."""
        ...

    def list_paths(self, prefix: str) -> list[str]:
        """Sorted paths of the files under ``prefix`` (a directory path, no trailing slash)."""
        ...

    def list_modified(self, prefix: str) -> dict[str, int | None]:
        """The files under ``prefix`` as :meth:`list_paths` lists them (the same requests), each with the time it
        was last written (epoch ms; a landed file is written once, so when it landed; None if the store has none)."""
        ...

    def exists(self, path: str) -> bool:
        """Whether a file is at ``path``."""
        ...

    def delete(self, path: str) -> None:
        """Remove the file at ``path``; nothing happens when there is none."""
        ...

    def read_versioned(self, path: str) -> tuple[bytes, str] | None:
        """The content of ``path`` and an opaque version (ETag), or None when there is no file."""
        ...

    def write_if(self, path: str, data: bytes, version: str | None) -> str:
        """Atomically replace ``path`` only if it is still at ``version`` (None: only if absent).

        Returns the new version; raises ``WriteConflict`` when another writer got there first.
        """
        ...
