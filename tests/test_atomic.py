"""Atomic writes: the old file survives a failed write, and no temporary file is left."""

from __future__ import annotations

import stat

import pytest

from passt.utils.atomic import atomic_path, write_text_atomic


def test_success_replaces_and_failure_keeps_the_old_file(tmp_path):
    target = tmp_path / "maps.csv"
    write_text_atomic(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "old\n"
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in tmp_path.iterdir()] == ["maps.csv"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
