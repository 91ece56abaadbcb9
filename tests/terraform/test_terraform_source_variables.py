"""var.sources refuses at plan what the app would refuse after the apply, and accepts every source the code has.

- Schedules: `generator_schedule` and `compaction_schedule` are NCRONTAB, and the Functions host checks each value's
  range when it loads the app: one it refuses (day of week 7, a step of 0, second 99) stops every function of the app
  from loading after an apply that succeeded. Terraform takes the ranges of the code's NCRONTAB parser
  (shared/ncrontab.py: what the settings and the local host enforce); each case
  here is checked against it too, so both sides keep accepting and refusing the same values.
- Keys: a Datagen config's name (sources/*.json, shared/datagen/config.py SOURCE_NAME) may hold `_`, and such a
  source can be tuned through var.sources like any other; its settings, credential and secret names stay valid.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shared.datagen.config import SOURCE_NAME, read_config
from shared.ncrontab import Schedule, ScheduleError
from shared.settings import app_setting_names
from tests.terraform.conftest import TerraformFailed, harness_dir, terraform_output

RANGES = (
    "only second 0-59, minute 0-59, hour 0-23, day of month 1-31, month 1-12 or Jan-Dec, day of week 0-6 or Sun-Sat"
)
KEY_RULE = "names must be 1-40 lowercase letters, digits or '_', starting with a letter"

# Azure's naming rules for what a source name ends up in (azurerm's validation of each name, Key Vault's secret names).
EVENT_HUB_NAME = re.compile(r"[a-zA-Z0-9](?:[-._a-zA-Z0-9]{0,254}[a-zA-Z0-9])?")
AUTHORIZATION_RULE_NAME = re.compile(r"[a-zA-Z0-9](?:[-._a-zA-Z0-9]{0,58}[a-zA-Z0-9])?")
KEY_VAULT_SECRET_NAME = re.compile(r"[0-9a-zA-Z-]{1,127}")


def _sources(**entries: str) -> str:
    """var.sources: the hand-written sources with empty entries, plus ``entries``."""
    merged = {name: "{}" for name in ("clickstream", "mobile", "sensors", "users")} | entries
    return "{ " + ", ".join(f"{name} = {value}" for name, value in merged.items()) + " }"


def _refused_message(tmp_path: Path, sources: str) -> str:
    with pytest.raises(TerraformFailed) as failure:
        terraform_output(harness_dir(tmp_path), vars={"sources": sources})
    return " ".join(str(failure.value).split())


def _the_code_refuses(schedule: str) -> bool:
    try:
        Schedule.parse(schedule)
    except ScheduleError:
        return True
    return False


@pytest.mark.parametrize(
    ("setting", "schedule"),
    [
        ("generator_schedule", "0 0 0 * * 7"),  # day of week 7: the host takes 0-6 (Sunday is 0)
        ("generator_schedule", "99 * * * * *"),  # second 99
        ("generator_schedule", "0 60 * * * *"),
        ("generator_schedule", "0 0 24 * * *"),
        ("generator_schedule", "0 0 0 0 * *"),  # days of the month start at 1
        ("generator_schedule", "0 0 0 32 * *"),
        ("generator_schedule", "0 0 0 * 0 *"),  # so do months
        ("generator_schedule", "0 0 0 * 13 *"),
        ("generator_schedule", "0 0 0 * * Sun-7"),
        ("generator_schedule", "0 0,99 * * * *"),  # one item of a list
        ("generator_schedule", "0 0 0 * Mon *"),  # a day's name in the month field
        ("generator_schedule", "0 0 0 * * Jan"),  # a month's name in the day-of-week field
        ("generator_schedule", "Jan * * * * *"),  # names only in those two fields
        ("generator_schedule", "0 0 0 * Foo *"),  # not a month
        ("generator_schedule", "*-5 * * * * *"),  # * is no end of a range
        ("compaction_schedule", "0 */15 * * * 7"),
        ("compaction_schedule", "0 75 * * * *"),
    ],
)
def test_a_schedule_value_out_of_range_is_refused(tmp_path: Path, setting: str, schedule: str) -> None:
    assert _the_code_refuses(schedule), f"the code's NCRONTAB parser accepts {schedule!r}: the two sides disagree"
    message = _refused_message(tmp_path, _sources(clickstream=f'{{ {setting} = "{schedule}" }}'))
    assert "generator_schedule and compaction_schedule take in their six fields (seconds first)" in message
    assert RANGES in message
    assert "a range given high to low is the same range and a step of 0 is 1" in message


def _never_fires(schedule: str) -> bool:
    try:
        Schedule.parse(schedule).next_after(datetime.now(UTC))
    except ScheduleError:
        return True
    return False


@pytest.mark.parametrize(
    ("schedule", "fires"),
    [
        ("0 0 0 30 2 *", False),  # the 30th of February
        ("0 0 0 31 Apr,Jun,Sep,Nov *", False),
        ("0 0 0 30-31 feb *", False),
        ("0 0 0 31 4-6/2 *", False),  # April and June
        ("0 0 0 31 */11 *", True),  # January and December
        ("0 0 0 31 Feb/5 *", True),  # February and July
        ("0 0 0 29 2 *", True),  # leap years
        ("0 0 0 31 2,3 *", True),
        ("0 0 0 31 Nov-Dec *", True),
        ("0 0 0 31 12-1 *", True),  # a range given high to low is the same range
        ("0 0 0 20/11 2 *", True),  # the 20th
    ],
)
def test_a_schedule_that_never_fires_is_refused(tmp_path: Path, schedule: str, fires: bool) -> None:
    """The Functions host takes it and its timer never runs (a generator: no events); the app's settings refuse it,
    so Terraform does, at plan. (A compaction_schedule must also run every half hour: refused before this matters.)"""
    assert _never_fires(schedule) is not fires, f"the code's NCRONTAB parser disagrees on {schedule!r}"
    entry = f'{{ generator_schedule = "{schedule}" }}'
    if fires:
        settings = terraform_output(harness_dir(tmp_path), vars={"sources": _sources(clickstream=entry)})[
            "app_settings"
        ]
        assert settings["CLICKSTREAM_GENERATOR_SCHEDULE"] == schedule
    else:
        assert "must fire: a day of the month none of its months has" in _refused_message(
            tmp_path, _sources(clickstream=entry)
        )


def test_a_datagen_sources_schedule_is_checked_too(tmp_path: Path) -> None:
    message = _refused_message(tmp_path, _sources(orders='{ generator_schedule = "*/10 * * * * 7" }'))
    assert RANGES in message


@pytest.mark.parametrize(
    "schedule",
    [
        "0 * * * * *",  # the defaults
        "*/10 * * * * *",
        "0 */15 * * * *",
        "0 0 9-17 * * Mon-Fri",
        "0 30 9 * Jan,Jul *",
        "0 0,30 9-17 * * Mon-Fri",
        "59 59 23 31 12 6",  # each field's highest value
        "0 0 0 1 1 0",  # and lowest
        "00 05 09 01 01 00",
        "0 0 0 * jan-DEC sun-SAT",  # names in any case
        "0 0 12 * JUN Sun,sat",
        "5/15 0-59/1 0,12 1-31/2 */3 0-6/2",  # steps: a/n runs from a to the field's end
        "0 0 0 * * 0-0",
        " 0  */20 * * * * ",
        "*/0 * * * * *",  # NCrontab takes a step of 0 as 1
        "0 0 0 1-31/0 * *",
        "0 0 22-2 * * 6-5",  # and a range high to low as low to high
        "0 0 0 * Dec-Jan *",
    ],
)
def test_a_schedule_in_range_plans(tmp_path: Path, schedule: str) -> None:
    """As a generator_schedule; the same range check takes compaction_schedule, which must also run every half hour
    (tests/terraform/test_terraform_compaction.py)."""
    assert not _the_code_refuses(schedule), f"the code's NCRONTAB parser refuses {schedule!r}: the two sides disagree"
    entry = f'{{ generator_schedule = "{schedule}" }}'
    settings = terraform_output(harness_dir(tmp_path), vars={"sources": _sources(clickstream=entry)})["app_settings"]
    assert settings["CLICKSTREAM_GENERATOR_SCHEDULE"] == schedule


def test_a_sources_map_without_schedules_plans(tmp_path: Path) -> None:
    """Schedules left out (null) take the defaults; nothing of the range check applies to them."""
    settings = terraform_output(harness_dir(tmp_path), vars={"sources": _sources()})["app_settings"]
    assert settings["CLICKSTREAM_GENERATOR_SCHEDULE"] == "0 * * * * *"


def _add_datagen_config(tmp_path: Path, name: str, topic: str) -> None:
    """A copy of sources/orders.json as sources/<name>.json (the harness reads tmp_path/sources)."""
    document = json.loads((tmp_path / "sources" / "orders.json").read_text())
    document["name"] = f"datagen-{name}"
    document["config"]["kafka.topic"] = topic
    path = tmp_path / "sources" / f"{name}.json"
    path.write_text(json.dumps(document))
    assert read_config(path).source == name  # a config the code accepts


def test_a_datagen_config_whose_name_has_an_underscore_can_be_tuned(tmp_path: Path) -> None:
    """docs/deploy.md: a key may be any Datagen config's name; sources/big_orders.json is one (docs/datagen.md)."""
    directory = harness_dir(tmp_path)
    _add_datagen_config(tmp_path, "big_orders", "big_orders")
    entry = '{ partition_count = 4, generator_schedule = "*/30 * * * * *" }'
    values = terraform_output(directory, vars={"sources": _sources(big_orders=entry)})

    source = values["sources"]["big_orders"]
    assert (source["partition_count"], source["generator_schedule"], source["topic"]) == (
        4,
        "*/30 * * * * *",
        "big_orders",
    )
    assert EVENT_HUB_NAME.fullmatch(source["topic"])
    # the code's setting names for the source are the ones Terraform writes (upper-cased, `_` kept)
    settings = values["app_settings"]
    ours = {name for name in settings if name.startswith("BIG_ORDERS_")}
    assert ours == set(app_setting_names(["big_orders"])) - set(app_setting_names([]))
    assert settings["BIG_ORDERS_GENERATOR_SCHEDULE"] == "*/30 * * * * *"
    # its listen-only rule (main.eventhubs.tf) and Key Vault secret (main.keyvault.tf: `_` becomes `-`)
    credential = values["kafka_credentials"]["BIG_ORDERS_KAFKA_SASL_PASSWORD"]
    assert credential["source"] == "big_orders"
    assert AUTHORIZATION_RULE_NAME.fullmatch(credential["rule_name"])
    secret = re.search(r"/secrets/([^/]+)/[0-9a-f]{32}\)$", settings["BIG_ORDERS_KAFKA_SASL_PASSWORD"])
    assert secret is not None and secret.group(1) == "eventhubs-big-orders-kafka-sasl-password"
    assert KEY_VAULT_SECRET_NAME.fullmatch(secret.group(1))


