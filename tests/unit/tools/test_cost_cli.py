"""``python -m tools.cost --results FILE``: a file it cannot read is one line naming it, exit 2 (a bad argument)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import cost


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "no such file (or a link to none)"),  # FileNotFoundError, a traceback before
        ("not json", "not JSON (Expecting value: line 1 column 1 (char 0))"),  # JSONDecodeError, a traceback before
        ("[1, 2]", "not a bench/cost.py results file (no list of runs)"),
        ('{"runs": []}', "not a bench/cost.py results file (no config)"),
    ],
    ids=["missing", "not JSON", "not an object", "no config"],
)
def test_a_results_file_it_cannot_read_is_one_line_naming_it(
    content: str | None, why: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "cost.json"
    if content is not None:
        results.write_text(content)
    assert cost.main(["--results", str(results)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [f"python -m tools.cost: cannot read --results {results}: {why}"]


def test_the_checked_in_results_still_load() -> None:
    assert cost.load_results()["runs"]
