"""Connector configs: errors name the file and the option; schema files are read from the configs' folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.datagen import config
from shared.datagen.avro import MAX_RECORD_JSON_BYTES
from shared.datagen.config import DatagenConfigError, parse_config
from shared.datagen.source import config_source, load_config_sources
from shared.generator_ticks import Tick, tick_piece
from shared.kafka_clients import record_size
from shared.layout import PARTITION_COLUMNS
from shared.records import ProducedRecord
from shared.sources import SOURCES
from tests.unit.shared.datagen.conftest import config_document, field, schema_source, values, write_config


@pytest.mark.parametrize(
    ("file", "document", "option", "message"),
    [
        ("things.json", config_document(**{"max.intervall": "10"}), "config.max.intervall", "unknown option"),
        (
            "things.json",
            config_document(**{"schema.string": '{"type":"record"}'}),
            "config.schema.string",
            "conflicts with",
        ),
        ("things.json", config_document(quickstart=None), "config.quickstart", "is required"),
        ("things.json", config_document(quickstart="order"), "config.quickstart", "unknown quickstart 'order'"),
        ("things.json", config_document(**{"schema.keyfield": "nope"}), "config.schema.keyfield", "not a field"),
        ("things.json", config_document(**{"schema.keyfield": "address"}), "config.schema.keyfield", "primitive"),
        (
            "things.json",
            config_document(**{"connector.class": "FileStreamSource"}),
            "config.connector.class",
            "must be",
        ),
        (
            "things.json",
            config_document(**{"value.converter": "io.confluent.connect.avro.AvroConverter"}),
            "config.value.converter.schema.registry.url",
            "needs the schema registry",
        ),
        (
            "things.json",
            config_document(**{"value.converter": "io.confluent.connect.protobuf.ProtobufConverter"}),
            "config.value.converter",
            "AvroConverter",
        ),
        (
            "things.json",
            config_document(
                **{
                    "value.converter": "io.confluent.connect.avro.AvroConverter",
                    "value.converter.schema.registry.url": "https://psrc.example.confluent.cloud",
                    "value.converter.schema.registry.basic.auth.user.info": "KEY:SECRET",
                }
            ),
            "config.value.converter.schema.registry.basic.auth.user.info",
            "SCHEMA_REGISTRY_PASSWORD",
        ),
        (
            "things.json",
            config_document(**{"value.converter.schema.registry.url": "http://localhost:8081"}),
            "config.value.converter.schema.registry.url",
            "value converter is JSON",
        ),
        (
            "things.json",
            config_document(**{"value.converter.schemas.enable": "true"}),
            "config.value.converter.schemas",
            "",
        ),
        ("things.json", config_document(**{"tasks.max": "0"}), "config.tasks.max", "at least 1"),
        ("things.json", config_document(iterations="many"), "config.iterations", "whole number"),
        ("things.json", config_document(**{"kafka.topic": "bad topic"}), "config.kafka.topic", "not a usable topic"),
        # review 15: a name the lake cannot name files after, named as the config's, not as a setting never set
        ("things.json", config_document(**{"kafka.topic": "t" * 153}), "config.kafka.topic", "152 characters at most"),
        ("things.json", config_document(name="other"), "config.name", "conflicts"),
        ("things.json", {"config": {}}, "name", "missing"),
        ("things.json", {"name": "x", "config": {}, "tasks": []}, "tasks", "unknown top-level key"),
        ("things.json", "{not json", "<document>", "not JSON"),
        ("Things.json", config_document(), "file name", "lowercase"),
        ("things\n.json", config_document(), "file name", "lowercase"),  # "$" would match before the newline
        (
            "things.json",
            config_document(quickstart=None, **{"schema.filename": "../secret.avsc"}),
            "config.schema.filename",
            "inside",
        ),
        (
            "things.json",
            config_document(quickstart=None, **{"schema.filename": "gone.avsc"}),
            "config.schema.filename",
            "exist",
        ),
        (
            "things.json",
            config_document(
                quickstart=None,
                **{
                    "schema.string": json.dumps(
                        {"type": "record", "name": "r", "fields": [field("n", "int", regex="[0-9]")]}
                    )
                },
            ),
            "config.schema.string",
            "n: arg.properties.regex is not supported on int",
        ),
        (
            "things.json",
            config_document(
                quickstart=None,
                **{"schema.string": json.dumps({"type": "record", "name": "r", "fields": [field("n\n", "int")]})},
            ),
            "config.schema.string",
            "is not a valid Avro name",
        ),
        (
            "things.json",
            config_document(
                quickstart=None,
                **{
                    "schema.string": json.dumps(
                        {"type": "record", "name": "r", "fields": [field("n", "int", range={"min": 5, "max": 5})]}
                    )
                },
            ),
            "config.schema.string",
            "min must be below max",
        ),
        (
            "things.json",
            config_document(
                quickstart=None,
                **{
                    "schema.string": json.dumps(
                        {"type": "record", "name": "r", "fields": [field("n", "int", options=["one"])]}
                    )
                },
            ),
            "schema",
            "n arg.properties.options[0]",
        ),
        (
            "things.json",
            config_document(
                quickstart=None,
                **{"schema.string": json.dumps({"type": "record", "name": "r", "fields": [field("_key", "int")]})},
            ),
            "schema",
            "lineage column",
        ),
    ],
)
def test_bad_configs_fail_naming_the_file_and_the_option(
    tmp_path: Path, file: str, document: Any, option: str, message: str
) -> None:
    folder = tmp_path / "sources"
    folder.mkdir()
    write_config(folder, file, document)
    with pytest.raises(DatagenConfigError) as failure:
        load_config_sources(folder, SOURCES.values())
    text = str(failure.value)
    assert text.startswith(f"sources/{file}: {option}"), text
    assert message in text, text


def test_schema_filename_is_read_from_the_configs_folder(tmp_path: Path) -> None:
    folder = tmp_path / "sources"
    folder.mkdir()
    write_config(
        folder, "mine.avsc", {"type": "record", "name": "mine", "fields": [field("n", "int", range={"max": 3})]}
    )
    write_config(
        folder, "mine.json", config_document(quickstart=None, **{"schema.filename": "mine.avsc", "kafka.topic": "mine"})
    )
    (source,) = load_config_sources(folder, [])
    assert source.name == "mine" and source.setting_defaults["topic"] == "mine"
    assert all(r["n"] < 3 for r in values(source, 50))


@pytest.mark.parametrize("name", [".", "schemas"])
def test_a_schema_filename_naming_a_directory_fails_naming_the_option(tmp_path: Path, name: str) -> None:
    """Any OSError reading the schema file is the option's fault, never a bare IsADirectoryError."""
    folder = tmp_path / "sources"
    (folder / "schemas").mkdir(parents=True)
    write_config(folder, "things.json", config_document(quickstart=None, **{"schema.filename": name}))
    with pytest.raises(DatagenConfigError) as failure:
        load_config_sources(folder, SOURCES.values())
    text = str(failure.value)
    assert text.startswith("sources/things.json: config.schema.filename"), text
    assert "cannot be read" in text, text


