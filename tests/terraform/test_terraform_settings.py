"""(d) The function app's settings, as Terraform produces them, against the code's settings model.

modules/app_settings builds every app setting in one map; the harness of conftest.py evaluates
it offline with the root's variables.tf and locals.tf. The code side is
shared.settings.app_setting_names (every setting the code reads) plus PLATFORM_SETTINGS (host
settings Terraform may set), and the %SETTING% names in the binding JSON the worker indexes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest

from devhost.runtime.catalog import IndexedFunction, enabled
from shared.layout import DEADLETTER_AREA, RAW_AREA
from shared.settings import (
    PLATFORM_SETTINGS,
    app_setting_names,
    load_settings,
    load_source_settings,
    source_defaults,
)
from shared.sources import CONFIG_SOURCES, SOURCES
from shared.telemetry import TRACE_SAMPLER_SETTINGS
from tests.conftest import ROOT
from tests.terraform.conftest import HARNESS, TERRAFORM_DIR, TerraformFailed, harness_dir, terraform_output
from tools.cost import deployed

SETTING_REF = re.compile(r"%([A-Za-z0-9_]+)%")
_SOURCE_PREFIXES = tuple(f"{source.upper()}_" for source in SOURCES)


def host_settings(sources: list[str]) -> set[str]:
    """Settings the Functions host reads: PLATFORM_SETTINGS, and ``AzureWebJobs.<function>.Disabled`` of the
    generator timers (a generator that is off is a disabled function, so its ticks are not billed) and of the
    Kafka triggers (``processing_enabled``: processing stopped for a migration survives the next apply), and the
    Azure Monitor distro's trace sampler (``TRACE_SAMPLER_SETTINGS``, from ``trace_sampling_ratio``)."""
    switched = {f"AzureWebJobs.{kind}_{source}.Disabled" for kind in ("generate", "process") for source in sources}
    return set(PLATFORM_SETTINGS) | switched | set(TRACE_SAMPLER_SETTINGS)


def test_settings_match_the_code_in_both_directions(evaluated: dict[str, Any]) -> None:
    terraform = set(evaluated["app_settings"])
    code = set(app_setting_names(list(SOURCES)))
    assert sorted(code - terraform) == [], "settings the code reads but Terraform does not set"
    assert sorted(terraform - code - host_settings(list(SOURCES))) == [], "settings Terraform sets that none reads"


def test_a_generator_that_is_off_is_a_disabled_function(
    tmp_path: Path, bindings: dict[str, list[dict[str, Any]]]
) -> None:
    evaluated = terraform_output(
        harness_dir(tmp_path),
        vars={"sources": "{ clickstream = { generator_enabled = false }, mobile = {}, sensors = {}, users = {} }"},
    )
    values = evaluated["app_settings"]
    assert values["AzureWebJobs.generate_clickstream.Disabled"] == "true"
    assert values["CLICKSTREAM_GENERATOR_ENABLED"] == "false"
    assert values["AzureWebJobs.generate_mobile.Disabled"] == "false"
    assert values["AzureWebJobs.process_clickstream.Disabled"] == "false", "its processing goes on"
    disabled = {name.split(".")[1] for name in values if name.startswith("AzureWebJobs.")}
    names = evaluated["sources"]  # the Datagen configs' too
    assert disabled == {f"{kind}_{name}" for kind in ("generate", "process") for name in names}
    assert disabled <= set(bindings), "a Disabled setting names no function of the app"


def _switched_on(values: dict[str, str], bindings: dict[str, list[dict[str, Any]]]) -> set[str]:
    """The functions the local host runs with these settings (devhost.runtime.catalog.enabled: as the Functions
    host reads ``AzureWebJobs.<name>.Disabled``)."""
    functions = [IndexedFunction(name, (), lambda: None, None) for name in bindings]
    return {function.name for function in enabled(functions, values)}


def test_processing_is_on_by_default(evaluated: dict[str, Any], bindings: dict[str, list[dict[str, Any]]]) -> None:
    values = evaluated["app_settings"]
    assert {values[f"AzureWebJobs.process_{name}.Disabled"] for name in evaluated["sources"]} == {"false"}
    assert _switched_on(values, bindings) == set(bindings), "the default deploys every function switched on"


