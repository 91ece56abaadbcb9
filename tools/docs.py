"""Generate the docs that derive from code: JSON Schemas and the settings table.

python -m tools.docs schemas         # write docs/schemas/<source>.schema.json
python -m tools.docs settings-table  # print the README's settings table
python -m tools.docs check           # exit 1 if either is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from shared.settings import SOURCE_FIELDS, Settings, SourceSettings, source_defaults, source_setting_name
from shared.sources import CONFIG_SOURCES, SOURCES

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "docs" / "schemas"
README = ROOT / "README.md"
TABLE_START, TABLE_END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def schema_documents() -> dict[Path, str]:
    documents = {}
    for name, source in SOURCES.items():
        schema = source.model.model_json_schema(by_alias=True, mode="validation")
        schema["$id"] = f"https://streamingpoc.local/schemas/{name}.schema.json"
        documents[SCHEMA_DIR / f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return documents


def settings_table() -> str:
    lines = ["| Setting | Default | Description |", "| --- | --- | --- |"]
    for info in Settings.model_fields.values():
        default = info.get_default(call_default_factory=True)
        shown = "" if default is None else getattr(default, "get_secret_value", lambda d=default: d)()
        shown = str(shown).lower() if isinstance(shown, bool) else shown
        lines.append(f"| `{info.alias}` | `{shown}` | {info.description} |")
    for field in SOURCE_FIELDS:
        info = SourceSettings.model_fields[field]
        default = source_defaults("<source>").get(field, info.default)
        default = str(default).lower() if isinstance(default, bool) else default
        name = source_setting_name("SOURCE", field).replace("SOURCE_", "<SOURCE>_", 1)
        lines.append(f"| `{name}` | `{'' if default is None else default}` | {info.description} |")
    return "\n".join(lines)


def readme_table() -> str:
    text = README.read_text()
    start, end = text.index(TABLE_START) + len(TABLE_START), text.index(TABLE_END)
    return text[start:end].strip()


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "check"
    if command == "schemas":
        SCHEMA_DIR.mkdir(parents=True, exist_ok=True)
        for path, content in schema_documents().items():
            path.write_text(content)
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    if command == "settings-table":
        print(settings_table())
        return 0
    if command == "check":
        # A dropped-in Datagen config needs no schema document; one that exists must be fresh.
        optional = {SCHEMA_DIR / f"{source.name}.schema.json" for source in CONFIG_SOURCES}
        stale = [
            str(p.relative_to(ROOT))
            for p, c in schema_documents().items()
            if (not p.exists() and p not in optional) or (p.exists() and p.read_text() != c)
        ]
        if readme_table() != settings_table():
            stale.append("README.md settings table")
        for item in stale:
            print(f"stale: {item} (run python -m tools.docs schemas / settings-table)")
        return 1 if stale else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
