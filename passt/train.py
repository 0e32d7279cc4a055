"""Training a PaSST for audio tagging, as in the paper, on one process or under ``torchrun``.

AdamW (weight decay 1e-4) with a linear warm-up, a constant phase and a linear decay to 1% of
the peak learning rate; AMP (bf16, or fp16 with gradient scaling); a class-balanced sampler;
waveform and spectrogram augmentations; mAP on the eval split after every epoch. The whole
training state is checkpointed atomically every epoch (and every ``checkpoint_every`` steps),
so ``resume=True`` continues a crashed run at the same step and in the same sampler order.
Metrics are appended to ``metrics.jsonl`` and ``metrics.csv`` in the run's folder.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from passt.atomic import atomic_path, write_text_atomic
from passt.data import Augment, AugmentConfig, BalancedSampler, open_dataset
from passt.device import synchronize
from passt.errors import UsageError
from passt.evaluate import evaluate
from passt.factory import create_model
from passt.frontend import MelFrontend, create_frontend
from passt.metrics import TaggingMetrics
from passt.model import PaSST, grid_size
from passt.optional import require
from passt.precision import DTYPES, autocast, backward_and_step
from passt.variants import get_variant, proportional_patchout

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger(__name__)

SCHEDULES = ("paper", "constant")
INIT_KINDS = ("imagenet", "checkpoint")
CHECKPOINT_FORMAT = "passt-train/1"
LAST_CHECKPOINT = "last.pt"
METRICS_JSONL = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
CSV_COLUMNS = ("kind", "step", "epoch", "loss", "lr", "map", "roc_auc", "d_prime", "chance_map",
               "seconds")
# settings that may change when a run is resumed; every other one must match the checkpoint's
RUNTIME_FIELDS = ("out_dir", "num_workers", "device")
WARMUP_FRACTION = 0.05  # the paper: 5 of 100 epochs of warm-up,
DECAY_FRACTION = 0.5  # constant until epoch 50, then a linear decay to epoch 100
PAPER_CLIP_SECONDS = 10.0


@dataclass
class TrainConfig:
    """Everything that defines a training run; stored in its checkpoints."""

    variant: str = "passt-s"
    data: str = "synthetic"  # passt.data.open_dataset spec: synthetic | folder:DIR | hdf5:FILE
    data_options: dict[str, Any] = field(default_factory=dict)  # open_dataset keywords
    eval_data: str | None = None  # another spec for the eval split (an HDF5 file is a split)
    eval_split: str = "eval"
    eval_data_options: dict[str, Any] = field(default_factory=dict)  # eval split's, over those
    model_overrides: dict[str, Any] = field(default_factory=dict)  # create_model: embed_dim...
    init: str | None = None  # "imagenet:PATH" or "checkpoint:PATH" (an official PaSST)
    frontend_overrides: dict[str, Any] = field(default_factory=dict)  # e.g. freq_mask=0
    clip_seconds: float = 10.0
    batch_size: int = 12
    eval_batch_size: int | None = None  # default: batch_size
    epochs: int | None = 10  # None: until max_steps or max_minutes
    max_steps: int | None = None
    steps_per_epoch: int | None = None  # default: one pass over the training clips
    max_minutes: float | None = None  # stop (evaluate, checkpoint) after this much training
    lr: float = 1e-5
    weight_decay: float = 1e-4
    schedule: str = "paper"  # paper: warm-up, constant, linear decay; constant: no decay
    warmup_steps: int | None = None  # default: 5% of the steps
    decay_start: int | None = None  # default: half of the steps
    min_lr_ratio: float = 0.01  # the decay's floor, relative to lr
    dtype: str = "fp32"
    device: str = "auto"  # auto: this rank's GPU if there is one, else the CPU
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    balanced: bool = True  # class-balanced sampling; False: uniform
    num_workers: int = 0
    seed: int = 0
    log_every: int = 10  # steps per training-metrics row
    checkpoint_every: int | None = None  # steps between mid-epoch checkpoints
    out_dir: str = "runs/train"

    def __post_init__(self) -> None:
        if isinstance(self.augment, dict):
            self.augment = AugmentConfig(**self.augment)
        for name in ("batch_size", "log_every"):
            _check_int(name, getattr(self, name), minimum=1)
        for name in ("eval_batch_size", "epochs", "max_steps", "steps_per_epoch",
                     "checkpoint_every"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=1)
        for name in ("warmup_steps", "decay_start"):
            if getattr(self, name) is not None:
                _check_int(name, getattr(self, name), minimum=0)
        _check_int("num_workers", self.num_workers, minimum=0)
        for name in ("clip_seconds", "lr"):
            value = getattr(self, name)
            if not 0 < value < math.inf:
                raise UsageError(f"{name} must be positive and finite, got {value}")
        if self.max_minutes is not None and not 0 < self.max_minutes < math.inf:
            raise UsageError(f"max_minutes must be positive and finite, got {self.max_minutes}")
        if self.weight_decay < 0:
            raise UsageError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise UsageError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.dtype not in DTYPES:
            raise UsageError(f"unknown dtype {self.dtype!r}; accepted: {', '.join(DTYPES)}")
        if self.schedule not in SCHEDULES:
            raise UsageError(
                f"unknown schedule {self.schedule!r}; accepted: {', '.join(SCHEDULES)}"
            )
        if self.epochs is None and self.max_steps is None and self.max_minutes is None:
            raise UsageError("an unbounded run: set epochs, max_steps or max_minutes")
        if "num_classes" in self.model_overrides:
            raise UsageError("num_classes comes from the dataset; remove it from the model "
                             "overrides")
        if self.init is not None:
            parse_init(self.init)
        get_variant(self.variant)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise UsageError(f"unknown training setting(s) {unknown}")
        return cls(**values)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}")


def parse_init(init: str) -> tuple[str, str]:
    """``"imagenet:PATH"`` or ``"checkpoint:PATH"`` as ``(kind, path)``."""
    kind, sep, path = init.partition(":")
    if not sep or kind not in INIT_KINDS or not path:
        raise UsageError(
            f"init must be 'imagenet:PATH' or 'checkpoint:PATH', got {init!r}"
        )
    return kind, path


# --- the learning-rate schedule ----------------------------------------------------------------


@dataclass(frozen=True)
class WarmupLinearDecay:
    """LR factor of step ``s`` for `LambdaLR`: a linear warm-up reaching 1 after
    ``warmup_steps``, then 1 until ``decay_start``, then linear to ``floor`` at ``decay_end``
    and ``floor`` after. ``decay_start=None`` never decays."""

    warmup_steps: int
    decay_start: int | None
    decay_end: int
    floor: float = 0.01

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.decay_start is None or step < self.decay_start:
            return 1.0
        if step >= self.decay_end:
            return self.floor
        done = (step - self.decay_start) / (self.decay_end - self.decay_start)
        return 1.0 - (1.0 - self.floor) * done


def make_schedule(cfg: TrainConfig, total_steps: int | None) -> WarmupLinearDecay:
    """The schedule of ``cfg`` over ``total_steps`` (None: an unbounded, time-limited run)."""
    if cfg.schedule == "paper" and total_steps is None:
        raise UsageError("the paper schedule decays over a known number of steps: set epochs or "
                         "max_steps, or use schedule 'constant' for a time budget")
    horizon = total_steps or 0
    warmup = cfg.warmup_steps if cfg.warmup_steps is not None else round(
        WARMUP_FRACTION * horizon)
    if cfg.schedule == "constant":
        return WarmupLinearDecay(warmup, None, horizon, cfg.min_lr_ratio)
    start = cfg.decay_start if cfg.decay_start is not None else round(DECAY_FRACTION * horizon)
    if not warmup <= start <= horizon:
        raise UsageError(f"need warmup_steps ({warmup}) <= decay_start ({start}) <= the run's "
                         f"steps ({horizon})")
    return WarmupLinearDecay(warmup, start, horizon, cfg.min_lr_ratio)


# --- model and data ------------------------------------------------------------------------------


def clip_frames(clip_seconds: float, frontend: MelFrontend) -> int:
    """Log-mel frames of a clip of ``clip_seconds``."""
    return frontend.frames(round(clip_seconds * frontend.config.sample_rate))


def train_frontend(cfg: TrainConfig) -> MelFrontend:
    """The frontend of ``cfg`` (its overrides win): on clips shorter than the paper's 10 s,
    SpecAugment's time mask covers the same fraction of the clip (192 of 1000 frames)."""
    default = create_frontend()
    frames = clip_frames(cfg.clip_seconds, default)
    paper_frames = clip_frames(PAPER_CLIP_SECONDS, default)
    scaled = {"time_mask": round(default.config.time_mask * min(frames / paper_frames, 1.0))}
    return create_frontend(**{**scaled, **cfg.frontend_overrides})


