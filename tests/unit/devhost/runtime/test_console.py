"""Messages and log records never continue the live status line of a terminal."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from devhost.runtime.console import ERASE_LINE, Console, ConsoleLogHandler


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_record_replaces_the_status_line_which_comes_back_below_it(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()  # stdout and stderr on one terminal, as in a shell
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(sys, "stderr", terminal)
    console = Console()
    monkeypatch.setattr("devhost.runtime.console.console", console)
    logger = logging.getLogger("test.devhost.console")
    monkeypatch.setattr(logger, "propagate", False)
    handler = ConsoleLogHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger.addHandler(handler)
    try:
        console.status("process_clickstream 100 ev lag 0")
        logger.warning("offsets restarted")
    finally:
        logger.removeHandler(handler)
    console.end_status()
    assert terminal.getvalue() == (
        f"{ERASE_LINE}process_clickstream 100 ev lag 0"
        f"{ERASE_LINE}WARNING offsets restarted\n"
        f"{ERASE_LINE}process_clickstream 100 ev lag 0\n"
    )


def test_without_a_terminal_a_message_is_the_plain_line(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()
    monkeypatch.setattr(sys, "stdout", pipe)
    Console().say("devhost: stopping")
    assert pipe.getvalue() == "devhost: stopping\n"
