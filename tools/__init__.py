"""Operator tools, each run as ``python -m tools.<name>``.

A Datagen config in ``sources/`` that the code refuses is refused while ``shared.sources`` is imported, which most
tools do before their own error handling runs: run as ``python -m tools.<name>``, that is one line naming the file
and the option, exit 2, as ``devhost start`` says it, not a traceback from every tool (``--help`` included).
"""

from __future__ import annotations

import os
import sys
from types import TracebackType

_previous_hook = sys.excepthook


def _a_refused_config_in_one_line(kind: type[BaseException], error: BaseException, trace: TracebackType | None) -> None:
    from shared.datagen.config import DatagenConfigError

    if not isinstance(error, DatagenConfigError):
        _previous_hook(kind, error, trace)
        return
    print(f"error: {error}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2)  # the interpreter would exit 1 after a hook, whatever it does


if sys.argv[:1] == ["-m"]:  # imported by ``python -m tools.<name>`` before the tool runs, not by tests or tools
    sys.excepthook = _a_refused_config_in_one_line