@pytest.mark.parametrize("source", ["clickstream", "orders"])  # a hand-written source, a Datagen config
def test_processing_that_is_off_is_a_disabled_function_terraform_keeps(
    tmp_path: Path, bindings: dict[str, list[dict[str, Any]]], source: str
) -> None:
    """docs/scale.md stops processing for a move of keyed state or an upgrade: set by hand (az functionapp config
    appsettings set), ``AzureWebJobs.process_<source>.Disabled`` was dropped by the next apply, whose azapi PUT
    writes the whole set, and the processors restarted mid-migration. ``processing_enabled = false`` puts it in
    that set; the generator and the other sources go on."""
    evaluated = terraform_output(
        harness_dir(tmp_path), vars={"sources": _with(source, "{ processing_enabled = false }")}
    )
    values = evaluated["app_settings"]
    assert values[f"AzureWebJobs.process_{source}.Disabled"] == "true"
    assert values[f"AzureWebJobs.generate_{source}.Disabled"] == "false"
    assert values[f"{source.upper()}_GENERATOR_ENABLED"] == "true"
    others = {name for name in evaluated["sources"] if name != source}
    assert {values[f"AzureWebJobs.process_{name}.Disabled"] for name in others} == {"false"}
    assert _switched_on(values, bindings) == set(bindings) - {f"process_{source}"}
    # The app's own checks take the set as it is: the host setting is none of theirs.
    load_settings(values)
    for name in evaluated["sources"]:
        load_source_settings(name, values)
    assert sorted(set(values) - set(app_setting_names(list(SOURCES))) - host_settings(list(SOURCES))) == []
    # and back: left out (or null) is on again
    (tmp_path / "back").mkdir()
    back = terraform_output(
        harness_dir(tmp_path / "back"), vars={"sources": _with(source, "{ processing_enabled = null }")}
    )
    assert back["app_settings"][f"AzureWebJobs.process_{source}.Disabled"] == "false"


def test_processing_enabled_takes_a_bool_only(tmp_path: Path) -> None:
    with pytest.raises(TerraformFailed, match=r"a\s+bool\s+is\s+required"):
        terraform_output(
            harness_dir(tmp_path), vars={"sources": _with("clickstream", '{ processing_enabled = "off" }')}
        )


@pytest.mark.parametrize("doc", ["datagen.md", "deploy.md", "scale.md"])
def test_the_docs_stop_processing_with_terraform(doc: str) -> None:
    """Each passage that stops a processor for a migration or an upgrade uses ``processing_enabled``: the CLI
    route (``az functionapp config appsettings set ... AzureWebJobs.process_<source>.Disabled=true``) is undone by
    the next apply, and is named only to say so."""
    text = (ROOT / "docs" / doc).read_text()
    assert "processing_enabled = false" in text
    for line in text.splitlines():
        if re.search(r"az functionapp config appsettings (set|delete)\b.*AzureWebJobs\.process_", line):
            assert line.startswith("Not "), f"{doc} still stops processing with the CLI: {line}"
    steps = re.findall(r"^\d+\. (?:Stop|Disable) the processing functions.*?(?=^\d+\. )", text, re.M | re.S)
    assert all("processing_enabled = false" in step for step in steps), doc


def _with(source: str, entry: str) -> str:
    """var.sources: the hand-written sources with empty entries, ``source``'s being ``entry``."""
    entries = {name: "{}" for name in ("clickstream", "mobile", "sensors", "users")} | {source: entry}
    return "{ " + ", ".join(f"{name} = {value}" for name, value in entries.items()) + " }"


