"""Values a user gives (a flag's text, a config field, a CSV cell) checked against what they
accept: integers and numbers with a lower bound, and comma-separated lists of them or of names.
Every message names the option and what it accepts."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from passt.utils.errors import UsageError

ALL = "all"
_KINDS = {str: ("a name", "names"), int: ("an integer", "integers"),
          float: ("a number", "numbers")}


def accepted(item: type = int, minimum: float | None = None, above: float | None = None,
             many: bool = False) -> str:
    """``"an integer >= 1"``, ``"numbers > 0"``: what a check of these bounds accepts."""
    one, several = _KINDS[item]
    text = several if many else one
    if minimum is not None:
        text += f" >= {minimum}"
    if above is not None:
        text += f" > {above}"
    return text


def _fits(value: Any, item: type, minimum: float | None, above: float | None) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float if item is float else item):
        return False
    if item is float and not math.isfinite(value):
        return False
    return (minimum is None or value >= minimum) and (above is None or value > above)


def check_int(what: str, value: Any, minimum: int | None = None) -> int:
    """``value`` if it is an integer (not a bool) >= ``minimum``; else `UsageError` "WHAT must
    be an integer >= MINIMUM, got VALUE"."""
    if not _fits(value, int, minimum, None):
        raise UsageError(f"{what} must be {accepted(int, minimum)}, got {value!r}")
    return value


def check_number(what: str, value: Any, minimum: float | None = None,
                 above: float | None = None) -> float:
    """``value`` if it is a finite number (an int or float, not a bool) >= ``minimum`` and >
    ``above``; else `UsageError` "WHAT must be a number > ABOVE, got VALUE"."""
    if not _fits(value, float, minimum, above):
        raise UsageError(f"{what} must be {accepted(float, minimum, above)}, got {value!r}")
    return value


def parse_number(text: str | None, what: str, item: type = int, minimum: float | None = None,
                 above: float | None = None) -> Any:
    """``text`` as an ``item`` (int or float) within the bounds; else `UsageError` "WHAT 'x':
    expected an integer >= 1"."""
    try:
        value = item((text or "").strip())
    except ValueError:
        value = None
    if value is None or not _fits(value, item, minimum, above):
        raise UsageError(f"{what} {text!r}: expected {accepted(item, minimum, above)}")
    return value


def parse_list(text: str, what: str, item: type = str, *, minimum: float | None = None,
               above: float | None = None, choices: Sequence[str] | None = None,
               noun: str = "name", allow_all: bool = False, unique: bool = False,
               ) -> tuple[Any, ...] | None:
    """``"a, b,c"`` as ``("a", "b", "c")`` (empty parts left out); ``item`` int or float
    parses each part and needs at least one. ``choices``: the names accepted (the error calls
    a part a ``noun``); ``allow_all``: ``"all"`` gives None; ``unique``: a part given twice is
    an error."""
    if allow_all and str(text).strip() == ALL:
        return None
    parts = tuple(p.strip() for p in str(text).split(",") if p.strip())
    if item is not str:
        try:
            values = tuple(item(p) for p in parts)
        except ValueError:
            values = ()
        if not values or not all(_fits(v, item, minimum, above) for v in values):
            either = f"'{ALL}' or " if allow_all else ""
            raise UsageError(f"{what} {text!r}: expected {either}a comma-separated list of "
                             f"{accepted(item, minimum, above, many=True)}")
        parts = values
    if choices is not None:
        unknown = [p for p in parts if p not in choices]
        if unknown:
            known = ", ".join([ALL, *choices] if allow_all else choices)
            raise UsageError(f"{what}: unknown {noun}(s) {', '.join(map(str, unknown))}; "
                             f"known: {known}")
    if unique and len(set(parts)) != len(parts):
        raise UsageError(f"{what}: {noun}s named more than once in {text!r}")
    return parts
