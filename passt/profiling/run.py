"""``passt profile``: where each variant's time and memory go, under a benchmark preset's
settings, and (``--scaling``) how the cost grows with clip length."""

from __future__ import annotations

import logging
import pickle
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch

from passt.measure.peers import (
    build_peer_step,
    peer_settings,
    peer_unavailable_reason,
    peer_unsupported_reason,
)
from passt.measure.presets import Preset
from passt.measure.step import KINDS, Step, build_step
from passt.profiling.breakdown import StepProfile, profile_step
from passt.profiling.config import ProfileConfig
from passt.profiling.outputs import write_profile
from passt.profiling.scaling import (
    ScalingPoint,
    check_clip_lengths,
    measure_point,
    scaling_settings,
    write_scaling,
)
from passt.utils.atomic import atomic_path
from passt.utils.device import synchronize
from passt.utils.errors import UsageError
from passt.variants import get_variant

log = logging.getLogger(__name__)


def check_out_dir(out: Path) -> None:
    """Fail before measuring when ``out`` cannot be created or written."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out):
            pass
    except OSError as e:
        raise UsageError(f"output folder {out} cannot be written: {e.strerror or e}") from None


def profile_variants(variants: Sequence[str], preset: Preset, out: Path,
                     overrides: dict | None = None, kinds: Sequence[str] = KINDS,
                     peers: Sequence[str] = (), warmup: int = 2, repeats: int = 3,
                     memory_history: bool = False) -> list[StepProfile]:
    """Profile a training and an inference step of each variant (and each peer's training
    step) under ``preset`` with ``overrides``, eagerly; write the files into ``out``.
    ``memory_history``: on CUDA, after each training step is profiled, one more step's
    allocator history as ``memory_<variant>.pickle`` (`record_memory_history`)."""
    for name in variants:
        get_variant(name)
    unavailable = {peer: peer_unavailable_reason(peer) for peer in peers}  # checks the names
    settings = {v: preset.settings(v, **{**(overrides or {}), "compile": False})
                for v in variants}  # fails early on clips the variant cannot take
    check_out_dir(out)
    profiles = []
    for variant, s in settings.items():
        for kind in kinds:
            log.info("profiling %s %s", variant, kind)
            step = build_step(s, kind)
            profiles.append(profile_step(step, warmup=warmup, repeats=repeats))
            if memory_history and kind == "train" and step.device.type == "cuda":
                record_memory_history(step, out / f"memory_{variant}.pickle")
            del step
        for peer in peers:
            reason = unavailable[peer] or peer_unsupported_reason(s.model_config)
            if reason is not None:
                log.warning("peer %s skipped: %s", peer, reason)
                continue
            profiles.append(profile_step(build_peer_step(peer, peer_settings(peer, s), "train"),
                                         name=f"{variant} [{peer}]", warmup=warmup,
                                         repeats=repeats))
    write_profile(profiles, out)
    return profiles


def profile_scaling(variants: Sequence[str], preset: Preset, out: Path,
                    clips: Sequence[float], overrides: dict | None = None) -> list[ScalingPoint]:
    """Measure each variant's training step at each clip length; write the files into
    ``out``."""
    for name in variants:
        get_variant(name)
    check_clip_lengths(preset, variants, clips, overrides)
    check_out_dir(out)
    points = []
    for variant in variants:
        for seconds in sorted(clips):
            log.info("scaling %s at %.1f s", variant, seconds)
            points.append(measure_point(scaling_settings(preset, variant, seconds,
                                                         **(overrides or {}))))
    write_scaling(points, out)
    return points


def run_profile(cfg: ProfileConfig) -> Path:
    """``passt profile``: the breakdown (or with ``cfg.scaling`` the scaling) of ``cfg``;
    returns the markdown summary written into ``cfg.out``."""
    out = Path(cfg.out)
    if cfg.scaling:
        profile_scaling(cfg.chosen_variants, cfg.benchmark_preset, out, cfg.clips,
                        cfg.overrides)
        return out / "scaling.md"
    profile_variants(cfg.chosen_variants, cfg.benchmark_preset, out, cfg.overrides,
                     kinds=cfg.kinds, peers=cfg.peers, warmup=cfg.warmup, repeats=cfg.repeats,
                     memory_history=cfg.memory_history)
    return out / "profile.md"


# A short history: one training step of a large variant makes about 10-20k allocator events;
# Python stacks only (C++ stacks make recording many times slower).
HISTORY_ENTRIES = 20_000


def record_memory_history(step: Step, path: Path) -> Path:
    """One step of CUDA ``step`` with the allocator's history recorded (Python stacks, the last
    `HISTORY_ENTRIES` events), written to ``path`` for https://pytorch.org/memory_viz. Run it
    after the step's timing: recording slows the allocator."""
    synchronize(step.device)
    torch.cuda.memory._record_memory_history(max_entries=HISTORY_ENTRIES, stacks="python")
    try:
        step()
        synchronize(step.device)
        snapshot = torch.cuda.memory._snapshot()
    finally:
        torch.cuda.memory._record_memory_history(enabled=None)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        pickle.dump(snapshot, f)
    return path
