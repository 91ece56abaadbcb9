"""``python -m tools.datagen``: keyed records printed, a bad config reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.shared.datagen.conftest import config_document, write_config


def test_datagen_cli_prints_keyed_records(capsys: pytest.CaptureFixture[str]) -> None:
    from tools import datagen

    assert datagen.main(["--config", "sources/orders.json", "--count", "3", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    for number, line in enumerate(lines):
        key, value = line.split("\t")
        assert json.loads(value)["orderid"] == number and key == str(number)
    assert datagen.main(["--quickstart", "clickstream_codes", "--count", "2"]) == 0
    assert all(
        json.loads(line.split("\t")[1])["code"] in (200, 302, 404, 405, 406, 407)
        for line in capsys.readouterr().out.splitlines()
    )


def test_datagen_cli_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tools import datagen

    bad = write_config(tmp_path, "bad.json", config_document(**{"random.seeds": 1}))
    assert datagen.main(["--config", str(bad)]) == 2
    assert "config.random.seeds: unknown option" in capsys.readouterr().err
