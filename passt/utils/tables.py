"""Plain tables as text: markdown and CSV from a header and rows of cells (one writer, so that
every table escapes and aligns alike)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]],
                   right: Sequence[str] = ()) -> str:
    """A GitHub markdown table; the ``right`` columns are right-aligned, ``|`` is escaped."""
    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(_cell(c).replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join("--:" if c in right else "---" for c in columns) + "|"
    return "\n".join([line(columns), rule, *(line(r) for r in rows)]) + "\n"


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """CSV with a header line; None is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([[_cell(c) for c in r] for r in rows])
    return out.getvalue()
