"""Instruction counts per step (callgrind): deterministic, and they see extra work."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from passt.measure import instructions
from passt.measure.instructions import INSTALL_HINT, InstructionCount, count_instructions

PLUGIN = str(Path(__file__).parent / "fixtures" / "extra_work_plugin.py")


def test_without_valgrind_the_counts_are_null_and_say_what_to_install(monkeypatch):
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    counts = count_instructions([("passt-s", "train")])
    assert counts == {("passt-s", "train"): InstructionCount(None, None, None, (INSTALL_HINT,))}
    assert "apt-get install valgrind" in INSTALL_HINT


def test_the_totals_of_a_dump_are_read(tmp_path):
    dump = tmp_path / "cg.out.1"
    dump.write_text("version: 1\ncreator: callgrind-3.19.0\nevents: Ir\nsummary: 28045699\n"
                    "fl=(1) x.c\nfn=(1) main\n0 12\ntotals: 28045699\n")
    assert instructions._total(dump) == 28_045_699
    dump.write_text("events: Ir\n")
    with pytest.raises(RuntimeError, match="no totals"):
        instructions._total(dump)


def test_the_spread_is_over_the_median():
    count = InstructionCount.from_counts([100, 102, 101], {"batch_size": 1})
    assert (count.instructions, count.instructions_spread) == (101.0, 2 / 101)


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_repeats_agree_and_extra_work_is_counted(monkeypatch):
    """One valgrind process (about a minute): the repeats of a step agree within 0.5%, and a
    plugin block reduction that adds a token-mixing product per block counts more."""
    monkeypatch.setenv("EXTRA_WORK_ROUNDS", "1")
    jobs = [("passt-s", "inference"), ("passt-s-extra", "inference")]
    counts = count_instructions(jobs, plugins=[PLUGIN])
    plain, extra = counts[jobs[0]], counts[jobs[1]]
    assert plain.instructions_spread < 0.005 and extra.instructions_spread < 0.005
    assert 1.03 < extra.instructions / plain.instructions < 1.5
    assert plain.instructions_settings["model_overrides"] == instructions.SMALL_MODEL
