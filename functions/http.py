"""The query API: entity state as JSON (HTTP triggers, function-level auth in Azure).

Two forms ask for a key's state, with the same answers and errors: the path form
``GET /api/state/{source}/{key}`` (and ``.../{key}/windows`` for sensors), which carries every key
without ``%`` or ``/`` (:func:`shared.state.query_api.key_from_url` says exactly which, and why), and the
query form ``GET /api/state/{source}?key=<key>`` (``&view=windows`` for sensors), which carries any key
exactly (:func:`shared.state.query_api.key_from_query`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from functions.bindings import lake
from shared.errors import LakeError, TransientError
from shared.settings import current_settings
from shared.state.bucket_counts import bucket_counts, state_bucket_settings
from shared.state.bucket_state import is_bucket_state, key_state, key_text
from shared.state.query_api import (
    DAMAGED,
    BadQuery,
    ascii_lower,
    entity_name,
    key_from_query,
    key_from_url,
    locate,
    public_state,
    windows_answer,
)

bp = df.Blueprint()
log = logging.getLogger("streamingpoc.http")


def _json(body: object, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


async def _read(
    client: df.DurableOrchestrationClient, req: func.HttpRequest, source: str
) -> func.HttpResponse | dict[str, object]:
    """The state of the path form's key, percent-decoded from the URL; 400 for a key the path cannot carry
    exactly (any with ``%`` or ``/``: :func:`shared.state.query_api.key_from_url`)."""
    try:
        key = key_from_url(req.url, source, req.route_params["key"])
    except BadQuery as error:
        return _json({"error": str(error)}, 400)
    return await _read_key(client, source, key)


async def _read_key(
    client: df.DurableOrchestrationClient, source: str, key: str
) -> func.HttpResponse | dict[str, object]:
    """The state of ``source``'s ``key``, whichever form asked for it.

    Read from the key's bucket; a key the bucket does not hold is read from its per-key entity of
    the previous layout (both are read until a deployment's state is migrated).
    """
    try:
        entity_name(source, key)
    except BadQuery as error:
        return _json({"error": str(error)}, 400)
    try:
        buckets = await asyncio.to_thread(bucket_counts(lake(), *state_bucket_settings(current_settings())).of, source)
    except (TransientError, LakeError) as error:  # unreachable, or a damaged record (docs/scale.md)
        log.error("state query for %s: the lake's record of bucket counts cannot be read: %s", source, error)
        return _unavailable("the lake's record of bucket counts cannot be read")
    where = locate(source, key, buckets)
    try:
        held = await _entity_state(client, where.entity, where.bucket)
        if held is not None and not is_bucket_state(held):  # damaged outside this code: it holds other keys' state
            log.error("state query for %s: entity %s@%s is not of a bucket's shape", source, where.entity, where.bucket)
            why = f"the bucket holding {source} key {key!r} is damaged (not of a bucket's shape): see the logs"
            return _json({"error": why, DAMAGED: ["bucket"]}, 500)
        state = key_state(held, key)
        if state is None and (stored := key_text(held, key)) is not None:  # not an object: damaged outside this code
            return {DAMAGED: ["state"], "state": stored}
        if state is None:  # a key of the previous layout not moved yet (or, after a move, one evicted since)
            state = await _entity_state(client, where.entity, where.per_key)
            if state is not None and not isinstance(state, dict):
                return {DAMAGED: ["state"], "state": state}
    except _BackendFailed as error:  # its text may name the task hub's host: logged, not answered
        log.error("state query for %s: the entity state cannot be read: %s", source, error)
        return _unavailable("the entity state cannot be read")
    if state is None:
        return _json({"error": f"no state for {source} key {key!r}"}, 404)
    return public_state(state)


class _BackendFailed(Exception):
    """The Durable API failed or could not be reached."""


async def _entity_state(client: df.DurableOrchestrationClient, entity: str, key: str) -> Any:
    """An entity's state as stored (``None``: no such entity)."""
    try:
        found = await client.read_entity_state(df.EntityId(entity, key))
    except Exception as error:
        raise _BackendFailed(str(error)) from error
    return (found.entity_state if found.entity_state is not None else {}) if found.entity_exists else None


def _unavailable(why: str) -> func.HttpResponse:
    """A 503 the caller may retry; what failed, with its account or host, goes to the log, not to the caller."""
    unavailable = _json({"error": f"state is unavailable for now: {why}"}, 503)
    unavailable.headers["Retry-After"] = "30"
    return unavailable


@bp.route(route="state/{source}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_state_by_query(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """GET /api/state/{source}?key=<key>[&view=windows]: any key's state (or a sensor's windows), exactly.

    The route has two segments, so neither ``state/{source}/{key}`` nor ``state/sensors/{key}/windows``
    matches its requests, nor does it match theirs. Answers and errors are the path form's.
    """
    source = ascii_lower(req.route_params["source"])  # routes match whatever the case
    try:
        wanted = key_from_query(req.url, source)
    except BadQuery as error:
        return _json({"error": str(error)}, 400)
    found = await _read_key(client, source, wanted.key)
    if isinstance(found, func.HttpResponse):
        return found
    return _json(windows_answer(found) if wanted.windows else found)


@bp.route(route="state/{source}/{key}", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_state(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """GET /api/state/{source}/{key}: the entity's state (404 unknown key, 400 bad source or key, or a key
    holding ``%`` or ``/``, which the query form carries)."""
    found = await _read(client, req, ascii_lower(req.route_params["source"]))  # routes match whatever the case
    return found if isinstance(found, func.HttpResponse) else _json(found)


@bp.route(route="state/sensors/{key}/windows", methods=["GET"])
@bp.durable_client_input(client_name="client")
async def get_sensor_windows(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """GET /api/state/sensors/{key}/windows: the sensor's one-minute windows of the last hour (any key:
    ``GET /api/state/sensors?key=<key>&view=windows``)."""
    found = await _read(client, req, "sensors")
    return found if isinstance(found, func.HttpResponse) else _json(windows_answer(found))
