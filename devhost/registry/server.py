"""The Confluent Schema Registry REST routes the pipeline and its clients use, as an aiohttp app.

Routes (under the mount point, ``/registry`` on the local host):

- ``GET /schemas/ids/{id}``: ``{"schema": ...}`` (and ``schemaType`` when not Avro); 404 with
  ``error_code`` 40403 for an unknown id, as the real registry answers.
- ``POST /subjects/{subject}/versions`` ``{"schema": ..., "schemaType"?}``: ``{"id": ...}``; the same
  schema keeps its id. An Avro schema fastavro cannot parse, a JSON one that is not JSON, or a text that is not
  Unicode (a lone surrogate) is refused (422, ``error_code`` 42201). A Protobuf schema is kept as text, unparsed.
- ``POST /subjects/{subject}``: look a schema up under a subject (404, 40403 when absent).
- ``GET /subjects``, ``GET /subjects/{subject}/versions``, ``GET /subjects/{subject}/versions/{n|latest}``.

Not implemented: compatibility checks (every schema is accepted), deletes, references (a body that carries
some is refused, 422), contexts.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fastavro
from aiohttp import web

from devhost.errors import DevHostError
from devhost.registry.store import Registered, RegistryStore
from devhost.services.processes import free_port
from shared.schema_registry.avro_binary import malformed

MOUNT = "/registry"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
SCHEMA_TYPES = ("AVRO", "JSON", "PROTOBUF")


def registry_app(store: RegistryStore) -> web.Application:
    """The routes on ``store``; mount it (``add_subapp``) or serve it alone (:func:`serve_registry`)."""
    routes = _Routes(store)
    app = web.Application()
    app.router.add_get("/schemas/ids/{id}", routes.schema_by_id)
    app.router.add_get("/subjects", routes.subjects)
    app.router.add_get("/subjects/{subject}/versions", routes.versions)
    app.router.add_get("/subjects/{subject}/versions/{version}", routes.version)
    app.router.add_post("/subjects/{subject}/versions", routes.register)
    app.router.add_post("/subjects/{subject}", routes.lookup)
    return app


def _answer(document: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(document), content_type=CONTENT_TYPE)


def _error(status: int, code: int, message: str) -> web.Response:
    return _answer({"error_code": code, "message": message}, status)


def _registered(found: Registered) -> dict[str, Any]:
    document = {"subject": found.subject, "version": found.version, "id": found.id, "schema": found.schema}
    return document | ({} if found.schema_type == "AVRO" else {"schemaType": found.schema_type})


def _java_int(text: str) -> int | None:
    """A path's id or version as the registry reads it (a Java int), or ``None``: ``²`` and digits past
    2**31-1 are not ids (``str.isdigit`` takes both; the store cannot look them up)."""
    if text.isascii() and text.isdigit() and int(text) <= 2**31 - 1:
        return int(text)
    return None


class _Routes:
    def __init__(self, store: RegistryStore) -> None:
        self.store = store

    async def schema_by_id(self, request: web.Request) -> web.Response:
        text = request.match_info["id"]
        schema_id = _java_int(text)
        found = None if schema_id is None else self.store.schema(schema_id)
        if found is None:
            return _error(404, 40403, f"Schema {text} not found")
        schema, schema_type = found
        return _answer({"schema": schema} | ({} if schema_type == "AVRO" else {"schemaType": schema_type}))

    async def subjects(self, _request: web.Request) -> web.Response:
        return _answer(self.store.subjects())

    async def versions(self, request: web.Request) -> web.Response:
        subject = request.match_info["subject"]
        versions = self.store.versions(subject)
        return _answer(versions) if versions else _error(404, 40401, f"Subject '{subject}' not found.")

    async def version(self, request: web.Request) -> web.Response:
        subject, text = request.match_info["subject"], request.match_info["version"]
        number = _java_int(text)
        if text != "latest" and number is None:
            return _error(422, 42202, f"The specified version '{text}' is not a valid version id.")
        if not self.store.versions(subject):
            return _error(404, 40401, f"Subject '{subject}' not found.")
        found = self.store.version(subject, number)
        return _answer(_registered(found)) if found else _error(404, 40402, f"Version {text} not found.")

    async def register(self, request: web.Request) -> web.Response:
        parsed = await self._schema_body(request)
        if isinstance(parsed, web.Response):
            return parsed
        schema, schema_type = parsed
        found = self.store.register(request.match_info["subject"], schema, schema_type)
        return _answer({"id": found.id})

    async def lookup(self, request: web.Request) -> web.Response:
        parsed = await self._schema_body(request)
        if isinstance(parsed, web.Response):
            return parsed
        subject = request.match_info["subject"]
        found = self.store.lookup(subject, *parsed)
        return _answer(_registered(found)) if found else _error(404, 40403, "Schema not found")

    async def _schema_body(self, request: web.Request) -> tuple[str, str] | web.Response:
        try:
            body = json.loads(await request.read())
            schema, schema_type = body["schema"], str(body.get("schemaType") or "AVRO").upper()
            if not isinstance(schema, str) or schema_type not in SCHEMA_TYPES:
                raise ValueError("schema must be a string, schemaType one of " + ", ".join(SCHEMA_TYPES))
            if body.get("references"):  # kept, they would be served as if resolved: a producer's broken one too
                raise ValueError("schema references are not supported by the local registry")
            schema.encode("utf-8")  # a lone surrogate (sent as a \ud800 escape) is no text SQLite can keep
            if schema_type == "AVRO":
                document = json.loads(schema)
                if (problem := malformed(document)) is not None:  # as Confluent's Java parser refuses it
                    raise ValueError(problem)
                fastavro.parse_schema(document)
            elif schema_type == "JSON":
                json.loads(schema)
        except Exception as error:
            return _error(422, 42201, f"Invalid schema: {type(error).__name__}: {error}"[:500])
        return schema, schema_type


@contextmanager
def serve_registry(store_path: Path | None, port: int | None = None) -> Iterator[str]:
    """Serve the registry alone on a loopback port in a background thread; yields its base URL."""
    port = port or free_port()
    store = RegistryStore(store_path)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    runner = web.AppRunner(registry_app(store))

    async def start() -> None:
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="schema-registry", daemon=True)
    thread.start()
    if not started.wait(10):
        raise DevHostError("the schema registry did not start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
        store.close()
