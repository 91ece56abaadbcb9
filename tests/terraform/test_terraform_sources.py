"""Every source the code registers is deployed: the example tfvars keep them all, a `sources` map that drops one
is refused, and no more sources (one event hub each) than the namespace holds are planned."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.settings import app_setting_names
from shared.sources import CONFIG_SOURCES, SOURCES
from tests.terraform.conftest import TERRAFORM_DIR, TerraformFailed, harness_dir, terraform_output

REGISTERED_LIST = re.compile(r"setsubtract\(\[([^\]]*)\], keys\(var\.sources\)\)")
KNOWN_LIST = re.compile(r"contains\(\[([^\]]*)\], name\) \|\| contains\(keys\(local\.datagen_configs\), name\)")
HAND_WRITTEN = sorted(set(SOURCES) - {source.name for source in CONFIG_SOURCES})


def test_the_variables_list_of_registered_sources_is_the_codes() -> None:
    """The validation that keeps every registered source names exactly the code's own (not Datagen configs)."""
    [listed] = REGISTERED_LIST.findall((TERRAFORM_DIR / "variables.tf").read_text())
    assert sorted(json.loads(f"[{listed}]")) == HAND_WRITTEN


def test_the_variables_list_of_known_sources_is_the_codes() -> None:
    """The validation that refuses an unknown key takes the hand-written sources from a list of its own."""
    [listed] = KNOWN_LIST.findall((TERRAFORM_DIR / "variables.tf").read_text())
    assert sorted(json.loads(f"[{listed}]")) == HAND_WRITTEN


def test_a_sources_key_the_code_does_not_have_is_refused(tmp_path: Path) -> None:
    """A typo would otherwise get a hub, a listen rule, a secret, its role and <SOURCE>_* settings nothing reads."""
    typo = "{ clickstream = {}, mobile = {}, sensors = {}, users = {}, clikstream = {} }"
    with pytest.raises(TerraformFailed) as failure:
        terraform_output(harness_dir(tmp_path), vars={"sources": typo})
    message = " ".join(str(failure.value).split())
    assert "names a source the code does not have: clikstream." in message


def _entries(**extra: str) -> str:
    """The sources map with empty entries for the hand-written sources (users at 5 a tick) plus ``extra``."""
    entries = {name: "{}" for name in HAND_WRITTEN} | {"users": "{ generator_events_per_tick = 5 }"} | extra
    return "{ " + ", ".join(f"{name} = {value}" for name, value in entries.items()) + " }"


def test_the_default_map_is_what_entries_left_empty_deploy(tmp_path: Path, evaluated: dict[str, Any]) -> None:
    """variables.tf spells the defaults out in its default map; locals.tf gives the same to fields left out."""
    values = terraform_output(harness_dir(tmp_path), vars={"sources": _entries()})
    assert values["sources"] == evaluated["sources"]
    assert values["app_settings"] == evaluated["app_settings"]


def test_a_datagen_configs_entry_changes_only_the_fields_it_sets(tmp_path: Path, evaluated: dict[str, Any]) -> None:
    """`orders = { partition_count = 4 }` keeps the config's rate, iterations, schedule and state off: the fields
    left out are not var.sources' defaults for hand-written sources (100 a tick every minute, unbounded, state)."""
    assert "orders" in {source.name for source in CONFIG_SOURCES}
    from_config = evaluated["sources"]["orders"]
    values = terraform_output(harness_dir(tmp_path), vars={"sources": _entries(orders="{ partition_count = 4 }")})
    assert values["sources"]["orders"] == from_config | {"partition_count": 4}
    orders = {name: value for name, value in values["app_settings"].items() if name.startswith("ORDERS_")}
    assert orders == {name: value for name, value in evaluated["app_settings"].items() if name.startswith("ORDERS_")}


def test_a_datagen_field_set_to_the_hand_written_default_is_still_set(
    tmp_path: Path, evaluated: dict[str, Any]
) -> None:
    """A field written in the entry wins even when it equals what a hand-written source would get."""
    assert evaluated["sources"]["orders"]["generator_events_per_tick"] != 100
    entry = '{ generator_events_per_tick = 100, state_enabled = true, generator_schedule = "0 * * * * *" }'
    values = terraform_output(harness_dir(tmp_path), vars={"sources": _entries(orders=entry)})
    orders = values["sources"]["orders"]
    assert (orders["generator_events_per_tick"], orders["state_enabled"], orders["generator_schedule"]) == (
        100,
        True,
        "0 * * * * *",
    )
    assert orders["generator_iterations"] == evaluated["sources"]["orders"]["generator_iterations"]
    assert orders["topic"] == evaluated["sources"]["orders"]["topic"]


