"""Docs derived from code are fresh: the README's settings table and the JSON Schemas."""

from __future__ import annotations

import json

from tests.conftest import ROOT
from tools import docs


def test_readme_settings_table_and_json_schemas_are_fresh() -> None:
    assert docs.main(["check"]) == 0, "run: python -m tools.docs schemas, and paste settings-table into README"


def test_json_schema_of_clickstream_uses_datagen_field_names() -> None:
    schema = json.loads((ROOT / "docs/schemas/clickstream.schema.json").read_text())
    assert schema["properties"]["_time"]["type"] == "integer"
    assert schema["properties"]["status"]["type"] == "string"
