"""Terraform provider schemas read offline from prebuilt CDKTF (and CDK Terrain) bindings.

``@cdktf/provider-azurerm`` (and ``@cdktf/provider-random``, ``@cdktf/provider-time``, and
``@cdktn/provider-azapi``, the CDK Terrain fork's bindings) are generated from the provider's
own schema: every resource, data source and nested block becomes a TypeScript
class whose ``synthesizeHclAttributes`` / ``<struct>ToHclTerraform`` functions list each
Terraform attribute by its real (snake_case) name, with ``isBlock`` telling blocks from
attributes. The ``.d.ts`` config interfaces say which members are required (no ``?``) and
link every member to its Terraform name (``...#resource_group_name``).

This module parses those generated files (their shape is fixed by the generator, so a few
anchored regular expressions are enough) into :class:`Block` trees, one file per type, on
demand, and caches the result as JSON next to the npm cache.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

# The generator emits each attribute of a struct as exactly this shape.
_ENTRY = re.compile(
    r'^\s+"?(?P<name>[A-Za-z0-9_]+)"?: \{\n'
    r"\s+value: (?P<value>.+?),\n"
    r"\s+isBlock: (?P<is_block>true|false),\n"
    r'\s+type: "(?P<type>\w+)",\n'
    r'\s+storageClassType: "(?P<storage>\w+)",\n'
    r"\s+\},?$",
    re.MULTILINE,
)
_FUNCTION = re.compile(r"^function (?P<name>\w+)ToHclTerraform\(struct\) \{$", re.MULTILINE)
_METHOD = re.compile(r"^    synthesizeHclAttributes\(\) \{$", re.MULTILINE)
_NESTED_REF = re.compile(r"(?<![.\w])(?P<name>\w+)ToHclTerraform\b")
# cdktf assigns `Class.tfResourceType = "..."` after the class; cdktn declares `static tfResourceType = "..."`.
_TYPE_NAME = re.compile(r'^\s*(?:static |\w+\.)tfResourceType = "(?P<type>[\w-]+)";$', re.MULTILINE)
_INTERFACE = re.compile(r"^export interface (?P<name>\w+)(?: extends [\w.]+)? \{$", re.MULTILINE)
_MEMBER = re.compile(
    r"/\*\*(?P<doc>(?:(?!\*/).)*?)\*/\s*readonly (?P<prop>\w+)(?P<optional>\??):",
    re.DOTALL,
)
_DOC_NAME = re.compile(r"#(?P<tf>[A-Za-z0-9_]+) \w+#(?P=tf)\}")
_CLASS = re.compile(
    r"^class (?P<cls>\w+) extends cdkt[fn]\.Terraform(?:Resource|DataSource|Provider) \{$", re.MULTILINE
)
# Above each getter: "// primary_dfs_endpoint - computed: true, optional: false, required: false"
_GETTER_NOTE = re.compile(r"^\s+// (?P<name>[A-Za-z0-9_]+) - computed: (?:true|false), optional:", re.MULTILINE)


@dataclass
class Block:
    """Schema of one block: its attributes and nested blocks by Terraform name."""

    attributes: dict[str, bool] = field(default_factory=dict)  # name -> required
    blocks: dict[str, Block] = field(default_factory=dict)
    required_blocks: set[str] = field(default_factory=set)
    # Top level only: every name an expression may read (arguments, blocks and computed
    # attributes such as `primary_dfs_endpoint`).
    readable: set[str] = field(default_factory=set)

    def to_json(self) -> dict[str, object]:
        return {
            "attributes": self.attributes,
            "blocks": {name: block.to_json() for name, block in self.blocks.items()},
            "required_blocks": sorted(self.required_blocks),
            "readable": sorted(self.readable),
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Block:
        blocks = data["blocks"]
        assert isinstance(blocks, dict)
        return cls(
            attributes=dict(data["attributes"]),  # type: ignore[call-overload]
            blocks={name: cls.from_json(value) for name, value in blocks.items()},
            required_blocks=set(data["required_blocks"]),  # type: ignore[call-overload]
            readable=set(data.get("readable", [])),  # type: ignore[call-overload]
        )


def _body(text: str, start: int) -> str:
    """Text of the brace-delimited body that opens at or after ``start`` (generated code: braces balance)."""
    open_at = text.index("{", start)
    depth = 0
    for index in range(open_at, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[open_at : index + 1]
    raise ValueError("unbalanced braces in generated code")


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


class _GeneratedModule:
    """One ``lib/<dir>/index.js`` + ``index.d.ts`` pair."""

    def __init__(self, directory: Path) -> None:
        self.js = (directory / "index.js").read_text(encoding="utf-8")
        self.dts = (directory / "index.d.ts").read_text(encoding="utf-8")
        self.functions = {match["name"]: match.start() for match in _FUNCTION.finditer(self.js)}
        self.required = self._required_members()

    def _required_members(self) -> dict[str, dict[str, bool]]:
        """interface (as the JS function prefix) -> {terraform name: required}."""
        members: dict[str, dict[str, bool]] = {}
        for match in _INTERFACE.finditer(self.dts):
            body = _body(self.dts, match.start())
            names: dict[str, bool] = {}
            for member in _MEMBER.finditer(body):
                doc_name = _DOC_NAME.search(member["doc"])
                if doc_name:
                    names[doc_name["tf"]] = member["optional"] != "?"
            members[_lower_first(match["name"])] = names
        return members

    def _block(self, body: str, interface: str, seen: tuple[str, ...]) -> Block:
        required = self.required.get(interface, {})
        block = Block()
        entries = list(_ENTRY.finditer(body))
        if len(entries) != body.count("isBlock: "):  # the generator's shape changed: fail loudly, never skip
            raise ValueError(f"could not read every attribute of {interface}")
        for entry in entries:
            name = entry["name"]
            if entry["is_block"] == "true":
                nested = [ref for ref in _NESTED_REF.findall(entry["value"]) if ref in self.functions]
                if not nested:
                    raise ValueError(f"block {name!r} has no nested struct function: {entry['value']}")
                if nested[0] in seen:  # recursive schemas do not occur in azurerm, but never loop
                    block.blocks[name] = Block()
                    continue
                block.blocks[name] = self.struct(nested[0], (*seen, nested[0]))
                if required.get(name, False):
                    block.required_blocks.add(name)
            else:
                block.attributes[name] = required.get(name, False)
        return block

    def struct(self, prefix: str, seen: tuple[str, ...] = ()) -> Block:
        return self._block(_body(self.js, self.functions[prefix]), prefix, seen)

    def top_level(self) -> Block:
        declaration = _CLASS.search(self.js)
        if declaration is None:
            raise ValueError("no Terraform class in generated module")
        method = _METHOD.search(self.js)
        if method is None:
            raise ValueError("no synthesizeHclAttributes in generated module")
        block = self._block(_body(self.js, method.start()), _lower_first(declaration["cls"]) + "Config", ())
        block.readable = {note["name"] for note in _GETTER_NOTE.finditer(_body(self.js, declaration.start()))}
        block.readable |= set(block.attributes) | set(block.blocks)
        return block


@dataclass
class ProviderSchema:
    """Lazily parsed schema of one provider package (``node_modules/@cdktf/provider-<name>``)."""

    package_dir: Path
    cache_dir: Path
    _index: dict[str, str] = field(default_factory=dict)  # "resource:<type>" / "data:<type>" / "provider" -> dir

    @property
    def version(self) -> str:
        return str(json.loads((self.package_dir / "package.json").read_text())["version"])

    @property
    def provider_name(self) -> str:
        return self.package_dir.name.removeprefix("provider-")

    @property
    def provider_version(self) -> str:
        """The Terraform provider version the bindings were generated from (first README line)."""
        first = (self.package_dir / "README.md").read_text(encoding="utf-8").strip().splitlines()[0]
        found = re.search(r"provider version ([0-9.]+)", first)
        return found.group(1) if found else "unknown"

    def _cache_file(self, name: str) -> Path:
        return self.cache_dir / f"{self.package_dir.name}-{self.version}" / name

    def index(self) -> dict[str, str]:
        """Every resource and data source type of the package -> its generated directory."""
        if self._index:
            return self._index
        cached = self._cache_file("index.json")
        if cached.exists():
            self._index = json.loads(cached.read_text())
            return self._index
        index: dict[str, str] = {}
        for directory in sorted((self.package_dir / "lib").iterdir()):
            script = directory / "index.js"
            if not script.is_file():
                continue
            data = script.read_bytes()  # the assignment sits before an inline source map, so search all
            at = data.rfind(b'tfResourceType = "')
            if at < 0 or directory.name.startswith("ephemeral-"):  # ephemeral resources share resource type names
                continue
            found = _TYPE_NAME.search(data[data.rfind(b"\n", 0, at) + 1 : data.find(b"\n", at)].decode())
            if found is None:
                continue
            if directory.name == "provider":
                kind = "provider"
            elif directory.name.startswith(f"data-{self.provider_name}-"):  # not "data-factory", a resource
                kind = "data"
            else:
                kind = "resource"
            key = "provider" if kind == "provider" else f"{kind}:{found['type']}"
            index[key] = directory.name
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(index, indent=0, sort_keys=True))
        self._index = index
        return index

    def schema(self, key: str) -> Block | None:
        """Schema of ``resource:<type>``, ``data:<type>`` or ``provider``; None when the type does not exist."""
        directory = self.index().get(key)
        if directory is None:
            return None
        cached = self._cache_file(f"{directory}.json")
        if cached.exists():
            return Block.from_json(json.loads(cached.read_text()))
        block = _GeneratedModule(self.package_dir / "lib" / directory).top_level()
        cached.write_text(json.dumps(block.to_json(), sort_keys=True))
        return block
