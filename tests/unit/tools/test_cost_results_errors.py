"""``python -m tools.cost --results FILE`` on a file that passes the shape check (runs a list, config an object)
but lacks what the model reads: one line naming the missing key, exit 2 (as for any unreadable results file), not
a KeyError traceback (exit 1)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tools import cost

CHECKED_IN = ROOT / "bench" / "results" / "cost.json"
NOT_OURS = "not a bench/cost.py results file"


def _drop_config(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["config"].pop(key)


def _drop_run(number: int, key: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["runs"][number - 1].pop(key)


def _drop_mix(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["config"]["mix"][0].pop(key)


def _drop_durable_busy(document: dict[str, Any]) -> None:  # a nested key, deeper than load_results checks
    for run in document["runs"]:
        run["activity"].get("durable", {}).pop("busy_s", None)


def _only_remote_runs(document: dict[str, Any]) -> None:
    document["runs"] = [run for run in document["runs"] if run["lake"] != "local"]


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_drop_config("mix"), "config has no 'mix'"),
        (_drop_config("keys_per_source"), "config has no 'keys_per_source'"),
        (_drop_config("partitions"), "config has no 'partitions'"),
        (_drop_mix("events_per_minute"), "config's 'mix' source 1 has no 'events_per_minute'"),
        (_drop_run(1, "rate_ev_s"), "run 1 has no 'rate_ev_s'"),
        (_drop_run(3, "activity"), "run 3 has no 'activity'"),
        (_drop_run(1, "log_records"), "run 1 has no 'log_records'"),
        (_only_remote_runs, "no run of the local lake with state and its 'requests'"),
        (_drop_durable_busy, "no 'busy_s'"),
    ],
    ids=["no mix", "no keys", "no partitions", "mix", "no rate", "no activity", "no logs", "no local run", "nested"],
)
def test_the_checked_in_results_without_a_key_the_model_reads_is_one_line_naming_it(
    damage: Callable[[dict[str, Any]], None], why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(CHECKED_IN.read_text(encoding="utf-8"))
    damage(document)
    results = tmp_path / "cost.json"
    results.write_text(json.dumps(document), encoding="utf-8")
    assert cost.main(["--results", str(results)]) == cost.EXIT_BAD_ARGUMENTS == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        f"python -m tools.cost: cannot read --results {results}: {NOT_OURS} ({why})"
    ]


def test_a_value_of_another_type_is_one_line_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads(CHECKED_IN.read_text(encoding="utf-8"))
    for run in document["runs"]:
        run["seconds"] = "sixty"
    results = tmp_path / "cost.json"
    results.write_text(json.dumps(document), encoding="utf-8")
    assert cost.main(["--results", str(results), "--json"]) == 2
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert out == "" and line == (
        f"python -m tools.cost: cannot read --results {results}: {NOT_OURS} (run 1's 'seconds' is not a number "
        "above 0: 'sixty')"
    )


def _set_run(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda document: document["runs"][0].__setitem__(key, value)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_set_run("rate_ev_s", "10"), "run 1's 'rate_ev_s' is not a number above 0: '10'"),
        (_set_run("seconds", -60), "'runs'[0]['seconds'] holds -60, not a measured count or size"),
        (_set_run("entity_operations", 1e308), "'runs'[0]['entity_operations'] holds 1e+308, not a measured"),
        (lambda document: document["host_json"].__setitem__("max_batch_size", -1), "'max_batch_size'] holds -1"),
    ],
    ids=["rate as text", "negative seconds", "past any measure", "negative batch"],
)
def test_numbers_no_measurement_gives_are_one_line_not_a_traceback_or_a_negative_bill(
    damage: Callable[[dict[str, Any]], None], why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Review 2026-12-07: a rate as text and 1e308 were tracebacks (TypeError, OverflowError), and -60 seconds
    priced the 10 ev/s month at USD -32.97 with exit 0."""
    document = json.loads(CHECKED_IN.read_text(encoding="utf-8"))
    damage(document)
    results = tmp_path / "cost.json"
    results.write_text(json.dumps(document), encoding="utf-8")
    assert cost.main(["--results", str(results), "--json"]) == 2
    out, err = capsys.readouterr()
    (line,) = err.splitlines()
    assert out == "" and NOT_OURS in line and why in line, line


def test_the_reviewers_minimal_file_is_one_line_and_exit_2_as_a_command(tmp_path: Path) -> None:
    """``{"runs":[{"x":1}],"config":{}}``: a KeyError traceback and exit 1 before."""
    results = tmp_path / "cost.json"
    results.write_text('{"runs":[{"x":1}],"config":{}}', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "tools.cost", "--results", str(results)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"python -m tools.cost: cannot read --results {results}: {NOT_OURS} (config has no 'mix')"
    ]


def test_the_checked_in_and_window_results_still_load_and_cost(capsys: pytest.CaptureFixture[str]) -> None:
    """The check refuses only what the model reads: every results file in bench/results/ passes it."""
    for results in sorted((ROOT / "bench" / "results").glob("cost*.json")):
        assert cost.main(["--results", str(results), "--json"]) == 0, results
        assert json.loads(capsys.readouterr().out)["scenarios"]
