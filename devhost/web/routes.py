"""HTTP trigger routes: the Functions host's route templates (``state/{source}/{key}``) as matchers."""

from __future__ import annotations

import re
from dataclasses import dataclass

from devhost.runtime.catalog import IndexedFunction

_PARAMETER = re.compile(r"\{(\*?)([A-Za-z_][A-Za-z0-9_]*)(?::[^}?]*)?(\??)\}")


@dataclass(frozen=True)
class Route:
    function: IndexedFunction
    pattern: re.Pattern[str]
    methods: frozenset[str]

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.methods and method.upper() not in self.methods:
            return None
        found = self.pattern.fullmatch(path)
        return None if found is None else {k: v for k, v in found.groupdict().items() if v is not None}


def compile_route(template: str) -> re.Pattern[str]:
    """A template's regex: ``{name}`` is one segment, ``{*name}`` the rest, ``{name?}`` optional.

    Literal parts match whatever their case, as the Functions host's routing (ASP.NET Core, ordinal
    ignore-case) matches them: ``STATE/users/1`` reaches ``state/{source}/{key}``. Parameter values are
    captured from the path as given, keeping their case (the local host gives the path as the Functions host
    matches it: decoded by Kestrel but for ``%2F``, ``devhost/web/host_url.py``). Case is folded for ASCII
    letters only (``re.ASCII``), so ``ſ`` or the Kelvin sign never stands for ``s`` or ``k`` as Python's
    Unicode folding would have it.
    """
    pattern, position = "", 0
    for parameter in _PARAMETER.finditer(template):
        pattern += re.escape(template[position : parameter.start()])
        catch_all, name, optional = parameter.groups()
        body = f"(?P<{name}>.+)" if catch_all else f"(?P<{name}>[^/]+)"
        if optional:
            if pattern.endswith("/"):
                pattern = pattern[:-1] + f"(?:/{body})?"
            else:
                pattern += f"{body}?"
        else:
            pattern += body
        position = parameter.end()
    return re.compile(pattern + re.escape(template[position:]), re.IGNORECASE | re.ASCII)


def http_routes(functions: list[IndexedFunction]) -> list[Route]:
    """Routes of the HTTP-triggered functions, literal routes before parameterised ones."""
    routes = []
    for function in functions:
        if function.trigger_type != "httpTrigger":
            continue
        trigger = function.trigger
        template = str(trigger.get("route") or function.name).strip("/")
        methods = frozenset(m.upper() for m in trigger.get("methods") or [])
        routes.append(Route(function, compile_route(template), methods))
    return sorted(routes, key=lambda route: route.pattern.pattern.count("(?P<"))
