"""The local host's schema registry over real HTTP: one id per schema, kept across restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from devhost.registry.server import serve_registry
from shared.schema_registry.client import ConfluentRegistry, UnknownSchema


def test_the_registry_keeps_one_id_per_schema_and_persists_it(tmp_path: Path) -> None:
    store = tmp_path / "registry.sqlite"
    schema = json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})
    evolved = json.dumps(
        {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}, {"name": "b", "type": "string"}]}
    )
    with serve_registry(store) as url:
        client = ConfluentRegistry(url)
        first = client.register("things-value", schema)
        assert client.register("things-value", json.dumps(json.loads(schema), indent=2)) == first
        second = client.register("things-value", evolved)
        assert second != first
        assert client.schema_text(first) == ("AVRO", schema)
        with pytest.raises(UnknownSchema, match="no schema 999"):
            client.schema_text("999")
        versions = requests.get(f"{url}/subjects/things-value/versions", timeout=10).json()
        assert versions == [1, 2]
        latest = requests.get(f"{url}/subjects/things-value/versions/latest", timeout=10).json()
        assert (latest["version"], str(latest["id"])) == (2, second)
        refused = requests.post(f"{url}/subjects/x/versions", json={"schema": '{"type": "nope"}'}, timeout=10)
        assert (refused.status_code, refused.json()["error_code"]) == (422, 42201)
        referring = {"schema": '"string"', "references": [{"name": "a.B", "subject": "y", "version": 1}]}
        refused = requests.post(f"{url}/subjects/x/versions", json=referring, timeout=10)  # no subject y: was id 2
        assert (refused.status_code, refused.json()["error_code"]) == (422, 42201)
        assert "references are not supported" in refused.json()["message"]
    with serve_registry(store) as url:  # a restarted host keeps its ids
        assert ConfluentRegistry(url).schema_text(second) == ("AVRO", evolved)


@pytest.mark.parametrize(
    ("path", "status", "error_code"),
    [
        ("/schemas/ids/%C2%B2", 404, 40403),  # "²": str.isdigit() takes it, int() does not
        ("/schemas/ids/" + "9" * 30, 404, 40403),  # past a Java int (and SQLite's integers)
        ("/schemas/ids/2147483648", 404, 40403),
        ("/subjects/s/versions/%C2%B2", 422, 42202),
        ("/subjects/s/versions/" + "9" * 30, 422, 42202),
    ],
)
def test_an_id_or_version_that_is_not_a_java_int_is_a_client_error(
    tmp_path: Path, path: str, status: int, error_code: int
) -> None:
    with serve_registry(tmp_path / "registry.sqlite") as url:
        ConfluentRegistry(url).register("s", json.dumps({"type": "int"}))
        answer = requests.get(f"{url}{path}", timeout=10)
        assert (answer.status_code, answer.json()["error_code"]) == (status, error_code)
