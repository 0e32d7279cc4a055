"""``passt tradeoff``: the grid, and one checkpoint measured end to end on a tiny model:
settings that reduce nothing score as the unreduced model exactly, the unreduced model's
mAP is the evaluation's, and the files hold every point."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

import passt
from passt.cli import main
from passt.eval.evaluate import predict
from passt.eval.metrics import mean_average_precision
from passt.tradeoff import GridPoint, parse_grid
from passt.tradeoff.run import bootstrap, eval_clips, load
from tests import helpers
from tests.helpers import overrides_arg, save_train_checkpoint

TINY = {**helpers.TINY, "depth": 2}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A `passt train` checkpoint of a tiny passt-s whose eval data is 16 synthetic clips."""
    path = tmp_path_factory.mktemp("ckpt") / "last.pt"
    torch.manual_seed(0)
    model = passt.create_model("passt-s", num_classes=32, **TINY)
    return save_train_checkpoint(model, path, classes=32, overrides=TINY, clip_seconds=1.0,
                                 eval_size=16)


def test_grid_points():
    points = parse_grid(["tome:r=0,4", "evit:keep_rate=0.5:locations=1", "flex:patch=24"])
    assert [(p.strategy, p.setting) for p in points] == [
        ("none", "-"), ("tome", "r=0"), ("tome", "r=4"), ("evit", "keep_rate=0.5,locations=1"),
        ("flex", "patch=24")]
    base = passt.variant_config("passt-s-tome", **TINY)
    cfg = GridPoint("flex", (("patch", 24),)).config(base)
    assert (cfg.patchout, cfg.reduction, cfg.flex_patch_size) == ("none", "none", 24)
    cfg = points[2].config(base)
    assert (cfg.reduction, cfg.reduction_args) == ("tome", {"r": 4})
    for spec, message in [("spiral:r=1", "with a strategy of flex, evit, tome"),
                          ("tome:q=1", "tome:q=1.*unexpected keyword argument 'q'"),
                          ("tome:r", "'r' is not PARAM=V1,V2"),
                          ("flex:size=2", "flex takes patch, stride, not size"),
                          ("tome:r=0.9", "r=0.9 is not accepted")]:
        with pytest.raises(ValueError, match=message):
            parse_grid([spec])


@pytest.mark.slow
def test_a_checkpoint_end_to_end(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["tradeoff", "--checkpoint", str(checkpoint), "--grid", "tome:r=0,8",
                 "evit:keep_rate=1,0.5", "flex:patch=16,24", "--bootstrap", "20", "--warmup",
                 "0", "--rounds", "1", "--max-seconds", "0.01", "--batch-size", "4",
                 "--out", str(out)]) == 0
    assert "| tome | r=8 |" in capsys.readouterr().out
    rows = list(csv.DictReader((out / "tradeoff.csv").open()))
    assert (out / "tradeoff.png").stat().st_size > 0 and (out / "tradeoff.md").exists()
    by = {(r["strategy"], r["setting"]): r for r in rows}
    assert list(by) == [("none", "-"), ("tome", "r=0"), ("tome", "r=8"),
                        ("evit", "keep_rate=1"), ("evit", "keep_rate=0.5"),
                        ("flex", "patch=16"), ("flex", "patch=24")]
    reference = by[("none", "-")]
    for same in (("tome", "r=0"), ("evit", "keep_rate=1"), ("flex", "patch=16")):
        assert by[same]["value"] == reference["value"] and float(by[same]["change"]) == 0
        assert by[same]["tokens_per_block"] == reference["tokens_per_block"] == "110 110"
    assert by[("tome", "r=8")]["tokens_per_block"] == "110 102"
    assert by[("evit", "keep_rate=0.5")]["tokens_per_block"] == "110 57"  # block 1: 54 + 1
    assert by[("flex", "patch=24")]["tokens_per_block"] == "44 44"  # 7 x 6 patches
    # the unreduced model's mAP is the one an evaluation of the checkpoint gives
    loaded = load(checkpoint)
    scores, targets = predict(loaded.model, loaded.frontend, eval_clips(loaded, None),
                              device=torch.device("cpu"), batch_size=5)
    assert float(reference["value"]) == pytest.approx(mean_average_precision(scores, targets),
                                                      rel=1e-5)
    assert all(float(r["ci_low"]) <= float(r["ci_high"]) and float(r["samples_per_s"]) > 0
               for r in rows)


def test_bootstrap_is_paired_and_seeded():
    rng = np.random.default_rng(0)
    targets = (rng.random((40, 3)) < 0.3).astype(float)
    targets[0] = 1
    scores = rng.random((40, 3))
    (ref, ref_low, ref_high, *_), (same, low, high, change, c_low, c_high) = bootstrap(
        [scores, scores.copy()], targets, "multi-label", resamples=50, seed=1)
    assert same == ref and (low, high) == (ref_low, ref_high)
    assert (change, c_low, c_high) == (0.0, 0.0, 0.0)  # the same clips resampled for both
    assert bootstrap([scores], targets, "multi-label", 50, 1) == bootstrap(
        [scores], targets, "multi-label", 50, 1)
    # the basic (pivotal) interval: 2 v - q97.5 to 2 v - q2.5 of the resampled mAPs
    rng = np.random.default_rng(1)
    resampled = []
    for _ in range(50):
        i = rng.integers(0, 40, 40)
        resampled.append(mean_average_precision(scores[i], targets[i]))
    q_low, q_high = np.percentile(resampled, [2.5, 97.5])
    assert (ref_low, ref_high) == pytest.approx((2 * ref - q_high, 2 * ref - q_low))
    assert np.mean(resampled) > ref  # repeated clips raise a resample's mAP: the bias


def test_errors(tmp_path, capsys):
    assert main(["tradeoff", "--grid", "tome:r=1"]) == 2
    assert "passt tradeoff needs --checkpoint" in capsys.readouterr().err
    plain = tmp_path / "plain.pt"
    torch.save(passt.create_model("passt-s", num_classes=3, **TINY).state_dict(), plain)
    assert main(["tradeoff", "--checkpoint", str(plain), "--variant", "passt-s",
                 "--model-overrides", overrides_arg(TINY)]) == 2
    assert "an official checkpoint names no eval data: give --data" in capsys.readouterr().err
