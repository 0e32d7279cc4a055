"""The ``on_bad_file`` policy: skip a bad file with a counted warning, or stop with an error."""

from __future__ import annotations

import logging
from typing import Literal, get_args

from passt.utils.errors import UsageError, check_choice

BadFilePolicy = Literal["skip", "error"]  # a bad file or row: skipped and counted, or an error
POLICIES: tuple[str, ...] = get_args(BadFilePolicy)

log = logging.getLogger(__name__)


class BadFileError(UsageError):
    """A file or row that cannot be used, under ``on_bad_file="error"``; names it and why."""


def check_policy(on_bad_file: str) -> str:
    """Return ``on_bad_file`` if it is a known policy, else raise `UsageError`."""
    check_choice("on_bad_file policy", on_bad_file, POLICIES)
    return on_bad_file


class BadFiles:
    """Collects bad files under a policy: ``"skip"`` logs and records, ``"error"`` raises."""

    def __init__(self, on_bad_file: str = "skip"):
        self.policy = check_policy(on_bad_file)
        self.items: list[tuple[str, str]] = []

    def report(self, name: str, reason: str) -> None:
        """Handle one bad file: raise `BadFileError`, or log a warning and record it."""
        if self.policy == "error":
            raise BadFileError(f"{name}: {reason}")
        log.warning("skipping %s: %s", name, reason)
        self.items.append((name, reason))

    def summarise(self, source: str, total: int) -> None:
        """Log how many of ``total`` entries of ``source`` were skipped."""
        if self.items:
            log.warning("%s: skipped %d of %d entries as bad (see the warnings above)",
                        source, len(self.items), total)
