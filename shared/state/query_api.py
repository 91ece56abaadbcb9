"""The query API's decisions: which entity holds a source's key, which keys are acceptable, what to return.

A key's state lives in its bucket (``shared.state.buckets``). Until a deployment's per-key entities
of the previous layout are migrated (``shared.state.migration``), a key its bucket does not hold is
looked up in its per-key entity too: both are read until migrated, so the API answers the same
across the upgrade.
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

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


def key_from_url(url: str, source: str, route_key: str) -> str:
    """The key of ``.../state/{source}/{key}[/...]`` percent-decoded once from the request's own URL.

    Hosts decode route values differently (ASP.NET Core leaves ``%2F`` encoded, others split on
    it), so the key is read from the raw path when it can be, else the route value is taken as is.
    Routes match whatever the case of their literal parts (``/API/STATE/...`` reaches the same
    function), so ``state`` and the source are found whatever the case of their ASCII letters too: the key
    never depends on it.
    """
    segments = urlsplit(url).path.split("/")
    for index in range(len(segments) - 2):
        if ascii_lower(segments[index]) == "state" and ascii_lower(unquote(segments[index + 1])) == ascii_lower(source):
            try:
                return unquote(segments[index + 2], errors="strict")
            except UnicodeDecodeError as error:
                raise BadQuery("key is not percent-encoded UTF-8") from error
    return route_key


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
