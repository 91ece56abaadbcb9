"""The durable client as processing's state gateway: what a read hands over, damaged states included."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import azure.durable_functions as df
import pytest
from azure.durable_functions.models.EntityStateResponse import EntityStateResponse

from functions.state_client import DurableStateGateway
from shared.invocation import handle_batch_with_state
from shared.lake import LocalLake
from shared.sources import SOURCES
from shared.state.bucket_counts import bucket_counts
from shared.state.buckets import bucket_for
from shared.state.lookups import StateJoiner
from shared.state.registry import ENTITY_KINDS
from tests.conftest import context_for, records_for
from tests.unit.functions.test_entities import run_entity

SENSORS = SOURCES["sensors"]


class DurableClient:
    """The client's entity calls over states held as JSON text; signals applied by the app's entity function, through
    the Durable SDK's own decoding (``run_entity``)."""

    def __init__(self, states: dict[str, str]) -> None:
        self.states = states

    async def read_entity_state(self, entity_id: df.EntityId) -> EntityStateResponse:
        text = self.states.get(entity_id.key)
        return EntityStateResponse(False) if text is None else EntityStateResponse(True, json.loads(text))

    async def signal_entity(self, entity_id: df.EntityId, operation: str, payload: Any) -> None:
        text = self.states.get(entity_id.key)
        state = None if text is None else json.loads(text)
        applied, results = run_entity(ENTITY_KINDS["sensors"].name, state, [(operation, payload)], key=entity_id.key)
        assert not any(result["isError"] for result in results), results
        self.states[entity_id.key] = json.dumps(applied)


@pytest.mark.parametrize("damage", ['"not an object"', "[1, 2]", "7", '{"keys": "not an object"}'])
def test_a_bucket_damaged_into_any_json_value_reads_as_no_state_and_the_batch_lands(
    tmp_path: Path, damage: str
) -> None:
    """Review 2026-12-07: a bucket whose state was not an object failed ``dict()`` in the read, an infrastructure
    error, so every batch touching it failed for ever; the signal that sets the damage aside was never sent."""
    lake = LocalLake(tmp_path)
    records = records_for(SENSORS, 50, seed=3)
    key = SENSORS.entity_key(SENSORS.transform(json.loads(records[0].value or b"")))
    damaged = bucket_for(key, bucket_counts(lake).of("sensors"))
    client = DurableClient({damaged: damage})
    gateway = DurableStateGateway(client)  # type: ignore[arg-type]
    assert asyncio.run(gateway.read("sensor_stats", damaged)) == json.loads(damage)
    outcome = asyncio.run(handle_batch_with_state(context_for(SENSORS, lake), records, gateway, StateJoiner()))
    assert outcome.landed == 50
    assert json.loads(client.states[damaged]).get("keys", {}).get(key) is not None  # the damage set aside, applied
