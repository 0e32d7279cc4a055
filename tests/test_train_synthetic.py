"""End to end on `passt.data`'s synthetic task: the CLI's train and eval, a 2-process
``torchrun`` run, and a short training that learns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from passt.cli import main
from passt.data import AugmentConfig
from passt.inference.run import load_model
from passt.train import LAST_CHECKPOINT, METRICS_JSONL, MetricsLog, TrainConfig, train
from tests.helpers import SMALL, TINY, model_flags

TINY_ARGS = ["--data", "synthetic", "--data-options", "size=32", "--eval-data-options",
             "size=24", "--clip-seconds", "1", *model_flags(TINY),
             "--batch-size", "8", "--lr", "1e-3", "--log-every", "1",
             "--no-progress", "--device", "cpu"]


def read_rows(out_dir) -> list[dict]:
    return [json.loads(line) for line in (out_dir / METRICS_JSONL).read_text().splitlines()]


@pytest.mark.slow
def test_cli_train_then_eval(tmp_path, capsys):
    assert main(["train", *TINY_ARGS, "--max-steps", "3", "--out", str(tmp_path)]) == 0
    rows = read_rows(tmp_path)
    assert [(r["kind"], r["step"]) for r in rows] == [("train", 1), ("train", 2), ("train", 3),
                                                      ("eval", 3)]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(tmp_path / LAST_CHECKPOINT), "--json",
                 "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["map"] == pytest.approx(rows[-1]["map"], abs=1e-6)
    assert printed["samples"] == 24 and printed["scored_classes"] > 0
    loaded = load_model(tmp_path / LAST_CHECKPOINT)  # `passt tag` and `passt embed` read it
    assert loaded.model.cfg.embed_dim == 32 and len(loaded.label_names) == 32


def test_cli_train_reports_bad_settings(tmp_path, capsys):
    assert main(["train", *TINY_ARGS, "--max-steps", "1", "--lr", "0", "--out",
                 str(tmp_path)]) == 2
    assert "lr must be a number > 0" in capsys.readouterr().err


@pytest.mark.integration
def test_killed_run_resumes_without_lost_or_repeated_rows(tmp_path):
    args = ["train", *TINY_ARGS, "--max-steps", "40", "--checkpoint-every", "3", "--out",
            str(tmp_path)]  # 4 steps per epoch: 10 epochs
    proc = subprocess.Popen([sys.executable, "-m", "passt.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            rows = MetricsLog(tmp_path).rows()  # skips a line being written
            if rows and rows[-1]["step"] >= 10:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        proc.kill()
        proc.wait()
    killed_at = MetricsLog(tmp_path).rows()[-1]["step"]
    assert 10 <= killed_at < 40
    assert main([*args, "--resume"]) == 0
    expected = []
    for step in range(1, 41):
        expected.append(("train", step))
        if step % 4 == 0:
            expected.append(("eval", step))
    assert [(r["kind"], r["step"]) for r in read_rows(tmp_path)] == expected


@pytest.mark.integration
def test_torchrun_two_processes(tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "passt.cli", "train", *TINY_ARGS, "--batch-size", "4", "--max-steps", "3",
           "--checkpoint-every", "2", "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_rows(tmp_path)
    assert [(r["kind"], r["step"]) for r in rows] == [("train", 1), ("train", 2), ("train", 3),
                                                      ("eval", 3)]
    assert rows[-1]["samples"] == 24  # the ranks' shares of the eval split, gathered
    import torch  # noqa: PLC0415 (only this test reads the checkpoint itself)

    ckpt = torch.load(tmp_path / LAST_CHECKPOINT, weights_only=True)
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert ckpt["progress"]["step"] == 3


@pytest.mark.slow
def test_short_training_learns_the_synthetic_task(tmp_path):
    """30 s of CPU training of a small passt-s-n on 0.5 s clips: mAP well above chance."""
    cfg = TrainConfig(
        variant="passt-s-n", data="synthetic", data_options={"size": 4096},
        eval_data_options={"size": 256}, clip_seconds=0.5,
        model_overrides={**SMALL, "depth": 2}, batch_size=16,
        epochs=None, max_steps=512, lr=1e-3, balanced=False, augment=AugmentConfig.off(),
        frontend_overrides={"freq_mask": 0, "time_mask": 0}, log_every=64, device="cpu",
        out_dir=str(tmp_path))
    result = train(cfg, progress=False)
    m = result.metrics
    assert (result.step, result.epochs) == (512, 2)
    assert m["map"] > 2 * m["chance_map"], m
    assert m["roc_auc"] > 0.6, m
