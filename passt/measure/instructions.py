"""CPU instructions per training or inference step, counted by callgrind (valgrind).

Wall-clock time on a shared CI machine moves by 5-15% within minutes; the instructions a step
executes do not. One valgrind process imports torch once and counts every asked step: the
steps are built and warmed up with instrumentation off, then each is run ``repeats`` times
with collection toggled around it (``torch._C._valgrind_toggle``, as
``torch.utils.benchmark.Timer.collect_callgrind`` does) and its counters dumped, on one
thread, from the same seed, at a small fixed size (`InstructionSettings`). What the counts
catch and miss is in docs/regressions.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from passt.utils.values import check_int

log = logging.getLogger(__name__)

INSTALL_HINT = "valgrind not found: install it (Debian/Ubuntu: apt-get install valgrind)"
# the model's width and depth while counting: the real layers and token counts, a small cost
SMALL_MODEL = {"embed_dim": 64, "depth": 2, "num_heads": 4}


@dataclass(frozen=True)
class InstructionSettings:
    """The size the steps are counted at: small, so that every variant's train and inference
    steps count in minutes under valgrind (about 50x slower than native)."""

    batch_size: int = 1
    clip_seconds: float = 1.0
    model_overrides: dict[str, Any] = field(default_factory=lambda: dict(SMALL_MODEL))
    repeats: int = 3  # counted steps of each benchmark; the median is reported
    warmup: int = 2  # uncounted steps before (one more runs instrumented)
    timeout_s: float = 1200.0  # the valgrind process at most

    def __post_init__(self) -> None:
        for name in ("batch_size", "repeats"):
            check_int(name, getattr(self, name), minimum=1)


@dataclass(frozen=True)
class InstructionCount:
    """The fields of a `BenchRecord` that one step's count fills (None: not counted)."""

    instructions: float | None
    instructions_spread: float | None
    instructions_settings: dict[str, Any] | None
    notes: tuple[str, ...] = ()

    @classmethod
    def from_counts(cls, counts: Sequence[int], settings: dict[str, Any]) -> InstructionCount:
        median = statistics.median(counts)
        return cls(float(median), (max(counts) - min(counts)) / median, settings)

    def fields(self) -> dict[str, Any]:
        """The record fields, ``notes`` without the empty case."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if not self.notes:
            del out["notes"]
        return out


def valgrind_available() -> bool:
    return shutil.which("valgrind") is not None and shutil.which("callgrind_control") is not None


def count_instructions(jobs: Sequence[tuple[str, str]],
                       settings: InstructionSettings = InstructionSettings(),
                       plugins: Sequence[str] = ()) -> dict[tuple[str, str], InstructionCount]:
    """``(variant, kind) -> count`` for every job, in one valgrind process; ``plugins`` are
    loaded in it first (files or modules, as ``--plugin`` takes them). Without valgrind every
    count is None with a note that says what to install."""
    jobs = list(dict.fromkeys(jobs))
    if not valgrind_available():
        return {job: InstructionCount(None, None, None, (INSTALL_HINT,)) for job in jobs}
    with tempfile.TemporaryDirectory(prefix="passt-callgrind-") as tmp:
        out = Path(tmp)
        spec = {"jobs": jobs, "settings": dataclasses.asdict(settings),
                "plugins": list(plugins), "order": str(out / "order.json")}
        (out / "spec.json").write_text(json.dumps(spec))
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.out",
                   "--dump-line=no", "--dump-instr=no", "--collect-atstart=no",
                   "--instr-atstart=no", sys.executable, "-m", __name__, str(out / "spec.json")]
        log.info("counting instructions of %d steps under valgrind", len(jobs))
        try:
            done = subprocess.run(command, capture_output=True, text=True,
                                  timeout=settings.timeout_s)
        except subprocess.TimeoutExpired:
            note = f"the callgrind run took more than {settings.timeout_s:.0f} s"
            return {job: InstructionCount(None, None, None, (note,)) for job in jobs}
        if done.returncode != 0:
            tail = "\n".join(done.stderr.splitlines()[-15:])
            raise RuntimeError(f"counting instructions failed (exit {done.returncode}):\n{tail}")
        order = json.loads((out / "order.json").read_text())
        counts: dict[tuple[str, str], list[int]] = {}
        for dump, (variant, kind) in enumerate(order, start=1):
            counts.setdefault((variant, kind), []).append(_total(out / f"cg.out.{dump}"))
    record = {**dataclasses.asdict(settings), "tool": "callgrind", "threads": 1}
    del record["timeout_s"]
    return {job: InstructionCount.from_counts(counts[job], record) for job in jobs}


def _total(path: Path) -> int:
    """The instructions a callgrind dump counted (its ``summary:`` or ``totals:`` line)."""
    text = path.read_text()
    match = re.search(r"^(?:totals|summary):\s*(\d+)", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"{path.name}: no totals in the callgrind output")
    return int(match.group(1))


def _worker(spec_path: Path) -> None:
    """Inside valgrind: build and warm every step, then count each one's repeats."""
    import gc
    import os

    import torch

    from passt.measure.presets import get_preset
    from passt.measure.step import build_step
    from passt.plugins import load_plugins

    spec = json.loads(spec_path.read_text())
    settings = InstructionSettings(**spec["settings"])
    torch.set_num_threads(1)
    load_plugins(spec["plugins"])
    base = get_preset("cpu-small")  # its proportional patchout on the short clip
    steps = []
    for variant, kind in spec["jobs"]:
        step = build_step(base.settings(variant, batch_size=settings.batch_size,
                                        clip_seconds=settings.clip_seconds, device="cpu",
                                        dtype="fp32", attention="sdpa", compile=False,
                                        model_overrides=settings.model_overrides), kind)
        for _ in range(settings.warmup):
            step()
        steps.append(((variant, kind), step))
    subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], check=True,
                   capture_output=True)
    order = []
    gc.disable()  # a collection lands on whichever step crosses its threshold: not counted
    for job, step in steps:
        torch.manual_seed(0)
        step()  # instrumented, not collected: code valgrind translates the first time
        for _ in range(settings.repeats):
            gc.collect()
            torch.manual_seed(0)  # the same patchout draws in every repeat and every run
            torch._C._valgrind_toggle()
            step()
            torch._C._valgrind_toggle_and_dump_stats()
            order.append(job)
    gc.enable()
    Path(spec["order"]).write_text(json.dumps(order))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the worker count_instructions runs in valgrind")
    parser.add_argument("spec", type=Path)
    _worker(parser.parse_args().spec)
