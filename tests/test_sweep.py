"""The mAP sweep: compute budgets priced on the model, several seeds with t intervals,
learning curves, and a killed sweep that resumes without repeating a (variant, seed)."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.stats import t as student_t

import passt.sweep.run
from passt.cli import main
from passt.measure.flops import analytic_flops
from passt.model import grid_size
from passt.sweep.maps import (
    MapRow,
    read_curves,
    read_maps,
    summarize,
    summary_markdown,
    t_interval,
    welch_interval,
)
from passt.sweep.run import Budget, parse_seeds, run_sweep
from passt.train import METRICS_JSONL, TrainConfig, train
from passt.train.plan import budget_steps
from passt.utils.errors import UsageError
from tests import helpers
from tests.helpers import model_flags

TINY = {"data": "synthetic", "data_options": {"size": 48}, "eval_data_options": {"size": 24},
        "clip_seconds": 1.0, "model_overrides": helpers.TINY,
        "batch_size": 8, "lr": 1e-3, "log_every": 1, "device": "cpu", "epochs": None}
TINY_ARGS = ["--data", "synthetic", "--data-options", "size=48", "--eval-data-options",
             "size=24", "--clip-seconds", "1", *model_flags(helpers.TINY),
             "--batch-size", "8", "--lr", "1e-3", "--no-progress",
             "--device", "cpu"]


def rows_of(run_dir, kind):
    rows = [json.loads(line) for line in (run_dir / METRICS_JSONL).read_text().splitlines()]
    return [r for r in rows if r["kind"] == kind]


@pytest.mark.parametrize("values", [[0.5, 0.52], [0.41, 0.47, 0.44], [0.1, 0.3, 0.2, 0.25, 0.9]])
def test_t_interval_equals_scipys(values):
    low, high = student_t.interval(0.95, len(values) - 1, loc=np.mean(values),
                                   scale=np.std(values, ddof=1) / math.sqrt(len(values)))
    assert t_interval(values) == (pytest.approx(low), pytest.approx(high))
    assert t_interval([0.5]) is None


def test_welch_interval_equals_scipys():
    from scipy.stats import ttest_ind

    a, b = [0.30, 0.21, 0.26], [0.12, 0.13, 0.11, 0.125]
    ci = ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    diff, low, high = welch_interval(a, b)
    assert (diff, low, high) == (pytest.approx(np.mean(a) - np.mean(b)), pytest.approx(ci.low),
                                 pytest.approx(ci.high))
    assert welch_interval([0.1], b) is None


def test_summary_table_ranks_and_differences():
    rows = [MapRow(v, m, seed=s, task="synthetic", chance_map=0.07, baseline_map=0.4)
            for v, ms in (("passt-b", [0.12, 0.13, 0.11]), ("passt-s", [0.2, 0.3, 0.25]))
            for s, m in enumerate(ms)]
    text = summary_markdown(rows)
    lines = [line for line in text.splitlines() if line.startswith("| passt")]
    assert lines[0].startswith("| passt-s | 3 | 0.250 ± ") and lines[0].endswith("| - |")
    diff, low, high = welch_interval([0.12, 0.13, 0.11], [0.2, 0.3, 0.25])
    assert lines[1].endswith(f"| {diff:+.3f} [{low:+.3f}, {high:+.3f}] |")
    assert "chance 0.070, mean-spectrum baseline 0.400" in text


def test_summary_over_seeds():
    rows = [MapRow("passt-s", m, seed=s, task="synthetic", budget_tflops=2.0)
            for s, m in enumerate([0.4, 0.5, 0.45])] + [MapRow("passt-b", 0.3, seed=0)]
    s, b = summarize(rows)
    assert (s.variant, s.seeds, b.seeds) == ("passt-s", 3, 1)
    assert s.map_mean == pytest.approx(0.45) and s.map_std == pytest.approx(0.05)
    assert b.map_std is None and b.map_ci_low is None and b.describe().startswith("0.300 (")
    assert s.describe() == (f"0.450 ± {student_t.ppf(0.975, 2) * 0.05 / 3**0.5:.3f} "
                            "(synthetic, 2 TFLOPs, 3 seeds)")
    mixed = [*rows, MapRow("passt-s", 0.6, seed=9, task="synthetic", budget_tflops=4.0)]
    with pytest.raises(UsageError, match="differ in budget_tflops"):
        summarize(mixed)


@pytest.mark.slow
def test_budget_ends_within_one_step_and_is_priced_on_the_model(tmp_path):
    cfg = TrainConfig(**TINY, variant="passt-s", max_tflops=0.003, eval_points=3,
                      out_dir=str(tmp_path))
    result = train(cfg, progress=False)
    evals, logged = rows_of(tmp_path, "eval"), rows_of(tmp_path, "train")
    per_step = logged[0]["train_tflops"]  # one step's compute
    assert 0.003 - per_step < result.train_tflops <= 0.003
    assert logged[-1]["train_tflops"] == pytest.approx(result.train_tflops)
    assert result.train_samples == result.step * 8
    assert [r["step"] for r in evals] == [round(result.step * i / 3) for i in (1, 2, 3)]


def test_train_flops_match_the_closed_form():
    from passt.factory import create_model
    from passt.measure.flops import train_flops_per_sample

    model = create_model("passt-b", **{**helpers.SMALL, "depth": 2}, num_classes=10)
    frames = 100
    counted = train_flops_per_sample(model, frames)
    cfg = model.cfg
    # forward 1x, backward 2x, except the patch embedding's (no gradient of the input: 1x)
    # and flash attention's, which recomputes the scores (2.5x)
    n = model.seq_len(frames, training=True)
    forward = analytic_flops(cfg, n, frames)
    patches = cfg.grid[0] * grid_size(frames, cfg.patch_size, cfg.stride)
    patch_embed = 2 * patches * cfg.embed_dim * cfg.patch_size**2
    attention = cfg.depth * 2 * 2 * n * n * cfg.embed_dim
    assert counted == pytest.approx(3 * forward - patch_embed + 0.5 * attention, rel=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_bad_budgets_and_seeds_are_clear_errors(tmp_path):
    for bad in (0, -1.0):
        with pytest.raises(UsageError, match="budget_tflops must be a number > 0"):
            Budget(tflops=bad)
    with pytest.raises(UsageError, match="needs a budget"):
        Budget()
    for text in ("0,x", "0;1", "0,-1", ""):
        with pytest.raises(UsageError, match=f"--seeds '{text}': expected a comma-separated "
                                             "list of integers >= 0"):
            parse_seeds(text)
    with pytest.raises(UsageError, match="more than once"):
        parse_seeds("1,1")
    assert parse_seeds(" 0, 1,2") == (0, 1, 2) and parse_seeds("1,,2") == (1, 2)
    with pytest.raises(UsageError, match="less than one training step"):
        budget_steps(1e-9, 5e6)
    cfg = TrainConfig(**TINY, variant="passt-s", max_tflops=1e-9, out_dir=str(tmp_path))
    with pytest.raises(UsageError, match="less than one training step"):
        train(cfg, progress=False)
    assert main(["sweep", "--variants", "passt-s", "--budget-tflops", "0", *TINY_ARGS,
                 "--out", str(tmp_path / "s")]) == 2
    single = TrainConfig(**TINY, variant="passt-s", task="single-label", max_steps=1)
    with pytest.raises(UsageError, match="is single-label: use --task multi-label"):
        run_sweep(["passt-s"], single, tmp_path / "single", Budget(tflops=1.0))
    assert not (tmp_path / "single").exists()


@pytest.mark.slow
def test_killed_sweep_resumes_skipping_finished_pairs(tmp_path, monkeypatch):
    base = TrainConfig(**{**TINY, "epochs": 1}, variant="passt-s", eval_points=2)
    trained: list[tuple[str, int]] = []
    real_train = passt.sweep.run.train

    def dies_on_third(cfg, **kwargs):
        if len(trained) == 2:
            raise KeyboardInterrupt  # killed during the third run
        trained.append((cfg.variant, cfg.seed))
        return real_train(cfg, **kwargs)

    monkeypatch.setattr(passt.sweep.run, "train", dies_on_third)
    budget = Budget(tflops=0.002)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(["passt-s", "passt-s-n"], base, tmp_path, budget, seeds=(0, 1))
    assert [(r.variant, r.seed) for r in read_maps(tmp_path / "maps.csv")] == trained
    with pytest.raises(UsageError, match="--resume"):
        run_sweep(["passt-s", "passt-s-n"], base, tmp_path, budget, seeds=(0, 1))

    def counting(cfg, **kwargs):
        trained.append((cfg.variant, cfg.seed))
        return real_train(cfg, **kwargs)

    monkeypatch.setattr(passt.sweep.run, "train", counting)
    rows = run_sweep(["passt-s", "passt-s-n"], base, tmp_path, budget, seeds=(0, 1),
                     resume=True)
    assert trained[2:] == [("passt-s-n", 0), ("passt-s-n", 1)]
    pairs = [(r.variant, r.seed) for r in read_maps(tmp_path / "maps.csv")]
    assert pairs == [(r.variant, r.seed) for r in rows] and len(set(pairs)) == 4 == len(pairs)
    curves = read_curves(tmp_path / "curves.csv")
    assert sorted({(p.variant, p.seed) for p in curves}) == sorted(pairs)
    assert all(len([p for p in curves if (p.variant, p.seed) == pair]) == 2 for pair in pairs)
    for name in ("maps_summary.csv", "summary.md", "map_vs_compute.png", "map_vs_time.png"):
        assert (tmp_path / name).is_file(), name
    other = dataclasses.replace(base, clip_seconds=2.0)
    with pytest.raises(UsageError, match="other settings"):
        run_sweep(["passt-s"], other, tmp_path, budget, seeds=(0,), resume=True)


@pytest.mark.slow
def test_cli_sweep_with_seeds_and_baseline(tmp_path, capsys):
    assert main(["sweep", "--variants", "passt-s", "--budget-tflops", "0.002", "--seeds", "0,1",
                 "--eval-points", "2", "--baseline-clips", "48", *TINY_ARGS,
                 "--out", str(tmp_path)]) == 0
    rows = read_maps(tmp_path / "maps.csv")
    assert [(r.variant, r.seed) for r in rows] == [("passt-s", 0), ("passt-s", 1)]
    assert all(r.budget_tflops == 0.002 and r.train_clips == 48 and r.embed_dim == 32
               and 0 <= r.baseline_map <= 1 and r.chance_map > 0 for r in rows)
    assert "2 seeds" in capsys.readouterr().out


@pytest.mark.slow
def test_new_variants_train_at_equal_compute(tmp_path):
    # merging and pruning inside the network make a step cheaper, so the same budget buys
    # more of them (passt-s-flex trains too, elsewhere: at this width its kernel resize, once
    # a step, costs more than its fewer tokens save)
    new = ("passt-s-tome", "passt-s-evit")
    assert main(["sweep", "--variants", ",".join(("passt-s", *new)), "--budget-tflops",
                 "0.0005", *TINY_ARGS, "--out", str(tmp_path)]) == 0
    rows = {r.variant: r for r in read_maps(tmp_path / "maps.csv")}
    assert list(rows) == ["passt-s", *new]
    per_step = {v: r.train_tflops / r.steps for v, r in rows.items()}
    assert all(per_step[v] < per_step["passt-s"] for v in new), per_step
    assert all(r.steps >= rows["passt-s"].steps for r in rows.values())
