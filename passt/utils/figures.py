"""`save_figure`: every figure of the project written alike: atomically, and the same bytes for
the same figure (no date in the file, SVG ids drawn from a fixed salt), so that a report made
again from the same run leaves a committed figure unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from passt.utils.atomic import atomic_path
from passt.utils.optional import require

_SALT = "passt-bench"


def save_figure(fig: Any, path: str | Path, **kwargs: Any) -> Path:
    """Write matplotlib figure ``fig`` to ``path`` in the format its suffix names; ``kwargs``
    go to ``savefig`` (e.g. ``dpi``)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".")
    metadata = {"Date": None} if fmt in ("svg", "pdf") else {}
    with require("matplotlib", "figures").rc_context({"svg.hashsalt": _SALT}), \
            atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, metadata=metadata, **kwargs)
    return path
