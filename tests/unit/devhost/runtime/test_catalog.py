"""What the local host indexes: retry policies and timespans (and settings resolved), orchestrations
refused by name."""

from __future__ import annotations

import pytest

from devhost.runtime.catalog import RetryPolicy, parse_timespan
from devhost.runtime.host_config import HostConfig, HostConfigError, KafkaOptions


def test_retry_policy_and_settings_resolution() -> None:
    assert parse_timespan("00:01:30") == 90 and parse_timespan("1.00:00:00.5") == 86400.5
    policy = RetryPolicy("exponential_backoff", 5, minimum_interval=2, maximum_interval=60)
    assert [policy.delay_before(n) for n in (1, 2, 3, 6)] == [2, 4, 8, 60]
    config = HostConfig({"TOPIC": "clicks"}, KafkaOptions())
    assert config.resolve("%TOPIC%") == "clicks"
    with pytest.raises(HostConfigError, match="MISSING"):
        config.resolve("%MISSING%")


def test_orchestrations_fail_indexing_with_a_message_naming_what_is_missing() -> None:
    import azure.durable_functions as df

    from devhost.runtime.catalog import IndexingError, index_app

    app = df.DFApp()

    @app.orchestration_trigger(context_name="context")
    def workflow(context: df.DurableOrchestrationContext) -> None:
        return None

    with pytest.raises(IndexingError, match=r"workflow: the local host does not run orchestrationTrigger.*func start"):
        index_app(app)


def test_a_function_switched_off_by_its_disabled_setting_is_not_run() -> None:
    """Review 15: the local host ran every function, ``AzureWebJobs.<name>.Disabled`` (which Terraform sets for a
    generator that is off, and ``func start`` honours) read by nothing."""
    from devhost.runtime.catalog import IndexedFunction, enabled

    functions = [IndexedFunction(name, (), lambda: None, None) for name in ("generate_orders", "process_orders")]
    switched = {"AzureWebJobs.generate_orders.Disabled": " True ", "AzureWebJobs.process_orders.Disabled": "false"}
    assert [f.name for f in enabled(functions, switched)] == ["process_orders"]
    assert [f.name for f in enabled(functions, {"AzureWebJobs.generate_orders.Disabled": "1"})] == ["process_orders"]
