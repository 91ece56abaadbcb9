"""What the Datagen tests share: sources from inline schemas, their generated values, config files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.datagen.config import parse_config
from shared.datagen.source import config_source
from shared.generator_ticks import generate_messages
from shared.source_model import Source
from tests.conftest import FIXED_NOW

DATAGEN_CLASS = "io.confluent.kafka.connect.datagen.DatagenConnector"


def schema_source(fields: list[dict[str, Any]], *, keyfield: str = "", **config: Any) -> Source:
    """A config source from an inline schema.string (the way users bring their own schemas)."""
    schema = {"type": "record", "name": "test", "fields": fields}
    options = {"connector.class": DATAGEN_CLASS, "kafka.topic": "test", "schema.string": json.dumps(schema)}
    if keyfield:
        options["schema.keyfield"] = keyfield
    options.update(config)
    return config_source(parse_config({"name": "t", "config": options}, source="test", file="t.json", folder=Path(".")))


def values(source: Source, count: int, *, start_index: int = 0, seed: int = 1) -> list[dict[str, Any]]:
    messages = generate_messages(source, count, now=FIXED_NOW, seed=seed, start_index=start_index)
    return [json.loads(m.value) for m in messages]


def field(name: str, avro_type: Any, **props: Any) -> dict[str, Any]:
    if props:
        avro_type = {"type": avro_type, "arg.properties": props} if isinstance(avro_type, str) else avro_type
    return {"name": name, "type": avro_type}


def write_config(folder: Path, name: str, document: Any) -> Path:
    path = folder / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


def config_document(**options: Any) -> dict[str, Any]:
    """A connector config for topic ``things`` on the orders quickstart, ``options`` changed (None removes one)."""
    base = {"connector.class": DATAGEN_CLASS, "kafka.topic": "things", "quickstart": "orders"}
    return {"name": "datagen-things", "config": {k: v for k, v in (base | options).items() if v is not None}}
