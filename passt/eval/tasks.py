"""What a model is trained to do: tag several classes per clip, or name the one class of a clip.

- ``multi-label`` (AudioSet, OpenMIC): sigmoid scores, binary cross-entropy, mAP, ROC-AUC and
  d-prime;
- ``single-label`` (ESC-50, DCASE20): softmax scores, cross-entropy (on mixed-up one-hot
  targets, soft), accuracy, macro F1 and the confusion matrix; every clip has one class.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from passt.eval.metrics import (
    ClassificationMetrics,
    TaggingMetrics,
    classification_metrics,
    tagging_metrics,
)
from passt.utils.errors import UsageError, check_choice

Task = Literal["multi-label", "single-label"]
TASKS: tuple[str, ...] = get_args(Task)
Metrics = TaggingMetrics | ClassificationMetrics


def check_task(task: str) -> str:
    """Return ``task`` if it is a known task, else raise `UsageError`."""
    check_choice("task", task, TASKS)
    return task


def task_loss(task: Task, logits: Tensor, targets: Tensor) -> Tensor:
    """The training loss of ``logits`` ``[B, C]`` against (possibly mixed-up) ``targets``."""
    if task == "single-label":
        return F.cross_entropy(logits, targets)  # targets are class probabilities
    return F.binary_cross_entropy_with_logits(logits, targets)


def task_scores(task: Task, logits: Tensor) -> Tensor:
    """Scores in [0, 1] of ``logits`` ``[B, C]``: class probabilities, or per-class sigmoids."""
    return torch.softmax(logits, dim=-1) if task == "single-label" else torch.sigmoid(logits)


def task_metrics(task: Task, scores: np.ndarray, targets: np.ndarray) -> Metrics:
    """The evaluation metrics of ``task`` for ``[N, C]`` scores and targets."""
    if task == "single-label":
        return classification_metrics(scores, targets)
    return tagging_metrics(scores, targets)


def check_targets(task: Task, dataset: Dataset, what: str = "the data") -> None:
    """Raise `UsageError` naming the first clip of ``dataset`` (its ``names``, where it has
    them) that ``task`` cannot learn from: a single-label clip needs exactly one class."""
    check_task(task)
    targets = np.asarray(dataset.targets)
    if task != "single-label" or len(targets) == 0:
        return
    wrong = np.flatnonzero((targets > 0).sum(axis=1) != 1)
    if wrong.size == 0:
        return
    i = int(wrong[0])
    names = getattr(dataset, "names", None)
    label_names = getattr(dataset, "label_names", None)
    clip = names[i] if names is not None else f"clip {i}"
    labels = [label_names[c] if label_names is not None else str(c)
              for c in np.flatnonzero(targets[i] > 0)]
    raise UsageError(f"single-label task: {clip} of {what} has {len(labels)} labels "
                     f"({', '.join(labels) or 'none'}), and {wrong.size} clip(s) in all do not "
                     "have exactly one; give each clip one label, or use --task multi-label")
