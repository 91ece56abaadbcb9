"""The durable client as the core's ``StateGateway``: entity reads and signals over the Durable HTTP API."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from shared.state.aggregate import Signal
from shared.state.keys import encode_key


class DurableStateGateway:
    """Wraps the invocation's ``DurableOrchestrationClient``; built per invocation, cheap.

    Every key is encoded here (``shared.state.keys``), the one place keys enter the Durable API.
    """

    def __init__(self, client: df.DurableOrchestrationClient) -> None:
        self.client = client

    async def read(self, entity: str, key: str) -> dict[str, Any] | None:
        response = await self.client.read_entity_state(df.EntityId(entity, encode_key(key)))
        return dict(response.entity_state) if response.entity_exists and response.entity_state else None

    async def signal(self, signal: Signal) -> None:
        entity_id = df.EntityId(signal.entity, encode_key(signal.key))
        await self.client.signal_entity(entity_id, signal.operation, signal.payload)
