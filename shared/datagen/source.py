"""A :class:`Source` built from a Datagen connector config, and the folder of configs as sources."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from faker import Faker
from pydantic import BaseModel, TypeAdapter

from shared.datagen.avro import AvroType, SchemaProblem
from shared.datagen.config import DatagenConfig, DatagenConfigError, read_config
from shared.datagen.generate import RecordGenerator
from shared.datagen.model import annotation, build_model, landed_columns
from shared.source_model import Row, Source


def config_source(config: DatagenConfig) -> Source:
    """The source a connector config describes: its wire model, columns, transform, key and generator.

    Datagen records carry no trusted time of their own, so rows land by their Kafka timestamp
    (``_event_time_source = "kafka"``).
    """
    model_name = "".join(part.capitalize() for part in config.source.split("_")) + "Record"
    try:
        model, names = build_model(config.schema, model_name)
        columns, transform = landed_columns(config.schema, names)
    except SchemaProblem as problem:
        raise DatagenConfigError(config.file, "schema", str(problem)) from None
    _check_options(config, model)
    generator = RecordGenerator(config.schema)
    keyfield = config.keyfield

    def entity_key(row: Row) -> str | None:
        if keyfield is None:
            return None
        value = row.get(keyfield)
        if value is None:
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        return str(value)

    def generate_from(fake: Faker, count: int, now: datetime, start_index: int) -> list[BaseModel]:
        return [model.model_validate(record) for record in generator.records(fake.random, count, now, start_index)]

    def generate(fake: Faker, count: int, now: datetime) -> list[BaseModel]:
        return generate_from(fake, count, now, 0)

    def event_time_ms(event: Row) -> None:
        return None

    defaults = {
        "topic": config.topic,
        "state_enabled": "false",
        "generator_events_per_tick": str(config.events_per_tick),
        "generator_iterations": str(config.iterations),
    }
    if config.seed is not None:
        defaults["generator_seed"] = str(config.seed)
    return Source(
        name=config.source,
        model=model,
        columns=columns,
        transform=transform,
        event_time_ms=event_time_ms,
        entity_key=entity_key,
        generate=generate,
        generate_from=generate_from,
        setting_defaults=defaults,
        value_format="avro" if config.value_format == "avro" else "json",
        avro_schema=config.schema_json if config.value_format == "avro" else None,
        registry_url=config.registry_url,
    )


def _check_options(config: DatagenConfig, model: type[BaseModel]) -> None:
    """Every ``options`` value must be one the schema accepts, or the records carrying it would fail."""
    for node in _nodes(config.schema):
        options: list[Any] = node.props.get("options", [])
        check: Any = model.model_validate if node is config.schema else TypeAdapter(annotation(node)).validate_python
        for number, option in enumerate(options):
            try:
                check(option)
            except ValueError as error:
                where = (
                    f"{node.path} arg.properties.options[{number}]"
                    if node.path
                    else f"arg.properties.options[{number}]"
                )
                raise DatagenConfigError(config.file, "schema", f"{where}: {error}") from None


def _nodes(node: AvroType) -> list[AvroType]:
    found = [node]
    for item in node.fields:
        found.extend(_nodes(item.type))
    for branch in node.branches:
        found.extend(_nodes(branch))
    if node.items is not None:
        found.extend(_nodes(node.items))
    return found


def load_config_sources(folder: Path, existing: Iterable[Source]) -> list[Source]:
    """Every ``<folder>/*.json`` as a source, checked against the hand-written ``existing`` ones.

    A name or a topic taken by another source fails, naming the file and the option.
    """
    if not folder.is_dir():
        return []
    names = {source.name: "a hand-written source" for source in existing}
    topics = {source.setting_defaults.get("topic", source.name): source.name for source in existing}
    sources = []
    for path in sorted(folder.glob("*.json")):
        config = read_config(path)
        if config.source in names:
            raise DatagenConfigError(
                config.file, "file name", f"source {config.source!r} is already {names[config.source]}"
            )
        if config.topic in topics:
            raise DatagenConfigError(
                config.file,
                "config.kafka.topic",
                f"{config.topic!r} is already the topic of source {topics[config.topic]!r}",
            )
        source = config_source(config)
        names[source.name] = config.file
        topics[config.topic] = source.name
        sources.append(source)
    return sources
