"""``tools.reprocess --promote``: a lake failing after an hour was promoted names the hours it stops (exit 1).

docs/datagen.md: "a lake that cannot be reached ... before any hour was promoted is one line naming the lake
(exit 5); an hour whose commit fails is named and the others go on (exit 1)". ``_promote_differing`` called
``lease.fence()`` outside its try: a ``LakeUnavailable`` there escaped to ``main``, which printed "stopped: cannot
use the lake" and exited 5 although H10 was already promoted, and H11 was neither named nor tried.
"""

from __future__ import annotations

import pytest

from shared.errors import LakeError, LakeUnavailable, WriteConflict
from shared.redrive import RedriveLease
from tests.lake.test_compaction import Lake
from tests.lake.test_reprocess import H10, H11, _changed, _land_two_hours, _main, lake  # noqa: F401


def test_an_outage_after_one_hour_was_promoted_is_exit_1_naming_the_other_hour(
    lake: Lake,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = _land_two_hours(lake)
    fence = RedriveLease.fence
    calls: list[int] = []

    def flaky_fence(self: RedriveLease) -> None:
        calls.append(1)
        if len(calls) == 2:  # the lease write before the second hour: the storage account blips
            raise LakeUnavailable("503 Server Busy")
        fence(self)

    monkeypatch.setattr(RedriveLease, "fence", flaky_fence)
    code = _main(lake, monkeypatch, _changed(source))
    printed = capsys.readouterr()
    assert f"promoted {H10}" in printed.out, printed
    assert (code, f"{H11}: not promoted" in printed.err) == (1, True), f"exit {code}: {printed.err}"


def test_a_lake_refusing_an_hours_promotion_names_it_and_the_others_go_on(
    lake: Lake,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import tools.reprocess as command

    source = _land_two_hours(lake)
    promote = command.promote

    def refused_for_h10(*args: object, **kwargs: object) -> None:
        if args[1].diff.hour == H10:  # type: ignore[attr-defined]
            raise LakeError("403 This request is not authorized")
        promote(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(command, "promote", refused_for_h10)
    code = _main(lake, monkeypatch, _changed(source))
    printed = capsys.readouterr()
    assert f"{H10}: not promoted (403" in printed.err and f"promoted {H11}" in printed.out
    assert code == 1 and "cannot use the lake" not in printed.err


def test_a_lease_another_run_took_over_still_stops_with_exit_3(
    lake: Lake,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = _land_two_hours(lake)
    hold = RedriveLease.hold
    calls: list[int] = []

    def taken_over(self: RedriveLease, version: str | None) -> None:
        calls.append(1)
        if len(calls) == 3:  # the renewal before the second hour: another run holds the lease now
            raise WriteConflict("the lease file changed")
        hold(self, version)

    monkeypatch.setattr(RedriveLease, "hold", taken_over)
    code = _main(lake, monkeypatch, _changed(source))
    printed = capsys.readouterr()
    assert code == 3 and f"promoted {H10}" in printed.out and f"promoted {H11}" not in printed.out
    assert "another redrive took over" in printed.err
