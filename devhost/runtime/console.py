"""What the local host writes to the terminal: whole lines, and the live status line of an interactive run.

Every message is one ``write`` call with its newline, so lines from several threads or worker processes are
never glued together. On a terminal a message first erases the current line (``ERASE_LINE``): the host's live
status line, drawn without a newline, is replaced rather than continued, then drawn again below the message.
"""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

ERASE_LINE = "\r\x1b[K"  # carriage return, then erase to the end of the line


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or minimal stream
        return False


class Console:
    """Writes messages and the live status line; a lock orders them within this process.

    Streams are looked up on each call (``sys.stdout`` by default), so a redirected stream is honoured.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status = ""  # the status line on stdout now, without a newline; "" when none is shown

    def say(self, text: str, stream: TextIO | None = None) -> None:
        """Write ``text`` as one line (``stream``: default stdout), on a line of its own."""
        target = stream or sys.stdout
        with self._lock:
            prefix = ERASE_LINE if _is_terminal(target) else ""
            if self._status and target is not sys.stdout:
                sys.stdout.write(ERASE_LINE)  # the message goes elsewhere: clear the status line first
                sys.stdout.flush()
            target.write(f"{prefix}{text}\n")
            target.flush()
            if self._status:
                sys.stdout.write(ERASE_LINE + self._status)
                sys.stdout.flush()

    def status(self, text: str) -> None:
        """Replace the live status line (only on a terminal: the caller checks ``sys.stdout.isatty()``)."""
        with self._lock:
            self._status = text
            sys.stdout.write(ERASE_LINE + text)
            sys.stdout.flush()

    def end_status(self) -> None:
        """Leave the last status line as it is and go on below it."""
        with self._lock:
            if self._status:
                sys.stdout.write("\n")
                sys.stdout.flush()
            self._status = ""


console = Console()


def say(text: str, stream: TextIO | None = None) -> None:
    """One whole line on stdout (or ``stream``), through the process's console."""
    console.say(text, stream)


class ConsoleLogHandler(logging.Handler):
    """Log records on stderr, each as one write on a line of its own (never after the live status line)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            console.say(self.format(record), sys.stderr)
        except Exception:  # logging must not raise
            self.handleError(record)
