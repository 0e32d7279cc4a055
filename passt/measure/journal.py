"""An append-only journal of measurements: each finished one is on disk at once, so a crash
mid-run keeps everything measured before it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from passt.utils.jsonl import append_jsonl, read_jsonl


class Journal:
    """One JSON object per line, each stamped with the time it was written."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def append(self, entry: dict[str, Any]) -> None:
        append_jsonl(self.path, {"time": time.time(), **entry})

    def read(self) -> list[dict[str, Any]]:
        """Every complete entry; a line cut short by a crash is skipped."""
        return read_jsonl(self.path)
