"""docs/benchmarks.md's table of the bench's fields, made from `BenchRecord`'s groups: one row
per group, its fields in the record's order."""

from __future__ import annotations

from dataclasses import fields

from passt.measure.bench_record import GROUPS, BenchRecord
from passt.utils.tables import markdown_table

COLUMNS = ("field", "what")
HEADER = tuple(markdown_table(COLUMNS, []).splitlines())


def field_table() -> str:
    """The markdown table, as docs/benchmarks.md shows it."""
    rows = [[", ".join(f"`{f.name}`" for f in fields(BenchRecord) if f.metadata["group"] == group),
             what] for group, what in GROUPS.items()]
    return markdown_table(COLUMNS, rows)


if __name__ == "__main__":
    print(field_table(), end="")