def model_overrides(cfg: TrainConfig, num_classes: int, frames: int) -> dict[str, Any]:
    """`create_model` keywords of ``cfg``: its overrides, the class count, and patchout
    parameters that keep the paper's fraction of patches on ``frames``-long clips (given
    parameters win)."""
    base = {k: v for k, v in cfg.model_overrides.items() if k != "frames"}
    scaled = proportional_patchout(cfg.variant, frames, **base)
    return {**scaled, **cfg.model_overrides, "num_classes": num_classes}


def build_model(cfg: TrainConfig, num_classes: int, frames: int, init: bool = True) -> PaSST:
    """The model of ``cfg`` for ``frames``-long inputs, from ``cfg.init`` when ``init``."""
    kwargs = model_overrides(cfg, num_classes, frames)
    if init and cfg.init is not None:
        kind, path = parse_init(cfg.init)
        kwargs[kind] = path
    model = create_model(cfg.variant, **kwargs)
    mc = model.cfg
    if frames < mc.patch_size or grid_size(frames, mc.patch_size, mc.stride) > mc.grid[1]:
        raise UsageError(f"clips of {cfg.clip_seconds} s give {frames} frames; {cfg.variant} "
                         f"takes {mc.patch_size} to {mc.frames} frames")
    try:
        model.seq_len(frames, training=True)
    except ValueError as e:
        raise UsageError(f"clips of {cfg.clip_seconds} s are too short for the patchout of "
                         f"{cfg.variant}: {e}") from None
    return model


