"""Every relative link of README.md and docs/ leads to a file (and heading) that exists;
the README's Table 1 excerpt is reports/table1.md's."""

from __future__ import annotations

import pytest

from tests.doc_pages import PAGES, ROOT, anchor, broken_links


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_docs_exist_beside_the_readme():
    assert ROOT / "docs" / "architecture.md" in PAGES and len(PAGES) > 5


def test_a_broken_link_is_caught(tmp_path):
    (tmp_path / "there.md").write_text("# A heading, with `code`\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [ok](there.md#a-heading-with-code) [web](https://x.org/y)\n"
                    "![gone](missing.png) [bad](there.md#nowhere)\n"
                    "```\n[in code](ignored.md)\n```\n")
    assert broken_links(page) == [
        f"missing.png: no file {tmp_path / 'missing.png'}",
        "there.md#nowhere: no heading #nowhere in there.md"]


def test_anchor_is_github_s():
    assert anchor("Use: model, tag, `bench` and check") == "use-model-tag-bench-and-check"


def table_rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.startswith("| ") and "---" not in line]


def test_the_readme_excerpt_of_table1_is_the_current_one():
    """Each cell of the README's Table 1 excerpt is the cell (or "ours / paper" pair) of
    reports/table1.md, so a regenerated table cannot leave the README behind."""
    header, *rows = table_rows((ROOT / "reports" / "table1.md").read_text())
    table = {row[0]: dict(zip(header, row, strict=True)) for row in rows if row[1] != "-"}
    readme = (ROOT / "README.md").read_text().split("## Results at a glance", 1)[1]
    excerpt = [r for r in table_rows(readme.split("\n## ", 1)[0]) if r[0] != "model"]
    assert [r[0] for r in excerpt] == list(table)
    for model, paper, proxy, speed, memory, inference, seq in excerpt:
        t = table[model]
        assert (paper, proxy) == (t["paper mAP"], t["proxy mAP"].split(" (")[0]), model
        assert speed == f"{t['vs B']} / {t['paper vs B']}", model
        assert memory == f"{t['mem vs B']} / {t['paper mem vs B']}", model
        assert (inference, seq) == (t["inf vs B"], f"{t['seq']} / {t['paper seq']}"), model
