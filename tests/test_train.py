"""Training on a tiny in-test dataset: schedule, checkpoints, metrics rows, crash and resume."""

from __future__ import annotations

import dataclasses
import json
import math
import time

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

import passt.train.trainer
from passt.factory import create_model
from passt.run_checkpoint import RunCheckpoint
from passt.sweep.run import Budget, run_config, run_sweep
from passt.train import (
    LAST_CHECKPOINT,
    METRICS_CSV,
    METRICS_JSONL,
    MetricsLog,
    TrainConfig,
    WarmupLinearDecay,
    build_model,
    load_trained_model,
    make_schedule,
    train,
)
from tests.helpers import TINY, train_config

SAMPLE_RATE = 32000
CLIP_SECONDS = 1.0
SYNC_SECONDS = 0.1


class Tones(Dataset):
    """Clips holding a tone per positive class (class c at 300 * 2**c Hz) in noise, following
    the `passt.data.open_dataset` contract."""

    def __init__(self, size: int, split: str = "train", num_classes: int = 4):
        self.num_classes = num_classes
        self.label_names = [f"tone-{c}" for c in range(num_classes)]
        self.clip_samples = round(CLIP_SECONDS * SAMPLE_RATE)
        self.key = 0 if split == "train" else 1
        self.targets = np.stack([self._draw(i)[1] for i in range(size)])

    def _draw(self, index: int) -> tuple[np.random.Generator, np.ndarray]:
        rng = np.random.default_rng([self.key, index])
        target = (rng.random(self.num_classes) < 0.3).astype(np.float32)
        target[index % self.num_classes] = 1.0  # every clip labelled: balanced epochs use all
        return rng, target

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng, target = self._draw(index)
        t = np.arange(self.clip_samples) / SAMPLE_RATE
        x = 0.05 * rng.standard_normal(self.clip_samples)
        for c in np.flatnonzero(target):
            x += 0.3 * np.sin(2 * np.pi * 300 * 2**c * t)
        return x.astype(np.float32), target


@pytest.fixture(scope="module")
def tones():
    return Tones(24), Tones(16, split="eval")


def read_rows(out_dir) -> list[dict]:
    return [json.loads(line) for line in (out_dir / METRICS_JSONL).read_text().splitlines()]


def untimed(rows: list[dict]) -> list[dict]:
    """The rows without their wall-clock fields."""
    return [{k: v for k, v in r.items() if k not in ("seconds", "eval_seconds")} for r in rows]


def test_schedule_shape():
    f = WarmupLinearDecay(warmup_steps=4, decay_start=10, decay_end=20, floor=0.01)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(9) == 1.0 and f(10) == 1.0
    assert f(15) == pytest.approx(1 - 0.99 * 0.5)
    assert f(20) == f(100) == 0.01
    assert WarmupLinearDecay(0, None, 0)(10**6) == 1.0


def test_schedule_defaults_follow_the_paper():
    paper = make_schedule("paper", total_steps=1000)
    assert (paper.warmup_steps, paper.decay_start, paper.decay_end) == (50, 500, 1000)
    constant = make_schedule("constant", None, warmup_steps=3)
    assert constant.decay_start is None and constant(2) == 1.0
    with pytest.raises(ValueError, match="known number of steps"):
        make_schedule("paper", total_steps=None)
    with pytest.raises(ValueError, match="warmup_steps"):
        make_schedule("paper", total_steps=100, warmup_steps=20, decay_start=10)


@pytest.mark.parametrize(("changes", "message"), [
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"lr": -1.0}, "lr must be a number > 0"),
    ({"dtype": "fp8"}, "unknown dtype"),
    ({"schedule": "cosine"}, "unknown schedule"),
    ({"init": "weights.pt"}, "imagenet:PATH"),
    ({"epochs": None}, "unbounded run"),
    ({"model_overrides": {"num_classes": 3}}, "num_classes comes from the dataset"),
    ({"variant": "passt-x"}, "unknown variant"),
    ({"min_lr_ratio": 2.0}, "min_lr_ratio"),
])
def test_bad_config(changes, message, tiny_train_config):
    with pytest.raises(ValueError, match=message):
        tiny_train_config(**changes)


def test_config_round_trip(tiny_train_config):
    cfg = tiny_train_config()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown training setting"):
        TrainConfig.from_dict({**cfg.to_dict(), "learning_rate": 1.0})


def test_clip_too_short_for_patchout(tones, tiny_train_config):
    cfg = tiny_train_config(model_overrides={**TINY, "time": 40})
    with pytest.raises(ValueError, match="too few for the model.s patchout"):
        train(cfg, train_set=tones[0], eval_set=tones[1])


