"""Measuring each grid point of ``passt tradeoff`` on one checkpoint: tokens, FLOPs,
inference speed against the unreduced model, and accuracy with bootstrap intervals."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from passt.checkpoints import load_torch_file
from passt.data import align_classes, open_dataset
from passt.eval.metrics import accuracy, mean_average_precision
from passt.eval.tasks import Task, task_scores
from passt.frontend import MelFrontend, create_frontend
from passt.inference.run import load_model
from passt.measure.flops import torch_flops
from passt.measure.foreign_cpu import ForeignCpu, too_busy
from passt.measure.record import device_name
from passt.measure.stability import Stability, ratio_stability
from passt.measure.timing import RoundPlan, Timing, time_rounds
from passt.model import PaSST, token_counts
from passt.run_checkpoint import RunCheckpoint, is_run_checkpoint
from passt.tradeoff.grid import REFERENCE, GridPoint
from passt.train import TrainConfig, open_eval_set
from passt.utils.device import resolve_device, synchronize
from passt.utils.errors import UsageError
from passt.utils.precision import autocast
from passt.variants import mean_seq_len

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Row:
    """One grid point's measurements."""

    strategy: str
    setting: str
    tokens: int  # mean tokens per block
    tokens_per_block: tuple[int, ...]
    gflops_per_sample: float  # the model's forward at the timed batch, FlopCounterMode
    samples_per_s: float
    samples_per_s_ci_low: float | None
    samples_per_s_ci_high: float | None
    speedup: float  # over the unreduced model, timed in alternating rounds
    speedup_ci_low: float | None
    speedup_ci_high: float | None
    unstable: bool  # the speed-up's 95% interval is wider than +-3%, or others took the CPUs
    foreign_cpu_fraction: float | None  # CPU time other processes took while it was timed
    metric: str  # map or accuracy
    value: float
    ci_low: float
    ci_high: float
    change: float  # value minus the unreduced model's, on the same clips
    change_ci_low: float
    change_ci_high: float
    clips: int
    batch_size: int
    device: str  # the GPU's name, or the CPU's and its threads
    dtype: str


@dataclass(frozen=True)
class Loaded:
    """A checkpoint's model and what scoring it needs."""

    model: PaSST
    frontend: MelFrontend
    task: Task
    label_names: list[str] | None
    clip_seconds: float
    train_config: TrainConfig | None  # a `passt train` checkpoint's


def load(checkpoint: str | Path, variant: str | None = None,
         model_overrides: dict[str, Any] | None = None,
         clip_seconds: float | None = None) -> Loaded:
    """The model of an official state_dict (as ``variant``) or a `passt train` checkpoint."""
    raw = load_torch_file(checkpoint)
    loaded = load_model(raw, variant, **(model_overrides or {}))
    train_config = (TrainConfig.from_dict(RunCheckpoint.read(raw).config)
                    if is_run_checkpoint(raw) else None)
    seconds = clip_seconds or loaded.clip_seconds or 10.0
    return Loaded(loaded.model, (loaded.frontend or create_frontend()).eval(), loaded.task,
                  loaded.label_names, seconds, train_config)


def eval_clips(loaded: Loaded, data: str | None, data_options: dict[str, Any] | None = None,
               split: str = "eval") -> Dataset:
    """``data`` (a spec of `passt.data.open_dataset`), or a `passt train` checkpoint's own
    eval data; its classes lined up with the checkpoint's."""
    if data is None:
        if loaded.train_config is None:
            raise UsageError("an official checkpoint names no eval data: give --data")
        dataset = open_eval_set(dataclasses.replace(loaded.train_config, eval_split=split))
    else:
        dataset = open_dataset(data, clip_seconds=loaded.clip_seconds, split=split,
                               **(data_options or {}))
    return align_classes(dataset, loaded.label_names, loaded.model.cfg.num_classes,
                         what="the data", model="the checkpoint")


