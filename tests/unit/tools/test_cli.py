"""``tools.cli``: what the operator tools share (settings, ``--broker``/``--lake``, the loopback rule)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import redrive as redrive_cli
from tools.cli import RefusedArgument
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
    with pytest.raises(RefusedArgument, match="--functions-url must be https://"):
        redrive_cli.DurableHttpSignaller(url, "the-system-key")
    with pytest.raises(RefusedArgument, match="--durable-url must be https://"):
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


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"LAKE_KIND": "local", "LAKE_LOCAL_ROOT": "/data/lake"}, "LAKE_KIND=local at /data/lake"),
        (
            {"LAKE_KIND": "blob", "LAKE_CONNECTION_STRING": "UseDevelopmentStorage=true"},
            "LAKE_KIND=blob at http://127.0.0.1:10000/devstoreaccount1, container lake",
        ),
        (
            {
                "LAKE_KIND": "blob",
                "LAKE_CONNECTION_STRING": "DefaultEndpointsProtocol=https;AccountName=stlake;AccountKey=S3CRET==;"
                "EndpointSuffix=core.windows.net",
            },
            "LAKE_KIND=blob at https://stlake.blob.core.windows.net, container lake",
        ),
        (
            {
                "LAKE_KIND": "blob",
                "LAKE_CONNECTION_STRING": "BlobEndpoint=https://stlake.blob.core.windows.net/;SharedAccessSignature=sv=S3CRET",
            },
            "LAKE_KIND=blob at https://stlake.blob.core.windows.net, container lake",
        ),
        (
            {"LAKE_KIND": "adls", "LAKE_ACCOUNT_URL": "https://stlake.dfs.core.windows.net/?sig=S3CRET"},
            "LAKE_KIND=adls at https://stlake.dfs.core.windows.net, container lake",
        ),
    ],
)
def test_the_lake_a_tool_names_in_an_error_never_shows_a_key(settings: dict[str, str], named: str) -> None:
    from shared.settings import load_settings
    from tools.cli import lake_target

    assert lake_target(load_settings(settings)) == named


def test_a_dependency_error_of_many_lines_is_one_line_with_what_failed_and_why() -> None:
    from tools.cli import one_line

    causes = "Kernel error\n  \x1b[31m\u21b3\x1b[0m GET http://x\n    \x1b[31m\u21b3\x1b[0m Connection refused\n"
    assert one_line(causes) == "Kernel error; GET http://x; Connection refused"
    assert one_line(causes.replace("http://x", "http://" + "x" * 400), 100) == ("Kernel error; ...; Connection refused")
    assert one_line("invalid settings:\n  A: bad\n  B: worse") == "invalid settings: A: bad; B: worse"


def test_a_settings_file_that_is_not_json_is_a_settings_error_naming_it(tmp_path: Path) -> None:
    from shared.errors import ConfigurationError
    from tools.cli import environment

    settings = tmp_path / "local.settings.json"
    for text in ("{", "[]", '{"Values": 3}'):
        settings.write_text(text)
        with pytest.raises(ConfigurationError, match=f"^{settings}: "):
            environment(settings)
