"""One Durable entity function per kind of keyed state; each applies its pure reducer from shared/state."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from shared.state.registry import ENTITY_KINDS, EntityKind

bp = df.Blueprint()


def _register(kind: EntityKind) -> None:
    @bp.function_name(name=kind.name)
    @bp.entity_trigger(context_name="context", entity_name=kind.name)
    def entity(context: df.DurableEntityContext) -> None:
        """Called by the Durable extension with one operation of a batch for one entity id."""
        state: dict[str, Any] = context.get_state(dict, expected_type=dict) or {}
        payload: dict[str, Any] = context.get_input(expected_type=dict)
        context.set_state(kind.reduce(state, context.operation_name, payload))


for _kind in ENTITY_KINDS.values():
    _register(_kind)
