"""Every schema type the registry takes is stored and found again; a text that is not Unicode is refused with a 422,
not a 500 (real HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import requests

from devhost.registry.server import CONTENT_TYPE, serve_registry

PROTO = 'syntax = "proto3";\nmessage Order { int64 id = 1; }\n'


def _post(url: str, document: dict[str, str]) -> requests.Response:
    return requests.post(url, data=json.dumps(document), headers={"Content-Type": CONTENT_TYPE}, timeout=10)


def test_a_protobuf_schema_is_registered_kept_and_looked_up(tmp_path: Path) -> None:
    """Accepted as a type, it was a 500: the store read every schema as JSON to compare them."""
    with serve_registry(tmp_path / "registry.sqlite") as url:
        registered = _post(f"{url}/subjects/orders-value/versions", {"schema": PROTO, "schemaType": "PROTOBUF"})
        assert registered.status_code == 200, registered.text
        schema_id = registered.json()["id"]
        again = _post(f"{url}/subjects/orders-value/versions", {"schema": f"  {PROTO}\n", "schemaType": "protobuf"})
        assert again.json() == {"id": schema_id}
        found = _post(f"{url}/subjects/orders-value", {"schema": PROTO, "schemaType": "PROTOBUF"})
        assert found.status_code == 200, found.text
        assert (found.json()["id"], found.json()["schemaType"]) == (schema_id, "PROTOBUF")
        by_id = requests.get(f"{url}/schemas/ids/{schema_id}", timeout=10).json()
        assert by_id == {"schema": PROTO, "schemaType": "PROTOBUF"}


def test_a_schema_with_a_lone_surrogate_is_an_invalid_schema(tmp_path: Path) -> None:
    """JSON may escape a lone surrogate (``\\ud800``); SQLite cannot store that text: it was a 500."""
    schema = '{"type": "string", "doc": "\ud800"}'
    with serve_registry(tmp_path / "registry.sqlite") as url:
        for path in ("/subjects/s-value/versions", "/subjects/s-value"):
            answer = _post(url + path, {"schema": schema})
            assert answer.status_code == 422, (path, answer.text)
            assert answer.json()["error_code"] == 42201
        assert requests.get(f"{url}/subjects", timeout=10).json() == []
