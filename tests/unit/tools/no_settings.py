"""``--settings`` for a tool run on the environment's settings alone: a settings file with no ``Values``.

A ``--settings`` file that does not exist is refused (a mistyped name was read as no file, and the tool ran on other
settings than meant), so a test that wants none of a developer's ``local.settings.json`` names this one."""

from pathlib import Path

NO_SETTINGS = str(Path(__file__).with_name("no_settings.json"))