def _record(*fields: dict[str, Any]) -> dict[str, Any]:
    return {"type": "record", "name": "T", "fields": list(fields)}


NOT_AVRO = {
    "duplicate enum symbols": _record({"name": "c", "type": {"type": "enum", "name": "E", "symbols": ["A", "A"]}}),
    "enum symbol not a name": _record({"name": "c", "type": {"type": "enum", "name": "E", "symbols": ["in stock"]}}),
    "named type defined twice": _record(
        {"name": "c", "type": {"type": "enum", "name": "E", "symbols": ["A"]}},
        {"name": "d", "type": {"type": "enum", "name": "E", "symbols": ["B"]}},
    ),
    "default of the wrong type": _record({"name": "c", "type": "int", "default": "x"}),
    "null twice in a union": _record({"name": "c", "type": ["null", "null"]}),
}


@pytest.mark.parametrize("name", NOT_AVRO)
def test_a_schema_avro_refuses_fails_at_indexing_with_its_option(name: str) -> None:
    """Not on every generator tick later (the encoder would refuse it), and never as a bare TypeError."""
    with pytest.raises(DatagenConfigError, match=r"config\.schema\.string"):
        schema_source(NOT_AVRO[name]["fields"])


REGEX_REFUSED = {
    "an empty match repeated 10**12 times": ("(){1000000000000}", "steps to generate a value"),
    "a repeat of nothing repeated": ("(?:a{0}){99999999999}", "steps to generate a value"),
    "empty repeats nested": ("((){1000000}){1000000}", "steps to generate a value"),
    "groups nested 400 deep": ("(" * 400 + "a" + ")" * 400, "groups nest more than"),
    "a Java quote": (r"\Qab\E", r"\Q at 0 is not supported"),
    "a hex escape cut short": (r"[\x4]", r"\x at 1 needs 2 hex digits"),
}


