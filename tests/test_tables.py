"""The one table writer: markdown, CSV and LaTeX text, and rows of dataclasses or mappings."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import pytest

from passt.utils.tables import (
    columns_of,
    csv_text,
    latex_escape,
    latex_table,
    markdown_table,
    record_rows,
)


@dataclass
class Point:
    name: str
    ms: float
    note: str | None = None


def test_markdown_escapes_bars_and_shows_none_as_empty():
    text = markdown_table(["a", "b"], [["x|y", None], [1, 2.5]])
    assert text == "| a | b |\n|---|---|\n| x\\|y |  |\n| 1 | 2.5 |\n"


def test_markdown_right_aligns_the_named_columns():
    text = markdown_table(["name", "ms", "gb"], [], right=["ms", "gb"])
    assert text.splitlines()[1] == "|---|--:|--:|"


def test_csv_quotes_commas_quotes_and_newlines_and_reads_back():
    rows = [["a,b", 'say "hi"', "two\nlines"], [None, 1, 2.5]]
    text = csv_text(["x", "y", "z"], rows)
    assert text.splitlines()[0] == "x,y,z"
    assert text.startswith('x,y,z\n"a,b","say ""hi""","two\nlines"\n')
    assert list(csv.reader(io.StringIO(text))) == [
        ["x", "y", "z"], ["a,b", 'say "hi"', "two\nlines"], ["", "1", "2.5"]]


def test_csv_without_header_is_only_the_rows():
    assert csv_text(["x", "y"], [[1, 2]], header=False) == "1,2\n"


def test_record_rows_of_dataclasses_and_mappings():
    assert columns_of(Point) == ("name", "ms", "note")
    assert record_rows([Point("a", 1.5)], columns_of(Point)) == [["a", 1.5, None]]
    assert record_rows([{"ms": 2, "extra": 3}], ["name", "ms"]) == [[None, 2]]
    assert csv_text(columns_of(Point), record_rows([Point("a", 1.5, "n,b")], columns_of(Point))) \
        == 'name,ms,note\na,1.5,"n,b"\n'


def test_record_rows_refuses_other_things():
    with pytest.raises(TypeError, match="dataclass or a mapping"):
        record_rows([("a", 1)], ["name", "ms"])


def test_latex_escapes_special_characters():
    assert latex_escape("a & b 50% x_1 #2 $3 {c} ~^\\") == (
        "a \\& b 50\\% x\\_1 \\#2 \\$3 \\{c\\} "
        "\\textasciitilde{}\\textasciicircum{}\\textbackslash{}")


def test_latex_table_is_a_booktabs_tabular():
    text = latex_table(["model", "ms"], [["passt_s", 1.5], ["a&b", None]], right=["ms"])
    assert text == ("\\begin{tabular}{lr}\n\\toprule\nmodel & ms \\\\\n\\midrule\n"
                    "passt\\_s & 1.5 \\\\\na\\&b &  \\\\\n\\bottomrule\n\\end{tabular}\n")


def test_latex_table_with_caption_and_label_is_a_table():
    text = latex_table(["a"], [["1"]], caption="50% faster", label="tab:x")
    lines = text.splitlines()
    assert lines[:4] == ["\\begin{table}", "\\caption{50\\% faster}", "\\label{tab:x}",
                         "\\begin{tabular}{l}"]
    assert lines[-2:] == ["\\end{tabular}", "\\end{table}"]