@pytest.mark.slow
def test_train_writes_checkpoint_and_metrics(tmp_path, tones, tiny_train_config):
    result = train(tiny_train_config(), train_set=tones[0], eval_set=tones[1])
    assert (result.step, result.epochs) == (12, 2)  # 24 clips / batch 4 = 6 steps per epoch
    rows = read_rows(tmp_path)
    assert [(r["kind"], r["step"]) for r in rows if r["kind"] == "eval"] == [("eval", 6),
                                                                            ("eval", 12)]
    assert [r["step"] for r in rows if r["kind"] == "train"] == list(range(1, 13))
    assert all(math.isfinite(r["loss"]) for r in rows if r["kind"] == "train")
    lrs = [r["lr"] for r in rows if r["kind"] == "train"]
    assert lrs[:7] == [1e-3] * 7 and lrs[-1] < lrs[7] < 1e-3  # warm-up 1 step, decay from 6
    csv_lines = (tmp_path / METRICS_CSV).read_text().splitlines()
    assert csv_lines[0].startswith("kind,step,epoch,loss,lr,map") and len(csv_lines) == 15
    assert rows[-1]["map"] == result.metrics["map"]
    assert 0 < rows[-1]["chance_map"] < 1

    ckpt = RunCheckpoint.load(tmp_path / LAST_CHECKPOINT)
    assert ckpt.progress == {"step": 12, "epoch": 2, "batch": 0,
                                "train_seconds": result.train_seconds}
    assert ckpt.label_names == tones[0].label_names
    model, frontend, cfg = load_trained_model(tmp_path / LAST_CHECKPOINT)
    assert cfg == tiny_train_config() and model.cfg.embed_dim == 32
    assert not model.training and not frontend.training
    # the record carries the model's own arguments: rebuilt without the training settings
    assert ckpt.format == "passt-train/2" and ckpt.model_args == dataclasses.asdict(model.cfg)
    rebuilt, rebuilt_frontend = ckpt.build()
    assert rebuilt.cfg == model.cfg and rebuilt_frontend.config == frontend.config
    assert all(torch.equal(a, b) for a, b in zip(rebuilt.state_dict().values(),
                                                 model.state_dict().values(), strict=True))


@pytest.mark.slow
def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, tones):
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    reference = train(train_config(whole), train_set=tones[0], eval_set=tones[1])

    class Crash(RuntimeError):
        pass

    def crash_at_step_9(progress):
        if progress.step == 9:  # mid-epoch 2; the last checkpoint is at step 8
            raise Crash

    with pytest.raises(Crash):
        train(train_config(crashed), train_set=tones[0], eval_set=tones[1],
              hooks=[crash_at_step_9])
    assert read_rows(crashed)[-1]["step"] == 9
    assert RunCheckpoint.load(crashed / LAST_CHECKPOINT).progress["step"] == 8
    resumed = train(train_config(crashed), resume=True, train_set=tones[0], eval_set=tones[1])

    assert resumed.step == reference.step == 12
    assert untimed(read_rows(crashed)) == untimed(read_rows(whole))  # each step once
    a = RunCheckpoint.load(whole / LAST_CHECKPOINT).model
    b = RunCheckpoint.load(crashed / LAST_CHECKPOINT).model
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same draws, batches and updates
    assert resumed.metrics == reference.metrics


@pytest.mark.slow
def test_resume_of_a_finished_run_does_nothing(tmp_path, tones, tiny_train_config):
    first = train(tiny_train_config(epochs=1), train_set=tones[0], eval_set=tones[1])
    again = train(tiny_train_config(epochs=1), resume=True, train_set=tones[0],
                  eval_set=tones[1])
    assert again.step == first.step and again.metrics == first.metrics
    assert len(read_rows(tmp_path)) == 7


def test_existing_run_and_changed_settings_are_refused(tones, tiny_train_config):
    train(tiny_train_config(max_steps=2), train_set=tones[0], eval_set=tones[1])
    with pytest.raises(ValueError, match="pass resume"):
        train(tiny_train_config(max_steps=2), train_set=tones[0], eval_set=tones[1])
    with pytest.raises(ValueError, match=r"changed settings \(lr: 0.001 -> 0.01\)"):
        train(tiny_train_config(max_steps=2, lr=1e-2), resume=True, train_set=tones[0],
              eval_set=tones[1])


def test_metrics_log_truncates_past_a_step(tmp_path):
    log = MetricsLog(tmp_path)
    for step in (1, 2, 3):
        log.append({"kind": "train", "step": step, "loss": 1.0 / step})
    with (tmp_path / METRICS_JSONL).open("a") as f:
        f.write('{"kind": "train", "st')  # a row cut short by a crash
    log.truncate(2)
    assert [r["step"] for r in log.rows()] == [1, 2]
    assert len((tmp_path / METRICS_CSV).read_text().splitlines()) == 3