def point_models(loaded: Loaded, points: Sequence[GridPoint],
                 device: torch.device) -> list[PaSST]:
    """One eval-mode model per point on ``device``, every one the checkpoint's weights loaded
    strictly (and shared: the tensors are the same)."""
    weights = {k: v.to(device) for k, v in loaded.model.state_dict().items()}
    models = []
    for point in points:
        model = PaSST(point.config(loaded.model.cfg)).to(device)
        model.load_state_dict(weights, strict=True, assign=True)
        models.append(model.eval())
    return models


def score(models: Sequence[nn.Module], frontend: nn.Module, dataset: Dataset, task: Task,
          device: torch.device, batch_size: int, dtype: str) -> tuple[list[np.ndarray],
                                                                      np.ndarray]:
    """Every model's scores of ``dataset`` (``[clips, classes]`` each) and the targets: one
    pass over the clips, each batch's log-mel made once."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False,
                        generator=torch.Generator())
    scores: list[list[np.ndarray]] = [[] for _ in models]
    targets = []
    with torch.inference_mode():
        for waves, target in loader:
            mel = frontend(waves.to(device))
            for model, out in zip(models, scores, strict=True):
                with autocast(dtype, device.type):
                    logits = model(mel)
                out.append(task_scores(task, logits.float()).cpu().numpy())
            targets.append(target.numpy())
    if not targets:
        raise UsageError("the eval data holds no clips")
    return [np.concatenate(s) for s in scores], np.concatenate(targets)


def metric_of(task: Task) -> tuple[str, Callable[[np.ndarray, np.ndarray], float]]:
    return ("accuracy", accuracy) if task == "single-label" else ("map", mean_average_precision)


def bootstrap(scores: Sequence[np.ndarray], targets: np.ndarray, task: Task,
              resamples: int, seed: int) -> list[tuple[float, float, float, float, float, float]]:
    """Per model: the metric, its 95% interval over ``resamples`` resamplings of the clips,
    its change from the first model's and that change's paired interval (the same resampled
    clips). The intervals are the basic (pivotal) bootstrap's, ``2 v - q97.5`` to
    ``2 v - q2.5``: a resample repeats clips, and repeated scores raise a resample's mAP,
    which the percentile interval would carry over (it can miss the value itself)."""
    _, fn = metric_of(task)
    rng = np.random.default_rng(seed)
    n = len(targets)
    draws = [rng.integers(0, n, n) for _ in range(resamples)]
    values = [[_metric(fn, s[i], targets[i]) for i in draws] for s in scores]
    full = [fn(s, targets) for s in scores]
    out = []
    for value, boot in zip(full, values, strict=True):
        diff = np.asarray(boot) - np.asarray(values[0])
        out.append((value, *_interval(value, boot), value - full[0],
                    *_interval(value - full[0], diff)))
    return out


def _metric(fn: Callable[[np.ndarray, np.ndarray], float], s: np.ndarray,
            t: np.ndarray) -> float:
    try:
        return fn(s, t)
    except UsageError:  # a resample without positives for every class
        return math.nan


def _interval(value: float, resampled: Sequence[float]) -> tuple[float, float]:
    """The basic bootstrap's 95% interval of ``value`` from its ``resampled`` values."""
    low, high = np.nanpercentile(np.asarray(resampled, dtype=float), [2.5, 97.5])
    return float(2 * value - high), float(2 * value - low)


class ForwardStep:
    """Frontend and model on a fixed batch under ``inference_mode``: a timeable step."""

    def __init__(self, model: nn.Module, frontend: nn.Module, waves: Tensor, dtype: str):
        self.model, self.frontend, self.waves, self.dtype = model, frontend, waves, dtype
        self.device = waves.device

    def __call__(self) -> None:
        with torch.inference_mode(), autocast(self.dtype, self.device.type):
            self.model(self.frontend(self.waves))


@dataclass(frozen=True)
class PointTiming:
    """A grid point's inference timing and its speed-up over the unreduced model."""

    timing: Timing
    speedup: Stability  # of the per-round ratios: the unreduced model's time over this one's
    foreign_cpu_fraction: float | None  # others' CPU use while it was timed
    unstable: bool  # the speed-up's interval missed the target, or others took the CPUs


