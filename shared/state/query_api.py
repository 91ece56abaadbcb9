"""The query API's decisions: which entity holds a source's key, which keys are acceptable, what to return.

A key's state lives in its bucket (``shared.state.buckets``). Until a deployment's per-key entities
of the previous layout are migrated (``shared.state.migration``), a key its bucket does not hold is
looked up in its per-key entity too: both are read until migrated, so the API answers the same
across the upgrade.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from shared.errors import RecordRejected
from shared.state.bucket_state import MOVED_FROM
from shared.state.buckets import bucket_for
from shared.state.keys import BadKey, encode_key
from shared.state.offsets import APPLIED, LEGACY_MARKS
from shared.state.registry import ENTITY_KINDS
from shared.state.sensor_stats import LEGACY_WINDOWS, MINUTES, windows_view
from shared.state.sessions import sessions_view


class BadQuery(RecordRejected):
    """Unknown source, a source that keeps no keyed state, or a malformed key (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class StateLocation:
    """Where ``key``'s state is: entity ``bucket`` of kind ``entity``, else (before migration) ``per_key``."""

    entity: str
    key: str
    bucket: str
    per_key: str


def entity_name(source: str, key: str) -> str:
    """The entity kind holding ``source``'s state for ``key``; ``BadQuery`` when either is not acceptable."""
    name = _entity(source)
    _per_key(key)
    return name


def locate(source: str, key: str, buckets: int) -> StateLocation:
    """Where ``source``'s state for ``key`` (any string a record can carry) is kept, with ``buckets`` per source."""
    return StateLocation(_entity(source), key, bucket_for(key, buckets), _per_key(key))


def _entity(source: str) -> str:
    kind = ENTITY_KINDS.get(source)
    if kind is None:
        from shared.sources import SOURCES  # the registry of sources imports much; a refused query is rare

        keyed = ", ".join(sorted(ENTITY_KINDS))
        if source in SOURCES:  # a real source whose records only land: "unknown" sent the caller to check its name
            raise BadQuery(
                f"source {source!r} keeps no keyed state (its batches only land); sources with state: {keyed}"
            )
        raise BadQuery(f"unknown source {source!r}; sources with state: {keyed}")
    return kind.name


def _per_key(key: str) -> str:
    """The key as its per-key entity was named; ``BadQuery`` for a key no record could have had state for."""
    try:
        return encode_key(key)
    except BadKey as error:
        raise BadQuery(str(error)) from error


_ASCII_LOWERCASE = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def ascii_lower(text: str) -> str:
    """``text`` with its ASCII letters in lower case, as routes match whatever the case (``devhost/web/routes.py``):
    ASCII letters only, never ``str.lower()``, which makes the Kelvin sign a ``k``: ``clic\u212astream`` is
    not ``clickstream`` but an unknown source."""
    return text.translate(_ASCII_LOWERCASE)


WINDOWS = "windows"  # the view of a sensor's one-minute windows: ``.../{key}/windows`` or ``?view=windows``
_UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")  # RFC 3986 section 2.3
_PERCENT = re.compile(r"%(?:([0-9A-Fa-f]{2})|)")  # an escape, or a "%" that starts none


def key_from_url(url: str, source: str, route_key: str) -> str:
    """The key of the path form ``.../state/{source}/{key}[/windows]``; ``BadQuery`` for a key it cannot carry exactly.

    **Which keys the path form serves**: every key with no ``%`` and no ``/`` in it that is not ``.``
    or ``..`` and holds no NUL (and that an entity can take: :func:`entity_name`), percent-encoded as UTF-8
    (``encodeURIComponent``, ``quote(key, safe="")``): Unicode, spaces, control characters, ``? # + &``
    and the other reserved characters included. **Every other key needs the query form**
    (:func:`key_from_query`: ``GET /api/state/{source}?key=<key>``), which carries any key exactly.

    Why: in Azure the Functions host does not hand the function the URL as sent. It builds ``req.url``
    from ASP.NET Core's decoded path (azure-functions-host ``ToRpcHttp``: scheme, host, ``Request.Path``,
    ``Request.QueryString``): Kestrel decodes every ``%XX`` of the path but ``%2F`` (``UrlDecoder``), drops
    ``.`` and ``..`` segments after decoding (``PathNormalizer``) and refuses ``%00``; ``PathString`` then
    re-escapes what is not a path character but keeps any ``%XX`` it finds as if it were an escape. So

    - a ``%`` in a key is ambiguous: key ``50%41`` (sent ``50%2541``) reaches the function as ``50%41``,
      the same URL as key ``50A`` would have if a client double-encoded it;
    - a ``/`` is ambiguous when ``func start`` (Kestrel) keeps ``%2F``, and deployed apps decode ``%2F``
      before routing (azure-functions-host #3998, #5619, #9290): ``a%2Fb`` is a 404 and sensors key
      ``s1/windows`` reaches ``get_sensor_windows`` for ``s1``, which no function can tell from a request
      for ``s1``'s windows;
    - ``.`` and ``..`` are removed as dot segments: the request reaches another route or none;
    - a NUL is refused by Kestrel (400) before any function runs.

    So the path form refuses (``BadQuery``, naming the query form) a key segment of the URL it was handed
    that holds an escape of ``%`` (``%25``), of ``/`` (``%2F``) or of an unreserved ASCII character
    (RFC 3986 ``A-Z a-z 0-9 - . _ ~``: Kestrel decodes such an escape, so seeing one means the client encoded
    the key twice), or a ``%`` that starts no escape; and it refuses a key whose value decoded from the URL is
    not the route value the host matched (``route_key``): the host decodes the path once and routes on that,
    so the two differ exactly when the key held ``%XX`` as text (``%C3%A9`` or ``%3F`` sent as
    ``%25C3%25A9``, ``%253F``), which the URL alone cannot tell from ``é`` or ``?``. Escapes of non-ASCII
    bytes and of the other reserved characters work as they always did. Together these refuse every key
    holding ``%``, and under Kestrel every key holding ``/``: the path form answers a key's own state or
    400, never another key's (but for what the deployed front end does with ``%2F``, ``.`` and ``..``
    before the function is reached, above).

    Routes match whatever the case of their literal parts (``/API/STATE/...`` reaches the same function),
    so ``state`` and the source are found whatever the case of their ASCII letters too: the key never
    depends on it. A URL without the ``state/{source}`` segments leaves the route value, refused the same
    way when it holds ``%`` or ``/``.
    """
    segments = urlsplit(url).path.split("/")
    for index in range(len(segments) - 2):
        if ascii_lower(segments[index]) == "state" and ascii_lower(unquote(segments[index + 1])) == ascii_lower(source):
            windows = len(segments) > index + 3 and ascii_lower(segments[index + 3]) == WINDOWS
            segment = segments[index + 2]
            if _holds_ambiguous_escape(segment):
                raise BadQuery(_use_the_query_form(source, windows))
            try:
                key = unquote(segment, errors="strict")
            except UnicodeDecodeError as error:
                raise BadQuery("key is not percent-encoded UTF-8") from error
            if key != route_key:
                raise BadQuery(_use_the_query_form(source, windows))
            return key
    if "%" in route_key or "/" in route_key:
        raise BadQuery(_use_the_query_form(source, windows=False))
    return route_key


def _holds_ambiguous_escape(segment: str) -> bool:
    """Whether a path segment, as the host handed it, holds ``%25``, ``%2F``, an escape of an unreserved character
    or a ``%`` that starts no escape (:func:`key_from_url`)."""
    for found in _PERCENT.finditer(segment):
        if found[1] is None:
            return True
        char = chr(int(found[1], 16))
        if char in "%/" or char in _UNRESERVED:
            return True
    return False


def _use_the_query_form(source: str, windows: bool) -> str:
    form = f"GET /api/state/{source}?key=<key>" + ("&view=windows" if windows else "")
    return (
        "a key holding '%' or '/' cannot be read from the URL path exactly (the Functions host decodes the path"
        f" before the function sees it): ask {form}, the key percent-encoded"
    )


@dataclass(frozen=True, slots=True)
class KeyQuery:
    """What the query form asks for: ``key``, and whether only its windows (``view=windows``, sensors only)."""

    key: str
    windows: bool


def key_from_query(url: str, source: str) -> KeyQuery:
    """The key of the query form ``.../state/{source}?key=<key>[&view=windows]``, exact for any key.

    The Functions host hands the function the query string as sent (``ToRpcHttp`` appends
    ``Request.QueryString``, which Kestrel keeps raw), so it is read from ``url`` and decoded once as
    ``application/x-www-form-urlencoded`` (``+`` is a space: encode a ``+`` of the key as ``%2B``, as
    ``urlencode`` and ``encodeURIComponent`` do). ``key`` and ``view`` are named in any case of their
    ASCII letters, once each; other parameters (``code``, the function key) are left alone. ``BadQuery``
    for no key, a parameter given twice, an escape that is not UTF-8 or a ``%`` that starts none, an unknown
    view, or ``view=windows`` for a source other than sensors. The key is then checked as the path
    form's is (:func:`entity_name`: an empty key is refused there).
    """
    wanted: dict[str, str] = {}
    query = urlsplit(url).query
    for part in query.split("&") if query else []:
        raw_name, _, raw_value = part.partition("=")
        name = ascii_lower(_form_decoded(raw_name, "a parameter name"))
        if name not in ("key", "view"):
            continue
        if name in wanted:
            raise BadQuery(f"{name!r} is given more than once")
        wanted[name] = _form_decoded(raw_value, name)
    if "key" not in wanted:
        raise BadQuery(f"no key: ask GET /api/state/{source}?key=<key>, the key percent-encoded")
    view = wanted.get("view")
    if view is not None and ascii_lower(view) != WINDOWS:
        raise BadQuery(f"unknown view {view!r}: the only view is windows (sensors)")
    if view is not None and ascii_lower(source) != "sensors":
        _entity(source)  # an unknown source is said so first, as the path form says it
        raise BadQuery(f"view=windows is for sensors only, not {source!r}")
    return KeyQuery(wanted["key"], view is not None)


def _form_decoded(raw: str, what: str) -> str:
    if any(found[1] is None for found in _PERCENT.finditer(raw)):
        raise BadQuery(f"{what} holds a '%' that starts no escape: percent-encode it (%25)")
    try:
        return unquote_plus(raw, errors="strict")
    except UnicodeDecodeError as error:
        raise BadQuery(f"{what} is not percent-encoded UTF-8") from error


DAMAGED = "damaged"  # the fields of a state damaged outside this code that are shown as stored


def public_state(state: dict[str, Any]) -> dict[str, Any]:
    """The state as the API shows it: bookkeeping (offset marks, running sums) left out.

    A key state damaged outside this code (``docs/reliability.md``) still gets an answer: a view
    that cannot be built from it leaves its fields as stored and names them under ``damaged``.
    """
    hidden = {APPLIED, LEGACY_MARKS, MOVED_FROM, "m2", "latest", "others"}
    shown = {name: value for name, value in state.items() if name not in hidden}
    damaged: list[str] = []
    if MINUTES in shown or LEGACY_WINDOWS in shown:
        try:
            windows = windows_view(state)
        except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError, OverflowError) as error:
            damaged.append(f"windows: {type(error).__name__}: {error}")
        else:
            shown.pop(MINUTES, None)
            shown["windows"] = windows
    try:
        shown.update(sessions_view(state))
    except (TypeError, ValueError, KeyError, IndexError) as error:
        damaged.append(f"sessions: {type(error).__name__}: {error}")
    if damaged:
        shown[DAMAGED] = damaged
    return shown


def windows_answer(shown: dict[str, Any]) -> dict[str, Any]:
    """The windows view of a state as :func:`public_state` shows it: its ``windows``, and what is damaged when
    anything is (so a state whose windows cannot be read never passes for one that has none)."""
    answer: dict[str, Any] = {"windows": shown.get("windows", [])}
    if DAMAGED in shown:
        answer[DAMAGED] = shown[DAMAGED]
    return answer