@pytest.mark.timeout(30)  # the empty repeats, unrefused, hang the trial records for hours
@pytest.mark.parametrize("name", REGEX_REFUSED)
def test_a_regex_the_generator_cannot_honour_fails_at_indexing_naming_the_file_and_the_field(
    tmp_path: Path, name: str
) -> None:
    """Never a hang (generating 10**12 empty strings), a bare RecursionError, or a value the regex does not match."""
    regex, message = REGEX_REFUSED[name]
    folder = tmp_path / "sources"
    folder.mkdir()
    schema = json.dumps(_record(field("code", "string", regex=regex)))
    write_config(folder, "things.json", config_document(quickstart=None, **{"schema.string": schema}))
    with pytest.raises(DatagenConfigError) as failure:
        load_config_sources(folder, SOURCES.values())
    text = str(failure.value)
    assert text.startswith("sources/things.json: config.schema.string: code arg.properties: regex"), text
    assert message in text, text


def test_a_recursion_error_reading_a_schema_fails_naming_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    """A backstop behind the bounds on nesting: the app fails to index naming the config, not with a bare error."""

    def too_deep(schema: Any) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(config, "parse_schema", too_deep)
    with pytest.raises(DatagenConfigError, match=r"^t\.json: config\.schema\.string: nests too deep"):
        schema_source([field("id", "long")])


def test_a_whole_number_option_past_a_java_long_is_refused_by_name() -> None:
    with pytest.raises(DatagenConfigError, match=r"config\.tasks\.max"):
        schema_source([field("id", "long")], **{"tasks.max": "1" + "0" * 400})


@pytest.mark.parametrize(
    "url",
    [
        "https://KEY:S3CRET-api-secret@psrc-abc.westeurope.azure.confluent.cloud",
        "http://KEY:S3CRET-api-secret@localhost:8081/",
        "KEY:S3CRET-api-secret@psrc-abc.westeurope.azure.confluent.cloud",
    ],
)
def test_credentials_in_the_registry_url_are_refused_without_repeating_them(url: str) -> None:
    """Confluent's basic.auth.credentials.source=URL puts the key and secret in the URL: refused as
    basic.auth.user.info is (a secret does not belong in sources/), and the message does not repeat it."""
    document = config_document(
        **{
            "value.converter": "io.confluent.connect.avro.AvroConverter",
            "value.converter.basic.auth.credentials.source": "URL",
            "value.converter.schema.registry.url": url,
        }
    )
    with pytest.raises(DatagenConfigError) as failure:
        parse_config(document, source="things", file="things.json", folder=Path("."))
    assert failure.value.option == "config.value.converter.schema.registry.url"
    assert "SCHEMA_REGISTRY_PASSWORD" in str(failure.value) and "S3CRET" not in str(failure.value)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://", "names no host"),
        ("https://[::1", "is not a URL"),
        ("http://registry:99999", "is not a URL"),
        ("http://registry:0", "names port 0"),
        ("http://regi\x00stry:8081", "holds a control character"),
        ("ftp://registry:8081", "is not an http(s) URL"),
    ],
)
def test_a_registry_url_that_names_no_registry_is_refused_when_the_config_is_read(url: str, problem: str) -> None:
    """They loaded, and then every generator tick failed, blaming SCHEMA_REGISTRY_URL (never set) or with a bare
    ValueError (a review's cases)."""
    document = config_document(
        **{"value.converter": "io.confluent.connect.avro.AvroConverter", "value.converter.schema.registry.url": url}
    )
    with pytest.raises(DatagenConfigError) as failure:
        parse_config(document, source="things", file="things.json", folder=Path("."))
    assert failure.value.option == "config.value.converter.schema.registry.url" and problem in str(failure.value)


