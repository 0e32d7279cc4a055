"""The documentation's pages, README.md and docs/**/*.md, and what the doc tests read off
them: the ``passt`` commands of their bash blocks and their relative links."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```.*?^```", flags=re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
ENV = re.compile(r"^(?:[A-Za-z_]\w*=\S*\s+)+")


def commands(text: str) -> list[str]:
    """The ``passt ...`` commands of a page's bash blocks (continued lines joined, leading
    ``VAR=value`` assignments dropped), except those with ``...`` placeholders."""
    blocks = re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
    lines = "\n".join(blocks).replace("\\\n", " ").splitlines()
    lines = [ENV.sub("", line.strip()) for line in lines]
    return [line for line in lines if line.startswith("passt ") and "..." not in line]


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    prose = FENCE.sub("", text)
    return {anchor(h) for h in re.findall(r"^#{1,6} (.+)$", prose, flags=re.M)}


def broken_links(page: Path) -> list[str]:
    """The relative links (and images) of a page, outside code, whose file or heading does
    not exist, each as ``target: why``."""
    prose = re.sub(r"`[^`\n]*`", "", FENCE.sub("", page.read_text()))
    broken = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file}")
        elif fragment and file.suffix == ".md" and fragment not in anchors(file.read_text()):
            broken.append(f"{target}: no heading #{fragment} in {file.name}")
    return broken
