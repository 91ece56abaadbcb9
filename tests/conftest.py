"""Fixtures shared by every test: a fixed clock and helpers that turn generated events into records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from faker import Faker

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.records import KafkaRecord  # noqa: E402
from shared.source_model import Source, epoch_ms  # noqa: E402

# Binding indexing reads settings at import; keep the developer's environment out of tests.
for _name in ("KAFKA_SECURITY_PROTOCOL", "LAKE_KIND"):
    os.environ.pop(_name, None)

FIXED_NOW = datetime(2026, 11, 24, 10, 30, 0, tzinfo=UTC)
FIXED_NOW_MS = epoch_ms(FIXED_NOW) or 0


def python_json(code: str, *args: str, cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter; the JSON object its last line of output prints (it must exit 0)."""
    result = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def datagen_source(name: str, schema: dict[str, Any], **options: Any) -> Source:
    """A source from a Kafka Connect Datagen config with ``schema`` inline (topic ``name``), as ``sources/<name>.json``
    would give it; ``options`` are further connector options."""
    import json

    from shared.datagen.config import parse_config
    from shared.datagen.source import config_source

    config = {
        "connector.class": "io.confluent.kafka.connect.datagen.DatagenConnector",
        "kafka.topic": name,
        "schema.string": json.dumps(schema),
    }
    document = {"name": f"datagen-{name}", "config": config | options}
    return config_source(parse_config(document, source=name, file=f"sources/{name}.json", folder=Path(".")))


@pytest.fixture
def now_ms() -> int:
    return FIXED_NOW_MS


def records_for(
    source: Source, count: int, *, topic: str | None = None, partition: int = 0, first_offset: int = 0, seed: int = 7
) -> list[KafkaRecord]:
    """``count`` valid records of ``source`` as a broker would deliver them."""
    fake = Faker()
    fake.seed_instance(seed)
    records = []
    for index, event in enumerate(source.generate(fake, count, FIXED_NOW)):
        key = source.entity_key(source.transform(event.model_dump()))
        value = event.model_dump_json(by_alias=True).encode()
        records.append(KafkaRecord(topic or source.name, partition, first_offset + index, key, value, FIXED_NOW_MS))
    return records


@cache
def app_functions() -> dict[str, Any]:
    """``function_app.app.get_functions()`` by name; cached because the SDK indexes an app only once."""
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def context_for(
    source: Source, lake: Any, *, settings: dict[str, str] | None = None, now_ms: int = FIXED_NOW_MS
) -> Any:
    """A ``ProcessingContext`` for ``source`` on ``lake``: default settings, ``settings`` overriding, at ``now_ms``."""
    from shared.invocation import ProcessingContext
    from shared.settings import load_settings, load_source_settings

    values = settings or {}
    return ProcessingContext(
        source, lake, load_settings(values), load_source_settings(source.name, values), clock=lambda: now_ms / 1000
    )


class OutputBinding(func.Out[str]):
    """The worker's output binding holder: the function sets, the host reads."""

    def __init__(self) -> None:
        self.value: str | None = None

    def set(self, val: str) -> None:
        self.value = val

    def get(self) -> str:
        assert self.value is not None
        return self.value
