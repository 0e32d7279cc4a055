"""Fine-tuning: the pretrained weights loaded strictly but for a new classifier, the time
embedding cropped, the fine-tuning patchout, k-fold cross-validation and its resume."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

import passt.train.crossval
import passt.train.plan
from passt.checkpoints import CLASSIFIER_KEYS, CheckpointMismatchError
from passt.cli import main
from passt.data import open_dataset
from passt.data.esc50_synthetic import Esc50Like, write_esc50_like
from passt.factory import create_model
from passt.patchout import NoPatchout, StructuredPatchout, UnstructuredPatchout
from passt.train import (
    LAST_CHECKPOINT,
    TrainConfig,
    build_model,
    clip_frames,
    open_eval_set,
    open_train_set,
    train,
    train_frontend,
)
from passt.train.crossval import CLIPS_CSV, FOLDS_CSV, SUMMARY_JSON, cross_validate
from passt.train.finetune import finetune_config
from passt.utils.errors import UsageError
from tests import helpers
from tests.helpers import model_flags

TINY = {**helpers.TINY, "depth": 2}
CLASSES = ("chord", "arpeggio-up", "hiss")


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """A 527-class state_dict in the official layout (998 frames), saved."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "passt-s-tiny.pt"
    torch.save(create_model("passt-s", **TINY).state_dict(), path)
    return path


@pytest.fixture(scope="module")
def esc50(tmp_path_factory):
    """A tiny ESC-50-layout folder: 3 classes, 3 folds, 2 clips per class and fold, 1 s."""
    root = tmp_path_factory.mktemp("esc50")
    write_esc50_like(root, Esc50Like(classes=CLASSES, folds=3, clips_per_class=6, seconds=1.0))
    return root


def finetuning(tmp_path, official, **changes) -> TrainConfig:
    settings = {"data": "synthetic", "init": f"checkpoint:{official}", "clip_seconds": 1.0,
                "model_overrides": TINY, "batch_size": 2, "epochs": 1, "lr": 1e-3,
                "out_dir": str(tmp_path / "run"), **changes}
    return finetune_config(TrainConfig(**settings))


def test_an_official_checkpoint_fine_tunes_to_10_classes(tmp_path, official, caplog):
    cfg = finetuning(tmp_path, official)
    frames = clip_frames(1.0, train_frontend(cfg))
    assert cfg.model_overrides["frames"] == frames == 100
    with caplog.at_level(logging.INFO, logger="passt.checkpoints"):
        model = build_model(cfg, num_classes=10, frames=frames)
    assert "classifier (527 classes) is dropped" in caplog.text
    assert "time embedding cropped from 99 to its first 9 columns" in caplog.text
    source = torch.load(official, weights_only=True)
    ours = model.state_dict()
    assert ours["head.1.weight"].shape == (10, 32) and ours["head_dist.weight"].shape == (10, 32)
    assert torch.equal(ours["time_new_pos_embed"], source["time_new_pos_embed"][..., :9])
    loaded = [k for k in source if k not in CLASSIFIER_KEYS and k != "time_new_pos_embed"]
    assert set(loaded) | set(CLASSIFIER_KEYS) | {"time_new_pos_embed"} == set(ours)
    for key in loaded:  # every other key loaded exactly (strict), frequency embedding included
        assert torch.equal(ours[key], source[key]), key


def test_a_checkpoint_whose_architecture_does_not_fit_is_refused(tmp_path, official, capsys,
                                                                 caplog):
    wider = finetuning(tmp_path, official, model_overrides={**TINY, "embed_dim": 64})
    with caplog.at_level(logging.INFO, logger="passt.checkpoints"), \
            pytest.raises(CheckpointMismatchError, match="wrongly shaped keys: .*cls_token"):
        build_model(wider, num_classes=10, frames=100)
    assert "is dropped" not in caplog.text  # the misfit is said first, and alone
    assert issubclass(CheckpointMismatchError, UsageError)  # the CLI: one line, status 2
    assert main(["finetune", "--data", "synthetic", "--init", f"checkpoint:{official}",
                 "--clip-seconds", "1", *model_flags({**TINY, "depth": 3}), "--max-steps", "1",
                 "--out", str(tmp_path / "cli")]) == 2
    assert "does not fit the model" in capsys.readouterr().err
    with pytest.raises(UsageError, match=r"pass --init checkpoint:CKPT .*; none was given"):
        finetune_config(TrainConfig(out_dir=str(tmp_path)))