def time_points(models: Sequence[nn.Module], frontend: nn.Module, waves: Tensor, dtype: str,
                warmup: int, plan: RoundPlan) -> list[PointTiming]:
    """Per model: its timing and its speed-up over the first (the unreduced) model, each
    timed in alternating rounds with the first; the first's own from all its rounds."""
    reference = ForwardStep(models[0], frontend, waves, dtype)
    batch = waves.shape[0]
    ref_times: list[float] = []
    out = []
    for model in models[1:]:
        with ForeignCpu() as foreign:
            ours, theirs = time_rounds([reference, ForwardStep(model, frontend, waves, dtype)],
                                       warmup, plan)
        ref_times += ours
        ratio = ratio_stability(ours, theirs)
        out.append(PointTiming(Timing.of(theirs, batch, warmup, plan.ci_target), ratio,
                               foreign.fraction,
                               not ratio.meets(plan.ci_target) or foreign.too_busy))
    fractions = [p.foreign_cpu_fraction for p in out]
    if not ref_times:  # the grid holds the unreduced model only
        with ForeignCpu() as foreign:
            ref_times = time_rounds([reference], warmup, plan)[0]
        fractions = [foreign.fraction]
    synchronize(waves.device)
    own = Timing.of(ref_times, batch, warmup, plan.ci_target)
    most = max((f for f in fractions if f is not None), default=None)
    itself = Stability(median=1.0, ci_low=1.0, ci_high=1.0, iqr_over_median=0.0,
                       rounds=len(ref_times))
    return [PointTiming(own, itself, most, own.unstable or too_busy(most)), *out]


def run_tradeoff(loaded: Loaded, dataset: Dataset, points: Sequence[GridPoint], *,
                 device: str = "auto", dtype: str = "fp32", batch_size: int = 8,
                 resamples: int = 1000, seed: int = 0, warmup: int = 2,
                 plan: RoundPlan | None = None) -> list[Row]:
    """Measure every grid point (the first must be the unreduced model) on ``dataset``."""
    if not points or points[0].strategy != REFERENCE:
        raise UsageError("the grid's first point must be the unreduced model")
    dev = resolve_device(device)
    plan = plan or RoundPlan(6, 200, 10.0)
    frontend = loaded.frontend.to(dev).eval()
    models = point_models(loaded, points, dev)
    clips = len(dataset)
    log.info("scoring %d clips with %d settings", clips, len(points))
    scores, targets = score(models, frontend, dataset, loaded.task, dev, batch_size, dtype)
    metric, _ = metric_of(loaded.task)
    stats = bootstrap(scores, targets, loaded.task, resamples, seed)
    waves = torch.stack([torch.as_tensor(dataset[i][0])
                         for i in range(min(batch_size, clips))]).to(dev)
    with torch.inference_mode():
        mel = frontend(waves)  # FLOPs per sample at the timed batch: flex resizes once a batch
    timings = time_points(models, frontend, waves, dtype, warmup, plan)
    rows = []
    for point, model, stat, timed in zip(points, models, stats, timings, strict=True):
        with torch.no_grad():
            counts = tuple(token_counts(model, mel[:1]))
            flops = torch_flops(lambda model=model: model(mel)) / len(mel)
        timing, speed = timed.timing, timed.speedup
        s = timing.stability
        rows.append(Row(
            strategy=point.strategy, setting=point.setting, tokens=mean_seq_len(counts),
            tokens_per_block=counts, gflops_per_sample=flops / 1e9,
            samples_per_s=timing.samples_per_s,
            samples_per_s_ci_low=None if s.ci_high is None else len(waves) / s.ci_high,
            samples_per_s_ci_high=None if s.ci_low is None else len(waves) / s.ci_low,
            speedup=speed.median, speedup_ci_low=speed.ci_low, speedup_ci_high=speed.ci_high,
            unstable=timed.unstable, foreign_cpu_fraction=timed.foreign_cpu_fraction,
            metric=metric, value=stat[0], ci_low=stat[1], ci_high=stat[2], change=stat[3],
            change_ci_low=stat[4], change_ci_high=stat[5], clips=clips,
            batch_size=len(waves), device=device_name(dev), dtype=dtype))
    return rows


