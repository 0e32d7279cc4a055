"""JSON-lines files that survive a crash: each appended line is on disk before returning, and
reading skips a last line cut short."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from passt.utils.atomic import write_text_atomic

log = logging.getLogger(__name__)


def append_jsonl(path: str | Path, entry: dict[str, Any]) -> None:
    """Append ``entry`` as one line, flushed and synced (non-JSON values as ``str``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(_line(entry))
        f.flush()
        os.fsync(f.fileno())


def write_jsonl(path: str | Path, entries: list[dict[str, Any]]) -> None:
    """Replace ``path`` with ``entries``, one a line, in one step."""
    write_text_atomic(path, "".join(map(_line, entries)))


def _line(entry: dict[str, Any]) -> str:
    return json.dumps(entry, default=str) + "\n"


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Every complete line of ``path`` (none if it does not exist); an incomplete line, as a
    crash mid-write leaves, is skipped with a warning."""
    path = Path(path)
    if not path.exists():
        return []
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            log.warning("%s: line %d is incomplete, skipped", path, number)
    return entries