def _keyed_by_a_string_of(length: int, *, keyed: bool = True) -> dict[str, Any]:
    """A config whose one field ``id``, of exactly ``length`` characters, is its message key."""
    schema = json.dumps(_record(field("id", "string", length={"min": length, "max": length + 1})))
    return config_document(quickstart=None, **{"schema.string": schema, "schema.keyfield": "id" if keyed else None})


# What a key of that field and its record take at most, as JSON: {"id":"..."} and "..." again.
KEYED_LIMIT = (MAX_RECORD_JSON_BYTES - len('{"id":""}') - len('""')) // 2


def test_a_key_field_too_long_to_send_with_its_record_fails_at_indexing_naming_the_file_and_the_field(
    tmp_path: Path,
) -> None:
    """The key is a copy of the field, sent besides the record: 700,000 characters fit the record bound alone, but
    key and record together (1.4 MB) are refused by librdkafka on every tick, retried forever."""
    folder = tmp_path / "sources"
    folder.mkdir()
    write_config(folder, "big.json", _keyed_by_a_string_of(700_000))
    with pytest.raises(DatagenConfigError) as failure:
        load_config_sources(folder, SOURCES.values())
    assert failure.value.option == "config.schema.keyfield"
    text = str(failure.value)
    assert text.startswith("sources/big.json: config.schema.keyfield: 'id' is each message's key"), text
    assert f"make 1,400,011, over {MAX_RECORD_JSON_BYTES:,} bytes" in text, text
    parse_config(_keyed_by_a_string_of(700_000, keyed=False), source="big", file="big.json", folder=tmp_path)


def test_a_key_field_is_counted_with_its_record_up_to_the_bound(tmp_path: Path) -> None:
    """At the bound the config is accepted and its message (key, value and headers) fits librdkafka's 1,000,000
    bytes; one character more and it is refused."""
    document = _keyed_by_a_string_of(KEYED_LIMIT)
    source = config_source(parse_config(document, source="big", file="big.json", folder=tmp_path))
    message = tick_piece(source, Tick(0, 1, "2026-01-01T00:00:00+00:00", 1), 0).messages[0]
    assert message.key is not None and len(message.key) == KEYED_LIMIT
    assert record_size(ProducedRecord(message.key, message.value.encode(), ())) <= MAX_RECORD_JSON_BYTES < 1_000_000
    with pytest.raises(DatagenConfigError, match=r"^big\.json: config\.schema\.keyfield: 'id' is each message's key"):
        parse_config(_keyed_by_a_string_of(KEYED_LIMIT + 1), source="big", file="big.json", folder=tmp_path)


