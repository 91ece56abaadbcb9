"""The local host's HTTP side: HTTP triggers under /api, the durable entity API, the dashboard, and
mounted apps (the schema registry under /registry). All of it answers programs on this machine and
the dashboard, never another web page (:func:`web_page_refusal`, applied to every request).

Served with aiohttp on the host's event loop. Function code runs through the ``Invoker`` on a
thread, so a slow function never blocks the entity API it may itself be calling.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import azure.functions as func
from aiohttp import web
from aiohttp.typedefs import Handler

from devhost.durable.entity_runtime import EntityRuntime, EntityStalled, UnknownEntity
from devhost.durable.store import SignalTooLarge, StoreUnavailable
from devhost.runtime.function_stats import HostStats
from devhost.runtime.invoker import Invoker
from devhost.web.host_url import BadRequestTarget, function_url
from devhost.web.routes import Route
from shared.hosts import LOOPBACK_HOSTS
from shared.state.keys import MAX_ENCODED_KEY_LENGTH, is_storable_key

DASHBOARD_DIR = Path(__file__).resolve().parent / "dashboard"
DURABLE_PREFIX = "/runtime/webhooks/durabletask"
_STATIC_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript"}
_DASHBOARD_FILES = frozenset(path.name for path in DASHBOARD_DIR.iterdir() if path.suffix in _STATIC_TYPES)
# RFC 9110 Host: uri-host [":" port]; an IP literal in brackets, else a name without brackets, colons or spaces
_HOST_HEADER = re.compile(r"(?P<name>\[[0-9A-Fa-f:.]+\]|[^\[\]:@/\\\s]+)(?::(?P<port>[0-9]{0,5}))?")


class HttpFrontEnd:
    def __init__(
        self,
        routes: list[Route],
        invoker: Invoker,
        entities: EntityRuntime | None,
        stats: HostStats,
        dashboard_snapshot: Callable[[], dict[str, Any]] | None,
        mounts: dict[str, web.Application] | None = None,
    ) -> None:
        self.routes = routes
        self.mounts = mounts or {}
        self.invoker = invoker
        self.entities = entities
        self.stats = stats
        self.dashboard_snapshot = dashboard_snapshot
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="http")

    def application(self) -> web.Application:
        # The middleware guards every route, the mounted apps' too (aiohttp runs it for sub-app handlers).
        # The Functions host's own paths match whatever their case, as ASP.NET Core routing matches them
        # (/API/..., /Runtime/Webhooks/DurableTask/...); the dashboard is this host's own, and stays as written.
        app = web.Application(client_max_size=16 * 1024 * 1024, middlewares=[_refuse_web_pages])
        app.router.add_route("*", _any_case("entities", DURABLE_PREFIX + "/entities") + "/{name}/{key}", self._entity)
        app.router.add_get("/dashboard", self._dashboard_page)
        app.router.add_get("/dashboard/api/stats", self._dashboard_stats)
        app.router.add_get("/dashboard/{file}", self._dashboard_file)
        app.router.add_get(_any_case("status", "/admin/host/status"), self._status)
        api = _any_case("api", "/api") + r"/{tail:[\s\S]*}"  # any character, newlines too
        app.router.add_route("*", api, self._api)
        for prefix, mounted in self.mounts.items():  # e.g. the schema registry under /registry
            app.add_subapp(prefix, mounted)
        return app

    async def _api(self, request: web.Request) -> web.StreamResponse:
        # As the Functions host in Azure: routes match Kestrel's decoded path (``%2F`` stays inside its
        # segment), route values are handed as matched, and req.url is built from that path
        # (devhost/web/host_url.py), so a function sees here the URL it sees when deployed.
        try:
            url, decoded = function_url(request.scheme, request.host, request.raw_path)
        except BadRequestTarget as error:
            return web.json_response({"error": f"bad request target: {error}"}, status=400)
        first, _, rest = decoded.lstrip("/").partition("/")
        if not (first.isascii() and first.lower() == "api"):  # dot segments may have left it: /api/../x is /x
            return web.json_response({"error": f"no function answers {request.method} {decoded}"}, status=404)
        path = rest.strip("/")
        for route in self.routes:
            parameters = route.match(request.method, path)
            if parameters is not None:
                return await self._invoke(route, parameters, url, request)
        return web.json_response({"error": f"no function answers {request.method} /api/{path}"}, status=404)

    async def _invoke(
        self, route: Route, parameters: dict[str, str], url: str, request: web.Request
    ) -> web.StreamResponse:
        body = await request.read()
        http_request = func.HttpRequest(
            method=request.method,
            url=url,
            headers=dict(request.headers),
            params=dict(request.query),
            route_params=parameters,
            body=body,
        )
        function = route.function
        stats = self.stats.functions[function.name]
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(
                self._executor, self.invoker.invoke, function, {function.trigger["name"]: http_request}
            )
        except Exception as error:
            stats.invoked(failed=True)
            return web.json_response({"error": f"{function.name} failed: {error}"}, status=500)
        stats.invoked()
        return _to_response(result)

    async def _entity(self, request: web.Request) -> web.StreamResponse:
        if self.entities is None:
            return web.json_response({"error": "this app has no entity functions"}, status=404)
        name, key = request.match_info["name"], request.match_info["key"]
        if not is_storable_key(key):
            # What the Durable backend's storage refuses (Azure Table keys), so the local host fails the same way.
            detail = f"entity key must be 1-{MAX_ENCODED_KEY_LENGTH} characters without / \\ # ? or control characters"
            return web.json_response({"error": detail}, status=400)
        try:
            if request.method == "POST":
                operation = request.query.get("op", "")
                try:
                    body = (await request.read()).decode("utf-8")  # JSON is UTF-8, whatever charset the header names
                except UnicodeDecodeError:
                    return web.json_response({"error": "the operation's input must be UTF-8 JSON"}, status=400)
                await self.entities.signal(name, key, operation, body or None)
                return web.Response(status=202)
            if request.method == "GET":
                state = await self.entities.read(name, key)
                return web.Response(status=404) if state is None else web.json_response(state)
        except UnknownEntity:
            return web.json_response({"error": f"no entity function named {name}"}, status=404)
        except (EntityStalled, StoreUnavailable) as error:  # the sender retries: its signal is not stored
            return web.json_response({"error": str(error)}, status=503)
        except SignalTooLarge as error:
            return web.json_response({"error": str(error)}, status=413)
        return web.Response(status=405)

    async def _dashboard_page(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(DASHBOARD_DIR / "index.html")

    async def _dashboard_file(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        if name not in _DASHBOARD_FILES:
            return web.Response(status=404)
        target = DASHBOARD_DIR / name
        return web.FileResponse(target, headers={"Content-Type": _STATIC_TYPES[target.suffix]})

    async def _dashboard_stats(self, _request: web.Request) -> web.StreamResponse:
        snapshot = self.dashboard_snapshot() if self.dashboard_snapshot else {}
        snapshot["functions"] = [stats.as_dict() for stats in self.stats.functions.values()]
        return web.json_response(snapshot)

    async def _status(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response({"state": "Running", "functions": list(self.stats.functions)})


@web.middleware
async def _refuse_web_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    refused = web_page_refusal(request)
    return refused if refused is not None else await handler(request)


def web_page_refusal(request: web.Request) -> web.StreamResponse | None:
    """Why the local host refuses ``request``, or None: it answers programs on this machine, never a web page.

    In Azure the Functions host asks for keys (the ``durabletask_extension`` system key for the
    entity API); this host serves loopback only and has no keys, so it refuses what a browser sends
    instead: any ``Origin`` or cross-site fetch metadata (a page posting to 127.0.0.1), a Host that is
    not loopback (DNS rebinding), and a write whose body is not declared JSON (``application/json`` or
    ``application/*+json`` such as the schema registry's; an HTML form or a no-cors fetch cannot
    declare it). The dashboard's own requests are same-origin GETs, which carry no ``Origin``.
    A Host header that is not ``host[:port]`` is a bad request (400), as Kestrel answers it.
    """
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if "Origin" in request.headers or fetch_site not in (None, "none", "same-origin"):
        return web.json_response({"error": "the local host does not answer web pages"}, status=403)
    host = host_name(request.host)
    if host is None:
        return web.json_response({"error": "the Host header is not host[:port]"}, status=400)
    if host not in LOOPBACK_HOSTS:
        return web.json_response({"error": "the local host answers on loopback names only"}, status=403)
    if request.method not in ("GET", "HEAD") and request.can_read_body and not _is_json(request.content_type):
        return web.json_response({"error": "a request's body must be sent as application/json"}, status=415)
    return None


def host_name(host: str) -> str | None:
    """The name a Host header gives (lowercase, an IPv6 literal without its brackets), None when it is not
    ``host[:port]`` with a port of 0-65535 (yarl's ``URL.host`` raises for some of those and reads ``[::1`` as
    ``::1``)."""
    match = _HOST_HEADER.fullmatch(host)
    if match is None or int(match["port"] or 0) > 65_535:
        return None
    name = match["name"]
    if not name.startswith("["):
        return name.lower()
    try:
        return str(ipaddress.IPv6Address(name[1:-1]))
    except ValueError:
        return None


def _any_case(name: str, literal: str) -> str:
    """An aiohttp route part (a variable ``name``) matching the path ``literal`` whatever the case of its letters.

    ASCII letters only (``(?ai:...)``), as ordinal ignore-case compares them: ``ſ`` does not stand for ``s``.
    """
    return f"/{{{name}:(?ai:{re.escape(literal.strip('/'))})}}"


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or (
        content_type.startswith("application/") and content_type.endswith("+json")
    )


def _to_response(result: Any) -> web.StreamResponse:
    if result is None:
        return web.Response(status=204)
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items() if k.lower() != "content-length"}
        if result.mimetype and "content-type" not in {k.lower() for k in headers}:
            content_type = result.mimetype + (f"; charset={result.charset}" if result.charset else "")
            headers["Content-Type"] = content_type
        return web.Response(status=result.status_code, body=result.get_body(), headers=headers)
    return web.Response(text=result if isinstance(result, str) else json.dumps(result), content_type="application/json")
