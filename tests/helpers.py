"""Shared test helpers: the tiny model sizes, CLI spellings of them, and oracle utilities."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import passt
from passt.measure import StepSettings
from passt.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]

# The two model sizes every test starts from; a test that needs more says so, e.g.
# {**SMALL, "depth": 2}. Both keep the full-size patch grid, so patchout and shapes are real.
TINY = {"embed_dim": 32, "depth": 1, "num_heads": 2}  # training, CLI runs, sweeps
SMALL = {"embed_dim": 64, "depth": 1, "num_heads": 4}  # model maths, oracles, measurement
FEW_PATCHES = {"time": 2, "freq": 1}  # structured patchout: drop 2 time columns, 1 freq row

# A plugin registering 'tiny-s': SMALL with passt-s's structured patchout.
TINY_PLUGIN = textwrap.dedent(f"""
    import passt

    passt.register_variant(passt.Variant(
        "tiny-s", ("structured",), {{"time": 10, "freq": 2}},
        settings={SMALL!r}, description="a narrow passt-s"))
""")


def registries() -> list:
    """Every registry a user may add to (strategies, reductions, variants, datasets, peers,
    presets, ablations)."""
    from passt.data.factory import DATASETS
    from passt.measure.ablation import ABLATIONS
    from passt.measure.peers import PEERS
    from passt.measure.presets import PRESETS
    from passt.patchout import PATCHOUTS
    from passt.reductions.block import BLOCK_REDUCTIONS
    from passt.variants import VARIANTS

    return [PATCHOUTS, BLOCK_REDUCTIONS, VARIANTS, DATASETS, PEERS, PRESETS, ABLATIONS]


@contextlib.contextmanager
def forgetting_registrations():
    """Registries as they were once the block ends, whatever it registered."""
    saved = [(r, dict(r._entries)) for r in registries()]
    try:
        yield
    finally:
        for r, entries in saved:
            r._entries = entries


def step_settings(**kwargs) -> StepSettings:
    """Measured-step settings: SMALL with FEW_PATCHES on 1 s clips, batch 2; ``kwargs`` win."""
    return StepSettings(**{"model_overrides": {**SMALL, **FEW_PATCHES}, "clip_seconds": 1.0,
                           "batch_size": 2, **kwargs})


def train_config(out_dir: str | Path, **changes) -> TrainConfig:
    """Two epochs of passt-s at size TINY on 1 s clips, batch 4; ``changes`` win."""
    settings = {"variant": "passt-s", "clip_seconds": 1.0, "model_overrides": TINY,
                "batch_size": 4, "epochs": 2, "lr": 1e-3, "log_every": 1,
                "checkpoint_every": 2, "out_dir": str(out_dir), **changes}
    return TrainConfig(**settings)


def save_train_checkpoint(model: passt.PaSST, path: Path, classes: int = 10,
                          overrides: dict | None = None, clip_seconds: float = 4.0,
                          eval_size: int | None = None) -> Path:
    """A checkpoint in the layout `passt train` wrote first (format 1), of ``model`` (SMALL
    unless ``overrides`` say otherwise) trained on ``clip_seconds`` clips; ``eval_size``: the
    synthetic clips of its eval data."""
    config = {"variant": "passt-s", "model_overrides": SMALL if overrides is None else overrides,
              "clip_seconds": clip_seconds}
    if eval_size is not None:
        config["data_options"] = {"size": eval_size}
    names = [f"c{i}" for i in range(classes)] if eval_size is None else []
    torch.save({"format": "passt-train/1", "model": model.state_dict(), "optimizer": {},
                "config": config, "num_classes": classes, "label_names": names}, path)
    return path


def run_bench(plugin: Path, *args: str, **env_vars: str) -> subprocess.CompletedProcess:
    """`pytest bench/` with ``plugin`` loaded, run in the plugin's folder."""
    env = {**os.environ, "PASST_PLUGINS": str(plugin), **env_vars}
    cmd = [sys.executable, "-m", "pytest", str(ROOT / "bench"), "--benchmark-only", "-q",
           "-p", "no:cacheprovider", f"--rootdir={ROOT}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=plugin.parent)


def overrides_arg(settings: dict) -> str:
    """``settings`` as the CLI's --model-overrides value, e.g. 'embed_dim=32,depth=1'."""
    return ",".join(f"{k}={v}" for k, v in settings.items())


def model_flags(settings: dict) -> list[str]:
    """``settings`` as the CLI's own model flags, e.g. ['--embed-dim', '32', '--depth', '1']."""
    return [part for k, v in settings.items() for part in (f"--{k.replace('_', '-')}", str(v))]


def quiet(fn, *args, **kwargs):
    """Call the official code with its prints and warnings silenced."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def token_count(model: passt.PaSST, x: torch.Tensor) -> int:
    """Sequence length entering the first transformer block for input ``x``."""
    seen = []
    handle = model.blocks[0].register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[1]))
    try:
        model(x)
    finally:
        handle.remove()
    return seen[0]


class NoHostSync(TorchDispatchMode):
    """Raises on any op that reads a tensor value back to Python (.item(), bool(t), ...)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            raise RuntimeError("host synchronisation in the training path")
        return func(*args, **(kwargs or {}))