@pytest.mark.parametrize("name", [*PARTITION_COLUMNS, *(name.upper() for name in PARTITION_COLUMNS), "Date"])
def test_a_field_named_like_a_partition_column_is_refused_when_the_config_is_read(tmp_path: Path, name: str) -> None:
    """Compaction adds ``date`` and ``hour`` to every curated row and refuses a raw file holding a column of
    either name (in any case: Delta column names ignore case), quarantining the hour's rows: such a field
    would land in raw/ and never reach curated/, so the config is refused up front, naming the field."""
    folder = tmp_path / "sources"
    folder.mkdir()
    schema = {"type": "record", "name": "visit", "fields": [field("id", "long"), field(name, "string")]}
    write_config(folder, "things.json", config_document(quickstart=None, **{"schema.string": json.dumps(schema)}))
    with pytest.raises(DatagenConfigError) as failure:
        load_config_sources(folder, SOURCES.values())
    text = str(failure.value)
    assert text.startswith("sources/things.json: schema"), text
    assert f"{name}: the name of the curated table's partition column {name.lower()!r}" in text, text
    assert "rename the field" in text, text


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (["_TOPIC"], "_TOPIC: the name of the lineage column '_topic'"),
        (["_Offset"], "_Offset: the name of the lineage column '_offset'"),
        (["Name", "name"], "name: two fields land as columns 'Name' and 'name', one to Delta"),
    ],
)
def test_fields_that_differ_from_a_column_only_in_case_are_refused_when_the_config_is_read(
    tmp_path: Path, names: list[str], message: str
) -> None:
    """Delta column names ignore case: such a config loaded, generated and landed, and then compaction refused
    every raw file of the source (duplicate field names) for good (a review's case)."""
    folder = tmp_path / "sources"
    folder.mkdir()
    schema = {"type": "record", "name": "visit", "fields": [field("id", "long"), *(field(n, "string") for n in names)]}
    write_config(folder, "things.json", config_document(quickstart=None, **{"schema.string": json.dumps(schema)}))
    with pytest.raises(DatagenConfigError) as failure:
        load_config_sources(folder, SOURCES.values())
    text = str(failure.value)
    assert text.startswith("sources/things.json: schema") and message in text, text


def test_a_nested_field_named_like_a_partition_column_lands_under_its_flattened_name() -> None:
    """``visit.date`` lands as the column ``visit_date``, which is no partition column's name."""
    nested = {"type": "record", "name": "visit", "fields": [field("date", "string"), field("hour", "int")]}
    source = schema_source([field("id", "long"), {"name": "visit", "type": nested}])
    assert source.column_names[:3] == ["id", "visit_date", "visit_hour"]


def _as_directory(folder: Path) -> None:
    (folder / "things.json").mkdir()


def _dangling_link(folder: Path) -> None:
    (folder / "things.json").symlink_to(folder / "gone.json")


def _link_to_a_device(folder: Path) -> None:
    (folder / "things.json").symlink_to("/dev/zero")  # read whole, it would take every byte of memory


def _too_large(folder: Path) -> None:
    (folder / "things.json").write_bytes(b" " * (config.MAX_CONFIG_BYTES + 1))


def _schema_name_with_a_nul(folder: Path) -> None:
    write_config(folder, "things.json", config_document(quickstart=None, **{"schema.filename": "a\0.avsc"}))


@pytest.mark.parametrize(
    ("make", "option", "message"),
    [
        (_as_directory, "<document>", "cannot be read: not a regular file"),
        (_dangling_link, "<document>", "cannot be read: no such file"),
        (_link_to_a_device, "<document>", "cannot be read: not a regular file"),
        (_too_large, "<document>", "not JSON: larger than 8,388,608 bytes"),
        (_schema_name_with_a_nul, "config.schema.filename", "holds a NUL character"),
    ],
)
def test_a_config_file_that_cannot_be_read_fails_naming_it_not_with_a_traceback(
    tmp_path: Path, make: Any, option: str, message: str
) -> None:
    """IsADirectoryError, FileNotFoundError, ValueError (embedded null byte) and a MemoryError came out of the
    loader at indexing, naming no file (a review's cases)."""
    folder = tmp_path / "sources"
    folder.mkdir()
    make(folder)
    with pytest.raises(DatagenConfigError) as failure:
        load_config_sources(folder, SOURCES.values())
    assert str(failure.value).startswith(f"sources/things.json: {option}: ") and message in str(failure.value)
