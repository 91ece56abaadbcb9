"""``--broker HOST:PORT`` where nothing answers is one line and exit 1, as a settings' broker that does not answer is
(a real port nothing listens on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devhost.services.processes import free_port


def test_an_explicit_broker_that_does_not_answer_is_one_line_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It was a KafkaException traceback from creating the topics."""
    import devhost.runtime.host as host_module
    from devhost.__main__ import EXIT_FAILED, main

    monkeypatch.setattr(host_module, "BROKER_WAIT_S", 1.0)  # nothing listens: no point in waiting 15 s
    broker = f"127.0.0.1:{free_port()}"
    code = main(["start", "--broker", broker, "--lake", str(tmp_path / "lake"), "--port", str(free_port())])
    out, error = capsys.readouterr()
    assert code == EXIT_FAILED
    assert error.splitlines() == [
        f"devhost: no broker answered at {broker} (--broker) in 1s: "
        "start one, or run with --broker embedded --lake .lake (what make run does)"
    ]
    assert "listening on" not in out
