"""The command line: a broker that does not answer is one line with what to do, and a non-zero exit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def test_no_broker_at_the_settings_address_is_one_line_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import devhost.runtime.host as host_module
    from devhost.__main__ import main
    from devhost.services.broker import BrokerError

    def nobody_answers(settings: dict[str, Any], timeout: float) -> None:  # as wait_for_metadata after `timeout`
        raise BrokerError(
            f"broker {settings['bootstrap.servers']} did not answer in {timeout:.0f}s: Connection refused"
        )

    monkeypatch.setattr(host_module, "wait_for_metadata", nobody_answers)
    monkeypatch.setenv("KAFKA_BROKER_LIST", "127.0.0.1:9092")
    code = main(["start", "--lake", str(tmp_path / "lake")])
    error = capsys.readouterr().err
    assert code != 0
    assert error.splitlines() == [
        "devhost: no broker answered at 127.0.0.1:9092 (KAFKA_BROKER_LIST) in 15s: "
        "start one, or run with --broker embedded --lake .lake (what make run does)"
    ]
