"""A model of how the Azure Functions host builds the request a Python function is handed: the reference the
local host (``devhost/web/host_url.py``) and the query API's tests are checked against.

Written by review G from the documented behaviour of the .NET sources (not copied), kept apart from the code
it checks. The host builds the worker's ``RpcHttp.Url`` from ASP.NET Core's *decoded* ``Request.Path``
(azure-functions-host src/WebJobs.Script.Grpc/MessageExtensions/GrpcMessageConversionExtensions.cs
``ToRpcHttp``: ``$"{scheme}://{request.Host}{request.Path}{request.QueryString}"``). Kestrel decodes every
``%XX`` of the path except ``%2F`` (dotnet/aspnetcore src/Shared/UrlDecoder ``SkipUnescape``), and
``PathString.ToString()`` (= ``ToUriComponent``) re-escapes only what is not a valid path character, keeping
any ``%XX`` it finds as if it were already an escape (src/Http/Http.Abstractions/src/PathString.cs
``IsPercentEncodedChar``). Route values are matched on that decoded path. ``Request.QueryString`` is the
query as sent (Kestrel's ``ParseTarget`` keeps it raw; ``QueryString.ToUriComponent`` escapes only ``#``).

Not modelled here: Kestrel's removal of dot segments after decoding (``PathNormalizer``), which
``devhost/web/host_url.py`` does, and what deployed front ends do before Kestrel (``%2F`` decoded before
routing: azure-functions-host issues #3998, #5619, #9290), which :func:`deployed_path` stands for.
"""

from __future__ import annotations

from urllib.parse import quote

HOST = "https://app.azurewebsites.net"
_HEX = "0123456789abcdefABCDEF"
# RFC 3986 pchar plus "/": what PathStringHelper.IsValidPathChar accepts unescaped.
_VALID_PATH = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/")


def _escape_at(data: bytes, i: int) -> int | None:
    """The byte a %XX escape at ``i`` stands for, None when there is no escape there."""
    if data[i : i + 1] == b"%" and len(data) >= i + 3 and all(chr(c) in _HEX for c in data[i + 1 : i + 3]):
        return int(data[i + 1 : i + 3], 16)
    return None


def kestrel_decode(raw_path: str) -> str:
    """Kestrel's path decoding: each %XX run forming one valid UTF-8 character is decoded, except %2F; an escape
    that does not decode (or %2F) is kept as sent."""
    data = raw_path.encode("ascii")
    out = bytearray()
    i = 0
    while i < len(data):
        first = _escape_at(data, i)
        if first is None or first == 0x2F:
            out.append(data[i])
            i += 1
            continue
        size = 1 if first < 0x80 else 2 if first & 0xE0 == 0xC0 else 3 if first & 0xF0 == 0xE0 else 4
        chunk, j = [first], i + 3
        while len(chunk) < size and (following := _escape_at(data, j)) is not None:
            chunk.append(following)
            j += 3
        try:
            out += bytes(chunk).decode("utf-8").encode("utf-8")
            i = j
        except UnicodeDecodeError:
            out.append(data[i])
            i += 1
    return out.decode("utf-8")


def path_string_to_uri_component(path: str) -> str:
    """PathString.ToUriComponent: valid path characters and existing %XX escapes kept, the rest escaped."""
    result, i = [], 0
    while i < len(path):
        if path[i] == "%" and len(path) > i + 2 and path[i + 1] in _HEX and path[i + 2] in _HEX:
            result.append(path[i : i + 3])
            i += 3
        elif path[i] in _VALID_PATH:
            result.append(path[i])
            i += 1
        else:
            result.append(quote(path[i], safe=""))
            i += 1
    return "".join(result)


def azure_request(raw_path: str, query: str = "") -> tuple[str, str]:
    """(req.url, route value of the last segment) as the Azure Functions host hands them to the Python worker,
    for a request sent as ``raw_path`` with ``query`` (raw, without its ``?``)."""
    decoded = kestrel_decode(raw_path)
    url = HOST + path_string_to_uri_component(decoded) + (f"?{query}" if query else "")
    return url, decoded.rsplit("/", 1)[1]


def deployed_path(raw_path: str) -> str:
    """What a deployed app's front end hands the host for ``raw_path``: ``%2F`` decoded before routing."""
    return raw_path.replace("%2F", "/").replace("%2f", "/")
