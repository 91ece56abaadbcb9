"""One Durable entity function per kind of keyed state: buckets of keys, and the per-key entities of the
previous layout (kept so that signals they were sent before an upgrade still apply); shared/state decides."""

from __future__ import annotations

import json
import os
from typing import Any

import azure.durable_functions as df

from shared.state.bucket_state import operate
from shared.state.registry import ENTITY_KINDS, EntityKind
from shared.telemetry import telemetry

# The SDK's default ("loose") JSON decoding turns any object holding __class__, __module__ and __data__ into a
# custom object: a bucket whose keys were those three record keys (STATE_BUCKETS=1) failed every operation for ever.
# Strict typing decodes state and input as plain JSON (azure-functions 1.26, df_loads); read on every decode. Without
# an expected type, so that a state that is not an object reaches ``operate``, which sets it aside.
os.environ["AZURE_FUNCTIONS_DURABLE_STRICT_TYPING"] = "1"
UNREADABLE_STATE = "<a stored state the SDK refused to decode>"

bp = df.Blueprint()


def _register(kind: EntityKind) -> None:
    @bp.function_name(name=kind.name)
    @bp.entity_trigger(context_name="context", entity_name=kind.name)
    def entity(context: df.DurableEntityContext) -> None:
        """Called by the Durable extension with one operation of a batch for one entity id."""
        payload: Any = context.get_input()
        try:
            state: Any = context.get_state(dict) or {}
        except TypeError:  # strict typing refuses a stored top level holding the envelope's keys: read it plainly
            state = _plain_state(context)
        outcome = operate(kind.fold, kind.reduce, context.entity_key, state, context.operation_name, payload)
        context.set_state(outcome.state)
        telemetry().record_bucket(kind.source, size=outcome.size, evicted=outcome.evicted)
        if outcome.refused:  # after set_state: what was accepted is kept, the error result names the rest
            raise ValueError(outcome.refused)


def _plain_state(context: df.DurableEntityContext) -> Any:
    """The stored state as plain JSON, when strict typing refused it for holding ``__class__``, ``__module__`` and
    ``__data__`` at its top level (damaged outside this code): its keys' states stay, the stray fields are set aside
    (``shared.state.bucket_state``). The SDK keeps the undecoded text in ``_state`` (azure-functions-durable 1.7)."""
    raw = getattr(context, "_state", None)
    try:
        return json.loads(raw) if isinstance(raw, str) else UNREADABLE_STATE
    except ValueError:
        return UNREADABLE_STATE


for _kind in ENTITY_KINDS.values():
    _register(_kind)
