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


def _kafka_app(annotation: object) -> object:
    import azure.functions as func

    app = func.FunctionApp()

    def process(events) -> None:  # type: ignore[no-untyped-def]
        return None

    process.__annotations__["events"] = annotation
    app.function_name(name="process")(
        app.kafka_trigger(arg_name="events", topic="t", broker_list="b", cardinality=func.Cardinality.MANY)(process)
    )
    return app


def test_annotations_the_python_worker_refuses_fail_indexing_as_they_fail_the_whole_app_in_azure() -> None:
    """Review 2026-12-07: ``events: list[func.KafkaEvent]`` ran here, but the Python worker's indexing takes only
    classes and ``typing``'s generics (azure-functions-python-worker#1034) and, failing one function, indexes none."""
    import typing

    import azure.functions as func

    from devhost.runtime.catalog import IndexingError, index_app

    with pytest.raises(IndexingError, match=r"process: binding events has invalid non-type annotation list\["):
        index_app(_kafka_app(list[func.KafkaEvent]))  # type: ignore[arg-type]
    with pytest.raises(IndexingError, match=r"process: binding events has invalid non-type annotation typing.Opt"):
        index_app(_kafka_app(typing.Optional[func.KafkaEvent]))  # type: ignore[arg-type]  # noqa: UP045
    with pytest.raises(IndexingError, match=r"process: the kafkaTrigger binding events does not take"):
        index_app(_kafka_app(func.HttpRequest))  # type: ignore[arg-type]
    assert [f.name for f in index_app(_kafka_app(typing.List[func.KafkaEvent]))] == ["process"]  # type: ignore[arg-type]  # noqa: UP006


def test_every_function_of_the_app_passes_the_python_workers_checks() -> None:
    """In a fresh interpreter, as the worker indexes the app once at start-up."""
    import json
    import subprocess
    import sys

    from tests.conftest import ROOT

    script = "import json, function_app\nfrom devhost.runtime.catalog import index_app\n"
    script += "print(json.dumps([f.name for f in index_app(function_app.app)]))\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert {"process_clickstream", "get_state", "compact_clickstream"} <= set(json.loads(done.stdout))