def plan_steps(cfg: TrainConfig, train_set: Dataset, world_size: int) -> tuple[int, int | None]:
    """Steps per epoch and in all (None: a time budget only) of ``cfg`` on ``train_set``."""
    per_step = cfg.batch_size * world_size
    # an epoch draws without replacement; the balanced sampler draws labelled clips only
    drawable = int((train_set.targets.sum(1) > 0).sum()) if cfg.balanced else len(train_set)
    full_batches = drawable // per_step
    per_epoch = cfg.steps_per_epoch or full_batches
    if not 1 <= per_epoch <= full_batches:
        kind = "labelled " if cfg.balanced else ""
        raise UsageError(f"an epoch draws without replacement: {drawable} {kind}training clips "
                         f"make {full_batches} batches of {cfg.batch_size} per rank on "
                         f"{world_size} rank(s), and steps_per_epoch is {per_epoch}")
    bounds = [cfg.max_steps, cfg.epochs * per_epoch if cfg.epochs is not None else None]
    known = [b for b in bounds if b is not None]
    return per_epoch, min(known) if known else None


def open_train_set(cfg: TrainConfig) -> Dataset:
    """The ``train`` split of ``cfg.data``."""
    return open_dataset(cfg.data, clip_seconds=cfg.clip_seconds, split="train",
                        **cfg.data_options)


def open_eval_set(cfg: TrainConfig) -> Dataset:
    """The eval split of ``cfg.eval_data`` (default ``cfg.data``), its options over the
    training data's."""
    return open_dataset(cfg.eval_data or cfg.data, clip_seconds=cfg.clip_seconds,
                        split=cfg.eval_split, **{**cfg.data_options, **cfg.eval_data_options})