def test_new_sources_take_small_buckets_on_azure_storage_and_their_own_on_dts(
    evaluated: dict[str, Any], tmp_path: Path
) -> None:
    values = evaluated["app_settings"]  # the default backend, Azure Storage
    assert values["STATE_BUCKETS"] == "" and values["NEW_SOURCE_STATE_BUCKETS"] == str(deployed().azure_storage_buckets)
    settings = load_settings(values)
    assert settings.state_buckets is None and settings.new_source_state_buckets == deployed().azure_storage_buckets
    (tmp_path / "dts").mkdir()
    dts = terraform_output(harness_dir(tmp_path / "dts"), vars={"durable_backend": "dts_dedicated"})["app_settings"]
    assert dts["STATE_BUCKETS"] == dts["NEW_SOURCE_STATE_BUCKETS"] == ""
    chosen = terraform_output(harness_dir(tmp_path), vars={"state_buckets": "512"})["app_settings"]
    assert chosen["STATE_BUCKETS"] == "512" and chosen["NEW_SOURCE_STATE_BUCKETS"] == ""
    assert load_settings(chosen).state_buckets == 512


def test_terraform_sources_are_the_codes_sources(evaluated: dict[str, Any]) -> None:
    assert sorted(evaluated["sources"]) == sorted(SOURCES)


def test_settings_are_valid_for_the_model_and_point_at_azure(evaluated: dict[str, Any]) -> None:
    values: dict[str, str] = evaluated["app_settings"]
    settings = load_settings(values)
    assert settings.kafka_security_protocol == "SASL_SSL"
    assert settings.kafka_broker_list.endswith(".servicebus.windows.net:9093")
    assert settings.kafka_sasl_username == "$ConnectionString"
    assert settings.lake_kind == "adls"
    assert re.fullmatch(r"https://[a-z0-9]+\.dfs\.core\.windows\.net", settings.lake_account_url)
    assert settings.lake_connection_string.get_secret_value() == "", "Azure uses the managed identity for the lake"
    assert settings.applicationinsights_connection_string.get_secret_value()
    assert settings.kafka_sasl_mechanism == "PLAIN"
    assert settings.applicationinsights_authentication_string == "Authorization=AAD"
    for name in SOURCES:
        source = load_source_settings(name, values)
        assert (source.topic, source.consumer_group) == (source_defaults(name)["topic"], f"{name}-processor")
        assert source.lag_threshold == evaluated["sources"][name]["lag_threshold"] == 1000
    # Host storage by identity only (test_terraform_host_storage.py: no plain AzureWebJobsStorage).
    assert "AzureWebJobsStorage" not in values
    assert values["AzureWebJobsStorage__credential"] == "managedidentity"
    assert values["AzureWebJobsStorage__accountName"]


def test_datagen_config_sources_get_their_hub_and_the_codes_defaults(evaluated: dict[str, Any]) -> None:
    """Terraform reads sources/*.json itself; its settings for them are what the code derives from each config."""
    assert "orders" in {source.name for source in CONFIG_SOURCES}
    for source in CONFIG_SOURCES:
        assert evaluated["sources"][source.name]["topic"] == source.setting_defaults["topic"]
        secrets = {"kafka_sasl_password"}  # Key Vault references in Azure
        in_azure = load_source_settings(source.name, evaluated["app_settings"]).model_dump(exclude=secrets)
        assert in_azure == load_source_settings(source.name, {}).model_dump(exclude=secrets)


def test_secrets_are_key_vault_references_never_values(evaluated: dict[str, Any]) -> None:
    values: dict[str, str] = evaluated["app_settings"]
    for name in evaluated["kafka_credentials"]:
        assert re.fullmatch(
            r"@Microsoft\.KeyVault\(SecretUri=https://[^/]+/secrets/[^/]+/[0-9a-f]{32}\)", values[name]
        ), name
    assert not [name for name, value in values.items() if "SharedAccessKey" in value or "AccountKey=" in value]
    module = (TERRAFORM_DIR / "modules" / "app_settings" / "main.tf").read_text()
    assert "primary_connection_string" not in module and "primary_key" not in module


