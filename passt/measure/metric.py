"""Where a measured field of `BenchRecord` is reported, declared once in the field's metadata:
its column of Table 1's CSV, the limit ``passt check`` holds its growth to, its cell in the GPU
campaign's summary, and (for a metric computed from other fields) how it is computed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

# `passt.measure.regress.Thresholds` fields a metric's growth can be held to
Limit = Literal["memory", "flops"]


@dataclass(frozen=True)
class Cell:
    """A metric's place in one report: its name there, its rank among that report's declared
    cells (ties: field order), the factor its value is shown at, and (summary lines) the text
    its formatted value fills."""

    name: str
    rank: int = 99  # after every cell placed so far
    scale: float = 1.0
    spec: str = ""
    text: str = "{}"

    def value(self, raw: Any) -> Any:
        """The raw field value as this report holds it (numbers scaled, None kept)."""
        if raw is None or isinstance(raw, bool) or self.scale == 1.0:
            return raw
        return raw * self.scale

    def shown(self, value: Any) -> str:
        """A value as `value` gave it, formatted into ``text`` (``-`` where there is none)."""
        return self.text.format("-" if value is None else format(value, self.spec))


@dataclass(frozen=True)
class Metric:
    """How a `BenchRecord` field is reported (None: not in that report); ``derive``: the
    field is computed from the record's other fields whenever a record is made."""

    table1: Cell | None = None
    check: Limit | None = None  # growth beyond this limit is a regression
    summary: Cell | None = None
    derive: Callable[[Any], float | None] | None = None