# --- distributed setup ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """This process's place in the run: rank, world size and device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def join_cluster(device: str) -> tuple[Cluster, bool]:
    """Join the ``torchrun`` process group if the environment names one (gloo on CPU, nccl on
    CUDA); returns the cluster and whether this call created the group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise UsageError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {device!r} requested but CUDA is not available")
        torch.cuda.set_device(dev)
    if world == 1:
        return Cluster(0, 1, dev), False
    created = not dist.is_initialized()
    if created:
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return Cluster(dist.get_rank(), dist.get_world_size(), dev), created


def _any_rank(flag: bool, cluster: Cluster) -> bool:
    """Whether ``flag`` is set on any rank (every rank must call this)."""
    if not cluster.distributed:
        return flag
    t = torch.tensor([float(flag)], device=cluster.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def _mean_over_ranks(value: float, cluster: Cluster) -> float:
    if not cluster.distributed:
        return value
    t = torch.tensor([value], device=cluster.device, dtype=torch.float64)
    dist.all_reduce(t)
    return t.item() / cluster.world_size


# --- the metrics journal -------------------------------------------------------------------------


class MetricsLog:
    """Rows appended to ``metrics.jsonl`` (every field) and ``metrics.csv`` (`CSV_COLUMNS`),
    each flushed as written. `truncate` drops rows past a checkpoint's step on resume."""

    def __init__(self, out_dir: Path):
        self.jsonl = out_dir / METRICS_JSONL
        self.csv = out_dir / METRICS_CSV

    def rows(self) -> list[dict[str, Any]]:
        """The complete rows of ``metrics.jsonl`` (a line cut short by a crash is skipped)."""
        if not self.jsonl.exists():
            return []
        rows = []
        for line in self.jsonl.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s: skipping an incomplete line", self.jsonl)
        return rows

    def truncate(self, step: int) -> None:
        """Keep only the rows up to ``step`` (both files are rewritten atomically)."""
        kept = [r for r in self.rows() if r.get("step", math.inf) <= step]
        write_text_atomic(self.jsonl, "".join(json.dumps(r) + "\n" for r in kept))
        write_text_atomic(self.csv, _csv_text(kept, header=True))

    def append(self, row: dict[str, Any]) -> None:
        with self.jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        new = not self.csv.exists() or self.csv.stat().st_size == 0
        with self.csv.open("a", newline="") as f:
            f.write(_csv_text([row], header=new))


def _csv_text(rows: Iterable[dict[str, Any]], header: bool) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def save_atomic(obj: Any, path: Path) -> None:
    """`torch.save` ``obj`` over ``path`` in one step."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


# --- training ------------------------------------------------------------------------------------


@dataclass
class Progress:
    """Where a run stands: optimizer steps taken, epoch index, batches of that epoch consumed."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    train_seconds: float = 0.0  # device time: synchronised at logs, checkpoints, epoch ends


@dataclass(frozen=True)
class TrainResult:
    """The outcome of `train`: final progress, last eval metrics (rank 0), model shape."""

    step: int
    epochs: int
    train_seconds: float
    metrics: dict[str, Any] | None
    embed_dim: int
    depth: int
    num_heads: int
    out_dir: Path


StepHook = Callable[[Progress], None]


def load_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint written by `train` (tensors and plain values only: loaded safely)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for files it cannot read
        raise UsageError(f"{path} is not a PyTorch checkpoint: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise UsageError(f"{path} is not a training checkpoint of `passt train` "
                         f"(format {CHECKPOINT_FORMAT})")
    return ckpt


def load_trained_model(path: str | Path) -> tuple[PaSST, MelFrontend, TrainConfig]:
    """Model (eval mode, CPU), frontend and config of a `train` checkpoint."""
    ckpt = load_training_checkpoint(path)
    cfg = TrainConfig.from_dict(ckpt["config"])
    frontend = train_frontend(cfg)
    model = build_model(cfg, ckpt["num_classes"], clip_frames(cfg.clip_seconds, frontend),
                        init=False)
    model.load_state_dict(ckpt["model"])
    return model.eval(), frontend.eval(), cfg