def _indexed_bindings(app_settings: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Binding JSON of every function as the worker indexes it in Azure, with Terraform's app settings."""
    script = (
        "import json, function_app\n"
        "print(json.dumps({f.get_function_name(): json.loads(f.get_function_json())['bindings']"
        " for f in function_app.app.get_functions()}))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "LAKE_"))}
    env |= {name: value for name, value in app_settings.items() if name.startswith(_SOURCE_PREFIXES)}
    env["KAFKA_SECURITY_PROTOCOL"] = "SASL_SSL"
    env["KAFKA_SASL_USERNAME"] = app_settings["KAFKA_SASL_USERNAME"]
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def bindings(evaluated: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return _indexed_bindings(evaluated["app_settings"])


def _kafka_bindings(bindings: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [(name, b) for name, items in bindings.items() for b in items if b["type"] in ("kafkaTrigger", "kafka")]


def test_every_binding_setting_is_set_by_terraform(
    bindings: dict[str, list[dict[str, Any]]], evaluated: dict[str, Any]
) -> None:
    kafka = _kafka_bindings(bindings)
    assert {name for name, _ in kafka} == {f"process_{s}" for s in SOURCES}  # generators produce themselves
    referenced = {
        (function, match)
        for function, items in bindings.items()
        for binding in items
        for value in binding.values()
        if isinstance(value, str)
        for match in SETTING_REF.findall(value)
    }
    kafka_names = {
        match for _, b in kafka for v in b.values() if isinstance(v, str) for match in SETTING_REF.findall(v)
    }
    assert {"KAFKA_BROKER_LIST", "KAFKA_SASL_USERNAME"} <= kafka_names
    for source in SOURCES:
        upper = source.upper()
        assert f"{upper}_KAFKA_SASL_PASSWORD" in kafka_names
    # The generators' producer reads no password: it sends with the app's identity.
    assert evaluated["app_settings"]["KAFKA_PRODUCER_CREDENTIAL"] == "managedidentity"
    missing = sorted(f"{function}: %{name}%" for function, name in referenced if name not in evaluated["app_settings"])
    assert missing == []


def test_each_kafka_password_rule_has_the_rights_its_bindings_need(
    bindings: dict[str, list[dict[str, Any]]], evaluated: dict[str, Any]
) -> None:
    """A trigger needs Listen on its own source's hub only; nothing needs Manage or Send (the generators'
    producer, ``shared.kafka_clients``, sends with the app's identity, no SAS rule), and no credential serves
    two sources."""
    credentials: dict[str, dict[str, Any]] = evaluated["kafka_credentials"]
    needed: dict[str, set[str]] = {}
    for function, binding in _kafka_bindings(bindings):
        (setting,) = SETTING_REF.findall(binding["password"])
        assert setting in credentials, f"{function} reads {setting}, which local.kafka_credentials does not define"
        assert credentials[setting]["source"] == function.split("_", 1)[1], f"{function} reads another hub's rule"
        needed.setdefault(setting, set()).add("listen" if binding["direction"].lower() == "in" else "send")
    for setting, rights in needed.items():
        granted = {right for right in ("listen", "send") if credentials[setting][right]}
        assert granted == rights, f"{setting}: rule grants {sorted(granted)}, its bindings need {sorted(rights)}"
    assert set(credentials) == set(needed), "a Kafka credential no binding uses"
    resources = hcl2.loads((TERRAFORM_DIR / "main.eventhubs.tf").read_text())["resource"]
    rules = [
        body
        for resource in resources
        for kind, named in resource.items()
        if kind in ('"azurerm_eventhub_authorization_rule"', '"azurerm_eventhub_namespace_authorization_rule"')
        for body in named.values()
    ]
    assert len(rules) == 2 and all(rule["manage"] is False for rule in rules)
    assert evaluated["kafka_namespace_rules"] == {}, "hub-level rules by default"


def test_hub_rules_are_on_their_sources_hub() -> None:
    text = (TERRAFORM_DIR / "main.eventhubs.tf").read_text()
    assert re.search(
        r'resource "azurerm_eventhub_authorization_rule" "kafka" \{\s*for_each = var\.kafka_sas_scope == "event_hub" '
        r"\? local\.kafka_credentials : \{\}.*?eventhub_name\s*= azurerm_eventhub\.source\[each\.value\.source\]\.name",
        text,
        re.DOTALL,
    )


def test_namespace_scope_shares_one_rule_per_role(tmp_path: Path) -> None:
    values = terraform_output(harness_dir(tmp_path), vars={"kafka_sas_scope": "namespace"})
    rules = values["kafka_namespace_rules"]
    assert {name: (rule["listen"], rule["send"]) for name, rule in rules.items()} == {"listen": (True, False)}
    assert set(values["kafka_credentials"]) == set(evaluated_credentials_names())


def evaluated_credentials_names() -> list[str]:
    return [f"{s.upper()}_KAFKA_SASL_PASSWORD" for s in SOURCES]


def test_harness_calls_the_module_like_the_root_does() -> None:
    """Same inputs, and the same per-source fields, as main.functionapp.tf's module call."""

    def call(text: str) -> dict[str, Any]:
        (module,) = hcl2.loads(text)["module"]
        return dict(module['"app_settings"'])

    root, harness = call((TERRAFORM_DIR / "main.functionapp.tf").read_text()), call(HARNESS)
    assert set(root) == set(harness)
    fields = re.compile(r"(\w+)\s*=")
    assert set(fields.findall(str(root["sources"]))) == set(fields.findall(str(harness["sources"])))


def test_hubs_are_named_from_the_sources_and_no_event_hubs_consumer_groups_are_made() -> None:
    """The harness replaces the hubs by what they are named from; keep that true. Kafka consumer
    groups are not Event Hubs consumer groups, so Terraform creates none (the Kafka client does)."""
    text = (TERRAFORM_DIR / "main.eventhubs.tf").read_text()
    pattern = r'resource "azurerm_eventhub" "source" \{\s*for_each = local\.sources\s*name\s*= each\.value\.topic\n'
    assert re.search(pattern, text)
    everything = "\n".join(path.read_text() for path in TERRAFORM_DIR.rglob("*.tf"))
    assert 'resource "azurerm_eventhub_consumer_group"' not in everything


def test_lake_lifecycle_covers_the_codes_areas() -> None:
    text = (TERRAFORM_DIR / "main.lake.tf").read_text()
    found = re.search(r"toset\(\[(?P<areas>[^\]]*)\]\)", text)
    assert found and {a.strip().strip('"') for a in found["areas"].split(",")} == {RAW_AREA, DEADLETTER_AREA}


def test_outputs_carry_no_secrets() -> None:
    outputs = hcl2.loads((TERRAFORM_DIR / "outputs.tf").read_text())["output"]
    for output in outputs:
        for name, body in output.items():
            value = str(body["value"])
            assert not re.search(r"connection_string|primary_key|secondary_key|\.value\b|access_key", value), name


def test_example_tfvars_are_valid(tmp_path: Path) -> None:
    values = terraform_output(harness_dir(tmp_path), var_files=[str(TERRAFORM_DIR / "terraform.tfvars.example")])
    assert values["app_settings"]["SENSORS_FORMAT"] == "jsonl"
    assert values["sources"]["sensors"]["partition_count"] == 8


def _clickstream(value: str) -> str:
    """The sources map with ``value`` for clickstream and the defaults for the others."""
    return f"{{ clickstream = {value}, mobile = {{}}, sensors = {{}}, users = {{}} }}"


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"prefix": "Bad_Prefix"}, "prefix must be"),
        (
            {"sources": '{ clickstream = { format = "csv" }, mobile = {}, sensors = {}, users = {} }'},
            "format must be parquet, avro or jsonl",
        ),
        (
            {
                "sources": '{ clickstream = { generator_schedule = "*/10 * * * *" }, '
                "mobile = {}, sensors = {}, users = {} }"
            },
            "six fields",
        ),
        # what the app refuses when it indexes (shared/settings.py): no function would load after the apply
        (
            {"sources": _clickstream('{ generator_schedule = "0 */5 * * * ?" }')},
            "six fields",
        ),
        (
            {"sources": _clickstream('{ compaction_schedule = "0 0/15 * * * ?" }')},
            "six fields",
        ),
        (
            {"sources": _clickstream('{ generator_schedule = "every 10 seconds on the dot" }')},
            "six fields",
        ),
        (
            {"sources": _clickstream("{ generator_seed = 9223372036854775808 }")},
            "signed 64-bit integer",
        ),
        # a lag alert that would fire on every healthy run, or only after the raw files it is about are deleted
        ({"compaction_grace_minutes": "180"}, "more than compaction_grace_minutes + 60"),
        ({"raw_retention_days": "1", "compaction_lag_alert_minutes": "4320"}, "at most half of raw_retention_days"),
        ({"eventhubs_sku": "Basic"}, "Standard or Premium"),
        ({"zone_redundancy_enabled": "true", "storage_replication_type": "LRS"}, "zone-redundant storage"),
        ({"eventhub_partition_count": "4", "function_maximum_instance_count": "3"}, "below a hub's partition count"),
        (
            {
                "sources": "{ clickstream = { partition_count = 8 }, mobile = {}, sensors = {}, users = {} }",
                "function_maximum_instance_count": "6",
            },
            "partition count",
        ),
        (
            {"sources": "{ clickstream = { lag_threshold = 0 }, mobile = {}, sensors = {}, users = {} }"},
            "lag_threshold must be",
        ),
        (
            {"sources": _clickstream("{ lag_threshold = 9223372036854775808 }")},  # the extension reads a long
            "lag_threshold must be a whole number from 1 to 2^63-1",
        ),
        ({"kafka_sas_scope": "topic"}, "kafka_sas_scope must be"),
        ({"state_buckets": "0"}, "state_buckets must be null or a whole number"),
        ({"state_buckets": "1.5"}, "state_buckets must be null or a whole number"),
        # counts Azure takes as integers: a fraction would fail at apply, or be truncated
        ({"sources": _clickstream("{ partition_count = 2.5 }")}, "partition_count must be null or a whole number"),
        (
            {"eventhubs_maximum_throughput_units": "2.5"},
            "eventhubs_maximum_throughput_units must be 0 (off) or a whole number",
        ),
    ],
)
def test_variable_validation_rejects_bad_input(tmp_path: Path, variables: dict[str, str], message: str) -> None:
    with pytest.raises(TerraformFailed) as failure:
        terraform_output(harness_dir(tmp_path), vars=variables)
    assert message in " ".join(str(failure.value).split())


