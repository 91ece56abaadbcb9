"""Offline checks of a Terraform configuration against provider schemas (see provider_schema.py).

``check_configuration(directory, providers)`` parses every ``.tf`` file of a root module and
of the local modules it calls (python-hcl2) and reports, as ``file:line: message`` strings:

- resource and data source types the provider does not have;
- arguments and blocks a resource, data source, provider or nested block does not have
  (e.g. a typo, or an argument removed in azurerm 4.x), and required ones that are missing;
- ``dynamic`` blocks whose label is not a block of that resource;
- module calls passing inputs the module does not declare, or missing required ones;
- references to undeclared variables, locals, modules, module outputs, resources or data
  sources, and to attributes a resource or data source does not export.

It does not evaluate expressions, so it cannot check types or allowed values, and it does not
follow attributes read through iteration variables (``for x in azurerm_y.z : x.attr``,
``each.value.attr``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2

from tests.terraform.provider_schema import Block, ProviderSchema

_MARKERS = {"__is_block__", "__start_line__", "__end_line__", "__comments__", "__inline_comments__"}
_META_ARGUMENTS = {"count", "for_each", "depends_on", "provider"}
_META_BLOCKS = {"lifecycle", "provisioner", "connection"}
_MODULE_META = {"source", "version", "count", "for_each", "depends_on", "providers"}

_SIMPLE_REF = re.compile(
    r"(?<![\w.])(?P<kind>var|local|module)\.(?P<name>[A-Za-z_][\w-]*)(?:\.(?P<attr>[A-Za-z_][\w-]*))?"
)
_RESOURCE_REF = re.compile(
    r"(?<![\w.])(?P<data>data\.)?(?P<type>(?:azurerm|random|azapi|time)_[a-z0-9_]+)\.(?P<name>[A-Za-z_][\w-]*)"
    r"(?:\[[^\]]*\])?(?:\[\*\])?(?:\.(?P<attr>[A-Za-z_][\w-]*))?"
)


def unquote(label: str) -> str:
    return label[1:-1] if len(label) >= 2 and label[0] == label[-1] == '"' else label


def is_block(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) and v.get("__is_block__") for v in value)


@dataclass
class Module:
    """The parsed ``.tf`` files of one module directory."""

    directory: Path
    files: dict[Path, dict[str, Any]] = field(default_factory=dict)
    texts: dict[Path, str] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> Module:
        module = cls(directory)
        options = hcl2.SerializationOptions(with_comments=False)
        for path in sorted(directory.glob("*.tf")):
            text = path.read_text(encoding="utf-8")
            module.texts[path] = text
            module.files[path] = hcl2.loads(text, serialization_options=options)
        return module

    def blocks(self, kind: str) -> Iterator[tuple[Path, list[str], dict[str, Any]]]:
        """Top-level blocks of one kind: (file, labels, body)."""
        for path, parsed in self.files.items():
            for entry in parsed.get(kind, []):
                yield from self._labelled(path, entry, [])

    def _labelled(
        self, path: Path, entry: dict[str, Any], labels: list[str]
    ) -> Iterator[tuple[Path, list[str], dict[str, Any]]]:
        if entry.get("__is_block__"):  # label levels carry no marker, block bodies do
            yield path, labels, entry
            return
        for key, value in entry.items():
            if key in _MARKERS:
                continue
            yield from self._labelled(path, value, [*labels, unquote(key)])

    def line_of(self, path: Path, kind: str, labels: list[str]) -> int:
        pattern = re.compile(
            r"^\s*" + re.escape(kind) + "".join(r'\s+"' + re.escape(label) + '"' for label in labels) + r"\s*\{"
        )
        for number, line in enumerate(self.texts[path].splitlines(), start=1):
            if pattern.match(line):
                return number
        return 0

    def names(self, kind: str) -> set[str]:
        return {labels[0] for _, labels, _ in self.blocks(kind) if labels}

    def local_names(self) -> set[str]:
        return {key for _, _, body in self.blocks("locals") for key in body if key not in _MARKERS}

    def resource_names(self, kind: str) -> set[tuple[str, str]]:
        return {(labels[0], labels[1]) for _, labels, _ in self.blocks(kind) if len(labels) == 2}


@dataclass
class Checker:
    providers: Mapping[str, ProviderSchema]  # "azurerm" -> schema package
    errors: list[str] = field(default_factory=list)

    def schema_for(self, kind: str, type_name: str) -> Block | str | None:
        provider = type_name.split("_", 1)[0]
        package = self.providers.get(provider)
        if package is None:
            return f"no offline schema for provider {provider!r}"
        return package.schema(f"{kind}:{type_name}")

    def check_body(self, body: Mapping[str, Any], schema: Block, where: str, *, top_level: bool) -> None:
        present: set[str] = set()
        for key, value in body.items():
            if key in _MARKERS:
                continue
            if top_level and (key in _META_ARGUMENTS or key in _META_BLOCKS):
                continue
            if key == "dynamic":
                for entry in value:
                    for label, dynamic in entry.items():
                        if label in _MARKERS:
                            continue
                        name = unquote(label)
                        if name not in schema.blocks:
                            self.errors.append(f"{where}: dynamic block {name!r} is not a block here")
                            continue
                        present.add(name)
                        for content in dynamic.get("content", []):
                            self.check_body(content, schema.blocks[name], f"{where}.{name}", top_level=False)
                continue
            if is_block(value):
                if key not in schema.blocks:
                    hint = " (it is an argument: use `=`)" if key in schema.attributes else ""
                    self.errors.append(f"{where}: unsupported block {key!r}{hint}")
                    continue
                for nested in value:
                    self.check_body(nested, schema.blocks[key], f"{where}.{key}", top_level=False)
            elif key not in schema.attributes:
                hint = " (it is a block: drop the `=`)" if key in schema.blocks else ""
                self.errors.append(f"{where}: unsupported argument {key!r}{hint}")
                continue
            present.add(key)
        for name, required in sorted(schema.attributes.items()):
            if required and name not in present:
                self.errors.append(f"{where}: missing required argument {name!r}")
        for name in sorted(schema.required_blocks - present):
            self.errors.append(f"{where}: missing required block {name!r}")

    def check_module(self, module: Module, seen: frozenset[Path] = frozenset()) -> None:
        root = module.directory
        for kind in ("resource", "data"):
            for path, labels, body in module.blocks(kind):
                type_name, name = labels
                where = f"{path.relative_to(root)}:{module.line_of(path, kind, labels)}: {kind} {type_name}.{name}"
                schema = self.schema_for(kind, type_name)
                if isinstance(schema, str):
                    self.errors.append(f"{where}: {schema}")
                elif schema is None:
                    self.errors.append(f"{where}: the provider has no {kind} type {type_name!r}")
                else:
                    self.check_body(body, schema, where, top_level=True)
        for path, labels, body in module.blocks("provider"):
            where = f"{path.relative_to(root)}:{module.line_of(path, 'provider', labels)}: provider {labels[0]}"
            package = self.providers.get(labels[0])
            schema = package.schema("provider") if package else None
            if schema is None:
                self.errors.append(f"{where}: no offline schema for this provider")
            else:
                self.check_body(body, schema, where, top_level=False)
        called: dict[str, Module] = {}
        for path, labels, body in module.blocks("module"):
            where = f"{path.relative_to(root)}:{module.line_of(path, 'module', labels)}: module {labels[0]}"
            source = unquote(str(body.get("source", "")))
            if not source.startswith(("./", "../")):
                self.errors.append(f"{where}: only local module sources are checked offline, got {source!r}")
                continue
            target = (module.directory / source).resolve()
            if target in seen:
                continue
            child = Module.load(target)
            called[labels[0]] = child
            declared = {name: vbody for _, (name, *_), vbody in child.blocks("variable")}
            for key in body:
                if key not in _MARKERS and key not in _MODULE_META and key not in declared:
                    self.errors.append(f"{where}: module has no input variable {key!r}")
            for name, vbody in declared.items():
                if "default" not in vbody and name not in body:
                    self.errors.append(f"{where}: missing required input {name!r}")
            self.check_module(child, seen | {module.directory.resolve()})
        self.check_references(module, called)

    def check_references(self, module: Module, called: Mapping[str, Module]) -> None:
        variables = module.names("variable")
        locals_ = module.local_names()
        declared = {"resource": module.resource_names("resource"), "data": module.resource_names("data")}
        for path, text in module.texts.items():
            code = "\n".join(strip_comment(line) for line in text.splitlines())
            for number, line in enumerate(code.splitlines(), start=1):
                where = f"{path.relative_to(module.directory)}:{number}"
                for ref in _SIMPLE_REF.finditer(line):
                    kind, name, attr = ref["kind"], ref["name"], ref["attr"]
                    if kind == "var" and name not in variables:
                        self.errors.append(f"{where}: reference to undeclared variable var.{name}")
                    elif kind == "local" and name not in locals_:
                        self.errors.append(f"{where}: reference to undeclared local value local.{name}")
                    elif kind == "module":
                        if name not in called:
                            self.errors.append(f"{where}: reference to undeclared module module.{name}")
                        elif attr and attr not in called[name].names("output"):
                            self.errors.append(f"{where}: module.{name} has no output {attr!r}")
                for ref in _RESOURCE_REF.finditer(line):
                    kind = "data" if ref["data"] else "resource"
                    key = (ref["type"], ref["name"])
                    if key not in declared[kind]:
                        if _looks_like_prose(line, ref.start()):
                            continue
                        self.errors.append(
                            f"{where}: reference to undeclared {kind} {'data.' if ref['data'] else ''}{key[0]}.{key[1]}"
                        )
                        continue
                    schema = self.schema_for(kind, ref["type"])
                    if isinstance(schema, Block) and ref["attr"] and ref["attr"] not in schema.readable:
                        self.errors.append(f"{where}: {ref['type']} has no attribute {ref['attr']!r}")


def strip_comment(line: str) -> str:
    """Drop a trailing ``#``/``//`` comment (outside string literals)."""
    in_string = False
    escaped = False
    for index, char in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char == '"':
            in_string = True
        elif char == "#" or line.startswith("//", index):
            return line[:index]
    return line


def _looks_like_prose(line: str, at: int) -> bool:
    """A resource-like word inside a string literal or heredoc text, not an expression."""
    before = line[:at]
    return "${" not in before and before.count('"') % 2 == 1


def check_configuration(directory: Path, providers: Mapping[str, ProviderSchema]) -> list[str]:
    checker = Checker(providers)
    checker.check_module(Module.load(directory))
    return checker.errors