class Trainer:
    """One rank's share of a training run; `fit` runs it to the end."""

    def __init__(self, cfg: TrainConfig, cluster: Cluster, train_set: Dataset,
                 eval_set: Dataset, progress_bar: bool):
        self.cfg, self.cluster = cfg, cluster
        self.train_set, self.eval_set = train_set, eval_set
        self.out_dir = Path(cfg.out_dir)
        self.device = cluster.device
        self.progress_bar = progress_bar and cluster.main
        self.log = MetricsLog(self.out_dir)
        self.state = Progress()
        self.last_metrics: dict[str, Any] | None = None
        self.lr = cfg.lr
        self._tick = time.perf_counter()  # the last reading of the training clock

        self.steps_per_epoch, self.total_steps = plan_steps(cfg, train_set,
                                                            cluster.world_size)

        self.frontend = train_frontend(cfg).to(self.device)
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        model = build_model(cfg, train_set.num_classes,
                            clip_frames(cfg.clip_seconds, self.frontend))
        model.head_dist.requires_grad_(False)  # unused in forward (DDP needs every grad used)
        self.model = model.to(self.device)
        self.net: nn.Module = self.model
        if cluster.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        torch.manual_seed(cfg.seed + 1 + cluster.rank)  # augmentation and patchout draws
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                           fused=self.device.type == "cuda")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, make_schedule(cfg, self.total_steps))
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.dtype == "fp16" else None
        self.augment = Augment(cfg.augment)  # torch's generator: its state is checkpointed
        self.sampler = self._make_sampler()

    def _make_sampler(self) -> Iterable[int]:
        cfg, c = self.cfg, self.cluster
        if cfg.balanced:
            return BalancedSampler(self.train_set.targets,
                                   num_samples=self.steps_per_epoch * cfg.batch_size * c.world_size,
                                   seed=cfg.seed, num_replicas=c.world_size, rank=c.rank)
        return torch.utils.data.DistributedSampler(
            self.train_set, num_replicas=c.world_size, rank=c.rank, shuffle=True,
            seed=cfg.seed, drop_last=True)

    # -- checkpoints --

    def _rng_states(self) -> list[dict[str, Tensor]]:
        own = {"cpu": torch.get_rng_state()}
        if self.device.type == "cuda":
            own["cuda"] = torch.cuda.get_rng_state(self.device)
        if not self.cluster.distributed:
            return [own]
        states: list[Any] = [None] * self.cluster.world_size
        dist.all_gather_object(states, own)
        return states

    def save(self) -> None:
        """Checkpoint the whole run to ``last.pt`` (every rank must call this)."""
        rng = self._rng_states()
        if not self.cluster.main:
            return
        ckpt = {
            "format": CHECKPOINT_FORMAT,
            "config": self.cfg.to_dict(),
            "num_classes": self.train_set.num_classes,
            "label_names": list(getattr(self.train_set, "label_names", [])),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "progress": dataclasses.asdict(self.state),
            "world_size": self.cluster.world_size,
            "rng": rng,
            "metrics": self.last_metrics,
        }
        save_atomic(ckpt, self.out_dir / LAST_CHECKPOINT)
        log.info("checkpoint at step %d: %s", self.state.step, self.out_dir / LAST_CHECKPOINT)

    def restore(self, ckpt: dict[str, Any]) -> None:
        """Continue from ``ckpt``: weights, optimizer, schedule, scaler, progress, RNG."""
        stored = TrainConfig.from_dict(ckpt["config"]).to_dict()
        ours = self.cfg.to_dict()
        changed = sorted(k for k in ours if k not in RUNTIME_FIELDS and ours[k] != stored[k])
        if changed:
            diffs = ", ".join(f"{k}: {stored[k]!r} -> {ours[k]!r}" for k in changed)
            raise UsageError(f"cannot resume with changed settings ({diffs}); only "
                             f"{', '.join(RUNTIME_FIELDS)} may change")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None:
            self.scaler.load_state_dict(ckpt["scaler"])
        self.state = Progress(**ckpt["progress"])
        self.last_metrics = ckpt["metrics"] if self.cluster.main else None  # rank 0 evaluates
        if ckpt["world_size"] == self.cluster.world_size:
            rng = ckpt["rng"][self.cluster.rank]
            torch.set_rng_state(rng["cpu"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        else:
            log.warning("resuming %d rank(s) from a run of %d: random draws differ from an "
                        "uninterrupted run", self.cluster.world_size, ckpt["world_size"])
        log.info("resumed at step %d (epoch %d, batch %d)", self.state.step,
                 self.state.epoch + 1, self.state.batch)

    # -- the loop --

    def _batches(self) -> DataLoader:
        """This epoch's remaining batches: the sampler's order, consumed batches skipped."""
        cfg, s = self.cfg, self.state
        self.sampler.set_epoch(s.epoch)
        order = list(self.sampler)[s.batch * cfg.batch_size:
                                   self.steps_per_epoch * cfg.batch_size]
        # the loader's own generator: workers' seeds repeat and the global RNG is untouched
        gen = torch.Generator().manual_seed(
            (cfg.seed * 1_000_003 + s.epoch) * 1009 + self.cluster.rank)
        return DataLoader(self.train_set, batch_size=cfg.batch_size, sampler=order,
                          drop_last=True, num_workers=cfg.num_workers, generator=gen,
                          pin_memory=self.device.type == "cuda")

    def _train_step(self, waves: Tensor, targets: Tensor) -> Tensor:
        """One optimizer step; returns the loss (on the device, not synchronised)."""
        waves = waves.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True).float()
        waves, targets = self.augment.waveform(waves, targets)
        mel = self.frontend(waves)
        mel, targets = self.augment.spectrogram(mel, targets)
        with autocast(self.cfg.dtype, self.device.type):
            logits = self.net(mel)
        loss = F.binary_cross_entropy_with_logits(logits.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        backward_and_step(loss, self.optimizer, self.scaler)
        self.lr = self.scheduler.get_last_lr()[0]  # the rate this step used
        self.scheduler.step()
        return loss.detach()

    def _done(self) -> bool:
        s, cfg = self.state, self.cfg
        if self.total_steps is not None and s.step >= self.total_steps:
            return True
        out_of_time = (cfg.max_minutes is not None
                       and s.train_seconds >= 60.0 * cfg.max_minutes)
        return _any_rank(out_of_time, self.cluster) if cfg.max_minutes is not None else False

    def _log_train(self, loss_sum: Tensor, steps: int, bar: tqdm) -> None:
        loss = _mean_over_ranks(loss_sum.item() / steps, self.cluster)
        if not self.cluster.main:
            return
        s = self.state
        row = {"kind": "train", "step": s.step, "epoch": s.epoch + 1, "loss": round(loss, 6),
               "lr": float(f"{self.lr:.6g}"), "seconds": round(s.train_seconds, 3)}
        self.log.append(row)
        bar.set_postfix(loss=f"{loss:.4f}", lr=f"{row['lr']:.2e}", refresh=False)

    def _read_clock(self, sync: bool) -> None:
        """Add the time since the last reading to ``train_seconds``; ``sync`` first waits for
        the work queued on the device (the host runs ahead of it), as reported values must."""
        if sync:
            synchronize(self.device)
        now = time.perf_counter()
        self.state.train_seconds += now - self._tick
        self._tick = now

    def _run_epoch(self, hooks: Sequence[StepHook], bar: tqdm) -> None:
        """Train on the epoch's remaining batches, checkpointing every ``checkpoint_every``."""
        cfg, s = self.cfg, self.state
        self.net.train()
        self.frontend.train()
        loss_sum, loss_steps = torch.zeros((), device=self.device), 0
        self._tick = time.perf_counter()
        for waves, targets in self._batches():
            loss_sum += self._train_step(waves, targets)
            loss_steps += 1
            s.step += 1
            s.batch += 1
            # unsynchronised, a lower bound of the device's time: the budget overshoots by
            # the steps still queued at most, and the pipeline does not stall every step
            self._read_clock(sync=False)
            done = self._done()
            log_due = s.step % cfg.log_every == 0
            # the epoch's end has its own checkpoint
            checkpoint_due = bool(cfg.checkpoint_every and s.step % cfg.checkpoint_every == 0
                                  and not done and s.batch < self.steps_per_epoch)
            if log_due or checkpoint_due or done or s.batch == self.steps_per_epoch:
                self._read_clock(sync=True)
            bar.update()
            if log_due:
                self._log_train(loss_sum, loss_steps, bar)
                loss_sum, loss_steps = torch.zeros((), device=self.device), 0
            if checkpoint_due:
                self.save()
            for hook in hooks:
                hook(s)
            if done:
                break
            if log_due or checkpoint_due:
                self._tick = time.perf_counter()  # not training time, and the device is idle

    def _end_epoch(self) -> None:
        """Evaluate, log and checkpoint after a (possibly shortened) epoch."""
        s, cfg = self.state, self.cfg
        start = time.perf_counter()
        metrics = evaluate(self.model, self.frontend, self.eval_set, device=self.device,
                           batch_size=cfg.eval_batch_size or cfg.batch_size, dtype=cfg.dtype,
                           num_workers=cfg.num_workers)
        if metrics is not None:
            self.last_metrics = _metrics_row(metrics)
            row = {"kind": "eval", "step": s.step, "epoch": s.epoch + 1, **self.last_metrics,
                   "seconds": round(s.train_seconds, 3),
                   "eval_seconds": round(time.perf_counter() - start, 3)}
            self.log.append(row)
            log.info("epoch %d, step %d: mAP %.4f (chance %.4f), ROC-AUC %.4f", s.epoch + 1,
                     s.step, metrics.map, metrics.chance_map, metrics.roc_auc)
        s.epoch += 1
        s.batch = 0
        self.save()

    def fit(self, hooks: Sequence[StepHook] = ()) -> None:
        """Train until the step, epoch or time budget is spent."""
        tqdm = require("tqdm", "showing progress").tqdm
        with tqdm(total=self.total_steps, initial=self.state.step, unit="step",
                  disable=not self.progress_bar, dynamic_ncols=True, file=sys.stderr) as bar:
            while not self._done():
                self._run_epoch(hooks, bar)
                self._end_epoch()

    def result(self) -> TrainResult:
        """Where the run stands, with its last evaluation (None on ranks other than 0)."""
        mc = self.model.cfg
        return TrainResult(step=self.state.step, epochs=self.state.epoch,
                           train_seconds=self.state.train_seconds, metrics=self.last_metrics,
                           embed_dim=mc.embed_dim, depth=mc.depth, num_heads=mc.num_heads,
                           out_dir=self.out_dir)


def _metrics_row(m: TaggingMetrics) -> dict[str, Any]:
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in m.as_dict().items()}


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    train_set: Dataset | None = None,
    eval_set: Dataset | None = None,
    hooks: Sequence[StepHook] = (),
    progress: bool | None = None,
) -> TrainResult:
    """Run (or with ``resume``, continue) the training of ``cfg``; returns its outcome.

    The datasets default to the train split of ``cfg.data`` and the eval split of
    ``cfg.eval_data`` (default ``cfg.data``). ``hooks`` are called after every step with the
    run's `Progress`. ``progress``: a tqdm bar (default: on a terminal).
    Under ``torchrun`` each process calls this; rank 0 writes the checkpoints and metrics.
    """
    cluster, created = join_cluster(cfg.device)
    try:
        out_dir = Path(cfg.out_dir)
        last = out_dir / LAST_CHECKPOINT
        if last.exists() and not resume:
            raise UsageError(f"{out_dir} holds a run ({LAST_CHECKPOINT}); pass resume (--resume)"
                             " to continue it, or choose another output folder")
        if cluster.main:
            out_dir.mkdir(parents=True, exist_ok=True)
        train_set = train_set if train_set is not None else open_train_set(cfg)
        eval_set = eval_set if eval_set is not None else open_eval_set(cfg)
        bar = sys.stderr.isatty() if progress is None else progress
        trainer = Trainer(cfg, cluster, train_set, eval_set, bar)
        if resume and last.exists():
            trainer.restore(load_training_checkpoint(last))
        elif resume:
            log.info("no checkpoint in %s: starting afresh", out_dir)
        if cluster.main:
            trainer.log.truncate(trainer.state.step)
        trainer.fit(hooks)
        return trainer.result()
    finally:
        if created:
            dist.destroy_process_group()
