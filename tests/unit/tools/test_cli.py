"""``tools.cli``: what the operator tools share (settings, ``--broker``/``--lake``, the loopback rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import redrive as redrive_cli
from tools.migrate_state import DurableHttp


@pytest.mark.parametrize(
    "url",
    [
        "http://func-spoc-x1y2.azurewebsites.net",
        "http://localhost.attacker.example",
        "http://127.0.0.1.nip.io:7071",
        "ftp://127.0.0.1",
        "https://",
    ],
)
def test_the_tools_that_send_the_system_key_refuse_a_url_that_is_not_https_or_loopback(url: str) -> None:
    with pytest.raises(SystemExit, match="must be https://"):
        redrive_cli.DurableHttpSignaller(url, "the-system-key")
    with pytest.raises(SystemExit, match="must be https://"):
        DurableHttp(f"{url}/runtime/webhooks/durabletask", "the-system-key")


@pytest.mark.parametrize(
    "url",
    ["https://func-spoc-x1y2.azurewebsites.net", "http://127.0.0.1:7071", "http://localhost", "http://[::1]:7071"],
)
def test_https_and_the_local_host_are_taken(url: str) -> None:
    assert redrive_cli.DurableHttpSignaller(url).base_url == url
    assert DurableHttp(f"{url}/runtime/webhooks/durabletask", None).base_url.startswith(url)


def test_the_tools_take_a_broker_and_a_local_lake_over_their_settings(tmp_path: Path) -> None:
    from tools.cli import broker_address, tool_environment

    settings = tmp_path / "local.settings.json"
    settings.write_text('{"Values": {"LAKE_KIND": "blob", "KAFKA_BROKER_LIST": "127.0.0.1:9092"}}')
    env = tool_environment(settings, broker="127.0.0.1:57723", lake=tmp_path / "lake")
    assert (env["KAFKA_BROKER_LIST"], env["LAKE_KIND"], env["LAKE_LOCAL_ROOT"]) == (
        "127.0.0.1:57723",
        "local",
        str(tmp_path / "lake"),
    )
    with pytest.raises(ValueError, match="HOST:PORT"):
        broker_address("57723")