@pytest.mark.parametrize("name", ["big-orders", "Big_orders", "_orders", "1orders", "orders.big", "a" * 41])
def test_a_sources_key_the_code_would_not_take_as_a_source_name_is_refused(tmp_path: Path, name: str) -> None:
    assert not SOURCE_NAME.match(name)
    message = _refused_message(tmp_path, _sources(**{json.dumps(name): "{}"}))
    assert KEY_RULE in message


def test_the_longest_source_name_the_code_takes_can_be_tuned(tmp_path: Path) -> None:
    """40 characters with `_` (SOURCE_NAME's longest); its rule name, `<source>-processor-listen`, still fits."""
    name = "a" + "_b" * 19 + "c"
    assert len(name) == 40 and SOURCE_NAME.match(name)
    directory = harness_dir(tmp_path)
    _add_datagen_config(tmp_path, name, name)
    values = terraform_output(directory, vars={"sources": _sources(**{name: "{ lag_threshold = 50 }"})})
    assert values["sources"][name]["lag_threshold"] == 50
    assert values["app_settings"][f"{name.upper()}_LAG_THRESHOLD"] == "50"
    assert AUTHORIZATION_RULE_NAME.fullmatch(
        values["kafka_credentials"][f"{name.upper()}_KAFKA_SASL_PASSWORD"]["rule_name"]
    )
