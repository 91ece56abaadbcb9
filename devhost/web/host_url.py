"""The request an HTTP function is handed, built as the Functions host builds it in Azure, not as it was sent.

The host (azure-functions-host ``ToRpcHttp``) gives the worker ``req.url`` as scheme, host,
``Request.Path`` and ``Request.QueryString``, and the route values matched on ``Request.Path``. That path
is ASP.NET Core's, already decoded by Kestrel:

- every ``%XX`` run forming one UTF-8 character is decoded, except ``%2F``; an escape that does not decode
  is kept as sent; ``%00`` fails the request with 400 (``UrlDecoder``);
- ``.`` and ``..`` segments are then removed, so an encoded dot counts as one (``PathNormalizer``);
- ``Request.Path`` becomes text again with ``PathString.ToUriComponent``: path characters (RFC 3986 pchar
  and ``/``) and anything that looks like an escape (``%`` and two hex digits) are kept, the rest is escaped
  as UTF-8.

The query string is kept as sent (``QueryString.ToUriComponent`` escapes only ``#``, which no request
carries). So a function reading its key from the URL sees locally what it sees in Azure: a key holding
``%41`` (sent ``%2541``) arrives as ``%41``. Deployed apps also decode ``%2F`` before routing
(azure-functions-host #3998, #5619, #9290); ``func start`` does not, and neither does this host.
"""

from __future__ import annotations

from urllib.parse import quote

_HEX = frozenset("0123456789abcdefABCDEF")
_PATH_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/")
_SLASH = 0x2F


class BadRequestTarget(ValueError):
    """A request target Kestrel refuses (400) before any function runs."""


def function_url(scheme: str, host: str, target: str) -> tuple[str, str]:
    """(``req.url``, the decoded path routes match) for a request sent as ``target`` (path and query, raw)."""
    raw_path, question, query = target.partition("?")
    path = decode_path(raw_path)
    query_string = (question + query).replace("#", "%23") if query else ""
    return f"{scheme}://{host}{path_uri_component(path)}{query_string}", path


def decode_path(raw_path: str) -> str:
    """Kestrel's ``Request.Path`` for a raw path: decoded but for ``%2F``, then dot segments removed."""
    if not raw_path.isascii():
        raise BadRequestTarget("the request target is not ASCII")
    data = raw_path.encode("ascii")
    out = bytearray()
    index = 0
    while index < len(data):
        first = _escape_at(data, index)
        if first is None or first == _SLASH:
            out.append(data[index])
            index += 1
            continue
        if first == 0:
            raise BadRequestTarget("the path contains null characters")
        size = 1 if first < 0x80 else 2 if first & 0xE0 == 0xC0 else 3 if first & 0xF0 == 0xE0 else 4
        chunk, following_at = [first], index + 3
        while len(chunk) < size and (following := _escape_at(data, following_at)) is not None:
            chunk.append(following)
            following_at += 3
        try:
            out += bytes(chunk).decode("utf-8").encode("utf-8")
        except UnicodeDecodeError:  # not one UTF-8 character (overlong, a surrogate, cut short): kept as sent
            out.append(data[index])
            index += 1
        else:
            index = following_at
    return remove_dot_segments(out.decode("utf-8"))


def _escape_at(data: bytes, index: int) -> int | None:
    """The byte a ``%XX`` at ``index`` stands for, None when there is no escape there."""
    if (
        data[index : index + 1] == b"%"
        and len(data) >= index + 3
        and all(chr(c) in _HEX for c in data[index + 1 : index + 3])
    ):
        return int(data[index + 1 : index + 3], 16)
    return None


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4 on an absolute path, as Kestrel applies it after decoding."""
    if not path.startswith("/"):
        return path
    kept: list[str] = []
    segments = path[1:].split("/")
    for position, segment in enumerate(segments):
        last = position == len(segments) - 1
        if segment == ".":
            if last:
                kept.append("")
        elif segment == "..":
            if kept:
                kept.pop()
            if last:
                kept.append("")
        else:
            kept.append(segment)
    return "/" + "/".join(kept)


def path_uri_component(path: str) -> str:
    """``PathString.ToUriComponent``: path characters and ``%XX`` look-alikes kept, the rest escaped as UTF-8."""
    out: list[str] = []
    index = 0
    while index < len(path):
        char = path[index]
        if char == "%" and index + 2 < len(path) and path[index + 1] in _HEX and path[index + 2] in _HEX:
            out.append(path[index : index + 3])
            index += 3
            continue
        out.append(char if char in _PATH_CHARS else quote(char, safe=""))
        index += 1
    return "".join(out)
