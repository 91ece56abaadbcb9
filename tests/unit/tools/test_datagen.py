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


def test_a_config_refused_only_when_its_records_are_tried_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An int field whose options are text parses, and is refused when its source is built: that was a traceback."""
    from tools import datagen

    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "a", "type": {"type": "int", "arg.properties": {"options": ["x"]}}}],
    }
    config = {"connector.class": "DatagenConnector", "kafka.topic": "badopt", "schema.string": json.dumps(schema)}
    bad = tmp_path / "badopt.json"
    bad.write_text(json.dumps({"name": "x", "config": config}))
    assert datagen.main(["--config", str(bad)]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: ") and "options" in line


def test_many_records_are_printed_a_piece_at_a_time_each_piece_seeded_by_its_first_index(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The whole count was generated before the first line (839 MB for 400,000 orders); now a piece of 1,000."""
    from shared.generator_ticks import PIECE_RECORDS
    from tools import datagen

    assert datagen.main(["--quickstart", "orders", "--count", str(PIECE_RECORDS + 5), "--seed", "3"]) == 0
    everything = capsys.readouterr().out.splitlines()
    assert datagen.main(["--quickstart", "orders", "--count", "5", "--seed", "3", "--start", str(PIECE_RECORDS)]) == 0
    assert len(everything) == PIECE_RECORDS + 5 and everything[PIECE_RECORDS:] == capsys.readouterr().out.splitlines()


def test_a_seed_no_generator_setting_takes_is_the_parsers_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Review 2026-12-07: the preview took any integer while <SOURCE>_GENERATOR_SEED refuses one outside int64,
    so it showed records no generator could send."""
    from tools import datagen

    with pytest.raises(SystemExit) as refused:
        datagen.main(["--quickstart", "clickstream", "--count", "1", "--seed", str(2**63)])
    assert refused.value.code == 2 and "--seed must be a signed 64-bit integer" in capsys.readouterr().err
    assert datagen.main(["--quickstart", "clickstream", "--count", "1", "--seed", str(2**63 - 1)]) == 0
