"""Durable Functions on Flex Consumption: the optional always-ready instance of the `durable` group.

Microsoft advises one always-ready instance for the `durable` scale group; it is billed around the
clock, so it is a variable, off by default (docs/deploy.md gives the cost). The block itself is
checked against the azurerm schema by test_terraform_schema.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.terraform.conftest import TERRAFORM_DIR, TerraformFailed, harness_dir, terraform_output
from tests.terraform.test_terraform_deploy_defaults import _variables


def test_the_durable_group_gets_always_ready_instances_only_when_asked() -> None:
    assert _variables()["durable_always_ready_instances"] == 0
    block = re.search(
        r'dynamic "always_ready" \{\s*for_each = var\.durable_always_ready_instances > 0 \? '
        r"\[var\.durable_always_ready_instances\] : \[\]\s*"
        r'content \{\s*name\s*= "durable"\s*instance_count = always_ready\.value\s*\}',
        (TERRAFORM_DIR / "main.functionapp.tf").read_text(),
    )
    assert block, "main.functionapp.tf no longer maps durable_always_ready_instances to the durable group"


def test_one_instance_is_accepted(tmp_path: Path) -> None:
    terraform_output(harness_dir(tmp_path), vars={"durable_always_ready_instances": "1"})


@pytest.mark.parametrize(("value", "message"), [("1.5", "whole number"), ("41", "function_maximum_instance_count")])
def test_impossible_counts_are_refused(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(TerraformFailed) as failure:
        terraform_output(harness_dir(tmp_path), vars={"durable_always_ready_instances": value})
    assert message in str(failure.value)