@pytest.mark.slow
def test_time_budget_stops_with_an_evaluation(tmp_path, tones, tiny_train_config):
    cfg = tiny_train_config(epochs=None, max_minutes=1e-6, schedule="constant")
    result = train(cfg, train_set=tones[0], eval_set=tones[1])
    assert result.step == 1 and result.epochs == 1  # the budget is spent after one step
    assert [r["kind"] for r in read_rows(tmp_path)] == ["train", "eval"]


def test_sweep_budgets(tmp_path, tiny_train_config):
    base = tiny_train_config()
    steps = run_config(base, "passt-s-n", 3, tmp_path, Budget(steps=5))
    assert (steps.variant, steps.seed, steps.epochs, steps.max_steps, steps.schedule) == (
        "passt-s-n", 3, None, 5, "paper")
    assert steps.out_dir == str(tmp_path / "runs" / "passt-s-n" / "seed-3")
    minutes = run_config(base, "passt-s", 0, tmp_path, Budget(minutes=2.0))
    assert (minutes.max_minutes, minutes.max_steps, minutes.schedule) == (2.0, None, "constant")
    compute = run_config(base, "passt-s", 0, tmp_path, Budget(tflops=1.5))
    assert (compute.max_tflops, compute.max_steps, compute.schedule) == (1.5, None, "paper")
    with pytest.raises(ValueError, match="needs a budget"):
        Budget()
    with pytest.raises(ValueError, match="more than once"):
        run_sweep(["passt-s", "passt-s"], base, tmp_path, Budget(steps=1))
    with pytest.raises(ValueError, match="unknown variant"):
        run_sweep(["passt-z"], base, tmp_path, Budget(steps=1))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_mixed_precision(tmp_path, tones, dtype, tiny_train_config):
    result = train(tiny_train_config(dtype=dtype, max_steps=2), train_set=tones[0],
                   eval_set=tones[1])
    assert result.step == 2 and math.isfinite(result.metrics["map"])
    ckpt = RunCheckpoint.load(tmp_path / LAST_CHECKPOINT)
    assert (ckpt.scaler is not None) == (dtype == "fp16")  # gradient scaling for fp16 only


def test_start_from_a_passt_checkpoint(tmp_path, tiny_train_config):
    source = create_model("passt-s", **TINY)  # 527 classes, as an official checkpoint
    torch.save(source.state_dict(), tmp_path / "passt.pt")
    cfg = tiny_train_config(init=f"checkpoint:{tmp_path / 'passt.pt'}")
    model = build_model(cfg, num_classes=4, frames=100)
    assert torch.equal(model.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)
    assert model.head[1].out_features == 4  # a new classifier for the dataset's classes
    missing = tiny_train_config(init=f"imagenet:{tmp_path / 'deit.pt'}")
    with pytest.raises(FileNotFoundError, match="deit.pt"):
        build_model(missing, num_classes=4, frames=100)


@pytest.fixture
def slow_sync(monkeypatch):
    """Replace the trainer's device synchronisation by a recorded 0.1 s wait, as for the work
    a GPU still has queued; returns the devices it was called with."""
    calls = []

    def synchronize(device):
        calls.append(torch.device(device))
        time.sleep(SYNC_SECONDS)

    monkeypatch.setattr(passt.train.trainer, "synchronize", synchronize)
    return calls


@pytest.mark.slow
def test_reported_train_seconds_count_the_device_wait(tmp_path, tones, slow_sync,
                                                      tiny_train_config):
    cfg = tiny_train_config(epochs=1, log_every=2, checkpoint_every=None)
    result = train(cfg, train_set=tones[0], eval_set=tones[1])
    rows = read_rows(tmp_path)
    assert [r["step"] for r in rows if r["kind"] == "train"] == [2, 4, 6]
    assert slow_sync == [torch.device("cpu")] * 3  # at steps 2, 4 and 6 (the epoch's end)
    for synced, row in enumerate(rows[:3], 1):
        assert row["seconds"] >= synced * SYNC_SECONDS  # each wait counted before reporting
    assert rows[-1]["seconds"] == round(result.train_seconds, 3)  # evaluation not counted
    ckpt = RunCheckpoint.load(tmp_path / LAST_CHECKPOINT)
    assert ckpt.progress["train_seconds"] == result.train_seconds >= 3 * SYNC_SECONDS


@pytest.mark.slow
def test_time_budget_stop_counts_the_device_wait(tones, slow_sync, tiny_train_config):
    cfg = tiny_train_config(epochs=None, max_minutes=1e-6, schedule="constant",
                      log_every=100)
    result = train(cfg, train_set=tones[0], eval_set=tones[1])
    assert result.step == 1 and len(slow_sync) == 1
    assert result.train_seconds >= SYNC_SECONDS
