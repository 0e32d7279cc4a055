"""Every relative link of README.md and docs/ leads to a file (and heading) that exists."""

from __future__ import annotations

import pytest
from doc_pages import PAGES, ROOT, anchor, broken_links


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