@pytest.mark.parametrize(("patchout", "kind", "kept"), [
    ("none", NoPatchout, 12 * 9), ("unstructured", UnstructuredPatchout, 12 * 9 - 36),
    ("structured", StructuredPatchout, (12 - 4) * (9 - 4)),
])
def test_the_fine_tuning_patchout_is_one_flag(tmp_path, official, patchout, kind, kept):
    cfg = finetuning(tmp_path, official, patchout=patchout)
    model = build_model(cfg, num_classes=10, frames=100)
    assert type(model.patchout) is kind  # the variant is passt-s: structured by itself
    assert model.seq_len(100, training=True) == kept + 2  # the strategy's default, scaled


def test_a_passt_train_checkpoint_gives_its_architecture_and_classes(tmp_path, esc50):
    pre = TrainConfig(data=f"esc50:{esc50}", eval_fold=1, clip_seconds=1.0,
                      model_overrides=TINY, batch_size=2, max_steps=1,
                      out_dir=str(tmp_path / "pre"))
    assert pre.task == "single-label"
    train(pre, progress=False)
    ckpt = tmp_path / "pre" / LAST_CHECKPOINT
    cfg = finetune_config(TrainConfig(data=f"esc50:{esc50}", init=f"checkpoint:{ckpt}",
                                      clip_seconds=1.0, out_dir=str(tmp_path / "ft")))
    assert {k: cfg.model_overrides[k] for k in TINY} == TINY
    same = build_model(cfg, num_classes=3, frames=100, label_names=list(CLASSES))
    stored = torch.load(ckpt, weights_only=True)["model"]
    assert torch.equal(same.head[1].weight, stored["head.1.weight"])  # the same classes: kept
    other = build_model(cfg, num_classes=3, frames=100, label_names=["a", "b", "c"])
    assert not torch.equal(other.head[1].weight, stored["head.1.weight"])
    same_width = {"embed_dim": 32, "depth": 2}  # repeating the checkpoint's settings is fine
    assert finetune_config(replace(cfg, model_overrides=same_width)).model_overrides[
        "num_heads"] == 2
    with pytest.raises(UsageError, match=r"trained with embed_dim=32; its architecture is "
                                         r"taken from it: drop embed_dim=64"):
        finetune_config(replace(cfg, model_overrides={"embed_dim": 64}))


