"""``python -m tools.cost --results FILE``: a file it cannot read is one line naming it, exit 2 (a bad argument)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tools import cost


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (None, "cannot be read: no such file (or a link to none)"),  # FileNotFoundError, a traceback before
        ("not json", "not JSON: invalid literal, expected 'null': line 1 column 1 (char 0)"),  # a traceback before
        ("[" * 100_000, "not JSON: depth limit exceeded: line 1 column 1026 (char 1025)"),  # RecursionError before
        ("[1, 2]", "must be a JSON object, not list"),
        ('{"runs": []}', "not a bench/cost.py results file (no config)"),
    ],
    ids=["missing", "not JSON", "nested too deep", "not an object", "no config"],
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
