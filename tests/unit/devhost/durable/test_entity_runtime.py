"""Durable entities on the local host: the batch context is what the Durable SDK reads."""

from __future__ import annotations

import json


def test_entity_batch_context_is_what_the_durable_sdk_reads() -> None:
    import azure.durable_functions as df

    from devhost.durable.entity_runtime import batch_context
    from devhost.durable.store import PendingOperation

    def counter(context: df.DurableEntityContext) -> None:
        value = context.get_state(lambda: 0)
        if context.operation_name == "add":
            value += context.get_input()["amount"]
        context.set_state(value)
        context.set_result(value)

    handle = df.Entity.create(counter)
    operations = [
        PendingOperation(1, "counter", "k", "add", json.dumps(json.dumps({"amount": 2}))),  # as signal_entity posts it
        PendingOperation(2, "counter", "k", "add", json.dumps(json.dumps({"amount": 5}))),
        PendingOperation(3, "counter", "k", "get", None),
    ]
    result = json.loads(handle(batch_context("counter", "k", "10", operations)))
    assert result["entityExists"] is True and json.loads(result["entityState"]) == 17
    assert [json.loads(r["result"]) for r in result["results"]] == [12, 17, 17] and not any(
        r["isError"] for r in result["results"]
    )
