"""The durable client as the core's ``StateGateway``: entity reads and signals over the Durable HTTP API."""

from __future__ import annotations

from typing import Any

import azure.durable_functions as df

from shared.state.aggregate import Signal


class DurableStateGateway:
    """Wraps the invocation's ``DurableOrchestrationClient``; built per invocation, cheap.

    Entity keys arrive as they are sent: bucket keys (``shared.state.buckets``) are storable as
    they are; a record's own key travels inside the payload, never in the URL.
    """

    def __init__(self, client: df.DurableOrchestrationClient) -> None:
        self.client = client

    async def read(self, entity: str, key: str) -> Any:
        response = await self.client.read_entity_state(df.EntityId(entity, key))
        return response.entity_state if response.entity_exists and response.entity_state else None

    async def signal(self, signal: Signal) -> None:
        await self.client.signal_entity(df.EntityId(signal.entity, signal.key), signal.operation, signal.payload)
