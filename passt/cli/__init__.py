"""The ``passt`` command: its parser (`parser`, flags derived from the settings' dataclasses)
and the commands that call the library (`main`)."""

from passt.cli.commands import main

__all__ = ["main"]