def read_csv(path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_cross_validation_never_leaks_a_clip_and_summarises(tmp_path, official, esc50):
    cfg = finetuning(tmp_path, official, data=f"esc50:{esc50}")
    summary = cross_validate(cfg, None, progress=False)
    files = {f: [] for f in (1, 2, 3)}  # hand-built from the file names: FOLD-ID-TAKE-TARGET
    for path in sorted((esc50 / "audio").iterdir()):
        files[int(path.name.split("-")[0])].append(path.name)
    out = tmp_path / "run"
    for fold, held_out in files.items():
        rows = read_csv(out / f"fold-{fold}" / CLIPS_CSV)
        train_side = sorted(r["clip"] for r in rows if r["side"] == "train")
        eval_side = sorted(r["clip"] for r in rows if r["side"] == "eval")
        assert eval_side == held_out
        assert train_side == sorted(f for k, fs in files.items() if k != fold for f in fs)
    rows = read_csv(out / FOLDS_CSV)
    assert [int(r["fold"]) for r in rows] == [1, 2, 3]
    assert list(rows[0]) == ["fold", "accuracy", "macro_f1", "chance_accuracy", "samples",
                             "steps", "seconds"]
    stored = json.loads((out / SUMMARY_JSON).read_text())
    assert stored == summary and summary["folds"] == [1, 2, 3]
    accuracy = [float(r["accuracy"]) for r in rows]
    assert summary["metrics"]["accuracy"]["values"] == accuracy
    assert summary["metrics"]["accuracy"]["mean"] == pytest.approx(np.mean(accuracy))
    assert summary["metrics"]["accuracy"]["std"] == pytest.approx(np.std(accuracy, ddof=1))
    assert np.array(summary["confusion"]).sum() == 18 and summary["patchout"] == "structured"
    assert summary["steps"] == 3 * 6  # 12 training clips a fold in batches of 2, one epoch


@pytest.mark.slow
def test_resume_after_a_kill_between_folds_skips_the_finished(tmp_path, official, esc50,
                                                              monkeypatch):
    cfg = finetuning(tmp_path, official, data=f"esc50:{esc50}")
    calls = []
    real = passt.train.crossval.train

    def counted(run, **kwargs):
        calls.append(run.eval_fold)
        if run.eval_fold == 3 and len(calls) == 3:
            raise KeyboardInterrupt  # killed as the third fold starts
        return real(run, **kwargs)

    monkeypatch.setattr(passt.train.crossval, "train", counted)
    with pytest.raises(KeyboardInterrupt):
        cross_validate(cfg, [1, 2, 3], progress=False)
    out = tmp_path / "run"
    assert [int(r["fold"]) for r in read_csv(out / FOLDS_CSV)] == [1, 2]
    with pytest.raises(UsageError, match="pass --resume"):
        cross_validate(cfg, [1, 2, 3], progress=False)
    with pytest.raises(UsageError, match=r"changed settings \(lr"):
        cross_validate(finetuning(tmp_path, official, data=f"esc50:{esc50}", lr=0.1),
                       [1, 2, 3], resume=True, progress=False)
    calls.clear()
    summary = cross_validate(cfg, [1, 2, 3], resume=True, progress=False)
    assert calls == [3] and summary["folds"] == [1, 2, 3]
    assert [int(r["fold"]) for r in read_csv(out / FOLDS_CSV)] == [1, 2, 3]


@pytest.mark.slow
def test_cross_validation_input_errors(tmp_path, official, esc50):
    cfg = finetuning(tmp_path, official, data=f"esc50:{esc50}")
    with pytest.raises(UsageError, match=r"fold\(s\) 4, 5 not in esc50:.*; its folds: 1, 2, 3"):
        cross_validate(cfg, [1, 4, 5], progress=False)
    with pytest.raises(UsageError, match="synthetic task comes in splits"):
        cross_validate(finetuning(tmp_path, official), None, progress=False)
    root = tmp_path / "two"
    (root).mkdir()
    for name in ("a.wav", "b.wav"):
        (root / name).write_bytes((esc50 / "audio" / sorted(
            p.name for p in (esc50 / "audio").iterdir())[0]).read_bytes())
    (root / "labels.csv").write_text('filename,labels,fold\na.wav,dog,1\nb.wav,"dog;cat",2\n')
    two = finetuning(tmp_path, official, data=f"folder:{root}", task="single-label")
    with pytest.raises(UsageError, match=r"b.wav of folder:.* has 2 labels \(cat, dog\)"):
        cross_validate(two, None, progress=False)
    assert len(open_dataset(f"folder:{root}", split=None, clip_seconds=1.0)) == 2


@pytest.mark.slow
def test_passt_finetune_cross_validates_from_the_command_line(tmp_path, official, esc50,
                                                              capsys):
    out = tmp_path / "cli"
    assert main(["finetune", "--data", f"esc50:{esc50}", "--init", f"checkpoint:{official}",
                 "--folds", "1,2", "--clip-seconds", "1", *model_flags(TINY),
                 "--batch-size", "4", "--epochs", "1", "--patchout", "none",
                 "--no-progress", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 fold(s) (1, 2), single-label, passt-s with none patchout" in printed
    assert "accuracy: " in printed and (out / SUMMARY_JSON).exists()
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 1 and config["patchout"] == "none"
    assert config["model_overrides"]["frames"] == 100


@pytest.mark.slow
def test_passt_train_cross_validates_from_scratch(tmp_path, esc50, capsys):
    out = tmp_path / "scratch"
    assert main(["train", "--data", f"esc50:{esc50}", "--folds", "all", "--clip-seconds", "1",
                 *model_flags(helpers.TINY), "--batch-size", "6",
                 "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    assert "3 fold(s) (1, 2, 3), single-label" in capsys.readouterr().out
    summary = json.loads((out / SUMMARY_JSON).read_text())
    assert summary["init"] is None and summary["steps"] == 3 * 2


@pytest.mark.integration
def test_cross_validation_under_torchrun(tmp_path, official, esc50):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "passt.cli", "finetune", "--data", f"esc50:{esc50}", "--init",
           f"checkpoint:{official}", "--folds", "1,2", "--clip-seconds", "1", *model_flags(TINY),
           "--batch-size", "2", "--epochs", "1",
           "--no-progress", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("2 fold(s) (1, 2)") == 1  # the summary, printed by rank 0 only
    rows = read_csv(out / FOLDS_CSV)
    assert [int(r["fold"]) for r in rows] == [1, 2]
    assert [int(r["samples"]) for r in rows] == [6, 6]  # both ranks' eval shares, gathered
    assert [int(r["steps"]) for r in rows] == [3, 3]  # 12 clips, 2 ranks x batch 2


def test_a_single_fold_run_opens_its_data_once(tmp_path, esc50, monkeypatch):
    opened = []
    real = passt.train.plan.open_all_clips

    def counted(cfg):
        opened.append(cfg.data)
        return real(cfg)

    monkeypatch.setattr(passt.train.plan, "open_all_clips", counted)
    cfg = TrainConfig(data=f"esc50:{esc50}", eval_fold=2, clip_seconds=1.0,
                      model_overrides=TINY, batch_size=2, max_steps=1, out_dir=str(tmp_path))
    train_set = open_train_set(cfg)
    eval_set = open_eval_set(cfg, train_set)
    assert len(opened) == 1
    assert sorted(eval_set.names) == sorted(n for n in train_set.dataset.names
                                            if n.startswith("2-"))
    assert not set(eval_set.names) & set(train_set.names)
