"""``tools.cli``: what the operator tools share (settings, ``--broker``/``--lake``, the loopback rule)."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest

from shared.errors import ConfigurationError
from tests.unit.tools.no_settings import NO_SETTINGS
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
    (tmp_path / "lake").mkdir()
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


# Every tool that takes ``--lake``, with arguments that get it past its own checks to the lake: a redrive (not a dry
# run), a promoting reprocess, a move of the group that applies, and a query of the curated tables.
LAKE_TOOLS = {
    "redrive": ["orders", "--broker", "127.0.0.1:1"],
    "reprocess": ["orders", "--from", "2026-11-24T10:00Z", "--to", "2026-11-24T12:00Z", "--promote"],
    "reconcile": ["orders", "--broker", "127.0.0.1:1", "--move-group-to-time", "2026-11-24T12:00Z", "--apply"],
    "query": ["--drift", "orders"],
}


def _tool_main(name: str) -> Callable[[list[str]], int]:
    return cast("Callable[[list[str]], int]", importlib.import_module(f"tools.{name}").main)


@pytest.mark.parametrize("tool", sorted(LAKE_TOOLS))
def test_every_tool_refuses_a_lake_directory_that_does_not_exist_and_creates_nothing(
    tool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mistyped ``--lake`` (or the wrong working directory) was taken: the local store creates what it writes, so
    the redrive and a promoting reprocess took the source's lease in it and reported an empty lake as done (exit
    0), and a move that applies could write its marks there and move the group. One line naming it, exit 2."""
    typo = tmp_path / ".lkae"
    code = _tool_main(tool)([*LAKE_TOOLS[tool], "--lake", str(typo), "--settings", NO_SETTINGS])
    printed = capsys.readouterr()
    assert (code, typo.exists()) != (0, True), f"exit {code}, created {sorted(p.name for p in typo.rglob('*'))}"
    assert (code, typo.exists(), printed.out) == (2, False, ""), printed
    (line,) = printed.err.splitlines()
    assert line.startswith(f"python -m tools.{tool}: --lake {typo} does not exist: "), line
    assert line.endswith("nothing was read or written"), line


@pytest.mark.parametrize("tool", sorted(LAKE_TOOLS))
def test_every_tool_refuses_a_lake_local_root_that_is_not_a_directory(
    tool: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The settings' lake as well (``LAKE_KIND=local``, the default, with ``LAKE_LOCAL_ROOT``): a bad setting."""
    monkeypatch.setenv("LAKE_KIND", "local")
    monkeypatch.setenv("LAKE_LOCAL_ROOT", str(tmp_path / "lake-file"))
    (tmp_path / "lake-file").write_text("not a lake")
    assert _tool_main(tool)([*LAKE_TOOLS[tool], "--settings", NO_SETTINGS]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"python -m tools.{tool}: invalid settings: LAKE_LOCAL_ROOT: the local lake {tmp_path / 'lake-file'} is not "
        "a directory: "
    ), line
    assert [path.name for path in tmp_path.iterdir()] == ["lake-file"]


def test_a_relative_lake_is_named_with_where_it_was_looked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.cli import tool_environment

    monkeypatch.chdir(tmp_path)
    with pytest.raises(RefusedArgument, match=rf"^--lake \.lkae \({re.escape(str(tmp_path.resolve()))}/\.lkae\) "):
        tool_environment(None, lake=Path(".lkae"))
    (tmp_path / ".lake").mkdir()
    assert tool_environment(None, lake=Path(".lake"))["LAKE_LOCAL_ROOT"] == ".lake"


def test_a_bad_setting_is_refused_before_a_missing_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The settings the tool would refuse are named first (the global ones, and the source's when it names one)."""
    from tools.cli import tool_environment

    monkeypatch.setenv("ORDERS_FORMAT", "csv")
    with pytest.raises(ConfigurationError, match="ORDERS_FORMAT"):
        tool_environment(None, lake=tmp_path / "missing", source="orders")
    with pytest.raises(RefusedArgument, match="--lake"):
        tool_environment(None, lake=tmp_path / "missing")


def test_a_refused_url_is_named_without_its_query_or_credentials() -> None:
    """Review 15: the refusal printed the URL whole, a ``?code=`` system key included."""
    with pytest.raises(RefusedArgument) as refused:
        DurableHttp("http://user:pw@func-x.azurewebsites.net/runtime/webhooks/durabletask?code=SYSKEYSECRET", "k")
    assert "SYSKEYSECRET" not in str(refused.value) and "pw" not in str(refused.value)
    assert str(refused.value).endswith("http://func-x.azurewebsites.net/runtime/webhooks/durabletask")
