"""The training loop: `Trainer` runs one rank's share of a run, `train` sets it up and runs it."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from passt.data import Augment, BalancedSampler, align_classes, class_names
from passt.eval.evaluate import evaluate
from passt.eval.metrics import format_metrics
from passt.eval.tasks import Metrics, check_targets, task_loss
from passt.measure.flops import train_flops_per_sample
from passt.run_checkpoint import RunCheckpoint
from passt.train.config import TrainConfig
from passt.train.distributed import Cluster
from passt.train.plan import (
    build_model,
    clip_frames,
    open_eval_set,
    open_train_set,
    plan_steps,
    train_frontend,
)
from passt.train.run_files import LAST_CHECKPOINT, MetricsLog
from passt.train.schedule import make_schedule
from passt.utils.device import synchronize
from passt.utils.errors import UsageError
from passt.utils.optional import require
from passt.utils.precision import autocast, backward_and_step

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger(__name__)


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
    train_samples: int  # clips trained on, all ranks
    train_tflops: float  # training compute spent, counted on the model
    train_clips: int  # distinct clips in the training set
    metrics: dict[str, Any] | None
    embed_dim: int
    depth: int
    num_heads: int
    out_dir: Path


StepHook = Callable[[Progress], None]


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

        self.frontend = train_frontend(cfg).to(self.device)
        torch.manual_seed(cfg.seed)  # the same initial weights on every rank
        model = build_model(cfg, train_set.num_classes,
                            clip_frames(cfg.clip_seconds, self.frontend),
                            frame_seconds=self.frontend.config.frame_seconds,
                            label_names=class_names(train_set))
        model.head_dist.requires_grad_(False)  # unused in forward (DDP needs every grad used)
        self.model = model.to(self.device)
        self.net: nn.Module = self.model
        frames = clip_frames(cfg.clip_seconds, self.frontend)
        self.samples_per_step = cfg.batch_size * cluster.world_size
        self.flops_per_step = train_flops_per_sample(self.model, frames) * self.samples_per_step
        self.steps_per_epoch, self.total_steps = plan_steps(
            cfg, train_set, cluster.world_size, self.flops_per_step)
        self.eval_steps = self._eval_steps()
        if cluster.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
        torch.manual_seed(cfg.seed + 1 + cluster.rank)  # augmentation and patchout draws
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                           fused=self.device.type == "cuda")
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, make_schedule(
                cfg.schedule, self.total_steps, warmup_steps=cfg.warmup_steps,
                decay_start=cfg.decay_start, min_lr_ratio=cfg.min_lr_ratio))
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.dtype == "fp16" else None
        self.augment = Augment(cfg.augment)  # torch's generator: its state is checkpointed
        self.sampler = self._make_sampler()

    def _eval_steps(self) -> frozenset[int]:
        """The steps `eval_points` evaluates at, evenly spaced, the last one included."""
        n = self.cfg.eval_points
        if n is None:
            return frozenset()
        if self.total_steps is None:
            raise UsageError("eval_points needs a step count: set epochs, max_steps or "
                             "max_tflops, not max_minutes alone")
        return frozenset(max(1, round(self.total_steps * i / n)) for i in range(1, n + 1))

    def _spent(self) -> dict[str, float | int]:
        """The training so far in samples and TFLOPs, for the metrics rows."""
        s = self.state
        return {"train_samples": s.step * self.samples_per_step,
                "train_tflops": round(s.step * self.flops_per_step / 1e12, 6)}

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
        return self.cluster.all_gather(own)

    def save(self) -> None:
        """Checkpoint the whole run to ``last.pt`` (every rank must call this)."""
        rng = self._rng_states()
        if not self.cluster.main:
            return
        RunCheckpoint(
            config=self.cfg.to_dict(), num_classes=self.train_set.num_classes,
            label_names=class_names(self.train_set) or [],
            model=self.model.state_dict(), optimizer=self.optimizer.state_dict(),
            scheduler=self.scheduler.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler is not None else None,
            progress=dataclasses.asdict(self.state), world_size=self.cluster.world_size,
            rng=rng, metrics=self.last_metrics,
            model_args=dataclasses.asdict(self.model.cfg),
            frontend_args=dataclasses.asdict(self.frontend.config),
        ).save(self.out_dir / LAST_CHECKPOINT)
        log.info("checkpoint at step %d: %s", self.state.step, self.out_dir / LAST_CHECKPOINT)

    def restore(self, ckpt: RunCheckpoint) -> None:
        """Continue from ``ckpt``: weights, optimizer, schedule, scaler, progress, RNG."""
        self.cfg.check_resumable(TrainConfig.from_dict(ckpt.config))
        self.model.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.optimizer)
        self.scheduler.load_state_dict(ckpt.scheduler)
        if self.scaler is not None:
            self.scaler.load_state_dict(ckpt.scaler)
        self.state = Progress(**ckpt.progress)
        self.last_metrics = ckpt.metrics if self.cluster.main else None  # rank 0 evaluates
        if ckpt.world_size == self.cluster.world_size:
            rng = ckpt.rng[self.cluster.rank]
            torch.set_rng_state(rng["cpu"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        else:
            log.warning("resuming %d rank(s) from a run of %d: random draws differ from an "
                        "uninterrupted run", self.cluster.world_size, ckpt.world_size)
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
        loss = task_loss(self.cfg.task, logits.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        backward_and_step(loss, self.optimizer, self.scaler)
        self.lr = self.scheduler.get_last_lr()[0]  # the rate this step used
        self.scheduler.step()
        return loss.detach()

    def _done(self) -> bool:
        s, cfg = self.state, self.cfg
        if self.total_steps is not None and s.step >= self.total_steps:
            return True
        if cfg.max_minutes is None:
            return False
        return self.cluster.any(s.train_seconds >= 60.0 * cfg.max_minutes)

    def _log_train(self, loss_sum: Tensor, steps: int, bar: tqdm) -> None:
        loss = self.cluster.mean(loss_sum.item() / steps)
        if not self.cluster.main:
            return
        s = self.state
        row = {"kind": "train", "step": s.step, "epoch": s.epoch + 1, "loss": round(loss, 6),
               "lr": float(f"{self.lr:.6g}"), "seconds": round(s.train_seconds, 3),
               **self._spent()}
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
            eval_due = s.step in self.eval_steps and not done  # the end evaluates anyway
            if log_due or checkpoint_due or eval_due or done or s.batch == self.steps_per_epoch:
                self._read_clock(sync=True)
            bar.update()
            if log_due:
                self._log_train(loss_sum, loss_steps, bar)
                loss_sum, loss_steps = torch.zeros((), device=self.device), 0
            if eval_due:
                self._evaluate()
                self.net.train()
                self.frontend.train()
            if checkpoint_due or eval_due:
                self.save()
            for hook in hooks:
                hook(s)
            if done:
                break
            if log_due or checkpoint_due or eval_due:
                self._tick = time.perf_counter()  # not training time, and the device is idle

    def _end_epoch(self) -> None:
        """Evaluate (unless `eval_points` says when), log and checkpoint after a (possibly
        shortened) epoch."""
        s = self.state
        if self.cfg.eval_points is None or self._done():
            self._evaluate()
        s.epoch += 1
        s.batch = 0
        self.save()

    def _evaluate(self) -> None:
        """Score the eval set and log the row (rank 0 has the metrics)."""
        s, cfg = self.state, self.cfg
        start = time.perf_counter()
        metrics = evaluate(self.model, self.frontend, self.eval_set, self.cluster,
                           batch_size=cfg.eval_batch_size or cfg.batch_size, dtype=cfg.dtype,
                           num_workers=cfg.num_workers, task=cfg.task)
        if metrics is not None:
            self.last_metrics = _metrics_row(metrics)
            row = {"kind": "eval", "step": s.step, "epoch": s.epoch + 1, **self.last_metrics,
                   "seconds": round(s.train_seconds, 3), **self._spent(),
                   "eval_seconds": round(time.perf_counter() - start, 3)}
            self.log.append(row)
            log.info("epoch %d, step %d: %s", s.epoch + 1, s.step,
                     format_metrics(self.last_metrics))

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
        spent = self._spent()
        return TrainResult(step=self.state.step, epochs=self.state.epoch,
                           train_seconds=self.state.train_seconds,
                           train_samples=int(spent["train_samples"]),
                           train_tflops=float(spent["train_tflops"]),
                           train_clips=len(self.train_set), metrics=self.last_metrics,
                           embed_dim=mc.embed_dim, depth=mc.depth, num_heads=mc.num_heads,
                           out_dir=self.out_dir)


def _metrics_row(m: Metrics) -> dict[str, Any]:
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
    with Cluster.join(cfg.device) as cluster:
        out_dir = Path(cfg.out_dir)
        last = out_dir / LAST_CHECKPOINT
        if last.exists() and not resume:
            raise UsageError(f"{out_dir} holds a run ({LAST_CHECKPOINT}); pass resume (--resume)"
                             " to continue it, or choose another output folder")
        train_set = train_set if train_set is not None else open_train_set(cfg)
        eval_set = eval_set if eval_set is not None else open_eval_set(cfg, train_set)
        eval_set = align_classes(eval_set, class_names(train_set), train_set.num_classes)
        check_targets(cfg.task, train_set, "the training data")
        check_targets(cfg.task, eval_set, "the eval data")
        bar = sys.stderr.isatty() if progress is None else progress
        trainer = Trainer(cfg, cluster, train_set, eval_set, bar)
        if resume and last.exists():
            trainer.restore(RunCheckpoint.load(last))
        elif resume:
            log.info("no checkpoint in %s: starting afresh", out_dir)
        if cluster.main:  # OUT is made once the data, model and plan are known to be good
            out_dir.mkdir(parents=True, exist_ok=True)
            trainer.log.truncate(trainer.state.step)
        trainer.fit(hooks)
        return trainer.result()
