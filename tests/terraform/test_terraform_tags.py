"""var.tags refuses at plan what Azure would refuse at apply (after some resources exist), and what would be dropped.

Azure's tag rules: at most 50 tags a resource, names without ``< > % & \\ ? /`` of at most 512 characters (128 on a
storage account), values of at most 256. Every resource also gets ``project`` and ``managed-by`` (locals.tf),
which a tag given here could not replace: it was silently dropped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.terraform.conftest import TerraformFailed, harness_dir, terraform_output


def _tags(tmp_path: Path, tags: str) -> dict[str, str]:
    directory = harness_dir(tmp_path)
    (directory / "tags_output.tf").write_text('output "tags" {\n  value = local.tags\n}\n')
    tagged: dict[str, str] = terraform_output(directory, vars={"tags": tags})["tags"]
    return tagged


def test_tags_are_added_to_the_projects_own(tmp_path: Path) -> None:
    tags = _tags(tmp_path, '{ "cost-center" = "4711", "owner" = "data platform" }')
    assert tags == {
        "cost-center": "4711",
        "owner": "data platform",
        "project": "streamingpoc",
        "managed-by": "terraform",
    }


@pytest.mark.parametrize(
    ("tags", "complaint"),
    [
        ('{ "team/unit" = "a" }', "names must be 1-128 characters"),
        ('{ "50%" = "a" }', "names must be 1-128 characters"),
        ('{ "a\\\\b" = "a" }', "names must be 1-128 characters"),
        ('{ "' + "n" * 129 + '" = "a" }', "names must be 1-128 characters"),
        ('{ "" = "a" }', "names must be 1-128 characters"),
        ('{ owner = "' + "v" * 257 + '" }', "values at most 256 characters"),
        ('{ Project = "mine" }', "cannot set project or managed-by"),
        ('{ managed-by = "hand" }', "cannot set project or managed-by"),
        ("{ " + ", ".join(f't{i} = "x"' for i in range(49)) + " }", "at most 48 entries"),
    ],
)
def test_tags_azure_would_refuse_or_drop_are_refused_at_plan(tmp_path: Path, tags: str, complaint: str) -> None:
    with pytest.raises(TerraformFailed) as failure:
        _tags(tmp_path, tags)
    assert complaint in " ".join(str(failure.value).split())