@pytest.mark.parametrize("example", ["terraform.tfvars.example", "production.tfvars.example"])
def test_the_example_tfvars_deploy_every_source_the_code_registers(tmp_path: Path, example: str) -> None:
    """`cp terraform.tfvars.example terraform.tfvars` (docs/deploy.md) gives every function of the app its hub and
    settings: a source left out would still have its functions deployed, with bindings naming unset settings."""
    values = terraform_output(harness_dir(tmp_path), var_files=[str(TERRAFORM_DIR / example)])
    assert sorted(set(SOURCES) - set(values["sources"])) == []
    assert sorted(set(app_setting_names(list(SOURCES))) - set(values["app_settings"])) == []


def test_a_sources_map_that_drops_a_registered_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TerraformFailed, match=r"must\s+keep\s+every\s+source"):
        terraform_output(harness_dir(tmp_path), vars={"sources": "{ clickstream = {}, mobile = {}, sensors = {} }"})


def _add_datagen_configs(tmp_path: Path, count: int) -> None:
    for index in range(count):
        config = {"name": f"datagen-extra{index}", "config": {"kafka.topic": f"extra{index}", "quickstart": "orders"}}
        (tmp_path / "sources" / f"extra{index}.json").write_text(json.dumps(config))


def test_more_sources_than_a_standard_namespace_holds_are_refused(tmp_path: Path) -> None:
    """One event hub per source, 10 per Standard namespace (100 per processing unit on Premium): an eleventh
    source is refused at plan, not by Azure half-way through an apply."""
    directory = harness_dir(tmp_path)
    hubs = len(SOURCES)
    _add_datagen_configs(tmp_path, 10 - hubs)
    assert len(terraform_output(directory)["sources"]) == 10
    _add_datagen_configs(tmp_path, 11 - hubs)
    with pytest.raises(TerraformFailed, match=r"than the\s+namespace\s+holds"):
        terraform_output(directory)
    premium = {"eventhubs_sku": "Premium", "eventhubs_capacity": "1"}
    assert len(terraform_output(directory, vars=premium)["sources"]) == 11


def test_more_partitions_than_a_premium_namespace_holds_are_refused_at_plan(tmp_path: Path) -> None:
    """Premium takes 32 partitions a hub but 200 per processing unit over the namespace: seven sources of 32 each
    (224) planned, and Azure refused the hubs part-way through the apply (a review)."""
    directory = harness_dir(tmp_path)
    _add_datagen_configs(tmp_path, 7 - len(SOURCES))
    premium = {"eventhubs_sku": "Premium", "eventhubs_capacity": "1", "eventhub_partition_count": "32"}
    with pytest.raises(TerraformFailed, match=r"200 per\s+processing\s+unit"):
        terraform_output(directory, vars=premium)
    assert len(terraform_output(directory, vars=premium | {"eventhubs_capacity": "2"})["sources"]) == 7
    assert len(terraform_output(directory, vars=premium | {"eventhub_partition_count": "28"})["sources"]) == 7


def test_the_host_queue_role_is_granted_only_with_the_azure_storage_backend() -> None:
    """Only Durable Functions' Azure Storage backend keeps work items in the host account's queues; the app has no
    queue trigger, so with the Durable Task Scheduler the role would be unused (least privilege)."""
    text = (TERRAFORM_DIR / "main.roles.tf").read_text()
    conditional = re.search(r'var\.durable_backend == "azure_storage" \? \{(.*?)\} : \{\}', text, re.DOTALL)
    assert conditional is not None and "host_queue_data" in conditional.group(1)
    assert text.count("Storage Queue Data Contributor") == 1


@pytest.mark.parametrize(
    ("file_name", "topic", "why"),
    [
        ("Bad-Name.json", "bad", "each Datagen config's file name must be"),
        ("users.json", "users2", "none of clickstream, mobile, sensors or users"),
        ("payments.json", "pay ments", "its config's kafka.topic a topic (event hub) name"),
        ("payments.json", "orders", "Two sources share a topic"),
        ("payments.json", "clickstream", "Two sources share a topic"),
    ],
    ids=["file name", "a hand-written name", "topic", "another config's topic", "a hand-written topic"],
)
def test_a_datagen_config_the_app_refuses_is_refused_at_plan(
    tmp_path: Path, file_name: str, topic: str, why: str
) -> None:
    """Planned, such a config made an app whose functions never loaded (the app refuses it at load), or two hubs of
    one name (an apply failing half way): a security review's finding."""
    harness = harness_dir(tmp_path)
    config = {"name": file_name.removesuffix(".json"), "config": {"kafka.topic": topic, "quickstart": "orders"}}
    (tmp_path / "sources" / file_name).write_text(json.dumps(config))
    with pytest.raises(TerraformFailed) as failure:
        terraform_output(harness)
    assert why in " ".join(str(failure.value).split())
