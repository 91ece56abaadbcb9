"""Reading a file that must be small (settings, configs, results) without trusting its path: a FIFO would block, a
device never end, and a mistake (``--settings /dev/zero``) would be read whole into memory."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

import orjson

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


class UnreadableFile(ValueError):
    """A small JSON file that cannot be read, is not JSON, or is not a JSON object; the message says which."""


def read_json_object(path: Path, max_bytes: int = MAX_SMALL_FILE_BYTES) -> dict[str, Any]:
    """``path``'s JSON object (:func:`read_small_text`). ``UnreadableFile`` naming why for anything else: a file that
    cannot be read, text that is not JSON (nesting past orjson's depth limit included, where ``json.loads`` raised
    ``RecursionError``), or JSON that is not an object."""
    try:
        text = read_small_text(path, max_bytes)
    except OSError as error:
        raise UnreadableFile(f"cannot be read: {error.strerror or error}") from None
    except ValueError as error:  # too large, or not UTF-8
        raise UnreadableFile(f"cannot be read: {error}") from None
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as error:
        raise UnreadableFile(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise UnreadableFile(f"must be a JSON object, not {type(document).__name__}")
    return document
