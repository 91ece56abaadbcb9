"""Command line: ``python -m devhost start [options]`` runs function_app.py like ``func start``.

Exit codes: 0 stopped cleanly; 1 a broker or Azurite could not be started or reached; 2 bad options, a bad app
setting or the HTTP port taken (each one line naming it).
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path

from devhost.errors import DevHostError
from devhost.runtime.console import ConsoleLogHandler
from devhost.runtime.host_config import HostConfigError
from shared.errors import ConfigurationError
from shared.ncrontab import ScheduleError
from shared.settings import broker_address_problem

LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
EXIT_FAILED = 1  # a broker or Azurite that cannot be started or reached
EXIT_USAGE = 2  # bad options or settings (argparse's own code), or a port that is taken
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM while starting (the shell's code for an interrupted command)


def _broker(value: str) -> str:
    if value != "embedded" and broker_address_problem(value):  # the rule of each entry of KAFKA_BROKER_LIST
        raise argparse.ArgumentTypeError("expected 'embedded' or HOST:PORT")
    return value


def lake_problem(lake: Path) -> str | None:
    """Why ``--lake`` cannot be the local lake: a file (or a path through one) where its directory would be, which
    the host would otherwise start on and fail each batch and timer with a traceback. None when it can: an existing
    directory, or one that can be created (a new lake)."""
    if lake.exists() and not lake.is_dir():
        return f"--lake {lake} is not a directory: name the local lake's directory (a new one is created)"
    blocking = next((parent for parent in lake.resolve().parents if parent.exists()), None)
    if blocking is not None and not blocking.is_dir():
        return f"--lake {lake}: {blocking} is not a directory, so the lake cannot be created in it"
    return None


MAX_PARTITIONS = 100  # an event hub's most on Premium (32 on Standard); 100,000 kept the host starting for minutes
MAX_WORKERS = 32  # each worker process imports the app; more than a topic's partitions only wait


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return number


def _at_most(highest: int, why: str) -> Callable[[str], int]:
    """A positive integer of at most ``highest``."""

    def bounded(value: str) -> int:
        number = _positive(value)
        if number > highest:
            raise argparse.ArgumentTypeError(f"expected at most {highest} ({why}), got {value!r}")
        return number

    return bounded


def _seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:  # nan never runs out, so the run would never stop
        raise argparse.ArgumentTypeError(f"expected a positive, finite number of seconds, got {value!r}")
    return number


def _port(value: str) -> int:
    number = _positive(value)
    if number > 65_535:
        raise argparse.ArgumentTypeError(f"expected a TCP port, 1 to 65535, got {value!r}")
    return number


def one_line(message: object) -> str:
    """A possibly multi-line error message (``invalid settings:`` then one indented problem a line) on one line."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    text = ""
    for line in lines:
        text += line if not text else (f" {line}" if text.endswith(":") else f"; {line}")
    return text


def settings_error_line(prog: str, error: ConfigurationError) -> str:
    """``<prog>: invalid settings: ...`` (``invalid settings of source 'x': ...`` when the message says so)."""
    text = one_line(error)
    return f"{prog}: {text}" if text.startswith("invalid settings") else f"{prog}: invalid settings: {text}"


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m devhost", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="index function_app.py and run its functions")
    start.add_argument(
        "--settings",
        type=Path,
        help="settings file (default: local.settings.json, else local.settings.example.json)",
    )
    start.add_argument("--broker", type=_broker, help="'embedded' (start Tansu) or HOST:PORT (default: from settings)")
    lake = start.add_mutually_exclusive_group()
    lake.add_argument("--lake", type=Path, help="local lake directory (LAKE_KIND=local)")
    lake.add_argument("--storage", choices=["azurite"], help="start Azurite and land through the Blob API")
    start.add_argument("--azurite-dir", type=Path, help="Azurite's data directory (default .azurite)")
    start.add_argument("--no-timers", dest="timers", action="store_false", help="do not run timer triggers")
    start.add_argument("--duration", type=_seconds, help="stop cleanly after this many seconds (default: until Ctrl-C)")
    start.add_argument(
        "--workers",
        type=_at_most(MAX_WORKERS, "each is a process holding the app"),
        default=1,
        help=f"processes sharing each consumer group (default 1, at most {MAX_WORKERS})",
    )
    start.add_argument("--port", type=_port, default=7071, help="HTTP port (default 7071)")
    start.add_argument(
        "--partitions",
        type=_at_most(MAX_PARTITIONS, "an event hub's most on Premium"),
        default=4,
        help=f"partitions of topics the host creates (default 4, at most {MAX_PARTITIONS})",
    )
    start.add_argument(
        "--final-timers",
        default="compact_",
        help="name prefixes (comma-separated) of timers run once more at shutdown (default compact_; '' for none)",
    )
    start.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="WARNING",
        help="Python log level, any case (default WARNING)",
    )
    return root


def main(argv: list[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    if arguments.lake is not None and (problem := lake_problem(arguments.lake)):
        print(f"devhost: {problem}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(
        level=arguments.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[ConsoleLogHandler()],  # each record on a line of its own, never after the live status line
    )
    from devhost.runtime.host import LocalHost, PortUnavailable, StartOptions

    options = StartOptions(
        settings=arguments.settings,
        broker=arguments.broker,
        lake=arguments.lake,
        storage=arguments.storage,
        azurite_dir=arguments.azurite_dir,
        timers=arguments.timers,
        duration=arguments.duration,
        workers=arguments.workers,
        port=arguments.port,
        partitions=arguments.partitions,
        final_timers=tuple(prefix for prefix in arguments.final_timers.split(",") if prefix),
    )
    try:
        return LocalHost(options).run()
    except (HostConfigError, PortUnavailable, ScheduleError) as error:
        print(f"devhost: {error}", file=sys.stderr)
        return EXIT_USAGE
    except ConfigurationError as error:  # an app setting the code refuses (``shared.settings``): names it
        print(settings_error_line("devhost", error), file=sys.stderr)
        return EXIT_USAGE
    except DevHostError as error:  # a broker or Azurite that cannot be started or reached: the message says what
        print(f"devhost: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM before the host was running: what it started is stopped
        print("devhost: stopped while starting", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
