"""Single-label and multi-label tasks: their losses and scores, training a single-label model,
and clips that a single-label task cannot use."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from passt.eval.tasks import check_targets, task_loss, task_scores
from passt.inference.run import tag
from passt.train import METRICS_CSV, METRICS_JSONL, TrainConfig, train
from passt.utils.errors import UsageError
from tests.helpers import TINY

SAMPLE_RATE = 32000


class OneTone(Dataset):
    """Clips of one tone each (class c at 300 * 2**c Hz) in noise, one-hot targets."""

    def __init__(self, size: int, key: int = 0, num_classes: int = 3):
        self.num_classes = num_classes
        self.label_names = [f"tone-{c}" for c in range(num_classes)]
        self.names = [f"clip-{key}-{i}.wav" for i in range(size)]
        self.key = key
        self.targets = np.eye(num_classes, dtype=np.float32)[np.arange(size) % num_classes]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.key, index])
        t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
        c = int(self.targets[index].argmax())
        x = 0.05 * rng.standard_normal(SAMPLE_RATE) + 0.3 * np.sin(2 * np.pi * 300 * 2**c * t)
        return x.astype(np.float32), self.targets[index]


def test_losses_and_scores_of_each_task():
    torch.manual_seed(0)
    logits = torch.randn(5, 4)
    soft = torch.softmax(torch.randn(5, 4), dim=-1)  # mixed-up one-hot targets
    expected = -(soft * torch.log_softmax(logits, dim=-1)).sum(-1).mean()
    assert torch.allclose(task_loss("single-label", logits, soft), expected)
    multi = (torch.rand(5, 4) < 0.5).float()
    assert torch.equal(task_loss("multi-label", logits, multi),
                       F.binary_cross_entropy_with_logits(logits, multi))
    assert torch.allclose(task_scores("single-label", logits).sum(-1), torch.ones(5))
    assert torch.equal(task_scores("multi-label", logits), torch.sigmoid(logits))


@pytest.mark.slow
def test_single_label_training_logs_accuracy_f1_and_confusion(tmp_path):
    cfg = TrainConfig(task="single-label", clip_seconds=1.0, model_overrides=TINY, batch_size=4,
                      epochs=1, lr=1e-3, log_every=1, out_dir=str(tmp_path))
    result = train(cfg, train_set=OneTone(12), eval_set=OneTone(9, key=1), progress=False)
    assert set(result.metrics) == {"accuracy", "macro_f1", "chance_accuracy", "confusion",
                                   "samples"}
    confusion = np.array(result.metrics["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum(axis=1).tolist() == [3, 3, 3]
    assert result.metrics["accuracy"] == pytest.approx(np.trace(confusion) / 9)
    rows = [json.loads(line) for line in (tmp_path / METRICS_JSONL).read_text().splitlines()]
    assert rows[-1]["kind"] == "eval" and rows[-1]["confusion"] == confusion.tolist()
    header = (tmp_path / METRICS_CSV).read_text().splitlines()[0].split(",")
    assert {"accuracy", "macro_f1", "chance_accuracy"} <= set(header)


def test_a_clip_with_two_labels_is_refused_by_a_single_label_task(tmp_path):
    data = OneTone(6)
    data.targets = data.targets.copy()
    data.targets[4] = [1.0, 0.0, 1.0]
    with pytest.raises(UsageError, match=r"single-label task: clip-0-4.wav of the training data "
                                         r"has 2 labels \(tone-0, tone-2\)"):
        check_targets("single-label", data, "the training data")
    check_targets("multi-label", data)  # fine as tags
    cfg = TrainConfig(task="single-label", clip_seconds=1.0, model_overrides=TINY, batch_size=2,
                      max_steps=1, out_dir=str(tmp_path))
    with pytest.raises(UsageError, match="or use --task multi-label"):
        train(cfg, train_set=data, eval_set=OneTone(3, key=1), progress=False)
    assert not (tmp_path / METRICS_JSONL).exists()  # refused before the first step


def test_unknown_task_names_the_accepted_ones(tmp_path):
    with pytest.raises(UsageError, match="unknown task 'regression'; accepted: multi-label, "
                                         "single-label"):
        TrainConfig(task="regression", out_dir=str(tmp_path))


def test_passt_tag_scores_a_single_label_checkpoint_with_softmax(tmp_path):
    cfg = TrainConfig(task="single-label", clip_seconds=1.0, model_overrides=TINY, batch_size=4,
                      max_steps=1, out_dir=str(tmp_path / "run"))
    train(cfg, train_set=OneTone(8), eval_set=OneTone(3, key=1), progress=False)
    sf.write(tmp_path / "tone.wav", OneTone(1)[0][0], SAMPLE_RATE)
    result = tag(tmp_path / "tone.wav", tmp_path / "run" / "last.pt", top_k=3).results[0]
    assert result.scores.sum() == pytest.approx(1.0, abs=1e-5)
    assert [label.name for label in result.top][0].startswith("tone-")
