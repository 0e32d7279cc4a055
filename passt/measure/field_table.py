"""docs/benchmarks.md's table of the bench's fields, made from `BenchRecord`'s groups: one row
per group, its fields in the record's order."""

from __future__ import annotations

from dataclasses import fields

from passt.measure.bench_record import GROUPS, BenchRecord

HEADER = ("| field | what |", "|---|---|")


def field_table() -> str:
    """The markdown table, as docs/benchmarks.md shows it."""
    rows = []
    for group, what in GROUPS.items():
        names = [f"`{f.name}`" for f in fields(BenchRecord) if f.metadata["group"] == group]
        rows.append(f"| {', '.join(names)} | {what} |")
    return "\n".join([*HEADER, *rows]) + "\n"


if __name__ == "__main__":
    print(field_table(), end="")