def test_schedules_terraform_accepts_the_app_accepts_too(tmp_path: Path) -> None:
    from shared.settings import load_source_settings

    schedules = '{ generator_schedule = "0 0,30 9-17 * * Mon-Fri", compaction_schedule = " 0  */20 * * * * " }'
    values = terraform_output(harness_dir(tmp_path), vars={"sources": _clickstream(schedules)})
    loaded = load_source_settings("clickstream", values["app_settings"])
    assert (loaded.generator_schedule, loaded.compaction_schedule.split()) == (
        "0 0,30 9-17 * * Mon-Fri",
        ["0", "*/20", "*", "*", "*", "*"],
    )


def test_traces_are_exported_only_when_trace_sampling_ratio_asks(evaluated: dict[str, Any], tmp_path: Path) -> None:
    """docs/deploy.md told operators to set OTEL_TRACES_SAMPLER by hand, which the next apply that changes a setting
    takes away again (the settings PUT writes the whole set): a variable sets it now."""
    assert not set(TRACE_SAMPLER_SETTINGS) & set(evaluated["app_settings"]), "no traces by default"
    sampled = terraform_output(harness_dir(tmp_path), vars={"trace_sampling_ratio": "0.01"})["app_settings"]
    assert sampled["OTEL_TRACES_SAMPLER"] == "microsoft.fixed_percentage"
    assert sampled["OTEL_TRACES_SAMPLER_ARG"] == "0.01"
    assert deployed().trace_sampling == 0.0, "the cost model's default is Terraform's"


def test_a_trace_sampling_ratio_outside_0_to_1_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TerraformFailed) as failure:
        terraform_output(harness_dir(tmp_path), vars={"trace_sampling_ratio": "1.5"})
    assert "trace_sampling_ratio must be from 0 (no traces) to 1" in " ".join(str(failure.value).split())
