"""The error type for bad input: a file, a value or an option the user gave."""

from __future__ import annotations

from collections.abc import Sequence


class UsageError(ValueError):
    """Bad input, with a message naming what was wrong and what is accepted.

    The CLI prints it as one line and exits 2 (pytest's bench prints it as a usage error);
    any other exception is a bug and keeps its traceback. A `ValueError`, so callers that
    catch bad values keep catching it.
    """


def check_choice(what: str, value: object, accepted: Sequence[object]) -> None:
    """Raise `UsageError` "unknown WHAT VALUE; accepted: A, B, C" unless ``value`` is one of
    ``accepted`` (the one spelling of this rule)."""
    if value not in accepted:
        raise UsageError(f"unknown {what} {value!r}; accepted: {', '.join(map(str, accepted))}")
