"""A Datagen config that is not shipped, dropped into ``sources/`` of a copy of the project, runs as it is.

No settings are added for it: the local host runs it, and the binding JSON ``func start`` would get
from the worker needs no ``<NAME>_*`` setting either (each unset one is written as its default).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from tests.conftest import ROOT
from tests.integration.harness import DevHost, landed_rows, wait_for

PROJECT_PARTS = (
    "function_app.py",
    "host.json",
    "local.settings.example.json",
    "functions",
    "shared",
    "devhost",
    "sources",
)
OTHER_GENERATORS_OFF = {
    f"{name}_GENERATOR_ENABLED": "false" for name in ("CLICKSTREAM", "MOBILE", "SENSORS", "USERS", "ORDERS")
}


def _project_with(tmp_path: Path, name: str, config: dict[str, Any]) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    for part in PROJECT_PARTS:
        source = ROOT / part
        if source.is_dir():
            shutil.copytree(source, project / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / part)
    (project / "sources" / f"{name}.json").write_text(json.dumps(config, indent=2))
    return project


def _payments_config(topic: str) -> dict[str, Any]:
    schema = {
        "type": "record",
        "name": "Payment",
        "fields": [
            {"name": "payment_id", "type": {"type": "long", "arg.properties": {"iteration": {"start": 1}}}},
            {"name": "amount", "type": {"type": "double", "arg.properties": {"range": {"min": 1, "max": 500}}}},
            {"name": "currency", "type": {"type": "string", "arg.properties": {"options": ["EUR", "USD"]}}},
        ],
    }
    return {
        "name": "datagen-payments",
        "config": {
            "connector.class": "io.confluent.kafka.connect.datagen.DatagenConnector",
            "kafka.topic": topic,
            "schema.string": json.dumps(schema),
            "schema.keyfield": "payment_id",
            "max.interval": "200",
        },
    }


def test_a_dropped_in_config_runs_on_the_local_host_with_no_settings_added(broker: str, tmp_path: Path) -> None:
    topic = f"payments-{uuid.uuid4().hex[:8]}"
    project = _project_with(tmp_path, "payments", _payments_config(topic))
    lake = tmp_path / "lake"
    host = DevHost(broker, lake, OTHER_GENERATORS_OFF, project=project)
    try:
        assert f"process_payments: kafkaTrigger {topic}" in host.output()
        rows = wait_for(lambda: landed_rows(lake, "raw", "payments"), 90, "payments to land")
        assert host.interrupt() == 0, host.output()
    finally:
        if host.process.poll() is None:
            host.kill()
    assert {row["_topic"] for row in rows} == {topic}
    assert all(row["currency"] in ("EUR", "USD") and row["_key"] == str(row["payment_id"]) for row in rows)


def test_func_start_gets_bindings_that_need_no_setting_for_a_dropped_in_config(tmp_path: Path) -> None:
    """What the worker hands the Functions host from local.settings.json (the example's values, no PAYMENTS_*)."""
    project = _project_with(tmp_path, "payments", _payments_config("payments"))
    settings = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    script = (
        "import json, function_app\n"
        "print(json.dumps({f.get_function_name(): json.loads(f.get_function_json())['bindings']"
        " for f in function_app.app.get_functions()}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=project, env=settings, capture_output=True, text=True, check=True
    )
    bindings = json.loads(result.stdout.strip().splitlines()[-1])
    referenced = {
        value
        for name in ("process_payments", "generate_payments", "compact_payments")
        for binding in bindings[name]
        for value in binding.values()
        if isinstance(value, str) and "%" in value
    }
    assert referenced == {"%KAFKA_BROKER_LIST%"}, "every %SETTING% the host must resolve is in local.settings.json"
    (trigger,) = [b for b in bindings["process_payments"] if b["type"] == "kafkaTrigger"]
    assert (trigger["topic"], trigger["consumerGroup"]) == ("payments", "payments-processor")
