"""Reading a file that must be small (settings, configs, results) without trusting its path: a FIFO would block, a
device never end, and a mistake (``--settings /dev/zero``) would be read whole into memory."""

from __future__ import annotations

import errno
from pathlib import Path

MAX_SMALL_FILE_BYTES = 8 << 20  # far past any real settings, config or results file


def read_small_text(path: Path, max_bytes: int = MAX_SMALL_FILE_BYTES) -> str:
    """``path``'s text: a regular file of at most ``max_bytes``, UTF-8. ``OSError`` for a missing file or anything
    but a regular file, ``ValueError`` past the size (``UnicodeDecodeError``, one too, for text not UTF-8)."""
    if not path.is_file():
        if path.exists():
            raise OSError(errno.EINVAL, "not a regular file")
        raise FileNotFoundError(errno.ENOENT, "no such file (or a link to none)")
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes:,} bytes")
    return data.decode("utf-8")
