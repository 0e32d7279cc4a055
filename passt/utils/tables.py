"""Plain tables as text: markdown, CSV and LaTeX from a header and rows of cells, and the rows
of dataclasses or mappings (one writer, so that every table escapes and aligns alike)."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}", **{c: "\\" + c for c in "&%$#_{}"}}


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def columns_of(kind: type) -> tuple[str, ...]:
    """A dataclass's field names in order: the columns of a table of its instances."""
    return tuple(f.name for f in dataclasses.fields(kind))


def record_rows(records: Iterable[Any], columns: Sequence[str]) -> list[list[Any]]:
    """Each record's ``columns`` cells: a dataclass's attributes or a mapping's values (a key
    the mapping lacks is None; keys outside ``columns`` are left out)."""
    def cells(record: Any) -> list[Any]:
        if isinstance(record, Mapping):
            return [record.get(c) for c in columns]
        if dataclasses.is_dataclass(record) and not isinstance(record, type):
            return [getattr(record, c) for c in columns]
        raise TypeError(f"a table row must be a dataclass or a mapping, not "
                        f"{type(record).__name__}")

    return [cells(r) for r in records]


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]],
                   right: Sequence[str] = ()) -> str:
    """A GitHub markdown table; the ``right`` columns are right-aligned, ``|`` is escaped."""
    def line(cells: Sequence[Any]) -> str:
        return "| " + " | ".join(_cell(c).replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join("--:" if c in right else "---" for c in columns) + "|"
    return "\n".join([line(columns), rule, *(line(r) for r in rows)]) + "\n"


def csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]], header: bool = True) -> str:
    """CSV (quoted where a cell needs it, ``\\n`` line ends), the header line first unless
    ``header`` is false (rows appended to a file); None is an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(columns)
    writer.writerows([[_cell(c) for c in r] for r in rows])
    return out.getvalue()


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped, to be typeset as it reads."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in text)


def latex_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[str] = (),
                caption: str | None = None, label: str | None = None) -> str:
    """A booktabs ``tabular`` (the ``right`` columns right-aligned), inside a ``table`` with
    ``caption`` and ``label`` when either is given; cells and caption are escaped."""
    def line(cells: Sequence[Any]) -> str:
        return " & ".join(latex_escape(_cell(c)) for c in cells) + " \\\\"

    spec = "".join("r" if c in right else "l" for c in columns)
    body = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", line(columns), "\\midrule",
            *(line(r) for r in rows), "\\bottomrule", "\\end{tabular}"]
    if caption is None and label is None:
        return "\n".join(body) + "\n"
    head = ["\\begin{table}",
            *([f"\\caption{{{latex_escape(caption)}}}"] if caption is not None else []),
            *([f"\\label{{{label}}}"] if label is not None else [])]
    return "\n".join([*head, *body, "\\end{table}"]) + "\n"
