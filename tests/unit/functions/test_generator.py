"""The generate_<source> timer functions through their glue: keyed events, retries, iterations."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from functions import bindings
from functions import generator as generator_functions
from tests.conftest import OutputBinding
from tests.unit.functions.conftest import user_function


class _TickContext:
    """What the worker passes as ``context``: only the retry context matters to the generator."""

    def __init__(self, retry_count: int) -> None:
        self.retry_context = SimpleNamespace(retry_count=retry_count, max_retry_count=-1)


def test_generator_function_sends_keyed_events_and_honours_iterations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("SENSORS_GENERATOR_EVENTS_PER_TICK", "7")
    monkeypatch.setenv("SENSORS_GENERATOR_ITERATIONS", "10")
    monkeypatch.setenv("SENSORS_GENERATOR_SEED", "3")
    for cached in (bindings.lake, bindings.source_settings):
        cached.cache_clear()
    from shared import settings as settings_module

    settings_module.current_settings.cache_clear()
    generate = user_function("generate_sensors")

    def tick(retry_count: int = 0) -> list[dict[str, Any]]:
        out = OutputBinding()
        generate(timer=None, out=out, context=_TickContext(retry_count))
        return json.loads(out.value) if out.value else []

    first = tick()
    assert tick(retry_count=1) == first  # the send failed: the retry sends the same records again
    sent = [first, tick(), tick()]
    assert [len(batch) for batch in sent] == [7, 3, 0]
    assert all(item["Key"] and json.loads(item["Value"])["sensor_id"] == item["Key"] for item in sent[0])
    assert all(item["Headers"] == [] for item in sent[0])  # nothing traced, no trace header
    monkeypatch.setattr(generator_functions, "PROCESS_ID", "restarted")
    monkeypatch.setenv("SENSORS_GENERATOR_ITERATIONS", "20")
    bindings.source_settings.cache_clear()
    resent = tick()
    assert len(resent) == 7 and resent != first  # the 7 after the first 10; nothing re-sent after a clean end
    for cached in (bindings.lake, bindings.source_settings):
        cached.cache_clear()
    settings_module.current_settings.cache_clear()


def test_generator_function_of_a_config_source_continues_iteration_and_stops_at_iterations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """generate_orders through the function glue: orderid counts on across ticks; the total holds."""

    from functions import bindings
    from shared import settings as settings_module
    from tests.conftest import app_functions

    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path))
    monkeypatch.setenv("ORDERS_GENERATOR_EVENTS_PER_TICK", "7")
    monkeypatch.setenv("ORDERS_GENERATOR_ITERATIONS", "10")
    caches = (bindings.lake, bindings.source_settings, settings_module.current_settings)
    for cached in caches:
        cached.cache_clear()
    try:
        generate = app_functions()["generate_orders"].get_user_function()
        ticks = []
        for _ in range(3):
            out = OutputBinding()
            generate(timer=None, out=out, context=SimpleNamespace(retry_context=None))
            ticks.append(json.loads(out.value) if out.value else [])
    finally:
        for cached in caches:
            cached.cache_clear()
    order_ids = [[json.loads(item["Value"])["orderid"] for item in tick] for tick in ticks]
    assert order_ids == [[0, 1, 2, 3, 4, 5, 6], [7, 8, 9], []]
    assert [item["Key"] for item in ticks[1]] == ["7", "8", "9"]
