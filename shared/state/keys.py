"""Entity keys on the wire: one reversible encoding, so any string a record carries reaches exactly one entity.

The Durable HTTP API puts the key raw into a URL path (``entities/{name}/{key}``) and the Azure
Storage backend stores ``@name@key`` as a table key, which may not hold ``/ \\ # ?`` or control
characters and is at most 1 KiB (512 UTF-16 units). So every key is encoded before it leaves the
core (:func:`encode_key`): ``[A-Za-z0-9_:-]`` and ``.`` stay as they are (readable ids like
``device-00001`` or ``ip:1.2.3.4`` are unchanged), every other UTF-8 byte becomes ``~XX`` (upper-case
hex), and so is a dot at either end, so no key is a ``.`` or ``..`` path segment or loses a trailing dot
to URL normalisation.
Decoding is exact, so two different keys (including Unicode normalisation twins) never share an
entity. Keys that are empty or longer than :data:`MAX_ENCODED_KEY_LENGTH` once encoded are refused.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from shared.errors import RecordRejected

MAX_ENCODED_KEY_LENGTH = 400  # + "@<entity name>@" stays well inside Azure Table's 512-character keys
_ENCODED = re.compile(r"^(?:[A-Za-z0-9_:.-]|~[0-9A-F]{2})+\Z")
_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_:-](?:[A-Za-z0-9_:.-]*[A-Za-z0-9_:-])?\Z")


class BadKey(RecordRejected):
    """The key cannot name an entity: empty, too long once encoded, or (decoding) not an encoded key."""


def encode_key(key: str) -> str:
    """The entity key as sent to the Durable API; ``BadKey`` when it is empty or too long."""
    if not key:
        raise BadKey("entity key is empty")
    if _PLAIN_KEY.match(key):
        encoded = key
    else:
        try:
            # quote() leaves [A-Za-z0-9_.~-] and ":" and writes %XX (upper case) for every other byte;
            # "~" is then escaped too, so every "%" it wrote becomes the "~" of an escape.
            encoded = quote(key, safe=":").replace("~", "%7E").replace("%", "~")
        except UnicodeEncodeError as error:  # a lone surrogate: no storage or URL can carry it
            raise BadKey(f"entity key is not valid Unicode: {error.reason}") from error
        if encoded.startswith("."):
            encoded = "~2E" + encoded[1:]
        if encoded.endswith("."):
            encoded = encoded[:-1] + "~2E"
    if len(encoded) > MAX_ENCODED_KEY_LENGTH:
        raise BadKey(f"entity key is {len(encoded)} characters once encoded; the limit is {MAX_ENCODED_KEY_LENGTH}")
    return encoded


ALWAYS_FITS = MAX_ENCODED_KEY_LENGTH // 12  # a character encodes to at most 4 UTF-8 bytes of 3 characters each


def check_key(key: str) -> None:
    """``BadKey`` unless ``key`` can name an entity; the per-record check, cheap for the usual short keys."""
    if not key or len(key) > ALWAYS_FITS:
        encode_key(key)


def decode_key(encoded: str) -> str:
    """The original key of an encoded one (what entity ids carry); ``BadKey`` for anything else."""
    if not _ENCODED.match(encoded):
        raise BadKey(f"{encoded!r} is not an encoded entity key")
    try:
        return _unescape(encoded)
    except UnicodeDecodeError as error:
        raise BadKey(f"{encoded!r} does not decode to UTF-8") from error


def _unescape(encoded: str) -> str:
    out = bytearray()
    index = 0
    while index < len(encoded):
        char = encoded[index]
        if char == "~":
            out.append(int(encoded[index + 1 : index + 3], 16))
            index += 3
        else:
            out.append(ord(char))
            index += 1
    return out.decode("utf-8")


def is_storable_key(encoded: str) -> bool:
    """Whether a key as it arrives at an entity API could be stored by the Durable backend (local host check)."""
    return bool(encoded) and len(encoded) <= MAX_ENCODED_KEY_LENGTH and not _UNSTORABLE.search(encoded)


_UNSTORABLE = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
